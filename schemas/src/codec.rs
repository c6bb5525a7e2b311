//! Avro single-object encoding: `C3 01`, the writer schema's 8-byte little-endian Rabin
//! fingerprint, then the Avro binary datum.

use apache_avro::{
    Schema, from_value, reader::datum::GenericDatumReader, to_value,
    writer::datum::GenericDatumWriter,
};

use serde::de::DeserializeOwned;

use crate::{events::Event, registry::EventSchemas};

/// The two marker bytes that open a single-object encoded message.
pub const MARKER: [u8; 2] = [0xC3, 0x01];

const HEADER_LEN: usize = 10;

/// Longest part of an Avro error message quoted in a [`SchemaError`].
const MAX_REASON: usize = 200;

/// Why bytes could not be decoded as an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// Too short, or not opened by the `C3 01` marker.
    #[error("{event}: not avro single-object encoded: {reason}")]
    NotSingleObject { event: &'static str, reason: String },
    /// The fingerprint names no known schema.
    #[error("{event}: unknown writer schema fingerprint {fingerprint:#018x}")]
    UnknownFingerprint {
        event: &'static str,
        fingerprint: u64,
    },
    /// The fingerprint names a schema of another event.
    #[error(
        "{event}: writer schema fingerprint {fingerprint:#018x} is a {actual} schema, not {event}"
    )]
    WrongEvent {
        event: &'static str,
        actual: &'static str,
        fingerprint: u64,
    },
    /// The datum does not decode with its writer schema, or does not resolve to the current one.
    #[error("{event}: datum does not match its schema: {reason}")]
    Datum { event: &'static str, reason: String },
    /// Bytes were left after the datum.
    #[error("{event}: {count} trailing bytes after the datum")]
    TrailingBytes { event: &'static str, count: usize },
}

/// Encode `e` with the current schema of its event, as a single-object encoded message.
///
/// # Panics
/// Only if the Rust type and its embedded schema disagree, which this crate's tests rule out
/// for every value of every event.
pub fn encode<E: Event>(e: &E) -> Vec<u8> {
    let schemas = E::schemas();
    let datum = to_value(e)
        .and_then(|v| v.resolve(&schemas.current))
        .and_then(|v| {
            GenericDatumWriter::builder(&schemas.current)
                .build()?
                .write_value_to_vec(v)
        })
        .unwrap_or_else(|err| {
            panic!(
                "{}: struct does not match its schema: {}",
                E::NAME,
                short(&err)
            )
        });
    let mut out = Vec::with_capacity(HEADER_LEN + datum.len());
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&schemas.fingerprint.to_le_bytes());
    out.extend_from_slice(&datum);
    out
}

/// The writer-schema fingerprint of a single-object encoded message, if it has the marker.
pub fn peek_fingerprint(bytes: &[u8]) -> Option<u64> {
    let header = bytes.get(..HEADER_LEN)?;
    if header[..2] != MARKER {
        return None;
    }
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&header[2..]);
    Some(u64::from_le_bytes(fp))
}

/// Decode a single-object encoded message written with any known version of `E`'s schema,
/// resolved to the current one.
pub fn decode<E: Event>(bytes: &[u8]) -> Result<E, SchemaError> {
    decode_with(bytes, E::schemas())
}

/// [`decode`] against an explicit set of schemas (tests simulate evolution with it).
pub(crate) fn decode_with<E: DeserializeOwned>(
    bytes: &[u8],
    schemas: &EventSchemas,
) -> Result<E, SchemaError> {
    let event = schemas.name;
    if bytes.len() < HEADER_LEN {
        let reason = format!("{} bytes, a header needs {HEADER_LEN}", bytes.len());
        return Err(SchemaError::NotSingleObject { event, reason });
    }
    let Some(fingerprint) = peek_fingerprint(bytes) else {
        let reason = format!("marker {:02x} {:02x}, expected c3 01", bytes[0], bytes[1]);
        return Err(SchemaError::NotSingleObject { event, reason });
    };
    let Some(writer) = schemas.find(fingerprint) else {
        return Err(match crate::registry::find_fingerprint(fingerprint) {
            Some(other) => SchemaError::WrongEvent {
                event,
                actual: other.name,
                fingerprint,
            },
            None => SchemaError::UnknownFingerprint { event, fingerprint },
        });
    };
    let reader_schema = (fingerprint != schemas.fingerprint).then_some(&schemas.current);
    let datum_err = |err: apache_avro::Error| SchemaError::Datum {
        event,
        reason: short(&err),
    };
    let mut rest = &bytes[HEADER_LEN..];
    let value = read_value(writer, reader_schema, &mut rest).map_err(datum_err)?;
    if !rest.is_empty() {
        return Err(SchemaError::TrailingBytes {
            event,
            count: rest.len(),
        });
    }
    from_value::<E>(&value).map_err(datum_err)
}

fn read_value(
    writer: &Schema,
    reader: Option<&Schema>,
    bytes: &mut &[u8],
) -> Result<apache_avro::types::Value, apache_avro::Error> {
    GenericDatumReader::builder(writer)
        .maybe_reader_schema(reader)
        .build()?
        .read_value(bytes)
}

/// An Avro error as one bounded line (some quote whole values or schemas).
fn short(err: &apache_avro::Error) -> String {
    let mut text = err.to_string().replace('\n', " ");
    // Our messages are lowercase; Avro's start with a capital ("Failed to read ...").
    let mut chars = text.chars();
    if let (Some(first), Some(second)) = (chars.next(), chars.next())
        && first.is_ascii_uppercase()
        && second.is_ascii_lowercase()
    {
        text.replace_range(..1, &first.to_ascii_lowercase().to_string());
    }
    if text.chars().count() <= MAX_REASON {
        return text;
    }
    let cut: String = text.chars().take(MAX_REASON).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use apache_avro::headers::{HeaderBuilder, RabinFingerprintHeader};

    use super::*;
    use crate::events::{PipelineAction, PipelineSpec};

    fn spec() -> PipelineSpec {
        PipelineSpec {
            tenant: "acme".into(),
            pipeline: "mnist".into(),
            action: PipelineAction::Submit,
            document: Some("[dataset]\nname = \"digits\"\n".into()),
            submitted_at: 1_795_255_200_000_000,
            submitted_by: None,
        }
    }

    #[test]
    fn header_is_marker_then_little_endian_fingerprint() {
        let bytes = encode(&spec());
        let header = RabinFingerprintHeader::from_schema(PipelineSpec::schema()).build_header();
        assert_eq!(bytes[..HEADER_LEN], header[..]);
        assert_eq!(
            peek_fingerprint(&bytes),
            Some(PipelineSpec::schemas().fingerprint)
        );
        assert_eq!(decode::<PipelineSpec>(&bytes), Ok(spec()));
    }

    #[test]
    fn peek_needs_marker_and_ten_bytes() {
        assert_eq!(peek_fingerprint(&[0xC3, 0x01, 0, 0]), None);
        assert_eq!(
            peek_fingerprint(&[0xC3, 0x02, 0, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
        assert_eq!(
            peek_fingerprint(&[0xC3, 0x01, 1, 0, 0, 0, 0, 0, 0, 0]),
            Some(1)
        );
    }

    #[test]
    fn long_avro_errors_are_cut_to_one_bounded_line() {
        let err: apache_avro::Error =
            apache_avro::Error::new(apache_avro::error::Details::GetField("x\n".repeat(300)));
        let text = short(&err);
        assert!(text.starts_with("missing field in record"), "{text}");
        assert!(!text.contains('\n'));
        assert!(text.chars().count() <= MAX_REASON + 3);
    }
}
