//! Bad input: invalid URLs, an unreachable store (a file, a Scylla node), a locked SQLite
//! file, a store of a newer version, a file that is not a database. Each must fail with a
//! clear error naming it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::add;
use flywheel_store::{StoreError, open};
use flywheel_topics::Tenant;

fn url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test]
async fn invalid_urls_are_refused_naming_the_url() {
    for (bad, says) in [
        ("meta.db", "expected SCHEME://"),
        (
            "postgres://localhost/meta",
            "unknown scheme \"postgres\"; supported: sqlite://FILE",
        ),
        ("sqlite://", "sqlite:// needs a file"),
        ("sqlite:///var/lib/", "names a directory"),
        ("sqlite://m.db?busy_timeout=soon", "busy_timeout"),
        ("sqlite://m.db?journal=off", "unknown parameter \"journal\""),
        ("scylla://", "needs at least one node"),
        ("scylla://127.0.0.1:0", "is not 1 to 65535"),
        ("scylla://h?consistency=all", "consistency=\"all\""),
        (
            "scylla://h?consistency=one",
            "consistency=\"one\": not supported",
        ),
        ("scylla://h?connect_timeout=soon", "connect_timeout"),
        ("scylla://h?keyspace_prefix=Fly", "keyspace_prefix"),
        ("scylla://h?ssl=1", "unknown parameter \"ssl\""),
    ] {
        let err = open(bad).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::InvalidUrl { .. }), "{bad}: {msg}");
        assert!(msg.contains(bad) && msg.contains(says), "{bad}: {msg}");
        assert!(!err.is_retriable());
    }
}

/// Nothing listens on the port: opening fails soon, naming the URL, and may be retried.
#[tokio::test]
async fn an_unreachable_scylla_node_is_named_quickly() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("scylla://127.0.0.1:{port}?connect_timeout=500ms");
    let started = Instant::now();
    let err = open(&url).await.unwrap_err();
    let waited = started.elapsed();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{msg}");
    assert!(
        msg.contains(&format!("metadata store {url} is unreachable")),
        "{msg}"
    );
    assert!(err.is_retriable());
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn an_unreachable_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // the parent "directory" is a regular file
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let under = file.join("meta.db");
    let err = open(&url(&under)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Unreachable { .. })
            && err.to_string().contains(&under.display().to_string()),
        "{err}"
    );
    // the database path is a directory
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let err = open(&url(&sub)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Unreachable { .. }) && err.to_string().contains("is a directory"),
        "{err}"
    );
}

#[tokio::test]
async fn a_relative_path_works_and_tenant_files_sit_beside_the_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/meta.db");
    let store = open(&url(&path))
        .await
        .expect("open creates the directories");
    let t = store.tenant(&Tenant::new("acme").unwrap()).await.unwrap();
    t.ensure_dataset("d", 1).await.unwrap();
    assert!(path.exists());
    assert!(dir.path().join("nested/deeper/meta.acme.db").exists());
}

/// Another connection holds the tenant database's write lock: a commit waits the busy
/// timeout, then fails naming the file; reads go on meanwhile (WAL); once the lock is gone
/// the commit goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_is_reported_after_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let store = open(&format!("{}?busy_timeout=300ms", url(&path)))
        .await
        .unwrap();
    let t = store.tenant(&Tenant::new("acme").unwrap()).await.unwrap();
    t.commit_changeset(add("d", 1, 0..10)).await.unwrap();

    let tenant_file = dir.path().join("meta.acme.db");
    let holder = rusqlite::Connection::open(&tenant_file).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let started = Instant::now();
    let err = t.commit_changeset(add("d", 2, 10..20)).await.unwrap_err();
    let waited = started.elapsed();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Locked { .. }), "{msg}");
    assert!(
        msg.contains(&format!("database {} is locked", tenant_file.display())),
        "{msg}"
    );
    assert!(err.is_retriable());
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(
        t.dataset("d").await.unwrap().unwrap().head,
        1,
        "reads go on"
    );

    holder.execute_batch("ROLLBACK").unwrap();
    t.commit_changeset(add("d", 2, 10..20))
        .await
        .expect("commit once the lock is gone");
}

#[tokio::test]
async fn a_store_of_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let store = open(&url(&path)).await.unwrap();
    let acme = Tenant::new("acme").unwrap();
    store.tenant(&acme).await.unwrap();
    drop(store);

    let bump = |file: &Path| {
        rusqlite::Connection::open(file)
            .unwrap()
            .execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (99, 'future', 0)",
                [],
            )
            .unwrap();
    };
    let tenant_file = dir.path().join("meta.acme.db");
    bump(&tenant_file);
    let store = open(&url(&path)).await.expect("the catalogue is fine");
    let err = store.tenant(&acme).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            StoreError::WrongVersion {
                found: 99,
                supported: 2,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains(&tenant_file.display().to_string()), "{msg}");
    drop(store);

    bump(&path);
    let err = open(&url(&path)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::WrongVersion { found: 99, .. })
            && err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_flywheel_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let check = |err: StoreError, file: &Path, says: &str| {
        let msg = err.to_string();
        assert!(matches!(err, StoreError::NotADatabase { .. }), "{msg}");
        assert!(
            msg.contains(&file.display().to_string()) && msg.contains(says),
            "{msg}"
        );
    };

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    check(
        open(&url(&garbage)).await.unwrap_err(),
        &garbage,
        "not a flywheel metadata database",
    );

    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
        .unwrap();
    check(
        open(&url(&foreign)).await.unwrap_err(),
        &foreign,
        "another application",
    );

    // a tenant's database named as the catalogue
    let store = open(&url(&dir.path().join("meta.db"))).await.unwrap();
    store.tenant(&Tenant::new("acme").unwrap()).await.unwrap();
    let tenant_file = dir.path().join("meta.acme.db");
    check(
        open(&url(&tenant_file)).await.unwrap_err(),
        &tenant_file,
        "flywheel tenant database, where a catalogue database was expected",
    );
}

#[tokio::test]
async fn a_lost_tenant_database_is_not_silently_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let acme = Tenant::new("acme").unwrap();
    let store = open(&url(&path)).await.unwrap();
    store
        .tenant(&acme)
        .await
        .unwrap()
        .commit_changeset(add("d", 1, 0..3))
        .await
        .unwrap();
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("meta.acme.db{suffix}")));
    }
    let store = open(&url(&path)).await.unwrap();
    let err = store.tenant(&acme).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::NotFound(_)), "{msg}");
    assert!(
        msg.contains("meta.acme.db") && msg.contains("\"acme\""),
        "{msg}"
    );
    assert!(!dir.path().join("meta.acme.db").exists());
}

/// Changesets committed before row blocks were kept (schema version 1) have none: their
/// blocks are built from their rows.
#[tokio::test]
async fn changesets_without_a_stored_block_are_read_from_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let store = open(&url(&path)).await.unwrap();
    let acme = Tenant::new("acme").unwrap();
    let t = store.tenant(&acme).await.unwrap();
    let mut cs = flywheel_store::NewChangeset::new(flywheel_store::ChangesetRecord::new(
        "d",
        1,
        flywheel_schemas::ChangesetKind::Add,
        0,
    ));
    cs.rows = (0..3)
        .map(|k| flywheel_store::IndexRow {
            key: k,
            changeset: 1,
            location: flywheel_store::SampleLocation::Blob {
                uri: format!("acme/d/{k}"),
            },
            label: Some("x".into()),
            event_time: 0,
            size: 1,
        })
        .collect();
    t.commit_changeset(cs.clone()).await.unwrap();
    let stored = t.row_block("d", 1).await.unwrap();
    drop((t, store));
    let removed = rusqlite::Connection::open(dir.path().join("meta.acme.db"))
        .unwrap()
        .execute("DELETE FROM row_blocks", [])
        .unwrap();
    assert_eq!(removed, 1);
    let store = open(&url(&path)).await.unwrap();
    let t = store.tenant(&acme).await.unwrap();
    let built = t.row_block("d", 1).await.unwrap();
    assert_eq!(built, stored);
    assert_eq!(built.len(), 3);
}
