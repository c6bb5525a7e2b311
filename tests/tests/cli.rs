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
fn demo_ingests_a_drifting_stream_retrains_on_drift_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let out_arg = out.to_str().unwrap();
    let args = [
        "demo",
        "--samples",
        "12000",
        "--batch",
        "250",
        "--rate",
        "0",
        "--sudden-every",
        "5000",
        "--out",
        out_arg,
        "--json",
    ];
    let (status, stdout, stderr) = run_flywheel(dir.path(), &args);
    assert!(status.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["samples"], 12000);
    assert_eq!(report["stored"], 12000);
    assert_eq!(report["stored_twice"], 0);
    assert!(report["bus"].as_str().unwrap().starts_with("embedded://"));
    assert!(report["meta"].as_str().unwrap().starts_with("sqlite://"));
    let metrics = report["metrics_url"].as_str().unwrap();
    assert!(
        metrics.starts_with("http://127.0.0.1:") && metrics.ends_with("/metrics"),
        "{metrics}"
    );
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

    // one pipeline, retraining on drift: the sudden drift at sample 5,000 fires it
    let pipelines = report["pipelines"].as_array().unwrap();
    assert_eq!(pipelines.len(), 1);
    let pipeline = &pipelines[0];
    let name = pipeline["name"].as_str().unwrap();
    let triggers = pipeline["triggers"].as_array().unwrap();
    let n = triggers.len();
    assert!(n >= 1, "{pipeline}");
    let ids: Vec<i64> = triggers
        .iter()
        .map(|t| t["trigger_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=n as i64).collect::<Vec<_>>(), "{pipeline}");
    // a model released for each, each fine-tuned from the one before, scored on the
    // samples it was live for
    let models = pipeline["models"].as_array().unwrap();
    let ids: Vec<&str> = models
        .iter()
        .map(|m| m["model_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        (1..=n).map(|i| format!("{name}-{i}")).collect::<Vec<_>>()
    );
    let mut from = 0;
    for (i, m) in models.iter().enumerate() {
        let parent = (i > 0).then(|| format!("{name}-{i}"));
        assert_eq!(m["parent"].as_str(), parent.as_deref(), "{m}");
        assert!(m["trained_samples"].as_f64().unwrap() > 500.0, "{m}");
        assert_eq!(m["trainset_version"], triggers[i]["version"], "{m}");
        let live_from = m["live_from_sample"].as_u64().unwrap();
        assert!(live_from >= from && live_from <= 12000, "{m}");
        from = live_from;
        assert_eq!(
            m["accuracy_before"].is_null(),
            i == 0 || m["live_samples"] == 0,
            "{m}"
        );
    }
    // retraining after the sudden drift pays: some model is much better on its samples
    // than the one before it was
    assert!(
        models.iter().any(|m| {
            let (b, a) = (m["accuracy_before"].as_f64(), m["accuracy_after"].as_f64());
            b.zip(a).is_some_and(|(b, a)| a > 0.8 && a > b + 0.1)
        }),
        "{pipeline}"
    );
    let mean = pipeline["mean_accuracy"].as_f64().unwrap();
    assert!(mean > 0.7, "{pipeline}");
    let points = pipeline["accuracy_over_time"].as_array().unwrap();
    assert_eq!(points.len(), 12000 / 500);
    assert!(report["experiment"].is_null());

    // the report files: the same JSON, the models' table, the plot
    let written: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(written["pipelines"], report["pipelines"]);
    let table = fs::read_to_string(out.join("models.md")).unwrap();
    for id in &ids {
        assert!(table.contains(id), "{id}: {table}");
    }
    let png = fs::read(out.join("accuracy.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");

    // a second run on the same data directory goes on from there
    let (status, stdout, stderr) = run_flywheel(
        dir.path(),
        &[
            "demo",
            "--samples",
            "3000",
            "--rate",
            "0",
            "--out",
            out_arg,
            "--json",
        ],
    );
    assert!(status.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["stored"], 3000);
    assert!(report["changesets"][0].as_i64().unwrap() > last + 1);
    // the experiment compares pipelines on a stream of their own: not on this history
    let (status, _, stderr) =
        run_flywheel(dir.path(), &["demo", "--experiment", "--samples", "10"]);
    assert!(!status.status.success());
    assert!(stderr.contains("needs a dataset of its own"), "{stderr}");
}

#[test]
fn the_experiment_compares_selection_policies_on_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("experiment");
    let (status, stdout, stderr) = run_flywheel(
        dir.path(),
        &[
            "demo",
            "--experiment",
            "--samples",
            "12000",
            "--rate",
            "0",
            "--sudden-every",
            "5000",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(status.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let pipelines = report["pipelines"].as_array().unwrap();
    let names: Vec<&str> = pipelines
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    for (name, suffix) in names
        .iter()
        .zip(["-all", "-new", "-fresh", "-reservoir", "-loss"])
    {
        assert!(name.ends_with(suffix), "{names:?}");
    }
    assert_eq!(names[5], "never-retrained");
    // every pipeline has the same trigger: as many training sets each
    let triggers: Vec<usize> = pipelines[..5]
        .iter()
        .map(|p| p["triggers"].as_array().unwrap().len())
        .collect();
    assert!(
        triggers.iter().all(|&t| t == triggers[0] && t >= 1),
        "{triggers:?}"
    );
    let e = &report["experiment"];
    let rows = e["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0]["share_of_all_samples"], 1.0);
    assert_eq!(rows[0]["points_vs_all"], 0.0);
    // all data trains on the most; a selection on less
    let samples: Vec<f64> = rows
        .iter()
        .map(|r| r["samples_trained"].as_f64().unwrap())
        .collect();
    assert!(samples[1..].iter().all(|&s| s < samples[0]), "{samples:?}");
    for r in rows {
        let a = r["mean_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&a), "{r}");
    }
    // the target is judged, one way or the other, and the reason is in the table
    assert!(e["meets_target"].is_array());
    let table = fs::read_to_string(out.join("models.md")).unwrap();
    assert!(table.contains("## The experiment"), "{table}");
    assert!(table.contains("never retrained"), "{table}");
}

#[test]
fn demo_arguments_that_cannot_work_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "x").unwrap();
    for (args, want) in [
        (vec!["--rate=-5"], "--rate must be"),
        (
            vec!["--drift-degrees", "NaN"],
            "--drift-degrees must be a number",
        ),
        (vec!["--samples", "0"], "--samples"),
        (
            vec!["--out", file.to_str().unwrap()],
            "not a directory (the report directory)",
        ),
    ] {
        let mut all = vec!["demo"];
        all.extend(args.iter().copied());
        let (status, _, stderr) = run_flywheel(dir.path(), &all);
        assert!(!status.status.success(), "{args:?}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
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
    let report = dir.path().join("report");
    let (out, _, stderr) = run_flywheel(
        dir.path(),
        &[
            "demo",
            "--samples",
            "2000",
            "--rate",
            "0",
            "--quiet",
            "--out",
            report.to_str().unwrap(),
        ],
    );
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
