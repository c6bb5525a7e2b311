//! flywheel's supervisor: runs the tenants' pipelines (Modyn's supervisor and selector,
//! streaming on flywheel's topics).
//!
//! For each pipeline it folds the dataset's changesets, in order, through the pipeline's
//! trigger and selection policies ([`runner`]). When a trigger fires, the policy's choice
//! (keys and weights) is written as a key list and prepared as a versioned training set,
//! and a `TrainingSet` event is published on `flywheel.{tenant}.trainsets`. Pipelines and
//! changesets are read from the metadata store; their topics only wake the supervisor up.
//!
//! Every trigger is emitted once, across crashes: the fold is deterministic and restarts
//! from a checkpoint, and an event is recorded as pending (with the topic's end offset)
//! before it is published, so a restarted supervisor looks for it on the topic before it
//! publishes it again. See docs/architecture.md, "Supervisor".

mod config;
mod events;
mod input;
mod metrics;
pub mod runner;
mod service;
pub mod state;

use flywheel_store::StoreError;
use flywheel_topics::BusError;
use flywheel_trainset::TrainsetError;

pub use config::SupervisorConfig;
pub use events::{pipeline_events, pipeline_releases};
pub use input::read_input;
pub use metrics::SupervisorMetrics;
pub use service::Supervisor;

/// What went wrong in the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A setting is out of range.
    #[error("invalid setting {setting}: {reason}")]
    Config {
        /// The setting, e.g. `supervisor.rescan`.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// The bus failed.
    #[error("supervisor: {0}")]
    Bus(#[from] BusError),
    /// The metadata store failed.
    #[error("supervisor: {0}")]
    Store(#[from] StoreError),
    /// A training set could not be prepared.
    #[error("supervisor: {0}")]
    Trainset(#[from] TrainsetError),
    /// The blob store failed.
    #[error("supervisor: {what}: {source}")]
    Blobs {
        /// What was read or written.
        what: String,
        /// What the object store said.
        source: object_store::Error,
    },
    /// A stored state or checkpoint is not what it should be.
    #[error("supervisor: {0}")]
    Corrupt(String),
    /// Another supervisor changed a pipeline's state meanwhile.
    #[error("supervisor: pipeline {0:?} was changed by another supervisor")]
    Lost(String),
}
