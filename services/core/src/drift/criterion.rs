//! Decision criteria: when does a drift score fire?

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::DriftError;

/// The most past scores a dynamic criterion may keep.
const MAX_HISTORY: usize = 100_000;

/// When a drift score fires, as a pipeline document names it (`criterion = { threshold =
/// 0.2 }` or `criterion = { dynamic_quantile = { quantile = 0.95, window = 50 } }`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Criterion {
    /// Fire when the score is above this value. Keeps no history.
    Threshold(f64),
    /// Fire when the score is above the `quantile` of the last `window` scores (every
    /// score is recorded after its decision, fired or not). Quantiles interpolate linearly
    /// between order statistics (`h = (len - 1) q`, as numpy's default). Never fires while
    /// fewer than `warmup` scores are recorded; `warmup` defaults to `window`, i.e. not
    /// before the history is full.
    ///
    /// With no drift it fires on about `1 - quantile` of the evaluations, somewhat more
    /// when consecutive scores are alike (overlapping windows): choose a quantile close to
    /// 1 and a history of some tens of scores.
    DynamicQuantile {
        /// In [0, 1]; 0.95 fires on scores above all but the top 5 % of recent ones.
        quantile: f64,
        /// How many past scores to keep, at least 1.
        window: usize,
        /// How many past scores are needed before the criterion may fire, in 1..=window.
        #[serde(default)]
        warmup: Option<usize>,
    },
}

/// The outcome of one decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The value the score had to exceed; `None` while a dynamic criterion warms up.
    pub bar: Option<f64>,
    /// Whether the score exceeded it.
    pub fired: bool,
}

/// The state of a dynamic criterion: the most recent scores, oldest first, 8 bytes each
/// and at most the criterion's `window` of them. Empty for a threshold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreHistory {
    scores: VecDeque<f64>,
}

impl ScoreHistory {
    /// The recorded scores, oldest first.
    pub fn scores(&self) -> impl ExactSizeIterator<Item = f64> + '_ {
        self.scores.iter().copied()
    }

    /// How many scores are recorded.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
}

impl Criterion {
    /// Checks the parameters; errors name the field, e.g.
    /// `drift.criterion.dynamic_quantile.window`.
    pub fn validate(&self) -> Result<(), DriftError> {
        match *self {
            Criterion::Threshold(t) if !(t.is_finite() && t >= 0.0) => Err(DriftError::config(
                "drift.criterion.threshold",
                "must be a finite number, at least 0",
            )),
            Criterion::Threshold(_) => Ok(()),
            Criterion::DynamicQuantile {
                quantile,
                window,
                warmup,
            } => {
                if !(0.0..=1.0).contains(&quantile) {
                    return Err(DriftError::config(
                        "drift.criterion.dynamic_quantile.quantile",
                        "must be in [0, 1]",
                    ));
                }
                if !(1..=MAX_HISTORY).contains(&window) {
                    return Err(DriftError::config(
                        "drift.criterion.dynamic_quantile.window",
                        format!("must be in 1..={MAX_HISTORY}"),
                    ));
                }
                if warmup.is_some_and(|w| !(1..=window).contains(&w)) {
                    return Err(DriftError::config(
                        "drift.criterion.dynamic_quantile.warmup",
                        format!("must be in 1..={window} (the criterion's window)"),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Decides on `score` and records it in `history` (a dynamic criterion only). O(w log
    /// w) for a history of `w` scores, O(1) for a threshold.
    pub fn decide(&self, history: &mut ScoreHistory, score: f64) -> Decision {
        match *self {
            Criterion::Threshold(t) => Decision {
                bar: Some(t),
                fired: score > t,
            },
            Criterion::DynamicQuantile {
                quantile,
                window,
                warmup,
            } => {
                let bar = (history.len() >= warmup.unwrap_or(window).max(1))
                    .then(|| quantile_of(history.scores.iter().copied().collect(), quantile));
                history.scores.push_back(score);
                while history.scores.len() > window {
                    history.scores.pop_front();
                }
                Decision {
                    bar,
                    fired: bar.is_some_and(|b| score > b),
                }
            }
        }
    }

    /// Whether `history` could have been made by this criterion (at most its window of
    /// finite scores; none for a threshold), e.g. before resuming with a stored one.
    pub fn admits(&self, history: &ScoreHistory) -> bool {
        let bound = match *self {
            Criterion::Threshold(_) => 0,
            Criterion::DynamicQuantile { window, .. } => window,
        };
        history.len() <= bound && history.scores.iter().all(|s| s.is_finite())
    }
}

/// The `q` quantile of a non-empty set, by linear interpolation.
fn quantile_of(mut values: Vec<f64>, q: f64) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let h = (values.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(values.len() - 1);
    values[lo] + (h - lo as f64) * (values[hi] - values[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamic(quantile: f64, window: usize, warmup: Option<usize>) -> Criterion {
        Criterion::DynamicQuantile {
            quantile,
            window,
            warmup,
        }
    }

    #[test]
    fn threshold_fires_strictly_above() {
        let c = Criterion::Threshold(0.2);
        let mut h = ScoreHistory::default();
        assert!(!c.decide(&mut h, 0.2).fired);
        assert!(c.decide(&mut h, 0.2001).fired);
        assert!(h.is_empty());
    }

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile_of(vec![3.0, 1.0, 2.0, 4.0], 0.5), 2.5);
        assert_eq!(quantile_of(vec![3.0, 1.0, 2.0, 4.0], 1.0), 4.0);
        assert_eq!(quantile_of(vec![3.0, 1.0, 2.0, 4.0], 0.0), 1.0);
        assert!((quantile_of((0..=10).map(f64::from).collect(), 0.95) - 9.5).abs() < 1e-12);
        assert_eq!(quantile_of(vec![7.0], 0.3), 7.0);
    }

    #[test]
    fn warms_up_before_firing() {
        let c = dynamic(0.5, 10, Some(3));
        let mut h = ScoreHistory::default();
        for s in [0.1, 0.1, 0.1] {
            let d = c.decide(&mut h, s * 100.0);
            assert_eq!(
                d,
                Decision {
                    bar: None,
                    fired: false
                }
            );
        }
        // Three scores recorded: now it may fire.
        assert!(c.decide(&mut h, 11.0).fired);
        // Without a warm-up given, the whole window must fill first.
        let c = dynamic(0.5, 4, None);
        let mut h = ScoreHistory::default();
        let fired: Vec<bool> = [1.0, 2.0, 3.0, 4.0, 9.0]
            .iter()
            .map(|&s| c.decide(&mut h, s).fired)
            .collect();
        assert_eq!(fired, [false, false, false, false, true]);
    }

    #[test]
    fn the_quantile_adapts_to_a_new_level() {
        let c = dynamic(0.9, 20, None);
        let mut h = ScoreHistory::default();
        let noise = |i: usize| (i * 7 % 10) as f64 / 100.0;
        // A quiet level around 0.1 fills the history.
        for i in 0..40 {
            c.decide(&mut h, 0.1 + noise(i));
        }
        // The level jumps to 0.5: it fires at first ...
        let fired: Vec<bool> = (0..40)
            .map(|i| c.decide(&mut h, 0.5 + noise(i)).fired)
            .collect();
        assert!(fired[0]);
        // ... and no longer once the history has learnt the new level.
        let late = fired[20..].iter().filter(|&&f| f).count();
        assert!(late <= 2, "{fired:?}");
        // The history stays bounded.
        assert_eq!(h.len(), 20);
        assert!(c.admits(&h));
    }

    #[test]
    fn validate_names_the_field() {
        let err = |c: Criterion| c.validate().unwrap_err().to_string();
        assert_eq!(
            err(Criterion::Threshold(f64::NAN)),
            "drift.criterion.threshold must be a finite number, at least 0"
        );
        assert_eq!(
            err(dynamic(1.5, 10, None)),
            "drift.criterion.dynamic_quantile.quantile must be in [0, 1]"
        );
        assert_eq!(
            err(dynamic(0.9, 0, None)),
            "drift.criterion.dynamic_quantile.window must be in 1..=100000"
        );
        assert_eq!(
            err(dynamic(0.9, 10, Some(11))),
            "drift.criterion.dynamic_quantile.warmup must be in 1..=10 (the criterion's window)"
        );
        assert!(dynamic(0.9, 10, Some(10)).validate().is_ok());
        assert!(Criterion::Threshold(0.0).validate().is_ok());
    }
}
