//! Settings: command-line flags and `FLYWHEEL_*` variables over the configuration file
//! (`--config`, TOML, unknown keys refused by name) over the defaults.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use flywheel_ingest::IngestConfig;
use flywheel_sources::SourcesConfig;
use flywheel_supervisor::SupervisorConfig;
use flywheel_topics::Tenant;
use flywheel_trainer::TrainerConfig;
use serde::Deserialize;

use crate::cli::Global;

/// Default address of the HTTP API, `/metrics` and `/healthz`.
pub(crate) const DEFAULT_HTTP: &str = "127.0.0.1:8480";
/// Default data directory of the embedded backends.
pub(crate) const DEFAULT_DATA_DIR: &str = "./flywheel-data";

/// The configuration file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    bus: Option<String>,
    meta: Option<String>,
    blobs: Option<String>,
    http: Option<SocketAddr>,
    /// Tenants whose topics are created at start-up (besides those of the tokens).
    #[serde(default)]
    tenants: Vec<String>,
    /// Bearer tokens of the gateway, each for one tenant.
    #[serde(default)]
    tokens: Vec<TokenConfig>,
    /// The ingest service.
    #[serde(default)]
    ingest: IngestConfig,
    /// The supervisor.
    #[serde(default)]
    supervisor: SupervisorConfig,
    /// The trainer.
    #[serde(default)]
    trainer: TrainerConfig,
    /// Restricted-data sources, `[sources.NAME]`.
    #[serde(default)]
    sources: SourcesConfig,
}

/// A token is never written in the file itself: it comes from a variable or a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenConfig {
    tenant: String,
    /// Name of the environment variable holding the token.
    env: Option<String>,
    /// File holding the token (surrounding whitespace ignored).
    file: Option<PathBuf>,
}

/// Everything resolved.
pub(crate) struct Settings {
    pub(crate) data_dir: PathBuf,
    pub(crate) bus: String,
    pub(crate) meta: String,
    pub(crate) blobs: String,
    pub(crate) http: SocketAddr,
    /// Tenants whose topics exist from start-up.
    pub(crate) tenants: Vec<Tenant>,
    /// Bearer tokens and their tenants (empty: one open tenant, loopback only).
    pub(crate) tokens: Vec<(String, Tenant)>,
    /// The ingest service's settings.
    pub(crate) ingest: IngestConfig,
    /// The supervisor's settings.
    pub(crate) supervisor: SupervisorConfig,
    /// The trainer's settings.
    pub(crate) trainer: TrainerConfig,
    /// Restricted-data sources (their credentials are read when the gateway starts).
    pub(crate) sources: SourcesConfig,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field("bus", &self.bus)
            .field("meta", &self.meta)
            .field("blobs", &self.blobs)
            .field("http", &self.http)
            .field("tenants", &self.tenants)
            .field("tokens", &format_args!("{} (hidden)", self.tokens.len()))
            .field("ingest", &self.ingest)
            .field("supervisor", &self.supervisor)
            .field("trainer", &self.trainer)
            .field("sources", &self.sources)
            .finish()
    }
}

/// Reads and checks a configuration file.
fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let place = e.span().map_or(String::new(), |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" at line {line}, column {column}")
        });
        anyhow::anyhow!(
            "configuration file {}{place}: {}",
            path.display(),
            e.message().trim()
        )
    })
}

fn token(t: &TokenConfig, tenant: &Tenant) -> anyhow::Result<String> {
    let value = match (&t.env, &t.file) {
        (Some(var), None) => std::env::var(var).with_context(|| {
            format!("tokens: the token of tenant {tenant} is in ${var}, which is not set")
        })?,
        (None, Some(file)) => std::fs::read_to_string(file).with_context(|| {
            format!(
                "tokens: reading the token of tenant {tenant} from {}",
                file.display()
            )
        })?,
        _ => bail!(
            "tokens: the token of tenant {tenant} needs exactly one of `env` (a variable's \
             name) or `file` (a path); tokens are never written in the configuration itself"
        ),
    };
    let value = value.trim().to_owned();
    if value.len() < 16 {
        bail!("tokens: the token of tenant {tenant} is shorter than 16 characters");
    }
    Ok(value)
}

impl Settings {
    /// Flags and variables over the file over the defaults.
    pub(crate) fn resolve(global: &Global) -> anyhow::Result<Self> {
        let file = match &global.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let (tenants, tokens) =
            tenants_and_tokens(&file).with_context(|| match &global.config {
                Some(path) => format!("configuration file {}", path.display()),
                None => "configuration".to_owned(),
            })?;
        let data_dir = global
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let http = match global.http.or(file.http) {
            Some(a) => a,
            None => DEFAULT_HTTP.parse().expect("valid default address"),
        };
        let bus = global
            .bus
            .clone()
            .or(file.bus)
            .unwrap_or_else(|| format!("embedded://{}", data_dir.join("bus").display()));
        let meta = global
            .meta
            .clone()
            .or(file.meta)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("meta.db").display()));
        let blobs =
            global.blobs.clone().or(file.blobs).unwrap_or_else(|| {
                format!("file://{}", absolute(&data_dir.join("blobs")).display())
            });

        let place = || match &global.config {
            Some(path) => format!("configuration file {}", path.display()),
            None => "configuration".to_owned(),
        };
        let ingest = file.ingest;
        ingest.validate().with_context(place)?;
        let supervisor = file.supervisor;
        supervisor.validate().with_context(place)?;
        let trainer = file.trainer;
        trainer.validate().with_context(place)?;
        let sources = file.sources;
        sources.validate().with_context(place)?;

        Ok(Self {
            data_dir,
            bus,
            meta,
            blobs,
            http,
            tenants,
            tokens,
            ingest,
            supervisor,
            trainer,
            sources,
        })
    }
}

/// The tenants whose topics exist from start-up, and the tokens, checked.
type Tokens = Vec<(String, Tenant)>;

fn tenants_and_tokens(file: &FileConfig) -> anyhow::Result<(Vec<Tenant>, Tokens)> {
    let mut tenants = vec![];
    for name in &file.tenants {
        let t = Tenant::new(name).context("tenants")?;
        if !tenants.contains(&t) {
            tenants.push(t);
        }
    }
    let mut tokens: Vec<(String, Tenant)> = Vec::new();
    for t in &file.tokens {
        let tenant = Tenant::new(&t.tenant).context("tokens")?;
        let value = token(t, &tenant)?;
        if tokens.iter().any(|(v, _)| *v == value) {
            bail!("tokens: two tenants have the same token (tenant {tenant})");
        }
        if !tenants.contains(&tenant) {
            tenants.push(tenant.clone());
        }
        tokens.push((value, tenant));
    }
    if tokens.is_empty() && !tenants.contains(&Tenant::default_tenant()) {
        tenants.insert(0, Tenant::default_tenant());
    }
    Ok((tenants, tokens))
}

/// `path` made absolute against the current directory (a `file://` URL needs one).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn settings(config: &str, args: &[&str]) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flywheel.toml");
        std::fs::write(&path, config).unwrap();
        let mut argv = vec!["flywheel", "--config", path.to_str().unwrap()];
        argv.extend_from_slice(args);
        argv.push("topics");
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        Settings::resolve(&cli.global)
    }

    fn err(config: &str) -> String {
        let e = settings(config, &[]).unwrap_err();
        e.chain()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ")
    }

    #[test]
    fn defaults_live_under_the_data_dir() {
        let s = settings("", &["--data-dir", "/srv/fw"]).unwrap();
        assert_eq!(s.bus, "embedded:///srv/fw/bus");
        assert_eq!(s.meta, "sqlite:///srv/fw/meta.db");
        assert_eq!(s.blobs, "file:///srv/fw/blobs");
        assert_eq!(s.http.to_string(), DEFAULT_HTTP);
        assert_eq!(s.tenants, vec![Tenant::default_tenant()]);
        assert!(s.tokens.is_empty());
    }

    #[test]
    fn flags_override_the_file() {
        let s = settings(
            "bus = \"kafka://k:9092\"\nhttp = \"0.0.0.0:9000\"\nmeta = \"sqlite://m.db\"",
            &["--http", "127.0.0.1:7000"],
        )
        .unwrap();
        assert_eq!(s.bus, "kafka://k:9092");
        assert_eq!(s.http.to_string(), "127.0.0.1:7000");
        assert_eq!(s.meta, "sqlite://m.db");
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = err("bus = \"embedded://x\"\nbuss = \"kafka://typo\"\n");
        assert!(e.contains("unknown field `buss`"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = err("[[tokens]]\ntenant = \"acme\"\ntoken = \"inline-secret-value\"\n");
        assert!(e.contains("unknown field `token`"), "{e}");
        assert!(!e.contains("inline-secret-value"), "{e}");
    }

    #[test]
    fn values_of_the_wrong_type_are_refused_with_their_place() {
        let e = err("http = 8480\n");
        assert!(e.contains("line 1"), "{e}");
        assert!(
            e.contains("http") || e.contains("socket address") || e.contains("invalid type"),
            "{e}"
        );
        let e = err("tenants = \"acme\"\n");
        assert!(e.contains("invalid type"), "{e}");
        let e = err("bus = [\n");
        assert!(e.contains("configuration file"), "{e}");
    }

    #[test]
    fn the_sources_section_is_read_and_checked() {
        let s = settings(
            "[sources.crm]\nkind = \"postgres\"\ntenants = [\"acme\"]\nurl_env = \"CRM_URL\"\n",
            &[],
        )
        .unwrap();
        assert!(s.sources.0.contains_key("crm"));
        for (text, want) in [
            (
                "[sources.crm]\nkind = \"mysql\"\ntenants = [\"a\"]\nurl_env = \"X\"\n",
                "mysql",
            ),
            (
                "[sources.crm]\nkind = \"postgres\"\ntenants = [\"a\"]\n",
                "crm",
            ),
            (
                "[sources.crm]\nkind = \"postgres\"\ntenants = [\"a\"]\nurl = \"postgres://x\"\n",
                "url",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn the_supervisor_section_is_read_and_checked() {
        let s = settings(
            "[supervisor]\nrescan = \"1s\"\ncheckpoint_every = \"10m\"\ntenants = [\"acme\"]\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.supervisor.rescan, std::time::Duration::from_secs(1));
        assert_eq!(
            s.supervisor.checkpoint_every,
            std::time::Duration::from_secs(600)
        );
        assert_eq!(s.supervisor.tenants, ["acme"]);
        let e = err("[supervisor]\nrescn = \"1s\"\n");
        assert!(e.contains("unknown field `rescn`"), "{e}");
        let e = err("[supervisor]\nrescan = \"0s\"\n");
        assert!(
            e.contains("supervisor.rescan: must be at least 10ms"),
            "{e}"
        );
        let e = err("[supervisor]\ncheckpoint_every = 5\n");
        assert!(e.contains("invalid type"), "{e}");
        let e = err("[supervisor]\ntenants = [\"Not One\"]\n");
        assert!(e.contains("supervisor.tenants"), "{e}");
    }

    #[test]
    fn the_trainer_section_is_read_and_checked() {
        let s = settings(
            "[trainer]\nworkers = 2\nprefetch = 3\ncache_bytes = 1048576\ntenants = [\"acme\"]\n",
            &[],
        )
        .unwrap();
        assert_eq!((s.trainer.workers, s.trainer.prefetch), (2, 3));
        assert_eq!(s.trainer.cache_bytes, 1 << 20);
        let e = err("[trainer]\nworker = 2\n");
        assert!(e.contains("unknown field `worker`"), "{e}");
        let e = err("[trainer]\nworkers = 0\n");
        assert!(e.contains("trainer.workers: must be 1 to 256"), "{e}");
        let e = err("[trainer]\ncache_bytes = \"lots\"\n");
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn the_ingest_section_is_read_and_checked() {
        let s = settings(
            "[ingest]\nchangeset_samples = 7\nchangeset_age = \"2s\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.ingest.changeset_samples, 7);
        assert_eq!(s.ingest.changeset_age, std::time::Duration::from_secs(2));
        let e = err("[ingest]\nchangeset_sample = 7\n");
        assert!(e.contains("unknown field `changeset_sample`"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = err("[ingest]\nchangeset_samples = \"many\"\n");
        assert!(e.contains("invalid type"), "{e}");
        let e = err("[ingest]\nchangeset_samples = 0\n");
        assert!(
            e.contains("ingest.changeset_samples: must be at least 1"),
            "{e}"
        );
        let e = err("[ingest]\nchangeset_age = \"soon\"\n");
        assert!(e.contains("\"soon\" is not a duration"), "{e}");
    }

    #[test]
    fn tenants_and_tokens_are_checked() {
        let e = err("tenants = [\"Not Valid\"]\n");
        assert!(e.contains("invalid tenant name \"Not Valid\""), "{e}");
        let e = err("[[tokens]]\ntenant = \"acme\"\n");
        assert!(e.contains("exactly one of `env`"), "{e}");
        let e = err("[[tokens]]\ntenant = \"acme\"\nenv = \"FLYWHEEL_TEST_UNSET_TOKEN_VAR\"\n");
        assert!(e.contains("FLYWHEEL_TEST_UNSET_TOKEN_VAR"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.token");
        std::fs::write(&a, "  0123456789abcdef-acme\n").unwrap();
        let short = dir.path().join("short.token");
        std::fs::write(&short, "abc").unwrap();
        let cfg = format!(
            "tenants = [\"extra\"]\n[[tokens]]\ntenant = \"acme\"\nfile = {:?}\n",
            a.display().to_string()
        );
        let s = settings(&cfg, &[]).unwrap();
        assert_eq!(s.tokens.len(), 1);
        assert_eq!(s.tokens[0].0, "0123456789abcdef-acme");
        let names: Vec<&str> = s.tenants.iter().map(Tenant::as_str).collect();
        assert_eq!(
            names,
            ["extra", "acme"],
            "no open default tenant once tokens exist"
        );
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
        let e = err(&format!(
            "[[tokens]]\ntenant = \"acme\"\nfile = {:?}\n",
            short.display().to_string()
        ));
        assert!(e.contains("shorter than 16"), "{e}");
        let e = err(&format!(
            "[[tokens]]\ntenant = \"acme\"\nfile = {0:?}\n[[tokens]]\ntenant = \"globex\"\nfile = {0:?}\n",
            a.display().to_string()
        ));
        assert!(e.contains("same token"), "{e}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let cli = crate::cli::Cli::try_parse_from([
            "flywheel",
            "--config",
            "/nonexistent/fw.toml",
            "topics",
        ])
        .unwrap();
        let e = Settings::resolve(&cli.global).unwrap_err();
        let msg = e
            .chain()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ");
        assert!(msg.contains("/nonexistent/fw.toml"), "{msg}");
    }
}
