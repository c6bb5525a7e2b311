//! Prometheus metrics of the bus, registered in the process's registry (never a global).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Metric families every bus backend updates.
#[derive(Debug, Clone)]
pub struct BusMetrics {
    /// `flywheel_bus_produced_messages_total{topic}`
    pub produced_messages: IntCounterVec,
    /// `flywheel_bus_produced_bytes_total{topic}`
    pub produced_bytes: IntCounterVec,
    /// `flywheel_bus_consumed_messages_total{topic}`
    pub consumed_messages: IntCounterVec,
    /// `flywheel_bus_produce_seconds{backend}`: time from produce to acknowledgement of a batch.
    pub produce_seconds: HistogramVec,
    /// `flywheel_bus_consumer_lag_messages{group,topic,partition}`
    pub consumer_lag: IntGaugeVec,
    /// `flywheel_bus_corrupt_segments_total`: damaged embedded log segments found.
    pub corrupt_segments: IntCounter,
    /// `flywheel_bus_fsync_seconds`: durations of the embedded log's fsyncs.
    pub fsync_seconds: Histogram,
}

impl BusMetrics {
    /// Creates the families and registers them. Registering twice in one registry (two
    /// buses in one process) reuses the families already there.
    pub fn new(registry: &Registry) -> Self {
        let m = Self {
            produced_messages: IntCounterVec::new(
                Opts::new(
                    "flywheel_bus_produced_messages_total",
                    "Messages acknowledged by the bus.",
                ),
                &["topic"],
            )
            .expect("valid metric"),
            produced_bytes: IntCounterVec::new(
                Opts::new(
                    "flywheel_bus_produced_bytes_total",
                    "Bytes of message values acknowledged by the bus.",
                ),
                &["topic"],
            )
            .expect("valid metric"),
            consumed_messages: IntCounterVec::new(
                Opts::new(
                    "flywheel_bus_consumed_messages_total",
                    "Messages delivered to consumers.",
                ),
                &["topic"],
            )
            .expect("valid metric"),
            produce_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "flywheel_bus_produce_seconds",
                    "Time from producing a batch to its acknowledgement.",
                )
                .buckets(prometheus::exponential_buckets(0.0001, 4.0, 10).expect("buckets")),
                &["backend"],
            )
            .expect("valid metric"),
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "flywheel_bus_consumer_lag_messages",
                    "Messages in a partition not yet read by the consumer group's member that owns it.",
                ),
                &["group", "topic", "partition"],
            )
            .expect("valid metric"),
            corrupt_segments: IntCounter::new(
                "flywheel_bus_corrupt_segments_total",
                "Damaged segments found in the embedded log (see the logs for where).",
            )
            .expect("valid metric"),
            fsync_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "flywheel_bus_fsync_seconds",
                    "Durations of the embedded log's fsyncs (each acknowledges a group of writes).",
                )
                .buckets(prometheus::exponential_buckets(0.00005, 4.0, 10).expect("buckets")),
            )
            .expect("valid metric"),
        };
        m.register(registry);
        m
    }

    /// Counts an acknowledged batch.
    pub(crate) fn produced(
        &self,
        backend: &str,
        topic: &str,
        messages: usize,
        bytes: usize,
        elapsed: std::time::Duration,
    ) {
        self.produced_messages
            .with_label_values(&[topic])
            .inc_by(messages as u64);
        self.produced_bytes
            .with_label_values(&[topic])
            .inc_by(bytes as u64);
        self.produce_seconds
            .with_label_values(&[backend])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts the messages of one poll, per topic.
    pub(crate) fn consumed(&self, messages: &[crate::Message]) {
        let mut per_topic: std::collections::BTreeMap<&str, u64> =
            std::collections::BTreeMap::new();
        for m in messages {
            *per_topic.entry(&m.topic).or_default() += 1;
        }
        for (topic, n) in per_topic {
            self.consumed_messages.with_label_values(&[topic]).inc_by(n);
        }
    }

    fn register(&self, registry: &Registry) {
        let collectors: [Box<dyn prometheus::core::Collector>; 7] = [
            Box::new(self.produced_messages.clone()),
            Box::new(self.produced_bytes.clone()),
            Box::new(self.consumed_messages.clone()),
            Box::new(self.produce_seconds.clone()),
            Box::new(self.consumer_lag.clone()),
            Box::new(self.corrupt_segments.clone()),
            Box::new(self.fsync_seconds.clone()),
        ];
        for c in collectors {
            // AlreadyReg only: the families of an earlier bus in this registry stay in use
            // by it, this one counts separately (tests open several buses per registry).
            let _ = registry.register(c);
        }
    }
}
