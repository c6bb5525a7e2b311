//! Row blocks: the index rows one changeset added, in a compact columnar form, for reads
//! that scan a whole dataset (preparing a training set). A row read this way costs a few
//! integer decodes instead of a database row with two strings.
//!
//! ```text
//! block  := FORMAT:u8 n:varint
//!           keys (n, ascending: deltas)       uris (count, then len + bytes each)
//!           places (n: uri << 1 | is_range)   ranges (offset, length per ranged row)
//!           labels (count, then len + bytes)  label ids (n: 0 none, else 1 + index)
//!           event times (n, zigzag deltas)    sizes (n)
//! ```
//! All integers are LEB128 varints. Dictionaries list values in the order rows first use
//! them, so a block is a function of its rows alone.

use std::collections::HashMap;

use crate::model::{IndexRow, SampleLocation};
use flywheel_schemas::varint::{Reader, put, unzigzag, zigzag};

const FORMAT: u8 = 1;

/// The rows of one changeset, by key, column by column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowBlock {
    /// The changeset that added the rows.
    pub changeset: i64,
    /// Keys, ascending.
    pub keys: Vec<u64>,
    /// Object URIs the rows use.
    pub uris: Vec<String>,
    /// Per row: index into `uris`.
    pub uri_ids: Vec<u32>,
    /// Per row: the byte range in a segment, or `None` for a whole object.
    pub ranges: Vec<Option<(u64, u64)>>,
    /// Labels the rows use.
    pub labels: Vec<String>,
    /// Per row: index into `labels`, or `None`.
    pub label_ids: Vec<Option<u32>>,
    /// Per row: event time.
    pub event_times: Vec<i64>,
    /// Per row: size in bytes.
    pub sizes: Vec<u64>,
}

impl RowBlock {
    /// The block of a changeset's rows (sorted by key, as a normalized changeset has them).
    pub fn from_rows(changeset: i64, rows: &[IndexRow]) -> Self {
        let mut b = Self {
            changeset,
            ..Self::default()
        };
        let mut uri_ids: HashMap<&str, u32> = HashMap::new();
        let mut label_ids: HashMap<&str, u32> = HashMap::new();
        for row in rows {
            b.keys.push(row.key);
            let (uri, range) = row.location.parts();
            let id = *uri_ids.entry(uri).or_insert_with(|| {
                b.uris.push(uri.to_owned());
                (b.uris.len() - 1) as u32
            });
            b.uri_ids.push(id);
            b.ranges.push(range);
            let label = row.label.as_deref().map(|l| {
                *label_ids.entry(l).or_insert_with(|| {
                    b.labels.push(l.to_owned());
                    (b.labels.len() - 1) as u32
                })
            });
            b.label_ids.push(label);
            b.event_times.push(row.event_time);
            b.sizes.push(row.size);
        }
        b
    }

    /// Rows in the block.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Row `i` as an index row.
    pub fn row(&self, i: usize) -> IndexRow {
        let uri = self.uris[self.uri_ids[i] as usize].clone();
        IndexRow {
            key: self.keys[i],
            changeset: self.changeset,
            location: match self.ranges[i] {
                Some((offset, length)) => SampleLocation::Segment {
                    uri,
                    offset,
                    length,
                },
                None => SampleLocation::Blob { uri },
            },
            label: self.label_ids[i].map(|l| self.labels[l as usize].clone()),
            event_time: self.event_times[i],
            size: self.sizes[i],
        }
    }

    /// The encoded block.
    pub fn encode(&self) -> Vec<u8> {
        let n = self.len();
        let mut out = Vec::with_capacity(16 + n * 12);
        out.push(FORMAT);
        put(&mut out, n as u64);
        let mut prev = 0u64;
        for &k in &self.keys {
            put(&mut out, k.wrapping_sub(prev));
            prev = k;
        }
        put_strings(&mut out, &self.uris);
        for (id, range) in self.uri_ids.iter().zip(&self.ranges) {
            put(&mut out, (u64::from(*id) << 1) | u64::from(range.is_some()));
        }
        for &(offset, length) in self.ranges.iter().flatten() {
            put(&mut out, offset);
            put(&mut out, length);
        }
        put_strings(&mut out, &self.labels);
        for l in &self.label_ids {
            put(&mut out, l.map_or(0, |l| u64::from(l) + 1));
        }
        let mut prev = 0i64;
        for &t in &self.event_times {
            put(&mut out, zigzag(t.wrapping_sub(prev)));
            prev = t;
        }
        for &s in &self.sizes {
            put(&mut out, s);
        }
        out
    }

    /// Decodes a block of changeset `changeset`; `None` if the bytes are not one.
    pub fn decode(changeset: i64, bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        if r.byte()? != FORMAT {
            return None;
        }
        let n = usize::try_from(r.varint()?).ok()?;
        // every row takes at least 6 bytes: refuse counts the bytes cannot hold
        if n > bytes.len() {
            return None;
        }
        let mut b = Self {
            changeset,
            keys: Vec::with_capacity(n),
            ..Self::default()
        };
        let mut prev = 0u64;
        for _ in 0..n {
            prev = prev.wrapping_add(r.varint()?);
            b.keys.push(prev);
        }
        b.uris = strings(&mut r)?;
        let mut ranged = 0;
        b.uri_ids.reserve(n);
        for _ in 0..n {
            let place = r.varint()?;
            let id = u32::try_from(place >> 1).ok()?;
            if id as usize >= b.uris.len() {
                return None;
            }
            b.uri_ids.push(id);
            ranged += usize::from(place & 1 == 1);
            b.ranges
                .push(if place & 1 == 1 { Some((0, 0)) } else { None });
        }
        let mut filled = 0;
        for range in b.ranges.iter_mut().flatten() {
            *range = (r.varint()?, r.varint()?);
            filled += 1;
        }
        if filled != ranged {
            return None;
        }
        b.labels = strings(&mut r)?;
        b.label_ids.reserve(n);
        for _ in 0..n {
            b.label_ids.push(match r.varint()? {
                0 => None,
                l => {
                    let id = u32::try_from(l - 1).ok()?;
                    if id as usize >= b.labels.len() {
                        return None;
                    }
                    Some(id)
                }
            });
        }
        let mut prev = 0i64;
        b.event_times.reserve(n);
        for _ in 0..n {
            prev = prev.wrapping_add(unzigzag(r.varint()?));
            b.event_times.push(prev);
        }
        b.sizes.reserve(n);
        for _ in 0..n {
            b.sizes.push(r.varint()?);
        }
        r.is_done().then_some(b)
    }
}

fn put_strings(out: &mut Vec<u8>, values: &[String]) {
    put(out, values.len() as u64);
    for v in values {
        put(out, v.len() as u64);
        out.extend_from_slice(v.as_bytes());
    }
}

fn strings(r: &mut Reader<'_>) -> Option<Vec<String>> {
    let count = usize::try_from(r.varint()?).ok()?;
    let mut out = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let len = usize::try_from(r.varint()?).ok()?;
        out.push(std::str::from_utf8(r.bytes(len)?).ok()?.to_owned());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<IndexRow> {
        (0..500u64)
            .map(|i| IndexRow {
                key: i * 3 + (i % 7) * 1_000_000,
                changeset: 4,
                location: if i % 9 == 0 {
                    SampleLocation::Blob {
                        uri: format!("s3://b/{i}"),
                    }
                } else {
                    SampleLocation::Segment {
                        uri: format!("t/d/segments/s{}.seg", i % 3),
                        offset: i * 40,
                        length: 40,
                    }
                },
                label: (i % 4 != 0).then(|| format!("l{}", i % 3)),
                event_time: 1_700_000_000_000_000 - (i as i64 % 13) * 999,
                size: 40 + i % 5,
            })
            .collect()
    }

    #[test]
    fn blocks_round_trip() {
        let mut rows = rows();
        rows.sort_by_key(|r| r.key);
        let block = RowBlock::from_rows(4, &rows);
        let bytes = block.encode();
        let back = RowBlock::decode(4, &bytes).unwrap();
        assert_eq!(back, block);
        let again: Vec<IndexRow> = (0..back.len()).map(|i| back.row(i)).collect();
        assert_eq!(again, rows);
        assert!(bytes.len() < rows.len() * 16, "{} bytes", bytes.len());
        let empty = RowBlock::from_rows(1, &[]);
        assert_eq!(RowBlock::decode(1, &empty.encode()).unwrap(), empty);
    }

    #[test]
    fn broken_blocks_are_refused() {
        let mut rows = rows();
        rows.sort_by_key(|r| r.key);
        let bytes = RowBlock::from_rows(4, &rows).encode();
        for cut in [0, 1, 2, bytes.len() / 2, bytes.len() - 1] {
            assert!(RowBlock::decode(4, &bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(RowBlock::decode(4, &longer).is_none());
        let mut other = bytes;
        other[0] = 9;
        assert!(RowBlock::decode(4, &other).is_none());
    }
}
