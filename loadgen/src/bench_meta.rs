//! `loadgen bench meta`: sample-index rows committed per second, the ceiling for ingest.
//!
//! Baseline: the same rows as plain INSERTs into one bare table (no key, no index) of a
//! fresh SQLite file with the store's pragmas, one transaction per batch. Then the store:
//! one `commit_changeset` per batch (changeset row, index rows with their two indexes,
//! the liveness check of every key, dataset counters, consumer offsets). Only the database
//! work is timed, not building the rows.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use flywheel_store::sqlite::CONNECTION_PRAGMAS;
use flywheel_store::{
    ChangesetKind, ChangesetRecord, IndexRow, NewChangeset, SampleLocation, SourceRange, Tenant,
    TopicPartition,
};
use serde::Serialize;

use crate::progress;

const PARTITIONS: u64 = 8;
const SIZE: u64 = 1024;
const TOPIC: &str = "flywheel.default.samples";

#[derive(Debug, Args)]
pub(crate) struct MetaArgs {
    /// Index rows to commit in all.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Index rows per changeset (and per transaction of the baseline).
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// How sample keys are made: from the source position (partition and offset, so
    /// ascending per partition) or hashed (spread over the whole key space).
    #[arg(long, value_enum, default_value_t = Keys::Position)]
    keys: Keys,
    /// Where the work directory (store and baseline files) goes; it should be the disk
    /// the store will live on.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Print the results as one JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Keys {
    Position,
    Hashed,
}

#[derive(Debug, Serialize)]
struct Phase {
    name: &'static str,
    seconds: f64,
    rows_per_second: f64,
    ratio_to_baseline: f64,
    commit_p50_ms: f64,
    commit_p99_ms: f64,
    disk_bytes_per_row: f64,
}

#[derive(Debug, Serialize)]
struct Results {
    rows: usize,
    batch: usize,
    keys: Keys,
    pragmas: String,
    phases: Vec<Phase>,
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Sample `i` as ingest would index it: round-robin over the partitions, packed into one
/// segment per partition per changeset.
fn index_row(i: u64, changeset: i64, keys: Keys) -> IndexRow {
    let (partition, offset) = (i % PARTITIONS, i / PARTITIONS);
    IndexRow {
        key: match keys {
            Keys::Position => (partition << 48) | offset,
            Keys::Hashed => splitmix64(i),
        },
        changeset,
        location: SampleLocation::Segment {
            uri: format!(
                "file:///var/lib/flywheel/blobs/default/bench/{changeset:08}-{partition}.seg"
            ),
            offset: (offset % 100_000) * SIZE,
            length: SIZE,
        },
        label: Some(format!("class-{}", i % 10)),
        event_time: 1_800_000_000_000_000 + i as i64 * 1_000,
        size: SIZE,
    }
}

fn batch_rows(args: &MetaArgs, changeset: i64) -> Vec<IndexRow> {
    let start = (changeset as usize - 1) * args.batch;
    let end = (start + args.batch).min(args.rows);
    (start..end)
        .map(|i| index_row(i as u64, changeset, args.keys))
        .collect()
}

fn batches(args: &MetaArgs) -> i64 {
    args.rows.div_ceil(args.batch) as i64
}

/// Bytes of a SQLite database on disk, with its WAL.
fn disk_bytes(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    [db.to_owned(), PathBuf::from(wal)]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Commit latencies: total seconds, p50 and p99 in milliseconds.
fn summary(latencies: &mut [Duration]) -> (f64, f64, f64) {
    latencies.sort_unstable();
    let total = latencies.iter().sum::<Duration>().as_secs_f64();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1e3
    };
    (total, at(0.5), at(0.99))
}

fn baseline(path: &Path, args: &MetaArgs) -> anyhow::Result<Vec<Duration>> {
    let mut conn =
        rusqlite::Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.execute_batch(CONNECTION_PRAGMAS)?;
    conn.execute_batch(
        "CREATE TABLE rows (key INTEGER, changeset INTEGER, uri TEXT, seg_offset INTEGER,
                            seg_length INTEGER, label TEXT, event_time INTEGER, size INTEGER)",
    )?;
    let pb = progress(args.rows, "baseline", args.json);
    let mut latencies = Vec::new();
    for changeset in 1..=batches(args) {
        let rows = batch_rows(args, changeset);
        let started = Instant::now();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO rows (key, changeset, uri, seg_offset, seg_length, label,
                                   event_time, size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for r in &rows {
                let SampleLocation::Segment {
                    uri,
                    offset,
                    length,
                } = &r.location
                else {
                    unreachable!("the benchmark writes segment rows")
                };
                insert.execute(rusqlite::params![
                    r.key as i64,
                    r.changeset,
                    uri,
                    *offset as i64,
                    *length as i64,
                    r.label,
                    r.event_time,
                    r.size as i64
                ])?;
            }
        }
        tx.commit()?;
        latencies.push(started.elapsed());
        pb.inc(rows.len() as u64);
    }
    pb.finish_and_clear();
    Ok(latencies)
}

async fn store(url: &str, args: &MetaArgs) -> anyhow::Result<Vec<Duration>> {
    let store = flywheel_store::open(url)
        .await
        .with_context(|| format!("opening the store {url}"))?;
    let tenant = store.tenant(&Tenant::default_tenant()).await?;
    let pb = progress(args.rows, "store commit", args.json);
    let mut latencies = Vec::new();
    for changeset in 1..=batches(args) {
        let rows = batch_rows(args, changeset);
        let mut record = ChangesetRecord::new("bench", changeset, ChangesetKind::Add, 0);
        record.sample_count = rows.len() as i64;
        record.bytes = rows.iter().map(|r| r.size as i64).sum();
        record.segments = (0..PARTITIONS)
            .map(|p| format!("file:///var/lib/flywheel/blobs/default/bench/{changeset:08}-{p}.seg"))
            .collect();
        // rows `start..end` of the run; partition p holds those with i % PARTITIONS == p
        let start = (changeset as u64 - 1) * args.batch as u64;
        let end = start + rows.len() as u64;
        let next_offset = |i: u64, p: u64| ((i + PARTITIONS - 1 - p) / PARTITIONS) as i64;
        record.sources = (0..PARTITIONS)
            .map(|p| SourceRange {
                topic: TOPIC.into(),
                partition: p as i32,
                first_offset: next_offset(start, p),
                last_offset: next_offset(end, p) - 1,
            })
            .collect();
        let offsets = (0..PARTITIONS)
            .map(|p| (TopicPartition::new(TOPIC, p as i32), next_offset(end, p)))
            .collect();
        let n = rows.len();
        let cs = NewChangeset::new(record)
            .with_rows(rows)
            .with_offsets("ingest", offsets);
        let started = Instant::now();
        tenant.commit_changeset(cs).await?;
        latencies.push(started.elapsed());
        pb.inc(n as u64);
    }
    pb.finish_and_clear();
    let d = tenant
        .dataset("bench")
        .await?
        .context("the benchmark dataset is missing")?;
    if d.samples != args.rows as i64 {
        bail!(
            "the store holds {} samples, expected {}",
            d.samples,
            args.rows
        );
    }
    Ok(latencies)
}

pub(crate) async fn run(args: &MetaArgs) -> anyhow::Result<()> {
    if args.rows == 0 || args.batch == 0 {
        bail!("--rows and --batch must be positive");
    }
    let work = tempfile::tempdir_in(&args.dir)
        .with_context(|| format!("creating a work directory in {}", args.dir.display()))?;

    let base_file = work.path().join("baseline.db");
    let mut base = baseline(&base_file, args)?;
    let base_disk = disk_bytes(&base_file);
    let meta_file = work.path().join("meta.db");
    let url = format!("sqlite://{}", meta_file.display());
    let mut meta = store(&url, args).await?;
    let meta_disk = disk_bytes(&work.path().join("meta.default.db"));

    let (base_s, base_p50, base_p99) = summary(&mut base);
    let (meta_s, meta_p50, meta_p99) = summary(&mut meta);
    let rows = args.rows as f64;
    let results = Results {
        rows: args.rows,
        batch: args.batch,
        keys: args.keys,
        pragmas: CONNECTION_PRAGMAS
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        phases: vec![
            Phase {
                name: "baseline: bare table, a txn per batch",
                seconds: base_s,
                rows_per_second: rows / base_s,
                ratio_to_baseline: 1.0,
                commit_p50_ms: base_p50,
                commit_p99_ms: base_p99,
                disk_bytes_per_row: base_disk as f64 / rows,
            },
            Phase {
                name: "store: commit_changeset",
                seconds: meta_s,
                rows_per_second: rows / meta_s,
                ratio_to_baseline: base_s / meta_s,
                commit_p50_ms: meta_p50,
                commit_p99_ms: meta_p99,
                disk_bytes_per_row: meta_disk as f64 / rows,
            },
        ],
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    println!(
        "meta store (sqlite, synchronous=FULL): {} index rows, changesets of {}, {} keys",
        args.rows,
        args.batch,
        match args.keys {
            Keys::Position => "position",
            Keys::Hashed => "hashed",
        }
    );
    println!(
        "{:<40} {:>9} {:>11} {:>7} {:>9} {:>9} {:>10}",
        "phase", "seconds", "rows/s", "ratio", "p50 ms", "p99 ms", "disk B/row"
    );
    for p in &results.phases {
        println!(
            "{:<40} {:>9.3} {:>11.0} {:>7.2} {:>9.1} {:>9.1} {:>10.0}",
            p.name,
            p.seconds,
            p.rows_per_second,
            p.ratio_to_baseline,
            p.commit_p50_ms,
            p.commit_p99_ms,
            p.disk_bytes_per_row
        );
    }
    Ok(())
}
