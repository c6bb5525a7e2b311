//! WebDataset-style tar shards of a training set.
//!
//! A shard is a POSIX tar archive. Each sample is two or three members sharing a base name
//! (WebDataset groups members by the part of the name before the first dot):
//!
//! - `{base}.json`: `{"key", "changeset", "label", "event_time", "weight", "features"}`,
//!   plus `"blob"` for a sample whose payload is an object outside this tenant's part of
//!   the store (its URI; the bytes are not fetched);
//! - `{base}.bin`: the sample's payload, if it has one.
//!
//! The base of a stored sample is its key as 16 hex digits. Members carry no times or
//! owners, so a shard's bytes depend only on the training set.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use flywheel_schemas::{BodyContent, read_body};
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _};
use serde_json::json;

use crate::TrainsetError;
use crate::manifest::{Entry, Footer, RestrictedPart, read_chunk};
use crate::query::Query;
use flywheel_sources::{RestrictedRow, SourceError};

/// Samples whose bytes are fetched together.
const BATCH: usize = 512;
/// Batches fetched ahead of the one being sent.
const AHEAD: usize = 2;

/// The bytes of a tar member: header, data, padding.
pub fn tar_member(name: &str, data: &[u8], out: &mut Vec<u8>) {
    let mut header = tar::Header::new_ustar();
    header
        .set_path(name)
        .expect("member names are short and plain");
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.resize(out.len() + pad, 0);
}

/// The end of a tar archive: two zero blocks.
pub fn tar_end() -> Bytes {
    Bytes::from(vec![0u8; 1024])
}

/// The object a URI names in flywheel's blob store, if it is this tenant's: a path
/// without a scheme under `{tenant}/`. Anything else is not read on the tenant's behalf.
pub fn own_object(tenant: &str, uri: &str) -> Option<Path> {
    if uri.contains("://") || !uri.starts_with(&format!("{tenant}/")) {
        return None;
    }
    Path::parse(uri).ok()
}

/// Streams stored shard `n` of a training set: reads its entries from the manifest, then
/// the samples' stored forms, a batch at a time with reads ahead, grouped by object.
pub async fn stored_shard(
    blobs: Arc<dyn ObjectStore>,
    tenant: String,
    manifest: &str,
    footer: Arc<Footer>,
    n: usize,
) -> Result<impl Stream<Item = Result<Bytes, TrainsetError>> + Send + 'static, TrainsetError> {
    let span = footer.shards.get(n).ok_or_else(|| {
        TrainsetError::NotFound(format!(
            "shard {n} of training set {} (it has {})",
            footer.version,
            footer.shard_count()
        ))
    })?;
    let what = format!("manifest {manifest}");
    let chunk = blobs
        .get_range(
            &Path::from(manifest),
            span.offset..span.offset + span.length,
        )
        .await
        .map_err(|e| TrainsetError::blobs(format!("reading {what}"), e))?;
    let entries = read_chunk(&footer, n, &chunk, &what)?;
    let batches: Vec<Vec<Entry>> = entries.chunks(BATCH).map(<[Entry]>::to_vec).collect();
    let body = futures::stream::iter(batches)
        .map(move |batch| encode_batch(blobs.clone(), tenant.clone(), footer.clone(), batch))
        .buffered(AHEAD);
    Ok(body.chain(futures::stream::once(async { Ok(tar_end()) })))
}

async fn encode_batch(
    blobs: Arc<dyn ObjectStore>,
    tenant: String,
    footer: Arc<Footer>,
    batch: Vec<Entry>,
) -> Result<Bytes, TrainsetError> {
    // the byte ranges each segment is read for, in entry order; whole objects once each
    let mut ranges: HashMap<u32, Vec<Range<u64>>> = HashMap::new();
    let mut whole: Vec<u32> = Vec::new();
    for e in &batch {
        match e.range {
            Some((offset, length)) => ranges
                .entry(e.uri)
                .or_default()
                .push(offset..offset + length),
            None => whole.push(e.uri),
        }
    }
    whole.sort_unstable();
    whole.dedup();
    let read = |uri: u32, ranges: Option<Vec<Range<u64>>>| {
        let blobs = blobs.clone();
        let name = footer.uris[uri as usize].clone();
        let tenant = tenant.clone();
        async move {
            let Some(path) = own_object(&tenant, &name) else {
                return Ok((uri, None));
            };
            let bytes = match ranges {
                Some(ranges) => blobs.get_ranges(&path, &ranges).await?,
                None => vec![blobs.get(&path).await?.bytes().await?],
            };
            Ok::<_, object_store::Error>((uri, Some(bytes)))
        }
    };
    let reads: Vec<_> = (ranges.into_iter())
        .map(|(uri, r)| read(uri, Some(r)))
        .chain(whole.into_iter().map(|uri| read(uri, None)))
        .collect();
    let results: Vec<(u32, Option<Vec<Bytes>>)> = futures::stream::iter(reads)
        .buffer_unordered(4)
        .try_collect()
        .await
        .map_err(|e| TrainsetError::blobs("reading the samples of a shard", e))?;
    let mut segments: HashMap<u32, std::vec::IntoIter<Bytes>> = HashMap::new();
    let mut objects: HashMap<u32, Bytes> = HashMap::new();
    for (uri, bytes) in results {
        let Some(bytes) = bytes else { continue };
        if footer_uri_is_segment(&batch, uri) {
            segments.insert(uri, bytes.into_iter());
        } else if let Some(b) = bytes.into_iter().next() {
            objects.insert(uri, b);
        }
    }

    let mut out = Vec::new();
    for e in &batch {
        let uri = &footer.uris[e.uri as usize];
        let stored = match e.range {
            Some(_) => segments.get_mut(&e.uri).and_then(Iterator::next),
            None => objects.get(&e.uri).cloned(),
        };
        let label = e.label.map(|l| footer.labels[l as usize].as_str());
        let mut meta = json!({
            "key": e.key,
            "changeset": e.changeset,
            "label": label,
            "event_time": flywheel_schemas::format_rfc3339(e.event_time)
                .unwrap_or_else(|_| e.event_time.to_string()),
            "weight": e.weight,
        });
        let mut payload: Option<Bytes> = None;
        match (e.range, stored) {
            // a segment range holds the stored form: features and payload or blob URI
            (Some(_), Some(bytes)) => {
                let body = read_body(&bytes).map_err(|err| {
                    TrainsetError::corrupt(format!("sample {} in {uri}", e.key), err.to_string())
                })?;
                meta["features"] = json!(body.features);
                match body.content {
                    BodyContent::None => {}
                    BodyContent::Payload(p) => payload = Some(bytes.slice_ref(p)),
                    BodyContent::Blob(blob) => match own_object(&tenant, blob) {
                        Some(path) => {
                            let got = blobs.get(&path).await.map_err(|err| {
                                TrainsetError::blobs(format!("reading blob {blob}"), err)
                            })?;
                            payload = Some(got.bytes().await.map_err(|err| {
                                TrainsetError::blobs(format!("reading blob {blob}"), err)
                            })?);
                        }
                        None => meta["blob"] = json!(blob),
                    },
                }
            }
            (Some(_), None) => {
                return Err(TrainsetError::corrupt(
                    format!("sample {}", e.key),
                    format!("its segment {uri} is not in this tenant's part of the store"),
                ));
            }
            // a whole object: the producer's blob
            (None, Some(bytes)) => {
                meta["features"] = json!([]);
                payload = Some(bytes);
            }
            (None, None) => {
                meta["features"] = json!([]);
                meta["blob"] = json!(uri);
            }
        }
        let base = format!("{:016x}", e.key);
        tar_member(
            &format!("{base}.json"),
            meta.to_string().as_bytes(),
            &mut out,
        );
        if let Some(p) = payload {
            tar_member(&format!("{base}.bin"), &p, &mut out);
        }
    }
    Ok(Bytes::from(out))
}

/// Whether the batch reads `uri` as a segment (by ranges) rather than whole.
fn footer_uri_is_segment(batch: &[Entry], uri: u32) -> bool {
    batch.iter().any(|e| e.uri == uri && e.range.is_some())
}

/// Rows of a restricted source read for one batch of a shard.
const RESTRICTED_BATCH: usize = 256;

/// Streams the shard of a restricted part: the rows its query returns from the source,
/// straight to the reader (nothing is kept), as tar members `q{changeset}-{row}.json` with
/// the row's label and features. The training set's label filter applies; its event-time
/// filters do not (the rows have no event time).
pub fn restricted_shard(
    part: &RestrictedPart,
    query: &Query,
    rows: impl Stream<Item = Result<RestrictedRow, SourceError>> + Send + 'static,
) -> impl Stream<Item = Result<Bytes, TrainsetError>> + Send + 'static {
    let changeset = part.changeset;
    let query = query.clone();
    let body = rows.ready_chunks(RESTRICTED_BATCH).map(move |batch| {
        let mut out = Vec::new();
        for row in batch {
            let row = row.map_err(TrainsetError::Source)?;
            if !query.wants_label(row.label.as_deref()) {
                continue;
            }
            let meta = json!({
                "changeset": changeset,
                "row": row.index,
                "label": row.label,
                "features": row.features,
                "weight": 1.0,
                "restricted": true,
            });
            tar_member(
                &format!("q{changeset:08}-{:012}.json", row.index),
                meta.to_string().as_bytes(),
                &mut out,
            );
        }
        Ok(Bytes::from(out))
    });
    body.chain(futures::stream::once(async { Ok(tar_end()) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tenants_own_objects_are_read() {
        assert_eq!(
            own_object("acme", "acme/sensors/segments/a.seg"),
            Some(Path::from("acme/sensors/segments/a.seg"))
        );
        for other in [
            "globex/sensors/segments/a.seg",
            "acmex/sensors/a",
            "file:///etc/passwd",
            "s3://bucket/acme/a",
            "acme/../globex/a",
            "/acme/a",
        ] {
            assert_eq!(own_object("acme", other), None, "{other}");
        }
    }
}
