//! Event times: `i64` microseconds since the Unix epoch (Avro `timestamp-micros`).

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Why a time could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// The instant is outside the years 0000 to 9999 that RFC 3339 can express.
    #[error("timestamp {micros} µs since the epoch is outside years 0000-9999")]
    OutOfRange { micros: i64 },
    /// The text is not an RFC 3339 date-time.
    #[error("`{input}` is not an RFC 3339 date-time: {reason}")]
    Parse { input: String, reason: String },
}

/// Microseconds since the Unix epoch of `t` (sub-microsecond digits are dropped, rounding
/// toward the past).
pub fn micros_from_datetime(t: OffsetDateTime) -> i64 {
    // |nanos| < 2.6e20 for years -9999..=9999, so the quotient always fits an i64.
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1000)).unwrap_or(i64::MAX)
}

/// The UTC instant `micros` microseconds after the Unix epoch.
pub fn datetime_from_micros(micros: i64) -> Result<OffsetDateTime, TimestampError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .map_err(|_| TimestampError::OutOfRange { micros })
}

/// RFC 3339 in UTC with a `Z`, fractional seconds only when non-zero:
/// `2026-11-21T10:00:00Z`, `2026-11-21T10:00:00.25Z`.
pub fn format_rfc3339(micros: i64) -> Result<String, TimestampError> {
    datetime_from_micros(micros)?
        .format(&Rfc3339)
        .map_err(|_| TimestampError::OutOfRange { micros })
}

/// Parse an RFC 3339 date-time (any offset) to microseconds since the Unix epoch.
pub fn parse_rfc3339(input: &str) -> Result<i64, TimestampError> {
    OffsetDateTime::parse(input, &Rfc3339)
        .map(micros_from_datetime)
        .map_err(|e| TimestampError::Parse {
            input: input.chars().take(64).collect(),
            reason: e.to_string(),
        })
}

/// The current time in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    micros_from_datetime(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_z_and_round_trips() {
        let t = parse_rfc3339("2026-11-21T10:00:00Z").unwrap();
        assert_eq!(t, 1_795_255_200_000_000);
        assert_eq!(format_rfc3339(t).unwrap(), "2026-11-21T10:00:00Z");
        assert_eq!(
            format_rfc3339(t + 250_000).unwrap(),
            "2026-11-21T10:00:00.25Z"
        );
        assert_eq!(format_rfc3339(-1).unwrap(), "1969-12-31T23:59:59.999999Z");
        assert_eq!(parse_rfc3339("2026-11-21T11:00:00+01:00").unwrap(), t);
    }

    #[test]
    fn converts_to_and_from_offset_datetime() {
        let now = now_micros();
        assert_eq!(
            micros_from_datetime(datetime_from_micros(now).unwrap()),
            now
        );
        assert_eq!(micros_from_datetime(OffsetDateTime::UNIX_EPOCH), 0);
    }

    #[test]
    fn out_of_range_and_garbage_are_errors() {
        assert_eq!(
            format_rfc3339(i64::MAX),
            Err(TimestampError::OutOfRange { micros: i64::MAX })
        );
        let err = parse_rfc3339("yesterday").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`yesterday` is not an RFC 3339"),
            "{err}"
        );
        assert!(parse_rfc3339("2026-11-21 10:00:00").is_err());
    }
}
