//! What a commit writes and deletes under its claim (steps 3 and 4 of `commit`): the
//! rows a previous holder of the claim left, then the changeset's own rows, in the order
//! that keeps its entries a complete list of the view rows it wrote. Every batch is one
//! partition, carries the claim's time (or the time just before it, for deletes) as its
//! timestamp, and is sent only while the claim's write deadline allows.

use std::collections::{BTreeSet, HashMap};

use futures::{StreamExt, TryStreamExt};
use scylla::serialize::row::SerializeRow;

use super::claim::{self, Lease, Listed, delete_timestamp};
use super::db::Stmt;
use super::hash::Hashes;
use super::layout::{self, key_bucket, key_to_cql, part_of, time_bucket};
use super::rows::{Cols, NewChangesetRow};
use super::tenant::ScyllaTenant;
use super::view::{self, KEY_BUCKETS, TIME_BUCKETS};
use crate::StoreError;
use crate::model::{IndexRow, NewChangeset};

/// Batches written at once.
const WRITE_CONCURRENCY: usize = 8;

/// One entry of the changeset: what it does to a key, and at which event time the key's
/// row is.
#[derive(Debug, Clone, Copy)]
struct Item<'a> {
    key: u64,
    event_time: i64,
    cols: Cols<'a>,
}

/// Estimated bytes of an entry in a batch.
fn item_size(item: &Item<'_>) -> usize {
    use scylla::value::MaybeUnset::Set;
    let text = |v: &scylla::value::MaybeUnset<&str>| match v {
        Set(s) => s.len(),
        _ => 0,
    };
    64 + text(&item.cols.uri) + text(&item.cols.label)
}

/// The changeset's entries in key order (its lists hold distinct keys).
fn items<'a>(cs: &'a NewChangeset, live: &HashMap<u64, IndexRow>) -> Vec<Item<'a>> {
    let at = |key: u64| live.get(&key).map_or(0, |row| row.event_time);
    let mut items: Vec<Item<'a>> = cs
        .rows
        .iter()
        .map(|row| Item {
            key: row.key,
            event_time: row.event_time,
            cols: Cols::add(row),
        })
        .chain(cs.record.removed.iter().map(|&key| Item {
            key,
            event_time: at(key),
            cols: Cols::remove(),
        }))
        .chain(cs.record.relabels.iter().map(|(key, label)| Item {
            key: *key,
            event_time: at(*key),
            cols: Cols::relabel(label.as_deref()),
        }))
        .collect();
    items.sort_by_key(|i| i.key);
    items
}

/// Deletes what earlier holders of the claim on changeset `id` wrote (step 3): the view
/// rows the stored changeset's entries list, then those entries, then the changeset row
/// (the list goes last, so a commit that stops half-way leaves it for the next). The
/// changeset row is deleted even when none is found: a write of it still under way must
/// not lend cells to ours.
pub(crate) async fn clear(
    t: &ScyllaTenant,
    ds: &str,
    id: i64,
    lease: &Lease,
) -> Result<(), StoreError> {
    let at = delete_timestamp(lease.since);
    if let Some(stored) = view::changeset_row(t, ds, id).await? {
        let listed = view::entries(t, ds, id, stored.parts)
            .await?
            .into_iter()
            .map(|e| {
                e.event_time
                    .map(|event_time| Listed {
                        key: e.key,
                        event_time,
                    })
                    .ok_or_else(|| {
                        t.ks.corrupt(
                            format!("entry of key {} of changeset {id} of dataset {ds:?}", e.key),
                            "it has no event time",
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let plan = claim::cleanup(&listed);
        let mut jobs: Vec<Job<'_>> = Vec::new();
        for b in plan.by_key {
            let values = b
                .iter()
                .map(|&(bucket, key)| (ds, bucket, key_to_cql(key), id))
                .collect();
            jobs.push(Job::ByKeyDelete(values));
        }
        for b in plan.by_time {
            let values = b
                .iter()
                .map(|&(bucket, event_time, key)| (ds, bucket, event_time, key_to_cql(key), id))
                .collect();
            jobs.push(Job::ByTimeDelete(values));
        }
        run(t, jobs, at, lease).await?;
        let parts = (0..stored.parts).map(|part| Job::EntriesDelete(vec![(ds, id, part)]));
        run(t, parts.collect(), at, lease).await?;
    }
    lease.check().map_err(|e| expired(t, e))?;
    t.ks.exec("clear changeset", &t.st.changeset_delete.at(at), (ds, id))
        .await?;
    Ok(())
}

/// The error of a commit past its write deadline: retriable, since committing the same
/// changeset again takes the claim anew.
fn expired(t: &ScyllaTenant, e: claim::Expired) -> StoreError {
    StoreError::Scylla {
        op: "write changeset",
        target: t.ks.describe(),
        retriable: true,
        source: Box::new(e),
    }
}

/// Runs batches, `WRITE_CONCURRENCY` at a time, at timestamp `at`, each only while the
/// lease allows.
async fn run(
    t: &ScyllaTenant,
    jobs: Vec<Job<'_>>,
    at: i64,
    lease: &Lease,
) -> Result<(), StoreError> {
    let runs: Vec<_> = jobs.into_iter().map(|job| job.run(t, at, lease)).collect();
    futures::stream::iter(runs)
        .buffer_unordered(WRITE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Writes everything of the changeset but the head (step 4), at the claim's time: the
/// changeset row, then all its entries, then the view tables and the bucket directory,
/// so that the entries of a commit that stops part-way list every view row it wrote.
pub(crate) async fn write(
    t: &ScyllaTenant,
    cs: &NewChangeset,
    h: &Hashes,
    live: &HashMap<u64, IndexRow>,
    lease: &Lease,
) -> Result<(), StoreError> {
    let r = &cs.record;
    let (ds, id) = (r.dataset.as_str(), r.id);
    let items = items(cs, live);
    let parts = layout::parts(items.len());
    lease.check().map_err(|e| expired(t, e))?;
    t.ks.exec(
        "write changeset",
        &t.st.changeset_put.at(lease.since),
        NewChangesetRow::new(cs, &h.record, &h.rows, parts),
    )
    .await?;

    let mut jobs: Vec<Job<'_>> = Vec::new();
    let numbered: Vec<(usize, Item<'_>)> = items.iter().copied().enumerate().collect();
    for b in layout::batches(numbered, |(n, _)| part_of(*n), |(_, i)| item_size(i)) {
        let values = b
            .iter()
            .map(|(n, i)| {
                let c = i.cols;
                (
                    ds,
                    id,
                    part_of(*n),
                    key_to_cql(i.key),
                    c.op,
                    c.uri,
                    c.seg_offset,
                    c.seg_length,
                    c.label,
                    i.event_time,
                    c.size,
                )
            })
            .collect();
        jobs.push(Job::Entries(values));
    }
    run(t, jobs, lease.since, lease).await?;

    let mut jobs: Vec<Job<'_>> = Vec::new();
    for b in layout::batches(items.clone(), |i| key_bucket(i.key), item_size) {
        let values = b
            .iter()
            .map(|i| {
                let c = i.cols;
                (
                    ds,
                    key_bucket(i.key),
                    key_to_cql(i.key),
                    id,
                    c.op,
                    c.uri,
                    c.seg_offset,
                    c.seg_length,
                    c.label,
                    i.event_time,
                    c.size,
                )
            })
            .collect();
        jobs.push(Job::ByKey(values));
    }
    for b in layout::batches(items.clone(), |i| time_bucket(i.event_time), item_size) {
        let values = b
            .iter()
            .map(|i| {
                let c = i.cols;
                (
                    ds,
                    time_bucket(i.event_time),
                    i.event_time,
                    key_to_cql(i.key),
                    id,
                    c.op,
                    c.uri,
                    c.seg_offset,
                    c.seg_length,
                    c.label,
                    c.size,
                )
            })
            .collect();
        jobs.push(Job::ByTime(values));
    }
    let key_buckets: BTreeSet<i64> = items.iter().map(|i| key_bucket(i.key)).collect();
    let time_buckets: BTreeSet<i64> = items.iter().map(|i| time_bucket(i.event_time)).collect();
    for (kind, buckets) in [(KEY_BUCKETS, key_buckets), (TIME_BUCKETS, time_buckets)] {
        let all: Vec<i64> = buckets.into_iter().collect();
        for chunk in all.chunks(layout::BATCH_ROWS) {
            jobs.push(Job::Buckets(chunk.iter().map(|b| (ds, kind, *b)).collect()));
        }
    }

    run(t, jobs, lease.since, lease).await
}

type Unset<T> = scylla::value::MaybeUnset<T>;

/// `(dataset, changeset, part, key, op, uri, seg_offset, seg_length, label, event_time, size)`
type EntryValues<'a> = (
    &'a str,
    i64,
    i32,
    i64,
    i8,
    Unset<&'a str>,
    Unset<i64>,
    Unset<i64>,
    Unset<&'a str>,
    i64,
    Unset<i64>,
);

/// `(dataset, bucket, key, changeset, op, uri, seg_offset, seg_length, label, event_time, size)`
type ByKeyValues<'a> = (
    &'a str,
    i64,
    i64,
    i64,
    i8,
    Unset<&'a str>,
    Unset<i64>,
    Unset<i64>,
    Unset<&'a str>,
    i64,
    Unset<i64>,
);

/// `(dataset, bucket, event_time, key, changeset, op, uri, seg_offset, seg_length, label, size)`
type ByTimeValues<'a> = (
    &'a str,
    i64,
    i64,
    i64,
    i64,
    i8,
    Unset<&'a str>,
    Unset<i64>,
    Unset<i64>,
    Unset<&'a str>,
    Unset<i64>,
);

/// One batch of the commit's writes or deletes.
enum Job<'a> {
    Entries(Vec<EntryValues<'a>>),
    ByKey(Vec<ByKeyValues<'a>>),
    ByTime(Vec<ByTimeValues<'a>>),
    Buckets(Vec<(&'a str, &'static str, i64)>),
    /// `(dataset, bucket, key, changeset)`
    ByKeyDelete(Vec<(&'a str, i64, i64, i64)>),
    /// `(dataset, bucket, event_time, key, changeset)`
    ByTimeDelete(Vec<(&'a str, i64, i64, i64, i64)>),
    /// `(dataset, changeset, part)`: a whole partition
    EntriesDelete(Vec<(&'a str, i64, i32)>),
}

impl Job<'_> {
    /// Sends the batch at timestamp `at`, if the lease still allows writing.
    async fn run(self, t: &ScyllaTenant, at: i64, lease: &Lease) -> Result<(), StoreError> {
        async fn go<V: SerializeRow>(
            t: &ScyllaTenant,
            op: &'static str,
            stmt: &Stmt,
            values: Vec<V>,
            at: i64,
        ) -> Result<(), StoreError> {
            t.ks.batch(op, &stmt.at(at), values).await
        }
        lease.check().map_err(|e| expired(t, e))?;
        let (write, clear) = ("write changeset", "clear changeset");
        match self {
            Job::Entries(v) => go(t, write, &t.st.entry_put, v, at).await,
            Job::ByKey(v) => go(t, write, &t.st.by_key_put, v, at).await,
            Job::ByTime(v) => go(t, write, &t.st.by_time_put, v, at).await,
            Job::Buckets(v) => go(t, write, &t.st.bucket_put, v, at).await,
            Job::ByKeyDelete(v) => go(t, clear, &t.st.by_key_delete, v, at).await,
            Job::ByTimeDelete(v) => go(t, clear, &t.st.by_time_delete, v, at).await,
            Job::EntriesDelete(v) => go(t, clear, &t.st.entries_delete, v, at).await,
        }
    }
}
