//! The loader: turns a list of samples and an epoch's order into batches of decoded
//! inputs, ahead of the training loop.
//!
//! - Samples are read a window of batches at a time (up to 16,384 samples, or 32 MiB of
//!   decoded input), grouped by object: the ranges of one segment are read with one
//!   `get_ranges`, ranges less than 4 KiB apart merged into one read (a remote store
//!   coalesces further), a whole object with one `get`. Up to `workers` windows are read and decoded at
//!   once; decoding runs on the blocking pool, never on the training thread.
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

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use flywheel_schemas::{BodyContent, read_body};
use flywheel_trainset::own_object;
use futures::StreamExt as _;
use object_store::{ObjectStore, ObjectStoreExt as _};
use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::TrainerError;
use crate::cache::{Cache, CacheKey};
use crate::decode::{BadSample, Shape, Stored, decode};

/// Most bytes of decoded input a loader window holds.
const WINDOW_BYTES: usize = 32 * 1024 * 1024;
/// Most samples in a loader window.
const WINDOW_SAMPLES: usize = 16_384;
/// Samples of one object this close together are read with one range read (the bytes
/// between them too): fewer, larger reads.
const MERGE_GAP: u64 = 4096;

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
    /// Where each delivered sample was among those asked for.
    positions: Vec<usize>,
    /// Where each skipped one was.
    skipped_positions: Vec<usize>,
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
    /// Samples read and decoded.
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

    /// The batches of `items` taken in `order`, `batch_size` at a time, read ahead. The
    /// receiver may be read from a blocking thread (`blocking_recv`); dropping it stops
    /// the reads. After an error nothing more comes.
    pub fn batches(
        &self,
        items: Arc<[Item]>,
        order: Vec<u32>,
        batch_size: usize,
    ) -> mpsc::Receiver<Result<Batch, TrainerError>> {
        let (tx, rx) = mpsc::channel(self.config.prefetch.max(1));
        let me = self.clone();
        let batch_size = batch_size.max(1);
        // batches are read a window at a time: one request per object for every sample
        // of the window in it, rather than one per object per batch
        let window = self.window(batch_size);
        self.runtime.spawn(async move {
            let chunks: Vec<Vec<u32>> = order.chunks(window).map(<[u32]>::to_vec).collect();
            let mut windows = futures::stream::iter(chunks)
                .map(|chunk| {
                    let picked: Vec<Item> =
                        chunk.iter().map(|&i| items[i as usize].clone()).collect();
                    me.load_window(picked, batch_size)
                })
                .buffered(me.config.workers.max(1));
            while let Some(batches) = windows.next().await {
                let batches = match batches {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                };
                for batch in batches {
                    if tx.send(Ok(batch)).await.is_err() {
                        return;
                    }
                }
            }
        });
        rx
    }

    /// Samples read at once: whole batches, about [`WINDOW_BYTES`] of decoded input and
    /// at most [`WINDOW_SAMPLES`].
    fn window(&self, batch_size: usize) -> usize {
        let per_sample = (self.shape.len() * 4).max(1);
        let samples = (WINDOW_BYTES / per_sample).clamp(1, WINDOW_SAMPLES);
        (samples / batch_size).max(1) * batch_size
    }

    /// Loads a window of samples and cuts it into batches.
    async fn load_window(
        &self,
        items: Vec<Item>,
        batch_size: usize,
    ) -> Result<Vec<Batch>, TrainerError> {
        let mut all = self.load(items).await?;
        if all.len() + all.skipped.len() <= batch_size {
            return Ok(vec![all]);
        }
        // the window's samples in order, each delivered or skipped; cut by position
        let width = self.shape.len();
        let mut out = Vec::new();
        let (mut delivered, mut skipped) = (0usize, 0usize);
        let positions = std::mem::take(&mut all.positions);
        let total = all.len() + all.skipped.len();
        for start in (0..total).step_by(batch_size) {
            let end = (start + batch_size).min(total);
            let mut b = Batch::default();
            while delivered < all.keys.len() && positions[delivered] < end {
                let i = delivered;
                b.keys.push(all.keys[i]);
                b.inputs
                    .extend_from_slice(&all.inputs[i * width..(i + 1) * width]);
                b.classes.push(all.classes[i]);
                b.weights.push(all.weights[i]);
                delivered += 1;
            }
            while skipped < all.skipped.len() && all.skipped_positions[skipped] < end {
                b.skipped.push(all.skipped[skipped].clone());
                skipped += 1;
            }
            out.push(b);
        }
        Ok(out)
    }

    /// Loads one batch of samples, in the order given.
    pub async fn load(&self, items: Vec<Item>) -> Result<Batch, TrainerError> {
        let n = items.len();
        let mut inputs: Vec<Option<Arc<[f32]>>> = vec![None; n];
        let mut bad: Vec<Option<String>> = vec![None; n];
        // what is not cached, by object: (item index, range)
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
                    inputs[i] = Some(values);
                    hits += 1;
                }
                None => wanted.entry(item.uri).or_default().push(i),
            }
        }
        self.stats.hits.fetch_add(hits, Ordering::Relaxed);

        // read: one request per object
        let mut stored: Vec<Option<Bytes>> = vec![None; n];
        for (uri, idx) in &wanted {
            let name = &self.source.uris[*uri as usize];
            let Some(path) = own_object(&self.source.tenant, name) else {
                for &i in idx {
                    bad[i] = Some(format!("its object {name} is not in this tenant's store"));
                }
                continue;
            };
            let segment: Vec<(usize, Range<u64>)> = (idx.iter())
                .filter_map(|&i| items[i].range.map(|(o, l)| (i, o..o + l)))
                .collect();
            let whole: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|&i| items[i].range.is_none())
                .collect();
            if !segment.is_empty() {
                // one read for samples close together: the gap between them is read too
                let mut segment = segment;
                segment.sort_by_key(|(_, r)| r.start);
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
                        for (i, r) in &segment {
                            while merged[at].end < r.end {
                                at += 1;
                            }
                            let m = &merged[at];
                            let part = &parts[at];
                            let (from, to) =
                                ((r.start - m.start) as usize, (r.end - m.start) as usize);
                            if to > part.len() {
                                bad[*i] = Some(format!("its range is past the end of {name}"));
                                continue;
                            }
                            stored[*i] = Some(part.slice(from..to));
                        }
                        let read: u64 = parts.iter().map(|p| p.len() as u64).sum();
                        self.stats.bytes_read.fetch_add(read, Ordering::Relaxed);
                    }
                    Err(object_store::Error::NotFound { .. }) => {
                        for (i, _) in &segment {
                            bad[*i] = Some(format!("its segment {name} is missing"));
                        }
                    }
                    Err(e) => return Err(TrainerError::blobs(format!("reading {name}"), e)),
                }
            }
            if !whole.is_empty() {
                match self.read_whole(name, &path).await? {
                    Some(bytes) => {
                        for &i in &whole {
                            stored[i] = Some(bytes.clone());
                        }
                    }
                    None => {
                        for &i in &whole {
                            bad[i] = Some(format!("its blob {name} is missing"));
                        }
                    }
                }
            }
        }

        // the blobs that stored forms name, when the input is an image
        let mut blobs: Vec<Option<Bytes>> = vec![None; n];
        if self.shape.is_image() {
            for (i, item) in items.iter().enumerate() {
                let (Some(body), Some(_)) = (&stored[i], item.range) else {
                    continue;
                };
                let Ok(parsed) = read_body(body) else {
                    continue; // decoding says why
                };
                let BodyContent::Blob(uri) = parsed.content else {
                    continue;
                };
                let Some(path) = own_object(&self.source.tenant, uri) else {
                    bad[i] = Some(format!("its blob {uri} is not in this tenant's store"));
                    continue;
                };
                match self.read_whole(uri, &path).await? {
                    Some(bytes) => blobs[i] = Some(bytes),
                    None => bad[i] = Some(format!("its blob {uri} is missing")),
                }
            }
        }

        // decode, off the async threads
        let todo: Vec<(usize, Bytes, Option<Bytes>, bool)> = (0..n)
            .filter(|&i| bad[i].is_none() && inputs[i].is_none())
            .filter_map(|i| {
                let whole = items[i].range.is_none();
                stored[i].take().map(|b| (i, b, blobs[i].take(), whole))
            })
            .collect();
        let shape = self.shape;
        let decoded = tokio::task::spawn_blocking(move || {
            todo.into_iter()
                .map(|(i, bytes, blob, whole)| {
                    let what = if whole {
                        Stored::Object(&bytes)
                    } else {
                        Stored::Body {
                            body: &bytes,
                            blob: blob.as_deref(),
                        }
                    };
                    (i, decode(shape, what))
                })
                .collect::<Vec<_>>()
        })
        .await
        .expect("decoding does not panic");
        self.stats
            .misses
            .fetch_add(decoded.len() as u64, Ordering::Relaxed);
        let mut fresh = Vec::with_capacity(decoded.len());
        for (i, result) in decoded {
            match result {
                Ok(values) => {
                    let values: Arc<[f32]> = values.into();
                    fresh.push((self.cache_key(&items[i]), values.clone()));
                    inputs[i] = Some(values);
                }
                Err(reason) => bad[i] = Some(reason),
            }
        }
        self.cache.put_many(fresh);

        let mut batch = Batch {
            inputs: Vec::with_capacity(n * self.shape.len()),
            ..Batch::default()
        };
        for (i, item) in items.iter().enumerate() {
            match (&inputs[i], bad[i].take(), &item.class) {
                (Some(values), None, Ok(class)) => {
                    batch.keys.push(item.key);
                    batch.inputs.extend_from_slice(values);
                    batch.classes.push(*class);
                    batch.weights.push(item.weight);
                    batch.positions.push(i);
                }
                (_, reason, _) => {
                    batch.skipped.push(BadSample {
                        key: item.key,
                        reason: reason.unwrap_or_else(|| "it was not read".into()),
                    });
                    batch.skipped_positions.push(i);
                }
            }
        }
        Ok(batch)
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
}
