//! `flywheel demo`: the platform end to end on the embedded default (or the backends the
//! settings name), in one process, on a drifting stream.
//!
//! A synthetic sensor (`loadgen::streams::Sensor`: eight readings, two classes whose
//! centres turn gradually and jump at sudden drifts) is published as Avro at a steady
//! rate, with a few malformed messages among it; ingest stores it as keyed rows, payload
//! segments and changesets, and bad input goes to the dead-letter topic. A pipeline
//! submitted before the stream (retrain when the features drift, on the newest samples,
//! an MLP fine-tuned from the model before) is run by the supervisor, which emits a
//! training set per trigger, and by the trainer, which trains, evaluates and releases a
//! model for each, while the stream goes on. Then every model is scored on the samples
//! it was live for, against the one before it; a late label arrives as a relabel
//! changeset; and a training set of the run is prepared and read back.
//!
//! With `--experiment` five pipelines run on the same stream, the same trigger and
//! model, each selecting differently (all data, new data, freshness, a reservoir, new
//! data with loss-based downsampling), and the report compares their accuracy over time
//! and the samples they trained on, and a model never retrained.
//!
//! It checks that every sample was stored exactly once, every trigger emitted once and
//! every training set released once as a model; it serves `/metrics` while it runs and
//! writes its report (JSON, a Markdown table of the models, a PNG plot of accuracy over
//! event time with the triggers) to `--out`.

mod eval;
mod pipelines;
mod plot;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flywheel_gateway::{AppState, Auth, Backends, base_routes, bind, serve};
use flywheel_ingest::{Ingest, IngestConfig, IngestMetrics, sample_key};
use flywheel_schemas::{ChangesetKind, ModelRelease, TrainingSet, encode, now_micros};
use flywheel_store::blobs::open_blobs;
use flywheel_store::{Edit, PipelineRecord, PipelineStatus, TenantStore, commit_edit};
use flywheel_supervisor::state::PipelineState;
use flywheel_supervisor::{
    Supervisor, SupervisorConfig, SupervisorMetrics, pipeline_events, pipeline_releases,
};
use flywheel_topics::{BusMetrics, Record, Tenant, TopicKind, connect, tenant_topics};
use flywheel_trainer::model::Net;
use flywheel_trainer::{Trainer, TrainerConfig, TrainerMetrics, read_model};
use flywheel_trainset::{QueryRequest, prepare, stored_shard};
use futures::TryStreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use loadgen::streams::{Common, Drift, Generated, Sensor};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::{DemoArgs, Global};
use crate::config::Settings;
use pipelines::{DATASET, FEATURES, Plan};

/// How long the demo waits for each stage (ingest, the supervisor, the trainer) to catch
/// up once the stream has been published.
const STAGE_TIMEOUT: Duration = Duration::from_secs(300);
/// The experiment's row of the first model, never retrained.
const NEVER_RETRAINED: &str = "never-retrained";
/// The most samples in one of the demo's changesets.
const CHANGESET_SAMPLES: usize = 500;
/// Samples per point of the accuracy-over-time line.
const BUCKET: usize = 500;
/// Event time between two samples of the stream.
const INTERVAL_MICROS: i64 = 1_000_000;
/// How far apart the sensor's two classes are, in units of its noise.
const SEPARATION: f64 = 3.0;
/// The experiment's target: a selected pipeline within this much accuracy of retraining
/// on everything, on at most this share of its training samples.
const TARGET_POINTS: f64 = 0.01;
const TARGET_SHARE: f64 = 0.30;

#[derive(Debug, Serialize)]
struct Report {
    bus: String,
    meta: String,
    blobs: String,
    /// Where `/metrics` was served while the demo ran.
    metrics_url: String,
    /// Where the report files are.
    out: String,
    dataset: String,
    samples: u64,
    seed: u64,
    drift_degrees_per_1000: f64,
    sudden_every: Option<u64>,
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
    /// Mean time from the commit of the changeset holding a trigger's sample to its
    /// training-set event (`flywheel_supervisor_trigger_latency_seconds`).
    trigger_latency_mean_seconds: f64,
    pipelines: Vec<PipelineReport>,
    /// With `--experiment`: the pipelines compared, and a model never retrained.
    experiment: Option<Experiment>,
    seconds: f64,
}

/// A pipeline the demo ran on its stream.
#[derive(Debug, Serialize)]
struct PipelineReport {
    name: String,
    /// What it selects.
    selection: String,
    /// The training sets the supervisor emitted, one per trigger.
    triggers: Vec<TriggerReport>,
    /// The models the trainer released, one per training set.
    models: Vec<ModelReport>,
    /// Mean time from a training-set event to its model's release.
    release_latency_mean_seconds: f64,
    /// Samples its models were trained on, all together.
    samples_trained: f64,
    /// Accuracy over the stream, from the first model on, weighted by samples.
    mean_accuracy: Option<f64>,
    /// Accuracy over event time: each bucket of samples scored by the model live then.
    accuracy_over_time: Vec<eval::Point>,
}

#[derive(Debug, Serialize)]
struct ModelReport {
    model_id: String,
    trigger_id: i64,
    trainset_version: String,
    parent: Option<String>,
    trained_samples: f64,
    /// Samples skipped as bad (a late label that is not one of the classes).
    skipped_samples: f64,
    holdout_accuracy: f64,
    /// Accuracy on the samples that arrived after its training set, as the trainer
    /// measured it (none when none had arrived when it trained).
    after_accuracy: Option<f64>,
    after_samples: f64,
    train_seconds: f64,
    /// From its training-set event to its release.
    release_seconds: f64,
    /// The first sample of the stream it was live for (the end of its training set's
    /// changeset), and how many.
    live_from_sample: usize,
    live_samples: usize,
    /// On those samples: the accuracy of the model before it (none for the first), and
    /// its own.
    accuracy_before: Option<f64>,
    accuracy_after: Option<f64>,
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

/// The experiment's comparison, from the first sample every pipeline had a model for.
#[derive(Debug, Serialize)]
struct Experiment {
    from_sample: usize,
    rows: Vec<ExperimentRow>,
    /// Target: a triggered and selected pipeline within 1 accuracy point of retraining on
    /// everything, on at most 30 % of its training samples. The pipelines that meet it.
    meets_target: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ExperimentRow {
    pipeline: String,
    selection: String,
    models: usize,
    samples_trained: f64,
    mean_accuracy: Option<f64>,
    /// Its mean accuracy minus retrain-on-everything's, in points (0 to 100).
    points_vs_all: Option<f64>,
    /// Its training samples as a share of retrain-on-everything's.
    share_of_all_samples: f64,
}

/// A one-line progress bar of `n` samples.
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

/// Serves `/healthz` and `/metrics` of the demo's registry on the configured address, or
/// on a free port when that one is taken (a `flywheel up` may hold it). Its URL.
async fn serve_metrics(
    settings: &Settings,
    registry: &prometheus::Registry,
    backends: Backends,
    stop: CancellationToken,
) -> anyhow::Result<(String, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let (listener, addr) = match bind(settings.http).await {
        Ok(bound) => bound,
        Err(_) => bind("127.0.0.1:0".parse().expect("an address"))
            .await
            .context("listening for /metrics")?,
    };
    let state = AppState {
        registry: registry.clone(),
        auth: Arc::new(Auth::open()),
        checks: Arc::new(Vec::new()),
        backends,
    };
    let task = tokio::spawn(serve(listener, base_routes(state), stop));
    Ok((format!("http://{addr}"), task))
}

/// The live status line: what the services have done so far, from their metrics.
fn status(registry: &prometheus::Registry, published: u64, first: &str) -> String {
    let sum = |family: &str, label| summed(registry, family, label);
    let accuracy = registry
        .gather()
        .iter()
        .filter(|f| f.name() == "flywheel_trainer_model_accuracy")
        .flat_map(|f| f.get_metric())
        .find(|m| {
            let has = |k: &str, v: &str| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == k && l.value() == v)
            };
            has("pipeline", first) && has("on", "held_out")
        })
        .map_or("-".to_owned(), |m| {
            format!("{:.3}", m.get_gauge().get_value())
        });
    format!(
        "published {published}, stored {}, changesets {}, triggers {}, models trained {}, last held-out accuracy {accuracy}",
        sum("flywheel_ingest_samples_total", None),
        sum("flywheel_ingest_changesets_total", None),
        sum("flywheel_supervisor_triggers_total", None),
        sum(
            "flywheel_trainer_trainsets_total",
            Some(("outcome", "released"))
        ),
    )
}

pub(crate) async fn run(global: &Global, args: &DemoArgs) -> anyhow::Result<()> {
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        bail!("--rate must be a number of samples per second, 0 or more");
    }
    if !args.drift_degrees.is_finite() {
        bail!("--drift-degrees must be a number");
    }
    if args.out.exists() && !args.out.is_dir() {
        bail!(
            "--out {}: not a directory (the report directory)",
            args.out.display()
        );
    }
    let begun = Instant::now();
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
    let head_before = store.dataset(DATASET).await?.map_or(0, |d| d.head);
    if head_before > 0 && args.experiment {
        bail!(
            "the experiment needs a dataset of its own, and {DATASET} already has {head_before} changesets here (a new pipeline starts from a dataset's history): run it on a fresh data directory (--data-dir)"
        );
    }
    let topic = TopicKind::Samples.topic(&tenant);
    let run = format!("{:08x}", rand::random::<u32>());
    let stop = CancellationToken::new();
    let (metrics_url, metrics_task) = serve_metrics(
        &settings,
        &registry,
        Backends {
            bus: Arc::clone(&bus),
            meta: Arc::clone(&meta),
            blobs: Arc::clone(&blobs),
            sources: Arc::new(flywheel_sources::Sources::default()),
        },
        stop.clone(),
    )
    .await?;
    if head_before > 0 && !global.json {
        println!(
            "note: {DATASET} already holds {head_before} changesets of earlier runs; the pipeline starts from them (a fresh --data-dir starts clean)"
        );
    }
    if !global.json {
        println!(
            "flywheel demo: run {run}\n  bus     {}\n  meta    {}\n  blobs   {}\n  metrics {metrics_url}/metrics (while the demo runs)",
            settings.bus, settings.meta, settings.blobs
        );
    }

    // ingest, the supervisor and the trainer, in this process, for the demo's tenant
    let metrics = IngestMetrics::new(&registry);
    let ingest = Ingest::new(
        Arc::clone(&bus),
        Arc::clone(&meta),
        Arc::clone(&blobs),
        IngestConfig {
            tenants: vec![tenant.as_str().to_owned()],
            // small changesets: a model goes live at the end of the changeset its training
            // set was pinned to, so they set how closely the report can place it
            changeset_samples: CHANGESET_SAMPLES.min(settings.ingest.changeset_samples),
            ..settings.ingest.clone()
        },
        metrics.clone(),
    )?;
    let mut ingest_task = tokio::spawn(ingest.run(stop.clone()));
    let plans = pipelines::plans(&run, args.experiment)?;
    for plan in &plans {
        submit_pipeline(store.as_ref(), plan).await?;
    }
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

    // the stream: a drifting sensor, every sample's true label kept for the evaluation
    let t0 = now_micros();
    let stream: Vec<Generated> = Sensor::new(
        Common {
            dataset: DATASET.into(),
            producer: format!("demo-{run}"),
            seed: args.seed,
            start_micros: t0,
            interval_micros: INTERVAL_MICROS,
            labelled: 1.0,
        },
        FEATURES,
        SEPARATION,
        Drift {
            degrees_per_1000: args.drift_degrees,
            sudden_every: (args.sudden_every > 0).then_some(args.sudden_every),
        },
    )
    .take(usize::try_from(args.samples)?)
    .collect();

    // publish it at the rate asked, the malformed messages spread among it, with a live
    // status line of what the services have done
    let hidden = args.quiet || global.json;
    let multi = MultiProgress::new();
    let produced_bar = bar(&multi, args.samples, "published", hidden);
    let status_bar = if hidden {
        ProgressBar::hidden()
    } else {
        let pb = multi.add(ProgressBar::new_spinner());
        pb.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("template"));
        pb
    };
    let published = Arc::new(AtomicU64::new(0));
    let status_stop = CancellationToken::new();
    let status_task = {
        let (registry, published, stop, bar) = (
            registry.clone(),
            Arc::clone(&published),
            status_stop.clone(),
            status_bar.clone(),
        );
        let first = plans[0].name.clone();
        tokio::spawn(async move {
            loop {
                bar.set_message(status(&registry, published.load(Ordering::Relaxed), &first));
                bar.tick();
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        })
    };
    let bad = malformed();
    let bad_every = (args.samples / bad.len() as u64).max(1);
    let started = Instant::now();
    let (mut bytes, mut keys) = (0u64, Vec::with_capacity(stream.len()));
    let mut i = 0u64;
    while i < args.samples {
        let n = args.batch.min(args.samples - i);
        if args.rate > 0.0 {
            let due = Duration::from_secs_f64(i as f64 / args.rate);
            tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
        }
        let mut batch: Vec<Record> = Vec::with_capacity(n as usize + 1);
        let mut good = Vec::with_capacity(n as usize);
        for j in i..i + n {
            if j % bad_every == bad_every / 2
                && let Some((_, bytes)) = bad.get((j / bad_every) as usize)
            {
                batch.push(Record::keyed(DATASET, bytes.clone()));
                good.push(false);
            }
            let value = encode(&stream[j as usize].sample);
            bytes += value.len() as u64;
            batch.push(Record::keyed(DATASET, value));
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
        published.store(i, Ordering::Relaxed);
        produced_bar.set_position(i);
    }
    let produce_seconds = started.elapsed().as_secs_f64();
    produced_bar.finish();

    // wait until ingest has stored every one of them
    keys.sort_unstable();
    let (first, last) = (keys[0], keys[keys.len() - 1]);
    let deadline = Instant::now() + STAGE_TIMEOUT;
    let stored = loop {
        let n = count_rows(store.as_ref(), first, last).await?;
        if n >= keys.len() as u64 {
            break n;
        }
        if Instant::now() > deadline {
            bail!(
                "ingest stored {n} of {} samples within {STAGE_TIMEOUT:?}",
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
    let run_changesets: Vec<_> = (store.changesets(DATASET).await?.into_iter())
        .filter(|c| c.id > head_before && c.kind == ChangesetKind::Add)
        .collect();
    let last_changeset = run_changesets.last().map_or(head_before, |c| c.id);

    // the supervisor has looked at every changeset, and the trainer released a model for
    // every training set it emitted
    let mut emitted = Vec::with_capacity(plans.len());
    for plan in &plans {
        let deadline = Instant::now() + STAGE_TIMEOUT;
        let state = loop {
            let state = match store.pipeline_state(&plan.name).await? {
                Some((bytes, _)) => Some(
                    PipelineState::parse(&bytes)
                        .map_err(|e| anyhow::anyhow!("pipeline {}'s state: {e}", plan.name))?,
                ),
                None => None,
            };
            if let Some(s) = state.filter(|s| s.processed >= last_changeset) {
                break s;
            }
            if Instant::now() > deadline || supervisor_task.is_finished() {
                bail!(
                    "the supervisor did not reach changeset {last_changeset} of pipeline {} within {STAGE_TIMEOUT:?}",
                    plan.name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        emitted.push(state.emitted);
    }
    for (plan, &expected) in plans.iter().zip(&emitted) {
        let deadline = Instant::now() + STAGE_TIMEOUT;
        loop {
            let released = pipeline_releases(bus.as_ref(), &tenant, &plan.name, usize::MAX).await?;
            if released.len() as u64 >= expected {
                break;
            }
            if Instant::now() > deadline || trainer_task.is_finished() {
                bail!(
                    "the trainer released {} of {expected} models of pipeline {} within {STAGE_TIMEOUT:?}",
                    released.len(),
                    plan.name
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
        }
    }
    status_stop.cancel();
    status_task.await.context("the status task panicked")?;
    status_bar.finish_with_message(status(&registry, args.samples, &plans[0].name));
    stop.cancel();
    ingest_task.await.context("the ingest task panicked")??;
    supervisor_task
        .await
        .context("the supervisor task panicked")??;
    trainer_task.await.context("the trainer task panicked")??;
    metrics_task
        .await
        .context("the metrics server panicked")?
        .context("serving /metrics")?;
    for plan in &plans {
        stop_pipeline(store.as_ref(), &plan.name).await?;
    }

    // each model went live at the end of its training set's changeset: the samples of the
    // run stored up to it
    let mut through = BTreeMap::new();
    let mut total = 0usize;
    for c in &run_changesets {
        total += usize::try_from(c.sample_count).unwrap_or(0);
        through.insert(c.id, total);
    }
    let live_from = |head: i64| through.range(..=head).next_back().map_or(0, |(_, &n)| n);
    let mut reports = Vec::with_capacity(plans.len());
    let mut first_models: Vec<(usize, Net, f64)> = Vec::new();
    for (plan, &expected) in plans.iter().zip(&emitted) {
        let events = pipeline_events(bus.as_ref(), &tenant, &plan.name, usize::MAX).await?;
        let released = pipeline_releases(bus.as_ref(), &tenant, &plan.name, usize::MAX).await?;
        check_once(plan, expected, &events, &released)?;
        let mut nets = Vec::with_capacity(released.len());
        for r in &released {
            let record = store
                .model(&r.model_id)
                .await?
                .with_context(|| format!("model {} has no record", r.model_id))?;
            let (card, weights) = read_model(&blobs, &record).await?;
            nets.push(Net::stored(
                card,
                &weights,
                &format!("model {}", r.model_id),
            )?);
        }
        let heads: BTreeMap<i64, i64> = events
            .iter()
            .map(|e| (e.trigger_id, e.head_changeset))
            .collect();
        let starts: Vec<usize> = released
            .iter()
            .map(|r| live_from(heads.get(&r.trigger_id).copied().unwrap_or(0)))
            .collect();
        let score = |m: usize, s: &[Generated]| eval::accuracy(&nets[m], s);
        let windows = eval::windows(&starts, &stream, score);
        let points = eval::over_time(&starts, &stream, BUCKET, score);
        let report = pipeline_report(plan, &events, &released, &windows, points);
        if plan.name.ends_with("-new") && !released.is_empty() {
            first_models.push((
                starts[0],
                nets.swap_remove(0),
                report.models[0].trained_samples,
            ));
        }
        reports.push(report);
    }
    let experiment = args
        .experiment
        .then(|| experiment(&mut reports, first_models.pop(), &stream));

    // every key stored once, in changesets without gaps
    let changesets = store.changesets(DATASET).await?;
    let ids: Vec<i64> = changesets.iter().map(|c| c.id).collect();
    if ids != (1..=ids.len() as i64).collect::<Vec<_>>() {
        bail!("changeset ids have gaps: {ids:?}");
    }
    let mut ours = Vec::new();
    for c in &changesets {
        for row in store.rows_by_changeset(DATASET, c.id).await? {
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
        DATASET,
        &Edit::Relabel {
            labels: vec![(first, Some("feedback".into()))],
        },
        now_micros(),
    )
    .await
    .context("relabelling a sample")?;

    let trainset = trainset(&store, &blobs, &this_run, first, keys.len() as u64).await?;

    let report = Report {
        bus: bus.url().to_owned(),
        meta: meta.url().to_owned(),
        blobs: settings.blobs.clone(),
        metrics_url: format!("{metrics_url}/metrics"),
        out: args.out.display().to_string(),
        dataset: DATASET.into(),
        samples: args.samples,
        seed: args.seed,
        drift_degrees_per_1000: args.drift_degrees,
        sudden_every: (args.sudden_every > 0).then_some(args.sudden_every),
        bytes,
        produce_seconds,
        produced_per_second: args.samples as f64 / produce_seconds.max(1e-9),
        ingest_seconds,
        stored_per_second: stored as f64 / ingest_seconds.max(1e-9),
        stored,
        stored_twice,
        changesets: this_run,
        segments,
        dead_letters: metrics_by_reason(&registry),
        relabel_changeset: relabel.id,
        trainset,
        trigger_latency_mean_seconds: mean_latency(&registry),
        pipelines: reports,
        experiment,
        seconds: begun.elapsed().as_secs_f64(),
    };
    write_files(&args.out, &report)?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// Checks that the supervisor emitted triggers 1 to `expected` once each, and the trainer
/// released one model for each, each fine-tuned from the one before.
fn check_once(
    plan: &Plan,
    expected: u64,
    events: &[TrainingSet],
    released: &[ModelRelease],
) -> anyhow::Result<()> {
    let ids: Vec<i64> = events.iter().map(|e| e.trigger_id).collect();
    if ids != (1..=expected as i64).collect::<Vec<_>>() {
        bail!(
            "the supervisor emitted triggers {ids:?} for {}, expected 1 to {expected}",
            plan.name
        );
    }
    let want: Vec<String> = (1..=expected)
        .map(|i| format!("{}-{i}", plan.name))
        .collect();
    let got: Vec<&str> = released.iter().map(|r| r.model_id.as_str()).collect();
    if got != want {
        bail!("the trainer released models {got:?}, expected {want:?}");
    }
    if let Some(r) = released
        .iter()
        .skip(1)
        .find(|r| r.parent_model.as_deref() != Some(&format!("{}-{}", plan.name, r.trigger_id - 1)))
    {
        bail!(
            "model {} was not fine-tuned from the one before it",
            r.model_id
        );
    }
    Ok(())
}

/// A pipeline's part of the report.
fn pipeline_report(
    plan: &Plan,
    events: &[TrainingSet],
    released: &[ModelRelease],
    windows: &[eval::Window],
    points: Vec<eval::Point>,
) -> PipelineReport {
    let created: BTreeMap<i64, (i64, &str)> = events
        .iter()
        .map(|e| (e.trigger_id, (e.created_at, e.version.as_str())))
        .collect();
    let models: Vec<ModelReport> = released
        .iter()
        .zip(windows)
        .map(|(r, w)| {
            let m = |k: &str| r.metrics.get(k).copied().unwrap_or(0.0);
            let (at, version) = created.get(&r.trigger_id).copied().unwrap_or((0, ""));
            ModelReport {
                model_id: r.model_id.clone(),
                trigger_id: r.trigger_id,
                trainset_version: version.to_owned(),
                parent: r.parent_model.clone(),
                trained_samples: m("train_samples"),
                skipped_samples: m("skipped_samples") + m("holdout_skipped"),
                holdout_accuracy: m("holdout_accuracy"),
                after_accuracy: r.metrics.get("after_accuracy").copied(),
                after_samples: m("after_samples"),
                train_seconds: m("train_seconds"),
                release_seconds: (r.created_at - at) as f64 / 1e6,
                live_from_sample: w.from,
                live_samples: w.samples,
                accuracy_before: w.before,
                accuracy_after: w.after,
            }
        })
        .collect();
    let release_latency_mean_seconds =
        models.iter().map(|m| m.release_seconds).sum::<f64>() / models.len().max(1) as f64;
    PipelineReport {
        name: plan.name.clone(),
        selection: plan.label.to_owned(),
        triggers: events
            .iter()
            .map(|e| TriggerReport {
                trigger_id: e.trigger_id,
                version: e.version.clone(),
                samples: e.sample_count,
                changeset: e.head_changeset,
            })
            .collect(),
        samples_trained: models.iter().map(|m| m.trained_samples).sum(),
        mean_accuracy: models
            .first()
            .and_then(|m| eval::mean_accuracy(&points, m.live_from_sample)),
        models,
        release_latency_mean_seconds,
        accuracy_over_time: points,
    }
}

/// The experiment's comparison: every pipeline's mean accuracy from the first sample all
/// of them had a model for, and the samples they trained on, against retraining on
/// everything; plus the new-data pipeline's first model kept forever (never retrained).
fn experiment(
    reports: &mut Vec<PipelineReport>,
    first: Option<(usize, Net, f64)>,
    stream: &[Generated],
) -> Experiment {
    if let Some((from, net, trained)) = first {
        let points = eval::over_time(&[from], stream, BUCKET, |_, s| eval::accuracy(&net, s));
        reports.push(PipelineReport {
            name: NEVER_RETRAINED.into(),
            selection: "never retrained (the first new-data model, kept)".into(),
            triggers: Vec::new(),
            models: Vec::new(),
            release_latency_mean_seconds: 0.0,
            samples_trained: trained,
            mean_accuracy: eval::mean_accuracy(&points, from),
            accuracy_over_time: points,
        });
    }
    let from_sample = reports
        .iter()
        .filter_map(|r| r.accuracy_over_time.iter().find(|p| p.accuracy.is_some()))
        .map(|p| p.from)
        .max()
        .unwrap_or(0);
    for r in reports.iter_mut() {
        r.mean_accuracy = eval::mean_accuracy(&r.accuracy_over_time, from_sample);
    }
    let all = reports.iter().find(|r| r.name.ends_with("-all"));
    let (all_accuracy, all_samples) =
        all.map_or((None, 0.0), |a| (a.mean_accuracy, a.samples_trained));
    let rows: Vec<ExperimentRow> = reports
        .iter()
        .map(|r| ExperimentRow {
            pipeline: r.name.clone(),
            selection: r.selection.clone(),
            models: r.models.len(),
            samples_trained: r.samples_trained,
            mean_accuracy: r.mean_accuracy,
            points_vs_all: r
                .mean_accuracy
                .zip(all_accuracy)
                .map(|(a, b)| (a - b) * 100.0),
            share_of_all_samples: r.samples_trained / all_samples.max(1.0),
        })
        .collect();
    let meets_target = rows
        .iter()
        .filter(|r| !r.pipeline.ends_with("-all") && r.pipeline != NEVER_RETRAINED)
        .filter(|r| {
            r.points_vs_all.is_some_and(|p| p >= -TARGET_POINTS * 100.0)
                && r.share_of_all_samples <= TARGET_SHARE
        })
        .map(|r| r.pipeline.clone())
        .collect();
    Experiment {
        from_sample,
        rows,
        meets_target,
    }
}

/// Writes the report files: `report.json`, `models.md` and `accuracy.png`.
fn write_files(out: &Path, report: &Report) -> anyhow::Result<()> {
    // event time since the stream began (a model may go live at its very end)
    let hours = |i: usize| i as f64 * INTERVAL_MICROS as f64 / 3.6e9;
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating the report directory {}", out.display()))?;
    let json = out.join("report.json");
    std::fs::write(&json, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let md = out.join("models.md");
    std::fs::write(&md, markdown(report, &hours))
        .with_context(|| format!("writing {}", md.display()))?;
    let lines: Vec<plot::Line> = report
        .pipelines
        .iter()
        .map(|p| plot::Line {
            name: p.selection.clone(),
            points: p
                .accuracy_over_time
                .iter()
                .filter_map(|pt| pt.accuracy.map(|a| (hours(pt.from + pt.samples / 2), a)))
                .collect(),
        })
        .collect();
    // the triggers of the first pipeline (every pipeline has the same trigger)
    let triggers: Vec<f64> = report.pipelines[0]
        .models
        .iter()
        .map(|m| hours(m.live_from_sample))
        .collect();
    let title = if report.experiment.is_some() {
        "Accuracy over event time: five selection policies and a model never retrained"
    } else {
        "Accuracy over event time of the live model (red: retraining triggers)"
    };
    plot::accuracy_png(&out.join("accuracy.png"), title, &lines, &triggers)
}

fn pct(a: Option<f64>) -> String {
    a.map_or("-".into(), |a| format!("{:.1} %", a * 100.0))
}

/// The models of every pipeline, and the experiment's comparison, as Markdown.
fn markdown(r: &Report, hours: &dyn Fn(usize) -> f64) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "# flywheel demo\n\n{} samples of a drifting sensor (seed {}, {} degrees every 1,000 samples{}), {} changesets; metrics at {}.\n",
        r.samples,
        r.seed,
        r.drift_degrees_per_1000,
        r.sudden_every
            .map_or(String::new(), |n| format!(", a sudden drift every {n}")),
        r.changesets.len(),
        r.metrics_url
    );
    for p in r
        .pipelines
        .iter()
        .filter(|p| !p.models.is_empty() || p.triggers.is_empty())
    {
        let _ = write!(
            s,
            "\n## {} ({})\n\nMean accuracy {} over the stream from its first model, {:.0} samples trained.\n\n",
            p.name,
            p.selection,
            pct(p.mean_accuracy),
            p.samples_trained
        );
        if p.models.is_empty() {
            continue;
        }
        s.push_str("| model | trigger | training set | samples | live from (h) | live samples | accuracy before | accuracy after | held-out |\n|---|---|---|---|---|---|---|---|---|\n");
        for m in &p.models {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {:.2} | {} | {} | {} | {} |",
                m.model_id,
                m.trigger_id,
                &m.trainset_version[..m.trainset_version.len().min(12)],
                m.trained_samples,
                hours(m.live_from_sample),
                m.live_samples,
                pct(m.accuracy_before),
                pct(m.accuracy_after),
                pct(Some(m.holdout_accuracy))
            );
        }
    }
    if let Some(e) = &r.experiment {
        let _ = write!(
            s,
            "\n## The experiment\n\nFrom sample {} (the first every pipeline had a model for).\n\n| pipeline | selection | models | samples trained | share of all-data | mean accuracy | points vs all-data |\n|---|---|---|---|---|---|---|\n",
            e.from_sample
        );
        for row in &e.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {:.1} % | {} | {} |",
                row.pipeline,
                row.selection,
                row.models,
                row.samples_trained,
                row.share_of_all_samples * 100.0,
                pct(row.mean_accuracy),
                row.points_vs_all.map_or("-".into(), |p| format!("{p:+.2}"))
            );
        }
        let _ = writeln!(
            s,
            "\nTarget (within 1 point of all-data on at most 30 % of its samples): {}.",
            if e.meets_target.is_empty() {
                "met by none".to_owned()
            } else {
                format!("met by {}", e.meets_target.join(", "))
            }
        );
    }
    s
}

/// Stores a pipeline of the demo, as `flywheel pipeline submit` would.
async fn submit_pipeline(store: &dyn TenantStore, plan: &Plan) -> anyhow::Result<()> {
    store.ensure_dataset(DATASET, now_micros()).await?;
    store
        .put_pipeline(PipelineRecord {
            name: plan.name.clone(),
            document: plan.document.clone(),
            status: PipelineStatus::Active,
            submitted_at: now_micros(),
            stopped_at: None,
        })
        .await?;
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
        dataset: DATASET.into(),
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
        let page = store.rows_by_key_range(DATASET, from, last, 50_000).await?;
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
    summed(registry, family, Some((name, value))) as u64
}

/// The sum of a counter or gauge family's series (those with the label `(name, value)`
/// if one is given).
fn summed(registry: &prometheus::Registry, family: &str, label: Option<(&str, &str)>) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == family)
        .flat_map(|f| f.get_metric())
        .filter(|m| {
            label.is_none_or(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == k && l.value() == v)
            })
        })
        .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
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
        "published {} samples of a drifting sensor ({:.1} MB) in {:.2} s: {:.0} samples/s",
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
    for p in &r.pipelines {
        if p.name == NEVER_RETRAINED {
            continue; // in the experiment's table
        }
        println!(
            "\npipeline {} (retrain on drift; selection: {}): {} training sets, {} models, {:.0} samples trained, mean accuracy {} ({:.2} s from training-set event to release on average)",
            p.name,
            p.selection,
            p.triggers.len(),
            p.models.len(),
            p.samples_trained,
            pct(p.mean_accuracy),
            p.release_latency_mean_seconds
        );
        if !p.models.is_empty() {
            println!(
                "  {:<22} {:>7} {:<14} {:>8} {:>11} {:>11} {:>11}",
                "model",
                "trigger",
                "training set",
                "samples",
                "live from",
                "acc before",
                "acc after"
            );
        }
        for m in &p.models {
            println!(
                "  {:<22} {:>7} {:<14} {:>8.0} {:>11} {:>11} {:>11}",
                m.model_id,
                m.trigger_id,
                &m.trainset_version[..m.trainset_version.len().min(12)],
                m.trained_samples,
                m.live_from_sample,
                pct(m.accuracy_before),
                pct(m.accuracy_after)
            );
        }
    }
    if let Some(e) = &r.experiment {
        println!("\nthe experiment, from sample {}:", e.from_sample);
        for row in &e.rows {
            println!(
                "  {:<48} {:>9.0} samples ({:>5.1} % of all-data)  accuracy {:>7} ({})",
                row.selection,
                row.samples_trained,
                row.share_of_all_samples * 100.0,
                pct(row.mean_accuracy),
                row.points_vs_all
                    .map_or("-".into(), |p| format!("{p:+.2} points vs all-data"))
            );
        }
        println!(
            "  target (within 1 point of all-data on at most 30 % of its samples): {}",
            if e.meets_target.is_empty() {
                "met by none".to_owned()
            } else {
                format!("met by {}", e.meets_target.join(", "))
            }
        );
    }
    let t = &r.trainset;
    println!(
        "\na late label arrived as changeset {} (relabel); training set {} of this run's changesets: {} samples in {} shard(s), prepared in {:.3} s (again: {}), read back in {:.2} s",
        r.relabel_changeset,
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
    );
    println!(
        "report: {0}/report.json, {0}/models.md, {0}/accuracy.png; /metrics was served at {1}",
        r.out, r.metrics_url
    );
    println!(
        "ok in {:.0} s: every sample published was stored exactly once, in changesets without gaps, and read back once from its training set; every trigger was emitted once and released once as a model",
        r.seconds
    );
}
