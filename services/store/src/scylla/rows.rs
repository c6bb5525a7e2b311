//! How records become CQL rows and back: the changeset row, the entries of the view
//! tables and of `changeset_entries`, and the merge of stored consumer offsets.

use std::collections::{BTreeMap, HashMap};

use flywheel_schemas::{RestrictedQuery, SourceRange};
use flywheel_topics::TopicPartition;
use scylla::value::MaybeUnset;

use super::db::Ks;
use super::fold::{Event, OP_ADD, OP_RELABEL, OP_REMOVE};
use super::layout::key_from_cql;
use crate::StoreError;
use crate::model::{
    ChangesetRecord, IndexRow, NewChangeset, SampleLocation, describe_changeset, kind_from_name,
    kind_name,
};

/// The committed consumer offsets of a dataset: (consumer, topic, partition) ->
/// (next offset, commit time).
pub(crate) type OffsetsMap = BTreeMap<(String, String, i32), (i64, i64)>;

/// A row of `changesets` as read back.
#[derive(Debug, Clone, PartialEq, Eq, scylla::DeserializeRow)]
pub(crate) struct ChangesetRow {
    pub(crate) dataset: String,
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) created_at: i64,
    pub(crate) sample_count: i64,
    pub(crate) bytes: i64,
    pub(crate) reverts: Option<i64>,
    pub(crate) query: Option<String>,
    pub(crate) sources: String,
    pub(crate) segments: Option<Vec<String>>,
    pub(crate) consumer: String,
    pub(crate) offsets: String,
    pub(crate) record_hash: Vec<u8>,
    pub(crate) rows_hash: Vec<u8>,
    pub(crate) parts: i32,
    pub(crate) removed_count: i32,
    pub(crate) relabel_count: i32,
}

/// Offsets as stored in the changeset row: `[[topic, partition, next offset], ...]`.
type OffsetsJson = Vec<(String, i32, i64)>;

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The text of a JSON column (plain data, which always serializes).
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes to json")
}

/// A row of `changesets` as a commit writes it (`statements::CHANGESET_COLUMNS`): the
/// optional cells (`reverts`, `query`, `segments`) are left unset when empty, never
/// written null, so the row carries no tombstones.
#[derive(Debug, Clone, scylla::SerializeRow)]
pub(crate) struct NewChangesetRow<'a> {
    dataset: &'a str,
    id: i64,
    kind: &'static str,
    created_at: i64,
    sample_count: i64,
    bytes: i64,
    reverts: MaybeUnset<i64>,
    query: MaybeUnset<String>,
    sources: String,
    segments: MaybeUnset<&'a [String]>,
    consumer: &'a str,
    offsets: String,
    record_hash: &'a [u8],
    rows_hash: &'a [u8],
    parts: i32,
    removed_count: i32,
    relabel_count: i32,
}

impl<'a> NewChangesetRow<'a> {
    /// The row of a normalized changeset.
    pub(crate) fn new(
        cs: &'a NewChangeset,
        record_hash: &'a [u8],
        rows_hash: &'a [u8],
        parts: i32,
    ) -> Self {
        let r = &cs.record;
        let offsets: OffsetsJson = cs
            .offsets
            .iter()
            .map(|(tp, o)| (tp.topic.clone(), tp.partition, *o))
            .collect();
        Self {
            dataset: &r.dataset,
            id: r.id,
            kind: kind_name(r.kind),
            created_at: r.created_at,
            sample_count: r.sample_count,
            bytes: r.bytes,
            reverts: unset_none(r.reverts),
            query: unset_none(r.query.as_ref().map(json)),
            sources: json(&r.sources),
            segments: unset_none((!r.segments.is_empty()).then_some(r.segments.as_slice())),
            consumer: &cs.consumer,
            offsets: json(&offsets),
            record_hash,
            rows_hash,
            parts,
            removed_count: count(r.removed.len()),
            relabel_count: count(r.relabels.len()),
        }
    }
}

impl ChangesetRow {
    /// The consumer offsets it carried.
    pub(crate) fn offsets(&self, ks: &Ks) -> Result<Vec<(TopicPartition, i64)>, StoreError> {
        let offsets: OffsetsJson = serde_json::from_str(&self.offsets)
            .map_err(|e| ks.corrupt(self.what("offsets"), e.to_string()))?;
        Ok(offsets
            .into_iter()
            .map(|(topic, partition, o)| (TopicPartition::new(topic, partition), o))
            .collect())
    }

    fn what(&self, field: &str) -> String {
        format!("{field} of {}", describe_changeset(&self.dataset, self.id))
    }

    /// The record, without its removed keys and relabels (read from its entries).
    pub(crate) fn record(&self, ks: &Ks) -> Result<ChangesetRecord, StoreError> {
        let kind = kind_from_name(&self.kind).ok_or_else(|| {
            ks.corrupt(self.what("kind"), format!("unknown kind {:?}", self.kind))
        })?;
        let query: Option<RestrictedQuery> = self
            .query
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| ks.corrupt(self.what("query"), e.to_string()))?;
        let sources: Vec<SourceRange> = serde_json::from_str(&self.sources)
            .map_err(|e| ks.corrupt(self.what("sources"), e.to_string()))?;
        Ok(ChangesetRecord {
            dataset: self.dataset.clone(),
            id: self.id,
            kind,
            created_at: self.created_at,
            sample_count: self.sample_count,
            bytes: self.bytes,
            reverts: self.reverts,
            query,
            sources,
            segments: self.segments.clone().unwrap_or_default(),
            removed: Vec::new(),
            relabels: Vec::new(),
        })
    }
}

/// An entry as read from `changeset_entries`, `view_by_key` or `view_by_time`
/// (`statements::ENTRY_COLUMNS`).
pub(crate) type EntryRow = (
    i64,
    i64,
    i8,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// A decoded entry.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) key: u64,
    pub(crate) changeset: i64,
    pub(crate) event_time: Option<i64>,
    pub(crate) event: Event,
}

pub(crate) fn decode(ks: &Ks, table: &str, row: EntryRow) -> Result<Entry, StoreError> {
    let (key, changeset, op, uri, seg_offset, seg_length, label, event_time, size) = row;
    let key = key_from_cql(key);
    let bad = |reason: String| {
        ks.corrupt(
            format!("entry of key {key}, changeset {changeset} in table {table}"),
            reason,
        )
    };
    let event = match op {
        OP_ADD => {
            let (Some(uri), Some(event_time), Some(size)) = (uri, event_time, size) else {
                return Err(bad("an add without uri, event_time or size".into()));
            };
            let unsigned = |v: i64, what: &str| {
                u64::try_from(v).map_err(|_| bad(format!("negative {what} {v}")))
            };
            let location = match (seg_offset, seg_length) {
                (Some(offset), Some(length)) => SampleLocation::Segment {
                    uri,
                    offset: unsigned(offset, "segment offset")?,
                    length: unsigned(length, "segment length")?,
                },
                _ => SampleLocation::Blob { uri },
            };
            Event::Add(IndexRow {
                key,
                changeset,
                location,
                label,
                event_time,
                size: unsigned(size, "size")?,
            })
        }
        OP_REMOVE => Event::Remove,
        OP_RELABEL => Event::Relabel(label),
        other => return Err(bad(format!("unknown op {other}"))),
    };
    Ok(Entry {
        key,
        changeset,
        event_time,
        event,
    })
}

/// The columns an entry writes besides its keys: set when known, otherwise left unset
/// (no tombstones; a re-write of the same changeset writes the same cells).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cols<'a> {
    pub(crate) op: i8,
    pub(crate) uri: MaybeUnset<&'a str>,
    pub(crate) seg_offset: MaybeUnset<i64>,
    pub(crate) seg_length: MaybeUnset<i64>,
    pub(crate) label: MaybeUnset<&'a str>,
    pub(crate) size: MaybeUnset<i64>,
}

impl<'a> Cols<'a> {
    /// An add: the row. Its numbers were checked to fit (`check_row`).
    pub(crate) fn add(row: &'a IndexRow) -> Self {
        let (offset, length) = match &row.location {
            SampleLocation::Segment { offset, length, .. } => (
                MaybeUnset::Set(*offset as i64),
                MaybeUnset::Set(*length as i64),
            ),
            SampleLocation::Blob { .. } => (MaybeUnset::Unset, MaybeUnset::Unset),
        };
        Self {
            op: OP_ADD,
            uri: MaybeUnset::Set(row.location.uri()),
            seg_offset: offset,
            seg_length: length,
            label: unset_none(row.label.as_deref()),
            size: MaybeUnset::Set(row.size as i64),
        }
    }

    pub(crate) fn remove() -> Self {
        Self {
            op: OP_REMOVE,
            uri: MaybeUnset::Unset,
            seg_offset: MaybeUnset::Unset,
            seg_length: MaybeUnset::Unset,
            label: MaybeUnset::Unset,
            size: MaybeUnset::Unset,
        }
    }

    pub(crate) fn relabel(label: Option<&'a str>) -> Self {
        Self {
            op: OP_RELABEL,
            label: unset_none(label),
            ..Self::remove()
        }
    }
}

fn unset_none<T>(v: Option<T>) -> MaybeUnset<T> {
    v.map_or(MaybeUnset::Unset, MaybeUnset::Set)
}

/// Checks that a row's numbers fit CQL's signed `bigint`.
pub(crate) fn check_row(row: &IndexRow) -> Result<(), StoreError> {
    let fits = |v: u64, what: &str| {
        i64::try_from(v).map(|_| ()).map_err(|_| {
            StoreError::invalid(
                format!("{what} of key {}", row.key),
                format!("{v} is larger than {}", i64::MAX),
            )
        })
    };
    if let SampleLocation::Segment { offset, length, .. } = &row.location {
        fits(*offset, "segment offset")?;
        fits(*length, "segment length")?;
    }
    fits(row.size, "size")
}

/// A consumer's offsets from the offsets of every dataset: per partition, those of the
/// latest commit (ties: the larger offset).
pub(crate) fn merge_offsets<'a>(
    consumer: &str,
    maps: impl IntoIterator<Item = &'a OffsetsMap>,
) -> BTreeMap<TopicPartition, i64> {
    let mut latest: HashMap<TopicPartition, (i64, i64)> = HashMap::new();
    for map in maps {
        for ((c, topic, partition), &(offset, at)) in map {
            if c != consumer {
                continue;
            }
            let e = latest
                .entry(TopicPartition::new(topic.clone(), *partition))
                .or_insert((at, offset));
            if (at, offset) > *e {
                *e = (at, offset);
            }
        }
    }
    latest.into_iter().map(|(tp, (_, o))| (tp, o)).collect()
}

#[cfg(test)]
mod tests {
    use flywheel_schemas::ChangesetKind;
    use scylla::frame::response::result::{
        CollectionType, ColumnSpec, ColumnType, NativeType, TableSpec,
    };
    use scylla::serialize::row::{RowSerializationContext, SerializeRow};
    use scylla::serialize::writers::RowWriter;

    use super::*;
    use crate::scylla::statements::CHANGESET_COLUMNS;

    /// A bound value as the protocol carries it.
    #[derive(Debug, PartialEq, Eq)]
    enum Cell {
        Null,
        Unset,
        Set,
    }

    /// The cells a changeset row binds, by column name, serialized for the columns of
    /// `changesets` in statement order.
    fn cells(row: &NewChangesetRow<'_>) -> Vec<(&'static str, Cell)> {
        let native = ColumnType::Native;
        let typ = |name: &str| match name {
            "dataset" | "kind" | "query" | "sources" | "consumer" | "offsets" => {
                native(NativeType::Text)
            }
            "record_hash" | "rows_hash" => native(NativeType::Blob),
            "parts" | "removed_count" | "relabel_count" => native(NativeType::Int),
            "segments" => ColumnType::Collection {
                frozen: false,
                typ: CollectionType::List(Box::new(native(NativeType::Text))),
            },
            _ => native(NativeType::BigInt),
        };
        let names: Vec<&'static str> = CHANGESET_COLUMNS.split(',').map(str::trim).collect();
        let specs: Vec<ColumnSpec<'static>> = names
            .iter()
            .map(|n| ColumnSpec::borrowed(n, typ(n), TableSpec::borrowed("ks", "changesets")))
            .collect();
        let mut buf = Vec::new();
        row.serialize(
            &RowSerializationContext::from_specs(&specs),
            &mut RowWriter::new(&mut buf),
        )
        .expect("the row fits the table");
        let mut rest = buf.as_slice();
        let mut out = Vec::new();
        for name in names {
            let (len, tail) = rest.split_at(4);
            let len = i32::from_be_bytes(len.try_into().unwrap());
            rest = tail;
            let cell = match len {
                -1 => Cell::Null,
                -2 => Cell::Unset,
                n => {
                    rest = &rest[usize::try_from(n).unwrap()..];
                    Cell::Set
                }
            };
            out.push((name, cell));
        }
        assert!(rest.is_empty());
        out
    }

    #[test]
    fn changeset_rows_leave_empty_cells_unset_never_null() {
        let plain = NewChangeset::new(ChangesetRecord::new("d", 1, ChangesetKind::Add, 7));
        let got = cells(&NewChangesetRow::new(&plain, b"r", b"w", 0));
        assert_eq!(got.len(), 17);
        assert!(got.iter().all(|(_, c)| *c != Cell::Null), "{got:?}");
        let unset: Vec<&str> = got
            .iter()
            .filter(|(_, c)| *c == Cell::Unset)
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(unset, ["reverts", "query", "segments"]);

        let mut full = plain.clone();
        full.record.reverts = Some(1);
        full.record.query = Some(RestrictedQuery {
            source: "s".into(),
            sql: "select 1".into(),
            label_column: None,
            feature_columns: vec![],
        });
        full.record.segments = vec!["t/d/segments/1.seg".into()];
        let got = cells(&NewChangesetRow::new(&full, b"r", b"w", 1));
        assert!(got.iter().all(|(_, c)| *c == Cell::Set), "{got:?}");
    }

    #[test]
    fn offsets_merge_across_datasets_by_commit_time() {
        let m = |entries: &[(&str, &str, i32, i64, i64)]| -> OffsetsMap {
            entries
                .iter()
                .map(|(c, t, p, o, at)| (((*c).into(), (*t).into(), *p), (*o, *at)))
                .collect()
        };
        let a = m(&[
            ("ingest", "t", 0, 100, 5),
            ("ingest", "t", 1, 7, 5),
            ("x", "t", 0, 1, 9),
        ]);
        let b = m(&[("ingest", "t", 0, 90, 6), ("ingest", "u", 0, 3, 1)]);
        assert_eq!(
            merge_offsets("ingest", [&a, &b]),
            BTreeMap::from([
                (TopicPartition::new("t", 0), 90),
                (TopicPartition::new("t", 1), 7),
                (TopicPartition::new("u", 0), 3),
            ])
        );
        assert_eq!(
            merge_offsets("x", [&a, &b]),
            BTreeMap::from([(TopicPartition::new("t", 0), 1)])
        );
        assert!(merge_offsets("nobody", [&a]).is_empty());
    }

    #[test]
    fn rows_too_large_for_cql_are_refused() {
        let mut row = IndexRow {
            key: 3,
            changeset: 1,
            location: SampleLocation::Segment {
                uri: "u".into(),
                offset: u64::MAX,
                length: 1,
            },
            label: None,
            event_time: 0,
            size: 1,
        };
        let err = check_row(&row).unwrap_err().to_string();
        assert!(err.contains("segment offset of key 3"), "{err}");
        row.location = SampleLocation::Blob { uri: "u".into() };
        check_row(&row).unwrap();
        row.size = 1 << 63;
        assert!(check_row(&row).is_err());
    }
}
