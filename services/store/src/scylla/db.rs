//! One keyspace on the shared session: running prepared statements (plain, serial reads,
//! lightweight transactions, single-partition batches, paged reads) and mapping the
//! driver's errors to `StoreError`s that name the table, the keyspace and the URL.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::errors::{
    DbError, ExecutionError, NextPageError, NextRowError, PagerExecutionError, PrepareError,
    RequestAttemptError, RequestError,
};
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};

use super::config::Config;
use crate::StoreError;

/// A row type that owns its data.
pub(crate) trait OwnedRow: for<'f, 'm> DeserializeRow<'f, 'm> {}
impl<T> OwnedRow for T where T: for<'f, 'm> DeserializeRow<'f, 'm> {}

/// The session every keyspace shares, and the URL it was opened with (for messages).
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) session: Session,
    pub(crate) url: String,
    pub(crate) config: Config,
}

/// A prepared statement and the table it works on.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    ps: PreparedStatement,
    table: &'static str,
}

impl Stmt {
    /// The same statement read at the serial level: it sees the outcome of every
    /// lightweight transaction that has finished (and finishes one under way).
    pub(crate) fn serial(&self, conn: &Conn) -> Stmt {
        let mut s = self.clone();
        s.ps.set_consistency(conn.config.level.serial_read());
        s
    }

    /// The same statement writing at timestamp `micros` instead of the server's clock (a
    /// retry by the driver keeps it, so a repeated write is the same write).
    pub(crate) fn at(&self, micros: i64) -> Stmt {
        let mut s = self.clone();
        s.ps.set_timestamp(Some(micros));
        s
    }
}

/// One keyspace.
#[derive(Debug, Clone)]
pub(crate) struct Ks {
    pub(crate) conn: Arc<Conn>,
    pub(crate) name: String,
}

impl Ks {
    pub(crate) fn new(conn: Arc<Conn>, name: String) -> Self {
        Self { conn, name }
    }

    /// `keyspace K at URL`, for messages.
    pub(crate) fn describe(&self) -> String {
        format!("keyspace {} at {}", self.name, self.conn.url)
    }

    /// `table K.T at URL`, or the keyspace for work on the keyspace itself (`table` "").
    fn target(&self, table: &str) -> String {
        if table.is_empty() {
            self.describe()
        } else {
            format!("table {}.{table} at {}", self.name, self.conn.url)
        }
    }

    pub(crate) fn fail<E: Transient + std::error::Error + Send + Sync + 'static>(
        &self,
        op: &'static str,
        table: &str,
        e: E,
    ) -> StoreError {
        StoreError::Scylla {
            op,
            target: self.target(table),
            retriable: e.transient(),
            source: Box::new(e),
        }
    }

    /// Data read back that does not make sense.
    pub(crate) fn corrupt(&self, what: impl Into<String>, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            store: self.describe(),
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Prepares `cql`, with `{ks}` standing for this keyspace. Writes are marked
    /// idempotent when `idempotent` (the driver may then retry them after a timeout).
    pub(crate) async fn prepare(
        &self,
        table: &'static str,
        cql: &str,
        idempotent: bool,
    ) -> Result<Stmt, StoreError> {
        let text = cql.replace("{ks}", &self.name);
        let mut ps = self
            .conn
            .session
            .prepare(text)
            .await
            .map_err(|e| self.fail("prepare statement", table, e))?;
        ps.set_is_idempotent(idempotent);
        Ok(Stmt { ps, table })
    }

    /// Runs a statement that is not prepared (schema changes), `{ks}` standing for this
    /// keyspace.
    pub(crate) async fn run_unprepared(
        &self,
        op: &'static str,
        table: &'static str,
        cql: &str,
    ) -> Result<(), StoreError> {
        let text = cql.replace("{ks}", &self.name);
        self.conn
            .session
            .query_unpaged(text, ())
            .await
            .map_err(|e| self.fail(op, table, e))?;
        Ok(())
    }

    /// Runs a statement.
    pub(crate) async fn exec(
        &self,
        op: &'static str,
        stmt: &Stmt,
        values: impl SerializeRow,
    ) -> Result<QueryResult, StoreError> {
        self.conn
            .session
            .execute_unpaged(&stmt.ps, values)
            .await
            .map_err(|e| self.fail(op, stmt.table, e))
    }

    /// Runs a lightweight transaction; whether it applied.
    pub(crate) async fn lwt(
        &self,
        op: &'static str,
        stmt: &Stmt,
        values: impl SerializeRow,
    ) -> Result<bool, StoreError> {
        let result = self.exec(op, stmt, values).await?;
        let rows = result
            .into_rows_result()
            .map_err(|e| self.fail(op, stmt.table, e))?;
        let first = rows
            .maybe_first_row::<Row>()
            .map_err(|e| self.fail(op, stmt.table, e))?;
        match first.as_ref().and_then(|r| r.columns.first()) {
            Some(Some(CqlValue::Boolean(applied))) => Ok(*applied),
            other => Err(self.corrupt(
                format!("answer of a conditional write to {}", stmt.table),
                format!("expected [applied] as its first column, got {other:?}"),
            )),
        }
    }

    /// Reads at most one row.
    pub(crate) async fn one<R: OwnedRow>(
        &self,
        op: &'static str,
        stmt: &Stmt,
        values: impl SerializeRow,
    ) -> Result<Option<R>, StoreError> {
        let result = self.exec(op, stmt, values).await?;
        let rows = result
            .into_rows_result()
            .map_err(|e| self.fail(op, stmt.table, e))?;
        rows.maybe_first_row::<R>()
            .map_err(|e| self.fail(op, stmt.table, e))
    }

    /// Reads every row, page by page.
    pub(crate) async fn all<R: OwnedRow + Send + 'static>(
        &self,
        op: &'static str,
        stmt: &Stmt,
        values: impl SerializeRow,
    ) -> Result<Vec<R>, StoreError> {
        let mut rows = self.stream::<R>(op, stmt, values).await?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().await {
            out.push(row?);
        }
        Ok(out)
    }

    /// Reads rows lazily, page by page: dropping the stream stops the reading.
    pub(crate) async fn stream<R: OwnedRow + Send + 'static>(
        &self,
        op: &'static str,
        stmt: &Stmt,
        values: impl SerializeRow,
    ) -> Result<BoxStream<'static, Result<R, StoreError>>, StoreError> {
        let pager = self
            .conn
            .session
            .execute_iter(stmt.ps.clone(), values)
            .await
            .map_err(|e| self.fail(op, stmt.table, e))?;
        let rows = pager
            .rows_stream::<R>()
            .map_err(|e| self.fail(op, stmt.table, e))?;
        let (ks, table) = (self.clone(), stmt.table);
        Ok(rows
            .map(move |r: Result<R, NextRowError>| r.map_err(|e| ks.fail(op, table, e)))
            .boxed())
    }

    /// Writes rows of one partition in one unlogged batch: applied together on each
    /// replica, with no batch log (the batch does not span partitions). The batch takes
    /// the statement's timestamp, if it has one (`Stmt::at`).
    pub(crate) async fn batch<V: SerializeRow>(
        &self,
        op: &'static str,
        stmt: &Stmt,
        values: Vec<V>,
    ) -> Result<(), StoreError> {
        if values.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new(BatchType::Unlogged);
        for _ in 0..values.len() {
            batch.append_statement(stmt.ps.clone());
        }
        batch.set_is_idempotent(stmt.ps.get_is_idempotent());
        batch.set_timestamp(stmt.ps.get_timestamp());
        self.conn
            .session
            .batch(&batch, values)
            .await
            .map_err(|e| self.fail(op, stmt.table, e))?;
        Ok(())
    }
}

/// Whether an error may go away if the request is made again.
pub(crate) trait Transient {
    fn transient(&self) -> bool;
}

fn db_error_transient(e: &DbError) -> bool {
    matches!(
        e,
        DbError::Unavailable { .. }
            | DbError::Overloaded
            | DbError::IsBootstrapping
            | DbError::ReadTimeout { .. }
            | DbError::WriteTimeout { .. }
            | DbError::ReadFailure { .. }
            | DbError::WriteFailure { .. }
            | DbError::TruncateError
            | DbError::RateLimitReached { .. }
    )
}

impl Transient for RequestAttemptError {
    fn transient(&self) -> bool {
        match self {
            RequestAttemptError::DbError(db, _) => db_error_transient(db),
            RequestAttemptError::BrokenConnectionError(_)
            | RequestAttemptError::UnableToAllocStreamId => true,
            _ => false,
        }
    }
}

impl Transient for ExecutionError {
    fn transient(&self) -> bool {
        match self {
            ExecutionError::ConnectionPoolError(_)
            | ExecutionError::RequestTimeout(_)
            | ExecutionError::EmptyPlan => true,
            ExecutionError::LastAttemptError(e) => e.transient(),
            ExecutionError::PrepareError(e) => e.transient(),
            _ => false,
        }
    }
}

impl Transient for PrepareError {
    fn transient(&self) -> bool {
        match self {
            PrepareError::ConnectionPoolError(_) => true,
            PrepareError::AllAttemptsFailed { first_attempt } => first_attempt.transient(),
            _ => false,
        }
    }
}

impl Transient for RequestError {
    fn transient(&self) -> bool {
        match self {
            RequestError::EmptyPlan
            | RequestError::ConnectionPoolError(_)
            | RequestError::RequestTimeout(_) => true,
            RequestError::LastAttemptError(e) => e.transient(),
            _ => false,
        }
    }
}

impl Transient for NextPageError {
    fn transient(&self) -> bool {
        matches!(self, NextPageError::RequestFailure(e) if e.transient())
    }
}

impl Transient for PagerExecutionError {
    fn transient(&self) -> bool {
        match self {
            PagerExecutionError::PrepareError(e) => e.transient(),
            PagerExecutionError::NextPageError(e) => e.transient(),
            _ => false,
        }
    }
}

impl Transient for NextRowError {
    fn transient(&self) -> bool {
        matches!(self, NextRowError::NextPageError(e) if e.transient())
    }
}

/// Errors that say the data does not have the shape the statement expects.
macro_rules! never_transient {
    ($($t:ty),* $(,)?) => {
        $(impl Transient for $t {
            fn transient(&self) -> bool {
                false
            }
        })*
    };
}

never_transient!(
    scylla::response::query_result::IntoRowsResultError,
    scylla::response::query_result::MaybeFirstRowError,
    scylla::deserialize::TypeCheckError,
);
