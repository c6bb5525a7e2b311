//! The `[sources.NAME]` tables of flywheel's configuration file.
//!
//! ```toml
//! [sources.crm]
//! kind = "postgres"
//! tenants = ["acme"]
//! url_env = "CRM_DATABASE_URL"    # or url_file = "/run/secrets/crm"
//! connect_timeout = "5s"
//! statement_timeout = "60s"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use flywheel_schemas::MAX_DATASET_LEN;
use flywheel_topics::Tenant;
use serde::Deserialize;

use crate::SourceError;

/// Default of `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of `statement_timeout`.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Every configured source by name (`[sources.NAME]`), as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SourcesConfig(pub BTreeMap<String, SourceConfig>);

/// The kind of server a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A PostgreSQL server (or one speaking its protocol), reached without TLS.
    Postgres,
}

/// One source, `[sources.NAME]`. The connection URL (with its password) is never written
/// in the file: it comes from a variable (`url_env`) or a file (`url_file`), read when the
/// sources are opened.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The kind of server; `postgres` is the only one for now.
    pub kind: SourceKind,
    /// The tenants allowed to query it (at least one).
    pub tenants: Vec<String>,
    /// Name of the environment variable holding the connection URL ...
    #[serde(default)]
    pub url_env: Option<String>,
    /// ... or file holding it (surrounding whitespace ignored); exactly one of the two.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// How long connecting (and logging in) may take.
    #[serde(
        default = "default_connect_timeout",
        with = "flywheel_schemas::duration_text"
    )]
    pub connect_timeout: Duration,
    /// The server cancels a statement running longer (set on each session); while rows are
    /// streamed it bounds the server's time for each batch of rows, not the reader's.
    #[serde(
        default = "default_statement_timeout",
        with = "flywheel_schemas::duration_text"
    )]
    pub statement_timeout: Duration,
}

fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}

fn default_statement_timeout() -> Duration {
    DEFAULT_STATEMENT_TIMEOUT
}

impl SourceConfig {
    /// A source of `kind` for `tenants` whose URL is in the variable `url_env`, with the
    /// default timeouts.
    pub fn from_env(kind: SourceKind, tenants: &[&str], url_env: &str) -> Self {
        Self {
            kind,
            tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
            url_env: Some(url_env.to_owned()),
            url_file: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }

    /// A source of `kind` for `tenants` whose URL is in the file `url_file`, with the
    /// default timeouts.
    pub fn from_file(kind: SourceKind, tenants: &[&str], url_file: impl Into<PathBuf>) -> Self {
        Self {
            kind,
            tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
            url_env: None,
            url_file: Some(url_file.into()),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }

    /// The tenants, validated; an error names the setting.
    pub(crate) fn parsed_tenants(&self, name: &str) -> Result<Vec<Tenant>, SourceError> {
        let setting = || format!("sources.{name}.tenants");
        if self.tenants.is_empty() {
            return Err(SourceError::Config {
                setting: setting(),
                reason: "must name at least one tenant".into(),
            });
        }
        self.tenants
            .iter()
            .map(|t| {
                Tenant::new(t).map_err(|e| SourceError::Config {
                    setting: setting(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Checks the values; an error names the setting.
    pub fn validate(&self, name: &str) -> Result<(), SourceError> {
        let bad = |key: &str, reason: String| {
            Err(SourceError::Config {
                setting: format!("sources.{name}.{key}"),
                reason,
            })
        };
        if let Err(reason) = check_source_name(name) {
            return Err(SourceError::Config {
                setting: format!("sources.{name}"),
                reason,
            });
        }
        self.parsed_tenants(name)?;
        match (&self.url_env, &self.url_file) {
            (Some(var), None) => {
                if var.is_empty() || var.contains(['=', '\0']) {
                    return bad(
                        "url_env",
                        format!("{var:?} is not the name of an environment variable"),
                    );
                }
            }
            (None, Some(file)) => {
                if file.as_os_str().is_empty() {
                    return bad("url_file", "must not be empty".into());
                }
            }
            _ => {
                return bad(
                    "url_env",
                    "exactly one of `url_env` (a variable's name) or `url_file` (a path) is \
                     needed; the connection url is never written in the configuration itself"
                        .into(),
                );
            }
        }
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout", "must be longer than 0s".into());
        }
        if self.statement_timeout < Duration::from_millis(1) {
            return bad("statement_timeout", "must be at least 1ms".into());
        }
        if self.statement_timeout.as_millis() > i32::MAX as u128 {
            return bad(
                "statement_timeout",
                format!(
                    "{} is longer than the server allows (about 24 days)",
                    humantime::format_duration(self.statement_timeout)
                ),
            );
        }
        Ok(())
    }
}

impl SourcesConfig {
    /// Checks every source; an error names the setting.
    pub fn validate(&self) -> Result<(), SourceError> {
        self.0
            .iter()
            .try_for_each(|(name, source)| source.validate(name))
    }
}

/// A source name follows the rule of dataset names: 1 to [`MAX_DATASET_LEN`] characters of
/// `[A-Za-z0-9_.-]`.
pub fn check_source_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a source name must not be empty".into());
    }
    let len = name.chars().count();
    if len > MAX_DATASET_LEN {
        return Err(format!(
            "the source name is {len} characters long, at most {MAX_DATASET_LEN} are allowed"
        ));
    }
    if let Some((i, c)) = name
        .chars()
        .enumerate()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "the source name has `{}` at character {i}; allowed are A-Z a-z 0-9 _ . -",
            c.escape_default()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SourcesConfig, String> {
        toml::from_str::<SourcesConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_with_defaults() {
        let c = parse(
            "[crm]\nkind = \"postgres\"\ntenants = [\"acme\"]\nurl_env = \"CRM_DATABASE_URL\"\n\
             [files]\nkind = \"postgres\"\ntenants = [\"acme\", \"globex\"]\n\
             url_file = \"/run/secrets/files\"\nconnect_timeout = \"250ms\"\n\
             statement_timeout = \"2m\"",
        )
        .unwrap();
        c.validate().unwrap();
        let crm = &c.0["crm"];
        assert_eq!(crm.kind, SourceKind::Postgres);
        assert_eq!(crm.url_env.as_deref(), Some("CRM_DATABASE_URL"));
        assert_eq!(crm.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(crm.statement_timeout, DEFAULT_STATEMENT_TIMEOUT);
        let files = &c.0["files"];
        assert_eq!(files.connect_timeout, Duration::from_millis(250));
        assert_eq!(files.statement_timeout, Duration::from_secs(120));
        assert_eq!(files.tenants, ["acme", "globex"]);
    }

    #[test]
    fn refuses_unknown_kinds_keys_and_durations_by_name() {
        let base = "[crm]\ntenants = [\"acme\"]\nurl_env = \"X\"\n";
        let err = parse(&format!("{base}kind = \"mysql\"")).unwrap_err();
        assert!(
            err.contains("unknown variant `mysql`, expected `postgres`"),
            "{err}"
        );
        let err = parse(&format!(
            "{base}kind = \"postgres\"\nurl = \"postgres://x\""
        ))
        .unwrap_err();
        assert!(err.contains("unknown field `url`"), "{err}");
        let err = parse(&format!(
            "{base}kind = \"postgres\"\nconnect_timeout = \"soon\""
        ))
        .unwrap_err();
        assert!(err.contains("\"soon\" is not a duration"), "{err}");
        let err = parse("[crm]\nkind = \"postgres\"\nurl_env = \"X\"").unwrap_err();
        assert!(err.contains("missing field `tenants`"), "{err}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let ok = SourceConfig::from_env(SourceKind::Postgres, &["acme"], "CRM_URL");
        ok.validate("crm").unwrap();
        let cases: Vec<(&str, SourceConfig, &str)> = vec![
            (
                "crm",
                SourceConfig {
                    tenants: vec![],
                    ..ok.clone()
                },
                "sources.crm.tenants: must name at least one tenant",
            ),
            (
                "crm",
                SourceConfig {
                    tenants: vec!["Acme!".into()],
                    ..ok.clone()
                },
                "sources.crm.tenants",
            ),
            (
                "crm",
                SourceConfig {
                    url_file: Some("/run/secrets/crm".into()),
                    ..ok.clone()
                },
                "sources.crm.url_env: exactly one of",
            ),
            (
                "crm",
                SourceConfig {
                    url_env: None,
                    ..ok.clone()
                },
                "sources.crm.url_env: exactly one of",
            ),
            (
                "crm",
                SourceConfig {
                    url_env: Some("A=B".into()),
                    ..ok.clone()
                },
                "sources.crm.url_env",
            ),
            (
                "crm",
                SourceConfig {
                    connect_timeout: Duration::ZERO,
                    ..ok.clone()
                },
                "sources.crm.connect_timeout",
            ),
            (
                "crm",
                SourceConfig {
                    statement_timeout: Duration::from_micros(10),
                    ..ok.clone()
                },
                "sources.crm.statement_timeout",
            ),
            (
                "crm",
                SourceConfig {
                    statement_timeout: Duration::from_secs(60 * 60 * 24 * 30),
                    ..ok.clone()
                },
                "sources.crm.statement_timeout",
            ),
            (
                "c r m",
                ok.clone(),
                "sources.c r m: the source name has ` `",
            ),
            ("", ok, "must not be empty"),
        ];
        for (name, config, expected) in cases {
            let err = config.validate(name).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }
}
