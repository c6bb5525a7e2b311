//! `loadgen bench ingest`: samples stored per second by the ingest service, end to end (bus
//! to segments, index rows and changesets in the metadata store).
//!
//! Baseline, measured in the same run on the same published samples: a consumer group that
//! reads every sample from the bus and decodes and validates it, committing as it goes —
//! the part of ingest's work no design can skip. The ratio says what storing costs on top.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use flywheel_ingest::{Ingest, IngestConfig, IngestMetrics};
use flywheel_schemas::{Sample, decode_sample, encode};
use flywheel_store::blobs::open_blobs;
use flywheel_topics::{
    Bus, BusMetrics, ConsumerConfig, Record, Subscription, Tenant, TopicKind, connect,
    offsets_after, tenant_topics,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::progress;

#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    /// The bus: embedded://DIR or kafka://HOST:PORT. Default: an embedded bus in a fresh
    /// directory under --dir.
    #[arg(long, env = "FLYWHEEL_BUS")]
    bus: Option<String>,
    /// Where the embedded bus, the SQLite store and the blobs go.
    #[arg(long, default_value = ".")]
    dir: std::path::PathBuf,
    /// Samples to publish.
    #[arg(long, default_value_t = 200_000)]
    samples: usize,
    /// Numeric features per sample.
    #[arg(long, default_value_t = 8)]
    features: usize,
    /// Inline payload bytes per sample (0: features only).
    #[arg(long, default_value_t = 0)]
    payload: usize,
    /// Datasets the samples are spread over (each keyed to its own partition).
    #[arg(long, default_value_t = 4)]
    datasets: usize,
    /// Samples per changeset (ingest.changeset_samples).
    #[arg(long, default_value_t = 10_000)]
    changeset_samples: usize,
    /// Print the results as one JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Phase {
    name: &'static str,
    seconds: f64,
    samples_per_second: f64,
    megabytes_per_second: f64,
    ratio_to_baseline: f64,
}

#[derive(Debug, Serialize)]
struct Results {
    bus: String,
    samples: usize,
    features: usize,
    payload: usize,
    datasets: usize,
    changeset_samples: usize,
    message_bytes: u64,
    changesets: i64,
    phases: Vec<Phase>,
}

fn sample(i: usize, args: &IngestArgs) -> Sample {
    Sample {
        dataset: format!("bench-{}", i % args.datasets),
        features: (0..args.features)
            .map(|f| (i * 31 + f) as f64 * 0.001)
            .collect(),
        payload: (args.payload > 0).then(|| vec![(i % 251) as u8; args.payload]),
        blob: None,
        label: Some((i % 10).to_string()),
        event_time: 1_795_255_200_000_000 + i as i64 * 1_000,
        producer: None,
    }
}

async fn publish(bus: &dyn Bus, topic: &str, args: &IngestArgs) -> anyhow::Result<u64> {
    let pb = progress(args.samples, "publish", args.json);
    let mut bytes = 0u64;
    let mut i = 0;
    while i < args.samples {
        let end = (i + 2_000).min(args.samples);
        let records: Vec<Record> = (i..end)
            .map(|j| {
                let s = sample(j, args);
                let value = encode(&s);
                bytes += value.len() as u64;
                Record::keyed(s.dataset.into_bytes(), value)
            })
            .collect();
        bus.produce(topic, records)
            .await
            .context("publishing samples")?;
        i = end;
        pb.set_position(i as u64);
    }
    pb.finish_and_clear();
    Ok(bytes)
}

/// Reads, decodes and validates every sample through a fresh group.
async fn baseline(bus: &dyn Bus, topic: &str, args: &IngestArgs) -> anyhow::Result<f64> {
    let pb = progress(args.samples, "baseline", args.json);
    let started = Instant::now();
    let mut c = bus
        .subscribe(ConsumerConfig::new(
            format!("bench-read-{:08x}", rand::random::<u32>()),
            Subscription::topic(topic),
        ))
        .await?;
    let mut n = 0;
    let mut idle = Instant::now();
    while n < args.samples {
        let got = c.poll(2_000, Duration::from_millis(250)).await?;
        if got.is_empty() {
            if idle.elapsed() > Duration::from_secs(60) {
                bail!("baseline consumer stalled at {n} of {}", args.samples);
            }
            continue;
        }
        idle = Instant::now();
        for m in &got {
            decode_sample(&m.value).map_err(|e| anyhow::anyhow!("decoding a sample: {e}"))?;
        }
        n += got.len();
        c.commit(&offsets_after(&got)).await?;
        pb.set_position(n as u64);
    }
    pb.finish_and_clear();
    Ok(started.elapsed().as_secs_f64())
}

pub(crate) async fn run(args: &IngestArgs) -> anyhow::Result<()> {
    if args.samples == 0 || args.datasets == 0 || args.changeset_samples == 0 {
        bail!("--samples, --datasets and --changeset-samples must be positive");
    }
    let work = tempfile::tempdir_in(&args.dir)
        .with_context(|| format!("creating a work directory in {}", args.dir.display()))?;
    let url = args
        .bus
        .clone()
        .unwrap_or_else(|| format!("embedded://{}", work.path().join("bus").display()));
    let registry = prometheus::Registry::new();
    let bus = connect(&url, &BusMetrics::new(&registry))
        .await
        .with_context(|| format!("opening the bus {url}"))?;
    let meta = flywheel_store::open(&format!(
        "sqlite://{}",
        work.path().join("meta.db").display()
    ))
    .await?;
    let blobs = open_blobs(&format!("file://{}", work.path().join("blobs").display()))?;
    let tenant = Tenant::new(&format!("bench-{:08x}", rand::random::<u32>()))?;
    bus.create_topics(&tenant_topics(&tenant)).await?;
    let topic = TopicKind::Samples.topic(&tenant);

    let message_bytes = publish(bus.as_ref(), &topic, args).await?;
    let baseline_s = baseline(bus.as_ref(), &topic, args).await?;

    // ingest, timed from its start to the last sample stored
    let store = meta.tenant(&tenant).await?;
    let ingest = Ingest::new(
        Arc::clone(&bus),
        Arc::clone(&meta),
        blobs,
        IngestConfig {
            group: format!("bench-ingest-{:08x}", rand::random::<u32>()),
            tenants: vec![tenant.as_str().to_owned()],
            changeset_samples: args.changeset_samples,
            changeset_age: Duration::from_millis(50),
            ..IngestConfig::default()
        },
        IngestMetrics::new(&registry),
    )?;
    let pb = progress(args.samples, "ingest", args.json);
    let stop = CancellationToken::new();
    let started = Instant::now();
    let mut task = tokio::spawn(ingest.run(stop.clone()));
    let (stored, changesets) = loop {
        let mut stored = 0i64;
        let mut changesets = 0i64;
        for d in store.datasets().await? {
            stored += d.samples;
            changesets += d.head;
        }
        pb.set_position(u64::try_from(stored).unwrap_or(0));
        if stored >= args.samples as i64 {
            break (stored, changesets);
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!(
                "ingest stored {stored} of {} samples in 600 s",
                args.samples
            );
        }
        tokio::select! {
            done = &mut task => {
                done.context("the ingest task panicked")??;
                bail!("ingest stopped early");
            }
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    };
    let ingest_s = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    stop.cancel();
    task.await.context("the ingest task panicked")??;
    if stored != args.samples as i64 {
        bail!(
            "ingest stored {stored} samples, {} were published",
            args.samples
        );
    }

    let mb = message_bytes as f64 / 1e6;
    let phase = |name, seconds: f64| Phase {
        name,
        seconds,
        samples_per_second: args.samples as f64 / seconds,
        megabytes_per_second: mb / seconds,
        ratio_to_baseline: baseline_s / seconds,
    };
    let results = Results {
        bus: bus.url().to_owned(),
        samples: args.samples,
        features: args.features,
        payload: args.payload,
        datasets: args.datasets,
        changeset_samples: args.changeset_samples,
        message_bytes,
        changesets,
        phases: vec![
            phase("baseline: read + decode + validate", baseline_s),
            phase("ingest: stored (segments, index, changesets)", ingest_s),
        ],
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    println!(
        "bus {}: {} samples ({} features, {} payload bytes, {:.1} MB as messages) over {} datasets, changesets of {}",
        results.bus,
        args.samples,
        args.features,
        args.payload,
        mb,
        args.datasets,
        args.changeset_samples
    );
    println!(
        "{:<46} {:>9} {:>12} {:>9} {:>9}",
        "phase", "seconds", "samples/s", "MB/s", "ratio"
    );
    for p in &results.phases {
        println!(
            "{:<46} {:>9.3} {:>12.0} {:>9.1} {:>9.2}",
            p.name, p.seconds, p.samples_per_second, p.megabytes_per_second, p.ratio_to_baseline
        );
    }
    println!("({changesets} changesets committed)");
    Ok(())
}
