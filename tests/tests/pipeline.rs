//! Pipelines through the binary: every example document in docs/examples is submitted to
//! a running system, listed, shown and stopped; bad documents are refused by field, before
//! anything is sent where the command can tell, and by the gateway where only it can.

use std::path::{Path, PathBuf};

use flywheel_tests::{cli, cli_json, produce_and_wait, sample_lines, up};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_examples_are_submitted_listed_shown_and_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = up(d);
    produce_and_wait(d, &server, &sample_lines(20, "sensors"), "sensors", 20);

    let examples = examples();
    assert!(examples.len() >= 4, "{examples:?}");
    let mut names = Vec::new();
    for example in &examples {
        let v = cli_json(
            d,
            &server,
            &["pipeline", "submit", example.to_str().unwrap()],
        );
        assert_eq!(v["status"], "active", "{}: {v}", example.display());
        names.push(v["name"].as_str().unwrap().to_owned());
    }
    names.sort();
    let list = cli_json(d, &server, &["pipeline", "list"]);
    let listed: Vec<&str> = (list.as_array().unwrap().iter())
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, names);
    let (ok, text, _) = cli(d, &server, &["pipeline", "list"]);
    assert!(
        ok && text.contains("data_amount") && text.contains("ensemble"),
        "{text}"
    );

    let (ok, text, stderr) = cli(d, &server, &["pipeline", "show", &names[0]]);
    assert!(ok, "{stderr}");
    assert!(text.contains("[trigger]"), "{text}");
    let (ok, text, stderr) = cli(d, &server, &["pipeline", "stop", &names[0]]);
    assert!(ok && text.contains("stopped"), "{stderr}");
    let shown = cli_json(d, &server, &["pipeline", "show", &names[0]]);
    assert_eq!(shown["status"], "stopped");
}

#[test]
fn bad_documents_are_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = up(d);
    let good = std::fs::read_to_string(&examples()[0]).unwrap();
    let file = d.join("pipeline.toml");
    for (text, want) in [
        // refused by the command itself
        (
            good.replace("policy = \"new_data\"", "policy = \"best\""),
            "best",
        ),
        (
            good.replace("samples = 10000", "samples = 0"),
            "pipeline trigger.samples: must be at least 1",
        ),
        (
            good.replace("[model]\nkind = \"mlp\"\nhidden = [64, 64]\n", ""),
            "model",
        ),
        // a wrong type inside a tagged table: serde names the table and the type
        (good.replace("limit = 50000", "limit = -1"), "[selection]"),
        // refused by the gateway: the dataset does not exist (yet)
        (
            good.clone(),
            "pipeline dataset: dataset \"sensors\" does not exist",
        ),
    ] {
        std::fs::write(&file, &text).unwrap();
        let (ok, _, stderr) = cli(d, &server, &["pipeline", "submit", file.to_str().unwrap()]);
        assert!(!ok, "accepted: {text}");
        assert!(stderr.contains(want), "{want}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
    let (ok, _, stderr) = cli(d, &server, &["pipeline", "show", "nope"]);
    assert!(
        !ok && stderr.contains("pipeline \"nope\" not found"),
        "{stderr}"
    );
    let (ok, _, stderr) = cli(d, &server, &["pipeline", "stop", "a b"]);
    assert!(!ok && stderr.contains("invalid pipeline name"), "{stderr}");
    let (ok, _, stderr) = cli(d, &server, &["pipeline", "submit", "/nonexistent.toml"]);
    assert!(!ok && stderr.contains("/nonexistent.toml"), "{stderr}");
}
