//! One partition of the embedded log: a directory of segment files.
//!
//! Appends go to the newest segment with positioned writes; an append is acknowledged once
//! an fsync covers it. Concurrent appenders share fsyncs (group commit): whoever holds the
//! sync lock flushes everything written so far, and the others find their records already
//! durable. Readers only see durable records (the high watermark), so a consumer never
//! sees a record that a crash could take back.
//!
//! Opening a partition scans its segments and checks every record. An incomplete record at
//! the very end of the newest segment is a write that never finished (and was never
//! acknowledged): it is cut off with a warning. Any other damage is reported and fenced:
//! the records before it stay readable, reads of the damaged range return
//! [`BusError::Corrupt`], and new records go to a fresh segment.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;

use super::frame::{self, FrameError, HEADER_LEN};
use crate::BusError;
use crate::metrics::BusMetrics;

/// Bytes of log between two entries of a segment's sparse index.
const INDEX_INTERVAL: u64 = 16 * 1024;

/// A record as handed to `append`.
pub(crate) struct AppendRecord<'a> {
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: &'a [u8],
    pub(crate) timestamp_ms: i64,
}

/// A record read back.
#[derive(Debug, Clone)]
pub(crate) struct ReadRecord {
    pub(crate) offset: i64,
    pub(crate) timestamp_ms: i64,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Bytes,
}

/// Where a sequential reader stopped, so the next read needs no index lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) offset: i64,
    segment_base: i64,
    position: u64,
}

impl Cursor {
    pub(crate) fn at(offset: i64) -> Self {
        Self {
            offset,
            segment_base: -1,
            position: 0,
        }
    }
}

#[derive(Debug)]
struct Segment {
    base: i64,
    path: PathBuf,
    file: Arc<File>,
    /// Bytes of intact, fully written records.
    size: u64,
    /// One past the last offset stored in this segment.
    next_offset: i64,
    /// Sparse (offset, byte position) pairs, ascending.
    index: Vec<(i64, u64)>,
    max_timestamp_ms: i64,
}

impl Segment {
    fn lookup(&self, offset: i64) -> u64 {
        match self.index.partition_point(|&(o, _)| o <= offset) {
            0 => 0,
            i => self.index[i - 1].1,
        }
    }

    fn note_record(&mut self, offset: i64, position: u64, len: u64, ts: i64) {
        let last_indexed = self.index.last().map_or(0, |&(_, p)| p);
        if self.index.is_empty() || position - last_indexed >= INDEX_INTERVAL {
            self.index.push((offset, position));
        }
        self.size = position + len;
        self.next_offset = offset + 1;
        self.max_timestamp_ms = self.max_timestamp_ms.max(ts);
    }
}

/// Where a read starts.
struct Location {
    file: Arc<File>,
    path: PathBuf,
    base: i64,
    position: u64,
    limit: u64,
    offset: i64,
}

impl Location {
    /// Reads `len` bytes from the start position into a buffer that the records read
    /// from it share.
    fn read(&self, len: u64) -> Result<Bytes, BusError> {
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        self.file
            .read_exact_at(&mut buf, self.position)
            .map_err(|e| BusError::io("read segment", &self.path, e))?;
        Ok(Bytes::from(buf))
    }
}

/// Offsets that cannot be read because their bytes are damaged or missing.
#[derive(Debug, Clone)]
pub(crate) struct Damage {
    pub(crate) from: i64,
    pub(crate) to: i64,
    pub(crate) path: PathBuf,
    pub(crate) position: u64,
    pub(crate) reason: String,
}

impl Damage {
    fn error(&self) -> BusError {
        BusError::Corrupt {
            path: self.path.clone(),
            position: self.position,
            offset: self.from,
            reason: format!(
                "{} (offsets {}..{} lost; seek to {} to read on)",
                self.reason, self.from, self.to, self.to
            ),
        }
    }
}

#[derive(Debug)]
struct State {
    segments: Vec<Segment>,
    next_offset: i64,
    damage: Vec<Damage>,
    /// Set when an fsync failed: what was written may or may not be on disk, so nothing
    /// more is acknowledged until the log is reopened and checked.
    poisoned: Option<String>,
}

/// One partition's log.
#[derive(Debug)]
pub(crate) struct PartitionLog {
    dir: PathBuf,
    segment_bytes: u64,
    state: Mutex<State>,
    sync_lock: Mutex<()>,
    /// Offsets below this are on disk: the high watermark readers see.
    durable: AtomicI64,
    metrics: BusMetrics,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep going with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn segment_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), BusError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BusError::io("sync directory", dir, e))
}

fn open_segment_file(path: &Path, create: bool) -> Result<File, BusError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(|e| BusError::io("open segment", path, e))
}

/// What scanning a segment found.
struct Scan {
    segment: Segment,
    /// Where and why the scan stopped early, if it did.
    failure: Option<(u64, FrameError)>,
}

fn scan_segment(path: &Path, base: i64) -> Result<Scan, BusError> {
    let bytes = fs::read(path).map_err(|e| BusError::io("read segment", path, e))?;
    let file = open_segment_file(path, false)?;
    let mut segment = Segment {
        base,
        path: path.to_owned(),
        file: Arc::new(file),
        size: 0,
        next_offset: base,
        index: Vec::new(),
        max_timestamp_ms: i64::MIN,
    };
    let mut pos = 0usize;
    let mut failure = None;
    while pos < bytes.len() {
        match frame::decode(&bytes[pos..]) {
            Ok((f, len)) if f.offset == segment.next_offset => {
                segment.note_record(f.offset, pos as u64, len as u64, f.timestamp_ms);
                pos += len;
            }
            Ok((f, _)) => {
                failure = Some((
                    pos as u64,
                    FrameError::Invalid(format!(
                        "record has offset {} where {} was expected",
                        f.offset, segment.next_offset
                    )),
                ));
                break;
            }
            Err(e) => {
                failure = Some((pos as u64, e));
                break;
            }
        }
    }
    Ok(Scan { segment, failure })
}

/// The highest offset of an intact record at or after `from` in `bytes`, if any: used to
/// tell damage in the middle of a segment from a write cut short at its end.
fn last_intact_offset_after(bytes: &[u8], from: usize, min_offset: i64) -> Option<i64> {
    let mut best = None;
    let mut pos = from;
    while pos + HEADER_LEN <= bytes.len() {
        match frame::decode(&bytes[pos..]) {
            Ok((f, len)) if f.offset >= min_offset => {
                best = Some(best.map_or(f.offset, |b: i64| b.max(f.offset)));
                pos += len;
            }
            _ => {
                // look for the next record marker
                match bytes[pos + 1..]
                    .windows(frame::MAGIC.len())
                    .position(|w| w == frame::MAGIC)
                {
                    Some(i) => pos += 1 + i,
                    None => break,
                }
            }
        }
    }
    best
}

impl PartitionLog {
    /// Opens (creating if needed) the partition in `dir`, checking every record.
    pub(crate) fn open(
        dir: &Path,
        segment_bytes: u64,
        metrics: BusMetrics,
    ) -> Result<Self, BusError> {
        fs::create_dir_all(dir).map_err(|e| BusError::io("create directory", dir, e))?;
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| BusError::io("list", dir, e))? {
            let entry = entry.map_err(|e| BusError::io("list", dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = name
                .strip_suffix(".log")
                .and_then(|b| b.parse::<i64>().ok())
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();

        let mut segments: Vec<Segment> = Vec::new();
        let mut damage = Vec::new();
        let mut next_offset = bases.first().copied().unwrap_or(0);
        let n = bases.len();
        for (i, &base) in bases.iter().enumerate() {
            let path = segment_path(dir, base);
            if base > next_offset {
                damage.push(Damage {
                    from: next_offset,
                    to: base,
                    path: segments
                        .last()
                        .map_or_else(|| path.clone(), |s| s.path.clone()),
                    position: segments.last().map_or(0, |s| s.size),
                    reason: "records missing between segments".into(),
                });
            }
            let Scan {
                mut segment,
                failure,
            } = scan_segment(&path, base)?;
            if let Some((position, err)) = failure {
                let reason = match &err {
                    FrameError::Incomplete => "record cut short".to_owned(),
                    FrameError::Invalid(r) => r.clone(),
                };
                let is_last = i + 1 == n;
                let bytes = fs::read(&path).map_err(|e| BusError::io("read segment", &path, e))?;
                let later = last_intact_offset_after(
                    &bytes,
                    usize::try_from(position).unwrap_or(usize::MAX),
                    segment.next_offset,
                );
                if is_last && later.is_none() {
                    // A write that never finished: it was never acknowledged.
                    tracing::warn!(
                        segment = %path.display(), position, dropped_bytes = bytes.len() as u64 - position,
                        "embedded bus: cutting off an unfinished write at the end of a segment ({reason})"
                    );
                    segment
                        .file
                        .set_len(position)
                        .and_then(|()| segment.file.sync_all())
                        .map_err(|e| BusError::io("truncate segment", &path, e))?;
                } else {
                    // records up to the last intact one found after the damage, or up to
                    // the next segment, are fenced
                    let to = later.map_or_else(
                        || bases.get(i + 1).copied().unwrap_or(segment.next_offset),
                        |o| o + 1,
                    );
                    let d = Damage {
                        from: segment.next_offset,
                        to,
                        path: path.clone(),
                        position,
                        reason,
                    };
                    tracing::error!(
                        segment = %path.display(), position, from = d.from, to = d.to,
                        "embedded bus: damaged segment: {}", d.reason
                    );
                    metrics.corrupt_segments.inc();
                    damage.push(d);
                    // the damaged range is fenced; later offsets continue after it
                    segment.next_offset = segment.next_offset.max(to);
                }
            }
            next_offset = segment.next_offset;
            segments.push(segment);
        }

        // What a crashed process wrote may still be only in the page cache: make it
        // durable before anyone reads it as acknowledged.
        if let Some(seg) = segments.last() {
            seg.file
                .sync_data()
                .map_err(|e| BusError::io("sync segment", &seg.path, e))?;
        }

        // A damaged newest segment is never appended to again: start a fresh one.
        let needs_fresh = segments.is_empty()
            || damage
                .last()
                .is_some_and(|d| segments.last().is_some_and(|s| d.path == s.path));
        if needs_fresh {
            let path = segment_path(dir, next_offset);
            let file = open_segment_file(&path, true)?;
            sync_dir(dir)?;
            segments.push(Segment {
                base: next_offset,
                path,
                file: Arc::new(file),
                size: 0,
                next_offset,
                index: Vec::new(),
                max_timestamp_ms: i64::MIN,
            });
        }

        Ok(Self {
            dir: dir.to_owned(),
            segment_bytes,
            durable: AtomicI64::new(next_offset),
            state: Mutex::new(State {
                segments,
                next_offset,
                damage,
                poisoned: None,
            }),
            sync_lock: Mutex::new(()),
            metrics,
        })
    }

    /// The damage found when the log was opened.
    pub(crate) fn damage(&self) -> Vec<Damage> {
        lock(&self.state).damage.clone()
    }

    /// Offsets below this are durable and readable.
    pub(crate) fn high_watermark(&self) -> i64 {
        self.durable.load(Ordering::Acquire)
    }

    /// The oldest offset still kept.
    pub(crate) fn log_start(&self) -> i64 {
        lock(&self.state).segments.first().map_or(0, |s| s.base)
    }

    /// Appends records and returns their offsets once they are durable.
    pub(crate) fn append(&self, records: &[AppendRecord<'_>]) -> Result<Vec<i64>, BusError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let target = {
            let mut st = lock(&self.state);
            if let Some(why) = &st.poisoned {
                return Err(BusError::io(
                    "append to",
                    &self.dir,
                    std::io::Error::other(format!(
                        "an earlier fsync failed ({why}); reopen the bus to check the log"
                    )),
                ));
            }
            let roll = st
                .segments
                .last()
                .is_some_and(|s| s.size >= self.segment_bytes);
            if roll {
                self.roll(&mut st)?;
            }
            let first = st.next_offset;
            let mut buf = Vec::with_capacity(
                records
                    .iter()
                    .map(|r| frame::encoded_len(r.key, r.value))
                    .sum(),
            );
            let mut spans = Vec::with_capacity(records.len());
            for (i, r) in records.iter().enumerate() {
                let at = buf.len() as u64;
                frame::encode(&mut buf, first + i as i64, r.timestamp_ms, r.key, r.value);
                spans.push((at, buf.len() as u64 - at, r.timestamp_ms));
            }
            let seg = st.segments.last_mut().expect("a partition has a segment");
            let start = seg.size;
            if let Err(e) = seg.file.write_all_at(&buf, start) {
                // leave no half record behind for the next append to follow
                let _ = seg.file.set_len(start);
                return Err(BusError::io("append to", &seg.path, e));
            }
            for (i, (at, len, ts)) in spans.into_iter().enumerate() {
                seg.note_record(first + i as i64, start + at, len, ts);
            }
            st.next_offset = first + records.len() as i64;
            st.next_offset
        };
        self.sync_until(target)?;
        let first = target - records.len() as i64;
        Ok((first..target).collect())
    }

    /// Closes the newest segment (durably) and starts the next one.
    fn roll(&self, st: &mut State) -> Result<(), BusError> {
        let seg = st.segments.last().expect("a partition has a segment");
        seg.file
            .sync_data()
            .map_err(|e| BusError::io("sync segment", &seg.path, e))?;
        let base = st.next_offset;
        let path = segment_path(&self.dir, base);
        let file = open_segment_file(&path, true)?;
        sync_dir(&self.dir)?;
        st.segments.push(Segment {
            base,
            path,
            file: Arc::new(file),
            size: 0,
            next_offset: base,
            index: Vec::new(),
            max_timestamp_ms: i64::MIN,
        });
        self.durable.fetch_max(base, Ordering::AcqRel);
        Ok(())
    }

    /// Makes every record below `target` durable, sharing the fsync with concurrent
    /// appenders.
    fn sync_until(&self, target: i64) -> Result<(), BusError> {
        if self.durable.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let _sync = lock(&self.sync_lock);
        if self.durable.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        // Everything written so far is covered by this fsync: segments before the newest
        // were synced when they were closed.
        let (file, path, written) = {
            let st = lock(&self.state);
            let seg = st.segments.last().expect("a partition has a segment");
            (Arc::clone(&seg.file), seg.path.clone(), st.next_offset)
        };
        let started = Instant::now();
        if let Err(e) = file.sync_data() {
            lock(&self.state).poisoned = Some(e.to_string());
            return Err(BusError::io("sync segment", &path, e));
        }
        self.metrics
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        self.durable.fetch_max(written, Ordering::AcqRel);
        Ok(())
    }

    /// Reads durable records from `cursor` on, at most `max_records` and about
    /// `max_bytes` (at least one record if any is there). Returns the records and where
    /// to read next.
    pub(crate) fn read(
        &self,
        cursor: Cursor,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<(Vec<ReadRecord>, Cursor), BusError> {
        let hw = self.high_watermark();
        if cursor.offset >= hw || max_records == 0 {
            return Ok((Vec::new(), cursor));
        }
        let Some(at) = self.locate(cursor)? else {
            return Ok((Vec::new(), cursor));
        };
        let mut cursor = Cursor {
            offset: at.offset,
            ..cursor
        };
        let available = at.limit - at.position;
        let mut buf = at.read(available.min(max_bytes.max(64 * 1024) as u64))?;
        let mut out = Vec::new();
        let mut bytes_out = 0usize;
        let mut used = 0usize;
        while out.len() < max_records && bytes_out < max_bytes && cursor.offset < hw {
            match frame::decode(&buf[used..]) {
                Ok((f, len)) => {
                    if f.offset >= cursor.offset {
                        if f.offset != cursor.offset {
                            return Err(corrupt(
                                &at.path,
                                at.position + used as u64,
                                cursor.offset,
                                format!(
                                    "record has offset {} where {} was expected",
                                    f.offset, cursor.offset
                                ),
                            ));
                        }
                        bytes_out += f.value.len();
                        out.push(ReadRecord {
                            offset: f.offset,
                            timestamp_ms: f.timestamp_ms,
                            key: f.key.map(|k| buf.slice_ref(k)),
                            value: buf.slice_ref(f.value),
                        });
                        cursor.offset = f.offset + 1;
                    }
                    used += len;
                }
                // the buffer ends inside a record: the next read continues from it
                Err(FrameError::Incomplete) if used > 0 => break,
                Err(FrameError::Incomplete) => {
                    // one record larger than the buffer: read it whole
                    let need = frame_len(&buf).min(available);
                    if need as usize <= buf.len() {
                        return Err(corrupt(
                            &at.path,
                            at.position,
                            cursor.offset,
                            "record cut short".into(),
                        ));
                    }
                    buf = at.read(need)?;
                }
                Err(FrameError::Invalid(_)) if !out.is_empty() => break,
                Err(FrameError::Invalid(reason)) => {
                    return Err(corrupt(
                        &at.path,
                        at.position + used as u64,
                        cursor.offset,
                        reason,
                    ));
                }
            }
        }
        cursor.segment_base = at.base;
        cursor.position = at.position + used as u64;
        Ok((out, cursor))
    }

    /// Where the record at `cursor` (or the oldest kept, if retention removed it) is:
    /// `None` if there is nothing to read there.
    fn locate(&self, cursor: Cursor) -> Result<Option<Location>, BusError> {
        let st = lock(&self.state);
        if let Some(d) = st
            .damage
            .iter()
            .find(|d| (d.from..d.to).contains(&cursor.offset))
        {
            return Err(d.error());
        }
        // older records may have been removed by retention: go on from the oldest kept
        let offset = cursor.offset.max(st.segments.first().map_or(0, |s| s.base));
        let i = st
            .segments
            .partition_point(|s| s.base <= offset)
            .saturating_sub(1);
        let seg = &st.segments[i];
        if offset >= seg.next_offset {
            // between segments: only a fenced range (reported above) lies here
            return Ok(None);
        }
        let position = if cursor.segment_base == seg.base && cursor.offset == offset {
            cursor.position
        } else {
            seg.lookup(offset)
        };
        Ok(Some(Location {
            file: Arc::clone(&seg.file),
            path: seg.path.clone(),
            base: seg.base,
            position,
            limit: seg.size,
            offset,
        }))
    }

    /// Deletes whole segments whose newest record is older than `min_timestamp_ms`,
    /// never the newest segment. Returns how many were deleted.
    pub(crate) fn apply_retention(&self, min_timestamp_ms: i64) -> Result<usize, BusError> {
        let mut st = lock(&self.state);
        let mut removed = 0;
        while st.segments.len() > 1 && st.segments[0].max_timestamp_ms < min_timestamp_ms {
            let seg = st.segments.remove(0);
            fs::remove_file(&seg.path).map_err(|e| BusError::io("delete segment", &seg.path, e))?;
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

fn frame_len(buf: &[u8]) -> u64 {
    if buf.len() < HEADER_LEN {
        return HEADER_LEN as u64;
    }
    HEADER_LEN as u64 + u64::from(u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]))
}

fn corrupt(path: &Path, position: u64, offset: i64, reason: String) -> BusError {
    BusError::Corrupt {
        path: path.to_owned(),
        position,
        offset,
        reason,
    }
}
