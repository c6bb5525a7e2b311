//! The supervisor over real backends (embedded bus, SQLite, an in-memory object store):
//! triggers become prepared training sets and events; a pipeline's history is observed
//! but not emitted; and a supervisor that dies at any call to the bus, or many times over,
//! emits every trigger exactly once, with the same versions as one that never died.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use flywheel_core::pipeline::Pipeline;
use flywheel_schemas::{BodyContent, ChangesetKind, TrainingSet, decode, write_body};
use flywheel_store::{
    ChangesetRecord, IndexRow, MetaStore, NewChangeset, PipelineRecord, PipelineStatus,
    SampleLocation, SqliteStore, Tenant, TenantStore,
};
use flywheel_supervisor::runner::{Input, Runner};
use flywheel_supervisor::{Supervisor, SupervisorConfig, SupervisorMetrics, read_input};
use flywheel_topics::testing::{FaultyBus, kafka_test_url};
use flywheel_topics::{Bus, BusMetrics, TopicKind, tenant_topics};
use flywheel_trainset::manifest::{footer_len, footer_start, read_chunk, read_footer};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use tokio_util::sync::CancellationToken;

const TENANT: &str = "acme";
const DATASET: &str = "sensors";
const WAIT: Duration = Duration::from_secs(60);

struct Fixture {
    _dir: tempfile::TempDir,
    bus: Arc<dyn Bus>,
    meta: Arc<dyn MetaStore>,
    store: Arc<dyn TenantStore>,
    blobs: Arc<dyn ObjectStore>,
    tenant: Tenant,
    /// The supervisors' consumer group.
    group: String,
    next_key: u64,
    /// Event time between two samples (microseconds).
    step: i64,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("embedded://{}", dir.path().join("bus").display());
    fixture_on(dir, &url, TENANT, "flywheel-supervisor").await
}

/// The Kafka broker of the tests (`FLYWHEEL_TEST_KAFKA`, which scripts/test.sh sets):
/// `None` skips the test, saying so, unless `FLYWHEEL_REQUIRE_KAFKA=1`.
async fn kafka_fixture() -> Option<Fixture> {
    let url = kafka_test_url()?;
    // the broker is shared: a tenant and a group of this test's own
    let id = format!("{:08x}", rand::random::<u32>());
    let dir = tempfile::tempdir().unwrap();
    Some(
        fixture_on(
            dir,
            &url,
            &format!("acme-{id}"),
            &format!("supervisor-{id}"),
        )
        .await,
    )
}

async fn fixture_on(dir: tempfile::TempDir, url: &str, tenant: &str, group: &str) -> Fixture {
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
        group: group.to_owned(),
        next_key: 1,
        step: 1_000_000,
    }
}

impl Fixture {
    /// Commits the next changeset: `n` samples with one feature (`shift` + noise), labels
    /// a/b/c, event times a second apart, stored forms in one segment.
    async fn add(&mut self, n: usize, shift: f64) {
        let id = self
            .store
            .dataset(DATASET)
            .await
            .unwrap()
            .map_or(0, |d| d.head)
            + 1;
        let uri = format!("{}/{DATASET}/segments/c{id}.seg", self.tenant);
        let mut segment = Vec::new();
        let mut rows = Vec::new();
        for _ in 0..n {
            let key = self.next_key * 7919;
            let offset = segment.len() as u64;
            let noise = ((self.next_key * 2_654_435_761) % 1000) as f64 / 1000.0;
            let len = write_body(&mut segment, &[shift + noise], BodyContent::None);
            rows.push(IndexRow {
                key,
                changeset: id,
                location: SampleLocation::Segment {
                    uri: uri.clone(),
                    offset,
                    length: len as u64,
                },
                label: Some(["a", "b", "c"][(self.next_key % 3) as usize].to_owned()),
                event_time: self.next_key as i64 * self.step,
                size: len as u64,
            });
            self.next_key += 1;
        }
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
    }

    async fn submit(&self, document: &str, submitted_at: i64) {
        let p = Pipeline::parse(document).unwrap();
        self.store
            .put_pipeline(PipelineRecord {
                name: p.name,
                document: document.to_owned(),
                status: PipelineStatus::Active,
                submitted_at,
                stopped_at: None,
            })
            .await
            .unwrap();
    }

    /// Every event on the tenant's trainsets topic, partition by partition.
    async fn events(&self) -> Vec<TrainingSet> {
        let topic = TopicKind::Trainsets.topic(&self.tenant);
        let mut out = Vec::new();
        for p in 0..self.bus.partitions(&topic).await.unwrap() as i32 {
            let end = self.bus.end_offset(&topic, p).await.unwrap();
            let mut at = 0;
            while at < end {
                let got = self
                    .bus
                    .read(&topic, p, at, 1000, Duration::from_secs(1))
                    .await
                    .unwrap();
                at = got.last().unwrap().offset + 1;
                out.extend(got.iter().map(|m| decode::<TrainingSet>(&m.value).unwrap()));
            }
        }
        out.sort_by_key(|e| (e.pipeline.clone(), e.trigger_id));
        out
    }

    /// Runs a supervisor on `bus` until `n` events are on the topic (then stops it), or
    /// until the bus trips (then kills it). Returns whether it was killed.
    async fn run(&self, bus: &Arc<FaultyBus>, config: &SupervisorConfig, n: usize) -> bool {
        let sup = Supervisor::new(
            Arc::clone(bus) as Arc<dyn Bus>,
            Arc::clone(&self.meta),
            Arc::clone(&self.blobs),
            self.config(config),
            SupervisorMetrics::new(&prometheus::Registry::new()),
        )
        .unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(sup.run(stop.clone()));
        let done = async {
            while self.events().await.len() < n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let killed = tokio::time::timeout(WAIT, async {
            tokio::select! {
                biased;
                () = bus.tripped.notified() => true,
                () = done => false,
            }
        })
        .await
        .expect("the supervisor made no progress");
        if killed {
            task.abort();
            let _ = task.await;
        } else {
            stop.cancel();
            task.await.unwrap().unwrap();
        }
        killed
    }
}

impl Fixture {
    /// The settings, in this fixture's group and for its tenant only.
    fn config(&self, cfg: &SupervisorConfig) -> SupervisorConfig {
        SupervisorConfig {
            group: self.group.clone(),
            tenants: vec![self.tenant.as_str().to_owned()],
            ..cfg.clone()
        }
    }

    /// Runs a supervisor until a pipeline's stored state satisfies `done`.
    async fn settle(
        &self,
        cfg: &SupervisorConfig,
        pipeline: &str,
        done: impl Fn(&flywheel_supervisor::state::PipelineState) -> bool,
    ) {
        let sup = Supervisor::new(
            Arc::clone(&self.bus),
            Arc::clone(&self.meta),
            Arc::clone(&self.blobs),
            self.config(cfg),
            SupervisorMetrics::new(&prometheus::Registry::new()),
        )
        .unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(sup.run(stop.clone()));
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some((b, _)) = self.store.pipeline_state(pipeline).await.unwrap() {
                    let s = flywheel_supervisor::state::PipelineState::parse(&b).unwrap();
                    if done(&s) {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the pipeline's state never got there");
        stop.cancel();
        task.await.unwrap().unwrap();
    }
}

fn config(checkpoint_every: Duration) -> SupervisorConfig {
    SupervisorConfig {
        rescan: Duration::from_millis(30),
        checkpoint_every,
        ..SupervisorConfig::default()
    }
}

fn document(name: &str, trigger: &str, selection: &str) -> String {
    format!(
        "name = \"{name}\"\ndataset = \"{DATASET}\"\nseed = 5\n[trigger]\n{trigger}\n[selection]\n{selection}\n[model]\nkind = \"linear\"\n"
    )
}

/// The fires a pure runner finds over the stored changesets, from `live_from` on.
async fn expected_fires(f: &Fixture, document: &str, live_from: i64) -> Vec<(i64, Vec<u64>)> {
    let p = Pipeline::parse(document).unwrap();
    let mut runner = Runner::new(&p);
    let head = f.store.dataset(DATASET).await.unwrap().unwrap().head;
    let mut out = Vec::new();
    for id in 1..=head {
        let c = f.store.changeset(DATASET, id).await.unwrap().unwrap();
        let input: Input = read_input(
            f.store.as_ref(),
            &f.blobs,
            &c,
            flywheel_supervisor::runner::needs_features(&p.trigger),
        )
        .await
        .unwrap();
        for fire in runner.fold(id, &input, id > live_from) {
            out.push((fire.changeset, fire.chosen.keys));
        }
    }
    out
}

/// The keys of a training set's manifest.
async fn manifest_keys(f: &Fixture, uri: &str) -> Vec<u64> {
    let bytes = f
        .blobs
        .get(&Path::from(uri))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let total = bytes.len() as u64;
    let len = footer_len(&bytes[bytes.len() - 16..], "m").unwrap();
    let footer = read_footer(&bytes[footer_start(total, len) as usize..], total, "m").unwrap();
    let mut keys = Vec::new();
    for (n, s) in footer.shards.iter().enumerate() {
        let chunk = &bytes[s.offset as usize..(s.offset + s.length) as usize];
        keys.extend(
            read_chunk(&footer, n, chunk, "m")
                .unwrap()
                .iter()
                .map(|e| e.key),
        );
    }
    keys.sort_unstable();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_become_prepared_training_sets() {
    triggers_become_prepared_training_sets_on(fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_become_prepared_training_sets_on_kafka() {
    if let Some(f) = kafka_fixture().await {
        triggers_become_prepared_training_sets_on(f).await;
    }
}

async fn triggers_become_prepared_training_sets_on(mut f: Fixture) {
    let doc = document(
        "every-30",
        "kind = \"data_amount\"\nsamples = 30",
        "policy = \"reservoir\"\nsize = 20",
    );
    f.submit(&doc, 1).await;
    for n in [40, 25, 0, 60, 15] {
        if n > 0 {
            f.add(n, 0.0).await;
        }
    }
    let expected = expected_fires(&f, &doc, 0).await;
    assert_eq!(expected.len(), 140 / 30);
    let bus = FaultyBus::new(Arc::clone(&f.bus), None, false);
    assert!(
        !f.run(&bus, &config(Duration::from_millis(1)), expected.len())
            .await
    );
    let events = f.events().await;
    assert_eq!(events.len(), expected.len());
    for (i, (e, (changeset, keys))) in events.iter().zip(&expected).enumerate() {
        assert_eq!(e.trigger_id, i as i64 + 1);
        assert_eq!(
            (e.pipeline.as_str(), e.dataset.as_str(), e.tenant.as_str()),
            ("every-30", DATASET, f.tenant.as_str())
        );
        assert_eq!(e.head_changeset, *changeset);
        assert_eq!(e.trigger_reason, "data_amount");
        assert_eq!(e.sample_count, keys.len() as i64);
        assert_eq!(&manifest_keys(&f, &e.manifest_uri).await, keys);
        let record = f.store.trainset(&e.version).await.unwrap().unwrap();
        assert_eq!(record.head_changeset, *changeset);
    }
    // the state says how far it got
    let (bytes, _) = f.store.pipeline_state("every-30").await.unwrap().unwrap();
    let state = flywheel_supervisor::state::PipelineState::parse(&bytes).unwrap();
    assert_eq!((state.emitted, state.pending.is_none()), (4, true));
    assert_eq!(state.checkpoint.unwrap().changeset, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelines_history_is_observed_not_emitted() {
    let mut f = fixture().await;
    f.add(50, 0.0).await;
    f.add(50, 0.0).await;
    let doc = document(
        "late",
        "kind = \"data_amount\"\nsamples = 20",
        "policy = \"new_data\"",
    );
    // submitted after changesets 1 and 2 were committed (at 1000 and 2000)
    f.submit(&doc, 2500).await;
    let bus = FaultyBus::new(Arc::clone(&f.bus), None, false);
    let cfg = config(Duration::from_millis(1));
    // nothing to emit: run until it has folded the history, checkpointed at changeset 2
    f.settle(&cfg, "late", |s| {
        s.checkpoint.as_ref().is_some_and(|c| c.changeset == 2)
    })
    .await;
    assert!(f.events().await.is_empty(), "history fires nothing");

    f.add(30, 0.0).await;
    let expected = expected_fires(&f, &doc, 2).await;
    assert_eq!(
        expected.len(),
        1,
        "100 samples of history, then 30: one trigger at 120"
    );
    // new_data: the first live trigger takes everything since the start
    assert_eq!(expected[0].1.len(), 120);
    assert!(!f.run(&bus, &cfg, 1).await);
    let events = f.events().await;
    assert_eq!(events[0].trigger_id, 1);
    assert_eq!(events[0].sample_count, 120);
}

/// One scenario: a pipeline over five changesets, five triggers.
async fn scenario() -> (Fixture, String) {
    let mut f = fixture().await;
    let doc = document(
        "crashy",
        "kind = \"data_amount\"\nsamples = 25",
        "policy = \"freshness\"\nsize = 30\nunused_ratio = 0.5",
    );
    f.submit(&doc, 1).await;
    for n in [30, 30, 10, 45, 20] {
        f.add(n, 0.0).await;
    }
    (f, doc)
}

fn summary(events: &[TrainingSet]) -> Vec<(i64, String, i64, i64)> {
    events
        .iter()
        .map(|e| {
            (
                e.trigger_id,
                e.version.clone(),
                e.sample_count,
                e.head_changeset,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_killed_at_any_bus_call_emits_every_trigger_once() {
    // the reference: a run that never dies, and how many bus calls it makes
    let (f, _) = scenario().await;
    let bus = FaultyBus::new(Arc::clone(&f.bus), None, false);
    assert!(!f.run(&bus, &config(Duration::from_millis(1)), 5).await);
    let reference = summary(&f.events().await);
    assert_eq!(reference.len(), 5);
    let calls = bus.calls.load(Ordering::SeqCst);
    assert!(calls >= 10, "two calls a trigger at least: {calls}");

    let mut kills = 0;
    for crash_at in 0..calls {
        for after in [false, true] {
            for checkpoint in [Duration::from_millis(1), Duration::from_secs(3600)] {
                let (f, _) = scenario().await;
                let cfg = config(checkpoint);
                let dying = FaultyBus::new(Arc::clone(&f.bus), Some(crash_at), after);
                if f.run(&dying, &cfg, 5).await {
                    kills += 1;
                }
                // a restarted supervisor finishes the work
                let healthy = FaultyBus::new(Arc::clone(&f.bus), None, false);
                assert!(!f.run(&healthy, &cfg, 5).await);
                let got = f.events().await;
                assert_eq!(
                    summary(&got),
                    reference,
                    "killed at bus call {crash_at} ({}), checkpoints every {checkpoint:?}",
                    if after { "after it" } else { "before it" }
                );
            }
        }
    }
    assert!(kills as u64 >= calls, "the kills happened: {kills}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_killed_many_times_while_data_arrives_emits_every_trigger_once() {
    killed_many_times_on(fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_killed_many_times_on_kafka_emits_every_trigger_once() {
    if let Some(f) = kafka_fixture().await {
        killed_many_times_on(f).await;
    }
}

async fn killed_many_times_on(mut f: Fixture) {
    let doc = document(
        "restless",
        "kind = \"data_amount\"\nsamples = 15",
        "policy = \"new_data\"\nlimit = 10\nlimit_by = \"uniform\"",
    );
    f.submit(&doc, 1).await;
    let cfg = config(Duration::from_millis(5));
    let mut kills = 0;
    for round in 0..12u64 {
        f.add(20 + (round as usize * 7) % 30, 0.0).await;
        let due = expected_fires(&f, &doc, 0).await.len();
        // die at a bus call that varies from round to round (or finish the round)
        let dying = FaultyBus::new(Arc::clone(&f.bus), Some(round % 5), round % 2 == 1);
        if f.run(&dying, &cfg, due).await {
            kills += 1;
        }
    }
    let expected = expected_fires(&f, &doc, 0).await;
    let healthy = FaultyBus::new(Arc::clone(&f.bus), None, false);
    assert!(!f.run(&healthy, &cfg, expected.len()).await);
    let events = f.events().await;
    let ids: Vec<i64> = events.iter().map(|e| e.trigger_id).collect();
    assert_eq!(
        ids,
        (1..=expected.len() as i64).collect::<Vec<_>>(),
        "each trigger once"
    );
    for (e, (changeset, keys)) in events.iter().zip(&expected) {
        assert_eq!(e.head_changeset, *changeset);
        assert_eq!(&manifest_keys(&f, &e.manifest_uri).await, keys);
    }
    assert!(kills >= 6, "the supervisor was killed {kills} times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_checkpoint_is_folded_again_from_the_start() {
    let (f, _) = scenario().await;
    let bus = FaultyBus::new(Arc::clone(&f.bus), None, false);
    let cfg = config(Duration::from_millis(1));
    assert!(!f.run(&bus, &cfg, 5).await);
    let reference = summary(&f.events().await);
    let (bytes, _) = f.store.pipeline_state("crashy").await.unwrap().unwrap();
    let state = flywheel_supervisor::state::PipelineState::parse(&bytes).unwrap();
    let path = Path::from(state.checkpoint.unwrap().path.as_str());
    f.blobs
        .put(&path, PutPayload::from(b"not a checkpoint".to_vec()))
        .await
        .unwrap();
    // more data: the restarted supervisor folds everything again, emits only what is new
    let mut f = f;
    f.add(25, 0.0).await;
    assert!(!f.run(&bus, &cfg, 6).await);
    let events = summary(&f.events().await);
    assert_eq!(&events[..5], &reference[..]);
    assert_eq!(events[5].0, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_pipeline_emits_nothing_and_a_resubmission_starts_over() {
    let (mut f, doc) = scenario().await;
    let bus = FaultyBus::new(Arc::clone(&f.bus), None, false);
    let cfg = config(Duration::from_millis(1));
    assert!(!f.run(&bus, &cfg, 5).await);
    let mut record = f.store.pipeline("crashy").await.unwrap().unwrap();
    record.status = PipelineStatus::Stopped;
    f.store.put_pipeline(record).await.unwrap();
    f.add(100, 0.0).await;
    // a stopped pipeline: a run that sees the new changeset emits nothing
    let sup = Supervisor::new(
        Arc::clone(&bus) as Arc<dyn Bus>,
        Arc::clone(&f.meta),
        Arc::clone(&f.blobs),
        cfg.clone(),
        SupervisorMetrics::new(&prometheus::Registry::new()),
    )
    .unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(sup.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(f.events().await.len(), 5);

    // resubmitted with another trigger: its history is everything so far; ids go on
    let doc2 = doc.replace("samples = 25", "samples = 40");
    // after changeset 6 was committed (at 6000)
    f.submit(&doc2, 6500).await;
    f.settle(&cfg, "crashy", |s| {
        s.submitted_at == 6500 && s.processed == 6
    })
    .await;
    f.add(50, 0.0).await;
    let expected = expected_fires(&f, &doc2, 6).await;
    assert_eq!(expected.len(), 2, "samples 240 and 280");
    assert!(!f.run(&bus, &cfg, 5 + expected.len()).await);
    let events = f.events().await;
    let ids: BTreeSet<i64> = events.iter().map(|e| e.trigger_id).collect();
    assert_eq!(ids, (1..=7).collect());
    for (e, (changeset, keys)) in events[5..].iter().zip(&expected) {
        assert_eq!(e.head_changeset, *changeset);
        assert_eq!(&manifest_keys(&f, &e.manifest_uri).await, keys);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_reads_features_from_the_segments() {
    let mut f = fixture().await;
    let doc = document(
        "drifty",
        "kind = \"drift\"\nmetric = \"ks\"\nwindow = 40\nevery = 10\ncriterion = { threshold = 0.6 }",
        "policy = \"new_data\"",
    );
    f.submit(&doc, 1).await;
    f.add(60, 0.0).await;
    f.add(60, 0.0).await;
    f.add(60, 10.0).await;
    let expected = expected_fires(&f, &doc, 0).await;
    assert!(!expected.is_empty(), "the shift fires");
    assert!(
        expected.iter().all(|(c, _)| *c == 3),
        "only the shifted changeset fires: {:?}",
        expected.iter().map(|e| e.0).collect::<Vec<_>>()
    );
    let bus = FaultyBus::new(Arc::clone(&f.bus), None, false);
    assert!(
        !f.run(&bus, &config(Duration::from_secs(60)), expected.len())
            .await
    );
    let events = f.events().await;
    assert_eq!(events.len(), expected.len());
    assert!(events.iter().all(|e| e.trigger_reason == "drift"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_triggers_follow_event_time_not_the_clock() {
    let mut f = fixture().await;
    f.step = 60_000_000; // a sample a minute of event time
    let doc = document(
        "hourly",
        "kind = \"time\"\nevery = \"1h\"",
        "policy = \"tail\"\ntriggers = 2",
    );
    f.submit(&doc, 1).await;
    // ten hours of event time arrive in well under a second
    for _ in 0..4 {
        f.add(150, 0.0).await;
    }
    let expected = expected_fires(&f, &doc, 0).await;
    assert_eq!(
        expected.len(),
        9,
        "600 minutes: a trigger at each of hours 1 to 9"
    );
    let started = std::time::Instant::now();
    let bus = FaultyBus::new(Arc::clone(&f.bus), None, false);
    assert!(
        !f.run(&bus, &config(Duration::from_secs(60)), expected.len())
            .await
    );
    let events = f.events().await;
    assert_eq!(events.len(), 9);
    for (e, (changeset, keys)) in events.iter().zip(&expected) {
        assert_eq!(
            (e.head_changeset, e.trigger_reason.as_str()),
            (*changeset, "time")
        );
        assert_eq!(&manifest_keys(&f, &e.manifest_uri).await, keys);
    }
    assert!(
        started.elapsed() < WAIT,
        "no wall-clock hour was waited for"
    );
}
