//! flywheel's trainer: training sets in, models out.
//!
//! Trainers form a consumer group on the tenants' `trainsets` topics, so each training set
//! is trained by one of them. For each `TrainingSet` event a trainer reads the manifest
//! ([`plan`]), loads the samples through the [`loader`] (bounded parallel reads grouped by
//! segment, decoding off the training thread, a size-bounded LRU cache of decoded inputs,
//! batches prefetched ahead of the training loop, an epoch order that is a function of
//! the version, the epoch and the seed alone), trains one of the [`model`] zoo with
//! libtorch ([`train`]), evaluates it on held-out samples and on the samples that arrived
//! after its training set, stores it (safetensors, beside a JSON card) and publishes a
//! `ModelRelease` exactly once ([`service`]). See docs/architecture.md, "Trainer".

pub mod cache;
mod config;
pub mod decode;
pub mod loader;
mod metrics;
pub mod model;
pub mod plan;
mod service;
pub mod train;

use flywheel_store::StoreError;
use flywheel_topics::BusError;
use flywheel_trainset::TrainsetError;

pub use config::TrainerConfig;
pub use metrics::TrainerMetrics;
pub use model::card_uri;
pub use service::{Trainer, model_id, read_model};

/// What went wrong in the trainer.
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    /// A setting is out of range.
    #[error("invalid setting {setting}: {reason}")]
    Config {
        /// The setting, e.g. `trainer.workers`.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// The training set cannot be trained, whoever tries: a bad sample under
    /// `on_bad_sample = "fail"`, too many skipped, a pipeline that no longer parses, no
    /// sample to train on. It is dead-lettered, not retried.
    #[error("{0}")]
    Unusable(String),
    /// Reading or writing the object store failed (retried).
    #[error("{what}: {source}")]
    Blobs {
        /// What was being done.
        what: String,
        /// The object store's error.
        #[source]
        source: object_store::Error,
    },
    /// libtorch failed.
    #[error("{what}: {source}")]
    Torch {
        /// What was being done.
        what: String,
        /// tch's error.
        #[source]
        source: tch::TchError,
    },
    /// The training was stopped (the trainer is shutting down); another trainer, or this
    /// one restarted, trains the set again.
    #[error("stopped")]
    Stopped,
    /// The metadata store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The topics.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Reading the training set.
    #[error(transparent)]
    Trainset(#[from] TrainsetError),
    /// The loader stopped before the end of an epoch (a task of it failed); retried.
    #[error("the loader stopped early: {0}")]
    Loader(String),
    /// A local file (a model being written or read).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl TrainerError {
    pub(crate) fn blobs(what: impl Into<String>, source: object_store::Error) -> Self {
        TrainerError::Blobs {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn torch(what: impl Into<String>, source: tch::TchError) -> Self {
        TrainerError::Torch {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        TrainerError::Io {
            what: what.into(),
            source,
        }
    }

    /// Whether trying again may help (the object store, the metadata store or the topics
    /// failed), as opposed to a training set that cannot be trained.
    pub fn is_transient(&self) -> bool {
        match self {
            TrainerError::Blobs { .. }
            | TrainerError::Store(_)
            | TrainerError::Bus(_)
            | TrainerError::Io { .. }
            | TrainerError::Loader(_)
            | TrainerError::Stopped => true,
            TrainerError::Trainset(e) => !matches!(
                e,
                TrainsetError::Corrupt { .. }
                    | TrainsetError::NotFound(_)
                    | TrainsetError::Invalid { .. }
            ),
            TrainerError::Config { .. }
            | TrainerError::Unusable(_)
            | TrainerError::Torch { .. } => false,
        }
    }
}
