//! Samples in through the command line and the gateway, stored by ingest, inspected and
//! edited with `flywheel dataset` and `flywheel changeset`, all through the binary.

use flywheel_tests::{
    Server, cli, cli_json as json, flywheel, http_get, run_flywheel, sample_lines as samples,
    wait_for_samples,
};

#[test]
fn produce_ingest_inspect_and_edit() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = flywheel(dir.path());
    c.arg("up");
    let server = Server::start(c);
    assert_eq!(
        server.ready["services"],
        serde_json::json!(["gateway", "ingest", "supervisor", "trainer"])
    );

    let file = dir.path().join("samples.jsonl");
    std::fs::write(&file, samples(3000, "sensors")).unwrap();
    let report = json(
        dir.path(),
        &server,
        &["produce", file.to_str().unwrap(), "--batch", "700"],
    );
    assert_eq!(report["published"], 3000);
    assert_eq!(report["topic"], "flywheel.default.samples");
    // stdin, and a second dataset
    let mut c = flywheel(dir.path());
    c.args([
        "produce",
        "-",
        "--server",
        &format!("http://{}", server.addr),
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(samples(10, "clicks").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("published 10 samples"));

    wait_for_samples(dir.path(), &server, "sensors", 3000);
    wait_for_samples(dir.path(), &server, "clicks", 10);

    let list = json(dir.path(), &server, &["dataset", "list"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["clicks", "sensors"]);
    let stats = json(dir.path(), &server, &["dataset", "stats", "sensors"]);
    assert_eq!(stats["samples"], 3000);
    assert_eq!(stats["labels"]["0"], 1000);
    assert_eq!(stats["first_event_time"], 1_795_255_200_000_000i64);
    let (ok, text, _) = cli(dir.path(), &server, &["dataset", "stats", "sensors"]);
    assert!(
        ok && text.contains("event time  2026-11-21T10:00:00Z .. 2026-11-21T10:49:59Z"),
        "{text}"
    );

    let changesets = json(dir.path(), &server, &["changeset", "list", "sensors"]);
    let ids: Vec<i64> = changesets
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>());
    let first = json(dir.path(), &server, &["changeset", "show", "sensors", "1"]);
    assert_eq!(first["kind"], "add");
    assert!(
        first["segments"][0]
            .as_str()
            .unwrap()
            .starts_with("default/sensors/segments/")
    );
    let segment = dir
        .path()
        .join("blobs")
        .join(first["segments"][0].as_str().unwrap());
    assert!(segment.is_file(), "{} exists", segment.display());

    // edits: remove by label, relabel, revert
    let removed = json(
        dir.path(),
        &server,
        &["changeset", "remove", "sensors", "--label", "2"],
    );
    assert_eq!(removed["sample_count"], 1000);
    let removed_id = removed["id"].as_i64().unwrap().to_string();
    let relabelled = json(
        dir.path(),
        &server,
        &[
            "changeset",
            "relabel",
            "sensors",
            "--set",
            &format!(
                "{}=cat",
                first["sources"][0]["partition"].as_u64().unwrap() << 48
            ),
        ],
    );
    assert_eq!(relabelled["kind"], "relabel");
    let stats = json(dir.path(), &server, &["dataset", "stats", "sensors"]);
    assert_eq!(
        (stats["samples"].as_u64(), stats["labels"]["cat"].as_u64()),
        (Some(2000), Some(1))
    );
    let (ok, text, stderr) = cli(
        dir.path(),
        &server,
        &["changeset", "revert", "sensors", &removed_id],
    );
    assert!(ok, "{stderr}");
    assert!(
        text.contains(&format!("(revert of changeset {removed_id}, 1000 samples)")),
        "{text}"
    );
    let stats = json(dir.path(), &server, &["dataset", "stats", "sensors"]);
    assert_eq!(stats["samples"], 3000);

    // refusals: one line on stderr, exit 1, nothing changed
    for (args, says) in [
        (
            &["changeset", "revert", "sensors", "999"][..],
            "changeset 999 does not exist",
        ),
        (&["changeset", "show", "sensors", "999"], "not found (404"),
        (&["dataset", "show", "nope"], "dataset \"nope\" not found"),
        (&["dataset", "show", "a/b"], "invalid dataset name"),
        (&["changeset", "remove", "sensors"], "say what to remove"),
        (
            &["changeset", "remove", "sensors", "--from", "yesterday"],
            "not an RFC 3339 time",
        ),
        (
            &["changeset", "relabel", "sensors", "--set", "x=1"],
            "is not a number",
        ),
        (
            &["changeset", "relabel", "sensors", "--set", "5"],
            "expected KEY=LABEL",
        ),
    ] {
        let (ok, stdout, stderr) = cli(dir.path(), &server, args);
        assert!(!ok, "{args:?}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, samples(3, "sensors") + "{\"dataset\":\"sensors\"}\n").unwrap();
    let (ok, _, stderr) = cli(dir.path(), &server, &["produce", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("line 4: bad_event_time"), "{stderr}");
    let (ok, stdout, stderr) = cli(
        dir.path(),
        &server,
        &["produce", bad.to_str().unwrap(), "--skip-invalid"],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("skipped line 4"), "{stderr}");
    assert!(
        stdout.contains("published 3 samples") && stdout.contains("1 invalid skipped"),
        "{stdout}"
    );

    // what ingest did shows in /metrics
    let (_, metrics) = http_get(&server.addr, "/metrics", None);
    assert!(
        metrics.contains("flywheel_ingest_samples_total{tenant=\"default\"}"),
        "{metrics}"
    );
    let (status, _) = server.stop();
    assert!(status.success());
}

#[test]
fn serve_ingest_runs_ingest_alone_and_produce_needs_a_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = flywheel(dir.path());
    c.args(["serve", "ingest"]);
    let server = Server::start(c);
    assert_eq!(server.ready["services"], serde_json::json!(["ingest"]));
    let (status, _) = http_get(&server.addr, "/healthz", None);
    assert_eq!(status, 200);
    let (status, _) = http_get(&server.addr, "/api/v1/datasets", None);
    assert_eq!(status, 404, "no API without the gateway");
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");

    // no gateway at all
    let file = dir.path().join("s.jsonl");
    std::fs::write(&file, samples(1, "sensors")).unwrap();
    let (out, _, stderr) = run_flywheel(
        dir.path(),
        &[
            "produce",
            file.to_str().unwrap(),
            "--server",
            "http://127.0.0.1:9",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("cannot reach the gateway at http://127.0.0.1:9"),
        "{stderr}"
    );
    let (out, _, stderr) = run_flywheel(dir.path(), &["dataset", "list", "--server", "not a url"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("--server \"not a url\" is not a URL"),
        "{stderr}"
    );
}
