//! The manifest of a training set: every sample it selects, in a deterministic order
//! (changeset, then key), with where its stored form is, its label, event time, size and
//! weight; and a footer that describes the whole.
//!
//! ```text
//! file   := MAGIC chunk* footer footer_len:u64le END
//! chunk  := entry*                      one shard's samples; deltas restart per chunk
//! entry  := key_delta changeset_delta location label time_delta size [weight:f32le]
//!           (each a LEB128 varint; deltas zigzag-encoded)
//! location := uri_index << 1 | 1, offset, length    a range of a segment object
//!           | uri_index << 1                         a whole object
//! label  := 0 (none) | 1 + index into the footer's labels
//! footer := canonical JSON (Footer)
//! ```
//!
//! A chunk is a shard: shard `n` is read with two range reads (the footer, then the
//! chunk) without reading the rest. The encoding is a function of the entries alone (no
//! times, no randomness), so the same query gives a byte-identical manifest.

use std::collections::HashMap;

use flywheel_schemas::RestrictedQuery;
use flywheel_store::varint::{Reader, put as put_varint, unzigzag, zigzag};
use flywheel_store::{IndexRow, RowBlock};
use serde::{Deserialize, Serialize};

use crate::TrainsetError;
use crate::query::{Query, Version};

const MAGIC: &[u8; 8] = b"FWTSMAN1";
const END: &[u8; 8] = b"FWTSEND1";
/// Format of the manifest.
pub const MANIFEST_FORMAT: u32 = 1;
/// Most samples in a shard.
pub const SHARD_SAMPLES: u64 = 10_000;
/// Most sample bytes in a shard (a shard closes once it reaches this).
pub const SHARD_BYTES: u64 = 256 * 1024 * 1024;
/// Bytes after the footer: its length and the end mark.
const TRAILER: u64 = 16;

/// One shard's span of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpan {
    /// Byte offset of its chunk in the manifest.
    pub offset: u64,
    /// Length of its chunk.
    pub length: u64,
    /// Samples in it.
    pub samples: u64,
    /// Bytes of those samples' stored forms.
    pub bytes: u64,
}

/// A query changeset whose rows belong to the training set: they are fetched from the
/// source while the set is read, never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestrictedPart {
    /// The query changeset.
    pub changeset: i64,
    /// Its query.
    pub query: RestrictedQuery,
}

/// The footer: what the manifest holds, and the tables its entries refer to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Footer {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The training set's version.
    pub version: Version,
    /// Its pinned query.
    pub query: Query,
    /// Stored samples in it.
    pub samples: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Labels, in the order entries first use them.
    pub labels: Vec<String>,
    /// Samples per label, as `labels`.
    pub label_samples: Vec<u64>,
    /// Samples without a label.
    pub unlabelled: u64,
    /// Earliest event time of a sample in it.
    pub first_event_time: Option<i64>,
    /// Latest event time.
    pub last_event_time: Option<i64>,
    /// Whether entries carry weights (otherwise every weight is 1).
    pub weighted: bool,
    /// Object URIs, in the order entries first use them.
    pub uris: Vec<String>,
    /// The shards of stored samples.
    pub shards: Vec<ShardSpan>,
    /// Query changesets whose rows are read from their source; each is one more shard
    /// after the stored ones.
    pub restricted: Vec<RestrictedPart>,
}

impl Footer {
    /// Shards in all: the stored ones, then one per restricted part.
    pub fn shard_count(&self) -> usize {
        self.shards.len() + self.restricted.len()
    }

    /// Label histogram, by label; unlabelled samples under `None`.
    pub fn label_histogram(&self) -> Vec<(Option<&str>, u64)> {
        let mut h: Vec<(Option<&str>, u64)> = (self.labels.iter().map(|l| Some(l.as_str())))
            .zip(self.label_samples.iter().copied())
            .collect();
        h.sort();
        if self.unlabelled > 0 {
            h.push((None, self.unlabelled));
        }
        h
    }
}

/// One sample of the manifest, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The sample's key.
    pub key: u64,
    /// The changeset that added it.
    pub changeset: i64,
    /// Index of its object in the footer's `uris`.
    pub uri: u32,
    /// The byte range of a segment, or `None` for a whole object.
    pub range: Option<(u64, u64)>,
    /// Index of its label in the footer's `labels`.
    pub label: Option<u32>,
    /// Its event time.
    pub event_time: i64,
    /// Its size.
    pub size: u64,
    /// Its weight.
    pub weight: f32,
}

/// Writes a manifest as entries come, in memory-bounded pieces: [`ManifestWriter::push`]
/// the entries in order, take the finished bytes with [`ManifestWriter::drain`] now and
/// then, and end with [`ManifestWriter::finish`].
#[derive(Debug)]
pub struct ManifestWriter {
    weighted: bool,
    out: Vec<u8>,
    written: u64,
    chunk: Vec<u8>,
    chunk_samples: u64,
    chunk_bytes: u64,
    prev: (u64, i64, i64),
    uris: Vec<String>,
    uri_ids: HashMap<String, u32>,
    labels: Vec<String>,
    label_ids: HashMap<String, u32>,
    label_samples: Vec<u64>,
    unlabelled: u64,
    samples: u64,
    bytes: u64,
    times: Option<(i64, i64)>,
    shards: Vec<ShardSpan>,
    /// The block whose ids are cached: its changeset, and its URIs' and labels' ids here.
    block_ids: (i64, Vec<u32>, Vec<u32>),
}

/// A sample's label in the view: none, one of its block's labels, or one set later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewLabel<'a> {
    /// No label.
    None,
    /// Label `n` of the sample's block.
    Block(u32),
    /// A label set by a later relabel.
    Text(&'a str),
}

impl<'a> ViewLabel<'a> {
    /// The label's text.
    pub fn text(self, block: &'a RowBlock) -> Option<&'a str> {
        match self {
            ViewLabel::None => None,
            ViewLabel::Block(n) => Some(&block.labels[n as usize]),
            ViewLabel::Text(t) => Some(t),
        }
    }
}

impl ManifestWriter {
    /// A manifest whose entries carry weights or not.
    pub fn new(weighted: bool) -> Self {
        Self {
            weighted,
            out: MAGIC.to_vec(),
            written: 0,
            chunk: Vec::new(),
            chunk_samples: 0,
            chunk_bytes: 0,
            prev: (0, 0, 0),
            uris: Vec::new(),
            uri_ids: HashMap::new(),
            labels: Vec::new(),
            label_ids: HashMap::new(),
            label_samples: Vec::new(),
            unlabelled: 0,
            samples: 0,
            bytes: 0,
            times: None,
            shards: Vec::new(),
            block_ids: (0, Vec::new(), Vec::new()),
        }
    }

    /// Samples pushed so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Appends a sample: its index row, its label in the view, its weight.
    pub fn push(&mut self, row: &IndexRow, label: Option<&str>, weight: f32) {
        let (uri, range) = row.location.parts();
        let uri = self.uri_id(uri);
        let label = label.map(|l| self.label_id(l));
        self.push_entry(&Entry {
            key: row.key,
            changeset: row.changeset,
            uri,
            range,
            label,
            event_time: row.event_time,
            size: row.size,
            weight,
        });
    }

    /// Appends row `i` of a block with its label in the view. Ids of the block's URIs and
    /// labels are looked up once per block, not per row.
    pub fn push_block_row(
        &mut self,
        block: &RowBlock,
        i: usize,
        label: ViewLabel<'_>,
        weight: f32,
    ) {
        if self.block_ids.0 != block.changeset {
            self.block_ids = (
                block.changeset,
                vec![u32::MAX; block.uris.len()],
                vec![u32::MAX; block.labels.len()],
            );
        }
        let b = block.uri_ids[i] as usize;
        let uri = match self.block_ids.1[b] {
            u32::MAX => {
                let id = self.uri_id(&block.uris[b]);
                self.block_ids.1[b] = id;
                id
            }
            id => id,
        };
        let label = match label {
            ViewLabel::None => None,
            ViewLabel::Text(l) => Some(self.label_id(l)),
            ViewLabel::Block(b) => Some(match self.block_ids.2[b as usize] {
                u32::MAX => {
                    let id = self.label_id(&block.labels[b as usize]);
                    self.block_ids.2[b as usize] = id;
                    id
                }
                id => id,
            }),
        };
        self.push_entry(&Entry {
            key: block.keys[i],
            changeset: block.changeset,
            uri,
            range: block.ranges[i],
            label,
            event_time: block.event_times[i],
            size: block.sizes[i],
            weight,
        });
    }

    /// The id of an object URI in this manifest.
    pub fn uri_id(&mut self, uri: &str) -> u32 {
        intern(&mut self.uris, &mut self.uri_ids, uri)
    }

    /// The id of a label in this manifest.
    pub fn label_id(&mut self, label: &str) -> u32 {
        let id = intern(&mut self.labels, &mut self.label_ids, label);
        if id as usize == self.label_samples.len() {
            self.label_samples.push(0);
        }
        id
    }

    /// Appends an entry whose URI and label are ids of this manifest.
    pub fn push_entry(&mut self, e: &Entry) {
        match e.label {
            Some(l) => self.label_samples[l as usize] += 1,
            None => self.unlabelled += 1,
        }
        let (pk, pc, pt) = self.prev;
        let c = &mut self.chunk;
        put_varint(c, zigzag(e.key.wrapping_sub(pk) as i64));
        put_varint(c, zigzag(e.changeset.wrapping_sub(pc)));
        match e.range {
            Some((offset, length)) => {
                put_varint(c, (u64::from(e.uri) << 1) | 1);
                put_varint(c, offset);
                put_varint(c, length);
            }
            None => put_varint(c, u64::from(e.uri) << 1),
        }
        put_varint(c, e.label.map_or(0, |l| u64::from(l) + 1));
        put_varint(c, zigzag(e.event_time.wrapping_sub(pt)));
        put_varint(c, e.size);
        if self.weighted {
            c.extend_from_slice(&e.weight.to_le_bytes());
        }
        self.prev = (e.key, e.changeset, e.event_time);
        self.samples += 1;
        self.bytes += e.size;
        self.chunk_samples += 1;
        self.chunk_bytes += e.size;
        self.times = Some(match self.times {
            None => (e.event_time, e.event_time),
            Some((lo, hi)) => (lo.min(e.event_time), hi.max(e.event_time)),
        });
        if self.chunk_samples >= SHARD_SAMPLES || self.chunk_bytes >= SHARD_BYTES {
            self.close_chunk();
        }
    }

    fn close_chunk(&mut self) {
        if self.chunk_samples == 0 {
            return;
        }
        let offset = self.written + self.out.len() as u64;
        self.shards.push(ShardSpan {
            offset,
            length: self.chunk.len() as u64,
            samples: self.chunk_samples,
            bytes: self.chunk_bytes,
        });
        self.out.append(&mut self.chunk);
        self.chunk_samples = 0;
        self.chunk_bytes = 0;
        self.prev = (0, 0, 0);
    }

    /// The bytes finished so far (whole chunks), to be written out; `None` if too few.
    pub fn drain(&mut self, at_least: usize) -> Option<Vec<u8>> {
        if self.out.len() < at_least.max(1) {
            return None;
        }
        self.written += self.out.len() as u64;
        Some(std::mem::take(&mut self.out))
    }

    /// Ends the manifest: the last chunk and the footer. Returns the remaining bytes and
    /// the footer.
    pub fn finish(
        mut self,
        version: Version,
        query: Query,
        restricted: Vec<RestrictedPart>,
    ) -> (Vec<u8>, Footer) {
        self.close_chunk();
        let footer = Footer {
            format: MANIFEST_FORMAT,
            version,
            query,
            samples: self.samples,
            bytes: self.bytes,
            labels: self.labels,
            label_samples: self.label_samples,
            unlabelled: self.unlabelled,
            first_event_time: self.times.map(|t| t.0),
            last_event_time: self.times.map(|t| t.1),
            weighted: self.weighted,
            uris: self.uris,
            shards: self.shards,
            restricted,
        };
        let json = serde_json::to_vec(&footer).expect("a footer serializes");
        let mut out = self.out;
        out.extend_from_slice(&json);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(END);
        (out, footer)
    }
}

fn intern(table: &mut Vec<String>, ids: &mut HashMap<String, u32>, value: &str) -> u32 {
    if let Some(&id) = ids.get(value) {
        return id;
    }
    let id = u32::try_from(table.len()).expect("fewer than 2^32 distinct values");
    table.push(value.to_owned());
    ids.insert(value.to_owned(), id);
    id
}

/// The length of the footer, from the manifest's last [`TRAILER`] bytes.
pub fn footer_len(trailer: &[u8], what: &str) -> Result<u64, TrainsetError> {
    let bad = |reason: &str| TrainsetError::corrupt(what, reason);
    if trailer.len() != TRAILER as usize || &trailer[8..] != END {
        return Err(bad("it does not end like a flywheel manifest"));
    }
    Ok(u64::from_le_bytes(
        trailer[..8].try_into().expect("8 bytes"),
    ))
}

/// Reads a footer: `tail` is the footer and the trailer, `total` the manifest's length.
pub fn read_footer(tail: &[u8], total: u64, what: &str) -> Result<Footer, TrainsetError> {
    let bad = |reason: String| TrainsetError::corrupt(what, reason);
    if tail.len() < TRAILER as usize {
        return Err(bad("it is too short".into()));
    }
    let (body, trailer) = tail.split_at(tail.len() - TRAILER as usize);
    let len = footer_len(trailer, what)?;
    if len > body.len() as u64 || len + TRAILER + MAGIC.len() as u64 > total {
        return Err(bad(format!("its footer length {len} is out of range")));
    }
    let json = &body[body.len() - len as usize..];
    let footer: Footer =
        serde_json::from_slice(json).map_err(|e| bad(format!("its footer: {e}")))?;
    if footer.format != MANIFEST_FORMAT {
        return Err(bad(format!(
            "format {} (this build reads format {MANIFEST_FORMAT})",
            footer.format
        )));
    }
    let data_end = total - TRAILER - len;
    for (i, s) in footer.shards.iter().enumerate() {
        if s.offset < MAGIC.len() as u64 || s.offset.saturating_add(s.length) > data_end {
            return Err(bad(format!("shard {i} lies outside the entries")));
        }
    }
    Ok(footer)
}

/// Where a footer and its trailer start, given the footer length and the total length.
pub fn footer_start(total: u64, footer_len: u64) -> u64 {
    total.saturating_sub(TRAILER + footer_len)
}

/// Bytes at the end of a manifest that hold the footer's length.
pub const fn trailer_len() -> u64 {
    TRAILER
}

/// Decodes shard `n`'s chunk.
pub fn read_chunk(
    footer: &Footer,
    n: usize,
    chunk: &[u8],
    what: &str,
) -> Result<Vec<Entry>, TrainsetError> {
    let bad = |reason: String| TrainsetError::corrupt(format!("{what} shard {n}"), reason);
    let span = &footer.shards[n];
    if chunk.len() as u64 != span.length {
        return Err(bad(format!(
            "{} bytes, the footer says {}",
            chunk.len(),
            span.length
        )));
    }
    let mut r = Reader::new(chunk);
    let mut entries = Vec::with_capacity(span.samples as usize);
    let (mut key, mut changeset, mut time) = (0u64, 0i64, 0i64);
    for i in 0..span.samples {
        let mut next = || r.varint().ok_or_else(|| bad(format!("entry {i} is cut")));
        key = key.wrapping_add(unzigzag(next()?) as u64);
        changeset = changeset.wrapping_add(unzigzag(next()?));
        let place = next()?;
        let uri = u32::try_from(place >> 1).map_err(|_| bad(format!("entry {i}: uri index")))?;
        let range = if place & 1 == 1 {
            Some((next()?, next()?))
        } else {
            None
        };
        let label = match next()? {
            0 => None,
            l => Some(u32::try_from(l - 1).map_err(|_| bad(format!("entry {i}: label")))?),
        };
        time = time.wrapping_add(unzigzag(next()?));
        let size = next()?;
        let weight = if footer.weighted {
            r.f32().ok_or_else(|| bad(format!("entry {i} is cut")))?
        } else {
            1.0
        };
        if uri as usize >= footer.uris.len() {
            return Err(bad(format!("entry {i} names uri {uri}, past the table")));
        }
        if label.is_some_and(|l| l as usize >= footer.labels.len()) {
            return Err(bad(format!("entry {i} names a label past the table")));
        }
        entries.push(Entry {
            key,
            changeset,
            uri,
            range,
            label,
            event_time: time,
            size,
            weight,
        });
    }
    if !r.is_done() {
        return Err(bad(format!(
            "{} bytes left after its entries",
            chunk.len() - r.position()
        )));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::QueryRequest;
    use flywheel_store::SampleLocation;

    fn row(key: u64, changeset: i64, t: i64, seg: Option<&str>) -> IndexRow {
        IndexRow {
            key,
            changeset,
            location: match seg {
                Some(uri) => SampleLocation::Segment {
                    uri: uri.into(),
                    offset: key * 10,
                    length: 10,
                },
                None => SampleLocation::Blob {
                    uri: format!("s3://b/{key}"),
                },
            },
            label: None,
            event_time: t,
            size: 10,
        }
    }

    fn query() -> Query {
        Query::pin(
            &QueryRequest {
                dataset: "d".into(),
                ..QueryRequest::default()
            },
            3,
        )
        .unwrap()
    }

    fn write(rows: &[(IndexRow, Option<&str>, f32)], weighted: bool) -> (Vec<u8>, Footer) {
        let mut w = ManifestWriter::new(weighted);
        let mut bytes = Vec::new();
        for (row, label, weight) in rows {
            w.push(row, *label, *weight);
            if let Some(b) = w.drain(64) {
                bytes.extend(b);
            }
        }
        let (rest, footer) = w.finish(query().version(), query(), Vec::new());
        bytes.extend(rest);
        (bytes, footer)
    }

    fn read_all(bytes: &[u8], footer: &Footer) -> Vec<Entry> {
        let total = bytes.len() as u64;
        let len = footer_len(&bytes[bytes.len() - 16..], "m").unwrap();
        let back = read_footer(&bytes[footer_start(total, len) as usize..], total, "m").unwrap();
        assert_eq!(&back, footer);
        (0..footer.shards.len())
            .flat_map(|n| {
                let s = &footer.shards[n];
                read_chunk(
                    footer,
                    n,
                    &bytes[s.offset as usize..(s.offset + s.length) as usize],
                    "m",
                )
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn entries_round_trip_across_shards() {
        let rows: Vec<(IndexRow, Option<&str>, f32)> = (0..25_000u64)
            .map(|i| {
                let cs = (i / 7_000) as i64 + 1;
                let seg = if i % 11 == 0 { None } else { Some("t/d/seg-a") };
                let label = ["cat", "dog"].get((i % 3) as usize).copied();
                (
                    row(1_000_000 - i * 3, cs, (i as i64 - 500) * 7, seg),
                    label,
                    (i % 5) as f32 / 4.0,
                )
            })
            .collect();
        for weighted in [false, true] {
            let (bytes, footer) = write(&rows, weighted);
            assert_eq!(footer.samples, 25_000);
            assert_eq!(footer.shards.len(), 3);
            assert_eq!(footer.labels, vec!["cat", "dog"]);
            assert_eq!(
                footer.label_samples.iter().sum::<u64>() + footer.unlabelled,
                25_000
            );
            assert_eq!(footer.first_event_time, Some(-500 * 7));
            let back = read_all(&bytes, &footer);
            assert_eq!(back.len(), rows.len());
            for (e, (r, label, weight)) in back.iter().zip(&rows) {
                assert_eq!(
                    (e.key, e.changeset, e.event_time),
                    (r.key, r.changeset, r.event_time)
                );
                assert_eq!(footer.uris[e.uri as usize], r.location.uri());
                assert_eq!(e.label.map(|l| footer.labels[l as usize].as_str()), *label);
                let want_w = if weighted { *weight } else { 1.0 };
                assert_eq!(e.weight, want_w);
                match &r.location {
                    SampleLocation::Segment { offset, length, .. } => {
                        assert_eq!(e.range, Some((*offset, *length)));
                    }
                    SampleLocation::Blob { .. } => assert_eq!(e.range, None),
                }
            }
            // the same entries: the same bytes
            assert_eq!(write(&rows, weighted).0, bytes);
        }
    }

    #[test]
    fn corrupt_manifests_are_refused() {
        let rows: Vec<_> = (0..10u64)
            .map(|i| (row(i, 1, 0, Some("s")), None, 1.0))
            .collect();
        let (bytes, footer) = write(&rows, false);
        let total = bytes.len() as u64;
        footer_len(&bytes[..16], "m").unwrap_err();
        let e = read_footer(&bytes[bytes.len() - 20..], total, "m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("m is corrupt"), "{e}");
        let s = &footer.shards[0];
        let chunk = &bytes[s.offset as usize..(s.offset + s.length) as usize];
        let e = read_chunk(&footer, 0, &chunk[..chunk.len() - 1], "m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("shard 0"), "{e}");
        let mut lying = footer.clone();
        lying.uris.clear();
        read_chunk(&lying, 0, chunk, "m").unwrap_err();
    }
}
