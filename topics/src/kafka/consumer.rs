//! A member of a consumer group on Kafka: polling, commits, seeks, and the librdkafka
//! callbacks that keep track of the partitions assigned to it (lag: see `stats`).

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::config::{Settings, kafka};
use super::{OP_TIMEOUT, forward_log, lock};
use crate::metrics::BusMetrics;
use crate::{
    BusError, Consumer, ConsumerConfig, Message, SeekTo, Subscription, TopicPartition,
    offsets_after, validate_topic_name,
};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// State the consumer shares with its librdkafka callbacks.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Kept by the rebalance callbacks.
    pub(super) assignment: Mutex<BTreeSet<TopicPartition>>,
    /// Next offset to read per partition, as messages are returned (or sought).
    pub(super) positions: Mutex<HashMap<TopicPartition, i64>>,
}

/// The consumer's librdkafka callbacks: rebalances, statistics, logs.
pub(super) struct ConsumerCtx {
    pub(super) group: String,
    pub(super) metrics: BusMetrics,
    pub(super) shared: Arc<Shared>,
}

impl ClientContext for ConsumerCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", group = self.group, %error, "{reason}");
    }

    fn stats_raw(&self, statistics: &[u8]) {
        self.update_lag(statistics);
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
pub(super) struct KafkaConsumer {
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

pub(super) fn to_message(m: &BorrowedMessage<'_>) -> Message {
    Message {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(Bytes::copy_from_slice),
        value: m.payload().map(Bytes::copy_from_slice).unwrap_or_default(),
        timestamp_ms: m.timestamp().to_millis().unwrap_or_else(now_ms),
    }
}

/// Consume errors librdkafka recovers from by itself (a broker restarting, a subscribed
/// topic not created yet): logged, not returned.
pub(super) fn recovers(e: &KafkaError) -> bool {
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
    /// Joins the group `config` names (after checking its names), subscribed to its topics.
    pub(super) fn subscribe(
        settings: &Settings,
        metrics: &BusMetrics,
        config: ConsumerConfig,
    ) -> Result<Self, BusError> {
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
            metrics: metrics.clone(),
            shared: Arc::clone(&shared),
        };
        let consumer: StreamConsumer<ConsumerCtx> = settings
            .consumer_config(&config.group, config.start)
            .create_with_context(context)
            .map_err(kafka("create consumer"))?;
        if !subscription.is_empty() {
            let refs: Vec<&str> = subscription.iter().map(String::as_str).collect();
            consumer.subscribe(&refs).map_err(kafka("subscribe"))?;
        }
        Ok(KafkaConsumer {
            consumer: Some(Arc::new(consumer)),
            group: config.group,
            subscription,
            shared,
            metrics: metrics.clone(),
            pending_error: None,
        })
    }

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
        lock(&self.shared.positions).extend(offsets_after(&out));
        self.metrics.consumed(&out);
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
