//! Both tenants' data: a dataset of the same name each, with real segments in the blob
//! store they share, an edit each and a training set each of the same query; and a dataset
//! and training sets only acme has.

use flywheel_trainset::manifest::SHARD_SAMPLES;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{ACME, Content, GLOBEX, Gateway, Stored};

/// In acme's labels and payloads: an answer to globex that holds it holds acme's data.
pub(crate) const CANARY: &str = "ACME-SECRET-7f3a9c";
/// The dataset both tenants have.
pub(crate) const SHARED: &str = "sensors";
/// The dataset only acme has.
pub(crate) const ACME_ONLY: &str = "radar";
/// acme's keys are `ACME_KEYS + i`, globex's `GLOBEX_KEYS + i`.
pub(crate) const ACME_KEYS: u64 = 0x0ace_0000_0000_0000;
pub(crate) const GLOBEX_KEYS: u64 = 0x0610_0000_0000_0000;
/// Samples of acme's first changeset: more than a shard holds, so acme's copy of the
/// training set both tenants prepared has a shard number globex's copy has not.
pub(crate) const ACME_SAMPLES: u64 = SHARD_SAMPLES + 5;
/// Samples of globex's first changeset; its edit removes one.
pub(crate) const GLOBEX_SAMPLES: u64 = 6;
/// 2026-01-01, in microseconds.
pub(crate) const T0: i64 = 1_767_225_600_000_000;

pub(crate) fn samples(
    base: u64,
    n: u64,
    label: impl Fn(u64) -> String,
    payload: &str,
) -> Vec<Stored> {
    (0..n)
        .map(|i| Stored {
            key: base + i,
            label: Some(label(i)),
            content: Content::Payload(format!("{payload} {i}").into_bytes()),
            event_time: T0 + i as i64 * 1_000_000,
        })
        .collect()
}

pub(crate) fn acme_label(i: u64) -> String {
    format!("{CANARY}-{}", ["cat", "dog"][(i % 2) as usize])
}

pub(crate) fn globex_label(i: u64) -> String {
    format!("globex-{}", ["cat", "dog"][(i % 2) as usize])
}

/// Both tenants' data, written as ingest writes it and edited and prepared over the API.
pub(crate) struct World {
    pub(crate) g: Gateway,
    /// The training set both tenants prepared: the same query, so the same version.
    pub(crate) shared: String,
    /// acme's training sets of versions globex has none of.
    pub(crate) acme_only: Vec<String>,
}

pub(crate) async fn world() -> World {
    let g = Gateway::start().await;
    let acme_payload = format!("{CANARY} payload");
    g.add(
        "acme",
        SHARED,
        1,
        &samples(ACME_KEYS, ACME_SAMPLES, acme_label, &acme_payload),
    )
    .await;
    g.add(
        "globex",
        SHARED,
        1,
        &samples(GLOBEX_KEYS, GLOBEX_SAMPLES, globex_label, "globex payload"),
    )
    .await;

    // an edit each, over the API
    let relabel =
        json!({"kind": "relabel", "labels": [[ACME_KEYS, format!("{CANARY}-relabelled")]]});
    let (status, v) = g
        .post_json(&format!("/datasets/{SHARED}/changesets"), ACME, &relabel)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert!(v.to_string().contains(CANARY), "{v}");
    let remove = json!({"kind": "remove", "keys": [GLOBEX_KEYS + 5]});
    let (status, v) = g
        .post_json(&format!("/datasets/{SHARED}/changesets"), GLOBEX, &remove)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["id"].as_i64(), v["kind"].as_str()),
        (Some(2), Some("remove"))
    );

    // acme goes on: a third changeset of the shared dataset, and a dataset of its own
    g.add(
        "acme",
        SHARED,
        3,
        &samples(ACME_KEYS + 20_000, 3, acme_label, &acme_payload),
    )
    .await;
    g.add(
        "acme",
        ACME_ONLY,
        1,
        &samples(ACME_KEYS + 30_000, 4, acme_label, &acme_payload),
    )
    .await;

    // one query, prepared by each tenant: one version, two training sets
    let query = json!({"dataset": SHARED, "as_of": 2});
    let (status, a) = g.post_json("/trainsets", ACME, &query).await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    let (status, b) = g.post_json("/trainsets", GLOBEX, &query).await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    let shared = a["version"].as_str().unwrap().to_owned();
    assert_eq!(
        b["version"], shared,
        "a version is its query's hash, whoever prepares it"
    );
    assert_eq!(
        (&a["samples"], &a["stored_shards"], &a["manifest_uri"]),
        (
            &json!(ACME_SAMPLES),
            &json!(2),
            &json!(format!("acme/{SHARED}/trainsets/{shared}.manifest"))
        )
    );
    assert_eq!(
        (&b["samples"], &b["stored_shards"], &b["manifest_uri"]),
        (
            &json!(GLOBEX_SAMPLES - 1),
            &json!(1),
            &json!(format!("globex/{SHARED}/trainsets/{shared}.manifest"))
        )
    );

    let mut acme_only = Vec::new();
    for query in [
        json!({"dataset": SHARED, "changesets": "3"}),
        json!({"dataset": ACME_ONLY}),
    ] {
        let (status, v) = g.post_json("/trainsets", ACME, &query).await;
        assert_eq!(status, StatusCode::CREATED, "{query}: {v}");
        acme_only.push(v["version"].as_str().unwrap().to_owned());
    }
    // a pipeline each: acme's on its own dataset, its document holding the canary
    for (token, document) in [
        (ACME, acme_pipeline()),
        (GLOBEX, pipeline_document("sensors-globex", SHARED, "")),
    ] {
        let (status, v) = g
            .call(
                reqwest::Method::POST,
                "/pipelines",
                Some(token),
                Some(("application/toml", document.into_bytes())),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
    }
    // what a supervisor would have emitted for acme's pipeline
    let event = flywheel_schemas::TrainingSet {
        tenant: "acme".into(),
        pipeline: ACME_PIPELINE.into(),
        trigger_id: 1,
        dataset: ACME_ONLY.into(),
        version: acme_only[1].clone(),
        head_changeset: 1,
        manifest_uri: format!("acme/{ACME_ONLY}/trainsets/{}.manifest", acme_only[1]),
        sample_count: 4,
        trigger_reason: format!("{CANARY} trigger"),
        created_at: T0,
    };
    let topic =
        flywheel_topics::TopicKind::Trainsets.topic(&flywheel_topics::Tenant::new("acme").unwrap());
    g.bus
        .produce(
            &topic,
            vec![flywheel_topics::Record::keyed(
                ACME_PIPELINE.as_bytes(),
                flywheel_schemas::encode(&event),
            )],
        )
        .await
        .unwrap();

    // and what a trainer would have released for it: a record, weights and a card, a
    // release on the models topic
    let acme = flywheel_store::Tenant::new("acme").unwrap();
    let uri = format!("acme/models/{ACME_PIPELINE}/{ACME_MODEL}-00.safetensors");
    let card = flywheel_core::card::Card {
        format: flywheel_core::card::CARD_FORMAT,
        kind: flywheel_core::pipeline::ModelKind::Linear,
        input: flywheel_core::card::Shape::Features { width: 2 },
        hidden: vec![],
        channels: vec![],
        labels: vec![format!("{CANARY}-a"), format!("{CANARY}-b")],
    };
    for (path, bytes) in [
        (uri.clone(), format!("{CANARY} weights").into_bytes()),
        (
            flywheel_core::card::card_uri(&uri),
            serde_json::to_vec(&card).unwrap(),
        ),
    ] {
        object_store::ObjectStoreExt::put(
            g.blobs.as_ref(),
            &object_store::path::Path::from(path.as_str()),
            object_store::PutPayload::from(bytes),
        )
        .await
        .unwrap();
    }
    let record = flywheel_store::ModelRecord {
        id: ACME_MODEL.into(),
        pipeline: ACME_PIPELINE.into(),
        trigger_id: 1,
        uri: uri.clone(),
        trainset_version: acme_only[1].clone(),
        parent: None,
        metrics: [("holdout_accuracy".to_owned(), 0.5)].into(),
        created_at: T0,
    };
    let store = g.meta.tenant(&acme).await.unwrap();
    store.put_model(record).await.unwrap();
    let release = flywheel_schemas::ModelRelease {
        tenant: "acme".into(),
        pipeline: ACME_PIPELINE.into(),
        trigger_id: 1,
        model_id: ACME_MODEL.into(),
        model_uri: uri,
        trainset_version: acme_only[1].clone(),
        parent_model: None,
        metrics: Default::default(),
        created_at: T0,
    };
    g.bus
        .produce(
            &flywheel_topics::TopicKind::Models.topic(&acme),
            vec![flywheel_topics::Record::keyed(
                ACME_PIPELINE.as_bytes(),
                flywheel_schemas::encode(&release),
            )],
        )
        .await
        .unwrap();
    World {
        g,
        shared,
        acme_only,
    }
}

/// acme's model.
pub(crate) const ACME_MODEL: &str = "radar-retrain-1";

/// acme's pipeline's name.
pub(crate) const ACME_PIPELINE: &str = "radar-retrain";

/// A pipeline document on `dataset`, with `comment` in it.
pub(crate) fn pipeline_document(name: &str, dataset: &str, comment: &str) -> String {
    format!(
        "# {comment}\nname = \"{name}\"\ndataset = \"{dataset}\"\n\n[trigger]\nkind = \"data_amount\"\nsamples = 100\n\n[selection]\npolicy = \"all\"\n\n[model]\nkind = \"linear\"\n"
    )
}

/// acme's pipeline document.
pub(crate) fn acme_pipeline() -> String {
    pipeline_document(ACME_PIPELINE, ACME_ONLY, CANARY)
}

/// What of acme's would show that an answer holds acme's data: (what, the bytes).
pub(crate) fn acme_needles(w: &World) -> Vec<(&'static str, String)> {
    let mut needles = vec![
        ("canary (labels, payloads)", CANARY.to_owned()),
        ("tenant name (prefix, topics)", "acme".to_owned()),
        ("dataset of its own", ACME_ONLY.to_owned()),
        // every key acme has shares these leading digits
        (
            "keys in hex (tar members)",
            format!("{ACME_KEYS:016x}")[..12].to_owned(),
        ),
        (
            "keys in decimal (JSON)",
            ACME_KEYS.to_string()[..12].to_owned(),
        ),
    ];
    needles.extend(
        w.acme_only
            .iter()
            .map(|v| ("training-set version", v.clone())),
    );
    needles
}

pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
