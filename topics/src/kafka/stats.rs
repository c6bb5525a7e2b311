//! Consumer lag from librdkafka's statistics (emitted every `statistics.interval.ms`):
//! per assigned partition, the high watermark minus this member's position.

use std::collections::HashMap;

use serde::Deserialize;

use super::consumer::ConsumerCtx;
use super::lock;
use crate::TopicPartition;

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

    /// Removes the lag gauge of a partition this member no longer owns.
    pub(super) fn forget(&self, tp: &TopicPartition) {
        let _ = self
            .metrics
            .consumer_lag
            .remove_label_values(&self.lag_labels(tp).each_ref().map(String::as_str));
    }

    /// Sets the lag gauge of each assigned partition from one statistics report (JSON).
    pub(super) fn update_lag(&self, statistics: &[u8]) {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rdkafka::client::ClientContext as _;

    use super::*;
    use crate::kafka::consumer::Shared;
    use crate::metrics::BusMetrics;

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
