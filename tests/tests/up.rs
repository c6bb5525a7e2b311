//! `flywheel up`: serves /healthz and /metrics on the embedded default with no
//! configuration at all, creates its topics, scopes the API by token, and stops cleanly.

use std::process::Command;

use flywheel_tests::{Server, flywheel, http_get};

/// Validates Prometheus text with promtool. Without promtool the check is skipped with a
/// printed reason, unless `FLYWHEEL_REQUIRE_PROMTOOL=1` (scripts/test.sh) makes that a failure.
fn promtool_check(metrics: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var("FLYWHEEL_REQUIRE_PROMTOOL").as_deref() != Ok("1"),
            "promtool is not installed (scripts/install-promtool.sh)"
        );
        eprintln!("skipped the promtool check: promtool is not installed");
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // promtool exits 1 on lint problems (e.g. naming advice) and 3 on a format error;
    // flywheel's metrics must pass both.
    assert!(out.status.success(), "promtool check metrics:\n{report}");
}

#[test]
fn up_serves_health_and_metrics_on_the_embedded_default_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = flywheel(dir.path());
    c.arg("up");
    let server = Server::start(c);
    assert!(
        server.ready["bus"]
            .as_str()
            .unwrap()
            .starts_with("embedded://")
    );
    assert!(
        server.ready["meta"]
            .as_str()
            .unwrap()
            .starts_with("sqlite://")
    );
    assert!(
        server.ready["blobs"]
            .as_str()
            .unwrap()
            .starts_with("file://")
    );

    let (status, body) = http_get(&server.addr, "/healthz", None);
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["checks"]["bus"], "ok");
    assert_eq!(health["checks"]["meta"], "ok");
    assert_eq!(health["checks"]["blobs"], "ok");

    let (status, metrics) = http_get(&server.addr, "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("flywheel_build_info{version="),
        "{metrics}"
    );
    assert!(
        metrics.contains("process_resident_memory_bytes"),
        "{metrics}"
    );
    promtool_check(&metrics);

    let (status, body) = http_get(&server.addr, "/api/v1/whoami", None);
    assert_eq!(status, 200);
    assert!(body.contains("\"tenant\":\"default\""), "{body}");
    let (status, body) = http_get(&server.addr, "/api/v1/nope", None);
    assert_eq!(status, 404);
    assert!(body.contains("error"), "{body}");

    // its topics were created on the embedded bus
    assert!(
        dir.path()
            .join("bus/topics/flywheel.default.samples/topic.json")
            .exists()
    );
    assert!(dir.path().join("blobs").is_dir());
    assert!(dir.path().join("meta.db").is_file());

    let (status, stderr) = server.stop();
    assert!(status.success(), "exit {status:?}: {stderr}");
}

#[test]
fn with_tokens_every_request_is_scoped_to_its_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("acme.token");
    std::fs::write(&token_file, "acme-0123456789abcdef\n").unwrap();
    let config = dir.path().join("flywheel.toml");
    std::fs::write(
        &config,
        format!(
            "[[tokens]]\ntenant = \"acme\"\nfile = {:?}\n[[tokens]]\ntenant = \"globex\"\nenv = \"GLOBEX_TOKEN\"\n",
            token_file.display().to_string()
        ),
    )
    .unwrap();
    let mut c = flywheel(dir.path());
    c.env("GLOBEX_TOKEN", "globex-0123456789abcdef").args([
        "--config",
        config.to_str().unwrap(),
        "serve",
        "gateway",
    ]);
    let server = Server::start(c);
    let tenants: Vec<&str> = server.ready["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tenants,
        ["acme", "globex"],
        "no open default tenant with tokens"
    );

    let (status, body) = http_get(
        &server.addr,
        "/api/v1/whoami",
        Some("acme-0123456789abcdef"),
    );
    assert_eq!((status, body.contains("\"acme\"")), (200, true), "{body}");
    let (status, body) = http_get(
        &server.addr,
        "/api/v1/topics",
        Some("globex-0123456789abcdef"),
    );
    assert_eq!(status, 200);
    assert!(
        body.contains("flywheel.globex.samples") && !body.contains("acme"),
        "{body}"
    );
    for token in [None, Some("wrong-0123456789abcdef"), Some("")] {
        let (status, body) = http_get(&server.addr, "/api/v1/topics", token);
        assert_eq!(status, 401, "{token:?}: {body}");
        assert!(!body.contains("flywheel."), "{body}");
    }
    // health and metrics stay open for probes and scrapers
    assert_eq!(http_get(&server.addr, "/healthz", None).0, 200);
    assert!(
        dir.path()
            .join("bus/topics/flywheel.acme.models/topic.json")
            .exists()
    );
    assert!(
        dir.path()
            .join("bus/topics/flywheel.globex.models/topic.json")
            .exists()
    );
    assert!(
        !dir.path()
            .join("bus/topics/flywheel.default.models")
            .exists()
    );
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = flywheel(dir.path())
        .args(["up", "--http", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("listening on {addr}")), "{stderr}");
}

#[test]
fn bad_backend_urls_are_named_before_anything_is_served() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, url, want) in [
        ("--meta", "foo://x", "foo://x"),
        ("--meta", "sqlite://", "sqlite://"),
        ("--blobs", "ftp://host/x", "unknown scheme \"ftp\""),
        ("--blobs", "file://relative/path", "file://relative/path"),
        ("--bus", "kafka://", "kafka://"),
    ] {
        let out = flywheel(dir.path())
            .args(["up", "--http", "127.0.0.1:0", flag, url])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag} {url}: {stderr}");
        assert!(stderr.contains(want), "{flag} {url}: {stderr}");
        assert!(out.stdout.is_empty(), "{flag} {url}: nothing served");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn the_supervisor_runs_alone_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = flywheel(dir.path());
    c.args(["serve", "supervisor"]);
    let server = Server::start(c);
    assert_eq!(server.ready["services"], serde_json::json!(["supervisor"]));
    // no API here, but its metrics once it has looked for pipelines
    assert_eq!(http_get(&server.addr, "/api/v1/whoami", None).0, 404);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, metrics) = http_get(&server.addr, "/metrics", None);
        if metrics.contains(r#"flywheel_supervisor_pipelines{tenant="default"} 0"#) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (status, stderr) = server.stop();
    assert!(status.success(), "exit {status:?}: {stderr}");
}

#[test]
fn the_trainer_runs_alone_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = flywheel(dir.path());
    c.args(["serve", "trainer"]);
    let server = Server::start(c);
    assert_eq!(server.ready["services"], serde_json::json!(["trainer"]));
    assert_eq!(http_get(&server.addr, "/api/v1/whoami", None).0, 404);
    let (_, metrics) = http_get(&server.addr, "/metrics", None);
    assert!(
        metrics.contains("flywheel_trainer_cache_bytes 0"),
        "{metrics}"
    );
    let (status, stderr) = server.stop();
    assert!(status.success(), "exit {status:?}: {stderr}");
}
