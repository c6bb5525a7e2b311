//! What only the embedded log has to prove: acknowledged means on disk (SIGKILL loses
//! nothing acknowledged), damage is found and fenced, one process at a time.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{collect, unique};
use flywheel_topics::{
    Bus, BusError, BusMetrics, ConsumerConfig, EmbeddedBus, EmbeddedOptions, Record, SeekTo,
    Subscription, TopicSpec,
};
use prometheus::Registry;

fn open(dir: &Path) -> Result<EmbeddedBus, BusError> {
    EmbeddedBus::open(
        dir,
        EmbeddedOptions::default(),
        BusMetrics::new(&Registry::new()),
    )
}

fn open_small_segments(dir: &Path) -> EmbeddedBus {
    let options = EmbeddedOptions {
        segment_bytes: 4096,
        ..EmbeddedOptions::default()
    };
    EmbeddedBus::open(dir, options, BusMetrics::new(&Registry::new())).unwrap()
}

/// Reads a whole single-partition topic with a fresh group.
async fn read_all(bus: &EmbeddedBus, topic: &str, n: usize) -> Vec<(i64, Vec<u8>)> {
    let mut c = bus
        .subscribe(ConsumerConfig::new(
            unique("read"),
            Subscription::topic(topic),
        ))
        .await
        .unwrap();
    let mut got = collect(c.as_mut(), n, Duration::from_secs(10)).await;
    // and nothing more
    got.extend(common::drain(c.as_mut(), Duration::from_millis(200)).await);
    got.into_iter()
        .map(|m| (m.offset, m.value.to_vec()))
        .collect()
}

fn segments(dir: &Path, topic: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("topics").join(topic).join("0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Child half of `sigkill_loses_nothing_acknowledged`: produces until killed, printing
/// each acknowledged batch.
#[tokio::test]
async fn child_producer() {
    let Ok(dir) = std::env::var("FLYWHEEL_CHILD_BUS_DIR") else {
        return; // only runs as the child of the test below
    };
    let bus = open(Path::new(&dir)).unwrap();
    bus.create_topics(&[TopicSpec::new("durable", 2)])
        .await
        .unwrap();
    for batch in 0u64.. {
        let records: Vec<Record> = (0..50)
            .map(|i| Record::keyed(format!("k{i}"), format!("{batch}-{i}")))
            .collect();
        let acks = bus.produce("durable", records).await.unwrap();
        let line: Vec<String> = acks
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}:{}:{batch}-{i}", a.partition, a.offset))
            .collect();
        println!("ACK {}", line.join(" "));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: BTreeMap<(i32, i64), String> = BTreeMap::new();
    // kill the producer several times at different moments; it resumes each time
    for round in 0..5 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_producer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("FLYWHEEL_CHILD_BUS_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let wanted = 5 + round * 7;
        let mut seen = 0;
        while seen < wanted {
            let Some(Ok(line)) = lines.next() else { break };
            let Some(acks) = line.strip_prefix("ACK ") else {
                continue;
            };
            for a in acks.split(' ') {
                let mut parts = a.splitn(3, ':');
                let p: i32 = parts.next().unwrap().parse().unwrap();
                let o: i64 = parts.next().unwrap().parse().unwrap();
                acknowledged.insert((p, o), parts.next().unwrap().to_owned());
            }
            seen += 1;
        }
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        assert_eq!(seen, wanted, "round {round}: the child produced");
    }

    let bus = open(dir.path()).unwrap();
    let mut c = bus
        .subscribe(ConsumerConfig::new("check", Subscription::topic("durable")))
        .await
        .unwrap();
    let stored: BTreeMap<(i32, i64), String> =
        common::drain(c.as_mut(), Duration::from_millis(500))
            .await
            .into_iter()
            .map(|m| {
                (
                    (m.partition, m.offset),
                    String::from_utf8(m.value.to_vec()).unwrap(),
                )
            })
            .collect();
    for (at, value) in &acknowledged {
        assert_eq!(
            stored.get(at),
            Some(value),
            "acknowledged record at {at:?} survives"
        );
    }
    assert!(acknowledged.len() >= 5 * 50);
    assert!(
        bus.damage().is_empty(),
        "a kill leaves no damage: {:?}",
        bus.damage()
    );
}

#[tokio::test]
async fn a_second_process_is_refused_with_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let _bus = open(dir.path()).unwrap();
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, BusError::Locked { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("in use by another process"), "{msg}");
    assert!(
        msg.contains(&std::process::id().to_string()),
        "names the pid: {msg}"
    );
}

#[tokio::test]
async fn records_survive_reopen_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = open_small_segments(dir.path());
        bus.create_topics(&[TopicSpec::new("t", 1)]).await.unwrap();
        for b in 0..20 {
            let recs = (0..10)
                .map(|i| Record::unkeyed(format!("{b}-{i}-{}", "x".repeat(100))))
                .collect();
            bus.produce("t", recs).await.unwrap();
        }
    }
    assert!(segments(dir.path(), "t").len() > 5, "small segments roll");
    let bus = open_small_segments(dir.path());
    let all = read_all(&bus, "t", 200).await;
    assert_eq!(all.len(), 200);
    assert!(all.iter().enumerate().all(|(i, (o, _))| *o == i as i64));
    // appends continue after the last offset
    let acks = bus
        .produce("t", vec![Record::unkeyed("next")])
        .await
        .unwrap();
    assert_eq!(acks[0].offset, 200);
}

#[tokio::test]
async fn an_unfinished_write_at_the_end_is_cut_off_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = open(dir.path()).unwrap();
        bus.create_topics(&[TopicSpec::new("t", 1)]).await.unwrap();
        let recs = (0..10).map(|i| Record::unkeyed(format!("v{i}"))).collect();
        bus.produce("t", recs).await.unwrap();
    }
    let seg = segments(dir.path(), "t").pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let bus = open(dir.path()).unwrap();
    assert!(bus.damage().is_empty());
    let all = read_all(&bus, "t", 9).await;
    assert_eq!(
        all.len(),
        9,
        "the cut record is gone, the nine before it are intact"
    );
    let acks = bus
        .produce("t", vec![Record::unkeyed("again")])
        .await
        .unwrap();
    assert_eq!(
        acks[0].offset, 9,
        "the cut record's offset is written again"
    );
    let all = read_all(&bus, "t", 10).await;
    assert_eq!(all[9].1, b"again");
}

#[tokio::test]
async fn damage_is_reported_fenced_and_the_intact_prefix_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = open(dir.path()).unwrap();
        bus.create_topics(&[TopicSpec::new("t", 1)]).await.unwrap();
        let recs = (0..100)
            .map(|i| Record::unkeyed(format!("value-{i:03}")))
            .collect();
        bus.produce("t", recs).await.unwrap();
    }
    let seg = segments(dir.path(), "t").pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    let at = bytes.windows(9).position(|w| w == b"value-040").unwrap();
    bytes[at + 3] ^= 0x20;
    fs::write(&seg, &bytes).unwrap();

    let registry = Registry::new();
    let bus = EmbeddedBus::open(
        dir.path(),
        EmbeddedOptions::default(),
        BusMetrics::new(&registry),
    )
    .unwrap();
    let damage = bus.damage();
    assert_eq!(damage.len(), 1);
    let report = damage[0].to_string();
    assert!(report.contains(&seg.display().to_string()), "{report}");
    assert!(report.contains("checksum mismatch"), "{report}");
    assert!(report.contains("offsets 40..100"), "{report}");
    assert_eq!(
        common::metric(&registry, "flywheel_bus_corrupt_segments_total", &[]),
        Some(1.0)
    );

    let mut c = bus
        .subscribe(ConsumerConfig::new("g", Subscription::topic("t")))
        .await
        .unwrap();
    let prefix = c.poll(1000, Duration::from_secs(2)).await.unwrap();
    assert_eq!(prefix.len(), 40, "offsets 0..40 are intact");
    let err = c.poll(1000, Duration::from_secs(2)).await.unwrap_err();
    assert!(matches!(err, BusError::Corrupt { offset: 40, .. }), "{err}");
    assert!(err.to_string().contains("seek to 100"), "{err}");

    // new records go to a fresh segment after the fenced range, and can be read
    let acks = bus
        .produce("t", vec![Record::unkeyed("after")])
        .await
        .unwrap();
    assert_eq!(acks[0].offset, 100);
    c.seek("t", 0, SeekTo::Offset(100)).await.unwrap();
    let after = c.poll(10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(&after[0].value[..], b"after");
}

#[tokio::test]
async fn damage_in_an_older_segment_fences_only_its_own_records() {
    let dir = tempfile::tempdir().unwrap();
    {
        let bus = open_small_segments(dir.path());
        bus.create_topics(&[TopicSpec::new("t", 1)]).await.unwrap();
        for b in 0..10 {
            let recs = (0..10)
                .map(|i| Record::unkeyed(format!("{b}-{i}-{}", "y".repeat(200))))
                .collect();
            bus.produce("t", recs).await.unwrap();
        }
    }
    let segs = segments(dir.path(), "t");
    assert!(segs.len() >= 3);
    // damage the tail of the first segment
    let mut bytes = fs::read(&segs[0]).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 1;
    fs::write(&segs[0], &bytes).unwrap();
    let second_base: i64 = segs[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    let bus = open_small_segments(dir.path());
    assert_eq!(bus.damage().len(), 1);
    assert!(
        bus.damage()[0]
            .to_string()
            .contains(&format!("..{second_base} lost"))
    );
    let mut c = bus
        .subscribe(ConsumerConfig::new("g", Subscription::topic("t")))
        .await
        .unwrap();
    let mut got = Vec::new();
    let err = loop {
        match c.poll(1000, Duration::from_secs(1)).await {
            Ok(m) => got.extend(m),
            Err(e) => break e,
        }
    };
    assert_eq!(
        got.len() as i64,
        second_base - 1,
        "all but the damaged last record of segment 0"
    );
    assert!(matches!(err, BusError::Corrupt { .. }));
    c.seek("t", 0, SeekTo::Offset(second_base)).await.unwrap();
    let rest = collect(
        c.as_mut(),
        (100 - second_base) as usize,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(rest.len() as i64, 100 - second_base);
    assert!(
        common::drain(c.as_mut(), Duration::from_millis(200))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn too_large_messages_are_refused_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        max_message_bytes: 1000,
        ..EmbeddedOptions::default()
    };
    let bus = EmbeddedBus::open(dir.path(), options, BusMetrics::new(&Registry::new())).unwrap();
    bus.create_topics(&[TopicSpec::new("t", 1)]).await.unwrap();
    let err = bus
        .produce("t", vec![Record::unkeyed(vec![0u8; 1001])])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1001 bytes"), "{err}");
    // nothing of the refused batch was stored
    bus.produce("t", vec![Record::unkeyed("ok")]).await.unwrap();
    assert_eq!(read_all(&bus, "t", 1).await[0].0, 0);
}

#[tokio::test]
async fn read_spans_segments_starts_at_the_oldest_kept_and_reports_damage() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open_small_segments(dir.path());
    let spec = TopicSpec {
        retention: Some(Duration::from_secs(3600)),
        ..TopicSpec::new("t", 1)
    };
    bus.create_topics(&[spec]).await.unwrap();
    // records far older than the retention, over many segments; retention is checked on
    // produce, at most once a minute, so the first produce after a reopen drops every
    // segment but the newest
    for b in 0..20 {
        let old: Vec<Record> = (0..10)
            .map(|i| {
                let mut r = Record::unkeyed(format!("{b}-{i}-{}", "x".repeat(100)));
                r.timestamp_ms = Some(1_000 + b * 10 + i);
                r
            })
            .collect();
        bus.produce("t", old).await.unwrap();
    }
    drop(bus);
    let bus = open_small_segments(dir.path());
    bus.produce("t", vec![Record::unkeyed("new")])
        .await
        .unwrap();
    assert_eq!(bus.end_offset("t", 0).await.unwrap(), 201);
    let kept = bus.read("t", 0, 0, 1000, Duration::ZERO).await.unwrap();
    let oldest = kept.first().expect("the newest segment is kept").offset;
    assert!(oldest > 0, "older segments were removed");
    assert_eq!(
        kept.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (oldest..201).collect::<Vec<_>>()
    );
    for from in [-5, 0, oldest - 1] {
        let got = bus.read("t", 0, from, 3, Duration::ZERO).await.unwrap();
        assert_eq!(
            got.iter().map(|m| m.offset).collect::<Vec<_>>(),
            (oldest..oldest + 3).collect::<Vec<_>>(),
            "from {from}"
        );
    }

    // a topic whose records span many segments reads across them in one call
    bus.create_topics(&[TopicSpec::new("many", 1)])
        .await
        .unwrap();
    for b in 0..20 {
        let recs = (0..10)
            .map(|i| Record::unkeyed(format!("{b}-{i}-{}", "y".repeat(100))))
            .collect();
        bus.produce("many", recs).await.unwrap();
    }
    assert!(segments(dir.path(), "many").len() > 5);
    let all = bus
        .read("many", 0, 3, 1000, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (3..200).collect::<Vec<_>>()
    );
    assert!(all[0].value.starts_with(b"0-3-"));
    drop(bus);

    // a damaged range is an error naming the file, not an empty read
    let seg = segments(dir.path(), "many")[1].clone();
    let mut bytes = fs::read(&seg).unwrap();
    let at = bytes.windows(4).position(|w| w == b"yyyy").unwrap();
    bytes[at] ^= 0x20;
    fs::write(&seg, &bytes).unwrap();
    let bus = open_small_segments(dir.path());
    assert_eq!(bus.damage().len(), 1);
    let from = match &bus.damage()[0] {
        BusError::Corrupt { offset, .. } => *offset,
        other => panic!("{other}"),
    };
    let err = bus
        .read("many", 0, from, 10, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BusError::Corrupt { path, .. } if *path == seg),
        "{err}"
    );
    // records before the damage stay readable: a read returns them and stops there
    let before = bus.read("many", 0, 0, 1000, Duration::ZERO).await.unwrap();
    assert_eq!(
        before.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (0..from).collect::<Vec<_>>()
    );
    // after the damaged range, reads go on
    let to = match bus.read("many", 0, from, 1, Duration::ZERO).await {
        Err(BusError::Corrupt { reason, .. }) => reason,
        other => panic!("{other:?}"),
    };
    let after: i64 = to
        .split("seek to ")
        .nth(1)
        .and_then(|s| s.trim_end_matches(" to read on)").parse().ok())
        .expect("the error says where to read on");
    let rest = bus
        .read("many", 0, after, 1000, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (after..200).collect::<Vec<_>>()
    );
    assert_eq!(bus.end_offset("many", 0).await.unwrap(), 200);
}
