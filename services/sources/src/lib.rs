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

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>(_: &T) {}
    fn owned_stream<T: futures::Stream + Send + Unpin + 'static>() {}

    /// What a request handler needs: futures it can await in a spawned task, a stream it can
    /// hand to a response body.
    #[test]
    fn futures_are_send_and_rows_are_an_owned_stream() {
        owned_stream::<RestrictedRows>();
        let sources = Sources::default();
        if let Ok(source) = sources.get(&flywheel_topics::Tenant::default_tenant(), "none") {
            let query = flywheel_schemas::RestrictedQuery {
                source: "none".into(),
                sql: "SELECT 1".into(),
                label_column: None,
                feature_columns: vec![],
            };
            send(&source.check(&query));
            send(&source.fetch(&query));
        }
    }
}
