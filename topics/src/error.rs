//! Errors of the event bus. Messages are lowercase and name the input that failed.

use std::io;
use std::path::PathBuf;

/// What went wrong talking to the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus URL could not be understood.
    #[error("invalid bus url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },

    /// A name (tenant, topic, group) broke its rules.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// What kind of name.
        what: &'static str,
        /// The name as given.
        name: String,
        /// Which rule it broke.
        reason: String,
    },

    /// The topic does not exist.
    #[error(
        "unknown topic {0:?} (flywheel creates its topics at start-up; is this the right bus?)"
    )]
    UnknownTopic(String),

    /// The partition does not exist in that topic.
    #[error("topic {topic:?} has no partition {partition} (it has {partitions})")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many it has.
        partitions: u32,
    },

    /// A file of the embedded log failed its checks.
    #[error(
        "corrupt log segment {}: {reason} at byte {position} (offsets from {offset} on are unreadable; the log before them is intact)",
        path.display()
    )]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the first bad record.
        position: u64,
        /// Offset of the first unreadable record.
        offset: i64,
        /// What check failed.
        reason: String,
    },

    /// The embedded log is opened by another process.
    #[error("embedded bus {} is in use by another process ({detail})", dir.display())]
    Locked {
        /// The bus directory.
        dir: PathBuf,
        /// What the lock file says.
        detail: String,
    },

    /// An I/O operation on a file of the embedded log failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "append to".
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    /// The Kafka brokers could not be reached within the bounded retries.
    #[error("kafka broker(s) {brokers} unreachable after {attempts} attempts: {last_error}")]
    Unreachable {
        /// The bootstrap servers.
        brokers: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error seen.
        last_error: String,
    },

    /// A Kafka operation failed.
    #[error("kafka {op} failed: {source}")]
    Kafka {
        /// The operation.
        op: &'static str,
        /// librdkafka's error.
        source: rdkafka::error::KafkaError,
    },

    /// The partition is no longer assigned to this consumer (the group rebalanced); the
    /// new owner reads on from the last committed offset.
    #[error("partition {topic}[{partition}] is not assigned to this consumer of group {group:?}")]
    NotAssigned {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },

    /// The message is larger than the bus accepts.
    #[error("message of {size} bytes to {topic:?} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The topic.
        topic: String,
        /// The message size.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// The backend is compiled out of this build.
    #[error("bus backend {0:?} is not enabled in this build")]
    FeatureNotEnabled(&'static str),
}

impl BusError {
    /// Whether trying the same operation again later may succeed.
    pub fn is_retriable(&self) -> bool {
        use rdkafka::error::RDKafkaErrorCode as C;
        match self {
            BusError::Unreachable { .. } | BusError::NotAssigned { .. } => true,
            BusError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            BusError::Kafka { source, .. } => match source.rdkafka_error_code() {
                Some(
                    C::BrokerTransportFailure
                    | C::AllBrokersDown
                    | C::MessageTimedOut
                    | C::RequestTimedOut
                    | C::OperationTimedOut
                    | C::QueueFull
                    | C::NotCoordinator
                    | C::CoordinatorNotAvailable
                    | C::CoordinatorLoadInProgress
                    | C::RebalanceInProgress
                    | C::NetworkException
                    | C::LeaderNotAvailable
                    | C::NotLeaderForPartition,
                ) => true,
                Some(_) => false,
                None => !matches!(
                    source,
                    rdkafka::error::KafkaError::ClientConfig(..)
                        | rdkafka::error::KafkaError::ClientCreation(..)
                ),
            },
            _ => false,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        BusError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
