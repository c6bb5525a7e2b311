//! `/api/v1/pipelines`: submit a pipeline document (TOML), list, show and stop pipelines.
//! A document is checked in full (every field, and that its dataset exists) before it is
//! stored and published on the tenant's pipelines topic, where the supervisor reads it.

use axum::body::Bytes;
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flywheel_core::pipeline::{Pipeline, check_pipeline_name};
use flywheel_schemas::{PipelineAction, PipelineSpec, encode, now_micros};
use flywheel_store::{PipelineRecord, PipelineStatus, TenantStore};
use flywheel_supervisor::state::PipelineState;
use flywheel_supervisor::{pipeline_events, pipeline_releases};
use flywheel_topics::{Record, TopicKind};
use serde::Serialize;

use crate::datasets::{Answer, ApiError, tenant_store};
use crate::{AppState, Caller};

/// Largest pipeline document taken.
pub(crate) const MAX_DOCUMENT: usize = 64 * 1024;

/// A pipeline as shown: its record, its parsed document and the supervisor's progress.
#[derive(Debug, Serialize)]
struct Shown {
    #[serde(flatten)]
    record: PipelineRecord,
    /// The document, parsed (absent if a stored document no longer parses).
    pipeline: Option<Pipeline>,
    /// How far the supervisor got (absent before it first ran the pipeline).
    state: Option<PipelineState>,
}

async fn shown(store: &dyn TenantStore, record: PipelineRecord) -> Result<Shown, ApiError> {
    let pipeline = Pipeline::parse(&record.document).ok();
    let state = match store.pipeline_state(&record.name).await? {
        Some((bytes, _)) => match PipelineState::parse(&bytes) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(pipeline = %record.name, "the stored state does not parse: {e}");
                None
            }
        },
        None => None,
    };
    Ok(Shown {
        record,
        pipeline,
        state,
    })
}

fn check_name(name: &str) -> Result<(), ApiError> {
    check_pipeline_name(name).map_err(|reason| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid pipeline name {name:?}: {reason}"),
        )
    })
}

/// Publishes a pipeline's submission or stop on the caller's pipelines topic.
async fn publish(state: &AppState, caller: &Caller, spec: &PipelineSpec) -> Result<(), ApiError> {
    let topic = TopicKind::Pipelines.topic(&caller.tenant);
    state
        .backends
        .bus
        .produce(&topic, vec![Record::keyed(spec.pipeline.as_bytes(), encode(spec))])
        .await
        .map(|_| ())
        .map_err(|e| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "pipeline {:?} is stored but could not be published on {topic} ({e}); submit it again",
                    spec.pipeline
                ),
            )
        })
}

/// `POST /api/v1/pipelines`: a pipeline document (TOML); 201 with the pipeline, once it
/// is stored and published. Submitting a pipeline of the same name again replaces its
/// document and starts it over (also if it was stopped): the supervisor observes the
/// changesets committed so far as history, and trigger ids go on from the last.
pub(crate) async fn submit(State(state): State<AppState>, caller: Caller, body: Bytes) -> Answer {
    if body.len() > MAX_DOCUMENT {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a pipeline document is at most {MAX_DOCUMENT} bytes"),
        ));
    }
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "a pipeline document is UTF-8 TOML text".into(),
        )
    })?;
    let pipeline =
        Pipeline::parse(text).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let store = tenant_store(&state, &caller).await?;
    if store.dataset(&pipeline.dataset).await?.is_none() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "pipeline dataset: dataset {:?} does not exist (create it, or send it samples, first)",
                pipeline.dataset
            ),
        ));
    }
    let now = now_micros();
    let record = PipelineRecord {
        name: pipeline.name.clone(),
        document: text.to_owned(),
        status: PipelineStatus::Active,
        submitted_at: now,
        stopped_at: None,
    };
    store.put_pipeline(record.clone()).await?;
    let spec = PipelineSpec {
        tenant: caller.tenant.as_str().to_owned(),
        pipeline: pipeline.name.clone(),
        action: PipelineAction::Submit,
        document: Some(record.document.clone()),
        submitted_at: now,
        submitted_by: None,
    };
    publish(&state, &caller, &spec).await?;
    tracing::info!(tenant = %caller.tenant, pipeline = %pipeline.name, dataset = %pipeline.dataset, "pipeline submitted");
    Ok((
        StatusCode::CREATED,
        axum::Json(Shown {
            record,
            pipeline: Some(pipeline),
            state: None,
        }),
    )
        .into_response())
}

/// `GET /api/v1/pipelines`: every pipeline, by name.
pub(crate) async fn list(State(state): State<AppState>, caller: Caller) -> Answer {
    let store = tenant_store(&state, &caller).await?;
    let mut list = Vec::new();
    for record in store.pipelines().await? {
        list.push(shown(store.as_ref(), record).await?);
    }
    Ok(axum::Json(list).into_response())
}

async fn find(state: &AppState, caller: &Caller, name: &str) -> Result<PipelineRecord, ApiError> {
    check_name(name)?;
    let store = tenant_store(state, caller).await?;
    store.pipeline(name).await?.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("pipeline {name:?} not found"),
        )
    })
}

/// `GET /api/v1/pipelines/{name}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Answer {
    let record = find(&state, &caller, &name).await?;
    let store = tenant_store(&state, &caller).await?;
    Ok(axum::Json(shown(store.as_ref(), record).await?).into_response())
}

/// Most events `triggers` and `releases` answer.
const MAX_EVENTS: usize = 10_000;

/// The `limit` query parameter (the only one known): default and at most 10,000.
fn limit(params: &HashMap<String, String>) -> Result<usize, ApiError> {
    if let Some(bad) = params.keys().find(|k| k.as_str() != "limit") {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("unknown query parameter {bad:?}; the one known is limit"),
        ));
    }
    match params.get("limit") {
        None => Ok(MAX_EVENTS),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_EVENTS).contains(&n) => Ok(n),
            _ => Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("limit {text:?} is not a number from 1 to {MAX_EVENTS}"),
            )),
        },
    }
}

fn unreadable(topic: &str, e: &flywheel_topics::BusError) -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("reading the {topic} topic: {e}"),
    )
}

/// `GET /api/v1/pipelines/{name}/triggers[?limit=N]`: the training-set events the
/// supervisor emitted for the pipeline and the trainsets topic still keeps, oldest first
/// (the newest `limit`, default and at most 10,000).
pub(crate) async fn triggers(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let limit = limit(&params)?;
    find(&state, &caller, &name).await?;
    let events = pipeline_events(state.backends.bus.as_ref(), &caller.tenant, &name, limit)
        .await
        .map_err(|e| unreadable("trainsets", &e))?;
    Ok(axum::Json(events).into_response())
}

/// `GET /api/v1/pipelines/{name}/releases[?limit=N]`: the model releases trainers
/// published for the pipeline on the models topic, oldest first (the newest `limit`,
/// default and at most 10,000).
pub(crate) async fn releases(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let limit = limit(&params)?;
    find(&state, &caller, &name).await?;
    let events = pipeline_releases(state.backends.bus.as_ref(), &caller.tenant, &name, limit)
        .await
        .map_err(|e| unreadable("models", &e))?;
    Ok(axum::Json(events).into_response())
}

/// `POST /api/v1/pipelines/{name}/stop`: stops it (stopping a stopped one changes nothing).
pub(crate) async fn stop(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Answer {
    let mut record = find(&state, &caller, &name).await?;
    if record.status == PipelineStatus::Active {
        let now = now_micros();
        record.status = PipelineStatus::Stopped;
        record.stopped_at = Some(now);
        tenant_store(&state, &caller)
            .await?
            .put_pipeline(record.clone())
            .await?;
        let spec = PipelineSpec {
            tenant: caller.tenant.as_str().to_owned(),
            pipeline: name.clone(),
            action: PipelineAction::Stop,
            document: None,
            submitted_at: now,
            submitted_by: None,
        };
        publish(&state, &caller, &spec).await?;
        tracing::info!(tenant = %caller.tenant, pipeline = %name, "pipeline stopped");
    }
    let store = tenant_store(&state, &caller).await?;
    Ok(axum::Json(shown(store.as_ref(), record).await?).into_response())
}
