//! The metadata-store conformance suite: written once, run against every backend.
//!
//! `sqlite` always runs, each case in a fresh temporary directory. `scylla` runs when
//! `FLYWHEEL_TEST_SCYLLA=HOST:PORT` points at a node, each case under a keyspace prefix of
//! its own, dropped afterwards (panicking or not); otherwise its cases print why they are
//! skipped and pass.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Fixture, add, keys, relabel, remove, row, unique, unique_tenant};
use flywheel_schemas::ChangesetKind;
use flywheel_store::{
    ChangesetRecord, CommitOutcome, IndexRow, ModelRecord, NewChangeset, PipelineRecord,
    PipelineStatus, PutOutcome, RowBlock, SampleLocation, StoreError, TrainsetRecord,
};
use flywheel_topics::{Tenant, TopicPartition};

async fn commit_then_read_back(f: Fixture) {
    let t = f.tenant().await;
    let mut first = add("sensors", 1, 0..10);
    first.rows[3].location = SampleLocation::Blob {
        uri: "s3://bucket/raw/3.jpg".into(),
    };
    first.rows[4].label = None;
    // a segment the changeset does not list (the others are in its `segments`)
    first.rows[5].location = SampleLocation::Segment {
        uri: "file:///elsewhere/7.seg".into(),
        offset: 3,
        length: 4,
    };
    first.record.sources.push(flywheel_schemas::SourceRange {
        topic: "flywheel.t.samples".into(),
        partition: 1,
        first_offset: 5,
        last_offset: 9,
    });
    let out = t
        .commit_changeset(first.clone())
        .await
        .expect("commit changeset 1");
    let CommitOutcome::Committed(d) = out else {
        panic!("{}: {out:?}", f.kind)
    };
    assert_eq!(
        (d.name.as_str(), d.head, d.samples, d.bytes),
        ("sensors", 1, 10, 1000)
    );
    assert_eq!(
        d.created_at, first.record.created_at,
        "created by its first changeset"
    );

    assert_eq!(
        t.changeset("sensors", 1).await.unwrap(),
        Some(first.record.clone())
    );
    assert_eq!(t.rows_by_changeset("sensors", 1).await.unwrap(), first.rows);
    assert_eq!(
        t.row("sensors", 3).await.unwrap(),
        Some(first.rows[3].clone())
    );
    assert_eq!(t.row("sensors", 10).await.unwrap(), None);
    assert_eq!(t.row("other", 3).await.unwrap(), None);
    assert_eq!(
        t.consumer_offsets("ingest").await.unwrap(),
        BTreeMap::from([(TopicPartition::new("flywheel.t.samples", 0), 1_000_000)])
    );
    assert!(t.consumer_offsets("nobody").await.unwrap().is_empty());

    let second = add("sensors", 2, 10..15).with_offsets(
        "ingest",
        vec![
            (TopicPartition::new("flywheel.t.samples", 0), 2_000_000),
            (TopicPartition::new("flywheel.t.samples", 1), 10),
        ],
    );
    t.commit_changeset(second.clone()).await.expect("commit 2");
    let d = t.dataset("sensors").await.unwrap().expect("dataset");
    assert_eq!((d.head, d.samples, d.bytes), (2, 15, 1500));
    assert_eq!(
        t.changesets("sensors").await.unwrap(),
        vec![first.record, second.record]
    );
    assert_eq!(t.changesets("other").await.unwrap(), vec![]);
    assert_eq!(
        t.consumer_offsets("ingest").await.unwrap(),
        BTreeMap::from([
            (TopicPartition::new("flywheel.t.samples", 0), 2_000_000),
            (TopicPartition::new("flywheel.t.samples", 1), 10),
        ])
    );
    assert_eq!(t.rows_by_changeset("sensors", 3).await.unwrap(), vec![]);
    assert_eq!(t.changeset("sensors", 3).await.unwrap(), None);
}

async fn datasets_are_created_once_and_listed(f: Fixture) {
    let t = f.tenant().await;
    let a = t.ensure_dataset("b-set", 5).await.expect("create");
    assert_eq!((a.head, a.samples, a.bytes, a.created_at), (0, 0, 0, 5));
    let again = t.ensure_dataset("b-set", 99).await.expect("again");
    assert_eq!(again, a, "ensure_dataset keeps the first creation");
    t.ensure_dataset("a.set_2", 6).await.expect("create");
    let names: Vec<String> = t
        .datasets()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["a.set_2", "b-set"]);
    assert_eq!(t.dataset("nope").await.unwrap(), None);
    for bad in ["", "a b", "a/b"] {
        let err = t.ensure_dataset(bad, 1).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid { .. }) && err.to_string().contains("dataset name"),
            "{bad:?}: {err}"
        );
    }
    // a dataset created empty takes changeset 1
    t.commit_changeset(add("b-set", 1, [7]))
        .await
        .expect("commit");
    assert_eq!(t.dataset("b-set").await.unwrap().unwrap().created_at, 5);
}

/// A commit that fails part-way leaves nothing behind: no changeset, no rows, no
/// removals, no offsets, the head and counters unchanged.
async fn a_failed_commit_leaves_nothing(f: Fixture) {
    let t = f.tenant().await;
    t.commit_changeset(add("d", 1, 10_000..10_100))
        .await
        .expect("commit 1");
    let before = t.dataset("d").await.unwrap().unwrap();
    let offsets_before = t.consumer_offsets("ingest").await.unwrap();

    // 5,000 new keys, then one already in the dataset: found after the others are written
    let mut bad = add("d", 2, (0..5_000).chain([10_050]));
    bad.offsets = vec![(TopicPartition::new("flywheel.t.samples", 0), 42)];
    let err = t.commit_changeset(bad).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { .. }),
        "{}: {err}",
        f.kind
    );
    let msg = err.to_string();
    assert!(
        msg.contains("changeset 2 of dataset \"d\"")
            && msg.contains("key 10050")
            && msg.contains("changeset 1"),
        "{msg}"
    );
    assert_eq!(t.dataset("d").await.unwrap().unwrap(), before);
    assert_eq!(t.changeset("d", 2).await.unwrap(), None);
    assert_eq!(t.rows_by_changeset("d", 2).await.unwrap(), vec![]);
    assert_eq!(t.row("d", 0).await.unwrap(), None);
    assert_eq!(
        t.rows_by_key_range("d", 0, 9_999, 10).await.unwrap(),
        vec![]
    );
    assert_eq!(t.consumer_offsets("ingest").await.unwrap(), offsets_before);

    // removals are undone too: a remove of a live key, then of one that is not there
    let err = t
        .commit_changeset(remove("d", 2, [10_001, 10_002, 77_777]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("key 77777 cannot be removed"),
        "{err}"
    );
    assert_eq!(t.dataset("d").await.unwrap().unwrap(), before);
    assert!(t.row("d", 10_001).await.unwrap().is_some());
    assert_eq!(t.changeset("d", 2).await.unwrap(), None);

    // relabels likewise
    let err = t
        .commit_changeset(relabel(
            "d",
            2,
            vec![(10_001, Some("x".into())), (99_999, None)],
        ))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("key 99999 cannot be relabelled"),
        "{err}"
    );
    assert_eq!(
        t.row("d", 10_001).await.unwrap().unwrap().label.as_deref(),
        Some("odd")
    );

    // and the same id then commits cleanly
    t.commit_changeset(add("d", 2, 0..5_000))
        .await
        .expect("commit 2");
    let after = t.dataset("d").await.unwrap().unwrap();
    assert_eq!((after.head, after.samples), (2, 5_100));
}

async fn recommitting_the_same_changeset_is_a_no_op(f: Fixture) {
    let t = f.tenant().await;
    let first = add("d", 1, 0..100);
    assert!(matches!(
        t.commit_changeset(first.clone()).await.unwrap(),
        CommitOutcome::Committed(_)
    ));
    let d = t.dataset("d").await.unwrap().unwrap();
    let out = t.commit_changeset(first.clone()).await.expect("replay");
    assert_eq!(out, CommitOutcome::AlreadyCommitted(d.clone()));

    // the same content in another order is the same changeset
    let mut shuffled = first.clone();
    shuffled.rows.reverse();
    assert!(matches!(
        t.commit_changeset(shuffled).await.unwrap(),
        CommitOutcome::AlreadyCommitted(_)
    ));

    // a replay of an older changeset after newer ones also writes nothing
    t.commit_changeset(remove("d", 2, [5])).await.expect("2");
    let d2 = t.dataset("d").await.unwrap().unwrap();
    assert!(matches!(
        t.commit_changeset(first).await.unwrap(),
        CommitOutcome::AlreadyCommitted(_)
    ));
    assert!(matches!(
        t.commit_changeset(remove("d", 2, [5])).await.unwrap(),
        CommitOutcome::AlreadyCommitted(_)
    ));
    assert_eq!(t.dataset("d").await.unwrap().unwrap(), d2);
    assert_eq!((d2.head, d2.samples), (2, 99));
    assert_eq!(t.rows_by_changeset("d", 1).await.unwrap().len(), 100);
}

async fn conflicts_and_gaps_are_refused(f: Fixture) {
    let t = f.tenant().await;
    t.commit_changeset(add("d", 1, 0..10)).await.expect("1");

    let conflict = |err: StoreError, says: &str| {
        let msg = err.to_string();
        assert!(
            matches!(err, StoreError::Conflict { .. })
                && msg.contains("changeset 1 of dataset \"d\"")
                && msg.contains(says),
            "{msg}"
        );
    };
    let mut relabelled = add("d", 1, 0..10);
    relabelled.rows[9].label = None;
    conflict(
        t.commit_changeset(relabelled).await.unwrap_err(),
        "rows differ",
    );
    conflict(
        t.commit_changeset(add("d", 1, 0..11)).await.unwrap_err(),
        "record differs",
    );
    let mut other = add("d", 1, 0..10);
    other.record.created_at += 1;
    conflict(
        t.commit_changeset(other).await.unwrap_err(),
        "record differs",
    );
    let mut moved = add("d", 1, 0..10);
    moved.offsets[0].1 += 1;
    conflict(
        t.commit_changeset(moved).await.unwrap_err(),
        "offsets differ",
    );

    let err = t.commit_changeset(add("d", 3, [50])).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Gap { id: 3, head: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("the next must be 2"), "{err}");
    let err = t.commit_changeset(add("fresh", 2, [50])).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Gap { id: 2, head: 0, .. }),
        "{err}"
    );
    assert_eq!(t.dataset("fresh").await.unwrap(), None, "nothing created");

    let err = t.commit_changeset(add("d", 2, [3])).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { .. })
            && err.to_string().contains("key 3 is already in the dataset"),
        "{err}"
    );
    let err = t.commit_changeset(add("d", 2, [20, 20])).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { .. })
            && err.to_string().contains("key 20 appears more than once"),
        "{err}"
    );
    let err = t.commit_changeset(add("d", 0, [20])).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert_eq!(t.dataset("d").await.unwrap().unwrap().head, 1);
}

/// Readers polling during a 50,000-row commit see none of its rows or all of them, and the
/// dataset's head and counters move together.
async fn readers_see_a_commit_whole_or_not_at_all(f: Fixture) {
    const BIG: u64 = 50_000;
    let t = f.tenant().await;
    t.commit_changeset(add("d", 1, 0..10)).await.expect("1");
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..3 {
        let (t, done) = (Arc::clone(&t), Arc::clone(&done));
        readers.push(tokio::spawn(async move {
            let mut seen = (0usize, 0usize);
            loop {
                let finished = done.load(Ordering::SeqCst);
                if r == 0 {
                    let d = t
                        .dataset("d")
                        .await
                        .expect("read dataset")
                        .expect("dataset");
                    match d.head {
                        1 => assert_eq!(d.samples, 10, "{d:?}"),
                        2 => assert_eq!(d.samples, 10 + BIG as i64, "{d:?}"),
                        _ => panic!("{d:?}"),
                    }
                    if d.head == 1 {
                        seen.0 += 1;
                    } else {
                        seen.1 += 1;
                    }
                } else {
                    let rows = t.rows_by_changeset("d", 2).await.expect("read rows");
                    let range = t
                        .rows_by_key_range("d", 1_000_000, u64::MAX, usize::MAX)
                        .await
                        .expect("read range");
                    for n in [rows.len(), range.len()] {
                        assert!(n == 0 || n == BIG as usize, "saw {n} rows");
                    }
                    if rows.is_empty() {
                        seen.0 += 1;
                    } else {
                        seen.1 += 1;
                    }
                }
                if finished {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    t.commit_changeset(add("d", 2, 1_000_000..1_000_000 + BIG))
        .await
        .expect("big commit");
    done.store(true, Ordering::SeqCst);
    for r in readers {
        let (before, after) = r.await.expect("reader");
        assert!(after > 0, "{}: the last read saw the commit", f.kind);
        eprintln!(
            "{}: reads before the commit {before}, after {after}",
            f.kind
        );
    }
}

async fn tenants_do_not_see_each_other(f: Fixture) {
    let (a_name, b_name) = (unique_tenant(), unique_tenant());
    let a = f.store.tenant(&a_name).await.expect("a");
    let b = f.store.tenant(&b_name).await.expect("b");
    a.commit_changeset(add("shared", 1, 0..10))
        .await
        .expect("a1");
    let mut b1 = add("shared", 1, 5..8);
    for r in &mut b1.rows {
        r.label = Some("b's".into());
    }
    b1.offsets[0].1 = 7;
    b.commit_changeset(b1.clone()).await.expect("b1");
    a.commit_changeset(remove("shared", 2, [6]))
        .await
        .expect("a2");

    assert_eq!(b.dataset("shared").await.unwrap().unwrap().samples, 3);
    assert_eq!(b.dataset("shared").await.unwrap().unwrap().head, 1);
    assert_eq!(a.dataset("shared").await.unwrap().unwrap().samples, 9);
    assert_eq!(b.row("shared", 6).await.unwrap(), Some(b1.rows[1].clone()));
    assert_eq!(a.row("shared", 6).await.unwrap(), None);
    assert_eq!(b.row("shared", 0).await.unwrap(), None);
    assert_eq!(
        keys(
            &b.rows_by_key_range("shared", 0, u64::MAX, 100)
                .await
                .unwrap()
        ),
        [5, 6, 7]
    );
    assert_eq!(
        b.rows_by_event_time("shared", 0, i64::MAX, 100)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(b.view_at("shared", 1, 0, 100).await.unwrap(), b1.rows);
    assert_eq!(b.rows_by_changeset("shared", 1).await.unwrap(), b1.rows);
    assert_eq!(b.changeset("shared", 2).await.unwrap(), None);
    assert_eq!(b.changesets("shared").await.unwrap(), vec![b1.record]);
    assert_eq!(
        b.consumer_offsets("ingest")
            .await
            .unwrap()
            .values()
            .copied()
            .collect::<Vec<_>>(),
        [7]
    );

    a.put_pipeline(pipeline("p")).await.expect("pipeline");
    a.put_pipeline_state("p", b"a".to_vec(), None)
        .await
        .expect("state");
    a.put_trainset(trainset("v1", "shared"))
        .await
        .expect("trainset");
    a.put_model(model("m1", "p", 1)).await.expect("model");
    assert_eq!(b.pipeline("p").await.unwrap(), None);
    assert_eq!(b.pipelines().await.unwrap(), vec![]);
    assert_eq!(b.pipeline_state("p").await.unwrap(), None);
    let err = b.put_pipeline_state("p", vec![], None).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(b.trainset("v1").await.unwrap(), None);
    assert_eq!(b.trainsets(None).await.unwrap(), vec![]);
    assert_eq!(b.model("m1").await.unwrap(), None);
    assert_eq!(b.models(None).await.unwrap(), vec![]);

    let all = f.store.tenants().await.expect("tenants");
    assert!(all.contains(&a_name) && all.contains(&b_name), "{all:?}");
    assert_eq!(a.tenant(), &a_name);
    // the same tenant again is the same namespace
    let a_again = f.store.tenant(&a_name).await.expect("a again");
    assert_eq!(a_again.dataset("shared").await.unwrap().unwrap().samples, 9);
}

async fn reads_by_key_range_and_event_time(f: Fixture) {
    let t = f.tenant().await;
    let edge = [0, 1, 2, u64::MAX / 2, (1 << 63) + 1, u64::MAX - 1, u64::MAX];
    let mut first = add("d", 1, edge);
    // event times out of key order
    for (i, r) in first.rows.iter_mut().enumerate() {
        r.event_time = 100 - i as i64 * 10;
    }
    t.commit_changeset(first.clone()).await.expect("1");

    assert_eq!(
        keys(&t.rows_by_key_range("d", 0, u64::MAX, 100).await.unwrap()),
        edge
    );
    assert_eq!(
        keys(&t.rows_by_key_range("d", 1, 2, 100).await.unwrap()),
        [1, 2]
    );
    assert_eq!(
        keys(
            &t.rows_by_key_range("d", 3, u64::MAX - 1, 100)
                .await
                .unwrap()
        ),
        [u64::MAX / 2, (1 << 63) + 1, u64::MAX - 1]
    );
    assert_eq!(
        keys(&t.rows_by_key_range("d", 0, u64::MAX, 2).await.unwrap()),
        [0, 1]
    );
    assert_eq!(
        keys(&t.rows_by_key_range("d", 5, 4, 100).await.unwrap()),
        [] as [u64; 0]
    );
    assert_eq!(
        t.row("d", u64::MAX).await.unwrap(),
        Some(first.rows[6].clone())
    );

    // by event time: ascending time, [from, to)
    let by_time = t.rows_by_event_time("d", 40, 90, 100).await.unwrap();
    assert_eq!(
        by_time.iter().map(|r| r.event_time).collect::<Vec<_>>(),
        [40, 50, 60, 70, 80]
    );
    assert_eq!(
        keys(&by_time),
        [u64::MAX, u64::MAX - 1, (1 << 63) + 1, u64::MAX / 2, 2]
    );
    assert_eq!(t.rows_by_event_time("d", 40, 90, 2).await.unwrap().len(), 2);
    assert_eq!(
        t.rows_by_event_time("d", 101, 200, 10).await.unwrap(),
        vec![]
    );

    // ties in event time come by key; removed samples drop out of both reads
    let mut second = add("d", 2, [10, 11, 12]);
    for r in &mut second.rows {
        r.event_time = 55;
    }
    t.commit_changeset(second).await.expect("2");
    t.commit_changeset(remove("d", 3, [11, 2]))
        .await
        .expect("3");
    let by_time = t.rows_by_event_time("d", 50, 61, 100).await.unwrap();
    assert_eq!(keys(&by_time), [u64::MAX - 1, 10, 12, (1 << 63) + 1]);
    assert_eq!(
        keys(&t.rows_by_key_range("d", 2, 12, 100).await.unwrap()),
        [10, 12]
    );
}

async fn removes_and_relabels_keep_history(f: Fixture) {
    let t = f.tenant().await;
    let label = |s: &str| Some(s.to_owned());
    t.commit_changeset(add("d", 1, 0..4)).await.expect("1");
    t.commit_changeset(relabel("d", 2, vec![(0, label("cat")), (1, None)]))
        .await
        .expect("2");
    t.commit_changeset(remove("d", 3, [2])).await.expect("3");
    t.commit_changeset(relabel("d", 4, vec![(0, label("dog"))]))
        .await
        .expect("4");
    // key 2 comes back from another changeset; an old relabel must not follow it
    t.commit_changeset(add("d", 5, [2])).await.expect("5");
    t.commit_changeset(remove("d", 6, [1])).await.expect("6");

    let now = t.rows_by_key_range("d", 0, 10, 10).await.unwrap();
    let view: Vec<(u64, i64, Option<String>)> = now
        .iter()
        .map(|r| (r.key, r.changeset, r.label.clone()))
        .collect();
    assert_eq!(
        view,
        [
            (0, 1, label("dog")),
            (2, 5, label("even")),
            (3, 1, label("odd"))
        ]
    );
    assert_eq!(t.row("d", 1).await.unwrap(), None);
    assert_eq!(t.row("d", 0).await.unwrap().unwrap().label, label("dog"));
    let d = t.dataset("d").await.unwrap().unwrap();
    assert_eq!((d.head, d.samples, d.bytes), (6, 3, 300));

    let at = |n: i64| {
        let t = Arc::clone(&t);
        async move {
            t.view_at("d", n, 0, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.key, r.label))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(at(0).await, []);
    assert_eq!(
        at(1).await,
        [
            (0, label("even")),
            (1, label("odd")),
            (2, label("even")),
            (3, label("odd"))
        ]
    );
    assert_eq!(
        at(2).await,
        [
            (0, label("cat")),
            (1, None),
            (2, label("even")),
            (3, label("odd"))
        ]
    );
    assert_eq!(
        at(3).await,
        [(0, label("cat")), (1, None), (3, label("odd"))]
    );
    assert_eq!(
        at(4).await,
        [(0, label("dog")), (1, None), (3, label("odd"))]
    );
    assert_eq!(
        at(5).await,
        [
            (0, label("dog")),
            (1, None),
            (2, label("even")),
            (3, label("odd"))
        ]
    );
    assert_eq!(at(6).await, at(i64::MAX).await);
    // paging
    assert_eq!(t.view_at("d", 5, 1, 2).await.unwrap().len(), 2);
    assert_eq!(keys(&t.view_at("d", 5, 3, 10).await.unwrap()), [3]);

    // the changesets carry what they removed and relabelled; rows stay as added
    let c2 = t.changeset("d", 2).await.unwrap().unwrap();
    assert_eq!(c2.relabels, vec![(0, label("cat")), (1, None)]);
    assert_eq!(t.changeset("d", 3).await.unwrap().unwrap().removed, vec![2]);
    assert_eq!(
        t.rows_by_changeset("d", 1).await.unwrap()[0].label,
        label("even")
    );

    // a revert carries its effect: here it undoes changeset 6
    let mut revert = ChangesetRecord::new("d", 7, ChangesetKind::Revert, 7);
    revert.reverts = Some(6);
    let mut back = row(1, 7);
    back.label = None;
    t.commit_changeset(NewChangeset::new(revert.clone()).with_rows(vec![back.clone()]))
        .await
        .expect("7");
    assert_eq!(t.row("d", 1).await.unwrap(), Some(back));
    assert_eq!(t.changeset("d", 7).await.unwrap().unwrap().reverts, Some(6));

    // a query changeset carries no rows
    let mut q = ChangesetRecord::new("d", 8, ChangesetKind::Query, 8);
    q.query = Some(flywheel_schemas::RestrictedQuery {
        source: "warehouse".into(),
        sql: "SELECT * FROM clicks".into(),
        label_column: Some("label".into()),
        feature_columns: vec!["a".into()],
    });
    t.commit_changeset(NewChangeset::new(q.clone()))
        .await
        .expect("8");
    assert_eq!(t.changeset("d", 8).await.unwrap(), Some(q));
    assert_eq!(t.dataset("d").await.unwrap().unwrap().samples, 4);
}

fn pipeline(name: &str) -> PipelineRecord {
    PipelineRecord {
        name: name.into(),
        document: "dataset = \"d\"\n[trigger]\nkind = \"amount\"\n".into(),
        status: PipelineStatus::Active,
        submitted_at: 10,
        stopped_at: None,
    }
}

fn trainset(version: &str, dataset: &str) -> TrainsetRecord {
    TrainsetRecord {
        version: version.into(),
        dataset: dataset.into(),
        query: serde_json::json!({"dataset": dataset, "as_of": 3, "labels": ["a", "b"]}),
        head_changeset: 3,
        manifest_uri: format!("file:///manifests/{version}.json"),
        sample_count: 1234,
        created_at: 20,
    }
}

fn model(id: &str, pipeline: &str, trigger: i64) -> ModelRecord {
    ModelRecord {
        id: id.into(),
        pipeline: pipeline.into(),
        trigger_id: trigger,
        uri: format!("file:///models/{id}.pt"),
        trainset_version: "v1".into(),
        parent: None,
        metrics: BTreeMap::from([("accuracy".into(), 0.93), ("loss".into(), 0.2)]),
        created_at: 30 + trigger,
    }
}

async fn pipeline_state_is_compare_and_set(f: Fixture) {
    let t = f.tenant().await;
    let err = t.put_pipeline_state("p", vec![1], None).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(_)) && err.to_string().contains("pipeline \"p\""),
        "{err}"
    );
    t.put_pipeline(pipeline("p")).await.expect("pipeline");
    assert_eq!(t.pipeline_state("p").await.unwrap(), None);
    assert_eq!(t.put_pipeline_state("p", vec![1], None).await.unwrap(), 1);
    let err = t.put_pipeline_state("p", vec![2], None).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { .. })
            && err
                .to_string()
                .contains("expected version none, but the stored version is 1"),
        "{err}"
    );
    assert_eq!(
        t.put_pipeline_state("p", vec![2], Some(1)).await.unwrap(),
        2
    );
    let err = t
        .put_pipeline_state("p", vec![3], Some(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(t.pipeline_state("p").await.unwrap(), Some((vec![2], 2)));

    // two writers racing from the same version: exactly one wins
    let (a, b) = tokio::join!(
        t.put_pipeline_state("p", vec![4], Some(2)),
        t.put_pipeline_state("p", vec![5], Some(2))
    );
    assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
    assert_eq!(t.pipeline_state("p").await.unwrap().unwrap().1, 3);

    // resubmitting or stopping the pipeline keeps its state
    let mut stopped = pipeline("p");
    stopped.status = PipelineStatus::Stopped;
    stopped.stopped_at = Some(50);
    t.put_pipeline(stopped.clone()).await.expect("stop");
    assert_eq!(t.pipeline("p").await.unwrap(), Some(stopped.clone()));
    assert_eq!(t.pipeline_state("p").await.unwrap().unwrap().1, 3);
    t.put_pipeline(pipeline("a")).await.expect("another");
    assert_eq!(t.pipelines().await.unwrap(), vec![pipeline("a"), stopped]);
    assert_eq!(t.pipeline("zzz").await.unwrap(), None);
}

async fn trainsets_and_models_round_trip(f: Fixture) {
    let t = f.tenant().await;
    let v1 = trainset("v1", "d");
    assert_eq!(
        t.put_trainset(v1.clone()).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(
        t.put_trainset(v1.clone()).await.unwrap(),
        PutOutcome::Unchanged
    );
    // the same query with its keys in another order is the same query
    let mut reordered = v1.clone();
    reordered.query =
        serde_json::from_str(r#"{"labels":["a","b"],"as_of":3,"dataset":"d"}"#).unwrap();
    assert_eq!(
        t.put_trainset(reordered).await.unwrap(),
        PutOutcome::Unchanged
    );
    let mut different = v1.clone();
    different.sample_count += 1;
    let err = t.put_trainset(different).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { .. })
            && err.to_string().contains("training set \"v1\""),
        "{err}"
    );
    let mut v2 = trainset("v2", "e");
    v2.created_at = 10;
    t.put_trainset(v2.clone()).await.unwrap();
    assert_eq!(t.trainset("v1").await.unwrap(), Some(v1.clone()));
    assert_eq!(t.trainset("v3").await.unwrap(), None);
    assert_eq!(
        t.trainsets(None).await.unwrap(),
        vec![v2.clone(), v1.clone()]
    );
    assert_eq!(t.trainsets(Some("d")).await.unwrap(), vec![v1]);
    assert_eq!(t.trainsets(Some("x")).await.unwrap(), vec![]);

    let m1 = model("m1", "p", 1);
    let mut m2 = model("m2", "p", 2);
    m2.parent = Some("m1".into());
    let m3 = model("m3", "q", 0);
    for m in [&m1, &m2, &m3] {
        assert_eq!(t.put_model(m.clone()).await.unwrap(), PutOutcome::Created);
    }
    assert_eq!(
        t.put_model(m2.clone()).await.unwrap(),
        PutOutcome::Unchanged
    );
    let mut changed = m2.clone();
    changed.metrics.insert("loss".into(), 0.1);
    assert!(matches!(
        t.put_model(changed).await.unwrap_err(),
        StoreError::Conflict { .. }
    ));
    let mut nan = model("m4", "p", 4);
    nan.metrics.insert("loss".into(), f64::NAN);
    assert!(matches!(
        t.put_model(nan).await.unwrap_err(),
        StoreError::Invalid { .. }
    ));
    assert_eq!(t.model("m2").await.unwrap(), Some(m2.clone()));
    assert_eq!(
        t.models(Some("p")).await.unwrap(),
        vec![m1.clone(), m2.clone()]
    );
    assert_eq!(t.models(None).await.unwrap(), vec![m3, m1, m2]);
}

async fn reopening_keeps_everything(f: Fixture) {
    let tenant = Tenant::new(&unique("t")).unwrap();
    let t = f.store.tenant(&tenant).await.expect("tenant");
    let first = add("d", 1, 0..100);
    t.commit_changeset(first.clone()).await.expect("1");
    t.commit_changeset(relabel("d", 2, vec![(5, Some("x".into()))]))
        .await
        .expect("2");
    t.put_pipeline(pipeline("p")).await.unwrap();
    t.put_pipeline_state("p", vec![9; 100], None).await.unwrap();
    t.put_trainset(trainset("v1", "d")).await.unwrap();
    t.put_model(model("m1", "p", 1)).await.unwrap();
    let before = (
        t.dataset("d").await.unwrap(),
        t.changesets("d").await.unwrap(),
        t.rows_by_key_range("d", 0, u64::MAX, 1000).await.unwrap(),
        t.consumer_offsets("ingest").await.unwrap(),
    );
    drop(t);
    let Fixture {
        store,
        url,
        kind,
        dir: _keep,
    } = f;
    drop(store);

    let store = flywheel_store::open(&url).await.expect("reopen");
    assert!(store.tenants().await.unwrap().contains(&tenant), "{kind}");
    let t = store.tenant(&tenant).await.expect("tenant again");
    let after = (
        t.dataset("d").await.unwrap(),
        t.changesets("d").await.unwrap(),
        t.rows_by_key_range("d", 0, u64::MAX, 1000).await.unwrap(),
        t.consumer_offsets("ingest").await.unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(after.2[5].label.as_deref(), Some("x"));
    assert_eq!(
        t.pipeline_state("p").await.unwrap(),
        Some((vec![9; 100], 1))
    );
    assert_eq!(t.trainset("v1").await.unwrap(), Some(trainset("v1", "d")));
    assert_eq!(t.model("m1").await.unwrap(), Some(model("m1", "p", 1)));
    // and it goes on from where it was
    assert!(matches!(
        t.commit_changeset(first).await.unwrap(),
        CommitOutcome::AlreadyCommitted(_)
    ));
    t.commit_changeset(add("d", 3, [1000])).await.expect("3");
}

/// A changeset's row block holds exactly the rows it added, for every kind that adds rows.
async fn row_blocks_hold_the_rows_of_a_changeset(f: Fixture) {
    let t = f.tenant().await;
    let mut first = add("d", 1, [5, 1, 3]);
    first.rows[1].label = None;
    t.commit_changeset(first).await.expect("1");
    t.commit_changeset(remove("d", 2, [3])).await.expect("2");
    for id in 1..=2 {
        let rows = t.rows_by_changeset("d", id).await.expect("rows");
        let block = t.row_block("d", id).await.expect("block");
        assert_eq!(block, RowBlock::from_rows(id, &rows), "changeset {id}");
        let back: Vec<IndexRow> = (0..block.len()).map(|i| block.row(i)).collect();
        assert_eq!(back, rows, "changeset {id}");
    }
    assert!(t.row_block("d", 2).await.expect("block").is_empty());
    assert!(t.row_block("nope", 1).await.expect("block").is_empty());
}

macro_rules! conformance {
    ($backend:ident) => {
        mod $backend {
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        if let Some(f) = crate::common::$backend().await {
                            let url = f.url.clone();
                            let outcome = tokio::spawn(super::$name(f)).await;
                            crate::common::clean_up(&url).await;
                            if let Err(e) = outcome {
                                std::panic::resume_unwind(e.into_panic());
                            }
                        }
                    }
                };
            }
            case!(commit_then_read_back);
            case!(datasets_are_created_once_and_listed);
            case!(a_failed_commit_leaves_nothing);
            case!(recommitting_the_same_changeset_is_a_no_op);
            case!(conflicts_and_gaps_are_refused);
            case!(readers_see_a_commit_whole_or_not_at_all);
            case!(tenants_do_not_see_each_other);
            case!(reads_by_key_range_and_event_time);
            case!(removes_and_relabels_keep_history);
            case!(pipeline_state_is_compare_and_set);
            case!(trainsets_and_models_round_trip);
            case!(reopening_keeps_everything);
            case!(row_blocks_hold_the_rows_of_a_changeset);
        }
    };
}

conformance!(sqlite);
conformance!(scylla);
