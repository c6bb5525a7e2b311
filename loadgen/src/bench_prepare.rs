//! `loadgen bench prepare`: how long preparing a training set takes as its dataset grows
//! (1 M to 10 M samples by default), and how much memory it takes.
//!
//! The dataset (SQLite, changesets of `--batch` samples, ten labels) is grown step by step;
//! at each size two training sets are prepared: every sample, and a filtered one (three
//! labels, the newest half). The manifest goes to a `file://` blob store in the work
//! directory. Baseline: reading the same index rows straight from the tenant's SQLite file
//! with one bare `SELECT` in the manifest's order (changeset, key), the least any prepare
//! on this store must do.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use flywheel_store::{
    ChangesetKind, ChangesetRecord, IndexRow, NewChangeset, SampleLocation, Tenant, TenantStore,
};
use flywheel_trainset::{QueryRequest, prepare};
use serde::Serialize;

use crate::{progress, rss_bytes};

const PARTITIONS: u64 = 8;
const SIZE: u64 = 256;
const DATASET: &str = "bench";

#[derive(Debug, Args)]
pub(crate) struct PrepareArgs {
    /// Dataset sizes (samples) at which to prepare, ascending.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_000usize, 2_000_000, 5_000_000, 10_000_000])]
    sizes: Vec<usize>,
    /// Samples per changeset.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Where the work directory (store, blobs) goes.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Print the results as one JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Step {
    samples: usize,
    baseline_seconds: f64,
    all_seconds: f64,
    all_ratio: f64,
    all_selected: i64,
    filtered_seconds: f64,
    filtered_ratio: f64,
    filtered_selected: i64,
    manifest_bytes_per_sample: f64,
    peak_rss_growth_mib: f64,
}

fn row(i: u64, changeset: i64) -> IndexRow {
    let (partition, offset) = (i % PARTITIONS, i / PARTITIONS);
    IndexRow {
        key: (partition << 48) | offset,
        changeset,
        location: SampleLocation::Segment {
            uri: format!("default/{DATASET}/segments/c{changeset:08}-p{partition}.seg"),
            offset: (offset % 10_000) * SIZE,
            length: SIZE,
        },
        label: Some(format!("class-{}", i % 10)),
        event_time: 1_800_000_000_000_000 + i as i64 * 1_000,
        size: SIZE,
    }
}

async fn grow(
    tenant: &dyn TenantStore,
    from: usize,
    to: usize,
    batch: usize,
    hidden: bool,
) -> anyhow::Result<()> {
    let pb = progress(to - from, &format!("growing to {to} samples"), hidden);
    let mut at = from;
    while at < to {
        let changeset = (at / batch) as i64 + 1;
        let end = (at + batch).min(to);
        let rows: Vec<IndexRow> = (at..end).map(|i| row(i as u64, changeset)).collect();
        let mut record = ChangesetRecord::new(DATASET, changeset, ChangesetKind::Add, 0);
        record.sample_count = rows.len() as i64;
        record.bytes = (rows.len() as u64 * SIZE) as i64;
        tenant
            .commit_changeset(NewChangeset::new(record).with_rows(rows))
            .await?;
        pb.inc((end - at) as u64);
        at = end;
    }
    pb.finish_and_clear();
    Ok(())
}

/// The baseline: every index row of the dataset, read in (changeset, key) order.
fn baseline(db: &Path) -> anyhow::Result<(Duration, u64)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", db.display()))?;
    let started = Instant::now();
    let mut stmt = conn.prepare(
        "SELECT s.key, s.changeset, g.uri, s.seg_offset, s.seg_length, s.label, s.event_time, s.size
         FROM samples s LEFT JOIN segments g
           ON g.dataset = s.dataset AND g.changeset = s.changeset AND g.idx = s.segment
         ORDER BY s.dataset, s.changeset, s.key",
    )?;
    let mut rows = stmt.query([])?;
    let mut n = 0u64;
    let mut check = 0u64;
    while let Some(r) = rows.next()? {
        let key: i64 = r.get(0)?;
        let uri = r.get_ref(2)?.as_str_or_null()?.map_or(0, str::len);
        let label = r.get_ref(5)?.as_str_or_null()?.map_or(0, str::len);
        let time: i64 = r.get(6)?;
        check = check.wrapping_add(key as u64 ^ time as u64 ^ (uri + label) as u64);
        n += 1;
    }
    std::hint::black_box(check);
    Ok((started.elapsed(), n))
}

/// Runs `f`, sampling the resident set every 5 ms; returns its result and the peak growth.
async fn with_peak_rss<T>(f: impl Future<Output = T>) -> (T, u64) {
    let before = rss_bytes() / 1024;
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes() / 1024, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let out = f.await;
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    (out, peak.load(Ordering::Relaxed).saturating_sub(before))
}

pub(crate) async fn run(args: &PrepareArgs) -> anyhow::Result<()> {
    if args.sizes.is_empty() || args.batch == 0 || args.sizes.windows(2).any(|w| w[0] >= w[1]) {
        bail!("--sizes must be ascending and --batch positive");
    }
    let work = tempfile::tempdir_in(&args.dir)
        .with_context(|| format!("creating a work directory in {}", args.dir.display()))?;
    let db = work.path().join("meta.db");
    let meta = flywheel_store::open(&format!("sqlite://{}", db.display())).await?;
    let tenant = meta.tenant(&Tenant::default_tenant()).await?;
    let blob_dir = work.path().join("blobs");
    let blobs = flywheel_store::blobs::open_blobs(&format!("file://{}", blob_dir.display()))?;
    let tenant_db = work.path().join("meta.default.db");

    let mut steps = Vec::new();
    let mut have = 0;
    for &size in &args.sizes {
        grow(tenant.as_ref(), have, size, args.batch, args.json).await?;
        have = size;
        // warm the page cache the same way for both: one read first
        baseline(&tenant_db)?;
        let (base, n) = baseline(&tenant_db)?;
        if n != size as u64 {
            bail!("the baseline read {n} rows, expected {size}");
        }

        let all = QueryRequest {
            dataset: DATASET.into(),
            ..QueryRequest::default()
        };
        let started = Instant::now();
        let (p_all, rss_all) = with_peak_rss(prepare(tenant.as_ref(), &blobs, &all, 0)).await;
        let all_time = started.elapsed();
        let p_all = p_all?;
        if p_all.record.sample_count != size as i64 {
            bail!(
                "prepared {} samples, expected {size}",
                p_all.record.sample_count
            );
        }
        let manifest = std::fs::metadata(blob_dir.join(&p_all.record.manifest_uri))?.len();

        let filtered = QueryRequest {
            labels: vec!["class-1".into(), "class-4".into(), "class-7".into()],
            percentage: Some(0.5),
            ..all.clone()
        };
        let started = Instant::now();
        let (p_f, rss_f) = with_peak_rss(prepare(tenant.as_ref(), &blobs, &filtered, 0)).await;
        let filtered_time = started.elapsed();
        let p_f = p_f?;

        let step = Step {
            samples: size,
            baseline_seconds: base.as_secs_f64(),
            all_seconds: all_time.as_secs_f64(),
            all_ratio: all_time.as_secs_f64() / base.as_secs_f64(),
            all_selected: p_all.record.sample_count,
            filtered_seconds: filtered_time.as_secs_f64(),
            filtered_ratio: filtered_time.as_secs_f64() / base.as_secs_f64(),
            filtered_selected: p_f.record.sample_count,
            manifest_bytes_per_sample: manifest as f64 / size as f64,
            peak_rss_growth_mib: rss_all.max(rss_f) as f64 / 1024.0,
        };
        if !args.json {
            println!(
                "{:>10} samples: baseline read {:>7.3} s | prepare all {:>7.3} s ({:.2}x) | filtered {:>7.3} s ({:.2}x, {} selected) | manifest {:.1} B/sample | peak RSS +{:.0} MiB",
                step.samples,
                step.baseline_seconds,
                step.all_seconds,
                step.all_ratio,
                step.filtered_seconds,
                step.filtered_ratio,
                step.filtered_selected,
                step.manifest_bytes_per_sample,
                step.peak_rss_growth_mib
            );
        }
        steps.push(step);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&steps)?);
    }
    Ok(())
}
