//! What a drift trigger costs: for each statistic, windows of 1k and 10k samples of 8
//! features, the time of one evaluation and the cost per observed sample when the detector
//! evaluates every `window / 10` samples.
//!
//! ```text
//! cargo run --release -p flywheel-core --example drift_cost
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use flywheel_core::drift::{Criterion, DriftConfig, DriftDetector, Metric};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIMS: usize = 8;

fn main() {
    if cfg!(debug_assertions) {
        println!("(built without --release: the figures are not representative)");
    }
    println!(
        "{:<4} {:>7} {:>12} {:>26}",
        "stat", "window", "ms / eval", "ns / sample (every w/10)"
    );
    let mut rng = StdRng::seed_from_u64(1);
    for metric in [Metric::Ks, Metric::Mmd, Metric::Psi] {
        for window in [1_000, 10_000] {
            let config = DriftConfig::new(metric, window, window / 10, Criterion::Threshold(1e9));
            let per_eval = evaluation(&config, &mut rng);
            let per_sample = per_observed_sample(config, &mut rng);
            println!(
                "{:<4} {:>7} {:>12.3} {:>26.0}",
                format!("{metric:?}").to_lowercase(),
                window,
                per_eval.as_secs_f64() * 1e3,
                per_sample.as_secs_f64() * 1e9,
            );
        }
    }
}

fn sample(rng: &mut StdRng) -> Vec<f64> {
    (0..DIMS).map(|_| rng.random::<f64>()).collect()
}

/// The mean time of one evaluation of two fresh windows (at least 5, at most 1 s).
fn evaluation(config: &DriftConfig, rng: &mut StdRng) -> Duration {
    let reference: Vec<Vec<f64>> = (0..config.window).map(|_| sample(rng)).collect();
    let current: Vec<Vec<f64>> = (0..config.window).map(|_| sample(rng)).collect();
    let statistic = config.statistic();
    let start = Instant::now();
    let mut runs = 0u32;
    while runs < 5 || start.elapsed() < Duration::from_secs(1) && runs < 1000 {
        black_box(statistic.score(&reference, &current).unwrap());
        runs += 1;
    }
    start.elapsed() / runs
}

/// The time per sample of a detector over `2 * window` samples once both windows are
/// full: 20 evaluations and the bookkeeping of every sample.
fn per_observed_sample(config: DriftConfig, rng: &mut StdRng) -> Duration {
    let mut detector = DriftDetector::new(config).unwrap();
    let n = 2 * config.window;
    let warm: Vec<Vec<f64>> = (0..2 * config.window).map(|_| sample(rng)).collect();
    let rows: Vec<Vec<f64>> = (0..n).map(|_| sample(rng)).collect();
    detector.observe_batch(&warm).unwrap();
    let start = Instant::now();
    let mut evaluations = 0;
    for row in &rows {
        evaluations += usize::from(detector.observe(row).unwrap().is_some());
    }
    let elapsed = start.elapsed();
    assert_eq!(evaluations, 20);
    elapsed / u32::try_from(n).unwrap()
}
