//! Edits of a dataset that people make (remove, relabel, revert) and its statistics: built
//! on the reads of [`TenantStore`], the same for every backend.
//!
//! An edit is planned against the dataset's head and committed as changeset head + 1; when
//! another writer (ingest) moves the head in between, it is planned again on the new head.

use std::collections::{BTreeMap, BTreeSet};

use flywheel_schemas::{ChangesetKind, RestrictedQuery};
use serde::{Deserialize, Serialize};

use crate::model::{ChangesetRecord, CommitOutcome, IndexRow, NewChangeset};
use crate::{StoreError, TenantStore};

/// Rows read per page when scanning a view.
const PAGE: usize = 10_000;
/// Plans tried when other writers keep moving the head.
const ATTEMPTS: u32 = 8;

/// A change to a dataset's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Edit {
    /// Remove these samples.
    Remove {
        /// Their keys; each must be in the view.
        keys: Vec<u64>,
    },
    /// Remove every sample that matches.
    RemoveWhere {
        /// What to match.
        filter: Filter,
    },
    /// Set labels (labels that arrive later, e.g. from user feedback).
    Relabel {
        /// Key and new label (`None` removes the label); each key must be in the view.
        labels: Vec<(u64, Option<String>)>,
    },
    /// Undo a changeset where its effect is still visible: samples it added are removed,
    /// samples it removed come back, labels it set go back to what they were. Whatever a
    /// later changeset changed again is left as it is.
    Revert {
        /// The changeset to undo.
        changeset: i64,
    },
    /// Add the rows a query of a restricted source returns. No row is stored: they are
    /// read from the source only while a training set is read. (Whoever accepts the edit
    /// checks the query against its source first.)
    Query {
        /// The source, the SQL and its label and feature columns.
        query: RestrictedQuery,
    },
}

/// Which samples a [`Edit::RemoveWhere`] removes: all conditions given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Samples with this label.
    #[serde(default)]
    pub label: Option<String>,
    /// Samples without a label.
    #[serde(default)]
    pub unlabelled: bool,
    /// Event time at or after this (microseconds since the Unix epoch).
    #[serde(default)]
    pub from: Option<i64>,
    /// Event time before this.
    #[serde(default)]
    pub to: Option<i64>,
}

impl Filter {
    fn matches(&self, row: &IndexRow) -> bool {
        self.label
            .as_ref()
            .is_none_or(|l| row.label.as_ref() == Some(l))
            && (!self.unlabelled || row.label.is_none())
            && self.from.is_none_or(|t| row.event_time >= t)
            && self.to.is_none_or(|t| row.event_time < t)
    }

    fn check(&self) -> Result<(), String> {
        if self.label.is_some() && self.unlabelled {
            return Err("a filter cannot ask for a label and for no label".into());
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(format!(
                "the time range is empty (from {from} is not before to {to})"
            ));
        }
        if *self == Filter::default() {
            return Err("an empty filter would remove everything; give a label or a time range (or revert the changesets)".into());
        }
        Ok(())
    }
}

/// Plans `edit` on the dataset's head and commits it; plans again if the head moved
/// meanwhile. Returns the committed changeset.
pub async fn commit_edit(
    store: &dyn TenantStore,
    dataset: &str,
    edit: &Edit,
    now: i64,
) -> Result<ChangesetRecord, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let head = store
            .dataset(dataset)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("dataset {dataset:?}")))?
            .head;
        let planned = plan(store, dataset, head, edit, now).await?;
        let record = planned.record.clone();
        match store.commit_changeset(planned).await {
            Ok(CommitOutcome::Committed(_) | CommitOutcome::AlreadyCommitted(_)) => {
                return Ok(record);
            }
            Err(e @ (StoreError::Gap { .. } | StoreError::Conflict { .. })) => {
                let now_head = store.dataset(dataset).await?.map_or(0, |d| d.head);
                if now_head == head || attempt >= ATTEMPTS {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The changeset `edit` makes on top of changeset `head`.
async fn plan(
    store: &dyn TenantStore,
    dataset: &str,
    head: i64,
    edit: &Edit,
    now: i64,
) -> Result<NewChangeset, StoreError> {
    let id = head + 1;
    let invalid =
        |reason: String| StoreError::invalid(format!("edit of dataset {dataset:?}"), reason);
    let (kind, touched) = match edit {
        Edit::Remove { keys } => {
            if keys.is_empty() {
                return Err(invalid("no keys to remove".into()));
            }
            let set: BTreeSet<u64> = keys.iter().copied().collect();
            let rows = in_view(store, dataset, head, &set).await?;
            let mut c = NewChangeset::new(ChangesetRecord::new(
                dataset,
                id,
                ChangesetKind::Remove,
                now,
            ));
            c.record.removed = set.into_iter().collect();
            return Ok(counted(c, rows.values()));
        }
        Edit::RemoveWhere { filter } => {
            filter.check().map_err(invalid)?;
            let rows = scan(store, dataset, filter).await?;
            if rows.is_empty() {
                return Err(invalid("no sample matches the filter".into()));
            }
            let mut c = NewChangeset::new(ChangesetRecord::new(
                dataset,
                id,
                ChangesetKind::Remove,
                now,
            ));
            c.record.removed = rows.iter().map(|r| r.key).collect();
            return Ok(counted(c, rows.iter()));
        }
        Edit::Relabel { labels } => {
            if labels.is_empty() {
                return Err(invalid("no labels to set".into()));
            }
            let set: BTreeSet<u64> = labels.iter().map(|(k, _)| *k).collect();
            let rows = in_view(store, dataset, head, &set).await?;
            let mut c = NewChangeset::new(ChangesetRecord::new(
                dataset,
                id,
                ChangesetKind::Relabel,
                now,
            ));
            c.record.relabels = labels.clone();
            return Ok(counted(c, rows.values()));
        }
        Edit::Revert { changeset } => (ChangesetKind::Revert, *changeset),
        Edit::Query { query } => {
            if query.source.trim().is_empty() || query.sql.trim().is_empty() {
                return Err(invalid("a query needs a source and SQL".into()));
            }
            let mut c =
                NewChangeset::new(ChangesetRecord::new(dataset, id, ChangesetKind::Query, now));
            c.record.query = Some(query.clone());
            return Ok(c);
        }
    };
    let n = touched;
    if n < 1 || n > head {
        return Err(invalid(format!(
            "changeset {n} does not exist (the dataset's changesets are 1 to {head})"
        )));
    }
    let target = store
        .changeset(dataset, n)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("changeset {n} of dataset {dataset:?}")))?;
    let mut keys: BTreeSet<u64> = store
        .rows_by_changeset(dataset, n)
        .await?
        .into_iter()
        .map(|r| r.key)
        .collect();
    keys.extend(target.removed.iter().copied());
    keys.extend(target.relabels.iter().map(|(k, _)| *k));

    let before = view(store, dataset, n - 1, &keys).await?;
    let after = view(store, dataset, n, &keys).await?;
    let current = view(store, dataset, head, &keys).await?;
    let mut c = NewChangeset::new(ChangesetRecord::new(dataset, id, kind, now));
    c.record.reverts = Some(n);
    let mut affected = Vec::new();
    for k in &keys {
        let (b, a, now_row) = (before.get(k), after.get(k), current.get(k));
        if now_row != a {
            continue; // changed again since: the later change stands
        }
        match (b, now_row) {
            (None, Some(row)) => {
                c.record.removed.push(*k);
                affected.push(row.clone());
            }
            (Some(row), None) => {
                c.rows.push(IndexRow {
                    changeset: id,
                    ..row.clone()
                });
                affected.push(row.clone());
            }
            (Some(old), Some(row)) if old.label != row.label => {
                c.record.relabels.push((*k, old.label.clone()));
                affected.push(row.clone());
            }
            _ => {}
        }
    }
    if affected.is_empty() && !reverts_a_query(store, dataset, &target).await? {
        return Err(invalid(format!(
            "changeset {n} has no effect left to revert (it was reverted already, or later changesets changed everything it did)"
        )));
    }
    Ok(counted(c, affected.iter()))
}

/// Whether a changeset is a query, or a revert (of a revert...) of one: undoing it switches
/// the query's rows off or on, though it changes no stored row.
async fn reverts_a_query(
    store: &dyn TenantStore,
    dataset: &str,
    target: &ChangesetRecord,
) -> Result<bool, StoreError> {
    let mut c = target.clone();
    for _ in 0..64 {
        match (c.kind, c.reverts) {
            (ChangesetKind::Query, _) => return Ok(true),
            (ChangesetKind::Revert, Some(n)) => match store.changeset(dataset, n).await? {
                Some(next) => c = next,
                None => return Ok(false),
            },
            _ => return Ok(false),
        }
    }
    Ok(false)
}

/// Sets a changeset's sample count and bytes from the rows it affects.
fn counted<'a>(mut c: NewChangeset, rows: impl Iterator<Item = &'a IndexRow>) -> NewChangeset {
    let (mut n, mut bytes) = (0i64, 0i64);
    for r in rows {
        n += 1;
        bytes += i64::try_from(r.size).unwrap_or(i64::MAX);
    }
    c.record.sample_count = n;
    c.record.bytes = bytes;
    c
}

/// The rows of `keys` in the dataset's view at `head`; every key must be there.
async fn in_view(
    store: &dyn TenantStore,
    dataset: &str,
    head: i64,
    keys: &BTreeSet<u64>,
) -> Result<BTreeMap<u64, IndexRow>, StoreError> {
    let rows = view(store, dataset, head, keys).await?;
    match keys.iter().find(|k| !rows.contains_key(k)) {
        Some(k) => Err(StoreError::invalid(
            format!("edit of dataset {dataset:?}"),
            format!("key {k} is not in the dataset"),
        )),
        None => Ok(rows),
    }
}

/// The rows of `keys` in the view as of changeset `as_of` (none before changeset 1).
async fn view(
    store: &dyn TenantStore,
    dataset: &str,
    as_of: i64,
    keys: &BTreeSet<u64>,
) -> Result<BTreeMap<u64, IndexRow>, StoreError> {
    let mut out = BTreeMap::new();
    let (Some(&first), Some(&last)) = (keys.first(), keys.last()) else {
        return Ok(out);
    };
    if as_of < 1 {
        return Ok(out);
    }
    let mut from = first;
    loop {
        let page = store.view_at(dataset, as_of, from, PAGE).await?;
        let full = page.len() == PAGE;
        let mut next = None;
        for row in page {
            if row.key > last {
                return Ok(out);
            }
            next = row.key.checked_add(1);
            if keys.contains(&row.key) {
                out.insert(row.key, row);
            }
        }
        match next {
            Some(n) if full => from = n,
            _ => return Ok(out),
        }
    }
}

/// Every row of the current view that matches.
async fn scan(
    store: &dyn TenantStore,
    dataset: &str,
    filter: &Filter,
) -> Result<Vec<IndexRow>, StoreError> {
    let mut out = Vec::new();
    let mut on_page =
        |rows: &[IndexRow]| out.extend(rows.iter().filter(|r| filter.matches(r)).cloned());
    if filter.from.is_some() || filter.to.is_some() {
        // by event time, paging on (event_time, key)
        let to = filter.to.unwrap_or(i64::MAX);
        let mut from = filter.from.unwrap_or(i64::MIN);
        let mut skip: BTreeSet<u64> = BTreeSet::new();
        loop {
            let page = store.rows_by_event_time(dataset, from, to, PAGE).await?;
            let full = page.len() == PAGE;
            let fresh: Vec<IndexRow> = page
                .iter()
                .filter(|r| !skip.contains(&r.key))
                .cloned()
                .collect();
            on_page(&fresh);
            let Some(last) = page.last() else { break };
            if !full {
                break;
            }
            // the next page starts at the last event time; skip what was seen at it
            if last.event_time != from {
                skip.clear();
            }
            from = last.event_time;
            skip.extend(page.iter().filter(|r| r.event_time == from).map(|r| r.key));
            if skip.len() >= PAGE {
                return Err(StoreError::invalid(
                    format!("filter of dataset {dataset:?}"),
                    format!("more than {PAGE} samples share one event time; remove them by key"),
                ));
            }
        }
    } else {
        stats_scan(store, dataset, |rows| on_page(rows)).await?;
    }
    Ok(out)
}

/// Calls `f` with every page of the current view, by key.
async fn stats_scan(
    store: &dyn TenantStore,
    dataset: &str,
    mut f: impl FnMut(&[IndexRow]),
) -> Result<(), StoreError> {
    let mut from = 0u64;
    loop {
        let page = store
            .rows_by_key_range(dataset, from, u64::MAX, PAGE)
            .await?;
        f(&page);
        match page.last().and_then(|r| r.key.checked_add(1)) {
            Some(next) if page.len() == PAGE => from = next,
            _ => return Ok(()),
        }
    }
}

/// What `flywheel dataset stats` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetStats {
    /// The dataset.
    pub dataset: String,
    /// Its head changeset.
    pub head: i64,
    /// Samples in its view.
    pub samples: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Samples per label.
    pub labels: BTreeMap<String, u64>,
    /// Samples without a label.
    pub unlabelled: u64,
    /// The earliest event time (microseconds since the Unix epoch).
    pub first_event_time: Option<i64>,
    /// The latest event time.
    pub last_event_time: Option<i64>,
}

/// Scans the dataset's current view (one pass, by key pages) into its statistics.
pub async fn dataset_stats(
    store: &dyn TenantStore,
    dataset: &str,
) -> Result<DatasetStats, StoreError> {
    let d = store
        .dataset(dataset)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("dataset {dataset:?}")))?;
    let mut s = DatasetStats {
        dataset: d.name,
        head: d.head,
        ..DatasetStats::default()
    };
    stats_scan(store, dataset, |rows| {
        for r in rows {
            s.samples += 1;
            s.bytes += r.size;
            match &r.label {
                Some(l) => *s.labels.entry(l.clone()).or_default() += 1,
                None => s.unlabelled += 1,
            }
            s.first_event_time = Some(
                s.first_event_time
                    .map_or(r.event_time, |t| t.min(r.event_time)),
            );
            s.last_event_time = Some(
                s.last_event_time
                    .map_or(r.event_time, |t| t.max(r.event_time)),
            );
        }
    })
    .await?;
    Ok(s)
}
