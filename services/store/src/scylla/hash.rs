//! Content hashes of a changeset, so a commit can tell a replay of a changeset from a
//! different one with the same id without reading back its rows: SHA-256 over the JSON of
//! the normalized record and rows (field order is fixed by the types, lists are sorted by
//! `NewChangeset::normalize`), each with a tag naming what it is.

use sha2::{Digest, Sha256};

use crate::model::NewChangeset;

/// The hashes stored with a changeset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hashes {
    /// The record: kind, times, counts, sources, segments, removed keys, relabels, query.
    pub(crate) record: Vec<u8>,
    /// The rows it adds.
    pub(crate) rows: Vec<u8>,
    /// Everything, the consumer offsets too: what claims the changeset id while the
    /// commit is under way.
    pub(crate) content: Vec<u8>,
}

/// Feeds what `serde_json` writes into a hasher, without building the text.
struct HashWriter<'h>(&'h mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hash_json<T: serde::Serialize + ?Sized>(tag: &str, value: &T) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    h.update([0]);
    serde_json::to_writer(HashWriter(&mut h), value).expect("plain data serializes to json");
    h.finalize().to_vec()
}

/// The hashes of a normalized changeset.
pub(crate) fn hashes(cs: &NewChangeset) -> Hashes {
    let record = hash_json("flywheel changeset record v1", &cs.record);
    let rows = hash_json("flywheel changeset rows v1", &cs.rows);
    let offsets: Vec<(&str, i32, i64)> = cs
        .offsets
        .iter()
        .map(|(tp, o)| (tp.topic.as_str(), tp.partition, *o))
        .collect();
    let content = hash_json(
        "flywheel changeset content v1",
        &(&record, &rows, &cs.consumer, &offsets),
    );
    Hashes {
        record,
        rows,
        content,
    }
}

#[cfg(test)]
mod tests {
    use flywheel_schemas::ChangesetKind;
    use flywheel_topics::TopicPartition;

    use super::*;
    use crate::model::{ChangesetRecord, IndexRow, SampleLocation};

    fn changeset(keys: &[u64]) -> NewChangeset {
        let rows = keys
            .iter()
            .map(|&key| IndexRow {
                key,
                changeset: 1,
                location: SampleLocation::Segment {
                    uri: "file:///s/1.seg".into(),
                    offset: key * 10,
                    length: 10,
                },
                label: Some("a".into()),
                event_time: 5,
                size: 10,
            })
            .collect();
        let mut cs = NewChangeset::new(ChangesetRecord::new("d", 1, ChangesetKind::Add, 7))
            .with_rows(rows)
            .with_offsets("ingest", vec![(TopicPartition::new("t", 0), 3)]);
        cs.normalize().unwrap();
        cs
    }

    #[test]
    fn equal_content_hashes_equal_in_any_order() {
        let a = hashes(&changeset(&[1, 2, 3]));
        assert_eq!(a.record.len(), 32);
        assert_eq!(a, hashes(&changeset(&[3, 1, 2])));
    }

    #[test]
    fn each_part_is_told_apart() {
        let base = changeset(&[1, 2, 3]);
        let h = hashes(&base);
        assert_ne!(h.record, h.rows);

        let mut label = base.clone();
        label.rows[1].label = None;
        let hl = hashes(&label);
        assert_eq!(hl.record, h.record);
        assert_ne!(hl.rows, h.rows);
        assert_ne!(hl.content, h.content);

        let mut blob = base.clone();
        blob.rows[0].location = SampleLocation::Blob {
            uri: "file:///s/1.seg".into(),
        };
        assert_ne!(hashes(&blob).rows, h.rows);

        let mut created = base.clone();
        created.record.created_at += 1;
        let hc = hashes(&created);
        assert_ne!(hc.record, h.record);
        assert_eq!(hc.rows, h.rows);

        let mut offsets = base.clone();
        offsets.offsets[0].1 += 1;
        let ho = hashes(&offsets);
        assert_eq!((&ho.record, &ho.rows), (&h.record, &h.rows));
        assert_ne!(ho.content, h.content);

        let mut consumer = base;
        consumer.consumer = "other".into();
        assert_ne!(hashes(&consumer).content, h.content);
    }
}
