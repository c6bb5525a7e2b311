//! The gateway under test: its router on 127.0.0.1:0 over the embedded bus, SQLite and one
//! in-memory blob store that every tenant shares (only the `{tenant}/` prefixes keep them
//! apart), with a token for each of two tenants, acme and globex.
#![allow(dead_code, unreachable_pub)]

pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use flywheel_gateway::{AppState, Auth, Backends, bind, gateway_routes, serve};
use flywheel_schemas::{BodyContent, ChangesetKind, now_micros, write_body};
use flywheel_store::{
    ChangesetRecord, IndexRow, MetaStore, NewChangeset, SampleLocation, TenantStore,
};
use flywheel_topics::{
    Bus, BusMetrics, ConsumerConfig, Subscription, Tenant, TopicKind, connect, tenant_topics,
};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use prometheus::Registry;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const ACME: &str = "acme-token-0123456789";
pub const GLOBEX: &str = "globex-token-0123456789";

/// A running gateway and the backends behind it.
pub struct Gateway {
    /// `http://ADDR`: `/healthz`, `/metrics`, and the API under `/api/v1`.
    pub root: String,
    /// `http://ADDR/api/v1`.
    pub base: String,
    pub bus: Arc<dyn Bus>,
    pub meta: Arc<dyn MetaStore>,
    /// The blob store all tenants share.
    pub blobs: Arc<dyn ObjectStore>,
    pub http: reqwest::Client,
    pub stop: CancellationToken,
    _dir: tempfile::TempDir,
}

/// An answer as it came: status, content type and the body's bytes.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (a string value if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into_owned()))
    }

    /// The `error` of a JSON error body, or "" if there is none.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Gateway {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bus = connect(
            &format!("embedded://{}", dir.path().join("bus").display()),
            &BusMetrics::new(&Registry::new()),
        )
        .await
        .unwrap();
        let meta = flywheel_store::open(&format!(
            "sqlite://{}",
            dir.path().join("meta.db").display()
        ))
        .await
        .unwrap();
        let blobs: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let tenants = [Tenant::new("acme").unwrap(), Tenant::new("globex").unwrap()];
        for t in &tenants {
            bus.create_topics(&tenant_topics(t)).await.unwrap();
        }
        let state = AppState {
            registry: Registry::new(),
            auth: Arc::new(Auth::with_tokens(vec![
                (ACME.into(), tenants[0].clone()),
                (GLOBEX.into(), tenants[1].clone()),
            ])),
            checks: Arc::new(Vec::new()),
            backends: Backends {
                bus: Arc::clone(&bus),
                meta: Arc::clone(&meta),
                blobs: Arc::clone(&blobs),
                sources: Arc::new(flywheel_sources::Sources::default()),
            },
        };
        let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, gateway_routes(state), stop.clone()));
        Self {
            root: format!("http://{addr}"),
            base: format!("http://{addr}/api/v1"),
            bus,
            meta,
            blobs,
            http: reqwest::Client::new(),
            stop,
            _dir: dir,
        }
    }

    /// A request to a path from the server's root (`/healthz`, `/api/v1/...`).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let mut r = self.http.request(method, format!("{}{path}", self.root));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some((content_type, bytes)) = body {
            r = r.header("content-type", content_type).body(bytes);
        }
        let response = r.send().await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.bytes().await.unwrap().to_vec();
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// A request to a path under `/api/v1`; the body as JSON (a string if it is not).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, Value) {
        let reply = self
            .request(method, &format!("/api/v1{path}"), token, body)
            .await;
        (reply.status, reply.json())
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        self.call(
            Method::POST,
            path,
            Some(token),
            Some(("application/json", bytes)),
        )
        .await
    }

    pub async fn tenant(&self, name: &str) -> Arc<dyn TenantStore> {
        self.meta.tenant(&Tenant::new(name).unwrap()).await.unwrap()
    }

    /// The values on a tenant's topic.
    pub async fn topic(&self, tenant: &str, kind: TopicKind, n: usize) -> Vec<Vec<u8>> {
        let topic = kind.topic(&Tenant::new(tenant).unwrap());
        let mut c = self
            .bus
            .subscribe(ConsumerConfig::new(
                format!("reader-{}", rand_suffix()),
                Subscription::topic(topic),
            ))
            .await
            .unwrap();
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while out.len() < n && std::time::Instant::now() < deadline {
            for m in c.poll(100, Duration::from_millis(100)).await.unwrap() {
                out.push(m.value.to_vec());
            }
        }
        out
    }

    /// Commits changeset `id` of a tenant's dataset adding `samples`, their stored forms
    /// packed in one segment object under the tenant's prefix, as ingest writes them.
    pub async fn add(&self, tenant: &str, dataset: &str, id: i64, samples: &[Stored]) {
        let uri = format!("{tenant}/{dataset}/segments/c{id}.seg");
        let mut segment = Vec::new();
        let mut rows = Vec::new();
        for s in samples {
            let offset = segment.len() as u64;
            let content = match &s.content {
                Content::Payload(p) => BodyContent::Payload(p),
                Content::Blob(b) => BodyContent::Blob(b),
            };
            let len = write_body(&mut segment, &[s.key as f64], content) as u64;
            rows.push(IndexRow {
                key: s.key,
                changeset: id,
                location: SampleLocation::Segment {
                    uri: uri.clone(),
                    offset,
                    length: len,
                },
                label: s.label.clone(),
                event_time: s.event_time,
                size: len,
            });
        }
        self.blobs
            .put(&Path::from(uri.as_str()), PutPayload::from(segment))
            .await
            .unwrap();
        let mut record = ChangesetRecord::new(dataset, id, ChangesetKind::Add, now_micros());
        record.sample_count = rows.len() as i64;
        record.bytes = rows.iter().map(|r| r.size as i64).sum();
        record.segments = vec![uri];
        self.tenant(tenant)
            .await
            .commit_changeset(NewChangeset::new(record).with_rows(rows))
            .await
            .unwrap();
    }
}

/// A sample as [`Gateway::add`] stores it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: u64,
    pub label: Option<String>,
    pub content: Content,
    pub event_time: i64,
}

/// What a stored sample carries besides its features (its key, as one feature).
#[derive(Debug, Clone)]
pub enum Content {
    /// An inline payload.
    Payload(Vec<u8>),
    /// The URI of an object the producer says it stored.
    Blob(String),
}

pub fn rand_suffix() -> u64 {
    now_micros().unsigned_abs()
}
