//! `sqlite://FILE`: the embedded metadata store.
//!
//! `FILE` is the store's catalogue (its schema version and its tenants); each tenant's data
//! is a database of its own beside it, `<dir>/<stem>.<tenant>.db` (`meta.db` ->
//! `meta.default.db`), so no query can reach across tenants. Every file runs in WAL mode:
//! one writer and any number of readers at once. Layout and reasons:
//! services/store/README.md.

mod db;
mod index;
mod records;
mod schema;
mod tenant;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flywheel_topics::Tenant;
use rusqlite::OptionalExtension;

pub use db::CONNECTION_PRAGMAS;
use db::{Db, Options, blocking};
use tenant::SqliteTenant;

use crate::{MetaStore, StoreError, TenantStore};

/// The URL's query parameters and what they mean.
const PARAMETERS: &str = "busy_timeout=DURATION (default 5s), readers=N (default 4)";

/// The SQLite metadata store.
#[derive(Debug)]
pub struct SqliteStore {
    url: String,
    path: PathBuf,
    opts: Options,
    catalogue: Arc<Db>,
    tenants: tokio::sync::Mutex<HashMap<Tenant, Arc<SqliteTenant>>>,
}

impl SqliteStore {
    /// Opens `sqlite://PATH[?busy_timeout=5s&readers=4]`: creates the directory and the
    /// catalogue if missing, runs pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let (path, opts) = parse_url(url)?;
        let catalogue = {
            let (path, opts) = (path.clone(), opts.clone());
            tokio::task::spawn_blocking(move || {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| StoreError::Unreachable {
                        what: path.display().to_string(),
                        reason: format!("cannot create directory {}: {e}", dir.display()),
                    })?;
                }
                Db::open(&path, &schema::CATALOGUE, &opts)
            })
            .await
            .expect("opening the metadata store panicked")?
        };
        Ok(Self {
            url: url.to_owned(),
            path,
            opts,
            catalogue: Arc::new(catalogue),
            tenants: tokio::sync::Mutex::default(),
        })
    }

    /// The catalogue file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database file of a tenant: `<dir>/<stem>.<tenant>.db`.
    pub fn tenant_path(&self, tenant: &Tenant) -> PathBuf {
        let stem = self
            .path
            .file_stem()
            .map_or_else(|| "meta".into(), |s| s.to_string_lossy());
        self.path.with_file_name(format!("{stem}.{tenant}.db"))
    }
}

#[async_trait]
impl MetaStore for SqliteStore {
    fn url(&self) -> &str {
        &self.url
    }

    async fn tenant(&self, tenant: &Tenant) -> Result<Arc<dyn TenantStore>, StoreError> {
        // held across the open, so a tenant's database is opened (and migrated) once
        let mut open = self.tenants.lock().await;
        if let Some(t) = open.get(tenant) {
            return Ok(Arc::clone(t) as Arc<dyn TenantStore>);
        }
        let path = self.tenant_path(tenant);
        let name = tenant.as_str().to_owned();
        let listed = blocking(&self.catalogue, move |cat| {
            cat.read("look up tenant", |tx| {
                Ok(tx
                    .prepare_cached("SELECT 1 FROM tenants WHERE name = ?1")?
                    .query_row([&name], |_| Ok(()))
                    .optional()?
                    .is_some())
            })
        })
        .await?;
        if listed && !path.exists() {
            // never answer a lost database with a new empty one
            return Err(StoreError::NotFound(format!(
                "database {} of tenant {tenant:?}, listed in the catalogue {},",
                path.display(),
                self.path.display()
            )));
        }
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let opts = self.opts.clone();
        let db = tokio::task::spawn_blocking(move || Db::open(&path, &schema::TENANT, &opts))
            .await
            .expect("opening a tenant database panicked")?;
        let name = tenant.as_str().to_owned();
        blocking(&self.catalogue, move |cat| {
            cat.write("register tenant", |tx| {
                tx.execute(
                    "INSERT INTO tenants (name, file, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO NOTHING",
                    (&name, &file, flywheel_schemas::now_micros()),
                )?;
                Ok(())
            })
        })
        .await?;
        let t = Arc::new(SqliteTenant::new(tenant.clone(), db));
        open.insert(tenant.clone(), Arc::clone(&t));
        Ok(t)
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let names = blocking(&self.catalogue, |cat| {
            cat.read("list tenants", |tx| {
                let mut stmt = tx.prepare_cached("SELECT name FROM tenants ORDER BY name")?;
                let names = stmt
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(names)
            })
        })
        .await?;
        names
            .into_iter()
            .map(|n| {
                Tenant::new(&n).map_err(|e| StoreError::Corrupt {
                    store: self.path.display().to_string(),
                    what: "tenant name".into(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }
}

/// Splits `sqlite://PATH[?QUERY]` into the path and the options.
fn parse_url(url: &str) -> Result<(PathBuf, Options), StoreError> {
    let invalid = |reason: String| StoreError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let rest = url
        .strip_prefix("sqlite://")
        .ok_or_else(|| invalid("expected sqlite://FILE".into()))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(invalid(
            "sqlite:// needs a file, e.g. sqlite://./flywheel-data/meta.db or sqlite:///var/lib/flywheel/meta.db"
                .into(),
        ));
    }
    if path.ends_with('/') {
        return Err(invalid(format!(
            "{path:?} names a directory; name the database file, e.g. {path}meta.db"
        )));
    }
    let mut opts = Options::default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "busy_timeout" => {
                opts.busy_timeout = humantime::parse_duration(&value)
                    .map_err(|e| invalid(format!("busy_timeout={value:?}: {e}")))?;
                if opts.busy_timeout > Duration::from_secs(600) {
                    return Err(invalid(format!("busy_timeout={value} is over 10 minutes")));
                }
            }
            "readers" => {
                opts.readers = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| invalid(format!("readers={value:?}: expected 1 to 64")))?;
            }
            other => {
                return Err(invalid(format!(
                    "unknown parameter {other:?}; supported: {PARAMETERS}"
                )));
            }
        }
    }
    Ok((PathBuf::from(path), opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let (p, o) = parse_url("sqlite://./data/meta.db").unwrap();
        assert_eq!(p, PathBuf::from("./data/meta.db"));
        assert_eq!(o.busy_timeout, Duration::from_secs(5));
        let (p, o) = parse_url("sqlite:///abs/meta.db?busy_timeout=250ms&readers=2").unwrap();
        assert_eq!(p, PathBuf::from("/abs/meta.db"));
        assert_eq!(o.busy_timeout, Duration::from_millis(250));
        assert_eq!(o.readers, 2);
        for (bad, says) in [
            ("sqlite://", "needs a file"),
            ("sqlite:///tmp/", "names a directory"),
            ("sqlite://m.db?busy_timeout=soon", "busy_timeout"),
            ("sqlite://m.db?readers=0", "readers"),
            ("sqlite://m.db?cache=1", "unknown parameter \"cache\""),
        ] {
            let err = parse_url(bad).unwrap_err().to_string();
            assert!(err.contains(says) && err.contains(bad), "{bad}: {err}");
        }
    }
}
