//! The loader: turns a list of samples and an epoch's order into batches of decoded
//! inputs, ahead of the training loop.
//!
//! - Samples are read a window of batches at a time (the first window one batch, each next
//!   twice the one before, up to 65,536 samples or 32 MiB of decoded input): the first
//!   batch comes soon, and later windows hold enough samples of each object that most of
//!   their ranges are close together. A window's samples are grouped by object: the
//!   ranges of one segment are read with one `get_ranges`, ranges less than 4 KiB apart
//!   merged into one read (a remote store coalesces further), a whole object with one
//!   `get`; up to 8 objects of a window are read at once, each group decoded on the
//!   blocking pool (never on the training thread) as soon as it is read.
//! - Each window is a task of its own: up to `workers` of them are read and decoded while
//!   the training loop takes the batches of an earlier one.
//! - Decoded inputs go into the [`Cache`]; a sample found there is not read again.
//! - Batches are delivered in order through a channel `prefetch` batches deep, so the
//!   training loop only waits when the store cannot keep up.
//! - The order of an epoch ([`epoch_order`]) is a function of the training-set version,
//!   the epoch and the seed: the same with any number of workers.
//!
//! A sample that cannot be used (its object is missing or not the tenant's, it does not
//! decode, it has no class) is reported in its batch's `skipped`, with the reason; the
//! caller applies the pipeline's `on_bad_sample`. Other failures of the object store end
//! the stream with an error.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use flywheel_schemas::{BodyContent, read_body_view};
use flywheel_trainset::own_object;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::{ObjectStore, ObjectStoreExt as _};
use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::TrainerError;
use crate::cache::{Cache, CacheKey};
use crate::decode::{BadSample, Shape, Stored, decode_into};

/// Most bytes of decoded input a loader window holds.
const WINDOW_BYTES: usize = 32 * 1024 * 1024;
/// Most samples in a loader window.
const WINDOW_SAMPLES: usize = 65_536;
/// Samples of one object this close together are read with one range read (the bytes
/// between them too): fewer, larger reads.
const MERGE_GAP: u64 = 4096;
/// Objects of one window read at once.
const REQUESTS: usize = 8;

/// Where a training set's samples are: the tenant's object store and the objects its
/// samples name.
#[derive(Debug)]
pub struct Source {
    /// The object store.
    pub blobs: Arc<dyn ObjectStore>,
    /// The tenant (only its own objects are read).
    pub tenant: String,
    /// Object URIs, indexed by [`Item::uri`].
    pub uris: Vec<String>,
    /// The cache's name for the tenant, the dataset and the input shape.
    pub cache_id: u64,
}

impl Source {
    /// The cache's name for a tenant's dataset decoded to `shape`.
    pub fn cache_id(tenant: &str, dataset: &str, shape: Shape) -> u64 {
        let mut h = Sha256::new();
        h.update(tenant.as_bytes());
        h.update([0]);
        h.update(dataset.as_bytes());
        h.update([0]);
        h.update(serde_json::to_vec(&shape).expect("a shape serializes"));
        u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
    }
}

/// One sample to load.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Its key.
    pub key: u64,
    /// The changeset that added it.
    pub changeset: i64,
    /// Its object, an index into [`Source::uris`].
    pub uri: u32,
    /// Its range of a segment (offset, length); `None` for a whole object.
    pub range: Option<(u64, u64)>,
    /// Its class, or why it has none.
    pub class: Result<i64, Arc<str>>,
    /// Its weight.
    pub weight: f32,
}

/// Decoded samples, in the order asked for, without the skipped ones.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Their keys.
    pub keys: Vec<u64>,
    /// Their inputs, `keys.len()` times the shape's length.
    pub inputs: Vec<f32>,
    /// Their classes.
    pub classes: Vec<i64>,
    /// Their weights.
    pub weights: Vec<f32>,
    /// Samples of the batch that cannot be used, and why.
    pub skipped: Vec<BadSample>,
}

impl Batch {
    /// Samples in it.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds no sample.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The loader's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Windows of batches read and decoded at once.
    pub workers: usize,
    /// Batches ready ahead of the training loop.
    pub prefetch: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            prefetch: 8,
        }
    }
}

/// What the loader did, counted since it was made.
#[derive(Debug, Default)]
pub struct LoaderStats {
    /// Bytes read from the object store.
    pub bytes_read: AtomicU64,
    /// Requests made to it.
    pub requests: AtomicU64,
    /// Samples found in the cache.
    pub hits: AtomicU64,
    /// Samples not in the cache, read (or tried: a missing object's).
    pub misses: AtomicU64,
}

/// Loads a source's samples in batches. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Loader {
    source: Arc<Source>,
    shape: Shape,
    cache: Cache,
    config: LoaderConfig,
    stats: Arc<LoaderStats>,
    runtime: tokio::runtime::Handle,
}

/// What delivers batches of samples in a given order: the [`Loader`], or a benchmark's
/// baseline.
pub trait Feed: Send + Sync {
    /// The batches of `items` taken in `order`, `batch_size` at a time, read ahead; to be
    /// received on a blocking thread. After an error nothing more comes.
    fn batches(
        &self,
        items: Arc<[Item]>,
        order: Vec<u32>,
        batch_size: usize,
    ) -> mpsc::Receiver<Result<Batch, TrainerError>>;
}

impl Feed for Loader {
    fn batches(
        &self,
        items: Arc<[Item]>,
        order: Vec<u32>,
        batch_size: usize,
    ) -> mpsc::Receiver<Result<Batch, TrainerError>> {
        Loader::batches(self, items, order, batch_size)
    }
}

/// The order of an epoch's samples: a permutation of `0..n` drawn from the training-set
/// version, the epoch and the seed alone.
pub fn epoch_order(version: &str, epoch: u32, seed: u64, n: usize) -> Vec<u32> {
    let mut h = Sha256::new();
    h.update(b"flywheel epoch order\0");
    h.update(version.as_bytes());
    h.update(epoch.to_le_bytes());
    h.update(seed.to_le_bytes());
    let mut rng = rand_chacha::ChaCha8Rng::from_seed(h.finalize().into());
    let mut order: Vec<u32> = (0..u32::try_from(n).expect("fewer than 2^32 samples")).collect();
    order.shuffle(&mut rng);
    order
}

/// Where a window's sample's input is.
#[derive(Debug, Clone)]
enum Slot {
    /// Not read, or it cannot be used (the window's `bad` says why).
    None,
    /// Found in the cache.
    Cached(Arc<[f32]>),
    /// Decoded: the `at`-th input of group `group`.
    Decoded { group: usize, at: usize },
}

/// A window of samples read and decoded.
struct Window {
    items: Arc<[Item]>,
    slots: Vec<Slot>,
    /// The inputs each group of samples (those of one object) decoded to.
    groups: Vec<Vec<f32>>,
    /// Why a sample cannot be used.
    bad: Vec<Option<String>>,
    width: usize,
}

impl Window {
    /// Its batches, in order: each of `batch_size` samples asked for, the ones that
    /// cannot be used among its `skipped`.
    fn cut(mut self, batch_size: usize) -> Vec<Batch> {
        let (n, width) = (self.items.len(), self.width);
        let mut out = Vec::with_capacity(n.div_ceil(batch_size));
        for start in (0..n).step_by(batch_size) {
            let end = (start + batch_size).min(n);
            let mut b = Batch {
                keys: Vec::with_capacity(end - start),
                inputs: Vec::with_capacity((end - start) * width),
                classes: Vec::with_capacity(end - start),
                weights: Vec::with_capacity(end - start),
                skipped: Vec::new(),
            };
            for i in start..end {
                let item = &self.items[i];
                let input = match &self.slots[i] {
                    Slot::Cached(values) => Some(&values[..]),
                    Slot::Decoded { group, at } => {
                        Some(&self.groups[*group][at * width..(at + 1) * width])
                    }
                    Slot::None => None,
                };
                match (&item.class, input) {
                    (Ok(class), Some(input)) if self.bad[i].is_none() => {
                        b.keys.push(item.key);
                        b.inputs.extend_from_slice(input);
                        b.classes.push(*class);
                        b.weights.push(item.weight);
                    }
                    _ => b.skipped.push(BadSample {
                        key: item.key,
                        reason: self.bad[i]
                            .take()
                            .unwrap_or_else(|| "it was not read".into()),
                    }),
                }
            }
            out.push(b);
        }
        out
    }
}

/// The samples of one object in a window, read and decoded.
struct Group {
    /// Window indices of its samples.
    idx: Vec<usize>,
    /// Their inputs, in that order (a slot each, unspecified where it failed).
    inputs: Vec<f32>,
    /// Whether each decoded, or why not.
    results: Vec<Result<(), String>>,
}

/// The windows an epoch of `n` samples is read in: whole batches, the first one batch and
/// each next twice the one before, up to `most` samples; so the first batch comes soon and
/// the later ones in reads of the most samples a window holds.
fn windows(n: usize, batch_size: usize, most: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, batch_size.min(most));
    while start < n {
        let end = (start + size).min(n);
        out.push(start..end);
        start = end;
        size = (size * 2).min(most);
    }
    out
}

/// The windows being read ahead; dropped (the receiver gone, the runtime stopping), it
/// stops them.
struct Ahead(VecDeque<tokio::task::JoinHandle<Result<Vec<Batch>, TrainerError>>>);

impl Drop for Ahead {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Loader {
    /// A loader of `source` decoding to `shape`, caching in `cache`. Made inside a tokio
    /// runtime, on which it reads.
    pub fn new(source: Arc<Source>, shape: Shape, cache: Cache, config: LoaderConfig) -> Self {
        Self {
            source,
            shape,
            cache,
            config,
            stats: Arc::default(),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// The input shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// What it did so far.
    pub fn stats(&self) -> &LoaderStats {
        &self.stats
    }

    /// The batches of `items` taken in `order`, `batch_size` at a time, read ahead (up to
    /// `workers` windows being read and decoded, `prefetch` batches ready). The receiver
    /// may be read from a blocking thread (`blocking_recv`); dropping it stops the reads.
    /// After an error nothing more comes.
    pub fn batches(
        &self,
        items: Arc<[Item]>,
        order: Vec<u32>,
        batch_size: usize,
    ) -> mpsc::Receiver<Result<Batch, TrainerError>> {
        let (tx, rx) = mpsc::channel(self.config.prefetch.max(1));
        let me = self.clone();
        let batch_size = batch_size.max(1);
        let windows = windows(order.len(), batch_size, self.window(batch_size));
        self.runtime.spawn(async move {
            // each window is its own task, so the windows ahead are read and decoded while
            // this one waits for the training loop to take its batches
            let mut ahead = Ahead(VecDeque::new());
            let mut windows = windows.into_iter();
            let mut spawn_next = |ahead: &mut Ahead| {
                let range = windows.next()?;
                let picked: Vec<Item> = order[range]
                    .iter()
                    .map(|&i| items[i as usize].clone())
                    .collect();
                let me = me.clone();
                ahead.0.push_back(tokio::spawn(async move {
                    me.read_window(picked).await.map(|w| w.cut(batch_size))
                }));
                Some(())
            };
            for _ in 0..me.config.workers.max(1) {
                if spawn_next(&mut ahead).is_none() {
                    break;
                }
            }
            while let Some(next) = ahead.0.pop_front() {
                let batches = match next.await {
                    Ok(Ok(b)) => b,
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    Err(e) => {
                        // a window that panicked or was cancelled (the runtime stopping):
                        // the receiver must not take the end of the channel for the end of
                        // the epoch
                        let _ = tx
                            .send(Err(TrainerError::Loader(format!("a window's task: {e}"))))
                            .await;
                        return;
                    }
                };
                spawn_next(&mut ahead);
                for batch in batches {
                    if tx.send(Ok(batch)).await.is_err() {
                        return;
                    }
                }
            }
        });
        rx
    }

    /// Most samples read at once: whole batches, about [`WINDOW_BYTES`] of decoded input
    /// and at most [`WINDOW_SAMPLES`].
    fn window(&self, batch_size: usize) -> usize {
        let per_sample = (self.shape.len() * 4).max(1);
        let samples = (WINDOW_BYTES / per_sample).clamp(1, WINDOW_SAMPLES);
        (samples / batch_size).max(1) * batch_size
    }

    /// Reads and decodes a window of samples, in the order given: the samples of each
    /// object are a group, up to [`REQUESTS`] groups read at once, each decoded on the
    /// blocking pool as soon as it is read.
    async fn read_window(&self, items: Vec<Item>) -> Result<Window, TrainerError> {
        let n = items.len();
        let items: Arc<[Item]> = items.into();
        let mut slots = vec![Slot::None; n];
        let mut bad: Vec<Option<String>> = vec![None; n];
        // what is not cached, by object
        let mut wanted: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        let keys: Vec<CacheKey> = items.iter().map(|it| self.cache_key(it)).collect();
        let cached = self.cache.get_many(&keys);
        let mut hits = 0;
        for (i, (item, found)) in items.iter().zip(cached).enumerate() {
            if let Err(reason) = &item.class {
                bad[i] = Some(reason.to_string());
                continue;
            }
            match found {
                Some(values) => {
                    slots[i] = Slot::Cached(values);
                    hits += 1;
                }
                None => wanted.entry(item.uri).or_default().push(i),
            }
        }
        self.stats.hits.fetch_add(hits, Ordering::Relaxed);

        let groups: Vec<Group> = futures::stream::iter(wanted)
            .map(|(uri, idx)| self.read_group(uri, idx, items.clone()))
            .buffer_unordered(REQUESTS)
            .try_collect()
            .await?;
        let mut inputs = Vec::with_capacity(groups.len());
        for (g, group) in groups.into_iter().enumerate() {
            for (at, (i, result)) in group.idx.into_iter().zip(group.results).enumerate() {
                match result {
                    Ok(()) => slots[i] = Slot::Decoded { group: g, at },
                    Err(reason) => bad[i] = Some(reason),
                }
            }
            inputs.push(group.inputs);
        }
        Ok(Window {
            items,
            slots,
            groups: inputs,
            bad,
            width: self.shape.len(),
        })
    }

    /// Reads the samples `idx` of `items`, all in object `uri`, decodes them on the
    /// blocking pool and caches what decodes.
    async fn read_group(
        &self,
        uri: u32,
        idx: Vec<usize>,
        items: Arc<[Item]>,
    ) -> Result<Group, TrainerError> {
        let k = idx.len();
        let mut stored: Vec<Result<Bytes, String>> = vec![Err(String::new()); k];
        let name = &self.source.uris[uri as usize];
        let Some(path) = own_object(&self.source.tenant, name) else {
            let reason = format!("its object {name} is not in this tenant's store");
            return Ok(Group {
                results: vec![Err(reason); k],
                idx,
                inputs: Vec::new(),
            });
        };
        // samples with a range of a segment: one read, samples close together merged
        let mut segment: Vec<(usize, Range<u64>)> = (idx.iter().enumerate())
            .filter_map(|(j, &i)| items[i].range.map(|(o, l)| (j, o..o + l)))
            .collect();
        if !segment.is_empty() {
            segment.sort_unstable_by_key(|(_, r)| r.start);
            let mut merged: Vec<Range<u64>> = Vec::new();
            for (_, r) in &segment {
                match merged.last_mut() {
                    Some(m) if r.start <= m.end + MERGE_GAP => m.end = m.end.max(r.end),
                    _ => merged.push(r.clone()),
                }
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            match self.source.blobs.get_ranges(&path, &merged).await {
                Ok(parts) => {
                    let mut at = 0;
                    for (j, r) in &segment {
                        while merged[at].end < r.end {
                            at += 1;
                        }
                        let (m, part) = (&merged[at], &parts[at]);
                        let (from, to) = ((r.start - m.start) as usize, (r.end - m.start) as usize);
                        stored[*j] = if to > part.len() {
                            Err(format!("its range is past the end of {name}"))
                        } else {
                            Ok(part.slice(from..to))
                        };
                    }
                    let read: u64 = parts.iter().map(|p| p.len() as u64).sum();
                    self.stats.bytes_read.fetch_add(read, Ordering::Relaxed);
                }
                Err(object_store::Error::NotFound { .. }) => {
                    for (j, _) in &segment {
                        stored[*j] = Err(format!("its segment {name} is missing"));
                    }
                }
                Err(e) => return Err(TrainerError::blobs(format!("reading {name}"), e)),
            }
        }
        // samples that are the whole object: one read
        if idx.iter().any(|&i| items[i].range.is_none()) {
            let whole = match self.read_whole(name, &path).await? {
                Some(bytes) => Ok(bytes),
                None => Err(format!("its blob {name} is missing")),
            };
            for (j, &i) in idx.iter().enumerate() {
                if items[i].range.is_none() {
                    stored[j] = whole.clone();
                }
            }
        }
        // the blobs that stored forms name, when the input is an image
        let mut blobs: Vec<Option<Bytes>> = vec![None; k];
        if self.shape.is_image() {
            for (j, &i) in idx.iter().enumerate() {
                let (Ok(body), Some(_)) = (&stored[j], items[i].range) else {
                    continue;
                };
                let Ok(BodyContent::Blob(uri)) = read_body_view(body).map(|b| b.content) else {
                    continue; // decoding says why, if it is bad
                };
                let Some(path) = own_object(&self.source.tenant, uri) else {
                    stored[j] = Err(format!("its blob {uri} is not in this tenant's store"));
                    continue;
                };
                match self.read_whole(uri, &path).await? {
                    Some(bytes) => blobs[j] = Some(bytes),
                    None => stored[j] = Err(format!("its blob {uri} is missing")),
                }
            }
        }

        // decode into the group's buffer, off the async threads; cache what decodes
        let (shape, cache, source) = (self.shape, self.cache.clone(), self.source.cache_id);
        let group = tokio::task::spawn_blocking(move || {
            let width = shape.len();
            let mut inputs = vec![0f32; k * width];
            let mut results = Vec::with_capacity(k);
            let mut fresh = Vec::new();
            for (j, (got, blob)) in stored.into_iter().zip(blobs).enumerate() {
                let item = &items[idx[j]];
                let result = got.and_then(|bytes| {
                    let what = if item.range.is_none() {
                        Stored::Object(&bytes)
                    } else {
                        Stored::Body {
                            body: &bytes,
                            blob: blob.as_deref(),
                        }
                    };
                    decode_into(shape, what, &mut inputs[j * width..(j + 1) * width])
                });
                if result.is_ok() && cache.capacity() > 0 {
                    let key = CacheKey {
                        source,
                        key: item.key,
                        changeset: item.changeset,
                    };
                    fresh.push((key, inputs[j * width..(j + 1) * width].into()));
                }
                results.push(result);
            }
            cache.put_many(fresh);
            Group {
                idx,
                inputs,
                results,
            }
        })
        .await
        .expect("decoding does not panic");
        self.stats.misses.fetch_add(k as u64, Ordering::Relaxed);
        Ok(group)
    }

    /// A whole object; `None` if it is missing.
    async fn read_whole(
        &self,
        name: &str,
        path: &object_store::path::Path,
    ) -> Result<Option<Bytes>, TrainerError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let got = match self.source.blobs.get(path).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(TrainerError::blobs(format!("reading {name}"), e)),
        };
        let bytes = got
            .bytes()
            .await
            .map_err(|e| TrainerError::blobs(format!("reading {name}"), e))?;
        self.stats
            .bytes_read
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(Some(bytes))
    }

    fn cache_key(&self, item: &Item) -> CacheKey {
        CacheKey {
            source: self.source.cache_id,
            key: item.key,
            changeset: item.changeset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_order_is_a_permutation_fixed_by_version_epoch_and_seed() {
        let a = epoch_order("v1", 0, 7, 1000);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_eq!(a, epoch_order("v1", 0, 7, 1000));
        assert_ne!(a, epoch_order("v1", 1, 7, 1000));
        assert_ne!(a, epoch_order("v1", 0, 8, 1000));
        assert_ne!(a, epoch_order("v2", 0, 7, 1000));
        assert!(epoch_order("v1", 0, 7, 0).is_empty());
    }

    #[test]
    fn windows_grow_from_one_batch_to_the_most_and_cover_the_epoch() {
        assert_eq!(
            windows(1000, 64, 256),
            vec![0..64, 64..192, 192..448, 448..704, 704..960, 960..1000]
        );
        assert_eq!(windows(10, 64, 256), vec![0..10]);
        assert_eq!(windows(128, 64, 64), vec![0..64, 64..128]);
        assert!(windows(0, 64, 256).is_empty());
    }
}
