//! The `Bus` trait: what every service needs from an event log, and nothing more.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{BusError, TopicSpec};

/// One message to produce.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// The key: decides the partition (same key, same partition, same order).
    pub key: Option<Vec<u8>>,
    /// The value (an Avro single-object encoded event, or a sample's JSON form).
    pub value: Vec<u8>,
    /// An explicit partition, overriding the key's.
    pub partition: Option<i32>,
    /// Milliseconds since the Unix epoch; the bus stamps the current time when `None`.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    /// A keyed record.
    pub fn keyed(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: Some(key.into()),
            value: value.into(),
            partition: None,
            timestamp_ms: None,
        }
    }

    /// A record without key (spread over the partitions).
    pub fn unkeyed(value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: None,
            value: value.into(),
            partition: None,
            timestamp_ms: None,
        }
    }

    /// The same record sent to one partition.
    #[must_use]
    pub fn to_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("key_len", &self.key.as_ref().map(Vec::len))
            .field("value_len", &self.value.len())
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

/// Where an acknowledged record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ack {
    /// The partition.
    pub partition: i32,
    /// The record's offset in that partition.
    pub offset: i64,
}

/// One consumed message.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic it was read from.
    pub topic: String,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// Its key.
    pub key: Option<Bytes>,
    /// Its value. On the embedded bus, the values of one poll share one read buffer
    /// (no copy per message); the buffer is freed when the last of them is dropped.
    pub value: Bytes,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("value_len", &self.value.len())
            .finish_non_exhaustive()
    }
}

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// What a consumer subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// These topics.
    Topics(Vec<String>),
    /// Every topic whose name matches this regular expression, including topics created
    /// after the subscription (e.g. `TopicKind::Samples.pattern()` for every tenant).
    Pattern(String),
}

impl Subscription {
    /// A subscription to one topic.
    pub fn topic(name: impl Into<String>) -> Self {
        Self::Topics(vec![name.into()])
    }
}

/// Where a consumer starts in a partition for which its group has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The oldest message still kept (the default: nothing is skipped).
    #[default]
    Earliest,
    /// Only messages produced from now on.
    Latest,
}

/// Where to move a consumer's position in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// The oldest message still kept.
    Beginning,
    /// After the last message.
    End,
    /// This offset (the next message read has this offset).
    Offset(i64),
}

/// Consumer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// The consumer group: members share the partitions, offsets are committed per group.
    pub group: String,
    /// What to read.
    pub subscription: Subscription,
    /// Where to start without a committed offset.
    pub start: StartFrom,
}

impl ConsumerConfig {
    /// A consumer of `subscription` in `group`, starting from the earliest message.
    pub fn new(group: impl Into<String>, subscription: Subscription) -> Self {
        Self {
            group: group.into(),
            subscription,
            start: StartFrom::Earliest,
        }
    }
}

/// The event bus: keyed, batched, acknowledged produce; consumer groups with committed
/// offsets; seek; topic creation; a partition's end offset, and reads of one partition
/// outside any consumer group (to check what reached it, e.g. after a crash). Implemented
/// by the embedded durable log and by Kafka, and checked by one conformance suite
/// (`tests/conformance.rs`).
#[async_trait]
pub trait Bus: Send + Sync + fmt::Debug {
    /// Creates the topics that do not exist yet; existing topics are left as they are.
    async fn create_topics(&self, topics: &[TopicSpec]) -> Result<(), BusError>;

    /// Number of partitions of a topic; an error naming the topic if it does not exist.
    async fn partitions(&self, topic: &str) -> Result<u32, BusError>;

    /// Produces a batch of records to one topic and returns once every record is
    /// acknowledged (durable), in the order given. On error, some records of the batch may
    /// have been stored: producers that need exactly-once effects key their writes.
    async fn produce(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Ack>, BusError>;

    /// Joins a consumer group.
    async fn subscribe(&self, config: ConsumerConfig) -> Result<Box<dyn Consumer>, BusError>;

    /// The offset the next record produced to this partition will get (Kafka's high
    /// watermark); 0 for an empty partition. Every acknowledged record of the partition has
    /// an offset below it. An error naming the topic if it does not exist, or the partition
    /// if it is out of range (negative partitions included).
    async fn end_offset(&self, topic: &str, partition: i32) -> Result<i64, BusError>;

    /// Reads up to `max` records of one partition from offset `from` on, in offset order,
    /// without a consumer group: nothing is committed and no group is joined, so no group's
    /// offsets or assignment change.
    ///
    /// Returns at once with what is there (up to `max`; possibly fewer, never skipping one:
    /// read on from the last offset + 1). Waits up to `timeout` only if nothing is there
    /// yet, and returns an empty vec if there is still nothing, so an empty vec means the
    /// partition holds no record at or after `from`: records that are there but slow to
    /// come (a broker's fetch) are waited for beyond `timeout`, and an error if they never
    /// come. `from` at or past the end waits (past the end, until the partition reaches
    /// `from`). `from` below the oldest kept record, negative values included, starts at
    /// the oldest. `max` of 0 returns an empty vec at once. Errors as for
    /// [`Bus::end_offset`], and the backend's own (a damaged range of the embedded log,
    /// after the records before it were returned; a Kafka failure).
    ///
    /// Meant for rare checks (crash recovery), not for streaming: on Kafka every call
    /// starts a consumer of its own (tens of milliseconds).
    async fn read(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Message>, BusError>;

    /// The backend's URL, as given (without credentials).
    fn url(&self) -> &str;
}

/// A member of a consumer group. Delivery is at least once: a message is redelivered to the
/// group until an offset past it is committed.
#[async_trait]
pub trait Consumer: Send + fmt::Debug {
    /// Waits up to `timeout` for messages and returns at most `max` (none on timeout).
    /// Messages of one partition come in offset order.
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Message>, BusError>;

    /// Commits, for each partition, the offset of the next message to read.
    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), BusError>;

    /// Moves the position in one assigned partition.
    async fn seek(&mut self, topic: &str, partition: i32, to: SeekTo) -> Result<(), BusError>;

    /// The partitions currently assigned to this member.
    fn assignment(&self) -> Vec<TopicPartition>;

    /// The group's committed offsets (next offset to read) of the given partitions.
    async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, BusError>;
}

/// The offsets to commit after processing `messages`: one past the highest offset seen per
/// partition.
pub fn offsets_after(messages: &[Message]) -> Vec<(TopicPartition, i64)> {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in messages {
        let e = next.entry((&m.topic, m.partition)).or_insert(m.offset + 1);
        *e = (*e).max(m.offset + 1);
    }
    next.into_iter()
        .map(|((topic, partition), offset)| (TopicPartition::new(topic, partition), offset))
        .collect()
}

/// Picks a partition for a keyed record: stable across processes and runs (CRC-32C of the
/// key), so that a key always lands in the same partition of a topic.
pub fn partition_for_key(key: &[u8], partitions: u32) -> i32 {
    let p = crc32c::crc32c(key) % partitions.max(1);
    i32::try_from(p).unwrap_or(0)
}
