//! The supervisor through the binary: a pipeline submitted to `flywheel up` turns the
//! samples that arrive into training sets, one per trigger, listed by `flywheel pipeline
//! triggers`; and `flywheel up` killed with SIGKILL over and over, between triggers and in
//! the middle of them, still emits every trigger exactly once.

use std::path::Path;
use std::time::{Duration, Instant};

use flywheel_tests::{Server, cli, cli_json, produce_and_wait, up};

const PIPELINE: &str = r#"
name = "every-50"
dataset = "sensors"

[trigger]
kind = "data_amount"
samples = 50

[selection]
policy = "new_data"

[model]
kind = "linear"
"#;

/// Samples `from..to` of `sensors`, one second apart from `from`.
fn lines(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| {
            format!(
                r#"{{"dataset":"sensors","features":[{i},1.5],"label":"{}","event_time":"2026-11-21T{:02}:{:02}:{:02}Z"}}"#,
                i % 3,
                i / 3600,
                i / 60 % 60,
                i % 60
            ) + "\n"
        })
        .collect()
}

/// Waits until the pipeline has `n` triggers listed; returns them.
fn wait_for_triggers(dir: &Path, server: &Server, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let list = cli_json(dir, server, &["pipeline", "triggers", "every-50"]);
        let list = list.as_array().unwrap().clone();
        if list.len() >= n {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} triggers: {list:?}",
            list.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Submits the pipeline and waits until the supervisor runs it.
fn submit(dir: &Path, server: &Server) {
    let file = dir.join("pipeline.toml");
    std::fs::write(&file, PIPELINE).unwrap();
    cli_json(dir, server, &["pipeline", "submit", file.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cli_json(dir, server, &["pipeline", "show", "every-50"])["state"].is_null() {
        assert!(
            Instant::now() < deadline,
            "the supervisor never took the pipeline"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Each trigger once, in order, each of 50 new samples, each its own training set.
fn check(triggers: &[serde_json::Value], n: usize) {
    let ids: Vec<i64> = triggers
        .iter()
        .map(|t| t["trigger_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=n as i64).collect::<Vec<_>>(), "{triggers:?}");
    let mut versions: Vec<&str> = triggers
        .iter()
        .map(|t| t["version"].as_str().unwrap())
        .collect();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), n);
    for t in triggers {
        assert_eq!(t["trigger_reason"], "data_amount");
        assert_eq!(t["pipeline"], "every-50");
    }
}

#[test]
fn triggers_become_training_sets_and_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = up(d);
    // 20 samples before the pipeline: its history, no trigger on them
    produce_and_wait(d, &server, &lines(0, 20), "sensors", 20);
    submit(d, &server);
    let (ok, text, stderr) = cli(d, &server, &["pipeline", "triggers", "every-50"]);
    assert!(
        ok && text.contains("no training sets yet"),
        "{text}{stderr}"
    );
    produce_and_wait(d, &server, &lines(20, 220), "sensors", 220);
    let triggers = wait_for_triggers(d, &server, 4);
    check(&triggers, 4);
    // new_data: the first live trigger takes everything since the start, then 50 each
    let counts: Vec<i64> = triggers
        .iter()
        .map(|t| t["sample_count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [50, 50, 50, 50]);
    // each is a training set like any other
    let set = cli_json(
        d,
        &server,
        &["trainset", "show", triggers[1]["version"].as_str().unwrap()],
    );
    assert_eq!(set["samples"], 50);
    let shown = cli_json(d, &server, &["pipeline", "show", "every-50"]);
    assert_eq!(shown["state"]["emitted"], 4, "{shown}");
    let (ok, text, _) = cli(d, &server, &["pipeline", "show", "every-50"]);
    assert!(ok && text.contains("4 emitted"), "{text}");
    let (ok, text, _) = cli(d, &server, &["pipeline", "triggers", "every-50"]);
    assert!(ok && text.contains("data_amount"), "{text}");
    let (ok, _, stderr) = cli(d, &server, &["pipeline", "triggers", "nope"]);
    assert!(!ok && stderr.contains("not found"), "{stderr}");
    let (ok, _, stderr) = cli(
        d,
        &server,
        &["pipeline", "triggers", "every-50", "--limit", "0"],
    );
    assert!(!ok && stderr.contains("limit"), "{stderr}");
    // the supervisor's metrics
    let (_, metrics) = flywheel_tests::http_get(&server.addr, "/metrics", None);
    let fired = metrics.lines().find(|l| {
        l.starts_with("flywheel_supervisor_triggers_total{")
            && l.contains(r#"pipeline="every-50""#)
            && l.contains(r#"policy="data_amount""#)
    });
    assert!(fired.is_some_and(|l| l.ends_with(" 4")), "{metrics}");
    assert!(metrics.contains("flywheel_supervisor_trigger_latency_seconds_count"));
}

#[test]
fn killed_again_and_again_it_emits_every_trigger_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut server = up(d);
    produce_and_wait(d, &server, &lines(0, 10), "sensors", 10);
    submit(d, &server);
    let mut have = 10;
    for round in 0..12u64 {
        let next = have + 37;
        produce_and_wait(d, &server, &lines(have, next), "sensors", next as u64);
        have = next;
        // SIGKILL at a moment that moves from round to round, while triggers are emitted
        std::thread::sleep(Duration::from_millis(round * 37 % 200));
        drop(server);
        server = up(d);
    }
    // 10 + 12 × 37 = 454 samples: 9 triggers
    let triggers = wait_for_triggers(d, &server, 9);
    std::thread::sleep(Duration::from_millis(500));
    let triggers_later = cli_json(d, &server, &["pipeline", "triggers", "every-50"]);
    assert_eq!(
        triggers_later.as_array().unwrap().len(),
        9,
        "nothing more came"
    );
    check(&triggers, 9);
    let counts: Vec<i64> = triggers
        .iter()
        .map(|t| t["sample_count"].as_i64().unwrap())
        .collect();
    assert!(counts.iter().all(|&c| c == 50), "{counts:?}");
}
