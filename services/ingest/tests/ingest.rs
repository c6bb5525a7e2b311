//! The ingest service end to end on a real bus (embedded; Kafka when `FLYWHEEL_TEST_KAFKA`
//! is set), SQLite and file blobs: samples in; keys, segments, changesets and events out;
//! nothing lost and nothing twice across crashes.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::bus::Fixture;
use common::{Stack, identities, sample};
use flywheel_ingest::sample_key;
use flywheel_schemas::{Changeset, ChangesetKind, Sample, decode};
use flywheel_store::SampleLocation;
use flywheel_topics::TopicKind;
use rand::Rng;

const WAIT: Duration = Duration::from_secs(60);

async fn changeset_events(stack: &Stack, n: usize) -> Vec<Changeset> {
    stack
        .read_topic(TopicKind::Changesets, n)
        .await
        .iter()
        .map(|m| decode::<Changeset>(&m.value).expect("a Changeset event"))
        .collect()
}

/// Samples of two datasets, inline payloads, blob references and features, all stored,
/// keyed by their source positions, in changesets 1..N with their events; a restart
/// resumes without storing anything again.
async fn stores_samples_in_changesets(f: Fixture) {
    let stack = Stack::new(f).await;
    let mut samples: Vec<Sample> = (0..600).map(|i| sample("sensors", i)).collect();
    samples.extend((600..700).map(|i| sample("clicks", i)));
    samples[5].blob = Some("s3://raw/5.jpg".into());
    samples[5].payload = None;
    samples[6] = Sample {
        features: Vec::new(),
        blob: Some("s3://raw/6.jpg".into()),
        payload: None,
        ..samples[6].clone()
    };
    let acks = stack.produce(&samples).await;

    let config = flywheel_ingest::IngestConfig {
        changeset_samples: 100,
        ..stack.config()
    };
    let running = stack.spawn(config.clone());
    stack.wait_for("sensors", 600, WAIT).await;
    stack.wait_for("clicks", 100, WAIT).await;
    running.stop().await;

    let store = stack.store().await;
    let sensors = store.changesets("sensors").await.unwrap();
    assert!(
        sensors.len() >= 6,
        "{}: {} changesets",
        stack.kind,
        sensors.len()
    );
    assert_eq!(
        sensors.iter().map(|c| c.id).collect::<Vec<_>>(),
        (1..=sensors.len() as i64).collect::<Vec<_>>()
    );
    assert!(
        sensors
            .iter()
            .all(|c| c.kind == ChangesetKind::Add && c.sample_count <= 100)
    );

    // every sample under the key of its source position, with what it carried
    for (s, ack) in samples.iter().zip(&acks) {
        let key = sample_key(ack.partition, ack.offset).unwrap();
        let row = store
            .row(&s.dataset, key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{}: key {key} missing", stack.kind));
        assert_eq!(
            (row.label.as_ref(), row.event_time),
            (s.label.as_ref(), s.event_time)
        );
        let (features, payload, blob) = stack.read_stored(&row).await;
        assert_eq!(features, s.features);
        assert_eq!(payload, s.payload);
        assert_eq!(blob, s.blob);
        if s.features.is_empty() {
            assert_eq!(
                row.location,
                SampleLocation::Blob {
                    uri: "s3://raw/6.jpg".into()
                }
            );
        }
    }
    // a segment per changeset, in the tenant's and dataset's prefix
    let segments: BTreeSet<String> = sensors.iter().flat_map(|c| c.segments.clone()).collect();
    assert_eq!(segments.len(), sensors.len());
    let prefix = format!("{}/sensors/segments/", stack.tenant);
    assert!(
        segments.iter().all(|s| s.starts_with(&prefix)),
        "{segments:?}"
    );

    // one event per changeset (at least once: heads may be announced again)
    let clicks = store.changesets("clicks").await.unwrap();
    let events = changeset_events(&stack, sensors.len() + clicks.len()).await;
    let announced: BTreeSet<(String, i64)> =
        events.iter().map(|e| (e.dataset.clone(), e.id)).collect();
    let committed: BTreeSet<(String, i64)> = sensors
        .iter()
        .chain(&clicks)
        .map(|c| (c.dataset.clone(), c.id))
        .collect();
    assert_eq!(announced, committed, "{}", stack.kind);
    let first = events
        .iter()
        .find(|e| e.dataset == "sensors" && e.id == 1)
        .unwrap();
    assert_eq!(first.sources, sensors[0].sources);
    assert_eq!(first.tenant, stack.tenant.as_str());

    // a restart stores nothing twice and goes on with the next samples
    let running = stack.spawn(config);
    let more: Vec<Sample> = (700..710).map(|i| sample("sensors", i)).collect();
    stack.produce(&more).await;
    stack.wait_for("sensors", 610, WAIT).await;
    running.stop().await;
    let rows = stack.all_rows("sensors").await;
    assert_eq!(rows.len(), 610, "{}", stack.kind);
    let seen = identities(&stack, &rows).await;
    assert_eq!(
        seen.len(),
        609,
        "every sample with features once (one has none)"
    );
    assert!(seen.values().all(|n| *n == 1));
}

/// Ingest is aborted at random points (between any two awaits: mid-poll, after writing a
/// segment, mid-commit, before the bus commit) at least 20 times while a producer streams;
/// afterwards the store holds every produced sample exactly once, under the key of its
/// source position, in changesets 1..N without gaps. Each abort comes a random moment after
/// the instance has been delivered its first messages, so that every one of them works.
async fn nothing_lost_nothing_twice_across_crashes(f: Fixture) {
    let stack = std::sync::Arc::new(Stack::new(f).await);
    const CRASHES: usize = 24;
    let streaming = tokio_util::sync::CancellationToken::new();
    let producer = {
        let stack = std::sync::Arc::clone(&stack);
        let streaming = streaming.clone();
        tokio::spawn(async move {
            let mut produced = Vec::new();
            let mut i = 0u64;
            while !streaming.is_cancelled() {
                let n = rand::rng().random_range(1..=40);
                let batch: Vec<Sample> = (i..i + n)
                    .map(|j| {
                        sample(
                            if j.is_multiple_of(4) {
                                "clicks"
                            } else {
                                "sensors"
                            },
                            j,
                        )
                    })
                    .collect();
                produced.extend(stack.produce(&batch).await.into_iter().zip(batch));
                i += n;
                let pause = Duration::from_millis(rand::rng().random_range(2..15));
                tokio::time::sleep(pause).await;
            }
            produced
        })
    };
    let config = flywheel_ingest::IngestConfig {
        changeset_samples: 50,
        changeset_age: Duration::from_millis(30),
        ..stack.config()
    };
    for round in 0..CRASHES {
        let before = stack.samples_consumed();
        let running = stack.spawn(config.clone());
        let deadline = std::time::Instant::now() + WAIT;
        while stack.samples_consumed() == before {
            assert!(
                std::time::Instant::now() < deadline,
                "{}: round {round}: ingest was delivered nothing in {WAIT:?}",
                stack.kind
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let ms = rand::rng().random_range(0..150);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        running.abort().await;
    }
    streaming.cancel();
    let produced = producer.await.expect("producer");
    let total = produced.len() as i64;
    let running = stack.spawn(config);
    let sensors = produced
        .iter()
        .filter(|(_, s)| s.dataset == "sensors")
        .count() as i64;
    stack.wait_for("sensors", sensors, WAIT).await;
    stack.wait_for("clicks", total - sensors, WAIT).await;
    running.stop().await;

    let store = stack.store().await;
    for dataset in ["sensors", "clicks"] {
        let changesets = store.changesets(dataset).await.unwrap();
        assert_eq!(
            changesets.iter().map(|c| c.id).collect::<Vec<_>>(),
            (1..=changesets.len() as i64).collect::<Vec<_>>(),
            "{}: changeset ids of {dataset} have gaps",
            stack.kind
        );
        let rows = stack.all_rows(dataset).await;
        let expected: BTreeSet<u64> = produced
            .iter()
            .filter(|(_, s)| s.dataset == dataset)
            .map(|(a, _)| sample_key(a.partition, a.offset).unwrap())
            .collect();
        let keys: Vec<u64> = rows.iter().map(|r| r.key).collect();
        let unique: BTreeSet<u64> = keys.iter().copied().collect();
        assert_eq!(
            keys.len(),
            unique.len(),
            "{}: duplicate rows in {dataset}",
            stack.kind
        );
        assert_eq!(unique, expected, "{}: stored keys of {dataset}", stack.kind);
        let seen = identities(&stack, &rows).await;
        assert_eq!(seen.len(), expected.len());
        assert!(
            seen.values().all(|n| *n == 1),
            "{}: a sample stored twice",
            stack.kind
        );
    }
    let metric = |name: &str| -> f64 {
        let families = stack.registry.gather();
        let family = families.iter().find(|f| f.name() == name);
        family.map_or(0.0, |f| {
            f.get_metric()
                .iter()
                .map(|m| m.get_counter().get_value())
                .sum()
        })
    };
    eprintln!(
        "{}: {total} samples, {CRASHES} aborts, {} + {} changesets, {} redelivered samples skipped, {} commits retried",
        stack.kind,
        store.changesets("sensors").await.unwrap().len(),
        store.changesets("clicks").await.unwrap().len(),
        metric("flywheel_ingest_replayed_total"),
        metric("flywheel_ingest_commit_retries_total"),
    );
}

on_every_bus!(
    stores_samples_in_changesets,
    nothing_lost_nothing_twice_across_crashes
);
