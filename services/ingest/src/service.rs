//! The ingest loop: poll samples of every tenant, validate, group per dataset into open
//! changesets, commit them with their offsets, publish Changeset events, commit the bus.
//!
//! Exactly once into the store, though the bus delivers at least once: a changeset is
//! committed together with the source offsets it covers (per dataset), and a message whose
//! offset is below its dataset's stored offset is a replay and skipped. The bus offset
//! committed for a partition never passes a message that is not yet in the store or the
//! dead-letter topic, so nothing is skipped either.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flywheel_schemas::{RejectReason, RejectedSample, decode_sample, encode, now_micros};
use flywheel_store::{
    ChangesetRecord, Dataset, MetaStore, StoreError, TenantStore, TopicPartition,
};
use flywheel_topics::catalogue::parse_topic;
use flywheel_topics::{
    Bus, BusError, Consumer, ConsumerConfig, Message, Record, Tenant, TopicKind,
};
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::build::{Pending, Target, build, ingest_consumer, sample_key};
use crate::{IngestConfig, IngestError, IngestMetrics};

/// Longest original message kept in a dead letter; longer ones are cut and say so.
const MAX_ORIGINAL: usize = 512 * 1024;
/// What a message may carry besides its payload (base64 grows a payload by a third):
/// features, labels, names. A larger message is refused without being parsed.
const ENVELOPE: u64 = 256 * 1024;
/// How long an idle poll waits.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Commits retried after another writer moved a dataset's head, before giving up.
const COMMIT_ATTEMPTS: u32 = 8;
/// Attempts of a store or bus call that failed on something transient.
const TRANSIENT_ATTEMPTS: u32 = 10;

/// The ingest service. [`Ingest::run`] until the token is cancelled.
#[derive(Debug)]
pub struct Ingest {
    bus: Arc<dyn Bus>,
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn ObjectStore>,
    config: IngestConfig,
    metrics: IngestMetrics,
}

impl Ingest {
    /// An ingest service on these backends, counting in `metrics` (families registered
    /// once per process: [`IngestMetrics::new`]).
    pub fn new(
        bus: Arc<dyn Bus>,
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn ObjectStore>,
        config: IngestConfig,
        metrics: IngestMetrics,
    ) -> Result<Self, IngestError> {
        config.validate()?;
        Ok(Self {
            bus,
            meta,
            blobs,
            config,
            metrics,
        })
    }

    /// Consumes the samples topics of every tenant until `stop` is cancelled, then commits
    /// what is open and returns. An error is returned only for what retrying cannot fix
    /// (the store refusing a changeset, a backend down for longer than the retries).
    pub async fn run(self, stop: CancellationToken) -> Result<(), IngestError> {
        self.republish_heads().await?;
        let consumer = self
            .bus
            .subscribe(ConsumerConfig::new(
                &self.config.group,
                self.config.subscription(),
            ))
            .await?;
        let mut run = Run {
            ingest: &self,
            consumer,
            tenants: HashMap::new(),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            assignment: Vec::new(),
        };
        let result = run.main_loop(&stop).await;
        if result.is_ok() {
            tracing::info!("ingest stopping: committing open changesets");
            run.close_all().await?;
            run.commit_bus().await?;
        }
        result
    }

    /// Announces every dataset's head changeset again. Changeset events are published
    /// after their commit; a crash in between loses at most the head's event, which this
    /// sends again (consumers take events at least once and deduplicate by dataset and id).
    async fn republish_heads(&self) -> Result<(), IngestError> {
        for tenant in retry_store(|| self.meta.tenants()).await? {
            if !self.config.tenants.is_empty()
                && !self.config.tenants.iter().any(|t| t == tenant.as_str())
            {
                continue;
            }
            let topic = TopicKind::Changesets.topic(&tenant);
            if self.bus.partitions(&topic).await.is_err() {
                continue; // a tenant without topics on this bus
            }
            let store = retry_store(|| self.meta.tenant(&tenant)).await?;
            for d in retry_store(|| store.datasets()).await? {
                if d.head == 0 {
                    continue;
                }
                if let Some(head) = retry_store(|| store.changeset(&d.name, d.head)).await? {
                    publish_changeset(self.bus.as_ref(), &tenant, &head).await?;
                }
            }
        }
        Ok(())
    }
}

/// One run of the loop and its state.
struct Run<'a> {
    ingest: &'a Ingest,
    consumer: Box<dyn Consumer>,
    tenants: HashMap<Tenant, TenantState>,
    /// Next offset after the last message polled, per partition.
    positions: BTreeMap<TopicPartition, i64>,
    /// What was last committed to the bus.
    committed: BTreeMap<TopicPartition, i64>,
    assignment: Vec<TopicPartition>,
}

/// A tenant's store handle, topics, datasets and pending dead letters.
struct TenantState {
    tenant: Tenant,
    store: Arc<dyn TenantStore>,
    samples_topic: String,
    datasets: HashMap<String, DatasetState>,
    rejects: Vec<Record>,
}

/// What ingest knows about a dataset, and its open changeset.
#[derive(Default)]
struct DatasetState {
    /// Whether the store has it.
    exists: bool,
    /// Its head changeset, as last seen.
    head: i64,
    /// Next offset per source partition that the store already holds.
    stored: BTreeMap<i32, i64>,
    /// Must be read again from the store before its next sample (partitions moved).
    stale: bool,
    /// The open changeset: samples in source order.
    open: Vec<Pending>,
    open_bytes: u64,
    opened_at: Option<Instant>,
    /// The changeset being committed, if any.
    in_flight: Option<InFlight>,
}

/// A changeset handed to its commit task; aborted if the service is dropped.
struct InFlight {
    handle: AbortOnDropHandle<Result<Committed, IngestError>>,
    /// First and last source offset per partition of its samples.
    first: BTreeMap<i32, i64>,
    last: BTreeMap<i32, i64>,
}

impl DatasetState {
    async fn load(store: &dyn TenantStore, topic: &str, name: &str) -> Result<Self, IngestError> {
        let mut d = DatasetState::default();
        d.refresh(store, topic, name).await?;
        Ok(d)
    }

    /// Reads head and stored offsets again; drops open samples the store has by now.
    async fn refresh(
        &mut self,
        store: &dyn TenantStore,
        topic: &str,
        name: &str,
    ) -> Result<(), IngestError> {
        let (dataset, stored) = stored_state(store, topic, name).await?;
        self.exists = dataset.is_some();
        self.head = dataset.map_or(0, |d| d.head);
        self.stored = stored;
        self.stale = false;
        let stored = &self.stored;
        self.open
            .retain(|p| p.offset >= stored.get(&p.partition).copied().unwrap_or(0));
        self.open_bytes = self.open.iter().map(Pending::stored_len).sum();
        if self.open.is_empty() {
            self.opened_at = None;
        }
        Ok(())
    }

    /// Whether the store, the changeset in flight or the open one already has this
    /// source position.
    fn has(&self, partition: i32, offset: i64) -> bool {
        offset < self.stored.get(&partition).copied().unwrap_or(0)
            || self
                .in_flight
                .as_ref()
                .and_then(|f| f.last.get(&partition))
                .is_some_and(|last| offset <= *last)
            || self
                .open
                .iter()
                .rev()
                .find(|p| p.partition == partition)
                .is_some_and(|p| offset <= p.offset)
    }

    /// The first offset per partition not yet stored: of the changeset in flight, else of
    /// the open one.
    fn open_from(&self) -> BTreeMap<i32, i64> {
        let mut first = BTreeMap::new();
        if let Some(f) = &self.in_flight {
            first.extend(f.first.iter().map(|(p, o)| (*p, *o)));
        }
        for p in &self.open {
            first.entry(p.partition).or_insert(p.offset);
        }
        first
    }
}

impl Run<'_> {
    async fn main_loop(&mut self, stop: &CancellationToken) -> Result<(), IngestError> {
        let config = &self.ingest.config;
        loop {
            let wait = self
                .next_deadline()
                .map_or(IDLE_POLL, |d| d.saturating_duration_since(Instant::now()))
                .min(IDLE_POLL);
            let messages = tokio::select! {
                biased;
                () = stop.cancelled() => return Ok(()),
                r = self.consumer.poll(config.poll_messages, wait) => r?,
            };
            self.check_assignment();
            for m in &messages {
                self.handle(m).await?;
                let tp = TopicPartition::new(&m.topic, m.partition);
                let next = self.positions.entry(tp).or_insert(m.offset + 1);
                *next = (*next).max(m.offset + 1);
            }
            self.send_rejects().await?;
            self.close_due().await?;
            self.reap().await?;
            self.commit_bus().await?;
        }
    }

    /// After a rebalance, offsets other members stored may be newer than ours.
    fn check_assignment(&mut self) {
        let mut now = self.consumer.assignment();
        now.sort();
        if now == self.assignment {
            return;
        }
        tracing::info!(partitions = now.len(), "ingest assignment changed");
        self.positions.retain(|tp, _| now.contains(tp));
        self.committed.retain(|tp, _| now.contains(tp));
        for t in self.tenants.values_mut() {
            for d in t.datasets.values_mut() {
                d.stale = true;
            }
        }
        self.assignment = now;
    }

    async fn tenant(&mut self, tenant: &Tenant) -> Result<&mut TenantState, IngestError> {
        if !self.tenants.contains_key(tenant) {
            let meta = &self.ingest.meta;
            let store = retry_store(|| meta.tenant(tenant)).await?;
            self.tenants.insert(
                tenant.clone(),
                TenantState {
                    tenant: tenant.clone(),
                    store,
                    samples_topic: TopicKind::Samples.topic(tenant),
                    datasets: HashMap::new(),
                    rejects: Vec::new(),
                },
            );
        }
        Ok(self.tenants.get_mut(tenant).expect("inserted above"))
    }

    /// Validates one message and adds it to its dataset's open changeset, or refuses it.
    async fn handle(&mut self, m: &Message) -> Result<(), IngestError> {
        let Some((tenant, TopicKind::Samples)) = parse_topic(&m.topic) else {
            // the subscription pattern only matches samples topics
            tracing::warn!(topic = %m.topic, "ingest got a message of another topic; ignored");
            return Ok(());
        };
        let config = &self.ingest.config;
        let metrics = &self.ingest.metrics;
        let t = self.tenant(&tenant).await?;
        let reject = |t: &mut TenantState, dataset: Option<&str>, reason, detail: String| {
            metrics
                .dead_letters
                .with_label_values(&[t.tenant.as_str(), RejectReason::as_str(reason)])
                .inc();
            t.rejects
                .push(dead_letter(&t.tenant, m, dataset, reason, detail));
            Ok(())
        };

        let raw_limit = config.max_payload_bytes.saturating_mul(4) / 3 + ENVELOPE;
        if m.value.len() as u64 > raw_limit {
            let detail = format!(
                "message of {} bytes is larger than any sample within the payload limit of {} bytes can be",
                m.value.len(),
                config.max_payload_bytes
            );
            return reject(t, None, RejectReason::PayloadTooLarge, detail);
        }
        let sample = match decode_sample(&m.value) {
            Ok(s) => s,
            Err(e) => return reject(t, None, e.reason, e.detail),
        };
        let payload = sample.payload.as_ref().map_or(0, Vec::len) as u64;
        if payload > config.max_payload_bytes {
            let detail = format!(
                "payload of {payload} bytes is over the limit of {} bytes (ingest.max_payload_bytes)",
                config.max_payload_bytes
            );
            return reject(
                t,
                Some(&sample.dataset),
                RejectReason::PayloadTooLarge,
                detail,
            );
        }
        let Some(key) = sample_key(m.partition, m.offset) else {
            return Err(IngestError::KeySpace {
                topic: m.topic.clone(),
                partition: m.partition,
                offset: m.offset,
            });
        };

        if !t.datasets.contains_key(&sample.dataset) {
            let d = DatasetState::load(t.store.as_ref(), &t.samples_topic, &sample.dataset).await?;
            t.datasets.insert(sample.dataset.clone(), d);
        }
        let d = t.datasets.get_mut(&sample.dataset).expect("inserted above");
        if d.stale {
            d.refresh(t.store.as_ref(), &t.samples_topic, &sample.dataset)
                .await?;
        }
        if !d.exists && !config.auto_create_datasets {
            // looked up again: the dataset may have been created since
            d.refresh(t.store.as_ref(), &t.samples_topic, &sample.dataset)
                .await?;
            if !d.exists {
                let detail = format!(
                    "dataset {:?} does not exist and ingest.auto_create_datasets is off",
                    sample.dataset
                );
                let dataset = sample.dataset;
                return reject(t, Some(&dataset), RejectReason::UnknownDataset, detail);
            }
        }
        if d.has(m.partition, m.offset) {
            metrics.replayed.with_label_values(&[tenant.as_str()]).inc();
            return Ok(());
        }
        let pending = Pending {
            partition: m.partition,
            offset: m.offset,
            key,
            sample,
        };
        d.open_bytes += pending.stored_len();
        d.opened_at.get_or_insert_with(Instant::now);
        d.open.push(pending);
        metrics
            .open_samples
            .with_label_values(&[tenant.as_str()])
            .inc();
        let full =
            d.open.len() >= config.changeset_samples || d.open_bytes >= config.changeset_bytes;
        if full {
            let dataset = d.open[0].sample.dataset.clone();
            self.close(&tenant, &dataset).await?;
        }
        Ok(())
    }

    /// The datasets (with their tenants) whose state matches.
    fn datasets_where(&self, matches: impl Fn(&DatasetState) -> bool) -> Vec<(Tenant, String)> {
        self.tenants
            .values()
            .flat_map(|t| {
                t.datasets
                    .iter()
                    .filter(|(_, d)| matches(d))
                    .map(|(name, _)| (t.tenant.clone(), name.clone()))
            })
            .collect()
    }

    /// When the oldest open changeset is due by age.
    fn next_deadline(&self) -> Option<Instant> {
        let age = self.ingest.config.changeset_age;
        self.tenants
            .values()
            .flat_map(|t| t.datasets.values())
            .filter_map(|d| d.opened_at.map(|at| at + age))
            .min()
    }

    /// Commits the open changesets that are due by age.
    async fn close_due(&mut self) -> Result<(), IngestError> {
        let age = self.ingest.config.changeset_age;
        let now = Instant::now();
        let due = self.datasets_where(|d| d.opened_at.is_some_and(|at| at + age <= now));
        for (tenant, dataset) in due {
            self.close(&tenant, &dataset).await?;
        }
        Ok(())
    }

    /// Commits every open changeset (on stop).
    async fn close_all(&mut self) -> Result<(), IngestError> {
        let open = self.datasets_where(|d| !d.open.is_empty());
        for (tenant, dataset) in open {
            self.close(&tenant, &dataset).await?;
        }
        let in_flight = self.datasets_where(|d| d.in_flight.is_some());
        for (tenant, dataset) in in_flight {
            self.finish(&tenant, &dataset).await?;
        }
        self.send_rejects().await
    }

    /// Hands a dataset's open changeset to a commit task (segments, then the commit with
    /// its offsets, then the Changeset event), after the dataset's previous commit has
    /// finished: commits of a dataset go one after another, while reading goes on.
    async fn close(&mut self, tenant: &Tenant, dataset: &str) -> Result<(), IngestError> {
        self.finish(tenant, dataset).await?;
        let ingest = self.ingest;
        let t = self
            .tenants
            .get_mut(tenant)
            .expect("a tenant with open samples");
        let d = t
            .datasets
            .get_mut(dataset)
            .expect("a dataset with open samples");
        if d.open.is_empty() {
            return Ok(());
        }
        let samples = std::mem::take(&mut d.open);
        d.open_bytes = 0;
        d.opened_at = None;
        let (mut first, mut last) = (BTreeMap::new(), BTreeMap::new());
        for p in &samples {
            first.entry(p.partition).or_insert(p.offset);
            last.insert(p.partition, p.offset);
        }
        let task = CommitTask {
            store: Arc::clone(&t.store),
            blobs: Arc::clone(&ingest.blobs),
            bus: Arc::clone(&ingest.bus),
            metrics: ingest.metrics.clone(),
            tenant: tenant.clone(),
            topic: t.samples_topic.clone(),
            dataset: dataset.to_owned(),
            segment_bytes: ingest.config.segment_bytes,
        };
        let head = d.head;
        d.in_flight = Some(InFlight {
            handle: AbortOnDropHandle::new(tokio::spawn(task.run(head, samples))),
            first,
            last,
        });
        Ok(())
    }

    /// Waits for the dataset's commit in flight, if any, and takes in what it did.
    async fn finish(&mut self, tenant: &Tenant, dataset: &str) -> Result<(), IngestError> {
        let Some(d) = self
            .tenants
            .get_mut(tenant)
            .and_then(|t| t.datasets.get_mut(dataset))
        else {
            return Ok(());
        };
        let Some(in_flight) = d.in_flight.take() else {
            return Ok(());
        };
        let committed = in_flight
            .handle
            .await
            .map_err(|e| IngestError::Task(e.to_string()))??;
        d.exists = true;
        d.head = d.head.max(committed.head);
        for (partition, next) in committed.stored {
            let e = d.stored.entry(partition).or_insert(next);
            *e = (*e).max(next);
        }
        let stored = &d.stored;
        d.open
            .retain(|p| p.offset >= stored.get(&p.partition).copied().unwrap_or(0));
        Ok(())
    }

    /// Takes in the commits that finished meanwhile.
    async fn reap(&mut self) -> Result<(), IngestError> {
        let done =
            self.datasets_where(|d| d.in_flight.as_ref().is_some_and(|f| f.handle.is_finished()));
        for (tenant, dataset) in done {
            self.finish(&tenant, &dataset).await?;
        }
        Ok(())
    }

    /// Produces the pending dead letters of every tenant.
    async fn send_rejects(&mut self) -> Result<(), IngestError> {
        for t in self.tenants.values_mut() {
            if t.rejects.is_empty() {
                continue;
            }
            let topic = TopicKind::SamplesRejected.topic(&t.tenant);
            let records = std::mem::take(&mut t.rejects);
            retry_bus(&topic, || self.ingest.bus.produce(&topic, records.clone())).await?;
        }
        Ok(())
    }

    /// Commits, per partition, the offset before which everything is stored or refused:
    /// the position after the last message polled, held back to the first sample of any
    /// open changeset of that partition.
    async fn commit_bus(&mut self) -> Result<(), IngestError> {
        let mut target = self.positions.clone();
        for t in self.tenants.values() {
            for d in t.datasets.values() {
                for (partition, first) in d.open_from() {
                    let tp = TopicPartition::new(&t.samples_topic, partition);
                    if let Some(next) = target.get_mut(&tp) {
                        *next = (*next).min(first);
                    }
                }
            }
        }
        let changed: Vec<(TopicPartition, i64)> = target
            .into_iter()
            .filter(|(tp, next)| self.committed.get(tp) != Some(next))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        match self.consumer.commit(&changed).await {
            Ok(()) => {
                self.committed.extend(changed);
                Ok(())
            }
            // e.g. a rebalance under way: the next round commits again
            Err(e) if e.is_retriable() => {
                tracing::info!("committing ingest offsets: {e}; trying again later");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A dataset as the store has it, and the next source offset per partition of `topic` it
/// holds (what ingest stored with its changesets).
async fn stored_state(
    store: &dyn TenantStore,
    topic: &str,
    dataset: &str,
) -> Result<(Option<Dataset>, BTreeMap<i32, i64>), IngestError> {
    let d = retry_store(|| store.dataset(dataset)).await?;
    let consumer = ingest_consumer(dataset);
    let offsets = retry_store(|| store.consumer_offsets(&consumer)).await?;
    let stored = offsets
        .into_iter()
        .filter(|(tp, _)| tp.topic == topic)
        .map(|(tp, next)| (tp.partition, next))
        .collect();
    Ok((d, stored))
}

/// A changeset's commit, run as a task of its own.
struct CommitTask {
    store: Arc<dyn TenantStore>,
    blobs: Arc<dyn ObjectStore>,
    bus: Arc<dyn Bus>,
    metrics: IngestMetrics,
    tenant: Tenant,
    topic: String,
    dataset: String,
    segment_bytes: u64,
}

/// What a commit task did: the dataset's head after it, and the stored offsets it knows.
struct Committed {
    head: i64,
    stored: BTreeMap<i32, i64>,
}

impl CommitTask {
    /// Writes the segments, commits the changeset as `head + 1` with its offsets and
    /// publishes its event. If another writer moved the head meanwhile (an edit through the
    /// gateway, another member before a rebalance), reads the dataset again, drops what the
    /// store already has and commits the rest under the next id.
    async fn run(self, mut head: i64, mut samples: Vec<Pending>) -> Result<Committed, IngestError> {
        let started = Instant::now();
        let handed = samples.len();
        let labels = [self.tenant.as_str()];
        let mut stored = BTreeMap::new();
        for attempt in 1..=COMMIT_ATTEMPTS {
            if samples.is_empty() {
                break;
            }
            let built = build(
                &Target {
                    tenant: &self.tenant,
                    topic: &self.topic,
                    dataset: &self.dataset,
                    id: head + 1,
                    created_at: now_micros(),
                    segment_bytes: self.segment_bytes,
                },
                &samples,
            );
            for (path, bytes) in &built.segments {
                let payload = PutPayload::from_bytes(bytes.clone());
                retry_blobs(path.as_ref(), || self.blobs.put(path, payload.clone())).await?;
            }
            let changeset = built.changeset;
            let record = changeset.record.clone();
            let offsets = changeset.offsets.clone();
            match retry_store(|| self.store.commit_changeset(changeset.clone())).await {
                Ok(outcome) => {
                    head = outcome.dataset().head;
                    stored.extend(offsets.into_iter().map(|(tp, next)| (tp.partition, next)));
                    self.metrics.changesets.with_label_values(&labels).inc();
                    self.metrics
                        .samples
                        .with_label_values(&labels)
                        .inc_by(samples.len() as u64);
                    self.metrics
                        .bytes
                        .with_label_values(&labels)
                        .inc_by(u64::try_from(record.bytes).unwrap_or(0));
                    samples.clear();
                    publish_changeset(self.bus.as_ref(), &self.tenant, &record).await?;
                }
                Err(StoreError::Conflict { .. } | StoreError::Gap { .. })
                    if attempt < COMMIT_ATTEMPTS =>
                {
                    tracing::info!(
                        tenant = %self.tenant, dataset = self.dataset, id = record.id,
                        "the dataset moved on meanwhile; reading it again"
                    );
                    self.metrics.commit_retries.with_label_values(&labels).inc();
                    let (now, now_stored) =
                        stored_state(self.store.as_ref(), &self.topic, &self.dataset).await?;
                    head = now.map_or(0, |d| d.head);
                    stored.extend(now_stored);
                    samples.retain(|p| p.offset >= stored.get(&p.partition).copied().unwrap_or(0));
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !samples.is_empty() {
            return Err(IngestError::Contended {
                dataset: self.dataset,
                attempts: COMMIT_ATTEMPTS,
            });
        }
        self.metrics
            .open_samples
            .with_label_values(&labels)
            .sub(i64::try_from(handed).unwrap_or(0));
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(Committed { head, stored })
    }
}

/// The dead letter of a refused message: its original bytes (cut at 512 KiB) and reason.
fn dead_letter(
    tenant: &Tenant,
    m: &Message,
    dataset: Option<&str>,
    reason: RejectReason,
    mut detail: String,
) -> Record {
    let original = if m.value.len() > MAX_ORIGINAL {
        detail.push_str(&format!(
            " (original cut to its first {MAX_ORIGINAL} of {} bytes)",
            m.value.len()
        ));
        m.value[..MAX_ORIGINAL].to_vec()
    } else {
        m.value.to_vec()
    };
    let event = RejectedSample {
        tenant: tenant.as_str().to_owned(),
        source_topic: m.topic.clone(),
        source_partition: m.partition,
        source_offset: m.offset,
        reason: reason.as_str().to_owned(),
        detail,
        original,
        rejected_at: now_micros(),
    };
    let value = encode(&event);
    match dataset {
        Some(d) => Record::keyed(d.as_bytes(), value),
        None => Record::unkeyed(value),
    }
}

/// Publishes a changeset's event on its tenant's changesets topic, keyed by dataset.
pub(crate) async fn publish_changeset(
    bus: &dyn Bus,
    tenant: &Tenant,
    record: &ChangesetRecord,
) -> Result<(), IngestError> {
    let topic = TopicKind::Changesets.topic(tenant);
    let value = encode(&record.to_event(tenant));
    let records = vec![Record::keyed(record.dataset.as_bytes(), value)];
    retry_bus(&topic, || bus.produce(&topic, records.clone())).await?;
    Ok(())
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50 << attempt.min(6)).min(Duration::from_secs(3))
}

/// Retries a store call while it fails on something transient (unreachable, locked).
async fn retry_store<T, F, Fut>(mut call: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if e.is_retriable() && attempt + 1 < TRANSIENT_ATTEMPTS => {
                attempt += 1;
                tracing::warn!("metadata store: {e}; retrying");
                tokio::time::sleep(backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

/// Retries a produce while the bus is unreachable or times out.
async fn retry_bus<T, F, Fut>(topic: &str, mut call: F) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if e.is_retriable() && attempt + 1 < TRANSIENT_ATTEMPTS => {
                attempt += 1;
                tracing::warn!(topic, "bus: {e}; retrying");
                tokio::time::sleep(backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

/// Retries a blob write a few times (object_store retries HTTP itself; this covers the
/// rest, e.g. a full disk being cleared).
async fn retry_blobs<T, F, Fut>(path: &str, mut call: F) -> Result<T, IngestError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, object_store::Error>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt + 1 < TRANSIENT_ATTEMPTS => {
                attempt += 1;
                tracing::warn!(path, "blob store: {e}; retrying");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(source) => {
                return Err(IngestError::Blob {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
}
