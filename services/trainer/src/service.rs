//! The trainer loop: take training-set events from the tenants' `trainsets` topics (one
//! consumer group, so each set goes to one trainer), train, release, commit.
//!
//! Exactly one `ModelRelease` per training set, across crashes:
//! - A set's model id is `{pipeline}-{trigger}`: whoever trains it, it is the same id.
//! - The model is stored (weights and card, content-addressed), then its record is
//!   written to the metadata store (once: a second writer finds it), then the release is
//!   published, then the event's offset is committed.
//! - A trainer that takes an event whose model record exists does not train: it looks
//!   for the release on the models topic (the pipeline's partition) and publishes it only
//!   if it is not there.
//!
//! A killed trainer leaves its event uncommitted; the group gives it to another member
//! (or to the trainer restarted), which trains it again from the start.
//!
//! A set that cannot be trained (see [`TrainerError::Unusable`]) is dead-lettered on the
//! tenant's `samples.rejected` topic with the reason (`untrainable`), and committed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flywheel_core::pipeline::Pipeline;
use flywheel_schemas::{
    ModelRelease, RejectReason, RejectedSample, TrainingSet, decode, encode, now_micros,
};
use flywheel_store::{MetaStore, ModelRecord, PutOutcome, StoreError, TenantStore, TrainsetRecord};
use flywheel_supervisor::pipeline_releases;
use flywheel_topics::catalogue::parse_topic;
use flywheel_topics::{
    Bus, ConsumerConfig, Message, Record, Subscription, Tenant, TopicKind, TopicPartition,
};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::decode::{Shape, feature_count};
use crate::loader::{Loader, LoaderConfig, Source};
use crate::model::{Card, Net, card_uri, device};
use crate::plan::{Classes, Plan, read_manifest};
use crate::train::{Evaluation, evaluate, train};
use crate::{TrainerConfig, TrainerError, TrainerMetrics};

/// How long a poll of the topics waits.
const POLL: Duration = Duration::from_millis(200);

/// The model id of a pipeline's trigger.
pub fn model_id(pipeline: &str, trigger_id: i64) -> String {
    format!("{pipeline}-{trigger_id}")
}

/// The trainer service. [`Trainer::run`] until the token is cancelled.
#[derive(Debug)]
pub struct Trainer {
    bus: Arc<dyn Bus>,
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn ObjectStore>,
    config: TrainerConfig,
    metrics: TrainerMetrics,
    cache: Cache,
}

/// What handling one event came to.
enum Handled {
    Released,
    AlreadyReleased,
}

impl Trainer {
    /// A trainer on these backends, counting in `metrics`.
    pub fn new(
        bus: Arc<dyn Bus>,
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn ObjectStore>,
        config: TrainerConfig,
        metrics: TrainerMetrics,
    ) -> Result<Self, TrainerError> {
        config.validate()?;
        let cache = Cache::new(config.cache_bytes);
        Ok(Self {
            bus,
            meta,
            blobs,
            config,
            metrics,
            cache,
        })
    }

    /// The subscription: the trainsets topics of every tenant, or of the listed ones.
    fn subscription(&self) -> Subscription {
        let p = TopicKind::Trainsets.pattern();
        if self.config.tenants.is_empty() {
            return Subscription::Pattern(p);
        }
        let names: Vec<String> = (self.config.tenants.iter())
            .map(|t| regex_escape(t))
            .collect();
        let suffix = TopicKind::Trainsets.suffix().replace('.', "\\.");
        Subscription::Pattern(format!("^flywheel\\.({})\\.{suffix}$", names.join("|")))
    }

    /// Trains the training sets of the partitions this member is assigned until `stop` is
    /// cancelled. A set whose training is stopped is left uncommitted (trained again by
    /// the next member). Only a failure to subscribe is returned.
    pub async fn run(self, stop: CancellationToken) -> Result<(), TrainerError> {
        let mut consumer = self
            .bus
            .subscribe(ConsumerConfig::new(&self.config.group, self.subscription()))
            .await?;
        let mut failures: u32 = 0;
        // messages polled and not yet handled, in order
        let mut queue: std::collections::VecDeque<Message> = std::collections::VecDeque::new();
        while !stop.is_cancelled() {
            if queue.is_empty() {
                let got = tokio::select! {
                    () = stop.cancelled() => break,
                    r = consumer.poll(16, POLL) => r,
                };
                match got {
                    Ok(m) => queue.extend(m),
                    Err(e) => {
                        tracing::warn!("trainer: polling the topics: {e}");
                        self.metrics.errors.with_label_values(&["", "poll"]).inc();
                        tokio::time::sleep(POLL).await;
                    }
                }
                continue;
            }
            let message = queue.front().expect("not empty").clone();
            let tenant = parse_topic(&message.topic).map(|(t, _)| t);
            let tenant_name = tenant.as_ref().map_or("", Tenant::as_str).to_owned();
            let result = match &tenant {
                Some(t) => self.handle(t, &message, &stop).await,
                None => Err(TrainerError::Unusable(format!(
                    "topic {} is not a tenant's trainsets topic",
                    message.topic
                ))),
            };
            let outcome = match result {
                Ok(Handled::Released) => "released",
                Ok(Handled::AlreadyReleased) => "already_released",
                Err(TrainerError::Stopped) => break,
                Err(e) if e.is_transient() => {
                    failures += 1;
                    let wait = Duration::from_millis(250)
                        .saturating_mul(1 << failures.min(8))
                        .min(self.config.max_backoff);
                    tracing::warn!(topic = %message.topic, offset = message.offset, "trainer: {e}; trying again in {}", humantime::format_duration(wait));
                    self.metrics
                        .errors
                        .with_label_values(&[tenant_name.as_str(), "train"])
                        .inc();
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                    // the group may have moved the partition meanwhile
                    queue.clear();
                    consumer = self.resubscribe(consumer).await?;
                    continue;
                }
                Err(e) => {
                    tracing::error!(topic = %message.topic, offset = message.offset, "trainer: the training set cannot be trained: {e}");
                    if let Some(t) = &tenant
                        && let Err(d) = self.dead_letter(t, &message, &e.to_string()).await
                    {
                        tracing::warn!("trainer: dead-lettering: {d}; trying again");
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                    "failed"
                }
            };
            failures = 0;
            self.metrics
                .trainsets
                .with_label_values(&[tenant_name.as_str(), outcome])
                .inc();
            let tp = TopicPartition::new(message.topic.clone(), message.partition);
            if let Err(e) = consumer.commit(&[(tp, message.offset + 1)]).await {
                tracing::warn!("trainer: committing offset {}: {e}", message.offset + 1);
                self.metrics
                    .errors
                    .with_label_values(&[tenant_name.as_str(), "commit"])
                    .inc();
            }
            queue.pop_front();
        }
        Ok(())
    }

    /// Leaves the group and joins it again, so uncommitted messages are delivered again.
    async fn resubscribe(
        &self,
        consumer: Box<dyn flywheel_topics::Consumer>,
    ) -> Result<Box<dyn flywheel_topics::Consumer>, TrainerError> {
        drop(consumer);
        Ok(self
            .bus
            .subscribe(ConsumerConfig::new(&self.config.group, self.subscription()))
            .await?)
    }

    async fn handle(
        &self,
        tenant: &Tenant,
        message: &Message,
        stop: &CancellationToken,
    ) -> Result<Handled, TrainerError> {
        let event: TrainingSet = decode(&message.value).map_err(|e| {
            TrainerError::Unusable(format!("the event does not decode as a TrainingSet: {e}"))
        })?;
        if event.tenant != tenant.as_str() {
            return Err(TrainerError::Unusable(format!(
                "the event names tenant {:?} on tenant {tenant}'s topic",
                event.tenant
            )));
        }
        let store = self.meta.tenant(tenant).await?;
        let id = model_id(&event.pipeline, event.trigger_id);
        if let Some(record) = store.model(&id).await? {
            return self.ensure_released(tenant, &record).await;
        }
        let started = Instant::now();
        let record = self.train(tenant, &*store, &event, &id, stop).await?;
        let record = match store.put_model(record.clone()).await {
            Ok(PutOutcome::Created) => {
                self.publish(tenant, &record).await?;
                tracing::info!(%tenant, pipeline = %record.pipeline, model = %record.id, seconds = started.elapsed().as_secs_f64(), "trainer: released");
                self.observe_release(tenant, &event);
                return Ok(Handled::Released);
            }
            Ok(_) | Err(StoreError::Conflict { .. }) => {
                // another trainer stored it first: its record is the model
                store.model(&id).await?.ok_or_else(|| {
                    StoreError::NotFound(format!("model {id}, after a conflict writing it"))
                })?
            }
            Err(e) => return Err(e.into()),
        };
        self.ensure_released(tenant, &record).await
    }

    fn observe_release(&self, tenant: &Tenant, event: &TrainingSet) {
        let latency = (now_micros() - event.created_at).max(0) as f64 / 1e6;
        self.metrics
            .release_latency
            .with_label_values(&[tenant.as_str()])
            .observe(latency);
    }

    /// Publishes the release of a stored model unless it is on the topic already.
    async fn ensure_released(
        &self,
        tenant: &Tenant,
        record: &ModelRecord,
    ) -> Result<Handled, TrainerError> {
        let released =
            pipeline_releases(self.bus.as_ref(), tenant, &record.pipeline, usize::MAX).await?;
        if released.iter().any(|r| r.model_id == record.id) {
            return Ok(Handled::AlreadyReleased);
        }
        self.publish(tenant, record).await?;
        tracing::info!(%tenant, model = %record.id, "trainer: released a model stored before a restart");
        Ok(Handled::Released)
    }

    /// Publishes a model's release and sets the pipeline's accuracy gauges to its
    /// evaluations.
    async fn publish(&self, tenant: &Tenant, record: &ModelRecord) -> Result<(), TrainerError> {
        let release = ModelRelease {
            tenant: tenant.as_str().to_owned(),
            pipeline: record.pipeline.clone(),
            trigger_id: record.trigger_id,
            model_id: record.id.clone(),
            model_uri: record.uri.clone(),
            trainset_version: record.trainset_version.clone(),
            parent_model: record.parent.clone(),
            metrics: record.metrics.clone(),
            created_at: record.created_at,
        };
        self.bus
            .produce(
                &TopicKind::Models.topic(tenant),
                vec![Record::keyed(record.pipeline.as_bytes(), encode(&release))],
            )
            .await?;
        self.observe_accuracy(tenant, record);
        Ok(())
    }

    /// Sets `flywheel_trainer_model_accuracy` of the record's pipeline. An evaluation
    /// that had no samples (so no accuracy) removes its series rather than leave the
    /// previous model's value under the new one.
    fn observe_accuracy(&self, tenant: &Tenant, record: &ModelRecord) {
        for (on, key) in [
            ("held_out", "holdout_accuracy"),
            ("after", "after_accuracy"),
        ] {
            let labels = [tenant.as_str(), record.pipeline.as_str(), on];
            match record.metrics.get(key) {
                Some(&accuracy) => self
                    .metrics
                    .model_accuracy
                    .with_label_values(&labels)
                    .set(accuracy),
                None => {
                    // an error only says that there was no series to remove
                    let _ = self.metrics.model_accuracy.remove_label_values(&labels);
                }
            }
        }
    }

    async fn dead_letter(
        &self,
        tenant: &Tenant,
        message: &Message,
        reason: &str,
    ) -> Result<(), TrainerError> {
        let rejected = RejectedSample {
            tenant: tenant.as_str().to_owned(),
            source_topic: message.topic.clone(),
            source_partition: message.partition,
            source_offset: message.offset,
            reason: RejectReason::Untrainable.as_str().to_owned(),
            detail: reason.to_owned(),
            original: message.value.to_vec(),
            rejected_at: now_micros(),
        };
        let key = message.key.clone().unwrap_or_default();
        self.bus
            .produce(
                &TopicKind::SamplesRejected.topic(tenant),
                vec![Record::keyed(key, encode(&rejected))],
            )
            .await?;
        Ok(())
    }

    /// Trains the set of `event` and stores the model; its record, not yet written.
    async fn train(
        &self,
        tenant: &Tenant,
        store: &dyn TenantStore,
        event: &TrainingSet,
        id: &str,
        stop: &CancellationToken,
    ) -> Result<ModelRecord, TrainerError> {
        let unusable = |m: String| TrainerError::Unusable(m);
        let pipeline_record = store
            .pipeline(&event.pipeline)
            .await?
            .ok_or_else(|| unusable(format!("pipeline {} is not known", event.pipeline)))?;
        let pipeline = Pipeline::parse(&pipeline_record.document)
            .map_err(|e| unusable(format!("pipeline {}'s document: {e}", event.pipeline)))?;
        let record: TrainsetRecord = store
            .trainset(&event.version)
            .await?
            .ok_or_else(|| unusable(format!("training set {} is not known", event.version)))?;
        let (footer, entries) = read_manifest(&self.blobs, &record).await?;
        if entries.is_empty() {
            return Err(unusable(format!(
                "training set {} holds no stored sample",
                event.version
            )));
        }

        // the parent: the pipeline's latest model before this trigger
        let parent = if pipeline.training.warm_start {
            self.parent(store, &event.pipeline, event.trigger_id).await
        } else {
            None
        };

        let labels = if !pipeline.model.labels.is_empty() {
            pipeline.model.labels.clone()
        } else if let Some((_, card, _)) = &parent {
            card.labels.clone()
        } else {
            let mut l = footer.labels.clone();
            l.sort();
            l
        };
        let shape = match Shape::resolve(&pipeline.input, || None) {
            Some(s) => s,
            None => match parent.as_ref().map(|(_, c, _)| c.input) {
                Some(s @ Shape::Features { .. }) => s,
                _ => self.first_width(tenant, &footer, &entries).await?,
            },
        };
        let card = Card::new(&pipeline.model, shape, labels);
        let classes = Classes::new(&card.labels);
        let mut plan = Plan::new(footer, &entries, &classes, pipeline.evaluation.holdout);
        plan.add_after(store, &record, &classes, pipeline.evaluation.after)
            .await?;
        let restricted = plan.footer.restricted.len();
        if restricted > 0 {
            tracing::warn!(%tenant, version = %event.version, "trainer: the training set's {restricted} restricted part(s) are not trained on (not supported yet)");
        }

        let source = Arc::new(Source {
            blobs: self.blobs.clone(),
            tenant: tenant.as_str().to_owned(),
            uris: plan.uris.clone(),
            cache_id: Source::cache_id(tenant.as_str(), &record.dataset, shape),
        });
        let loader = Loader::new(
            source,
            shape,
            self.cache.clone(),
            LoaderConfig {
                workers: self.config.workers,
                prefetch: self.config.prefetch,
            },
        );

        // train, on a blocking thread
        let training = pipeline.training.clone();
        let version = event.version.clone();
        let stop2 = stop.clone();
        let loader2 = loader.clone();
        let progress = self
            .metrics
            .progress
            .with_label_values(&[tenant.as_str(), event.pipeline.as_str()]);
        let plan2 = plan.clone();
        let parent_weights = parent
            .as_ref()
            .filter(|(_, c, _)| c.same_architecture(&card))
            .map(|(r, _, w)| (r.id.clone(), w.clone()));
        let had_parent = parent_weights.is_some();
        let card2 = card.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut net = Net::new(card2, device(), training.seed)?;
            let mut warm = None;
            if let Some((parent_id, weights)) = &parent_weights {
                match net.load_safetensors(weights, &format!("model {parent_id}")) {
                    Ok(()) => warm = Some(parent_id.clone()),
                    Err(e) => tracing::warn!("trainer: {e}; training from scratch"),
                }
            }
            let outcome = train(
                &mut net,
                &loader2,
                &plan2.train,
                &version,
                &training,
                &stop2,
                #[allow(clippy::cast_possible_wrap)]
                |_, done| progress.set(done as i64),
            )?;
            let holdout = evaluate(&net, &loader2, &plan2.holdout, &stop2)?;
            let after = evaluate(&net, &loader2, &plan2.after, &stop2)?;
            let bytes = net.to_safetensors()?;
            Ok::<_, TrainerError>((outcome, holdout, after, bytes, warm))
        })
        .await
        .map_err(|e| TrainerError::Unusable(format!("training panicked: {e}")))?;
        let (outcome, holdout, after, bytes, warm) = done?;
        if had_parent && warm.is_none() {
            self.metrics
                .errors
                .with_label_values(&[tenant.as_str(), "parent"])
                .inc();
        }

        let stats = loader.stats();
        let t = tenant.as_str();
        self.metrics
            .samples
            .with_label_values(&[t])
            .inc_by(outcome.fed);
        self.metrics
            .skipped
            .with_label_values(&[t])
            .inc_by(outcome.skipped);
        self.metrics
            .train_seconds
            .with_label_values(&[t])
            .observe(outcome.seconds);
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics
            .loader_bytes
            .with_label_values(&[t])
            .inc_by(stats.bytes_read.load(Relaxed));
        self.metrics
            .cache
            .with_label_values(&[t, "hit"])
            .inc_by(stats.hits.load(Relaxed));
        self.metrics
            .cache
            .with_label_values(&[t, "miss"])
            .inc_by(stats.misses.load(Relaxed));
        #[allow(clippy::cast_possible_wrap)]
        self.metrics.cache_bytes.set(self.cache.bytes() as i64);

        // store the weights and the card, content-addressed
        let digest = hex(&Sha256::digest(&bytes)[..8]);
        let base = format!("{t}/models/{}/{id}-{digest}", event.pipeline);
        let uri = format!("{base}.safetensors");
        let card_json = serde_json::to_vec_pretty(&card).expect("a card serializes");
        for (path, body) in [(uri.clone(), bytes), (format!("{base}.json"), card_json)] {
            self.blobs
                .put(&Path::from(path.as_str()), PutPayload::from(body))
                .await
                .map_err(|e| TrainerError::blobs(format!("writing {path}"), e))?;
        }

        let mut metrics = BTreeMap::new();
        let mut put = |k: &str, v: f64| {
            metrics.insert(k.to_owned(), v);
        };
        put("train_samples", outcome.trained as f64);
        put("skipped_samples", outcome.skipped as f64);
        put("epochs", f64::from(pipeline.training.epochs));
        put("train_loss", outcome.loss);
        put("train_seconds", outcome.seconds);
        put("samples_per_second", outcome.samples_per_second());
        put("warm_started", if warm.is_some() { 1.0 } else { 0.0 });
        if let Some(d) = pipeline.training.downsample {
            put("downsample_fraction", d.fraction);
        }
        if restricted > 0 {
            put("restricted_parts_not_trained", restricted as f64);
        }
        let mut eval = |name: &str, e: Evaluation| {
            put(&format!("{name}_samples"), e.samples as f64);
            if e.samples > 0 {
                put(&format!("{name}_accuracy"), e.accuracy);
                put(&format!("{name}_loss"), e.loss);
            }
            if e.skipped > 0 {
                put(&format!("{name}_skipped"), e.skipped as f64);
            }
        };
        eval("holdout", holdout);
        eval("after", after);
        Ok(ModelRecord {
            id: id.to_owned(),
            pipeline: event.pipeline.clone(),
            trigger_id: event.trigger_id,
            uri,
            trainset_version: event.version.clone(),
            parent: warm,
            metrics,
            created_at: now_micros(),
        })
    }

    /// The pipeline's latest model before `trigger`, its card and its weights; `None` if
    /// there is none or it cannot be read (then the model trains from scratch).
    async fn parent(
        &self,
        store: &dyn TenantStore,
        pipeline: &str,
        trigger: i64,
    ) -> Option<(ModelRecord, Card, Vec<u8>)> {
        let models = match store.models(Some(pipeline)).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(
                    "trainer: listing the models of {pipeline}: {e}; training from scratch"
                );
                return None;
            }
        };
        let parent = models
            .into_iter()
            .filter(|m| m.trigger_id < trigger)
            .max_by_key(|m| m.trigger_id)?;
        match read_model(&self.blobs, &parent).await {
            Ok((card, weights)) => Some((parent, card, weights)),
            Err(e) => {
                tracing::warn!(model = %parent.id, "trainer: the previous model: {e}; training from scratch");
                self.metrics
                    .errors
                    .with_label_values(&[store.tenant().as_str(), "parent"])
                    .inc();
                None
            }
        }
    }

    /// The feature width of the set's first sample.
    async fn first_width(
        &self,
        tenant: &Tenant,
        footer: &flywheel_trainset::Footer,
        entries: &[flywheel_trainset::Entry],
    ) -> Result<Shape, TrainerError> {
        for e in entries.iter().take(16) {
            let Some((offset, length)) = e.range else {
                continue;
            };
            let name = &footer.uris[e.uri as usize];
            let Some(path) = flywheel_trainset::own_object(tenant.as_str(), name) else {
                continue;
            };
            let Ok(bytes) = self.blobs.get_range(&path, offset..offset + length).await else {
                continue;
            };
            if let Some(width) = feature_count(&bytes).filter(|&w| w > 0) {
                return Ok(Shape::Features { width });
            }
        }
        Err(TrainerError::Unusable(
            "the feature width cannot be learnt from the set's first samples; set [input] width"
                .into(),
        ))
    }
}

/// A stored model's card and weights.
pub async fn read_model(
    blobs: &Arc<dyn ObjectStore>,
    record: &ModelRecord,
) -> Result<(Card, Vec<u8>), TrainerError> {
    let card_uri = card_uri(&record.uri);
    let read = |uri: String| async move {
        let got = blobs
            .get(&Path::from(uri.as_str()))
            .await
            .map_err(|e| TrainerError::blobs(format!("reading {uri}"), e))?;
        got.bytes()
            .await
            .map_err(|e| TrainerError::blobs(format!("reading {uri}"), e))
    };
    let card = Card::parse(&read(card_uri.clone()).await?, &card_uri)
        .map_err(|e| TrainerError::Unusable(e.to_string()))?;
    let weights = read(record.uri.clone()).await?.to_vec();
    Ok((card, weights))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
