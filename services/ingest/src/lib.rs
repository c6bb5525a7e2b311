//! flywheel's ingest service: samples in; replay-stable keys, payload segments and
//! changesets out, effectively once.
//!
//! It consumes `flywheel.*.samples` of every tenant (Avro or JSON samples), refuses bad
//! ones to `flywheel.{tenant}.samples.rejected` with their original bytes and a reason, and
//! groups the rest per dataset into open changesets. A changeset closes by count, bytes or
//! age ([`IngestConfig`]); its inline payloads and features are packed into a few segment
//! objects named from the source range it covers, then the changeset is committed to the
//! metadata store with its index rows and source offsets in one step, and announced on
//! `flywheel.{tenant}.changesets`. See docs/architecture.md, "Ingest".

mod build;
mod config;
mod metrics;
mod service;

use flywheel_store::StoreError;
use flywheel_topics::BusError;

pub use build::{ingest_consumer, key_source, sample_key};
pub use config::IngestConfig;
pub use metrics::IngestMetrics;
pub use service::Ingest;

/// Why ingest stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A setting is out of range.
    #[error("invalid setting {setting}: {reason}")]
    Config {
        /// The setting, e.g. `ingest.changeset_samples`.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// The bus failed beyond retrying.
    #[error("ingest: {0}")]
    Bus(#[from] BusError),
    /// The metadata store failed beyond retrying, or refused a changeset.
    #[error("ingest: {0}")]
    Store(#[from] StoreError),
    /// A payload segment could not be written.
    #[error("ingest: writing the payload segment {path}: {source}")]
    Blob {
        /// The object path.
        path: String,
        /// What the object store said.
        source: object_store::Error,
    },
    /// A source position too large for a key (more than 65 535 partitions or 2^48
    /// offsets).
    #[error(
        "ingest: {topic}[{partition}] offset {offset} is beyond the key space (partitions < 65536, offsets < 2^48)"
    )]
    KeySpace {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset.
        offset: i64,
    },
    /// A commit task panicked or was cancelled.
    #[error("ingest: a changeset commit task failed: {0}")]
    Task(String),
    /// Another writer kept moving a dataset's head.
    #[error("ingest: dataset {dataset:?} changed under every one of {attempts} commit attempts")]
    Contended {
        /// The dataset.
        dataset: String,
        /// Attempts made.
        attempts: u32,
    },
}
