//! One SQLite database file: a writer connection behind a mutex, a small pool of reader
//! connections, the pragmas, the migration runner, and the mapping of SQLite's errors to
//! `StoreError`s that name the file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};

use super::schema::{SCHEMA_VERSION_TABLE, Schema};
use crate::StoreError;

/// The pragmas of every connection (the benchmark's baseline uses them too).
///
/// WAL lets readers run beside the one writer and see only committed transactions.
/// `synchronous = FULL` fsyncs the WAL at every commit: an acknowledged changeset survives
/// a power cut, which is what ingest's offsets rely on (NORMAL could lose the last
/// commits, and with them the offsets ingest resumes from).
pub const CONNECTION_PRAGMAS: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA cache_size = -65536;
PRAGMA temp_store = MEMORY;
";

/// Settings from the store URL.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// How long to wait for another connection's write lock before `StoreError::Locked`.
    pub(crate) busy_timeout: Duration,
    /// Reader connections kept open per database.
    pub(crate) readers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            readers: 4,
        }
    }
}

/// A failure inside a database closure: SQLite's (mapped with the file's name by `Db`) or
/// already a `StoreError`. Lets closures use `?` on both.
#[derive(Debug)]
pub(crate) enum Fail {
    Sql(rusqlite::Error),
    Store(StoreError),
    /// Stored data that does not read back: what, and why.
    Corrupt {
        what: String,
        reason: String,
    },
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

pub(crate) type DbResult<T> = Result<T, Fail>;

/// One database file.
#[derive(Debug)]
pub(crate) struct Db {
    path: PathBuf,
    opts: Options,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl Db {
    /// Opens (creating) the file, sets the pragmas and runs pending migrations.
    pub(crate) fn open(path: &Path, schema: &Schema, opts: &Options) -> Result<Self, StoreError> {
        if path.is_dir() {
            return Err(StoreError::Unreachable {
                what: path.display().to_string(),
                reason: "it is a directory, not a database file".into(),
            });
        }
        let fail = |op, e| map_fail(path, opts.busy_timeout, op, e);
        let mut conn = connect(path, opts, true).map_err(|e| fail("open", e))?;
        migrate(&mut conn, schema).map_err(|e| fail("migrate", e))?;
        Ok(Self {
            path: path.to_owned(),
            opts: opts.clone(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Maps a failure to a `StoreError` naming this file.
    pub(crate) fn error(&self, op: &'static str, fail: Fail) -> StoreError {
        map_fail(&self.path, self.opts.busy_timeout, op, fail)
    }

    /// Runs `f` in one write transaction (taken at once, `BEGIN IMMEDIATE`, so a busy
    /// database is met by the busy timeout at the start); commits if it returns `Ok`,
    /// rolls back otherwise.
    pub(crate) fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> DbResult<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let run = |conn: &mut Connection| -> DbResult<T> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        };
        run(&mut conn).map_err(|e| self.error(op, e))
    }

    /// Runs `f` in one read transaction on a reader connection: every statement in it sees
    /// the same committed state.
    pub(crate) fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> DbResult<T>,
    ) -> Result<T, StoreError> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => connect(&self.path, &self.opts, false).map_err(|e| self.error(op, e))?,
        };
        let out = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let out = f(&tx)?;
            tx.finish()?;
            Ok(out)
        })()
        .map_err(|e| self.error(op, e));
        let mut pool = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < self.opts.readers {
            pool.push(conn);
        }
        out
    }
}

fn connect(path: &Path, opts: &Options, writer: bool) -> DbResult<Connection> {
    let flags = if writer {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    // Plans fixed at prepare time: otherwise SQLite (built with STAT4) may re-prepare a
    // statement whenever a parameter is bound anew, which doubled the cost of a commit.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.busy_timeout(opts.busy_timeout)?;
    conn.execute_batch(CONNECTION_PRAGMAS)?;
    conn.set_prepared_statement_cache_capacity(64);
    if !writer {
        conn.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -16384;")?;
    }
    Ok(conn)
}

/// Runs blocking database work off the async runtime; a panic in it is resumed here.
pub(crate) async fn blocking<T: Send + 'static>(
    db: &Arc<Db>,
    f: impl FnOnce(&Db) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let db = Arc::clone(db);
    match tokio::task::spawn_blocking(move || f(&db)).await {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("metadata store task cancelled: {e}"),
    }
}

fn map_fail(path: &Path, busy: Duration, op: &'static str, fail: Fail) -> StoreError {
    match fail {
        Fail::Store(e) => e,
        Fail::Sql(e) => sql_error(path, busy, op, e),
        Fail::Corrupt { what, reason } => StoreError::Corrupt {
            store: path.display().to_string(),
            what,
            reason,
        },
    }
}

fn sql_error(path: &Path, busy: Duration, op: &'static str, e: rusqlite::Error) -> StoreError {
    let file = path.to_owned();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Locked { file, waited: busy }
        }
        Some(ErrorCode::NotADatabase) => StoreError::NotADatabase {
            file,
            reason: "sqlite cannot read it as a database".into(),
        },
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
            StoreError::Unreachable {
                what: path.display().to_string(),
                reason: e.to_string(),
            }
        }
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            store: path.display().to_string(),
            what: "database".into(),
            reason: e.to_string(),
        },
        _ => StoreError::Sqlite {
            op,
            file,
            source: e,
        },
    }
}

/// Brings the database to the schema's newest version, in one transaction: refuses files
/// of other applications, of the other flywheel role, and of newer versions.
fn migrate(conn: &mut Connection, schema: &Schema) -> DbResult<()> {
    let path = PathBuf::from(conn.path().unwrap_or_default());
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let app_id: i32 = tx.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let tables: i64 = tx.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    let not_ours = |reason: String| {
        Fail::Store(StoreError::NotADatabase {
            file: path.clone(),
            reason,
        })
    };
    if app_id == 0 && tables > 0 {
        return Err(not_ours(
            "it is a sqlite database of another application (it has tables, but not flywheel's application id)"
                .into(),
        ));
    }
    if app_id != 0 && app_id != schema.application_id {
        let other = [&super::schema::CATALOGUE, &super::schema::TENANT]
            .into_iter()
            .find(|s| s.application_id == app_id);
        return Err(not_ours(match other {
            Some(other) => format!(
                "it is a flywheel {} database, where a {} database was expected",
                other.role, schema.role
            ),
            None => format!("its application id {app_id:#x} is not flywheel's"),
        }));
    }
    tx.execute_batch(SCHEMA_VERSION_TABLE)?;
    let found: i64 = tx.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    let supported = schema.supported();
    if found > supported {
        return Err(Fail::Store(StoreError::WrongVersion {
            store: path.display().to_string(),
            found,
            supported,
        }));
    }
    let now = flywheel_schemas::now_micros();
    for m in schema.migrations.iter().filter(|m| m.version > found) {
        tracing::info!(
            file = %path.display(),
            version = m.version,
            description = m.description,
            "migrating metadata database"
        );
        tx.execute_batch(m.sql)?;
        tx.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?1, ?2, ?3)",
            (m.version, m.description, now),
        )?;
    }
    tx.pragma_update(None, "application_id", schema.application_id)?;
    tx.commit()?;
    Ok(())
}
