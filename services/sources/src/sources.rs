//! The configured sources, opened: credentials read, URLs parsed, tenants attached.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use flywheel_schemas::RestrictedQuery;
use flywheel_topics::Tenant;
use tokio_postgres::config::{Host, SslMode};

use crate::SourceError;
use crate::config::{SourceConfig, SourceKind, SourcesConfig};
use crate::postgres;
use crate::rows::RestrictedRows;
use crate::secret::Secret;
use crate::shape::QueryShape;

/// Every configured source, ready to use. Opening reads each source's connection URL from
/// its variable or file; no connection is made until a query is checked or fetched.
#[derive(Clone, Default)]
pub struct Sources {
    by_name: BTreeMap<String, Source>,
}

impl Sources {
    /// Validates the configuration, reads every source's connection URL and parses it. An
    /// error names the source and the variable or file, never the URL.
    pub fn open(config: &SourcesConfig) -> Result<Self, SourceError> {
        config.validate()?;
        let by_name = config
            .0
            .iter()
            .map(|(name, source)| Ok((name.clone(), Source::open(name, source)?)))
            .collect::<Result<_, SourceError>>()?;
        Ok(Self { by_name })
    }

    /// The source `name` of `tenant`. A source that exists but is not the tenant's gives the
    /// same error as one that does not exist.
    pub fn get(&self, tenant: &Tenant, name: &str) -> Result<&Source, SourceError> {
        self.by_name
            .get(name)
            .filter(|s| s.0.tenants.contains(tenant))
            .ok_or_else(|| SourceError::UnknownSource {
                tenant: tenant.to_string(),
                name: name.to_owned(),
            })
    }

    /// The names of the sources `tenant` may use, in order.
    pub fn names(&self, tenant: &Tenant) -> Vec<&str> {
        self.by_name
            .iter()
            .filter(|(_, s)| s.0.tenants.contains(tenant))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Whether no source is configured.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(&self.by_name).finish()
    }
}

/// One source (cheap to clone). Each [`check`](Source::check) and [`fetch`](Source::fetch)
/// opens a session of its own, without TLS, with the source's statement timeout, and runs
/// the SQL in a `READ ONLY` transaction that is rolled back at the end.
#[derive(Clone)]
pub struct Source(Arc<SourceInner>);

/// What a source needs to connect.
pub(crate) struct SourceInner {
    pub(crate) name: String,
    pub(crate) kind: SourceKind,
    pub(crate) tenants: Vec<Tenant>,
    /// The URL as read; kept only to scrub it from messages.
    pub(crate) url: Secret,
    /// The password in it, if any; kept only to scrub it from messages.
    pub(crate) password: Option<Secret>,
    /// Parsed from `url`; holds the password.
    pub(crate) pg: tokio_postgres::Config,
    /// `host:port` (all of them, comma-separated), for messages.
    pub(crate) address: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) statement_timeout: Duration,
}

impl SourceInner {
    /// `text` without the URL or the password in it.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let text = self.url.scrub(text);
        match &self.password {
            Some(p) => p.scrub(&text),
            None => text,
        }
    }
}

impl Source {
    fn open(name: &str, config: &SourceConfig) -> Result<Self, SourceError> {
        let url = read_url(name, config)?;
        let invalid = |reason: String| SourceError::InvalidUrl {
            name: name.to_owned(),
            reason: url.scrub(&reason),
        };
        let mut pg = tokio_postgres::Config::from_str(url.expose())
            .map_err(|e| invalid(postgres::chain(&e)))?;
        match pg.get_ssl_mode() {
            SslMode::Disable | SslMode::Prefer => {}
            mode => {
                return Err(SourceError::TlsNotSupported {
                    name: name.to_owned(),
                    mode: format!("{mode:?}").to_lowercase(),
                });
            }
        }
        let address = address(&pg).ok_or_else(|| invalid("it names no host".into()))?;
        let password = pg
            .get_password()
            .map(|p| Secret::new(String::from_utf8_lossy(p)));
        pg.connect_timeout(config.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("flywheel");
        }
        Ok(Self(Arc::new(SourceInner {
            name: name.to_owned(),
            kind: config.kind,
            tenants: config.parsed_tenants(name)?,
            url,
            password,
            pg,
            address,
            connect_timeout: config.connect_timeout,
            statement_timeout: config.statement_timeout,
        })))
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The server's `host:port`, as errors name it.
    pub fn address(&self) -> &str {
        &self.0.address
    }

    /// Checks a query when its changeset is created, without fetching a row: the server
    /// prepares the statement and plans it (`EXPLAIN`, which also checks the role's
    /// permissions) in a `READ ONLY` transaction. Refused: SQL the server rejects, a
    /// statement that writes (also inside a `WITH`), one with parameters, and label or
    /// feature columns that are not result columns of the statement or have a type that
    /// cannot serve (label: text, varchar, char, int2/4/8, bool; features: int2/4/8,
    /// float4/8, numeric). See [`QueryShape::ordered`] for a query without `ORDER BY`.
    #[tracing::instrument(skip_all, fields(source = %self.0.name))]
    pub async fn check(&self, query: &RestrictedQuery) -> Result<QueryShape, SourceError> {
        postgres::check(&self.0, query).await
    }

    /// Streams a query's rows while a training set is read: the statement is checked as by
    /// [`check`](Source::check) (without the plan), then run in a `READ ONLY` transaction
    /// (a statement that writes is refused by the server) through a server-side portal
    /// read [`FETCH_ROWS`](crate::FETCH_ROWS) rows at a time, so memory stays bounded
    /// however many rows there are. Rows come in the order of the SQL's `ORDER BY`; without
    /// one, in no stable order. The statement timeout bounds each batch, not the time the
    /// reader takes. Connection and statement errors are returned here; errors while rows
    /// are read are the stream's last item. Dropping the stream ends the session.
    #[tracing::instrument(skip_all, fields(source = %self.0.name))]
    pub async fn fetch(&self, query: &RestrictedQuery) -> Result<RestrictedRows, SourceError> {
        postgres::fetch(Arc::clone(&self.0), query.clone()).await
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        f.debug_struct("Source")
            .field("name", &s.name)
            .field("kind", &s.kind)
            .field("tenants", &s.tenants)
            .field("address", &s.address)
            .field("url", &s.url)
            .field("connect_timeout", &s.connect_timeout)
            .field("statement_timeout", &s.statement_timeout)
            .finish()
    }
}

/// The connection URL from the source's variable or file, trimmed.
fn read_url(name: &str, config: &SourceConfig) -> Result<Secret, SourceError> {
    let fail = |from: String, reason: String| SourceError::Credentials {
        name: name.to_owned(),
        from,
        reason,
    };
    let (from, value) = match (&config.url_env, &config.url_file) {
        (Some(var), None) => {
            let from = format!("${var}");
            match std::env::var(var) {
                Ok(v) => (from, v),
                Err(std::env::VarError::NotPresent) => {
                    return Err(fail(from, "the variable is not set".into()));
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(fail(from, "the variable's value is not UTF-8".into()));
                }
            }
        }
        (None, Some(file)) => {
            let from = file.display().to_string();
            match std::fs::read_to_string(file) {
                Ok(v) => (from, v),
                Err(e) => return Err(fail(from, e.to_string())),
            }
        }
        // `validate` refused the other combinations.
        _ => {
            return Err(SourceError::Config {
                setting: format!("sources.{name}.url_env"),
                reason: "exactly one of `url_env` or `url_file` is needed".into(),
            });
        }
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(fail(from, "it is empty".into()));
    }
    Ok(Secret::new(value))
}

/// `host:port[,host:port...]` of a connection config, or `None` if it names no host.
fn address(pg: &tokio_postgres::Config) -> Option<String> {
    let ports = pg.get_ports();
    let port = |i: usize| match ports {
        [] => 5432,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(5432),
    };
    let hosts: Vec<String> = if pg.get_hosts().is_empty() {
        pg.get_hostaddrs().iter().map(ToString::to_string).collect()
    } else {
        pg.get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(dir) => dir.display().to_string(),
            })
            .collect()
    };
    if hosts.is_empty() {
        return None;
    }
    Some(
        hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                if h.contains(':') && !h.starts_with('/') {
                    format!("[{h}]:{}", port(i))
                } else {
                    format!("{h}:{}", port(i))
                }
            })
            .collect::<Vec<_>>()
            .join(","),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceKind;

    const URL: &str = "postgres://reader:pw-Tr0ub4dor-3@db.internal:6543/crm";

    fn open_with(url: &str) -> (tempfile::TempDir, Result<Sources, SourceError>) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("crm.url");
        std::fs::write(&file, format!("{url}\n")).unwrap();
        let mut config = SourcesConfig::default();
        config.0.insert(
            "crm".into(),
            SourceConfig::from_file(SourceKind::Postgres, &["acme"], &file),
        );
        let sources = Sources::open(&config);
        (dir, sources)
    }

    #[test]
    fn opens_and_never_shows_the_url() {
        let (_dir, sources) = open_with(URL);
        let sources = sources.unwrap();
        let acme = Tenant::new("acme").unwrap();
        let crm = sources.get(&acme, "crm").unwrap();
        assert_eq!(crm.address(), "db.internal:6543");
        assert_eq!(sources.names(&acme), ["crm"]);
        let debug = format!("{sources:?} {crm:?}");
        assert!(!debug.contains("pw-Tr0ub4dor-3"), "{debug}");
        assert!(!debug.contains("postgres://"), "{debug}");
        assert!(debug.contains("url: [redacted]"), "{debug}");
        assert!(debug.contains("db.internal:6543"), "{debug}");
        assert_eq!(crm.0.scrub(&format!("a {URL} b")), "a [redacted] b");
        assert_eq!(crm.0.scrub("bad pw-Tr0ub4dor-3!"), "bad [redacted]!");
    }

    #[test]
    fn another_tenants_source_does_not_exist() {
        let (_dir, sources) = open_with(URL);
        let sources = sources.unwrap();
        let globex = Tenant::new("globex").unwrap();
        let theirs = sources.get(&globex, "crm").unwrap_err().to_string();
        let missing = sources.get(&globex, "hr").unwrap_err().to_string();
        assert_eq!(theirs, "no source named \"crm\" for tenant globex");
        assert_eq!(missing, "no source named \"hr\" for tenant globex");
        assert!(sources.names(&globex).is_empty());
    }

    #[test]
    fn tls_is_refused_by_name() {
        let (_dir, sources) = open_with(&format!("{URL}?sslmode=require"));
        let err = sources.unwrap_err();
        assert!(
            matches!(err, SourceError::TlsNotSupported { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("source crm: the connection url asks for sslmode=require, but TLS to sources is not supported yet"), "{msg}");
        assert!(!format!("{msg} {err:?}").contains("Tr0ub4dor"), "{msg}");
        let (_dir, sources) = open_with(&format!("{URL}?sslmode=disable"));
        sources.unwrap();
    }

    #[test]
    fn bad_urls_are_refused_without_quoting_them() {
        for url in [
            "postgres://reader:pw-Tr0ub4dor-3@db.internal:port/crm",
            "postgres://reader:pw-Tr0ub4dor-3@db.internal/crm?nonsense=1",
            "reader:pw-Tr0ub4dor-3",
        ] {
            let (_dir, sources) = open_with(url);
            let err = sources.unwrap_err();
            assert!(matches!(err, SourceError::InvalidUrl { .. }), "{err:?}");
            let text = format!("{err} {err:?}");
            assert!(
                text.starts_with("source crm: invalid connection url"),
                "{text}"
            );
            assert!(!text.contains("Tr0ub4dor"), "{text}");
        }
        let (_dir, sources) = open_with("user=reader password=pw-Tr0ub4dor-3");
        let text = sources.unwrap_err().to_string();
        assert!(text.contains("it names no host"), "{text}");
        assert!(!text.contains("Tr0ub4dor"), "{text}");
    }

    #[test]
    fn missing_credentials_name_the_variable_or_file() {
        let mut config = SourcesConfig::default();
        let var = format!("FLYWHEEL_TEST_UNSET_{:08x}", rand::random::<u32>());
        config.0.insert(
            "crm".into(),
            SourceConfig::from_env(SourceKind::Postgres, &["acme"], &var),
        );
        let err = Sources::open(&config).unwrap_err();
        assert!(matches!(err, SourceError::Credentials { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "source crm: cannot read the connection url from ${var}: the variable is not set"
            )
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("missing.url");
        config.0.insert(
            "crm".into(),
            SourceConfig::from_file(SourceKind::Postgres, &["acme"], &file),
        );
        let err = Sources::open(&config).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "source crm: cannot read the connection url from {}: ",
                file.display()
            )),
            "{err}"
        );
        std::fs::write(&file, " \n").unwrap();
        let err = Sources::open(&config).unwrap_err().to_string();
        assert!(err.ends_with(": it is empty"), "{err}");
    }

    #[test]
    fn addresses_for_messages() {
        let parse = |s: &str| address(&tokio_postgres::Config::from_str(s).unwrap());
        assert_eq!(parse("postgres://u@h/db").as_deref(), Some("h:5432"));
        assert_eq!(parse("postgres://u@a:1,b:2/db").as_deref(), Some("a:1,b:2"));
        assert_eq!(parse("postgres://u@[::1]:7/db").as_deref(), Some("[::1]:7"));
        assert_eq!(
            parse("host=/run/postgresql user=u").as_deref(),
            Some("/run/postgresql:5432")
        );
        assert_eq!(parse("user=u"), None);
    }
}
