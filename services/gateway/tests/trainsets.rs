//! Malformed requests to the training-set routes: each is refused with the status that
//! fits (400 for what the caller wrote wrong, 404 for what does not exist), a JSON `error`
//! naming the field or value at fault, and nothing prepared.

mod common;

use common::{ACME, Content, Gateway, Stored};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A dataset `sensors` of three changesets (add, relabel, add) and one prepared training
/// set; its version is returned.
async fn prepared(g: &Gateway) -> String {
    let stored = |keys: std::ops::Range<u64>| -> Vec<Stored> {
        keys.map(|key| Stored {
            key,
            label: Some(["cat", "dog"][(key % 2) as usize].to_owned()),
            content: Content::Payload(format!("payload {key}").into_bytes()),
            event_time: 1_000_000 * key as i64,
        })
        .collect()
    };
    g.add("acme", "sensors", 1, &stored(0..10)).await;
    let (status, v) = g
        .post_json(
            "/datasets/sensors/changesets",
            ACME,
            &json!({"kind": "relabel", "labels": [[1, "eel"]]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    g.add("acme", "sensors", 3, &stored(10..15)).await;
    let (status, v) = g
        .post_json("/datasets", ACME, &json!({"name": "empty"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = g
        .post_json("/trainsets", ACME, &json!({"dataset": "sensors"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["stored_shards"], 1);
    v["version"].as_str().unwrap().to_owned()
}

async fn post_raw(g: &Gateway, content_type: &str, body: &[u8]) -> (StatusCode, String) {
    let reply = g
        .request(
            Method::POST,
            "/api/v1/trainsets",
            Some(ACME),
            Some((content_type, body.to_vec())),
        )
        .await;
    (reply.status, reply.error())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_prepare_requests_name_what_is_wrong() {
    let g = Gateway::start().await;
    prepared(&g).await;

    // bodies that are not a query at all
    for (content_type, body, says) in [
        ("application/json", &b"{"[..], "EOF while parsing an object"),
        ("application/json", b"", "EOF while parsing a value"),
        (
            "application/json",
            b"{\"dataset\": sensors}",
            "expected value",
        ),
        (
            "application/json",
            b"[\"sensors\"]",
            "invalid type: sequence, expected a JSON object",
        ),
        (
            "application/json",
            b"\"sensors\"",
            "invalid type: string \"sensors\", expected a JSON object",
        ),
        (
            "application/json",
            b"null",
            "invalid type: null, expected a JSON object",
        ),
        (
            "text/plain",
            b"{\"dataset\":\"sensors\"}",
            "Content-Type: application/json",
        ),
    ] {
        let (status, error) = post_raw(&g, content_type, body).await;
        let shown = String::from_utf8_lossy(body);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{shown}: {error}");
        assert!(error.contains(says), "{shown}: {error}");
    }

    // queries with a field that is wrong, each named
    for (body, status, says) in [
        (
            json!({"dataset": "sensors", "lables": []}),
            StatusCode::BAD_REQUEST,
            "unknown field `lables`",
        ),
        (
            json!({}),
            StatusCode::BAD_REQUEST,
            "missing field `dataset`",
        ),
        (
            json!({"dataset": 7}),
            StatusCode::BAD_REQUEST,
            "dataset: invalid type: integer `7`, expected a string",
        ),
        (
            json!({"dataset": "a b"}),
            StatusCode::BAD_REQUEST,
            "invalid dataset: dataset has ` ` at character 1",
        ),
        (
            json!({"dataset": "nope"}),
            StatusCode::NOT_FOUND,
            "dataset \"nope\" not found",
        ),
        (
            json!({"dataset": "empty"}),
            StatusCode::BAD_REQUEST,
            "invalid dataset: dataset \"empty\" has no changesets yet",
        ),
        (
            json!({"dataset": "sensors", "percentage": 1.5}),
            StatusCode::BAD_REQUEST,
            "invalid percentage: 1.5 is outside (0, 1]",
        ),
        (
            json!({"dataset": "sensors", "percentage": 0}),
            StatusCode::BAD_REQUEST,
            "invalid percentage: 0 is outside (0, 1]",
        ),
        (
            json!({"dataset": "sensors", "percentage": -0.5}),
            StatusCode::BAD_REQUEST,
            "invalid percentage: -0.5 is outside (0, 1]",
        ),
        (
            json!({"dataset": "sensors", "percentage": "half"}),
            StatusCode::BAD_REQUEST,
            "percentage: invalid type: string \"half\", expected f64",
        ),
        (
            json!({"dataset": "sensors", "changesets": "1,,2"}),
            StatusCode::BAD_REQUEST,
            "invalid changesets: \"1,,2\" has an empty item",
        ),
        (
            json!({"dataset": "sensors", "changesets": "3-"}),
            StatusCode::BAD_REQUEST,
            "invalid changesets: \"3-\" is not a changeset id or a range",
        ),
        (
            json!({"dataset": "sensors", "changesets": "3-1"}),
            StatusCode::BAD_REQUEST,
            "invalid changesets: \"3-1\" is an inverted range",
        ),
        (
            json!({"dataset": "sensors", "changesets": "0"}),
            StatusCode::BAD_REQUEST,
            "invalid changesets: \"0\": changeset ids start at 1",
        ),
        (
            json!({"dataset": "sensors", "changesets": "2-9"}),
            StatusCode::BAD_REQUEST,
            "invalid changesets: changeset 9 is after the as-of changeset 3",
        ),
        (
            json!({"dataset": "sensors", "changesets": 2}),
            StatusCode::BAD_REQUEST,
            "changesets: invalid type: integer `2`, expected a string",
        ),
        (
            json!({"dataset": "sensors", "from": 5_000_000, "to": 5_000_000}),
            StatusCode::BAD_REQUEST,
            "invalid from: the time range is empty or inverted",
        ),
        (
            json!({"dataset": "sensors", "from": 9_000_000, "to": 2_000_000}),
            StatusCode::BAD_REQUEST,
            "invalid from: the time range is empty or inverted",
        ),
        (
            json!({"dataset": "sensors", "as_of": 4}),
            StatusCode::BAD_REQUEST,
            "invalid as_of: changeset 4 does not exist: dataset \"sensors\" has changesets 1 to 3",
        ),
        (
            json!({"dataset": "sensors", "as_of": 0}),
            StatusCode::BAD_REQUEST,
            "invalid as_of: changeset 0 does not exist",
        ),
        (
            json!({"dataset": "sensors", "labels": [""]}),
            StatusCode::BAD_REQUEST,
            "invalid labels: label \"\" is empty",
        ),
        (
            json!({"dataset": "sensors", "selection": {"policy": "best", "count": 3, "seed": 1}}),
            StatusCode::BAD_REQUEST,
            "selection.policy: unknown variant `best`, expected one of `uniform`, `label_balanced`, `keys`",
        ),
        (
            json!({"dataset": "sensors", "selection": {"count": 3, "seed": 1}}),
            StatusCode::BAD_REQUEST,
            "selection: missing field `policy`",
        ),
        (
            json!({"dataset": "sensors", "selection": {"policy": "uniform", "count": 3}}),
            StatusCode::BAD_REQUEST,
            "selection: missing field `seed`",
        ),
        (
            json!({"dataset": "sensors", "selection": {"policy": "uniform", "count": 0, "seed": 1}}),
            StatusCode::BAD_REQUEST,
            "invalid selection.count",
        ),
        (
            json!({"dataset": "sensors", "selection": {"policy": "label_balanced", "per_label": 0, "seed": 1}}),
            StatusCode::BAD_REQUEST,
            "invalid selection.per_label",
        ),
        (
            json!({"dataset": "sensors", "selection": {"policy": "keys", "list": "../x", "count": 1}}),
            StatusCode::BAD_REQUEST,
            "invalid selection.list: \"../x\" is not a key list's digest (64 lowercase hex digits)",
        ),
        (
            json!({"dataset": "sensors", "selection": {"policy": "keys", "list": "ab".repeat(32), "count": 0}}),
            StatusCode::BAD_REQUEST,
            "invalid selection.count: a key list of 0 keys selects nothing",
        ),
        (
            json!({"dataset": "sensors", "selection": {"policy": "keys", "list": "ab".repeat(32), "count": 3}}),
            StatusCode::NOT_FOUND,
            &format!(
                "key list acme/sensors/selections/{}.keys not found",
                "ab".repeat(32)
            ),
        ),
    ] {
        let (got, v) = g.post_json("/trainsets", ACME, &body).await;
        assert_eq!(got, status, "{body}: {v}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{body}: {v}");
    }

    // none of them prepared anything
    let (status, v) = g.get("/trainsets", ACME).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reads_name_what_is_wrong() {
    let g = Gateway::start().await;
    let version = prepared(&g).await;
    let unknown = "0".repeat(32);
    let upper = version.to_uppercase();
    let short = &version[..31];

    let bad = StatusCode::BAD_REQUEST;
    let missing = StatusCode::NOT_FOUND;
    let not_a_version = "is not a training-set version (32 lowercase hex digits)";
    let cases: Vec<(String, StatusCode, String)> = vec![
        // versions
        (
            "/trainsets/xyz".into(),
            bad,
            format!("invalid version: \"xyz\" {not_a_version}"),
        ),
        (
            format!("/trainsets/{upper}"),
            bad,
            format!("invalid version: \"{upper}\" {not_a_version}"),
        ),
        (
            format!("/trainsets/{short}/manifest"),
            bad,
            format!("invalid version: \"{short}\" {not_a_version}"),
        ),
        (
            "/trainsets/xyz/shards/0".into(),
            bad,
            format!("invalid version: \"xyz\" {not_a_version}"),
        ),
        (
            format!("/trainsets/{unknown}"),
            missing,
            format!("training set {unknown} not found"),
        ),
        (
            format!("/trainsets/{unknown}/manifest"),
            missing,
            format!("training set {unknown} not found"),
        ),
        (
            format!("/trainsets/{unknown}/shards/0"),
            missing,
            format!("training set {unknown} not found"),
        ),
        // shard numbers
        (
            format!("/trainsets/{version}/shards/x"),
            bad,
            "shard \"x\" is not a shard number".into(),
        ),
        (
            format!("/trainsets/{version}/shards/-1"),
            bad,
            "shard \"-1\" is not a shard number".into(),
        ),
        (
            format!("/trainsets/{version}/shards/1.0"),
            bad,
            "shard \"1.0\" is not a shard number".into(),
        ),
        (
            format!("/trainsets/{version}/shards/99999999999999999999999"),
            bad,
            "shard \"99999999999999999999999\" is not a shard number".into(),
        ),
        (
            format!("/trainsets/{version}/shards/1"),
            missing,
            format!("shard 1 of training set {version} (it has 1) not found"),
        ),
        (
            format!("/trainsets/{version}/shards/{}", usize::MAX),
            missing,
            format!("shard {} of training set {version}", usize::MAX),
        ),
        // the list's query parameters
        (
            "/trainsets?data=sensors".into(),
            bad,
            "unknown query parameter \"data\"; the one known is dataset".into(),
        ),
        (
            "/trainsets?dataset=sensors&limit=5".into(),
            bad,
            "unknown query parameter \"limit\"".into(),
        ),
        (
            "/trainsets?dataset=a%20b".into(),
            bad,
            "invalid dataset name".into(),
        ),
    ];
    for (path, status, says) in cases {
        let (got, v) = g.get(&path, ACME).await;
        assert_eq!(got, status, "{path}: {v}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(error.contains(&says), "{path}: {v}");
    }

    // and the good reads, for contrast
    let (status, v) = g.get("/trainsets?dataset=sensors", ACME).await;
    assert_eq!(
        (status, v[0]["version"].as_str()),
        (StatusCode::OK, Some(version.as_str()))
    );
    let (status, v) = g.get("/trainsets?dataset=nope", ACME).await;
    assert_eq!((status, v), (StatusCode::OK, json!([])));
    for path in ["", "/manifest", "/shards/0"] {
        let reply = g
            .request(
                Method::GET,
                &format!("/api/v1/trainsets/{version}{path}"),
                Some(ACME),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.error());
    }
}
