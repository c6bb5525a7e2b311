//! `loadgen`: synthetic collectors for flywheel (`loadgen stream`) and the benchmark
//! harness (`loadgen bench`). Every benchmark measures a baseline in the same run and
//! prints the ratio to it, so figures from different machines can be compared by their
//! ratios.

mod bench_bus;
mod bench_ingest;
mod bench_meta;
mod bench_prepare;
mod bench_release;
mod bench_select;
mod bench_train;
mod bench_trigger;
mod stream_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

/// Synthetic load for flywheel, and its benchmarks.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish a synthetic, drifting stream of samples (a sensor, a clickstream, small
    /// images) to Kafka or through the gateway, at a given rate.
    Stream(stream_cmd::StreamArgs),
    /// Benchmarks, each printed with the ratio to a baseline measured in the same run.
    Bench {
        #[command(subcommand)]
        bench: Bench,
    },
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Produce and consume throughput of the event bus, against writing and reading the
    /// same bytes sequentially in one local file (fsynced per batch, as the bus acknowledges).
    Bus(bench_bus::BusArgs),
    /// Sample-index rows committed per second to the metadata store (SQLite), in
    /// changesets, against plain INSERTs of the same rows into one bare table.
    Meta(bench_meta::MetaArgs),
    /// Samples stored per second by the ingest service (segments, index rows,
    /// changesets), against reading, decoding and validating the same samples from the bus.
    Ingest(bench_ingest::IngestArgs),
    /// Time and memory to prepare a training set as its dataset grows (1 M to 10 M
    /// samples), against reading the same index rows with one bare SELECT.
    Prepare(bench_prepare::PrepareArgs),
    /// Keys per second (one core) each selection policy considers, and memory per tracked
    /// sample, against copying and sorting the same keys.
    Select(bench_select::SelectArgs),
    /// Samples and bytes per second the trainer's loader delivers for a random half of a
    /// dataset, by key (cold and warm cache, 1 and 4 workers), against reading the same
    /// samples sequentially from one local file.
    Loader(bench_train::TrainArgs),
    /// Training throughput (samples per second through one training loop and model) fed
    /// by the loader with a random half of a dataset, against the same loop fed from one
    /// local file holding the same samples, read sequentially.
    Train(bench_train::TrainArgs),
    /// Time from a training-set event to its model's release, for the demo's MLP, against
    /// the training loop alone.
    Release(bench_release::ReleaseArgs),
    /// Cost per sample of evaluating each trigger policy (data amount, time, performance,
    /// drift by KS, PSI and MMD, an ensemble), against a pass that sums the features.
    Trigger(bench_trigger::TriggerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Stream(args) => rt.block_on(stream_cmd::run(&args)),
        Command::Bench {
            bench: Bench::Bus(args),
        } => rt.block_on(bench_bus::run(&args)),
        Command::Bench {
            bench: Bench::Meta(args),
        } => rt.block_on(bench_meta::run(&args)),
        Command::Bench {
            bench: Bench::Ingest(args),
        } => rt.block_on(bench_ingest::run(&args)),
        Command::Bench {
            bench: Bench::Prepare(args),
        } => rt.block_on(bench_prepare::run(&args)),
        Command::Bench {
            bench: Bench::Select(args),
        } => bench_select::run(&args),
        Command::Bench {
            bench: Bench::Trigger(args),
        } => bench_trigger::run(&args),
        Command::Bench {
            bench: Bench::Release(args),
        } => rt.block_on(bench_release::run(&args)),
        Command::Bench {
            bench: Bench::Loader(args),
        } => bench_train::run_loader(&args, rt.handle()),
        Command::Bench {
            bench: Bench::Train(args),
        } => bench_train::run_train(&args, rt.handle()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("loadgen: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

/// A progress bar on stderr for `n` items (hidden when the output is JSON).
pub(crate) fn progress(n: usize, what: &str, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(n as u64);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{what:>14} [{{bar:30}}] {{pos}}/{{len}} ({{per_sec}})"
        ))
        .expect("template")
        .progress_chars("=> "),
    );
    pb
}

/// The process's resident set size, in bytes (0 where /proc is missing).
pub(crate) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}
