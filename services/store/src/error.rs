//! Errors of the metadata store. Messages are lowercase and name the url, file, dataset or
//! id that failed; `Display` is never a `Debug` dump.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong talking to the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL could not be understood.
    #[error("invalid metadata store url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },

    /// The URL names a backend this build does not have.
    #[error("metadata store backend {scheme}:// is {reason} (url {url:?})")]
    BackendNotAvailable {
        /// The URL's scheme.
        scheme: &'static str,
        /// The URL as given.
        url: String,
        /// Why, e.g. "not enabled in this build".
        reason: &'static str,
    },

    /// The store could not be opened or reached at all.
    #[error("metadata store {what} is unreachable: {reason}")]
    Unreachable {
        /// The file or address.
        what: String,
        /// What the operating system or the server said.
        reason: String,
    },

    /// The file exists but is not a SQLite database (or not one of flywheel's).
    #[error("{} is not a flywheel metadata database: {reason}", file.display())]
    NotADatabase {
        /// The file.
        file: PathBuf,
        /// What was found instead.
        reason: String,
    },

    /// The database (or keyspace) was written by a newer flywheel than this one.
    #[error(
        "{store} has schema version {found}, but this build supports versions up to {supported} (upgrade flywheel, or point it at another store)"
    )]
    WrongVersion {
        /// The database file, or the keyspace and the store's URL.
        store: String,
        /// The version found in it.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },

    /// Another connection held the database's write lock for longer than the busy timeout.
    #[error(
        "database {} is locked: another connection held its write lock for more than {}",
        file.display(),
        humantime::format_duration(*waited)
    )]
    Locked {
        /// The database file.
        file: PathBuf,
        /// How long the store waited (the busy timeout).
        waited: Duration,
    },

    /// A write disagrees with what is already stored: a different changeset with the same
    /// id, a key already in the dataset, a stale compare-and-set version.
    #[error("conflict on {what}: {detail}")]
    Conflict {
        /// What conflicted, e.g. `changeset 3 of dataset "sensors"`.
        what: String,
        /// How.
        detail: String,
    },

    /// A changeset id skips ahead of the dataset's head: changesets are 1, 2, ... N.
    #[error(
        "gap in changesets of dataset {dataset:?}: got changeset {id}, but the head is {head} (the next must be {})",
        head + 1
    )]
    Gap {
        /// The dataset.
        dataset: String,
        /// The id offered.
        id: i64,
        /// The dataset's head.
        head: i64,
    },

    /// Something a write refers to does not exist.
    #[error("{0} not found")]
    NotFound(String),

    /// A call's input breaks the store's rules.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid, e.g. `changeset 3 of dataset "sensors"`.
        what: String,
        /// Which rule it broke.
        reason: String,
    },

    /// Stored data could not be read back (hand-edited or damaged).
    #[error("unreadable {what} in {store}: {reason}")]
    Corrupt {
        /// The database file, or the keyspace and the store's URL.
        store: String,
        /// What could not be read.
        what: String,
        /// Why.
        reason: String,
    },

    /// SQLite failed.
    #[error("sqlite {op} on {} failed: {source}", file.display())]
    Sqlite {
        /// What was being done, e.g. "commit changeset".
        op: &'static str,
        /// The database file.
        file: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },

    /// A request to ScyllaDB failed.
    #[error("scylla {op} on {target} failed: {source}")]
    Scylla {
        /// What was being done, e.g. "commit changeset".
        op: &'static str,
        /// The table or keyspace, with the store's URL.
        target: String,
        /// The driver's error.
        source: Box<dyn std::error::Error + Send + Sync>,
        /// Whether the same request may succeed later (a timeout, an unavailable or
        /// overloaded node, a broken connection).
        retriable: bool,
    },

    /// A file-system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "create directory".
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

impl StoreError {
    /// Whether trying the same operation again later may succeed (a busy database, a
    /// server that is down); the others need a different input or an operator.
    pub fn is_retriable(&self) -> bool {
        match self {
            StoreError::Locked { .. } | StoreError::Unreachable { .. } => true,
            StoreError::Scylla { retriable, .. } => *retriable,
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            StoreError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::SystemIoFailure
                        | rusqlite::ErrorCode::DiskFull
                )
            ),
            _ => false,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn conflict(what: impl Into<String>, detail: impl Into<String>) -> Self {
        StoreError::Conflict {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_name_their_input() {
        let cases = [
            StoreError::Locked {
                file: "/d/meta.default.db".into(),
                waited: Duration::from_millis(250),
            },
            StoreError::WrongVersion {
                store: "/d/meta.db".into(),
                found: 9,
                supported: 1,
            },
            StoreError::Gap {
                dataset: "s".into(),
                id: 5,
                head: 2,
            },
        ];
        for e in &cases {
            let m = e.to_string();
            assert!(!m.starts_with(|c: char| c.is_uppercase()), "{m}");
            assert!(!m.contains("{ "), "no debug dumps: {m}");
        }
        assert!(
            cases[0]
                .to_string()
                .contains("/d/meta.default.db is locked")
        );
        assert!(cases[0].to_string().contains("250ms"));
        assert!(cases[0].is_retriable());
        assert!(cases[1].to_string().contains("schema version 9"));
        assert!(!cases[1].is_retriable());
        assert!(cases[2].to_string().contains("the next must be 3"));
    }
}
