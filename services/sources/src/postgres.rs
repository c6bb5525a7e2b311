//! Talking to a PostgreSQL source with tokio-postgres (no TLS): sessions, the check, the
//! streamed fetch, and the driver's errors turned into [`SourceError`]s without secrets or
//! row values.

use std::error::Error as StdError;
use std::pin::pin;
use std::sync::Arc;

use flywheel_schemas::RestrictedQuery;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::{DbError, ErrorPosition, SqlState};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Row, Statement, Transaction};

use crate::SourceError;
use crate::convert::{Feature, Label};
use crate::rows::{RestrictedRow, RestrictedRows};
use crate::shape::{QueryShape, check_query, plan_writes, resolve};
use crate::sources::SourceInner;

/// Rows asked of the server at a time while fetching.
pub const FETCH_ROWS: i32 = 1000;

/// Rows converted ahead of the reader (with at most one batch read from the server).
const ROW_BUFFER: usize = 256;

/// Where an error happened, which decides what it means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Connecting, logging in, setting up the session and the transaction.
    Connect,
    /// Preparing or planning the statement: no row exists yet.
    Prepare,
    /// Running it: the server's messages may quote row values.
    Execute,
}

/// Opens a session with the source's statement timeout, within its connect timeout.
async fn connect(src: &SourceInner) -> Result<Client, SourceError> {
    let attempt = src.pg.connect(NoTls);
    let (client, connection) = match tokio::time::timeout(src.connect_timeout, attempt).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(map_error(src, Stage::Connect, &e)),
        Err(_) => {
            return Err(SourceError::Unreachable {
                name: src.name.clone(),
                address: src.address.clone(),
                reason: format!(
                    "no session within the connect timeout ({})",
                    humantime::format_duration(src.connect_timeout)
                ),
            });
        }
    };
    let name = src.name.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            // The kind only ("db error", "connection closed"): no message, no values.
            tracing::debug!(source = %name, error = %e, "source session ended");
        }
    });
    let timeout_ms = src.statement_timeout.as_millis();
    client
        .batch_execute(&format!("SET statement_timeout = {timeout_ms}"))
        .await
        .map_err(|e| map_error(src, Stage::Connect, &e))?;
    tracing::debug!(source = %src.name, address = %src.address, "source session opened");
    Ok(client)
}

/// Starts the `READ ONLY` transaction every statement runs in.
async fn begin<'c>(
    src: &SourceInner,
    client: &'c mut Client,
) -> Result<Transaction<'c>, SourceError> {
    client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(|e| map_error(src, Stage::Connect, &e))
}

/// Prepares the query's statement and finds its label and feature columns. With `plan`,
/// also plans it (`EXPLAIN`, never run) to refuse a statement that writes and one that is
/// not a query at all.
async fn prepare(
    src: &SourceInner,
    tx: &Transaction<'_>,
    query: &RestrictedQuery,
    plan: bool,
) -> Result<(Statement, QueryShape), SourceError> {
    let stmt = tx
        .prepare(&query.sql)
        .await
        .map_err(|e| map_error(src, Stage::Prepare, &e))?;
    if !stmt.params().is_empty() {
        return Err(SourceError::InvalidQuery {
            name: src.name.clone(),
            field: "sql".into(),
            reason: format!(
                "has {} parameter(s) ($1 ...); a restricted query takes none",
                stmt.params().len()
            ),
        });
    }
    if plan {
        // The statement prepared alone, so it is one statement; EXPLAIN without ANALYZE
        // plans it without running it.
        let explain = format!("EXPLAIN (FORMAT JSON)\n{}", query.sql);
        let row = tx.query_one(&explain, &[]).await.map_err(|e| {
            if e.code() == Some(&SqlState::SYNTAX_ERROR) {
                SourceError::Rejected {
                    name: src.name.clone(),
                    message: "only a query (SELECT, VALUES, TABLE or WITH ... SELECT) is \
                              accepted, and the server cannot plan this statement as one"
                        .into(),
                }
            } else {
                map_error(src, Stage::Prepare, &e)
            }
        })?;
        let plan: serde_json::Value = row.try_get(0).map_err(|e| SourceError::Connection {
            name: src.name.clone(),
            address: src.address.clone(),
            reason: format!("unreadable plan: {}", chain(&e)),
        })?;
        if let Some(write) = plan_writes(&plan) {
            return Err(SourceError::NotReadOnly {
                name: src.name.clone(),
                reason: write,
            });
        }
    }
    let columns: Vec<(String, Type)> = stmt
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), c.type_().clone()))
        .collect();
    let shape = resolve(&src.name, query, &columns)?;
    Ok((stmt, shape))
}

/// See [`Source::check`](crate::Source::check).
pub(crate) async fn check(
    src: &SourceInner,
    query: &RestrictedQuery,
) -> Result<QueryShape, SourceError> {
    check_query(&src.name, query)?;
    let mut client = connect(src).await?;
    let tx = begin(src, &mut client).await?;
    let (_, shape) = prepare(src, &tx, query, true).await?;
    // Nothing was run; the rollback just ends the transaction.
    let _ = tx.rollback().await;
    tracing::debug!(
        source = %src.name,
        columns = shape.columns.len(),
        ordered = shape.ordered,
        "restricted query checked"
    );
    Ok(shape)
}

/// See [`Source::fetch`](crate::Source::fetch): a task of its own reads the rows and hands
/// them over through a bounded channel.
pub(crate) async fn fetch(
    src: Arc<SourceInner>,
    query: RestrictedQuery,
) -> Result<RestrictedRows, SourceError> {
    check_query(&src.name, &query)?;
    let (ready_tx, ready_rx) = oneshot::channel();
    let (rows_tx, rows_rx) = mpsc::channel(ROW_BUFFER);
    let (name, address) = (src.name.clone(), src.address.clone());
    let task = tokio::spawn(produce(src, query, ready_tx, rows_tx));
    match ready_rx.await {
        Ok(Ok(shape)) => Ok(RestrictedRows {
            rows: rows_rx,
            shape,
            task: task.abort_handle(),
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(SourceError::Connection {
            name,
            address,
            reason: "the task reading the source ended unexpectedly".into(),
        }),
    }
}

type Ready = oneshot::Sender<Result<QueryShape, SourceError>>;
type RowSender = mpsc::Sender<Result<RestrictedRow, SourceError>>;

/// Connects, prepares and streams; an error goes to whoever waits: the caller of `fetch`
/// before the shape was sent, the stream after.
async fn produce(src: Arc<SourceInner>, query: RestrictedQuery, ready: Ready, rows: RowSender) {
    let mut ready = Some(ready);
    if let Err(e) = produce_rows(&src, &query, &mut ready, &rows).await {
        match ready.take() {
            Some(r) => {
                let _ = r.send(Err(e));
            }
            None => {
                let _ = rows.send(Err(e)).await;
            }
        }
    }
}

async fn produce_rows(
    src: &SourceInner,
    query: &RestrictedQuery,
    ready: &mut Option<Ready>,
    rows: &RowSender,
) -> Result<(), SourceError> {
    let mut client = connect(src).await?;
    let tx = begin(src, &mut client).await?;
    let (stmt, shape) = prepare(src, &tx, query, false).await?;
    let portal = tx
        .bind(&stmt, &[])
        .await
        .map_err(|e| map_error(src, Stage::Execute, &e))?;
    let Some(r) = ready.take() else {
        return Ok(());
    };
    if r.send(Ok(shape.clone())).is_err() {
        return Ok(()); // the caller of `fetch` gave up
    }
    let mut index = 0u64;
    loop {
        let batch = tx
            .query_portal_raw(&portal, FETCH_ROWS)
            .await
            .map_err(|e| map_error(src, Stage::Execute, &e))?;
        let mut batch = pin!(batch);
        let mut in_batch = 0;
        while let Some(row) = batch.next().await {
            let row = row.map_err(|e| map_error(src, Stage::Execute, &e))?;
            let converted = convert_row(src, query, &shape, &row, index)?;
            if rows.send(Ok(converted)).await.is_err() {
                return Ok(()); // the reader dropped the stream
            }
            index += 1;
            in_batch += 1;
        }
        if in_batch < FETCH_ROWS {
            break;
        }
    }
    let _ = tx.rollback().await;
    tracing::debug!(source = %src.name, rows = index, "restricted rows read");
    Ok(())
}

/// One row as a label and features; errors name the row and the field, never the value.
fn convert_row(
    src: &SourceInner,
    query: &RestrictedQuery,
    shape: &QueryShape,
    row: &Row,
    index: u64,
) -> Result<RestrictedRow, SourceError> {
    let row_error = |field: String, reason: String| SourceError::Row {
        name: src.name.clone(),
        index,
        field,
        reason,
    };
    let label = match (shape.label, &query.label_column) {
        (Some(i), Some(column)) => row
            .try_get::<_, Option<Label>>(i)
            .map_err(|e| {
                row_error(
                    format!("label_column ({column:?})"),
                    format!("cannot be read: {}", chain(&e)),
                )
            })?
            .map(|l| l.0),
        _ => None,
    };
    let mut features = Vec::with_capacity(shape.features.len());
    for (k, (&i, column)) in shape
        .features
        .iter()
        .zip(&query.feature_columns)
        .enumerate()
    {
        let field = || format!("feature_columns[{k}] ({column:?})");
        let value = row
            .try_get::<_, Option<Feature>>(i)
            .map_err(|e| row_error(field(), format!("cannot be read: {}", chain(&e))))?;
        let Some(Feature(value)) = value else {
            return Err(row_error(
                field(),
                "is NULL; a feature must be a number (filter or coalesce NULLs in the sql)".into(),
            ));
        };
        if !value.is_finite() {
            return Err(row_error(
                field(),
                "is not a finite number (NaN or infinity)".into(),
            ));
        }
        features.push(value);
    }
    Ok(RestrictedRow {
        index,
        label,
        features,
    })
}

/// An error and its causes, `: `-separated.
pub(crate) fn chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Whether an I/O error is among the causes (the server could not be reached at all).
fn has_io_cause(e: &tokio_postgres::Error) -> bool {
    let mut cause = e.source();
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The server's message with the position and hint it gave (used for SQL the server
/// rejects, where no row has been read, so nothing quoted can be data).
fn describe(db: &DbError) -> String {
    let mut text = db.message().to_owned();
    if let Some(ErrorPosition::Original(at)) = db.position() {
        text.push_str(&format!(" (at character {at} of the sql)"));
    }
    if let Some(detail) = db.detail() {
        text.push_str(&format!("; {detail}"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    text
}

/// `text` with whatever stands between double quotes replaced by `…`: while rows are read,
/// the server quotes values of rows (`invalid input syntax for type integer: "..."`).
pub(crate) fn mask_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for c in text.chars() {
        if c == '"' {
            if inside {
                out.push('…');
            }
            inside = !inside;
            out.push(c);
        } else if !inside {
            out.push(c);
        }
    }
    if inside {
        out.push('…');
    }
    out
}

/// A driver error as a [`SourceError`] of the right kind, secrets scrubbed.
fn map_error(src: &SourceInner, stage: Stage, e: &tokio_postgres::Error) -> SourceError {
    let name = src.name.clone();
    let address = src.address.clone();
    let Some(db) = e.as_db_error() else {
        let reason = src.scrub(&chain(e));
        return if stage == Stage::Connect && has_io_cause(e) {
            SourceError::Unreachable {
                name,
                address,
                reason,
            }
        } else if stage == Stage::Connect
            && (reason.starts_with("authentication error") || reason.contains("password missing"))
        {
            SourceError::Authentication {
                name,
                address,
                reason,
            }
        } else if e.is_closed() || has_io_cause(e) {
            SourceError::Connection {
                name,
                address,
                reason: format!("the connection was lost: {reason}"),
            }
        } else {
            SourceError::Connection {
                name,
                address,
                reason,
            }
        };
    };
    let code = db.code();
    let class = &code.code()[..2];
    if *code == SqlState::QUERY_CANCELED && db.message().contains("statement timeout") {
        return SourceError::StatementTimeout {
            name,
            after: src.statement_timeout,
        };
    }
    if class == "28" {
        return SourceError::Authentication {
            name,
            address,
            reason: src.scrub(db.message()),
        };
    }
    if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        return SourceError::NotReadOnly {
            name,
            reason: format!("the server refused it: {}", mask_quoted(db.message())),
        };
    }
    if stage == Stage::Connect
        || matches!(class, "08" | "53" | "57")
        || *code == SqlState::INVALID_CATALOG_NAME
    {
        return SourceError::Connection {
            name,
            address,
            reason: src.scrub(&mask_quoted(db.message())),
        };
    }
    match stage {
        Stage::Prepare => SourceError::Rejected {
            name,
            message: src.scrub(&describe(db)),
        },
        _ => SourceError::Execution {
            name,
            code: code.code().to_owned(),
            message: src.scrub(&mask_quoted(db.message())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_text_is_masked() {
        assert_eq!(
            mask_quoted("invalid input syntax for type integer: \"Alice Smith\""),
            "invalid input syntax for type integer: \"…\""
        );
        assert_eq!(mask_quoted("division by zero"), "division by zero");
        assert_eq!(mask_quoted("a \"b\" c \"d"), "a \"…\" c \"…");
    }
}
