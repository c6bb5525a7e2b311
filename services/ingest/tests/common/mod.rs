//! A stack for ingest tests: a bus (embedded, or Kafka when `FLYWHEEL_TEST_KAFKA` is set),
//! SQLite metadata and file blobs in a temporary directory, and a tenant of its own.
#![allow(dead_code, unreachable_pub)]

/// Runs each case, an `async fn(Fixture)`, on the embedded bus and on Kafka (skipped with a
/// printed reason when `FLYWHEEL_TEST_KAFKA` is not set).
macro_rules! on_every_bus {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let f = super::common::bus::embedded().await.expect("embedded bus");
                    super::$case(f).await;
                }
            )*
        }
        mod kafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(f) = super::common::bus::kafka().await else { return };
                    super::$case(f).await;
                }
            )*
        }
    };
}

#[path = "../../../../topics/tests/common/mod.rs"]
pub mod bus;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flywheel_ingest::{Ingest, IngestConfig, IngestError, IngestMetrics};
use flywheel_schemas::{Sample, encode, read_body};
use flywheel_store::blobs::open_blobs;
use flywheel_store::{IndexRow, MetaStore, SampleLocation, TenantStore};
use flywheel_topics::{Ack, Bus, Record, Tenant, TopicKind, tenant_topics};
use object_store::{ObjectStore, ObjectStoreExt as _, path::Path as ObjectPath};
use prometheus::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use bus::{Fixture, unique};

pub struct Stack {
    pub bus: Arc<dyn Bus>,
    pub meta: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn ObjectStore>,
    pub registry: Registry,
    pub metrics: IngestMetrics,
    pub tenant: Tenant,
    pub kind: &'static str,
    bus_fixture: Fixture,
    _dir: tempfile::TempDir,
}

impl Stack {
    pub async fn new(bus: Fixture) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = flywheel_store::open(&format!(
            "sqlite://{}",
            dir.path().join("meta.db").display()
        ))
        .await
        .expect("open sqlite");
        let blobs = open_blobs(&format!("file://{}", dir.path().join("blobs").display()))
            .expect("open blobs");
        let tenant = Tenant::new(&unique("t")).expect("tenant");
        bus.bus
            .create_topics(&tenant_topics(&tenant))
            .await
            .expect("create topics");
        let registry = Registry::new();
        Self {
            bus: Arc::clone(&bus.bus),
            meta,
            blobs,
            metrics: IngestMetrics::new(&registry),
            registry,
            tenant,
            kind: bus.kind,
            bus_fixture: bus,
            _dir: dir,
        }
    }

    /// Messages of the tenant's samples topic delivered to consumers so far.
    pub fn samples_consumed(&self) -> u64 {
        let topic = self.topic(TopicKind::Samples);
        self.bus_fixture
            .registry
            .gather()
            .iter()
            .filter(|f| f.name() == "flywheel_bus_consumed_messages_total")
            .flat_map(|f| f.get_metric())
            .filter(|m| m.get_label().iter().any(|l| l.value() == topic))
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    pub fn config(&self) -> IngestConfig {
        IngestConfig {
            group: unique("ingest"),
            tenants: vec![self.tenant.as_str().to_owned()],
            changeset_age: Duration::from_millis(100),
            ..IngestConfig::default()
        }
    }

    /// Starts ingest as a task.
    pub fn spawn(&self, config: IngestConfig) -> Running {
        let ingest = Ingest::new(
            Arc::clone(&self.bus),
            Arc::clone(&self.meta),
            Arc::clone(&self.blobs),
            config,
            self.metrics.clone(),
        )
        .expect("valid config");
        let stop = CancellationToken::new();
        let task = tokio::spawn(ingest.run(stop.clone()));
        Running { task, stop }
    }

    pub async fn store(&self) -> Arc<dyn TenantStore> {
        self.meta.tenant(&self.tenant).await.expect("tenant store")
    }

    pub fn topic(&self, kind: TopicKind) -> String {
        kind.topic(&self.tenant)
    }

    /// Produces samples (Avro) keyed by dataset, as collectors do.
    pub async fn produce(&self, samples: &[Sample]) -> Vec<Ack> {
        let records = samples
            .iter()
            .map(|s| Record::keyed(s.dataset.as_bytes(), encode(s)))
            .collect();
        self.produce_raw(records).await
    }

    pub async fn produce_raw(&self, records: Vec<Record>) -> Vec<Ack> {
        self.bus
            .produce(&self.topic(TopicKind::Samples), records)
            .await
            .expect("produce samples")
    }

    /// Waits until the dataset's view holds `n` samples.
    pub async fn wait_for(&self, dataset: &str, n: i64, within: Duration) {
        let store = self.store().await;
        let deadline = Instant::now() + within;
        loop {
            let have = store
                .dataset(dataset)
                .await
                .expect("read dataset")
                .map_or(0, |d| d.samples);
            if have >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: dataset {dataset} has {have} of {n} samples after {within:?}",
                self.kind
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first `n` messages of one of the tenant's topics, read by a group of its own.
    pub async fn read_topic(&self, kind: TopicKind, n: usize) -> Vec<flywheel_topics::Message> {
        let mut consumer = self
            .bus
            .subscribe(flywheel_topics::ConsumerConfig::new(
                unique("reader"),
                flywheel_topics::Subscription::topic(self.topic(kind)),
            ))
            .await
            .expect("subscribe");
        bus::collect(consumer.as_mut(), n, Duration::from_secs(60)).await
    }

    /// Every row every changeset of the dataset added, by changeset (duplicates kept).
    pub async fn all_rows(&self, dataset: &str) -> Vec<IndexRow> {
        let store = self.store().await;
        let mut rows = Vec::new();
        for c in store.changesets(dataset).await.expect("changesets") {
            rows.extend(
                store
                    .rows_by_changeset(dataset, c.id)
                    .await
                    .expect("rows by changeset"),
            );
        }
        rows
    }

    /// The stored features and payload of a row.
    pub async fn read_stored(&self, row: &IndexRow) -> (Vec<f64>, Option<Vec<u8>>, Option<String>) {
        match &row.location {
            SampleLocation::Blob { uri } => (Vec::new(), None, Some(uri.clone())),
            SampleLocation::Segment {
                uri,
                offset,
                length,
            } => {
                let bytes = self
                    .blobs
                    .get_range(&ObjectPath::from(uri.as_str()), *offset..*offset + *length)
                    .await
                    .expect("read segment range");
                let body = read_body(&bytes).expect("stored body");
                let (payload, blob) = match body.content {
                    flywheel_schemas::BodyContent::None => (None, None),
                    flywheel_schemas::BodyContent::Payload(p) => (Some(p.to_vec()), None),
                    flywheel_schemas::BodyContent::Blob(u) => (None, Some(u.to_owned())),
                };
                (body.features, payload, blob)
            }
        }
    }
}

pub struct Running {
    pub task: JoinHandle<Result<(), IngestError>>,
    pub stop: CancellationToken,
}

impl Running {
    /// Stops it cleanly and returns its result.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task
            .await
            .expect("ingest task")
            .expect("ingest ran without error");
    }

    /// Aborts it wherever it is, like a crash.
    pub async fn abort(self) {
        self.task.abort();
        match self.task.await {
            Err(e) if e.is_cancelled() => {}
            Err(e) => panic!("ingest task panicked: {e}"),
            Ok(r) => panic!("ingest returned before it was aborted: {r:?}"),
        }
    }
}

/// A sample of `dataset` whose features identify it: `[i, ...]`.
pub fn sample(dataset: &str, i: u64) -> Sample {
    Sample {
        dataset: dataset.into(),
        features: vec![i as f64, (i % 7) as f64 * 0.5],
        payload: i
            .is_multiple_of(3)
            .then(|| format!("payload-{i}").into_bytes()),
        blob: None,
        label: Some(format!("{}", i % 2)),
        event_time: 1_795_255_200_000_000 + i as i64 * 1_000,
        producer: Some("test".into()),
    }
}

/// Count of each identifying feature among rows (from their stored bodies; rows without
/// features are left out).
pub async fn identities(stack: &Stack, rows: &[IndexRow]) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for row in rows {
        let (features, ..) = stack.read_stored(row).await;
        if let Some(first) = features.first() {
            *seen.entry(*first as u64).or_insert(0) += 1;
        }
    }
    seen
}
