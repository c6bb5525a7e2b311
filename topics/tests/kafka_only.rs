//! Tests of the Kafka backend beyond the shared conformance suite (which runs the same
//! produce, group, commit, seek and pattern cases against both backends).
//!
//! Tests named `broker_*` need a Kafka-API broker at `FLYWHEEL_TEST_KAFKA=host:port` (e.g.
//! tansu, see `scripts/install-tansu.sh`); without it they print why and pass, unless
//! `FLYWHEEL_REQUIRE_KAFKA=1`. The others (URL checks, an unreachable broker, failure
//! injection on librdkafka's in-process mock cluster) always run.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flywheel_topics::{
    Bus, BusError, BusMetrics, Consumer, ConsumerConfig, KafkaBus, Message, Record, Subscription,
    TopicSpec, partition_for_key,
};
use prometheus::Registry;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

fn broker() -> Option<String> {
    common::kafka_address()
}

fn test_url(addr: &str) -> String {
    format!("kafka://{addr}?{}", common::TANSU_SETTINGS)
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
    let topic = common::unique("mock");
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
async fn broker_lag_gauge_follows_the_consumer() {
    let Some(addr) = broker() else { return };
    let (bus, registry) = connect(&addr).await;
    let topic = common::unique("kafka-only.lag");
    bus.create_topics(&[TopicSpec::new(topic.clone(), 2)])
        .await
        .unwrap();
    let records: Vec<Record> = (0..10)
        .map(|i| Record::unkeyed(format!("{i}")).to_partition(i % 2))
        .collect();
    bus.produce(&topic, records).await.unwrap();
    let group = common::unique("group");
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
    let missing = common::unique("kafka-only.missing");
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

    let topic = common::unique("kafka-only.large");
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
                    common::unique("group"),
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
async fn broker_read_from_inside_a_record_batch() {
    let Some(addr) = broker() else { return };
    // Without the tests' batch.num.messages=1 the producer sends records in batches (a long
    // linger makes them large). tansu 0.6 cannot fetch from an offset inside one, and its
    // ListOffsets answers the newest batch's first offset + 1 as the high watermark: `read`
    // must neither skip records nor come back empty while records are there.
    let registry = Registry::new();
    let bus = KafkaBus::connect(
        &format!("kafka://{addr}?fetch.wait.max.ms=10&linger.ms=100"),
        &BusMetrics::new(&registry),
    )
    .await
    .expect("connect");
    let topic = common::unique("kafka-only.read-batches");
    bus.create_topics(&[TopicSpec::new(topic.clone(), 1)])
        .await
        .unwrap();
    let record = |i: usize| Record::keyed(format!("k{i}"), format!("v{i}")).to_partition(0);
    bus.produce(&topic, (0..100).map(record).collect())
        .await
        .unwrap();
    bus.produce(&topic, (100..150).map(record).collect())
        .await
        .unwrap();
    // Kafka: 150. tansu: the first offset of the newest batch (100 or later) + 1.
    let end = bus.end_offset(&topic, 0).await.unwrap();
    eprintln!("end offset after 150 records in batches: {end}");
    assert!((101..=150).contains(&end), "{end}");

    // reads on from the last offset + 1, as a caller does, until a read comes back empty
    let read_all = |from: i64, max: usize| {
        let bus = bus.clone();
        let topic = topic.clone();
        async move {
            let mut out: Vec<Message> = Vec::new();
            let mut next = from;
            loop {
                let got = bus
                    .read(&topic, 0, next, max, Duration::from_millis(300))
                    .await
                    .unwrap();
                let Some(last) = got.last() else {
                    return out;
                };
                assert!(got.len() <= max);
                next = last.offset + 1;
                out.extend(got);
            }
        }
    };
    // offsets inside the first batch, at the second's start, inside the last batch
    for from in [0i64, 1, 37, 99, 100, 101, 120, 149] {
        let started = Instant::now();
        let got = read_all(from, 1000).await;
        let offsets: Vec<i64> = got.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, (from..150).collect::<Vec<_>>(), "read from {from}");
        for m in &got {
            assert_eq!(m.value, format!("v{}", m.offset).as_bytes());
            assert_eq!(m.key.as_deref(), Some(format!("k{}", m.offset).as_bytes()));
        }
        eprintln!("read from {from}: {:?}", started.elapsed());
    }
    // one read from inside a batch returns `from` first, never a later record
    for from in [37, 120] {
        let got = bus
            .read(&topic, 0, from, 5, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(
            got.iter().map(|m| m.offset).collect::<Vec<_>>(),
            (from..from + 5).collect::<Vec<_>>()
        );
    }
    let started = Instant::now();
    assert!(
        bus.read(&topic, 0, 150, 10, Duration::from_millis(500))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(450));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_read_joins_no_group() {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let Some(addr) = broker() else { return };
    let (bus, _registry) = connect(&addr).await;
    let topic = common::unique("kafka-only.read-groups");
    bus.create_topics(&[TopicSpec::new(topic.clone(), 1)])
        .await
        .unwrap();
    bus.produce(&topic, vec![Record::unkeyed("a"), Record::unkeyed("b")])
        .await
        .unwrap();
    // a group that did consume, to show that the broker lists groups
    let group = common::unique("group");
    let mut c = bus
        .subscribe(ConsumerConfig::new(
            group.clone(),
            Subscription::topic(topic.clone()),
        ))
        .await
        .unwrap();
    let got = poll_n(&mut c, 2, Duration::from_secs(30)).await;
    c.commit(&flywheel_topics::offsets_after(&got))
        .await
        .unwrap();
    for from in [0, 1, 2] {
        bus.read(&topic, 0, from, 10, Duration::from_millis(100))
            .await
            .unwrap();
    }
    let addr2 = addr.clone();
    let groups = tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &addr2)
            .create()
            .unwrap();
        client
            .fetch_group_list(None, Duration::from_secs(10))
            .unwrap()
            .groups()
            .iter()
            .map(|g| g.name().to_owned())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    eprintln!("groups: {groups:?}");
    assert!(groups.contains(&group), "{groups:?}");
    assert!(
        !groups.iter().any(|g| g.starts_with("flywheel-read-")),
        "{groups:?}"
    );
}
