//! `loadgen bench train` and `loadgen bench loader`: the trainer's data path against a
//! sequential read of the same bytes from one local file (Modyn's comparison).
//!
//! A dataset of `--samples` samples (`--features` features each, ten classes) is written
//! as the ingest service writes it: stored forms packed into segment objects of 10,000
//! samples under a `file://` object store. A training set is a random half of it, by key
//! (a uniform draw). The baseline holds the same samples' stored forms, in the order the
//! epoch reads them, in one local file, read sequentially and decoded the same way.
//!
//! - `loader`: samples and bytes per second the loader delivers for the subset (its epoch
//!   order: random over the segments), with a cold cache (emptied first) and a warm one,
//!   with 1 and 4 workers, against the baseline's sequential read.
//! - `train`: samples per second through one training loop and model (an MLP), fed by the
//!   loader (cold cache, then warm) and by the baseline.
//!
//! Both the segments and the baseline file were just written, so both reads come from the
//! operating system's page cache: the comparison is of the software paths (requests,
//! coalescing, decoding, batching), not of the disk.

use std::io::{BufReader, Read as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use flywheel_core::pipeline::{ModelConfig, ModelKind, TrainingConfig};
use flywheel_schemas::{BodyContent, write_body};
use flywheel_trainer::TrainerError;
use flywheel_trainer::cache::Cache;
use flywheel_trainer::decode::{Shape, Stored, decode};
use flywheel_trainer::loader::{Batch, Feed, Item, Loader, LoaderConfig, Source, epoch_order};
use flywheel_trainer::model::{Card, Net};
use flywheel_trainer::train::train;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const TENANT: &str = "bench";
const SEGMENT_SAMPLES: usize = 10_000;
const VERSION: &str = "bench-subset";

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// Samples in the dataset (the training set is a random half).
    #[arg(long, default_value_t = 200_000)]
    samples: usize,
    /// Features per sample.
    #[arg(long, default_value_t = 64)]
    features: usize,
    /// Samples per batch.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// The MLP's hidden layer widths.
    #[arg(long, value_delimiter = ',', default_values_t = [256u32, 256])]
    hidden: Vec<u32>,
    /// Where the work directory goes.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Print the results as one JSON document.
    #[arg(long)]
    json: bool,
}

/// The dataset, the subset and the baseline file, written.
struct World {
    _dir: tempfile::TempDir,
    source: Arc<Source>,
    /// The subset, in manifest order.
    items: Arc<[Item]>,
    /// The epoch's order of the subset.
    order: Vec<u32>,
    shape: Shape,
    /// The baseline: the subset's stored forms in epoch order, one after another.
    file: PathBuf,
    /// Their lengths, in that order.
    lengths: Vec<u64>,
    bytes: u64,
}

fn world(args: &TrainArgs) -> anyhow::Result<World> {
    std::fs::create_dir_all(&args.dir)?;
    let dir = tempfile::Builder::new()
        .prefix("loadgen-train-")
        .tempdir_in(&args.dir)?;
    let blobs_dir = dir.path().join("blobs");
    std::fs::create_dir_all(&blobs_dir)?;
    let blobs: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&blobs_dir)?);
    let mut uris = Vec::new();
    let mut all: Vec<Item> = Vec::with_capacity(args.samples);
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    let mut features = vec![0f64; args.features];
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for start in (0..args.samples).step_by(SEGMENT_SAMPLES) {
        let uri = format!("{TENANT}/data/segments/s{:06}.seg", uris.len());
        let mut segment = Vec::new();
        for i in start..(start + SEGMENT_SAMPLES).min(args.samples) {
            let class = (next() % 10) as i64;
            for (j, f) in features.iter_mut().enumerate() {
                // a class-dependent mean, so there is something to learn
                *f = (next() % 1000) as f64 / 1000.0
                    + if j % 10 == class as usize { 1.0 } else { 0.0 };
            }
            let offset = segment.len() as u64;
            let len = write_body(&mut segment, &features, BodyContent::None) as u64;
            all.push(Item {
                key: i as u64,
                changeset: 1,
                uri: uris.len() as u32,
                range: Some((offset, len)),
                class: Ok(class),
                weight: 1.0,
            });
        }
        std::fs::create_dir_all(blobs_dir.join(format!("{TENANT}/data/segments")))?;
        std::fs::write(blobs_dir.join(&uri), &segment)?;
        segments.push(segment);
        uris.push(uri);
    }
    // the training set: a uniform half, by key
    let items: Arc<[Item]> = all
        .into_iter()
        .filter(|it| flywheel_trainer::plan::held_out(it.key, 0.5))
        .collect();
    let order = epoch_order(VERSION, 0, 1, items.len());
    // the baseline file: the same stored forms in the epoch's order
    let file = dir.path().join("subset.bin");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    let mut lengths = Vec::with_capacity(items.len());
    let mut bytes = 0;
    for &i in &order {
        let it = &items[i as usize];
        let (offset, len) = it.range.expect("segment ranges");
        out.write_all(&segments[it.uri as usize][offset as usize..(offset + len) as usize])?;
        lengths.push(len);
        bytes += len;
    }
    out.flush()?;
    drop(out);
    let shape = Shape::Features {
        width: u32::try_from(args.features)?,
    };
    Ok(World {
        source: Arc::new(Source {
            blobs,
            tenant: TENANT.into(),
            uris,
            cache_id: 1,
        }),
        items,
        order,
        shape,
        file,
        lengths,
        bytes,
        _dir: dir,
    })
}

/// The baseline feed: the file read sequentially on a blocking thread, decoded the same
/// way, in batches. It ignores `order` (the file is in that order already).
struct FileFeed {
    file: PathBuf,
    lengths: Arc<[u64]>,
    shape: Shape,
    /// Item of each position in the file.
    position_item: Arc<[u32]>,
}

impl Feed for FileFeed {
    fn batches(
        &self,
        items: Arc<[Item]>,
        _order: Vec<u32>,
        batch_size: usize,
    ) -> mpsc::Receiver<Result<Batch, TrainerError>> {
        let (tx, rx) = mpsc::channel(8);
        let (file, lengths, shape, position_item) = (
            self.file.clone(),
            self.lengths.clone(),
            self.shape,
            self.position_item.clone(),
        );
        std::thread::spawn(move || {
            let read = || -> Result<(), TrainerError> {
                let f = std::fs::File::open(&file)
                    .map_err(|e| TrainerError::Unusable(format!("{}: {e}", file.display())))?;
                let mut r = BufReader::with_capacity(1 << 20, f);
                let mut buf = Vec::new();
                let mut batch = Batch::default();
                for (pos, len) in lengths.iter().enumerate() {
                    buf.resize(*len as usize, 0);
                    r.read_exact(&mut buf)
                        .map_err(|e| TrainerError::Unusable(format!("reading: {e}")))?;
                    let item = &items[position_item[pos] as usize];
                    let values = decode(
                        shape,
                        Stored::Body {
                            body: &buf,
                            blob: None,
                        },
                    )
                    .map_err(TrainerError::Unusable)?;
                    batch.keys.push(item.key);
                    batch.inputs.extend_from_slice(&values);
                    batch.classes.push(*item.class.as_ref().expect("classes"));
                    batch.weights.push(item.weight);
                    if batch.len() == batch_size
                        && tx.blocking_send(Ok(std::mem::take(&mut batch))).is_err()
                    {
                        return Ok(());
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.blocking_send(Ok(batch));
                }
                Ok(())
            };
            if let Err(e) = read() {
                let _ = tx.blocking_send(Err(e));
            }
        });
        rx
    }
}

/// Drains a feed; samples and seconds.
fn drain(feed: &dyn Feed, w: &World, batch_size: usize) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let mut rx = feed.batches(w.items.clone(), w.order.clone(), batch_size);
    let mut n = 0u64;
    while let Some(b) = rx.blocking_recv() {
        let b = b?;
        anyhow::ensure!(
            b.skipped.is_empty(),
            "skipped samples: {:?}",
            b.skipped.first()
        );
        n += b.len() as u64;
    }
    Ok((n, started.elapsed().as_secs_f64()))
}

#[derive(Debug, Serialize)]
struct LoaderRun {
    workers: usize,
    cache: &'static str,
    samples_per_second: f64,
    megabytes_per_second: f64,
    ratio: f64,
    requests: u64,
}

#[derive(Debug, Serialize)]
struct LoaderReport {
    samples: usize,
    subset: usize,
    bytes: u64,
    baseline_samples_per_second: f64,
    baseline_megabytes_per_second: f64,
    runs: Vec<LoaderRun>,
}

fn loader(w: &World, workers: usize, cache: Cache, rt: &tokio::runtime::Handle) -> Loader {
    let _enter = rt.enter();
    Loader::new(
        w.source.clone(),
        w.shape,
        cache,
        LoaderConfig {
            workers,
            prefetch: 8,
        },
    )
}

fn file_feed(w: &World) -> FileFeed {
    FileFeed {
        file: w.file.clone(),
        lengths: w.lengths.clone().into(),
        shape: w.shape,
        position_item: w.order.clone().into(),
    }
}

pub(crate) fn run_loader(args: &TrainArgs, rt: &tokio::runtime::Handle) -> anyhow::Result<()> {
    let w = world(args).context("writing the dataset")?;
    let (n, secs) = drain(&file_feed(&w), &w, args.batch_size)?;
    anyhow::ensure!(n as usize == w.items.len(), "the baseline read {n} samples");
    let base = n as f64 / secs;
    let mb = |s: f64| w.bytes as f64 / 1e6 / s;
    let mut runs = Vec::new();
    for workers in [1, 4] {
        let cache = Cache::new(4 << 30);
        let l = loader(&w, workers, cache.clone(), rt);
        for pass in ["cold", "warm"] {
            let before = l.stats().requests.load(Ordering::Relaxed);
            let (n, secs) = drain(&l, &w, args.batch_size)?;
            anyhow::ensure!(
                n as usize == w.items.len(),
                "the loader delivered {n} samples"
            );
            let rate = n as f64 / secs;
            runs.push(LoaderRun {
                workers,
                cache: pass,
                samples_per_second: rate,
                megabytes_per_second: mb(secs),
                ratio: rate / base,
                requests: l.stats().requests.load(Ordering::Relaxed) - before,
            });
        }
    }
    let report = LoaderReport {
        samples: args.samples,
        subset: w.items.len(),
        bytes: w.bytes,
        baseline_samples_per_second: base,
        baseline_megabytes_per_second: mb(secs),
        runs,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "loader: a random half ({} of {} samples, {:.1} MB of stored forms) by key, batches of {}",
        report.subset,
        report.samples,
        report.bytes as f64 / 1e6,
        args.batch_size
    );
    println!(
        "  baseline (one local file, read sequentially, decoded): {:.0} samples/s, {:.1} MB/s",
        report.baseline_samples_per_second, report.baseline_megabytes_per_second
    );
    for r in &report.runs {
        println!(
            "  loader, {} worker(s), {} cache: {:.0} samples/s, {:.1} MB/s, {} requests: {:.2}x the baseline",
            r.workers, r.cache, r.samples_per_second, r.megabytes_per_second, r.requests, r.ratio
        );
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct TrainRun {
    feed: &'static str,
    samples_per_second: f64,
    ratio: f64,
    loss: f64,
}

pub(crate) fn run_train(args: &TrainArgs, rt: &tokio::runtime::Handle) -> anyhow::Result<()> {
    let w = world(args).context("writing the dataset")?;
    let model = ModelConfig {
        kind: ModelKind::Mlp,
        hidden: args.hidden.clone(),
        channels: Vec::new(),
        labels: Vec::new(),
    };
    let labels: Vec<String> = (0..10).map(|c| c.to_string()).collect();
    let card = Card::new(&model, w.shape, labels);
    let config = TrainingConfig {
        epochs: 1,
        batch_size: u32::try_from(args.batch_size)?,
        learning_rate: 1e-3,
        ..TrainingConfig::default()
    };
    let stop = CancellationToken::new();
    let once = |feed: &dyn Feed| -> anyhow::Result<(f64, f64)> {
        let mut net = Net::new(card.clone(), tch::Device::Cpu, 1)?;
        let o = train(&mut net, feed, &w.items, VERSION, &config, &stop, |_, _| {})?;
        anyhow::ensure!(
            o.trained as usize == w.items.len(),
            "trained on {}",
            o.trained
        );
        Ok((o.samples_per_second(), o.loss))
    };
    // a first run warms libtorch up (its allocator, its threads)
    once(&file_feed(&w))?;
    let (base, base_loss) = once(&file_feed(&w))?;
    let cache = Cache::new(4 << 30);
    let l = loader(&w, 4, cache, rt);
    let (cold, cold_loss) = once(&l)?;
    let (warm, warm_loss) = once(&l)?;
    let runs = vec![
        TrainRun {
            feed: "file (baseline)",
            samples_per_second: base,
            ratio: 1.0,
            loss: base_loss,
        },
        TrainRun {
            feed: "loader, cold cache",
            samples_per_second: cold,
            ratio: cold / base,
            loss: cold_loss,
        },
        TrainRun {
            feed: "loader, warm cache",
            samples_per_second: warm,
            ratio: warm / base,
            loss: warm_loss,
        },
    ];
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "samples": args.samples,
                "subset": w.items.len(),
                "features": args.features,
                "hidden": args.hidden,
                "batch_size": args.batch_size,
                "runs": runs,
            }))?
        );
        return Ok(());
    }
    println!(
        "train: one epoch of an MLP {:?} over a random half ({} of {} samples, {} features), batches of {}, 4 loader workers, {} torch threads",
        args.hidden,
        w.items.len(),
        args.samples,
        args.features,
        args.batch_size,
        tch::get_num_threads()
    );
    for r in &runs {
        println!(
            "  {:<20} {:>9.0} samples/s  {:.3}x  (loss {:.3})",
            r.feed, r.samples_per_second, r.ratio, r.loss
        );
    }
    Ok(())
}
