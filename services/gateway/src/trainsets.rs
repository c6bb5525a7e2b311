//! `/api/v1/trainsets`: prepare a training set (POST a query, get its version), list and
//! show them, read a manifest and stream its shards as tar archives. Every request reads
//! and writes the caller's tenant only: the metadata store hands out that tenant's
//! namespace, and manifests and samples are read under its prefix of the blob store.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use flywheel_schemas::now_micros;
use flywheel_store::TrainsetRecord;
use flywheel_trainset::{QueryRequest, Summary, TrainsetError, Version};
use futures::TryStreamExt;
use object_store::ObjectStoreExt as _;

use crate::datasets::{Answer, ApiError, check_name, tenant_store};
use crate::json::Object;
use crate::{AppState, Caller};

/// The header of a shard answer that says how many samples it holds (stored shards).
pub const SAMPLES_HEADER: &str = "x-flywheel-samples";

impl From<TrainsetError> for ApiError {
    fn from(e: TrainsetError) -> Self {
        match e {
            TrainsetError::Store(e) => e.into(),
            TrainsetError::Invalid { .. } => Self(StatusCode::BAD_REQUEST, e.to_string()),
            TrainsetError::NotFound(_) => Self(StatusCode::NOT_FOUND, e.to_string()),
            TrainsetError::Source(e) => e.into(),
            TrainsetError::Blobs { .. } | TrainsetError::Corrupt { .. } => {
                tracing::error!(error = %e, "training set read failed");
                Self(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

/// `POST /api/v1/trainsets`: a [`QueryRequest`]; answers its [`Summary`], 201 when this
/// request prepared it, 200 when it existed.
pub(crate) async fn prepare(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<axum::Json<Object<QueryRequest>>, JsonRejection>,
) -> Answer {
    let axum::Json(Object(request)) = body?;
    let store = tenant_store(&state, &caller).await?;
    let started = std::time::Instant::now();
    let p = flywheel_trainset::prepare(
        store.as_ref(),
        &state.backends.blobs,
        &request,
        now_micros(),
    )
    .await?;
    tracing::info!(
        tenant = %caller.tenant,
        dataset = %p.record.dataset,
        version = %p.record.version,
        samples = p.footer.samples,
        created = p.created,
        seconds = started.elapsed().as_secs_f64(),
        "training set prepared"
    );
    let status = if p.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let summary = Summary::new(&p.record, &p.footer, Some(p.created));
    Ok((status, axum::Json(summary)).into_response())
}

/// `GET /api/v1/trainsets[?dataset=D]`: the training sets, oldest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    if let Some(bad) = params.keys().find(|k| k.as_str() != "dataset") {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("unknown query parameter {bad:?}; the one known is dataset"),
        ));
    }
    if let Some(name) = params.get("dataset") {
        check_name(name)?;
    }
    let store = tenant_store(&state, &caller).await?;
    let list = store
        .trainsets(params.get("dataset").map(String::as_str))
        .await?;
    Ok(axum::Json(list).into_response())
}

async fn record(
    state: &AppState,
    caller: &Caller,
    version: &str,
) -> Result<TrainsetRecord, ApiError> {
    let version = Version::parse(version)?;
    let store = tenant_store(state, caller).await?;
    store.trainset(version.as_str()).await?.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("training set {version} not found"),
        )
    })
}

/// `GET /api/v1/trainsets/{version}`: its [`Summary`].
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(version): Path<String>,
) -> Answer {
    let record = record(&state, &caller, &version).await?;
    let footer = flywheel_trainset::read_footer(&state.backends.blobs, &record).await?;
    Ok(axum::Json(Summary::new(&record, &footer, None)).into_response())
}

/// `GET /api/v1/trainsets/{version}/manifest`: the manifest's bytes, streamed.
pub(crate) async fn manifest(
    State(state): State<AppState>,
    caller: Caller,
    Path(version): Path<String>,
) -> Answer {
    let record = record(&state, &caller, &version).await?;
    let path = object_store::path::Path::from(record.manifest_uri.as_str());
    let got = state
        .backends
        .blobs
        .get(&path)
        .await
        .map_err(|e| TrainsetError::Blobs {
            what: format!("reading manifest {}", record.manifest_uri),
            source: e,
        })?;
    let length = got.meta.size;
    let body = Body::from_stream(got.into_stream());
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response())
}

/// `GET /api/v1/trainsets/{version}/shards/{n}`: shard `n` as a tar archive, streamed.
pub(crate) async fn shard(
    State(state): State<AppState>,
    caller: Caller,
    Path((version, n)): Path<(String, String)>,
) -> Answer {
    let n: usize = n.parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("shard {n:?} is not a shard number (0, 1, ...)"),
        )
    })?;
    let record = record(&state, &caller, &version).await?;
    let footer = Arc::new(flywheel_trainset::read_footer(&state.backends.blobs, &record).await?);
    if n >= footer.shards.len() && n < footer.shard_count() {
        // rows of a restricted source: read now, streamed to the caller, kept nowhere
        let part = &footer.restricted[n - footer.shards.len()];
        let source = state
            .backends
            .sources
            .get(&caller.tenant, &part.query.source)?;
        let rows = source.fetch(&part.query).await?;
        tracing::info!(
            tenant = %caller.tenant,
            version = %record.version,
            shard = n,
            changeset = part.changeset,
            source = %part.query.source,
            "streaming rows of a restricted source"
        );
        let stream = flywheel_trainset::restricted_shard(part, &footer.query, rows);
        let tenant = caller.tenant.clone();
        let body = Body::from_stream(stream.inspect_err(move |e| {
            tracing::error!(tenant = %tenant, shard = n, error = %e, "restricted shard stream failed");
        }));
        return Ok((
            [
                (header::CONTENT_TYPE, "application/x-tar".to_owned()),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            body,
        )
            .into_response());
    }
    let samples = footer.shards.get(n).map(|s| s.samples);
    let stream = flywheel_trainset::stored_shard(
        state.backends.blobs.clone(),
        caller.tenant.as_str().to_owned(),
        &record.manifest_uri,
        footer,
        n,
    )
    .await?;
    let tenant = caller.tenant.clone();
    let body = Body::from_stream(stream.inspect_err(move |e| {
        tracing::error!(tenant = %tenant, shard = n, error = %e, "shard stream failed");
    }));
    let mut response = (
        [(header::CONTENT_TYPE, "application/x-tar".to_owned())],
        body,
    )
        .into_response();
    if let Some(samples) = samples {
        response
            .headers_mut()
            .insert(SAMPLES_HEADER, samples.into());
    }
    Ok(response)
}
