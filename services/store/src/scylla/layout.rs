//! How the sample index is spread over partitions: key and time buckets, the parts of a
//! changeset, the batches a commit writes and the reads that check its keys. Pure maths,
//! tested without a server; services/store/README.md explains the choices.

use std::ops::{Range, RangeInclusive};

/// A key bucket holds `2^16` consecutive keys. Ingest derives keys from the source position
/// (`partition << 48 | offset`), so a bucket is a run of 65,536 consecutive records of one
/// source partition: at most a few MB per partition even with every key added, removed and
/// added again, and a commit of 50,000 fresh keys touches one or two buckets.
pub(crate) const KEY_BUCKET_BITS: u32 = 16;

/// A time bucket is one hour of event time: a dataset taking 100 samples a second puts
/// 360,000 rows (about 50 MB) in one, and a read of a day touches 24 partitions.
pub(crate) const TIME_BUCKET_MICROS: i64 = 3_600_000_000;

/// Entries of one changeset per partition of `changeset_entries` (a 50,000-row changeset
/// spans 10 partitions of at most about 1 MB).
pub(crate) const ENTRIES_PER_PART: usize = 5_000;

/// Rows per batch, and the bytes a batch should stay under (Scylla warns from 128 KiB and
/// refuses from 1 MiB by default).
pub(crate) const BATCH_ROWS: usize = 100;
pub(crate) const BATCH_BYTES: usize = 64 * 1024;

/// Keys per `key IN ?` read. ScyllaDB refuses a query restricting more clustering keys
/// than `max_clustering_key_restrictions_per_query` (100 by default, and an operator may
/// set it lower); half of that leaves room, and keeps each read a modest amount of work
/// for the replica that coordinates it.
pub(crate) const KEYS_PER_PROBE: usize = 50;

/// Keys are `u64`, CQL `bigint`s `i64`: flipping the top bit keeps the order, so key
/// ranges are clustering ranges.
pub(crate) fn key_to_cql(key: u64) -> i64 {
    (key ^ (1 << 63)) as i64
}

pub(crate) fn key_from_cql(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// The bucket of a key (`0 ..= 2^48 - 1`, in key order).
pub(crate) fn key_bucket(key: u64) -> i64 {
    (key >> KEY_BUCKET_BITS) as i64
}

/// The buckets holding keys `from..=to`, in order; empty if `from > to`.
pub(crate) fn key_buckets(from: u64, to: u64) -> Option<RangeInclusive<i64>> {
    (from <= to).then(|| key_bucket(from)..=key_bucket(to))
}

/// The bucket of an event time (hours since the epoch; negative before it).
pub(crate) fn time_bucket(event_time: i64) -> i64 {
    event_time.div_euclid(TIME_BUCKET_MICROS)
}

/// The buckets holding event times `from..to`, in order; empty if `from >= to`.
pub(crate) fn time_buckets(from: i64, to: i64) -> Option<RangeInclusive<i64>> {
    (from < to).then(|| time_bucket(from)..=time_bucket(to - 1))
}

/// How a commit reads what the view holds of its keys in one key bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// One range read `from..=to`: the keys are dense enough that reading the keys
    /// between them costs less than asking for each.
    Range { bucket: i64, from: u64, to: u64 },
    /// `key IN (...)` reads of at most `KEYS_PER_PROBE` keys.
    Keys { bucket: i64, keys: Vec<u64> },
}

/// Plans the reads of ascending, distinct `keys`: per bucket, a range read when the keys
/// fill at least a quarter of their span, otherwise `IN` reads.
pub(crate) fn plan_probes(keys: &[u64]) -> Vec<Probe> {
    let mut probes = Vec::new();
    for run in keys.chunk_by(|a, b| key_bucket(*a) == key_bucket(*b)) {
        let (Some(&first), Some(&last)) = (run.first(), run.last()) else {
            continue;
        };
        let bucket = key_bucket(first);
        let span = last - first + 1;
        if run.len() > 1 && span / 4 <= run.len() as u64 {
            probes.push(Probe::Range {
                bucket,
                from: first,
                to: last,
            });
        } else {
            probes.extend(run.chunks(KEYS_PER_PROBE).map(|keys| Probe::Keys {
                bucket,
                keys: keys.to_vec(),
            }));
        }
    }
    probes
}

/// Splits items into batches: items of one partition only (`partition` gives it; items
/// of a partition need not be adjacent), at most `BATCH_ROWS` items and, unless a single
/// item is larger, `BATCH_BYTES` bytes (`size` estimates an item's) each. Partitions come
/// in ascending order, items in their original order within a partition.
pub(crate) fn batches<T, P: Ord + Clone>(
    items: Vec<T>,
    partition: impl Fn(&T) -> P,
    size: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut by_partition: std::collections::BTreeMap<P, Vec<T>> = Default::default();
    for item in items {
        by_partition.entry(partition(&item)).or_default().push(item);
    }
    let mut out = Vec::new();
    for (_, items) in by_partition {
        let sizes: Vec<usize> = items.iter().map(&size).collect();
        let mut items = items.into_iter();
        for range in split(&sizes, BATCH_ROWS, BATCH_BYTES) {
            out.push(items.by_ref().take(range.len()).collect());
        }
    }
    out
}

/// Cuts `sizes` into consecutive ranges of at most `max_rows` items and `max_bytes`
/// bytes (a single larger item gets a range of its own).
pub(crate) fn split(sizes: &[usize], max_rows: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &s) in sizes.iter().enumerate() {
        if i > start && (i - start == max_rows || bytes + s > max_bytes) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += s;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// The part of `changeset_entries` an entry falls in, by its position among the
/// changeset's entries in key order.
pub(crate) fn part_of(position: usize) -> i32 {
    i32::try_from(position / ENTRIES_PER_PART).unwrap_or(i32::MAX)
}

/// How many parts a changeset of `entries` entries has.
pub(crate) fn parts(entries: usize) -> i32 {
    i32::try_from(entries.div_ceil(ENTRIES_PER_PART)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_encoding_keeps_the_order() {
        let keys = [0, 1, 42, (1 << 63) - 1, 1 << 63, u64::MAX - 1, u64::MAX];
        for w in keys.windows(2) {
            assert!(key_to_cql(w[0]) < key_to_cql(w[1]), "{} < {}", w[0], w[1]);
            assert!(key_bucket(w[0]) <= key_bucket(w[1]));
        }
        for k in keys {
            assert_eq!(key_from_cql(key_to_cql(k)), k);
        }
    }

    #[test]
    fn key_buckets_cover_ranges() {
        assert_eq!(key_bucket(0), 0);
        assert_eq!(key_bucket(65_535), 0);
        assert_eq!(key_bucket(65_536), 1);
        assert_eq!(key_bucket(u64::MAX), (1 << 48) - 1);
        // a source position key: partition 3, offset 70,000
        assert_eq!(key_bucket(3 << 48 | 70_000), (3 << 32) + 1);
        assert_eq!(key_buckets(0, u64::MAX), Some(0..=(1 << 48) - 1));
        assert_eq!(key_buckets(70_000, 70_000), Some(1..=1));
        assert_eq!(key_buckets(5, 4), None);
    }

    #[test]
    fn time_buckets_are_hours_and_floor_negative_times() {
        let h = TIME_BUCKET_MICROS;
        assert_eq!(time_bucket(0), 0);
        assert_eq!(time_bucket(h - 1), 0);
        assert_eq!(time_bucket(h), 1);
        assert_eq!(time_bucket(-1), -1);
        assert_eq!(time_bucket(-h), -1);
        assert_eq!(time_bucket(-h - 1), -2);
        assert_eq!(time_bucket(i64::MIN), i64::MIN / h - 1);
        assert_eq!(time_bucket(i64::MAX), i64::MAX / h);
        // [from, to): `to` itself is not read
        assert_eq!(time_buckets(40, 90), Some(0..=0));
        assert_eq!(time_buckets(0, h), Some(0..=0));
        assert_eq!(time_buckets(0, h + 1), Some(0..=1));
        assert_eq!(time_buckets(-1, 1), Some(-1..=0));
        assert_eq!(time_buckets(5, 5), None);
        assert_eq!(time_buckets(0, i64::MAX), Some(0..=(i64::MAX - 1) / h));
        assert_eq!(
            time_buckets(i64::MIN, i64::MIN + 1),
            Some(time_bucket(i64::MIN)..=time_bucket(i64::MIN))
        );
    }

    #[test]
    fn probes_read_dense_keys_by_range_and_sparse_ones_by_key() {
        let dense: Vec<u64> = (1_000..1_100).collect();
        assert_eq!(
            plan_probes(&dense),
            [Probe::Range {
                bucket: 0,
                from: 1_000,
                to: 1_099
            }]
        );
        // across a bucket boundary: one probe per bucket
        let across: Vec<u64> = (65_530..65_540).collect();
        assert_eq!(
            plan_probes(&across),
            [
                Probe::Range {
                    bucket: 0,
                    from: 65_530,
                    to: 65_535
                },
                Probe::Range {
                    bucket: 1,
                    from: 65_536,
                    to: 65_539
                }
            ]
        );
        // sparse keys: IN reads of at most KEYS_PER_PROBE
        let sparse: Vec<u64> = (0..250).map(|i| i * 200).collect();
        let probes = plan_probes(&sparse);
        let sizes: Vec<usize> = probes
            .iter()
            .map(|p| match p {
                Probe::Keys { keys, .. } => keys.len(),
                Probe::Range { .. } => panic!("{p:?}"),
            })
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), 250);
        assert!(sizes.iter().all(|n| *n <= KEYS_PER_PROBE), "{sizes:?}");
        assert_eq!(
            sizes, [50; 5],
            "250 sparse keys of one bucket: five reads of 50"
        );
        // a single key, and keys at the ends of the key space
        assert_eq!(
            plan_probes(&[7]),
            [Probe::Keys {
                bucket: 0,
                keys: vec![7]
            }]
        );
        assert_eq!(
            plan_probes(&[0, u64::MAX]),
            [
                Probe::Keys {
                    bucket: 0,
                    keys: vec![0]
                },
                Probe::Keys {
                    bucket: (1 << 48) - 1,
                    keys: vec![u64::MAX]
                }
            ]
        );
        assert_eq!(plan_probes(&[]), []);
    }

    #[test]
    fn splits_respect_rows_and_bytes() {
        assert_eq!(split(&[], 3, 100), Vec::<Range<usize>>::new());
        assert_eq!(split(&[1; 7], 3, 100), [0..3, 3..6, 6..7]);
        assert_eq!(split(&[40, 40, 40, 40], 10, 100), [0..2, 2..4]);
        // an item larger than the limit goes alone
        assert_eq!(split(&[10, 500, 10], 10, 100), [0..1, 1..2, 2..3]);
        assert_eq!(split(&[100, 1], 10, 100), [0..1, 1..2]);
    }

    #[test]
    fn batches_hold_one_partition_each() {
        // (partition, id); partitions interleaved
        let items: Vec<(u8, usize)> = (0..250).map(|i| ((i % 3) as u8, i)).collect();
        let out = batches(items, |(p, _)| *p, |_| 10);
        let mut seen = 0;
        for b in &out {
            assert!(!b.is_empty() && b.len() <= BATCH_ROWS);
            assert!(b.iter().all(|(p, _)| *p == b[0].0), "{b:?}");
            assert!(b.windows(2).all(|w| w[0].1 < w[1].1), "original order");
            seen += b.len();
        }
        assert_eq!(seen, 250);
        assert_eq!(out.len(), 3, "84, 83 and 83 items: one batch per partition");
        assert_eq!(
            out.iter().map(|b| b[0].0).collect::<Vec<_>>(),
            [0, 1, 2],
            "partitions in order"
        );
        // big items: bytes decide
        let big: Vec<(u8, usize)> = (0..10).map(|i| (0, i)).collect();
        let out = batches(big, |(p, _)| *p, |_| BATCH_BYTES / 3);
        assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3, 1]);
    }

    #[test]
    fn parts_of_a_changeset() {
        assert_eq!(parts(0), 0);
        assert_eq!(parts(1), 1);
        assert_eq!(parts(ENTRIES_PER_PART), 1);
        assert_eq!(parts(ENTRIES_PER_PART + 1), 2);
        assert_eq!(part_of(0), 0);
        assert_eq!(part_of(ENTRIES_PER_PART - 1), 0);
        assert_eq!(part_of(ENTRIES_PER_PART), 1);
        assert_eq!(parts(50_000), 10);
    }
}
