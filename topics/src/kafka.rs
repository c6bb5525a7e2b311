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
//! [`StartFrom::Earliest`]) where the embedded bus waits there; and an acknowledgement's
//! offset is -1 in the rare case a broker answers a retried batch with
//! `DUPLICATE_SEQUENCE_NUMBER` (the record is stored once; librdkafka does not say where).
//!
//! tansu 0.6 (`memory://` storage) cannot fetch from an offset inside a record batch: a
//! group resuming from such a commit, or a seek there, stalls. Against it, add
//! `?batch.num.messages=1` (every record its own batch; about 7k records/s instead of 90k).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Deserialize;

use crate::metrics::BusMetrics;
use crate::{
    Ack, Bus, BusError, Consumer, ConsumerConfig, Message, Record, SeekTo, StartFrom, Subscription,
    TopicPartition, TopicSpec, partition_for_key, validate_topic_name,
};

/// The largest message value accepted, as on the embedded bus (brokers may allow less:
/// Kafka's default `message.max.bytes` is 1 MB; their refusal comes back as an error).
const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Room for key, headers and batch overhead above the largest value in the producer's
/// own `message.max.bytes`.
const MESSAGE_OVERHEAD_BYTES: usize = 64 * 1024;
/// One reachability probe at connect.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Metadata, commit, committed offsets, seek and topic creation.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `message.timeout.ms` lets librdkafka retry a record before failing it.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Query keys that are ours, not librdkafka's.
const REPLICATION_KEY: &str = "replication";
const CONNECT_ATTEMPTS_KEY: &str = "connect_attempts";
/// librdkafka properties the bus sets itself: overriding them would change its semantics.
const RESERVED: [&str; 8] = [
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "auto.offset.reset",
    "enable.idempotence",
];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// URL

/// Whether a query key holds a secret (its value is never shown).
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "credential",
        "jaas",
        "sasl.oauthbearer.config",
        "key.pem",
        "keystore",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// The URL with secret query values (and any `user:password@`) replaced by `***`.
fn redact(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let head = match head.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, hosts)) => format!("{scheme}://***@{hosts}"),
            None => head.to_owned(),
        },
        None => head.to_owned(),
    };
    let Some(query) = query else {
        return head;
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret(k) || is_secret(&percent_decode(k).unwrap_or_default()) => {
                format!("{k}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}?{}", pairs.join("&"))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a '%' not followed by two hex digits".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-escapes that are not UTF-8".to_owned())
}

/// Checks one `HOST:PORT` (or `[IPv6]:PORT`).
fn check_broker(b: &str) -> Result<(), String> {
    if b.is_empty() {
        return Err("empty broker address (a stray comma?)".into());
    }
    if b.contains('@') {
        return Err(
            "credentials go in the query (sasl.username=...&sasl.password=...), not before '@'"
                .into(),
        );
    }
    let (host, port) = if let Some(rest) = b.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("'[' without ']'")?;
        (host, after.strip_prefix(':').ok_or("missing :PORT")?)
    } else {
        let (host, port) = b
            .rsplit_once(':')
            .ok_or("missing :PORT, e.g. 127.0.0.1:9092")?;
        if host.contains(':') {
            return Err("an IPv6 address needs brackets, e.g. [::1]:9092".into());
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err(format!(
            "host {host:?} has characters a host name cannot have"
        ));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("port {port:?} is not a number in 1..=65535")),
        Ok(_) => Ok(()),
    }
}

/// What a `kafka://` URL says.
#[derive(Clone)]
struct Settings {
    /// `kafka://HOSTS`, without the query.
    url: String,
    /// The URL as given with secrets replaced, for error messages.
    redacted: String,
    /// `bootstrap.servers`.
    brokers: String,
    /// librdkafka properties from the query.
    properties: Vec<(String, String)>,
    replication: i32,
    connect_attempts: u32,
    max_message_bytes: usize,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let props: Vec<String> = self
            .properties
            .iter()
            .map(|(k, v)| {
                if is_secret(k) {
                    format!("{k}=***")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        f.debug_struct("Settings")
            .field("brokers", &self.brokers)
            .field("properties", &props)
            .field("replication", &self.replication)
            .field("connect_attempts", &self.connect_attempts)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish()
    }
}

fn parse_url(url: &str) -> Result<Settings, BusError> {
    let redacted = redact(url);
    let invalid = |reason: String| BusError::InvalidUrl {
        url: redacted.clone(),
        reason,
    };
    let rest = url.strip_prefix("kafka://").ok_or_else(|| {
        invalid("expected kafka://HOST:PORT[,HOST:PORT...][?property=value&...]".into())
    })?;
    let (hosts, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
    if hosts.is_empty() {
        return Err(invalid(
            "no broker given, e.g. kafka://127.0.0.1:9092".into(),
        ));
    }
    for b in hosts.split(',') {
        check_broker(b).map_err(|reason| {
            let shown = b
                .rsplit_once('@')
                .map_or_else(|| b.to_owned(), |(_, h)| format!("***@{h}"));
            invalid(format!("broker {shown:?}: {reason}"))
        })?;
    }
    let mut settings = Settings {
        url: format!("kafka://{hosts}"),
        redacted: redacted.clone(),
        brokers: hosts.to_owned(),
        properties: Vec::new(),
        replication: 1,
        connect_attempts: 5,
        max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
    };
    let mut seen = BTreeSet::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            invalid(format!(
                "query part {:?} is not KEY=VALUE",
                pair.split('=').next().unwrap_or("")
            ))
        })?;
        let key = percent_decode(k).map_err(|e| invalid(format!("query key {k:?} has {e}")))?;
        let value = percent_decode(v).map_err(|e| invalid(format!("value of {key:?} has {e}")))?;
        if !seen.insert(key.clone()) {
            return Err(invalid(format!("{key:?} is given twice")));
        }
        if RESERVED.contains(&key.as_str()) {
            return Err(invalid(format!(
                "{key:?} is set by flywheel (brokers come from the host list; consumer groups and commits are the bus's)"
            )));
        }
        match key.as_str() {
            REPLICATION_KEY => {
                settings.replication =
                    value
                        .parse()
                        .ok()
                        .filter(|r: &i32| *r >= 1)
                        .ok_or_else(|| {
                            invalid(format!(
                                "{REPLICATION_KEY}={value:?} is not a replication factor >= 1"
                            ))
                        })?;
            }
            CONNECT_ATTEMPTS_KEY => {
                settings.connect_attempts = value
                    .parse()
                    .ok()
                    .filter(|n: &u32| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        invalid(format!(
                            "{CONNECT_ATTEMPTS_KEY}={value:?} is not a number in 1..=1000"
                        ))
                    })?;
            }
            _ => {
                if key == "message.max.bytes" {
                    settings.max_message_bytes = value.parse().map_err(|_| {
                        invalid(format!(
                            "message.max.bytes={value:?} is not a number of bytes"
                        ))
                    })?;
                }
                settings.properties.push((key, value));
            }
        }
    }
    Ok(settings)
}

/// A librdkafka error without a secret property's value in it.
fn sanitize(e: KafkaError) -> KafkaError {
    match e {
        KafkaError::ClientConfig(res, desc, key, _) if is_secret(&key) => {
            KafkaError::ClientConfig(res, desc, key, "***".into())
        }
        e => e,
    }
}

fn kafka(op: &'static str) -> impl Fn(KafkaError) -> BusError {
    move |e| BusError::Kafka {
        op,
        source: sanitize(e),
    }
}

/// A client that could not be created from the URL's properties.
fn config_error(settings: &Settings, e: KafkaError) -> BusError {
    let reason = match sanitize(e) {
        KafkaError::ClientConfig(_, desc, key, _) => format!("librdkafka property {key:?}: {desc}"),
        other => other.to_string(),
    };
    BusError::InvalidUrl {
        url: settings.redacted.clone(),
        reason,
    }
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

type Producer = FutureProducer<LogContext>;

impl Settings {
    /// Adds what every client gets: the brokers, then the URL's properties (which override
    /// the defaults set before this call).
    fn apply_base(&self, c: &mut ClientConfig) {
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c.set_log_level(RDKafkaLogLevel::Warning);
    }

    fn defaults() -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("client.id", "flywheel")
            // the bus creates its topics; a broker's auto-creation would hide a typo
            .set("allow.auto.create.topics", "false");
        c
    }

    fn admin_config(&self) -> ClientConfig {
        let mut c = Self::defaults();
        self.apply_base(&mut c);
        c
    }

    fn producer_config(&self) -> ClientConfig {
        let mut c = Self::defaults();
        c.set("acks", "all")
            .set(
                "message.timeout.ms",
                MESSAGE_TIMEOUT.as_millis().to_string(),
            )
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set(
                "message.max.bytes",
                (self.max_message_bytes + MESSAGE_OVERHEAD_BYTES).to_string(),
            );
        self.apply_base(&mut c);
        c.set("enable.idempotence", "true");
        c
    }

    fn consumer_config(&self, group: &str, start: StartFrom) -> ClientConfig {
        let mut c = Self::defaults();
        c.set("statistics.interval.ms", "1000")
            // pattern subscriptions see new topics within about a second
            .set("topic.metadata.refresh.interval.ms", "1000")
            // a rebalance moves only the partitions that change owner: the others keep
            // their position (as on the embedded bus) instead of rewinding to the commit
            .set("partition.assignment.strategy", "cooperative-sticky");
        self.apply_base(&mut c);
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set(
                "auto.offset.reset",
                match start {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            );
        c
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
            validate_topic_name(&spec.name)?;
            if spec.partitions == 0 || spec.partitions > 10_000 {
                return Err(BusError::InvalidName {
                    what: "topic",
                    name: spec.name.clone(),
                    reason: format!("{} partitions is out of range 1..=10000", spec.partitions),
                });
            }
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
        let retention: Vec<Option<String>> = missing
            .values()
            .map(|s| s.retention.map(|d| d.as_millis().to_string()))
            .collect();
        let new_topics: Vec<NewTopic<'_>> = missing
            .values()
            .zip(&retention)
            .map(|(s, r)| {
                let t = NewTopic::new(
                    &s.name,
                    i32::try_from(s.partitions).unwrap_or(i32::MAX),
                    TopicReplication::Fixed(self.inner.settings.replication),
                );
                match r {
                    Some(ms) => t.set("retention.ms", ms),
                    None => t,
                }
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
        let m = &self.inner.metrics;
        let bytes: usize = records.iter().map(|r| r.value.len()).sum();
        m.produced_messages
            .with_label_values(&[topic])
            .inc_by(acks.len() as u64);
        m.produced_bytes
            .with_label_values(&[topic])
            .inc_by(bytes as u64);
        m.produce_seconds
            .with_label_values(&["kafka"])
            .observe(started.elapsed().as_secs_f64());
        Ok(acks)
    }

    async fn subscribe(&self, config: ConsumerConfig) -> Result<Box<dyn Consumer>, BusError> {
        if config.group.is_empty() || config.group.len() > 255 {
            return Err(BusError::InvalidName {
                what: "consumer group",
                name: config.group,
                reason: "must be 1 to 255 characters long".into(),
            });
        }
        let subscription: Vec<String> = match &config.subscription {
            Subscription::Topics(names) => {
                for n in names {
                    validate_topic_name(n)?;
                }
                names.clone()
            }
            Subscription::Pattern(p) => {
                regex::Regex::new(p).map_err(|e| BusError::InvalidName {
                    what: "subscription pattern",
                    name: p.clone(),
                    reason: e.to_string(),
                })?;
                // librdkafka reads a name starting with '^' as a regular expression; "^.*"
                // keeps an unanchored pattern unanchored
                vec![if p.starts_with('^') {
                    p.clone()
                } else {
                    format!("^.*{p}")
                }]
            }
        };
        let shared = Arc::new(Shared::default());
        let context = ConsumerCtx {
            group: config.group.clone(),
            metrics: self.inner.metrics.clone(),
            shared: Arc::clone(&shared),
        };
        let consumer: StreamConsumer<ConsumerCtx> = self
            .inner
            .settings
            .consumer_config(&config.group, config.start)
            .create_with_context(context)
            .map_err(kafka("create consumer"))?;
        if !subscription.is_empty() {
            let refs: Vec<&str> = subscription.iter().map(String::as_str).collect();
            consumer.subscribe(&refs).map_err(kafka("subscribe"))?;
        }
        Ok(Box::new(KafkaConsumer {
            consumer: Some(Arc::new(consumer)),
            group: config.group,
            subscription,
            shared,
            metrics: self.inner.metrics.clone(),
            pending_error: None,
        }))
    }

    fn url(&self) -> &str {
        &self.inner.settings.url
    }
}

// ---------------------------------------------------------------------------------------
// consumers

/// State the consumer shares with its librdkafka callbacks.
#[derive(Debug, Default)]
struct Shared {
    /// Kept by the rebalance callbacks.
    assignment: Mutex<BTreeSet<TopicPartition>>,
    /// Next offset to read per partition, as messages are returned (or sought).
    positions: Mutex<HashMap<TopicPartition, i64>>,
}

/// The consumer's librdkafka callbacks: rebalances, statistics, logs.
struct ConsumerCtx {
    group: String,
    metrics: BusMetrics,
    shared: Arc<Shared>,
}

/// The parts of librdkafka's statistics the lag is computed from.
#[derive(Deserialize)]
struct Stats {
    #[serde(default)]
    topics: HashMap<String, StatsTopic>,
}

#[derive(Deserialize)]
struct StatsTopic {
    #[serde(default)]
    partitions: HashMap<String, StatsPartition>,
}

fn invalid_offset() -> i64 {
    -1
}

#[derive(Deserialize)]
struct StatsPartition {
    partition: i32,
    #[serde(default = "invalid_offset")]
    hi_offset: i64,
    #[serde(default = "invalid_offset")]
    app_offset: i64,
    #[serde(default = "invalid_offset")]
    committed_offset: i64,
    #[serde(default = "invalid_offset")]
    consumer_lag: i64,
}

impl ConsumerCtx {
    fn lag_labels(&self, tp: &TopicPartition) -> [String; 3] {
        [
            self.group.clone(),
            tp.topic.clone(),
            tp.partition.to_string(),
        ]
    }

    fn forget(&self, tp: &TopicPartition) {
        let _ = self
            .metrics
            .consumer_lag
            .remove_label_values(&self.lag_labels(tp).each_ref().map(String::as_str));
    }
}

impl ClientContext for ConsumerCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", group = self.group, %error, "{reason}");
    }

    fn stats_raw(&self, statistics: &[u8]) {
        let stats: Stats = match serde_json::from_slice(statistics) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable librdkafka statistics");
                return;
            }
        };
        let assignment = lock(&self.shared.assignment);
        let positions = lock(&self.shared.positions);
        for (topic, t) in &stats.topics {
            for p in t.partitions.values() {
                if p.partition < 0 {
                    continue; // librdkafka's internal "unassigned" partition
                }
                let tp = TopicPartition::new(topic.clone(), p.partition);
                if !assignment.contains(&tp) {
                    continue;
                }
                let position = positions
                    .get(&tp)
                    .copied()
                    .or_else(|| (p.app_offset >= 0).then_some(p.app_offset))
                    .or_else(|| (p.committed_offset >= 0).then_some(p.committed_offset));
                let lag = match position {
                    Some(pos) if p.hi_offset >= 0 => (p.hi_offset - pos).max(0),
                    _ if p.consumer_lag >= 0 => p.consumer_lag,
                    _ => continue,
                };
                self.metrics
                    .consumer_lag
                    .with_label_values(&self.lag_labels(&tp).each_ref().map(String::as_str))
                    .set(lag);
            }
        }
    }
}

impl ConsumerContext for ConsumerCtx {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut assignment = lock(&self.shared.assignment);
                for e in tpl.elements() {
                    assignment.insert(TopicPartition::new(e.topic(), e.partition()));
                }
                tracing::info!(
                    group = self.group,
                    partitions = tpl.count(),
                    "kafka partitions assigned"
                );
            }
            Rebalance::Revoke(tpl) => {
                let mut assignment = lock(&self.shared.assignment);
                let mut positions = lock(&self.shared.positions);
                for e in tpl.elements() {
                    let tp = TopicPartition::new(e.topic(), e.partition());
                    assignment.remove(&tp);
                    positions.remove(&tp);
                    self.forget(&tp);
                }
                tracing::info!(
                    group = self.group,
                    partitions = tpl.count(),
                    "kafka partitions revoked"
                );
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = self.group, error = %e, "kafka rebalance failed");
            }
        }
    }
}

/// A member of a consumer group on Kafka.
struct KafkaConsumer {
    /// `None` only while dropping.
    consumer: Option<Arc<StreamConsumer<ConsumerCtx>>>,
    group: String,
    subscription: Vec<String>,
    shared: Arc<Shared>,
    metrics: BusMetrics,
    /// A consume error met after some messages were already taken: reported next poll.
    pending_error: Option<KafkaError>,
}

impl fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("group", &self.group)
            .field("subscription", &self.subscription)
            .field("assignment", &*lock(&self.shared.assignment))
            .finish_non_exhaustive()
    }
}

fn to_message(m: &BorrowedMessage<'_>) -> Message {
    Message {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        timestamp_ms: m.timestamp().to_millis().unwrap_or_else(now_ms),
    }
}

/// Consume errors librdkafka recovers from by itself (a broker restarting, a subscribed
/// topic not created yet): logged, not returned.
fn recovers(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)
    ) || (!matches!(e, KafkaError::MessageConsumptionFatal(_))
        && BusError::Kafka {
            op: "consume",
            source: e.clone(),
        }
        .is_retriable())
}

impl KafkaConsumer {
    fn consumer(&self) -> &Arc<StreamConsumer<ConsumerCtx>> {
        self.consumer
            .as_ref()
            .expect("consumer is only taken on drop")
    }

    fn owned(&self, tp: &TopicPartition) -> Result<(), BusError> {
        if lock(&self.shared.assignment).contains(tp) {
            Ok(())
        } else {
            Err(BusError::NotAssigned {
                group: self.group.clone(),
                topic: tp.topic.clone(),
                partition: tp.partition,
            })
        }
    }

    /// Runs a blocking librdkafka call on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&StreamConsumer<ConsumerCtx>) -> T + Send + 'static,
    ) -> T {
        let consumer = Arc::clone(self.consumer());
        tokio::task::spawn_blocking(move || f(&consumer))
            .await
            .expect("kafka consumer task panicked")
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Message>, BusError> {
        if let Some(e) = self.pending_error.take() {
            return Err(kafka("consume")(e));
        }
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let consumer = Arc::clone(self.consumer());
        let mut out = Vec::new();
        // wait for the first message
        while out.is_empty() {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Err(_elapsed) => return Ok(Vec::new()),
                Ok(Ok(m)) => out.push(to_message(&m)),
                Ok(Err(e)) if recovers(&e) => {
                    tracing::warn!(group = self.group, error = %e, "kafka consumer error (retrying)");
                }
                Ok(Err(e)) => return Err(kafka("consume")(e)),
            }
        }
        // then take what is already fetched, without waiting
        let mut stream = consumer.stream();
        let mut idle = 0;
        while out.len() < max && idle < 3 {
            match stream.next().now_or_never() {
                Some(Some(Ok(m))) => {
                    idle = 0;
                    out.push(to_message(&m));
                }
                Some(Some(Err(e))) if recovers(&e) => {
                    tracing::warn!(group = self.group, error = %e, "kafka consumer error (retrying)");
                }
                Some(Some(Err(e))) => {
                    self.pending_error = Some(e);
                    break;
                }
                // nothing ready, or an event (rebalance, statistics) was served
                Some(None) | None => idle += 1,
            }
        }
        drop(stream);
        let mut per_topic: BTreeMap<&str, u64> = BTreeMap::new();
        {
            let mut positions = lock(&self.shared.positions);
            for m in &out {
                *per_topic.entry(&m.topic).or_default() += 1;
                positions.insert(
                    TopicPartition::new(m.topic.clone(), m.partition),
                    m.offset + 1,
                );
            }
        }
        for (topic, n) in per_topic {
            self.metrics
                .consumed_messages
                .with_label_values(&[topic])
                .inc_by(n);
        }
        Ok(out)
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), BusError> {
        if offsets.is_empty() {
            // an empty list would make librdkafka commit the whole assignment's positions
            return Ok(());
        }
        let mut tpl = TopicPartitionList::with_capacity(offsets.len());
        for (tp, offset) in offsets {
            self.owned(tp)?;
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                .map_err(kafka("commit"))?;
        }
        self.blocking(move |c| c.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(kafka("commit"))
    }

    async fn seek(&mut self, topic: &str, partition: i32, to: SeekTo) -> Result<(), BusError> {
        let tp = TopicPartition::new(topic, partition);
        self.owned(&tp)?;
        let offset = match to {
            SeekTo::Beginning => Offset::Beginning,
            SeekTo::End => Offset::End,
            SeekTo::Offset(o) => Offset::Offset(o.max(0)),
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, offset)
            .map_err(kafka("seek"))?;
        let result = self
            .blocking(move |c| c.seek_partitions(tpl, OP_TIMEOUT))
            .await
            .map_err(kafka("seek"))?;
        for e in result.elements() {
            e.error().map_err(kafka("seek"))?;
        }
        let mut positions = lock(&self.shared.positions);
        match to {
            SeekTo::Offset(o) => positions.insert(tp, o.max(0)),
            SeekTo::Beginning | SeekTo::End => positions.remove(&tp),
        };
        Ok(())
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        lock(&self.shared.assignment).iter().cloned().collect()
    }

    async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, BusError> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut tpl = TopicPartitionList::with_capacity(partitions.len());
        for tp in partitions {
            tpl.add_partition(&tp.topic, tp.partition);
        }
        let tpl = self
            .blocking(move |c| c.committed_offsets(tpl, OP_TIMEOUT))
            .await
            .map_err(kafka("fetch committed offsets"))?;
        Ok(tpl
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) if o >= 0 => {
                    Some((TopicPartition::new(e.topic(), e.partition()), o))
                }
                _ => None,
            })
            .collect())
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        for tp in lock(&self.shared.assignment).iter() {
            let _ = self.metrics.consumer_lag.remove_label_values(&[
                &self.group,
                &tp.topic,
                &tp.partition.to_string(),
            ]);
        }
        // closing leaves the group (a request to the coordinator): not on a runtime thread
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || drop(consumer));
            }
            Err(_) => drop(consumer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed() {
        let s = parse_url("kafka://a:9092,[::1]:19092/?security.protocol=PLAINTEXT&replication=3&connect_attempts=2&sasl.password=p%26w")
            .unwrap();
        assert_eq!(s.url, "kafka://a:9092,[::1]:19092");
        assert_eq!(s.brokers, "a:9092,[::1]:19092");
        assert_eq!(s.replication, 3);
        assert_eq!(s.connect_attempts, 2);
        assert!(
            s.properties
                .contains(&("sasl.password".into(), "p&w".into()))
        );
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("p&w") && debug.contains("sasl.password=***"),
            "{debug}"
        );
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason_and_no_secret() {
        for bad in [
            "",
            "kafka://",
            "kafka://:9092",
            "kafka://host",
            "kafka://host:",
            "kafka://host:0",
            "kafka://host:99999",
            "kafka://host:abc",
            "kafka://a:1,,b:2",
            "kafka://::1:9092",
            "kafka://u:secret@host:9092",
            "kafka://host:9092?replication=0",
            "kafka://host:9092?connect_attempts=x",
            "kafka://host:9092?flag",
            "kafka://host:9092?group.id=g",
            "kafka://host:9092?a=%zz",
            "kafka://host:9092?sasl.password=secret&sasl.password=secret",
            "http://host:9092",
        ] {
            match parse_url(bad) {
                Err(BusError::InvalidUrl { url, reason }) => {
                    assert!(!reason.is_empty());
                    assert!(!url.contains("secret"), "{url}");
                    let msg = BusError::InvalidUrl { url, reason }.to_string();
                    assert!(!msg.contains("secret"), "{msg}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn redaction_hides_secret_values_only() {
        assert_eq!(
            redact("kafka://h:1?sasl.username=u&sasl.password=p&ssl.key.password=k"),
            "kafka://h:1?sasl.username=u&sasl.password=***&ssl.key.password=***"
        );
        assert_eq!(redact("kafka://u:p@h:1"), "kafka://***@h:1");
    }

    #[test]
    fn statistics_parse() {
        let json = br#"{"name":"x","topics":{"t":{"topic":"t","partitions":{
            "0":{"partition":0,"hi_offset":10,"app_offset":4,"committed_offset":2,"consumer_lag":8},
            "-1":{"partition":-1,"hi_offset":-1,"app_offset":-1,"committed_offset":-1,"consumer_lag":-1}}}}}"#;
        let registry = prometheus::Registry::new();
        let metrics = BusMetrics::new(&registry);
        let shared = Arc::new(Shared::default());
        lock(&shared.assignment).insert(TopicPartition::new("t", 0));
        let ctx = ConsumerCtx {
            group: "g".into(),
            metrics: metrics.clone(),
            shared: Arc::clone(&shared),
        };
        ctx.stats_raw(json);
        assert_eq!(
            metrics
                .consumer_lag
                .with_label_values(&["g", "t", "0"])
                .get(),
            6
        );
        lock(&shared.positions).insert(TopicPartition::new("t", 0), 10);
        ctx.stats_raw(json);
        assert_eq!(
            metrics
                .consumer_lag
                .with_label_values(&["g", "t", "0"])
                .get(),
            0
        );
    }
}
