//! `loadgen bench trigger`: the cost per sample of evaluating each trigger policy.
//!
//! Every trigger is fed the same `--samples` observations (8 features drawn around a mean
//! that jumps once, an event time one millisecond apart, every tenth with a model outcome)
//! in batches of 1,000, as the supervisor feeds changesets. Baseline, in the same run: one
//! pass over the same observations that sums their features, the least any trigger that
//! looks at a sample costs.

use std::time::Instant;

use clap::Args;
use flywheel_core::drift::{Criterion, DriftConfig, Metric};
use flywheel_core::trigger::{EnsembleMode, Observation, Trigger, TriggerConfig};
use serde::Serialize;

const FEATURES: usize = 8;
const BATCH: usize = 1_000;

#[derive(Debug, Args)]
pub(crate) struct TriggerArgs {
    /// Observations fed to each trigger.
    #[arg(long, default_value_t = 1_000_000)]
    samples: usize,
    /// Samples in a drift trigger's windows.
    #[arg(long, default_value_t = 1_000)]
    window: usize,
    /// Print the results as one JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    trigger: String,
    ns_per_sample: f64,
    ratio_to_baseline: f64,
    firings: usize,
}

/// A deterministic stream: features around 0, then around 1 from the middle on.
fn stream(n: usize) -> Vec<[f64; FEATURES]> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|i| {
            let shift = if i >= n / 2 { 1.0 } else { 0.0 };
            std::array::from_fn(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 11) as f64 / (1u64 << 53) as f64 + shift
            })
        })
        .collect()
}

pub(crate) fn run(args: &TriggerArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.samples >= BATCH, "--samples must be at least {BATCH}");
    let rows = stream(args.samples);
    let observations: Vec<Observation<'_>> = rows
        .iter()
        .enumerate()
        .map(|(i, f)| Observation {
            event_time: i as i64 * 1_000,
            features: f,
            outcome: (i % 10 == 0).then_some(i % 7 != 0),
        })
        .collect();

    let started = Instant::now();
    let mut sum = 0.0;
    for o in &observations {
        sum += o.features.iter().sum::<f64>();
    }
    std::hint::black_box(sum);
    let baseline = started.elapsed().as_secs_f64() * 1e9 / args.samples as f64;

    let drift = |metric| {
        TriggerConfig::Drift(DriftConfig::new(
            metric,
            args.window,
            args.window / 10,
            Criterion::Threshold(0.5),
        ))
    };
    let triggers: Vec<(String, TriggerConfig)> = vec![
        (
            "data_amount (10k)".into(),
            TriggerConfig::DataAmount { samples: 10_000 },
        ),
        (
            "time (1 min)".into(),
            TriggerConfig::Time {
                every: std::time::Duration::from_secs(60),
            },
        ),
        (
            "performance (window 500)".into(),
            TriggerConfig::Performance {
                window: 500,
                min_accuracy: 0.9,
            },
        ),
        (
            format!("drift ks (window {})", args.window),
            drift(Metric::Ks),
        ),
        (
            format!("drift psi (window {})", args.window),
            drift(Metric::Psi),
        ),
        (
            format!("drift mmd (window {})", args.window),
            drift(Metric::Mmd),
        ),
        (
            "ensemble any (data, time)".into(),
            TriggerConfig::Ensemble {
                mode: EnsembleMode::Any,
                n: None,
                of: vec![
                    TriggerConfig::DataAmount { samples: 10_000 },
                    TriggerConfig::Time {
                        every: std::time::Duration::from_secs(60),
                    },
                ],
            },
        ),
    ];
    if !args.json {
        println!(
            "{} samples of {FEATURES} features, in batches of {BATCH}; baseline (sum the features): {baseline:.1} ns/sample",
            args.samples
        );
    }
    let mut out = Vec::new();
    for (name, config) in triggers {
        config.validate("trigger")?;
        let mut t = Trigger::new(&config, 0);
        let started = Instant::now();
        let mut firings = 0;
        for batch in observations.chunks(BATCH) {
            firings += t.observe(batch).len();
        }
        let ns = started.elapsed().as_secs_f64() * 1e9 / args.samples as f64;
        let row = Row {
            trigger: name,
            ns_per_sample: ns,
            ratio_to_baseline: ns / baseline,
            firings,
        };
        if !args.json {
            println!(
                "{:<28} {:>10.1} ns/sample ({:>8.1}x the baseline), {} firings",
                row.trigger, row.ns_per_sample, row.ratio_to_baseline, row.firings
            );
        }
        out.push(row);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
