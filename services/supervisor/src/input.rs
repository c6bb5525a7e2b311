//! Reading what a changeset added, as the policies see it.

use std::collections::HashMap;
use std::sync::Arc;

use flywheel_schemas::{ChangesetKind, read_body};
use flywheel_store::{ChangesetRecord, TenantStore};
use flywheel_trainset::own_object;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;

use crate::SupervisorError;
use crate::runner::Input;

/// Segment objects read at once.
const PARALLEL_READS: usize = 4;

/// The samples changeset `changeset` added, by event time then key; with their features
/// if `features` (read from the payload segments: only the tenant's own objects). Other
/// kinds of changesets add no samples: an empty input.
///
/// A sample whose stored form does not parse is given no features, with a warning, so
/// that one damaged record does not stop the pipeline; a segment that cannot be read is
/// an error (the changeset is tried again later).
pub async fn read_input(
    store: &dyn TenantStore,
    blobs: &Arc<dyn ObjectStore>,
    changeset: &ChangesetRecord,
    features: bool,
) -> Result<Input, SupervisorError> {
    if changeset.kind != ChangesetKind::Add {
        return Ok(Input::default());
    }
    let block = store.row_block(&changeset.dataset, changeset.id).await?;
    let mut order: Vec<usize> = (0..block.len()).collect();
    order.sort_unstable_by_key(|&i| (block.event_times[i], block.keys[i]));

    let mut stored: HashMap<usize, Vec<f64>> = HashMap::new();
    if features {
        let tenant = store.tenant().as_str();
        let mut by_object: HashMap<u32, Vec<usize>> = HashMap::new();
        for i in 0..block.len() {
            if block.ranges[i].is_some() {
                by_object.entry(block.uri_ids[i]).or_default().push(i);
            }
        }
        let reads = by_object.into_iter().filter_map(|(uri, rows)| {
            let name = &block.uris[uri as usize];
            let path = own_object(tenant, name)?;
            let ranges: Vec<std::ops::Range<u64>> = (rows.iter())
                .map(|&i| {
                    let (offset, len) = block.ranges[i].expect("rows with ranges");
                    offset..offset + len
                })
                .collect();
            Some(async move {
                let bytes = blobs.get_ranges(&path, &ranges).await.map_err(|source| {
                    SupervisorError::Blobs {
                        what: format!("reading segment {name}"),
                        source,
                    }
                })?;
                Ok::<_, SupervisorError>((name, rows, bytes))
            })
        });
        let read: Vec<_> = futures::stream::iter(reads)
            .buffer_unordered(PARALLEL_READS)
            .try_collect()
            .await?;
        for (name, rows, bytes) in read {
            for (i, b) in rows.into_iter().zip(bytes) {
                match read_body(&b) {
                    Ok(body) => {
                        stored.insert(i, body.features);
                    }
                    Err(e) => tracing::warn!(
                        dataset = %changeset.dataset,
                        changeset = changeset.id,
                        key = block.keys[i],
                        segment = %name,
                        "a stored sample does not parse ({e}): the triggers see it without features"
                    ),
                }
            }
        }
    }

    let mut input = Input {
        label_names: block.labels.clone(),
        ..Input::default()
    };
    for i in order {
        input.keys.push(block.keys[i]);
        input.labels.push(block.label_ids[i]);
        input.event_times.push(block.event_times[i]);
        if let Some(f) = stored.get(&i) {
            let start = input.features.len() as u32;
            input.features.extend_from_slice(f);
            input.spans.push((start, f.len() as u32));
        } else {
            input.spans.push((input.features.len() as u32, 0));
        }
    }
    Ok(input)
}
