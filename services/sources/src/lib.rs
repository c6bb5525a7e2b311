//! flywheel's restricted-data sources: databases whose rows a training set may read but
//! flywheel may never keep.
//!
//! A dataset changeset of kind `query` stores a [`RestrictedQuery`](flywheel_schemas::RestrictedQuery)
//! (a source, SQL, a label column and feature columns), not rows. When the changeset is created
//! the query is [checked](Source::check) against the source (prepared and planned, no row
//! read); while a training set is read its rows are [fetched](Source::fetch) and streamed to
//! the reader, never written to the object store, the metadata store, the bus or logs.
//! Sources are configured in `[sources.NAME]` ([`SourcesConfig`]) and belong to tenants
//! ([`Sources::get`]). PostgreSQL is the only kind for now. See README.md.

mod config;
mod convert;
mod error;
mod postgres;
mod rows;
mod secret;
mod shape;
mod sources;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT, SourceConfig, SourceKind, SourcesConfig,
    check_source_name,
};
pub use error::SourceError;
pub use postgres::FETCH_ROWS;
pub use rows::{RestrictedRow, RestrictedRows};
pub use secret::{REDACTED, Secret};
pub use shape::{QueryShape, ResultColumn};
pub use sources::{Source, Sources};
