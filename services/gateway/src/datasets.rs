//! `/api/v1/datasets`: datasets, their statistics and changesets, and the edits people
//! make (remove, relabel, revert), each committed as a changeset and announced on the
//! tenant's changesets topic.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flywheel_schemas::{encode, now_micros};
use flywheel_sources::SourceError;
use flywheel_store::{ChangesetRecord, Edit, StoreError, TenantStore, commit_edit, dataset_stats};
use flywheel_topics::{Record, TopicKind};
use serde::{Deserialize, Serialize};

use crate::json::Object;
use crate::{AppState, Caller, api_error};

/// An error answer: a status and a message (`{"error": "..."}`).
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        api_error(self.0, &self.1)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Invalid { .. } => StatusCode::BAD_REQUEST,
            StoreError::Conflict { .. } | StoreError::Gap { .. } => StatusCode::CONFLICT,
            e if e.is_retriable() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, e.to_string())
    }
}

impl From<SourceError> for ApiError {
    fn from(e: SourceError) -> Self {
        let status = match &e {
            SourceError::UnknownSource { .. } => StatusCode::NOT_FOUND,
            e if e.is_query_error() => StatusCode::BAD_REQUEST,
            e if e.is_retriable() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        Self(status, e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        Self(StatusCode::BAD_REQUEST, e.body_text())
    }
}

pub(crate) type Answer = Result<Response, ApiError>;

pub(crate) async fn tenant_store(
    state: &AppState,
    caller: &Caller,
) -> Result<Arc<dyn TenantStore>, ApiError> {
    Ok(state.backends.meta.tenant(&caller.tenant).await?)
}

pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    flywheel_schemas::check_dataset_name(name).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid dataset name: {}", e.detail),
        )
    })
}

fn not_found(what: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("{what} not found"))
}

pub(crate) async fn list(State(state): State<AppState>, caller: Caller) -> Answer {
    let store = tenant_store(&state, &caller).await?;
    Ok(axum::Json(store.datasets().await?).into_response())
}

/// `POST /api/v1/datasets`: `{"name": "sensors"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Create {
    name: String,
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<axum::Json<Object<Create>>, JsonRejection>,
) -> Answer {
    let axum::Json(Object(body)) = body?;
    check_name(&body.name)?;
    let store = tenant_store(&state, &caller).await?;
    let existed = store.dataset(&body.name).await?.is_some();
    let d = store.ensure_dataset(&body.name, now_micros()).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(d)).into_response())
}

pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Answer {
    check_name(&name)?;
    let store = tenant_store(&state, &caller).await?;
    let d = store
        .dataset(&name)
        .await?
        .ok_or_else(|| not_found(&format!("dataset {name:?}")))?;
    Ok(axum::Json(d).into_response())
}

pub(crate) async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Answer {
    check_name(&name)?;
    let store = tenant_store(&state, &caller).await?;
    Ok(axum::Json(dataset_stats(store.as_ref(), &name).await?).into_response())
}

/// A changeset in a list: its record without the key lists.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    id: i64,
    kind: flywheel_schemas::ChangesetKind,
    created_at: i64,
    sample_count: i64,
    bytes: i64,
    reverts: Option<i64>,
    sources: &'a [flywheel_schemas::SourceRange],
    segments: usize,
}

pub(crate) async fn changesets(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Answer {
    check_name(&name)?;
    let store = tenant_store(&state, &caller).await?;
    if store.dataset(&name).await?.is_none() {
        return Err(not_found(&format!("dataset {name:?}")));
    }
    let list = store.changesets(&name).await?;
    let rows: Vec<Summary<'_>> = list
        .iter()
        .map(|c| Summary {
            id: c.id,
            kind: c.kind,
            created_at: c.created_at,
            sample_count: c.sample_count,
            bytes: c.bytes,
            reverts: c.reverts,
            sources: &c.sources,
            segments: c.segments.len(),
        })
        .collect();
    Ok(axum::Json(rows).into_response())
}

pub(crate) async fn changeset(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Answer {
    check_name(&name)?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("changeset id {id:?} is not a number"),
        )
    })?;
    let store = tenant_store(&state, &caller).await?;
    let c = store
        .changeset(&name, id)
        .await?
        .ok_or_else(|| not_found(&format!("changeset {id} of dataset {name:?}")))?;
    Ok(axum::Json(c).into_response())
}

/// `POST /api/v1/datasets/{name}/changesets`: an [`Edit`] as JSON, e.g.
/// `{"kind":"revert","changeset":3}`.
pub(crate) async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<axum::Json<Object<Edit>>, JsonRejection>,
) -> Answer {
    check_name(&name)?;
    let axum::Json(Object(edit)) = body?;
    if let Edit::Query { query } = &edit {
        // the query must run on its source before it becomes a changeset
        let source = state.backends.sources.get(&caller.tenant, &query.source)?;
        let shape = source.check(query).await?;
        if !shape.ordered {
            tracing::warn!(
                tenant = %caller.tenant,
                dataset = %name,
                source = %query.source,
                "a query changeset without ORDER BY: its rows may come in another order at each read"
            );
        }
    }
    let store = tenant_store(&state, &caller).await?;
    let record = commit_edit(store.as_ref(), &name, &edit, now_micros()).await?;
    if let Err(e) = announce(&state, &caller, &record).await {
        // committed; ingest announces every head again when it starts
        tracing::warn!("announcing {}: {e}", record.describe());
    }
    Ok((StatusCode::CREATED, axum::Json(record)).into_response())
}

/// Publishes a changeset's event on the caller's changesets topic.
async fn announce(
    state: &AppState,
    caller: &Caller,
    record: &ChangesetRecord,
) -> Result<(), flywheel_topics::BusError> {
    let topic = TopicKind::Changesets.topic(&caller.tenant);
    let value = encode(&record.to_event(&caller.tenant));
    state
        .backends
        .bus
        .produce(
            &topic,
            vec![Record::keyed(record.dataset.as_bytes(), value)],
        )
        .await
        .map(|_| ())
}
