//! Helpers shared by the metadata-store test suites.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use flywheel_schemas::ChangesetKind;
use flywheel_store::{
    ChangesetRecord, IndexRow, MetaStore, NewChangeset, SampleLocation, TenantStore, open,
};
use flywheel_topics::{Tenant, TopicPartition};

/// A store under test and what keeps it alive.
pub struct Fixture {
    pub store: Arc<dyn MetaStore>,
    /// The URL it was opened with: reopening it must find everything again.
    pub url: String,
    pub kind: &'static str,
    /// Keeps the temporary directory (if any) until the fixture is dropped.
    pub dir: Option<tempfile::TempDir>,
}

impl Fixture {
    /// A tenant of its own (random name), so tests never see each other's data, even on
    /// a shared server.
    pub async fn tenant(&self) -> Arc<dyn TenantStore> {
        self.store
            .tenant(&unique_tenant())
            .await
            .expect("open tenant")
    }
}

/// A name no other test (or earlier run against the same server) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

pub fn unique_tenant() -> Tenant {
    Tenant::new(&unique("t")).expect("valid tenant")
}

/// A SQLite store in a fresh temporary directory.
pub async fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    let store = open(&url).await.expect("open sqlite store");
    Some(Fixture {
        store,
        url,
        kind: "sqlite",
        dir: Some(dir),
    })
}

/// A Scylla store on the node `FLYWHEEL_TEST_SCYLLA=HOST:PORT` names (e.g. the one
/// `deploy/compose.scylla.yaml` starts), with a random keyspace prefix so that each test
/// has a catalogue and tenant keyspaces of its own; `clean_up` drops them. When the
/// variable is unset the test is skipped, saying so, unless `FLYWHEEL_REQUIRE_SCYLLA=1`.
pub async fn scylla() -> Option<Fixture> {
    let Ok(node) = std::env::var("FLYWHEEL_TEST_SCYLLA") else {
        assert!(
            std::env::var_os("FLYWHEEL_REQUIRE_SCYLLA").is_none(),
            "FLYWHEEL_REQUIRE_SCYLLA is set but FLYWHEEL_TEST_SCYLLA (HOST:PORT) is not"
        );
        eprintln!(
            "skipped: FLYWHEEL_TEST_SCYLLA is not set; set it to the HOST:PORT of a ScyllaDB \
             node to run the scylla conformance suite (deploy/README.md)"
        );
        return None;
    };
    let prefix = format!("fwtest_{:08x}", rand::random::<u32>());
    let url = format!("scylla://{node}?keyspace_prefix={prefix}&replication=1");
    let store = open(&url).await.expect("open scylla store");
    Some(Fixture {
        store,
        url,
        kind: "scylla",
        dir: None,
    })
}

/// Drops what a fixture left on a server: for `scylla://` URLs, every keyspace of the
/// URL's keyspace prefix. Nothing to do for SQLite (its directory goes with the fixture).
pub async fn clean_up(url: &str) {
    let Some(rest) = url.strip_prefix("scylla://") else {
        return;
    };
    let (node, query) = rest.split_once('?').unwrap_or((rest, ""));
    let Some(prefix) = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "keyspace_prefix")
        .map(|(_, v)| format!("{v}_"))
    else {
        return;
    };
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(node)
        .build()
        .await
        .expect("connect to drop test keyspaces");
    let rows = session
        .query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", ())
        .await
        .expect("list keyspaces")
        .into_rows_result()
        .expect("rows");
    let names: Vec<String> = rows
        .rows::<(String,)>()
        .expect("keyspace names")
        .map(|r| r.expect("keyspace name").0)
        .filter(|k| k.starts_with(&prefix))
        .collect();
    for ks in names {
        session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), ())
            .await
            .expect("drop test keyspace");
    }
}

/// A sample stored in a segment, labelled by its key's parity.
pub fn row(key: u64, changeset: i64) -> IndexRow {
    IndexRow {
        key,
        changeset,
        location: SampleLocation::Segment {
            uri: format!("file:///segments/{changeset:06}.seg"),
            offset: (key % 1_000_000_000) * 100,
            length: 100,
        },
        label: Some(if key.is_multiple_of(2) { "even" } else { "odd" }.to_owned()),
        event_time: 1_700_000_000_000_000 + (key % 1_000_000_000) as i64,
        size: 100,
    }
}

/// An add changeset of these keys, with its segment and a source range.
pub fn add(dataset: &str, id: i64, keys: impl IntoIterator<Item = u64>) -> NewChangeset {
    let rows: Vec<IndexRow> = keys.into_iter().map(|k| row(k, id)).collect();
    let mut record = ChangesetRecord::new(dataset, id, ChangesetKind::Add, 1_000 + id);
    record.sample_count = rows.len() as i64;
    record.bytes = rows.iter().map(|r| r.size as i64).sum();
    record.segments = vec![format!("file:///segments/{id:06}.seg")];
    record.sources = vec![flywheel_schemas::SourceRange {
        topic: "flywheel.t.samples".into(),
        partition: 0,
        first_offset: id * 1_000_000,
        last_offset: id * 1_000_000 + rows.len() as i64,
    }];
    NewChangeset::new(record).with_rows(rows).with_offsets(
        "ingest",
        vec![(TopicPartition::new("flywheel.t.samples", 0), id * 1_000_000)],
    )
}

pub fn remove(dataset: &str, id: i64, keys: impl IntoIterator<Item = u64>) -> NewChangeset {
    let mut record = ChangesetRecord::new(dataset, id, ChangesetKind::Remove, 1_000 + id);
    record.removed = keys.into_iter().collect();
    NewChangeset::new(record)
}

pub fn relabel(dataset: &str, id: i64, labels: Vec<(u64, Option<String>)>) -> NewChangeset {
    let mut record = ChangesetRecord::new(dataset, id, ChangesetKind::Relabel, 1_000 + id);
    record.relabels = labels;
    NewChangeset::new(record)
}

/// The keys of some rows.
pub fn keys(rows: &[IndexRow]) -> Vec<u64> {
    rows.iter().map(|r| r.key).collect()
}
