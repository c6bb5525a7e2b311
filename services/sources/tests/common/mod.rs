//! Helpers shared by the sources' test suites.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::time::Duration;

use flywheel_schemas::RestrictedQuery;
use flywheel_sources::{SourceConfig, SourceError, SourceKind, Sources, SourcesConfig};
use flywheel_topics::Tenant;
use futures::TryStreamExt;

/// The PostgreSQL server under test: `FLYWHEEL_TEST_POSTGRES=postgres://USER:PASSWORD@HOST:PORT/DB`
/// (`scripts/with-postgres.sh` starts a throwaway one and sets it). Without it the test is
/// skipped with a printed reason, unless `FLYWHEEL_REQUIRE_POSTGRES=1` makes that a failure.
pub fn postgres_url() -> Option<String> {
    match std::env::var("FLYWHEEL_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("FLYWHEEL_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "FLYWHEEL_REQUIRE_POSTGRES=1 but FLYWHEEL_TEST_POSTGRES is not set"
            );
            eprintln!(
                "skipped: FLYWHEEL_TEST_POSTGRES is not set; run the test under \
                 scripts/with-postgres.sh (it starts a throwaway PostgreSQL server)"
            );
            None
        }
    }
}

/// The password in a URL (what must never show up in a message).
pub fn password(url: &str) -> String {
    url::Url::parse(url)
        .expect("FLYWHEEL_TEST_POSTGRES is a URL")
        .password()
        .expect("FLYWHEEL_TEST_POSTGRES has a password")
        .to_owned()
}

/// A name no other test (or earlier run against the same server) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{:08x}", rand::random::<u32>())
}

pub fn tenant(name: &str) -> Tenant {
    Tenant::new(name).expect("valid tenant")
}

/// A session of the test's own, to create and drop tables.
pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(connection);
    client
}

/// A source named `name` for `tenants`, its URL in a file under `dir`.
pub fn source_config(dir: &Path, name: &str, url: &str, tenants: &[&str]) -> SourceConfig {
    let file = dir.join(format!("{name}.url"));
    std::fs::write(&file, url).expect("write url file");
    SourceConfig::from_file(SourceKind::Postgres, tenants, file)
}

/// Sources with one source `crm` of tenant `acme` at `url`, with `statement_timeout` and
/// `connect_timeout`.
pub fn crm(
    dir: &Path,
    url: &str,
    statement_timeout: Duration,
    connect_timeout: Duration,
) -> Sources {
    let mut config = SourcesConfig::default();
    let mut source = source_config(dir, "crm", url, &["acme"]);
    source.statement_timeout = statement_timeout;
    source.connect_timeout = connect_timeout;
    config.0.insert("crm".into(), source);
    Sources::open(&config).expect("open sources")
}

pub fn query(sql: &str, label: Option<&str>, features: &[&str]) -> RestrictedQuery {
    RestrictedQuery {
        source: "crm".into(),
        sql: sql.into(),
        label_column: label.map(Into::into),
        feature_columns: features.iter().map(|f| (*f).to_owned()).collect(),
    }
}

/// Every row as `(index, label, features)`, or the first error.
pub async fn fetch_all(
    sources: &Sources,
    q: &RestrictedQuery,
) -> Result<Vec<(u64, Option<String>, Vec<f64>)>, SourceError> {
    let source = sources.get(&tenant("acme"), &q.source)?;
    let rows = source.fetch(q).await?;
    let rows: Vec<_> = rows.try_collect().await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.index, r.label, r.features))
        .collect())
}

/// Neither the error's message nor its `Debug` holds any of `secrets`.
pub fn assert_hides(err: &SourceError, secrets: &[&str]) {
    let text = format!("{err} / {err:?}");
    for s in secrets {
        assert!(!text.contains(s), "{s:?} shows in {text}");
    }
}
