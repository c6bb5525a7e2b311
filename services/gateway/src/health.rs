//! `/healthz`: every dependency the process needs answers, or the reason it does not.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// A dependency `/healthz` checks (the bus, the metadata store, the blob store, ...).
#[async_trait]
pub trait HealthCheck: Send + Sync + fmt::Debug {
    /// A short name, e.g. "bus".
    fn name(&self) -> &str;
    /// `Ok` when the dependency answers, else why not.
    async fn check(&self) -> Result<(), String>;
}

/// A check from a name and a closure's future, for simple cases.
pub struct Check<F> {
    name: String,
    run: F,
}

impl<F> fmt::Debug for Check<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

impl<F, Fut> Check<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), String>> + Send,
{
    /// A check named `name` that runs `run`.
    pub fn new(name: impl Into<String>, run: F) -> Self {
        Self {
            name: name.into(),
            run,
        }
    }
}

#[async_trait]
impl<F, Fut> HealthCheck for Check<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), String>> + Send,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> Result<(), String> {
        (self.run)().await
    }
}

pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    let mut results = BTreeMap::new();
    let mut healthy = true;
    for check in state.checks.iter() {
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {CHECK_TIMEOUT:?}"),
        };
        healthy &= outcome == "ok";
        results.insert(check.name().to_owned(), outcome);
    }
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "checks": results,
    });
    (status, axum::Json(body)).into_response()
}
