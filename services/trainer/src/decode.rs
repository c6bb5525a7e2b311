//! Decoding a sample's stored form into the model's input: a feature vector, or an image
//! (PNG or JPEG, through the `image` crate) as channel planes of values in [0, 1].
//!
//! A sample that cannot be decoded is a [`BadSample`] with the reason; whether it fails
//! its training set or is skipped is the pipeline's `on_bad_sample`.

pub use flywheel_core::card::Shape;
use flywheel_schemas::{BodyContent, read_body_view};

/// Why a sample cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSample {
    /// Its key.
    pub key: u64,
    /// Why, in a few words.
    pub reason: String,
}

impl std::fmt::Display for BadSample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sample {}: {}", self.key, self.reason)
    }
}

/// What was read for a sample.
#[derive(Debug, Clone, Copy)]
pub enum Stored<'a> {
    /// Its stored form in a segment (`flywheel_schemas::write_body`), with the bytes of
    /// the blob it names if it names one.
    Body {
        /// The stored form.
        body: &'a [u8],
        /// The named blob's bytes.
        blob: Option<&'a [u8]>,
    },
    /// A whole object: the producer's blob, for a sample without features.
    Object(&'a [u8]),
}

/// Decodes a sample into `shape.len()` values; the reason if it cannot.
pub fn decode(shape: Shape, stored: Stored<'_>) -> Result<Vec<f32>, String> {
    let mut out = vec![0f32; shape.len()];
    decode_into(shape, stored, &mut out)?;
    Ok(out)
}

/// Decodes a sample into `out` (`shape.len()` values, the loader's batch buffer): no
/// allocation for a feature vector. The reason if it cannot; `out` is then unspecified.
pub fn decode_into(shape: Shape, stored: Stored<'_>, out: &mut [f32]) -> Result<(), String> {
    debug_assert_eq!(out.len(), shape.len());
    match shape {
        Shape::Features { width } => {
            let Stored::Body { body, .. } = stored else {
                return Err("it has no features (it is a blob of its own)".into());
            };
            let body = read_body_view(body).map_err(|e| format!("its stored form: {e}"))?;
            if body.features.len() != width as usize {
                return Err(format!(
                    "it has {} features, the model takes {width}",
                    body.features.len()
                ));
            }
            for (i, (o, v)) in out.iter_mut().zip(body.features.iter()).enumerate() {
                if !v.is_finite() {
                    return Err(format!("feature {i} is not a finite number"));
                }
                #[allow(clippy::cast_possible_truncation)]
                {
                    *o = v as f32;
                }
            }
            Ok(())
        }
        Shape::Image {
            width,
            height,
            channels,
        } => {
            let bytes = match stored {
                Stored::Object(bytes) => bytes,
                Stored::Body { body, blob } => {
                    let parsed =
                        read_body_view(body).map_err(|e| format!("its stored form: {e}"))?;
                    match (parsed.content, blob) {
                        (BodyContent::Payload(p), _) => p,
                        (BodyContent::Blob(_), Some(b)) => b,
                        (BodyContent::Blob(uri), None) => {
                            return Err(format!("its blob {uri} was not read"));
                        }
                        (BodyContent::None, _) => {
                            return Err("it has no image (no payload, no blob)".into());
                        }
                    }
                }
            };
            decode_image_into(bytes, width, height, channels, out)
        }
    }
}

/// The features a stored form holds, if it is one (to learn a feature width).
pub fn feature_count(body: &[u8]) -> Option<u32> {
    read_body_view(body)
        .ok()
        .and_then(|b| u32::try_from(b.features.len()).ok())
}

/// Decodes a PNG or JPEG image of exactly `width` x `height` into `channels` planes.
pub fn decode_image(
    bytes: &[u8],
    width: u32,
    height: u32,
    channels: u32,
) -> Result<Vec<f32>, String> {
    let mut out = vec![0f32; (width * height * channels) as usize];
    decode_image_into(bytes, width, height, channels, &mut out)?;
    Ok(out)
}

fn decode_image_into(
    bytes: &[u8],
    width: u32,
    height: u32,
    channels: u32,
    out: &mut [f32],
) -> Result<(), String> {
    let format = image::guess_format(bytes)
        .map_err(|_| "its payload is not an image (neither PNG nor JPEG)".to_owned())?;
    if !matches!(format, image::ImageFormat::Png | image::ImageFormat::Jpeg) {
        return Err(format!("its image is {format:?}; PNG and JPEG are read"));
    }
    let img = image::load_from_memory_with_format(bytes, format)
        .map_err(|e| format!("its image does not decode: {e}"))?;
    if img.width() != width || img.height() != height {
        return Err(format!(
            "its image is {}x{}, the model takes {width}x{height}",
            img.width(),
            img.height()
        ));
    }
    let plane = (width * height) as usize;
    if channels == 1 {
        for (o, p) in out.iter_mut().zip(img.to_luma8().as_raw()) {
            *o = f32::from(*p) / 255.0;
        }
    } else {
        for (i, px) in img.to_rgb8().as_raw().chunks_exact(3).enumerate() {
            for (c, v) in px.iter().enumerate() {
                out[c * plane + i] = f32::from(*v) / 255.0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flywheel_schemas::write_body;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::GrayImage::from_fn(w, h, |x, y| image::Luma([(x * 16 + y) as u8]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn features_decode_and_wrong_lengths_are_bad() {
        let mut body = Vec::new();
        write_body(&mut body, &[1.0, 2.5, -3.0], BodyContent::None);
        let shape = Shape::Features { width: 3 };
        let got = decode(
            shape,
            Stored::Body {
                body: &body,
                blob: None,
            },
        )
        .unwrap();
        assert_eq!(got, vec![1.0, 2.5, -3.0]);
        assert_eq!(feature_count(&body), Some(3));
        let e = decode(
            Shape::Features { width: 4 },
            Stored::Body {
                body: &body,
                blob: None,
            },
        )
        .unwrap_err();
        assert_eq!(e, "it has 3 features, the model takes 4");
        let e = decode(shape, Stored::Object(b"raw")).unwrap_err();
        assert!(e.contains("no features"), "{e}");
        let e = decode(
            shape,
            Stored::Body {
                body: &body[..3],
                blob: None,
            },
        )
        .unwrap_err();
        assert!(e.starts_with("its stored form"), "{e}");
    }

    #[test]
    fn images_decode_to_planes_and_bad_ones_say_why() {
        let bytes = png(4, 2);
        let shape = Shape::Image {
            width: 4,
            height: 2,
            channels: 1,
        };
        let got = decode(shape, Stored::Object(&bytes)).unwrap();
        assert_eq!(got.len(), 8);
        assert_eq!(got[1], 16.0 / 255.0); // x = 1, y = 0
        assert_eq!(got[4], 1.0 / 255.0); // x = 0, y = 1
        let rgb = decode(
            Shape::Image {
                width: 4,
                height: 2,
                channels: 3,
            },
            Stored::Object(&bytes),
        )
        .unwrap();
        assert_eq!(rgb.len(), 24);
        assert_eq!(rgb[1], rgb[8 + 1]); // grey: every plane the same

        // inline payloads and blobs
        let mut body = Vec::new();
        write_body(&mut body, &[], BodyContent::Payload(&bytes));
        assert_eq!(
            decode(
                shape,
                Stored::Body {
                    body: &body,
                    blob: None
                }
            )
            .unwrap(),
            got
        );
        let mut named = Vec::new();
        write_body(&mut named, &[], BodyContent::Blob("t/blobs/x.png"));
        assert_eq!(
            decode(
                shape,
                Stored::Body {
                    body: &named,
                    blob: Some(&bytes)
                }
            )
            .unwrap(),
            got
        );

        let cases: [(&[u8], &str); 3] = [
            (b"not an image at all", "not an image"),
            (&bytes[..bytes.len() / 2], "does not decode"),
            (&png(5, 2), "its image is 5x2, the model takes 4x2"),
        ];
        for (bytes, want) in cases {
            let e = decode(shape, Stored::Object(bytes)).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
        let mut none = Vec::new();
        write_body(&mut none, &[1.0], BodyContent::None);
        let e = decode(
            shape,
            Stored::Body {
                body: &none,
                blob: None,
            },
        )
        .unwrap_err();
        assert!(e.contains("no image"), "{e}");
    }
}
