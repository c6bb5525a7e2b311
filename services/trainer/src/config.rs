//! The trainer's settings (`[trainer]` in flywheel.toml).

use std::time::Duration;

use serde::Deserialize;

use crate::TrainerError;

/// How the trainer finds its work and loads samples.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainerConfig {
    /// The consumer group of the trainers: each training set is trained by one member.
    pub group: String,
    /// Only these tenants; empty (the default): every tenant.
    pub tenants: Vec<String>,
    /// Windows of batches the loader reads and decodes at once.
    pub workers: usize,
    /// Batches ready ahead of the training loop.
    pub prefetch: usize,
    /// Bytes of decoded inputs the node-local cache holds.
    pub cache_bytes: u64,
    /// Longest wait before a training set that failed for a passing reason (the object
    /// store, the metadata store) is tried again.
    #[serde(with = "flywheel_schemas::duration_text")]
    pub max_backoff: Duration,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            group: "flywheel-trainer".into(),
            tenants: Vec::new(),
            workers: 4,
            prefetch: 8,
            cache_bytes: 512 * 1024 * 1024,
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl TrainerConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), TrainerError> {
        let bad = |setting, reason: &str| {
            Err(TrainerError::Config {
                setting,
                reason: reason.to_owned(),
            })
        };
        if self.group.trim().is_empty() {
            return bad("trainer.group", "must not be empty");
        }
        if !(1..=256).contains(&self.workers) {
            return bad("trainer.workers", "must be 1 to 256");
        }
        if !(1..=4096).contains(&self.prefetch) {
            return bad("trainer.prefetch", "must be 1 to 4096");
        }
        if self.max_backoff < Duration::from_millis(10) {
            return bad("trainer.max_backoff", "must be at least 10ms");
        }
        for t in &self.tenants {
            if let Err(e) = flywheel_topics::Tenant::new(t) {
                return Err(TrainerError::Config {
                    setting: "trainer.tenants",
                    reason: e.to_string(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(TrainerConfig::default().validate().is_ok());
        let c: TrainerConfig =
            toml::from_str("workers = 2\ncache_bytes = 1024\nmax_backoff = \"2s\"\n").unwrap();
        assert_eq!((c.workers, c.cache_bytes), (2, 1024));
        assert_eq!(c.max_backoff, Duration::from_secs(2));
        for (c, want) in [
            (
                TrainerConfig {
                    workers: 0,
                    ..TrainerConfig::default()
                },
                "trainer.workers",
            ),
            (
                TrainerConfig {
                    prefetch: 0,
                    ..TrainerConfig::default()
                },
                "trainer.prefetch",
            ),
            (
                TrainerConfig {
                    group: " ".into(),
                    ..TrainerConfig::default()
                },
                "trainer.group",
            ),
            (
                TrainerConfig {
                    tenants: vec!["Not A Tenant".into()],
                    ..TrainerConfig::default()
                },
                "trainer.tenants",
            ),
        ] {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        assert!(toml::from_str::<TrainerConfig>("worker = 2").is_err());
        assert!(toml::from_str::<TrainerConfig>("max_backoff = \"soon\"").is_err());
    }
}
