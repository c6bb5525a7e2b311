//! The supervisor loop: find the pipelines this member runs, fold their datasets'
//! changesets, emit each trigger exactly once, checkpoint.
//!
//! Exactly once, across crashes:
//! - The fold is a pure function of the pipeline's policies and the changesets, restarted
//!   from the last checkpoint; a trigger's id is its number in the fold, so a restarted
//!   supervisor meets the same triggers with the same ids and choices again, and skips the
//!   ids already emitted (`emitted`, in the pipeline's stored state).
//! - Preparing a training set is idempotent (same choice, same version).
//! - Before an event is published it is stored as `pending`, with the end offset of its
//!   partition; after, `emitted` moves to its id. A supervisor that finds a pending event
//!   reads the partition from that offset: if the event is there it is not sent again.
//! - A checkpoint is written only when every trigger folded so far is emitted, so a
//!   restart from it never skips a trigger.
//!
//! Each write of the state is a compare-and-set: a supervisor that finds the state changed
//! under it (another member took the pipeline) drops the pipeline.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flywheel_core::pipeline::Pipeline;
use flywheel_schemas::{Changeset, TrainingSet, decode, encode, now_micros};
use flywheel_store::{MetaStore, PipelineRecord, PipelineStatus, StoreError, TenantStore};
use flywheel_topics::catalogue::parse_topic;
use flywheel_topics::{
    Bus, ConsumerConfig, Record, Subscription, Tenant, TopicKind, offsets_after, partition_for_key,
};
use flywheel_trainset::{QueryRequest, Selection, prepare, put_key_list};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use tokio_util::sync::CancellationToken;

use crate::runner::{
    Fire, Runner, needs_features, policies_fingerprint, selection_kind, trigger_kind,
};
use crate::state::{CheckpointRef, LastTrigger, Pending, PipelineState};
use crate::{SupervisorConfig, SupervisorError, SupervisorMetrics, read_input};

/// How long a poll of the topics waits.
const POLL: Duration = Duration::from_millis(200);
/// Messages taken per poll.
const POLL_MESSAGES: usize = 512;
/// Records read at once while looking for a pending event.
const READ_BATCH: usize = 256;
/// Longest wait before a failed pipeline is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

type PipelineKey = (Tenant, String);

/// The supervisor service. [`Supervisor::run`] until the token is cancelled.
#[derive(Debug)]
pub struct Supervisor {
    bus: Arc<dyn Bus>,
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn ObjectStore>,
    config: SupervisorConfig,
    metrics: SupervisorMetrics,
}

/// A pipeline running here.
struct Live {
    tenant: Tenant,
    store: Arc<dyn TenantStore>,
    name: String,
    /// The submission (`submitted_at`) it runs.
    submitted_at: i64,
    pipeline: Pipeline,
    policies: String,
    features: bool,
    runner: Runner,
    state: PipelineState,
    /// The stored state's version (for compare-and-set).
    version: Option<u64>,
    /// Triggers folded but not emitted yet (after an error), in order.
    queue: VecDeque<(u64, Fire, i64)>,
    checkpointed: Instant,
    failures: u32,
    retry_at: Option<Instant>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("changeset", &self.runner.changeset())
            .finish_non_exhaustive()
    }
}

/// The subscription: every tenant's pipelines and changesets topics.
fn subscription() -> Subscription {
    let inner = |k: TopicKind| {
        let p = k.pattern();
        p.trim_start_matches('^').trim_end_matches('$').to_owned()
    };
    Subscription::Pattern(format!(
        "^({}|{})$",
        inner(TopicKind::Pipelines),
        inner(TopicKind::Changesets)
    ))
}

impl Supervisor {
    /// A supervisor on these backends, counting in `metrics`.
    pub fn new(
        bus: Arc<dyn Bus>,
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn ObjectStore>,
        config: SupervisorConfig,
        metrics: SupervisorMetrics,
    ) -> Result<Self, SupervisorError> {
        config.validate()?;
        Ok(Self {
            bus,
            meta,
            blobs,
            config,
            metrics,
        })
    }

    /// Runs the pipelines of the tenants this member is assigned until `stop` is
    /// cancelled, then checkpoints them and returns. Failures of one pipeline are logged,
    /// counted and retried with a backoff; only a failure to subscribe is returned.
    pub async fn run(self, stop: CancellationToken) -> Result<(), SupervisorError> {
        let mut consumer = self
            .bus
            .subscribe(ConsumerConfig::new(&self.config.group, subscription()))
            .await?;
        let mut live: BTreeMap<PipelineKey, Live> = BTreeMap::new();
        // submissions that cannot run (their document no longer parses): not retried
        let mut broken: HashSet<(PipelineKey, i64)> = HashSet::new();
        let mut owned: BTreeSet<Tenant> = BTreeSet::new();
        let mut rescan_at = Instant::now();
        while !stop.is_cancelled() {
            let messages = tokio::select! {
                () = stop.cancelled() => break,
                r = consumer.poll(POLL_MESSAGES, POLL) => match r {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!("supervisor: polling the topics: {e}");
                        self.metrics.errors.with_label_values(&["", "poll"]).inc();
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                },
            };
            let mut reload: BTreeSet<Tenant> = BTreeSet::new();
            let mut dirty: HashSet<(Tenant, String)> = HashSet::new();
            for m in &messages {
                match parse_topic(&m.topic) {
                    Some((tenant, TopicKind::Pipelines)) => {
                        reload.insert(tenant);
                    }
                    Some((tenant, TopicKind::Changesets)) => match decode::<Changeset>(&m.value) {
                        Ok(c) => {
                            dirty.insert((tenant, c.dataset));
                        }
                        Err(e) => tracing::warn!(
                            topic = %m.topic,
                            offset = m.offset,
                            "supervisor: a changeset event does not decode ({e}); skipped"
                        ),
                    },
                    _ => {}
                }
            }

            let now_owned: BTreeSet<Tenant> = (consumer.assignment().into_iter())
                .filter_map(|tp| parse_topic(&tp.topic))
                .filter(|(t, kind)| *kind == TopicKind::Pipelines && self.config.serves(t.as_str()))
                .map(|(t, _)| t)
                .collect();
            let rescan = now_owned != owned || Instant::now() >= rescan_at;
            if now_owned != owned {
                live.retain(|(t, _), _| now_owned.contains(t));
                tracing::info!(
                    tenants = ?now_owned.iter().map(Tenant::as_str).collect::<Vec<_>>(),
                    "supervisor: running the pipelines of these tenants"
                );
                owned = now_owned;
            }
            let tenants: Vec<Tenant> = if rescan {
                rescan_at = Instant::now() + self.config.rescan;
                owned.iter().cloned().collect()
            } else {
                reload.intersection(&owned).cloned().collect()
            };
            for tenant in tenants {
                if let Err(e) = self.reload(&tenant, &mut live, &mut broken).await {
                    tracing::warn!(%tenant, "supervisor: reading the pipelines: {e}");
                    self.metrics
                        .errors
                        .with_label_values(&[tenant.as_str(), "pipelines"])
                        .inc();
                }
            }

            let keys: Vec<PipelineKey> = live.keys().cloned().collect();
            for key in keys {
                if stop.is_cancelled() {
                    break;
                }
                let Some(l) = live.get_mut(&key) else {
                    continue;
                };
                let due = l.retry_at.is_none_or(|at| Instant::now() >= at);
                let woken = rescan
                    || !l.queue.is_empty()
                    || l.state.pending.is_some()
                    || l.retry_at.is_some()
                    || dirty.contains(&(key.0.clone(), l.pipeline.dataset.clone()));
                if !(due && woken) {
                    continue;
                }
                let result = match self.step(l, &stop).await {
                    Ok(()) => self.maybe_checkpoint(l, false).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => {
                        l.failures = 0;
                        l.retry_at = None;
                    }
                    Err(e) => {
                        self.metrics
                            .errors
                            .with_label_values(&[key.0.as_str(), "pipeline"])
                            .inc();
                        if matches!(e, SupervisorError::Lost(_) | SupervisorError::Corrupt(_)) {
                            tracing::warn!(tenant = %key.0, pipeline = %key.1, "{e}; reloading it from the store");
                            live.remove(&key);
                            continue;
                        }
                        l.failures += 1;
                        let wait = Duration::from_millis(250)
                            .saturating_mul(1 << l.failures.min(8))
                            .min(MAX_BACKOFF);
                        tracing::warn!(tenant = %key.0, pipeline = %key.1, "{e}; trying again in {}", humantime::format_duration(wait));
                        l.retry_at = Some(Instant::now() + wait);
                    }
                }
            }
            for t in &owned {
                let n = live.keys().filter(|(lt, _)| lt == t).count();
                self.metrics
                    .pipelines
                    .with_label_values(&[t.as_str()])
                    .set(n as i64);
            }
            if !messages.is_empty()
                && let Err(e) = consumer.commit(&offsets_after(&messages)).await
            {
                tracing::warn!("supervisor: committing the topics' offsets: {e}");
            }
        }
        tracing::info!(
            "supervisor stopping: checkpointing {} pipelines",
            live.len()
        );
        for l in live.values_mut() {
            if let Err(e) = self.maybe_checkpoint(l, true).await {
                tracing::warn!(tenant = %l.tenant, pipeline = %l.name, "checkpoint at stop: {e}");
            }
        }
        Ok(())
    }

    /// Reads a tenant's pipelines: loads new submissions, drops stopped pipelines.
    async fn reload(
        &self,
        tenant: &Tenant,
        live: &mut BTreeMap<PipelineKey, Live>,
        broken: &mut HashSet<(PipelineKey, i64)>,
    ) -> Result<(), SupervisorError> {
        let store = self.meta.tenant(tenant).await?;
        let records = store.pipelines().await?;
        let names: HashSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
        live.retain(|(t, n), _| t != tenant || names.contains(n.as_str()));
        for record in records {
            let key = (tenant.clone(), record.name.clone());
            if record.status == PipelineStatus::Stopped {
                if let Some(mut l) = live.remove(&key) {
                    tracing::info!(%tenant, pipeline = %record.name, "pipeline stopped");
                    // a trigger decided before the stop is still announced
                    if l.state.pending.is_some()
                        && let Err(e) = self.resolve_pending(&mut l).await
                    {
                        tracing::warn!(%tenant, pipeline = %record.name, "announcing the last training set at stop: {e}");
                    }
                    if let Err(e) = self.maybe_checkpoint(&mut l, true).await {
                        tracing::warn!(%tenant, pipeline = %record.name, "checkpoint at stop: {e}");
                    }
                }
                continue;
            }
            if live
                .get(&key)
                .is_some_and(|l| l.submitted_at == record.submitted_at)
                || broken.contains(&(key.clone(), record.submitted_at))
            {
                continue;
            }
            let submitted_at = record.submitted_at;
            match self.load(tenant, &store, record).await {
                Ok(l) => {
                    live.insert(key, l);
                }
                Err(LoadError::Document(e)) => {
                    tracing::error!(%tenant, pipeline = %key.1, "pipeline cannot run: {e}");
                    broken.insert((key, submitted_at));
                }
                Err(LoadError::Other(e)) => {
                    tracing::warn!(%tenant, pipeline = %key.1, "loading the pipeline: {e}");
                    self.metrics
                        .errors
                        .with_label_values(&[tenant.as_str(), "load"])
                        .inc();
                }
            }
        }
        Ok(())
    }

    /// A pipeline ready to run: its stored state (a pending event resolved first; a new
    /// submission starts its policies over) and its runner, from its checkpoint.
    async fn load(
        &self,
        tenant: &Tenant,
        store: &Arc<dyn TenantStore>,
        record: PipelineRecord,
    ) -> Result<Live, LoadError> {
        let pipeline =
            Pipeline::parse(&record.document).map_err(|e| LoadError::Document(e.to_string()))?;
        let policies = policies_fingerprint(&pipeline);
        let stored = store.pipeline_state(&record.name).await?;
        let (state, version) = match stored {
            Some((bytes, version)) => {
                let state = PipelineState::parse(&bytes).map_err(|e| {
                    SupervisorError::Corrupt(format!(
                        "the stored state of pipeline {:?} does not parse: {e}",
                        record.name
                    ))
                })?;
                (state, Some(version))
            }
            // replaced below, as a new submission
            None => (
                PipelineState::new(record.submitted_at, policies.clone(), 0),
                None,
            ),
        };
        let mut l = Live {
            tenant: tenant.clone(),
            store: Arc::clone(store),
            name: record.name.clone(),
            submitted_at: record.submitted_at,
            features: needs_features(&pipeline.trigger),
            runner: Runner::new(&pipeline),
            pipeline,
            policies,
            state,
            version,
            queue: VecDeque::new(),
            checkpointed: Instant::now(),
            failures: 0,
            retry_at: None,
        };
        if l.state.pending.is_some() {
            self.resolve_pending(&mut l).await?;
        }
        if l.version.is_none() || l.state.submitted_at != record.submitted_at {
            // a new submission: its policies start over, and see what is there as history
            // its history: the changesets committed before it was submitted
            let history = store
                .changesets(&l.pipeline.dataset)
                .await?
                .iter()
                .filter(|c| c.created_at <= record.submitted_at)
                .map(|c| c.id)
                .max()
                .unwrap_or(0);
            let old = l.state.checkpoint.take();
            l.state = PipelineState {
                base: l.state.emitted,
                emitted: l.state.emitted,
                last: l.state.last.take(),
                ..PipelineState::new(record.submitted_at, l.policies.clone(), history)
            };
            self.save(&mut l).await?;
            if let Some(old) = old {
                self.delete_checkpoint(&old.path).await;
            }
            tracing::info!(
                %tenant,
                pipeline = %l.name,
                dataset = %l.pipeline.dataset,
                history,
                "pipeline submitted: changesets 1 to {history} are its history, triggers fire after"
            );
        } else if let Some(c) = l.state.checkpoint.clone() {
            match self.read_checkpoint(&l, &c).await {
                Ok(runner) => l.runner = runner,
                Err(e) => tracing::warn!(
                    %tenant,
                    pipeline = %l.name,
                    "checkpoint {} cannot be used ({e}): folding the dataset from its first changeset",
                    c.path
                ),
            }
        }
        Ok(l)
    }

    async fn read_checkpoint(
        &self,
        l: &Live,
        c: &CheckpointRef,
    ) -> Result<Runner, SupervisorError> {
        let bytes = self
            .blobs
            .get(&Path::from(c.path.as_str()))
            .await
            .map_err(|source| SupervisorError::Blobs {
                what: format!("reading checkpoint {}", c.path),
                source,
            })?
            .bytes()
            .await
            .map_err(|source| SupervisorError::Blobs {
                what: format!("reading checkpoint {}", c.path),
                source,
            })?;
        let runner = Runner::decode(&l.pipeline, &l.policies, &bytes)
            .map_err(|e| SupervisorError::Corrupt(e.to_string()))?;
        if runner.changeset() != c.changeset {
            return Err(SupervisorError::Corrupt(format!(
                "it holds changeset {}, the state says {}",
                runner.changeset(),
                c.changeset
            )));
        }
        Ok(runner)
    }

    /// Folds the pipeline's dataset up to its head, emitting the triggers.
    async fn step(&self, l: &mut Live, stop: &CancellationToken) -> Result<(), SupervisorError> {
        if l.state.pending.is_some() {
            self.resolve_pending(l).await?;
        }
        self.drain(l).await?;
        let dataset = l.pipeline.dataset.clone();
        let head = l.store.dataset(&dataset).await?.map_or(0, |d| d.head);
        let (tenant, name) = (l.tenant.as_str().to_owned(), l.name.clone());
        let labels = [tenant.as_str(), name.as_str()];
        while l.runner.changeset() < head && !stop.is_cancelled() {
            let id = l.runner.changeset() + 1;
            let changeset = l.store.changeset(&dataset, id).await?.ok_or_else(|| {
                SupervisorError::Corrupt(format!(
                    "changeset {id} of dataset {dataset:?} is missing below its head {head}"
                ))
            })?;
            let input = read_input(l.store.as_ref(), &self.blobs, &changeset, l.features).await?;
            let live = id > l.state.live_from;
            let fires = l.runner.fold(id, &input, live);
            self.metrics
                .changesets
                .with_label_values(&[l.tenant.as_str()])
                .inc();
            l.queue.extend(
                (fires.into_iter())
                    .map(|f| (l.state.base + f.ordinal, f, changeset.created_at))
                    .filter(|(trigger, _, _)| *trigger > l.state.emitted),
            );
            self.drain(l).await?;
            l.state.processed = l.state.processed.max(changeset.id);
            self.metrics
                .lag
                .with_label_values(&labels)
                .set(head - l.runner.changeset());
            self.metrics
                .tracked
                .with_label_values(&labels)
                .set(l.runner.tracked() as i64);
            self.maybe_checkpoint(l, false).await?;
        }
        self.metrics
            .lag
            .with_label_values(&labels)
            .set(head - l.runner.changeset());
        Ok(())
    }

    /// Emits the queued triggers in order; one that fails stays first in the queue.
    async fn drain(&self, l: &mut Live) -> Result<(), SupervisorError> {
        while let Some((trigger, fire, caused_at)) = l.queue.pop_front() {
            if let Err(e) = self.emit(l, trigger, &fire, caused_at).await {
                l.queue.push_front((trigger, fire, caused_at));
                return Err(e);
            }
        }
        Ok(())
    }

    /// Prepares a trigger's training set and publishes its event (recorded as pending
    /// first).
    async fn emit(
        &self,
        l: &mut Live,
        trigger: u64,
        fire: &Fire,
        caused_at: i64,
    ) -> Result<(), SupervisorError> {
        let tenant = l.tenant.as_str().to_owned();
        let dataset = l.pipeline.dataset.clone();
        if fire.chosen.keys.is_empty() {
            tracing::warn!(
                %tenant,
                pipeline = %l.name,
                trigger,
                "trigger {trigger} fired but its selection is empty: no training set"
            );
            l.state.emitted = trigger;
            return Ok(());
        }
        let list = put_key_list(
            &self.blobs,
            &tenant,
            &dataset,
            &fire.chosen.keys,
            &fire.chosen.weights,
        )
        .await?;
        let request = QueryRequest {
            dataset: dataset.clone(),
            as_of: Some(fire.changeset),
            selection: Some(Selection::Keys {
                list: list.digest,
                count: list.count,
            }),
            ..QueryRequest::default()
        };
        let prepared = prepare(l.store.as_ref(), &self.blobs, &request, now_micros()).await?;
        let topic = TopicKind::Trainsets.topic(&l.tenant);
        let partitions = self.bus.partitions(&topic).await?;
        let partition = partition_for_key(l.name.as_bytes(), partitions);
        let from_offset = self.bus.end_offset(&topic, partition).await?;
        l.state.pending = Some(Pending {
            event: TrainingSet {
                tenant: l.tenant.as_str().to_owned(),
                pipeline: l.name.clone(),
                trigger_id: i64::try_from(trigger).unwrap_or(i64::MAX),
                dataset,
                version: prepared.record.version.clone(),
                head_changeset: fire.changeset,
                manifest_uri: prepared.record.manifest_uri.clone(),
                sample_count: prepared.record.sample_count,
                trigger_reason: trigger_kind(&l.pipeline.trigger).to_owned(),
                created_at: now_micros(),
            },
            caused_at,
            partition,
            from_offset,
        });
        self.save(l).await?;
        self.publish(l).await?;
        self.done(l, "published").await
    }

    /// Publishes the pending event.
    async fn publish(&self, l: &Live) -> Result<(), SupervisorError> {
        let pending = l.state.pending.as_ref().expect("an event is pending");
        let event = &pending.event;
        let topic = TopicKind::Trainsets.topic(&l.tenant);
        let record =
            Record::keyed(l.name.as_bytes(), encode(event)).to_partition(pending.partition);
        self.bus.produce(&topic, vec![record]).await?;
        Ok(())
    }

    /// The pending event is on the topic: record it as emitted.
    async fn done(&self, l: &mut Live, how: &str) -> Result<(), SupervisorError> {
        let pending = l.state.pending.take().expect("an event is pending");
        let e = &pending.event;
        let trigger = u64::try_from(e.trigger_id).unwrap_or(0);
        l.state.emitted = l.state.emitted.max(trigger);
        l.state.last = Some(LastTrigger {
            trigger_id: e.trigger_id,
            version: e.version.clone(),
            sample_count: e.sample_count,
            changeset: e.head_changeset,
            at: now_micros(),
        });
        self.save(l).await?;
        let tenant = l.tenant.as_str();
        self.metrics
            .triggers
            .with_label_values(&[tenant, &l.name, &e.trigger_reason])
            .inc();
        self.metrics
            .selected
            .with_label_values(&[tenant, &l.name, selection_kind(&l.pipeline.selection)])
            .observe(e.sample_count as f64);
        let latency = (now_micros() - pending.caused_at).max(0) as f64 / 1e6;
        self.metrics
            .latency
            .with_label_values(&[tenant])
            .observe(latency);
        tracing::info!(
            %tenant,
            pipeline = %l.name,
            trigger = e.trigger_id,
            version = %e.version,
            samples = e.sample_count,
            changeset = e.head_changeset,
            reason = %e.trigger_reason,
            "training set {how}"
        );
        Ok(())
    }

    /// A pending event left by a stopped supervisor (or a failed publish): published if it
    /// is not on its partition after the offset recorded with it, then recorded as emitted.
    async fn resolve_pending(&self, l: &mut Live) -> Result<(), SupervisorError> {
        let pending = l.state.pending.clone().expect("an event is pending");
        let topic = TopicKind::Trainsets.topic(&l.tenant);
        let end = self.bus.end_offset(&topic, pending.partition).await?;
        let mut at = pending.from_offset;
        let mut found = false;
        while at < end && !found {
            let records = self
                .bus
                .read(&topic, pending.partition, at, READ_BATCH, POLL)
                .await?;
            let Some(last) = records.last() else {
                return Err(SupervisorError::Corrupt(format!(
                    "{topic}[{}] could not be read from offset {at} to its end {end}",
                    pending.partition
                )));
            };
            at = last.offset + 1;
            found = records.iter().any(|r| {
                decode::<TrainingSet>(&r.value).is_ok_and(|e| {
                    e.tenant == l.tenant.as_str()
                        && e.pipeline == l.name
                        && e.trigger_id == pending.event.trigger_id
                })
            });
        }
        let outcome = if found {
            "published"
        } else {
            self.publish(l).await?;
            "republished"
        };
        self.metrics
            .recovered
            .with_label_values(&[l.tenant.as_str(), outcome])
            .inc();
        self.done(
            l,
            if found {
                "found published"
            } else {
                "published after a restart"
            },
        )
        .await
    }

    /// Stores the state (compare-and-set).
    async fn save(&self, l: &mut Live) -> Result<(), SupervisorError> {
        match l
            .store
            .put_pipeline_state(&l.name, l.state.to_bytes(), l.version)
            .await
        {
            Ok(v) => {
                l.version = Some(v);
                Ok(())
            }
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {
                Err(SupervisorError::Lost(l.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checkpoints the runner if it moved and it is time (or `now`), when every trigger
    /// folded is emitted.
    async fn maybe_checkpoint(&self, l: &mut Live, now: bool) -> Result<(), SupervisorError> {
        let at = l.runner.changeset();
        let moved = l
            .state
            .checkpoint
            .as_ref()
            .map_or(at > 0, |c| c.changeset != at);
        let due = now || l.checkpointed.elapsed() >= self.config.checkpoint_every;
        if !moved || !due || !l.queue.is_empty() || l.state.pending.is_some() {
            return Ok(());
        }
        let bytes = l.runner.encode(&l.policies);
        let size = bytes.len() as u64;
        let path = format!(
            "{}/{}/pipelines/{}/checkpoints/{}-{at:012}.ckpt",
            l.tenant, l.pipeline.dataset, l.name, l.state.submitted_at
        );
        self.blobs
            .put(&Path::from(path.as_str()), PutPayload::from(bytes))
            .await
            .map_err(|source| SupervisorError::Blobs {
                what: format!("writing checkpoint {path}"),
                source,
            })?;
        let old = l.state.checkpoint.replace(CheckpointRef {
            changeset: at,
            path: path.clone(),
            bytes: size,
        });
        l.state.tracked = l.runner.tracked() as u64;
        l.state.processed = l.state.processed.max(at);
        self.save(l).await?;
        l.checkpointed = Instant::now();
        self.metrics
            .checkpoint_bytes
            .with_label_values(&[l.tenant.as_str(), &l.name])
            .set(i64::try_from(size).unwrap_or(i64::MAX));
        if let Some(old) = old
            && old.path != path
        {
            self.delete_checkpoint(&old.path).await;
        }
        Ok(())
    }

    async fn delete_checkpoint(&self, path: &str) {
        match self.blobs.delete(&Path::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!("deleting the old checkpoint {path}: {e}"),
        }
    }
}

/// Why a pipeline could not be loaded.
enum LoadError {
    /// Its document does not parse (any more): it waits for a new submission.
    Document(String),
    /// Anything else: tried again at the next rescan.
    Other(SupervisorError),
}

impl From<SupervisorError> for LoadError {
    fn from(e: SupervisorError) -> Self {
        LoadError::Other(e)
    }
}

impl From<StoreError> for LoadError {
    fn from(e: StoreError) -> Self {
        LoadError::Other(e.into())
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Document(e) => f.write_str(e),
            LoadError::Other(e) => e.fmt(f),
        }
    }
}
