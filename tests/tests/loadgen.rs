//! `loadgen stream`: the synthetic collectors publish through a running gateway, keep to
//! their rate, and refuse what they cannot do with a clear message.

use flywheel_tests::{cli_json, loadgen_bin, run, up, wait_for_samples};

fn loadgen(args: &[&str]) -> (bool, String, String) {
    let mut c = std::process::Command::new(loadgen_bin());
    c.env_remove("FLYWHEEL_TOKEN")
        .env_remove("LOADGEN_TO")
        .args(args);
    let (out, stdout, stderr) = run(c);
    (out.status.success(), stdout, stderr)
}

#[test]
fn streams_reach_the_dataset_through_the_gateway_at_their_rate() {
    let dir = tempfile::tempdir().unwrap();
    let server = up(dir.path());
    let to = format!("http://{}", server.addr);

    // a drifting sensor, half of it labelled, kept to 4,000 samples a second
    let (ok, stdout, stderr) = loadgen(&[
        "stream",
        "sensor",
        "--to",
        &to,
        "--count",
        "1200",
        "--batch",
        "400",
        "--rate",
        "4000",
        "--labelled",
        "0.5",
        "--sudden-every",
        "600",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["published"], 1200);
    assert_eq!(summary["dataset"], "sensors");
    let labelled = summary["labelled"].as_u64().unwrap();
    assert!((450..=750).contains(&labelled), "{summary}");
    // the third batch is due 800 samples in: 0.2 s at 4,000 a second
    assert!(summary["seconds"].as_f64().unwrap() >= 0.2, "{summary}");
    wait_for_samples(dir.path(), &server, "sensors", 1200);
    let stats = cli_json(dir.path(), &server, &["dataset", "stats", "sensors"]);
    let text = stats.to_string();
    assert!(text.contains("\"0\"") && text.contains("\"1\""), "{text}");

    // images and clicks, to datasets of their own
    for (kind, dataset) in [("images", "pictures"), ("clicks", "clicks")] {
        let (ok, _, stderr) = loadgen(&[
            "stream",
            kind,
            "--to",
            &to,
            "--count",
            "60",
            "--dataset",
            dataset,
            "--json",
        ]);
        assert!(ok, "{kind}: {stderr}");
        wait_for_samples(dir.path(), &server, dataset, 60);
    }
    let show = cli_json(dir.path(), &server, &["dataset", "show", "pictures"]);
    assert!(
        show["bytes"].as_u64().unwrap() > 60 * 50,
        "PNG payloads: {show}"
    );
}

#[test]
fn bad_arguments_and_unreachable_targets_are_refused_clearly() {
    let cases: [(&[&str], &str); 7] = [
        (&["--labelled", "2"], "--labelled must be in [0, 1]"),
        (&["--rate=-1"], "--rate must be"),
        (&["--dataset", "no spaces"], "--dataset"),
        (&["--to", "embedded:///tmp/x"], "belongs to the one process"),
        (
            &["--to", "ftp://host"],
            "publish to kafka://HOST:PORT or http(s)://",
        ),
        (
            &["--to", "http://127.0.0.1:1", "--count", "5"],
            "posting to",
        ),
        (
            &["--to", "kafka://127.0.0.1:1", "--label-delay", "5"],
            "--label-delay needs the gateway",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["stream", "sensor"];
        all.extend_from_slice(args);
        let (ok, _, stderr) = loadgen(&all);
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    let (ok, _, stderr) = loadgen(&["stream", "radio"]);
    assert!(!ok && stderr.contains("invalid value 'radio'"), "{stderr}");
}

/// The Kafka path: samples published as Avro to the tenant's samples topic, and ingested
/// from there by `flywheel up` on the same broker.
#[test]
fn a_stream_published_to_kafka_is_ingested() {
    let Some(broker) = flywheel_tests::outside_resource(
        "FLYWHEEL_TEST_KAFKA",
        "FLYWHEEL_REQUIRE_KAFKA",
        "loadgen stream to Kafka",
        "scripts/test.sh starts a broker",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = format!("{:x}", std::process::id() as u64 * 7919 + 17);
    // a consumer group of this run's own: the broker is shared with other tests
    let config = dir.path().join("flywheel.toml");
    std::fs::write(
        &config,
        format!("[ingest]\ngroup = \"loadgen-test-{run}\"\n"),
    )
    .unwrap();
    let url = format!("kafka://{broker}");
    let mut c = flywheel_tests::flywheel(dir.path());
    c.env("FLYWHEEL_BUS", &url)
        .env("FLYWHEEL_CONFIG", &config)
        .arg("up");
    let server = flywheel_tests::Server::start(c);
    let dataset = format!("loadgen-{run}");
    let (ok, stdout, stderr) = loadgen(&[
        "stream",
        "clicks",
        "--to",
        &url,
        "--dataset",
        &dataset,
        "--count",
        "300",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"published\": 300"), "{stdout}");
    wait_for_samples(dir.path(), &server, &dataset, 300);
}

/// Late labels: the samples go without them, the labels follow as relabel changesets of
/// the keys the gateway answered with, and in the end every sample has its label.
#[test]
fn late_labels_arrive_as_relabel_changesets() {
    let dir = tempfile::tempdir().unwrap();
    let server = up(dir.path());
    let to = format!("http://{}", server.addr);
    let (ok, stdout, stderr) = loadgen(&[
        "stream",
        "sensor",
        "--to",
        &to,
        "--count",
        "1000",
        "--batch",
        "250",
        "--label-delay",
        "300",
        "--dataset",
        "late",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["late_labels"], 1000, "{summary}");
    // due after 500, 750 and 1000 samples, and the rest at the end
    assert_eq!(summary["relabel_changesets"], 4, "{summary}");
    wait_for_samples(dir.path(), &server, "late", 1000);
    let changesets = cli_json(dir.path(), &server, &["changeset", "list", "late"]);
    let relabels = (changesets.as_array().unwrap().iter())
        .filter(|c| c["kind"] == "relabel")
        .count();
    assert_eq!(relabels, 4, "{changesets}");
    let stats = cli_json(dir.path(), &server, &["dataset", "stats", "late"]);
    let text = stats.to_string();
    assert!(text.contains("\"0\"") && text.contains("\"1\""), "{text}");
    assert!(!text.contains("null"), "every sample labelled: {text}");
}
