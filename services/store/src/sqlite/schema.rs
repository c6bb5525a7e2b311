//! The SQLite schemas, as ordered migrations: the one place their tables are written down
//! (services/store/README.md explains them).
//!
//! A migration is appended, never edited once released: a database records every version
//! applied to it in `schema_version`, and one opened by a build that knows fewer versions
//! is refused (`StoreError::WrongVersion`).

/// One step of a schema: run once, inside the transaction that records it.
#[derive(Debug)]
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) description: &'static str,
    pub(crate) sql: &'static str,
}

/// A kind of database file and its migrations.
#[derive(Debug)]
pub(crate) struct Schema {
    /// What the file is, for messages: `catalogue` or `tenant`.
    pub(crate) role: &'static str,
    /// `PRAGMA application_id`, so a file is recognised as this kind of flywheel database.
    pub(crate) application_id: i32,
    pub(crate) migrations: &'static [Migration],
}

impl Schema {
    /// The newest version this build knows.
    pub(crate) fn supported(&self) -> i64 {
        self.migrations.last().map_or(0, |m| m.version)
    }
}

/// Created by the migration runner before any migration, in every database.
pub(crate) const SCHEMA_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  INTEGER NOT NULL
)";

/// The file the URL names: the store's own catalogue.
pub(crate) const CATALOGUE: Schema = Schema {
    role: "catalogue",
    application_id: 0x4657_4d43, // "FWMC"
    migrations: &[Migration {
        version: 1,
        description: "tenants",
        sql: "
CREATE TABLE tenants (
    name       TEXT PRIMARY KEY,
    file       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);",
    }],
};

/// One tenant's database, beside the catalogue.
pub(crate) const TENANT: Schema = Schema {
    role: "tenant",
    application_id: 0x4657_4d54, // "FWMT"
    migrations: &[
        Migration {
            version: 1,
            description: "datasets, changesets, sample index, trainsets, pipelines, models",
            sql: "
CREATE TABLE datasets (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    head       INTEGER NOT NULL DEFAULT 0,
    samples    INTEGER NOT NULL DEFAULT 0,
    bytes      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE changesets (
    dataset      INTEGER NOT NULL,
    id           INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    sample_count INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    reverts      INTEGER,
    query        TEXT,
    sources      TEXT NOT NULL,
    consumer     TEXT NOT NULL,
    offsets      TEXT NOT NULL,
    PRIMARY KEY (dataset, id)
) WITHOUT ROWID;

CREATE TABLE segments (
    dataset   INTEGER NOT NULL,
    changeset INTEGER NOT NULL,
    idx       INTEGER NOT NULL,
    uri       TEXT NOT NULL,
    PRIMARY KEY (dataset, changeset, idx)
) WITHOUT ROWID;

CREATE TABLE samples (
    dataset    INTEGER NOT NULL,
    changeset  INTEGER NOT NULL,
    key        INTEGER NOT NULL,
    segment    INTEGER,
    uri        TEXT,
    seg_offset INTEGER,
    seg_length INTEGER,
    label      TEXT,
    event_time INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    CHECK ((segment IS NULL) <> (uri IS NULL)),
    PRIMARY KEY (dataset, changeset, key)
) WITHOUT ROWID;
CREATE INDEX samples_by_key ON samples (dataset, key, changeset);
CREATE INDEX samples_by_event_time ON samples (dataset, event_time, key);

CREATE TABLE removals (
    dataset   INTEGER NOT NULL,
    changeset INTEGER NOT NULL,
    key       INTEGER NOT NULL,
    PRIMARY KEY (dataset, changeset, key)
) WITHOUT ROWID;
CREATE INDEX removals_by_key ON removals (dataset, key, changeset);

CREATE TABLE relabels (
    dataset   INTEGER NOT NULL,
    changeset INTEGER NOT NULL,
    key       INTEGER NOT NULL,
    label     TEXT,
    PRIMARY KEY (dataset, changeset, key)
) WITHOUT ROWID;
CREATE INDEX relabels_by_key ON relabels (dataset, key, changeset);

CREATE TABLE consumer_offsets (
    consumer    TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
) WITHOUT ROWID;

CREATE TABLE trainsets (
    version        TEXT PRIMARY KEY,
    dataset        TEXT NOT NULL,
    query          TEXT NOT NULL,
    head_changeset INTEGER NOT NULL,
    manifest_uri   TEXT NOT NULL,
    sample_count   INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX trainsets_by_dataset ON trainsets (dataset, created_at);

CREATE TABLE pipelines (
    name         TEXT PRIMARY KEY,
    document     TEXT NOT NULL,
    status       TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    stopped_at   INTEGER
);

CREATE TABLE pipeline_state (
    pipeline TEXT PRIMARY KEY,
    version  INTEGER NOT NULL,
    state    BLOB NOT NULL
);

CREATE TABLE models (
    id               TEXT PRIMARY KEY,
    pipeline         TEXT NOT NULL,
    trigger_id       INTEGER NOT NULL,
    uri              TEXT NOT NULL,
    trainset_version TEXT NOT NULL,
    parent           TEXT,
    metrics          TEXT NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE INDEX models_by_pipeline ON models (pipeline, created_at);",
        },
        Migration {
            version: 2,
            description: "row blocks: each changeset's rows in columnar form, for scans",
            sql: "
CREATE TABLE row_blocks (
    dataset   INTEGER NOT NULL,
    changeset INTEGER NOT NULL,
    block     BLOB NOT NULL,
    PRIMARY KEY (dataset, changeset)
);",
        },
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one() {
        for schema in [&CATALOGUE, &TENANT] {
            for (i, m) in schema.migrations.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1, "{} migration {i}", schema.role);
                assert!(!m.description.is_empty());
            }
        }
        assert_ne!(CATALOGUE.application_id, TENANT.application_id);
    }
}
