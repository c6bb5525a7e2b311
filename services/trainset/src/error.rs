//! Errors of training sets. Messages name the field, version or object that failed.

use flywheel_store::StoreError;

/// What went wrong preparing or reading a training set.
#[derive(Debug, thiserror::Error)]
pub enum TrainsetError {
    /// A query (or a version, a shard number) was refused.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, e.g. `percentage`.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The dataset, training set or shard does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed.
    #[error("{what}: {source}")]
    Blobs {
        /// What was being read or written.
        what: String,
        /// The object store's error.
        source: object_store::Error,
    },
    /// A restricted source failed (its errors never carry row values or credentials).
    #[error(transparent)]
    Source(#[from] flywheel_sources::SourceError),
    /// A stored object is not what it should be.
    #[error("{what} is corrupt: {reason}")]
    Corrupt {
        /// The object.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl TrainsetError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn blobs(what: impl Into<String>, source: object_store::Error) -> Self {
        Self::Blobs {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
