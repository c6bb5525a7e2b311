//! Preparing training sets over real stores (SQLite, an in-memory object store): the
//! manifest holds exactly the query's samples of the view, the same query always gives the
//! same version and the same bytes, reverts are seen only by queries pinned after them,
//! and shards carry each sample's features, payload and label.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::sync::Arc;

use flywheel_schemas::{BodyContent, ChangesetKind, write_body};
use flywheel_store::{
    ChangesetRecord, Edit, IndexRow, MetaStore, NewChangeset, SampleLocation, SqliteStore, Tenant,
    TenantStore, commit_edit,
};
use flywheel_trainset::manifest::{footer_len, footer_start, read_chunk, read_footer};
use flywheel_trainset::{Footer, QueryRequest, Selection, TrainsetError, prepare, stored_shard};
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use proptest::prelude::*;

const TENANT: &str = "acme";
const LABELS: [&str; 3] = ["cat", "dog", "eel"];

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn TenantStore>,
    blobs: Arc<dyn ObjectStore>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    let meta = SqliteStore::open(&url).await.unwrap();
    let store = meta.tenant(&Tenant::new(TENANT).unwrap()).await.unwrap();
    Fixture {
        _dir: dir,
        store,
        blobs: Arc::new(InMemory::new()),
    }
}

/// Adds changeset `id` with samples `keys`, their stored forms packed in one segment.
async fn add(f: &Fixture, id: i64, keys: &[u64], label_of: impl Fn(u64) -> Option<String>) {
    let uri = format!("{TENANT}/d/segments/c{id}.seg");
    let mut segment = Vec::new();
    let mut rows = Vec::new();
    for &key in keys {
        let offset = segment.len() as u64;
        let payload = format!("payload of {key}");
        let features = [key as f64, -1.5];
        let len = write_body(
            &mut segment,
            &features,
            BodyContent::Payload(payload.as_bytes()),
        );
        rows.push(IndexRow {
            key,
            changeset: id,
            location: SampleLocation::Segment {
                uri: uri.clone(),
                offset,
                length: len as u64,
            },
            label: label_of(key),
            event_time: 1_000_000 * (key as i64 % 97),
            size: len as u64,
        });
    }
    f.blobs
        .put(&Path::from(uri.as_str()), PutPayload::from(segment))
        .await
        .unwrap();
    let mut record = ChangesetRecord::new("d", id, ChangesetKind::Add, 0);
    record.sample_count = rows.len() as i64;
    record.segments = vec![uri];
    f.store
        .commit_changeset(NewChangeset::new(record).with_rows(rows))
        .await
        .unwrap();
}

fn label_for(key: u64) -> Option<String> {
    (key % 4 != 3).then(|| LABELS[(key % 3) as usize].to_owned())
}

async fn manifest_bytes(f: &Fixture, uri: &str) -> Vec<u8> {
    let got = f.blobs.get(&Path::from(uri)).await.unwrap();
    got.bytes().await.unwrap().to_vec()
}

/// A manifest entry as the tests compare it: key, changeset, label, event time.
type Seen = (u64, i64, Option<String>, i64);

/// The manifest's footer and entries as (key, changeset, label, event time).
fn decode(bytes: &[u8]) -> (Footer, Vec<Seen>) {
    let (footer, entries) = weighted_entries(bytes);
    (footer, entries.into_iter().map(|(e, _)| e).collect())
}

/// What the query should select, from the store's own fold (`view_at`), in manifest
/// order. Selections are not modelled here.
async fn expected(f: &Fixture, r: &QueryRequest, as_of: i64) -> Vec<Seen> {
    let ranges = r
        .changesets
        .as_deref()
        .map(|t| flywheel_trainset::parse_changesets(t).unwrap());
    let mut rows: Vec<_> = f
        .store
        .view_at("d", as_of, 0, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .filter(|row| {
            ranges.as_ref().is_none_or(|rs| {
                rs.iter()
                    .any(|&(lo, hi)| (lo..=hi).contains(&row.changeset))
            })
        })
        .filter(|row| {
            r.labels.is_empty() || row.label.as_ref().is_some_and(|l| r.labels.contains(l))
        })
        .filter(|row| {
            r.from.is_none_or(|t| row.event_time >= t) && r.to.is_none_or(|t| row.event_time < t)
        })
        .map(|row| (row.key, row.changeset, row.label, row.event_time))
        .collect();
    if let Some(p) = r.percentage.filter(|p| *p < 1.0) {
        let mut times: Vec<i64> = rows.iter().map(|r| r.3).collect();
        times.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(&cut) = times.get(((p * times.len() as f64).ceil() as usize).max(1) - 1) {
            rows.retain(|r| r.3 >= cut);
        }
    }
    rows.sort_by_key(|r| (r.1, r.0));
    rows
}

fn request() -> QueryRequest {
    QueryRequest {
        dataset: "d".into(),
        ..QueryRequest::default()
    }
}

#[tokio::test]
async fn manifests_hold_the_view_and_are_reproducible() {
    let f = fixture().await;
    add(&f, 1, &(0..300).collect::<Vec<_>>(), label_for).await;
    add(&f, 2, &(300..500).collect::<Vec<_>>(), label_for).await;
    commit_edit(
        f.store.as_ref(),
        "d",
        &Edit::Remove {
            keys: vec![5, 301, 7],
        },
        0,
    )
    .await
    .unwrap();
    commit_edit(
        f.store.as_ref(),
        "d",
        &Edit::Relabel {
            labels: vec![(10, Some("eel".into())), (302, None)],
        },
        0,
    )
    .await
    .unwrap();
    add(&f, 5, &(1000..1100).collect::<Vec<_>>(), |_| None).await;

    let all = prepare(f.store.as_ref(), &f.blobs, &request(), 7)
        .await
        .unwrap();
    assert!(all.created);
    assert_eq!(all.record.head_changeset, 5);
    assert_eq!(all.record.sample_count, 597);
    let bytes = manifest_bytes(&f, &all.record.manifest_uri).await;
    let (footer, entries) = decode(&bytes);
    assert_eq!(entries, expected(&f, &request(), 5).await);
    assert_eq!(footer.samples, 597);
    assert_eq!(
        footer.unlabelled,
        entries.iter().filter(|e| e.2.is_none()).count() as u64
    );

    // again: found, not made; the same version with as_of spelt out
    let again = prepare(f.store.as_ref(), &f.blobs, &request(), 8)
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.record, all.record);
    let pinned = QueryRequest {
        as_of: Some(5),
        ..request()
    };
    let same = prepare(f.store.as_ref(), &f.blobs, &pinned, 9)
        .await
        .unwrap();
    assert_eq!(same.record.version, all.record.version);

    // filters
    let r = QueryRequest {
        labels: vec!["eel".into(), "cat".into()],
        changesets: Some("1-2".into()),
        from: Some(10_000_000),
        to: Some(80_000_000),
        percentage: Some(0.5),
        ..request()
    };
    let p = prepare(f.store.as_ref(), &f.blobs, &r, 7).await.unwrap();
    let (_, got) = decode(&manifest_bytes(&f, &p.record.manifest_uri).await);
    let want = expected(&f, &r, 5).await;
    assert!(!want.is_empty());
    assert_eq!(got, want);

    // relabels and removals are seen: key 10 is an eel now, key 5 is gone
    let eels = QueryRequest {
        labels: vec!["eel".into()],
        ..request()
    };
    let p = prepare(f.store.as_ref(), &f.blobs, &eels, 7).await.unwrap();
    let (_, got) = decode(&manifest_bytes(&f, &p.record.manifest_uri).await);
    assert!(got.iter().any(|e| e.0 == 10), "key 10 was relabelled eel");
    assert!(got.iter().all(|e| e.0 != 5 && e.0 != 302));
    assert_eq!(got, expected(&f, &eels, 5).await);
}

#[tokio::test]
async fn reverts_change_later_versions_only() {
    let f = fixture().await;
    add(&f, 1, &[1, 2, 3], label_for).await;
    add(&f, 2, &[4, 5, 6], label_for).await;
    let before = prepare(f.store.as_ref(), &f.blobs, &request(), 0)
        .await
        .unwrap();
    let bytes_before = manifest_bytes(&f, &before.record.manifest_uri).await;
    assert_eq!(decode(&bytes_before).1.len(), 6);

    commit_edit(f.store.as_ref(), "d", &Edit::Revert { changeset: 2 }, 0)
        .await
        .unwrap();
    let after = prepare(f.store.as_ref(), &f.blobs, &request(), 0)
        .await
        .unwrap();
    assert_ne!(after.record.version, before.record.version);
    let keys: Vec<u64> = decode(&manifest_bytes(&f, &after.record.manifest_uri).await)
        .1
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(keys, vec![1, 2, 3]);

    // the earlier version still resolves to what it had, and re-preparing it (as_of 2)
    // gives it back unchanged
    let old = QueryRequest {
        as_of: Some(2),
        ..request()
    };
    let again = prepare(f.store.as_ref(), &f.blobs, &old, 0).await.unwrap();
    assert_eq!(again.record.version, before.record.version);
    assert_eq!(
        manifest_bytes(&f, &before.record.manifest_uri).await,
        bytes_before
    );
    // and preparing it afresh elsewhere, after the revert, gives the same bytes
    let other = fixture().await;
    add(&other, 1, &[1, 2, 3], label_for).await;
    add(&other, 2, &[4, 5, 6], label_for).await;
    commit_edit(other.store.as_ref(), "d", &Edit::Revert { changeset: 2 }, 0)
        .await
        .unwrap();
    let fresh = prepare(other.store.as_ref(), &other.blobs, &old, 0)
        .await
        .unwrap();
    assert_eq!(fresh.record.version, before.record.version);
    assert_eq!(
        manifest_bytes(&other, &fresh.record.manifest_uri).await,
        bytes_before
    );
}

#[tokio::test]
async fn selections_are_seeded_and_bounded() {
    let f = fixture().await;
    add(&f, 1, &(0..2000).collect::<Vec<_>>(), label_for).await;
    let pick = |selection| QueryRequest {
        selection: Some(selection),
        ..request()
    };
    let keys = |bytes: &[u8]| {
        decode(bytes)
            .1
            .into_iter()
            .map(|e| (e.0, e.2))
            .collect::<Vec<_>>()
    };

    let a = prepare(
        f.store.as_ref(),
        &f.blobs,
        &pick(Selection::Uniform {
            count: 100,
            seed: 1,
        }),
        0,
    )
    .await
    .unwrap();
    let b = prepare(
        f.store.as_ref(),
        &f.blobs,
        &pick(Selection::Uniform {
            count: 100,
            seed: 2,
        }),
        0,
    )
    .await
    .unwrap();
    let (ka, kb) = (
        keys(&manifest_bytes(&f, &a.record.manifest_uri).await),
        keys(&manifest_bytes(&f, &b.record.manifest_uri).await),
    );
    assert_eq!((ka.len(), kb.len()), (100, 100));
    assert_ne!(ka, kb, "another seed, another selection");
    // spread over the whole range, not the first 100
    assert!(ka.iter().any(|k| k.0 > 1000));

    let bal = prepare(
        f.store.as_ref(),
        &f.blobs,
        &pick(Selection::LabelBalanced {
            per_label: 50,
            seed: 9,
        }),
        0,
    )
    .await
    .unwrap();
    let mut per: BTreeMap<Option<String>, usize> = BTreeMap::new();
    for (_, label) in keys(&manifest_bytes(&f, &bal.record.manifest_uri).await) {
        *per.entry(label).or_default() += 1;
    }
    assert_eq!(per.len(), 4, "three labels and the unlabelled: {per:?}");
    assert!(per.values().all(|&n| n == 50), "{per:?}");

    let many = prepare(
        f.store.as_ref(),
        &f.blobs,
        &pick(Selection::Uniform {
            count: 5000,
            seed: 1,
        }),
        0,
    )
    .await
    .unwrap();
    assert_eq!(many.record.sample_count, 2000);
}

#[tokio::test]
async fn bad_queries_are_refused_by_field() {
    let f = fixture().await;
    let e = prepare(f.store.as_ref(), &f.blobs, &request(), 0)
        .await
        .unwrap_err();
    assert!(matches!(e, TrainsetError::NotFound(_)), "{e}");
    assert_eq!(e.to_string(), "dataset \"d\" not found");
    f.store.ensure_dataset("d", 0).await.unwrap();
    let e = prepare(f.store.as_ref(), &f.blobs, &request(), 0)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("has no changesets yet"), "{e}");
    add(&f, 1, &[1], label_for).await;
    for (r, want) in [
        (
            QueryRequest {
                as_of: Some(2),
                ..request()
            },
            "invalid as_of: changeset 2 does not exist",
        ),
        (
            QueryRequest {
                changesets: Some("1-x".into()),
                ..request()
            },
            "invalid changesets",
        ),
        (
            QueryRequest {
                changesets: Some("3".into()),
                ..request()
            },
            "changeset 3 is after",
        ),
        (
            QueryRequest {
                from: Some(5),
                to: Some(1),
                ..request()
            },
            "invalid from",
        ),
        (
            QueryRequest {
                percentage: Some(-0.1),
                ..request()
            },
            "invalid percentage",
        ),
    ] {
        let e = prepare(f.store.as_ref(), &f.blobs, &r, 0)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{r:?}: {e}");
    }
}

#[tokio::test]
async fn shards_are_tar_archives_of_the_samples() {
    let f = fixture().await;
    let keys: Vec<u64> = (0..25_000).collect();
    add(&f, 1, &keys, label_for).await;
    let p = prepare(f.store.as_ref(), &f.blobs, &request(), 0)
        .await
        .unwrap();
    let footer = Arc::new(
        flywheel_trainset::read_footer(&f.blobs, &p.record)
            .await
            .unwrap(),
    );
    assert_eq!(footer.shard_count(), 3);
    let mut seen = 0u64;
    for n in 0..footer.shard_count() {
        let stream = stored_shard(
            f.blobs.clone(),
            TENANT.into(),
            &p.record.manifest_uri,
            footer.clone(),
            n,
        )
        .await
        .unwrap();
        let bytes: Vec<u8> = stream.try_collect::<Vec<_>>().await.unwrap().concat();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut members = archive.entries().unwrap();
        while let Some(json) = members.next() {
            let mut json = json.unwrap();
            let name = json.path().unwrap().display().to_string();
            let mut text = String::new();
            json.read_to_string(&mut text).unwrap();
            let meta: serde_json::Value = serde_json::from_str(&text).unwrap();
            let key = meta["key"].as_u64().unwrap();
            assert_eq!(name, format!("{key:016x}.json"));
            assert_eq!(meta["features"], serde_json::json!([key as f64, -1.5]));
            assert_eq!(meta["label"].as_str(), label_for(key).as_deref());
            let mut bin = members.next().unwrap().unwrap();
            assert_eq!(
                bin.path().unwrap().display().to_string(),
                format!("{key:016x}.bin")
            );
            let mut payload = String::new();
            bin.read_to_string(&mut payload).unwrap();
            assert_eq!(payload, format!("payload of {key}"));
            seen += 1;
        }
    }
    assert_eq!(seen, 25_000);
    let e = stored_shard(
        f.blobs.clone(),
        TENANT.into(),
        &p.record.manifest_uri,
        footer,
        3,
    )
    .await
    .map(|_| ())
    .unwrap_err();
    assert!(e.to_string().contains("shard 3 of training set"), "{e}");
}

/// Operations that build a dataset: adds of fresh keys, removes, relabels, reverts.
#[derive(Debug, Clone)]
enum Op {
    Add(Vec<u64>),
    Remove(Vec<usize>),
    Relabel(Vec<(usize, Option<u8>)>),
    Revert(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(0u64..5000, 1..40).prop_map(Op::Add),
        1 => prop::collection::vec(any::<usize>(), 1..6).prop_map(Op::Remove),
        1 => prop::collection::vec((any::<usize>(), prop::option::of(0u8..3)), 1..6).prop_map(Op::Relabel),
        1 => any::<usize>().prop_map(Op::Revert),
    ]
}

fn query_of(
    as_of: Option<i64>,
    labels: &[u8],
    time: Option<(i64, i64)>,
    pct: Option<f64>,
    cs: Option<(i64, i64)>,
) -> QueryRequest {
    QueryRequest {
        as_of,
        labels: labels
            .iter()
            .map(|l| LABELS[*l as usize].to_owned())
            .collect(),
        from: time.map(|t| t.0.min(t.1) * 1_000_000),
        to: time.map(|t| (t.0.max(t.1) + 1) * 1_000_000),
        percentage: pct,
        changesets: cs.map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        ..request()
    }
}

async fn build(ops: &[Op]) -> Fixture {
    let f = fixture().await;
    let mut next_id = 1;
    let mut used = std::collections::BTreeSet::new();
    for op in ops {
        let view: Vec<u64> = f
            .store
            .rows_by_key_range("d", 0, u64::MAX, usize::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect();
        let pick = |i: &usize| view.get(i % view.len().max(1)).copied();
        let edit = match op {
            Op::Add(keys) => {
                let fresh: Vec<u64> = keys.iter().copied().filter(|k| used.insert(*k)).collect();
                if fresh.is_empty() {
                    continue;
                }
                add(&f, next_id, &fresh, label_for).await;
                next_id += 1;
                continue;
            }
            Op::Remove(ix) => {
                let mut keys: Vec<u64> = ix.iter().filter_map(pick).collect();
                keys.sort_unstable();
                keys.dedup();
                Edit::Remove { keys }
            }
            Op::Relabel(ix) => {
                let mut labels: BTreeMap<u64, Option<String>> = BTreeMap::new();
                for (i, l) in ix {
                    if let Some(k) = pick(i) {
                        labels.insert(k, l.map(|l| LABELS[l as usize].to_owned()));
                    }
                }
                Edit::Relabel {
                    labels: labels.into_iter().collect(),
                }
            }
            Op::Revert(i) if next_id > 1 => Edit::Revert {
                changeset: (*i as i64 % (next_id - 1)) + 1,
            },
            Op::Revert(_) => continue,
        };
        if view.is_empty() && !matches!(edit, Edit::Revert { .. }) {
            continue;
        }
        if commit_edit(f.store.as_ref(), "d", &edit, 0).await.is_ok() {
            next_id += 1;
        }
    }
    f
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Over random datasets and queries: the manifest is the query over the store's own
    /// fold of the view, and a second store built the same way gives the same version and
    /// the same bytes.
    #[test]
    fn same_query_same_version_same_bytes(
        ops in prop::collection::vec(op(), 1..12),
        as_of_back in 0i64..3,
        labels in prop::collection::vec(0u8..3, 0..3),
        time in prop::option::of((0i64..97, 0i64..97)),
        pct in prop::option::of(0.05f64..1.0),
        cs in prop::option::of((1i64..4, 1i64..4)),
        pick in prop::option::of((1u64..30, any::<bool>(), any::<u64>())),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let one = build(&ops).await;
            let Some(head) = one.store.dataset("d").await.unwrap().map(|d| d.head) else {
                return;
            };
            if head == 0 {
                return;
            }
            let as_of = (head - as_of_back).max(1);
            let mut r = query_of(Some(as_of), &labels, time, pct, cs.map(|(a, b)| (a.min(as_of), b.min(as_of))));
            r.selection = pick.map(|(n, balanced, seed)| if balanced {
                Selection::LabelBalanced { per_label: n, seed }
            } else {
                Selection::Uniform { count: n, seed }
            });
            let p = prepare(one.store.as_ref(), &one.blobs, &r, 0).await.unwrap();
            let bytes = manifest_bytes(&one, &p.record.manifest_uri).await;
            let got = decode(&bytes).1;
            let want = expected(&one, &r, as_of).await;
            match r.selection.clone() {
                None => assert_eq!(got, want),
                // a selection is a subset of the query's samples, within its bounds
                Some(selection) => {
                    assert!(got.iter().all(|e| want.contains(e)), "{got:?} not in {want:?}");
                    let per_group = |label: &Option<String>| got.iter().filter(|e| &e.2 == label).count();
                    match selection {
                        Selection::Uniform { count, .. } => {
                            assert_eq!(got.len() as u64, count.min(want.len() as u64));
                        }
                        Selection::LabelBalanced { per_label, .. } => {
                            for e in &want {
                                let have = want.iter().filter(|w| w.2 == e.2).count() as u64;
                                assert_eq!(per_group(&e.2) as u64, per_label.min(have));
                            }
                        }
                        Selection::Keys { .. } => unreachable!("not drawn here"),
                    }
                }
            }

            let two = build(&ops).await;
            let q = prepare(two.store.as_ref(), &two.blobs, &r, 99).await.unwrap();
            assert_eq!(q.record.version, p.record.version);
            assert_eq!(manifest_bytes(&two, &q.record.manifest_uri).await, bytes);
        });
    }
}

/// A manifest's entries as (key, changeset, label, event time, weight).
fn weighted_entries(bytes: &[u8]) -> (Footer, Vec<(Seen, f32)>) {
    let total = bytes.len() as u64;
    let len = footer_len(&bytes[bytes.len() - 16..], "m").unwrap();
    let footer = read_footer(&bytes[footer_start(total, len) as usize..], total, "m").unwrap();
    let mut entries = Vec::new();
    for (n, s) in footer.shards.iter().enumerate() {
        let chunk = &bytes[s.offset as usize..(s.offset + s.length) as usize];
        for e in read_chunk(&footer, n, chunk, "m").unwrap() {
            let label = e.label.map(|l| footer.labels[l as usize].clone());
            entries.push(((e.key, e.changeset, label, e.event_time), e.weight));
        }
    }
    (footer, entries)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A key list selects exactly the listed keys of the query's view, with the list's
    /// weights, in the manifest's order; keys the view does not hold are left out; the
    /// same list over a second store is the same version and the same bytes.
    #[test]
    fn key_lists_select_their_keys_with_their_weights(
        ops in prop::collection::vec(op(), 1..10),
        listed in prop::collection::btree_set(0u64..5200, 1..80),
        weighted in any::<bool>(),
        labels in prop::collection::vec(0u8..3, 0..2),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let one = build(&ops).await;
            let Some(head) = one.store.dataset("d").await.unwrap().map(|d| d.head) else {
                return;
            };
            if head == 0 {
                return;
            }
            // listed in descending order: the list sorts them
            let keys: Vec<u64> = listed.iter().rev().copied().collect();
            let weight = |k: u64| if weighted { 0.25 + (k % 7) as f32 } else { 1.0 };
            let weights: Vec<f32> = keys.iter().map(|&k| weight(k)).collect();
            let list = flywheel_trainset::put_key_list(&one.blobs, TENANT, "d", &keys, &weights)
                .await
                .unwrap();
            let mut r = query_of(None, &labels, None, None, None);
            r.selection = Some(Selection::Keys { list: list.digest.clone(), count: list.count });
            let p = prepare(one.store.as_ref(), &one.blobs, &r, 0).await.unwrap();
            let bytes = manifest_bytes(&one, &p.record.manifest_uri).await;
            let (footer, got) = weighted_entries(&bytes);
            let want: Vec<(Seen, f32)> = expected(&one, &r, head)
                .await
                .into_iter()
                .filter(|e| listed.contains(&e.0))
                .map(|e| { let w = weight(e.0); (e, w) })
                .collect();
            assert_eq!(got, want);
            assert_eq!(footer.weighted, weighted);

            let two = build(&ops).await;
            let again = flywheel_trainset::put_key_list(&two.blobs, TENANT, "d", &keys, &weights)
                .await
                .unwrap();
            assert_eq!(again, list);
            let q = prepare(two.store.as_ref(), &two.blobs, &r, 99).await.unwrap();
            assert_eq!(q.record.version, p.record.version);
            assert_eq!(manifest_bytes(&two, &q.record.manifest_uri).await, bytes);
        });
    }
}

#[tokio::test]
async fn bad_key_lists_are_refused_by_name() {
    let f = fixture().await;
    add(&f, 1, &[1, 2, 3], label_for).await;
    let refused = |list: String, count: u64| {
        let request = QueryRequest {
            selection: Some(Selection::Keys { list, count }),
            ..request()
        };
        let f = &f;
        async move {
            prepare(f.store.as_ref(), &f.blobs, &request, 0)
                .await
                .unwrap_err()
        }
    };
    let field = |e: &TrainsetError| match e {
        TrainsetError::Invalid { field, .. } => *field,
        _ => "",
    };
    // not a digest: no path is ever built from it
    for bad in ["../x".to_owned(), "A".repeat(64), "a".repeat(63)] {
        let e = refused(bad, 1).await;
        assert_eq!(field(&e), "selection.list", "{e}");
    }
    let e = refused("a".repeat(64), 0).await;
    assert_eq!(field(&e), "selection.count", "{e}");
    // a list that is not there
    let e = refused("b".repeat(64), 2).await;
    assert!(
        matches!(&e, TrainsetError::NotFound(what) if what.contains("selections")),
        "{e}"
    );
    // a count that is not the list's
    let list = flywheel_trainset::put_key_list(&f.blobs, TENANT, "d", &[2, 3], &[1.0, 1.0])
        .await
        .unwrap();
    let e = refused(list.digest.clone(), 3).await;
    assert_eq!(field(&e), "selection.count", "{e}");
    // keys missing from the view are left out
    let partial = flywheel_trainset::put_key_list(&f.blobs, TENANT, "d", &[3, 99], &[2.0, 1.0])
        .await
        .unwrap();
    let request = QueryRequest {
        selection: Some(Selection::Keys {
            list: partial.digest,
            count: 2,
        }),
        ..request()
    };
    let p = prepare(f.store.as_ref(), &f.blobs, &request, 0)
        .await
        .unwrap();
    assert_eq!((p.footer.samples, p.footer.weighted), (1, true));
    // a damaged list, and a cut one, are refused naming the object
    let path = Path::from(flywheel_trainset::key_list_path(TENANT, "d", &list.digest));
    let mut bytes = f
        .blobs
        .get(&path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    bytes[9] ^= 1;
    f.blobs
        .put(&path, PutPayload::from(bytes.clone()))
        .await
        .unwrap();
    let e = refused(list.digest.clone(), 2).await;
    assert!(
        matches!(&e, TrainsetError::Corrupt { what, .. } if what.contains(&list.digest)),
        "{e}"
    );
    bytes.truncate(bytes.len() - 3);
    f.blobs.put(&path, PutPayload::from(bytes)).await.unwrap();
    let e = refused(list.digest, 2).await;
    assert!(matches!(&e, TrainsetError::Corrupt { .. }), "{e}");
    // bad lists are refused before they are stored
    for (keys, weights) in [
        (vec![1, 1], vec![1.0, 1.0]),
        (vec![1], vec![f32::NAN]),
        (vec![1], vec![0.0]),
        (vec![1], vec![-2.0]),
        (vec![1, 2], vec![1.0]),
    ] {
        let e = flywheel_trainset::put_key_list(&f.blobs, TENANT, "d", &keys, &weights)
            .await
            .unwrap_err();
        assert!(matches!(&e, TrainsetError::Invalid { .. }), "{e}");
    }
}

#[tokio::test]
async fn query_changesets_follow_their_reverts() {
    let f = fixture().await;
    add(&f, 1, &[1, 2], label_for).await;
    let query = flywheel_schemas::RestrictedQuery {
        source: "crm".into(),
        sql: "SELECT label FROM t ORDER BY id".into(),
        label_column: Some("label".into()),
        feature_columns: vec![],
    };
    let edit = |e: Edit| {
        let store = f.store.clone();
        async move { commit_edit(store.as_ref(), "d", &e, 0).await.unwrap().id }
    };
    let q = edit(Edit::Query {
        query: query.clone(),
    })
    .await;
    let parts = |p: &flywheel_trainset::Prepared| -> Vec<i64> {
        p.footer.restricted.iter().map(|r| r.changeset).collect()
    };
    let with = prepare(f.store.as_ref(), &f.blobs, &request(), 0)
        .await
        .unwrap();
    assert_eq!(parts(&with), vec![q]);
    assert_eq!(with.footer.restricted[0].query, query);
    assert_eq!(
        with.footer.shard_count(),
        2,
        "one stored shard, one restricted"
    );

    // only the changesets asked for
    let stored_only = QueryRequest {
        changesets: Some("1".into()),
        ..request()
    };
    let p = prepare(f.store.as_ref(), &f.blobs, &stored_only, 0)
        .await
        .unwrap();
    assert!(parts(&p).is_empty());

    let revert = edit(Edit::Revert { changeset: q }).await;
    let without = prepare(f.store.as_ref(), &f.blobs, &request(), 0)
        .await
        .unwrap();
    assert!(parts(&without).is_empty(), "reverted");
    assert_eq!(without.record.sample_count, 2);

    edit(Edit::Revert { changeset: revert }).await;
    let again = prepare(f.store.as_ref(), &f.blobs, &request(), 0)
        .await
        .unwrap();
    assert_eq!(
        parts(&again),
        vec![q],
        "a revert of the revert brings it back"
    );

    // the version prepared before the revert still has it
    let before = QueryRequest {
        as_of: Some(q),
        ..request()
    };
    let p = prepare(f.store.as_ref(), &f.blobs, &before, 0)
        .await
        .unwrap();
    assert_eq!(p.record.version, with.record.version);
    assert_eq!(parts(&p), vec![q]);
}
