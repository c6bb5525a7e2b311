//! The contract between flywheel's services: every event that crosses a topic.
//! Collectors publish [`Sample`]s (Avro or JSON); ingest stores them, rejects bad ones as
//! [`RejectedSample`]s and records [`Changeset`]s; the supervisor, driven by [`PipelineSpec`]s,
//! emits [`TrainingSet`]s; trainers publish [`ModelRelease`]s. Each event has an Avro schema in
//! `avro/` (old versions in `avro/history/`), sent single-object encoded: [`encode`], [`decode`].

mod body;
mod codec;
pub mod duration_text;
mod events;
#[cfg(test)]
mod evolution_tests;
mod registry;
mod reject;
mod sample;
mod timestamp;
pub mod varint;

pub use apache_avro::Schema;
pub use body::{
    BODY_VERSION, Body, BodyContent, BodyError, BodyView, RawFeatures, body_len, read_body,
    read_body_view, write_body,
};
pub use codec::{MARKER, SchemaError, decode, encode, peek_fingerprint};
pub use events::{
    Changeset, ChangesetKind, Event, ModelRelease, PipelineAction, PipelineSpec, RejectedSample,
    RestrictedQuery, Sample, SourceRange, TrainingSet,
};
pub use registry::{
    EventSchemas, SchemaVersion, catalogue, event_schemas, find_fingerprint, fingerprint,
};
pub use reject::{RejectReason, SampleError, UnknownRejectReason};
pub use sample::{
    MAX_DATASET_LEN, check_dataset_name, decode_sample, parse_sample_json, sample_to_json,
    validate_sample,
};
pub use timestamp::{
    TimestampError, datetime_from_micros, format_rfc3339, micros_from_datetime, now_micros,
    parse_rfc3339,
};
