//! The on-disk record frame of the embedded log.
//!
//! ```text
//! magic  u32  "FWL1"            \
//! len    u32  length of body     } header, little endian
//! crc    u32  CRC-32C of body   /
//! body:  offset i64, timestamp_ms i64, key_len i32 (-1: no key), key, value
//! ```
//! Every record carries its own offset, so a reader can check that offsets follow each
//! other and can find the next intact record after a damaged one.

use std::fmt;

pub(crate) const MAGIC: [u8; 4] = *b"FWL1";
pub(crate) const HEADER_LEN: usize = 12;
const BODY_FIXED: usize = 8 + 8 + 4;

/// The largest body a frame may have; larger lengths mean the header is damaged.
pub(crate) const MAX_BODY: usize = 64 * 1024 * 1024;

/// A decoded record.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub(crate) offset: i64,
    pub(crate) timestamp_ms: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: &'a [u8],
}

impl fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("offset", &self.offset)
            .field("value_len", &self.value.len())
            .finish_non_exhaustive()
    }
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer bytes than the frame says it has: the end of a write that did not finish.
    Incomplete,
    /// The bytes are there but wrong.
    Invalid(String),
}

/// Size on disk of a frame with this key and value.
pub(crate) fn encoded_len(key: Option<&[u8]>, value: &[u8]) -> usize {
    HEADER_LEN + BODY_FIXED + key.map_or(0, <[u8]>::len) + value.len()
}

/// Appends one frame to `buf`.
pub(crate) fn encode(
    buf: &mut Vec<u8>,
    offset: i64,
    timestamp_ms: i64,
    key: Option<&[u8]>,
    value: &[u8],
) {
    let body_len = BODY_FIXED + key.map_or(0, <[u8]>::len) + value.len();
    let start = buf.len();
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    let body_start = buf.len();
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&timestamp_ms.to_le_bytes());
    match key {
        Some(k) => {
            buf.extend_from_slice(&i32::try_from(k.len()).unwrap_or(i32::MAX).to_le_bytes());
            buf.extend_from_slice(k);
        }
        None => buf.extend_from_slice(&(-1i32).to_le_bytes()),
    }
    buf.extend_from_slice(value);
    let crc = crc32c::crc32c(&buf[body_start..]);
    buf[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_le_bytes(a)
}

/// Decodes the frame at the start of `buf`; returns it and its length on disk.
pub(crate) fn decode(buf: &[u8]) -> Result<(Frame<'_>, usize), FrameError> {
    if buf.len() < HEADER_LEN {
        return Err(FrameError::Incomplete);
    }
    if buf[..4] != MAGIC {
        return Err(FrameError::Invalid("bad record marker".into()));
    }
    let body_len = le_u32(&buf[4..8]) as usize;
    if !(BODY_FIXED..=MAX_BODY).contains(&body_len) {
        return Err(FrameError::Invalid(format!(
            "impossible record length {body_len}"
        )));
    }
    let total = HEADER_LEN + body_len;
    if buf.len() < total {
        return Err(FrameError::Incomplete);
    }
    let body = &buf[HEADER_LEN..total];
    if crc32c::crc32c(body) != le_u32(&buf[8..12]) {
        return Err(FrameError::Invalid("checksum mismatch".into()));
    }
    let offset = le_i64(&body[0..8]);
    let timestamp_ms = le_i64(&body[8..16]);
    let key_len = i32::from_le_bytes([body[16], body[17], body[18], body[19]]);
    let rest = &body[BODY_FIXED..];
    let (key, value) = if key_len < 0 {
        (None, rest)
    } else {
        let k = usize::try_from(key_len).unwrap_or(usize::MAX);
        if k > rest.len() {
            return Err(FrameError::Invalid(format!(
                "key length {k} exceeds the record"
            )));
        }
        (Some(&rest[..k]), &rest[k..])
    };
    Ok((
        Frame {
            offset,
            timestamp_ms,
            key,
            value,
        },
        total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(offset in 0i64..i64::MAX, ts in any::<i64>(),
                       key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
                       value in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = Vec::new();
            encode(&mut buf, offset, ts, key.as_deref(), &value);
            prop_assert_eq!(buf.len(), encoded_len(key.as_deref(), &value));
            let (f, n) = decode(&buf).unwrap();
            prop_assert_eq!(n, buf.len());
            prop_assert_eq!(f.offset, offset);
            prop_assert_eq!(f.timestamp_ms, ts);
            prop_assert_eq!(f.key, key.as_deref());
            prop_assert_eq!(f.value, &value[..]);
            // every strict prefix is incomplete, never a panic or a wrong frame
            for cut in [0, 1, HEADER_LEN - 1, HEADER_LEN, buf.len() - 1] {
                prop_assert_eq!(decode(&buf[..cut]).unwrap_err(), FrameError::Incomplete);
            }
        }

        #[test]
        fn any_flipped_bit_is_detected(value in proptest::collection::vec(any::<u8>(), 1..256),
                                       bit in any::<proptest::sample::Index>()) {
            let mut buf = Vec::new();
            encode(&mut buf, 7, 1, Some(b"k"), &value);
            let i = bit.index(buf.len() * 8);
            buf[i / 8] ^= 1 << (i % 8);
            prop_assert!(decode(&buf).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}
