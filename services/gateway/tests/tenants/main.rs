//! Tenant isolation over every endpoint. Two tenants share one blob store (only their
//! `{tenant}/` prefixes keep them apart), and each has a dataset of the same name with real
//! segments, an edit and a prepared training set; acme also has a dataset and training
//! sets globex has no counterpart of. Every route is called without a token, with wrong
//! ones, as globex on acme's resources (refused, or answered with globex's own data only)
//! and, to show those checks can fail, as acme, who sees its own data in the same answers.

#[path = "../common/mod.rs"]
mod common;
mod probes;
mod world;

use std::collections::BTreeSet;
use std::io::Read as _;

use common::routes::{ROUTES, is_public};
use common::{ACME, Content, GLOBEX, Gateway, Reply, Stored};
use flywheel_store::{ChangesetKind, ChangesetRecord, IndexRow, NewChangeset, SampleLocation};
use flywheel_topics::TopicKind;
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutPayload};
use probes::{Acme, Probe, probes};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use world::{
    ACME_KEYS, ACME_ONLY, CANARY, GLOBEX_KEYS, GLOBEX_SAMPLES, SHARED, T0, acme_label,
    acme_needles, contains, samples, world,
};

/// Panics if an answer holds any of acme's needles that the request did not itself send.
fn assert_no_acme_data(reply: &Reply, probe: &Probe, needles: &[(&str, String)], who: &str) {
    let sent = probe.request_text();
    for (what, needle) in needles {
        if !sent.contains(needle.as_str()) && contains(&reply.body, needle) {
            let text = String::from_utf8_lossy(&reply.body);
            panic!(
                "{who}: {} {} answered {} with acme's {what} {needle:?}: {}",
                probe.method,
                probe.path,
                reply.status,
                text.chars().take(600).collect::<String>()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_keeps_tenants_apart() {
    let w = world().await;
    let g = &w.g;
    let needles = acme_needles(&w);
    let probes = probes(&w);

    let called: BTreeSet<(&str, &str)> = probes
        .iter()
        .map(|p| (p.method.as_str(), p.route))
        .collect();
    let routes: BTreeSet<(&str, &str)> = ROUTES.iter().copied().collect();
    assert_eq!(called, routes, "every route is called, and only those");

    let wrong = [
        "not-a-token-of-anyone".to_owned(),
        format!("{ACME}x"),
        ACME[..ACME.len() - 1].to_owned(),
    ];
    for p in &probes {
        let public = is_public(p.route);
        // no token, a wrong token: refused, with nothing of acme's
        let anonymous = std::iter::once((None, "missing bearer token")).chain(
            wrong
                .iter()
                .map(|t| (Some(t.as_str()), "invalid bearer token")),
        );
        for (token, refusal) in anonymous {
            let who = format!("token {token:?}");
            let r = g
                .request(p.method.clone(), &p.path, token, p.body.clone())
                .await;
            if public {
                assert_eq!(r.status, StatusCode::OK, "{who}: {} {}", p.method, p.path);
            } else {
                assert_eq!(
                    (r.status, r.error().as_str()),
                    (StatusCode::UNAUTHORIZED, refusal),
                    "{who}: {} {}",
                    p.method,
                    p.path
                );
            }
            assert_no_acme_data(&r, p, &needles, &who);
        }

        // globex: refused, or its own data only
        let r = g
            .request(p.method.clone(), &p.path, Some(GLOBEX), p.body.clone())
            .await;
        assert_eq!(
            r.status,
            p.globex,
            "globex: {} {}: {}",
            p.method,
            p.path,
            String::from_utf8_lossy(&r.body)
        );
        assert_no_acme_data(&r, p, &needles, "globex");
        p.check_field(&r, false, "globex");

        // acme, on the same call: its own data, so the checks above can fail
        if p.acme != Acme::NotSent {
            let r = g
                .request(p.method.clone(), &p.path, Some(ACME), p.body.clone())
                .await;
            assert_eq!(r.status, StatusCode::OK, "acme: {} {}", p.method, p.path);
            if p.acme == Acme::Shows {
                assert!(
                    needles.iter().any(|(_, n)| contains(&r.body, n)),
                    "acme: {} {}: its answer shows nothing of acme's",
                    p.method,
                    p.path
                );
            }
            p.check_field(&r, true, "acme");
        }
    }

    // globex's shard of the shared version: its own samples, bytes and labels
    let r = g
        .request(
            Method::GET,
            &format!("/api/v1/trainsets/{}/shards/0", w.shared),
            Some(GLOBEX),
            None,
        )
        .await;
    assert_eq!(r.content_type, "application/x-tar");
    let members = tar_members(&r.body);
    let keys: BTreeSet<u64> = members
        .iter()
        .filter_map(|(name, _)| name.strip_suffix(".json"))
        .map(|base| u64::from_str_radix(base, 16).unwrap())
        .collect();
    let want: BTreeSet<u64> = (0..GLOBEX_SAMPLES - 1).map(|i| GLOBEX_KEYS + i).collect();
    assert_eq!(keys, want);
    for (name, data) in &members {
        if let Some(base) = name.strip_suffix(".bin") {
            let i = u64::from_str_radix(base, 16).unwrap() - GLOBEX_KEYS;
            assert_eq!(data, format!("globex payload {i}").as_bytes());
        }
    }

    // nothing globex or a caller without a token sent changed acme's data
    let acme = g.tenant("acme").await;
    let heads = (
        acme.dataset(SHARED).await.unwrap().unwrap().head,
        acme.dataset(ACME_ONLY).await.unwrap().unwrap().head,
    );
    assert_eq!(heads, (3, 1));
    assert!(
        g.tenant("globex")
            .await
            .dataset(ACME_ONLY)
            .await
            .unwrap()
            .is_none()
    );
    // samples went to the caller's topic only, and none without a valid token
    assert_eq!(g.topic("acme", TopicKind::Samples, 2).await.len(), 1);
    assert_eq!(g.topic("globex", TopicKind::Samples, 2).await.len(), 1);
}

fn tar_members(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, data)
        })
        .collect()
}

/// A globex sample may name any object as its blob; a shard reads only objects under
/// globex's own prefix of the shared store, whether the name is in a sample's stored form
/// or is the location of its index row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_read_no_object_outside_the_callers_prefix() {
    let g = Gateway::start().await;
    g.add(
        "acme",
        SHARED,
        1,
        &samples(ACME_KEYS, 3, acme_label, &format!("{CANARY} payload")),
    )
    .await;
    let acme_segment = format!("acme/{SHARED}/segments/c1.seg");
    let own = "globex/probe/blobs/own.bin";
    g.blobs
        .put(
            &Path::from(own),
            PutPayload::from_static(b"globex's own blob"),
        )
        .await
        .unwrap();
    let foreign = [
        acme_segment.clone(),
        format!("globex/../{acme_segment}"),
        format!("/{acme_segment}"),
        format!("memory:///{acme_segment}"),
    ];
    let names: Vec<String> = foreign.iter().cloned().chain([own.to_owned()]).collect();

    // changeset 1: the names in the samples' stored forms
    let in_body: Vec<Stored> = (names.iter().enumerate())
        .map(|(i, name)| Stored {
            key: GLOBEX_KEYS + i as u64,
            label: None,
            content: Content::Blob(name.clone()),
            event_time: T0,
        })
        .collect();
    g.add("globex", "probe", 1, &in_body).await;
    // changeset 2: the names as the rows' locations
    let rows: Vec<IndexRow> = (names.iter().enumerate())
        .map(|(i, name)| IndexRow {
            key: GLOBEX_KEYS + 100 + i as u64,
            changeset: 2,
            location: SampleLocation::Blob { uri: name.clone() },
            label: None,
            event_time: T0,
            size: 1,
        })
        .collect();
    let mut record = ChangesetRecord::new("probe", 2, ChangesetKind::Add, T0);
    record.sample_count = rows.len() as i64;
    g.tenant("globex")
        .await
        .commit_changeset(NewChangeset::new(record).with_rows(rows))
        .await
        .unwrap();

    let (status, v) = g
        .post_json("/trainsets", GLOBEX, &json!({"dataset": "probe"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let r = g
        .request(
            Method::GET,
            &format!(
                "/api/v1/trainsets/{}/shards/0",
                v["version"].as_str().unwrap()
            ),
            Some(GLOBEX),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.error());
    assert!(!contains(&r.body, CANARY), "a shard holds acme's bytes");
    let members = tar_members(&r.body);
    for offset in [0, 100] {
        for (i, name) in names.iter().enumerate() {
            let base = format!("{:016x}", GLOBEX_KEYS + offset + i as u64);
            let meta: Value = members
                .iter()
                .find(|(n, _)| *n == format!("{base}.json"))
                .map(|(_, d)| serde_json::from_slice(d).unwrap())
                .unwrap_or_else(|| panic!("no member for {name}"));
            let payload = members.iter().find(|(n, _)| *n == format!("{base}.bin"));
            if name == own {
                // the same path works for globex's own object, so the refusals are real
                assert_eq!(
                    payload.map(|(_, d)| d.as_slice()),
                    Some(&b"globex's own blob"[..]),
                    "{name}"
                );
            } else {
                assert!(payload.is_none(), "{name} was read");
                assert_eq!(meta["blob"], json!(name), "{name}");
            }
        }
    }
}
