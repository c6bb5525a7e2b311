//! Which PostgreSQL types a label or a feature may have, and how their binary values become a
//! `String` or an `f64`. Decoding errors never quote the value.

use std::error::Error;

use tokio_postgres::types::{FromSql, Kind, Type};

type DecodeError = Box<dyn Error + Sync + Send>;

/// The type a domain is based on (domains over domains included), or the type itself.
pub(crate) fn base_type(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(base) => base_type(base),
        _ => ty,
    }
}

/// Types a label column may have: text-like, integers, booleans.
pub(crate) fn label_type_ok(ty: &Type) -> bool {
    matches!(
        *base_type(ty),
        Type::TEXT
            | Type::VARCHAR
            | Type::BPCHAR
            | Type::NAME
            | Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::BOOL
    )
}

/// What a label column's type must be, for messages.
pub(crate) const LABEL_TYPES: &str = "text, varchar, char, int2, int4, int8 or bool";

/// Types a feature column may have: integers, floats, numeric.
pub(crate) fn feature_type_ok(ty: &Type) -> bool {
    matches!(
        *base_type(ty),
        Type::INT2 | Type::INT4 | Type::INT8 | Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC
    )
}

/// What a feature column's type must be, for messages.
pub(crate) const FEATURE_TYPES: &str = "int2, int4, int8, float4, float8 or numeric";

/// A label read as text: integers in decimal, booleans as `true` / `false`.
#[derive(Debug)]
pub(crate) struct Label(pub(crate) String);

impl<'a> FromSql<'a> for Label {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, DecodeError> {
        let base = base_type(ty);
        Ok(Label(match *base {
            Type::INT2 => i16::from_sql(base, raw)?.to_string(),
            Type::INT4 => i32::from_sql(base, raw)?.to_string(),
            Type::INT8 => i64::from_sql(base, raw)?.to_string(),
            Type::BOOL => bool::from_sql(base, raw)?.to_string(),
            _ => <&str>::from_sql(base, raw)?.to_owned(),
        }))
    }

    fn accepts(ty: &Type) -> bool {
        label_type_ok(ty)
    }
}

/// A feature read as a number. An `int8` beyond 2^53 and a `numeric` with more than about
/// 16 significant digits are rounded to the nearest `f64`.
#[derive(Debug)]
pub(crate) struct Feature(pub(crate) f64);

impl<'a> FromSql<'a> for Feature {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, DecodeError> {
        let base = base_type(ty);
        Ok(Feature(match *base {
            Type::INT2 => i16::from_sql(base, raw)?.into(),
            Type::INT4 => i32::from_sql(base, raw)?.into(),
            #[allow(clippy::cast_precision_loss)] // documented: rounded to the nearest f64
            Type::INT8 => i64::from_sql(base, raw)? as f64,
            Type::FLOAT4 => f32::from_sql(base, raw)?.into(),
            Type::FLOAT8 => f64::from_sql(base, raw)?,
            _ => numeric_to_f64(raw)?,
        }))
    }

    fn accepts(ty: &Type) -> bool {
        feature_type_ok(ty)
    }
}

/// Signs of the binary `numeric` format (PostgreSQL's `numeric_send`).
const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// Decodes PostgreSQL's binary `numeric`: a count of base-10000 digits, the weight (power of
/// 10000) of the first, a sign, the display scale, then the digits. The digits are written out
/// as a decimal number and parsed, so the result is the `f64` nearest to the exact value.
pub(crate) fn numeric_to_f64(raw: &[u8]) -> Result<f64, DecodeError> {
    let word = |i: usize| -> Result<u16, DecodeError> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "numeric value is truncated".into())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)?.cast_signed());
    let sign = word(2)?;
    if raw.len() != 8 + 2 * ndigits {
        return Err(format!(
            "numeric value has {} bytes, its header announces {}",
            raw.len(),
            8 + 2 * ndigits
        )
        .into());
    }
    match sign {
        NUMERIC_NAN => return Ok(f64::NAN),
        NUMERIC_PINF => return Ok(f64::INFINITY),
        NUMERIC_NINF => return Ok(f64::NEG_INFINITY),
        NUMERIC_POS | NUMERIC_NEG => {}
        other => return Err(format!("numeric value has an unknown sign 0x{other:04x}").into()),
    }
    if ndigits == 0 {
        return Ok(0.0);
    }
    let mut text = String::with_capacity(ndigits * 4 + 12);
    if sign == NUMERIC_NEG {
        text.push('-');
    }
    for i in 0..ndigits {
        let digit = word(4 + i)?;
        if digit > 9999 {
            return Err("numeric value has a digit above 9999".into());
        }
        text.push_str(&format!("{digit:04}"));
    }
    // The last base-10000 digit has weight `weight - (ndigits - 1)`.
    let exponent = 4 * (weight - (ndigits as i64 - 1));
    text.push_str(&format!("e{exponent}"));
    Ok(text.parse::<f64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary form of a numeric with `digits` (base 10000), like `numeric_send`.
    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((digits.len() as u16).to_be_bytes());
        out.extend(weight.to_be_bytes());
        out.extend(sign.to_be_bytes());
        out.extend(dscale.to_be_bytes());
        for d in digits {
            out.extend(d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numeric_values() {
        // 0
        assert_eq!(numeric_to_f64(&numeric(0, 0, 0, &[])).unwrap(), 0.0);
        // 12345.678 = 1|2345|6780 with weight 1
        assert_eq!(
            numeric_to_f64(&numeric(1, NUMERIC_POS, 3, &[1, 2345, 6780])).unwrap(),
            12345.678
        );
        // -0.0001 = 0001 at weight -1
        assert_eq!(
            numeric_to_f64(&numeric(-1, NUMERIC_NEG, 4, &[1])).unwrap(),
            -0.0001
        );
        // 1e20 = 1 at weight 5
        assert_eq!(
            numeric_to_f64(&numeric(5, NUMERIC_POS, 0, &[1])).unwrap(),
            1e20
        );
        // 0.1 is rounded like the literal
        assert_eq!(
            numeric_to_f64(&numeric(-1, NUMERIC_POS, 1, &[1000])).unwrap(),
            0.1
        );
        assert!(
            numeric_to_f64(&numeric(0, NUMERIC_NAN, 0, &[]))
                .unwrap()
                .is_nan()
        );
        assert_eq!(
            numeric_to_f64(&numeric(0, NUMERIC_NINF, 0, &[])).unwrap(),
            f64::NEG_INFINITY
        );
        // far beyond f64
        assert_eq!(
            numeric_to_f64(&numeric(100, NUMERIC_POS, 0, &[9999])).unwrap(),
            f64::INFINITY
        );
    }

    #[test]
    fn damaged_numerics_are_errors_without_values() {
        assert!(numeric_to_f64(&[0, 1]).is_err());
        let mut short = numeric(0, 0, 0, &[1, 2]);
        short.pop();
        let err = numeric_to_f64(&short).unwrap_err().to_string();
        assert!(err.contains("header announces"), "{err}");
        assert!(numeric_to_f64(&numeric(0, 0x1234, 0, &[1])).is_err());
        assert!(numeric_to_f64(&numeric(0, 0, 0, &[10000])).is_err());
    }

    #[test]
    fn types_by_role() {
        for t in [Type::TEXT, Type::VARCHAR, Type::INT4, Type::BOOL] {
            assert!(label_type_ok(&t), "{t}");
        }
        for t in [Type::FLOAT8, Type::TIMESTAMPTZ, Type::JSONB, Type::NUMERIC] {
            assert!(!label_type_ok(&t), "{t}");
        }
        for t in [Type::INT2, Type::INT8, Type::FLOAT4, Type::NUMERIC] {
            assert!(feature_type_ok(&t), "{t}");
        }
        for t in [Type::TEXT, Type::BOOL, Type::TIMESTAMP, Type::FLOAT8_ARRAY] {
            assert!(!feature_type_ok(&t), "{t}");
        }
        let label = Label::from_sql(&Type::BOOL, &[1]).unwrap();
        assert_eq!(label.0, "true");
        let label = Label::from_sql(&Type::INT8, &(-42i64).to_be_bytes()).unwrap();
        assert_eq!(label.0, "-42");
        let feature = Feature::from_sql(&Type::FLOAT4, &1.5f32.to_be_bytes()).unwrap();
        assert_eq!(feature.0, 1.5);
    }
}
