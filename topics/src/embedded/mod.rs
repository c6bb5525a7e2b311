//! `embedded://DIR`: a durable event log inside the process, for one machine.
//!
//! Layout: `DIR/LOCK` (one process at a time), `DIR/topics/<topic>/topic.json` and
//! `DIR/topics/<topic>/<partition>/<base offset>.log` segments, `DIR/groups/<group>.offsets`.
//! Produce returns once the records are fsynced; consumers are woken by a watch channel
//! the moment records become durable, never by sleep-polling.

mod frame;
mod group;
mod log;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use self::group::{Group, Matcher};
use self::log::{AppendRecord, Cursor, PartitionLog, ReadRecord};
use crate::metrics::BusMetrics;
use crate::{
    Ack, Bus, BusError, Consumer, ConsumerConfig, Message, Record, SeekTo, StartFrom,
    TopicPartition, TopicSpec, partition_for_key,
};

/// Tuning of the embedded log.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// A segment file is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// The largest message value accepted.
    pub max_message_bytes: usize,
    /// Bytes a consumer reads per poll, at most (at least one message).
    pub max_poll_bytes: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 128 * 1024 * 1024,
            max_message_bytes: 16 * 1024 * 1024,
            max_poll_bytes: 8 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct TopicMeta {
    partitions: u32,
    retention_ms: Option<u64>,
}

#[derive(Debug)]
struct Topic {
    name: String,
    partitions: Vec<Arc<PartitionLog>>,
    retention: Option<Duration>,
    round_robin: AtomicU32,
    retention_checked_ms: AtomicI64,
}

#[derive(Debug)]
struct Inner {
    url: String,
    dir: PathBuf,
    _lock: File,
    options: EmbeddedOptions,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    topics_version: AtomicU64,
    /// Bumped whenever records become durable, a topic is created or a member leaves.
    changes: watch::Sender<u64>,
    groups: Mutex<HashMap<String, Arc<Group>>>,
    metrics: BusMetrics,
}

/// The embedded bus. Cheap to clone; all clones share one log.
#[derive(Debug, Clone)]
pub struct EmbeddedBus {
    inner: Arc<Inner>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn take_lock(dir: &Path) -> Result<File, BusError> {
    let path = dir.join("LOCK");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| BusError::io("open lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(BusError::Locked {
                dir: dir.to_owned(),
                detail: format!("held by pid {}", holder.trim()),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(BusError::io("lock", &path, e));
        }
    }
    file.set_len(0)
        .and_then(|()| write!(file, "{}", std::process::id()))
        .map_err(|e| BusError::io("write lock file", &path, e))?;
    Ok(file)
}

impl EmbeddedBus {
    /// Opens (creating) the log in `dir`, checking every segment. Blocking.
    pub fn open(
        dir: &Path,
        options: EmbeddedOptions,
        metrics: BusMetrics,
    ) -> Result<Self, BusError> {
        fs::create_dir_all(dir.join("topics"))
            .and_then(|()| fs::create_dir_all(dir.join("groups")))
            .map_err(|e| BusError::io("create directory", dir, e))?;
        let lock_file = take_lock(dir)?;
        let mut topics = BTreeMap::new();
        let topics_dir = dir.join("topics");
        for entry in fs::read_dir(&topics_dir).map_err(|e| BusError::io("list", &topics_dir, e))? {
            let entry = entry.map_err(|e| BusError::io("list", &topics_dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta_path = entry.path().join("topic.json");
            let Ok(meta) = fs::read(&meta_path) else {
                // a topic whose creation never finished; create_topics will redo it
                continue;
            };
            let meta: TopicMeta = serde_json::from_slice(&meta).map_err(|e| BusError::Corrupt {
                path: meta_path.clone(),
                position: 0,
                offset: 0,
                reason: format!("topic metadata is not readable: {e}"),
            })?;
            let topic = open_topic(&entry.path(), &name, &meta, &options, &metrics)?;
            topics.insert(name, Arc::new(topic));
        }
        let url = format!("embedded://{}", dir.display());
        Ok(Self {
            inner: Arc::new(Inner {
                url,
                dir: dir.to_owned(),
                _lock: lock_file,
                options,
                topics: RwLock::new(topics),
                topics_version: AtomicU64::new(0),
                changes: watch::channel(0).0,
                groups: Mutex::new(HashMap::new()),
                metrics,
            }),
        })
    }

    /// Every damaged range found when the log was opened, as errors naming file and place.
    pub fn damage(&self) -> Vec<BusError> {
        let topics = read_lock(&self.inner.topics);
        let mut out = Vec::new();
        for t in topics.values() {
            for p in &t.partitions {
                out.extend(p.damage().into_iter().map(|d| BusError::Corrupt {
                    path: d.path,
                    position: d.position,
                    offset: d.from,
                    reason: format!("{} (offsets {}..{} lost)", d.reason, d.from, d.to),
                }));
            }
        }
        out
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>, BusError> {
        read_lock(&self.inner.topics)
            .get(name)
            .cloned()
            .ok_or_else(|| BusError::UnknownTopic(name.to_owned()))
    }

    fn notify(&self) {
        self.inner.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn create_blocking(&self, specs: &[TopicSpec]) -> Result<bool, BusError> {
        let mut created = false;
        for spec in specs {
            spec.validate()?;
            if read_lock(&self.inner.topics).contains_key(&spec.name) {
                continue;
            }
            let dir = self.inner.dir.join("topics").join(&spec.name);
            let meta = TopicMeta {
                partitions: spec.partitions,
                retention_ms: spec
                    .retention
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            };
            let topic = open_topic(
                &dir,
                &spec.name,
                &meta,
                &self.inner.options,
                &self.inner.metrics,
            )?;
            // topic.json last: its presence means the topic is complete
            let meta_path = dir.join("topic.json");
            let tmp = dir.join("topic.json.tmp");
            fs::write(&tmp, serde_json::to_vec(&meta).expect("meta serializes"))
                .and_then(|()| File::open(&tmp)?.sync_all())
                .and_then(|()| fs::rename(&tmp, &meta_path))
                .map_err(|e| BusError::io("write topic metadata", &meta_path, e))?;
            log::sync_dir(&dir)?;
            log::sync_dir(&self.inner.dir.join("topics"))?;
            write_lock(&self.inner.topics)
                .entry(spec.name.clone())
                .or_insert_with(|| Arc::new(topic));
            created = true;
        }
        if created {
            self.inner.topics_version.fetch_add(1, Ordering::AcqRel);
        }
        Ok(created)
    }

    fn group(&self, name: &str) -> Result<Arc<Group>, BusError> {
        let mut groups = lock(&self.inner.groups);
        if let Some(g) = groups.get(name) {
            return Ok(Arc::clone(g));
        }
        let g = Arc::new(Group::open(&self.inner.dir.join("groups"), name)?);
        groups.insert(name.to_owned(), Arc::clone(&g));
        Ok(g)
    }
}

fn open_topic(
    dir: &Path,
    name: &str,
    meta: &TopicMeta,
    options: &EmbeddedOptions,
    metrics: &BusMetrics,
) -> Result<Topic, BusError> {
    let partitions = (0..meta.partitions)
        .map(|p| {
            PartitionLog::open(
                &dir.join(p.to_string()),
                options.segment_bytes,
                metrics.clone(),
            )
            .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Topic {
        name: name.to_owned(),
        partitions,
        retention: meta.retention_ms.map(Duration::from_millis),
        round_robin: AtomicU32::new(0),
        retention_checked_ms: AtomicI64::new(0),
    })
}

impl Topic {
    fn count(&self) -> u32 {
        u32::try_from(self.partitions.len()).unwrap_or(u32::MAX)
    }

    fn partition(&self, p: i32) -> Result<&Arc<PartitionLog>, BusError> {
        usize::try_from(p)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .ok_or_else(|| BusError::UnknownPartition {
                topic: self.name.clone(),
                partition: p,
                partitions: self.count(),
            })
    }

    fn pick(&self, r: &Record) -> Result<i32, BusError> {
        match (r.partition, &r.key) {
            (Some(p), _) => self.partition(p).map(|_| p),
            (None, Some(k)) => Ok(partition_for_key(k, self.count())),
            (None, None) => {
                let n = self.round_robin.fetch_add(1, Ordering::Relaxed);
                Ok(i32::try_from(n % self.count()).unwrap_or(0))
            }
        }
    }

    /// Drops expired segments, at most once a minute per topic.
    fn maybe_apply_retention(&self) -> Result<(), BusError> {
        let Some(retention) = self.retention else {
            return Ok(());
        };
        let now = now_ms();
        let last = self.retention_checked_ms.load(Ordering::Relaxed);
        if now - last < 60_000
            || self
                .retention_checked_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        let min = now - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        for p in &self.partitions {
            p.apply_retention(min)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Bus for EmbeddedBus {
    async fn create_topics(&self, topics: &[TopicSpec]) -> Result<(), BusError> {
        let this = self.clone();
        let specs = topics.to_vec();
        let created = tokio::task::spawn_blocking(move || this.create_blocking(&specs))
            .await
            .expect("create_topics task panicked")?;
        if created {
            self.notify();
        }
        Ok(())
    }

    async fn partitions(&self, topic: &str) -> Result<u32, BusError> {
        Ok(self.topic(topic)?.count())
    }

    async fn produce(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Ack>, BusError> {
        let t = self.topic(topic)?;
        let limit = self.inner.options.max_message_bytes;
        let mut by_partition: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            if r.value.len() > limit {
                return Err(BusError::TooLarge {
                    topic: topic.to_owned(),
                    size: r.value.len(),
                    limit,
                });
            }
            by_partition.entry(t.pick(r)?).or_default().push(i);
        }
        let started = Instant::now();
        let bytes: usize = records.iter().map(|r| r.value.len()).sum();
        let n = records.len();
        let t2 = Arc::clone(&t);
        let acks = tokio::task::spawn_blocking(move || -> Result<Vec<Ack>, BusError> {
            let now = now_ms();
            let mut acks = vec![
                Ack {
                    partition: 0,
                    offset: 0
                };
                records.len()
            ];
            for (p, idx) in by_partition {
                let batch: Vec<AppendRecord<'_>> = idx
                    .iter()
                    .map(|&i| AppendRecord {
                        key: records[i].key.as_deref(),
                        value: &records[i].value,
                        timestamp_ms: records[i].timestamp_ms.unwrap_or(now),
                    })
                    .collect();
                let offsets = t2.partition(p)?.append(&batch)?;
                for (i, offset) in idx.into_iter().zip(offsets) {
                    acks[i] = Ack {
                        partition: p,
                        offset,
                    };
                }
            }
            t2.maybe_apply_retention()?;
            Ok(acks)
        })
        .await
        .expect("produce task panicked");
        // wake consumers even after a partial failure: some partitions may have advanced
        self.notify();
        let acks = acks?;
        self.inner
            .metrics
            .produced("embedded", topic, n, bytes, started.elapsed());
        Ok(acks)
    }

    async fn subscribe(&self, config: ConsumerConfig) -> Result<Box<dyn Consumer>, BusError> {
        let matcher = Matcher::new(&config.subscription)?;
        let this = self.clone();
        let name = config.group.clone();
        let group = tokio::task::spawn_blocking(move || this.group(&name))
            .await
            .expect("group task panicked")?;
        let member = group.join(matcher);
        self.notify();
        Ok(Box::new(EmbeddedConsumer {
            bus: self.clone(),
            group,
            member,
            start: config.start,
            seen: None,
            positions: BTreeMap::new(),
            changes: self.inner.changes.subscribe(),
            next_first: 0,
        }))
    }

    async fn end_offset(&self, topic: &str, partition: i32) -> Result<i64, BusError> {
        Ok(self.topic(topic)?.partition(partition)?.high_watermark())
    }

    async fn read(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Message>, BusError> {
        let log = Arc::clone(self.topic(topic)?.partition(partition)?);
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.inner.changes.subscribe();
        // below the oldest kept record, the log reads from the oldest
        let from = from.max(0);
        loop {
            // mark the current state seen before looking, so no wake-up is missed
            changes.borrow_and_update();
            if from < log.high_watermark() {
                let log = Arc::clone(&log);
                let max_bytes = self.inner.options.max_poll_bytes;
                let records =
                    tokio::task::spawn_blocking(move || read_range(&log, from, max, max_bytes))
                        .await
                        .expect("read task panicked")?;
                if !records.is_empty() {
                    return Ok(records
                        .into_iter()
                        .map(|r| Message {
                            topic: topic.to_owned(),
                            partition,
                            offset: r.offset,
                            key: r.key,
                            value: r.value,
                            timestamp_ms: r.timestamp_ms,
                        })
                        .collect());
                }
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Ok(Vec::new()),
            }
        }
    }

    fn url(&self) -> &str {
        &self.inner.url
    }
}

/// Up to `max` durable records of one partition from `from` on (all of them up to the high
/// watermark, if fewer), read `max_bytes` at a time. Damage after some records ends the
/// read there (the next read, from the damaged offset, reports it). Blocking.
fn read_range(
    log: &PartitionLog,
    from: i64,
    max: usize,
    max_bytes: usize,
) -> Result<Vec<ReadRecord>, BusError> {
    let mut out = Vec::new();
    let mut cursor = Cursor::at(from);
    while out.len() < max {
        let (records, next) = match log.read(cursor, max - out.len(), max_bytes) {
            Ok(read) => read,
            Err(e) if out.is_empty() => return Err(e),
            Err(_) => break,
        };
        if records.is_empty() {
            break;
        }
        out.extend(records);
        cursor = next;
    }
    Ok(out)
}

/// A member of a consumer group on the embedded bus.
#[derive(Debug)]
struct EmbeddedConsumer {
    bus: EmbeddedBus,
    group: Arc<Group>,
    member: u64,
    start: StartFrom,
    /// (membership version, topics version) the assignment was computed for.
    seen: Option<(u64, u64)>,
    positions: BTreeMap<TopicPartition, (Arc<PartitionLog>, Cursor)>,
    changes: watch::Receiver<u64>,
    /// Which assigned partition is read first next time (fairness).
    next_first: usize,
}

impl EmbeddedConsumer {
    /// Recomputes the assignment if members or topics changed.
    fn refresh(&mut self) {
        let versions = (
            self.group.version(),
            self.bus.inner.topics_version.load(Ordering::Acquire),
        );
        if self.seen == Some(versions) {
            return;
        }
        let topics: Vec<Arc<Topic>> = read_lock(&self.bus.inner.topics)
            .values()
            .cloned()
            .collect();
        let all: Vec<TopicPartition> = topics
            .iter()
            .flat_map(|t| (0..t.count()).map(|p| TopicPartition::new(t.name.clone(), p as i32)))
            .collect();
        let (mine, members_version) = self.group.assignment(self.member, &all);
        let mut positions = BTreeMap::new();
        for tp in mine {
            if let Some(kept) = self.positions.remove(&tp) {
                positions.insert(tp, kept);
                continue;
            }
            let Some(topic) = topics.iter().find(|t| t.name == tp.topic) else {
                continue;
            };
            let log = Arc::clone(&topic.partitions[tp.partition as usize]);
            let offset = self.group.committed(&tp).unwrap_or(match self.start {
                StartFrom::Earliest => log.log_start(),
                StartFrom::Latest => log.high_watermark(),
            });
            positions.insert(tp, (log, Cursor::at(offset)));
        }
        for tp in self.positions.keys() {
            let _ = self.bus.inner.metrics.consumer_lag.remove_label_values(&[
                &self.group.name,
                &tp.topic,
                &tp.partition.to_string(),
            ]);
        }
        self.positions = positions;
        self.seen = Some((members_version, versions.1));
    }

    fn update_lag(&self) {
        for (tp, (log, cursor)) in &self.positions {
            self.bus
                .inner
                .metrics
                .consumer_lag
                .with_label_values(&[&self.group.name, &tp.topic, &tp.partition.to_string()])
                .set((log.high_watermark() - cursor.offset).max(0));
        }
    }

    async fn read_some(&mut self, max: usize) -> Result<Vec<Message>, BusError> {
        if self.positions.is_empty() || max == 0 {
            return Ok(Vec::new());
        }
        let mut work: Vec<(TopicPartition, Arc<PartitionLog>, Cursor)> = self
            .positions
            .iter()
            .filter(|(_, (log, c))| c.offset < log.high_watermark())
            .map(|(tp, (log, c))| (tp.clone(), Arc::clone(log), *c))
            .collect();
        if work.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.next_first % work.len();
        work.rotate_left(first);
        self.next_first = self.next_first.wrapping_add(1);
        let max_bytes = self.bus.inner.options.max_poll_bytes;
        let (messages, cursors) = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut cursors = Vec::new();
            let mut bytes = 0usize;
            for (tp, log, cursor) in work {
                if out.len() >= max || bytes >= max_bytes {
                    break;
                }
                let (records, next) = log.read(cursor, max - out.len(), max_bytes - bytes)?;
                for r in records {
                    bytes += r.value.len();
                    out.push(Message {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset: r.offset,
                        key: r.key,
                        value: r.value,
                        timestamp_ms: r.timestamp_ms,
                    });
                }
                cursors.push((tp, next));
            }
            Ok::<_, BusError>((out, cursors))
        })
        .await
        .expect("read task panicked")?;
        for (tp, next) in cursors {
            if let Some((_, c)) = self.positions.get_mut(&tp) {
                *c = next;
            }
        }
        self.bus.inner.metrics.consumed(&messages);
        Ok(messages)
    }

    fn owned(&self, tp: &TopicPartition) -> Result<(), BusError> {
        if self.positions.contains_key(tp) {
            Ok(())
        } else {
            Err(BusError::NotAssigned {
                group: self.group.name.clone(),
                topic: tp.topic.clone(),
                partition: tp.partition,
            })
        }
    }
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Message>, BusError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // mark the current state seen before looking, so no wake-up is missed
            self.changes.borrow_and_update();
            self.refresh();
            let messages = self.read_some(max).await?;
            self.update_lag();
            if !messages.is_empty() {
                return Ok(messages);
            }
            match tokio::time::timeout_at(deadline, self.changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Ok(Vec::new()),
            }
        }
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), BusError> {
        self.refresh();
        for (tp, _) in offsets {
            self.owned(tp)?;
        }
        let group = Arc::clone(&self.group);
        let dir = self.bus.inner.dir.join("groups");
        let offsets = offsets.to_vec();
        tokio::task::spawn_blocking(move || group.commit(&dir, &offsets))
            .await
            .expect("commit task panicked")
    }

    async fn seek(&mut self, topic: &str, partition: i32, to: SeekTo) -> Result<(), BusError> {
        self.refresh();
        let tp = TopicPartition::new(topic, partition);
        self.owned(&tp)?;
        let (log, cursor) = self.positions.get_mut(&tp).expect("owned");
        let offset = match to {
            SeekTo::Beginning => log.log_start(),
            SeekTo::End => log.high_watermark(),
            SeekTo::Offset(o) => o.max(0),
        };
        *cursor = Cursor::at(offset);
        Ok(())
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, BusError> {
        Ok(partitions
            .iter()
            .filter_map(|tp| self.group.committed(tp).map(|o| (tp.clone(), o)))
            .collect())
    }
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        for tp in self.positions.keys() {
            let _ = self.bus.inner.metrics.consumer_lag.remove_label_values(&[
                &self.group.name,
                &tp.topic,
                &tp.partition.to_string(),
            ]);
        }
        self.group.leave(self.member);
        self.bus.notify();
    }
}
