//! The admin commands' client of the gateway's HTTP API (`--server`, `--token`).

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use crate::cli::Global;

/// A client of one gateway.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub(crate) fn new(global: &Global) -> anyhow::Result<Self> {
        let base = global.server.trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base).with_context(|| {
            format!("--server {base:?} is not a URL (e.g. http://127.0.0.1:8480)")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("--server {base:?} must be an http:// or https:// URL");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base,
            token: global.token.clone(),
        })
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let r = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends a request and reads the JSON answer; an error answer becomes an error with
    /// the gateway's message.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer of {}", self.base))?;
        if !status.is_success() {
            bail!("{}", self.refusal(status, &error_message(&body)));
        }
        serde_json::from_slice(&body).with_context(|| {
            format!(
                "the gateway {} answered something that is not the expected JSON",
                self.base
            )
        })
    }

    /// Sends a request and returns the answer to be read as a stream; an error answer
    /// becomes an error with the gateway's message.
    pub(crate) async fn stream(
        &self,
        method: Method,
        path: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let response = self
            .request(method, path)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        bail!("{}", self.refusal(status, &error_message(&body)));
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.request(Method::GET, path)).await
    }

    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<T> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
        anyhow::anyhow!(
            "cannot reach the gateway at {}: {cause} (is `flywheel up` running there? see --server)",
            self.base
        )
    }

    fn refusal(&self, status: StatusCode, message: &str) -> String {
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                format!(
                    "the gateway {} refused the request ({status}): {message}; see --token",
                    self.base
                )
            }
            _ => format!("{message} ({status})"),
        }
    }
}

/// The message of an error answer: its JSON `error`, or its text.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}
