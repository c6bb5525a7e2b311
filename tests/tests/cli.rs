//! The binary's process contract: help on every command, the topic catalogue, the demo,
//! and clear errors on bad input.

use std::fs;

use flywheel_tests::{flywheel, run, run_flywheel};

const COMMANDS: [&str; 11] = [
    "up",
    "serve",
    "topics",
    "demo",
    "produce",
    "dataset",
    "changeset",
    "trainset",
    "pipeline",
    "model",
    "help",
];

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let (out, stdout, _) = run_flywheel(dir.path(), &["--help"]);
    assert!(out.status.success());
    for cmd in COMMANDS {
        assert!(stdout.contains(cmd), "top-level help lists {cmd}");
        if cmd == "help" {
            continue;
        }
        let (out, stdout, stderr) = run_flywheel(dir.path(), &[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help: {stderr}");
        assert!(stdout.contains("Usage: flywheel"), "{cmd} --help: {stdout}");
    }
}

#[test]
fn topics_prints_the_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let (out, stdout, _) = run_flywheel(dir.path(), &["topics", "--json", "--tenant", "acme"]);
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["topic"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "flywheel.acme.samples",
            "flywheel.acme.samples.rejected",
            "flywheel.acme.changesets",
            "flywheel.acme.pipelines",
            "flywheel.acme.trainsets",
            "flywheel.acme.models",
        ]
    );
    for r in rows.as_array().unwrap() {
        assert!(r["partitions"].as_u64().unwrap() >= 1);
        assert!(r["schema"].is_string() && r["key"].is_string());
    }

    let (out, stdout, _) = run_flywheel(dir.path(), &["topics", "--markdown"]);
    assert!(out.status.success());
    let doc =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/topics.md")).unwrap();
    assert_eq!(
        stdout, doc,
        "docs/topics.md is what `flywheel topics --markdown` prints"
    );
}

#[test]
fn topics_create_makes_a_tenants_topics_and_refuses_bad_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _, stderr) = run_flywheel(dir.path(), &["topics", "--create", "--tenant", "acme"]);
    assert!(out.status.success(), "{stderr}");
    assert!(
        dir.path()
            .join("bus/topics/flywheel.acme.samples/topic.json")
            .exists()
    );
    assert!(
        dir.path()
            .join("bus/topics/flywheel.acme.models/topic.json")
            .exists()
    );

    let (out, _, stderr) =
        run_flywheel(dir.path(), &["topics", "--create", "--tenant", "Not.Valid"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("invalid tenant name \"Not.Valid\""),
        "{stderr}"
    );
}

#[test]
fn demo_ingests_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let (out, stdout, stderr) = run_flywheel(
        dir.path(),
        &["demo", "--samples", "3000", "--batch", "250", "--json"],
    );
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["samples"], 3000);
    assert_eq!(report["stored"], 3000);
    assert_eq!(report["stored_twice"], 0);
    assert!(report["bus"].as_str().unwrap().starts_with("embedded://"));
    assert!(report["meta"].as_str().unwrap().starts_with("sqlite://"));
    assert_eq!(
        report["dead_letters"],
        serde_json::json!({"bad_event_time": 1, "label_type": 1, "not_avro_or_json": 1})
    );
    let last = report["changesets"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_i64()
        .unwrap();
    assert_eq!(report["relabel_changeset"].as_i64(), Some(last + 1));
    // the supervisor ran the demo's pipeline: a training set every 750 new samples
    let pipeline = &report["pipeline"];
    assert_eq!(pipeline["every"], 750);
    let triggers = pipeline["triggers"].as_array().unwrap();
    let ids: Vec<i64> = triggers
        .iter()
        .map(|t| t["trigger_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4], "{pipeline}");
    assert!(triggers.iter().all(|t| t["samples"] == 750), "{pipeline}");
    // the trainer released a model for each, each fine-tuned from the one before
    let name = pipeline["name"].as_str().unwrap();
    let models = pipeline["models"].as_array().unwrap();
    let ids: Vec<&str> = models
        .iter()
        .map(|m| m["model_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        (1..=4).map(|i| format!("{name}-{i}")).collect::<Vec<_>>()
    );
    for (i, m) in models.iter().enumerate() {
        let parent = (i > 0).then(|| format!("{name}-{i}"));
        assert_eq!(m["parent"].as_str(), parent.as_deref(), "{m}");
        assert!(m["holdout_accuracy"].as_f64().unwrap() > 0.8, "{m}");
        assert!(m["trained_samples"].as_f64().unwrap() > 600.0, "{m}");
    }
    assert!(pipeline["release_latency_mean_seconds"].as_f64().unwrap() > 0.0);
    // a second run on the same data directory goes on from there
    let (out, stdout, stderr) = run_flywheel(dir.path(), &["demo", "--samples", "500", "--json"]);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["stored"], 500);
    assert!(report["changesets"][0].as_i64().unwrap() > last + 1);
    // a new pipeline: the first run's samples are its history, its triggers fire on the
    // second run's (every 125), the first taking everything since the start
    let triggers = report["pipeline"]["triggers"].as_array().unwrap();
    let samples: Vec<i64> = triggers
        .iter()
        .map(|t| t["samples"].as_i64().unwrap())
        .collect();
    assert_eq!(samples, [3125, 125, 125, 125], "{report}");
    // the first run's late label ("feedback") is no class of the model: skipped, counted
    let models = report["pipeline"]["models"].as_array().unwrap();
    assert_eq!(models.len(), 4, "{report}");
    assert_eq!(models[0]["skipped_samples"], 1.0, "{report}");
}

#[test]
fn bad_bus_urls_are_named_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (url, want) in [
        ("foo://x", "unknown scheme \"foo\""),
        ("no-scheme", "expected SCHEME://"),
        ("embedded://", "needs a directory"),
        ("kafka://", "kafka"),
        ("kafka://127.0.0.1:notaport", "notaport"),
    ] {
        let (out, _, stderr) = run_flywheel(dir.path(), &["demo", "--samples", "1", "--bus", url]);
        assert_eq!(out.status.code(), Some(1), "{url}");
        assert!(stderr.contains(want), "{url}: {stderr}");
        assert!(stderr.contains(url), "{url} is named: {stderr}");
        assert!(!stderr.contains("panicked"), "{url}: {stderr}");
    }
}

#[test]
fn an_unreachable_broker_is_a_clear_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = flywheel(dir.path());
    c.args(["demo", "--samples", "1", "--bus", "kafka://127.0.0.1:1"]);
    let started = std::time::Instant::now();
    let (out, _, stderr) = run(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn a_corrupt_segment_is_reported_by_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _, stderr) = run_flywheel(dir.path(), &["demo", "--samples", "2000", "--quiet"]);
    assert!(out.status.success(), "{stderr}");
    // flip a byte in the middle of the samples topic's first segment
    let seg_dir = dir.path().join("bus/topics/flywheel.default.samples");
    let segment = fs::read_dir(&seg_dir)
        .unwrap()
        .flat_map(|p| fs::read_dir(p.unwrap().path()).into_iter().flatten())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&segment, bytes).unwrap();

    // a new consumer group reads the topic from the start, into the damage
    let config = dir.path().join("flywheel.toml");
    fs::write(&config, "[ingest]\ngroup = \"a-new-group\"\n").unwrap();
    let (out, _, stderr) = run_flywheel(
        dir.path(),
        &[
            "demo",
            "--samples",
            "10",
            "--quiet",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("corrupt log segment"), "{stderr}");
    assert!(stderr.contains(&segment.display().to_string()), "{stderr}");

    // `flywheel up` stops with the failed service's error rather than serve on without it
    let (out, _, stderr) = run_flywheel(
        dir.path(),
        &[
            "up",
            "--http",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the ingest service failed"), "{stderr}");
    assert!(stderr.contains("corrupt log segment"), "{stderr}");
}

#[test]
fn bad_configuration_files_are_named_with_the_key_and_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flywheel.toml");
    for (text, want) in [
        (
            "bus = \"embedded://x\"\nbsu = \"typo\"\n",
            "unknown field `bsu`",
        ),
        ("http = 8480\n", "line 1"),
        ("tenants = [\"Bad Name\"]\n", "invalid tenant name"),
    ] {
        std::fs::write(&config, text).unwrap();
        let (out, _, stderr) = run_flywheel(
            dir.path(),
            &[
                "--config",
                config.to_str().unwrap(),
                "topics",
                "--create",
                "--tenant",
                "acme",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(stderr.contains(want), "{text}: {stderr}");
        assert!(stderr.contains("flywheel.toml"), "names the file: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
    let (out, _, stderr) =
        run_flywheel(dir.path(), &["--config", "/nonexistent/fw.toml", "topics"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("/nonexistent/fw.toml"), "{stderr}");
}
