//! Trigger policies: when a pipeline retrains. Each is a small state machine fed the
//! pipeline's samples in the order they arrive (as changesets come in) and answering at
//! which samples it fires. Time is event time, never the clock, so a replay decides the
//! same; the state is plain data the supervisor stores between batches.

use serde::{Deserialize, Serialize};

use crate::drift::{DriftConfig, DriftDetector, DriftState};

/// A trigger policy, as a pipeline document names it (`[trigger]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TriggerConfig {
    /// Every `samples` samples.
    DataAmount {
        /// How many samples between triggers.
        samples: u64,
    },
    /// Every `every` of event time (humantime, e.g. `"1h"`), from the first sample's.
    Time {
        /// The period.
        #[serde(with = "flywheel_schemas::duration_text")]
        every: std::time::Duration,
    },
    /// When the samples' features drift: a reference window against the current one
    /// (KS, MMD or PSI; a static threshold or a dynamic quantile of past scores; see
    /// [`crate::drift`]). Samples without features, or whose features do not fit the
    /// dimension of the first, are not counted.
    Drift(DriftConfig),
    /// When the live model's accuracy over the last `window` newly labelled samples falls
    /// below `min_accuracy`.
    Performance {
        /// Outcomes the accuracy is computed over.
        window: u32,
        /// The bound, in (0, 1].
        min_accuracy: f64,
    },
    /// When `mode` of the sub-triggers have fired since the ensemble last fired.
    Ensemble {
        /// `any`, `all`, or `at_least` with `n`.
        mode: EnsembleMode,
        /// For `at_least`: how many.
        #[serde(default)]
        n: Option<u32>,
        /// The sub-triggers.
        of: Vec<TriggerConfig>,
    },
}

/// How an ensemble combines its sub-triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnsembleMode {
    /// One of them.
    Any,
    /// Every one.
    All,
    /// At least `n`.
    AtLeast,
}

/// Why a trigger's parameters were refused; `field` is its path in the document.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TriggerError {
    /// The field, e.g. `trigger.samples`.
    pub field: String,
    /// Why.
    pub reason: String,
}

impl TriggerConfig {
    /// Checks the parameters; `at` is the trigger's path in the document (`trigger`).
    pub fn validate(&self, at: &str) -> Result<(), TriggerError> {
        let bad = |field: &str, reason: &str| {
            Err(TriggerError {
                field: format!("{at}.{field}"),
                reason: reason.to_owned(),
            })
        };
        match self {
            TriggerConfig::DataAmount { samples: 0 } => bad("samples", "must be at least 1"),
            TriggerConfig::Time { every } if every.is_zero() => {
                bad("every", "must be longer than zero")
            }
            TriggerConfig::Drift(config) => config.validate().map_err(|e| TriggerError {
                field: at.to_owned(),
                reason: e.to_string(),
            }),
            TriggerConfig::Performance { window: 0, .. } => bad("window", "must be at least 1"),
            TriggerConfig::Performance { min_accuracy, .. }
                if !(*min_accuracy > 0.0 && *min_accuracy <= 1.0) =>
            {
                bad("min_accuracy", "must be in (0, 1]")
            }
            TriggerConfig::Ensemble { mode, n, of } => {
                if of.is_empty() {
                    return bad("of", "an ensemble needs at least one sub-trigger");
                }
                match (mode, n) {
                    (EnsembleMode::AtLeast, None) => return bad("n", "at_least needs n"),
                    (EnsembleMode::AtLeast, Some(n)) if *n == 0 || *n as usize > of.len() => {
                        return bad("n", "must be between 1 and the number of sub-triggers");
                    }
                    (EnsembleMode::Any | EnsembleMode::All, Some(_)) => {
                        return bad("n", "only at_least takes n");
                    }
                    _ => {}
                }
                for (i, t) in of.iter().enumerate() {
                    t.validate(&format!("{at}.of[{i}]"))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// A sample as triggers see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation<'a> {
    /// Its event time (microseconds).
    pub event_time: i64,
    /// Its numeric features.
    pub features: &'a [f64],
    /// For a newly labelled sample: whether the live model predicted its label.
    pub outcome: Option<bool>,
}

/// A trigger's state: its configuration and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    warm_up: u64,
    seen: u64,
    state: State,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum State {
    DataAmount {
        every: u64,
        since: u64,
    },
    Time {
        every_micros: i64,
        /// The start of the next period; `None` before the first sample.
        next: Option<i64>,
    },
    Drift(DriftCell),
    Performance {
        window: u32,
        min_accuracy: f64,
        /// The last `window` outcomes, oldest first (ring buffer).
        outcomes: Vec<bool>,
        at: u32,
    },
    Ensemble {
        mode: EnsembleMode,
        n: u32,
        subs: Vec<Trigger>,
        pending: Vec<bool>,
    },
}

impl Trigger {
    /// A trigger in its initial state; it does not fire during the first `warm_up`
    /// samples (its sub-triggers advance all the same).
    pub fn new(config: &TriggerConfig, warm_up: u64) -> Self {
        let state = match config {
            TriggerConfig::DataAmount { samples } => State::DataAmount {
                every: *samples,
                since: 0,
            },
            TriggerConfig::Time { every } => State::Time {
                every_micros: i64::try_from(every.as_micros()).unwrap_or(i64::MAX).max(1),
                next: None,
            },
            TriggerConfig::Drift(config) => State::Drift(DriftCell(
                DriftDetector::new(*config).expect("a validated drift configuration"),
            )),
            TriggerConfig::Performance {
                window,
                min_accuracy,
            } => State::Performance {
                window: *window,
                min_accuracy: *min_accuracy,
                outcomes: Vec::new(),
                at: 0,
            },
            TriggerConfig::Ensemble { mode, n, of } => State::Ensemble {
                mode: *mode,
                n: match mode {
                    EnsembleMode::Any => 1,
                    EnsembleMode::All => of.len() as u32,
                    EnsembleMode::AtLeast => n.unwrap_or(1),
                },
                subs: of.iter().map(|c| Trigger::new(c, 0)).collect(),
                pending: vec![false; of.len()],
            },
        };
        Self {
            warm_up,
            seen: 0,
            state,
        }
    }

    /// Feeds samples in arrival order; returns the positions (in `batch`) of the samples
    /// at which the trigger fires.
    pub fn observe(&mut self, batch: &[Observation<'_>]) -> Vec<usize> {
        let mut fired = Vec::new();
        for (i, o) in batch.iter().enumerate() {
            self.seen += 1;
            if self.step(o) && self.seen > self.warm_up {
                fired.push(i);
            }
        }
        fired
    }

    /// One sample: whether the policy fires at it (warm-up aside).
    fn step(&mut self, o: &Observation<'_>) -> bool {
        match &mut self.state {
            State::DataAmount { every, since } => {
                *since += 1;
                if *since >= *every {
                    *since = 0;
                    return true;
                }
                false
            }
            State::Time { every_micros, next } => match *next {
                None => {
                    *next = Some(o.event_time.saturating_add(*every_micros));
                    false
                }
                Some(start) if o.event_time >= start => {
                    // the period holding this sample ends at the next boundary
                    let periods = (o.event_time - start) / *every_micros + 1;
                    *next = Some(start.saturating_add(periods.saturating_mul(*every_micros)));
                    true
                }
                Some(_) => false,
            },
            State::Drift(cell) => {
                if o.features.is_empty() {
                    return false;
                }
                // a sample that does not fit (another dimension) is not counted
                matches!(cell.0.observe(o.features), Ok(Some(e)) if e.fired)
            }
            State::Performance {
                window,
                min_accuracy,
                outcomes,
                at,
            } => {
                let Some(correct) = o.outcome else {
                    return false;
                };
                if outcomes.len() < *window as usize {
                    outcomes.push(correct);
                } else {
                    outcomes[*at as usize] = correct;
                    *at = (*at + 1) % *window;
                }
                if outcomes.len() < *window as usize {
                    return false;
                }
                let right = outcomes.iter().filter(|&&c| c).count();
                if (right as f64) / f64::from(*window) < *min_accuracy {
                    // a fresh window for the model trained now
                    outcomes.clear();
                    *at = 0;
                    return true;
                }
                false
            }
            State::Ensemble {
                n, subs, pending, ..
            } => {
                for (sub, p) in subs.iter_mut().zip(pending.iter_mut()) {
                    sub.seen += 1;
                    if sub.step(o) {
                        *p = true;
                    }
                }
                if pending.iter().filter(|&&p| p).count() >= *n as usize {
                    pending.iter_mut().for_each(|p| *p = false);
                    return true;
                }
                false
            }
        }
    }
}

/// A drift detector, stored as its configuration and its state.
#[derive(Debug, Clone)]
struct DriftCell(DriftDetector);

impl PartialEq for DriftCell {
    fn eq(&self, other: &Self) -> bool {
        self.0.config() == other.0.config() && self.0.state() == other.0.state()
    }
}

impl Serialize for DriftCell {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Stored<'a> {
            config: &'a DriftConfig,
            state: &'a DriftState,
        }
        Stored {
            config: self.0.config(),
            state: self.0.state(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for DriftCell {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Stored {
            config: DriftConfig,
            state: DriftState,
        }
        let stored = Stored::deserialize(d)?;
        DriftDetector::resume(stored.config, stored.state)
            .map(DriftCell)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(t: i64) -> Observation<'static> {
        Observation {
            event_time: t,
            features: &[],
            outcome: None,
        }
    }

    fn parse(text: &str) -> TriggerConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn data_amount_fires_every_n() {
        let mut t = Trigger::new(&TriggerConfig::DataAmount { samples: 3 }, 0);
        let batch: Vec<_> = (0..10).map(at).collect();
        assert_eq!(t.observe(&batch), vec![2, 5, 8]);
        assert_eq!(t.observe(&batch[..2]), vec![1], "the 12th sample");
    }

    #[test]
    fn time_fires_on_event_time_periods() {
        let config = parse("kind = \"time\"\nevery = \"1s\"\n");
        let mut t = Trigger::new(&config, 0);
        let s = 1_000_000;
        // 0, 0.5 s: nothing; 1.2 s: the first period ended; a gap to 5.1 s: once
        let batch = [
            at(0),
            at(s / 2),
            at(s + s / 5),
            at(s + s / 2),
            at(5 * s + s / 10),
            at(5 * s + s / 2),
            at(6 * s),
        ];
        assert_eq!(t.observe(&batch), vec![2, 4, 6]);
        // out-of-order samples within a period do not fire
        assert!(t.observe(&[at(3 * s)]).is_empty());
    }

    #[test]
    fn performance_fires_below_its_bound() {
        let config = parse("kind = \"performance\"\nwindow = 4\nmin_accuracy = 0.75\n");
        let mut t = Trigger::new(&config, 0);
        let o = |c: Option<bool>| Observation {
            event_time: 0,
            features: &[],
            outcome: c,
        };
        let batch = [
            o(Some(true)),
            o(None),
            o(Some(true)),
            o(Some(true)),
            o(Some(true)),
            o(Some(false)),
            o(Some(false)),
        ];
        // accuracy 1, 1, 0.75, then 0.5 at the last one
        assert_eq!(t.observe(&batch), vec![6]);
    }

    #[test]
    fn drift_fires_on_a_shift_of_the_features() {
        let config = parse(
            "kind = \"drift\"\nmetric = \"ks\"\nwindow = 200\nevery = 50\ncriterion = { threshold = 0.5 }\n",
        );
        config.validate("trigger").unwrap();
        let mut t = Trigger::new(&config, 0);
        // a deterministic saw of features, then the same saw shifted by 10
        let rows: Vec<[f64; 2]> = (0..1000)
            .map(|i| {
                let x = f64::from(i % 37) / 37.0;
                if i < 600 {
                    [x, 1.0 - x]
                } else {
                    [x + 10.0, 1.0 - x]
                }
            })
            .collect();
        let batch: Vec<Observation<'_>> = rows
            .iter()
            .map(|r| Observation {
                event_time: 0,
                features: r,
                outcome: None,
            })
            .collect();
        let fired = t.observe(&batch);
        assert!(!fired.is_empty(), "the shift is seen");
        assert!(fired[0] >= 600 && fired[0] < 600 + 250, "{fired:?}");
        let e = parse("kind = \"drift\"\nmetric = \"ks\"\nwindow = 1\nevery = 1\ncriterion = { threshold = 0.5 }\n")
            .validate("trigger")
            .unwrap_err();
        assert!(e.to_string().contains("window"), "{e}");
    }

    #[test]
    fn ensembles_and_warm_up() {
        let any = parse(
            "kind = \"ensemble\"\nmode = \"any\"\n[[of]]\nkind = \"data_amount\"\nsamples = 4\n[[of]]\nkind = \"data_amount\"\nsamples = 6\n",
        );
        let batch: Vec<_> = (0..12).map(at).collect();
        assert_eq!(Trigger::new(&any, 0).observe(&batch), vec![3, 5, 7, 11]);
        let all = parse(
            "kind = \"ensemble\"\nmode = \"all\"\n[[of]]\nkind = \"data_amount\"\nsamples = 4\n[[of]]\nkind = \"data_amount\"\nsamples = 6\n",
        );
        assert_eq!(Trigger::new(&all, 0).observe(&batch), vec![5, 11]);
        let warm = TriggerConfig::DataAmount { samples: 2 };
        assert_eq!(Trigger::new(&warm, 5).observe(&batch), vec![5, 7, 9, 11]);
    }

    #[test]
    fn bad_triggers_are_named() {
        let cases = [
            ("kind = \"data_amount\"\nsamples = 0\n", "trigger.samples"),
            (
                "kind = \"performance\"\nwindow = 5\nmin_accuracy = 1.5\n",
                "trigger.min_accuracy",
            ),
            (
                "kind = \"ensemble\"\nmode = \"at_least\"\nof = []\n",
                "trigger.of",
            ),
            (
                "kind = \"ensemble\"\nmode = \"at_least\"\nn = 3\n[[of]]\nkind = \"data_amount\"\nsamples = 1\n",
                "trigger.n",
            ),
            (
                "kind = \"ensemble\"\nmode = \"any\"\n[[of]]\nkind = \"data_amount\"\nsamples = 0\n",
                "trigger.of[0].samples",
            ),
        ];
        for (text, field) in cases {
            let e = parse(text).validate("trigger").unwrap_err();
            assert_eq!(e.field, field, "{text}");
        }
        for (text, says) in [
            ("kind = \"time\"\nevery = \"soon\"\n", "soon"),
            ("kind = \"time\"\nevery = \"5 parsecs\"\n", "parsecs"),
            ("kind = \"sometimes\"\n", "sometimes"),
            ("kind = \"data_amount\"\nsample = 3\n", "sample"),
        ] {
            let e = toml::from_str::<TriggerConfig>(text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
        let t = parse("kind = \"time\"\nevery = \"1h 30m\"\n");
        assert_eq!(
            t,
            TriggerConfig::Time {
                every: std::time::Duration::from_secs(5400)
            }
        );
        let back: TriggerConfig = toml::from_str(&toml::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    proptest! {
        /// Feeding samples in one batch or in many, with the state saved and read back
        /// between batches, fires at the same samples.
        #[test]
        fn batches_and_restarts_do_not_change_firings(
            times in prop::collection::vec(0i64..10_000_000, 1..300),
            cuts in prop::collection::vec(0usize..300, 0..8),
            every in 1u64..20,
        ) {
            let mut times = times;
            times.sort_unstable();
            let batch: Vec<_> = times.iter().map(|&t| at(t)).collect();
            let config = TriggerConfig::Ensemble {
                mode: EnsembleMode::Any,
                n: None,
                of: vec![
                    TriggerConfig::DataAmount { samples: every },
                    TriggerConfig::Time { every: std::time::Duration::from_millis(700) },
                ],
            };
            let whole = Trigger::new(&config, 3).observe(&batch);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (batch.len() + 1)).collect();
            cuts.push(0);
            cuts.push(batch.len());
            cuts.sort_unstable();
            cuts.dedup();
            let mut t = Trigger::new(&config, 3);
            let mut pieces = Vec::new();
            for w in cuts.windows(2) {
                let saved = serde_json::to_vec(&t).unwrap();
                t = serde_json::from_slice(&saved).unwrap();
                pieces.extend(t.observe(&batch[w[0]..w[1]]).into_iter().map(|i| i + w[0]));
            }
            prop_assert_eq!(whole, pieces);
        }
    }
}
