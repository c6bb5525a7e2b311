//! The `MetaStore` trait every backend implements, and `TenantStore`, one tenant's data.
//!
//! Tenant separation is structural: a `MetaStore` only hands out `TenantStore`s, and every
//! data method lives on a `TenantStore`, which can reach its own tenant's namespace only
//! (a database file per tenant on SQLite, a keyspace per tenant on Scylla). The methods ask
//! nothing a wide-column store cannot do: point and range reads on one dataset, idempotent
//! writes, a compare-and-set on one row, and one atomic write, the changeset commit.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use flywheel_topics::{Tenant, TopicPartition};

use crate::StoreError;
use crate::block::RowBlock;
use crate::model::{
    ChangesetRecord, CommitOutcome, Dataset, IndexRow, ModelRecord, NewChangeset, PipelineRecord,
    PutOutcome, TrainsetRecord,
};

/// A metadata store: the catalogue of tenants, each with its own namespace.
#[async_trait]
pub trait MetaStore: Send + Sync + fmt::Debug {
    /// The URL it was opened with.
    fn url(&self) -> &str;

    /// Opens the tenant's namespace, creating and migrating it if needed. Repeated calls
    /// return the same handle.
    async fn tenant(&self, tenant: &Tenant) -> Result<Arc<dyn TenantStore>, StoreError>;

    /// Every tenant that has a namespace, by name.
    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError>;
}

/// One tenant's datasets, sample index, changesets, training sets, pipelines and models.
///
/// Reads of the sample index come in two views: rows as a changeset added them
/// (`rows_by_changeset`), and the dataset's view, the fold of its changesets: now (`row`,
/// `rows_by_key_range`, `rows_by_event_time`) or as of an earlier changeset (`view_at`).
/// In a view a row carries its label as relabelled since it was added.
#[async_trait]
pub trait TenantStore: Send + Sync + fmt::Debug {
    /// The tenant.
    fn tenant(&self) -> &Tenant;

    // ---- datasets

    /// Creates the dataset if it does not exist; returns it either way.
    async fn ensure_dataset(&self, name: &str, now: i64) -> Result<Dataset, StoreError>;

    /// The dataset, if it exists.
    async fn dataset(&self, name: &str) -> Result<Option<Dataset>, StoreError>;

    /// Every dataset, by name.
    async fn datasets(&self) -> Result<Vec<Dataset>, StoreError>;

    // ---- changesets and the sample index

    /// Commits a changeset with its index rows, removals, relabels and consumer offsets,
    /// all or nothing. Its id must be the dataset's head + 1 (the dataset is created by its
    /// first changeset if need be). Committing a changeset that is already there,
    /// identical, writes nothing and answers `AlreadyCommitted`; a different one with the
    /// same id is a `Conflict`, an id past head + 1 a `Gap`. Adding a key that is in the
    /// view, or removing or relabelling one that is not, is a `Conflict`.
    async fn commit_changeset(&self, changeset: NewChangeset) -> Result<CommitOutcome, StoreError>;

    /// A changeset, if it exists.
    async fn changeset(
        &self,
        dataset: &str,
        id: i64,
    ) -> Result<Option<ChangesetRecord>, StoreError>;

    /// Every changeset of the dataset, by id.
    async fn changesets(&self, dataset: &str) -> Result<Vec<ChangesetRecord>, StoreError>;

    /// The rows a changeset added, by key, as it added them.
    async fn rows_by_changeset(&self, dataset: &str, id: i64) -> Result<Vec<IndexRow>, StoreError>;

    /// The rows a changeset added, as one columnar [`RowBlock`]: the read behind scans of
    /// a whole dataset. The default builds it from [`TenantStore::rows_by_changeset`]; a
    /// backend that stores blocks reads them.
    async fn row_block(&self, dataset: &str, id: i64) -> Result<RowBlock, StoreError> {
        let rows = self.rows_by_changeset(dataset, id).await?;
        Ok(RowBlock::from_rows(id, &rows))
    }

    /// The dataset's current view of keys `from_key..=to_key`, by key, at most `limit`.
    async fn rows_by_key_range(
        &self,
        dataset: &str,
        from_key: u64,
        to_key: u64,
        limit: usize,
    ) -> Result<Vec<IndexRow>, StoreError>;

    /// The dataset's current view of samples with `from <= event_time < to`, by event time
    /// then key, at most `limit`.
    async fn rows_by_event_time(
        &self,
        dataset: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<IndexRow>, StoreError>;

    /// The dataset's view as of changeset `as_of` (the fold of changesets `1..=as_of`):
    /// keys from `from_key` on, by key, at most `limit`. Page with the last key + 1.
    async fn view_at(
        &self,
        dataset: &str,
        as_of: i64,
        from_key: u64,
        limit: usize,
    ) -> Result<Vec<IndexRow>, StoreError>;

    /// The sample with this key in the dataset's current view.
    async fn row(&self, dataset: &str, key: u64) -> Result<Option<IndexRow>, StoreError>;

    /// The positions stored for a consumer by the changesets committed so far: the next
    /// offset to read per source partition.
    async fn consumer_offsets(
        &self,
        consumer: &str,
    ) -> Result<BTreeMap<TopicPartition, i64>, StoreError>;

    // ---- training sets

    /// Stores a training set. Idempotent on its version: the identical record again is
    /// `Unchanged`, a different record with the same version a `Conflict`.
    async fn put_trainset(&self, trainset: TrainsetRecord) -> Result<PutOutcome, StoreError>;

    /// A training set by version.
    async fn trainset(&self, version: &str) -> Result<Option<TrainsetRecord>, StoreError>;

    /// Training sets, of one dataset or all, oldest first.
    async fn trainsets(&self, dataset: Option<&str>) -> Result<Vec<TrainsetRecord>, StoreError>;

    // ---- pipelines

    /// Creates or replaces a pipeline (its state is kept).
    async fn put_pipeline(&self, pipeline: PipelineRecord) -> Result<(), StoreError>;

    /// A pipeline by name.
    async fn pipeline(&self, name: &str) -> Result<Option<PipelineRecord>, StoreError>;

    /// Every pipeline, by name.
    async fn pipelines(&self) -> Result<Vec<PipelineRecord>, StoreError>;

    /// A pipeline's state and its version, if any was stored.
    async fn pipeline_state(&self, name: &str) -> Result<Option<(Vec<u8>, u64)>, StoreError>;

    /// Stores a pipeline's state if its current version is `expected_version` (`None`:
    /// there is no state yet); returns the new version. A mismatch is a `Conflict`; an
    /// unknown pipeline `NotFound`.
    async fn put_pipeline_state(
        &self,
        name: &str,
        state: Vec<u8>,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError>;

    // ---- models

    /// Stores a model release. Idempotent on its id, like `put_trainset`.
    async fn put_model(&self, model: ModelRecord) -> Result<PutOutcome, StoreError>;

    /// A model by id.
    async fn model(&self, id: &str) -> Result<Option<ModelRecord>, StoreError>;

    /// Models, of one pipeline or all, oldest first.
    async fn models(&self, pipeline: Option<&str>) -> Result<Vec<ModelRecord>, StoreError>;
}
