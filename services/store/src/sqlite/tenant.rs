//! `TenantStore` on SQLite: one database file per tenant; every call runs on the blocking
//! pool, writes on the one writer connection, reads on pooled reader connections.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use flywheel_topics::{Tenant, TopicPartition};
use tracing::instrument;

use super::db::{Db, blocking};
use super::index::{self, Scan};
use super::records;
use crate::block::RowBlock;
use crate::model::{
    ChangesetRecord, CommitOutcome, Dataset, IndexRow, ModelRecord, NewChangeset, PipelineRecord,
    PutOutcome, TrainsetRecord,
};
use crate::{StoreError, TenantStore};

/// One tenant's database.
#[derive(Debug)]
pub(crate) struct SqliteTenant {
    tenant: Tenant,
    db: Arc<Db>,
}

impl SqliteTenant {
    pub(crate) fn new(tenant: Tenant, db: Db) -> Self {
        Self {
            tenant,
            db: Arc::new(db),
        }
    }
}

/// Runs a read on the blocking pool: `read!(self, "op", |tx| expr)`, where the closure's
/// captures are owned (moved in).
macro_rules! read {
    ($self:ident, $op:literal, |$tx:ident| $body:expr) => {
        blocking(&$self.db, move |db| db.read($op, |$tx| $body)).await
    };
}

macro_rules! write {
    ($self:ident, $op:literal, |$tx:ident| $body:expr) => {
        blocking(&$self.db, move |db| db.write($op, |$tx| $body)).await
    };
}

#[async_trait]
impl TenantStore for SqliteTenant {
    fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    async fn ensure_dataset(&self, name: &str, now: i64) -> Result<Dataset, StoreError> {
        let name = name.to_owned();
        write!(self, "create dataset", |tx| index::ensure_dataset(
            tx, &name, now
        ))
    }

    async fn dataset(&self, name: &str) -> Result<Option<Dataset>, StoreError> {
        let name = name.to_owned();
        read!(self, "read dataset", |tx| index::dataset(tx, &name))
    }

    async fn datasets(&self) -> Result<Vec<Dataset>, StoreError> {
        read!(self, "list datasets", |tx| index::datasets(tx))
    }

    #[instrument(skip_all, fields(tenant = %self.tenant, dataset = %changeset.record.dataset, id = changeset.record.id))]
    async fn commit_changeset(
        &self,
        mut changeset: NewChangeset,
    ) -> Result<CommitOutcome, StoreError> {
        changeset.normalize()?;
        let outcome = write!(self, "commit changeset", |tx| index::commit(tx, &changeset))?;
        match &outcome {
            CommitOutcome::Committed(d) => {
                tracing::debug!(head = d.head, samples = d.samples, "changeset committed");
            }
            CommitOutcome::AlreadyCommitted(_) => {
                tracing::info!("changeset was already committed; nothing written");
            }
        }
        Ok(outcome)
    }

    async fn changeset(
        &self,
        dataset: &str,
        id: i64,
    ) -> Result<Option<ChangesetRecord>, StoreError> {
        let dataset = dataset.to_owned();
        read!(self, "read changeset", |tx| index::changeset(
            tx, &dataset, id
        ))
    }

    async fn changesets(&self, dataset: &str) -> Result<Vec<ChangesetRecord>, StoreError> {
        let dataset = dataset.to_owned();
        read!(self, "list changesets", |tx| index::changesets(
            tx, &dataset
        ))
    }

    async fn rows_by_changeset(&self, dataset: &str, id: i64) -> Result<Vec<IndexRow>, StoreError> {
        let dataset = dataset.to_owned();
        read!(self, "read rows of changeset", |tx| {
            index::rows_by_changeset(tx, &dataset, id)
        })
    }

    async fn row_block(&self, dataset: &str, id: i64) -> Result<RowBlock, StoreError> {
        let dataset = dataset.to_owned();
        read!(self, "read the row block of a changeset", |tx| {
            index::row_block(tx, &dataset, id)
        })
    }

    async fn rows_by_key_range(
        &self,
        dataset: &str,
        from_key: u64,
        to_key: u64,
        limit: usize,
    ) -> Result<Vec<IndexRow>, StoreError> {
        let dataset = dataset.to_owned();
        let scan = Scan::Keys {
            from: from_key,
            to: to_key,
        };
        read!(self, "read rows by key", |tx| index::view(
            tx,
            &dataset,
            i64::MAX,
            scan,
            limit
        ))
    }

    async fn rows_by_event_time(
        &self,
        dataset: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<IndexRow>, StoreError> {
        let dataset = dataset.to_owned();
        let scan = Scan::EventTime { from, to };
        read!(self, "read rows by event time", |tx| index::view(
            tx,
            &dataset,
            i64::MAX,
            scan,
            limit
        ))
    }

    async fn view_at(
        &self,
        dataset: &str,
        as_of: i64,
        from_key: u64,
        limit: usize,
    ) -> Result<Vec<IndexRow>, StoreError> {
        let dataset = dataset.to_owned();
        let scan = Scan::Keys {
            from: from_key,
            to: u64::MAX,
        };
        read!(self, "read the view of a changeset", |tx| index::view(
            tx, &dataset, as_of, scan, limit
        ))
    }

    async fn row(&self, dataset: &str, key: u64) -> Result<Option<IndexRow>, StoreError> {
        let dataset = dataset.to_owned();
        let scan = Scan::Keys { from: key, to: key };
        read!(self, "read row", |tx| Ok(index::view(
            tx,
            &dataset,
            i64::MAX,
            scan,
            1
        )?
        .pop()))
    }

    async fn consumer_offsets(
        &self,
        consumer: &str,
    ) -> Result<BTreeMap<TopicPartition, i64>, StoreError> {
        let consumer = consumer.to_owned();
        read!(self, "read consumer offsets", |tx| {
            index::consumer_offsets(tx, &consumer)
        })
    }

    async fn put_trainset(&self, trainset: TrainsetRecord) -> Result<PutOutcome, StoreError> {
        write!(self, "write training set", |tx| records::put_trainset(
            tx, &trainset
        ))
    }

    async fn trainset(&self, version: &str) -> Result<Option<TrainsetRecord>, StoreError> {
        let version = version.to_owned();
        read!(self, "read training set", |tx| records::trainset(
            tx, &version
        ))
    }

    async fn trainsets(&self, dataset: Option<&str>) -> Result<Vec<TrainsetRecord>, StoreError> {
        let dataset = dataset.map(str::to_owned);
        read!(self, "list training sets", |tx| records::trainsets(
            tx,
            dataset.as_deref()
        ))
    }

    async fn put_pipeline(&self, pipeline: PipelineRecord) -> Result<(), StoreError> {
        write!(self, "write pipeline", |tx| records::put_pipeline(
            tx, &pipeline
        ))
    }

    async fn pipeline(&self, name: &str) -> Result<Option<PipelineRecord>, StoreError> {
        let name = name.to_owned();
        read!(self, "read pipeline", |tx| records::pipeline(tx, &name))
    }

    async fn pipelines(&self) -> Result<Vec<PipelineRecord>, StoreError> {
        read!(self, "list pipelines", |tx| records::pipelines(tx))
    }

    async fn pipeline_state(&self, name: &str) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        let name = name.to_owned();
        read!(self, "read pipeline state", |tx| records::pipeline_state(
            tx, &name
        ))
    }

    async fn put_pipeline_state(
        &self,
        name: &str,
        state: Vec<u8>,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let name = name.to_owned();
        write!(self, "write pipeline state", |tx| {
            records::put_pipeline_state(tx, &name, &state, expected_version)
        })
    }

    async fn put_model(&self, model: ModelRecord) -> Result<PutOutcome, StoreError> {
        write!(self, "write model", |tx| records::put_model(tx, &model))
    }

    async fn model(&self, id: &str) -> Result<Option<ModelRecord>, StoreError> {
        let id = id.to_owned();
        read!(self, "read model", |tx| records::model(tx, &id))
    }

    async fn models(&self, pipeline: Option<&str>) -> Result<Vec<ModelRecord>, StoreError> {
        let pipeline = pipeline.map(str::to_owned);
        read!(self, "list models", |tx| records::models(
            tx,
            pipeline.as_deref()
        ))
    }
}
