//! The records the metadata store keeps: plain data, the same for every backend.
//!
//! Times are `i64` microseconds since the Unix epoch, as in the events
//! (`flywheel_schemas::now_micros`). Sample keys are `u64`, unique per dataset.

use std::collections::{BTreeMap, BTreeSet};

use flywheel_schemas::{ChangesetKind, RestrictedQuery, SourceRange};
use flywheel_topics::TopicPartition;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// A dataset and its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// The dataset name (`flywheel_schemas::check_dataset_name`).
    pub name: String,
    /// When it was created.
    pub created_at: i64,
    /// The id of its last changeset; 0 if it has none.
    pub head: i64,
    /// Samples in its current view.
    pub samples: i64,
    /// Bytes of the samples in its current view.
    pub bytes: i64,
}

/// Where a sample's payload lives. A URI without a scheme (`tenant/dataset/segments/...`)
/// is a path in flywheel's own blob store, relative to its root: the index stays valid when
/// the store moves (a data directory copied, a bucket renamed). Producers' blob URIs are
/// kept as they came.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SampleLocation {
    /// A byte range of a segment object that packs the stored forms of many samples (their
    /// features and inline payloads, `flywheel_schemas::write_body`).
    Segment {
        /// The segment object's URI.
        uri: String,
        /// Byte offset of the payload in the segment.
        offset: u64,
        /// Length of the payload in bytes.
        length: u64,
    },
    /// An object of its own: a blob the producer had already stored, for a sample with no
    /// features (one with features is stored in a segment, the blob URI in its body).
    Blob {
        /// The object's URI.
        uri: String,
    },
}

impl SampleLocation {
    /// The object's URI.
    pub fn uri(&self) -> &str {
        self.parts().0
    }

    /// The object's URI and, for a segment, the (offset, length) of the range in it.
    pub fn parts(&self) -> (&str, Option<(u64, u64)>) {
        match self {
            SampleLocation::Segment {
                uri,
                offset,
                length,
            } => (uri, Some((*offset, *length))),
            SampleLocation::Blob { uri } => (uri, None),
        }
    }
}

/// One entry of the sample index: a sample as a changeset added it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRow {
    /// The sample key, unique in the dataset's view.
    pub key: u64,
    /// The changeset that added it.
    pub changeset: i64,
    /// Where its stored form is (`flywheel_schemas::read_body`).
    pub location: SampleLocation,
    /// Its label (in a current-view read: as relabelled since).
    pub label: Option<String>,
    /// When it was observed.
    pub event_time: i64,
    /// Its size in bytes.
    pub size: u64,
}

/// A committed changeset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesetRecord {
    /// The dataset.
    pub dataset: String,
    /// 1, 2, ... N per dataset, without gaps.
    pub id: i64,
    /// What it does.
    pub kind: ChangesetKind,
    /// When it was made.
    pub created_at: i64,
    /// Samples it carries, as its producer counted them.
    pub sample_count: i64,
    /// Bytes it carries, as its producer counted them.
    pub bytes: i64,
    /// For a revert: the changeset it undoes.
    pub reverts: Option<i64>,
    /// For a query changeset: the restricted query.
    pub query: Option<RestrictedQuery>,
    /// The source offsets it covers.
    pub sources: Vec<SourceRange>,
    /// URIs of the payload segments it wrote.
    pub segments: Vec<String>,
    /// Keys it removes from the view, ascending.
    pub removed: Vec<u64>,
    /// Keys it relabels and their new labels (`None` removes the label), by key.
    pub relabels: Vec<(u64, Option<String>)>,
}

impl ChangesetRecord {
    /// A changeset with no content yet.
    pub fn new(dataset: impl Into<String>, id: i64, kind: ChangesetKind, created_at: i64) -> Self {
        Self {
            dataset: dataset.into(),
            id,
            kind,
            created_at,
            sample_count: 0,
            bytes: 0,
            reverts: None,
            query: None,
            sources: Vec::new(),
            segments: Vec::new(),
            removed: Vec::new(),
            relabels: Vec::new(),
        }
    }

    /// `changeset ID of dataset "NAME"`, for messages.
    pub fn describe(&self) -> String {
        describe_changeset(&self.dataset, self.id)
    }

    /// The event announcing it on the tenant's changesets topic.
    pub fn to_event(&self, tenant: &flywheel_topics::Tenant) -> flywheel_schemas::Changeset {
        flywheel_schemas::Changeset {
            tenant: tenant.as_str().to_owned(),
            dataset: self.dataset.clone(),
            id: self.id,
            kind: self.kind,
            created_at: self.created_at,
            sample_count: self.sample_count,
            bytes: self.bytes,
            reverts: self.reverts,
            query: self.query.clone(),
            sources: self.sources.clone(),
            segments: self.segments.clone(),
        }
    }
}

pub(crate) fn describe_changeset(dataset: &str, id: i64) -> String {
    format!("changeset {id} of dataset {dataset:?}")
}

/// A changeset to commit: the record, the index rows it adds, and the consumer positions
/// (next offset to read per source partition) to store atomically with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChangeset {
    /// The changeset.
    pub record: ChangesetRecord,
    /// The samples it adds; each row's `changeset` is the record's id.
    pub rows: Vec<IndexRow>,
    /// Whose offsets `offsets` are, e.g. `ingest`.
    pub consumer: String,
    /// Next offset to read per source partition, stored with the changeset.
    pub offsets: Vec<(TopicPartition, i64)>,
}

impl NewChangeset {
    /// A changeset with no rows and no offsets.
    pub fn new(record: ChangesetRecord) -> Self {
        Self {
            record,
            rows: Vec::new(),
            consumer: String::new(),
            offsets: Vec::new(),
        }
    }

    /// Sets the rows it adds.
    #[must_use]
    pub fn with_rows(mut self, rows: Vec<IndexRow>) -> Self {
        self.rows = rows;
        self
    }

    /// Sets the consumer positions stored with it.
    #[must_use]
    pub fn with_offsets(
        mut self,
        consumer: impl Into<String>,
        offsets: Vec<(TopicPartition, i64)>,
    ) -> Self {
        self.consumer = consumer.into();
        self.offsets = offsets;
        self
    }

    /// Checks the rules a changeset obeys on its own (the store checks the rest against
    /// the dataset) and puts rows, removed keys, relabels and offsets in key order, the
    /// order they are stored and read back in. Every backend calls this before writing.
    pub fn normalize(&mut self) -> Result<(), StoreError> {
        let what = self.record.describe();
        let bad = |reason: String| StoreError::invalid(what.clone(), reason);
        let r = &mut self.record;
        flywheel_schemas::check_dataset_name(&r.dataset).map_err(|e| bad(e.detail))?;
        if r.id < 1 {
            return Err(bad("changeset ids start at 1".into()));
        }
        let (rows, removes, relabels) = (
            !self.rows.is_empty(),
            !r.removed.is_empty(),
            !r.relabels.is_empty(),
        );
        // (rows, removed keys, relabels) a kind may carry
        let allowed = match r.kind {
            ChangesetKind::Add => (true, false, false),
            ChangesetKind::Remove => (false, true, false),
            ChangesetKind::Relabel => (false, false, true),
            ChangesetKind::Query => (false, false, false),
            ChangesetKind::Revert => (true, true, true),
        };
        let refused: Vec<&str> = [
            (rows && !allowed.0, "rows"),
            (removes && !allowed.1, "removed keys"),
            (relabels && !allowed.2, "relabels"),
        ]
        .into_iter()
        .filter_map(|(refused, name)| refused.then_some(name))
        .collect();
        if !refused.is_empty() {
            return Err(bad(format!(
                "a changeset of kind {} cannot carry {}",
                kind_name(r.kind),
                refused.join(" or ")
            )));
        }
        match (r.kind, r.reverts) {
            (ChangesetKind::Revert, Some(n)) if n < 1 || n >= r.id => {
                return Err(bad(format!(
                    "it reverts changeset {n}, which is not an earlier changeset"
                )));
            }
            (ChangesetKind::Revert, None) => {
                return Err(bad("a revert must name the changeset it reverts".into()));
            }
            (k, Some(_)) if k != ChangesetKind::Revert => {
                return Err(bad("only a revert may name a changeset it reverts".into()));
            }
            _ => {}
        }
        if (r.kind == ChangesetKind::Query) != r.query.is_some() {
            return Err(bad(
                "a query changeset, and only one, carries a query".into()
            ));
        }
        if !self.offsets.is_empty() && self.consumer.is_empty() {
            return Err(bad("offsets need a consumer name".into()));
        }

        self.rows.sort_unstable_by_key(|row| row.key);
        r.removed.sort_unstable();
        r.relabels.sort_by_key(|(key, _)| *key);
        self.offsets.sort();
        if let Some(k) = repeated(self.rows.iter().map(|row| row.key)) {
            return Err(bad(format!("key {k} appears more than once in its rows")));
        }
        if let Some(k) = repeated(r.removed.iter().copied()) {
            return Err(bad(format!("key {k} is removed more than once")));
        }
        if let Some(k) = repeated(r.relabels.iter().map(|(k, _)| *k)) {
            return Err(bad(format!("key {k} is relabelled more than once")));
        }
        if let Some(w) = self.offsets.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(bad(format!("two offsets for {}", w[0].0)));
        }
        if let Some(row) = self.rows.iter().find(|row| row.changeset != r.id) {
            return Err(bad(format!(
                "row of key {} says changeset {}",
                row.key, row.changeset
            )));
        }
        if r.kind == ChangesetKind::Revert {
            // each list is free of repeats by now, so a repeat is a key in two lists
            let mut seen = BTreeSet::new();
            let mut all = (self.rows.iter().map(|row| row.key))
                .chain(r.removed.iter().copied())
                .chain(r.relabels.iter().map(|(k, _)| *k));
            if let Some(k) = all.find(|k| !seen.insert(*k)) {
                return Err(bad(format!(
                    "key {k} is in more than one of rows, removed keys and relabels"
                )));
            }
        }
        Ok(())
    }
}

/// The first key equal to its predecessor in a sorted sequence.
fn repeated(mut keys: impl Iterator<Item = u64>) -> Option<u64> {
    let mut last = None;
    keys.find(|&k| last.replace(k) == Some(k))
}

pub(crate) fn kind_name(kind: ChangesetKind) -> &'static str {
    match kind {
        ChangesetKind::Add => "add",
        ChangesetKind::Remove => "remove",
        ChangesetKind::Relabel => "relabel",
        ChangesetKind::Revert => "revert",
        ChangesetKind::Query => "query",
    }
}

pub(crate) fn kind_from_name(name: &str) -> Option<ChangesetKind> {
    [
        ChangesetKind::Add,
        ChangesetKind::Remove,
        ChangesetKind::Relabel,
        ChangesetKind::Revert,
        ChangesetKind::Query,
    ]
    .into_iter()
    .find(|k| kind_name(*k) == name)
}

/// What committing a changeset did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// It was written; the dataset as it is now.
    Committed(Dataset),
    /// The identical changeset was already there (a replay); nothing was written.
    AlreadyCommitted(Dataset),
}

impl CommitOutcome {
    /// The dataset after the call.
    pub fn dataset(&self) -> &Dataset {
        match self {
            CommitOutcome::Committed(d) | CommitOutcome::AlreadyCommitted(d) => d,
        }
    }
}

/// What an idempotent put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The record was new and is now stored.
    Created,
    /// The identical record was already there; nothing was written.
    Unchanged,
}

/// A training set: the query that defines it and the manifest it produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainsetRecord {
    /// The version: a hash of the query's canonical encoding.
    pub version: String,
    /// The dataset it selects from.
    pub dataset: String,
    /// The query. Stored canonically (object keys sorted), so equal queries compare equal.
    pub query: serde_json::Value,
    /// The changeset it is pinned to.
    pub head_changeset: i64,
    /// Where its manifest is.
    pub manifest_uri: String,
    /// Samples in it.
    pub sample_count: i64,
    /// When it was made.
    pub created_at: i64,
}

/// Whether a pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipelineStatus {
    /// Submitted and not stopped.
    Active,
    /// Stopped.
    Stopped,
}

impl PipelineStatus {
    /// `active` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineStatus::Active => "active",
            PipelineStatus::Stopped => "stopped",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [PipelineStatus::Active, PipelineStatus::Stopped]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// A submitted pipeline. Its runtime state (trigger and selection state) is kept apart, as
/// opaque versioned bytes: `TenantStore::pipeline_state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineRecord {
    /// The pipeline name.
    pub name: String,
    /// The TOML document.
    pub document: String,
    /// Whether it runs.
    pub status: PipelineStatus,
    /// When it was (last) submitted.
    pub submitted_at: i64,
    /// When it was stopped.
    pub stopped_at: Option<i64>,
}

/// A trained model and its lineage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The model id.
    pub id: String,
    /// The pipeline that trained it.
    pub pipeline: String,
    /// The trigger that caused it.
    pub trigger_id: i64,
    /// Where the model is.
    pub uri: String,
    /// The training set it was trained on.
    pub trainset_version: String,
    /// The model it was fine-tuned from.
    pub parent: Option<String>,
    /// Evaluation metrics.
    pub metrics: BTreeMap<String, f64>,
    /// When it was released.
    pub created_at: i64,
}

/// The canonical text of a JSON value: objects with their keys sorted, no spaces.
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn sorted(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let entries: BTreeMap<&String, serde_json::Value> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                serde_json::Value::Object(
                    entries.into_iter().map(|(k, v)| (k.clone(), v)).collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: u64, changeset: i64) -> IndexRow {
        IndexRow {
            key,
            changeset,
            location: SampleLocation::Blob {
                uri: format!("file:///b/{key}"),
            },
            label: None,
            event_time: 0,
            size: 1,
        }
    }

    fn add(id: i64, keys: &[u64]) -> NewChangeset {
        NewChangeset::new(ChangesetRecord::new("d", id, ChangesetKind::Add, 0))
            .with_rows(keys.iter().map(|k| row(*k, id)).collect())
    }

    #[test]
    fn normalize_sorts_and_checks() {
        let mut c = add(1, &[3, 1, 2]);
        c.normalize().unwrap();
        assert_eq!(
            c.rows.iter().map(|r| r.key).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );

        let err = add(1, &[3, 1, 3]).normalize().unwrap_err().to_string();
        assert!(err.contains("key 3 appears more than once"), "{err}");

        let mut wrong = add(2, &[1]);
        wrong.rows[0].changeset = 1;
        let err = wrong.normalize().unwrap_err().to_string();
        assert!(err.contains("changeset 2 of dataset \"d\""), "{err}");

        let mut mixed = add(1, &[1]);
        mixed.record.removed = vec![4];
        let err = mixed.normalize().unwrap_err().to_string();
        assert!(
            err.contains("a changeset of kind add cannot carry removed keys"),
            "{err}"
        );

        let mut revert = NewChangeset::new(ChangesetRecord::new("d", 3, ChangesetKind::Revert, 0));
        revert.normalize().unwrap_err();
        revert.record.reverts = Some(3);
        revert.normalize().unwrap_err();
        revert.record.reverts = Some(2);
        revert.record.removed = vec![5];
        revert.record.relabels = vec![(5, None)];
        let err = revert.normalize().unwrap_err().to_string();
        assert!(err.contains("key 5 is in more than one"), "{err}");

        let mut bad_name = add(1, &[]);
        bad_name.record.dataset = "a b".into();
        bad_name.normalize().unwrap_err();

        let mut no_consumer = add(1, &[]);
        no_consumer.offsets = vec![(TopicPartition::new("t", 0), 1)];
        no_consumer.normalize().unwrap_err();
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"z":0,"y":1}],"c":null}}"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"d":[1,{"y":1,"z":0}]},"b":1}"#
        );
    }
}
