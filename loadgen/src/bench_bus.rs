//! `loadgen bench bus`: the ceiling every later stage is measured against.
//!
//! Baseline: the same messages written to one local file in the same batches, each batch
//! fsynced (what the bus's acknowledgement promises), then read back sequentially. Then
//! the bus: produce the messages in batches with a few batches in flight, and consume them
//! all through a consumer group, committing as it goes.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use flywheel_topics::{
    Bus, BusMetrics, ConsumerConfig, Record, Subscription, TopicSpec, connect, offsets_after,
};
use serde::Serialize;

use crate::progress;
use tokio::task::JoinSet;

#[derive(Debug, Args)]
pub(crate) struct BusArgs {
    /// The bus to measure: embedded://DIR or kafka://HOST:PORT. Default: an embedded bus
    /// in a fresh directory under --dir.
    #[arg(long, env = "FLYWHEEL_BUS")]
    bus: Option<String>,
    /// Where the baseline file (and the default embedded bus) go; it should be the disk
    /// the bus writes to.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Messages to send.
    #[arg(long, default_value_t = 200_000)]
    messages: usize,
    /// Bytes per message value.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Messages per produce batch (and per fsync of the baseline).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Produce batches in flight at once.
    #[arg(long, default_value_t = 4)]
    inflight: usize,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Print the results as one JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Phase {
    name: &'static str,
    seconds: f64,
    messages_per_second: f64,
    megabytes_per_second: f64,
    ratio_to_baseline: f64,
}

#[derive(Debug, Serialize)]
struct Results {
    bus: String,
    messages: usize,
    size: usize,
    batch: usize,
    inflight: usize,
    partitions: u32,
    /// Time from subscribing to the first message (group join, first fetch); not part of
    /// the consume phase.
    first_message_seconds: f64,
    phases: Vec<Phase>,
}

/// A pool of pseudo-random bytes that message values are sliced from.
fn pool(size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size * 64];
    rand::fill(&mut v[..]);
    v
}

fn value(pool: &[u8], size: usize, i: usize) -> Vec<u8> {
    let start = (i % 63) * size;
    pool[start..start + size].to_vec()
}

fn baseline_write(path: &PathBuf, args: &BusArgs, pool: &[u8]) -> anyhow::Result<f64> {
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let started = Instant::now();
    let mut i = 0;
    let mut buf = Vec::with_capacity(args.batch * (args.size + 4));
    while i < args.messages {
        buf.clear();
        for j in i..(i + args.batch).min(args.messages) {
            let v = value(pool, args.size, j);
            buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
            buf.extend_from_slice(&v);
        }
        f.write_all(&buf)?;
        f.sync_data()?;
        i += args.batch;
    }
    Ok(started.elapsed().as_secs_f64())
}

fn baseline_read(path: &PathBuf, expected: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut n = 0usize;
    let mut len = [0u8; 4];
    let mut v = Vec::new();
    while r.read_exact(&mut len).is_ok() {
        v.resize(u32::from_le_bytes(len) as usize, 0);
        r.read_exact(&mut v)?;
        n += 1;
    }
    if n != expected {
        bail!("baseline file holds {n} messages, expected {expected}");
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn bus_produce(
    bus: &Arc<dyn Bus>,
    topic: &str,
    args: &BusArgs,
    pool: &Arc<Vec<u8>>,
) -> anyhow::Result<f64> {
    let pb = progress(args.messages, "bus produce", args.json);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let mut i = 0;
    while i < args.messages || !tasks.is_empty() {
        while i < args.messages && tasks.len() < args.inflight {
            let end = (i + args.batch).min(args.messages);
            let records: Vec<Record> = (i..end)
                .map(|j| Record::keyed(format!("k{}", j % 1024), value(pool, args.size, j)))
                .collect();
            let bus = Arc::clone(bus);
            let topic = topic.to_owned();
            tasks.spawn(async move { bus.produce(&topic, records).await.map(|a| a.len()) });
            i = end;
        }
        if let Some(done) = tasks.join_next().await {
            pb.inc(done?? as u64);
        }
    }
    pb.finish_and_clear();
    Ok(started.elapsed().as_secs_f64())
}

/// Consumes everything through a fresh group, committing after each poll. Returns the
/// time until the first message (group join and first fetch) and the time from the first
/// message to the last.
async fn bus_consume(
    bus: &Arc<dyn Bus>,
    topic: &str,
    args: &BusArgs,
) -> anyhow::Result<(f64, f64)> {
    let pb = progress(args.messages, "bus consume", args.json);
    let started = Instant::now();
    let mut c = bus
        .subscribe(ConsumerConfig::new(
            format!("bench-{:08x}", rand::random::<u32>()),
            Subscription::topic(topic),
        ))
        .await?;
    let mut first = None;
    let mut n = 0;
    let mut idle = Instant::now();
    while n < args.messages {
        let got = c.poll(10_000, Duration::from_secs(1)).await?;
        if got.is_empty() {
            if idle.elapsed() > Duration::from_secs(60) {
                bail!("consumer stalled at {n} of {} messages", args.messages);
            }
            continue;
        }
        first.get_or_insert_with(Instant::now);
        idle = Instant::now();
        n += got.len();
        c.commit(&offsets_after(&got)).await?;
        pb.set_position(n as u64);
    }
    pb.finish_and_clear();
    let first = first.unwrap_or(started);
    Ok((
        first.duration_since(started).as_secs_f64(),
        first.elapsed().as_secs_f64(),
    ))
}

pub(crate) async fn run(args: &BusArgs) -> anyhow::Result<()> {
    if args.messages == 0 || args.size == 0 || args.batch == 0 || args.inflight == 0 {
        bail!("--messages, --size, --batch and --inflight must be positive");
    }
    let work = tempfile::tempdir_in(&args.dir)
        .with_context(|| format!("creating a work directory in {}", args.dir.display()))?;
    let url = args
        .bus
        .clone()
        .unwrap_or_else(|| format!("embedded://{}", work.path().join("bus").display()));
    let pool = Arc::new(pool(args.size));

    let file = work.path().join("baseline.log");
    let write_s = baseline_write(&file, args, &pool)?;
    let read_s = baseline_read(&file, args.messages)?;
    std::fs::remove_file(&file)?;

    let bus = connect(&url, &BusMetrics::new(&prometheus::Registry::new()))
        .await
        .with_context(|| format!("opening the bus {url}"))?;
    let topic = format!("bench-{:08x}", rand::random::<u32>());
    bus.create_topics(&[TopicSpec::new(&topic, args.partitions)])
        .await?;
    let produce_s = bus_produce(&bus, &topic, args, &pool).await?;
    let (join_s, consume_s) = bus_consume(&bus, &topic, args).await?;

    let mb = (args.messages * args.size) as f64 / 1e6;
    let phase = |name, seconds: f64, baseline: f64| Phase {
        name,
        seconds,
        messages_per_second: args.messages as f64 / seconds,
        megabytes_per_second: mb / seconds,
        ratio_to_baseline: baseline / seconds,
    };
    let results = Results {
        bus: bus.url().to_owned(),
        messages: args.messages,
        size: args.size,
        batch: args.batch,
        inflight: args.inflight,
        partitions: args.partitions,
        first_message_seconds: join_s,
        phases: vec![
            phase("baseline: file write + fsync per batch", write_s, write_s),
            phase("bus produce (acknowledged)", produce_s, write_s),
            phase("baseline: file sequential read", read_s, read_s),
            phase("bus consume (group, commits)", consume_s, read_s),
            phase("baseline: write + read", write_s + read_s, write_s + read_s),
            phase(
                "bus produce + consume",
                produce_s + consume_s,
                write_s + read_s,
            ),
        ],
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    println!(
        "bus {}: {} messages of {} bytes, batches of {}, {} in flight, {} partitions",
        results.bus, args.messages, args.size, args.batch, args.inflight, args.partitions
    );
    println!(
        "{:<42} {:>9} {:>12} {:>9} {:>9}",
        "phase", "seconds", "messages/s", "MB/s", "ratio"
    );
    println!(
        "(first message {join_s:.3} s after subscribing: group join and first fetch, not counted below)"
    );
    for p in &results.phases {
        println!(
            "{:<42} {:>9.3} {:>12.0} {:>9.1} {:>9.2}",
            p.name, p.seconds, p.messages_per_second, p.megabytes_per_second, p.ratio_to_baseline
        );
    }
    Ok(())
}
