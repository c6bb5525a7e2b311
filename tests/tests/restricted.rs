//! Restricted data end to end: a `query` changeset over a real PostgreSQL source, read
//! only while a training set is read. A canary planted in the source reaches the reader
//! and nothing else: not the object store, the metadata store, the bus or the logs; and
//! `trainset get` writes it to disk only when told to.
//!
//! Runs when `FLYWHEEL_TEST_POSTGRES` names a server (`scripts/with-postgres.sh` starts
//! one); skipped, saying so, otherwise, and a failure when `FLYWHEEL_REQUIRE_POSTGRES=1`.

use std::path::Path;

use flywheel_tests::{
    Server, cli, cli_json, flywheel, http_get, outside_resource, produce_and_wait, sample_lines,
};

fn postgres_url() -> Option<String> {
    outside_resource(
        "FLYWHEEL_TEST_POSTGRES",
        "FLYWHEEL_REQUIRE_POSTGRES",
        "restricted data end to end",
        "scripts/with-postgres.sh sets it",
    )
}

/// Creates a table of 40 rows whose labels and features include the canary.
fn plant(url: &str, table: &str, canary: &str, canary_feature: f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test server");
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (id int PRIMARY KEY, label text, a float8, b int4)"
            ))
            .await
            .unwrap();
        for i in 0..40i32 {
            let label = if i % 4 == 0 {
                canary.to_owned()
            } else {
                format!("ok-{}", i % 3)
            };
            let a = if i == 7 {
                canary_feature
            } else {
                f64::from(i) / 2.0
            };
            client
                .execute(
                    &format!("INSERT INTO {table} VALUES ($1, $2, $3, $4)"),
                    &[&i, &label, &a, &(i * 10)],
                )
                .await
                .unwrap();
        }
    });
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[test]
fn restricted_rows_reach_the_reader_and_nothing_else() {
    let Some(url) = postgres_url() else { return };
    let tag = format!("{:08x}", std::process::id() ^ 0x5eed_u32);
    let table = format!("restricted_{tag}");
    let canary = format!("CANARY-{tag}-d3adb33f");
    let canary_feature = 31_337.424_242_f64;
    plant(&url, &table, &canary, canary_feature);

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("flywheel.toml");
    std::fs::write(
        &config,
        "[sources.crm]\nkind = \"postgres\"\ntenants = [\"default\"]\nurl_env = \"FLYWHEEL_TEST_CRM_URL\"\n\n\
         [sources.down]\nkind = \"postgres\"\ntenants = [\"default\"]\nurl_env = \"FLYWHEEL_TEST_DOWN_URL\"\nconnect_timeout = \"1s\"\n",
    )
    .unwrap();
    let mut c = flywheel(&data);
    c.arg("up")
        .arg("--config")
        .arg(&config)
        .env("FLYWHEEL_TEST_CRM_URL", &url)
        .env(
            "FLYWHEEL_TEST_DOWN_URL",
            "postgres://flywheel:secret-pw-x@127.0.0.1:9/flywheel",
        )
        .env(
            "RUST_LOG",
            "info,flywheel_gateway=debug,flywheel_sources=debug,flywheel_trainset=debug",
        );
    let server = Server::start(c);
    let d = data.as_path();
    produce_and_wait(d, &server, &sample_lines(50, "sensors"), "sensors", 50);

    let sql = format!("SELECT label, a, b FROM {table} ORDER BY id");
    let query = |source: &str, sql: &str, extra: &[&str]| {
        let mut args = vec![
            "changeset",
            "query",
            "sensors",
            "--source",
            source,
            "--sql",
            sql,
        ];
        args.extend_from_slice(if extra.is_empty() {
            &["--label-column", "label"]
        } else {
            extra
        });
        cli(d, &server, &args)
    };

    // bad queries, each refused by the source's check, naming what is wrong
    let (ok, _, stderr) = query("crm", "SELEC label FROM nowhere", &[]);
    assert!(!ok && stderr.contains("syntax error"), "{stderr}");
    let (ok, _, stderr) = query("crm", &sql, &["--label-column", "lbl"]);
    assert!(
        !ok && stderr.contains("label_column") && stderr.contains("lbl"),
        "{stderr}"
    );
    let (ok, _, stderr) = query("crm", &format!("DELETE FROM {table}"), &[]);
    assert!(!ok, "a write was accepted: {stderr}");
    let (ok, _, stderr) = query("nope", &sql, &[]);
    assert!(
        !ok && stderr.contains("no source named \"nope\""),
        "{stderr}"
    );
    let (ok, _, stderr) = query("down", &sql, &[]);
    assert!(
        !ok && stderr.contains("down") && stderr.contains("unreachable"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("secret-pw-x"),
        "a password in an error: {stderr}"
    );

    let (ok, out, stderr) = query(
        "crm",
        &sql,
        &[
            "--label-column",
            "label",
            "--feature-column",
            "a",
            "--feature-column",
            "b",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(out.contains("query"), "{out}");

    let (ok, version, stderr) = cli(d, &server, &["trainset", "prepare", "--dataset", "sensors"]);
    assert!(ok, "{stderr}");
    let version = version.trim().to_owned();
    let show = cli_json(d, &server, &["trainset", "show", &version]);
    assert_eq!(show["samples"], 50, "stored samples only");
    assert_eq!(show["restricted"][0]["query"]["source"], "crm");
    let stored = show["stored_shards"].as_u64().unwrap();

    // the reader gets the rows, streamed
    let (status, body) = http_get(
        &server.addr,
        &format!("/api/v1/trainsets/{version}/shards/{stored}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&canary), "the reader sees the source's rows");
    assert_eq!(body.matches("\"restricted\":true").count(), 40, "{body}");

    // get refuses to write them unless told, and writes nothing then
    let refused = dir.path().join("refused");
    let (ok, _, stderr) = cli(
        d,
        &server,
        &[
            "trainset",
            "get",
            &version,
            "--out",
            refused.to_str().unwrap(),
        ],
    );
    assert!(
        !ok && stderr.contains("--write-restricted-rows"),
        "{stderr}"
    );
    assert!(!refused.exists(), "nothing is written when refused");
    let allowed = dir.path().join("allowed");
    cli_json(
        d,
        &server,
        &[
            "trainset",
            "get",
            &version,
            "--out",
            allowed.to_str().unwrap(),
            "--write-restricted-rows",
        ],
    );
    assert_eq!(files_containing(&allowed, canary.as_bytes()).len(), 1);

    // a label filter applies to the source's rows too
    let (ok, filtered, stderr) = cli(
        d,
        &server,
        &[
            "trainset",
            "prepare",
            "--dataset",
            "sensors",
            "--label",
            "ok-1",
        ],
    );
    assert!(ok, "{stderr}");
    let filtered = filtered.trim();
    let show = cli_json(d, &server, &["trainset", "show", filtered]);
    assert_eq!(
        show["stored_shards"], 0,
        "no stored sample is labelled ok-1"
    );
    let (status, body) = http_get(
        &server.addr,
        &format!("/api/v1/trainsets/{filtered}/shards/0"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(&canary));
    assert_eq!(body.matches("\"restricted\":true").count(), 10, "{body}");

    // the canary is nowhere else: store, blobs and bus all live in the data directory
    let (_, logs) = server.stop();
    let feature_text = format!("{canary_feature}");
    for needle in [
        canary.as_bytes().to_vec(),
        feature_text.as_bytes().to_vec(),
        canary_feature.to_le_bytes().to_vec(),
    ] {
        let found = files_containing(&data, &needle);
        assert!(found.is_empty(), "the canary is stored in {found:?}");
        assert!(
            !logs.as_bytes().windows(needle.len()).any(|w| w == needle),
            "the canary is in the logs"
        );
    }
    assert!(!logs.contains("secret-pw-x"), "a password in the logs");
    assert!(
        logs.contains("streaming rows of a restricted source"),
        "the logs were captured: {logs}"
    );
}
