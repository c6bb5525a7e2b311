//! Helpers shared by the bus test suites.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use flywheel_topics::{Bus, BusMetrics, Consumer, Message, connect};
use prometheus::Registry;

/// A bus under test and what keeps it alive.
pub struct Fixture {
    pub bus: Arc<dyn Bus>,
    pub registry: Registry,
    pub kind: &'static str,
    _dir: Option<tempfile::TempDir>,
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

pub async fn embedded() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::new();
    let metrics = BusMetrics::new(&registry);
    let url = format!("embedded://{}", dir.path().join("bus").display());
    let bus = connect(&url, &metrics).await.expect("open embedded bus");
    Some(Fixture {
        bus,
        registry,
        kind: "embedded",
        _dir: Some(dir),
    })
}

/// Two client settings for tansu 0.6, the broker the tests run against; Apache Kafka needs
/// neither. tansu cannot serve a fetch that starts inside a record batch (it returns the
/// batches that start after the offset, or nothing inside the newest one, so a group resuming
/// mid-batch or a seek to such an offset skips records or stalls), and its ListOffsets
/// answers the newest batch's first offset + 1 as the high watermark: one record per batch
/// keeps every offset at a batch start and the watermark right. And it holds a fetch for the
/// whole `fetch.wait.max.ms` even when data is there.
pub const TANSU_SETTINGS: &str = "batch.num.messages=1&fetch.wait.max.ms=10";

/// The Kafka broker under test: `FLYWHEEL_TEST_KAFKA=host:port`. Without it the test is
/// skipped with a printed reason, unless `FLYWHEEL_REQUIRE_KAFKA=1` makes that a failure.
pub fn kafka_address() -> Option<String> {
    match std::env::var("FLYWHEEL_TEST_KAFKA") {
        Ok(a) if !a.is_empty() => Some(a),
        _ => {
            assert!(
                std::env::var("FLYWHEEL_REQUIRE_KAFKA").as_deref() != Ok("1"),
                "FLYWHEEL_REQUIRE_KAFKA=1 but FLYWHEEL_TEST_KAFKA is not set"
            );
            eprintln!("skipped: FLYWHEEL_TEST_KAFKA is not set (scripts/test.sh starts a broker)");
            None
        }
    }
}

pub async fn kafka() -> Option<Fixture> {
    let addr = kafka_address()?;
    let registry = Registry::new();
    let metrics = BusMetrics::new(&registry);
    let url = format!("kafka://{addr}?{TANSU_SETTINGS}");
    let bus = connect(&url, &metrics).await.expect("connect to kafka");
    Some(Fixture {
        bus,
        registry,
        kind: "kafka",
        _dir: None,
    })
}

/// Polls until `n` messages arrived or `within` passed.
pub async fn collect(consumer: &mut dyn Consumer, n: usize, within: Duration) -> Vec<Message> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let batch = consumer
            .poll(n - out.len(), left.min(Duration::from_secs(1)))
            .await
            .expect("poll");
        out.extend(batch);
    }
    out
}

/// Polls for `quiet` and returns whatever arrived (to check that nothing more comes).
pub async fn drain(consumer: &mut dyn Consumer, quiet: Duration) -> Vec<Message> {
    let deadline = Instant::now() + quiet;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return out;
        }
        out.extend(consumer.poll(1000, left).await.expect("poll"));
    }
}

/// The value of a gauge or counter with these labels in the registry, if present.
pub fn metric(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    for family in registry.gather() {
        if family.name() != name {
            continue;
        }
        let gauge = family.get_field_type() == prometheus::proto::MetricType::GAUGE;
        for m in family.get_metric() {
            let matches = labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            });
            if matches {
                return Some(if gauge {
                    m.get_gauge().get_value()
                } else {
                    m.get_counter().get_value()
                });
            }
        }
    }
    None
}
