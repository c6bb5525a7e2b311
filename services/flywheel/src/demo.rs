//! `flywheel demo`: today a smoke run of the event bus on the embedded default (or the bus
//! `--bus` names). It creates the `default` tenant's topics, publishes synthetic sensor
//! samples as Avro, reads them back through a consumer group, decodes and checks every
//! one, commits, and reports what it measured.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flywheel_schemas::{Sample, decode_sample, encode, now_micros};
use flywheel_topics::{
    BusMetrics, ConsumerConfig, Record, Subscription, Tenant, TopicKind, connect, offsets_after,
    tenant_topics,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cli::{DemoArgs, Global};
use crate::config::Settings;

#[derive(Debug, Serialize)]
struct Report {
    bus: String,
    topic: String,
    samples: u64,
    bytes: u64,
    produce_seconds: f64,
    consume_seconds: f64,
    produced_per_second: f64,
    consumed_per_second: f64,
    decoded: u64,
    duplicates_redelivered: u64,
}

fn bar(n: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(n);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{what:>9} [{{bar:40}}] {{pos}}/{{len}} samples ({{per_sec}}, eta {{eta}})"
        ))
        .expect("template")
        .progress_chars("=> "),
    );
    pb
}

/// A synthetic sensor reading: three features, a label from their sum.
fn sample(run: &str, i: u64) -> Sample {
    let x = (i as f64) * 0.001;
    let features = vec![x.sin(), x.cos(), (i % 17) as f64 / 17.0];
    let label = if features.iter().sum::<f64>() > 0.5 {
        "1"
    } else {
        "0"
    };
    Sample {
        dataset: "sensors".into(),
        features,
        payload: None,
        blob: None,
        label: Some(label.into()),
        event_time: now_micros(),
        producer: Some(format!("demo-{run}-{i}")),
    }
}

pub(crate) async fn run(global: &Global, args: &DemoArgs) -> anyhow::Result<()> {
    let url = Settings::resolve(global)?.bus;
    let registry = prometheus::Registry::new();
    let bus = connect(&url, &BusMetrics::new(&registry))
        .await
        .with_context(|| format!("opening the bus {url}"))?;
    let tenant = Tenant::default_tenant();
    bus.create_topics(&tenant_topics(&tenant))
        .await
        .context("creating the topics of tenant default")?;
    let topic = TopicKind::Samples.topic(&tenant);
    let run = format!("{:08x}", rand::random::<u32>());
    let prefix = format!("demo-{run}-");
    if !global.json {
        println!("flywheel demo: bus {url}, topic {topic}, run {run}");
    }

    // Produce.
    let pb = bar(args.samples, "produce", args.quiet || global.json);
    let started = Instant::now();
    let mut bytes = 0u64;
    let mut i = 0;
    while i < args.samples {
        let n = args.batch.min(args.samples - i);
        let batch: Vec<Record> = (i..i + n)
            .map(|j| {
                let value = encode(&sample(&run, j));
                bytes += value.len() as u64;
                Record::keyed("sensors", value)
            })
            .collect();
        bus.produce(&topic, batch)
            .await
            .context("producing samples")?;
        i += n;
        pb.set_position(i);
    }
    let produce_seconds = started.elapsed().as_secs_f64();
    pb.finish();

    // Consume every sample of this run back through a consumer group of all tenants'
    // samples topics, as the ingest service will.
    let pb = bar(args.samples, "consume", args.quiet || global.json);
    let mut consumer = bus
        .subscribe(ConsumerConfig::new(
            format!("flywheel-demo-{run}"),
            Subscription::Pattern(TopicKind::Samples.pattern()),
        ))
        .await
        .context("subscribing to the samples topics")?;
    let started = Instant::now();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut duplicates = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while (seen.len() as u64) < args.samples {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} samples came back within 120 s",
                seen.len(),
                args.samples
            );
        }
        let messages = consumer
            .poll(5_000, Duration::from_secs(1))
            .await
            .context("consuming samples")?;
        for m in &messages {
            let s = decode_sample(&m.value)
                .with_context(|| format!("decoding {}[{}]@{}", m.topic, m.partition, m.offset))?;
            let Some(n) = s
                .producer
                .as_deref()
                .and_then(|p| p.strip_prefix(&prefix))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue; // an earlier run's sample
            };
            if !seen.insert(n) {
                duplicates += 1;
            }
        }
        if !messages.is_empty() {
            consumer
                .commit(&offsets_after(&messages))
                .await
                .context("committing offsets")?;
        }
        pb.set_position(seen.len() as u64);
    }
    let consume_seconds = started.elapsed().as_secs_f64();
    pb.finish();

    let report = Report {
        bus: bus.url().to_owned(),
        topic,
        samples: args.samples,
        bytes,
        produce_seconds,
        consume_seconds,
        produced_per_second: args.samples as f64 / produce_seconds.max(1e-9),
        consumed_per_second: args.samples as f64 / consume_seconds.max(1e-9),
        decoded: seen.len() as u64,
        duplicates_redelivered: duplicates,
    };
    if global.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "produced {} samples ({:.1} MB) in {:.2} s: {:.0} samples/s",
            report.samples,
            report.bytes as f64 / 1e6,
            report.produce_seconds,
            report.produced_per_second
        );
        println!(
            "consumed and decoded all {} in {:.2} s: {:.0} samples/s ({} redelivered)",
            report.decoded, report.consume_seconds, report.consumed_per_second, duplicates
        );
        println!("ok: every sample published came back, decoded, and its offset was committed");
    }
    Ok(())
}
