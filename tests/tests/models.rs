//! The trainer through the binary: a pipeline's training sets become models that
//! `flywheel model` lists, shows, fetches and traces back to their samples; and
//! `flywheel up` killed with SIGKILL again and again, in the middle of training, still
//! releases each training set exactly once.

use std::path::Path;
use std::time::{Duration, Instant};

use flywheel_tests::{Server, cli, cli_json, http_get, produce_and_wait, up};

/// Releases each 100 samples, an MLP fine-tuned from the one before.
const PIPELINE: &str = r#"
name = "learn"
dataset = "points"

[trigger]
kind = "data_amount"
samples = 100

[selection]
policy = "new_data"

[model]
kind = "mlp"
hidden = [8]

[training]
epochs = 40
batch_size = 16
learning_rate = 0.02
"#;

/// Samples `from..to` of `points`: features `[x, 1 - x]`, `hi` when x > 0.5.
fn lines(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| {
            let x = (i * 37 % 100) as f64 / 100.0;
            format!(
                r#"{{"dataset":"points","features":[{x},{}],"label":"{}","event_time":"2026-11-21T{:02}:{:02}:{:02}Z"}}"#,
                1.0 - x,
                if x > 0.5 { "hi" } else { "lo" },
                i / 3600,
                i / 60 % 60,
                i % 60
            ) + "\n"
        })
        .collect()
}

fn submit(dir: &Path, server: &Server, document: &str) {
    let file = dir.join("pipeline.toml");
    std::fs::write(&file, document).unwrap();
    cli_json(dir, server, &["pipeline", "submit", file.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cli_json(dir, server, &["pipeline", "show", "learn"])["state"].is_null() {
        assert!(
            Instant::now() < deadline,
            "the supervisor never took the pipeline"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `n` releases of the pipeline are on the models topic; returns them.
fn wait_for_releases(dir: &Path, server: &Server, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let list = cli_json(dir, server, &["pipeline", "releases", "learn"]);
        let list = list.as_array().unwrap().clone();
        if list.len() >= n {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} releases: {list:?}",
            list.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn models_are_released_listed_fetched_and_traced_to_their_samples() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = up(d);
    produce_and_wait(d, &server, &lines(0, 5), "points", 5);
    submit(d, &server, PIPELINE);
    produce_and_wait(d, &server, &lines(5, 305), "points", 305);
    let releases = wait_for_releases(d, &server, 3);
    let ids: Vec<&str> = releases
        .iter()
        .map(|r| r["model_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["learn-1", "learn-2", "learn-3"]);

    // list: the three, with their evaluation
    let list = cli_json(d, &server, &["model", "list", "--pipeline", "learn"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    for m in list {
        assert!(
            m["metrics"]["holdout_accuracy"].as_f64().unwrap() >= 0.75,
            "{m}"
        );
    }
    let (ok, text, _) = cli(d, &server, &["model", "list"]);
    assert!(
        ok && text.contains("learn-2") && text.contains("ACCURACY"),
        "{text}"
    );

    // show: its lineage in one step and its card
    let shown = cli_json(d, &server, &["model", "show", "learn-2"]);
    assert_eq!(shown["parent"], "learn-1");
    assert_eq!(shown["trigger_id"], 2);
    assert_eq!(shown["card"]["kind"], "mlp");
    assert_eq!(shown["card"]["labels"], serde_json::json!(["hi", "lo"]));
    assert_eq!(
        shown["card"]["input"],
        serde_json::json!({"kind": "features", "width": 2})
    );
    let (ok, text, _) = cli(d, &server, &["model", "show", "learn-2"]);
    assert!(ok && text.contains("parent        learn-1"), "{text}");

    // get: the weights (safetensors: a little-endian header length, then JSON) and card
    let out = d.join("got");
    let got = cli_json(
        d,
        &server,
        &["model", "get", "learn-3", "--out", out.to_str().unwrap()],
    );
    let weights = std::fs::read(out.join("learn-3.safetensors")).unwrap();
    assert_eq!(got["bytes"].as_u64(), Some(weights.len() as u64));
    let header = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&weights[8..8 + header]).unwrap();
    assert!(header.get("hidden0.weight").is_some(), "{header}");
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("learn-3.json")).unwrap()).unwrap();
    assert_eq!(card["kind"], "mlp");

    // lineage: its ancestors, training set, changesets and keys
    let lineage = cli_json(d, &server, &["model", "lineage", "learn-3", "--keys"]);
    let ancestors: Vec<&str> = (lineage["ancestors"].as_array().unwrap().iter())
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ancestors, ["learn-2", "learn-1"]);
    assert_eq!(
        lineage["trainset"]["version"],
        releases[2]["trainset_version"]
    );
    let samples = lineage["samples"].as_u64().unwrap();
    assert_eq!(samples, 100);
    let per_changeset: u64 = (lineage["changesets"].as_array().unwrap().iter())
        .map(|c| c["samples"].as_u64().unwrap())
        .sum();
    assert_eq!(per_changeset, samples);
    assert_eq!(lineage["keys"].as_array().unwrap().len() as u64, samples);
    let (ok, text, _) = cli(d, &server, &["model", "lineage", "learn-3"]);
    assert!(ok && text.contains("fine-tuned from learn-2"), "{text}");

    // bad input: ids, unknown models, parameters
    let (ok, _, stderr) = cli(d, &server, &["model", "show", "a b"]);
    assert!(!ok && stderr.contains("invalid model id"), "{stderr}");
    let (ok, _, stderr) = cli(d, &server, &["model", "show", "learn-9"]);
    assert!(!ok && stderr.contains("not found"), "{stderr}");
    let (ok, _, stderr) = cli(
        d,
        &server,
        &["pipeline", "releases", "learn", "--limit", "0"],
    );
    assert!(!ok && stderr.contains("limit"), "{stderr}");
    for (path, want) in [
        ("/api/v1/models?pipline=learn", 400),
        ("/api/v1/models?pipeline=a%20b", 400),
        ("/api/v1/models/learn-1/lineage?keys=maybe", 400),
        ("/api/v1/models/no%2Fslash", 400),
        ("/api/v1/models/learn-9/weights", 404),
        ("/api/v1/pipelines/learn/releases?limit=x", 400),
    ] {
        let (status, body) = http_get(&server.addr, path, None);
        assert_eq!(status, want, "{path}: {body}");
    }

    // the trainer's metrics
    let (_, metrics) = http_get(&server.addr, "/metrics", None);
    let released = metrics.lines().find(|l| {
        l.starts_with("flywheel_trainer_trainsets_total{") && l.contains(r#"outcome="released""#)
    });
    assert!(released.is_some_and(|l| l.ends_with(" 3")), "{metrics}");
    assert!(metrics.contains("flywheel_trainer_release_latency_seconds_count"));
}

#[test]
fn killed_again_and_again_it_releases_every_training_set_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut server = up(d);
    produce_and_wait(d, &server, &lines(0, 5), "points", 5);
    // slower training: more time to be killed in the middle of it
    submit(d, &server, &PIPELINE.replace("epochs = 40", "epochs = 150"));
    let mut have = 5;
    for round in 0..8u64 {
        let next = have + 50;
        produce_and_wait(d, &server, &lines(have, next), "points", next as u64);
        have = next;
        std::thread::sleep(Duration::from_millis(200 + round * 97 % 400));
        drop(server); // SIGKILL
        server = up(d);
    }
    // 5 + 8 × 50 = 405 samples: 4 training sets
    let releases = wait_for_releases(d, &server, 4);
    std::thread::sleep(Duration::from_secs(1));
    let later = cli_json(d, &server, &["pipeline", "releases", "learn"]);
    assert_eq!(
        later.as_array().unwrap().len(),
        4,
        "nothing more came: {later}"
    );
    let ids: Vec<&str> = releases
        .iter()
        .map(|r| r["model_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["learn-1", "learn-2", "learn-3", "learn-4"]);
    for (i, r) in releases.iter().enumerate().skip(1) {
        assert_eq!(r["parent_model"], format!("learn-{i}"), "{r}");
    }
}
