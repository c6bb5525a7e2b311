//! `flywheel demo`: the platform end to end on the embedded default (or the backends the
//! settings name), in one process. Today: synthetic sensor samples are published as Avro
//! (with a few malformed messages among them), the ingest service stores them as keyed
//! rows, payload segments and changesets, bad input goes to the dead-letter topic, and a
//! late label arrives as a relabel changeset; a pipeline submitted before the samples
//! (a trigger every quarter of them) is run by the supervisor, which emits a training set
//! per trigger, and the trainer trains an MLP on each (warm-starting from the one before),
//! evaluates it and releases it. It checks that every sample was stored exactly once,
//! every trigger emitted once and every training set released once as a model, and
//! reports what it measured.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flywheel_core::pipeline::Pipeline;
use flywheel_ingest::{Ingest, IngestConfig, IngestMetrics, sample_key};
use flywheel_schemas::{ChangesetKind, Sample, encode, now_micros};
use flywheel_store::blobs::open_blobs;
use flywheel_store::{Edit, PipelineRecord, PipelineStatus, TenantStore, commit_edit};
use flywheel_supervisor::{
    Supervisor, SupervisorConfig, SupervisorMetrics, pipeline_events, pipeline_releases,
};
use flywheel_topics::{BusMetrics, Record, Tenant, TopicKind, connect, tenant_topics};
use flywheel_trainer::{Trainer, TrainerConfig, TrainerMetrics};
use flywheel_trainset::{QueryRequest, prepare, stored_shard};
use futures::TryStreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::{DemoArgs, Global};
use crate::config::Settings;

/// How long the demo waits for ingest to store what was published.
const STORE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Serialize)]
struct Report {
    bus: String,
    meta: String,
    blobs: String,
    dataset: String,
    samples: u64,
    bytes: u64,
    produce_seconds: f64,
    produced_per_second: f64,
    /// From the first publish to the last sample stored.
    ingest_seconds: f64,
    stored_per_second: f64,
    stored: u64,
    stored_twice: u64,
    changesets: Vec<i64>,
    segments: usize,
    dead_letters: BTreeMap<String, u64>,
    relabel_changeset: i64,
    trainset: TrainsetReport,
    pipeline: PipelineReport,
}

/// The pipeline the demo runs on its samples: a trigger every quarter of them.
#[derive(Debug, Serialize)]
struct PipelineReport {
    name: String,
    every: u64,
    /// The training sets the supervisor emitted, one per trigger.
    triggers: Vec<TriggerReport>,
    /// Mean time from the commit of the changeset holding a trigger's sample to its
    /// training-set event (`flywheel_supervisor_trigger_latency_seconds`).
    trigger_latency_mean_seconds: f64,
    /// The models the trainer released, one per training set.
    models: Vec<ModelReport>,
    /// Mean time from a training-set event to its model's release.
    release_latency_mean_seconds: f64,
}

#[derive(Debug, Serialize)]
struct ModelReport {
    model_id: String,
    trigger_id: i64,
    parent: Option<String>,
    trained_samples: f64,
    /// Samples skipped as bad (a late label that is not one of the classes).
    skipped_samples: f64,
    holdout_accuracy: f64,
    /// Accuracy on the samples that arrived after its training set (none for the last).
    after_accuracy: Option<f64>,
    after_samples: f64,
    train_seconds: f64,
    /// From its training-set event to its release.
    release_seconds: f64,
}

#[derive(Debug, Serialize)]
struct TriggerReport {
    trigger_id: i64,
    version: String,
    samples: i64,
    changeset: i64,
}

/// The training set the demo prepares of its own samples, and reads back.
#[derive(Debug, Serialize)]
struct TrainsetReport {
    version: String,
    samples: u64,
    shards: usize,
    prepare_seconds: f64,
    /// Preparing the same query again gave the same version.
    same_version_again: bool,
    read_seconds: f64,
    read_bytes: u64,
}

fn bar(multi: &MultiProgress, n: u64, what: &str, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let pb = multi.add(ProgressBar::new(n));
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
fn sample(run: &str, i: u64, t0: i64) -> Sample {
    let x = (i as f64) * 0.001;
    let features = vec![
        (x * 700.0).sin(),
        (x * 1300.0).cos(),
        (i % 17) as f64 / 17.0,
    ];
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
        event_time: t0 + i as i64 * 1_000,
        producer: Some(format!("demo-{run}")),
    }
}

/// Malformed messages a collector might send, and the reason each is refused with.
fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("not_avro_or_json", b"\x00\x01 garbage from a broken collector".to_vec()),
        (
            "bad_event_time",
            br#"{"dataset":"sensors","features":[1,2,3],"event_time":"yesterday"}"#.to_vec(),
        ),
        (
            "label_type",
            br#"{"dataset":"sensors","features":[1,2,3],"label":1,"event_time":"2026-11-21T10:00:00Z"}"#
                .to_vec(),
        ),
    ]
}

pub(crate) async fn run(global: &Global, args: &DemoArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(global)?;
    let registry = prometheus::Registry::new();
    let bus = connect(&settings.bus, &BusMetrics::new(&registry))
        .await
        .with_context(|| format!("opening the bus {}", settings.bus))?;
    let meta = flywheel_store::open(&settings.meta)
        .await
        .with_context(|| format!("opening the metadata store {}", settings.meta))?;
    let blobs = open_blobs(&settings.blobs)?;
    let tenant = Tenant::default_tenant();
    bus.create_topics(&tenant_topics(&tenant))
        .await
        .context("creating the topics of tenant default")?;
    let store = meta
        .tenant(&tenant)
        .await
        .context("opening tenant default")?;
    let head_before = store.dataset("sensors").await?.map_or(0, |d| d.head);
    let topic = TopicKind::Samples.topic(&tenant);
    let run = format!("{:08x}", rand::random::<u32>());
    if !global.json {
        println!(
            "flywheel demo: run {run}\n  bus   {}\n  meta  {}\n  blobs {}",
            settings.bus, settings.meta, settings.blobs
        );
    }

    // ingest, in this process, for the demo's tenant
    let metrics = IngestMetrics::new(&registry);
    let ingest = Ingest::new(
        Arc::clone(&bus),
        Arc::clone(&meta),
        Arc::clone(&blobs),
        IngestConfig {
            tenants: vec![tenant.as_str().to_owned()],
            ..settings.ingest.clone()
        },
        metrics.clone(),
    )?;
    let stop = CancellationToken::new();
    let mut ingest_task = tokio::spawn(ingest.run(stop.clone()));

    // a pipeline on the samples to come, and the supervisor that runs it
    let every = (args.samples / 4).max(1);
    let pipeline = submit_pipeline(store.as_ref(), &run, every).await?;
    let supervisor = Supervisor::new(
        Arc::clone(&bus),
        Arc::clone(&meta),
        Arc::clone(&blobs),
        SupervisorConfig {
            tenants: vec![tenant.as_str().to_owned()],
            rescan: Duration::from_millis(200),
            ..settings.supervisor.clone()
        },
        SupervisorMetrics::new(&registry),
    )?;
    let supervisor_task = tokio::spawn(supervisor.run(stop.clone()));
    let trainer = Trainer::new(
        Arc::clone(&bus),
        Arc::clone(&meta),
        Arc::clone(&blobs),
        TrainerConfig {
            tenants: vec![tenant.as_str().to_owned()],
            ..settings.trainer.clone()
        },
        TrainerMetrics::new(&registry),
    )?;
    let trainer_task = tokio::spawn(trainer.run(stop.clone()));

    // publish: good samples, with the malformed ones spread among them
    let hidden = args.quiet || global.json;
    let multi = MultiProgress::new();
    let produced_bar = bar(&multi, args.samples, "published", hidden);
    let stored_bar = bar(&multi, args.samples, "stored", hidden);
    let bad = malformed();
    let bad_every = (args.samples / bad.len() as u64).max(1);
    let t0 = now_micros();
    let started = Instant::now();
    let (mut bytes, mut keys) = (0u64, Vec::with_capacity(args.samples as usize));
    let mut i = 0;
    while i < args.samples {
        let n = args.batch.min(args.samples - i);
        let mut batch: Vec<Record> = Vec::with_capacity(n as usize + 1);
        let mut good = Vec::with_capacity(n as usize);
        for j in i..i + n {
            if j % bad_every == bad_every / 2
                && let Some((_, bytes)) = bad.get((j / bad_every) as usize)
            {
                batch.push(Record::keyed("sensors", bytes.clone()));
                good.push(false);
            }
            let value = encode(&sample(&run, j, t0));
            bytes += value.len() as u64;
            batch.push(Record::keyed("sensors", value));
            good.push(true);
        }
        let acks = bus
            .produce(&topic, batch)
            .await
            .context("publishing samples")?;
        keys.extend(
            acks.iter()
                .zip(&good)
                .filter(|(_, g)| **g)
                .filter_map(|(a, _)| sample_key(a.partition, a.offset)),
        );
        i += n;
        produced_bar.set_position(i);
    }
    let produce_seconds = started.elapsed().as_secs_f64();
    produced_bar.finish();

    // wait until ingest has stored every one of them
    keys.sort_unstable();
    let (first, last) = (keys[0], keys[keys.len() - 1]);
    let deadline = Instant::now() + STORE_TIMEOUT;
    let stored = loop {
        let n = count_rows(store.as_ref(), first, last).await?;
        stored_bar.set_position(n);
        if n >= keys.len() as u64 {
            break n;
        }
        if Instant::now() > deadline {
            bail!(
                "ingest stored {n} of {} samples within {STORE_TIMEOUT:?}",
                keys.len()
            );
        }
        tokio::select! {
            done = &mut ingest_task => {
                done.context("the ingest task panicked")??;
                bail!("ingest stopped before it stored every sample");
            }
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    };
    let ingest_seconds = started.elapsed().as_secs_f64();
    stored_bar.finish();

    // the supervisor's triggers on them: as many as the samples before and after allow
    let history: i64 = (store.changesets("sensors").await?.iter())
        .filter(|c| c.id <= head_before && c.kind == ChangesetKind::Add)
        .map(|c| c.sample_count)
        .sum();
    let history = u64::try_from(history).unwrap_or(0);
    let expected = (history + stored) / every - history / every;
    let deadline = Instant::now() + STORE_TIMEOUT;
    let events = loop {
        let events = pipeline_events(bus.as_ref(), &tenant, &pipeline, usize::MAX).await?;
        if events.len() as u64 >= expected {
            break events;
        }
        if Instant::now() > deadline || supervisor_task.is_finished() {
            bail!(
                "the supervisor emitted {} of {expected} training sets within {STORE_TIMEOUT:?}",
                events.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // and a model released for each
    let train_bar = bar(&multi, expected, "trained", hidden);
    let deadline = Instant::now() + STORE_TIMEOUT;
    let released = loop {
        let released = pipeline_releases(bus.as_ref(), &tenant, &pipeline, usize::MAX).await?;
        train_bar.set_position(released.len() as u64);
        if released.len() as u64 >= expected {
            break released;
        }
        if Instant::now() > deadline || trainer_task.is_finished() {
            bail!(
                "the trainer released {} of {expected} models within {STORE_TIMEOUT:?}",
                released.len()
            );
        }
        if counted(
            &registry,
            "flywheel_trainer_trainsets_total",
            "outcome",
            "failed",
        ) > 0
        {
            bail!("the trainer could not train a training set of the demo (its log says why)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    train_bar.finish();
    stop.cancel();
    ingest_task.await.context("the ingest task panicked")??;
    supervisor_task
        .await
        .context("the supervisor task panicked")??;
    trainer_task.await.context("the trainer task panicked")??;
    stop_pipeline(store.as_ref(), &pipeline).await?;
    let created: BTreeMap<i64, i64> = events
        .iter()
        .map(|e| (e.trigger_id, e.created_at))
        .collect();
    let models: Vec<ModelReport> = released
        .iter()
        .map(|r| {
            let m = |k: &str| r.metrics.get(k).copied().unwrap_or(0.0);
            ModelReport {
                model_id: r.model_id.clone(),
                trigger_id: r.trigger_id,
                parent: r.parent_model.clone(),
                trained_samples: m("train_samples"),
                skipped_samples: m("skipped_samples") + m("holdout_skipped"),
                holdout_accuracy: m("holdout_accuracy"),
                after_accuracy: r.metrics.get("after_accuracy").copied(),
                after_samples: m("after_samples"),
                train_seconds: m("train_seconds"),
                release_seconds: created
                    .get(&r.trigger_id)
                    .map_or(0.0, |c| (r.created_at - c) as f64 / 1e6),
            }
        })
        .collect();
    let want: Vec<String> = (1..=expected).map(|i| format!("{pipeline}-{i}")).collect();
    let got: Vec<&str> = models.iter().map(|m| m.model_id.as_str()).collect();
    if got != want {
        bail!("the trainer released models {got:?}, expected {want:?}");
    }
    if let Some(m) = models
        .iter()
        .skip(1)
        .find(|m| m.parent.as_deref() != Some(&format!("{pipeline}-{}", m.trigger_id - 1)))
    {
        bail!(
            "model {} was not fine-tuned from the one before it",
            m.model_id
        );
    }
    let release_latency_mean_seconds =
        models.iter().map(|m| m.release_seconds).sum::<f64>() / models.len().max(1) as f64;
    let pipeline = PipelineReport {
        name: pipeline,
        every,
        triggers: events
            .iter()
            .map(|e| TriggerReport {
                trigger_id: e.trigger_id,
                version: e.version.clone(),
                samples: e.sample_count,
                changeset: e.head_changeset,
            })
            .collect(),
        trigger_latency_mean_seconds: mean_latency(&registry),
        models,
        release_latency_mean_seconds,
    };
    let ids: Vec<i64> = pipeline.triggers.iter().map(|t| t.trigger_id).collect();
    if ids != (1..=expected as i64).collect::<Vec<_>>() {
        bail!("the supervisor emitted triggers {ids:?}, expected 1 to {expected}");
    }

    // every key stored once, in changesets without gaps
    let changesets = store.changesets("sensors").await?;
    let ids: Vec<i64> = changesets.iter().map(|c| c.id).collect();
    if ids != (1..=ids.len() as i64).collect::<Vec<_>>() {
        bail!("changeset ids have gaps: {ids:?}");
    }
    let mut ours = Vec::new();
    for c in &changesets {
        for row in store.rows_by_changeset("sensors", c.id).await? {
            if (first..=last).contains(&row.key) {
                ours.push(row.key);
            }
        }
    }
    ours.sort_unstable();
    let before = ours.len();
    ours.dedup();
    let stored_twice = (before - ours.len()) as u64;
    if ours != keys || stored_twice > 0 {
        bail!(
            "stored {} distinct of {} samples, {stored_twice} twice",
            ours.len(),
            keys.len()
        );
    }
    let this_run: Vec<i64> = ids.iter().copied().filter(|id| *id > head_before).collect();
    let segments = changesets
        .iter()
        .filter(|c| this_run.contains(&c.id))
        .map(|c| c.segments.len())
        .sum();

    // a late label, e.g. from user feedback
    let relabel = commit_edit(
        store.as_ref(),
        "sensors",
        &Edit::Relabel {
            labels: vec![(first, Some("feedback".into()))],
        },
        now_micros(),
    )
    .await
    .context("relabelling a sample")?;

    let trainset = trainset(&store, &blobs, &this_run, first, keys.len() as u64).await?;

    let dead_letters: BTreeMap<String, u64> = metrics_by_reason(&registry);
    let report = Report {
        bus: bus.url().to_owned(),
        meta: meta.url().to_owned(),
        blobs: settings.blobs.clone(),
        dataset: "sensors".into(),
        samples: args.samples,
        bytes,
        produce_seconds,
        produced_per_second: args.samples as f64 / produce_seconds.max(1e-9),
        ingest_seconds,
        stored_per_second: stored as f64 / ingest_seconds.max(1e-9),
        stored,
        stored_twice,
        changesets: this_run,
        segments,
        dead_letters,
        relabel_changeset: relabel.id,
        trainset,
        pipeline,
    };
    if global.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// Prepares a training set of this run's changesets, prepares it again (the same version),
/// and reads every shard back: each sample once, the late label in place.
async fn trainset(
    store: &Arc<dyn TenantStore>,
    blobs: &Arc<dyn object_store::ObjectStore>,
    changesets: &[i64],
    relabelled: u64,
    expected: u64,
) -> anyhow::Result<TrainsetReport> {
    let (Some(lo), Some(hi)) = (changesets.first(), changesets.last()) else {
        bail!("this run committed no changeset");
    };
    let request = QueryRequest {
        dataset: "sensors".into(),
        changesets: Some(format!("{lo}-{hi}")),
        ..QueryRequest::default()
    };
    let started = Instant::now();
    let prepared = prepare(store.as_ref(), blobs, &request, now_micros())
        .await
        .context("preparing a training set")?;
    let prepare_seconds = started.elapsed().as_secs_f64();
    let again = prepare(store.as_ref(), blobs, &request, now_micros()).await?;
    let footer = Arc::new(prepared.footer);
    if footer.samples != expected {
        bail!(
            "the training set has {} samples, the run stored {expected}",
            footer.samples
        );
    }
    let started = Instant::now();
    let (mut seen, mut read_bytes, mut late_label) = (0u64, 0u64, false);
    for n in 0..footer.shards.len() {
        let stream = stored_shard(
            Arc::clone(blobs),
            store.tenant().as_str().to_owned(),
            &prepared.record.manifest_uri,
            Arc::clone(&footer),
            n,
        )
        .await?;
        let bytes: Vec<u8> = stream.try_collect::<Vec<_>>().await?.concat();
        read_bytes += bytes.len() as u64;
        let mut archive = tar::Archive::new(&bytes[..]);
        for member in archive.entries().context("reading a shard")? {
            let mut member = member.context("reading a shard")?;
            let name = member.path()?.display().to_string();
            if !name.ends_with(".json") {
                continue;
            }
            seen += 1;
            let mut text = String::new();
            std::io::Read::read_to_string(&mut member, &mut text)?;
            if name == format!("{relabelled:016x}.json") {
                let meta: serde_json::Value = serde_json::from_str(&text)?;
                late_label = meta["label"] == "feedback";
            }
        }
    }
    if seen != expected || !late_label {
        bail!("the shards hold {seen} of {expected} samples (late label seen: {late_label})");
    }
    Ok(TrainsetReport {
        version: prepared.record.version,
        samples: footer.samples,
        shards: footer.shards.len(),
        prepare_seconds,
        same_version_again: again.record.version == footer.version.as_str(),
        read_seconds: started.elapsed().as_secs_f64(),
        read_bytes,
    })
}

/// Stores the demo's pipeline, as `flywheel pipeline submit` would: a data-amount trigger
/// every `every` samples, training on the new samples. Its name is the run's.
async fn submit_pipeline(store: &dyn TenantStore, run: &str, every: u64) -> anyhow::Result<String> {
    let name = format!("demo-{run}");
    let document = format!(
        "name = \"{name}\"\ndataset = \"sensors\"\n\n[trigger]\nkind = \"data_amount\"\nsamples = {every}\n\n[selection]\npolicy = \"new_data\"\n\n[model]\nkind = \"mlp\"\nhidden = [32]\nlabels = [\"0\", \"1\"]\n\n[training]\nepochs = 5\non_bad_sample = \"skip\"\nbatch_size = 128\nlearning_rate = 0.01\n"
    );
    Pipeline::parse(&document).context("the demo's pipeline")?;
    store.ensure_dataset("sensors", now_micros()).await?;
    store
        .put_pipeline(PipelineRecord {
            name: name.clone(),
            document,
            status: PipelineStatus::Active,
            submitted_at: now_micros(),
            stopped_at: None,
        })
        .await?;
    Ok(name)
}

/// Stops the demo's pipeline: it ran on this run's samples only.
async fn stop_pipeline(store: &dyn TenantStore, name: &str) -> anyhow::Result<()> {
    if let Some(mut p) = store.pipeline(name).await? {
        p.status = PipelineStatus::Stopped;
        p.stopped_at = Some(now_micros());
        store.put_pipeline(p).await?;
    }
    Ok(())
}

/// Rows of the dataset's view with keys in `first..=last`.
async fn count_rows(store: &dyn TenantStore, first: u64, last: u64) -> anyhow::Result<u64> {
    let mut n = 0u64;
    let mut from = first;
    loop {
        let page = store
            .rows_by_key_range("sensors", from, last, 50_000)
            .await?;
        n += page.len() as u64;
        match page.last() {
            Some(row) if page.len() == 50_000 && row.key < last => from = row.key + 1,
            _ => return Ok(n),
        }
    }
}

/// The mean of the supervisor's trigger latency histogram (0 if it observed nothing).
fn mean_latency(registry: &prometheus::Registry) -> f64 {
    let (sum, count) = registry
        .gather()
        .iter()
        .filter(|f| f.name() == "flywheel_supervisor_trigger_latency_seconds")
        .flat_map(|f| f.get_metric())
        .fold((0.0, 0u64), |(s, c), m| {
            let h = m.get_histogram();
            (s + h.get_sample_sum(), c + h.get_sample_count())
        });
    if count == 0 { 0.0 } else { sum / count as f64 }
}

/// The sum of a counter family's series whose label `name` is `value`.
fn counted(registry: &prometheus::Registry, family: &str, name: &str, value: &str) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == family)
        .flat_map(|f| f.get_metric())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == name && l.value() == value)
        })
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

fn metrics_by_reason(registry: &prometheus::Registry) -> BTreeMap<String, u64> {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == "flywheel_dead_letters_total")
        .flat_map(|f| f.get_metric())
        .filter_map(|m| {
            let reason = m.get_label().iter().find(|l| l.name() == "reason")?;
            Some((
                reason.value().to_owned(),
                m.get_counter().get_value() as u64,
            ))
        })
        .collect()
}

fn print_report(r: &Report) {
    println!(
        "published {} samples ({:.1} MB) in {:.2} s: {:.0} samples/s",
        r.samples,
        r.bytes as f64 / 1e6,
        r.produce_seconds,
        r.produced_per_second
    );
    println!(
        "ingest stored all {} in {:.2} s: {:.0} samples/s end to end, in changesets {}..{} ({} payload segments)",
        r.stored,
        r.ingest_seconds,
        r.stored_per_second,
        r.changesets.first().unwrap_or(&0),
        r.changesets.last().unwrap_or(&0),
        r.segments
    );
    let letters: Vec<String> = r
        .dead_letters
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    println!(
        "refused to flywheel.default.samples.rejected: {}",
        if letters.is_empty() {
            "none".to_owned()
        } else {
            letters.join(", ")
        }
    );
    println!(
        "a late label arrived as changeset {} (relabel); see `flywheel changeset list sensors` while `flywheel up` runs",
        r.relabel_changeset
    );
    let t = &r.trainset;
    println!(
        "training set {} of this run's changesets: {} samples in {} shard(s), prepared in {:.3} s (again: {}), read back in {:.2} s ({:.1} MB)",
        t.version,
        t.samples,
        t.shards,
        t.prepare_seconds,
        if t.same_version_again {
            "the same version"
        } else {
            "ANOTHER version"
        },
        t.read_seconds,
        t.read_bytes as f64 / 1e6
    );
    let p = &r.pipeline;
    println!(
        "pipeline {} (a trigger every {} samples, training on the new ones): {} training sets emitted by the supervisor, {:.0} ms on average after the changeset that fired",
        p.name,
        p.every,
        p.triggers.len(),
        p.trigger_latency_mean_seconds * 1e3
    );
    for t in &p.triggers {
        println!(
            "  trigger {}: training set {} of {} samples, at changeset {}",
            t.trigger_id, t.version, t.samples, t.changeset
        );
    }
    println!(
        "models released by the trainer (an MLP, fine-tuned from the one before): {}, {:.2} s on average from training-set event to release",
        p.models.len(),
        p.release_latency_mean_seconds
    );
    for m in &p.models {
        println!(
            "  {}: trained on {} samples ({} skipped) in {:.2} s; held-out accuracy {:.3}; {}",
            m.model_id,
            m.trained_samples,
            m.skipped_samples,
            m.train_seconds,
            m.holdout_accuracy,
            match m.after_accuracy {
                Some(a) => format!(
                    "accuracy {a:.3} on the {} samples that came after",
                    m.after_samples
                ),
                None => "no sample came after it".to_owned(),
            }
        );
    }
    println!(
        "ok: every sample published was stored exactly once, in changesets without gaps, and read back once from its training set; every trigger was emitted once and released once as a model"
    );
}
