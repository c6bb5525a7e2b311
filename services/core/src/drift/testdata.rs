//! Seeded synthetic samples for the tests.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A seeded stream of standard normal features (Box–Muller).
#[derive(Debug)]
pub(super) struct Gaussian {
    rng: StdRng,
    dims: usize,
}

impl Gaussian {
    pub(super) fn new(seed: u64, dims: usize) -> Self {
        Gaussian {
            rng: StdRng::seed_from_u64(seed),
            dims,
        }
    }

    /// One standard normal value.
    pub(super) fn standard(&mut self) -> f64 {
        let u1 = 1.0 - self.rng.random::<f64>();
        let u2 = self.rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// One sample whose features have mean `mean` and standard deviation `scale`.
    pub(super) fn sample(&mut self, mean: f64, scale: f64) -> Vec<f64> {
        (0..self.dims)
            .map(|_| mean + scale * self.standard())
            .collect()
    }
}

/// `n` samples of `dims` standard normal features.
pub(super) fn gaussian_rows(seed: u64, n: usize, dims: usize) -> Vec<Vec<f64>> {
    let mut g = Gaussian::new(seed, dims);
    (0..n).map(|_| g.sample(0.0, 1.0)).collect()
}

/// The samples with `by` added to every feature.
pub(super) fn shifted(rows: &[Vec<f64>], by: f64) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|r| r.iter().map(|v| v + by).collect())
        .collect()
}
