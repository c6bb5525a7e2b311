//! Tests of the Kafka backend beyond the shared conformance suite.
//!
//! Tests named `broker_*` need a Kafka-API broker at `FLYWHEEL_TEST_KAFKA=host:port` (e.g.
//! tansu, see `scripts/install-tansu.sh`); without it they print why and pass, unless
//! `FLYWHEEL_REQUIRE_KAFKA=1`. The others (URL checks, an unreachable broker, failure
//! injection on librdkafka's in-process mock cluster) always run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flywheel_topics::{
    Bus, BusError, BusMetrics, Consumer, ConsumerConfig, KafkaBus, Message, Record, SeekTo,
    StartFrom, Subscription, TopicPartition, TopicSpec, offsets_after, partition_for_key,
};
use prometheus::Registry;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

/// The broker's address, or `None` (test skipped) when none is configured.
fn broker() -> Option<String> {
    match std::env::var("FLYWHEEL_TEST_KAFKA") {
        Ok(addr) if !addr.is_empty() => Some(addr),
        _ => {
            assert!(
                std::env::var("FLYWHEEL_REQUIRE_KAFKA").as_deref() != Ok("1"),
                "FLYWHEEL_TEST_KAFKA is not set (and FLYWHEEL_REQUIRE_KAFKA=1)"
            );
            eprintln!("skipped: FLYWHEEL_TEST_KAFKA is not set");
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// The bus URL of the test broker. `batch.num.messages=1` makes every record its own batch:
/// tansu 0.6 (memory:// storage) cannot fetch from an offset inside a batch, so resuming
/// after a commit or seeking into the middle of a produced batch would stall there. Real
/// Kafka does not need it (and is not harmed by it).
fn test_url(addr: &str) -> String {
    format!("kafka://{addr}?batch.num.messages=1")
}

async fn connect(addr: &str) -> (KafkaBus, Registry) {
    let registry = Registry::new();
    let bus = KafkaBus::connect(&test_url(addr), &BusMetrics::new(&registry))
        .await
        .expect("connect");
    (bus, registry)
}

/// Polls until `n` messages arrived (or panics after `within`).
async fn poll_n(c: &mut Box<dyn Consumer>, n: usize, within: Duration) -> Vec<Message> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "got {} of {n} messages within {within:?}",
            out.len()
        );
        out.extend(
            c.poll(n - out.len(), Duration::from_millis(500))
                .await
                .unwrap(),
        );
    }
    out
}

/// Polls for `period`, expecting nothing.
async fn poll_nothing(c: &mut Box<dyn Consumer>, period: Duration) {
    let deadline = Instant::now() + period;
    while Instant::now() < deadline {
        let got = c.poll(100, Duration::from_millis(250)).await.unwrap();
        assert!(got.is_empty(), "unexpected messages: {got:?}");
    }
}

/// Per partition, the offsets are increasing.
fn assert_partition_order(messages: &[Message]) {
    let mut last: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for m in messages {
        if let Some(prev) = last.insert((m.topic.clone(), m.partition), m.offset) {
            assert!(m.offset > prev, "{m:?} after offset {prev}");
        }
    }
}

// ---- no broker needed

#[tokio::test]
async fn unreachable_broker_fails_fast_with_unreachable() {
    let started = Instant::now();
    let err = KafkaBus::connect("kafka://127.0.0.1:1", &BusMetrics::new(&Registry::new()))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, BusError::Unreachable { attempts: 5, .. }),
        "{err}"
    );
    assert!(err.is_retriable());
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1"), "{msg}");

    let err = KafkaBus::connect(
        "kafka://127.0.0.1:1?connect_attempts=1",
        &BusMetrics::new(&Registry::new()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, BusError::Unreachable { attempts: 1, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_urls_are_refused_naming_the_problem() {
    let metrics = BusMetrics::new(&Registry::new());
    for (url, says) in [
        ("kafka://", "no broker"),
        ("kafka://:9092", "missing host"),
        ("kafka://broker", "missing :PORT"),
        ("kafka://broker:port", "port"),
        ("kafka://broker:0", "port"),
        ("kafka://broker:9092?replication=zero", "replication"),
        ("kafka://broker:9092?group.id=mine", "group.id"),
        ("kafka://broker:9092?no.such.property=1", "no.such.property"),
        (
            "kafka://broker:9092?sasl.password=hunter2&sasl.password=hunter2",
            "twice",
        ),
    ] {
        match KafkaBus::connect(url, &metrics).await {
            Err(e @ BusError::InvalidUrl { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(says), "{url}: {msg}");
                assert!(!msg.contains("hunter2"), "{msg}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    // through the crate's URL dispatch too
    let err = flywheel_topics::connect("kafka://", &metrics)
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::InvalidUrl { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_cluster_produce_survives_retriable_errors_and_reports_others() {
    let mock = MockCluster::new(1).unwrap();
    let topic = unique("mock");
    mock.create_topic(&topic, 3, 1).unwrap();
    let registry = Registry::new();
    let url = format!("kafka://{}?sasl.password=hunter2", mock.bootstrap_servers());
    let bus = KafkaBus::connect(&url, &BusMetrics::new(&registry))
        .await
        .unwrap();
    assert!(!bus.url().contains('?'), "{}", bus.url());
    assert!(!format!("{bus:?}").contains("hunter2"), "{bus:?}");
    assert_eq!(bus.partitions(&topic).await.unwrap(), 3);

    // transient broker errors: the idempotent producer retries, nothing is duplicated
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ],
    );
    let records: Vec<Record> = (0..30)
        .map(|i| Record::keyed(format!("key-{}", i % 7), format!("value-{i}")))
        .collect();
    let acks = bus.produce(&topic, records.clone()).await.unwrap();
    assert_eq!(acks.len(), 30);
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for (r, ack) in records.iter().zip(&acks) {
        assert_eq!(ack.partition, partition_for_key(r.key.as_ref().unwrap(), 3));
        let want = next.entry(ack.partition).or_insert(0);
        assert_eq!(ack.offset, *want, "offsets are dense and in input order");
        *want += 1;
    }

    // errors librdkafka does not retry surface as Kafka errors naming the operation, and
    // the bus still produces afterwards
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD],
    );
    let err = bus
        .produce(&topic, vec![Record::keyed("k", "v")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, BusError::Kafka { op: "produce", .. }),
        "{err}"
    );
    assert!(!err.is_retriable(), "{err}");
    bus.produce(&topic, vec![Record::keyed("k", "v")])
        .await
        .unwrap();
    // the broker's own size limit (Kafka's default is 1 MB) is named as such
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let err = bus
        .produce(&topic, vec![Record::keyed("k", "v")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("message.max.bytes"), "{err}");
    // a sequence gap: librdkafka bumps the producer epoch instead of failing for good
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    let gap = bus.produce(&topic, vec![Record::keyed("k", "v")]).await;
    bus.produce(&topic, vec![Record::keyed("k", "v")])
        .await
        .unwrap();
    let acknowledged = 32 + u32::from(gap.is_ok());

    // unknown topic and unknown partition are refused without waiting for a timeout
    let started = Instant::now();
    let err = bus
        .produce("no-such-topic", vec![Record::unkeyed("v")])
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::UnknownTopic(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = bus
        .produce(&topic, vec![Record::unkeyed("v").to_partition(3)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, BusError::UnknownPartition { partitions: 3, .. }),
        "{err}"
    );
    let err = bus
        .produce(
            &topic,
            vec![Record::unkeyed(vec![0u8; 16 * 1024 * 1024 + 1])],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::TooLarge { .. }), "{err}");

    let produced = registry
        .gather()
        .into_iter()
        .find(|f| f.name() == "flywheel_bus_produced_messages_total")
        .expect("produced counter");
    assert_eq!(
        produced.get_metric()[0].get_counter().get_value(),
        f64::from(acknowledged)
    );
}

// ---- a broker needed

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_produce_consume_commit_and_a_second_member_resumes() {
    let Some(addr) = broker() else { return };
    let (bus, _registry) = connect(&addr).await;
    let topic = unique("kafka-only.resume");
    let spec = TopicSpec {
        name: topic.clone(),
        partitions: 2,
        retention: Some(Duration::from_secs(7 * 24 * 3600)),
    };
    bus.create_topics(std::slice::from_ref(&spec))
        .await
        .unwrap();
    bus.create_topics(&[spec]).await.unwrap(); // existing: no error
    assert_eq!(bus.partitions(&topic).await.unwrap(), 2);

    let records: Vec<Record> = (0..40)
        .map(|i| Record::keyed(format!("k{}", i % 5), format!("{i}")))
        .collect();
    let acks = bus.produce(&topic, records.clone()).await.unwrap();
    for (r, ack) in records.iter().zip(&acks) {
        assert_eq!(ack.partition, partition_for_key(r.key.as_ref().unwrap(), 2));
    }

    let group = unique("group");
    let mut a = bus
        .subscribe(ConsumerConfig::new(
            group.clone(),
            Subscription::topic(topic.clone()),
        ))
        .await
        .unwrap();
    let got = poll_n(&mut a, 40, Duration::from_secs(30)).await;
    assert_partition_order(&got);
    let mut values: Vec<i32> = got
        .iter()
        .map(|m| String::from_utf8_lossy(&m.value).parse().unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(values, (0..40).collect::<Vec<_>>());
    let mut assignment = a.assignment();
    assignment.sort();
    assert_eq!(
        assignment,
        vec![
            TopicPartition::new(&topic, 0),
            TopicPartition::new(&topic, 1)
        ]
    );

    // commit only the first half (a prefix of each partition)
    let first_half: Vec<Message> = got
        .iter()
        .filter(|m| String::from_utf8_lossy(&m.value).parse::<i32>().unwrap() < 20)
        .cloned()
        .collect();
    let offsets = offsets_after(&first_half);
    a.commit(&offsets).await.unwrap();
    let committed = a.committed(&assignment).await.unwrap();
    assert_eq!(committed, offsets.iter().cloned().collect());
    // not ours: refused before Kafka sees it
    let err = a
        .commit(&[(TopicPartition::new(&topic, 5), 1)])
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::NotAssigned { .. }), "{err}");
    drop(a);

    let mut b = bus
        .subscribe(ConsumerConfig::new(
            group.clone(),
            Subscription::topic(topic.clone()),
        ))
        .await
        .unwrap();
    let rest = poll_n(&mut b, 20, Duration::from_secs(60)).await;
    let mut values: Vec<i32> = rest
        .iter()
        .map(|m| String::from_utf8_lossy(&m.value).parse().unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(
        values,
        (20..40).collect::<Vec<_>>(),
        "resumes after the commit"
    );
    poll_nothing(&mut b, Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_pattern_subscription_sees_topics_created_later() {
    let Some(addr) = broker() else { return };
    let (bus, _registry) = connect(&addr).await;
    let prefix = unique("kafka-only.pattern");
    let first = format!("{prefix}.a.samples");
    let later = format!("{prefix}.b.samples");
    let other = format!("{prefix}.a.models");
    bus.create_topics(&[
        TopicSpec::new(first.clone(), 1),
        TopicSpec::new(other.clone(), 1),
    ])
    .await
    .unwrap();
    let pattern = format!("^{}\\.[a-z]+\\.samples$", prefix.replace('.', "\\."));
    let mut c = bus
        .subscribe(ConsumerConfig::new(
            unique("group"),
            Subscription::Pattern(pattern),
        ))
        .await
        .unwrap();
    bus.produce(&first, vec![Record::unkeyed("one")])
        .await
        .unwrap();
    bus.produce(&other, vec![Record::unkeyed("not for us")])
        .await
        .unwrap();
    let got = poll_n(&mut c, 1, Duration::from_secs(30)).await;
    assert_eq!(
        (got[0].topic.as_str(), got[0].value.as_slice()),
        (first.as_str(), &b"one"[..])
    );

    bus.create_topics(&[TopicSpec::new(later.clone(), 1)])
        .await
        .unwrap();
    bus.produce(&later, vec![Record::unkeyed("two")])
        .await
        .unwrap();
    let got = poll_n(&mut c, 1, Duration::from_secs(30)).await;
    assert_eq!(
        (got[0].topic.as_str(), got[0].value.as_slice()),
        (later.as_str(), &b"two"[..])
    );
    poll_nothing(&mut c, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_seek_rereads_and_skips() {
    let Some(addr) = broker() else { return };
    let (bus, _registry) = connect(&addr).await;
    let topic = unique("kafka-only.seek");
    bus.create_topics(&[TopicSpec::new(topic.clone(), 1)])
        .await
        .unwrap();
    let records: Vec<Record> = (0..5).map(|i| Record::unkeyed(format!("{i}"))).collect();
    bus.produce(&topic, records).await.unwrap();
    let mut c = bus
        .subscribe(ConsumerConfig::new(
            unique("group"),
            Subscription::topic(topic.clone()),
        ))
        .await
        .unwrap();
    let got = poll_n(&mut c, 5, Duration::from_secs(30)).await;
    assert_eq!(
        got.iter().map(|m| m.offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );

    c.seek(&topic, 0, SeekTo::Beginning).await.unwrap();
    let again = poll_n(&mut c, 5, Duration::from_secs(30)).await;
    assert_eq!(
        again.iter().map(|m| m.offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );

    c.seek(&topic, 0, SeekTo::Offset(3)).await.unwrap();
    let tail = poll_n(&mut c, 2, Duration::from_secs(30)).await;
    assert_eq!(
        tail.iter().map(|m| m.offset).collect::<Vec<_>>(),
        vec![3, 4]
    );

    c.seek(&topic, 0, SeekTo::Offset(1)).await.unwrap();
    c.seek(&topic, 0, SeekTo::End).await.unwrap();
    poll_nothing(&mut c, Duration::from_secs(1)).await;
    bus.produce(&topic, vec![Record::unkeyed("5")])
        .await
        .unwrap();
    let new = poll_n(&mut c, 1, Duration::from_secs(30)).await;
    assert_eq!(new[0].offset, 5);

    let err = c.seek(&topic, 1, SeekTo::Beginning).await.unwrap_err();
    assert!(
        matches!(err, BusError::NotAssigned { partition: 1, .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_lag_gauge_follows_the_consumer() {
    let Some(addr) = broker() else { return };
    let (bus, registry) = connect(&addr).await;
    let topic = unique("kafka-only.lag");
    bus.create_topics(&[TopicSpec::new(topic.clone(), 2)])
        .await
        .unwrap();
    let records: Vec<Record> = (0..10)
        .map(|i| Record::unkeyed(format!("{i}")).to_partition(i % 2))
        .collect();
    bus.produce(&topic, records).await.unwrap();
    let group = unique("group");
    let mut c = bus
        .subscribe(ConsumerConfig::new(
            group.clone(),
            Subscription::topic(topic.clone()),
        ))
        .await
        .unwrap();
    poll_n(&mut c, 10, Duration::from_secs(30)).await;

    let lag = |registry: &Registry| -> BTreeMap<String, i64> {
        registry
            .gather()
            .into_iter()
            .filter(|f| f.name() == "flywheel_bus_consumer_lag_messages")
            .flat_map(|f| f.get_metric().to_vec())
            .filter(|m| m.get_label().iter().any(|l| l.value() == group))
            .map(|m| {
                let partition = m
                    .get_label()
                    .iter()
                    .find(|l| l.name() == "partition")
                    .unwrap()
                    .value()
                    .to_owned();
                (partition, m.get_gauge().get_value() as i64)
            })
            .collect()
    };
    // statistics come every second while the consumer polls
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = lag(&registry);
        if now == BTreeMap::from([("0".into(), 0), ("1".into(), 0)]) {
            break;
        }
        assert!(Instant::now() < deadline, "lag gauges: {now:?}");
        assert!(
            c.poll(10, Duration::from_millis(300))
                .await
                .unwrap()
                .is_empty()
        );
    }
    let consumed = registry
        .gather()
        .into_iter()
        .find(|f| f.name() == "flywheel_bus_consumed_messages_total")
        .unwrap();
    assert_eq!(consumed.get_metric()[0].get_counter().get_value(), 10.0);
    drop(c);
    // the member's gauges go when it leaves
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(lag(&registry).is_empty(), "{:?}", lag(&registry));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_refuses_unknown_topics_and_oversized_values() {
    let Some(addr) = broker() else { return };
    let (bus, _registry) = connect(&addr).await;
    let missing = unique("kafka-only.missing");
    let started = Instant::now();
    let err = bus
        .produce(&missing, vec![Record::unkeyed("x")])
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::UnknownTopic(_)), "{err}");
    let err = bus.partitions(&missing).await.unwrap_err();
    assert!(matches!(err, BusError::UnknownTopic(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    for bad in ["", "a/b", ".."] {
        let err = bus
            .create_topics(&[TopicSpec::new(bad, 1)])
            .await
            .unwrap_err();
        assert!(matches!(err, BusError::InvalidName { .. }), "{err}");
    }

    let topic = unique("kafka-only.large");
    bus.create_topics(&[TopicSpec::new(topic.clone(), 1)])
        .await
        .unwrap();
    let err = bus
        .produce(
            &topic,
            vec![Record::unkeyed(vec![0u8; 16 * 1024 * 1024 + 1])],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::TooLarge { .. }), "{err}");
    // a value above Kafka's default 1 MB but within ours: accepted or clearly refused
    match bus
        .produce(&topic, vec![Record::unkeyed(vec![7u8; 2 * 1024 * 1024])])
        .await
    {
        Ok(acks) => {
            eprintln!("a 2 MiB value was accepted by the broker");
            let mut c = bus
                .subscribe(ConsumerConfig::new(
                    unique("group"),
                    Subscription::topic(topic.clone()),
                ))
                .await
                .unwrap();
            let got = poll_n(&mut c, 1, Duration::from_secs(30)).await;
            assert_eq!(
                (got[0].offset, got[0].value.len()),
                (acks[0].offset, 2 * 1024 * 1024)
            );
        }
        Err(e) => {
            eprintln!("a 2 MiB value was refused by the broker: {e}");
            let msg = e.to_string();
            assert!(msg.contains("size") || msg.contains("large"), "{msg}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_poll_times_out_empty_and_latest_skips_old_messages() {
    let Some(addr) = broker() else { return };
    let (bus, _registry) = connect(&addr).await;
    let topic = unique("kafka-only.latest");
    bus.create_topics(&[TopicSpec::new(topic.clone(), 1)])
        .await
        .unwrap();
    bus.produce(&topic, vec![Record::unkeyed("old")])
        .await
        .unwrap();
    let mut config = ConsumerConfig::new(unique("group"), Subscription::topic(topic.clone()));
    config.start = StartFrom::Latest;
    let mut c = bus.subscribe(config).await.unwrap();
    // join the group and get the partition before producing the new message
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.assignment().is_empty() {
        assert!(Instant::now() < deadline, "no assignment");
        let started = Instant::now();
        let got = c.poll(10, Duration::from_millis(500)).await.unwrap();
        assert!(got.is_empty(), "{got:?}");
        assert!(started.elapsed() >= Duration::from_millis(450));
    }
    poll_nothing(&mut c, Duration::from_secs(1)).await;
    bus.produce(&topic, vec![Record::unkeyed("new")])
        .await
        .unwrap();
    let got = poll_n(&mut c, 1, Duration::from_secs(30)).await;
    assert_eq!(got[0].value, b"new");
    let ts = got[0].timestamp_ms;
    assert!(ts > 1_600_000_000_000, "{ts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_two_members_share_the_partitions() {
    let Some(addr) = broker() else { return };
    let (bus, _registry) = connect(&addr).await;
    let topic = unique("kafka-only.share");
    bus.create_topics(&[TopicSpec::new(topic.clone(), 4)])
        .await
        .unwrap();
    let group = unique("group");
    let config = ConsumerConfig::new(group, Subscription::topic(topic.clone()));
    let mut a = bus.subscribe(config.clone()).await.unwrap();
    let mut b = bus.subscribe(config.clone()).await.unwrap();
    // poll both until the group settled: disjoint assignments covering the topic
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            a.poll(10, Duration::from_millis(200))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            b.poll(10, Duration::from_millis(200))
                .await
                .unwrap()
                .is_empty()
        );
        let (x, y) = (a.assignment(), b.assignment());
        if !x.is_empty()
            && !y.is_empty()
            && x.len() + y.len() == 4
            && x.iter().all(|tp| !y.contains(tp))
        {
            break;
        }
        assert!(Instant::now() < deadline, "assignments {x:?} and {y:?}");
    }
    let records: Vec<Record> = (0..40)
        .map(|i| Record::keyed(format!("k{i}"), format!("{i}")))
        .collect();
    bus.produce(&topic, records).await.unwrap();
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got_a.len() + got_b.len() < 40 {
        assert!(
            Instant::now() < deadline,
            "{} + {} of 40",
            got_a.len(),
            got_b.len()
        );
        got_a.extend(a.poll(100, Duration::from_millis(200)).await.unwrap());
        got_b.extend(b.poll(100, Duration::from_millis(200)).await.unwrap());
    }
    let (x, y) = (a.assignment(), b.assignment());
    assert!(
        got_a
            .iter()
            .all(|m| x.contains(&TopicPartition::new(&m.topic, m.partition)))
    );
    assert!(
        got_b
            .iter()
            .all(|m| y.contains(&TopicPartition::new(&m.topic, m.partition)))
    );
    a.commit(&offsets_after(&got_a)).await.unwrap();
    // b leaves without committing: a takes over its partitions and re-reads them
    drop(b);
    let again = poll_n(&mut a, got_b.len(), Duration::from_secs(60)).await;
    let mut want: Vec<_> = got_b.iter().map(|m| (m.partition, m.offset)).collect();
    let mut have: Vec<_> = again.iter().map(|m| (m.partition, m.offset)).collect();
    want.sort_unstable();
    have.sort_unstable();
    assert_eq!(have, want);
    assert_eq!(a.assignment().len(), 4);
}
