//! The changeset commit on ScyllaDB: all or nothing without cross-partition transactions.
//!
//! 1. **Check** (reads only): the dataset's head and claim, read at the serial level; a
//!    replay (id <= head) is answered from the stored changeset's hashes; a gap is
//!    refused; a claim of other content within its lease is refused; the keys are checked
//!    against the view at the head. A refused changeset writes nothing.
//! 2. **Claim** the id: one lightweight transaction on the dataset's row sets
//!    `pending_hash` to the changeset's content hash and `pending_since` to the time, if
//!    the head is still id - 1 and the claim is still the one read (free, ours, or of
//!    other content and older than the lease: `claim::decide`).
//! 3. **Clear**, if the claim was held before: the rows a previous holder listed in
//!    `changeset_entries` are deleted (view rows, then the entries, then the changeset
//!    row), at a timestamp between theirs and ours.
//! 4. **Write** the changeset row, then all its entries, then the view entries and the
//!    bucket directory, in that order and at the claim's time as timestamp: idempotent
//!    single-partition unlogged batches. Readers ignore changesets past the head, so these
//!    rows are invisible. No write is sent past `claim::WRITE_DEADLINE`.
//! 5. **Advance** the head: one lightweight transaction sets head, counters and the
//!    consumer offsets and clears the claim, if the head is still id - 1 and the claim is
//!    still ours, with our time. From that moment, and not before, every read sees the
//!    whole changeset.

use std::collections::{BTreeSet, HashMap};

use super::claim::{self, Claim, Held, Lease};
use super::hash::{Hashes, hashes};
use super::rows::{OffsetsMap, check_row};
use super::tenant::ScyllaTenant;
use super::{view, write};
use crate::StoreError;
use crate::model::{CommitOutcome, Dataset, IndexRow, NewChangeset};

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
    pending_since: Option<i64>,
}

impl State {
    /// The claim the row holds, if any.
    fn held(&self) -> Option<Held<'_>> {
        self.pending_hash.as_deref().map(|hash| Held {
            id: self.pending_id,
            hash,
            since: self.pending_since,
        })
    }
}

type StateRow = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<Vec<u8>>,
    Option<i64>,
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
        |(created_at, head, samples, bytes, pending_id, pending_hash, pending_since)| State {
            created_at: created_at.unwrap_or(0),
            head: head.unwrap_or(0),
            samples: samples.unwrap_or(0),
            bytes: bytes.unwrap_or(0),
            pending_id,
            pending_hash,
            pending_since,
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
        let held = st.as_ref().and_then(State::held);
        let now = flywheel_schemas::now_micros();
        let claim = claim::decide(held, r.id, &h.content, now)
            .map_err(|reason| t.ks.corrupt(format!("dataset {:?}", r.dataset), reason))?;
        if let Claim::Live { until } = claim {
            return Err(conflict(format!(
                "an unfinished commit of a different changeset with this id holds the \
                 dataset (under way elsewhere, or it failed less than {} ago); it may be \
                 taken over in {}",
                humantime::format_duration(claim::LEASE),
                humantime::format_duration(claim::remaining(until, now))
            )));
        }

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
        let previous = st.held().and_then(|held| held.since);
        let lease = Lease::start(previous);
        let taken = match st.held() {
            None => {
                t.ks.lwt(
                    "claim changeset id",
                    &t.st.dataset_claim,
                    (r.id, &h.content, lease.since, &r.dataset, head),
                )
                .await?
            }
            Some(Held {
                hash,
                since: Some(since),
                ..
            }) => {
                t.ks.lwt(
                    "claim changeset id",
                    &t.st.dataset_reclaim,
                    (&h.content, lease.since, &r.dataset, head, r.id, hash, since),
                )
                .await?
            }
            Some(Held { hash, .. }) => {
                t.ks.lwt(
                    "claim changeset id",
                    &t.st.dataset_reclaim_untimed,
                    (&h.content, lease.since, &r.dataset, head, r.id, hash),
                )
                .await?
            }
        };
        if !taken {
            continue; // the head moved, or the claim changed hands: look again
        }
        if claim != Claim::Free {
            write::clear(t, &r.dataset, r.id, &lease).await?;
        }

        write::write(t, cs, &h, &checked.live, &lease).await?;

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
                (
                    r.id,
                    samples,
                    bytes,
                    offsets,
                    &r.dataset,
                    head,
                    &h.content,
                    lease.since,
                ),
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
        // a concurrent commit of the same content took the claim again, or finished
        // first: the next look resumes it, or finds the changeset committed and answers
        // as a replay
    }
    Err(conflict(format!(
        "the dataset's head or its claim kept moving; gave up after {ATTEMPTS} attempts"
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
