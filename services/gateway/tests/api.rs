//! The gateway's API over real HTTP, on the embedded bus and SQLite: samples in (JSON lines
//! and Avro), datasets and changesets out, edits; malformed requests refused with a clear
//! answer; every request scoped to its token's tenant.

mod common;

use common::{ACME, Gateway};
use flywheel_schemas::{Event, Sample, encode};
use flywheel_store::{ChangesetRecord, IndexRow, NewChangeset, SampleLocation, TenantStore};
use flywheel_topics::TopicKind;
use reqwest::StatusCode;
use serde_json::json;

fn jsonl(n: usize, dataset: &str) -> Vec<u8> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"dataset":"{dataset}","features":[{i}],"label":"{}","event_time":"2026-11-21T10:00:00Z"}}"#,
                i % 2
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

fn row(key: u64, changeset: i64) -> IndexRow {
    IndexRow {
        key,
        changeset,
        location: SampleLocation::Blob {
            uri: format!("s3://b/{key}"),
        },
        label: Some("a".into()),
        event_time: key as i64,
        size: 10,
    }
}

async fn seed(t: &dyn TenantStore, dataset: &str) {
    let record = ChangesetRecord::new(dataset, 1, flywheel_schemas::ChangesetKind::Add, 1);
    t.commit_changeset(NewChangeset::new(record).with_rows((0..5).map(|k| row(k, 1)).collect()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_are_published_for_the_callers_tenant() {
    let g = Gateway::start().await;
    let post = |token: &'static str, ct: &'static str, body: Vec<u8>| {
        let g = &g;
        async move {
            g.call(
                reqwest::Method::POST,
                "/samples",
                Some(token),
                Some((ct, body)),
            )
            .await
        }
    };
    let (status, v) = post(ACME, "application/x-ndjson", jsonl(3, "sensors")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["published"], 3);
    assert_eq!(v["topic"], "flywheel.acme.samples");
    // the samples' keys, in body order: consecutive places on one partition
    let keys: Vec<u64> = (v["keys"].as_array().unwrap().iter())
        .map(|k| k.as_u64().unwrap())
        .collect();
    assert_eq!(keys.len(), 3, "{v}");
    assert!(keys.windows(2).all(|w| w[1] == w[0] + 1), "{v}");

    // Avro object container file
    let sample = Sample {
        dataset: "images".into(),
        features: vec![],
        payload: Some(vec![1, 2, 3]),
        blob: None,
        label: None,
        event_time: 7,
        producer: None,
    };
    let mut w = apache_avro::Writer::new(<Sample as Event>::schema(), Vec::new()).unwrap();
    w.append_ser(&sample).unwrap();
    let (status, v) = post(ACME, "application/avro", w.into_inner().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    let on_acme = g.topic("acme", TopicKind::Samples, 4).await;
    assert_eq!(on_acme.len(), 4);
    assert!(
        on_acme.contains(&encode(&sample)),
        "Avro samples go on single-object encoded"
    );
    let json = on_acme
        .iter()
        .filter(|v| v.starts_with(br#"{"dataset":"sensors""#));
    assert_eq!(json.count(), 3, "JSON lines as sent");
    assert!(g.topic("globex", TopicKind::Samples, 1).await.is_empty());

    // a body with a bad line publishes nothing and names the line
    let mut bad = jsonl(2, "sensors");
    bad.extend_from_slice(b"\n{\"dataset\":\"sensors\",\"features\":[1],\"label\":7,\"event_time\":\"2026-11-21T10:00:00Z\"}");
    let (status, v) = post(ACME, "application/x-ndjson", bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["refused"][0]["line"], 3);
    assert_eq!(v["refused"][0]["reason"], "label_type");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("nothing was published"),
        "{v}"
    );

    for (ct, body, status, says) in [
        (
            "image/png",
            b"x".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content type",
        ),
        (
            "application/x-ndjson",
            b"\n\n".to_vec(),
            StatusCode::BAD_REQUEST,
            "no samples",
        ),
        (
            "application/avro",
            b"Obj\x01junk".to_vec(),
            StatusCode::BAD_REQUEST,
            "not an Avro object container file",
        ),
        (
            "application/x-ndjson",
            b"\xff\xfe".to_vec(),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
    ] {
        let (got, v) = post(ACME, ct, body).await;
        assert_eq!(got, status, "{ct}: {v}");
        assert!(v.to_string().contains(says), "{ct}: {v}");
    }
    assert_eq!(
        g.topic("acme", TopicKind::Samples, 5).await.len(),
        4,
        "nothing more published"
    );

    // no token, a wrong token
    let (status, _) = g
        .call(
            reqwest::Method::POST,
            "/samples",
            None,
            Some(("application/x-ndjson", jsonl(1, "s"))),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(
        "not-a-token-of-anyone",
        "application/x-ndjson",
        jsonl(1, "s"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    g.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_changesets_and_edits() {
    let g = Gateway::start().await;
    let acme = g.tenant("acme").await;
    seed(acme.as_ref(), "sensors").await;
    seed(g.tenant("globex").await.as_ref(), "secret").await;

    let (status, v) = g.get("/datasets", ACME).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["name"], "sensors");
    let (_, v) = g.get("/datasets/sensors/stats", ACME).await;
    assert_eq!(
        (v["samples"].as_u64(), v["labels"]["a"].as_u64()),
        (Some(5), Some(5))
    );

    // another tenant's dataset does not exist for this one
    for path in [
        "/datasets/secret",
        "/datasets/secret/stats",
        "/datasets/secret/changesets",
        "/datasets/secret/changesets/1",
    ] {
        let (status, v) = g.get(path, ACME).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {v}");
        assert!(!v.to_string().contains("s3://"), "{path}: {v}");
    }
    let (status, _) = g
        .post_json(
            "/datasets/secret/changesets",
            ACME,
            &json!({"kind":"remove","keys":[1]}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        g.tenant("globex")
            .await
            .dataset("secret")
            .await
            .unwrap()
            .unwrap()
            .samples,
        5
    );

    // edits
    let (status, v) = g
        .post_json(
            "/datasets/sensors/changesets",
            ACME,
            &json!({"kind":"remove","keys":[1, 2]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["id"].as_i64(), v["kind"].as_str()),
        (Some(2), Some("remove"))
    );
    let (status, v) = g
        .post_json(
            "/datasets/sensors/changesets",
            ACME,
            &json!({"kind":"relabel","labels":[[0,"b"],[3,null]]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = g
        .post_json(
            "/datasets/sensors/changesets",
            ACME,
            &json!({"kind":"revert","changeset":2}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["reverts"], 2);
    let (_, v) = g.get("/datasets/sensors/changesets", ACME).await;
    let kinds: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["add", "remove", "relabel", "revert"]);
    let (_, v) = g.get("/datasets/sensors/changesets/3", ACME).await;
    assert_eq!(v["relabels"], json!([[0, "b"], [3, null]]));
    let (_, v) = g.get("/datasets/sensors/stats", ACME).await;
    assert_eq!(v["samples"], 5);
    assert_eq!(v["labels"]["b"], 1);
    assert_eq!(v["unlabelled"], 1);

    // every edit is announced on the tenant's changesets topic
    let events = g.topic("acme", TopicKind::Changesets, 3).await;
    let ids: Vec<i64> = events
        .iter()
        .map(|e| {
            flywheel_schemas::decode::<flywheel_schemas::Changeset>(e)
                .unwrap()
                .id
        })
        .collect();
    assert_eq!(ids, [2, 3, 4]);
    assert!(g.topic("globex", TopicKind::Changesets, 1).await.is_empty());

    // malformed requests
    for (path, body, status, says) in [
        (
            "/datasets/sensors/changesets",
            json!({"kind":"explode"}),
            StatusCode::BAD_REQUEST,
            "unknown variant",
        ),
        (
            "/datasets/sensors/changesets",
            json!({"kind":"remove"}),
            StatusCode::BAD_REQUEST,
            "missing field",
        ),
        (
            "/datasets/sensors/changesets",
            json!({"kind":"remove","keys":[99]}),
            StatusCode::BAD_REQUEST,
            "key 99 is not in the dataset",
        ),
        (
            "/datasets/sensors/changesets",
            json!({"kind":"revert","changeset":40}),
            StatusCode::BAD_REQUEST,
            "changeset 40 does not exist",
        ),
        (
            "/datasets/sensors/changesets",
            json!({"kind":"remove_where","filter":{"colour":"red"}}),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "/datasets/a%20b/changesets",
            json!({"kind":"remove","keys":[1]}),
            StatusCode::BAD_REQUEST,
            "invalid dataset name",
        ),
        (
            "/datasets/nope/changesets",
            json!({"kind":"remove","keys":[1]}),
            StatusCode::NOT_FOUND,
            "dataset \\\"nope\\\" not found",
        ),
        (
            "/datasets",
            json!({"name":"a/b"}),
            StatusCode::BAD_REQUEST,
            "invalid dataset name",
        ),
        (
            "/datasets",
            json!({"nam":"x"}),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "/datasets",
            json!(["fresh"]),
            StatusCode::BAD_REQUEST,
            "expected a JSON object",
        ),
        (
            "/datasets/sensors/changesets",
            json!(["remove", [1]]),
            StatusCode::BAD_REQUEST,
            "expected a JSON object",
        ),
    ] {
        let (got, v) = g.post_json(path, ACME, &body).await;
        assert_eq!(got, status, "{path} {body}: {v}");
        assert!(v.to_string().contains(says), "{path} {body}: {v}");
    }
    let (status, v) = g.get("/datasets/sensors/changesets/x", ACME).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, v) = g
        .call(
            reqwest::Method::POST,
            "/datasets/sensors/changesets",
            Some(ACME),
            Some(("application/json", b"{".to_vec())),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");

    // create
    let (status, _) = g
        .post_json("/datasets", ACME, &json!({"name":"fresh"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = g
        .post_json("/datasets", ACME, &json!({"name":"fresh"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        g.tenant("globex")
            .await
            .dataset("fresh")
            .await
            .unwrap()
            .is_none()
    );
    g.stop.cancel();
}
