//! Edits (remove by keys or filter, relabel, revert) and dataset statistics, planned from
//! the store's reads and committed as changesets.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{add, keys, row, sqlite};
use flywheel_schemas::ChangesetKind;
use flywheel_store::{Edit, Filter, StoreError, TenantStore, commit_edit, dataset_stats};

async fn labels(t: &dyn TenantStore) -> BTreeMap<u64, Option<String>> {
    t.rows_by_key_range("d", 0, u64::MAX, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.label))
        .collect()
}

async fn with_rows(n: u64) -> (common::Fixture, Arc<dyn TenantStore>) {
    let f = sqlite().await.unwrap();
    let t = f.tenant().await;
    t.commit_changeset(add("d", 1, 0..n)).await.unwrap();
    (f, t)
}

fn invalid(e: &StoreError) -> String {
    assert!(matches!(e, StoreError::Invalid { .. }), "{e:?}");
    e.to_string()
}

#[tokio::test]
async fn remove_by_keys_and_by_filter() {
    let (_f, t) = with_rows(10).await;
    let c = commit_edit(t.as_ref(), "d", &Edit::Remove { keys: vec![3, 1] }, 5)
        .await
        .unwrap();
    assert_eq!(
        (c.id, c.kind, c.removed.clone()),
        (2, ChangesetKind::Remove, vec![1, 3])
    );
    assert_eq!((c.sample_count, c.bytes), (2, 200));
    assert_eq!(t.dataset("d").await.unwrap().unwrap().samples, 8);

    let err = commit_edit(t.as_ref(), "d", &Edit::Remove { keys: vec![1] }, 5)
        .await
        .unwrap_err();
    assert!(invalid(&err).contains("key 1 is not in the dataset"));

    // label and time together: odd keys at or after key 5's event time
    let filter = Filter {
        label: Some("odd".into()),
        from: Some(row(5, 1).event_time),
        ..Filter::default()
    };
    let c = commit_edit(t.as_ref(), "d", &Edit::RemoveWhere { filter }, 6)
        .await
        .unwrap();
    assert_eq!(c.removed, vec![5, 7, 9]);
    let left: Vec<u64> = labels(t.as_ref()).await.into_keys().collect();
    assert_eq!(left, vec![0, 2, 4, 6, 8]);

    for (filter, says) in [
        (Filter::default(), "an empty filter would remove everything"),
        (
            Filter {
                label: Some("x".into()),
                unlabelled: true,
                ..Filter::default()
            },
            "a label and for no label",
        ),
        (
            Filter {
                from: Some(5),
                to: Some(5),
                ..Filter::default()
            },
            "the time range is empty",
        ),
        (
            Filter {
                label: Some("nothing-has-this".into()),
                ..Filter::default()
            },
            "no sample matches",
        ),
    ] {
        let err = commit_edit(t.as_ref(), "d", &Edit::RemoveWhere { filter }, 7)
            .await
            .unwrap_err();
        assert!(invalid(&err).contains(says));
    }
    assert_eq!(
        t.dataset("d").await.unwrap().unwrap().head,
        3,
        "refused edits write nothing"
    );

    let err = commit_edit(t.as_ref(), "nope", &Edit::Remove { keys: vec![1] }, 5)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn relabel_sets_and_clears_labels() {
    let (_f, t) = with_rows(4).await;
    let edit = Edit::Relabel {
        labels: vec![(0, Some("cat".into())), (1, None)],
    };
    let c = commit_edit(t.as_ref(), "d", &edit, 5).await.unwrap();
    assert_eq!(c.kind, ChangesetKind::Relabel);
    let l = labels(t.as_ref()).await;
    assert_eq!(l[&0].as_deref(), Some("cat"));
    assert_eq!(l[&1], None);
    assert_eq!(l[&2].as_deref(), Some("even"));

    let err = commit_edit(
        t.as_ref(),
        "d",
        &Edit::Relabel {
            labels: vec![(99, None)],
        },
        5,
    )
    .await
    .unwrap_err();
    assert!(invalid(&err).contains("key 99 is not in the dataset"));
}

#[tokio::test]
async fn revert_undoes_what_is_still_visible() {
    let (_f, t) = with_rows(6).await; // 1: add 0..6
    t.commit_changeset(add("d", 2, 10..13)).await.unwrap(); // 2: add 10..13
    commit_edit(t.as_ref(), "d", &Edit::Remove { keys: vec![0, 1] }, 5)
        .await
        .unwrap(); // 3
    let relabel = Edit::Relabel {
        labels: vec![
            (2, Some("cat".into())),
            (3, Some("dog".into())),
            (10, Some("x".into())),
        ],
    };
    commit_edit(t.as_ref(), "d", &relabel, 6).await.unwrap(); // 4
    let before_revert = labels(t.as_ref()).await;

    // revert the remove: 0 and 1 come back as they were
    let c = commit_edit(t.as_ref(), "d", &Edit::Revert { changeset: 3 }, 7)
        .await
        .unwrap(); // 5
    assert_eq!(
        (c.kind, c.reverts, c.sample_count),
        (ChangesetKind::Revert, Some(3), 2)
    );
    let rows = t.rows_by_key_range("d", 0, 1, 10).await.unwrap();
    assert_eq!(keys(&rows), vec![0, 1]);
    assert_eq!(
        rows[0].location,
        row(0, 1).location,
        "re-added as it was stored"
    );
    assert_eq!(rows[0].label.as_deref(), Some("even"));

    // revert the relabel: labels go back
    commit_edit(t.as_ref(), "d", &Edit::Revert { changeset: 4 }, 8)
        .await
        .unwrap(); // 6
    let l = labels(t.as_ref()).await;
    assert_eq!(l[&2].as_deref(), Some("even"));
    assert_eq!(l[&3].as_deref(), Some("odd"));
    assert_eq!(l[&10].as_deref(), Some("even"));

    // reverting it again: nothing left to undo
    let err = commit_edit(t.as_ref(), "d", &Edit::Revert { changeset: 4 }, 9)
        .await
        .unwrap_err();
    assert!(invalid(&err).contains("no effect left to revert"));

    // revert the revert: the relabel is back
    commit_edit(t.as_ref(), "d", &Edit::Revert { changeset: 6 }, 9)
        .await
        .unwrap(); // 7
    let l = labels(t.as_ref()).await;
    assert_eq!(l[&2].as_deref(), Some("cat"));
    assert_eq!(l[&10].as_deref(), Some("x"));
    assert_eq!(
        l.iter().filter(|(k, _)| **k >= 2).collect::<Vec<_>>(),
        before_revert
            .iter()
            .filter(|(k, _)| **k >= 2)
            .collect::<Vec<_>>()
    );

    // revert an add: its samples go, except one a later changeset changed again (10)
    let c = commit_edit(t.as_ref(), "d", &Edit::Revert { changeset: 2 }, 10)
        .await
        .unwrap(); // 8
    assert_eq!(c.removed, vec![11, 12]);
    let left: Vec<u64> = labels(t.as_ref()).await.into_keys().collect();
    assert_eq!(left, vec![0, 1, 2, 3, 4, 5, 10]);

    // the history stays readable: the view as of 2 still has 11 and 12
    let at2 = t.view_at("d", 2, 0, 100).await.unwrap();
    assert!(keys(&at2).contains(&12));

    for n in [0, 9] {
        let err = commit_edit(t.as_ref(), "d", &Edit::Revert { changeset: n }, 11)
            .await
            .unwrap_err();
        assert!(invalid(&err).contains(&format!("changeset {n} does not exist")));
    }
}

#[tokio::test]
async fn stats_count_labels_bytes_and_times() {
    let (_f, t) = with_rows(25_001).await; // more than one page
    commit_edit(
        t.as_ref(),
        "d",
        &Edit::Relabel {
            labels: vec![(0, None)],
        },
        5,
    )
    .await
    .unwrap();
    let s = dataset_stats(t.as_ref(), "d").await.unwrap();
    assert_eq!((s.samples, s.bytes, s.head), (25_001, 2_500_100, 2));
    assert_eq!(s.unlabelled, 1);
    assert_eq!(s.labels["even"], 12_500);
    assert_eq!(s.labels["odd"], 12_500);
    assert_eq!(s.first_event_time, Some(row(0, 1).event_time));
    assert_eq!(s.last_event_time, Some(row(25_000, 1).event_time));
}

#[tokio::test]
async fn remove_where_pages_through_event_time() {
    let (_f, t) = with_rows(23_000).await;
    let filter = Filter {
        from: Some(row(100, 1).event_time),
        to: Some(row(22_000, 1).event_time),
        ..Filter::default()
    };
    let c = commit_edit(t.as_ref(), "d", &Edit::RemoveWhere { filter }, 5)
        .await
        .unwrap();
    assert_eq!(c.removed, (100..22_000).collect::<Vec<u64>>());
    assert_eq!(t.dataset("d").await.unwrap().unwrap().samples, 1_100);
}
