//! The ingest settings (`[ingest]` in flywheel.toml).

use std::time::Duration;

use serde::Deserialize;

use crate::IngestError;

/// How ingest groups samples into changesets and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// The consumer group of the ingest services.
    pub group: String,
    /// Only these tenants' samples topics; empty (the default): every tenant's, including
    /// tenants whose topics are created later.
    pub tenants: Vec<String>,
    /// A dataset's open changeset is committed once it holds this many samples.
    pub changeset_samples: usize,
    /// ... or once its first sample has waited this long (processing time).
    #[serde(with = "flywheel_schemas::duration_text")]
    pub changeset_age: Duration,
    /// ... or once its payloads reach this many bytes.
    pub changeset_bytes: u64,
    /// A payload segment object holds at most this many bytes (a single larger sample gets
    /// a segment of its own).
    pub segment_bytes: u64,
    /// Larger inline payloads are refused (`payload_too_large`).
    pub max_payload_bytes: u64,
    /// Samples of a dataset that does not exist create it; when false they are refused
    /// (`unknown_dataset`) until the dataset is created.
    pub auto_create_datasets: bool,
    /// Messages taken from the bus per poll.
    pub poll_messages: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            group: "flywheel-ingest".into(),
            tenants: Vec::new(),
            changeset_samples: 10_000,
            changeset_age: Duration::from_millis(500),
            changeset_bytes: 256 * MIB,
            segment_bytes: 64 * MIB,
            max_payload_bytes: 8 * MIB,
            auto_create_datasets: true,
            poll_messages: 2_000,
        }
    }
}

const MIB: u64 = 1024 * 1024;

impl IngestConfig {
    /// What ingest subscribes to.
    pub fn subscription(&self) -> flywheel_topics::Subscription {
        use flywheel_topics::{Subscription, Tenant, TopicKind};
        if self.tenants.is_empty() {
            return Subscription::Pattern(TopicKind::Samples.pattern());
        }
        Subscription::Topics(
            self.tenants
                .iter()
                .filter_map(|t| Tenant::new(t).ok())
                .map(|t| TopicKind::Samples.topic(&t))
                .collect(),
        )
    }

    /// Checks the values; an error names the setting.
    pub fn validate(&self) -> Result<(), IngestError> {
        let bad =
            |setting: &'static str, reason: String| Err(IngestError::Config { setting, reason });
        if self.group.trim().is_empty() {
            return bad("ingest.group", "must not be empty".into());
        }
        for t in &self.tenants {
            flywheel_topics::Tenant::new(t).map_err(|e| IngestError::Config {
                setting: "ingest.tenants",
                reason: e.to_string(),
            })?;
        }
        if self.changeset_samples == 0 {
            return bad("ingest.changeset_samples", "must be at least 1".into());
        }
        if self.changeset_age.is_zero() {
            return bad("ingest.changeset_age", "must be longer than 0s".into());
        }
        if self.segment_bytes < 1024 {
            return bad(
                "ingest.segment_bytes",
                format!("{} is too small (at least 1024)", self.segment_bytes),
            );
        }
        if self.changeset_bytes < self.segment_bytes.min(self.max_payload_bytes) {
            return bad(
                "ingest.changeset_bytes",
                format!(
                    "{} is smaller than a segment or a payload may be",
                    self.changeset_bytes
                ),
            );
        }
        if self.max_payload_bytes == 0 {
            return bad("ingest.max_payload_bytes", "must be at least 1".into());
        }
        if self.poll_messages == 0 {
            return bad("ingest.poll_messages", "must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        IngestConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_setting() {
        let cases: Vec<(IngestConfig, &str)> = vec![
            (
                IngestConfig {
                    changeset_samples: 0,
                    ..Default::default()
                },
                "ingest.changeset_samples",
            ),
            (
                IngestConfig {
                    changeset_age: Duration::ZERO,
                    ..Default::default()
                },
                "ingest.changeset_age",
            ),
            (
                IngestConfig {
                    segment_bytes: 10,
                    ..Default::default()
                },
                "ingest.segment_bytes",
            ),
            (
                IngestConfig {
                    group: " ".into(),
                    ..Default::default()
                },
                "ingest.group",
            ),
        ];
        for (config, setting) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(setting), "{err}");
        }
    }

    #[test]
    fn parses_from_toml_and_refuses_unknown_keys() {
        let c: IngestConfig =
            toml::from_str("changeset_samples = 5\nchangeset_age = \"2s\"").unwrap();
        assert_eq!(c.changeset_samples, 5);
        assert_eq!(c.changeset_age, Duration::from_secs(2));
        let err = toml::from_str::<IngestConfig>("changeset_size = 5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `changeset_size`"), "{err}");
        let err = toml::from_str::<IngestConfig>("changeset_age = \"soon\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"soon\" is not a duration"), "{err}");
        let err = toml::from_str::<IngestConfig>("changeset_samples = \"many\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid type"), "{err}");
    }
}
