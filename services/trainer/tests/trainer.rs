//! The trainer over real backends (embedded bus, SQLite, an in-memory object store) and
//! real libtorch, fed by the real supervisor: training sets become released models with
//! their lineage; bad samples fail the set or are skipped and counted; a trainer killed
//! in the middle of a set, or around its release, releases it exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use flywheel_core::pipeline::Pipeline;
use flywheel_schemas::{
    BodyContent, ChangesetKind, ModelRelease, RejectedSample, TrainingSet, decode, write_body,
};
use flywheel_store::{
    ChangesetRecord, IndexRow, MetaStore, NewChangeset, PipelineRecord, PipelineStatus,
    SampleLocation, SqliteStore, Tenant, TenantStore,
};
use flywheel_supervisor::{Supervisor, SupervisorConfig, SupervisorMetrics};
use flywheel_topics::testing::{Counted, FaultyBus, kafka_test_url};
use flywheel_topics::{Bus, BusMetrics, Message, TopicKind, tenant_topics};
use flywheel_trainer::decode::Shape;
use flywheel_trainer::model::{Card, Net};
use flywheel_trainer::{Trainer, TrainerConfig, TrainerMetrics, read_model};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use tokio_util::sync::CancellationToken;

const DATASET: &str = "sensors";
const WAIT: Duration = Duration::from_secs(120);

/// How a test's samples look.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Two features in [0, 1); `hi` if the first is larger.
    Points,
    /// Three features: the wrong width for a two-feature model.
    WideRow,
    /// 8x8 grey PNG payloads, `bright` or `dark`.
    Images,
    /// Payloads that are not images.
    NotImage,
}

struct Fixture {
    _dir: tempfile::TempDir,
    bus: Arc<dyn Bus>,
    meta: Arc<dyn MetaStore>,
    store: Arc<dyn TenantStore>,
    blobs: Arc<dyn ObjectStore>,
    tenant: Tenant,
    /// A suffix of the consumer groups (the Kafka broker is shared between tests).
    groups: String,
    next_key: u64,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("embedded://{}", dir.path().join("bus").display());
    fixture_on(dir, &url, "acme", "").await
}

/// On the Kafka broker of the tests (`FLYWHEEL_TEST_KAFKA`, which scripts/test.sh sets):
/// `None` skips the test, saying so, unless `FLYWHEEL_REQUIRE_KAFKA=1`.
async fn kafka_fixture() -> Option<Fixture> {
    let url = kafka_test_url()?;
    // the broker is shared: a tenant and groups of this test's own
    let id = format!("{:08x}", rand::random::<u32>());
    let dir = tempfile::tempdir().unwrap();
    Some(fixture_on(dir, &url, &format!("acme-{id}"), &format!("-{id}")).await)
}

async fn fixture_on(dir: tempfile::TempDir, url: &str, tenant: &str, groups: &str) -> Fixture {
    let bus = flywheel_topics::connect(url, &BusMetrics::new(&prometheus::Registry::new()))
        .await
        .unwrap();
    let tenant = Tenant::new(tenant).unwrap();
    bus.create_topics(&tenant_topics(&tenant)).await.unwrap();
    let meta: Arc<dyn MetaStore> = Arc::new(
        SqliteStore::open(&format!(
            "sqlite://{}",
            dir.path().join("meta.db").display()
        ))
        .await
        .unwrap(),
    );
    let store = meta.tenant(&tenant).await.unwrap();
    Fixture {
        _dir: dir,
        bus,
        meta,
        store,
        blobs: Arc::new(InMemory::new()),
        tenant,
        groups: groups.to_owned(),
        next_key: 1,
    }
}

/// A deterministic number in [0, 1) from `n`.
fn unit(n: u64) -> f64 {
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 32;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn png(bright: bool, noise: u64) -> Vec<u8> {
    let img = image::GrayImage::from_fn(8, 8, |x, y| {
        let base: u8 = if bright { 190 } else { 20 };
        image::Luma([base + (unit(noise * 64 + u64::from(x * 8 + y)) * 60.0) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

impl Fixture {
    /// Commits the next changeset of `n` samples of `kind`; returns their keys.
    async fn add(&mut self, n: usize, kind: Kind) -> Vec<u64> {
        let id = (self.store.dataset(DATASET).await.unwrap()).map_or(0, |d| d.head) + 1;
        let uri = format!("{}/{DATASET}/segments/c{id}.seg", self.tenant);
        let mut segment = Vec::new();
        let mut rows = Vec::new();
        for _ in 0..n {
            let k = self.next_key;
            self.next_key += 1;
            let key = k * 7919;
            let (x, y) = (unit(k), unit(k + 1_000_000));
            let offset = segment.len() as u64;
            let (len, label) = match kind {
                Kind::Points => (
                    write_body(&mut segment, &[x, y], BodyContent::None),
                    if x > y { "hi" } else { "lo" },
                ),
                Kind::WideRow => (
                    write_body(&mut segment, &[x, y, 0.5], BodyContent::None),
                    "hi",
                ),
                Kind::Images => {
                    let bright = k.is_multiple_of(2);
                    let img = png(bright, k);
                    (
                        write_body(&mut segment, &[], BodyContent::Payload(&img)),
                        if bright { "bright" } else { "dark" },
                    )
                }
                Kind::NotImage => (
                    write_body(&mut segment, &[], BodyContent::Payload(b"GIF? no")),
                    "dark",
                ),
            };
            rows.push(IndexRow {
                key,
                changeset: id,
                location: SampleLocation::Segment {
                    uri: uri.clone(),
                    offset,
                    length: len as u64,
                },
                label: Some(label.to_owned()),
                event_time: k as i64 * 1_000_000,
                size: len as u64,
            });
        }
        let keys = rows.iter().map(|r| r.key).collect();
        rows.sort_by_key(|r| r.key);
        self.blobs
            .put(&Path::from(uri.as_str()), PutPayload::from(segment))
            .await
            .unwrap();
        let mut record = ChangesetRecord::new(DATASET, id, ChangesetKind::Add, id * 1000);
        record.sample_count = n as i64;
        record.segments = vec![uri];
        self.store
            .commit_changeset(NewChangeset::new(record).with_rows(rows))
            .await
            .unwrap();
        keys
    }

    async fn submit(&self, document: &str) {
        let p = Pipeline::parse(document).unwrap();
        self.store
            .put_pipeline(PipelineRecord {
                name: p.name,
                document: document.to_owned(),
                status: PipelineStatus::Active,
                submitted_at: 0,
                stopped_at: None,
            })
            .await
            .unwrap();
    }

    /// Every record of a topic of the tenant.
    async fn read_all(&self, kind: TopicKind) -> Vec<Message> {
        let topic = kind.topic(&self.tenant);
        let mut out = Vec::new();
        for p in 0..self.bus.partitions(&topic).await.unwrap() as i32 {
            let end = self.bus.end_offset(&topic, p).await.unwrap();
            let mut at = 0;
            while at < end {
                let got = (self.bus.read(&topic, p, at, 1000, Duration::from_secs(1)))
                    .await
                    .unwrap();
                at = got.last().unwrap().offset + 1;
                out.extend(got);
            }
        }
        out
    }

    async fn releases(&self) -> Vec<ModelRelease> {
        let mut r: Vec<ModelRelease> = (self.read_all(TopicKind::Models).await.iter())
            .map(|m| decode(&m.value).unwrap())
            .collect();
        r.sort_by_key(|r| (r.pipeline.clone(), r.trigger_id));
        r
    }

    async fn dead_letters(&self) -> Vec<RejectedSample> {
        (self.read_all(TopicKind::SamplesRejected).await.iter())
            .map(|m| decode(&m.value).unwrap())
            .collect()
    }

    /// Runs the supervisor until `n` training-set events are out.
    async fn supervise(&self, n: usize) {
        let sup = Supervisor::new(
            self.bus.clone(),
            self.meta.clone(),
            self.blobs.clone(),
            SupervisorConfig {
                rescan: Duration::from_millis(30),
                group: format!("flywheel-supervisor{}", self.groups),
                tenants: vec![self.tenant.as_str().to_owned()],
                ..SupervisorConfig::default()
            },
            SupervisorMetrics::new(&prometheus::Registry::new()),
        )
        .unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(sup.run(stop.clone()));
        tokio::time::timeout(WAIT, async {
            while self.read_all(TopicKind::Trainsets).await.len() < n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the supervisor emitted too few training sets");
        stop.cancel();
        task.await.unwrap().unwrap();
    }

    fn trainer(&self, bus: Arc<dyn Bus>, registry: &prometheus::Registry) -> Trainer {
        Trainer::new(
            bus,
            self.meta.clone(),
            self.blobs.clone(),
            TrainerConfig {
                max_backoff: Duration::from_millis(100),
                group: format!("flywheel-trainer{}", self.groups),
                tenants: vec![self.tenant.as_str().to_owned()],
                ..TrainerConfig::default()
            },
            TrainerMetrics::new(registry),
        )
        .unwrap()
    }

    /// Runs a trainer until `done` holds of the releases and dead letters.
    async fn train_until(&self, done: impl Fn(usize, usize) -> bool) {
        let trainer = self.trainer(self.bus.clone(), &prometheus::Registry::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(trainer.run(stop.clone()));
        tokio::time::timeout(WAIT, async {
            loop {
                let (r, d) = (self.releases().await.len(), self.dead_letters().await.len());
                if done(r, d) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the trainer did not get there");
        stop.cancel();
        task.await.unwrap().unwrap();
    }
}

fn document(name: &str, every: usize, extra: &str) -> String {
    format!(
        "name = \"{name}\"\ndataset = \"{DATASET}\"\n\
         [trigger]\nkind = \"data_amount\"\nsamples = {every}\n\
         [selection]\npolicy = \"new_data\"\n{extra}"
    )
}

const MLP: &str = "[model]\nkind = \"mlp\"\nhidden = [16]\n\
                   [training]\nepochs = 30\nbatch_size = 32\nlearning_rate = 0.01\nseed = 3\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_sets_become_released_models_with_their_lineage() {
    released_models_with_their_lineage_on(fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_sets_become_released_models_on_kafka() {
    if let Some(f) = kafka_fixture().await {
        released_models_with_their_lineage_on(f).await;
    }
}

async fn released_models_with_their_lineage_on(mut f: Fixture) {
    f.submit(&document("p", 300, MLP)).await;
    for _ in 0..3 {
        f.add(300, Kind::Points).await;
    }
    f.supervise(3).await;
    f.train_until(|r, _| r >= 3).await;

    let releases = f.releases().await;
    assert_eq!(releases.len(), 3, "{releases:?}");
    let events: BTreeMap<i64, TrainingSet> = (f.read_all(TopicKind::Trainsets).await.iter())
        .map(|m| decode::<TrainingSet>(&m.value).unwrap())
        .map(|e| (e.trigger_id, e))
        .collect();
    for (i, r) in releases.iter().enumerate() {
        let trigger = i as i64 + 1;
        assert_eq!((r.pipeline.as_str(), r.trigger_id), ("p", trigger));
        assert_eq!(r.model_id, format!("p-{trigger}"));
        assert_eq!(r.trainset_version, events[&trigger].version);
        // warm start: each model starts from the one before
        let parent = (trigger > 1).then(|| format!("p-{}", trigger - 1));
        assert_eq!(r.parent_model, parent);
        assert_eq!(r.metrics["warm_started"], f64::from(u8::from(trigger > 1)));
        // every sample of the set is trained on or held out, none skipped
        let m = &r.metrics;
        assert_eq!(m["train_samples"] + m["holdout_samples"], 300.0, "{m:?}");
        assert!(m["holdout_samples"] > 10.0, "{m:?}");
        assert_eq!(m["skipped_samples"], 0.0);
        assert!(m["holdout_accuracy"] > 0.85, "{m:?}");
        // evaluated on what came after the set: 600, 300, then nothing
        assert_eq!(m["after_samples"], [600.0, 300.0, 0.0][i], "{m:?}");
        if trigger < 3 {
            assert!(m["after_accuracy"] > 0.85, "{m:?}");
        }

        // the stored record, the card and the weights: the model loads and classifies
        let record = f.store.model(&r.model_id).await.unwrap().unwrap();
        assert_eq!(record.uri, r.model_uri);
        assert_eq!(record.metrics, r.metrics);
        let (card, weights) = read_model(&f.blobs, &record).await.unwrap();
        assert_eq!(card.labels, vec!["hi".to_owned(), "lo".to_owned()]);
        assert_eq!(card.input, Shape::Features { width: 2 });
        let mut net = Net::new(card.clone(), tch::Device::Cpu, 99).unwrap();
        net.load_safetensors(&weights, "the model").unwrap();
        let xs = tch::Tensor::from_slice(&[0.9f32, 0.1, 0.1, 0.9]).view([2, 2]);
        let predicted: Vec<i64> = Vec::try_from(net.forward(&xs).argmax(-1, false)).unwrap();
        assert_eq!(predicted, vec![0, 1], "hi, then lo");
    }
    assert!(f.dead_letters().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_samples_fail_the_set_or_are_skipped_and_counted() {
    let mut f = fixture().await;
    let strict = document("strict", 200, MLP);
    let lenient = document(
        "lenient",
        200,
        &format!(
            "{MLP}on_bad_sample = \"skip\"\nmax_skipped = 0.2\n[input]\nkind = \"features\"\nwidth = 2\n"
        ),
    );
    f.submit(&strict).await;
    f.submit(&lenient).await;
    f.add(180, Kind::Points).await;
    let wide = f.add(20, Kind::WideRow).await;
    f.supervise(2).await;
    f.train_until(|r, d| r >= 1 && d >= 1).await;

    // strict: dead-lettered, naming a bad key and the reason; no model
    let dead = f.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].reason, "untrainable");
    assert!(
        dead[0]
            .detail
            .contains("it has 3 features, the model takes 2"),
        "{}",
        dead[0].detail
    );
    assert!(
        dead[0].detail.contains("on_bad_sample"),
        "{}",
        dead[0].detail
    );
    assert!(
        wide.iter()
            .any(|k| dead[0].detail.contains(&format!("sample {k}:"))),
        "{}",
        dead[0].detail
    );
    let event: TrainingSet = decode(&dead[0].original).unwrap();
    assert_eq!(event.pipeline, "strict");
    assert!(f.store.model("strict-1").await.unwrap().is_none());

    // lenient: the 20 wide rows are skipped and counted, the rest trained or held out
    let releases = f.releases().await;
    assert_eq!(releases.len(), 1);
    let m = &releases[0].metrics;
    let held_wide = wide
        .iter()
        .filter(|k| flywheel_trainer::plan::held_out(**k, 0.1))
        .count();
    assert_eq!(m["skipped_samples"], (20 - held_wide) as f64, "{m:?}");
    assert_eq!(m["holdout_skipped"], held_wide as f64, "{m:?}");
    assert_eq!(
        m["train_samples"] + m["skipped_samples"] + m["holdout_samples"] + m["holdout_skipped"],
        200.0,
        "{m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_bad_samples_or_a_missing_segment_fail_even_when_skipping() {
    let mut f = fixture().await;
    let doc = document(
        "p",
        100,
        &format!("{MLP}on_bad_sample = \"skip\"\n[input]\nkind = \"features\"\nwidth = 2\n"),
    );
    f.submit(&doc).await;
    f.add(100, Kind::Points).await;
    // the segment is lost: every sample of it is bad, far more than 1 %
    let seg = Path::from(format!("{}/{DATASET}/segments/c1.seg", f.tenant).as_str());
    f.blobs.delete(&seg).await.unwrap();
    f.supervise(1).await;
    f.train_until(|_, d| d >= 1).await;
    let dead = f.dead_letters().await;
    assert!(
        dead[0]
            .detail
            .contains("more than training.max_skipped = 0.01 allows"),
        "{}",
        dead[0].detail
    );
    assert!(
        dead[0].detail.contains("segments/c1.seg is missing"),
        "{}",
        dead[0].detail
    );
    assert!(f.releases().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cnn_learns_images_and_skips_what_is_not_one() {
    let mut f = fixture().await;
    let doc = document(
        "images",
        205,
        "[input]\nkind = \"image\"\nwidth = 8\nheight = 8\n\
         [model]\nkind = \"cnn\"\nchannels = [4]\n\
         [training]\nepochs = 8\nbatch_size = 16\nlearning_rate = 0.01\non_bad_sample = \"skip\"\nmax_skipped = 0.05\n",
    );
    f.submit(&doc).await;
    f.add(200, Kind::Images).await;
    f.add(5, Kind::NotImage).await;
    f.supervise(1).await;
    f.train_until(|r, _| r >= 1).await;
    let r = &f.releases().await[0];
    let m = &r.metrics;
    assert_eq!(
        m["skipped_samples"] + m.get("holdout_skipped").unwrap_or(&0.0),
        5.0,
        "{m:?}"
    );
    assert!(m["holdout_accuracy"] > 0.9, "{m:?}");
    let record = f.store.model(&r.model_id).await.unwrap().unwrap();
    let (card, _) = read_model(&f.blobs, &record).await.unwrap();
    assert_eq!(
        card,
        Card {
            format: 1,
            kind: flywheel_core::pipeline::ModelKind::Cnn,
            input: Shape::Image {
                width: 8,
                height: 8,
                channels: 1
            },
            hidden: vec![],
            channels: vec![4],
            labels: vec!["bright".into(), "dark".into()],
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_based_downsampling_trains_on_a_weighted_fraction() {
    let mut f = fixture().await;
    let doc = document(
        "ds",
        400,
        &format!("{MLP}downsample = {{ method = \"loss\", fraction = 0.25 }}\n"),
    );
    f.submit(&doc).await;
    f.add(400, Kind::Points).await;
    f.supervise(1).await;
    f.train_until(|r, _| r >= 1).await;
    let m = &f.releases().await[0].metrics;
    assert_eq!(m["downsample_fraction"], 0.25);
    // each of the 30 epochs draws a quarter of the trainable samples, by their loss
    let trainable = 400.0 - m["holdout_samples"];
    assert!(m["samples_per_second"] > 0.0);
    assert!(m["train_samples"] <= trainable, "{m:?}");
    assert!(m["holdout_accuracy"] > 0.8, "{m:?}");
}

/// Runs a trainer on a bus that dies at its first produce (the release), or is aborted
/// in the middle of training; then a clean trainer. Exactly one release per set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trainer_killed_mid_training_or_at_its_release_releases_each_set_once() {
    let mut f = fixture().await;
    let slow = "[model]\nkind = \"mlp\"\nhidden = [32]\n\
                [training]\nepochs = 60\nbatch_size = 8\nlearning_rate = 0.01\n";
    f.submit(&document("p", 300, slow)).await;
    for _ in 0..2 {
        f.add(300, Kind::Points).await;
    }
    f.supervise(2).await;

    // killed in the middle of training the first set, twice
    for _ in 0..2 {
        let registry = prometheus::Registry::new();
        let trainer = f.trainer(f.bus.clone(), &registry);
        let task = tokio::spawn(trainer.run(CancellationToken::new()));
        tokio::time::timeout(WAIT, async {
            loop {
                let progress = registry
                    .gather()
                    .iter()
                    .filter(|m| m.name() == "flywheel_trainer_progress_samples")
                    .flat_map(|m| m.get_metric().iter().map(|s| s.get_gauge().get_value()))
                    .sum::<f64>();
                if progress > 0.0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("training never started");
        task.abort();
        let _ = task.await;
        assert!(f.releases().await.is_empty());
    }

    // killed at the release: before it is published, then after
    for after in [false, true] {
        let bus = FaultyBus::counting(f.bus.clone(), Some(0), after, Counted::Produce);
        let trainer = f.trainer(bus.clone(), &prometheus::Registry::new());
        let task = tokio::spawn(trainer.run(CancellationToken::new()));
        tokio::time::timeout(WAIT, bus.tripped.notified())
            .await
            .expect("the trainer never released");
        task.abort();
        let _ = task.await;
    }
    // the first set's model is stored, and released once (by the "after" trainer)
    assert!(f.store.model("p-1").await.unwrap().is_some());

    f.train_until(|r, _| r >= 2).await;
    // a last trainer finds nothing left to do
    tokio::time::sleep(Duration::from_millis(300)).await;
    let releases = f.releases().await;
    let ids: Vec<&str> = releases.iter().map(|r| r.model_id.as_str()).collect();
    assert_eq!(ids, vec!["p-1", "p-2"], "{releases:?}");
    assert_eq!(releases[1].parent_model.as_deref(), Some("p-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_model_that_does_not_load_means_training_from_scratch() {
    let mut f = fixture().await;
    f.submit(&document("p", 200, MLP)).await;
    f.add(200, Kind::Points).await;
    f.supervise(1).await;
    f.train_until(|r, _| r >= 1).await;
    // the first model's weights are damaged
    let first = f.store.model("p-1").await.unwrap().unwrap();
    f.blobs
        .put(
            &Path::from(first.uri.as_str()),
            PutPayload::from(b"not safetensors".to_vec()),
        )
        .await
        .unwrap();
    f.add(200, Kind::Points).await;
    f.supervise(2).await;
    f.train_until(|r, _| r >= 2).await;
    let second = &f.releases().await[1];
    assert_eq!(second.model_id, "p-2");
    assert_eq!(
        second.parent_model, None,
        "not fine-tuned from a model that does not load"
    );
    assert_eq!(second.metrics["warm_started"], 0.0);
    assert!(
        second.metrics["holdout_accuracy"] > 0.85,
        "{:?}",
        second.metrics
    );
}

/// The loader on its own: the same batches, in the same order, with 1 worker and no cache
/// as with 4 workers and a cache; a second pass served by the cache;
/// bad samples reported with their key and reason, the rest delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loader_gives_the_same_batches_with_any_workers_and_reads_once_with_a_cache() {
    use flywheel_trainer::cache::Cache;
    use flywheel_trainer::loader::{Item, Loader, LoaderConfig, Source, epoch_order};

    let blobs: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut items = Vec::new();
    let uris = vec![
        "acme/d/segments/a.seg".to_owned(),
        "acme/d/segments/b.seg".to_owned(),
        "globex/d/segments/c.seg".to_owned(),
        "acme/d/segments/missing.seg".to_owned(),
    ];
    for (u, uri) in uris.iter().enumerate().take(3) {
        let mut segment = Vec::new();
        for i in 0..300u64 {
            let key = u as u64 * 1000 + i;
            let offset = segment.len() as u64;
            let width = if key == 17 { 3 } else { 2 };
            let len = write_body(&mut segment, &vec![key as f64; width], BodyContent::None);
            items.push(Item {
                key,
                changeset: 1,
                uri: u as u32,
                range: Some((offset, len as u64)),
                class: Ok((key % 2) as i64),
                weight: 1.0,
            });
        }
        blobs
            .put(&Path::from(uri.as_str()), PutPayload::from(segment))
            .await
            .unwrap();
    }
    items.push(Item {
        key: 5000,
        changeset: 1,
        uri: 3,
        range: Some((0, 10)),
        class: Ok(0),
        weight: 1.0,
    });
    items.push(Item {
        key: 5001,
        changeset: 1,
        uri: 0,
        range: Some((0, 10)),
        class: Err("it has no label".into()),
        weight: 1.0,
    });
    let items: Arc<[Item]> = items.into();
    let source = Arc::new(Source {
        blobs,
        tenant: "acme".into(),
        uris,
        cache_id: 1,
    });
    let shape = Shape::Features { width: 2 };
    let order = epoch_order("v", 0, 1, items.len());
    let collect = |loader: &Loader| {
        let mut rx = loader.batches(items.clone(), order.clone(), 64);
        async move {
            let mut out = Vec::new();
            while let Some(b) = rx.recv().await {
                out.push(b.unwrap());
            }
            out
        }
    };
    let one = Loader::new(
        source.clone(),
        shape,
        Cache::new(0),
        LoaderConfig {
            workers: 1,
            prefetch: 1,
        },
    );
    let cache = Cache::new(1 << 20);
    let four = Loader::new(
        source,
        shape,
        cache.clone(),
        LoaderConfig {
            workers: 4,
            prefetch: 8,
        },
    );
    let a = collect(&one).await;
    let b = collect(&four).await;
    assert_eq!(a.len(), items.len().div_ceil(64));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (&x.keys, &x.inputs, &x.classes),
            (&y.keys, &y.inputs, &y.classes)
        );
    }
    // in the epoch's order, bad samples left out and named
    let keys: Vec<u64> = a.iter().flat_map(|b| b.keys.clone()).collect();
    let skipped: BTreeMap<u64, String> = (a.iter())
        .flat_map(|b| b.skipped.iter().map(|s| (s.key, s.reason.clone())))
        .collect();
    let want: Vec<u64> = (order.iter())
        .map(|&i| items[i as usize].key)
        .filter(|k| !skipped.contains_key(k))
        .collect();
    assert_eq!(keys, want);
    assert_eq!(keys.len(), 600 - 1);
    assert_eq!(skipped[&17], "it has 3 features, the model takes 2");
    assert!(
        skipped[&2000].contains("not in this tenant's store"),
        "{skipped:?}"
    );
    assert!(
        skipped[&5000].contains("missing.seg is missing"),
        "{skipped:?}"
    );
    assert_eq!(skipped[&5001], "it has no label");
    assert_eq!(skipped.len(), 300 + 3);
    // the inputs are the stored features
    let first = &a[0];
    assert_eq!(
        first.inputs[..2],
        [first.keys[0] as f32, first.keys[0] as f32]
    );

    // a second pass: every good sample from the cache; only the bad ones read again (key
    // 17's segment, and the missing one)
    let requests = four.stats().requests.load(Ordering::SeqCst);
    let hits = four.stats().hits.load(Ordering::SeqCst);
    let again = collect(&four).await;
    assert_eq!(four.stats().requests.load(Ordering::SeqCst), requests + 2);
    assert_eq!(four.stats().hits.load(Ordering::SeqCst) - hits, 599);
    let keys_again: Vec<u64> = again.iter().flat_map(|b| b.keys.clone()).collect();
    assert_eq!(keys_again, keys);
    assert_eq!(cache.len(), 599);
}
