//! The CQL schemas, as ordered migrations: the one place their tables are written down
//! (services/store/README.md explains them). `{ks}` stands for the keyspace.
//!
//! Like SQLite's, a migration is appended, never edited once released. Every keyspace
//! records the versions applied to it in `schema_version`; one that records a version
//! this build does not know is refused (`StoreError::WrongVersion`). Each statement is
//! `IF NOT EXISTS` and each added column is added only if missing, so a migration
//! interrupted half-way is simply run again.

use super::db::Ks;
use crate::StoreError;

/// Table names, for statements and messages.
pub(crate) mod table {
    pub(crate) const SCHEMA_VERSION: &str = "schema_version";
    pub(crate) const TENANTS: &str = "tenants";
    pub(crate) const DATASETS: &str = "datasets";
    pub(crate) const CHANGESETS: &str = "changesets";
    pub(crate) const CHANGESET_ENTRIES: &str = "changeset_entries";
    pub(crate) const VIEW_BY_KEY: &str = "view_by_key";
    pub(crate) const VIEW_BY_TIME: &str = "view_by_time";
    pub(crate) const BUCKETS: &str = "buckets";
    pub(crate) const TRAINSETS: &str = "trainsets";
    pub(crate) const PIPELINES: &str = "pipelines";
    pub(crate) const PIPELINE_STATE: &str = "pipeline_state";
    pub(crate) const MODELS: &str = "models";
}

/// One step of a schema.
#[derive(Debug)]
pub(crate) struct Migration {
    pub(crate) version: i32,
    pub(crate) description: &'static str,
    /// Statements that may run again (`IF NOT EXISTS`).
    pub(crate) statements: &'static [&'static str],
    /// Columns added to existing tables, each only if the table lacks it: CQL's `ALTER
    /// TABLE ... ADD` has no `IF NOT EXISTS`, and fails on a column that exists.
    pub(crate) columns: &'static [Column],
}

/// A column a migration adds to a table.
#[derive(Debug)]
pub(crate) struct Column {
    pub(crate) table: &'static str,
    pub(crate) name: &'static str,
    pub(crate) cql_type: &'static str,
}

impl Column {
    /// The statement that adds it.
    pub(crate) fn add(&self) -> String {
        format!(
            "ALTER TABLE {{ks}}.{} ADD {} {}",
            self.table, self.name, self.cql_type
        )
    }
}

/// A kind of keyspace and its migrations.
#[derive(Debug)]
pub(crate) struct Schema {
    /// `catalogue` or `tenant`, for messages.
    pub(crate) role: &'static str,
    pub(crate) migrations: &'static [Migration],
}

impl Schema {
    /// The newest version this build knows.
    pub(crate) fn supported(&self) -> i32 {
        self.migrations.last().map_or(0, |m| m.version)
    }
}

const SCHEMA_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS {ks}.schema_version (
    version     int PRIMARY KEY,
    description text,
    applied_at  bigint
)";

/// The store's own keyspace, `{prefix}_catalogue`.
pub(crate) const CATALOGUE: Schema = Schema {
    role: "catalogue",
    migrations: &[Migration {
        version: 1,
        description: "tenants",
        statements: &["CREATE TABLE IF NOT EXISTS {ks}.tenants (
    keyspace_name text PRIMARY KEY,
    tenant        text,
    created_at    bigint,
    ready         boolean
)"],
        columns: &[],
    }],
};

/// A tenant's keyspace, `{prefix}_{tenant}`.
pub(crate) const TENANT: Schema = Schema {
    role: "tenant",
    migrations: &[TENANT_V1, TENANT_V2],
};

const TENANT_V1: Migration = Migration {
    version: 1,
    description: "datasets, changesets, sample index, trainsets, pipelines, models",
    statements: &[
        // the head, counters and committed consumer offsets of a dataset, and the
        // claim of the commit under way: written by lightweight transactions only
        "CREATE TABLE IF NOT EXISTS {ks}.datasets (
    name         text PRIMARY KEY,
    created_at   bigint,
    head         bigint,
    samples      bigint,
    bytes        bigint,
    pending_id   bigint,
    pending_hash blob,
    offsets      map<frozen<tuple<text, text, int>>, frozen<tuple<bigint, bigint>>>
)",
        "CREATE TABLE IF NOT EXISTS {ks}.changesets (
    dataset       text,
    id            bigint,
    kind          text,
    created_at    bigint,
    sample_count  bigint,
    bytes         bigint,
    reverts       bigint,
    query         text,
    sources       text,
    segments      list<text>,
    consumer      text,
    offsets       text,
    record_hash   blob,
    rows_hash     blob,
    parts         int,
    removed_count int,
    relabel_count int,
    PRIMARY KEY ((dataset), id)
)",
        // what each changeset did, by changeset: rows_by_changeset and the record's
        // removed keys and relabels
        "CREATE TABLE IF NOT EXISTS {ks}.changeset_entries (
    dataset    text,
    changeset  bigint,
    part       int,
    key        bigint,
    op         tinyint,
    uri        text,
    seg_offset bigint,
    seg_length bigint,
    label      text,
    event_time bigint,
    size       bigint,
    PRIMARY KEY ((dataset, changeset, part), key)
)",
        // the history of each key, by key: the view by key range and view_at
        "CREATE TABLE IF NOT EXISTS {ks}.view_by_key (
    dataset    text,
    bucket     bigint,
    key        bigint,
    changeset  bigint,
    op         tinyint,
    uri        text,
    seg_offset bigint,
    seg_length bigint,
    label      text,
    event_time bigint,
    size       bigint,
    PRIMARY KEY ((dataset, bucket), key, changeset)
)",
        // the same history by event time: the view by event-time range
        "CREATE TABLE IF NOT EXISTS {ks}.view_by_time (
    dataset    text,
    bucket     bigint,
    event_time bigint,
    key        bigint,
    changeset  bigint,
    op         tinyint,
    uri        text,
    seg_offset bigint,
    seg_length bigint,
    label      text,
    size       bigint,
    PRIMARY KEY ((dataset, bucket), event_time, key, changeset)
)",
        // which key buckets ('k') and time buckets ('t') of a dataset hold entries
        "CREATE TABLE IF NOT EXISTS {ks}.buckets (
    dataset text,
    kind    text,
    bucket  bigint,
    PRIMARY KEY ((dataset, kind), bucket)
)",
        "CREATE TABLE IF NOT EXISTS {ks}.trainsets (
    version        text PRIMARY KEY,
    dataset        text,
    query          text,
    head_changeset bigint,
    manifest_uri   text,
    sample_count   bigint,
    created_at     bigint
)",
        "CREATE TABLE IF NOT EXISTS {ks}.pipelines (
    name         text PRIMARY KEY,
    document     text,
    status       text,
    submitted_at bigint,
    stopped_at   bigint
)",
        "CREATE TABLE IF NOT EXISTS {ks}.pipeline_state (
    pipeline text PRIMARY KEY,
    version  bigint,
    state    blob
)",
        "CREATE TABLE IF NOT EXISTS {ks}.models (
    id               text PRIMARY KEY,
    pipeline         text,
    trigger_id       bigint,
    uri              text,
    trainset_version text,
    parent           text,
    metrics          map<text, double>,
    created_at       bigint
)",
    ],
    columns: &[],
};

const TENANT_V2: Migration = Migration {
    version: 2,
    description: "the time a commit claimed a changeset id",
    statements: &[],
    // when the claim (pending_id, pending_hash) was taken: a claim older than the lease
    // may be taken over by a commit of other content
    columns: &[Column {
        table: table::DATASETS,
        name: "pending_since",
        cql_type: "bigint",
    }],
};

/// `CREATE KEYSPACE` for a keyspace of `replication` replicas in each data center.
/// Tablets are turned off: ScyllaDB releases that have them have refused lightweight
/// transactions on tablet keyspaces.
pub(crate) fn create_keyspace(replication: u32, tablets_clause: bool) -> String {
    let tablets = if tablets_clause {
        " AND tablets = {'enabled': false}"
    } else {
        ""
    };
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {{ks}} WITH replication = \
         {{'class': 'NetworkTopologyStrategy', 'replication_factor': {replication}}}{tablets}"
    )
}

/// Creates the keyspace if it is missing and brings it to the schema's newest version;
/// refuses a keyspace of a newer version.
pub(crate) async fn migrate(ks: &Ks, schema: &Schema, replication: u32) -> Result<(), StoreError> {
    let create = ks
        .run_unprepared("create keyspace", "", &create_keyspace(replication, true))
        .await;
    if let Err(e) = create {
        // servers without tablets do not know the option
        if !e.to_string().to_lowercase().contains("tablets") {
            return Err(e);
        }
        ks.run_unprepared("create keyspace", "", &create_keyspace(replication, false))
            .await?;
    }
    ks.run_unprepared("create table", table::SCHEMA_VERSION, SCHEMA_VERSION_TABLE)
        .await?;
    let read = ks
        .prepare(
            table::SCHEMA_VERSION,
            "SELECT version FROM {ks}.schema_version",
            true,
        )
        .await?;
    // a plain read: serial reads are for one partition, and these rows are written by
    // lightweight transactions that have finished when a migration returns
    let versions: Vec<(i32,)> = ks.all("read schema version", &read, ()).await?;
    let found = versions.iter().map(|(v,)| *v).max().unwrap_or(0);
    let supported = schema.supported();
    if found > supported {
        return Err(StoreError::WrongVersion {
            store: format!("{} ({} keyspace)", ks.describe(), schema.role),
            found: i64::from(found),
            supported: i64::from(supported),
        });
    }
    let record = ks
        .prepare(
            table::SCHEMA_VERSION,
            "INSERT INTO {ks}.schema_version (version, description, applied_at)
             VALUES (?, ?, ?) IF NOT EXISTS",
            false,
        )
        .await?;
    let column_exists = ks
        .prepare(
            "system_schema.columns",
            "SELECT column_name FROM system_schema.columns
             WHERE keyspace_name = ? AND table_name = ? AND column_name = ?",
            true,
        )
        .await?;
    for m in schema.migrations.iter().filter(|m| m.version > found) {
        tracing::info!(
            keyspace = %ks.name,
            version = m.version,
            description = m.description,
            "migrating the {} keyspace",
            schema.role
        );
        for statement in m.statements {
            ks.run_unprepared("migrate", "", statement).await?;
        }
        for column in m.columns {
            let found: Option<(String,)> = ks
                .one(
                    "look up column",
                    &column_exists,
                    (&ks.name, column.table, column.name),
                )
                .await?;
            if found.is_none() {
                ks.run_unprepared("migrate", column.table, &column.add())
                    .await?;
            }
        }
        ks.lwt(
            "record schema version",
            &record,
            (m.version, m.description, flywheel_schemas::now_micros()),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one() {
        for schema in [&CATALOGUE, &TENANT] {
            for (i, m) in schema.migrations.iter().enumerate() {
                assert_eq!(m.version, i as i32 + 1, "{} migration {i}", schema.role);
                assert!(!m.description.is_empty());
                for s in m.statements {
                    assert!(s.starts_with("CREATE TABLE IF NOT EXISTS {ks}."), "{s}");
                }
                for c in m.columns {
                    assert!(!m.statements.iter().any(|s| s.contains(c.name)), "{c:?}");
                }
            }
        }
    }

    #[test]
    fn claims_carry_their_time_from_version_2() {
        let m = &TENANT.migrations[1];
        assert_eq!(m.version, 2);
        assert_eq!(
            m.columns[0].add(),
            "ALTER TABLE {ks}.datasets ADD pending_since bigint"
        );
        assert_eq!(TENANT.supported(), 2);
        assert_eq!(CATALOGUE.supported(), 1);
    }

    #[test]
    fn keyspaces_are_created_without_tablets_where_the_server_has_them() {
        assert_eq!(
            create_keyspace(3, true),
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {'class': \
             'NetworkTopologyStrategy', 'replication_factor': 3} AND tablets = {'enabled': false}"
        );
        assert!(!create_keyspace(1, false).contains("tablets"));
    }
}
