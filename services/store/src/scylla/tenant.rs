//! `TenantStore` on ScyllaDB: one keyspace per tenant, its statements prepared once.

use std::collections::BTreeMap;

use async_trait::async_trait;
use flywheel_topics::{Tenant, TopicPartition};
use tracing::instrument;

use super::db::Ks;
use super::statements::Statements;
use super::{commit, records, view};
use crate::model::{
    ChangesetRecord, CommitOutcome, Dataset, IndexRow, ModelRecord, NewChangeset, PipelineRecord,
    PutOutcome, TrainsetRecord,
};
use crate::{StoreError, TenantStore};

/// One tenant's keyspace and its prepared statements.
#[derive(Debug)]
pub(crate) struct ScyllaTenant {
    pub(crate) tenant: Tenant,
    pub(crate) ks: Ks,
    pub(crate) st: Statements,
}

fn check_dataset_name(name: &str) -> Result<(), StoreError> {
    flywheel_schemas::check_dataset_name(name)
        .map_err(|e| StoreError::invalid(format!("dataset name {name:?}"), e.detail))
}

#[async_trait]
impl TenantStore for ScyllaTenant {
    fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    async fn ensure_dataset(&self, name: &str, now: i64) -> Result<Dataset, StoreError> {
        check_dataset_name(name)?;
        self.ks
            .lwt("create dataset", &self.st.dataset_create, (name, now))
            .await?;
        view::dataset(self, name).await?.ok_or_else(|| {
            self.ks
                .corrupt(format!("dataset {name:?}"), "created, then not found")
        })
    }

    async fn dataset(&self, name: &str) -> Result<Option<Dataset>, StoreError> {
        view::dataset(self, name).await
    }

    async fn datasets(&self) -> Result<Vec<Dataset>, StoreError> {
        view::datasets(self).await
    }

    #[instrument(skip_all, fields(tenant = %self.tenant, dataset = %changeset.record.dataset, id = changeset.record.id))]
    async fn commit_changeset(
        &self,
        mut changeset: NewChangeset,
    ) -> Result<CommitOutcome, StoreError> {
        changeset.normalize()?;
        let outcome = commit::commit(self, &changeset).await?;
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
        view::changeset(self, dataset, id).await
    }

    async fn changesets(&self, dataset: &str) -> Result<Vec<ChangesetRecord>, StoreError> {
        view::changesets(self, dataset).await
    }

    async fn rows_by_changeset(&self, dataset: &str, id: i64) -> Result<Vec<IndexRow>, StoreError> {
        view::rows_by_changeset(self, dataset, id).await
    }

    async fn rows_by_key_range(
        &self,
        dataset: &str,
        from_key: u64,
        to_key: u64,
        limit: usize,
    ) -> Result<Vec<IndexRow>, StoreError> {
        view::by_key(self, dataset, i64::MAX, (from_key, to_key), limit).await
    }

    async fn rows_by_event_time(
        &self,
        dataset: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<IndexRow>, StoreError> {
        view::by_time(self, dataset, (from, to), limit).await
    }

    async fn view_at(
        &self,
        dataset: &str,
        as_of: i64,
        from_key: u64,
        limit: usize,
    ) -> Result<Vec<IndexRow>, StoreError> {
        view::by_key(self, dataset, as_of, (from_key, u64::MAX), limit).await
    }

    async fn row(&self, dataset: &str, key: u64) -> Result<Option<IndexRow>, StoreError> {
        Ok(view::by_key(self, dataset, i64::MAX, (key, key), 1)
            .await?
            .pop())
    }

    async fn consumer_offsets(
        &self,
        consumer: &str,
    ) -> Result<BTreeMap<TopicPartition, i64>, StoreError> {
        view::consumer_offsets(self, consumer).await
    }

    async fn put_trainset(&self, trainset: TrainsetRecord) -> Result<PutOutcome, StoreError> {
        records::put_trainset(self, &trainset).await
    }

    async fn trainset(&self, version: &str) -> Result<Option<TrainsetRecord>, StoreError> {
        records::trainset(self, version).await
    }

    async fn trainsets(&self, dataset: Option<&str>) -> Result<Vec<TrainsetRecord>, StoreError> {
        records::trainsets(self, dataset).await
    }

    async fn put_pipeline(&self, pipeline: PipelineRecord) -> Result<(), StoreError> {
        records::put_pipeline(self, &pipeline).await
    }

    async fn pipeline(&self, name: &str) -> Result<Option<PipelineRecord>, StoreError> {
        records::pipeline(self, name).await
    }

    async fn pipelines(&self) -> Result<Vec<PipelineRecord>, StoreError> {
        records::pipelines(self).await
    }

    async fn pipeline_state(&self, name: &str) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        records::pipeline_state(self, name).await
    }

    async fn put_pipeline_state(
        &self,
        name: &str,
        state: Vec<u8>,
        expected_version: Option<u64>,
    ) -> Result<u64, StoreError> {
        records::put_pipeline_state(self, name, &state, expected_version).await
    }

    async fn put_model(&self, model: ModelRecord) -> Result<PutOutcome, StoreError> {
        records::put_model(self, &model).await
    }

    async fn model(&self, id: &str) -> Result<Option<ModelRecord>, StoreError> {
        records::model(self, id).await
    }

    async fn models(&self, pipeline: Option<&str>) -> Result<Vec<ModelRecord>, StoreError> {
        records::models(self, pipeline).await
    }
}
