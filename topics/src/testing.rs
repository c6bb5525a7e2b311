//! Helpers for the tests of the services on the bus (feature `testing`): a bus that dies
//! at a chosen call, as a process killed there, and the Kafka broker of the tests.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::{Ack, Bus, BusError, Consumer, ConsumerConfig, Message, Record, TopicSpec};

/// Which calls of a [`FaultyBus`] count towards its crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// `produce`, `end_offset` and `read`.
    Writes,
    /// `produce` only.
    Produce,
}

/// A bus that dies at its `n`-th counted call: the call is made (if `after`) or not, then
/// it never answers, as a process killed there. Other calls go to the inner bus.
#[derive(Debug)]
pub struct FaultyBus {
    inner: Arc<dyn Bus>,
    countdown: AtomicI64,
    after: bool,
    counted: Counted,
    /// Counted calls made so far.
    pub calls: AtomicU64,
    /// Notified when it dies.
    pub tripped: Notify,
}

impl FaultyBus {
    /// A bus over `inner` that dies at counted call `crash_at` (never, for `None`).
    pub fn new(inner: Arc<dyn Bus>, crash_at: Option<u64>, after: bool) -> Arc<Self> {
        Self::counting(inner, crash_at, after, Counted::Writes)
    }

    /// The same, counting only the calls `counted` names.
    pub fn counting(
        inner: Arc<dyn Bus>,
        crash_at: Option<u64>,
        after: bool,
        counted: Counted,
    ) -> Arc<Self> {
        Arc::new(Self {
            inner,
            countdown: AtomicI64::new(
                crash_at.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
            ),
            after,
            counted,
            calls: AtomicU64::new(0),
            tripped: Notify::new(),
        })
    }

    async fn call<T>(
        &self,
        counts: bool,
        op: impl Future<Output = Result<T, BusError>>,
    ) -> Result<T, BusError> {
        if !counts {
            return op.await;
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.countdown.fetch_sub(1, Ordering::SeqCst) == 0 {
            if self.after {
                let _ = op.await;
            }
            self.tripped.notify_one();
            return std::future::pending().await;
        }
        op.await
    }
}

#[async_trait]
impl Bus for FaultyBus {
    async fn create_topics(&self, topics: &[TopicSpec]) -> Result<(), BusError> {
        self.inner.create_topics(topics).await
    }
    async fn partitions(&self, topic: &str) -> Result<u32, BusError> {
        self.inner.partitions(topic).await
    }
    async fn produce(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Ack>, BusError> {
        self.call(true, self.inner.produce(topic, records)).await
    }
    async fn subscribe(&self, config: ConsumerConfig) -> Result<Box<dyn Consumer>, BusError> {
        self.inner.subscribe(config).await
    }
    async fn end_offset(&self, topic: &str, partition: i32) -> Result<i64, BusError> {
        let counts = self.counted == Counted::Writes;
        self.call(counts, self.inner.end_offset(topic, partition))
            .await
    }
    async fn read(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Message>, BusError> {
        let counts = self.counted == Counted::Writes;
        self.call(
            counts,
            self.inner.read(topic, partition, from, max, timeout),
        )
        .await
    }
    fn url(&self) -> &str {
        self.inner.url()
    }
}

/// The URL of the Kafka broker of the tests (`FLYWHEEL_TEST_KAFKA`, which scripts/test.sh
/// sets), with one record per batch (tansu cannot fetch from inside a batch) and short
/// fetch waits. `None`, saying so, when it is not set; a failure instead if
/// `FLYWHEEL_REQUIRE_KAFKA=1`.
pub fn kafka_test_url() -> Option<String> {
    let Some(addr) = std::env::var("FLYWHEEL_TEST_KAFKA")
        .ok()
        .filter(|a| !a.is_empty())
    else {
        assert!(
            std::env::var("FLYWHEEL_REQUIRE_KAFKA").as_deref() != Ok("1"),
            "FLYWHEEL_REQUIRE_KAFKA=1 but FLYWHEEL_TEST_KAFKA is not set"
        );
        eprintln!("skipped: FLYWHEEL_TEST_KAFKA is not set (scripts/test.sh starts a broker)");
        return None;
    };
    Some(format!(
        "kafka://{addr}?batch.num.messages=1&fetch.wait.max.ms=10"
    ))
}
