//! The supervisor's settings (`[supervisor]` in flywheel.toml).

use std::time::Duration;

use serde::Deserialize;

use crate::SupervisorError;

/// How the supervisor finds its work and how often it saves it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorConfig {
    /// The consumer group of the supervisors. A tenant's pipelines topic has one
    /// partition: the member it is assigned to runs that tenant's pipelines.
    pub group: String,
    /// Only these tenants; empty (the default): every tenant.
    pub tenants: Vec<String>,
    /// How often pipelines and dataset heads are read again from the metadata store,
    /// whatever the topics said.
    #[serde(with = "flywheel_schemas::duration_text")]
    pub rescan: Duration,
    /// A pipeline's policy state is checkpointed at most this often (and when the
    /// supervisor stops). A restart folds again the changesets after the checkpoint.
    #[serde(with = "flywheel_schemas::duration_text")]
    pub checkpoint_every: Duration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            group: "flywheel-supervisor".into(),
            tenants: Vec::new(),
            rescan: Duration::from_secs(5),
            checkpoint_every: Duration::from_secs(30),
        }
    }
}

impl SupervisorConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), SupervisorError> {
        let bad = |setting, reason: &str| {
            Err(SupervisorError::Config {
                setting,
                reason: reason.to_owned(),
            })
        };
        if self.group.trim().is_empty() {
            return bad("supervisor.group", "must not be empty");
        }
        if self.rescan < Duration::from_millis(10) {
            return bad("supervisor.rescan", "must be at least 10ms");
        }
        if self.checkpoint_every.is_zero() {
            return bad("supervisor.checkpoint_every", "must be longer than zero");
        }
        for t in &self.tenants {
            if let Err(e) = flywheel_topics::Tenant::new(t) {
                return Err(SupervisorError::Config {
                    setting: "supervisor.tenants",
                    reason: e.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Whether the supervisor runs this tenant's pipelines.
    pub fn serves(&self, tenant: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(SupervisorConfig::default().validate().is_ok());
        let c: SupervisorConfig =
            toml::from_str("rescan = \"1s\"\ncheckpoint_every = \"2m\"\n").expect("parses");
        assert_eq!(c.checkpoint_every, Duration::from_secs(120));
        let e = SupervisorConfig {
            rescan: Duration::ZERO,
            ..SupervisorConfig::default()
        };
        assert!(
            e.validate()
                .unwrap_err()
                .to_string()
                .contains("supervisor.rescan")
        );
        let e = SupervisorConfig {
            tenants: vec!["Not A Tenant".into()],
            ..SupervisorConfig::default()
        };
        assert!(
            e.validate()
                .unwrap_err()
                .to_string()
                .contains("supervisor.tenants")
        );
        assert!(toml::from_str::<SupervisorConfig>("rescn = \"1s\"").is_err());
        assert!(toml::from_str::<SupervisorConfig>("rescan = \"often\"").is_err());
    }
}
