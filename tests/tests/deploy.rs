//! The deployment files of `deploy/` configure flywheel with what it reads: their
//! configuration files parse (tokens section included), and every `FLYWHEEL_*` variable
//! they set is one of the binary's or a token variable their configuration names.
//! (`scripts/check-deploy.sh` checks the files' own formats: compose, Kubernetes,
//! Prometheus, Grafana, the Dockerfile.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use flywheel_tests::{flywheel, run, run_flywheel};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("deploy/{file}: {e}"))
}

/// The `flywheel.toml` block of the Kubernetes ConfigMap (a YAML literal block).
fn configmap_toml() -> String {
    let text = read("k8s/config.yaml");
    let mut lines = text.lines().skip_while(|l| l.trim() != "flywheel.toml: |");
    assert!(
        lines.next().is_some(),
        "no flywheel.toml in deploy/k8s/config.yaml"
    );
    lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l).to_owned() + "\n")
        .collect()
}

/// Every `FLYWHEEL_...` name in `text`.
fn variables(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("FLYWHEEL_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        out.insert(name);
    }
    out
}

/// The token variables a configuration names: `env = "..."` under `[[tokens]]`.
fn token_variables(toml: &str) -> BTreeSet<String> {
    toml.lines()
        .filter_map(|l| l.trim().strip_prefix("env = \""))
        .filter_map(|l| l.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_configuration_files_are_ones_flywheel_reads() {
    let dir = tempfile::tempdir().unwrap();
    let configmap = dir.path().join("configmap.toml");
    std::fs::write(&configmap, configmap_toml()).unwrap();
    for config in [deploy("flywheel.toml"), configmap] {
        let tokens = token_variables(&std::fs::read_to_string(&config).unwrap());
        assert!(
            !tokens.is_empty(),
            "{}: no token variable",
            config.display()
        );
        // `topics` reads the whole configuration (and prints the catalogue)
        let mut c = flywheel(dir.path());
        c.args(["--config", config.to_str().unwrap(), "topics"]);
        for var in &tokens {
            c.env(var, "a-token-of-the-deploy-test");
        }
        let (out, _, stderr) = run(c);
        assert!(out.status.success(), "{}: {stderr}", config.display());
        // without its variable, the token section is refused by name: it was read
        let mut c = flywheel(dir.path());
        c.args(["--config", config.to_str().unwrap(), "topics"]);
        for var in &tokens {
            c.env_remove(var);
        }
        let (out, _, stderr) = run(c);
        let first = tokens.iter().next().unwrap();
        assert!(
            !out.status.success() && stderr.contains(first.as_str()),
            "{}: {stderr}",
            config.display()
        );
    }
}

#[test]
fn the_deploy_files_set_only_variables_flywheel_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (out, help, _) = run_flywheel(dir.path(), &["serve", "--help"]);
    assert!(out.status.success());
    let mut known = variables(&help);
    assert!(known.contains("FLYWHEEL_BUS"), "{help}");
    known.extend(token_variables(&read("flywheel.toml")));
    known.extend(token_variables(&configmap_toml()));
    for file in ["compose.yaml", "k8s/config.yaml", "Dockerfile"] {
        // a variable named in a comment is still one the reader is told to set
        let unknown: Vec<String> = variables(&read(file)).difference(&known).cloned().collect();
        assert!(
            unknown.is_empty(),
            "deploy/{file} sets {unknown:?}, which flywheel does not read (it reads {known:?})"
        );
    }
}
