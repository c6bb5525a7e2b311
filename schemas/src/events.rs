//! Typed events, one struct per Avro schema, with identical field names.
//!
//! Times are `i64` microseconds since the Unix epoch (Avro `timestamp-micros`); see
//! [`crate::format_rfc3339`] and friends.

use std::collections::BTreeMap;

use apache_avro::Schema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::registry::{self, EventSchemas};

/// An event that travels on a topic, with its Avro schemas.
pub trait Event: Serialize + DeserializeOwned {
    /// The event (and Avro record) name, e.g. `Sample`.
    const NAME: &'static str;

    /// The current schema and every released version.
    fn schemas() -> &'static EventSchemas;

    /// The current parsed schema: what [`crate::encode`] writes.
    fn schema() -> &'static Schema {
        &Self::schemas().current
    }
}

macro_rules! impl_event {
    ($ty:ident, $static:ident) => {
        impl Event for $ty {
            const NAME: &'static str = stringify!($ty);

            fn schemas() -> &'static EventSchemas {
                &registry::$static
            }
        }
    };
}

/// One training example (topic `flywheel.{tenant}.samples`; the tenant is the topic's).
///
/// It carries features, a payload or a blob (at least one; see [`crate::validate_sample`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Dataset name: 1 to 128 characters of `[A-Za-z0-9_.-]`.
    pub dataset: String,
    /// Numeric features (used for drift detection).
    #[serde(default)]
    pub features: Vec<f64>,
    /// Inline raw bytes, e.g. an image.
    #[serde(default, with = "apache_avro::serde::bytes_opt")]
    pub payload: Option<Vec<u8>>,
    /// URI of an object already in the blob store.
    #[serde(default)]
    pub blob: Option<String>,
    /// The label; `None` when it arrives later as a relabel changeset.
    #[serde(default)]
    pub label: Option<String>,
    /// When the sample was observed, microseconds since the Unix epoch.
    pub event_time: i64,
    /// Identifier of the collector that produced it.
    #[serde(default)]
    pub producer: Option<String>,
}
impl_event!(Sample, SAMPLE);

/// A message ingest refused (topic `flywheel.{tenant}.samples.rejected`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedSample {
    pub tenant: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    /// A [`crate::RejectReason`] code, e.g. `schema_violation`.
    pub reason: String,
    /// Human-readable explanation.
    pub detail: String,
    /// The original message bytes, unchanged.
    #[serde(with = "apache_avro::serde::bytes")]
    pub original: Vec<u8>,
    /// Microseconds since the Unix epoch.
    pub rejected_at: i64,
}
impl_event!(RejectedSample, REJECTED_SAMPLE);

/// What a changeset does to its dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangesetKind {
    Add,
    Remove,
    Relabel,
    Revert,
    Query,
}

/// A query against a restricted source, run at training time; its rows are never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestrictedQuery {
    pub source: String,
    pub sql: String,
    #[serde(default)]
    pub label_column: Option<String>,
    #[serde(default)]
    pub feature_columns: Vec<String>,
}

/// An inclusive range of offsets of one topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRange {
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// Changeset `id` of a dataset (topic `flywheel.{tenant}.changesets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changeset {
    pub tenant: String,
    pub dataset: String,
    /// 1, 2, ... N per dataset, without gaps.
    pub id: i64,
    pub kind: ChangesetKind,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
    pub sample_count: i64,
    pub bytes: i64,
    /// For a revert: the changeset it undoes.
    #[serde(default)]
    pub reverts: Option<i64>,
    /// For a query changeset: the restricted query.
    #[serde(default)]
    pub query: Option<RestrictedQuery>,
    /// The source offsets this changeset covers.
    #[serde(default)]
    pub sources: Vec<SourceRange>,
    /// Object URIs of the payload segments it wrote.
    #[serde(default)]
    pub segments: Vec<String>,
}
impl_event!(Changeset, CHANGESET);

/// What a [`PipelineSpec`] asks of the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipelineAction {
    Submit,
    Stop,
}

/// Control message (topic `flywheel.{tenant}.pipelines`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineSpec {
    pub tenant: String,
    pub pipeline: String,
    pub action: PipelineAction,
    /// The pipeline TOML document; present for submit.
    #[serde(default)]
    pub document: Option<String>,
    /// Microseconds since the Unix epoch.
    pub submitted_at: i64,
    #[serde(default)]
    pub submitted_by: Option<String>,
}
impl_event!(PipelineSpec, PIPELINE_SPEC);

/// A training set emitted when a trigger fires (topic `flywheel.{tenant}.trainsets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingSet {
    pub tenant: String,
    pub pipeline: String,
    pub trigger_id: i64,
    pub dataset: String,
    /// The training-set version: a hash of its query.
    pub version: String,
    pub head_changeset: i64,
    pub manifest_uri: String,
    pub sample_count: i64,
    pub trigger_reason: String,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
}
impl_event!(TrainingSet, TRAINING_SET);

/// A trained model (topic `flywheel.{tenant}.models`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRelease {
    pub tenant: String,
    pub pipeline: String,
    pub trigger_id: i64,
    pub model_id: String,
    pub model_uri: String,
    pub trainset_version: String,
    #[serde(default)]
    pub parent_model: Option<String>,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
}
impl_event!(ModelRelease, MODEL_RELEASE);
