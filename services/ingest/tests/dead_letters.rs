//! Bad input never stops the stream and is never dropped silently: each kind of bad message
//! goes to `flywheel.{tenant}.samples.rejected` with its original bytes and a reason code,
//! and counts in `flywheel_dead_letters_total{reason}`; the good samples around it are stored.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::bus::Fixture;
use common::{Stack, sample};
use flywheel_ingest::IngestConfig;
use flywheel_schemas::{MARKER, RejectedSample, decode, encode, now_micros};
use flywheel_topics::{Record, TopicKind};

const WAIT: Duration = Duration::from_secs(60);

async fn bad_input_goes_to_dead_letters(f: Fixture) {
    let stack = Stack::new(f).await;
    // datasets must exist here, so that an unknown one is refused
    let store = stack.store().await;
    store.ensure_dataset("sensors", now_micros()).await.unwrap();

    let big = "A".repeat(4000); // 3000 bytes once decoded
    let mut avro_bad = MARKER.to_vec();
    avro_bad.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 9, 9]);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("not_avro_or_json", b"\x00\x01 not a sample".to_vec()),
        ("not_avro_or_json", b"{\"dataset\": truncated".to_vec()),
        ("schema_violation", avro_bad),
        (
            "schema_violation",
            br#"{"dataset":"sensors","event_time":"2026-11-21T10:00:00Z"}"#.to_vec(),
        ),
        (
            "label_type",
            br#"{"dataset":"sensors","features":[1],"label":5,"event_time":"2026-11-21T10:00:00Z"}"#
                .to_vec(),
        ),
        (
            "bad_event_time",
            br#"{"dataset":"sensors","features":[1],"event_time":"yesterday"}"#.to_vec(),
        ),
        (
            "payload_too_large",
            format!(
                r#"{{"dataset":"sensors","payload_b64":"{big}","event_time":"2026-11-21T10:00:00Z"}}"#
            )
            .into_bytes(),
        ),
        (
            "unknown_dataset",
            br#"{"dataset":"nope","features":[1],"event_time":"2026-11-21T10:00:00Z"}"#.to_vec(),
        ),
    ];
    // good, bad, good, bad, ...: all on one partition, in this order
    let mut records = Vec::new();
    for (i, (_, bytes)) in bad.iter().enumerate() {
        records.push(Record::keyed(
            "sensors",
            encode(&sample("sensors", i as u64)),
        ));
        records.push(Record::keyed("sensors", bytes.clone()));
    }
    records.push(Record::keyed("sensors", encode(&sample("sensors", 99))));
    let acks = stack.produce_raw(records).await;

    let running = stack.spawn(IngestConfig {
        max_payload_bytes: 2048,
        auto_create_datasets: false,
        ..stack.config()
    });
    stack.wait_for("sensors", bad.len() as i64 + 1, WAIT).await;

    let letters: Vec<RejectedSample> = stack
        .read_topic(TopicKind::SamplesRejected, bad.len())
        .await
        .iter()
        .map(|m| decode::<RejectedSample>(&m.value).expect("a RejectedSample"))
        .collect();
    running.stop().await;

    assert_eq!(letters.len(), bad.len(), "{}", stack.kind);
    let by_offset: BTreeMap<i64, &RejectedSample> =
        letters.iter().map(|l| (l.source_offset, l)).collect();
    for (i, (reason, bytes)) in bad.iter().enumerate() {
        let ack = acks[2 * i + 1];
        let letter = by_offset
            .get(&ack.offset)
            .unwrap_or_else(|| panic!("{}: no dead letter for {reason}", stack.kind));
        assert_eq!(letter.reason, *reason, "{}: {}", stack.kind, letter.detail);
        assert_eq!(&letter.original, bytes);
        assert_eq!(letter.source_partition, ack.partition);
        assert_eq!(letter.source_topic, stack.topic(TopicKind::Samples));
        assert_eq!(letter.tenant, stack.tenant.as_str());
        assert!(!letter.detail.is_empty());
    }
    let too_large = letters
        .iter()
        .find(|l| l.reason == "payload_too_large")
        .unwrap();
    assert!(
        too_large
            .detail
            .contains("3000 bytes is over the limit of 2048"),
        "{}",
        too_large.detail
    );

    // counted by reason
    let counts: BTreeMap<String, f64> = stack
        .registry
        .gather()
        .iter()
        .filter(|f| f.name() == "flywheel_dead_letters_total")
        .flat_map(|f| f.get_metric())
        .map(|m| {
            let reason = m.get_label().iter().find(|l| l.name() == "reason").unwrap();
            (reason.value().to_owned(), m.get_counter().get_value())
        })
        .collect();
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    for (reason, _) in &bad {
        *expected.entry((*reason).to_owned()).or_default() += 1.0;
    }
    assert_eq!(counts, expected);

    // the good ones, all of them, nothing else
    let rows = stack.all_rows("sensors").await;
    assert_eq!(rows.len(), bad.len() + 1);
    assert!(store.dataset("nope").await.unwrap().is_none());
}

/// A message larger than any sample within the limit could be is refused unread; a dead
/// letter keeps at most the first 512 KiB of it.
async fn oversized_messages_are_refused_unread(f: Fixture) {
    let stack = Stack::new(f).await;
    let huge = vec![b'x'; 700 * 1024];
    stack
        .produce_raw(vec![
            Record::keyed("sensors", huge.clone()),
            Record::keyed("sensors", encode(&sample("sensors", 1))),
        ])
        .await;
    let running = stack.spawn(IngestConfig {
        max_payload_bytes: 1024,
        ..stack.config()
    });
    stack.wait_for("sensors", 1, WAIT).await;
    let letters = stack.read_topic(TopicKind::SamplesRejected, 1).await;
    running.stop().await;
    let letter = decode::<RejectedSample>(&letters[0].value).unwrap();
    assert_eq!(letter.reason, "payload_too_large");
    assert_eq!(letter.original.len(), 512 * 1024);
    assert_eq!(letter.original[..], huge[..512 * 1024]);
    assert!(
        letter
            .detail
            .contains("cut to its first 524288 of 716800 bytes"),
        "{}",
        letter.detail
    );
}

on_every_bus!(
    bad_input_goes_to_dead_letters,
    oversized_messages_are_refused_unread
);
