//! The claim a commit takes on a dataset's next changeset id before writing its rows:
//! who may take it, how long it protects a commit under way, and what a commit finding a
//! claim of other content does with it. Pure decisions; `commit` carries them out, and
//! services/store/README.md explains the protocol.
//!
//! A claim holds the changeset's content hash and the time it was taken (`pending_since`,
//! microseconds on the claiming machine's clock). The commit writes every row with that
//! time as the row's timestamp, and sends no write once `WRITE_DEADLINE` has passed since
//! it took the claim. A commit of other content takes over a claim older than `LEASE`:
//! the holder has stopped writing by then, so the rows it listed in `changeset_entries`
//! are all it can have written to the view tables. Whoever takes a claim that was held
//! before (taken over, or resumed by the same content) deletes the rows listed there at
//! a timestamp later than theirs, and writes its own later still.

use std::time::{Duration, Instant};

use super::layout::{self, key_bucket, time_bucket};

/// How long a claim protects the commit that took it from commits of other content.
/// Clearly longer than a request may take (the driver gives a request, all its attempts
/// included, 30 s), and the sum of the write deadline and the largest difference allowed
/// between the clocks of two committing machines (a minute).
pub(crate) const LEASE: Duration = Duration::from_secs(120);

/// A commit sends no write later than this after taking its claim; it fails instead
/// (retriably: committing the same changeset again takes the claim anew and resumes).
pub(crate) const WRITE_DEADLINE: Duration = Duration::from_secs(60);

/// `LEASE` in microseconds, the unit of `pending_since`.
fn lease_micros() -> i64 {
    i64::try_from(LEASE.as_micros()).unwrap_or(i64::MAX)
}

/// The claim a dataset's row holds (`pending_id`, `pending_hash`, `pending_since`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held<'a> {
    pub(crate) id: Option<i64>,
    pub(crate) hash: &'a [u8],
    /// `None` on a claim taken before claims carried their time.
    pub(crate) since: Option<i64>,
}

/// What a commit of changeset `id` does about the claim it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// No commit holds the id: claim it.
    Free,
    /// This changeset's content holds it (a commit of it that failed, crashed, or runs
    /// elsewhere): take it again, with a later time, and write everything again.
    Resume,
    /// Other content has held it for longer than the lease: take it over, delete what
    /// that commit wrote, then write.
    TakeOver,
    /// Other content holds it within its lease: refused; it may be taken over from
    /// `until` (microseconds since the epoch) on.
    Live { until: i64 },
}

/// Decides what a commit of changeset `id` with content hash `ours` does at `now`
/// (microseconds since the epoch) about the claim the dataset's row holds. A claim whose
/// id is not `id`, the dataset's head + 1, cannot be made by this protocol: `Err` says why.
pub(crate) fn decide(
    held: Option<Held<'_>>,
    id: i64,
    ours: &[u8],
    now: i64,
) -> Result<Claim, String> {
    let Some(held) = held else {
        return Ok(Claim::Free);
    };
    if held.id != Some(id) {
        return Err(format!(
            "a commit claims changeset {} while the next is {id}",
            held.id
                .map_or_else(|| "(none)".to_owned(), |i| i.to_string()),
        ));
    }
    if held.hash == ours {
        return Ok(Claim::Resume);
    }
    // a claim without a time was taken by an older build, long enough ago
    let until = held.since.unwrap_or(0).saturating_add(lease_micros());
    if now > until {
        Ok(Claim::TakeOver)
    } else {
        Ok(Claim::Live { until })
    }
}

/// How long from `now` until a live claim may be taken over at `until`, in whole
/// seconds rounded up (for messages).
pub(crate) fn remaining(until: i64, now: i64) -> Duration {
    let micros = u64::try_from(until.saturating_sub(now)).unwrap_or(0);
    Duration::from_secs(micros.div_ceil(1_000_000))
}

/// The time of a claim taken at `now` that replaces a claim of time `previous`: `now`,
/// but at least two microseconds after `previous` (whose machine's clock may run ahead),
/// so that deletes at `since - 1` fall strictly between the two claims' writes.
pub(crate) fn next_since(previous: Option<i64>, now: i64) -> i64 {
    previous.map_or(now, |p| now.max(p.saturating_add(2)))
}

/// The timestamp of the deletes a commit whose claim has time `since` makes before
/// writing: later than any write of an earlier claim, earlier than its own writes.
pub(crate) fn delete_timestamp(since: i64) -> i64 {
    since - 1
}

/// The claim a commit holds, and since when by its own monotonic clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lease {
    /// `pending_since`: the timestamp of every row this commit writes.
    pub(crate) since: i64,
    started: Instant,
}

impl Lease {
    /// A claim about to be taken, replacing one of time `previous`: both clocks are read
    /// now, before the claim is sent, so the write deadline runs from no later than
    /// `since`.
    pub(crate) fn start(previous: Option<i64>) -> Self {
        let started = Instant::now();
        Self {
            since: next_since(previous, flywheel_schemas::now_micros()),
            started,
        }
    }

    /// `Ok` while the commit may still send a write.
    pub(crate) fn check(&self) -> Result<(), Expired> {
        if may_write(self.started.elapsed()) {
            Ok(())
        } else {
            Err(Expired)
        }
    }
}

/// A commit ran past its write deadline.
#[derive(Debug, thiserror::Error)]
#[error(
    "the commit held its claim on the changeset id for more than {}, the longest a commit may \
     write for, and stopped so that another commit may take the id over; committing the \
     same changeset again resumes it",
    humantime::format_duration(WRITE_DEADLINE)
)]
pub(crate) struct Expired;

/// Whether a commit that took its claim `elapsed` ago may still send a write.
pub(crate) fn may_write(elapsed: Duration) -> bool {
    elapsed < WRITE_DEADLINE
}

/// The view rows an entry of an abandoned changeset may have written: its key in
/// `view_by_key`, and its key at the entry's event time in `view_by_time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) key: u64,
    pub(crate) event_time: i64,
}

/// A row of `view_by_key` to delete: `(bucket, key)` (the dataset and changeset are
/// the statement's).
pub(crate) type ByKeyRow = (i64, u64);

/// A row of `view_by_time` to delete: `(bucket, event_time, key)`.
pub(crate) type ByTimeRow = (i64, i64, u64);

/// The deletes of the view rows the entries of an abandoned changeset list, in batches
/// of one partition each.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Cleanup {
    pub(crate) by_key: Vec<Vec<ByKeyRow>>,
    pub(crate) by_time: Vec<Vec<ByTimeRow>>,
}

/// Plans the deletes of the view rows `listed` (an abandoned changeset's entries).
pub(crate) fn cleanup(listed: &[Listed]) -> Cleanup {
    // a delete carries its keys only
    const DELETE_BYTES: usize = 48;
    let by_key: Vec<ByKeyRow> = listed.iter().map(|l| (key_bucket(l.key), l.key)).collect();
    let by_time: Vec<ByTimeRow> = listed
        .iter()
        .map(|l| (time_bucket(l.event_time), l.event_time, l.key))
        .collect();
    Cleanup {
        by_key: layout::batches(by_key, |(b, _)| *b, |_| DELETE_BYTES),
        by_time: layout::batches(by_time, |(b, _, _)| *b, |_| DELETE_BYTES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scylla::layout::{BATCH_ROWS, TIME_BUCKET_MICROS};

    const OURS: &[u8] = b"ours";
    const OTHER: &[u8] = b"other";
    const T: i64 = 1_800_000_000_000_000;

    fn held(hash: &[u8], since: Option<i64>) -> Option<Held<'_>> {
        Some(Held {
            id: Some(4),
            hash,
            since,
        })
    }

    #[test]
    fn a_free_id_is_claimed_and_our_own_claim_resumed() {
        assert_eq!(decide(None, 4, OURS, T), Ok(Claim::Free));
        // our content resumes whatever the claim's age: it was a commit of this changeset
        for since in [
            Some(T),
            Some(T - 10 * lease_micros()),
            Some(T + 1_000),
            None,
        ] {
            assert_eq!(
                decide(held(OURS, since), 4, OURS, T),
                Ok(Claim::Resume),
                "{since:?}"
            );
        }
    }

    #[test]
    fn other_content_is_refused_within_the_lease_and_taken_over_after() {
        let lease = lease_micros();
        assert_eq!(lease, 120_000_000);
        let at = |since: i64| decide(held(OTHER, Some(since)), 4, OURS, T);
        assert_eq!(at(T), Ok(Claim::Live { until: T + lease }));
        assert_eq!(
            at(T - lease),
            Ok(Claim::Live { until: T }),
            "exactly the lease"
        );
        assert_eq!(at(T - lease - 1), Ok(Claim::TakeOver));
        assert_eq!(at(T - 3_600_000_000), Ok(Claim::TakeOver));
        // a claimer whose clock runs ahead of ours holds the id for longer
        assert_eq!(
            at(T + 30_000_000),
            Ok(Claim::Live {
                until: T + 30_000_000 + lease
            })
        );
        // a claim without a time (an older build's) is as old as can be
        assert_eq!(decide(held(OTHER, None), 4, OURS, T), Ok(Claim::TakeOver));
        assert_eq!(
            decide(held(OTHER, Some(i64::MAX)), 4, OURS, T),
            Ok(Claim::Live { until: i64::MAX }),
            "no overflow"
        );
    }

    #[test]
    fn the_wait_for_a_live_claim_is_rounded_up_to_seconds() {
        assert_eq!(remaining(T + 1, T), Duration::from_secs(1));
        assert_eq!(remaining(T + 87_000_000, T), Duration::from_secs(87));
        assert_eq!(remaining(T + 87_000_001, T), Duration::from_secs(88));
        assert_eq!(remaining(T, T), Duration::ZERO);
        assert_eq!(remaining(T - 5, T), Duration::ZERO);
    }

    #[test]
    fn a_claim_of_another_id_is_reported() {
        let stray = Some(Held {
            id: Some(9),
            hash: OTHER,
            since: Some(T),
        });
        let err = decide(stray, 4, OURS, T).unwrap_err();
        assert!(
            err.contains("claims changeset 9 while the next is 4"),
            "{err}"
        );
        let none = Some(Held {
            id: None,
            hash: OURS,
            since: Some(T),
        });
        assert!(decide(none, 4, OURS, T).unwrap_err().contains("(none)"));
    }

    #[test]
    fn claim_times_only_grow_and_deletes_fall_between() {
        assert_eq!(next_since(None, T), T);
        assert_eq!(next_since(Some(T - 5), T), T);
        // the previous claimer's clock ran ahead of ours
        assert_eq!(next_since(Some(T + 5), T), T + 7);
        assert_eq!(next_since(Some(T - 1), T), T + 1);
        for previous in [T - 1_000, T - 2, T - 1, T, T + 1, T + 1_000] {
            let since = next_since(Some(previous), T);
            let deletes = delete_timestamp(since);
            assert!(previous < deletes && deletes < since, "{previous} {since}");
        }
    }

    #[test]
    fn a_commit_stops_writing_at_its_deadline_well_before_the_lease_ends() {
        assert!(may_write(Duration::ZERO));
        assert!(may_write(WRITE_DEADLINE - Duration::from_millis(1)));
        assert!(!may_write(WRITE_DEADLINE));
        assert!(!may_write(LEASE));
        // room for a request's 30 s and for clocks a minute apart
        assert!(WRITE_DEADLINE >= Duration::from_secs(30));
        assert!(LEASE - WRITE_DEADLINE >= Duration::from_secs(60));
        let lease = Lease::start(Some(T));
        assert!(lease.check().is_ok());
        assert!(lease.since >= T + 2);
        assert!(Expired.to_string().contains("more than 1m,"), "{Expired}");
    }

    #[test]
    fn cleanup_deletes_every_listed_view_row_one_partition_per_batch() {
        let hour = TIME_BUCKET_MICROS;
        // keys across two key buckets, event times across three hours
        let listed: Vec<Listed> = (0..250u64)
            .map(|i| Listed {
                key: 65_400 + i,
                event_time: (i as i64 % 3) * hour + 7,
            })
            .collect();
        let plan = cleanup(&listed);
        let by_key: Vec<ByKeyRow> = plan.by_key.iter().flatten().copied().collect();
        let by_time: Vec<ByTimeRow> = plan.by_time.iter().flatten().copied().collect();
        assert_eq!(by_key.len(), 250);
        assert_eq!(by_time.len(), 250);
        for l in &listed {
            assert!(by_key.contains(&(key_bucket(l.key), l.key)), "{l:?}");
            assert!(
                by_time.contains(&(time_bucket(l.event_time), l.event_time, l.key)),
                "{l:?}"
            );
        }
        for b in &plan.by_key {
            assert!(!b.is_empty() && b.len() <= BATCH_ROWS);
            assert!(b.iter().all(|(bucket, _)| *bucket == b[0].0), "{b:?}");
        }
        for b in &plan.by_time {
            assert!(!b.is_empty() && b.len() <= BATCH_ROWS);
            assert!(b.iter().all(|(bucket, _, _)| *bucket == b[0].0), "{b:?}");
        }
        assert_eq!(
            plan.by_key.iter().map(|b| b[0].0).collect::<Vec<_>>(),
            [0, 0, 1, 1],
            "136 keys in bucket 0, 114 in bucket 1, at most 100 a batch"
        );
        assert_eq!(cleanup(&[]), Cleanup::default());
    }
}
