//! Turning a dataset's pending samples into a changeset: keys, payload segments, index rows,
//! source ranges and offsets. Pure: the same samples always give the same bytes and names,
//! which is what makes a replay rewrite the same objects.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;
use flywheel_schemas::{BodyContent, ChangesetKind, Sample, SourceRange, body_len, write_body};
use flywheel_store::{ChangesetRecord, IndexRow, NewChangeset, SampleLocation, TopicPartition};
use flywheel_topics::Tenant;
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};

/// Bits of a key that hold the source offset; the partition is above them.
const OFFSET_BITS: u32 = 48;

/// A sample's key: its source partition and offset, `partition << 48 | offset`. Unique per
/// tenant (one samples topic per tenant), so per dataset, and the same on every replay. In
/// one partition keys grow with offsets, so a dataset's keys arrive in ascending order.
/// `None` past 65 535 partitions or 2^48 offsets.
pub fn sample_key(partition: i32, offset: i64) -> Option<u64> {
    let partition = u64::try_from(partition).ok().filter(|p| *p < 1 << 16)?;
    let offset = u64::try_from(offset)
        .ok()
        .filter(|o| *o < 1 << OFFSET_BITS)?;
    Some(partition << OFFSET_BITS | offset)
}

/// The source position a key was derived from: `(partition, offset)`.
pub fn key_source(key: u64) -> (i32, i64) {
    let partition = i32::try_from(key >> OFFSET_BITS).unwrap_or(i32::MAX);
    let offset = i64::try_from(key & ((1 << OFFSET_BITS) - 1)).unwrap_or(i64::MAX);
    (partition, offset)
}

/// The consumer name under which ingest stores a dataset's source offsets.
pub fn ingest_consumer(dataset: &str) -> String {
    format!("ingest/{dataset}")
}

/// A sample waiting in an open changeset, with its source position.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: u64,
    pub(crate) sample: Sample,
}

impl Pending {
    /// Bytes its stored form takes in a segment (0 when it is only a blob reference).
    pub(crate) fn stored_len(&self) -> u64 {
        match location_kind(&self.sample) {
            Stored::Blob(_) => 0,
            Stored::Segment(content) => body_len(&self.sample.features, content) as u64,
        }
    }
}

/// How a sample is stored.
enum Stored<'a> {
    /// Only the producer's blob URI, kept as the sample's location.
    Blob(&'a str),
    /// Its features and payload (or blob URI) in a segment.
    Segment(BodyContent<'a>),
}

fn location_kind(sample: &Sample) -> Stored<'_> {
    match (&sample.payload, &sample.blob) {
        (_, Some(uri)) if sample.features.is_empty() => Stored::Blob(uri),
        (_, Some(uri)) => Stored::Segment(BodyContent::Blob(uri)),
        (Some(payload), None) => Stored::Segment(BodyContent::Payload(payload)),
        (None, None) => Stored::Segment(BodyContent::None),
    }
}

/// A changeset ready to write: the segment objects first, then the commit.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) changeset: NewChangeset,
    pub(crate) segments: Vec<(ObjectPath, Bytes)>,
}

/// What a changeset is built from besides its samples.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    pub(crate) tenant: &'a Tenant,
    pub(crate) topic: &'a str,
    pub(crate) dataset: &'a str,
    pub(crate) id: i64,
    pub(crate) created_at: i64,
    pub(crate) segment_bytes: u64,
}

/// Builds changeset `target.id` from samples in source order (per partition, ascending
/// offsets). Segment objects are named from the source ranges the changeset covers, not
/// its id: the same samples give the same names and bytes whichever id they end up under.
pub(crate) fn build(target: &Target<'_>, samples: &[Pending]) -> Built {
    let sources = source_ranges(target.topic, samples);
    let prefix = segment_prefix(target.tenant, target.dataset, &sources);

    let mut segments: Vec<(ObjectPath, Bytes)> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut rows = Vec::with_capacity(samples.len());
    let mut bytes = 0u64;
    let close = |current: &mut Vec<u8>, segments: &mut Vec<(ObjectPath, Bytes)>| {
        let path = ObjectPath::from(format!("{prefix}-{}.seg", segments.len()));
        segments.push((path, Bytes::from(std::mem::take(current))));
    };
    for p in samples {
        let s = &p.sample;
        let (location, size) = match location_kind(s) {
            Stored::Blob(uri) => (
                SampleLocation::Blob {
                    uri: uri.to_owned(),
                },
                0,
            ),
            Stored::Segment(content) => {
                let len = body_len(&s.features, content) as u64;
                if !current.is_empty() && current.len() as u64 + len > target.segment_bytes {
                    close(&mut current, &mut segments);
                }
                let offset = current.len() as u64;
                write_body(&mut current, &s.features, content);
                let uri = format!("{prefix}-{}.seg", segments.len());
                (
                    SampleLocation::Segment {
                        uri,
                        offset,
                        length: len,
                    },
                    len,
                )
            }
        };
        bytes += size;
        rows.push(IndexRow {
            key: p.key,
            changeset: target.id,
            location,
            label: s.label.clone(),
            event_time: s.event_time,
            size,
        });
    }
    if !current.is_empty() {
        close(&mut current, &mut segments);
    }

    let mut record = ChangesetRecord::new(
        target.dataset,
        target.id,
        ChangesetKind::Add,
        target.created_at,
    );
    record.sample_count = i64::try_from(samples.len()).unwrap_or(i64::MAX);
    record.bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    record.segments = segments.iter().map(|(p, _)| p.to_string()).collect();
    let offsets = sources
        .iter()
        .map(|r| {
            (
                TopicPartition::new(&r.topic, r.partition),
                r.last_offset + 1,
            )
        })
        .collect();
    record.sources = sources;
    let changeset = NewChangeset::new(record)
        .with_rows(rows)
        .with_offsets(ingest_consumer(target.dataset), offsets);
    Built {
        changeset,
        segments,
    }
}

/// First and last offset per partition of the samples.
fn source_ranges(topic: &str, samples: &[Pending]) -> Vec<SourceRange> {
    let mut ranges: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for p in samples {
        let r = ranges.entry(p.partition).or_insert((p.offset, p.offset));
        r.0 = r.0.min(p.offset);
        r.1 = r.1.max(p.offset);
    }
    ranges
        .into_iter()
        .map(|(partition, (first, last))| SourceRange {
            topic: topic.to_owned(),
            partition,
            first_offset: first,
            last_offset: last,
        })
        .collect()
}

/// `{tenant}/{dataset}/segments/p{P}-{FIRST}-{DIGEST}`: the first source range for people,
/// a digest of all of them for uniqueness.
fn segment_prefix(tenant: &Tenant, dataset: &str, sources: &[SourceRange]) -> String {
    let mut hash = Sha256::new();
    for r in sources {
        hash.update(format!(
            "{}/{}/{}/{};",
            r.topic, r.partition, r.first_offset, r.last_offset
        ));
    }
    let digest = hash.finalize();
    let mut hex = String::with_capacity(16);
    for b in &digest[..8] {
        let _ = write!(hex, "{b:02x}");
    }
    let (p, first) = sources
        .first()
        .map_or((0, 0), |r| (r.partition, r.first_offset));
    format!("{tenant}/{dataset}/segments/p{p}-{first}-{hex}")
}

#[cfg(test)]
mod tests {
    use flywheel_schemas::read_body;
    use proptest::prelude::*;

    use super::*;

    fn sample(features: Vec<f64>, payload: Option<&[u8]>, blob: Option<&str>) -> Sample {
        Sample {
            dataset: "sensors".into(),
            features,
            payload: payload.map(<[u8]>::to_vec),
            blob: blob.map(str::to_owned),
            label: Some("1".into()),
            event_time: 42,
            producer: None,
        }
    }

    fn pending(partition: i32, offset: i64, sample: Sample) -> Pending {
        Pending {
            partition,
            offset,
            key: sample_key(partition, offset).unwrap(),
            sample,
        }
    }

    fn target(tenant: &Tenant, segment_bytes: u64) -> Target<'_> {
        Target {
            tenant,
            topic: "flywheel.default.samples",
            dataset: "sensors",
            id: 3,
            created_at: 7,
            segment_bytes,
        }
    }

    #[test]
    fn keys_come_from_source_positions() {
        assert_eq!(sample_key(0, 0), Some(0));
        assert_eq!(sample_key(1, 5), Some((1 << 48) + 5));
        assert_eq!(key_source(sample_key(7, 123_456).unwrap()), (7, 123_456));
        assert_eq!(sample_key(-1, 0), None);
        assert_eq!(sample_key(0, -1), None);
        assert_eq!(sample_key(1 << 16, 0), None);
        assert_eq!(sample_key(0, 1 << 48), None);
        assert!(sample_key(0, 9) < sample_key(0, 10));
        assert!(sample_key(0, (1 << 48) - 1) < sample_key(1, 0));
    }

    proptest! {
        #[test]
        fn distinct_positions_give_distinct_keys(
            a in (0i32..1 << 16, 0i64..1 << 48),
            b in (0i32..1 << 16, 0i64..1 << 48),
        ) {
            let (ka, kb) = (sample_key(a.0, a.1).unwrap(), sample_key(b.0, b.1).unwrap());
            prop_assert_eq!(ka == kb, a == b);
            prop_assert_eq!(key_source(ka), a);
        }
    }

    #[test]
    fn packs_payloads_into_segments_and_keeps_blob_uris() {
        let tenant = Tenant::default_tenant();
        let samples = vec![
            pending(2, 10, sample(vec![1.0, 2.0], None, None)),
            pending(2, 12, sample(vec![], Some(b"image-bytes"), None)),
            pending(2, 13, sample(vec![], None, Some("s3://raw/x.jpg"))),
            pending(2, 15, sample(vec![0.5], None, Some("s3://raw/y.jpg"))),
        ];
        let built = build(&target(&tenant, 1 << 20), &samples);
        assert_eq!(built.segments.len(), 1, "one segment for the changeset");
        let (path, seg) = &built.segments[0];
        assert!(
            path.as_ref().starts_with("default/sensors/segments/p2-10-"),
            "{path}"
        );
        let c = &built.changeset;
        assert_eq!(c.record.id, 3);
        assert_eq!(c.record.sample_count, 4);
        assert_eq!(c.record.segments, vec![path.to_string()]);
        assert_eq!(c.record.sources.len(), 1);
        assert_eq!(
            (
                c.record.sources[0].first_offset,
                c.record.sources[0].last_offset
            ),
            (10, 15)
        );
        assert_eq!(c.consumer, "ingest/sensors");
        assert_eq!(
            c.offsets,
            vec![(TopicPartition::new("flywheel.default.samples", 2), 16)]
        );
        // every segment row points at its body
        for (row, p) in c.rows.iter().zip(&samples) {
            assert_eq!(row.key, p.key);
            match &row.location {
                SampleLocation::Segment {
                    uri,
                    offset,
                    length,
                } => {
                    assert_eq!(uri, &path.to_string());
                    let body =
                        read_body(&seg[*offset as usize..(*offset + *length) as usize]).unwrap();
                    assert_eq!(body.features, p.sample.features);
                    assert_eq!(row.size, *length);
                }
                SampleLocation::Blob { uri } => {
                    assert_eq!(uri, "s3://raw/x.jpg");
                    assert_eq!(row.size, 0);
                }
            }
        }
        assert!(matches!(c.rows[2].location, SampleLocation::Blob { .. }));
        assert_eq!(
            c.record.bytes,
            c.rows.iter().map(|r| r.size as i64).sum::<i64>()
        );
    }

    #[test]
    fn segments_are_bounded_and_names_are_deterministic() {
        let tenant = Tenant::default_tenant();
        let big = vec![7u8; 600];
        let samples: Vec<Pending> = (0..5)
            .map(|i| pending(0, i, sample(vec![], Some(&big), None)))
            .collect();
        let a = build(&target(&tenant, 1300), &samples);
        // 606-byte bodies, at most 1300 bytes a segment: two per segment
        assert_eq!(a.segments.len(), 3);
        assert!(a.segments.iter().all(|(_, b)| b.len() <= 1300));
        // a different id, the same samples: the same objects
        let mut t = target(&tenant, 1300);
        t.id = 9;
        let b = build(&t, &samples);
        assert_eq!(a.segments, b.segments);
        // other samples: other names
        let c = build(&target(&tenant, 1300), &samples[1..]);
        assert_ne!(a.segments[0].0, c.segments[0].0);
        // a body larger than a segment gets one of its own
        let d = build(&target(&tenant, 100), &samples[..2]);
        assert_eq!(d.segments.len(), 2);
    }
}
