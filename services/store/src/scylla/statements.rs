//! Every statement a tenant keyspace runs, prepared once when the tenant is opened and
//! kept in its handle. Writes that may be repeated with the same effect are marked
//! idempotent (the driver may retry them); lightweight transactions are not.

use super::db::{Ks, Stmt};
use super::schema::table;
use crate::StoreError;

/// The columns of a changeset row, in `ChangesetRow`'s order.
pub(crate) const CHANGESET_COLUMNS: &str = "dataset, id, kind, created_at, sample_count, bytes, \
     reverts, query, sources, segments, consumer, offsets, record_hash, rows_hash, parts, \
     removed_count, relabel_count";

/// The columns of a view entry as read back, in `layout` order.
pub(crate) const ENTRY_COLUMNS: &str =
    "key, changeset, op, uri, seg_offset, seg_length, label, event_time, size";

const DATASET_COLUMNS: &str = "name, created_at, head, samples, bytes";

const TRAINSET_COLUMNS: &str =
    "version, dataset, query, head_changeset, manifest_uri, sample_count, created_at";

const PIPELINE_COLUMNS: &str = "name, document, status, submitted_at, stopped_at";

const MODEL_COLUMNS: &str =
    "id, pipeline, trigger_id, uri, trainset_version, parent, metrics, created_at";

/// The prepared statements of one tenant keyspace.
#[derive(Debug)]
pub(crate) struct Statements {
    // datasets
    pub(crate) dataset: Stmt,
    pub(crate) datasets: Stmt,
    pub(crate) dataset_state: Stmt,
    pub(crate) dataset_create: Stmt,
    pub(crate) dataset_claim: Stmt,
    pub(crate) dataset_reclaim: Stmt,
    pub(crate) dataset_reclaim_untimed: Stmt,
    pub(crate) dataset_advance: Stmt,
    pub(crate) dataset_offsets: Stmt,
    // changesets
    pub(crate) changeset_put: Stmt,
    pub(crate) changeset_delete: Stmt,
    pub(crate) changeset: Stmt,
    pub(crate) changesets: Stmt,
    pub(crate) entry_put: Stmt,
    pub(crate) entries_delete: Stmt,
    pub(crate) entries: Stmt,
    // the view
    pub(crate) by_key_put: Stmt,
    pub(crate) by_key_delete: Stmt,
    pub(crate) by_key_range: Stmt,
    pub(crate) by_key_in: Stmt,
    pub(crate) by_time_put: Stmt,
    pub(crate) by_time_delete: Stmt,
    pub(crate) by_time_range: Stmt,
    pub(crate) bucket_put: Stmt,
    pub(crate) buckets: Stmt,
    // training sets, pipelines, models
    pub(crate) trainset_put: Stmt,
    pub(crate) trainset: Stmt,
    pub(crate) trainsets: Stmt,
    pub(crate) pipeline_put: Stmt,
    pub(crate) pipeline: Stmt,
    pub(crate) pipelines: Stmt,
    pub(crate) state: Stmt,
    pub(crate) state_create: Stmt,
    pub(crate) state_update: Stmt,
    pub(crate) model_put: Stmt,
    pub(crate) model: Stmt,
    pub(crate) models: Stmt,
}

impl Statements {
    pub(crate) async fn prepare(ks: &Ks) -> Result<Self, StoreError> {
        use table::*;
        let p = |table, cql: String, idempotent| async move {
            ks.prepare(table, &cql, idempotent).await
        };
        let values = |n: usize| vec!["?"; n].join(", ");
        Ok(Self {
            dataset: p(
                DATASETS,
                format!("SELECT {DATASET_COLUMNS} FROM {{ks}}.datasets WHERE name = ?"),
                true,
            )
            .await?,
            datasets: p(
                DATASETS,
                format!("SELECT {DATASET_COLUMNS} FROM {{ks}}.datasets"),
                true,
            )
            .await?,
            dataset_state: p(
                DATASETS,
                "SELECT created_at, head, samples, bytes, pending_id, pending_hash,
                     pending_since
                 FROM {ks}.datasets WHERE name = ?"
                    .into(),
                true,
            )
            .await?,
            dataset_create: p(
                DATASETS,
                "INSERT INTO {ks}.datasets (name, created_at, head, samples, bytes)
                 VALUES (?, ?, 0, 0, 0) IF NOT EXISTS"
                    .into(),
                false,
            )
            .await?,
            dataset_claim: p(
                DATASETS,
                "UPDATE {ks}.datasets SET pending_id = ?, pending_hash = ?, pending_since = ?
                 WHERE name = ? IF head = ? AND pending_hash = null"
                    .into(),
                false,
            )
            .await?,
            // resume a claim of the same content, or take over a stale one: only the
            // claim that was read, so a claim renewed meanwhile is left alone
            dataset_reclaim: p(
                DATASETS,
                "UPDATE {ks}.datasets SET pending_hash = ?, pending_since = ?
                 WHERE name = ?
                 IF head = ? AND pending_id = ? AND pending_hash = ? AND pending_since = ?"
                    .into(),
                false,
            )
            .await?,
            // the same for a claim without a time, the null written in the statement
            // (conditions on a bound null have misbehaved in some ScyllaDB releases)
            dataset_reclaim_untimed: p(
                DATASETS,
                "UPDATE {ks}.datasets SET pending_hash = ?, pending_since = ?
                 WHERE name = ?
                 IF head = ? AND pending_id = ? AND pending_hash = ? AND pending_since = null"
                    .into(),
                false,
            )
            .await?,
            dataset_advance: p(
                DATASETS,
                "UPDATE {ks}.datasets SET head = ?, samples = ?, bytes = ?, pending_id = null,
                     pending_hash = null, pending_since = null, offsets = offsets + ?
                 WHERE name = ? IF head = ? AND pending_hash = ? AND pending_since = ?"
                    .into(),
                false,
            )
            .await?,
            dataset_offsets: p(DATASETS, "SELECT offsets FROM {ks}.datasets".into(), true).await?,

            changeset_put: p(
                CHANGESETS,
                format!(
                    "INSERT INTO {{ks}}.changesets ({CHANGESET_COLUMNS}) VALUES ({})",
                    values(17)
                ),
                true,
            )
            .await?,
            changeset_delete: p(
                CHANGESETS,
                "DELETE FROM {ks}.changesets WHERE dataset = ? AND id = ?".into(),
                true,
            )
            .await?,
            changeset: p(
                CHANGESETS,
                format!(
                    "SELECT {CHANGESET_COLUMNS} FROM {{ks}}.changesets WHERE dataset = ? AND id = ?"
                ),
                true,
            )
            .await?,
            changesets: p(
                CHANGESETS,
                format!(
                    "SELECT {CHANGESET_COLUMNS} FROM {{ks}}.changesets
                     WHERE dataset = ? AND id <= ? ORDER BY id"
                ),
                true,
            )
            .await?,
            entry_put: p(
                CHANGESET_ENTRIES,
                format!(
                    "INSERT INTO {{ks}}.changeset_entries (dataset, changeset, part, key, op,
                         uri, seg_offset, seg_length, label, event_time, size)
                     VALUES ({})",
                    values(11)
                ),
                true,
            )
            .await?,
            entries_delete: p(
                CHANGESET_ENTRIES,
                "DELETE FROM {ks}.changeset_entries
                 WHERE dataset = ? AND changeset = ? AND part = ?"
                    .into(),
                true,
            )
            .await?,
            entries: p(
                CHANGESET_ENTRIES,
                format!(
                    "SELECT {ENTRY_COLUMNS} FROM {{ks}}.changeset_entries
                     WHERE dataset = ? AND changeset = ? AND part = ?"
                ),
                true,
            )
            .await?,

            by_key_put: p(
                VIEW_BY_KEY,
                format!(
                    "INSERT INTO {{ks}}.view_by_key (dataset, bucket, key, changeset, op, uri,
                         seg_offset, seg_length, label, event_time, size)
                     VALUES ({})",
                    values(11)
                ),
                true,
            )
            .await?,
            by_key_delete: p(
                VIEW_BY_KEY,
                "DELETE FROM {ks}.view_by_key
                 WHERE dataset = ? AND bucket = ? AND key = ? AND changeset = ?"
                    .into(),
                true,
            )
            .await?,
            by_key_range: p(
                VIEW_BY_KEY,
                format!(
                    "SELECT {ENTRY_COLUMNS} FROM {{ks}}.view_by_key
                     WHERE dataset = ? AND bucket = ? AND key >= ? AND key <= ?"
                ),
                true,
            )
            .await?,
            by_key_in: p(
                VIEW_BY_KEY,
                format!(
                    "SELECT {ENTRY_COLUMNS} FROM {{ks}}.view_by_key
                     WHERE dataset = ? AND bucket = ? AND key IN ?"
                ),
                true,
            )
            .await?,
            by_time_put: p(
                VIEW_BY_TIME,
                format!(
                    "INSERT INTO {{ks}}.view_by_time (dataset, bucket, event_time, key, changeset,
                         op, uri, seg_offset, seg_length, label, size)
                     VALUES ({})",
                    values(11)
                ),
                true,
            )
            .await?,
            by_time_delete: p(
                VIEW_BY_TIME,
                "DELETE FROM {ks}.view_by_time
                 WHERE dataset = ? AND bucket = ? AND event_time = ? AND key = ? AND changeset = ?"
                    .into(),
                true,
            )
            .await?,
            by_time_range: p(
                VIEW_BY_TIME,
                format!(
                    "SELECT {ENTRY_COLUMNS} FROM {{ks}}.view_by_time
                     WHERE dataset = ? AND bucket = ? AND event_time >= ? AND event_time < ?"
                ),
                true,
            )
            .await?,
            bucket_put: p(
                BUCKETS,
                "INSERT INTO {ks}.buckets (dataset, kind, bucket) VALUES (?, ?, ?)".into(),
                true,
            )
            .await?,
            buckets: p(
                BUCKETS,
                "SELECT bucket FROM {ks}.buckets
                 WHERE dataset = ? AND kind = ? AND bucket >= ? AND bucket <= ?"
                    .into(),
                true,
            )
            .await?,

            trainset_put: p(
                TRAINSETS,
                format!(
                    "INSERT INTO {{ks}}.trainsets ({TRAINSET_COLUMNS}) VALUES ({}) IF NOT EXISTS",
                    values(7)
                ),
                false,
            )
            .await?,
            trainset: p(
                TRAINSETS,
                format!("SELECT {TRAINSET_COLUMNS} FROM {{ks}}.trainsets WHERE version = ?"),
                true,
            )
            .await?,
            trainsets: p(
                TRAINSETS,
                format!("SELECT {TRAINSET_COLUMNS} FROM {{ks}}.trainsets"),
                true,
            )
            .await?,
            pipeline_put: p(
                PIPELINES,
                format!(
                    "INSERT INTO {{ks}}.pipelines ({PIPELINE_COLUMNS}) VALUES ({})",
                    values(5)
                ),
                true,
            )
            .await?,
            pipeline: p(
                PIPELINES,
                format!("SELECT {PIPELINE_COLUMNS} FROM {{ks}}.pipelines WHERE name = ?"),
                true,
            )
            .await?,
            pipelines: p(
                PIPELINES,
                format!("SELECT {PIPELINE_COLUMNS} FROM {{ks}}.pipelines"),
                true,
            )
            .await?,
            state: p(
                PIPELINE_STATE,
                "SELECT state, version FROM {ks}.pipeline_state WHERE pipeline = ?".into(),
                true,
            )
            .await?,
            state_create: p(
                PIPELINE_STATE,
                "INSERT INTO {ks}.pipeline_state (pipeline, version, state) VALUES (?, 1, ?)
                 IF NOT EXISTS"
                    .into(),
                false,
            )
            .await?,
            state_update: p(
                PIPELINE_STATE,
                "UPDATE {ks}.pipeline_state SET version = ?, state = ? WHERE pipeline = ?
                 IF version = ?"
                    .into(),
                false,
            )
            .await?,
            model_put: p(
                MODELS,
                format!(
                    "INSERT INTO {{ks}}.models ({MODEL_COLUMNS}) VALUES ({}) IF NOT EXISTS",
                    values(8)
                ),
                false,
            )
            .await?,
            model: p(
                MODELS,
                format!("SELECT {MODEL_COLUMNS} FROM {{ks}}.models WHERE id = ?"),
                true,
            )
            .await?,
            models: p(
                MODELS,
                format!("SELECT {MODEL_COLUMNS} FROM {{ks}}.models"),
                true,
            )
            .await?,
        })
    }
}
