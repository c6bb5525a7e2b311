//! Drift statistics between a reference window and a current window of samples' numeric
//! features, the criteria that turn a score into a decision, and the detector the supervisor
//! runs per pipeline.
//!
//! A *window* is a slice of samples, each sample a slice of `d` finite features (`&[f64]`,
//! the same `d` throughout). The statistics are pure functions over two windows:
//!
//! | statistic | score                                      | cost per evaluation              |
//! |-----------|--------------------------------------------|----------------------------------|
//! | [`ks`]    | max over features of the two-sample KS `D` | O(d (n log n + m log m))         |
//! | [`mmd`]   | biased MMD² with a Gaussian kernel         | O(d c²), c = min(window, cap)    |
//! | [`psi`]   | max over features of the PSI               | O(d (n log n + m log b))         |
//!
//! A [`Criterion`] decides whether a score fires: a fixed threshold, or a quantile of the
//! recent scores ([`ScoreHistory`] is its state). The [`DriftDetector`] keeps the two
//! windows of one stream and evaluates them every few samples; its [`DriftState`] is plain
//! data the supervisor stores, so a restarted supervisor makes the same decisions.

mod criterion;
mod detector;
mod error;
mod ks;
mod mmd;
mod psi;

#[cfg(test)]
mod detector_tests;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod testdata;

pub use criterion::{Criterion, Decision, ScoreHistory};
pub use detector::{DriftConfig, DriftDetector, DriftState, Evaluation, MAX_WINDOW};
pub use error::{DriftError, Side};
pub use ks::{ks, ks_p_value, ks_per_dimension};
pub use mmd::{DEFAULT_MMD_MAX_SAMPLES, MEDIAN_SAMPLES, mmd};
pub use psi::{DEFAULT_PSI_BINS, PSI_EMPTY_BIN, psi, psi_per_dimension};

use serde::{Deserialize, Serialize};

/// Which statistic a drift trigger computes, as a pipeline document names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Two-sample Kolmogorov–Smirnov, per feature.
    Ks,
    /// Maximum mean discrepancy over the whole feature vector.
    Mmd,
    /// Population stability index, per feature.
    Psi,
}

/// A statistic with its parameters, ready to score two windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    /// See [`ks`].
    Ks,
    /// See [`mmd`]; each window is cut down to at most `max_samples` samples.
    Mmd {
        /// The cap on samples per window.
        max_samples: usize,
    },
    /// See [`psi`], with `bins` quantile bins.
    Psi {
        /// Bins per feature.
        bins: usize,
    },
}

/// A window's drift score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// The score; larger means more drift.
    pub value: f64,
    /// For per-feature statistics (KS, PSI), the feature with the largest score (the first
    /// of equals); `None` for MMD.
    pub dimension: Option<usize>,
}

impl Statistic {
    /// Scores `current` against `reference`.
    pub fn score<A, B>(&self, reference: &[A], current: &[B]) -> Result<Score, DriftError>
    where
        A: AsRef<[f64]>,
        B: AsRef<[f64]>,
    {
        match *self {
            Statistic::Ks => ks(reference, current),
            Statistic::Mmd { max_samples } => Ok(Score {
                value: mmd(reference, current, max_samples)?,
                dimension: None,
            }),
            Statistic::Psi { bins } => psi(reference, current, bins),
        }
    }
}

/// The largest value and its index (the first of equals); `None` for an empty slice.
fn max_with_index(values: &[f64]) -> Option<Score> {
    let mut best: Option<Score> = None;
    for (i, &v) in values.iter().enumerate() {
        if best.is_none_or(|b| v > b.value) {
            best = Some(Score {
                value: v,
                dimension: Some(i),
            });
        }
    }
    best
}

/// Checks one window: not empty, every sample of `dims` features (of the first sample's
/// count if `dims` is `None`, and at least one), every feature finite. Returns the count.
fn check_window<R: AsRef<[f64]>>(
    rows: &[R],
    side: Side,
    dims: Option<usize>,
) -> Result<usize, DriftError> {
    let first = rows.first().ok_or(DriftError::EmptyWindow { side })?;
    let expected = dims.unwrap_or(first.as_ref().len());
    for (row, sample) in rows.iter().enumerate() {
        check_sample(sample.as_ref(), side, row, expected)?;
    }
    Ok(expected)
}

/// Checks one sample: `expected` features (at least one), all finite.
fn check_sample(sample: &[f64], side: Side, row: usize, expected: usize) -> Result<(), DriftError> {
    if sample.is_empty() {
        return Err(DriftError::NoFeatures { side, row });
    }
    if sample.len() != expected {
        return Err(DriftError::DimensionMismatch {
            side,
            row,
            expected,
            found: sample.len(),
        });
    }
    if let Some((feature, &value)) = sample.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(DriftError::NonFinite {
            side,
            row,
            feature,
            value,
        });
    }
    Ok(())
}

/// Checks both windows and returns their common feature count (the reference's).
fn check_pair<A, B>(reference: &[A], current: &[B]) -> Result<usize, DriftError>
where
    A: AsRef<[f64]>,
    B: AsRef<[f64]>,
{
    let dims = check_window(reference, Side::Reference, None)?;
    check_window(current, Side::Current, Some(dims))?;
    Ok(dims)
}

/// Copies feature `j` of every sample into `out`.
fn column_into<R: AsRef<[f64]>>(rows: &[R], j: usize, out: &mut Vec<f64>) {
    out.clear();
    out.extend(rows.iter().map(|r| r.as_ref()[j]));
}
