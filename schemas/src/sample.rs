//! Samples as collectors send them: Avro single-object encoded, or one JSON object per line
//! (`{"dataset":"sensors","features":[0.1],"label":"1","event_time":"2026-11-21T10:00:00Z"}`
//! with optional `payload_b64`, `blob` and `producer`). Both forms pass the same validation.

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use serde_json::{Map, Value};

use crate::{
    codec::{MARKER, SchemaError, decode},
    events::Sample,
    reject::{RejectReason, SampleError},
    timestamp::{format_rfc3339, parse_rfc3339},
};

/// Longest dataset name, in characters.
pub const MAX_DATASET_LEN: usize = 128;

/// Longest piece of untrusted input quoted in an error.
const QUOTE: usize = 64;

/// Decode a sample in either form: Avro single-object encoding (opens with `C3 01`) or a JSON
/// object (first non-whitespace byte `{`), then [`validate_sample`] it.
pub fn decode_sample(bytes: &[u8]) -> Result<Sample, SampleError> {
    if bytes.starts_with(&MARKER) {
        let sample = decode::<Sample>(bytes).map_err(|e| {
            let reason = match e {
                SchemaError::NotSingleObject { .. } => RejectReason::NotAvroOrJson,
                _ => RejectReason::SchemaViolation,
            };
            SampleError::new(reason, e.to_string())
        })?;
        validate_sample(&sample)?;
        return Ok(sample);
    }
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => parse_sample_json(bytes),
        Some(_) => Err(SampleError::new(
            RejectReason::NotAvroOrJson,
            "expected avro single-object encoding (c3 01) or a JSON object",
        )),
        None => Err(SampleError::new(
            RejectReason::NotAvroOrJson,
            "empty message",
        )),
    }
}

/// Parse and validate one JSON sample (one line of `flywheel produce` or the HTTP ingest).
pub fn parse_sample_json(line: &[u8]) -> Result<Sample, SampleError> {
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        SampleError::new(RejectReason::NotAvroOrJson, format!("not valid JSON: {e}"))
    })?;
    let Value::Object(map) = value else {
        return Err(SampleError::schema(format!(
            "a sample is a JSON object, not {}",
            kind(&value)
        )));
    };
    let sample = sample_from_map(&map)?;
    validate_sample(&sample)?;
    Ok(sample)
}

fn sample_from_map(map: &Map<String, Value>) -> Result<Sample, SampleError> {
    let mut sample = Sample {
        dataset: String::new(),
        features: Vec::new(),
        payload: None,
        blob: None,
        label: None,
        event_time: 0,
        producer: None,
    };
    let (mut dataset, mut event_time) = (None, None);
    for (key, value) in map {
        match key.as_str() {
            "dataset" => match value {
                Value::String(s) => dataset = Some(s.clone()),
                _ => return Err(SampleError::schema(must_be("dataset", "a string", value))),
            },
            "features" => sample.features = features(value)?,
            "payload_b64" => {
                sample.payload = optional_string("payload_b64", value)?
                    .map(|b64| BASE64.decode(b64))
                    .transpose()
                    .map_err(|e| {
                        SampleError::schema(format!("payload_b64 is not valid base64: {e}"))
                    })?;
            }
            "blob" => sample.blob = optional_string("blob", value)?.map(str::to_owned),
            "producer" => sample.producer = optional_string("producer", value)?.map(str::to_owned),
            "label" => {
                sample.label = match value {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    _ => {
                        let detail = must_be("label", "a string or null", value);
                        return Err(SampleError::new(RejectReason::LabelType, detail));
                    }
                }
            }
            "event_time" => event_time = Some(value),
            other => {
                let name: String = other.chars().take(QUOTE).collect();
                return Err(SampleError::schema(format!("unknown field `{name}`")));
            }
        }
    }
    sample.dataset = dataset.ok_or_else(|| SampleError::schema("missing field `dataset`"))?;
    sample.event_time = match event_time {
        None => return Err(bad_time("missing field `event_time`".to_owned())),
        Some(Value::String(s)) => {
            parse_rfc3339(s).map_err(|e| bad_time(format!("event_time {e}")))?
        }
        Some(v) => return Err(bad_time(must_be("event_time", "an RFC 3339 string", v))),
    };
    Ok(sample)
}

fn features(value: &Value) -> Result<Vec<f64>, SampleError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => {
            let detail = must_be("features", "an array of numbers", value);
            return Err(SampleError::schema(detail));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_f64().ok_or_else(|| {
                SampleError::schema(must_be(&format!("features[{i}]"), "a number", item))
            })
        })
        .collect()
}

fn optional_string<'a>(field: &str, value: &'a Value) -> Result<Option<&'a str>, SampleError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(SampleError::schema(must_be(
            field,
            "a string or null",
            value,
        ))),
    }
}

fn bad_time(detail: String) -> SampleError {
    SampleError::new(RejectReason::BadEventTime, detail)
}

fn must_be(field: &str, expected: &str, got: &Value) -> String {
    format!("{field} must be {expected}, not {}", kind(got))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Check a dataset name: 1 to [`MAX_DATASET_LEN`] characters of `[A-Za-z0-9_.-]`.
pub fn check_dataset_name(name: &str) -> Result<(), SampleError> {
    if name.is_empty() {
        return Err(SampleError::schema("dataset is empty"));
    }
    let len = name.chars().count();
    if len > MAX_DATASET_LEN {
        return Err(SampleError::schema(format!(
            "dataset is {len} characters long, at most {MAX_DATASET_LEN} are allowed"
        )));
    }
    if let Some((i, c)) = name
        .chars()
        .enumerate()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(SampleError::schema(format!(
            "dataset has `{}` at character {i}; allowed are A-Z a-z 0-9 _ . -",
            c.escape_default()
        )));
    }
    Ok(())
}

/// The rules every sample obeys, whatever form it arrived in: a valid dataset name, finite
/// features, a payload or a blob (at least one; not both a payload and a blob; a
/// payload or blob that is present is not empty), and an event time within years 0000-9999.
pub fn validate_sample(sample: &Sample) -> Result<(), SampleError> {
    check_dataset_name(&sample.dataset)?;
    if let Some(i) = sample.features.iter().position(|f| !f.is_finite()) {
        return Err(SampleError::schema(format!(
            "features[{i}] is not a finite number"
        )));
    }
    if sample.payload.as_ref().is_some_and(Vec::is_empty) {
        return Err(SampleError::schema("payload is empty"));
    }
    if sample.blob.as_ref().is_some_and(String::is_empty) {
        return Err(SampleError::schema("blob is empty"));
    }
    if sample.payload.is_some() && sample.blob.is_some() {
        return Err(SampleError::schema(
            "a sample carries a payload or a blob, not both",
        ));
    }
    if sample.features.is_empty() && sample.payload.is_none() && sample.blob.is_none() {
        return Err(SampleError::schema(
            "a sample needs features, a payload or a blob",
        ));
    }
    format_rfc3339(sample.event_time).map_err(|e| bad_time(format!("event_time: {e}")))?;
    Ok(())
}

/// The JSON form of a sample, which [`parse_sample_json`] reads back: `event_time` as RFC 3339
/// with `Z`, the payload as standard base64 in `payload_b64`, absent optional fields omitted.
///
/// Values no valid sample has are written so that parsing them back fails: a non-finite
/// feature as `null`, an event time beyond RFC 3339's years as its number of microseconds.
pub fn sample_to_json(sample: &Sample) -> Value {
    let mut map = Map::new();
    map.insert("dataset".into(), sample.dataset.clone().into());
    let features = sample
        .features
        .iter()
        .map(|&f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number))
        .collect();
    map.insert("features".into(), Value::Array(features));
    if let Some(payload) = &sample.payload {
        map.insert("payload_b64".into(), BASE64.encode(payload).into());
    }
    if let Some(blob) = &sample.blob {
        map.insert("blob".into(), blob.clone().into());
    }
    if let Some(label) = &sample.label {
        map.insert("label".into(), label.clone().into());
    }
    let event_time =
        format_rfc3339(sample.event_time).map_or_else(|_| sample.event_time.into(), Value::String);
    map.insert("event_time".into(), event_time);
    if let Some(producer) = &sample.producer {
        map.insert("producer".into(), producer.clone().into());
    }
    Value::Object(map)
}
