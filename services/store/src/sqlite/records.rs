//! Training sets, pipelines (and their state) and models on SQLite.

use rusqlite::{OptionalExtension, Row, Transaction};

use super::db::{DbResult, Fail};
use crate::StoreError;
use crate::model::{
    ModelRecord, PipelineRecord, PipelineStatus, PutOutcome, TrainsetRecord, canonical_json,
};

fn check_name(what: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty() {
        return Err(StoreError::invalid(format!("{what} name"), "it is empty"));
    }
    Ok(())
}

/// Writes a record keyed by `id` unless it is there: the same record again is `Unchanged`,
/// a different one a `Conflict`.
fn put_once<T: PartialEq>(
    stored: Option<T>,
    new: &T,
    what: String,
    insert: impl FnOnce() -> DbResult<()>,
) -> DbResult<PutOutcome> {
    match stored {
        Some(s) if s == *new => Ok(PutOutcome::Unchanged),
        Some(_) => Err(Fail::Store(StoreError::conflict(
            what,
            "a different record with this id is already stored",
        ))),
        None => {
            insert()?;
            Ok(PutOutcome::Created)
        }
    }
}

// ---- training sets

const TRAINSET_COLUMNS: &str =
    "version, dataset, query, head_changeset, manifest_uri, sample_count, created_at";

fn trainset_from(r: &Row<'_>) -> rusqlite::Result<(TrainsetRecord, String)> {
    Ok((
        TrainsetRecord {
            version: r.get(0)?,
            dataset: r.get(1)?,
            query: serde_json::Value::Null,
            head_changeset: r.get(3)?,
            manifest_uri: r.get(4)?,
            sample_count: r.get(5)?,
            created_at: r.get(6)?,
        },
        r.get(2)?,
    ))
}

fn parse_query((mut t, query): (TrainsetRecord, String)) -> DbResult<TrainsetRecord> {
    t.query = serde_json::from_str(&query).map_err(|e| Fail::Corrupt {
        what: format!("query of training set {:?}", t.version),
        reason: e.to_string(),
    })?;
    Ok(t)
}

pub(crate) fn put_trainset(tx: &Transaction<'_>, t: &TrainsetRecord) -> DbResult<PutOutcome> {
    check_name("training set", &t.version)?;
    let query = canonical_json(&t.query);
    let stored = tx
        .prepare_cached(&format!(
            "SELECT {TRAINSET_COLUMNS} FROM trainsets WHERE version = ?1"
        ))?
        .query_row([&t.version], trainset_from)
        .optional()?
        .map(|(mut s, q)| {
            s.query = t.query.clone();
            (s, q)
        });
    put_once(
        stored,
        &(t.clone(), query.clone()),
        format!("training set {:?}", t.version),
        || {
            tx.prepare_cached(&format!(
                "INSERT INTO trainsets ({TRAINSET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))?
            .execute(rusqlite::params![
                t.version,
                t.dataset,
                query,
                t.head_changeset,
                t.manifest_uri,
                t.sample_count,
                t.created_at
            ])?;
            Ok(())
        },
    )
}

pub(crate) fn trainset(tx: &Transaction<'_>, version: &str) -> DbResult<Option<TrainsetRecord>> {
    tx.prepare_cached(&format!(
        "SELECT {TRAINSET_COLUMNS} FROM trainsets WHERE version = ?1"
    ))?
    .query_row([version], trainset_from)
    .optional()?
    .map(parse_query)
    .transpose()
}

pub(crate) fn trainsets(
    tx: &Transaction<'_>,
    dataset: Option<&str>,
) -> DbResult<Vec<TrainsetRecord>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {TRAINSET_COLUMNS} FROM trainsets WHERE ?1 IS NULL OR dataset = ?1
         ORDER BY created_at, version"
    ))?;
    let rows = stmt
        .query_map([dataset], trainset_from)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(parse_query).collect()
}

// ---- pipelines

const PIPELINE_COLUMNS: &str = "name, document, status, submitted_at, stopped_at";

fn pipeline_from(r: &Row<'_>) -> rusqlite::Result<(PipelineRecord, String)> {
    Ok((
        PipelineRecord {
            name: r.get(0)?,
            document: r.get(1)?,
            status: PipelineStatus::Active,
            submitted_at: r.get(3)?,
            stopped_at: r.get(4)?,
        },
        r.get(2)?,
    ))
}

fn parse_status((mut p, status): (PipelineRecord, String)) -> DbResult<PipelineRecord> {
    p.status = PipelineStatus::parse(&status).ok_or_else(|| Fail::Corrupt {
        what: format!("status of pipeline {:?}", p.name),
        reason: format!("unknown status {status:?}"),
    })?;
    Ok(p)
}

pub(crate) fn put_pipeline(tx: &Transaction<'_>, p: &PipelineRecord) -> DbResult<()> {
    check_name("pipeline", &p.name)?;
    tx.prepare_cached(&format!(
        "INSERT INTO pipelines ({PIPELINE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (name) DO UPDATE SET document = excluded.document,
             status = excluded.status, submitted_at = excluded.submitted_at,
             stopped_at = excluded.stopped_at"
    ))?
    .execute((
        &p.name,
        &p.document,
        p.status.as_str(),
        p.submitted_at,
        p.stopped_at,
    ))?;
    Ok(())
}

pub(crate) fn pipeline(tx: &Transaction<'_>, name: &str) -> DbResult<Option<PipelineRecord>> {
    tx.prepare_cached(&format!(
        "SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE name = ?1"
    ))?
    .query_row([name], pipeline_from)
    .optional()?
    .map(parse_status)
    .transpose()
}

pub(crate) fn pipelines(tx: &Transaction<'_>) -> DbResult<Vec<PipelineRecord>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {PIPELINE_COLUMNS} FROM pipelines ORDER BY name"
    ))?;
    let rows = stmt
        .query_map([], pipeline_from)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(parse_status).collect()
}

pub(crate) fn pipeline_state(tx: &Transaction<'_>, name: &str) -> DbResult<Option<(Vec<u8>, u64)>> {
    Ok(tx
        .prepare_cached("SELECT state, version FROM pipeline_state WHERE pipeline = ?1")?
        .query_row([name], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
        .optional()?)
}

pub(crate) fn put_pipeline_state(
    tx: &Transaction<'_>,
    name: &str,
    state: &[u8],
    expected: Option<u64>,
) -> DbResult<u64> {
    let exists: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM pipelines WHERE name = ?1)")?
        .query_row([name], |r| r.get(0))?;
    if !exists {
        return Err(Fail::Store(StoreError::NotFound(format!(
            "pipeline {name:?}"
        ))));
    }
    let current: Option<i64> = tx
        .prepare_cached("SELECT version FROM pipeline_state WHERE pipeline = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    let current = current.map(|v| v as u64);
    if current != expected {
        let show = |v: Option<u64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
        return Err(Fail::Store(StoreError::conflict(
            format!("state of pipeline {name:?}"),
            format!(
                "expected version {}, but the stored version is {}",
                show(expected),
                show(current)
            ),
        )));
    }
    let next = current.unwrap_or(0) + 1;
    tx.prepare_cached(
        "INSERT INTO pipeline_state (pipeline, version, state) VALUES (?1, ?2, ?3)
         ON CONFLICT (pipeline) DO UPDATE SET version = excluded.version, state = excluded.state",
    )?
    .execute((name, next as i64, state))?;
    Ok(next)
}

// ---- models

const MODEL_COLUMNS: &str =
    "id, pipeline, trigger_id, uri, trainset_version, parent, metrics, created_at";

fn model_from(r: &Row<'_>) -> rusqlite::Result<(ModelRecord, String)> {
    Ok((
        ModelRecord {
            id: r.get(0)?,
            pipeline: r.get(1)?,
            trigger_id: r.get(2)?,
            uri: r.get(3)?,
            trainset_version: r.get(4)?,
            parent: r.get(5)?,
            metrics: Default::default(),
            created_at: r.get(7)?,
        },
        r.get(6)?,
    ))
}

fn parse_metrics((mut m, metrics): (ModelRecord, String)) -> DbResult<ModelRecord> {
    m.metrics = serde_json::from_str(&metrics).map_err(|e| Fail::Corrupt {
        what: format!("metrics of model {:?}", m.id),
        reason: e.to_string(),
    })?;
    Ok(m)
}

pub(crate) fn put_model(tx: &Transaction<'_>, m: &ModelRecord) -> DbResult<PutOutcome> {
    check_name("model", &m.id)?;
    if let Some((name, v)) = m.metrics.iter().find(|(_, v)| !v.is_finite()) {
        return Err(Fail::Store(StoreError::invalid(
            format!("metric {name:?} of model {:?}", m.id),
            format!("{v} is not a finite number"),
        )));
    }
    let stored = model(tx, &m.id)?;
    put_once(stored, m, format!("model {:?}", m.id), || {
        tx.prepare_cached(&format!(
            "INSERT INTO models ({MODEL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))?
        .execute(rusqlite::params![
            m.id,
            m.pipeline,
            m.trigger_id,
            m.uri,
            m.trainset_version,
            m.parent,
            serde_json::to_string(&m.metrics).expect("finite metrics serialize"),
            m.created_at
        ])?;
        Ok(())
    })
}

pub(crate) fn model(tx: &Transaction<'_>, id: &str) -> DbResult<Option<ModelRecord>> {
    tx.prepare_cached(&format!("SELECT {MODEL_COLUMNS} FROM models WHERE id = ?1"))?
        .query_row([id], model_from)
        .optional()?
        .map(parse_metrics)
        .transpose()
}

pub(crate) fn models(tx: &Transaction<'_>, pipeline: Option<&str>) -> DbResult<Vec<ModelRecord>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {MODEL_COLUMNS} FROM models WHERE ?1 IS NULL OR pipeline = ?1
         ORDER BY created_at, id"
    ))?;
    let rows = stmt
        .query_map([pipeline], model_from)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(parse_metrics).collect()
}
