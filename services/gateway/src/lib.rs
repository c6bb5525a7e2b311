//! flywheel's HTTP API. Every serving process answers `/healthz` and `/metrics`; the
//! gateway adds the API the admin commands are clients of (like kubectl of its API server)
//! under `/api/v1`, each request scoped to the tenant its bearer token names. With no tokens
//! configured there is one tenant, `default`, open to loopback clients only.

mod auth;
mod datasets;
mod health;
mod json;
mod models;
mod pipelines;
pub mod samples;
mod trainsets;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flywheel_sources::Sources;
use flywheel_store::MetaStore;
use flywheel_topics::{Bus, TopicKind};
use object_store::ObjectStore;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::{Auth, AuthError, Caller};
pub use health::{Check, HealthCheck};
pub use trainsets::SAMPLES_HEADER;

/// What the HTTP handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The process's metrics.
    pub registry: Registry,
    /// Who may call the API, as which tenant.
    pub auth: Arc<Auth>,
    /// What `/healthz` checks.
    pub checks: Arc<Vec<Box<dyn HealthCheck>>>,
    /// The backends the API works on.
    pub backends: Backends,
}

/// The backends the API works on.
#[derive(Debug, Clone)]
pub struct Backends {
    /// The event bus (samples are published to it, changeset events announced on it).
    pub bus: Arc<dyn Bus>,
    /// The metadata store.
    pub meta: Arc<dyn MetaStore>,
    /// The blob store (segments, manifests), each tenant under its own prefix.
    pub blobs: Arc<dyn ObjectStore>,
    /// Restricted-data sources, each for its tenants only.
    pub sources: Arc<Sources>,
}

/// Largest request body `POST /api/v1/samples` takes.
pub const MAX_SAMPLES_BODY: usize = 64 * 1024 * 1024;

/// The routes every serving process has: `/healthz`, `/metrics`.
pub fn base_routes(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// The gateway: the base routes plus the API under `/api/v1`.
pub fn gateway_routes(state: AppState) -> Router {
    let api = Router::new()
        .route("/whoami", get(whoami))
        .route("/topics", get(topics))
        .route(
            "/samples",
            post(samples::post_samples).layer(DefaultBodyLimit::max(MAX_SAMPLES_BODY)),
        )
        .route("/datasets", get(datasets::list).post(datasets::create))
        .route("/datasets/{name}", get(datasets::show))
        .route("/datasets/{name}/stats", get(datasets::stats))
        .route(
            "/datasets/{name}/changesets",
            get(datasets::changesets).post(datasets::edit),
        )
        .route("/datasets/{name}/changesets/{id}", get(datasets::changeset))
        .route(
            "/pipelines",
            get(pipelines::list)
                .post(pipelines::submit)
                .layer(DefaultBodyLimit::max(pipelines::MAX_DOCUMENT + 1)),
        )
        .route("/pipelines/{name}", get(pipelines::show))
        .route("/pipelines/{name}/stop", post(pipelines::stop))
        .route("/pipelines/{name}/triggers", get(pipelines::triggers))
        .route("/pipelines/{name}/releases", get(pipelines::releases))
        .route("/models", get(models::list))
        .route("/models/{id}", get(models::show))
        .route("/models/{id}/weights", get(models::weights))
        .route("/models/{id}/lineage", get(models::lineage))
        .route("/trainsets", get(trainsets::list).post(trainsets::prepare))
        .route("/trainsets/{version}", get(trainsets::show))
        .route("/trainsets/{version}/manifest", get(trainsets::manifest))
        .route("/trainsets/{version}/shards/{n}", get(trainsets::shard))
        .with_state(state.clone());
    base_routes(state)
        .nest("/api/v1", api)
        .fallback(|| async { api_error(StatusCode::NOT_FOUND, "no such endpoint") })
}

/// A JSON error body: `{"error": "..."}`.
pub fn api_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut buf = Vec::new();
    let families = state.registry.gather();
    match TextEncoder::new().encode(&families, &mut buf) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                TextEncoder::new().format_type().to_owned(),
            )],
            buf,
        )
            .into_response(),
        Err(e) => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding metrics: {e}"),
        ),
    }
}

async fn whoami(caller: Caller) -> Response {
    axum::Json(serde_json::json!({ "tenant": caller.tenant })).into_response()
}

async fn topics(caller: Caller) -> Response {
    let rows: Vec<serde_json::Value> = TopicKind::ALL
        .into_iter()
        .map(|kind| {
            let spec = kind.spec();
            serde_json::json!({
                "topic": kind.topic(&caller.tenant),
                "kind": kind,
                "key": spec.key,
                "partitions": spec.partitions,
                "schema": spec.schema,
            })
        })
        .collect();
    axum::Json(rows).into_response()
}

/// Binds `addr`. Port 0 picks a free port; the bound address is returned with the listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves `router` until `shutdown` is cancelled, then finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
