//! The drift detector: two windows over one stream of samples, evaluated every few samples.
//!
//! The model of windows, with `W = window`:
//!
//! - The **reference** window holds `W` samples: the first `W` of the stream, and after
//!   each firing the current window of that moment (the newest data when the retraining
//!   starts). Until it is full nothing is evaluated.
//! - The **current** window holds the last `W` samples since the reference was fixed (a
//!   ring; older ones fall out).
//! - Once the current window is full, and then every `every` samples, the statistic scores
//!   current against reference and the criterion decides. On firing the current window
//!   becomes the reference and the current window starts empty again.
//!
//! Both windows have the same size, so the score of two windows from one distribution has
//! the same spread at every evaluation, before and after firings: a threshold means the
//! same thing throughout, and the scores a dynamic criterion compares are alike. An abrupt
//! shift that the criterion sees in a whole window fires once it shows in enough of the
//! current window, at most `W + every` samples after it. As that window (part old, part
//! new) becomes the reference, it may fire once more, `W` samples later, against the first
//! window entirely after the shift, and is quiet from then on.
//!
//! State is bounded: at most `2 W` samples of `d` features, `8 d` bytes each in memory
//! (`16 W d` bytes in all), plus the criterion's history (8 bytes a score) and a few
//! counters. Serialized as JSON a feature takes up to 25 bytes.

use serde::{Deserialize, Serialize};

use super::criterion::{Criterion, ScoreHistory};
use super::{
    DEFAULT_MMD_MAX_SAMPLES, DEFAULT_PSI_BINS, DriftError, Metric, Side, Statistic, check_sample,
};

/// The largest `window` a detector accepts.
pub const MAX_WINDOW: usize = 100_000;

/// The largest `mmd_max_samples`: the MMD costs O(d c²) in it.
const MAX_MMD_SAMPLES: usize = 20_000;

/// A drift trigger's configuration (`[drift]` in a pipeline document).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftConfig {
    /// The statistic.
    pub metric: Metric,
    /// Samples in each of the reference and current windows, in 2..=[`MAX_WINDOW`].
    pub window: usize,
    /// Evaluate every this many samples once the current window is full, in 1..=window.
    pub every: usize,
    /// When a score fires.
    pub criterion: Criterion,
    /// Quantile bins per feature for PSI, at least 2 and (for PSI) at most `window`.
    #[serde(default = "default_psi_bins")]
    pub psi_bins: usize,
    /// Samples per window the MMD looks at (see [`mmd`](super::mmd)), in 2..=20000.
    #[serde(default = "default_mmd_max_samples")]
    pub mmd_max_samples: usize,
}

fn default_psi_bins() -> usize {
    DEFAULT_PSI_BINS
}

fn default_mmd_max_samples() -> usize {
    DEFAULT_MMD_MAX_SAMPLES
}

impl DriftConfig {
    /// A configuration with the default PSI bins and MMD cap.
    pub fn new(metric: Metric, window: usize, every: usize, criterion: Criterion) -> Self {
        DriftConfig {
            metric,
            window,
            every,
            criterion,
            psi_bins: DEFAULT_PSI_BINS,
            mmd_max_samples: DEFAULT_MMD_MAX_SAMPLES,
        }
    }

    /// Checks every field and the constraints between them; errors name the field, e.g.
    /// `drift.window must be at least 2`.
    pub fn validate(&self) -> Result<(), DriftError> {
        let bad = |field, reason: String| Err(DriftError::config(field, reason));
        if self.window < 2 {
            return bad("drift.window", "must be at least 2".into());
        }
        if self.window > MAX_WINDOW {
            return bad("drift.window", format!("must be at most {MAX_WINDOW}"));
        }
        if self.every == 0 {
            return bad("drift.every", "must be at least 1".into());
        }
        if self.every > self.window {
            return bad(
                "drift.every",
                format!(
                    "must be at most drift.window ({}), or samples would leave the current \
                     window unexamined",
                    self.window
                ),
            );
        }
        if self.psi_bins < 2 {
            return bad("drift.psi_bins", "must be at least 2".into());
        }
        if self.metric == Metric::Psi && self.psi_bins > self.window {
            return bad(
                "drift.psi_bins",
                format!("must be at most drift.window ({})", self.window),
            );
        }
        if !(2..=MAX_MMD_SAMPLES).contains(&self.mmd_max_samples) {
            return bad(
                "drift.mmd_max_samples",
                format!("must be in 2..={MAX_MMD_SAMPLES}"),
            );
        }
        self.criterion.validate()
    }

    /// The statistic with its parameters.
    pub fn statistic(&self) -> Statistic {
        match self.metric {
            Metric::Ks => Statistic::Ks,
            Metric::Mmd => Statistic::Mmd {
                max_samples: self.mmd_max_samples,
            },
            Metric::Psi => Statistic::Psi {
                bins: self.psi_bins,
            },
        }
    }
}

/// One evaluation of the detector.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// How many samples the detector had observed, this evaluation's last one included.
    pub sample: u64,
    /// The drift score.
    pub score: f64,
    /// For KS and PSI, the feature with the largest score.
    pub dimension: Option<usize>,
    /// The value the score had to exceed; `None` while a dynamic criterion warms up.
    pub bar: Option<f64>,
    /// Whether it fired (the current window is now the reference).
    pub fired: bool,
}

/// What a [`DriftDetector`] keeps between samples; the supervisor stores it (serde) and
/// hands it back to [`DriftDetector::resume`] after a restart. See the module
/// documentation for its size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftState {
    /// Features per sample; 0 until the first sample.
    pub(super) dims: usize,
    /// Samples observed.
    pub(super) observed: u64,
    /// The reference window, row after row (`dims` values a sample).
    pub(super) reference: Vec<f64>,
    /// The current window, a ring of rows; once full, row `head` is the oldest.
    pub(super) current: Vec<f64>,
    pub(super) head: usize,
    /// Samples observed since the reference was fixed.
    pub(super) since_reference: u64,
    /// The criterion's recent scores.
    pub(super) history: ScoreHistory,
}

/// The drift trigger of one stream: feed it samples, it says when the stream has drifted.
#[derive(Debug, Clone)]
pub struct DriftDetector {
    config: DriftConfig,
    statistic: Statistic,
    state: DriftState,
}

impl DriftDetector {
    /// A detector that has seen nothing yet.
    pub fn new(config: DriftConfig) -> Result<Self, DriftError> {
        Self::resume(config, DriftState::default())
    }

    /// A detector that continues from a stored state, made by a detector of the same
    /// configuration (its window sizes and criterion at least).
    pub fn resume(config: DriftConfig, state: DriftState) -> Result<Self, DriftError> {
        config.validate()?;
        check_state(&config, &state).map_err(DriftError::State)?;
        Ok(DriftDetector {
            statistic: config.statistic(),
            config,
            state,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DriftConfig {
        &self.config
    }

    /// The state to store.
    pub fn state(&self) -> &DriftState {
        &self.state
    }

    /// The state, giving up the detector.
    pub fn into_state(self) -> DriftState {
        self.state
    }

    /// How many samples it has observed.
    pub fn observed(&self) -> u64 {
        self.state.observed
    }

    /// The criterion's recent scores.
    pub fn history(&self) -> &ScoreHistory {
        &self.state.history
    }

    /// Takes one sample; returns the evaluation if this sample completed one. A sample
    /// whose feature count differs from the stream's first, or that has a non-finite
    /// feature, is refused and leaves the detector as it was. O(d) unless it evaluates;
    /// an evaluation costs what the statistic does (see the [module](super) table).
    pub fn observe(&mut self, features: &[f64]) -> Result<Option<Evaluation>, DriftError> {
        let dims = match self.state.dims {
            0 => features.len(),
            dims => dims,
        };
        check_sample(features, Side::Incoming, 0, dims)?;
        self.push(features)
    }

    /// Takes the samples in order; returns the evaluations they completed. The batch is
    /// checked first and refused as a whole (naming the sample's index in it) if any
    /// sample would be refused by [`observe`](Self::observe).
    pub fn observe_batch<R: AsRef<[f64]>>(
        &mut self,
        rows: &[R],
    ) -> Result<Vec<Evaluation>, DriftError> {
        let dims = match (self.state.dims, rows.first()) {
            (0, Some(first)) => first.as_ref().len(),
            (dims, _) => dims,
        };
        for (i, row) in rows.iter().enumerate() {
            check_sample(row.as_ref(), Side::Incoming, i, dims)?;
        }
        let mut out = Vec::new();
        for row in rows {
            out.extend(self.push(row.as_ref())?);
        }
        Ok(out)
    }

    /// Makes the last `window` samples observed the reference and empties the current
    /// window, as a firing does. For a supervisor that retrains for another reason (another
    /// trigger of an ensemble): later samples are then compared with what the model saw
    /// last. Does nothing while the first reference is still filling.
    pub fn rebase(&mut self) {
        let s = &mut self.state;
        let window = self.config.window;
        if s.dims == 0 || s.reference.len() < window * s.dims {
            return;
        }
        let latest = rows_in_order(s);
        let keep_old = window - latest.len() / s.dims;
        let mut reference = s.reference[s.reference.len() - keep_old * s.dims..].to_vec();
        reference.extend_from_slice(&latest);
        s.reference = reference;
        s.current.clear();
        s.head = 0;
        s.since_reference = 0;
    }

    /// Adds a checked sample and evaluates if it is time.
    fn push(&mut self, features: &[f64]) -> Result<Option<Evaluation>, DriftError> {
        let window = self.config.window;
        let s = &mut self.state;
        if s.dims == 0 {
            s.dims = features.len();
        }
        s.observed += 1;
        let d = s.dims;
        if s.reference.len() < window * d {
            s.reference.extend_from_slice(features);
            return Ok(None);
        }
        if s.current.len() < window * d {
            s.current.extend_from_slice(features);
        } else {
            s.current[s.head * d..(s.head + 1) * d].copy_from_slice(features);
            s.head = (s.head + 1) % window;
        }
        s.since_reference += 1;
        let due = s.since_reference >= window as u64
            && (s.since_reference - window as u64).is_multiple_of(self.config.every as u64);
        if due {
            self.evaluate().map(Some)
        } else {
            Ok(None)
        }
    }

    fn evaluate(&mut self) -> Result<Evaluation, DriftError> {
        let s = &mut self.state;
        let d = s.dims;
        let current = rows_in_order(s);
        let score = {
            let reference: Vec<&[f64]> = s.reference.chunks_exact(d).collect();
            let current: Vec<&[f64]> = current.chunks_exact(d).collect();
            self.statistic.score(&reference, &current)?
        };
        let decision = self.config.criterion.decide(&mut s.history, score.value);
        if decision.fired {
            s.reference = current;
            s.current.clear();
            s.head = 0;
            s.since_reference = 0;
        }
        Ok(Evaluation {
            sample: s.observed,
            score: score.value,
            dimension: score.dimension,
            bar: decision.bar,
            fired: decision.fired,
        })
    }
}

/// The current window's rows, oldest first.
fn rows_in_order(s: &DriftState) -> Vec<f64> {
    let split = s.head * s.dims;
    let mut rows = Vec::with_capacity(s.current.len());
    rows.extend_from_slice(&s.current[split..]);
    rows.extend_from_slice(&s.current[..split]);
    rows
}

/// Why `state` cannot have been made by a detector of `config`, if it cannot.
fn check_state(config: &DriftConfig, s: &DriftState) -> Result<(), String> {
    let (w, d) = (config.window, s.dims);
    if d == 0 {
        return if s.observed == 0 && s.reference.is_empty() && s.current.is_empty() {
            Ok(())
        } else {
            Err("it holds samples but no feature count".into())
        };
    }
    let rows = |v: &[f64]| v.len().is_multiple_of(d).then_some(v.len() / d);
    let (Some(reference), Some(current)) = (rows(&s.reference), rows(&s.current)) else {
        return Err(format!("its windows are not whole samples of {d} features"));
    };
    if reference > w || current > w {
        return Err(format!(
            "its windows hold {reference} and {current} samples, drift.window is {w}"
        ));
    }
    if reference < w && (current > 0 || s.since_reference > 0) {
        return Err("its current window fills before its reference".into());
    }
    if (current < w && s.head != 0) || (current == w && s.head >= w) {
        return Err(format!("its ring position {} is out of place", s.head));
    }
    let counters_fit = if current < w {
        s.since_reference == current as u64
    } else {
        s.since_reference >= current as u64
    };
    if !counters_fit || s.observed < (reference + current) as u64 {
        return Err("its counters do not match its windows".into());
    }
    if s.reference.iter().chain(&s.current).any(|v| !v.is_finite()) {
        return Err("its windows hold a non-finite feature".into());
    }
    if !config.criterion.admits(&s.history) {
        return Err(format!(
            "its history of {} scores does not fit drift.criterion",
            s.history.len()
        ));
    }
    Ok(())
}
