//! Training sets, pipelines (and their state) and models on ScyllaDB. Training sets and
//! models are written once (`INSERT ... IF NOT EXISTS`, then compared with what is
//! there); pipeline state is a compare-and-set on its version (a lightweight
//! transaction). Lists read the tenant's whole (small) table and sort.

use std::collections::BTreeMap;

use super::tenant::ScyllaTenant;
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

/// After an `IF NOT EXISTS` that did not apply: the same record is `Unchanged`, another
/// a `Conflict`.
fn compare<T: PartialEq>(
    stored: Option<T>,
    new: &T,
    what: String,
) -> Result<PutOutcome, StoreError> {
    match stored {
        Some(s) if s == *new => Ok(PutOutcome::Unchanged),
        Some(_) => Err(StoreError::conflict(
            what,
            "a different record with this id is already stored",
        )),
        // written and gone again: nothing deletes records, so this is the store's fault
        None => Err(StoreError::conflict(
            what,
            "the record was reported present, then could not be read",
        )),
    }
}

// ---- training sets

type TrainsetRow = (String, String, String, i64, String, i64, i64);

fn trainset_from(t: &ScyllaTenant, row: TrainsetRow) -> Result<TrainsetRecord, StoreError> {
    let (version, dataset, query, head_changeset, manifest_uri, sample_count, created_at) = row;
    let query = serde_json::from_str(&query).map_err(|e| {
        t.ks.corrupt(format!("query of training set {version:?}"), e.to_string())
    })?;
    Ok(TrainsetRecord {
        version,
        dataset,
        query,
        head_changeset,
        manifest_uri,
        sample_count,
        created_at,
    })
}

pub(crate) async fn put_trainset(
    t: &ScyllaTenant,
    ts: &TrainsetRecord,
) -> Result<PutOutcome, StoreError> {
    check_name("training set", &ts.version)?;
    let query = canonical_json(&ts.query);
    let applied =
        t.ks.lwt(
            "write training set",
            &t.st.trainset_put,
            (
                &ts.version,
                &ts.dataset,
                &query,
                ts.head_changeset,
                &ts.manifest_uri,
                ts.sample_count,
                ts.created_at,
            ),
        )
        .await?;
    if applied {
        return Ok(PutOutcome::Created);
    }
    let stored: Option<TrainsetRow> =
        t.ks.one(
            "read training set",
            &t.st.trainset.serial(&t.ks.conn),
            (&ts.version,),
        )
        .await?;
    let new: TrainsetRow = (
        ts.version.clone(),
        ts.dataset.clone(),
        query,
        ts.head_changeset,
        ts.manifest_uri.clone(),
        ts.sample_count,
        ts.created_at,
    );
    compare(stored, &new, format!("training set {:?}", ts.version))
}

pub(crate) async fn trainset(
    t: &ScyllaTenant,
    version: &str,
) -> Result<Option<TrainsetRecord>, StoreError> {
    t.ks.one::<TrainsetRow>("read training set", &t.st.trainset, (version,))
        .await?
        .map(|row| trainset_from(t, row))
        .transpose()
}

pub(crate) async fn trainsets(
    t: &ScyllaTenant,
    dataset: Option<&str>,
) -> Result<Vec<TrainsetRecord>, StoreError> {
    let rows: Vec<TrainsetRow> = t.ks.all("list training sets", &t.st.trainsets, ()).await?;
    let mut out = rows
        .into_iter()
        .filter(|row| dataset.is_none_or(|d| row.1 == d))
        .map(|row| trainset_from(t, row))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| (a.created_at, &a.version).cmp(&(b.created_at, &b.version)));
    Ok(out)
}

// ---- pipelines

type PipelineRow = (String, String, String, i64, Option<i64>);

fn pipeline_from(t: &ScyllaTenant, row: PipelineRow) -> Result<PipelineRecord, StoreError> {
    let (name, document, status, submitted_at, stopped_at) = row;
    let status = PipelineStatus::parse(&status).ok_or_else(|| {
        t.ks.corrupt(
            format!("status of pipeline {name:?}"),
            format!("unknown status {status:?}"),
        )
    })?;
    Ok(PipelineRecord {
        name,
        document,
        status,
        submitted_at,
        stopped_at,
    })
}

pub(crate) async fn put_pipeline(t: &ScyllaTenant, p: &PipelineRecord) -> Result<(), StoreError> {
    check_name("pipeline", &p.name)?;
    t.ks.exec(
        "write pipeline",
        &t.st.pipeline_put,
        (
            &p.name,
            &p.document,
            p.status.as_str(),
            p.submitted_at,
            p.stopped_at,
        ),
    )
    .await?;
    Ok(())
}

pub(crate) async fn pipeline(
    t: &ScyllaTenant,
    name: &str,
) -> Result<Option<PipelineRecord>, StoreError> {
    t.ks.one::<PipelineRow>("read pipeline", &t.st.pipeline, (name,))
        .await?
        .map(|row| pipeline_from(t, row))
        .transpose()
}

pub(crate) async fn pipelines(t: &ScyllaTenant) -> Result<Vec<PipelineRecord>, StoreError> {
    let rows: Vec<PipelineRow> = t.ks.all("list pipelines", &t.st.pipelines, ()).await?;
    let mut out = rows
        .into_iter()
        .map(|row| pipeline_from(t, row))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn version_from(t: &ScyllaTenant, name: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| {
        t.ks.corrupt(
            format!("state version of pipeline {name:?}"),
            format!("negative version {v}"),
        )
    })
}

pub(crate) async fn pipeline_state(
    t: &ScyllaTenant,
    name: &str,
) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
    let row: Option<(Vec<u8>, i64)> =
        t.ks.one("read pipeline state", &t.st.state, (name,))
            .await?;
    row.map(|(state, v)| Ok((state, version_from(t, name, v)?)))
        .transpose()
}

pub(crate) async fn put_pipeline_state(
    t: &ScyllaTenant,
    name: &str,
    state: &[u8],
    expected: Option<u64>,
) -> Result<u64, StoreError> {
    if pipeline(t, name).await?.is_none() {
        return Err(StoreError::NotFound(format!("pipeline {name:?}")));
    }
    let to_cql = |v: u64| {
        i64::try_from(v).map_err(|_| {
            StoreError::invalid(
                format!("state version of pipeline {name:?}"),
                format!("{v} is larger than {}", i64::MAX),
            )
        })
    };
    let (applied, next) = match expected {
        None => (
            t.ks.lwt("write pipeline state", &t.st.state_create, (name, state))
                .await?,
            1,
        ),
        Some(v) => {
            let next = v.checked_add(1).ok_or_else(|| {
                StoreError::invalid(
                    format!("state version of pipeline {name:?}"),
                    "it overflows",
                )
            })?;
            (
                t.ks.lwt(
                    "write pipeline state",
                    &t.st.state_update,
                    (to_cql(next)?, state, name, to_cql(v)?),
                )
                .await?,
                next,
            )
        }
    };
    if applied {
        return Ok(next);
    }
    let current: Option<(Vec<u8>, i64)> =
        t.ks.one(
            "read pipeline state",
            &t.st.state.serial(&t.ks.conn),
            (name,),
        )
        .await?;
    let current = current.map(|(_, v)| version_from(t, name, v)).transpose()?;
    let show = |v: Option<u64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
    Err(StoreError::conflict(
        format!("state of pipeline {name:?}"),
        format!(
            "expected version {}, but the stored version is {}",
            show(expected),
            show(current)
        ),
    ))
}

// ---- models

type ModelRow = (
    String,
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<BTreeMap<String, f64>>,
    i64,
);

fn model_from(row: ModelRow) -> ModelRecord {
    let (id, pipeline, trigger_id, uri, trainset_version, parent, metrics, created_at) = row;
    ModelRecord {
        id,
        pipeline,
        trigger_id,
        uri,
        trainset_version,
        parent,
        metrics: metrics.unwrap_or_default(),
        created_at,
    }
}

pub(crate) async fn put_model(t: &ScyllaTenant, m: &ModelRecord) -> Result<PutOutcome, StoreError> {
    check_name("model", &m.id)?;
    if let Some((name, v)) = m.metrics.iter().find(|(_, v)| !v.is_finite()) {
        return Err(StoreError::invalid(
            format!("metric {name:?} of model {:?}", m.id),
            format!("{v} is not a finite number"),
        ));
    }
    let applied =
        t.ks.lwt(
            "write model",
            &t.st.model_put,
            (
                &m.id,
                &m.pipeline,
                m.trigger_id,
                &m.uri,
                &m.trainset_version,
                &m.parent,
                &m.metrics,
                m.created_at,
            ),
        )
        .await?;
    if applied {
        return Ok(PutOutcome::Created);
    }
    let stored: Option<ModelRow> =
        t.ks.one("read model", &t.st.model.serial(&t.ks.conn), (&m.id,))
            .await?;
    compare(stored.map(model_from), m, format!("model {:?}", m.id))
}

pub(crate) async fn model(t: &ScyllaTenant, id: &str) -> Result<Option<ModelRecord>, StoreError> {
    Ok(t.ks
        .one::<ModelRow>("read model", &t.st.model, (id,))
        .await?
        .map(model_from))
}

pub(crate) async fn models(
    t: &ScyllaTenant,
    pipeline: Option<&str>,
) -> Result<Vec<ModelRecord>, StoreError> {
    let rows: Vec<ModelRow> = t.ks.all("list models", &t.st.models, ()).await?;
    let mut out: Vec<ModelRecord> = rows
        .into_iter()
        .filter(|row| pipeline.is_none_or(|p| row.1 == p))
        .map(model_from)
        .collect();
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(out)
}
