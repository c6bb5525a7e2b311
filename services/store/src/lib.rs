//! flywheel's metadata store and blob access. Ingest commits changesets here (with their
//! index rows and the consumer offsets they cover, atomically, so it resumes exactly where
//! the store says); the supervisor, trainers and the gateway read datasets, training sets,
//! pipelines and models. One [`MetaStore`] trait, backends by URL ([`open`]: `sqlite://FILE`,
//! `scylla://HOST:PORT`); payloads go through `object_store` ([`blobs`]).

pub mod blobs;
mod block;
mod edit;
mod error;
pub mod model;
mod scylla;
pub mod sqlite;
mod store;

use std::sync::Arc;

pub use self::scylla::ScyllaStore;
pub use block::RowBlock;
pub use edit::{DatasetStats, Edit, Filter, commit_edit, dataset_stats};
pub use error::StoreError;
pub use flywheel_schemas::{ChangesetKind, RestrictedQuery, SourceRange, varint};
pub use flywheel_topics::{Tenant, TopicPartition};
pub use model::{
    ChangesetRecord, CommitOutcome, Dataset, IndexRow, ModelRecord, NewChangeset, PipelineRecord,
    PipelineStatus, PutOutcome, SampleLocation, TrainsetRecord, canonical_json,
};
pub use sqlite::SqliteStore;
pub use store::{MetaStore, TenantStore};

/// The schemes [`open`] understands, for messages.
const SUPPORTED: &str = "sqlite://FILE, scylla://HOST:PORT[,HOST:PORT...]";

/// Opens the metadata store a URL names: `sqlite://PATH` (relative, or absolute as
/// `sqlite:///PATH`; query parameters `busy_timeout=5s`, `readers=4`), or
/// `scylla://HOST:PORT[,HOST:PORT...]` (query parameters `keyspace_prefix=flywheel`,
/// `replication=N`, `consistency=quorum|local_quorum`, `connect_timeout=5s`).
pub async fn open(url: &str) -> Result<Arc<dyn MetaStore>, StoreError> {
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(StoreError::InvalidUrl {
            url: url.to_owned(),
            reason: format!("expected SCHEME://...; supported: {SUPPORTED}"),
        });
    };
    match scheme {
        "sqlite" => Ok(Arc::new(SqliteStore::open(url).await?)),
        "scylla" => Ok(Arc::new(ScyllaStore::open(url).await?)),
        other => Err(StoreError::InvalidUrl {
            url: url.to_owned(),
            reason: format!("unknown scheme {other:?}; supported: {SUPPORTED}"),
        }),
    }
}
