//! Selection policies: which samples a pipeline trains on when a trigger fires.
//!
//! The selector tracks every sample of the pipeline's dataset in columnar vectors, a few
//! fixed-width fields each ([`Tracked`]: 26 bytes a sample), plus the policy's own compact
//! state (a reservoir holds its keys). Samples arrive in *epochs*: epoch `t` holds the
//! samples that arrived after trigger `t - 1` and up to trigger `t`. Every policy is a pure
//! function of that state, the trigger and a seed, so a restarted supervisor selects the
//! same samples again.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A selection policy, as a pipeline document names it (`[selection]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum Policy {
    /// Every sample seen so far.
    All,
    /// The samples that arrived since the last trigger, at most `limit` of them if given:
    /// the newest by event time (`last`) or drawn uniformly (`uniform`).
    NewData {
        /// The most samples to train on.
        #[serde(default)]
        limit: Option<u64>,
        /// How the limit picks.
        #[serde(default)]
        limit_by: LimitBy,
    },
    /// The samples of the last `triggers` epochs (the current one included).
    Tail {
        /// How many epochs.
        triggers: u32,
    },
    /// `size` samples, `unused_ratio` of them never used for training before (as far as
    /// there are), the rest drawn from the used ones.
    Freshness {
        /// How many samples.
        size: u64,
        /// The share of never-used samples, in [0, 1].
        unused_ratio: f64,
    },
    /// `size` samples drawn uniformly from the whole stream, kept in bounded memory
    /// (reservoir sampling, algorithm R).
    Reservoir {
        /// The reservoir's size.
        size: u64,
    },
    /// Up to `per_label` samples of each label (unlabelled samples are a label of their
    /// own), drawn uniformly.
    LabelBalanced {
        /// How many per label.
        per_label: u64,
    },
}

/// How `new_data` keeps to its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitBy {
    /// The newest samples by event time (ties by key).
    #[default]
    Last,
    /// Drawn uniformly.
    Uniform,
}

/// Why a policy's parameters were refused; `field` is the document's key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("selection.{field}: {reason}")]
pub struct PolicyError {
    /// The field, e.g. `size`.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

impl Policy {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let bad = |field, reason: &str| {
            Err(PolicyError {
                field,
                reason: reason.to_owned(),
            })
        };
        match *self {
            Policy::NewData { limit: Some(0), .. } => bad("limit", "must be at least 1"),
            Policy::Tail { triggers: 0 } => bad("triggers", "must be at least 1"),
            Policy::Freshness { size: 0, .. } | Policy::Reservoir { size: 0 } => {
                bad("size", "must be at least 1")
            }
            Policy::Freshness { unused_ratio, .. } if !(0.0..=1.0).contains(&unused_ratio) => {
                bad("unused_ratio", "must be in [0, 1]")
            }
            Policy::LabelBalanced { per_label: 0 } => bad("per_label", "must be at least 1"),
            _ => Ok(()),
        }
    }
}

/// A sample as the selector learns of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival<'a> {
    /// Its key.
    pub key: u64,
    /// Its label.
    pub label: Option<&'a str>,
    /// Its event time (microseconds).
    pub event_time: i64,
}

/// What a trigger trains on: keys and their weights, in key order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Chosen {
    /// The keys.
    pub keys: Vec<u64>,
    /// Their weights (1 unless a policy says otherwise).
    pub weights: Vec<f32>,
}

impl Chosen {
    fn from_keys(mut keys: Vec<u64>) -> Self {
        keys.sort_unstable();
        keys.dedup();
        let weights = vec![1.0; keys.len()];
        Self { keys, weights }
    }
}

/// Label id of an unlabelled sample.
const NO_LABEL: u32 = u32::MAX;

/// The samples a pipeline has seen, column by column, and what its policy keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    policy: Policy,
    seed: u64,
    /// The current epoch: triggers fired so far.
    epoch: u32,
    keys: Vec<u64>,
    /// The epoch each sample arrived in.
    epochs: Vec<u32>,
    /// Times each sample was trained on (saturating).
    used: Vec<u16>,
    labels: Vec<u32>,
    event_times: Vec<i64>,
    label_names: Vec<String>,
    /// For `reservoir`: the reservoir (indexes into the columns) and samples offered.
    reservoir: Vec<u32>,
    offered: u64,
}

impl Tracked {
    /// Nothing tracked yet, for a policy and a seed.
    pub fn new(policy: Policy, seed: u64) -> Self {
        Self {
            policy,
            seed,
            epoch: 0,
            keys: Vec::new(),
            epochs: Vec::new(),
            used: Vec::new(),
            labels: Vec::new(),
            event_times: Vec::new(),
            label_names: Vec::new(),
            reservoir: Vec::new(),
            offered: 0,
        }
    }

    /// Samples tracked.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether none is tracked.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Triggers fired so far.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Bytes of the per-sample columns for each tracked sample.
    pub const BYTES_PER_SAMPLE: usize = 8 + 4 + 2 + 4 + 8;

    /// Learns of new samples (in the order they arrived).
    pub fn observe<'a>(&mut self, arrivals: impl IntoIterator<Item = Arrival<'a>>) {
        let mut ids: HashMap<String, u32> =
            (self.label_names.iter().cloned()).zip(0u32..).collect();
        for a in arrivals {
            let label = match a.label {
                None => NO_LABEL,
                Some(l) => match ids.get(l) {
                    Some(&id) => id,
                    None => {
                        let id = self.label_names.len() as u32;
                        self.label_names.push(l.to_owned());
                        ids.insert(l.to_owned(), id);
                        id
                    }
                },
            };
            let index = self.keys.len() as u32;
            self.keys.push(a.key);
            self.epochs.push(self.epoch);
            self.used.push(0);
            self.labels.push(label);
            self.event_times.push(a.event_time);
            if let Policy::Reservoir { size } = self.policy {
                self.offer(index, size);
            }
        }
    }

    /// Algorithm R: the i-th sample offered replaces a random slot with probability
    /// size / i, with a random draw that depends only on the seed and i.
    fn offer(&mut self, index: u32, size: u64) {
        self.offered += 1;
        if (self.reservoir.len() as u64) < size {
            self.reservoir.push(index);
            return;
        }
        let slot = mix(self.seed, self.offered) % self.offered;
        if slot < size {
            self.reservoir[slot as usize] = index;
        }
    }

    /// The samples trigger `epoch + 1` trains on; then that epoch is closed and the chosen
    /// samples count as used.
    pub fn select(&mut self) -> Chosen {
        let trigger = u64::from(self.epoch) + 1;
        let seed = mix(self.seed, trigger);
        let chosen: Vec<u32> = match self.policy {
            Policy::All => (0..self.keys.len() as u32).collect(),
            Policy::NewData { limit, limit_by } => {
                let new: Vec<u32> = self.indexes_since(self.epoch);
                match (limit, limit_by) {
                    (Some(n), LimitBy::Last) => self.newest(new, n),
                    (Some(n), LimitBy::Uniform) => self.uniform(new, n, seed),
                    (None, _) => new,
                }
            }
            Policy::Tail { triggers } => {
                self.indexes_since(self.epoch.saturating_sub(triggers - 1))
            }
            Policy::Freshness { size, unused_ratio } => {
                let (unused, used): (Vec<u32>, Vec<u32>) =
                    (0..self.keys.len() as u32).partition(|&i| self.used[i as usize] == 0);
                let want_unused = ((size as f64) * unused_ratio).round() as u64;
                let from_unused = want_unused.min(unused.len() as u64);
                let from_used = (size - from_unused).min(used.len() as u64);
                // fill from the unused ones what the used ones cannot give
                let from_unused = (size - from_used).min(unused.len() as u64);
                let mut out = self.uniform(unused, from_unused, seed);
                out.extend(self.uniform(used, from_used, mix(seed, 1)));
                out
            }
            Policy::Reservoir { .. } => self.reservoir.clone(),
            Policy::LabelBalanced { per_label } => {
                let mut by_label: HashMap<u32, Vec<u32>> = HashMap::new();
                for i in 0..self.keys.len() as u32 {
                    by_label.entry(self.labels[i as usize]).or_default().push(i);
                }
                let mut labels: Vec<u32> = by_label.keys().copied().collect();
                labels.sort_unstable();
                labels
                    .into_iter()
                    .flat_map(|l| {
                        let members = by_label.remove(&l).unwrap_or_default();
                        self.uniform(members, per_label, mix(seed, u64::from(l)))
                    })
                    .collect()
            }
        };
        for &i in &chosen {
            let u = &mut self.used[i as usize];
            *u = u.saturating_add(1);
        }
        self.epoch += 1;
        Chosen::from_keys(chosen.iter().map(|&i| self.keys[i as usize]).collect())
    }

    /// Indexes of the samples that arrived in `epoch` or later.
    fn indexes_since(&self, epoch: u32) -> Vec<u32> {
        // epochs only grow along the columns: the first index of the epoch, then the rest
        let start = self.epochs.partition_point(|&e| e < epoch);
        (start as u32..self.keys.len() as u32).collect()
    }

    /// The `n` newest of `indexes` by (event time, key).
    fn newest(&self, mut indexes: Vec<u32>, n: u64) -> Vec<u32> {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if indexes.len() <= n {
            return indexes;
        }
        let order = |&i: &u32| {
            let i = i as usize;
            std::cmp::Reverse((self.event_times[i], self.keys[i]))
        };
        indexes.select_nth_unstable_by_key(n - 1, order);
        indexes.truncate(n);
        indexes
    }

    /// `n` of `indexes` drawn uniformly: the `n` smallest hashes of (seed, key).
    fn uniform(&self, mut indexes: Vec<u32>, n: u64, seed: u64) -> Vec<u32> {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if indexes.len() <= n {
            return indexes;
        }
        if n == 0 {
            return Vec::new();
        }
        let order = |&i: &u32| {
            let key = self.keys[i as usize];
            (mix(seed, key), key)
        };
        indexes.select_nth_unstable_by_key(n - 1, order);
        indexes.truncate(n);
        indexes
    }
}

/// Format of [`Tracked::encode`].
const CODEC_FORMAT: u8 = 1;

/// Why bytes are not an encoded [`Tracked`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("selection state is corrupt: {0}")]
pub struct CodecError(String);

impl Tracked {
    /// The state as compact bytes (for a checkpoint): the columns, without the policy and
    /// the seed, which come from the pipeline document. Keys take 8 bytes; epochs, use
    /// counts, labels and event-time deltas are varints, 1 to 3 bytes each in a stream.
    pub fn encode(&self) -> Vec<u8> {
        use flywheel_schemas::varint::{put, zigzag};
        let n = self.keys.len();
        let mut out = Vec::with_capacity(16 + n * 14);
        out.push(CODEC_FORMAT);
        put(&mut out, u64::from(self.epoch));
        put(&mut out, n as u64);
        put(&mut out, self.offered);
        put(&mut out, self.label_names.len() as u64);
        for name in &self.label_names {
            put(&mut out, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
        }
        for k in &self.keys {
            out.extend_from_slice(&k.to_le_bytes());
        }
        let mut last = 0u32;
        for &e in &self.epochs {
            put(&mut out, u64::from(e - last));
            last = e;
        }
        for &u in &self.used {
            put(&mut out, u64::from(u));
        }
        for &l in &self.labels {
            put(&mut out, if l == NO_LABEL { 0 } else { u64::from(l) + 1 });
        }
        let mut last = 0i64;
        for &t in &self.event_times {
            put(&mut out, zigzag(t.wrapping_sub(last)));
            last = t;
        }
        put(&mut out, self.reservoir.len() as u64);
        for &i in &self.reservoir {
            put(&mut out, u64::from(i));
        }
        out
    }

    /// The state [`Tracked::encode`] wrote, for this policy and seed. Every count, index
    /// and epoch is checked against the rest.
    pub fn decode(policy: Policy, seed: u64, bytes: &[u8]) -> Result<Self, CodecError> {
        use flywheel_schemas::varint::{Reader, unzigzag};
        let bad = |what: &str| CodecError(what.to_owned());
        let mut r = Reader::new(bytes);
        let cut = || CodecError("it ends early".to_owned());
        let small = |v: u64, what: &str| u32::try_from(v).map_err(|_| bad(what));
        match r.byte() {
            Some(CODEC_FORMAT) => {}
            Some(f) => return Err(CodecError(format!("unknown format {f}"))),
            None => return Err(cut()),
        }
        let epoch = small(r.varint().ok_or_else(cut)?, "epoch out of range")?;
        let n = usize::try_from(r.varint().ok_or_else(cut)?).map_err(|_| bad("count"))?;
        // every sample takes at least 12 bytes: refuse a count the bytes cannot hold
        if n > bytes.len() / 12 || n > u32::MAX as usize {
            return Err(bad("sample count larger than the state"));
        }
        let offered = r.varint().ok_or_else(cut)?;
        let names = r.varint().ok_or_else(cut)?;
        if names > bytes.len() as u64 {
            return Err(bad("label count larger than the state"));
        }
        let mut label_names = Vec::with_capacity(names as usize);
        for _ in 0..names {
            let len = usize::try_from(r.varint().ok_or_else(cut)?).map_err(|_| cut())?;
            let text = r.bytes(len).ok_or_else(cut)?;
            let text = std::str::from_utf8(text).map_err(|_| bad("a label is not UTF-8"))?;
            label_names.push(text.to_owned());
        }
        let raw = r.bytes(n * 8).ok_or_else(cut)?;
        let keys: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let mut epochs = Vec::with_capacity(n);
        let mut last = 0u32;
        for _ in 0..n {
            let d = small(r.varint().ok_or_else(cut)?, "epoch out of range")?;
            last = last
                .checked_add(d)
                .filter(|&e| e <= epoch)
                .ok_or_else(|| bad("a sample's epoch is after the current one"))?;
            epochs.push(last);
        }
        let mut used = Vec::with_capacity(n);
        for _ in 0..n {
            let u = r.varint().ok_or_else(cut)?;
            used.push(u16::try_from(u).map_err(|_| bad("use count out of range"))?);
        }
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let l = r.varint().ok_or_else(cut)?;
            labels.push(match l {
                0 => NO_LABEL,
                l if l <= names => (l - 1) as u32,
                _ => return Err(bad("a label id past the label names")),
            });
        }
        let mut event_times = Vec::with_capacity(n);
        let mut last = 0i64;
        for _ in 0..n {
            last = last.wrapping_add(unzigzag(r.varint().ok_or_else(cut)?));
            event_times.push(last);
        }
        let size = r.varint().ok_or_else(cut)?;
        if size > n as u64 {
            return Err(bad("reservoir larger than the samples"));
        }
        let mut reservoir = Vec::with_capacity(size as usize);
        for _ in 0..size {
            let i = r.varint().ok_or_else(cut)?;
            if i >= n as u64 {
                return Err(bad("reservoir index past the samples"));
            }
            reservoir.push(i as u32);
        }
        if !r.is_done() {
            return Err(bad("bytes after its end"));
        }
        Ok(Self {
            policy,
            seed,
            epoch,
            keys,
            epochs,
            used,
            labels,
            event_times,
            label_names,
            reservoir,
            offered,
        })
    }
}

/// A 64-bit hash of a seed and a value (splitmix64 of both).
pub fn mix(seed: u64, value: u64) -> u64 {
    splitmix64(seed ^ splitmix64(value))
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arrivals(range: std::ops::Range<u64>) -> Vec<Arrival<'static>> {
        const LABELS: [&str; 3] = ["a", "b", "c"];
        range
            .map(|k| Arrival {
                key: k,
                label: (k % 5 != 0).then(|| LABELS[(k % 3) as usize]),
                event_time: (k as i64) * 1000,
            })
            .collect()
    }

    /// Samples `from..to` of each epoch, then a trigger.
    fn run(policy: Policy, epochs: &[(u64, u64)]) -> Vec<Chosen> {
        let mut t = Tracked::new(policy, 7);
        epochs
            .iter()
            .map(|&(from, to)| {
                t.observe(arrivals(from..to));
                t.select()
            })
            .collect()
    }

    #[test]
    fn all_and_new_data() {
        let got = run(Policy::All, &[(0, 10), (10, 15)]);
        assert_eq!(got[1].keys, (0..15).collect::<Vec<_>>());
        assert!(got[1].weights.iter().all(|&w| w == 1.0));

        let new = Policy::NewData {
            limit: None,
            limit_by: LimitBy::Last,
        };
        let got = run(new, &[(0, 10), (10, 15), (15, 15)]);
        assert_eq!(got[1].keys, (10..15).collect::<Vec<_>>());
        assert!(got[2].keys.is_empty());

        let last = Policy::NewData {
            limit: Some(3),
            limit_by: LimitBy::Last,
        };
        assert_eq!(run(last, &[(0, 10)])[0].keys, vec![7, 8, 9]);
        let uniform = Policy::NewData {
            limit: Some(3),
            limit_by: LimitBy::Uniform,
        };
        let got = run(uniform, &[(0, 1000)])[0].keys.clone();
        assert_eq!(got.len(), 3);
        assert!(got.iter().any(|&k| k < 900), "{got:?}");
    }

    #[test]
    fn tail_and_freshness() {
        let got = run(Policy::Tail { triggers: 2 }, &[(0, 10), (10, 20), (20, 30)]);
        assert_eq!(got[0].keys, (0..10).collect::<Vec<_>>());
        assert_eq!(got[2].keys, (10..30).collect::<Vec<_>>());

        let fresh = Policy::Freshness {
            size: 10,
            unused_ratio: 0.5,
        };
        let mut t = Tracked::new(fresh, 1);
        t.observe(arrivals(0..20));
        let first = t.select();
        assert_eq!(
            first.keys.len(),
            10,
            "nothing used yet: all from the unused"
        );
        t.observe(arrivals(20..30));
        let second = t.select();
        let reused = second
            .keys
            .iter()
            .filter(|k| first.keys.contains(k))
            .count();
        assert_eq!(second.keys.len(), 10);
        assert_eq!(reused, 5, "half from the used ones");
    }

    #[test]
    fn reservoir_is_bounded_and_uniform() {
        let mut t = Tracked::new(Policy::Reservoir { size: 100 }, 3);
        t.observe(arrivals(0..100_000));
        let got = t.select();
        assert_eq!(got.keys.len(), 100);
        let late = got.keys.iter().filter(|&&k| k >= 50_000).count();
        assert!(
            (30..=70).contains(&late),
            "{late} of 100 from the second half"
        );
        assert_eq!(t.reservoir.len(), 100);
    }

    #[test]
    fn label_balanced() {
        let got = run(Policy::LabelBalanced { per_label: 4 }, &[(0, 100)]);
        assert_eq!(got[0].keys.len(), 16, "three labels and the unlabelled");
    }

    #[test]
    fn bad_parameters_are_named() {
        for (p, field) in [
            (Policy::Tail { triggers: 0 }, "selection.triggers"),
            (Policy::Reservoir { size: 0 }, "selection.size"),
            (
                Policy::Freshness {
                    size: 3,
                    unused_ratio: 1.5,
                },
                "selection.unused_ratio",
            ),
            (
                Policy::NewData {
                    limit: Some(0),
                    limit_by: LimitBy::Uniform,
                },
                "selection.limit",
            ),
        ] {
            assert!(p.validate().unwrap_err().to_string().starts_with(field));
        }
        let e = toml::from_str::<Policy>("policy = \"reservoir\"\nsize = 3\nsise = 4\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sise"), "{e}");
        let e = toml::from_str::<Policy>("policy = \"best\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("best"), "{e}");
        let p: Policy =
            toml::from_str("policy = \"new_data\"\nlimit = 5\nlimit_by = \"uniform\"\n").unwrap();
        assert_eq!(
            p,
            Policy::NewData {
                limit: Some(5),
                limit_by: LimitBy::Uniform
            }
        );
    }

    proptest! {
        /// Whatever the policy, a restart (the state saved and read back between triggers)
        /// selects exactly what an uninterrupted selector selects, and every chosen key was
        /// seen.
        #[test]
        fn selections_are_deterministic_and_restartable(
            sizes in prop::collection::vec(0u64..200, 1..6),
            which in 0usize..6,
            n in 1u64..50,
        ) {
            let policy = match which {
                0 => Policy::All,
                1 => Policy::NewData { limit: Some(n), limit_by: LimitBy::Uniform },
                2 => Policy::Tail { triggers: (n % 3 + 1) as u32 },
                3 => Policy::Freshness { size: n, unused_ratio: 0.3 },
                4 => Policy::Reservoir { size: n },
                _ => Policy::LabelBalanced { per_label: n },
            };
            let mut straight = Tracked::new(policy.clone(), 11);
            let mut restarted = Tracked::new(policy, 11);
            let mut next = 0u64;
            for size in sizes {
                let batch = arrivals(next..next + size);
                next += size;
                straight.observe(batch.clone());
                restarted.observe(batch);
                // a restart between triggers: the state saved and read back
                let saved = serde_json::to_vec(&restarted).unwrap();
                restarted = serde_json::from_slice(&saved).unwrap();
                let (a, b) = (straight.select(), restarted.select());
                prop_assert_eq!(&a, &b);
                prop_assert!(a.keys.iter().all(|&k| k < next));
                prop_assert!(a.keys.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn state_round_trips_through_its_codec(
            epochs in proptest::collection::vec((0u64..200, any::<bool>()), 1..6),
            policy in 0usize..3,
            seed in any::<u64>(),
        ) {
            let policy = [
                Policy::Reservoir { size: 17 },
                Policy::Freshness { size: 20, unused_ratio: 0.3 },
                Policy::LabelBalanced { per_label: 5 },
            ][policy].clone();
            let mut t = Tracked::new(policy.clone(), seed);
            let mut next = 0;
            for (n, fire) in epochs {
                t.observe(arrivals(next..next + n));
                next += n;
                if fire {
                    t.select();
                }
            }
            let bytes = t.encode();
            let back = Tracked::decode(policy.clone(), seed, &bytes).expect("decodes");
            prop_assert_eq!(&back, &t);
            // the decoded state selects what the original does
            let (mut a, mut b) = (t.clone(), back);
            prop_assert_eq!(a.select(), b.select());
            // every cut and every extra byte is refused, never a panic
            for len in 0..bytes.len() {
                prop_assert!(Tracked::decode(policy.clone(), seed, &bytes[..len]).is_err());
            }
            let mut longer = bytes;
            longer.push(0);
            prop_assert!(Tracked::decode(policy, seed, &longer).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Tracked::decode(Policy::All, 0, &bytes);
        }
    }
}
