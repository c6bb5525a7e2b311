//! The changeset commit on ScyllaDB: all or nothing without cross-partition transactions.
//!
//! 1. **Check** (reads only): the dataset's head, read at the serial level; a replay
//!    (id <= head) is answered from the stored changeset's hashes; a gap is refused; the
//!    keys are checked against the view at the head. A refused changeset writes nothing.
//! 2. **Claim** the id: one lightweight transaction on the dataset's row sets
//!    `pending_hash` to the changeset's content hash if the head is still id - 1 and no
//!    other content holds the claim. The same content may resume its own claim (a
//!    commit that crashed); different content is a `Conflict` until it is finished.
//! 3. **Write** the changeset row, its entries, the view entries and the bucket
//!    directory: idempotent inserts keyed by (dataset, changeset, ...), in single-
//!    partition unlogged batches. Readers ignore changesets past the head, so these rows
//!    are invisible; a crash leaves them for the resumed commit to write again, equal.
//! 4. **Advance** the head: one lightweight transaction sets head, counters and the
//!    consumer offsets and clears the claim, if the head is still id - 1 and the claim is
//!    ours. From that moment, and not before, every read sees the whole changeset.

use std::collections::{BTreeSet, HashMap};

use futures::{StreamExt, TryStreamExt};
use scylla::serialize::row::SerializeRow;

use super::db::Stmt;
use super::hash::{Hashes, hashes};
use super::layout::{self, key_bucket, key_to_cql, part_of, time_bucket};
use super::rows::{ChangesetRow, Cols, OffsetsMap, check_row};
use super::tenant::ScyllaTenant;
use super::view::{self, KEY_BUCKETS, TIME_BUCKETS};
use crate::StoreError;
use crate::model::{CommitOutcome, Dataset, IndexRow, NewChangeset};

/// Batches written at once.
const WRITE_CONCURRENCY: usize = 8;

/// Times a commit starts over after losing a race for the dataset's row.
const ATTEMPTS: usize = 5;

/// The dataset's row as the commit sees it (read at the serial level).
#[derive(Debug)]
struct State {
    created_at: i64,
    head: i64,
    samples: i64,
    bytes: i64,
    pending_id: Option<i64>,
    pending_hash: Option<Vec<u8>>,
}

type StateRow = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<Vec<u8>>,
);

async fn state(t: &ScyllaTenant, dataset: &str) -> Result<Option<State>, StoreError> {
    let row: Option<StateRow> =
        t.ks.one(
            "read dataset head",
            &t.st.dataset_state.serial(&t.ks.conn),
            (dataset,),
        )
        .await?;
    Ok(row.map(
        |(created_at, head, samples, bytes, pending_id, pending_hash)| State {
            created_at: created_at.unwrap_or(0),
            head: head.unwrap_or(0),
            samples: samples.unwrap_or(0),
            bytes: bytes.unwrap_or(0),
            pending_id,
            pending_hash,
        },
    ))
}

/// Commits a normalized changeset.
pub(crate) async fn commit(
    t: &ScyllaTenant,
    cs: &NewChangeset,
) -> Result<CommitOutcome, StoreError> {
    let r = &cs.record;
    let what = r.describe();
    let conflict = |detail: String| StoreError::conflict(what.clone(), detail);
    for row in &cs.rows {
        check_row(row)?;
    }
    let h = hashes(cs);

    for _ in 0..ATTEMPTS {
        let st = state(t, &r.dataset).await?;
        let head = st.as_ref().map_or(0, |s| s.head);
        if st.is_none() && r.id != 1 {
            return Err(StoreError::Gap {
                dataset: r.dataset.clone(),
                id: r.id,
                head: 0,
            });
        }
        if r.id <= head {
            return replay(t, cs, &h, head).await;
        }
        if r.id > head + 1 {
            return Err(StoreError::Gap {
                dataset: r.dataset.clone(),
                id: r.id,
                head,
            });
        }
        let resumed = match st
            .as_ref()
            .filter(|s| s.pending_id == Some(r.id))
            .and_then(|s| s.pending_hash.as_ref())
        {
            Some(claim) if *claim == h.content => true,
            Some(_) => {
                return Err(conflict(
                    "an unfinished commit of a different changeset with this id holds the \
                     dataset (it crashed, or is under way elsewhere); commit that changeset \
                     again to finish it"
                        .into(),
                ));
            }
            None => false,
        };

        let checked = check(t, cs, head).await.map_err(|e| match e {
            Refusal::Conflict(detail) => conflict(detail),
            Refusal::Store(e) => e,
        })?;

        let Some(st) = st else {
            // changeset 1 creates the dataset, then starts over from its row
            t.ks.lwt(
                "create dataset",
                &t.st.dataset_create,
                (&r.dataset, r.created_at),
            )
            .await?;
            continue;
        };
        if !resumed {
            let claimed =
                t.ks.lwt(
                    "claim changeset id",
                    &t.st.dataset_claim,
                    (r.id, &h.content, &r.dataset, head),
                )
                .await?;
            if !claimed {
                continue; // the head moved, or another commit claimed the id: look again
            }
        }

        write(t, cs, &h, &checked).await?;

        let samples = st.samples + checked.samples;
        let bytes = st.bytes + checked.bytes;
        let now = flywheel_schemas::now_micros();
        let offsets: OffsetsMap = cs
            .offsets
            .iter()
            .map(|(tp, next)| {
                (
                    (cs.consumer.clone(), tp.topic.clone(), tp.partition),
                    (*next, now),
                )
            })
            .collect();
        let advanced =
            t.ks.lwt(
                "advance dataset head",
                &t.st.dataset_advance,
                (r.id, samples, bytes, offsets, &r.dataset, head, &h.content),
            )
            .await?;
        if advanced {
            return Ok(CommitOutcome::Committed(Dataset {
                name: r.dataset.clone(),
                created_at: st.created_at,
                head: r.id,
                samples,
                bytes,
            }));
        }
        // a concurrent commit of the same content finished first: the next look finds
        // the changeset committed and answers as a replay
    }
    Err(conflict(format!(
        "the dataset's head kept moving; gave up after {ATTEMPTS} attempts"
    )))
}

/// Answers a changeset whose id is already committed: a replay writes nothing, anything
/// else is a conflict naming what differs.
async fn replay(
    t: &ScyllaTenant,
    cs: &NewChangeset,
    h: &Hashes,
    head: i64,
) -> Result<CommitOutcome, StoreError> {
    let r = &cs.record;
    let stored = view::changeset_row(t, &r.dataset, r.id)
        .await?
        .ok_or_else(|| {
            t.ks.corrupt(
                format!("dataset {:?}", r.dataset),
                format!("its head is {head}, but changeset {} is missing", r.id),
            )
        })?;
    let differs = if stored.record_hash != h.record {
        Some("its record differs")
    } else if stored.rows_hash != h.rows {
        Some("its rows differ")
    } else if stored.consumer != cs.consumer || stored.offsets(&t.ks)? != cs.offsets {
        Some("its consumer offsets differ")
    } else {
        None
    };
    match differs {
        Some(part) => Err(StoreError::conflict(
            r.describe(),
            format!("a different changeset with this id is already committed ({part})"),
        )),
        None => {
            let d = view::dataset(t, &r.dataset).await?.ok_or_else(|| {
                t.ks.corrupt(format!("dataset {:?}", r.dataset), "it disappeared")
            })?;
            Ok(CommitOutcome::AlreadyCommitted(d))
        }
    }
}

/// Why a check refused a changeset.
enum Refusal {
    Conflict(String),
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

/// What the check found: the live rows of removed and relabelled keys (their entries in
/// `view_by_time` go at the event time of that row) and the counter changes.
#[derive(Debug, Default)]
struct Checked {
    live: HashMap<u64, IndexRow>,
    samples: i64,
    bytes: i64,
}

/// Checks the changeset's keys against the view at `head`, in the order SQLite does:
/// removed keys, relabelled keys, added keys.
async fn check(t: &ScyllaTenant, cs: &NewChangeset, head: i64) -> Result<Checked, Refusal> {
    let r = &cs.record;
    let keys: Vec<u64> = cs
        .rows
        .iter()
        .map(|row| row.key)
        .chain(r.removed.iter().copied())
        .chain(r.relabels.iter().map(|(k, _)| *k))
        .collect::<BTreeSet<u64>>()
        .into_iter()
        .collect();
    let live = view::live(t, &r.dataset, head, &keys).await?;
    let mut checked = Checked::default();
    let size = |row: &IndexRow| i64::try_from(row.size).unwrap_or(i64::MAX);
    for key in &r.removed {
        let row = live.get(key).ok_or_else(|| {
            Refusal::Conflict(format!(
                "key {key} cannot be removed: it is not in the dataset"
            ))
        })?;
        checked.samples -= 1;
        checked.bytes -= size(row);
    }
    for (key, _) in &r.relabels {
        if !live.contains_key(key) {
            return Err(Refusal::Conflict(format!(
                "key {key} cannot be relabelled: it is not in the dataset"
            )));
        }
    }
    for row in &cs.rows {
        if let Some(by) = live.get(&row.key) {
            return Err(Refusal::Conflict(format!(
                "key {} is already in the dataset (added by changeset {})",
                row.key, by.changeset
            )));
        }
        checked.samples += 1;
        checked.bytes += size(row);
    }
    checked.live = live;
    Ok(checked)
}

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
fn items<'a>(cs: &'a NewChangeset, checked: &Checked) -> Vec<Item<'a>> {
    let at = |key: u64| checked.live.get(&key).map_or(0, |row| row.event_time);
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

/// Writes everything of the changeset but the head (step 3).
async fn write(
    t: &ScyllaTenant,
    cs: &NewChangeset,
    h: &Hashes,
    checked: &Checked,
) -> Result<(), StoreError> {
    let r = &cs.record;
    let (ds, id) = (r.dataset.as_str(), r.id);
    let items = items(cs, checked);
    let parts = layout::parts(items.len());
    t.ks.exec(
        "write changeset",
        &t.st.changeset_put,
        ChangesetRow::new(cs, h.record.clone(), h.rows.clone(), parts),
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

    let runs: Vec<_> = jobs.into_iter().map(|job| job.run(t)).collect();
    futures::stream::iter(runs)
        .buffer_unordered(WRITE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
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

/// One batch of the commit's writes.
enum Job<'a> {
    Entries(Vec<EntryValues<'a>>),
    ByKey(Vec<ByKeyValues<'a>>),
    ByTime(Vec<ByTimeValues<'a>>),
    Buckets(Vec<(&'a str, &'static str, i64)>),
}

impl Job<'_> {
    async fn run(self, t: &ScyllaTenant) -> Result<(), StoreError> {
        async fn go<V: SerializeRow>(
            t: &ScyllaTenant,
            stmt: &Stmt,
            values: Vec<V>,
        ) -> Result<(), StoreError> {
            t.ks.batch("write changeset", stmt, values).await
        }
        match self {
            Job::Entries(v) => go(t, &t.st.entry_put, v).await,
            Job::ByKey(v) => go(t, &t.st.by_key_put, v).await,
            Job::ByTime(v) => go(t, &t.st.by_time_put, v).await,
            Job::Buckets(v) => go(t, &t.st.bucket_put, v).await,
        }
    }
}
