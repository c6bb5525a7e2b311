//! Synthetic collectors: endless, seeded streams of samples whose distribution changes
//! over time, for the demo, the experiments and load tests.
//!
//! - [`Sensor`]: a sensor's numeric readings, two classes, with gradual concept drift (the
//!   classes' centres turn about the regime's centre) and sudden drift (every so many
//!   samples the regime jumps: a new centre, a new orientation), so both the features'
//!   distribution and the label's dependence on them change; labels can be partial.
//! - [`Clicks`]: a clickstream: a user segment, an item category, the hour and a few
//!   behavioural features; the label is a click, whose odds per category drift as tastes
//!   change (and jump at sudden drifts).
//! - [`Images`]: small greyscale PNG images of a bar, horizontal or vertical (the label),
//!   whose brightness, contrast and noise shift over time.
//!
//! Every stream is a pure function of its configuration: the same seed gives the same
//! samples, so a run can be repeated and two policies compared on the same data. Each
//! sample comes with its true label ([`Generated::truth`]) even when it is published
//! without one, for evaluation.

use std::f64::consts::PI;
use std::io::Cursor;

use flywheel_schemas::Sample;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

/// A sample and what the collector knows about it beyond what it publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The sample as published (its label may be missing).
    pub sample: Sample,
    /// Its true label.
    pub truth: String,
    /// Its position in the stream, from 0.
    pub index: u64,
}

/// What every stream shares: where its samples go and how they are stamped.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    /// The dataset the samples name.
    pub dataset: String,
    /// The collector's name (`producer`).
    pub producer: String,
    /// The seed of every random draw.
    pub seed: u64,
    /// Event time of the first sample, microseconds since the Unix epoch.
    pub start_micros: i64,
    /// Event time between two samples, microseconds.
    pub interval_micros: i64,
    /// The share of samples published with their label, in [0, 1] (the rest without).
    pub labelled: f64,
}

impl Common {
    /// Sample `index` of the stream, labelled `truth` (published with the label or, for
    /// the share that is not `labelled`, without).
    fn generated(
        &self,
        rng: &mut ChaCha8Rng,
        index: u64,
        features: Vec<f64>,
        truth: &str,
    ) -> Generated {
        let labelled = self.labelled >= 1.0 || rng.random::<f64>() < self.labelled;
        Generated {
            sample: Sample {
                dataset: self.dataset.clone(),
                features,
                payload: None,
                blob: None,
                label: labelled.then(|| truth.to_owned()),
                event_time: self.start_micros + index as i64 * self.interval_micros,
                producer: Some(self.producer.clone()),
            },
            truth: truth.to_owned(),
            index,
        }
    }
}

/// How a stream's concept changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drift {
    /// Gradual drift: how far the concept turns every 1,000 samples, in degrees.
    pub degrees_per_1000: f64,
    /// Sudden drift: the concept jumps every this many samples (none if `None`).
    pub sudden_every: Option<u64>,
}

impl Drift {
    /// The concept's angle (radians) and regime at sample `index`.
    fn at(&self, index: u64) -> (f64, u64) {
        let angle = self.degrees_per_1000 * index as f64 / 1000.0 * PI / 180.0;
        let regime = self.sudden_every.map_or(0, |n| index / n.max(1));
        (angle, regime)
    }
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// A regime's own random draws, the same whenever it is asked for.
fn regime_rng(seed: u64, regime: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ regime.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed)
}

/// A drifting sensor: `features` readings (at least 2), label `"0"` or `"1"`.
///
/// A regime has a centre `c` and two orthonormal directions `u`, `v`. Class `y` is drawn
/// around `c ± (separation / 2) (cos θ u + sin θ v)` with unit noise in every feature,
/// `θ` the gradual drift's angle; a sudden drift draws a new regime.
#[derive(Debug, Clone)]
pub struct Sensor {
    common: Common,
    features: usize,
    separation: f64,
    drift: Drift,
    rng: ChaCha8Rng,
    index: u64,
    regime: Option<(u64, Regime)>,
}

#[derive(Debug, Clone)]
struct Regime {
    centre: Vec<f64>,
    u: Vec<f64>,
    v: Vec<f64>,
}

impl Regime {
    fn draw(seed: u64, regime: u64, d: usize) -> Self {
        let mut rng = regime_rng(seed, regime);
        let centre: Vec<f64> = (0..d).map(|_| 1.5 * normal(&mut rng)).collect();
        let unit = |rng: &mut ChaCha8Rng| {
            let x: Vec<f64> = (0..d).map(|_| normal(rng)).collect();
            let n = x.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
            x.into_iter().map(|a| a / n).collect::<Vec<f64>>()
        };
        let u = unit(&mut rng);
        // v: orthogonal to u (Gram-Schmidt)
        let w = unit(&mut rng);
        let dot: f64 = u.iter().zip(&w).map(|(a, b)| a * b).sum();
        let v: Vec<f64> = w.iter().zip(&u).map(|(b, a)| b - dot * a).collect();
        let n = v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
        let v = v.into_iter().map(|a| a / n).collect();
        Self { centre, u, v }
    }
}

impl Sensor {
    /// A sensor stream of `features` readings, the two classes `separation` noise units
    /// apart.
    ///
    /// # Panics
    /// With fewer than 2 features or a separation that is not positive.
    pub fn new(common: Common, features: usize, separation: f64, drift: Drift) -> Self {
        assert!(features >= 2, "a sensor has at least 2 features");
        assert!(separation > 0.0, "the classes are apart");
        Self {
            rng: ChaCha8Rng::seed_from_u64(common.seed),
            common,
            features,
            separation,
            drift,
            index: 0,
            regime: None,
        }
    }
}

impl Iterator for Sensor {
    type Item = Generated;

    fn next(&mut self) -> Option<Generated> {
        let index = self.index;
        self.index += 1;
        let (angle, regime) = self.drift.at(index);
        if self.regime.as_ref().is_none_or(|(r, _)| *r != regime) {
            self.regime = Some((
                regime,
                Regime::draw(self.common.seed, regime, self.features),
            ));
        }
        let r = &self.regime.as_ref().expect("drawn above").1;
        let class = self.rng.random::<bool>();
        let sign = if class { 0.5 } else { -0.5 } * self.separation;
        let (c, s) = (angle.cos(), angle.sin());
        let features: Vec<f64> = (0..self.features)
            .map(|j| {
                let centre = r.centre[j] + sign * (c * r.u[j] + s * r.v[j]);
                centre + normal(&mut self.rng)
            })
            .collect();
        let truth = if class { "1" } else { "0" };
        Some(self.common.generated(&mut self.rng, index, features, truth))
    }
}

/// Item categories of [`Clicks`].
const CATEGORIES: usize = 6;
/// User segments of [`Clicks`].
const SEGMENTS: usize = 4;

/// A clickstream: features are a user segment and an item category (one-hot), the hour
/// of day (sine and cosine), the position on the page and the user's recent activity;
/// the label is `"click"` or `"skip"`. Each segment's taste for each category (the log
/// odds of a click) turns with the gradual drift and is drawn anew at a sudden drift.
#[derive(Debug, Clone)]
pub struct Clicks {
    common: Common,
    drift: Drift,
    rng: ChaCha8Rng,
    index: u64,
}

impl Clicks {
    /// A clickstream.
    pub fn new(common: Common, drift: Drift) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(common.seed),
            common,
            drift,
            index: 0,
        }
    }

    /// Features per sample.
    pub const FEATURES: usize = SEGMENTS + CATEGORIES + 4;

    /// The log odds of a click of `segment` on `category` at the drift's `(angle, regime)`.
    fn taste(&self, segment: usize, category: usize, angle: f64, regime: u64) -> f64 {
        let mut rng = regime_rng(self.common.seed, regime * 1000 + 1);
        let mut phase = 0.0;
        for _ in 0..=(segment * CATEGORIES + category) {
            phase = rng.random::<f64>() * 2.0 * PI;
        }
        2.0 * (angle + phase).sin()
    }
}

impl Iterator for Clicks {
    type Item = Generated;

    fn next(&mut self) -> Option<Generated> {
        let index = self.index;
        self.index += 1;
        let (angle, regime) = self.drift.at(index);
        let segment = self.rng.random_range(0..SEGMENTS);
        let category = self.rng.random_range(0..CATEGORIES);
        let hour = (index as f64 * self.common.interval_micros as f64 / 3.6e9) % 24.0;
        let position = f64::from(self.rng.random_range(1..=10u8));
        let activity = self.rng.random::<f64>();
        let logit = self.taste(segment, category, angle, regime) - 0.15 * position
            + 0.8 * (activity - 0.5)
            + 0.3 * (hour / 24.0 * 2.0 * PI).sin();
        let click = self.rng.random::<f64>() < 1.0 / (1.0 + (-logit).exp());
        let mut features = vec![0.0; Self::FEATURES];
        features[segment] = 1.0;
        features[SEGMENTS + category] = 1.0;
        features[SEGMENTS + CATEGORIES] = (hour / 24.0 * 2.0 * PI).sin();
        features[SEGMENTS + CATEGORIES + 1] = (hour / 24.0 * 2.0 * PI).cos();
        features[SEGMENTS + CATEGORIES + 2] = position / 10.0;
        features[SEGMENTS + CATEGORIES + 3] = activity;
        let truth = if click { "click" } else { "skip" };
        Some(self.common.generated(&mut self.rng, index, features, truth))
    }
}

/// Small greyscale PNG images (`size` x `size`) of a bar through the middle, horizontal
/// (`"h"`) or vertical (`"v"`), as the sample's payload. Over the stream the background
/// brightens, the bar's contrast fades and the noise grows (the gradual drift's angle,
/// as a share of a quarter turn, sets how far); a sudden drift inverts the image.
#[derive(Debug, Clone)]
pub struct Images {
    common: Common,
    size: u32,
    drift: Drift,
    rng: ChaCha8Rng,
    index: u64,
}

impl Images {
    /// An image stream of `size` x `size` pictures.
    ///
    /// # Panics
    /// If `size` is below 4.
    pub fn new(common: Common, size: u32, drift: Drift) -> Self {
        assert!(size >= 4, "images are at least 4x4");
        Self {
            rng: ChaCha8Rng::seed_from_u64(common.seed),
            common,
            size,
            drift,
            index: 0,
        }
    }
}

impl Iterator for Images {
    type Item = Generated;

    fn next(&mut self) -> Option<Generated> {
        let index = self.index;
        self.index += 1;
        let (angle, regime) = self.drift.at(index);
        let shift = (angle / (PI / 2.0)).clamp(0.0, 1.0);
        let vertical = self.rng.random::<bool>();
        let (background, bar, noise) = (
            30.0 + 120.0 * shift,
            220.0 - 60.0 * shift,
            10.0 + 40.0 * shift,
        );
        let n = self.size;
        let at = self.rng.random_range(n / 4..n - n / 4);
        let inverted = regime % 2 == 1;
        let img = image::GrayImage::from_fn(n, n, |x, y| {
            let on = if vertical { x == at } else { y == at };
            let v = if on { bar } else { background } + noise * normal(&mut self.rng);
            let v = v.clamp(0.0, 255.0);
            image::Luma([if inverted { 255.0 - v } else { v } as u8])
        });
        let mut png = Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png)
            .expect("a PNG encodes into memory");
        let truth = if vertical { "v" } else { "h" };
        let mut generated = self
            .common
            .generated(&mut self.rng, index, Vec::new(), truth);
        generated.sample.payload = Some(png.into_inner());
        Some(generated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(labelled: f64) -> Common {
        Common {
            dataset: "d".into(),
            producer: "t".into(),
            seed: 7,
            start_micros: 1_000_000,
            interval_micros: 1_000,
            labelled,
        }
    }

    const STILL: Drift = Drift {
        degrees_per_1000: 0.0,
        sudden_every: None,
    };

    /// Accuracy of the best linear rule `sign(w . (x - m))` learnt by class means on
    /// `train`, applied to `test`.
    fn mean_rule(train: &[Generated], test: &[Generated]) -> f64 {
        let d = train[0].sample.features.len();
        let mut means = [vec![0.0; d], vec![0.0; d]];
        let mut counts = [0.0; 2];
        for g in train {
            let y = usize::from(g.truth == "1");
            counts[y] += 1.0;
            for (m, x) in means[y].iter_mut().zip(&g.sample.features) {
                *m += x;
            }
        }
        for y in 0..2 {
            for m in &mut means[y] {
                *m /= counts[y];
            }
        }
        let right = test
            .iter()
            .filter(|g| {
                let (d0, d1): (f64, f64) = g
                    .sample
                    .features
                    .iter()
                    .enumerate()
                    .fold((0.0, 0.0), |(a, b), (j, x)| {
                        (a + (x - means[0][j]).powi(2), b + (x - means[1][j]).powi(2))
                    });
                (d1 < d0) == (g.truth == "1")
            })
            .count();
        right as f64 / test.len() as f64
    }

    #[test]
    fn a_seed_fixes_the_stream_and_another_changes_it() {
        let drift = Drift {
            degrees_per_1000: 30.0,
            sudden_every: Some(500),
        };
        let a: Vec<Generated> = Sensor::new(common(1.0), 8, 3.0, drift).take(1000).collect();
        let b: Vec<Generated> = Sensor::new(common(1.0), 8, 3.0, drift).take(1000).collect();
        assert_eq!(a, b);
        let other = Common {
            seed: 8,
            ..common(1.0)
        };
        let c: Vec<Generated> = Sensor::new(other, 8, 3.0, drift).take(1000).collect();
        assert_ne!(a, c);
        assert_eq!(a[10].sample.event_time, 1_000_000 + 10 * 1_000);
        assert_eq!(a[10].index, 10);
        assert!(a.iter().all(|g| g.sample.features.len() == 8));
    }

    #[test]
    fn a_still_sensor_is_learnable_and_drift_makes_an_old_rule_fail() {
        let still: Vec<Generated> = Sensor::new(common(1.0), 8, 3.0, STILL).take(4000).collect();
        let acc = mean_rule(&still[..2000], &still[2000..]);
        assert!(acc > 0.85, "a still concept is learnable: {acc}");

        // gradual: a quarter turn over the stream; the first rule fails at the end
        let gradual = Drift {
            degrees_per_1000: 22.5,
            sudden_every: None,
        };
        let s: Vec<Generated> = Sensor::new(common(1.0), 8, 3.0, gradual)
            .take(8000)
            .collect();
        let early = mean_rule(&s[..1000], &s[1000..2000]);
        let late = mean_rule(&s[..1000], &s[7000..]);
        let fresh = mean_rule(&s[6000..7000], &s[7000..]);
        assert!(early > 0.8 && fresh > 0.8, "{early} {fresh}");
        assert!(late < early - 0.2, "gradual drift: {late} against {early}");

        // sudden: a new regime; the old rule is no better than a guess there
        let sudden = Drift {
            degrees_per_1000: 0.0,
            sudden_every: Some(3000),
        };
        let s: Vec<Generated> = Sensor::new(common(1.0), 8, 3.0, sudden)
            .take(6000)
            .collect();
        let before = mean_rule(&s[..2000], &s[2000..3000]);
        let after = mean_rule(&s[..2000], &s[3000..]);
        let relearnt = mean_rule(&s[3000..5000], &s[5000..]);
        assert!(before > 0.85 && relearnt > 0.85, "{before} {relearnt}");
        assert!(after < 0.75, "sudden drift: {after}");
    }

    #[test]
    fn partial_labels_leave_some_samples_without_one() {
        let s: Vec<Generated> = Sensor::new(common(0.3), 4, 3.0, STILL).take(2000).collect();
        let labelled = s.iter().filter(|g| g.sample.label.is_some()).count();
        assert!((450..750).contains(&labelled), "{labelled}");
        assert!(
            s.iter()
                .filter_map(|g| g.sample.label.as_ref().map(|l| (l, &g.truth)))
                .all(|(l, t)| l == t)
        );
        let all: Vec<Generated> = Sensor::new(common(1.0), 4, 3.0, STILL).take(100).collect();
        assert!(all.iter().all(|g| g.sample.label.is_some()));
    }

    #[test]
    fn clicks_and_images_are_valid_samples_that_drift() {
        let drift = Drift {
            degrees_per_1000: 90.0,
            sudden_every: Some(1000),
        };
        let clicks: Vec<Generated> = Clicks::new(common(1.0), drift).take(2000).collect();
        for g in &clicks {
            assert_eq!(g.sample.features.len(), Clicks::FEATURES);
            assert_eq!(g.sample.features[..SEGMENTS].iter().sum::<f64>(), 1.0);
            assert!(["click", "skip"].contains(&g.truth.as_str()));
        }
        let rate = |s: &[Generated]| {
            s.iter().filter(|g| g.truth == "click").count() as f64 / s.len() as f64
        };
        assert!((0.1..0.9).contains(&rate(&clicks)), "{}", rate(&clicks));

        let images: Vec<Generated> = Images::new(common(1.0), 8, drift).take(1200).collect();
        let decoded = |g: &Generated| {
            image::load_from_memory(g.sample.payload.as_deref().unwrap())
                .unwrap()
                .to_luma8()
        };
        let first = decoded(&images[0]);
        assert_eq!(first.dimensions(), (8, 8));
        let mean = |s: &[Generated]| {
            s.iter()
                .map(|g| {
                    decoded(g)
                        .as_raw()
                        .iter()
                        .map(|&p| f64::from(p))
                        .sum::<f64>()
                        / 64.0
                })
                .sum::<f64>()
                / s.len() as f64
        };
        // brighter as it drifts, inverted after the sudden drift
        let (start, drifted, inverted) = (
            mean(&images[..100]),
            mean(&images[900..1000]),
            mean(&images[1000..1100]),
        );
        assert!(drifted > start + 20.0, "{start} {drifted}");
        assert!(inverted < drifted - 15.0, "{drifted} {inverted}");
        for s in [&clicks[..], &images[..]] {
            for g in s {
                flywheel_schemas::validate_sample(&g.sample).unwrap();
            }
        }
    }
}
