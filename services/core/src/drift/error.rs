//! Why a drift statistic or detector refused its input.

use std::fmt;

/// Where a refused sample came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The reference window of a statistic.
    Reference,
    /// The current window of a statistic.
    Current,
    /// The samples handed to [`DriftDetector::observe`](super::DriftDetector::observe) or
    /// [`observe_batch`](super::DriftDetector::observe_batch).
    Incoming,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Reference => "reference window",
            Side::Current => "current window",
            Side::Incoming => "incoming samples",
        })
    }
}

/// Errors of the drift statistics, criteria and detector.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriftError {
    /// A window holds no sample.
    #[error("the {side} is empty")]
    EmptyWindow {
        /// Which window.
        side: Side,
    },
    /// A sample has no features at all.
    #[error("sample {row} of the {side} has no features")]
    NoFeatures {
        /// Where the sample came from.
        side: Side,
        /// Its index there.
        row: usize,
    },
    /// A sample's feature count differs from the others'.
    #[error("sample {row} of the {side} has {found} features, expected {expected}")]
    DimensionMismatch {
        /// Where the sample came from.
        side: Side,
        /// Its index there.
        row: usize,
        /// The feature count of the stream (or of the reference window).
        expected: usize,
        /// The sample's.
        found: usize,
    },
    /// A feature is NaN or infinite.
    #[error("feature {feature} of sample {row} of the {side} is not finite ({value})")]
    NonFinite {
        /// Where the sample came from.
        side: Side,
        /// Its index there.
        row: usize,
        /// The feature's index.
        feature: usize,
        /// Its value.
        value: f64,
    },
    /// A configuration value or a statistic's parameter is out of range; `field` is the
    /// configuration key, e.g. `drift.window`.
    #[error("{field} {reason}")]
    Config {
        /// The key.
        field: &'static str,
        /// What it must be, e.g. `must be at least 2`.
        reason: String,
    },
    /// A stored detector state does not fit the configuration it is resumed with (or is
    /// corrupt).
    #[error("stored drift state does not fit the configuration: {0}")]
    State(String),
}

impl DriftError {
    /// A [`DriftError::Config`].
    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        DriftError::Config {
            field,
            reason: reason.into(),
        }
    }
}
