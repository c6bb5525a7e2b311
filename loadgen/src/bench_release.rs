//! `loadgen bench release`: the time from a `TrainingSet` event to its `ModelRelease`, for
//! a pipeline like the demo's (an MLP with 32 hidden units, here over three features, 5
//! epochs, batches of 128, each model fine-tuned from the one before), on the embedded
//! default (embedded bus, SQLite, local files).
//!
//! A dataset grows by `--every` samples per round; each round a training set of the new
//! samples is prepared, its event published, and the trainer (running all along) trains,
//! evaluates, stores and releases the model; the time runs from the event's publication
//! until the release is read back from the models topic (looked for every 5 ms). Baseline: the training loop alone, as the
//! release reports it (`train_seconds`); the ratio says what the rest costs (reading the
//! manifest, evaluating, storing the model, the topics).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use flywheel_schemas::{BodyContent, TrainingSet, encode, now_micros, write_body};
use flywheel_store::{
    ChangesetKind, ChangesetRecord, IndexRow, NewChangeset, PipelineRecord, PipelineStatus,
    SampleLocation, Tenant,
};
use flywheel_supervisor::pipeline_releases;
use flywheel_topics::{BusMetrics, Record, TopicKind, connect, tenant_topics};
use flywheel_trainer::{Trainer, TrainerConfig, TrainerMetrics};
use flywheel_trainset::{QueryRequest, prepare};
use object_store::ObjectStoreExt as _;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

const PIPELINE: &str = "demo-mlp";

#[derive(Debug, Args)]
pub(crate) struct ReleaseArgs {
    /// Rounds (training sets).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// New samples per round.
    #[arg(long, default_value_t = 5_000)]
    every: usize,
    /// Where the work directory goes.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Print the results as one JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Round {
    trigger_id: i64,
    samples: i64,
    release_seconds: f64,
    train_seconds: f64,
    ratio: f64,
    holdout_accuracy: f64,
}

pub(crate) async fn run(args: &ReleaseArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let work = tempfile::Builder::new()
        .prefix("loadgen-release-")
        .tempdir_in(&args.dir)?;
    let registry = prometheus::Registry::new();
    let bus = connect(
        &format!("embedded://{}", work.path().join("bus").display()),
        &BusMetrics::new(&registry),
    )
    .await?;
    let meta = flywheel_store::open(&format!(
        "sqlite://{}",
        work.path().join("meta.db").display()
    ))
    .await?;
    let blobs = flywheel_store::blobs::open_blobs(&format!(
        "file://{}",
        work.path().join("blobs").display()
    ))?;
    let tenant = Tenant::default_tenant();
    bus.create_topics(&tenant_topics(&tenant)).await?;
    let store = meta.tenant(&tenant).await?;
    store.ensure_dataset("sensors", now_micros()).await?;
    let document = format!(
        "name = \"{PIPELINE}\"\ndataset = \"sensors\"\n\n[trigger]\nkind = \"data_amount\"\nsamples = {}\n\n[selection]\npolicy = \"new_data\"\n\n[model]\nkind = \"mlp\"\nhidden = [32]\nlabels = [\"0\", \"1\"]\n\n[training]\nepochs = 5\nbatch_size = 128\nlearning_rate = 0.01\non_bad_sample = \"skip\"\n",
        args.every
    );
    store
        .put_pipeline(PipelineRecord {
            name: PIPELINE.into(),
            document,
            status: PipelineStatus::Active,
            submitted_at: now_micros(),
            stopped_at: None,
        })
        .await?;
    let trainer = Trainer::new(
        bus.clone(),
        meta.clone(),
        blobs.clone(),
        TrainerConfig::default(),
        TrainerMetrics::new(&registry),
    )?;
    let stop = CancellationToken::new();
    let task = tokio::spawn(trainer.run(stop.clone()));

    let mut rounds = Vec::new();
    let mut next = 0u64;
    for round in 1..=args.rounds {
        // the round's samples: synthetic sensor readings, in one changeset
        let id = round as i64;
        let uri = format!("{tenant}/sensors/segments/c{id}.seg");
        let (mut segment, mut rows) = (Vec::new(), Vec::new());
        for _ in 0..args.every {
            let x = next as f64 * 0.001;
            let f = [
                (x * 700.0).sin(),
                (x * 1300.0).cos(),
                (next % 17) as f64 / 17.0,
            ];
            let label = if f.iter().sum::<f64>() > 0.5 {
                "1"
            } else {
                "0"
            };
            let offset = segment.len() as u64;
            let len = write_body(&mut segment, &f, BodyContent::None) as u64;
            rows.push(IndexRow {
                key: next,
                changeset: id,
                location: SampleLocation::Segment {
                    uri: uri.clone(),
                    offset,
                    length: len,
                },
                label: Some(label.into()),
                event_time: next as i64 * 1_000,
                size: len,
            });
            next += 1;
        }
        blobs
            .put(
                &object_store::path::Path::from(uri.as_str()),
                segment.into(),
            )
            .await?;
        let mut record = ChangesetRecord::new("sensors", id, ChangesetKind::Add, now_micros());
        record.sample_count = args.every as i64;
        record.segments = vec![uri];
        store
            .commit_changeset(NewChangeset::new(record).with_rows(rows))
            .await?;
        let prepared = prepare(
            store.as_ref(),
            &blobs,
            &QueryRequest {
                dataset: "sensors".into(),
                changesets: Some(id.to_string()),
                ..QueryRequest::default()
            },
            now_micros(),
        )
        .await?;
        let event = TrainingSet {
            tenant: tenant.as_str().into(),
            pipeline: PIPELINE.into(),
            trigger_id: id,
            dataset: "sensors".into(),
            version: prepared.record.version.clone(),
            head_changeset: id,
            manifest_uri: prepared.record.manifest_uri.clone(),
            sample_count: prepared.record.sample_count,
            trigger_reason: "data_amount".into(),
            created_at: now_micros(),
        };
        let started = Instant::now();
        bus.produce(
            &TopicKind::Trainsets.topic(&tenant),
            vec![Record::keyed(PIPELINE.as_bytes(), encode(&event))],
        )
        .await?;
        let (release, seen) = loop {
            let released = pipeline_releases(bus.as_ref(), &tenant, PIPELINE, 1).await?;
            if let Some(r) = released.into_iter().find(|r| r.trigger_id == id) {
                break (r, started.elapsed().as_secs_f64());
            }
            if started.elapsed() > Duration::from_secs(600) || task.is_finished() {
                bail!("no release of training set {id}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        // from the event's publication to the release read back from the models topic
        // (looked for every 5 ms)
        let release_seconds = seen;
        let train_seconds = release.metrics.get("train_seconds").copied().unwrap_or(0.0);
        rounds.push(Round {
            trigger_id: id,
            samples: event.sample_count,
            release_seconds,
            train_seconds,
            ratio: release_seconds / train_seconds.max(1e-9),
            holdout_accuracy: release
                .metrics
                .get("holdout_accuracy")
                .copied()
                .unwrap_or(0.0),
        });
    }
    stop.cancel();
    task.await.context("the trainer panicked")??;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&rounds)?);
        return Ok(());
    }
    println!(
        "release: TrainingSet event to ModelRelease, the demo's MLP on {} new samples a round (embedded default)",
        args.every
    );
    for r in &rounds {
        println!(
            "  trigger {}: {:.3} s to the release, {:.3} s of it in the training loop: {:.2}x the loop; held-out accuracy {:.3}",
            r.trigger_id, r.release_seconds, r.train_seconds, r.ratio, r.holdout_accuracy
        );
    }
    Ok(())
}
