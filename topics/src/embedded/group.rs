//! Consumer groups of the embedded bus: membership, partition assignment and committed
//! offsets.
//!
//! Members of a group share the partitions of the topics they subscribe to. The
//! assignment is a pure function of (members, topics), recomputed by each member when
//! either changed, so every member sees the same split. Committed offsets are appended to
//! a per-group file and fsynced before `commit` returns; the file is compacted when it
//! grows.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use regex::Regex;

use super::frame;
use super::log::sync_dir;
use crate::{BusError, Subscription, TopicPartition};

/// Compact the offsets file once it is this large.
const COMPACT_BYTES: u64 = 1024 * 1024;

/// Which topics a member reads.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Topics(Vec<String>),
    Pattern(Regex),
}

impl Matcher {
    pub(crate) fn new(s: &Subscription) -> Result<Self, BusError> {
        match s {
            Subscription::Topics(t) => Ok(Self::Topics(t.clone())),
            Subscription::Pattern(p) => {
                Regex::new(p)
                    .map(Self::Pattern)
                    .map_err(|e| BusError::InvalidName {
                        what: "subscription pattern",
                        name: p.clone(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    pub(crate) fn matches(&self, topic: &str) -> bool {
        match self {
            Self::Topics(t) => t.iter().any(|x| x == topic),
            Self::Pattern(re) => re.is_match(topic),
        }
    }
}

#[derive(Debug, Default)]
struct Members {
    next_id: u64,
    members: BTreeMap<u64, Matcher>,
    version: u64,
}

#[derive(Debug)]
struct Offsets {
    path: PathBuf,
    file: File,
    len: u64,
    seq: i64,
    committed: HashMap<TopicPartition, i64>,
}

/// A consumer group.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) name: String,
    members: Mutex<Members>,
    offsets: Mutex<Offsets>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A file name for a group name: safe characters kept, others hex-escaped.
fn file_name(group: &str) -> String {
    let mut out = String::new();
    for b in group.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    format!("{out}.offsets")
}

fn encode_entries(entries: &[(TopicPartition, i64)]) -> Vec<u8> {
    let list: Vec<(&str, i32, i64)> = entries
        .iter()
        .map(|(tp, o)| (tp.topic.as_str(), tp.partition, *o))
        .collect();
    serde_json::to_vec(&list).expect("offsets serialize")
}

impl Group {
    /// Opens (creating) the group's offsets file in `dir` and replays it.
    pub(crate) fn open(dir: &Path, name: &str) -> Result<Self, BusError> {
        if name.is_empty() || name.len() > 255 {
            return Err(BusError::InvalidName {
                what: "consumer group",
                name: name.to_owned(),
                reason: "must be 1 to 255 characters long".into(),
            });
        }
        let path = dir.join(file_name(name));
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(BusError::io("read offsets", &path, e)),
        };
        let mut committed = HashMap::new();
        let mut pos = 0;
        let mut seq = 0;
        while pos < bytes.len() {
            match frame::decode(&bytes[pos..]) {
                Ok((f, len)) => {
                    let list: Vec<(String, i32, i64)> =
                        serde_json::from_slice(f.value).map_err(|e| BusError::Corrupt {
                            path: path.clone(),
                            position: pos as u64,
                            offset: f.offset,
                            reason: format!("committed offsets are not readable: {e}"),
                        })?;
                    for (topic, partition, offset) in list {
                        committed.insert(TopicPartition { topic, partition }, offset);
                    }
                    seq = f.offset + 1;
                    pos += len;
                }
                Err(e) => {
                    // a commit that never finished was never acknowledged: drop it
                    tracing::warn!(file = %path.display(), position = pos,
                        "embedded bus: dropping an unfinished offset commit ({e:?})");
                    break;
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| BusError::io("open offsets", &path, e))?;
        if pos < bytes.len() {
            file.set_len(pos as u64)
                .map_err(|e| BusError::io("truncate offsets", &path, e))?;
        }
        sync_dir(dir)?;
        let mut offsets = Offsets {
            path,
            file,
            len: pos as u64,
            seq,
            committed,
        };
        if offsets.len > COMPACT_BYTES {
            compact(&mut offsets, dir)?;
        }
        Ok(Self {
            name: name.to_owned(),
            members: Mutex::new(Members::default()),
            offsets: Mutex::new(offsets),
        })
    }

    /// Adds a member; returns its id.
    pub(crate) fn join(&self, matcher: Matcher) -> u64 {
        let mut m = lock(&self.members);
        let id = m.next_id;
        m.next_id += 1;
        m.members.insert(id, matcher);
        m.version += 1;
        id
    }

    /// Removes a member.
    pub(crate) fn leave(&self, id: u64) {
        let mut m = lock(&self.members);
        if m.members.remove(&id).is_some() {
            m.version += 1;
        }
    }

    /// The membership version: changes whenever a member joins or leaves.
    pub(crate) fn version(&self) -> u64 {
        lock(&self.members).version
    }

    /// The partitions `member` owns, given every partition of every topic, and the
    /// membership version the answer is for.
    pub(crate) fn assignment(
        &self,
        member: u64,
        partitions: &[TopicPartition],
    ) -> (Vec<TopicPartition>, u64) {
        let m = lock(&self.members);
        (assign(&m.members, partitions, member), m.version)
    }

    /// The committed offset (next to read) of a partition.
    pub(crate) fn committed(&self, tp: &TopicPartition) -> Option<i64> {
        lock(&self.offsets).committed.get(tp).copied()
    }

    /// Durably records committed offsets.
    pub(crate) fn commit(
        &self,
        dir: &Path,
        entries: &[(TopicPartition, i64)],
    ) -> Result<(), BusError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut o = lock(&self.offsets);
        let mut buf = Vec::new();
        let seq = o.seq;
        frame::encode(&mut buf, seq, 0, None, &encode_entries(entries));
        let path = o.path.clone();
        o.file
            .write_all(&buf)
            .and_then(|()| o.file.sync_data())
            .map_err(|e| BusError::io("commit offsets to", &path, e))?;
        o.len += buf.len() as u64;
        o.seq += 1;
        for (tp, off) in entries {
            o.committed.insert(tp.clone(), *off);
        }
        if o.len > COMPACT_BYTES {
            compact(&mut o, dir)?;
        }
        Ok(())
    }
}

/// Rewrites the offsets file as one snapshot, atomically.
fn compact(o: &mut Offsets, dir: &Path) -> Result<(), BusError> {
    let mut entries: Vec<(TopicPartition, i64)> =
        o.committed.iter().map(|(k, v)| (k.clone(), *v)).collect();
    entries.sort();
    let mut buf = Vec::new();
    frame::encode(&mut buf, o.seq, 0, None, &encode_entries(&entries));
    let tmp = o.path.with_extension("offsets.tmp");
    let write = || -> std::io::Result<File> {
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        fs::rename(&tmp, &o.path)?;
        OpenOptions::new().append(true).open(&o.path)
    };
    o.file = write().map_err(|e| BusError::io("compact offsets", &o.path, e))?;
    sync_dir(dir)?;
    o.len = buf.len() as u64;
    o.seq += 1;
    Ok(())
}

/// Round-robin assignment: partitions sorted, each to the eligible member (subscribed to
/// its topic) with the fewest so far, ties to the lowest id. Returns `member`'s share.
fn assign(
    members: &BTreeMap<u64, Matcher>,
    partitions: &[TopicPartition],
    member: u64,
) -> Vec<TopicPartition> {
    let mut sorted: Vec<&TopicPartition> = partitions.iter().collect();
    sorted.sort();
    let mut load: BTreeMap<u64, usize> = members.keys().map(|&id| (id, 0)).collect();
    let mut mine = Vec::new();
    for tp in sorted {
        let owner = members
            .iter()
            .filter(|(_, m)| m.matches(&tp.topic))
            .min_by_key(|(id, _)| (load[*id], **id))
            .map(|(id, _)| *id);
        if let Some(owner) = owner {
            *load.get_mut(&owner).expect("member") += 1;
            if owner == member {
                mine.push(tp.clone());
            }
        }
    }
    mine
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tps(topic: &str, n: i32) -> Vec<TopicPartition> {
        (0..n).map(|p| TopicPartition::new(topic, p)).collect()
    }

    #[test]
    fn assignment_splits_every_partition_once() {
        let mut members = BTreeMap::new();
        members.insert(1, Matcher::Topics(vec!["a".into(), "b".into()]));
        members.insert(2, Matcher::Pattern(Regex::new("^a$").unwrap()));
        members.insert(3, Matcher::Topics(vec!["b".into()]));
        let mut all = tps("a", 5);
        all.extend(tps("b", 3));
        let mut seen = Vec::new();
        for id in [1, 2, 3] {
            let mine = assign(&members, &all, id);
            for tp in &mine {
                assert!(members[&id].matches(&tp.topic));
            }
            seen.extend(mine);
        }
        seen.sort();
        all.sort();
        assert_eq!(seen, all);
        // balanced: nobody has more than one partition over anybody else
        let counts: Vec<usize> = [1, 2, 3]
            .iter()
            .map(|id| assign(&members, &all, *id).len())
            .collect();
        assert!(
            counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
            "{counts:?}"
        );
    }

    #[test]
    fn offsets_survive_reopen_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let g = Group::open(dir.path(), "g/1").unwrap();
        // long names make each commit large, so that a few thousand reach compaction
        let tp = TopicPartition::new("t".repeat(240), 0);
        for i in 0..5_000 {
            g.commit(dir.path(), &[(tp.clone(), i)]).unwrap();
        }
        drop(g);
        let g = Group::open(dir.path(), "g/1").unwrap();
        assert_eq!(g.committed(&tp), Some(4_999));
        let len = fs::metadata(dir.path().join(file_name("g/1")))
            .unwrap()
            .len();
        assert!(len <= COMPACT_BYTES, "compacted: {len}");
    }

    #[test]
    fn a_torn_commit_is_dropped_and_earlier_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let g = Group::open(dir.path(), "g").unwrap();
        let tp = TopicPartition::new("t", 0);
        g.commit(dir.path(), &[(tp.clone(), 5)]).unwrap();
        g.commit(dir.path(), &[(tp.clone(), 9)]).unwrap();
        drop(g);
        let path = dir.path().join(file_name("g"));
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let g = Group::open(dir.path(), "g").unwrap();
        assert_eq!(g.committed(&tp), Some(5));
        g.commit(dir.path(), &[(tp.clone(), 11)]).unwrap();
        drop(g);
        assert_eq!(
            Group::open(dir.path(), "g").unwrap().committed(&tp),
            Some(11)
        );
    }
}
