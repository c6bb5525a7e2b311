//! Helpers for the end-to-end tests: they run the `flywheel` binary as a user would, in a
//! temporary data directory, and look only at its exit status, stdout and stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `flywheel` binary of this workspace, built (or found up to date) once per test run.
pub fn flywheel_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("flywheel", "flywheel"))
        .clone()
}

/// The `loadgen` binary of this workspace, built (or found up to date) once per test run.
pub fn loadgen_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("loadgen", "loadgen"))
        .clone()
}

/// Builds `package`'s binary `bin` in the test's own profile; its path.
fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    // the test executable lives in target/<profile>/deps/
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_owned();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", package, "--bin", bin]);
    if release {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "building the {bin} binary failed");
    profile_dir.join(bin)
}

/// A `flywheel` command in a fresh data directory, with the environment cleared of
/// flywheel settings the caller's shell may have.
pub fn flywheel(data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(flywheel_bin());
    for var in [
        "FLYWHEEL_BUS",
        "FLYWHEEL_META",
        "FLYWHEEL_BLOBS",
        "FLYWHEEL_CONFIG",
        "FLYWHEEL_TOKEN",
        "FLYWHEEL_SERVER",
        "FLYWHEEL_HTTP",
    ] {
        c.env_remove(var);
    }
    c.env("FLYWHEEL_DATA_DIR", data_dir);
    c
}

/// Runs a command and returns its output, stdout and stderr as text.
pub fn run(mut c: Command) -> (Output, String, String) {
    let out = c.output().expect("run flywheel");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// Runs `flywheel ARGS...` in `data_dir`.
pub fn run_flywheel(data_dir: &std::path::Path, args: &[&str]) -> (Output, String, String) {
    let mut c = flywheel(data_dir);
    c.args(args);
    run(c)
}

/// A plain HTTP/1.1 GET against a local server: status code and body.
pub fn http_get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to flywheel");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    )
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n.min(rest.len())]);
        body = rest.get(n + 2..).unwrap_or("");
    }
    out
}

/// A running `flywheel up` (or `serve`), killed if still running when dropped.
#[derive(Debug)]
pub struct Server {
    /// The child process.
    pub child: std::process::Child,
    /// host:port of its HTTP API.
    pub addr: String,
    /// The JSON it printed when ready.
    pub ready: serde_json::Value,
}

impl Server {
    /// Starts `flywheel ARGS... --http 127.0.0.1:0 --json` and waits for its ready line.
    pub fn start(mut c: Command) -> Self {
        use std::io::BufRead;
        c.args(["--http", "127.0.0.1:0", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().expect("start flywheel");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the ready line");
        if line.trim().is_empty() {
            let out = child.wait_with_output().expect("flywheel exited");
            panic!(
                "flywheel exited before it was ready: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let ready: serde_json::Value = serde_json::from_str(&line).expect("ready line is JSON");
        let addr = ready["http"]
            .as_str()
            .expect("http address")
            .trim_start_matches("http://")
            .to_owned();
        Self { child, addr, ready }
    }

    /// Sends SIGTERM and waits: the exit status and stderr.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        terminate(self.child.id());
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().expect("true"))
            .wait_with_output()
            .expect("wait for flywheel");
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGTERM to a process.
pub fn terminate(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// `n` samples of `dataset` as JSON lines: features `[i, 1.5]`, labels `0`, `1`, `2` in
/// turn, one second apart.
pub fn sample_lines(n: usize, dataset: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"dataset":"{dataset}","features":[{i},1.5],"label":"{}","event_time":"2026-11-21T10:{:02}:{:02}Z"}}"#,
                i % 3,
                i / 60 % 60,
                i % 60
            ) + "\n"
        })
        .collect()
}

/// `flywheel ARGS... --server URL`, its exit status and output.
pub fn cli(dir: &Path, server: &Server, args: &[&str]) -> (bool, String, String) {
    let mut c = flywheel(dir);
    c.args(args)
        .args(["--server", &format!("http://{}", server.addr)]);
    let (out, stdout, stderr) = run(c);
    (out.status.success(), stdout, stderr)
}

/// `flywheel ARGS... --json` against the server, which must succeed; its JSON.
pub fn cli_json(dir: &Path, server: &Server, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, stdout, stderr) = cli(dir, server, &all);
    assert!(ok, "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

/// Waits (up to a minute) until `dataset` has at least `n` samples.
pub fn wait_for_samples(dir: &Path, server: &Server, dataset: &str, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (ok, stdout, _) = cli(dir, server, &["dataset", "show", dataset, "--json"]);
        let have = ok
            .then(|| serde_json::from_str::<serde_json::Value>(&stdout).ok())
            .flatten()
            .and_then(|v| v["samples"].as_u64())
            .unwrap_or(0);
        if have >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{dataset}: {have} of {n} samples"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The value of `var`, which names something a test needs from outside (a server, a
/// tool). Unset: the test is skipped, saying so and how to set it (`how`), unless
/// `require` is `1`, which makes it a failure.
pub fn outside_resource(var: &str, require: &str, what: &str, how: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var(require).as_deref() != Ok("1"),
                "{require}=1 but {var} is not set ({how})"
            );
            eprintln!("SKIPPED: {what}: set {var} ({how})");
            None
        }
    }
}

/// `flywheel up` on the data directory `dir`, ready.
pub fn up(dir: &Path) -> Server {
    let mut c = flywheel(dir);
    c.arg("up");
    Server::start(c)
}

/// Publishes `lines` (samples of `dataset` as JSON lines) with `flywheel produce` and waits
/// until the dataset holds `n` samples.
pub fn produce_and_wait(dir: &Path, server: &Server, lines: &str, dataset: &str, n: u64) {
    let file = dir.join(format!("{dataset}-samples.jsonl"));
    std::fs::write(&file, lines).expect("write the samples");
    cli_json(
        dir,
        server,
        &["produce", file.to_str().expect("a UTF-8 path")],
    );
    wait_for_samples(dir, server, dataset, n);
}
