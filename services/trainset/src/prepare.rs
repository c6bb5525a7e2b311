//! Preparing a training set: pin the query, read the dataset's view as of its changeset,
//! select, and write the manifest; then record the training set under its version.
//!
//! The view is read changeset by changeset (each changeset's rows by key), which is the
//! manifest's order. Keys removed or relabelled later are folded in from the changesets'
//! own lists, so memory grows with the edited keys, not with the dataset. A percentage
//! keeps the event times of the candidates (8 bytes each) to find its cutoff; a selection
//! keeps the selected candidates' scores. Each of those needs one more read of the view.
//! A key list is read whole before the view (12 bytes a key) and looked up per row.

use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use flywheel_schemas::ChangesetKind;
use flywheel_store::{ChangesetRecord, RowBlock, TenantStore, TrainsetRecord};
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;

use crate::TrainsetError;
use crate::keys::read_key_list;
use crate::manifest::{Footer, ManifestWriter, RestrictedPart, ViewLabel};
use crate::query::{Query, QueryRequest, Selection};

/// Bytes gathered before a write to the object store.
const WRITE_CHUNK: usize = 8 * 1024 * 1024;
/// Changesets whose rows are read ahead.
const READ_AHEAD: usize = 2;

/// A prepared training set.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Its record in the metadata store.
    pub record: TrainsetRecord,
    /// Its manifest's footer.
    pub footer: Footer,
    /// Whether this call made it (`false`: it had been prepared before).
    pub created: bool,
}

/// Where a training set's manifest is, relative to the blob store's root.
pub fn manifest_path(tenant: &str, dataset: &str, version: &str) -> String {
    format!("{tenant}/{dataset}/trainsets/{version}.manifest")
}

/// Prepares the training set a request asks for (or finds it prepared): pins the query to
/// the dataset's head, writes its manifest and records it. `now` is the record's time.
pub async fn prepare(
    store: &dyn TenantStore,
    blobs: &Arc<dyn ObjectStore>,
    request: &QueryRequest,
    now: i64,
) -> Result<Prepared, TrainsetError> {
    flywheel_schemas::check_dataset_name(&request.dataset)
        .map_err(|e| TrainsetError::invalid("dataset", e.detail))?;
    let dataset = store
        .dataset(&request.dataset)
        .await?
        .ok_or_else(|| TrainsetError::NotFound(format!("dataset {:?}", request.dataset)))?;
    let query = Query::pin(request, dataset.head)?;
    let version = query.version();
    if let Some(record) = store.trainset(version.as_str()).await? {
        let footer = read_footer(blobs, &record).await?;
        return Ok(Prepared {
            record,
            footer,
            created: false,
        });
    }
    let view = View::read(store, &query).await?;

    let cutoff = match query.percentage {
        Some(p) => Some(view.cutoff(p).await?),
        None => None,
    };
    let selected = match &query.selection {
        Some(Selection::Uniform { count, seed }) => {
            Some(view.select(*count, *seed, false, cutoff).await?)
        }
        Some(Selection::LabelBalanced { per_label, seed }) => {
            Some(view.select(*per_label, *seed, true, cutoff).await?)
        }
        Some(Selection::Keys { .. }) | None => None,
    };
    // an explicit key list: its keys ascending, and their weights
    let listed = match &query.selection {
        Some(Selection::Keys { list, count }) => {
            let tenant = store.tenant().as_str();
            let (keys, weights) = read_key_list(blobs, tenant, &query.dataset, list).await?;
            if keys.len() as u64 != *count {
                return Err(TrainsetError::invalid(
                    "selection.count",
                    format!(
                        "key list {list} holds {} keys, the query says {count}",
                        keys.len()
                    ),
                ));
            }
            Some((keys, weights))
        }
        _ => None,
    };
    let weighted = listed
        .as_ref()
        .is_some_and(|(_, w)| w.iter().any(|&x| x != 1.0));

    let path = manifest_path(store.tenant().as_str(), &query.dataset, version.as_str());
    let mut out = object_store::buffered::BufWriter::new(blobs.clone(), Path::from(path.clone()));
    let write_err = |e: std::io::Error| {
        TrainsetError::blobs(
            format!("writing manifest {path}"),
            object_store::Error::Generic {
                store: "manifest",
                source: Box::new(e),
            },
        )
    };
    let mut writer = ManifestWriter::new(weighted);
    let mut blocks = view.blocks();
    while let Some(block) = blocks.try_next().await? {
        let admitted = view.admitted(&block);
        for (i, label) in admitted {
            let weight = match &listed {
                Some((keys, weights)) => match keys.binary_search(&block.keys[i]) {
                    Ok(j) => weights[j],
                    Err(_) => continue,
                },
                None => 1.0,
            };
            if cutoff.is_none_or(|c| block.event_times[i] >= c)
                && selected
                    .as_ref()
                    .is_none_or(|s| s.keeps(block.keys[i], label.text(&block)))
            {
                writer.push_block_row(&block, i, label, weight);
            }
        }
        if let Some(bytes) = writer.drain(WRITE_CHUNK) {
            out.write_all(&bytes).await.map_err(write_err)?;
        }
    }
    drop(blocks);
    let (rest, footer) = writer.finish(version.clone(), query.clone(), view.restricted());
    out.write_all(&rest).await.map_err(write_err)?;
    out.shutdown().await.map_err(write_err)?;

    let record = TrainsetRecord {
        version: version.to_string(),
        dataset: query.dataset.clone(),
        query: serde_json::to_value(&query).expect("a query serializes"),
        head_changeset: query.as_of,
        manifest_uri: path,
        sample_count: i64::try_from(footer.samples).unwrap_or(i64::MAX),
        created_at: now,
    };
    let created = match store.put_trainset(record.clone()).await {
        Ok(_) => true,
        // another caller prepared the same version meanwhile: the same manifest bytes
        Err(flywheel_store::StoreError::Conflict { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    let record = store.trainset(version.as_str()).await?.unwrap_or(record);
    Ok(Prepared {
        record,
        footer,
        created,
    })
}

/// The dataset's view as of the query's changeset, reduced to what the query asks for:
/// which changesets to read, and the later removals and relabels of their keys.
struct View<'a> {
    store: &'a dyn TenantStore,
    query: &'a Query,
    changesets: Vec<ChangesetRecord>,
    /// The newest removal (changeset id) of each removed key, up to `as_of`.
    removed: HashMap<u64, i64>,
    /// The newest relabel of each relabelled key, up to `as_of`.
    relabelled: HashMap<u64, (i64, Option<String>)>,
}

impl<'a> View<'a> {
    async fn read(store: &'a dyn TenantStore, query: &'a Query) -> Result<Self, TrainsetError> {
        let mut changesets = store.changesets(&query.dataset).await?;
        changesets.retain(|c| c.id <= query.as_of);
        let mut removed = HashMap::new();
        let mut relabelled = HashMap::new();
        for c in &changesets {
            for &key in &c.removed {
                removed.insert(key, c.id);
            }
            for (key, label) in &c.relabels {
                relabelled.insert(*key, (c.id, label.clone()));
            }
        }
        Ok(Self {
            store,
            query,
            changesets,
            removed,
            relabelled,
        })
    }

    /// The row blocks of the changesets whose samples the query asks for, in order,
    /// read ahead.
    fn blocks(&self) -> impl Stream<Item = Result<RowBlock, TrainsetError>> + '_ {
        let ids: Vec<i64> = (self.changesets.iter())
            .filter(|c| matches!(c.kind, ChangesetKind::Add | ChangesetKind::Revert))
            .filter(|c| self.query.wants_changeset(c.id))
            .map(|c| c.id)
            .collect();
        let dataset = self.query.dataset.as_str();
        futures::stream::iter(ids)
            .map(move |id| async move { Ok(self.store.row_block(dataset, id).await?) })
            .buffered(READ_AHEAD)
    }

    /// The rows of a block that are in the view and pass the query's label and time
    /// filters, with their labels in the view.
    fn admitted<'b>(
        &'b self,
        block: &'b RowBlock,
    ) -> impl Iterator<Item = (usize, ViewLabel<'b>)> + 'b {
        let wanted: Vec<bool> = (block.labels.iter())
            .map(|l| self.query.wants_label(Some(l)))
            .collect();
        let unlabelled = self.query.wants_label(None);
        let (check_removed, check_relabelled) =
            (!self.removed.is_empty(), !self.relabelled.is_empty());
        (0..block.len()).filter_map(move |i| {
            let key = block.keys[i];
            if check_removed && self.removed.get(&key).is_some_and(|&m| m > block.changeset) {
                return None;
            }
            if !self.query.wants_time(block.event_times[i]) {
                return None;
            }
            let relabel = if check_relabelled {
                self.relabelled
                    .get(&key)
                    .filter(|(at, _)| *at > block.changeset)
            } else {
                None
            };
            let label = match relabel {
                Some((_, Some(text))) => ViewLabel::Text(text),
                Some((_, None)) => ViewLabel::None,
                None => match block.label_ids[i] {
                    Some(n) => ViewLabel::Block(n),
                    None => ViewLabel::None,
                },
            };
            let pass = match label {
                ViewLabel::None => unlabelled,
                ViewLabel::Block(n) => wanted[n as usize],
                ViewLabel::Text(t) => self.query.wants_label(Some(t)),
            };
            pass.then_some((i, label))
        })
    }

    /// The event time from which the newest fraction `p` of the candidates starts: the
    /// time of the ⌈p·n⌉-th newest. Samples at that very time are all kept, so ties can
    /// make the set a little larger than p·n.
    async fn cutoff(&self, p: f64) -> Result<i64, TrainsetError> {
        let mut times = Vec::new();
        let mut blocks = self.blocks();
        while let Some(block) = blocks.try_next().await? {
            times.extend(self.admitted(&block).map(|(i, _)| block.event_times[i]));
        }
        if times.is_empty() {
            return Ok(i64::MIN);
        }
        let n = times.len();
        let keep = ((p * n as f64).ceil() as usize).clamp(1, n);
        let (_, nth, _) = times.select_nth_unstable(n - keep);
        Ok(*nth)
    }

    /// The seeded selection among the candidates from `cutoff` on: `limit` of them, or
    /// `limit` of each label if `per_label`.
    async fn select(
        &self,
        limit: u64,
        seed: u64,
        per_label: bool,
        cutoff: Option<i64>,
    ) -> Result<Selected, TrainsetError> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut heaps: HashMap<Option<String>, BinaryHeap<(u64, u64)>> = HashMap::new();
        let mut blocks = self.blocks();
        while let Some(block) = blocks.try_next().await? {
            for (i, label) in self.admitted(&block) {
                if cutoff.is_some_and(|c| block.event_times[i] < c) {
                    continue;
                }
                let group = if per_label {
                    label.text(&block).map(str::to_owned)
                } else {
                    None
                };
                let key = block.keys[i];
                let heap = heaps.entry(group).or_default();
                let score = (score(seed, key), key);
                if heap.len() < limit {
                    heap.push(score);
                } else if heap.peek().is_some_and(|top| score < *top) {
                    heap.pop();
                    heap.push(score);
                }
            }
        }
        let bounds = heaps
            .into_iter()
            .map(|(group, heap)| {
                let bound = if heap.len() < limit {
                    (u64::MAX, u64::MAX)
                } else {
                    *heap.peek().expect("a full heap has a top")
                };
                (group, bound)
            })
            .collect();
        Ok(Selected {
            seed,
            per_label,
            bounds,
        })
    }

    /// The query changesets in the view whose rows the training set includes: those not
    /// reverted (or reverted and re-applied by a revert of the revert) by `as_of`.
    fn restricted(&self) -> Vec<RestrictedPart> {
        let by_id: HashMap<i64, &ChangesetRecord> =
            self.changesets.iter().map(|c| (c.id, c)).collect();
        // what a changeset does to a query changeset: (query changeset, active after it)
        fn effect(
            by_id: &HashMap<i64, &ChangesetRecord>,
            id: i64,
            depth: u32,
        ) -> Option<(i64, bool)> {
            let c = by_id.get(&id)?;
            match (c.kind, c.reverts) {
                (ChangesetKind::Query, _) => Some((id, true)),
                (ChangesetKind::Revert, Some(target)) if depth < 64 => {
                    effect(by_id, target, depth + 1).map(|(q, active)| (q, !active))
                }
                _ => None,
            }
        }
        let mut active: Vec<(i64, bool)> = Vec::new();
        for c in &self.changesets {
            if let Some((q, on)) = effect(&by_id, c.id, 0) {
                match active.iter_mut().find(|(id, _)| *id == q) {
                    Some(slot) => slot.1 = on,
                    None => active.push((q, on)),
                }
            }
        }
        active.sort_unstable();
        active
            .into_iter()
            .filter(|&(id, on)| on && self.query.wants_changeset(id))
            .filter_map(|(id, _)| {
                let query = by_id.get(&id)?.query.clone()?;
                Some(RestrictedPart {
                    changeset: id,
                    query,
                })
            })
            .collect()
    }
}

/// The bounds of a seeded selection: a sample is kept if its (score, key) is at most its
/// group's bound.
struct Selected {
    seed: u64,
    per_label: bool,
    bounds: HashMap<Option<String>, (u64, u64)>,
}

impl Selected {
    fn keeps(&self, key: u64, label: Option<&str>) -> bool {
        let group = if self.per_label {
            label.map(str::to_owned)
        } else {
            None
        };
        self.bounds
            .get(&group)
            .is_some_and(|bound| (score(self.seed, key), key) <= *bound)
    }
}

/// A sample's score under a seed: a hash, so selections do not depend on read order.
fn score(seed: u64, key: u64) -> u64 {
    splitmix64(seed ^ splitmix64(key))
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Reads a training set's footer from its manifest.
pub async fn read_footer(
    blobs: &Arc<dyn ObjectStore>,
    record: &TrainsetRecord,
) -> Result<Footer, TrainsetError> {
    use object_store::ObjectStoreExt as _;
    let path = Path::from(record.manifest_uri.as_str());
    let what = format!("manifest {}", record.manifest_uri);
    let meta = blobs
        .head(&path)
        .await
        .map_err(|e| TrainsetError::blobs(format!("reading {what}"), e))?;
    let total = meta.size;
    if total < crate::manifest::trailer_len() {
        return Err(TrainsetError::corrupt(what, "it is too short"));
    }
    let trailer = blobs
        .get_range(&path, total - crate::manifest::trailer_len()..total)
        .await
        .map_err(|e| TrainsetError::blobs(format!("reading {what}"), e))?;
    let len = crate::manifest::footer_len(&trailer, &what)?;
    let start = crate::manifest::footer_start(total, len);
    let tail = blobs
        .get_range(&path, start..total)
        .await
        .map_err(|e| TrainsetError::blobs(format!("reading {what}"), e))?;
    crate::manifest::read_footer(&tail, total, &what)
}
