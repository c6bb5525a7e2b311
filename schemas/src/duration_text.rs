//! Durations written as humantime text in configuration files and documents (`"500ms"`,
//! `"1h 30m"`): for `#[serde(with = "flywheel_schemas::duration_text")]`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de::Error};

/// Writes a duration as humantime text.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// Reads a duration from humantime text; the error quotes the text.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        D::Error::custom(format!(
            "{text:?} is not a duration like 90s or 1h 30m ({e})"
        ))
    })
}
