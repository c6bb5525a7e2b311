//! Key lists: an explicit choice of samples and their weights (what a supervisor's
//! selection policy picked), stored content-addressed so that a query can name it by
//! digest. The same keys and weights are the same object, the same digest, and so the
//! same training-set version.
//!
//! Format (version 1), at `{tenant}/{dataset}/selections/{digest}.keys`, where `digest` is
//! the SHA-256 of the whole object in 64 lowercase hex digits:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `FWKEYS01` |
//! | varint | number of keys `n` |
//! | 1 | weights: `0` all 1.0 (none follow), `1` one f32 (LE) per key |
//! | varints | keys ascending, each the difference from the previous (the first from 0) |
//! | 4 × n | the weights, if flagged |
//! | 8 | `FWKEYEND` |

use std::sync::Arc;

use flywheel_schemas::varint::{Reader, put};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use sha2::{Digest, Sha256};

use crate::TrainsetError;

const MAGIC: &[u8; 8] = b"FWKEYS01";
const END: &[u8; 8] = b"FWKEYEND";

/// A stored key list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyList {
    /// The SHA-256 of its bytes, 64 lowercase hex digits.
    pub digest: String,
    /// Keys in it.
    pub count: u64,
}

/// Where a key list is, relative to the blob store's root.
pub fn key_list_path(tenant: &str, dataset: &str, digest: &str) -> String {
    format!("{tenant}/{dataset}/selections/{digest}.keys")
}

/// Whether text is a key list's digest (64 lowercase hex digits).
pub fn is_digest(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The bytes of a key list: `keys` need not be sorted; a repeated key, a weight that is
/// not finite and positive, or lengths that differ are refused.
pub fn encode_key_list(keys: &[u64], weights: &[f32]) -> Result<Vec<u8>, TrainsetError> {
    if keys.len() != weights.len() {
        return Err(TrainsetError::invalid(
            "selection.keys",
            format!("{} keys but {} weights", keys.len(), weights.len()),
        ));
    }
    if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
        return Err(TrainsetError::invalid(
            "selection.keys",
            format!("weight {w} is not a finite number above 0"),
        ));
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_unstable_by_key(|&i| keys[i]);
    if let Some(pair) = order.windows(2).find(|p| keys[p[0]] == keys[p[1]]) {
        return Err(TrainsetError::invalid(
            "selection.keys",
            format!("key {} is in the list twice", keys[pair[0]]),
        ));
    }
    let weighted = weights.iter().any(|&w| w != 1.0);
    let mut out = Vec::with_capacity(32 + keys.len() * if weighted { 8 } else { 4 });
    out.extend_from_slice(MAGIC);
    put(&mut out, keys.len() as u64);
    out.push(u8::from(weighted));
    let mut last = 0u64;
    for &i in &order {
        put(&mut out, keys[i] - last);
        last = keys[i];
    }
    if weighted {
        for &i in &order {
            out.extend_from_slice(&weights[i].to_le_bytes());
        }
    }
    out.extend_from_slice(END);
    Ok(out)
}

/// Parses a key list's bytes: its keys ascending and their weights. `what` names it in
/// errors.
pub fn decode_key_list(bytes: &[u8], what: &str) -> Result<(Vec<u64>, Vec<f32>), TrainsetError> {
    let corrupt = |reason: &str| TrainsetError::corrupt(what, reason);
    let body = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| corrupt("it is not a key list"))?
        .strip_suffix(END.as_slice())
        .ok_or_else(|| corrupt("its end is missing (cut short?)"))?;
    let mut r = Reader::new(body);
    let cut = || corrupt("it ends early");
    let n = r.varint().ok_or_else(cut)?;
    // every key takes at least a byte
    if n > body.len() as u64 {
        return Err(corrupt("it counts more keys than it holds"));
    }
    let weighted = match r.byte().ok_or_else(cut)? {
        0 => false,
        1 => true,
        f => return Err(TrainsetError::corrupt(what, format!("weight flag {f}"))),
    };
    let mut keys = Vec::with_capacity(n as usize);
    let mut last = 0u64;
    for i in 0..n {
        let d = r.varint().ok_or_else(cut)?;
        if i > 0 && d == 0 {
            return Err(corrupt("a key is repeated"));
        }
        last = last
            .checked_add(d)
            .ok_or_else(|| corrupt("a key is past the largest key"))?;
        keys.push(last);
    }
    let weights = if weighted {
        let mut w = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let v = r.f32().ok_or_else(cut)?;
            if !(v.is_finite() && v > 0.0) {
                return Err(TrainsetError::corrupt(
                    what,
                    format!("weight {v} is not a finite number above 0"),
                ));
            }
            w.push(v);
        }
        w
    } else {
        vec![1.0; keys.len()]
    };
    if !r.is_done() {
        return Err(corrupt("it has bytes after its weights"));
    }
    Ok((keys, weights))
}

fn digest_of(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Stores a key list (idempotent: the same keys and weights are the same object).
pub async fn put_key_list(
    blobs: &Arc<dyn ObjectStore>,
    tenant: &str,
    dataset: &str,
    keys: &[u64],
    weights: &[f32],
) -> Result<KeyList, TrainsetError> {
    flywheel_schemas::check_dataset_name(dataset)
        .map_err(|e| TrainsetError::invalid("dataset", e.detail))?;
    let bytes = encode_key_list(keys, weights)?;
    let digest = digest_of(&bytes);
    let path = key_list_path(tenant, dataset, &digest);
    blobs
        .put(&Path::from(path.as_str()), PutPayload::from(bytes))
        .await
        .map_err(|e| TrainsetError::blobs(format!("writing key list {path}"), e))?;
    Ok(KeyList {
        digest,
        count: keys.len() as u64,
    })
}

/// Reads a key list and checks it against its digest: its keys ascending and their
/// weights.
pub async fn read_key_list(
    blobs: &Arc<dyn ObjectStore>,
    tenant: &str,
    dataset: &str,
    digest: &str,
) -> Result<(Vec<u64>, Vec<f32>), TrainsetError> {
    if !is_digest(digest) {
        return Err(TrainsetError::invalid(
            "selection.list",
            format!("{digest:?} is not a key list's digest (64 lowercase hex digits)"),
        ));
    }
    let path = key_list_path(tenant, dataset, digest);
    let what = format!("key list {path}");
    let bytes = match blobs.get(&Path::from(path.as_str())).await {
        Ok(got) => got
            .bytes()
            .await
            .map_err(|e| TrainsetError::blobs(format!("reading {what}"), e))?,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(TrainsetError::NotFound(what));
        }
        Err(e) => return Err(TrainsetError::blobs(format!("reading {what}"), e)),
    };
    if digest_of(&bytes) != digest {
        return Err(TrainsetError::corrupt(
            what,
            "its bytes do not hash to its digest",
        ));
    }
    decode_key_list(&bytes, &what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bad_lists_are_refused() {
        assert!(encode_key_list(&[1, 2], &[1.0]).is_err());
        assert!(
            encode_key_list(&[1, 1], &[1.0, 1.0])
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        for w in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(encode_key_list(&[1], &[w]).is_err(), "{w}");
        }
        let bytes = encode_key_list(&[5, 3], &[1.0, 2.0]).unwrap();
        assert_eq!(
            decode_key_list(&bytes, "k").unwrap(),
            (vec![3, 5], vec![2.0, 1.0])
        );
        for len in 0..bytes.len() {
            assert!(decode_key_list(&bytes[..len], "k").is_err(), "cut at {len}");
        }
        let mut longer = bytes.clone();
        longer.insert(bytes.len() - 8, 0);
        assert!(decode_key_list(&longer, "k").is_err());
        assert!(!is_digest("../x"));
        assert!(!is_digest(&"A".repeat(64)));
        assert!(is_digest(&"a".repeat(64)));
    }

    proptest! {
        #[test]
        fn lists_round_trip_in_key_order(
            keys in proptest::collection::btree_set(any::<u64>(), 0..200),
            weighted in any::<bool>(),
        ) {
            let keys: Vec<u64> = keys.into_iter().rev().collect();
            let weights: Vec<f32> = (0..keys.len())
                .map(|i| if weighted { 0.5 + i as f32 } else { 1.0 })
                .collect();
            let bytes = encode_key_list(&keys, &weights).unwrap();
            let (k, w) = decode_key_list(&bytes, "k").unwrap();
            let mut want: Vec<(u64, f32)> = keys.iter().copied().zip(weights).collect();
            want.sort_by_key(|p| p.0);
            prop_assert_eq!(k, want.iter().map(|p| p.0).collect::<Vec<_>>());
            prop_assert_eq!(w, want.iter().map(|p| p.1).collect::<Vec<_>>());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut framed = MAGIC.to_vec();
            framed.extend(bytes);
            framed.extend_from_slice(END);
            let _ = decode_key_list(&framed, "k");
        }
    }
}
