//! A pipeline's policies at work: its trigger and its selector, folded over the dataset's
//! changesets one after another. The fold is a pure function of the pipeline's policies
//! and the changesets, so a supervisor that lost its memory folds them again (from its
//! last checkpoint) and reaches the same triggers with the same choices.

use flywheel_core::pipeline::Pipeline;
use flywheel_core::selection::{Arrival, Chosen, Tracked};
use flywheel_core::trigger::{Observation, Trigger, TriggerConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Magic bytes at the start of a checkpoint.
const MAGIC: &[u8; 8] = b"FWSVCKP1";
/// Format of the checkpoint's header.
const CHECKPOINT_FORMAT: u32 = 1;

/// The samples one changeset added, in the order the policies see them: by event time,
/// then key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Input {
    /// Keys.
    pub keys: Vec<u64>,
    /// Per sample: index into `label_names`, or `None`.
    pub labels: Vec<Option<u32>>,
    /// The labels used.
    pub label_names: Vec<String>,
    /// Event times (microseconds).
    pub event_times: Vec<i64>,
    /// Per sample: its features' range in `features` (empty when not read).
    pub spans: Vec<(u32, u32)>,
    /// Every sample's features, one after another.
    pub features: Vec<f64>,
}

impl Input {
    /// Samples in it.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Sample `i`'s features (empty if none were read).
    pub fn features(&self, i: usize) -> &[f64] {
        match self.spans.get(i) {
            Some(&(start, len)) => &self.features[start as usize..(start + len) as usize],
            None => &[],
        }
    }

    fn label(&self, i: usize) -> Option<&str> {
        self.labels[i].map(|l| self.label_names[l as usize].as_str())
    }

    fn arrivals(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = Arrival<'_>> {
        range.map(|i| Arrival {
            key: self.keys[i],
            label: self.label(i),
            event_time: self.event_times[i],
        })
    }
}

/// A trigger that fired on a live changeset, with the policy's choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    /// Its number among the live triggers of this submission (1, 2, ...).
    pub ordinal: u64,
    /// The changeset holding the sample it fired at.
    pub changeset: i64,
    /// That sample's event time.
    pub event_time: i64,
    /// The samples to train on.
    pub chosen: Chosen,
}

/// A pipeline's trigger and selector, and how far they have folded the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Runner {
    trigger: Trigger,
    tracked: Tracked,
    /// The last changeset folded (0: none).
    changeset: i64,
    /// Triggers fired so far, silent ones included.
    fired: u64,
    /// Triggers fired on live changesets.
    live: u64,
}

/// The part of a checkpoint that is not the selector's columns.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: u32,
    policies: String,
    changeset: i64,
    fired: u64,
    live: u64,
    trigger: Trigger,
}

/// Why a checkpoint could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CheckpointError(String);

impl Runner {
    /// A runner that has seen nothing.
    pub fn new(pipeline: &Pipeline) -> Self {
        Self {
            trigger: Trigger::new(&pipeline.trigger, pipeline.warm_up_samples),
            tracked: Tracked::new(pipeline.selection.clone(), pipeline.seed),
            changeset: 0,
            fired: 0,
            live: 0,
        }
    }

    /// The last changeset folded (0: none).
    pub fn changeset(&self) -> i64 {
        self.changeset
    }

    /// Samples the selector tracks.
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Triggers fired so far (silent ones included).
    pub fn fired(&self) -> u64 {
        self.fired
    }

    /// Folds changeset `changeset`'s samples. On a live changeset each trigger selects and
    /// is returned; on a silent one (committed before the pipeline was submitted) the
    /// trigger advances and the selector learns the samples, but nothing is selected.
    ///
    /// # Panics
    /// If `changeset` does not follow the last one folded: the caller folds in order.
    pub fn fold(&mut self, changeset: i64, input: &Input, live: bool) -> Vec<Fire> {
        assert_eq!(
            changeset,
            self.changeset + 1,
            "changesets are folded in order"
        );
        let observations: Vec<Observation<'_>> = (0..input.len())
            .map(|i| Observation {
                event_time: input.event_times[i],
                features: input.features(i),
                outcome: None,
            })
            .collect();
        let positions = self.trigger.observe(&observations);
        let mut fires = Vec::new();
        let mut from = 0;
        for p in positions {
            self.tracked.observe(input.arrivals(from..p + 1));
            from = p + 1;
            self.fired += 1;
            if live {
                self.live += 1;
                fires.push(Fire {
                    ordinal: self.live,
                    changeset,
                    event_time: input.event_times[p],
                    chosen: self.tracked.select(),
                });
            }
        }
        self.tracked.observe(input.arrivals(from..input.len()));
        self.changeset = changeset;
        fires
    }

    /// The runner as checkpoint bytes: a header (JSON: the policies' fingerprint, progress
    /// and the trigger's state), the selector's columns, and a CRC-32C of everything.
    pub fn encode(&self, policies: &str) -> Vec<u8> {
        let header = serde_json::to_vec(&Header {
            format: CHECKPOINT_FORMAT,
            policies: policies.to_owned(),
            changeset: self.changeset,
            fired: self.fired,
            live: self.live,
            trigger: self.trigger.clone(),
        })
        .expect("a trigger's state serializes");
        let columns = self.tracked.encode();
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + header.len() + columns.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&columns);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// The runner a checkpoint holds, for this pipeline. A checkpoint of other policies
    /// (the pipeline was resubmitted changed) or damaged bytes are refused.
    pub fn decode(
        pipeline: &Pipeline,
        policies: &str,
        bytes: &[u8],
    ) -> Result<Self, CheckpointError> {
        let bad = |reason: &str| CheckpointError(reason.to_owned());
        let body_len = bytes
            .len()
            .checked_sub(4)
            .filter(|&n| n >= MAGIC.len() + 4)
            .ok_or_else(|| bad("it is too short"))?;
        let (body, crc) = bytes.split_at(body_len);
        if !body.starts_with(MAGIC) {
            return Err(bad("it is not a pipeline checkpoint"));
        }
        if crc32c::crc32c(body).to_le_bytes() != crc {
            return Err(bad("its checksum does not match"));
        }
        let rest = &body[MAGIC.len()..];
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let header = rest
            .get(4..4 + len)
            .ok_or_else(|| bad("its header is cut"))?;
        let header: Header = serde_json::from_slice(header)
            .map_err(|e| CheckpointError(format!("its header does not parse: {e}")))?;
        if header.format != CHECKPOINT_FORMAT {
            return Err(CheckpointError(format!(
                "it has format {}, this build reads {CHECKPOINT_FORMAT}",
                header.format
            )));
        }
        if header.policies != policies {
            return Err(bad("it is of other policies"));
        }
        let tracked = Tracked::decode(pipeline.selection.clone(), pipeline.seed, &rest[4 + len..])
            .map_err(|e| CheckpointError(e.to_string()))?;
        Ok(Self {
            trigger: header.trigger,
            tracked,
            changeset: header.changeset,
            fired: header.fired,
            live: header.live,
        })
    }
}

/// A fingerprint of what decides a pipeline's triggers and choices: dataset, seed,
/// warm-up, trigger and selection. A resubmission that changes any of them starts the
/// policies over; one that changes only the model or training settings keeps them.
pub fn policies_fingerprint(pipeline: &Pipeline) -> String {
    #[derive(Serialize)]
    struct Policies<'a> {
        dataset: &'a str,
        seed: u64,
        warm_up_samples: u64,
        trigger: &'a TriggerConfig,
        selection: &'a flywheel_core::selection::Policy,
    }
    let text = serde_json::to_string(&Policies {
        dataset: &pipeline.dataset,
        seed: pipeline.seed,
        warm_up_samples: pipeline.warm_up_samples,
        trigger: &pipeline.trigger,
        selection: &pipeline.selection,
    })
    .expect("policies serialize");
    Sha256::digest(text.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a trigger reads the samples' features (a drift trigger, in an ensemble too).
pub fn needs_features(trigger: &TriggerConfig) -> bool {
    match trigger {
        TriggerConfig::Drift(_) => true,
        TriggerConfig::Ensemble { of, .. } => of.iter().any(needs_features),
        _ => false,
    }
}

/// The name of a trigger's policy, as metrics and training-set events give it.
pub fn trigger_kind(trigger: &TriggerConfig) -> &'static str {
    match trigger {
        TriggerConfig::DataAmount { .. } => "data_amount",
        TriggerConfig::Time { .. } => "time",
        TriggerConfig::Drift(_) => "drift",
        TriggerConfig::Performance { .. } => "performance",
        TriggerConfig::Ensemble { .. } => "ensemble",
    }
}

/// The name of a selection policy, as metrics give it.
pub fn selection_kind(policy: &flywheel_core::selection::Policy) -> &'static str {
    use flywheel_core::selection::Policy;
    match policy {
        Policy::All => "all",
        Policy::NewData { .. } => "new_data",
        Policy::Tail { .. } => "tail",
        Policy::Freshness { .. } => "freshness",
        Policy::Reservoir { .. } => "reservoir",
        Policy::LabelBalanced { .. } => "label_balanced",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pipeline(trigger: &str, selection: &str) -> Pipeline {
        Pipeline::parse(&format!(
            "name = \"p\"\ndataset = \"sensors\"\nseed = 3\n[trigger]\n{trigger}\n[selection]\n{selection}\n[model]\nkind = \"linear\"\n"
        ))
        .expect("a valid pipeline")
    }

    /// `n` samples from key `first` on, a second apart, labels a/b, one feature.
    fn input(first: u64, n: usize, shift: f64) -> Input {
        let keys: Vec<u64> = (first..first + n as u64).collect();
        Input {
            labels: keys.iter().map(|k| Some((k % 2) as u32)).collect(),
            label_names: vec!["a".into(), "b".into()],
            event_times: keys.iter().map(|&k| k as i64 * 1_000_000).collect(),
            spans: (0..n as u32).map(|i| (i, 1)).collect(),
            features: keys
                .iter()
                .map(|&k| shift + ((k * 7919) % 1000) as f64 / 1000.0)
                .collect(),
            keys,
        }
    }

    #[test]
    fn triggers_fire_where_they_fall_and_select_what_arrived_before() {
        let p = pipeline(
            "kind = \"data_amount\"\nsamples = 10",
            "policy = \"new_data\"",
        );
        let mut r = Runner::new(&p);
        let fires = r.fold(1, &input(0, 25, 0.0), true);
        assert_eq!(fires.len(), 2);
        assert_eq!(fires[0].chosen.keys, (0..10).collect::<Vec<_>>());
        assert_eq!(fires[1].chosen.keys, (10..20).collect::<Vec<_>>());
        assert_eq!(fires[1].event_time, 19_000_000);
        let fires = r.fold(2, &input(25, 5, 0.0), true);
        assert_eq!(fires[0].chosen.keys, (20..30).collect::<Vec<_>>());
        assert_eq!((fires[0].ordinal, r.changeset(), r.tracked()), (3, 2, 30));
    }

    #[test]
    fn silent_changesets_advance_the_trigger_and_select_nothing() {
        let p = pipeline(
            "kind = \"data_amount\"\nsamples = 10",
            "policy = \"new_data\"",
        );
        let mut r = Runner::new(&p);
        assert!(r.fold(1, &input(0, 25, 0.0), false).is_empty());
        assert_eq!(r.fired(), 2);
        // the first live trigger takes everything since the start: no select ran before
        let fires = r.fold(2, &input(25, 5, 0.0), true);
        assert_eq!(fires[0].ordinal, 1);
        assert_eq!(fires[0].chosen.keys, (0..30).collect::<Vec<_>>());
    }

    #[test]
    fn drift_reads_the_features() {
        let p = pipeline(
            "kind = \"drift\"\nmetric = \"ks\"\nwindow = 50\nevery = 10\ncriterion = { threshold = 0.5 }",
            "policy = \"all\"",
        );
        assert!(needs_features(&p.trigger));
        let mut r = Runner::new(&p);
        assert!(r.fold(1, &input(0, 200, 0.0), true).is_empty(), "no drift");
        let fires = r.fold(2, &input(200, 200, 5.0), true);
        assert!(!fires.is_empty(), "a shift of the feature fires");
        assert!(fires[0].event_time >= 200_000_000);
    }

    #[test]
    fn checkpoints_refuse_damage_and_other_policies() {
        let p = pipeline(
            "kind = \"data_amount\"\nsamples = 7",
            "policy = \"reservoir\"\nsize = 5",
        );
        let f = policies_fingerprint(&p);
        let mut r = Runner::new(&p);
        r.fold(1, &input(0, 20, 0.0), true);
        let bytes = r.encode(&f);
        assert_eq!(Runner::decode(&p, &f, &bytes).as_ref(), Ok(&r));
        let other = pipeline(
            "kind = \"data_amount\"\nsamples = 8",
            "policy = \"reservoir\"\nsize = 5",
        );
        let g = policies_fingerprint(&other);
        assert_ne!(f, g);
        assert!(Runner::decode(&other, &g, &bytes).is_err());
        for i in [0, 9, bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            assert!(Runner::decode(&p, &f, &damaged).is_err(), "byte {i}");
        }
        for len in [0, 3, 12, bytes.len() - 1] {
            assert!(
                Runner::decode(&p, &f, &bytes[..len]).is_err(),
                "cut at {len}"
            );
        }
    }

    proptest! {
        /// Folding with a checkpoint and a restore at any changeset gives the same fires
        /// as folding straight through: what a restarted supervisor relies on.
        #[test]
        fn a_restored_checkpoint_folds_like_the_original(
            sizes in proptest::collection::vec(0usize..40, 1..8),
            cut in 0usize..8,
            every in 1u64..15,
            policy in 0usize..4,
        ) {
            let selection = [
                "policy = \"all\"",
                "policy = \"reservoir\"\nsize = 6",
                "policy = \"freshness\"\nsize = 8\nunused_ratio = 0.5",
                "policy = \"new_data\"\nlimit = 4\nlimit_by = \"uniform\"",
            ][policy];
            let p = pipeline(&format!("kind = \"data_amount\"\nsamples = {every}"), selection);
            let f = policies_fingerprint(&p);
            let inputs: Vec<Input> = sizes
                .iter()
                .scan(0u64, |next, &n| {
                    let i = input(*next, n, 0.0);
                    *next += n as u64;
                    Some(i)
                })
                .collect();
            let mut straight = Runner::new(&p);
            let expected: Vec<Fire> = inputs
                .iter()
                .enumerate()
                .flat_map(|(i, input)| straight.fold(i as i64 + 1, input, true))
                .collect();
            let mut first = Runner::new(&p);
            let mut got = Vec::new();
            let cut = cut.min(inputs.len());
            for (i, input) in inputs[..cut].iter().enumerate() {
                got.extend(first.fold(i as i64 + 1, input, true));
            }
            let mut restored = Runner::decode(&p, &f, &first.encode(&f)).expect("restores");
            for (i, input) in inputs.iter().enumerate().skip(cut) {
                got.extend(restored.fold(i as i64 + 1, input, true));
            }
            prop_assert_eq!(got, expected);
            prop_assert_eq!(restored, straight);
        }
    }
}
