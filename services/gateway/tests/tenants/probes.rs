//! One call of every route, on acme's resources where the route takes any, and what each
//! tenant's token must get from it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::Reply;
use crate::world::{
    ACME_MODEL, ACME_ONLY, ACME_PIPELINE, ACME_SAMPLES, GLOBEX_SAMPLES, SHARED, World,
    acme_pipeline,
};

/// One call of a route, with acme's resources in its path or body.
pub(crate) struct Probe {
    pub(crate) method: Method,
    pub(crate) route: &'static str,
    pub(crate) path: String,
    pub(crate) body: Option<(&'static str, Vec<u8>)>,
    /// The status globex gets.
    pub(crate) globex: StatusCode,
    /// What acme gets from the same call.
    pub(crate) acme: Acme,
    /// A JSON field that differs between the tenants: (pointer, acme's, globex's).
    pub(crate) field: Option<(&'static str, Value, Value)>,
}

/// What acme's own token gets from a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acme {
    /// 200, with some of acme's data in the answer.
    Shows,
    /// 200, with nothing in the answer that names acme (the probe's `field`, if any, still
    /// tells the tenants apart).
    Ok,
    /// Not sent: it would change acme's data.
    NotSent,
}

impl Probe {
    pub(crate) fn get(route: &'static str, path: impl Into<String>, globex: StatusCode) -> Self {
        Self {
            method: Method::GET,
            route,
            path: path.into(),
            body: None,
            globex,
            acme: Acme::Shows,
            field: None,
        }
    }

    pub(crate) fn post(
        route: &'static str,
        path: impl Into<String>,
        body: &Value,
        globex: StatusCode,
    ) -> Self {
        Self {
            method: Method::POST,
            body: Some(("application/json", serde_json::to_vec(body).unwrap())),
            ..Self::get(route, path, globex)
        }
    }

    pub(crate) fn with_body(mut self, content_type: &'static str, bytes: &[u8]) -> Self {
        self.body = Some((content_type, bytes.to_vec()));
        self
    }

    pub(crate) fn acme(mut self, acme: Acme) -> Self {
        self.acme = acme;
        self
    }

    pub(crate) fn field(mut self, pointer: &'static str, acme: Value, globex: Value) -> Self {
        self.field = Some((pointer, acme, globex));
        self
    }

    /// What the caller sent: what an answer may echo without leaking anything.
    pub(crate) fn request_text(&self) -> String {
        let body = self.body.as_ref().map(|(_, b)| String::from_utf8_lossy(b));
        format!("{} {}", self.path, body.unwrap_or_default())
    }

    pub(crate) fn check_field(&self, reply: &Reply, acme: bool, who: &str) {
        if let Some((pointer, acme_value, globex_value)) = &self.field {
            let want = if acme { acme_value } else { globex_value };
            let got = reply
                .json()
                .pointer(pointer)
                .cloned()
                .unwrap_or(Value::Null);
            assert_eq!(
                &got, want,
                "{who}: {} {}: {pointer}",
                self.method, self.path
            );
        }
    }
}

/// A call of every route, on acme's resources where it has any.
pub(crate) fn probes(w: &World) -> Vec<Probe> {
    use StatusCode as S;
    let ok = S::OK;
    let not_found = S::NOT_FOUND;
    let (shared, only, radar) = (&w.shared, &w.acme_only[0], &w.acme_only[1]);
    let acme_view = json!(ACME_SAMPLES + 3);
    let globex_view = json!(GLOBEX_SAMPLES - 1);
    let sample = br#"{"dataset":"sensors","features":[1],"event_time":"2026-11-21T10:00:00Z"}"#;
    vec![
        Probe::get("/healthz", "/healthz", ok).acme(Acme::Ok),
        Probe::get("/metrics", "/metrics", ok).acme(Acme::Ok),
        Probe::get("/api/v1/whoami", "/api/v1/whoami", ok).field(
            "/tenant",
            json!("acme"),
            json!("globex"),
        ),
        Probe::get("/api/v1/topics", "/api/v1/topics", ok),
        Probe::post("/api/v1/samples", "/api/v1/samples", &Value::Null, ok)
            .with_body("application/x-ndjson", sample)
            .field(
                "/topic",
                json!("flywheel.acme.samples"),
                json!("flywheel.globex.samples"),
            ),
        Probe::get("/api/v1/datasets", "/api/v1/datasets", ok).field(
            "/0/name",
            json!(ACME_ONLY),
            json!(SHARED),
        ),
        Probe::post(
            "/api/v1/datasets",
            "/api/v1/datasets",
            &json!({"name": SHARED}),
            ok,
        )
        .acme(Acme::Ok)
        .field("/samples", acme_view.clone(), globex_view.clone()),
        Probe::get(
            "/api/v1/datasets/{name}",
            format!("/api/v1/datasets/{ACME_ONLY}"),
            not_found,
        ),
        Probe::get(
            "/api/v1/datasets/{name}",
            format!("/api/v1/datasets/{SHARED}"),
            ok,
        )
        .acme(Acme::Ok)
        .field("/samples", acme_view.clone(), globex_view.clone()),
        Probe::get(
            "/api/v1/datasets/{name}/stats",
            format!("/api/v1/datasets/{ACME_ONLY}/stats"),
            not_found,
        ),
        Probe::get(
            "/api/v1/datasets/{name}/stats",
            format!("/api/v1/datasets/{SHARED}/stats"),
            ok,
        )
        .field("/samples", acme_view, globex_view.clone()),
        Probe::get(
            "/api/v1/datasets/{name}/changesets",
            format!("/api/v1/datasets/{ACME_ONLY}/changesets"),
            not_found,
        )
        .acme(Acme::Ok)
        .field("/0/sample_count", json!(4), Value::Null),
        Probe::get(
            "/api/v1/datasets/{name}/changesets",
            format!("/api/v1/datasets/{SHARED}/changesets"),
            ok,
        )
        .acme(Acme::Ok)
        .field("/2/kind", json!("add"), Value::Null),
        // edits: globex cannot edit acme's dataset, nor revert acme's changeset of a
        // dataset of the same name (not sent as acme: they would change its data)
        Probe::post(
            "/api/v1/datasets/{name}/changesets",
            format!("/api/v1/datasets/{ACME_ONLY}/changesets"),
            &json!({"kind": "revert", "changeset": 1}),
            not_found,
        )
        .acme(Acme::NotSent),
        Probe::post(
            "/api/v1/datasets/{name}/changesets",
            format!("/api/v1/datasets/{SHARED}/changesets"),
            &json!({"kind": "revert", "changeset": 3}),
            S::BAD_REQUEST,
        )
        .acme(Acme::NotSent),
        Probe::get(
            "/api/v1/datasets/{name}/changesets/{id}",
            format!("/api/v1/datasets/{ACME_ONLY}/changesets/1"),
            not_found,
        ),
        Probe::get(
            "/api/v1/datasets/{name}/changesets/{id}",
            format!("/api/v1/datasets/{SHARED}/changesets/3"),
            not_found,
        ),
        Probe::get(
            "/api/v1/datasets/{name}/changesets/{id}",
            format!("/api/v1/datasets/{SHARED}/changesets/2"),
            ok,
        )
        .field("/kind", json!("relabel"), json!("remove")),
        Probe::get(
            "/api/v1/datasets/{name}/changesets/{id}",
            format!("/api/v1/datasets/{SHARED}/changesets/1"),
            ok,
        )
        .field("/sample_count", json!(ACME_SAMPLES), json!(GLOBEX_SAMPLES)),
        Probe::get("/api/v1/trainsets", "/api/v1/trainsets", ok).field(
            "/0/manifest_uri",
            json!(format!("acme/{SHARED}/trainsets/{shared}.manifest")),
            json!(format!("globex/{SHARED}/trainsets/{shared}.manifest")),
        ),
        Probe::get(
            "/api/v1/trainsets",
            format!("/api/v1/trainsets?dataset={ACME_ONLY}"),
            ok,
        )
        .field("/0/version", json!(radar), Value::Null),
        Probe::get(
            "/api/v1/trainsets",
            format!("/api/v1/trainsets?dataset={SHARED}"),
            ok,
        )
        .field("/1/version", json!(only), Value::Null),
        Probe::post(
            "/api/v1/trainsets",
            "/api/v1/trainsets",
            &json!({"dataset": ACME_ONLY}),
            not_found,
        ),
        Probe::post(
            "/api/v1/trainsets",
            "/api/v1/trainsets",
            &json!({"dataset": SHARED, "as_of": 2}),
            ok,
        )
        .field("/samples", json!(ACME_SAMPLES), globex_view),
        // globex's head is 2: acme's changeset 3 is not there to select
        Probe::post(
            "/api/v1/trainsets",
            "/api/v1/trainsets",
            &json!({"dataset": SHARED, "changesets": "3"}),
            S::BAD_REQUEST,
        ),
        Probe::get(
            "/api/v1/trainsets/{version}",
            format!("/api/v1/trainsets/{only}"),
            not_found,
        ),
        Probe::get(
            "/api/v1/trainsets/{version}",
            format!("/api/v1/trainsets/{radar}"),
            not_found,
        ),
        Probe::get(
            "/api/v1/trainsets/{version}",
            format!("/api/v1/trainsets/{shared}"),
            ok,
        )
        .field("/stored_shards", json!(2), json!(1)),
        Probe::get(
            "/api/v1/trainsets/{version}/manifest",
            format!("/api/v1/trainsets/{only}/manifest"),
            not_found,
        ),
        Probe::get(
            "/api/v1/trainsets/{version}/manifest",
            format!("/api/v1/trainsets/{shared}/manifest"),
            ok,
        ),
        Probe::get(
            "/api/v1/trainsets/{version}/shards/{n}",
            format!("/api/v1/trainsets/{only}/shards/0"),
            not_found,
        ),
        Probe::get(
            "/api/v1/trainsets/{version}/shards/{n}",
            format!("/api/v1/trainsets/{radar}/shards/0"),
            not_found,
        ),
        Probe::get(
            "/api/v1/trainsets/{version}/shards/{n}",
            format!("/api/v1/trainsets/{shared}/shards/0"),
            ok,
        ),
        Probe::get("/api/v1/pipelines", "/api/v1/pipelines", ok).field(
            "/0/name",
            json!(ACME_PIPELINE),
            json!("sensors-globex"),
        ),
        Probe::get(
            "/api/v1/pipelines/{name}",
            format!("/api/v1/pipelines/{ACME_PIPELINE}"),
            not_found,
        ),
        Probe::get(
            "/api/v1/pipelines/{name}/triggers",
            format!("/api/v1/pipelines/{ACME_PIPELINE}/triggers"),
            not_found,
        ),
        Probe::get(
            "/api/v1/pipelines/{name}/releases",
            format!("/api/v1/pipelines/{ACME_PIPELINE}/releases"),
            not_found,
        ),
        Probe::get("/api/v1/models", "/api/v1/models", ok).field(
            "/0/id",
            json!(ACME_MODEL),
            Value::Null,
        ),
        Probe::get(
            "/api/v1/models/{id}",
            format!("/api/v1/models/{ACME_MODEL}"),
            not_found,
        ),
        Probe::get(
            "/api/v1/models/{id}/weights",
            format!("/api/v1/models/{ACME_MODEL}/weights"),
            not_found,
        ),
        Probe::get(
            "/api/v1/models/{id}/lineage",
            format!("/api/v1/models/{ACME_MODEL}/lineage?keys=true"),
            not_found,
        ),
        Probe::post(
            "/api/v1/pipelines/{name}/stop",
            format!("/api/v1/pipelines/{ACME_PIPELINE}/stop"),
            &Value::Null,
            not_found,
        )
        .acme(Acme::NotSent),
        // a document on acme's own dataset: globex has no such dataset
        Probe::post(
            "/api/v1/pipelines",
            "/api/v1/pipelines",
            &Value::Null,
            S::BAD_REQUEST,
        )
        .with_body("application/toml", acme_pipeline().as_bytes())
        .acme(Acme::NotSent),
        // a shard number only acme's copy of the version has
        Probe::get(
            "/api/v1/trainsets/{version}/shards/{n}",
            format!("/api/v1/trainsets/{shared}/shards/1"),
            not_found,
        ),
    ]
}
