//! Training sets through the binary: prepare (the same query, the same version), show,
//! get to a directory of tar shards that Python's `webdataset` package reads, versions
//! that survive later edits, and bad input refused by name.

use std::path::Path;

use flywheel_tests::{
    cli, cli_json, http_get, outside_resource, produce_and_wait, sample_lines, up,
};
use serde_json::Value;

/// Reads the shards of DIR with the `webdataset` package; prints what it saw as JSON.
const READ_WITH_WEBDATASET: &str = r#"
import glob, json, sys
import webdataset as wds
shards = sorted(glob.glob(sys.argv[1] + "/shard-*.tar"))
seen = {"samples": 0, "with_payload": 0, "labels": {}, "keys": [], "features_ok": True}
for s in wds.WebDataset(shards, shardshuffle=False).decode():
    meta = s["json"]
    seen["samples"] += 1
    seen["keys"].append(meta["key"])
    if s["__key__"] != "%016x" % meta["key"]:
        raise SystemExit("key mismatch: %r %r" % (s["__key__"], meta["key"]))
    label = meta["label"]
    seen["labels"][str(label)] = seen["labels"].get(str(label), 0) + 1
    if "bin" in s:
        seen["with_payload"] += 1
        if s["bin"] != b"payload %d" % int(meta["features"][0]):
            raise SystemExit("payload mismatch at %r" % meta["key"])
    if len(meta["features"]) != 2 or meta["features"][1] != 1.5:
        seen["features_ok"] = False
print(json.dumps(seen))
"#;

/// The python of an environment with `webdataset` (scripts/install-webdataset.sh), if the
/// test run has one; a run that requires it fails without it.
fn webdataset_python() -> Option<String> {
    outside_resource(
        "FLYWHEEL_TEST_PYTHON",
        "FLYWHEEL_REQUIRE_WEBDATASET",
        "reading shards with webdataset",
        "scripts/install-webdataset.sh prints the python to set it to",
    )
}

/// Samples with a payload on every other one (`payload {i}`).
fn samples_with_payloads(n: usize, dataset: &str) -> String {
    sample_lines(n, dataset)
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if i % 2 == 1 {
                let b64 = base64_of(format!("payload {i}").as_bytes());
                format!("{},\"payload_b64\":\"{b64}\"}}\n", &line[..line.len() - 1])
            } else {
                format!("{line}\n")
            }
        })
        .collect()
}

fn base64_of(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn shard_bytes(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn prepare_show_get_and_read_with_webdataset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = up(d);
    produce_and_wait(
        d,
        &server,
        &samples_with_payloads(3000, "sensors"),
        "sensors",
        3000,
    );

    // prepare: labels 1 and 2, the newest half of them
    let newest_half = |first: &str, second: &str| {
        cli(
            d,
            &server,
            &[
                "trainset",
                "prepare",
                "--dataset",
                "sensors",
                "--label",
                first,
                "--label",
                second,
                "--percentage",
                "0.5",
            ],
        )
    };
    let (ok, version, stderr) = newest_half("1", "2");
    assert!(ok, "{stderr}");
    let version = version.trim().to_owned();
    assert_eq!(version.len(), 32, "{version}");
    assert!(stderr.contains("prepared training set"), "{stderr}");
    // again, with the labels the other way round: the same version, found
    let (ok, again, stderr) = newest_half("2", "1");
    assert!(ok, "{stderr}");
    assert_eq!(again.trim(), version);
    assert!(stderr.contains("existing training set"), "{stderr}");

    let show = cli_json(d, &server, &["trainset", "show", &version]);
    assert_eq!(show["samples"], 1000);
    assert_eq!(
        show["labels"],
        serde_json::json!([{"label": "1", "samples": 500}, {"label": "2", "samples": 500}])
    );
    let (ok, text, _) = cli(d, &server, &["trainset", "show", &version]);
    assert!(ok && text.contains("labels 1,2; newest 50%"), "{text}");
    let list = cli_json(d, &server, &["trainset", "list", "--dataset", "sensors"]);
    assert_eq!(list.as_array().unwrap().len(), 1);

    // get: shards, manifest and summary on disk
    let out = d.join("out");
    let report = cli_json(
        d,
        &server,
        &["trainset", "get", &version, "--out", out.to_str().unwrap()],
    );
    assert_eq!(report["samples"], 1000);
    assert!(out.join("manifest.bin").is_file() && out.join("trainset.json").is_file());
    let shards = shard_bytes(&out);
    assert_eq!(shards.len(), 1);

    if let Some(python) = webdataset_python() {
        let got = std::process::Command::new(python)
            .args(["-c", READ_WITH_WEBDATASET, out.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            got.status.success(),
            "{}",
            String::from_utf8_lossy(&got.stderr)
        );
        let seen: Value = serde_json::from_slice(&got.stdout).unwrap();
        assert_eq!(seen["samples"], 1000);
        assert_eq!(seen["labels"], serde_json::json!({"1": 500, "2": 500}));
        assert_eq!(seen["with_payload"], 500, "odd samples carry payloads");
        assert_eq!(seen["features_ok"], true);
        let keys = seen["keys"].as_array().unwrap();
        let mut sorted = keys.clone();
        sorted.sort_by_key(|k| k.as_u64());
        sorted.dedup();
        assert_eq!(sorted.len(), 1000, "every key once");
    }

    // an edit later: a new query sees it, the old version still gives the same bytes
    let (ok, _, stderr) = cli(d, &server, &["changeset", "revert", "sensors", "1"]);
    assert!(ok, "{stderr}");
    let (ok, now, stderr) = newest_half("1", "2");
    assert!(ok, "{stderr}");
    assert_ne!(now.trim(), version);
    let later = cli_json(d, &server, &["trainset", "show", now.trim()]);
    let left = later["samples"].as_u64().unwrap();
    assert!(
        left < 1000,
        "the reverted changeset's samples are gone: {left}"
    );
    let again = d.join("again");
    cli_json(
        d,
        &server,
        &[
            "trainset",
            "get",
            &version,
            "--out",
            again.to_str().unwrap(),
            "--quiet",
        ],
    );
    assert_eq!(
        shard_bytes(&again),
        shards,
        "a version's shards never change"
    );
}

#[test]
fn bad_input_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = up(d);
    produce_and_wait(d, &server, &sample_lines(10, "sensors"), "sensors", 10);

    let prepare = |extra: &[&str]| {
        let mut args = vec!["trainset", "prepare", "--dataset", "sensors"];
        args.extend_from_slice(extra);
        let (ok, _, stderr) = cli(d, &server, &args);
        assert!(!ok, "{extra:?} was accepted");
        stderr
    };
    for (extra, want) in [
        (
            &["--percentage", "1.5"][..],
            "--percentage 1.5 is outside (0, 1]",
        ),
        (&["--percentage", "0"][..], "outside (0, 1]"),
        (&["--changesets", "3-"][..], "--changesets \"3-\""),
        (&["--changesets", "2-1"][..], "inverted range"),
        (
            &["--changesets", "5"][..],
            "invalid changesets: changeset 5 is after",
        ),
        (
            &["--as-of", "9"][..],
            "invalid as_of: changeset 9 does not exist",
        ),
        (
            &[
                "--from",
                "2026-11-21T11:00:00Z",
                "--to",
                "2026-11-21T10:00:00Z",
            ][..],
            "invalid from: the time range is empty or inverted",
        ),
        (
            &["--from", "yesterday"][..],
            "--from \"yesterday\" is not an RFC 3339 time",
        ),
    ] {
        let stderr = prepare(extra);
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
    }
    let (ok, _, stderr) = cli(d, &server, &["trainset", "prepare", "--dataset", "nope"]);
    assert!(
        !ok && stderr.contains("dataset \"nope\" not found"),
        "{stderr}"
    );
    let (ok, _, stderr) = cli(d, &server, &["trainset", "show", "xyz"]);
    assert!(
        !ok && stderr.contains("\"xyz\" is not a training-set version"),
        "{stderr}"
    );
    let unknown = "0".repeat(32);
    let (ok, _, stderr) = cli(d, &server, &["trainset", "show", &unknown]);
    assert!(!ok && stderr.contains("not found"), "{stderr}");

    // over HTTP
    let addr = server.addr.to_string();
    let (status, body) = http_get(
        &addr,
        &format!("/api/v1/trainsets/{unknown}/shards/0"),
        None,
    );
    assert_eq!(status, 404, "{body}");
    let (ok, version, _) = cli(d, &server, &["trainset", "prepare", "--dataset", "sensors"]);
    assert!(ok);
    let version = version.trim();
    for (path, status, want) in [
        (
            format!("/api/v1/trainsets/{version}/shards/x"),
            400,
            "not a shard number",
        ),
        (
            format!("/api/v1/trainsets/{version}/shards/7"),
            404,
            "shard 7 of training set",
        ),
        (
            "/api/v1/trainsets?data=x".to_owned(),
            400,
            "unknown query parameter",
        ),
        (
            "/api/v1/trainsets/ABC".to_owned(),
            400,
            "is not a training-set version",
        ),
    ] {
        let (got, body) = http_get(&addr, &path, None);
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains(want), "{path}: {body}");
    }
}
