//! The bus conformance suite: written once, run against every backend.
//!
//! `embedded` always runs. `kafka` runs against the broker at `FLYWHEEL_TEST_KAFKA`
//! (scripts/test.sh installs and starts tansu and sets it).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{Fixture, collect, drain, metric, unique};
use flywheel_topics::{
    BusError, ConsumerConfig, Message, Record, SeekTo, StartFrom, Subscription, TopicPartition,
    TopicSpec, offsets_after,
};

/// Generous for a broker's group joins and rebalances; the embedded bus is far quicker.
const WAIT: Duration = Duration::from_secs(40);

fn values(messages: &[Message]) -> BTreeSet<Vec<u8>> {
    messages.iter().map(|m| m.value.to_vec()).collect()
}

fn records(n: usize, tag: &str) -> Vec<Record> {
    (0..n)
        .map(|i| Record::keyed(format!("key-{}", i % 7), format!("{tag}-{i}")))
        .collect()
}

/// Offsets of each partition are contiguous and ascending.
fn assert_partition_order(messages: &[Message]) {
    let mut last: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for m in messages {
        if let Some(prev) = last.insert((m.topic.clone(), m.partition), m.offset) {
            assert!(
                m.offset > prev,
                "{}[{}]: {} after {}",
                m.topic,
                m.partition,
                m.offset,
                prev
            );
        }
    }
}

async fn topic(f: &Fixture, name: &str, partitions: u32) -> String {
    let name = unique(name);
    f.bus
        .create_topics(&[TopicSpec::new(&name, partitions)])
        .await
        .expect("create topic");
    name
}

async fn produce_is_acknowledged_in_order_and_keys_stick_to_partitions(f: Fixture) {
    let t = topic(&f, "acks", 3).await;
    let acks = f.bus.produce(&t, records(200, "v")).await.expect("produce");
    assert_eq!(acks.len(), 200);
    let mut by_key: BTreeMap<String, i32> = BTreeMap::new();
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for (i, ack) in acks.iter().enumerate() {
        let key = format!("key-{}", i % 7);
        assert_eq!(*by_key.entry(key).or_insert(ack.partition), ack.partition);
        if let Some(prev) = last.insert(ack.partition, ack.offset) {
            assert!(ack.offset > prev, "acks of one partition ascend");
        }
    }
    // a second batch continues where the first ended
    let more = f.bus.produce(&t, records(7, "w")).await.expect("produce");
    for ack in more {
        assert!(ack.offset > last[&ack.partition]);
    }
    let explicit = f
        .bus
        .produce(&t, vec![Record::unkeyed("x").to_partition(2)])
        .await
        .expect("produce to a partition");
    assert_eq!(explicit[0].partition, 2);
    assert!(
        metric(
            &f.registry,
            "flywheel_bus_produced_messages_total",
            &[("topic", &t)]
        )
        .unwrap_or(0.0)
            >= 208.0
    );
}

async fn consumer_reads_everything_in_partition_order(f: Fixture) {
    let t = topic(&f, "order", 4).await;
    f.bus.produce(&t, records(500, "v")).await.expect("produce");
    let mut c = f
        .bus
        .subscribe(ConsumerConfig::new(unique("g"), Subscription::topic(&t)))
        .await
        .expect("subscribe");
    let got = collect(c.as_mut(), 500, WAIT).await;
    assert_eq!(got.len(), 500, "{}: got {} of 500", f.kind, got.len());
    let want: BTreeSet<Vec<u8>> = (0..500).map(|i| format!("v-{i}").into_bytes()).collect();
    assert_eq!(values(&got), want);
    assert_partition_order(&got);
    assert!(
        got.iter()
            .all(|m| m.topic == t && m.key.is_some() && m.timestamp_ms > 0)
    );
    assert!(
        drain(c.as_mut(), Duration::from_millis(500))
            .await
            .is_empty()
    );
}

async fn committed_offsets_resume_a_group_and_uncommitted_are_redelivered(f: Fixture) {
    let t = topic(&f, "resume", 2).await;
    f.bus.produce(&t, records(100, "v")).await.expect("produce");
    let group = unique("g");
    let mut c = f
        .bus
        .subscribe(ConsumerConfig::new(&group, Subscription::topic(&t)))
        .await
        .expect("subscribe");
    let first = collect(c.as_mut(), 40, WAIT).await;
    assert!(first.len() >= 40);
    let first = &first[..40];
    let commit = offsets_after(first);
    c.commit(&commit).await.expect("commit");
    let committed = c
        .committed(&commit.iter().map(|(tp, _)| tp.clone()).collect::<Vec<_>>())
        .await
        .expect("committed");
    assert_eq!(
        committed,
        commit.iter().cloned().collect::<BTreeMap<_, _>>()
    );
    // read more without committing: they must come again
    let _uncommitted = collect(c.as_mut(), 10, Duration::from_secs(5)).await;
    drop(c);

    let mut c2 = f
        .bus
        .subscribe(ConsumerConfig::new(&group, Subscription::topic(&t)))
        .await
        .expect("subscribe again");
    let rest = collect(c2.as_mut(), 60, WAIT).await;
    assert_eq!(
        rest.len(),
        60,
        "{}: exactly the uncommitted 60 come again",
        f.kind
    );
    let seen_first = values(first);
    assert!(
        rest.iter().all(|m| !seen_first.contains(&m.value[..])),
        "nothing committed comes back"
    );
    let mut all = seen_first;
    all.extend(values(&rest));
    assert_eq!(all.len(), 100);
}

async fn members_of_a_group_share_partitions(f: Fixture) {
    let t = topic(&f, "share", 4).await;
    let group = unique("g");
    let mut a = f
        .bus
        .subscribe(ConsumerConfig::new(&group, Subscription::topic(&t)))
        .await
        .expect("subscribe a");
    let mut b = f
        .bus
        .subscribe(ConsumerConfig::new(&group, Subscription::topic(&t)))
        .await
        .expect("subscribe b");
    // both members join before anything is produced (a broker rebalances in seconds)
    let deadline = Instant::now() + WAIT;
    while (a.assignment().is_empty() || b.assignment().is_empty()) && Instant::now() < deadline {
        let (x, y) = tokio::join!(
            a.poll(10, Duration::from_millis(200)),
            b.poll(10, Duration::from_millis(200))
        );
        assert!(x.expect("poll a").is_empty() && y.expect("poll b").is_empty());
    }
    f.bus.produce(&t, records(400, "v")).await.expect("produce");
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    while got_a.len() + got_b.len() < 400 && Instant::now() < deadline {
        let (x, y) = tokio::join!(
            a.poll(1000, Duration::from_millis(300)),
            b.poll(1000, Duration::from_millis(300))
        );
        let (x, y) = (x.expect("poll a"), y.expect("poll b"));
        // each member commits what it processed, so a successor resumes after it
        a.commit(&offsets_after(&x)).await.expect("commit a");
        b.commit(&offsets_after(&y)).await.expect("commit b");
        got_a.extend(x);
        got_b.extend(y);
    }
    assert_eq!(
        got_a.len() + got_b.len(),
        400,
        "{}: each message to one member",
        f.kind
    );
    let pa: BTreeSet<i32> = got_a.iter().map(|m| m.partition).collect();
    let pb: BTreeSet<i32> = got_b.iter().map(|m| m.partition).collect();
    assert!(
        pa.is_disjoint(&pb),
        "{}: partitions {pa:?} and {pb:?} overlap",
        f.kind
    );
    assert!(
        !pa.is_empty() && !pb.is_empty(),
        "{}: both members got work",
        f.kind
    );
    let (asg_a, asg_b) = (a.assignment(), b.assignment());
    assert_eq!(asg_a.len() + asg_b.len(), 4);
    // a commit for a partition this member does not own is refused
    let foreign = asg_b[0].clone();
    assert!(matches!(
        a.commit(&[(foreign, 1)]).await,
        Err(BusError::NotAssigned { .. })
    ));
    // when b leaves, a takes over b's partitions from b's committed offsets
    drop(b);
    f.bus
        .produce(&t, records(40, "late"))
        .await
        .expect("produce");
    let late = collect(a.as_mut(), 40, WAIT).await;
    assert_eq!(
        late.len(),
        40,
        "{}: the remaining member reads everything new",
        f.kind
    );
    assert!(
        late.iter().all(|m| m.value.starts_with(b"late")),
        "{}: nothing committed again",
        f.kind
    );
    assert_eq!(a.assignment().len(), 4);
}

async fn pattern_subscription_sees_topics_created_later(f: Fixture) {
    let prefix = unique("pat");
    let mut c = f
        .bus
        .subscribe(ConsumerConfig::new(
            unique("g"),
            Subscription::Pattern(format!("^{prefix}\\.[a-z]+\\.samples$")),
        ))
        .await
        .expect("subscribe");
    assert!(
        c.poll(10, Duration::from_millis(200))
            .await
            .expect("poll")
            .is_empty()
    );
    let (t1, t2, other) = (
        format!("{prefix}.acme.samples"),
        format!("{prefix}.globex.samples"),
        format!("{prefix}.acme.models"),
    );
    f.bus
        .create_topics(&[
            TopicSpec::new(&t1, 2),
            TopicSpec::new(&t2, 1),
            TopicSpec::new(&other, 1),
        ])
        .await
        .expect("create");
    f.bus.produce(&t1, records(5, "a")).await.expect("produce");
    f.bus.produce(&t2, records(5, "b")).await.expect("produce");
    f.bus
        .produce(&other, records(5, "c"))
        .await
        .expect("produce");
    let got = collect(c.as_mut(), 10, WAIT).await;
    assert_eq!(got.len(), 10, "{}: got {}", f.kind, got.len());
    let topics: BTreeSet<&str> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, BTreeSet::from([t1.as_str(), t2.as_str()]));
    assert!(
        drain(c.as_mut(), Duration::from_millis(500))
            .await
            .is_empty(),
        "not the models topic"
    );
}

async fn seek_moves_the_position(f: Fixture) {
    let t = topic(&f, "seek", 1).await;
    f.bus.produce(&t, records(20, "v")).await.expect("produce");
    let mut c = f
        .bus
        .subscribe(ConsumerConfig::new(unique("g"), Subscription::topic(&t)))
        .await
        .expect("subscribe");
    let all = collect(c.as_mut(), 20, WAIT).await;
    assert_eq!(all.len(), 20);
    let base = all[0].offset;
    c.seek(&t, 0, SeekTo::Beginning)
        .await
        .expect("seek beginning");
    let again = collect(c.as_mut(), 20, WAIT).await;
    assert_eq!(values(&again), values(&all));
    c.seek(&t, 0, SeekTo::Offset(base + 15))
        .await
        .expect("seek offset");
    let tail = collect(c.as_mut(), 5, WAIT).await;
    assert_eq!(
        tail.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (base + 15..base + 20).collect::<Vec<_>>()
    );
    c.seek(&t, 0, SeekTo::End).await.expect("seek end");
    assert!(
        drain(c.as_mut(), Duration::from_millis(500))
            .await
            .is_empty()
    );
    assert!(matches!(
        c.seek(&t, 7, SeekTo::Beginning).await,
        Err(BusError::NotAssigned { .. })
    ));
}

async fn latest_skips_what_is_already_there(f: Fixture) {
    let t = topic(&f, "latest", 1).await;
    f.bus
        .produce(&t, records(10, "old"))
        .await
        .expect("produce");
    let mut cfg = ConsumerConfig::new(unique("g"), Subscription::topic(&t));
    cfg.start = StartFrom::Latest;
    let mut c = f.bus.subscribe(cfg).await.expect("subscribe");
    // let the member be assigned its partition before producing the new records
    let deadline = Instant::now() + WAIT;
    while c.assignment().is_empty() && Instant::now() < deadline {
        assert!(
            c.poll(10, Duration::from_millis(200))
                .await
                .expect("poll")
                .is_empty()
        );
    }
    f.bus.produce(&t, records(3, "new")).await.expect("produce");
    let got = collect(c.as_mut(), 3, WAIT).await;
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|m| m.value.starts_with(b"new")),
        "{}",
        f.kind
    );
}

async fn poll_waits_for_data_and_wakes_on_it(f: Fixture) {
    let t = topic(&f, "wake", 1).await;
    let mut c = f
        .bus
        .subscribe(ConsumerConfig::new(unique("g"), Subscription::topic(&t)))
        .await
        .expect("subscribe");
    // join the group first
    let deadline = Instant::now() + WAIT;
    while c.assignment().is_empty() && Instant::now() < deadline {
        let _ = c.poll(10, Duration::from_millis(200)).await.expect("poll");
    }
    let started = Instant::now();
    assert!(
        c.poll(10, Duration::from_millis(300))
            .await
            .expect("poll")
            .is_empty()
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "poll waits out its timeout"
    );

    let bus = f.bus.clone();
    let t2 = t.clone();
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        bus.produce(&t2, vec![Record::keyed("k", "hello")])
            .await
            .expect("produce");
        Instant::now()
    });
    let got = c.poll(10, Duration::from_secs(20)).await.expect("poll");
    let woke = Instant::now();
    let produced = producer.await.expect("producer");
    assert_eq!(got.len(), 1);
    let latency = woke.saturating_duration_since(produced);
    // the embedded bus wakes its consumers at once; a broker fetch takes a little longer
    let bound = if f.kind == "embedded" {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(3)
    };
    assert!(
        latency < bound,
        "{}: woke {latency:?} after the produce",
        f.kind
    );
}

async fn topics_are_created_once_and_unknown_topics_are_refused(f: Fixture) {
    let t = topic(&f, "create", 3).await;
    // creating again, even with another partition count, leaves the topic as it is
    f.bus
        .create_topics(&[TopicSpec::new(&t, 5)])
        .await
        .expect("create again");
    assert_eq!(f.bus.partitions(&t).await.expect("partitions"), 3);
    let missing = unique("missing");
    assert!(
        matches!(f.bus.partitions(&missing).await, Err(BusError::UnknownTopic(n)) if n == missing)
    );
    let err = f.bus.produce(&missing, records(1, "v")).await.unwrap_err();
    assert!(err.to_string().contains(&missing), "{err}");
    for bad in ["", "a/b", "spaces here", ".."] {
        let err = f
            .bus
            .create_topics(&[TopicSpec::new(bad, 1)])
            .await
            .unwrap_err();
        assert!(
            matches!(err, BusError::InvalidName { .. }),
            "{bad:?}: {err}"
        );
    }
    assert!(
        f.bus
            .produce(&t, vec![Record::unkeyed("x").to_partition(9)])
            .await
            .is_err()
    );
}

async fn lag_is_exported(f: Fixture) {
    let t = topic(&f, "lag", 1).await;
    let group = unique("g");
    f.bus.produce(&t, records(50, "v")).await.expect("produce");
    let mut c = f
        .bus
        .subscribe(ConsumerConfig::new(&group, Subscription::topic(&t)))
        .await
        .expect("subscribe");
    let got = collect(c.as_mut(), 10, WAIT).await;
    assert!(!got.is_empty());
    c.commit(&offsets_after(&got)).await.expect("commit");
    // librdkafka reports lag in its statistics, once a second
    let deadline = Instant::now() + WAIT;
    loop {
        let _ = c.poll(1, Duration::from_millis(200)).await.expect("poll");
        let lag = metric(
            &f.registry,
            "flywheel_bus_consumer_lag_messages",
            &[("group", &group), ("topic", &t), ("partition", "0")],
        );
        if lag.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no lag gauge for {group}/{t}",
            f.kind
        );
    }
}

/// `n` records to partition 0, each with its own key and timestamp.
fn numbered(n: usize, tag: &str) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut r =
                Record::keyed(format!("{tag}-key-{i}"), format!("{tag}-{i}")).to_partition(0);
            r.timestamp_ms = Some(1_700_000_000_000 + i as i64);
            r
        })
        .collect()
}

/// Checks that `got` are exactly records `range` of [`numbered`]`(_, tag)` in partition 0
/// of `t`, whose offsets start at `base`.
fn assert_numbered(got: &[Message], t: &str, tag: &str, base: i64, range: std::ops::Range<usize>) {
    let want: Vec<(i64, Vec<u8>, Vec<u8>, i64)> = range
        .map(|i| {
            (
                base + i as i64,
                format!("{tag}-key-{i}").into_bytes(),
                format!("{tag}-{i}").into_bytes(),
                1_700_000_000_000 + i as i64,
            )
        })
        .collect();
    let got_fields: Vec<(i64, Vec<u8>, Vec<u8>, i64)> = got
        .iter()
        .map(|m| {
            (
                m.offset,
                m.key.as_deref().unwrap_or_default().to_vec(),
                m.value.to_vec(),
                m.timestamp_ms,
            )
        })
        .collect();
    assert_eq!(got_fields, want);
    assert!(got.iter().all(|m| m.topic == t && m.partition == 0));
}

async fn end_offset_is_zero_when_empty_and_grows_with_produce(f: Fixture) {
    let t = topic(&f, "end", 2).await;
    assert_eq!(f.bus.end_offset(&t, 0).await.expect("end offset"), 0);
    assert_eq!(f.bus.end_offset(&t, 1).await.expect("end offset"), 0);
    let acks = f.bus.produce(&t, numbered(5, "v")).await.expect("produce");
    assert_eq!(acks.first().map(|a| a.offset), Some(0));
    assert_eq!(
        f.bus.end_offset(&t, 0).await.expect("end offset"),
        acks[4].offset + 1
    );
    assert_eq!(f.bus.end_offset(&t, 0).await.expect("end offset"), 5);
    let more = f
        .bus
        .produce(&t, vec![Record::unkeyed("x").to_partition(1)])
        .await
        .expect("produce");
    assert_eq!(more[0].offset, 0);
    assert_eq!(f.bus.end_offset(&t, 1).await.expect("end offset"), 1);
    f.bus.produce(&t, numbered(3, "w")).await.expect("produce");
    assert_eq!(f.bus.end_offset(&t, 0).await.expect("end offset"), 8);
    // reading does not change it
    let _ = f
        .bus
        .read(&t, 0, 0, 100, Duration::from_millis(100))
        .await
        .expect("read");
    assert_eq!(f.bus.end_offset(&t, 0).await.expect("end offset"), 8);
}

async fn read_returns_the_records_from_an_offset_in_order(f: Fixture) {
    let t = topic(&f, "read", 2).await;
    // three produce calls: the log holds more than one batch
    let mut all = numbered(30, "v");
    let tail = all.split_off(20);
    let middle = all.split_off(10);
    for batch in [all, middle, tail] {
        f.bus.produce(&t, batch).await.expect("produce");
    }
    f.bus
        .produce(&t, vec![Record::keyed("other", "p1").to_partition(1)])
        .await
        .expect("produce");
    let timeout = Duration::from_secs(5);
    let started = Instant::now();
    let got = f.bus.read(&t, 0, 0, 100, timeout).await.expect("read");
    assert_numbered(&got, &t, "v", 0, 0..30);
    assert!(
        started.elapsed() < timeout,
        "{}: records that are there come at once ({:?})",
        f.kind,
        started.elapsed()
    );
    for from in [1, 10, 15, 20, 29] {
        let got = f.bus.read(&t, 0, from, 100, timeout).await.expect("read");
        assert_numbered(&got, &t, "v", 0, from as usize..30);
    }
    let p1 = f.bus.read(&t, 1, 0, 100, timeout).await.expect("read");
    assert_eq!(
        p1.iter()
            .map(|m| (m.partition, m.offset, m.value.to_vec()))
            .collect::<Vec<_>>(),
        vec![(1, 0, b"p1".to_vec())]
    );
}

async fn read_respects_max(f: Fixture) {
    let t = topic(&f, "max", 1).await;
    f.bus.produce(&t, numbered(20, "v")).await.expect("produce");
    let timeout = Duration::from_secs(5);
    let mut next = 0;
    let mut chunks = Vec::new();
    while next < 20 {
        let got = f.bus.read(&t, 0, next, 7, timeout).await.expect("read");
        assert!(
            !got.is_empty() && got.len() <= 7,
            "{}: {}",
            f.kind,
            got.len()
        );
        assert_numbered(&got, &t, "v", 0, next as usize..next as usize + got.len());
        next = got.last().expect("records").offset + 1;
        chunks.push(got.len());
    }
    assert_eq!(
        chunks,
        [7, 7, 6],
        "{}: up to max, all that is there",
        f.kind
    );
    let one = f.bus.read(&t, 0, 3, 1, timeout).await.expect("read");
    assert_numbered(&one, &t, "v", 0, 3..4);
    // max 0 reads nothing, at once
    let started = Instant::now();
    assert!(
        f.bus
            .read(&t, 0, 0, 0, timeout)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

async fn read_at_the_end_waits_out_its_timeout_or_for_a_record(f: Fixture) {
    let t = topic(&f, "read-end", 1).await;
    let timeout = Duration::from_millis(600);
    // an empty partition
    let started = Instant::now();
    assert!(
        f.bus
            .read(&t, 0, 0, 10, timeout)
            .await
            .expect("read")
            .is_empty()
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(550) && waited < timeout + Duration::from_secs(5),
        "{}: waited {waited:?}",
        f.kind
    );
    f.bus.produce(&t, numbered(5, "v")).await.expect("produce");
    // at the end, and past it
    for from in [5, 6, 1000] {
        let started = Instant::now();
        let got = f.bus.read(&t, 0, from, 10, timeout).await.expect("read");
        let waited = started.elapsed();
        assert!(got.is_empty(), "{}: from {from}: {got:?}", f.kind);
        assert!(
            waited >= Duration::from_millis(550) && waited < timeout + Duration::from_secs(5),
            "{}: from {from}: waited {waited:?}",
            f.kind
        );
    }
    // a record produced while a read waits at the end is returned when it comes
    let bus = f.bus.clone();
    let t2 = t.clone();
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        bus.produce(&t2, vec![Record::keyed("k", "late").to_partition(0)])
            .await
            .expect("produce");
        Instant::now()
    });
    let got = f
        .bus
        .read(&t, 0, 5, 10, Duration::from_secs(20))
        .await
        .expect("read");
    let woke = Instant::now();
    let produced = producer.await.expect("producer");
    assert_eq!(
        got.iter()
            .map(|m| (m.offset, m.value.to_vec()))
            .collect::<Vec<_>>(),
        vec![(5, b"late".to_vec())],
        "{}",
        f.kind
    );
    assert!(
        woke.saturating_duration_since(produced) < Duration::from_secs(5),
        "{}: returned {:?} after the produce",
        f.kind,
        woke.saturating_duration_since(produced)
    );
    // past the end: returned once the partition reaches `from`
    let bus = f.bus.clone();
    let t2 = t.clone();
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        bus.produce(&t2, numbered(4, "x")).await.expect("produce");
    });
    let got = f
        .bus
        .read(&t, 0, 8, 10, Duration::from_secs(20))
        .await
        .expect("read");
    producer.await.expect("producer");
    // what is there when the partition reached `from`: offset 8, maybe 9 too
    assert!(!got.is_empty(), "{}", f.kind);
    assert_numbered(&got, &t, "x", 6, 2..2 + got.len());
}

async fn read_and_end_offset_refuse_unknown_topics_and_partitions(f: Fixture) {
    let t = topic(&f, "read-bad", 2).await;
    f.bus.produce(&t, numbered(3, "v")).await.expect("produce");
    let missing = unique("missing");
    let short = Duration::from_millis(100);
    let err = f.bus.end_offset(&missing, 0).await.unwrap_err();
    assert!(
        matches!(&err, BusError::UnknownTopic(n) if *n == missing),
        "{}: {err}",
        f.kind
    );
    let err = f.bus.read(&missing, 0, 0, 10, short).await.unwrap_err();
    assert!(
        matches!(&err, BusError::UnknownTopic(n) if *n == missing),
        "{}: {err}",
        f.kind
    );
    assert!(err.to_string().contains(&missing), "{err}");
    for bad in [2, 7, -1, i32::MIN] {
        let err = f.bus.end_offset(&t, bad).await.unwrap_err();
        assert!(
            matches!(&err, BusError::UnknownPartition { topic, partition, partitions: 2 } if *topic == t && *partition == bad),
            "{}: partition {bad}: {err}",
            f.kind
        );
        let started = Instant::now();
        let err = f
            .bus
            .read(&t, bad, 0, 10, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BusError::UnknownPartition { topic, partition, partitions: 2 } if *topic == t && *partition == bad),
            "{}: partition {bad}: {err}",
            f.kind
        );
        let msg = err.to_string();
        assert!(msg.contains(&t) && msg.contains(&bad.to_string()), "{msg}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "refused without waiting"
        );
    }
}

async fn read_from_a_negative_offset_starts_at_the_oldest(f: Fixture) {
    let t = topic(&f, "read-neg", 1).await;
    f.bus.produce(&t, numbered(4, "v")).await.expect("produce");
    for from in [-1, -2, i64::MIN] {
        let got = f
            .bus
            .read(&t, 0, from, 10, Duration::from_secs(5))
            .await
            .expect("read");
        assert_numbered(&got, &t, "v", 0, 0..4);
    }
}

async fn read_leaves_consumer_groups_alone(f: Fixture) {
    let t = topic(&f, "read-groups", 1).await;
    f.bus.produce(&t, numbered(20, "v")).await.expect("produce");
    let group = unique("g");
    let mut c = f
        .bus
        .subscribe(ConsumerConfig::new(&group, Subscription::topic(&t)))
        .await
        .expect("subscribe");
    let first = collect(c.as_mut(), 20, WAIT).await;
    assert_eq!(first.len(), 20);
    let commit = vec![(TopicPartition::new(&t, 0), 8)];
    c.commit(&commit).await.expect("commit");
    let tps = vec![TopicPartition::new(&t, 0)];
    let before = c.committed(&tps).await.expect("committed");
    assert_eq!(before.values().copied().collect::<Vec<_>>(), [8]);

    for from in [0, 8, 15, 20] {
        let _ = f
            .bus
            .read(&t, 0, from, 100, Duration::from_millis(200))
            .await
            .expect("read");
    }
    assert_eq!(c.committed(&tps).await.expect("committed"), before);
    // the member's position did not move either: nothing comes again until produced
    assert!(
        drain(c.as_mut(), Duration::from_millis(500))
            .await
            .is_empty(),
        "{}",
        f.kind
    );
    f.bus.produce(&t, numbered(1, "n")).await.expect("produce");
    let next = collect(c.as_mut(), 1, WAIT).await;
    assert_eq!(next.iter().map(|m| m.offset).collect::<Vec<_>>(), [20]);
    // a new member of the group resumes from the commit, not from where a read ended
    drop(c);
    let mut c2 = f
        .bus
        .subscribe(ConsumerConfig::new(&group, Subscription::topic(&t)))
        .await
        .expect("subscribe again");
    let again = collect(c2.as_mut(), 13, WAIT).await;
    assert_eq!(
        again.first().map(|m| m.offset),
        Some(8),
        "{}: resumes from the commit",
        f.kind
    );
    assert_eq!(again.len(), 13);
}

macro_rules! conformance {
    ($backend:ident) => {
        mod $backend {
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        if let Some(f) = crate::common::$backend().await {
                            super::$name(f).await;
                        }
                    }
                };
            }
            case!(produce_is_acknowledged_in_order_and_keys_stick_to_partitions);
            case!(consumer_reads_everything_in_partition_order);
            case!(committed_offsets_resume_a_group_and_uncommitted_are_redelivered);
            case!(members_of_a_group_share_partitions);
            case!(pattern_subscription_sees_topics_created_later);
            case!(seek_moves_the_position);
            case!(latest_skips_what_is_already_there);
            case!(poll_waits_for_data_and_wakes_on_it);
            case!(topics_are_created_once_and_unknown_topics_are_refused);
            case!(lag_is_exported);
            case!(end_offset_is_zero_when_empty_and_grows_with_produce);
            case!(read_returns_the_records_from_an_offset_in_order);
            case!(read_respects_max);
            case!(read_at_the_end_waits_out_its_timeout_or_for_a_record);
            case!(read_and_end_offset_refuse_unknown_topics_and_partitions);
            case!(read_from_a_negative_offset_starts_at_the_oldest);
            case!(read_leaves_consumer_groups_alone);
        }
    };
}

conformance!(embedded);
conformance!(kafka);
