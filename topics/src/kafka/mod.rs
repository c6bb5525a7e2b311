//! `kafka://HOST:PORT[,HOST:PORT...][?property=value&...]`: the bus on a Kafka cluster
//! (or anything speaking the Kafka API, e.g. tansu or Redpanda), through librdkafka.
//!
//! Semantics, the same as the embedded bus (one conformance suite checks both):
//! - **Produce** goes through one idempotent producer (`enable.idempotence=true`,
//!   `acks=all`): a batch is sent with every record in flight at once and acknowledged when
//!   all are; librdkafka retries transient failures without duplicating or reordering
//!   records. Keyed records are placed with [`partition_for_key`] (not librdkafka's
//!   partitioner), unkeyed ones round-robin, so both backends put a key in the same
//!   partition. The topic must exist (checked against cached metadata, never auto-created).
//! - **Consume** is at least once: consumer groups with manual commits only
//!   (`enable.auto.commit=false`); a committed offset is the next offset to read. A member
//!   that leaves or crashes hands its partitions to others, which resume from the commit.
//! - **End offset and reads outside groups** (`Bus::end_offset`, `Bus::read`, for crash
//!   recovery): the end offset is the high watermark from ListOffsets; a read starts a
//!   consumer of its own per call that is assigned the one partition at an offset and
//!   never joins its throwaway group nor commits (librdkafka's `assign` wants a `group.id`).
//!   Fine for rare checks, too slow to stream with.
//! - **Lag** (`flywheel_bus_consumer_lag_messages`) comes from librdkafka's statistics,
//!   every second while the consumer is polled: high watermark minus the position of the
//!   member that owns the partition (falling back to the committed offset).
//!
//! The query string holds librdkafka client properties, passed through as they are
//! (`security.protocol`, `sasl.mechanism`, `sasl.username`, `sasl.password`, ...;
//! percent-decoded), plus two of ours: `replication` (replication factor of the topics
//! `create_topics` makes, default 1) and `connect_attempts` (default 5). Properties that
//! carry the bus's semantics (`group.id`, `enable.auto.commit`, ...) are refused. The query
//! may hold credentials: it is never logged, and [`Bus::url`] and `Debug` leave it out.
//!
//! Pattern subscriptions use librdkafka's regular expressions (POSIX extended): keep to
//! `^`, `$`, `.`, `[...]`, `*`, `+`, `|`, `(...)` and `\.`, as the catalogue's patterns do.
//!
//! Where Kafka differs from the embedded bus: lag is refreshed once a second rather than on
//! every poll; a member that joins takes partitions only after a rebalance (seconds, not at
//! once); seeking past the end of a partition applies `auto.offset.reset` (the start, for
//! [`StartFrom::Earliest`](crate::StartFrom::Earliest)) where the embedded bus waits there;
//! and an acknowledgement's offset is -1 in the rare case a broker answers a retried batch
//! with `DUPLICATE_SEQUENCE_NUMBER` (the record is stored once; librdkafka does not say
//! where).
//!
//! tansu 0.6 (`memory://` storage) cannot fetch from an offset inside a record batch: it
//! serves the batches that start at or after the offset, so a group resuming from such a
//! commit, or a seek there, skips the rest of that batch (or stalls, inside the newest
//! batch, until another arrives). Against it, add
//! `?batch.num.messages=1` (every record its own batch; about 7k records/s instead of 90k).
//! That setting also keeps tansu's ListOffsets right: it answers the newest batch's first
//! offset + 1 as the high watermark, so with batches of several records `end_offset` falls
//! short of the end. `read` copes with both quirks without the setting (see `reader`).

mod config;
mod consumer;
mod reader;
mod stats;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use self::config::{MESSAGE_TIMEOUT, Settings, config_error, kafka, parse_url, sanitize};
use self::consumer::KafkaConsumer;
use crate::metrics::BusMetrics;
use crate::{
    Ack, Bus, BusError, Consumer, ConsumerConfig, Message, Record, TopicSpec, partition_for_key,
};

/// One reachability probe at connect.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Metadata, commit, committed offsets, seek and topic creation.
const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// Locks a mutex, also after a panic while it was held (the data stays usable).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// clients

/// Sends librdkafka's logs and global errors to `tracing`.
#[derive(Clone, Copy)]
struct LogContext;

fn forward_log(level: RDKafkaLogLevel, fac: &str, msg: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", facility = fac, "{msg}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility = fac, "{msg}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility = fac, "{msg}");
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility = fac, "{msg}"),
    }
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

/// The consumers of `Bus::read` need no callbacks beyond the logs.
impl ConsumerContext for LogContext {}

type Producer = FutureProducer<LogContext>;

/// Maps a failed watermark query of `topic`.
fn watermark_error(topic: &str, e: KafkaError) -> BusError {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            BusError::UnknownTopic(topic.to_owned())
        }
        _ => kafka("fetch watermarks")(e),
    }
}

// ---------------------------------------------------------------------------------------
// the bus

/// The Kafka bus. Cheap to clone; clones share one producer and one admin client.
#[derive(Clone)]
pub struct KafkaBus {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    admin: AdminClient<LogContext>,
    /// Replaced when the idempotent producer hits a fatal error.
    producer: RwLock<Producer>,
    /// Partition counts by topic, from metadata.
    partitions: Mutex<HashMap<String, u32>>,
    round_robin: AtomicU32,
    metrics: BusMetrics,
}

impl fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaBus")
            .field("url", &self.inner.settings.url)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl KafkaBus {
    /// Connects to the brokers a `kafka://` URL names and checks that they answer:
    /// metadata is fetched with a 2 s timeout, up to `connect_attempts` times with
    /// backoff, then [`BusError::Unreachable`].
    pub async fn connect(url: &str, metrics: &BusMetrics) -> Result<KafkaBus, BusError> {
        let settings = parse_url(url)?;
        let admin: AdminClient<LogContext> = settings
            .admin_config()
            .create_with_context(LogContext)
            .map_err(|e| config_error(&settings, e))?;
        let producer: Producer = settings
            .producer_config()
            .create_with_context(LogContext)
            .map_err(|e| config_error(&settings, e))?;
        let bus = KafkaBus {
            inner: Arc::new(Inner {
                settings,
                admin,
                producer: RwLock::new(producer),
                partitions: Mutex::new(HashMap::new()),
                round_robin: AtomicU32::new(0),
                metrics: metrics.clone(),
            }),
        };
        let attempts = bus.inner.settings.connect_attempts;
        let mut backoff = Duration::from_millis(200);
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            match bus.metadata(PROBE_TIMEOUT).await {
                Ok(md) => {
                    bus.remember(&md);
                    tracing::debug!(url = %bus.inner.settings.url, attempt, "connected to kafka");
                    return Ok(bus);
                }
                Err(e) => last_error = sanitize(e).to_string(),
            }
            if attempt < attempts {
                tracing::warn!(url = %bus.inner.settings.url, attempt, error = %last_error, "kafka not reachable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
        Err(BusError::Unreachable {
            brokers: bus.inner.settings.brokers.clone(),
            attempts,
            last_error,
        })
    }

    /// Cluster metadata (every topic), fetched off the runtime's threads.
    async fn metadata(&self, timeout: Duration) -> Result<Metadata, KafkaError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.admin.inner().fetch_metadata(None, timeout))
            .await
            .expect("metadata task panicked")
    }

    /// Replaces the partition cache with what the metadata says.
    fn remember(&self, md: &Metadata) {
        let mut cache = lock(&self.inner.partitions);
        cache.clear();
        for t in md.topics() {
            if t.error().is_none() || !t.partitions().is_empty() {
                cache.insert(
                    t.name().to_owned(),
                    u32::try_from(t.partitions().len()).unwrap_or(u32::MAX),
                );
            }
        }
    }

    /// The topic's partition count: cached, or from fresh metadata when `refresh` or unknown.
    async fn partition_count(&self, topic: &str, refresh: bool) -> Result<u32, BusError> {
        if !refresh && let Some(n) = lock(&self.inner.partitions).get(topic) {
            return Ok(*n);
        }
        let md = self
            .metadata(OP_TIMEOUT)
            .await
            .map_err(kafka("fetch metadata"))?;
        self.remember(&md);
        lock(&self.inner.partitions)
            .get(topic)
            .copied()
            .filter(|n| *n > 0)
            .ok_or_else(|| BusError::UnknownTopic(topic.to_owned()))
    }

    fn producer(&self) -> Producer {
        self.inner
            .producer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// An idempotent producer that hit a fatal error (e.g. its sequence numbers were lost)
    /// refuses every later record: start a new one.
    fn replace_if_fatal(&self, producer: &Producer) {
        let Some((code, reason)) = producer.client().fatal_error() else {
            return;
        };
        tracing::error!(%code, reason, "kafka producer failed fatally; starting a new one");
        match self
            .inner
            .settings
            .producer_config()
            .create_with_context::<_, Producer>(LogContext)
        {
            Ok(fresh) => {
                *self
                    .inner
                    .producer
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = fresh;
            }
            Err(e) => tracing::error!(error = %sanitize(e), "could not start a new kafka producer"),
        }
    }

    /// Checks that the topic exists and has the partition (with fresh metadata before
    /// refusing a partition the cache does not know).
    async fn check_partition(&self, topic: &str, partition: i32) -> Result<(), BusError> {
        let mut count = self.partition_count(topic, false).await?;
        let within = |count: u32| u32::try_from(partition).is_ok_and(|p| p < count);
        if partition >= 0 && !within(count) {
            count = self.partition_count(topic, true).await?;
        }
        if within(count) {
            Ok(())
        } else {
            Err(BusError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                partitions: count,
            })
        }
    }

    /// The partition of each record: explicit, by key, or round robin.
    fn place(&self, topic: &str, records: &[Record], count: u32) -> Result<Vec<i32>, BusError> {
        records
            .iter()
            .map(|r| match (r.partition, &r.key) {
                (Some(p), _) if p >= 0 && u32::try_from(p).is_ok_and(|p| p < count) => Ok(p),
                (Some(p), _) => Err(BusError::UnknownPartition {
                    topic: topic.to_owned(),
                    partition: p,
                    partitions: count,
                }),
                (None, Some(k)) => Ok(partition_for_key(k, count)),
                (None, None) => {
                    let n = self.inner.round_robin.fetch_add(1, Ordering::Relaxed);
                    Ok(i32::try_from(n % count.max(1)).unwrap_or(0))
                }
            })
            .collect()
    }

    /// Maps a record's delivery failure.
    fn produce_error(&self, topic: &str, e: KafkaError) -> BusError {
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                lock(&self.inner.partitions).remove(topic);
                BusError::UnknownTopic(topic.to_owned())
            }
            Some(RDKafkaErrorCode::UnknownPartition) => {
                lock(&self.inner.partitions).remove(topic);
                kafka("produce")(e)
            }
            Some(RDKafkaErrorCode::MessageSizeTooLarge) => {
                kafka("produce (the broker refused the message size: see its message.max.bytes)")(e)
            }
            _ => kafka("produce")(e),
        }
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn create_topics(&self, topics: &[TopicSpec]) -> Result<(), BusError> {
        for spec in topics {
            spec.validate()?;
        }
        if topics.is_empty() {
            return Ok(());
        }
        let md = self
            .metadata(OP_TIMEOUT)
            .await
            .map_err(kafka("fetch metadata"))?;
        self.remember(&md);
        let mut missing: BTreeMap<&str, &TopicSpec> = BTreeMap::new();
        {
            let cache = lock(&self.inner.partitions);
            for spec in topics {
                if !cache.contains_key(&spec.name) {
                    missing.entry(&spec.name).or_insert(spec);
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        // no retention keeps messages forever (-1), not for the broker's default (7 days)
        let retention: Vec<String> = missing
            .values()
            .map(|s| {
                s.retention
                    .map_or_else(|| "-1".to_owned(), |d| d.as_millis().to_string())
            })
            .collect();
        let new_topics: Vec<NewTopic<'_>> = missing
            .values()
            .zip(&retention)
            .map(|(s, ms)| {
                NewTopic::new(
                    &s.name,
                    i32::try_from(s.partitions).unwrap_or(i32::MAX),
                    TopicReplication::Fixed(self.inner.settings.replication),
                )
                .set("retention.ms", ms)
            })
            .collect();
        let opts = AdminOptions::new()
            .operation_timeout(Some(OP_TIMEOUT))
            .request_timeout(Some(OP_TIMEOUT + Duration::from_secs(5)));
        let results = self
            .inner
            .admin
            .create_topics(&new_topics, &opts)
            .await
            .map_err(kafka("create topics"))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((
                    name,
                    code @ (RDKafkaErrorCode::InvalidReplicationFactor
                    | RDKafkaErrorCode::InvalidPartitions
                    | RDKafkaErrorCode::InvalidTopic
                    | RDKafkaErrorCode::InvalidConfig
                    | RDKafkaErrorCode::PolicyViolation),
                )) => {
                    return Err(BusError::InvalidName {
                        what: "topic",
                        name,
                        reason: format!(
                            "the broker refused to create it: {code} (replication factor {} from the bus url)",
                            self.inner.settings.replication
                        ),
                    });
                }
                Err((name, code)) => {
                    tracing::error!(topic = name, %code, "kafka refused to create a topic");
                    return Err(BusError::Kafka {
                        op: "create topics",
                        source: KafkaError::AdminOp(code),
                    });
                }
            }
        }
        // wait until metadata shows them, so that a produce right after works
        let deadline = Instant::now() + OP_TIMEOUT;
        loop {
            let md = self
                .metadata(OP_TIMEOUT)
                .await
                .map_err(kafka("fetch metadata"))?;
            self.remember(&md);
            let ready = {
                let cache = lock(&self.inner.partitions);
                missing
                    .keys()
                    .all(|n| cache.get(*n).is_some_and(|c| *c > 0))
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BusError::Kafka {
                    op: "create topics (they were created but do not show in metadata yet)",
                    source: KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn partitions(&self, topic: &str) -> Result<u32, BusError> {
        self.partition_count(topic, true).await
    }

    async fn produce(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Ack>, BusError> {
        let mut count = self.partition_count(topic, false).await?;
        let limit = self.inner.settings.max_message_bytes;
        if let Some(r) = records.iter().find(|r| r.value.len() > limit) {
            return Err(BusError::TooLarge {
                topic: topic.to_owned(),
                size: r.value.len(),
                limit,
            });
        }
        if records.iter().any(|r| {
            r.partition
                .is_some_and(|p| u32::try_from(p).is_ok_and(|p| p >= count))
        }) {
            // the topic may have grown since it was cached
            count = self.partition_count(topic, true).await?;
        }
        let partitions = self.place(topic, &records, count)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let producer = self.producer();
        let started = Instant::now();
        let deadline = started + MESSAGE_TIMEOUT;
        let mut pending = Vec::with_capacity(records.len());
        // enqueue in order (a full queue waits, never reorders), then await them all
        for (r, p) in records.iter().zip(&partitions) {
            let mut rec = FutureRecord::<[u8], [u8]>::to(topic)
                .payload(&r.value[..])
                .partition(*p);
            if let Some(k) = &r.key {
                rec = rec.key(&k[..]);
            }
            if let Some(ts) = r.timestamp_ms {
                rec = rec.timestamp(ts);
            }
            loop {
                match producer.send_result(rec) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if Instant::now() < deadline =>
                    {
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((
                        KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
                        _,
                    )) => {
                        return Err(BusError::TooLarge {
                            topic: topic.to_owned(),
                            size: r.value.len(),
                            limit,
                        });
                    }
                    Err((e, _)) => {
                        self.replace_if_fatal(&producer);
                        return Err(self.produce_error(topic, e));
                    }
                }
            }
        }
        let mut acks = Vec::with_capacity(pending.len());
        let mut failure = None;
        for result in futures::future::join_all(pending).await {
            match result {
                Ok(Ok(d)) => acks.push(Ack {
                    partition: d.partition,
                    offset: d.offset,
                }),
                Ok(Err((e, _))) => {
                    failure.get_or_insert(e);
                }
                Err(_canceled) => {
                    failure.get_or_insert(KafkaError::Canceled);
                }
            }
        }
        if let Some(e) = failure {
            self.replace_if_fatal(&producer);
            return Err(self.produce_error(topic, e));
        }
        let bytes: usize = records.iter().map(|r| r.value.len()).sum();
        self.inner
            .metrics
            .produced("kafka", topic, acks.len(), bytes, started.elapsed());
        Ok(acks)
    }

    async fn subscribe(&self, config: ConsumerConfig) -> Result<Box<dyn Consumer>, BusError> {
        let consumer = KafkaConsumer::subscribe(&self.inner.settings, &self.inner.metrics, config)?;
        Ok(Box::new(consumer))
    }

    async fn end_offset(&self, topic: &str, partition: i32) -> Result<i64, BusError> {
        self.check_partition(topic, partition).await?;
        let inner = Arc::clone(&self.inner);
        let name = topic.to_owned();
        let (_low, high) = tokio::task::spawn_blocking(move || {
            inner
                .admin
                .inner()
                .fetch_watermarks(&name, partition, OP_TIMEOUT)
        })
        .await
        .expect("watermark task panicked")
        .map_err(|e| watermark_error(topic, e))?;
        Ok(high.max(0))
    }

    /// A consumer of its own per call (see `reader`): fine for rare checks such as crash
    /// recovery, too slow to stream with.
    async fn read(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Message>, BusError> {
        self.check_partition(topic, partition).await?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let inner = Arc::clone(&self.inner);
        let name = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            reader::read(&inner.settings, &name, partition, from, max, timeout)
        })
        .await
        .expect("read task panicked")
    }

    fn url(&self) -> &str {
        &self.inner.settings.url
    }
}
