//! `loadgen bench select`: selection throughput (keys per second, one core) of every
//! selection policy, and memory per tracked sample, at 10 million samples by default.
//!
//! Each policy tracks `--samples` samples arriving in `--epochs` epochs (a trigger after
//! each), so a selection works on a realistic mix of new and used samples. Timed: learning
//! of the samples (`observe`) and the selections (`select`), in keys considered per second.
//! Baseline, in the same run: copying the same keys into a vector and sorting them
//! (already sorted, so a pass), the least a selection that returns keys in order costs.
//! After the last epoch, the state is encoded as the supervisor checkpoints it and read
//! back: its size per sample and the time each way.

use std::time::Instant;

use clap::Args;
use flywheel_core::selection::{Arrival, LimitBy, Policy, Tracked};
use serde::Serialize;

use crate::rss_bytes;

#[derive(Debug, Args)]
pub(crate) struct SelectArgs {
    /// Samples tracked.
    #[arg(long, default_value_t = 10_000_000)]
    samples: u64,
    /// Triggers over the stream (samples arrive evenly between them).
    #[arg(long, default_value_t = 10)]
    epochs: u64,
    /// Print the results as one JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    policy: &'static str,
    observe_keys_per_second: f64,
    select_keys_per_second: f64,
    select_ratio_to_baseline: f64,
    selected_last: usize,
    bytes_per_sample: f64,
    checkpoint_bytes_per_sample: f64,
    checkpoint_encode_seconds: f64,
    checkpoint_decode_seconds: f64,
}

const LABELS: [&str; 10] = ["l0", "l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9"];

pub(crate) fn run(args: &SelectArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.samples > 0 && args.epochs > 0,
        "--samples and --epochs must be positive"
    );
    let per_epoch = args.samples.div_ceil(args.epochs);

    // baseline: the keys copied and sorted, once per epoch, over what a policy considers
    let started = Instant::now();
    let mut considered = 0u64;
    for e in 0..args.epochs {
        let upto = ((e + 1) * per_epoch).min(args.samples);
        let mut keys: Vec<u64> = (0..upto).collect();
        keys.sort_unstable();
        considered += keys.len() as u64;
        std::hint::black_box(&keys);
    }
    let baseline = considered as f64 / started.elapsed().as_secs_f64();
    if !args.json {
        println!(
            "{} samples in {} epochs; baseline (copy and sort the keys): {:.1} M keys/s",
            args.samples,
            args.epochs,
            baseline / 1e6
        );
    }

    let policies: [(&str, Policy); 6] = [
        ("all", Policy::All),
        (
            "new_data (limit 100k, uniform)",
            Policy::NewData {
                limit: Some(100_000),
                limit_by: LimitBy::Uniform,
            },
        ),
        ("tail (3 epochs)", Policy::Tail { triggers: 3 }),
        (
            "freshness (100k, 0.5)",
            Policy::Freshness {
                size: 100_000,
                unused_ratio: 0.5,
            },
        ),
        ("reservoir (100k)", Policy::Reservoir { size: 100_000 }),
        (
            "label_balanced (10k per label)",
            Policy::LabelBalanced { per_label: 10_000 },
        ),
    ];
    let mut rows = Vec::new();
    for (name, policy) in policies {
        let before = rss_bytes();
        let mut t = Tracked::new(policy.clone(), 7);
        let (mut observe_s, mut select_s, mut considered, mut last) = (0f64, 0f64, 0u64, 0);
        for e in 0..args.epochs {
            let from = e * per_epoch;
            let to = ((e + 1) * per_epoch).min(args.samples);
            let started = Instant::now();
            t.observe((from..to).map(|k| Arrival {
                key: k,
                label: Some(LABELS[(k % 10) as usize]),
                event_time: k as i64,
            }));
            observe_s += started.elapsed().as_secs_f64();
            let started = Instant::now();
            let chosen = t.select();
            select_s += started.elapsed().as_secs_f64();
            considered += match policy {
                Policy::NewData { .. } => to - from,
                Policy::Tail { triggers } => (to - from) * u64::from(triggers).min(e + 1),
                Policy::Reservoir { .. } => chosen.keys.len() as u64,
                _ => to,
            };
            last = chosen.keys.len();
        }
        let bytes = rss_bytes().saturating_sub(before) as f64 / args.samples as f64;
        // the supervisor's checkpoint of this state
        let started = Instant::now();
        let encoded = t.encode();
        let encode_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let decoded = Tracked::decode(policy.clone(), 7, &encoded)?;
        let decode_s = started.elapsed().as_secs_f64();
        anyhow::ensure!(decoded == t, "{name}: the checkpoint does not read back");
        drop(decoded);
        let select_rate = considered as f64 / select_s;
        let row = Row {
            policy: name,
            observe_keys_per_second: args.samples as f64 / observe_s,
            select_keys_per_second: select_rate,
            select_ratio_to_baseline: select_rate / baseline,
            selected_last: last,
            bytes_per_sample: bytes,
            checkpoint_bytes_per_sample: encoded.len() as f64 / args.samples as f64,
            checkpoint_encode_seconds: encode_s,
            checkpoint_decode_seconds: decode_s,
        };
        if !args.json {
            println!(
                "{:<32} observe {:>7.1} M keys/s | select {:>7.1} M keys/s ({:.2}x) | last selection {:>9} | {:>5.1} B/sample | checkpoint {:>5.1} B/sample, {:.2} s to write, {:.2} s to read",
                row.policy,
                row.observe_keys_per_second / 1e6,
                row.select_keys_per_second / 1e6,
                row.select_ratio_to_baseline,
                row.selected_last,
                row.bytes_per_sample,
                row.checkpoint_bytes_per_sample,
                row.checkpoint_encode_seconds,
                row.checkpoint_decode_seconds
            );
        }
        drop(t);
        rows.push(row);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}
