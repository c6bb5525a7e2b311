//! Pipelines over the API: a document is checked in full (every field, and its dataset)
//! before it is stored and published on the tenant's pipelines topic; list, show, stop.

mod common;

use common::{ACME, Content, Gateway, Stored};
use flywheel_schemas::{PipelineAction, PipelineSpec};
use flywheel_topics::TopicKind;
use reqwest::{Method, StatusCode};

const GOOD: &str = r#"
name = "sensors-retrain"
dataset = "sensors"
seed = 7

[trigger]
kind = "data_amount"
samples = 1000

[selection]
policy = "new_data"
limit = 500

[model]
kind = "mlp"
hidden = [16]
"#;

async fn submit(g: &Gateway, document: &str) -> (StatusCode, serde_json::Value) {
    g.call(
        Method::POST,
        "/pipelines",
        Some(ACME),
        Some(("application/toml", document.as_bytes().to_vec())),
    )
    .await
}

async fn with_dataset() -> Gateway {
    let g = Gateway::start().await;
    let sample = Stored {
        key: 1,
        label: None,
        content: Content::Payload(b"x".to_vec()),
        event_time: 0,
    };
    g.add("acme", "sensors", 1, &[sample]).await;
    g
}

fn specs(values: &[Vec<u8>]) -> Vec<PipelineSpec> {
    values
        .iter()
        .map(|v| flywheel_schemas::decode::<PipelineSpec>(v).unwrap())
        .collect()
}

#[tokio::test]
async fn submit_list_show_stop() {
    let g = with_dataset().await;
    let (status, v) = submit(&g, GOOD).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["name"], "sensors-retrain");
    assert_eq!(v["status"], "active");
    assert_eq!(v["pipeline"]["trigger"]["kind"], "data_amount");

    let (status, list) = g.get("/pipelines", ACME).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, shown) = g.get("/pipelines/sensors-retrain", ACME).await;
    assert_eq!(
        (status, &shown["document"]),
        (StatusCode::OK, &v["document"])
    );
    // no supervisor runs here: no progress, no triggers
    assert!(shown["state"].is_null(), "{shown}");
    let (status, triggers) = g.get("/pipelines/sensors-retrain/triggers", ACME).await;
    assert_eq!((status, triggers), (StatusCode::OK, serde_json::json!([])));

    // a new document under the same name replaces the old one
    let (status, v) = submit(&g, &GOOD.replace("samples = 1000", "samples = 2000")).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["pipeline"]["trigger"]["samples"], 2000);

    let (status, v) = g
        .call(
            Method::POST,
            "/pipelines/sensors-retrain/stop",
            Some(ACME),
            None,
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (StatusCode::OK, Some("stopped"))
    );
    assert!(v["stopped_at"].is_i64());

    // what the supervisor reads: two submissions and a stop, keyed by pipeline
    let published = specs(&g.topic("acme", TopicKind::Pipelines, 3).await);
    let actions: Vec<PipelineAction> = published.iter().map(|s| s.action).collect();
    assert_eq!(
        actions,
        [
            PipelineAction::Submit,
            PipelineAction::Submit,
            PipelineAction::Stop
        ]
    );
    assert!(
        published
            .iter()
            .all(|s| s.tenant == "acme" && s.pipeline == "sensors-retrain")
    );
    assert!(
        published[1]
            .document
            .as_deref()
            .unwrap()
            .contains("samples = 2000")
    );
}

#[tokio::test]
async fn bad_documents_are_refused_before_anything_is_published() {
    let g = with_dataset().await;
    let cases = [
        (
            GOOD.replace("policy = \"new_data\"", "policy = \"best\""),
            "best",
        ),
        (GOOD.replace("samples = 1000", ""), "samples"),
        (
            GOOD.replace("samples = 1000", "samples = 0"),
            "pipeline trigger.samples: must be at least 1",
        ),
        (
            GOOD.replace("limit = 500", "limit = 0"),
            "pipeline selection.limit",
        ),
        (
            GOOD.replace("hidden = [16]", "hidden = [0]"),
            "pipeline model.hidden",
        ),
        (
            GOOD.replace("dataset = \"sensors\"", "dataset = \"nope\""),
            "pipeline dataset: dataset \"nope\" does not exist",
        ),
        (
            GOOD.replace("name = \"sensors-retrain\"", "name = \"no spaces\""),
            "pipeline name",
        ),
        (GOOD.replace("seed = 7", "sead = 7"), "sead"),
        ("not toml at all [".to_owned(), "TOML parse error"),
    ];
    for (document, want) in cases {
        let (status, v) = submit(&g, &document).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{want}: {v}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(error.contains(want), "{want}: {error}");
    }
    let (status, v) = g
        .call(
            Method::POST,
            "/pipelines",
            Some(ACME),
            Some(("application/toml", vec![0xff, 0xfe])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let big = format!("{GOOD}\n#{}\n", "x".repeat(70_000));
    let (status, _) = submit(&g, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    for (method, path, status) in [
        (Method::GET, "/pipelines/nope", StatusCode::NOT_FOUND),
        (Method::POST, "/pipelines/nope/stop", StatusCode::NOT_FOUND),
        (Method::GET, "/pipelines/no%20pe", StatusCode::BAD_REQUEST),
        (
            Method::GET,
            "/pipelines/nope/triggers",
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/pipelines/nope/triggers?limit=0",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/pipelines/nope/triggers?limit=x",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/pipelines/nope/triggers?limit=10001",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/pipelines/nope/triggers?since=1",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (got, v) = g.call(method, path, Some(ACME), None).await;
        assert_eq!(got, status, "{path}: {v}");
    }
    assert!(g.topic("acme", TopicKind::Pipelines, 1).await.is_empty());
    let (_, list) = g.get("/pipelines", ACME).await;
    assert_eq!(list, serde_json::json!([]));
}
