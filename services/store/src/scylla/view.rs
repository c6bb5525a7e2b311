//! Reads of datasets, changesets and the view. Every read first takes the dataset's head
//! and ignores what lies past it: the rows of a commit under way are written before the
//! head moves, so they are invisible until it does, and then all visible at once.
//!
//! A view read folds history: it reads every entry of the keys in its range (adds,
//! removes, relabels, in changeset order) and keeps the keys whose fold ends in the view.

use std::collections::{BTreeMap, HashMap};

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::db::Stmt;
use super::fold::{Event, Folder};
use super::layout::{
    KEY_BUCKET_BITS, Probe, key_buckets, key_to_cql, plan_probes, time_bucket, time_buckets,
};
use super::rows::{ChangesetRow, Entry, EntryRow, OffsetsMap, decode, merge_offsets};
use super::schema::table;
use super::tenant::ScyllaTenant;
use crate::StoreError;
use crate::model::{ChangesetRecord, Dataset, IndexRow, describe_changeset};
use flywheel_topics::TopicPartition;

/// Reads run this many requests at once.
const READ_CONCURRENCY: usize = 8;

/// `dataset` kinds of the `buckets` table.
pub(crate) const KEY_BUCKETS: &str = "k";
pub(crate) const TIME_BUCKETS: &str = "t";

type DatasetRow = (String, i64, i64, i64, i64);

fn dataset_from((name, created_at, head, samples, bytes): DatasetRow) -> Dataset {
    Dataset {
        name,
        created_at,
        head,
        samples,
        bytes,
    }
}

pub(crate) async fn dataset(t: &ScyllaTenant, name: &str) -> Result<Option<Dataset>, StoreError> {
    Ok(t.ks
        .one::<DatasetRow>("read dataset", &t.st.dataset, (name,))
        .await?
        .map(dataset_from))
}

pub(crate) async fn datasets(t: &ScyllaTenant) -> Result<Vec<Dataset>, StoreError> {
    let mut all: Vec<Dataset> =
        t.ks.all::<DatasetRow>("list datasets", &t.st.datasets, ())
            .await?
            .into_iter()
            .map(dataset_from)
            .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// The dataset's head, 0 if it does not exist.
async fn head(t: &ScyllaTenant, name: &str) -> Result<i64, StoreError> {
    Ok(dataset(t, name).await?.map_or(0, |d| d.head))
}

/// Reads the entries of a changeset, all parts in key order.
pub(crate) async fn entries(
    t: &ScyllaTenant,
    dataset: &str,
    id: i64,
    parts: i32,
) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    for part in 0..parts {
        let rows: Vec<EntryRow> =
            t.ks.all("read changeset entries", &t.st.entries, (dataset, id, part))
                .await?;
        for row in rows {
            out.push(decode(&t.ks, table::CHANGESET_ENTRIES, row)?);
        }
    }
    Ok(out)
}

/// A stored changeset row's record, with its removed keys and relabels.
async fn record(t: &ScyllaTenant, row: &ChangesetRow) -> Result<ChangesetRecord, StoreError> {
    let mut record = row.record(&t.ks)?;
    if row.removed_count > 0 || row.relabel_count > 0 {
        for e in entries(t, &row.dataset, row.id, row.parts).await? {
            match e.event {
                Event::Remove => record.removed.push(e.key),
                Event::Relabel(label) => record.relabels.push((e.key, label)),
                Event::Add(_) => {}
            }
        }
    }
    Ok(record)
}

/// The stored row of a changeset (committed or not).
pub(crate) async fn changeset_row(
    t: &ScyllaTenant,
    dataset: &str,
    id: i64,
) -> Result<Option<ChangesetRow>, StoreError> {
    t.ks.one::<ChangesetRow>("read changeset", &t.st.changeset, (dataset, id))
        .await
}

pub(crate) async fn changeset(
    t: &ScyllaTenant,
    dataset: &str,
    id: i64,
) -> Result<Option<ChangesetRecord>, StoreError> {
    if id < 1 || id > head(t, dataset).await? {
        return Ok(None);
    }
    match changeset_row(t, dataset, id).await? {
        Some(row) => Ok(Some(record(t, &row).await?)),
        None => Err(t.ks.corrupt(
            format!("dataset {dataset:?}"),
            format!(
                "{} is committed but missing",
                describe_changeset(dataset, id)
            ),
        )),
    }
}

pub(crate) async fn changesets(
    t: &ScyllaTenant,
    dataset: &str,
) -> Result<Vec<ChangesetRecord>, StoreError> {
    let head = head(t, dataset).await?;
    if head < 1 {
        return Ok(Vec::new());
    }
    let rows: Vec<ChangesetRow> =
        t.ks.all("list changesets", &t.st.changesets, (dataset, head))
            .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(record(t, row).await?);
    }
    Ok(out)
}

pub(crate) async fn rows_by_changeset(
    t: &ScyllaTenant,
    dataset: &str,
    id: i64,
) -> Result<Vec<IndexRow>, StoreError> {
    if id < 1 || id > head(t, dataset).await? {
        return Ok(Vec::new());
    }
    let Some(row) = changeset_row(t, dataset, id).await? else {
        return Ok(Vec::new());
    };
    Ok(entries(t, dataset, id, row.parts)
        .await?
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Add(row) => Some(row),
            _ => None,
        })
        .collect())
}

/// The buckets of a dataset's directory within `range`, in order.
async fn bucket_list(
    t: &ScyllaTenant,
    dataset: &str,
    kind: &'static str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<BoxStream<'static, Result<i64, StoreError>>, StoreError> {
    let rows =
        t.ks.stream::<(i64,)>(
            "read bucket directory",
            &t.st.buckets,
            (dataset, kind, *range.start(), *range.end()),
        )
        .await?;
    Ok(rows.map_ok(|(b,)| b).boxed())
}

/// The view as of changeset `as_of` (capped at the head), keys `from..=to`, by key.
pub(crate) async fn by_key(
    t: &ScyllaTenant,
    dataset: &str,
    as_of: i64,
    (from, to): (u64, u64),
    limit: usize,
) -> Result<Vec<IndexRow>, StoreError> {
    let as_of = as_of.min(head(t, dataset).await?);
    let mut out = Vec::new();
    let Some(range) = key_buckets(from, to) else {
        return Ok(out);
    };
    if as_of < 1 || limit == 0 {
        return Ok(out);
    }
    let mut buckets = bucket_list(t, dataset, KEY_BUCKETS, range).await?;
    while let Some(bucket) = buckets.next().await {
        let bucket = bucket?;
        let first = (bucket as u64) << KEY_BUCKET_BITS;
        let last = first | ((1 << KEY_BUCKET_BITS) - 1);
        let (lo, hi) = (from.max(first), to.min(last));
        let values = (dataset, bucket, key_to_cql(lo), key_to_cql(hi));
        if fold_into(
            t,
            &t.st.by_key_range,
            values,
            as_of,
            |e| e.key,
            &mut out,
            limit,
        )
        .await?
        {
            break;
        }
    }
    Ok(out)
}

/// The current view of event times `from..to`, by event time then key.
pub(crate) async fn by_time(
    t: &ScyllaTenant,
    dataset: &str,
    (from, to): (i64, i64),
    limit: usize,
) -> Result<Vec<IndexRow>, StoreError> {
    let as_of = head(t, dataset).await?;
    let mut out = Vec::new();
    let Some(range) = time_buckets(from, to) else {
        return Ok(out);
    };
    if as_of < 1 || limit == 0 {
        return Ok(out);
    }
    let mut buckets = bucket_list(t, dataset, TIME_BUCKETS, range).await?;
    while let Some(bucket) = buckets.next().await {
        let bucket = bucket?;
        debug_assert!(time_bucket(from) <= bucket);
        let values = (dataset, bucket, from, to);
        let group = |e: &Entry| (e.event_time, e.key);
        if fold_into(
            t,
            &t.st.by_time_range,
            values,
            as_of,
            group,
            &mut out,
            limit,
        )
        .await?
        {
            break;
        }
    }
    Ok(out)
}

/// Streams a range of view entries through a fold, appending the rows in the view to
/// `out`; true once `out` holds `limit` rows.
async fn fold_into<G: PartialEq>(
    t: &ScyllaTenant,
    stmt: &Stmt,
    values: (&str, i64, i64, i64),
    as_of: i64,
    group: impl Fn(&Entry) -> G,
    out: &mut Vec<IndexRow>,
    limit: usize,
) -> Result<bool, StoreError> {
    let mut rows =
        t.ks.stream::<EntryRow>("read the view", stmt, values)
            .await?;
    let mut folder = Folder::new(as_of);
    while let Some(row) = rows.next().await {
        let e = decode(&t.ks, "view", row?)?;
        if let Some(done) = folder.push(group(&e), e.changeset, e.event) {
            out.push(done);
            if out.len() >= limit {
                return Ok(true);
            }
        }
    }
    out.extend(folder.finish());
    Ok(out.len() >= limit)
}

/// The rows of `keys` (ascending, distinct) in the view as of `as_of`; the others are
/// not in it. What a commit checks its keys against.
pub(crate) async fn live(
    t: &ScyllaTenant,
    dataset: &str,
    as_of: i64,
    keys: &[u64],
) -> Result<HashMap<u64, IndexRow>, StoreError> {
    if as_of < 1 || keys.is_empty() {
        return Ok(HashMap::new());
    }
    let probes: Vec<_> = plan_probes(keys)
        .into_iter()
        .map(|probe| probe_keys(t, dataset, as_of, probe))
        .collect();
    let found: Vec<Vec<IndexRow>> = futures::stream::iter(probes)
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(found
        .into_iter()
        .flatten()
        .filter(|row| keys.binary_search(&row.key).is_ok())
        .map(|row| (row.key, row))
        .collect())
}

async fn probe_keys(
    t: &ScyllaTenant,
    dataset: &str,
    as_of: i64,
    probe: Probe,
) -> Result<Vec<IndexRow>, StoreError> {
    let mut out = Vec::new();
    match probe {
        Probe::Range { bucket, from, to } => {
            let values = (dataset, bucket, key_to_cql(from), key_to_cql(to));
            fold_into(
                t,
                &t.st.by_key_range,
                values,
                as_of,
                |e| e.key,
                &mut out,
                usize::MAX,
            )
            .await?;
        }
        Probe::Keys { bucket, keys } => {
            let keys: Vec<i64> = keys.into_iter().map(key_to_cql).collect();
            let rows: Vec<EntryRow> =
                t.ks.all("check keys", &t.st.by_key_in, (dataset, bucket, keys))
                    .await?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in rows {
                entries.push(decode(&t.ks, table::VIEW_BY_KEY, row)?);
            }
            // IN answers may come grouped by key in the order asked; sort to be sure
            entries.sort_by_key(|e| (e.key, e.changeset));
            let mut folder = Folder::new(as_of);
            for e in entries {
                out.extend(folder.push(e.key, e.changeset, e.event));
            }
            out.extend(folder.finish());
        }
    }
    Ok(out)
}

pub(crate) async fn consumer_offsets(
    t: &ScyllaTenant,
    consumer: &str,
) -> Result<BTreeMap<TopicPartition, i64>, StoreError> {
    let maps: Vec<(Option<OffsetsMap>,)> =
        t.ks.all("read consumer offsets", &t.st.dataset_offsets, ())
            .await?;
    Ok(merge_offsets(
        consumer,
        maps.iter().filter_map(|(m,)| m.as_ref()),
    ))
}
