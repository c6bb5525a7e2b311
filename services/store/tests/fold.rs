//! Property: after any sequence of add / remove / relabel changesets (some of them invalid
//! and refused), the store's view at every changeset N equals the fold of 1..N computed by
//! a plain in-memory model, and so do the current-view reads and the dataset's counters.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{add, relabel, remove, row};
use flywheel_store::{IndexRow, StoreError, TenantStore};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// What a step tries to do; the keys are picks into a small key space so that keys collide.
#[derive(Debug, Clone)]
enum Step {
    Add(Vec<u8>),
    Remove(Vec<u8>),
    Relabel(Vec<(u8, Option<u8>)>),
    /// Adds a key that is already there (refused; must change nothing).
    AddExisting,
}

fn step() -> impl Strategy<Value = Step> {
    let keys = || proptest::collection::vec(0u8..24, 1..6);
    prop_oneof![
        3 => keys().prop_map(Step::Add),
        2 => keys().prop_map(Step::Remove),
        2 => proptest::collection::vec((0u8..24, proptest::option::of(0u8..3)), 1..4)
            .prop_map(Step::Relabel),
        1 => Just(Step::AddExisting),
    ]
}

/// The view: key -> the row as it reads now.
type View = BTreeMap<u64, IndexRow>;

async fn check(t: &Arc<dyn TenantStore>, dataset: &str, steps: Vec<Step>) {
    let mut views: Vec<View> = vec![View::new()];
    let mut id = 0;
    for s in steps {
        let mut view = views.last().expect("a view").clone();
        let next = id + 1;
        let changeset = match s {
            Step::Add(picks) => {
                let mut keys: Vec<u64> = picks.iter().map(|k| u64::from(*k)).collect();
                keys.sort_unstable();
                keys.dedup();
                keys.retain(|k| !view.contains_key(k));
                if keys.is_empty() {
                    continue;
                }
                for k in &keys {
                    view.insert(*k, row(*k, next));
                }
                add(dataset, next, keys)
            }
            Step::Remove(picks) => {
                let mut keys: Vec<u64> = picks.iter().map(|k| u64::from(*k)).collect();
                keys.sort_unstable();
                keys.dedup();
                keys.retain(|k| view.contains_key(k));
                if keys.is_empty() {
                    continue;
                }
                for k in &keys {
                    view.remove(k);
                }
                remove(dataset, next, keys)
            }
            Step::Relabel(picks) => {
                let mut labels: BTreeMap<u64, Option<String>> = BTreeMap::new();
                for (k, l) in picks {
                    if view.contains_key(&u64::from(k)) {
                        labels.insert(u64::from(k), l.map(|l| format!("l{l}")));
                    }
                }
                if labels.is_empty() {
                    continue;
                }
                for (k, l) in &labels {
                    view.get_mut(k).expect("live").label.clone_from(l);
                }
                relabel(dataset, next, labels.into_iter().collect())
            }
            Step::AddExisting => {
                let Some(&k) = view.keys().next() else {
                    continue;
                };
                let err = t
                    .commit_changeset(add(dataset, next, [k]))
                    .await
                    .unwrap_err();
                assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
                continue;
            }
        };
        t.commit_changeset(changeset).await.expect("commit");
        id = next;
        views.push(view);
    }

    let rows = |v: &View| v.values().cloned().collect::<Vec<_>>();
    for (n, view) in views.iter().enumerate() {
        let got = t
            .view_at(dataset, n as i64, 0, usize::MAX)
            .await
            .expect("view");
        assert_eq!(got, rows(view), "view at changeset {n}");
    }
    let now = views.last().expect("a view");
    assert_eq!(
        t.rows_by_key_range(dataset, 0, u64::MAX, usize::MAX)
            .await
            .unwrap(),
        rows(now)
    );
    let mut by_time = rows(now);
    by_time.sort_by_key(|r| (r.event_time, r.key));
    assert_eq!(
        t.rows_by_event_time(dataset, i64::MIN, i64::MAX, usize::MAX)
            .await
            .unwrap(),
        by_time
    );
    for k in 0..24 {
        assert_eq!(
            t.row(dataset, k).await.unwrap().as_ref(),
            now.get(&k),
            "key {k}"
        );
    }
    if id > 0 {
        let d = t.dataset(dataset).await.unwrap().expect("dataset");
        assert_eq!(d.head, id);
        assert_eq!(d.samples, now.len() as i64);
        assert_eq!(d.bytes, now.values().map(|r| r.size as i64).sum::<i64>());
    }
}

#[test]
fn the_view_at_every_changeset_is_the_fold_of_its_changesets() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fixture = rt.block_on(common::sqlite()).expect("sqlite");
    let tenant = rt.block_on(fixture.tenant());
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&proptest::collection::vec(step(), 1..24), |steps| {
            // every case (and every shrinking step) gets a dataset of its own
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            rt.block_on(check(&tenant, &format!("d{n}"), steps));
            Ok(())
        })
        .unwrap();
}
