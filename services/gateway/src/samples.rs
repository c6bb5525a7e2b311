//! `POST /api/v1/samples`: collectors without Kafka. The body is JSON lines (one sample per
//! line, the form of DESIGN.md section 5) or an Avro object container file of `Sample`
//! records; every sample is checked, and only a body that is valid throughout is published
//! to the caller's samples topic, keyed by dataset. The answer comes once the bus has
//! acknowledged every sample, with the key ingest gives each (for later edits of them).

use apache_avro::Reader;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flywheel_schemas::{Event, Sample, SampleError, decode_sample, encode, parse_sample_json};
use flywheel_topics::{Record, TopicKind};
use serde::Serialize;

use crate::{AppState, Caller, api_error};

/// Refusals listed in one answer; a body with more says how many there were.
const MAX_LISTED: usize = 20;

/// The body formats the endpoint reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON sample per line.
    JsonLines,
    /// An Avro object container file of `Sample` records.
    AvroFile,
}

impl BodyFormat {
    /// The format a `Content-Type` names; `None` for one the endpoint does not read.
    pub fn from_content_type(value: Option<&str>) -> Option<Self> {
        let essence = value
            .unwrap_or("application/x-ndjson")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-ndjson"
            | "application/jsonl"
            | "application/json-lines"
            | "application/json"
            | "text/plain" => Some(Self::JsonLines),
            "application/avro" | "avro/binary" | "application/vnd.apache.avro+binary" => {
                Some(Self::AvroFile)
            }
            _ => None,
        }
    }

    /// The `Content-Type` to send.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::JsonLines => "application/x-ndjson",
            Self::AvroFile => "application/avro",
        }
    }
}

/// One refused sample of a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// Its line (JSON lines) or record number (Avro), from 1.
    pub line: usize,
    /// The reason code (`flywheel_schemas::RejectReason`).
    pub reason: String,
    /// What exactly was wrong.
    pub detail: String,
}

/// Reads a body into the records to publish (the original line for JSON, the sample
/// single-object encoded for Avro), or every refusal.
pub fn parse_body(format: BodyFormat, body: &[u8]) -> Result<Vec<Record>, Vec<Refused>> {
    let mut records = Vec::new();
    let mut refused = Vec::new();
    let mut take = |line: usize, result: Result<(Sample, Vec<u8>), SampleError>| match result {
        Ok((sample, value)) => records.push(Record::keyed(sample.dataset.into_bytes(), value)),
        Err(e) => refused.push(Refused {
            line,
            reason: e.reason.as_str().to_owned(),
            detail: e.detail,
        }),
    };
    match format {
        BodyFormat::JsonLines => {
            for (i, line) in body.split(|b| *b == b'\n').enumerate() {
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                take(i + 1, parse_sample_json(line).map(|s| (s, line.to_vec())));
            }
        }
        BodyFormat::AvroFile => match Reader::builder(body)
            .reader_schema(<Sample as Event>::schema())
            .build()
        {
            Err(e) => take(0, Err(not_avro(&e))),
            Ok(reader) => {
                for (i, value) in reader.enumerate() {
                    let sample = value
                        .map_err(|e| not_avro(&e))
                        .and_then(|v| {
                            apache_avro::from_value::<Sample>(&v).map_err(|e| {
                                SampleError::new(
                                    flywheel_schemas::RejectReason::SchemaViolation,
                                    e.to_string(),
                                )
                            })
                        })
                        .and_then(|s| {
                            let bytes = encode(&s);
                            decode_sample(&bytes).map(|s| (s, bytes))
                        });
                    take(i + 1, sample);
                }
            }
        },
    }
    if refused.is_empty() {
        Ok(records)
    } else {
        Err(refused)
    }
}

fn not_avro(e: &apache_avro::Error) -> SampleError {
    SampleError::new(
        flywheel_schemas::RejectReason::NotAvroOrJson,
        format!("not an Avro object container file of samples: {e}"),
    )
}

pub(crate) async fn post_samples(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Some(format) = BodyFormat::from_content_type(content_type) else {
        return api_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!(
                "content type {:?} is not one of application/x-ndjson (JSON lines) or application/avro (an Avro object container file)",
                content_type.unwrap_or_default()
            ),
        );
    };
    let records = match parse_body(format, &body) {
        Ok(r) if r.is_empty() => {
            return api_error(StatusCode::BAD_REQUEST, "the body has no samples");
        }
        Ok(r) => r,
        Err(refused) => {
            let n = refused.len();
            let listed: Vec<Refused> = refused.into_iter().take(MAX_LISTED).collect();
            let first = &listed[0];
            let message = format!(
                "{n} invalid sample(s), nothing was published; first at {} {}: {}: {}",
                if format == BodyFormat::JsonLines {
                    "line"
                } else {
                    "record"
                },
                first.line,
                first.reason,
                first.detail
            );
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({ "error": message, "refused": listed })),
            )
                .into_response();
        }
    };
    let n = records.len();
    let topic = TopicKind::Samples.topic(&caller.tenant);
    match state.backends.bus.produce(&topic, records).await {
        Ok(acks) => {
            // the keys ingest gives the samples (their place on the topic), in body order:
            // what a later edit of them (a late label, a removal) names them by
            // (null for a place beyond what a key can name: the list stays in body order)
            let keys: Vec<Option<u64>> = acks
                .iter()
                .map(|a| flywheel_ingest::sample_key(a.partition, a.offset))
                .collect();
            axum::Json(serde_json::json!({ "published": n, "topic": topic, "keys": keys }))
                .into_response()
        }
        Err(e) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "publishing to {topic}: {e} (some samples may have been published; nothing was acknowledged)"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        use BodyFormat::*;
        assert_eq!(BodyFormat::from_content_type(None), Some(JsonLines));
        assert_eq!(
            BodyFormat::from_content_type(Some("application/x-ndjson; charset=utf-8")),
            Some(JsonLines)
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("Application/Avro")),
            Some(AvroFile)
        );
        assert_eq!(BodyFormat::from_content_type(Some("image/png")), None);
    }

    #[test]
    fn json_lines_are_checked_line_by_line() {
        let body = b"{\"dataset\":\"s\",\"features\":[1],\"event_time\":\"2026-11-21T10:00:00Z\"}\n\n  {\"dataset\":\"s\",\"features\":[2],\"event_time\":\"2026-11-21T10:00:01Z\"}  \n";
        let records = parse_body(BodyFormat::JsonLines, body).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key.as_deref(), Some(&b"s"[..]));
        assert!(records[1].value.starts_with(b"{\"dataset\""));

        let bad = b"{\"dataset\":\"s\",\"features\":[1],\"event_time\":\"2026-11-21T10:00:00Z\"}\nnot json\n{\"dataset\":\"s\",\"features\":[1],\"label\":3,\"event_time\":\"2026-11-21T10:00:00Z\"}";
        let refused = parse_body(BodyFormat::JsonLines, bad).unwrap_err();
        assert_eq!(
            refused
                .iter()
                .map(|r| (r.line, r.reason.as_str()))
                .collect::<Vec<_>>(),
            vec![(2, "not_avro_or_json"), (3, "label_type")]
        );
    }

    #[test]
    fn avro_files_are_read_and_garbage_refused() {
        let sample = Sample {
            dataset: "s".into(),
            features: vec![1.0],
            payload: None,
            blob: None,
            label: None,
            event_time: 5,
            producer: None,
        };
        let mut writer = apache_avro::Writer::new(<Sample as Event>::schema(), Vec::new()).unwrap();
        for _ in 0..3 {
            writer.append_ser(&sample).unwrap();
        }
        let file = writer.into_inner().unwrap();
        let records = parse_body(BodyFormat::AvroFile, &file).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(
            flywheel_schemas::decode::<Sample>(&records[0].value).unwrap(),
            sample
        );

        let refused = parse_body(BodyFormat::AvroFile, b"Obj\x01garbage").unwrap_err();
        assert_eq!(refused[0].reason, "not_avro_or_json");
        let cut = parse_body(BodyFormat::AvroFile, &file[..file.len() - 3]);
        assert!(cut.is_err(), "a truncated file is refused");
    }
}
