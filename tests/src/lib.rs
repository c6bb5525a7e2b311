//! Helpers for the end-to-end tests: they run the `flywheel` binary as a user would, in a
//! temporary data directory, and look only at its exit status, stdout and stderr.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `flywheel` binary of this workspace, built (or found up to date) once per test run.
pub fn flywheel_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
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
        build.args(["build", "--quiet", "-p", "flywheel", "--bin", "flywheel"]);
        if release {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building the flywheel binary failed");
        profile_dir.join("flywheel")
    })
    .clone()
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
