//! Datasets, changesets and the sample index on SQLite: the changeset commit and the reads.
//!
//! History is kept: a changeset's added rows (`samples`), removals (`removals`) and
//! relabels (`relabels`) are rows of that changeset and are never rewritten. A sample is in
//! the view at changeset N when it was added at or before N and no removal of its key
//! follows the add up to N; its label is that of the newest relabel in that stretch, if
//! any. A key can only be added again after it was removed, so at most one add of a key is
//! ever in a view.

use std::collections::{BTreeMap, HashMap};

use flywheel_schemas::{RestrictedQuery, SourceRange};
use flywheel_topics::TopicPartition;
use rusqlite::{CachedStatement, OptionalExtension, Row, Transaction};

use super::db::{DbResult, Fail};
use crate::StoreError;
use crate::block::RowBlock;
use crate::model::{
    ChangesetRecord, CommitOutcome, Dataset, IndexRow, NewChangeset, SampleLocation,
    describe_changeset, kind_from_name, kind_name,
};

/// Keys are `u64`, SQLite integers `i64`: flipping the top bit maps one onto the other
/// keeping the order, so key ranges are index ranges.
pub(crate) fn key_to_sql(key: u64) -> i64 {
    (key ^ (1 << 63)) as i64
}

pub(crate) fn key_from_sql(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

fn to_int(value: u64, what: &str, key: u64) -> DbResult<i64> {
    i64::try_from(value).map_err(|_| {
        Fail::Store(StoreError::invalid(
            format!("{what} of key {key}"),
            format!("{value} is larger than {}", i64::MAX),
        ))
    })
}

fn limit_to_sql(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn corrupt(what: String, e: &serde_json::Error) -> Fail {
    Fail::Corrupt {
        what,
        reason: e.to_string(),
    }
}

// ---- datasets

/// A dataset and its row id.
struct DatasetRow {
    id: i64,
    dataset: Dataset,
}

const DATASET_COLUMNS: &str = "id, name, created_at, head, samples, bytes";

fn dataset_from(row: &Row<'_>) -> rusqlite::Result<DatasetRow> {
    Ok(DatasetRow {
        id: row.get(0)?,
        dataset: Dataset {
            name: row.get(1)?,
            created_at: row.get(2)?,
            head: row.get(3)?,
            samples: row.get(4)?,
            bytes: row.get(5)?,
        },
    })
}

fn dataset_row(tx: &Transaction<'_>, name: &str) -> DbResult<Option<DatasetRow>> {
    Ok(tx
        .prepare_cached(&format!(
            "SELECT {DATASET_COLUMNS} FROM datasets WHERE name = ?1"
        ))?
        .query_row([name], dataset_from)
        .optional()?)
}

fn dataset_id(tx: &Transaction<'_>, name: &str) -> DbResult<Option<i64>> {
    Ok(tx
        .prepare_cached("SELECT id FROM datasets WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

pub(crate) fn check_dataset_name(name: &str) -> Result<(), StoreError> {
    flywheel_schemas::check_dataset_name(name)
        .map_err(|e| StoreError::invalid(format!("dataset name {name:?}"), e.detail))
}

pub(crate) fn ensure_dataset(tx: &Transaction<'_>, name: &str, now: i64) -> DbResult<Dataset> {
    check_dataset_name(name)?;
    tx.prepare_cached(
        "INSERT INTO datasets (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
    )?
    .execute((name, now))?;
    let row = dataset_row(tx, name)?.expect("the dataset was just written");
    Ok(row.dataset)
}

pub(crate) fn dataset(tx: &Transaction<'_>, name: &str) -> DbResult<Option<Dataset>> {
    Ok(dataset_row(tx, name)?.map(|d| d.dataset))
}

pub(crate) fn datasets(tx: &Transaction<'_>) -> DbResult<Vec<Dataset>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {DATASET_COLUMNS} FROM datasets ORDER BY name"
    ))?;
    let rows = stmt.query_map([], dataset_from)?;
    Ok(rows
        .map(|r| r.map(|d| d.dataset))
        .collect::<Result<_, _>>()?)
}

// ---- changesets

/// What the `changesets` table holds of a changeset besides its rows, removals, relabels.
struct StoredChangeset {
    record: ChangesetRecord,
    consumer: String,
    offsets: Vec<(TopicPartition, i64)>,
}

type OffsetsJson = Vec<(String, i32, i64)>;

fn load_changeset(
    tx: &Transaction<'_>,
    ds: i64,
    dataset: &str,
    id: i64,
) -> DbResult<Option<StoredChangeset>> {
    let what = |field: &str| format!("{field} of {}", describe_changeset(dataset, id));
    let raw = tx
        .prepare_cached(
            "SELECT kind, created_at, sample_count, bytes, reverts, query, sources, consumer,
                    offsets
             FROM changesets WHERE dataset = ?1 AND id = ?2",
        )?
        .query_row((ds, id), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
            ))
        })
        .optional()?;
    let Some((kind, created_at, sample_count, bytes, reverts, query, sources, consumer, offsets)) =
        raw
    else {
        return Ok(None);
    };
    let kind = kind_from_name(&kind).ok_or_else(|| Fail::Corrupt {
        what: what("kind"),
        reason: format!("unknown kind {kind:?}"),
    })?;
    let query: Option<RestrictedQuery> = query
        .map(|q| serde_json::from_str(&q))
        .transpose()
        .map_err(|e| corrupt(what("query"), &e))?;
    let sources: Vec<SourceRange> =
        serde_json::from_str(&sources).map_err(|e| corrupt(what("sources"), &e))?;
    let segments = tx
        .prepare_cached(
            "SELECT uri FROM segments WHERE dataset = ?1 AND changeset = ?2 ORDER BY idx",
        )?
        .query_map((ds, id), |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    let offsets: OffsetsJson =
        serde_json::from_str(&offsets).map_err(|e| corrupt(what("offsets"), &e))?;

    let removed = tx
        .prepare_cached(
            "SELECT key FROM removals WHERE dataset = ?1 AND changeset = ?2 ORDER BY key",
        )?
        .query_map((ds, id), |r| r.get(0).map(key_from_sql))?
        .collect::<Result<Vec<u64>, _>>()?;
    let relabels = tx
        .prepare_cached(
            "SELECT key, label FROM relabels WHERE dataset = ?1 AND changeset = ?2 ORDER BY key",
        )?
        .query_map((ds, id), |r| Ok((key_from_sql(r.get(0)?), r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(StoredChangeset {
        record: ChangesetRecord {
            dataset: dataset.to_owned(),
            id,
            kind,
            created_at,
            sample_count,
            bytes,
            reverts,
            query,
            sources,
            segments,
            removed,
            relabels,
        },
        consumer,
        offsets: offsets
            .into_iter()
            .map(|(topic, partition, offset)| (TopicPartition::new(topic, partition), offset))
            .collect(),
    }))
}

pub(crate) fn changeset(
    tx: &Transaction<'_>,
    dataset: &str,
    id: i64,
) -> DbResult<Option<ChangesetRecord>> {
    let Some(ds) = dataset_id(tx, dataset)? else {
        return Ok(None);
    };
    Ok(load_changeset(tx, ds, dataset, id)?.map(|c| c.record))
}

pub(crate) fn changesets(tx: &Transaction<'_>, dataset: &str) -> DbResult<Vec<ChangesetRecord>> {
    let Some(ds) = dataset_id(tx, dataset)? else {
        return Ok(Vec::new());
    };
    let ids = tx
        .prepare_cached("SELECT id FROM changesets WHERE dataset = ?1 ORDER BY id")?
        .query_map([ds], |r| r.get(0))?
        .collect::<Result<Vec<i64>, _>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(c) = load_changeset(tx, ds, dataset, id)? {
            out.push(c.record);
        }
    }
    Ok(out)
}

/// Looks up whether keys are in a dataset's current view (statements prepared once per
/// commit, used once or twice per key).
struct Live<'c> {
    ds: i64,
    newest: CachedStatement<'c>,
    /// `None` when the dataset has no removal at all: then the newest add is live.
    removed_after: Option<CachedStatement<'c>>,
}

impl<'c> Live<'c> {
    fn new(tx: &'c Transaction<'_>, ds: i64) -> DbResult<Self> {
        let any_removals: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM removals WHERE dataset = ?1)")?
            .query_row([ds], |row| row.get(0))?;
        Ok(Self {
            ds,
            newest: tx.prepare_cached(
                "SELECT changeset, size FROM samples INDEXED BY samples_by_key
                 WHERE dataset = ?1 AND key = ?2 ORDER BY changeset DESC LIMIT 1",
            )?,
            removed_after: if any_removals {
                Some(tx.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM removals INDEXED BY removals_by_key
                     WHERE dataset = ?1 AND key = ?2 AND changeset > ?3)",
                )?)
            } else {
                None
            },
        })
    }

    /// The changeset of the live add of `key` (encoded), and its size; `None` if the key
    /// is not in the view.
    fn get(&mut self, key: i64) -> DbResult<Option<(i64, i64)>> {
        let newest: Option<(i64, i64)> = self
            .newest
            .query_row((self.ds, key), |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((changeset, size)) = newest else {
            return Ok(None);
        };
        if let Some(stmt) = &mut self.removed_after {
            let removed: bool = stmt.query_row((self.ds, key, changeset), |r| r.get(0))?;
            if removed {
                return Ok(None);
            }
        }
        Ok(Some((changeset, size)))
    }
}

/// Commits a normalized changeset (see `NewChangeset::normalize`) in the caller's
/// transaction; an error leaves the transaction to be rolled back.
pub(crate) fn commit(tx: &Transaction<'_>, cs: &NewChangeset) -> DbResult<CommitOutcome> {
    let r = &cs.record;
    let what = r.describe();
    let conflict = |detail: String| Fail::Store(StoreError::conflict(what.clone(), detail));

    let ds = match dataset_row(tx, &r.dataset)? {
        Some(d) => d,
        None if r.id == 1 => {
            ensure_dataset(tx, &r.dataset, r.created_at)?;
            dataset_row(tx, &r.dataset)?.expect("the dataset was just written")
        }
        None => {
            return Err(Fail::Store(StoreError::Gap {
                dataset: r.dataset.clone(),
                id: r.id,
                head: 0,
            }));
        }
    };
    let head = ds.dataset.head;
    if r.id <= head {
        let stored = load_changeset(tx, ds.id, &r.dataset, r.id)?.ok_or_else(|| Fail::Corrupt {
            what: format!("dataset {:?}", r.dataset),
            reason: format!("its head is {head}, but changeset {} is missing", r.id),
        })?;
        let differs = if stored.record != *r {
            Some("its record differs")
        } else if rows_by_changeset_id(tx, ds.id, r.id)? != cs.rows {
            Some("its rows differ")
        } else if stored.consumer != cs.consumer || stored.offsets != cs.offsets {
            Some("its consumer offsets differ")
        } else {
            None
        };
        return match differs {
            None => Ok(CommitOutcome::AlreadyCommitted(ds.dataset)),
            Some(part) => Err(conflict(format!(
                "a different changeset with this id is already committed ({part})"
            ))),
        };
    }
    if r.id > head + 1 {
        return Err(Fail::Store(StoreError::Gap {
            dataset: r.dataset.clone(),
            id: r.id,
            head,
        }));
    }

    let offsets: OffsetsJson = cs
        .offsets
        .iter()
        .map(|(tp, o)| (tp.topic.clone(), tp.partition, *o))
        .collect();
    tx.prepare_cached(
        "INSERT INTO changesets (dataset, id, kind, created_at, sample_count, bytes, reverts,
                                 query, sources, consumer, offsets)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(rusqlite::params![
        ds.id,
        r.id,
        kind_name(r.kind),
        r.created_at,
        r.sample_count,
        r.bytes,
        r.reverts,
        r.query.as_ref().map(json),
        json(&r.sources),
        cs.consumer,
        json(&offsets),
    ])?;
    let mut segment = tx.prepare_cached(
        "INSERT INTO segments (dataset, changeset, idx, uri) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut segment_idx: HashMap<&str, i64> = HashMap::with_capacity(r.segments.len());
    for (i, uri) in r.segments.iter().enumerate() {
        segment.execute((ds.id, r.id, i as i64, uri))?;
        segment_idx.entry(uri).or_insert(i as i64);
    }

    // before this changeset's removals are written: its keys are in one list only
    let mut live = Live::new(tx, ds.id)?;
    let (mut samples, mut bytes) = (0i64, 0i64);

    let mut remove =
        tx.prepare_cached("INSERT INTO removals (dataset, changeset, key) VALUES (?1, ?2, ?3)")?;
    for &key in &r.removed {
        let k = key_to_sql(key);
        let Some((_, size)) = live.get(k)? else {
            return Err(conflict(format!(
                "key {key} cannot be removed: it is not in the dataset"
            )));
        };
        remove.execute((ds.id, r.id, k))?;
        samples -= 1;
        bytes -= size;
    }

    let mut relabel = tx.prepare_cached(
        "INSERT INTO relabels (dataset, changeset, key, label) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (key, label) in &r.relabels {
        let k = key_to_sql(*key);
        if live.get(k)?.is_none() {
            return Err(conflict(format!(
                "key {key} cannot be relabelled: it is not in the dataset"
            )));
        }
        relabel.execute((ds.id, r.id, k, label))?;
    }

    // ROWS_PER_INSERT rows per statement (the rest one by one): fewer statement runs
    let mut chunk_insert = tx.prepare_cached(&insert_samples_sql(ROWS_PER_INSERT))?;
    let mut one_insert = tx.prepare_cached(&insert_samples_sql(1))?;
    let ids = (ds.id, r.id);
    for chunk in cs.rows.chunks(ROWS_PER_INSERT) {
        for row in chunk {
            if let Some((by, _)) = live.get(key_to_sql(row.key))? {
                return Err(conflict(format!(
                    "key {} is already in the dataset (added by changeset {by})",
                    row.key
                )));
            }
        }
        if chunk.len() == ROWS_PER_INSERT {
            for (n, row) in chunk.iter().enumerate() {
                bytes += bind_sample(&mut chunk_insert, n, ids, row, &segment_idx)?;
            }
            chunk_insert.raw_execute()?;
        } else {
            for row in chunk {
                bytes += bind_sample(&mut one_insert, 0, ids, row, &segment_idx)?;
                one_insert.raw_execute()?;
            }
        }
        samples += chunk.len() as i64;
    }
    if !cs.rows.is_empty() {
        tx.prepare_cached(
            "INSERT INTO row_blocks (dataset, changeset, block) VALUES (?1, ?2, ?3)",
        )?
        .execute((ds.id, r.id, RowBlock::from_rows(r.id, &cs.rows).encode()))?;
    }

    let dataset = tx
        .prepare_cached(&format!(
            "UPDATE datasets SET head = ?2, samples = samples + ?3, bytes = bytes + ?4
             WHERE id = ?1 RETURNING {DATASET_COLUMNS}"
        ))?
        .query_row((ds.id, r.id, samples, bytes), dataset_from)?
        .dataset;

    let mut offset = tx.prepare_cached(
        "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
    )?;
    for (tp, next) in &cs.offsets {
        offset.execute((&cs.consumer, &tp.topic, tp.partition, next))?;
    }
    Ok(CommitOutcome::Committed(dataset))
}

/// Index rows written by one INSERT statement: fewer statement executions.
const ROWS_PER_INSERT: usize = 32;
const SAMPLE_COLUMNS: usize = 10;

/// `INSERT INTO samples ... VALUES (...), (...)` for `rows` rows.
fn insert_samples_sql(rows: usize) -> String {
    let one = format!("({})", ["?"; SAMPLE_COLUMNS].join(", "));
    format!(
        "INSERT INTO samples (dataset, changeset, key, segment, uri, seg_offset, seg_length,
                              label, event_time, size)
         VALUES {}",
        vec![one; rows].join(", ")
    )
}

/// Binds row `n` of a (multi-row) sample INSERT; returns the sample's size.
fn bind_sample(
    stmt: &mut CachedStatement<'_>,
    n: usize,
    (ds, changeset): (i64, i64),
    row: &IndexRow,
    segment_idx: &HashMap<&str, i64>,
) -> DbResult<i64> {
    let (uri, offset, length) = match &row.location {
        SampleLocation::Segment {
            uri,
            offset,
            length,
        } => (
            uri,
            Some(to_int(*offset, "segment offset", row.key)?),
            Some(to_int(*length, "segment length", row.key)?),
        ),
        SampleLocation::Blob { uri } => (uri, None, None),
    };
    // a row in one of its changeset's segments refers to it by position
    let (segment, uri) = match segment_idx.get(uri.as_str()) {
        Some(i) => (Some(*i), None),
        None => (None, Some(uri)),
    };
    let size = to_int(row.size, "size", row.key)?;
    let p = n * SAMPLE_COLUMNS;
    stmt.raw_bind_parameter(p + 1, ds)?;
    stmt.raw_bind_parameter(p + 2, changeset)?;
    stmt.raw_bind_parameter(p + 3, key_to_sql(row.key))?;
    stmt.raw_bind_parameter(p + 4, segment)?;
    stmt.raw_bind_parameter(p + 5, uri)?;
    stmt.raw_bind_parameter(p + 6, offset)?;
    stmt.raw_bind_parameter(p + 7, length)?;
    stmt.raw_bind_parameter(p + 8, &row.label)?;
    stmt.raw_bind_parameter(p + 9, row.event_time)?;
    stmt.raw_bind_parameter(p + 10, size)?;
    Ok(size)
}

/// The text of a JSON column (plain data, which always serializes).
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes to json")
}

pub(crate) fn consumer_offsets(
    tx: &Transaction<'_>,
    consumer: &str,
) -> DbResult<BTreeMap<TopicPartition, i64>> {
    let mut stmt = tx.prepare_cached(
        "SELECT topic, partition, next_offset FROM consumer_offsets WHERE consumer = ?1",
    )?;
    let rows = stmt.query_map([consumer], |r| {
        Ok((
            TopicPartition::new(r.get::<_, String>(0)?, r.get(1)?),
            r.get(2)?,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

// ---- the sample index

/// The columns of an index row, from `samples s` joined with `ROW_SEGMENT`.
const ROW_COLUMNS: &str = "s.key, s.changeset, coalesce(s.uri, g.uri), s.seg_offset, \
     s.seg_length, s.label, s.event_time, s.size";

/// The segment URI of a row that refers to one of its changeset's segments.
const ROW_SEGMENT: &str = "LEFT JOIN segments g \
     ON g.dataset = s.dataset AND g.changeset = s.changeset AND g.idx = s.segment";

/// An index row from `ROW_COLUMNS`; `label` overrides the stored one (a relabel).
fn index_row(r: &Row<'_>, label: Option<Option<String>>) -> rusqlite::Result<IndexRow> {
    let uri: String = r.get(2)?;
    let location = match (r.get::<_, Option<i64>>(3)?, r.get::<_, Option<i64>>(4)?) {
        (Some(offset), Some(length)) => SampleLocation::Segment {
            uri,
            offset: offset as u64,
            length: length as u64,
        },
        _ => SampleLocation::Blob { uri },
    };
    Ok(IndexRow {
        key: key_from_sql(r.get(0)?),
        changeset: r.get(1)?,
        location,
        label: match label {
            Some(l) => l,
            None => r.get(5)?,
        },
        event_time: r.get(6)?,
        size: r.get::<_, i64>(7)? as u64,
    })
}

fn rows_by_changeset_id(tx: &Transaction<'_>, ds: i64, id: i64) -> DbResult<Vec<IndexRow>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} FROM samples s {ROW_SEGMENT}
         WHERE s.dataset = ?1 AND s.changeset = ?2 ORDER BY s.key"
    ))?;
    let rows = stmt.query_map((ds, id), |r| index_row(r, None))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn rows_by_changeset(
    tx: &Transaction<'_>,
    dataset: &str,
    id: i64,
) -> DbResult<Vec<IndexRow>> {
    match dataset_id(tx, dataset)? {
        Some(ds) => rows_by_changeset_id(tx, ds, id),
        None => Ok(Vec::new()),
    }
}

/// The rows a changeset added, as a block: the stored one, or (for changesets committed
/// before blocks were kept) one built from the rows.
pub(crate) fn row_block(tx: &Transaction<'_>, dataset: &str, id: i64) -> DbResult<RowBlock> {
    let Some(ds) = dataset_id(tx, dataset)? else {
        return Ok(RowBlock::from_rows(id, &[]));
    };
    let stored: Option<Vec<u8>> = tx
        .prepare_cached("SELECT block FROM row_blocks WHERE dataset = ?1 AND changeset = ?2")?
        .query_row((ds, id), |r| r.get(0))
        .optional()?;
    match stored {
        Some(bytes) => RowBlock::decode(id, &bytes).ok_or_else(|| Fail::Corrupt {
            what: describe_changeset(dataset, id),
            reason: "its row block cannot be decoded".into(),
        }),
        None => Ok(RowBlock::from_rows(id, &rows_by_changeset_id(tx, ds, id)?)),
    }
}

/// Which stretch of the view to read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scan {
    /// Keys `from..=to`, by key.
    Keys { from: u64, to: u64 },
    /// Event times `from..to`, by event time then key.
    EventTime { from: i64, to: i64 },
}

/// The view as of changeset `as_of` (`i64::MAX`: the current view).
pub(crate) fn view(
    tx: &Transaction<'_>,
    dataset: &str,
    as_of: i64,
    scan: Scan,
    limit: usize,
) -> DbResult<Vec<IndexRow>> {
    let Some(ds) = dataset_id(tx, dataset)? else {
        return Ok(Vec::new());
    };
    let (index, filter, order, a, b) = match scan {
        Scan::Keys { from, to } => (
            "samples_by_key",
            "s.key BETWEEN ?3 AND ?4",
            "s.key",
            key_to_sql(from),
            key_to_sql(to),
        ),
        Scan::EventTime { from, to } => (
            "samples_by_event_time",
            "s.event_time >= ?3 AND s.event_time < ?4",
            "s.event_time, s.key",
            from,
            to,
        ),
    };
    let mut stmt = tx.prepare_cached(&view_sql(index, filter, order))?;
    let rows = stmt.query_map((ds, as_of, a, b, limit_to_sql(limit)), |r| {
        let relabelled: Option<i64> = r.get(8)?;
        index_row(r, relabelled.map(|_| r.get(9)).transpose()?)
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A read of the view: the rows added up to `?2` whose key no later removal (up to `?2`)
/// takes out, with the newest relabel after the add (up to `?2`). `?1` is the dataset,
/// `?3` and `?4` the bounds of `filter`, `?5` the limit.
pub(crate) fn view_sql(index: &str, filter: &str, order: &str) -> String {
    format!(
        "SELECT {ROW_COLUMNS}, r.changeset, r.label
         FROM samples s INDEXED BY {index}
         {ROW_SEGMENT}
         LEFT JOIN relabels r ON r.dataset = s.dataset AND r.key = s.key AND r.changeset = (
             SELECT max(x.changeset) FROM relabels x INDEXED BY relabels_by_key
             WHERE x.dataset = s.dataset AND x.key = s.key
               AND x.changeset > s.changeset AND x.changeset <= ?2)
         WHERE s.dataset = ?1 AND {filter} AND s.changeset <= ?2
           AND NOT EXISTS (
             SELECT 1 FROM removals m INDEXED BY removals_by_key
             WHERE m.dataset = s.dataset AND m.key = s.key
               AND m.changeset > s.changeset AND m.changeset <= ?2)
         ORDER BY {order}
         LIMIT ?5"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_encoding_keeps_the_order() {
        let keys = [0, 1, 42, (1 << 63) - 1, 1 << 63, u64::MAX - 1, u64::MAX];
        for w in keys.windows(2) {
            assert!(key_to_sql(w[0]) < key_to_sql(w[1]), "{} < {}", w[0], w[1]);
        }
        for k in keys {
            assert_eq!(key_from_sql(key_to_sql(k)), k);
        }
    }

    /// The reads of the view and the commit's probes use the indexes: no full scans.
    #[test]
    fn queries_search_indexes() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for m in super::super::schema::TENANT.migrations {
            conn.execute_batch(m.sql).unwrap();
        }
        let plan = |sql: &str| {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
                .join("\n")
        };
        let queries = [
            view_sql("samples_by_key", "s.key BETWEEN ?3 AND ?4", "s.key"),
            view_sql(
                "samples_by_event_time",
                "s.event_time >= ?3 AND s.event_time < ?4",
                "s.event_time, s.key",
            ),
            format!(
                "SELECT {ROW_COLUMNS} FROM samples s {ROW_SEGMENT}
                 WHERE s.dataset = ?1 AND s.changeset = ?2 ORDER BY s.key"
            ),
        ];
        for q in &queries {
            let p = plan(q);
            assert!(!p.contains("SCAN"), "{q}\n{p}");
            assert!(!p.contains("TEMP B-TREE"), "sorted by an index: {q}\n{p}");
        }
    }
}
