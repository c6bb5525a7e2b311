//! The stored form of a sample: the bytes ingest packs into a payload segment for each
//! sample, and what the training-set and trainer paths read back.
//!
//! Labels and event times are not in it: they live in the sample index, where a relabel
//! changes them without rewriting any segment. The layout (version 1, little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version, `1` |
//! | 1 | content: `0` none, `1` inline payload, `2` blob URI |
//! | 4 | number of features `n` (u32) |
//! | 8 × n | features (f64) |
//! | rest | the payload bytes, or the blob URI (UTF-8), or nothing |
//!
//! A reader takes the payload as a slice of the segment it read: no copy, no parse.

/// The format version this build writes.
pub const BODY_VERSION: u8 = 1;

const HEADER: usize = 6;

/// What a stored sample carries besides its features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyContent<'a> {
    /// Features only.
    None,
    /// The sample's inline payload (e.g. an image).
    Payload(&'a [u8]),
    /// The URI of an object the producer had already stored.
    Blob(&'a str),
}

/// A stored sample, borrowed from the bytes it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Body<'a> {
    /// Numeric features.
    pub features: Vec<f64>,
    /// Payload, blob reference or nothing.
    pub content: BodyContent<'a>,
}

/// Why bytes are not a stored sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Shorter than its header or its features say.
    #[error("stored sample is truncated: {len} bytes, at least {needed} needed")]
    Truncated {
        /// Bytes available.
        len: usize,
        /// Bytes the header implies.
        needed: usize,
    },
    /// Written by a newer flywheel.
    #[error("stored sample has format version {0}, this build reads version {BODY_VERSION}")]
    Version(u8),
    /// An unknown content tag.
    #[error("stored sample has unknown content tag {0}")]
    Content(u8),
    /// A blob URI that is not UTF-8.
    #[error("stored sample's blob URI is not UTF-8")]
    BlobUri,
}

/// The length [`write_body`] appends for these parts.
pub fn body_len(features: &[f64], content: BodyContent<'_>) -> usize {
    HEADER
        + 8 * features.len()
        + match content {
            BodyContent::None => 0,
            BodyContent::Payload(p) => p.len(),
            BodyContent::Blob(uri) => uri.len(),
        }
}

/// Appends a stored sample to `out` (a segment being built); returns its length.
///
/// # Panics
/// If there are more than `u32::MAX` features (a sample that large is refused long before).
pub fn write_body(out: &mut Vec<u8>, features: &[f64], content: BodyContent<'_>) -> usize {
    let len = body_len(features, content);
    out.reserve(len);
    let (tag, rest): (u8, &[u8]) = match content {
        BodyContent::None => (0, &[]),
        BodyContent::Payload(p) => (1, p),
        BodyContent::Blob(uri) => (2, uri.as_bytes()),
    };
    out.push(BODY_VERSION);
    out.push(tag);
    let n = u32::try_from(features.len()).expect("fewer than 2^32 features");
    out.extend_from_slice(&n.to_le_bytes());
    for f in features {
        out.extend_from_slice(&f.to_le_bytes());
    }
    out.extend_from_slice(rest);
    len
}

/// The features of a stored sample, as stored: read without copying them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFeatures<'a>(&'a [u8]);

impl<'a> RawFeatures<'a> {
    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len() / 8
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Their values, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = f64> + 'a {
        self.0
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8 bytes")))
    }
}

/// A stored sample, borrowed from the bytes it was read from, its features not decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyView<'a> {
    /// Numeric features.
    pub features: RawFeatures<'a>,
    /// Payload, blob reference or nothing.
    pub content: BodyContent<'a>,
}

/// Reads a stored sample without copying its features (a hot path's [`read_body`]).
pub fn read_body_view(bytes: &[u8]) -> Result<BodyView<'_>, BodyError> {
    let truncated = |needed| BodyError::Truncated {
        len: bytes.len(),
        needed,
    };
    let header = bytes.get(..HEADER).ok_or(truncated(HEADER))?;
    if header[0] != BODY_VERSION {
        return Err(BodyError::Version(header[0]));
    }
    let n = u32::from_le_bytes([header[2], header[3], header[4], header[5]]) as usize;
    let end = n
        .checked_mul(8)
        .and_then(|b| b.checked_add(HEADER))
        .ok_or(truncated(usize::MAX))?;
    let raw = bytes.get(HEADER..end).ok_or(truncated(end))?;
    let rest = &bytes[end..];
    let content = match header[1] {
        0 => BodyContent::None,
        1 => BodyContent::Payload(rest),
        2 => BodyContent::Blob(std::str::from_utf8(rest).map_err(|_| BodyError::BlobUri)?),
        tag => return Err(BodyError::Content(tag)),
    };
    Ok(BodyView {
        features: RawFeatures(raw),
        content,
    })
}

/// Reads a stored sample.
pub fn read_body(bytes: &[u8]) -> Result<Body<'_>, BodyError> {
    let view = read_body_view(bytes)?;
    Ok(Body {
        features: view.features.iter().collect(),
        content: view.content,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn round_trips(
            features in proptest::collection::vec(any::<f64>(), 0..20),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            which in 0u8..3,
            uri in "[a-z]{1,5}://[a-z0-9/._-]{0,40}",
            prefix in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let content = match which {
                0 => BodyContent::None,
                1 => BodyContent::Payload(&payload),
                _ => BodyContent::Blob(&uri),
            };
            let mut segment = prefix.clone();
            let len = write_body(&mut segment, &features, content);
            prop_assert_eq!(len, body_len(&features, content));
            prop_assert_eq!(segment.len(), prefix.len() + len);
            let body = read_body(&segment[prefix.len()..]).unwrap();
            let view = read_body_view(&segment[prefix.len()..]).unwrap();
            prop_assert_eq!(view.content, content);
            prop_assert_eq!(view.features.len(), features.len());
            prop_assert_eq!(body.content, content);
            let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&body.features), bits(&features));
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read_body(&bytes);
        }
    }

    #[test]
    fn damaged_bodies_are_named() {
        let mut ok = Vec::new();
        write_body(&mut ok, &[1.0, 2.0], BodyContent::Payload(b"img"));
        assert_eq!(
            read_body(&ok[..10]),
            Err(BodyError::Truncated {
                len: 10,
                needed: 22
            })
        );
        assert_eq!(
            read_body(&[]),
            Err(BodyError::Truncated { len: 0, needed: 6 })
        );
        let mut newer = ok.clone();
        newer[0] = 2;
        assert_eq!(read_body(&newer), Err(BodyError::Version(2)));
        let mut tag = ok.clone();
        tag[1] = 9;
        assert_eq!(read_body(&tag), Err(BodyError::Content(9)));
        let mut blob = Vec::new();
        write_body(&mut blob, &[], BodyContent::Blob("s3://b/k"));
        let last = blob.len() - 1;
        blob[last] = 0xff;
        assert_eq!(read_body(&blob), Err(BodyError::BlobUri));
        // a feature count that overflows is truncation, not a panic
        let huge = [1, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(read_body(&huge), Err(BodyError::Truncated { .. })));
    }
}
