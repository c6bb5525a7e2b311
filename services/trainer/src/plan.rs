//! From a training set to the samples to load: the manifest's entries (every shard), split
//! by key into the part trained on and the part held out, each sample's label mapped to a
//! class of the model; and the samples that arrived after the set (the changesets after
//! its head), to evaluate on the data the model will meet.

use std::collections::HashMap;
use std::sync::Arc;

use flywheel_schemas::ChangesetKind;
use flywheel_store::{ChangesetRecord, SampleLocation, TenantStore, TrainsetRecord};
use flywheel_trainset::Footer;
use flywheel_trainset::manifest::read_chunk;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _};

use crate::TrainerError;
use crate::loader::Item;

/// A training set's samples, ready to load.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The manifest's footer.
    pub footer: Footer,
    /// Object URIs the items name.
    pub uris: Vec<String>,
    /// The samples trained on, in manifest order.
    pub train: Arc<[Item]>,
    /// The samples held out.
    pub holdout: Arc<[Item]>,
    /// Samples that arrived after the set.
    pub after: Arc<[Item]>,
}

/// The seed of the hash that holds keys out.
const HOLDOUT_SEED: u64 = 0x5eed_f1e1_d0a7_a5e7;

/// Whether a key is held out: a fixed share of keys, chosen by a hash of the key.
pub fn held_out(key: u64, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    let x = flywheel_core::selection::mix(HOLDOUT_SEED, key);
    (x >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - share
}

/// Maps label text to a class, or says why a sample has none.
#[derive(Debug, Clone)]
pub struct Classes {
    index: HashMap<String, i64>,
    no_label: Arc<str>,
}

impl Classes {
    /// The classes, in output order.
    pub fn new(labels: &[String]) -> Self {
        Self {
            index: (labels.iter().enumerate())
                .map(|(i, l)| (l.clone(), i as i64))
                .collect(),
            no_label: "it has no label".into(),
        }
    }

    /// The class of a label.
    pub fn class(&self, label: Option<&str>) -> Result<i64, Arc<str>> {
        match label {
            None => Err(self.no_label.clone()),
            Some(l) => {
                self.index.get(l).copied().ok_or_else(|| {
                    format!("its label {l:?} is not one of the model's classes").into()
                })
            }
        }
    }
}

/// Reads a training set's manifest: its footer and every stored entry.
pub async fn read_manifest(
    blobs: &Arc<dyn ObjectStore>,
    record: &TrainsetRecord,
) -> Result<(Footer, Vec<flywheel_trainset::Entry>), TrainerError> {
    let footer = flywheel_trainset::read_footer(blobs, record).await?;
    let path = Path::from(record.manifest_uri.as_str());
    let what = format!("manifest {}", record.manifest_uri);
    let mut entries = Vec::with_capacity(usize::try_from(footer.samples).unwrap_or(0));
    for (n, span) in footer.shards.iter().enumerate() {
        let chunk = blobs
            .get_range(&path, span.offset..span.offset + span.length)
            .await
            .map_err(|e| TrainerError::blobs(format!("reading {what}"), e))?;
        entries.extend(read_chunk(&footer, n, &chunk, &what)?);
    }
    Ok((footer, entries))
}

impl Plan {
    /// The plan of a training set: its entries split by `holdout`, labels mapped by
    /// `classes`.
    pub fn new(
        footer: Footer,
        entries: &[flywheel_trainset::Entry],
        classes: &Classes,
        holdout: f64,
    ) -> Self {
        let labels: Vec<Result<i64, Arc<str>>> = (footer.labels.iter())
            .map(|l| classes.class(Some(l)))
            .collect();
        let (mut train, mut held) = (Vec::new(), Vec::new());
        for e in entries {
            let item = Item {
                key: e.key,
                changeset: e.changeset,
                uri: e.uri,
                range: e.range,
                class: match e.label {
                    Some(l) => labels[l as usize].clone(),
                    None => classes.class(None),
                },
                weight: e.weight,
            };
            if held_out(e.key, holdout) {
                held.push(item);
            } else {
                train.push(item);
            }
        }
        Self {
            uris: footer.uris.clone(),
            footer,
            train: train.into(),
            holdout: held.into(),
            after: Arc::new([]),
        }
    }

    /// Adds, to evaluate on, up to `limit` samples of the `add` changesets after the
    /// set's head, oldest first (their current labels).
    pub async fn add_after(
        &mut self,
        store: &dyn TenantStore,
        record: &TrainsetRecord,
        classes: &Classes,
        limit: u64,
    ) -> Result<(), TrainerError> {
        if limit == 0 {
            return Ok(());
        }
        let changesets: Vec<ChangesetRecord> = store.changesets(&record.dataset).await?;
        let mut uri_index: HashMap<String, u32> = (self.uris.iter().enumerate())
            .map(|(i, u)| (u.clone(), i as u32))
            .collect();
        let later = || changesets.iter().filter(|c| c.id > record.head_changeset);
        // only a later edit (relabel, removal, revert) can make a row's label or presence
        // differ from what it arrived with; without one, each row need not be looked up
        let edited = later().any(|c| !matches!(c.kind, ChangesetKind::Add | ChangesetKind::Query));
        let mut after = Vec::new();
        'changesets: for c in later().filter(|c| c.kind == ChangesetKind::Add) {
            for row in store.rows_by_changeset(&record.dataset, c.id).await? {
                if after.len() as u64 >= limit {
                    break 'changesets;
                }
                // its current label: a later relabel counts
                let label = if edited {
                    match store.row(&record.dataset, row.key).await? {
                        Some(now) if now.changeset == row.changeset => now.label,
                        Some(_) | None => continue, // removed or replaced since
                    }
                } else {
                    row.label.clone()
                };
                let (uri, range) = match &row.location {
                    SampleLocation::Segment {
                        uri,
                        offset,
                        length,
                    } => (uri, Some((*offset, *length))),
                    SampleLocation::Blob { uri } => (uri, None),
                };
                let next = self.uris.len() as u32;
                let idx = *uri_index.entry(uri.clone()).or_insert_with(|| {
                    self.uris.push(uri.clone());
                    next
                });
                after.push(Item {
                    key: row.key,
                    changeset: row.changeset,
                    uri: idx,
                    range,
                    class: classes.class(label.as_deref()),
                    weight: 1.0,
                });
            }
        }
        self.after = after.into();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_out_share_is_about_what_is_asked_and_fixed_by_key() {
        let n = 100_000u64;
        for share in [0.0, 0.1, 0.5] {
            let held = (0..n).filter(|&k| held_out(k, share)).count() as f64 / n as f64;
            assert!((held - share).abs() < 0.01, "{share}: {held}");
        }
        assert_eq!(held_out(42, 0.3), held_out(42, 0.3));
        // a larger share holds out a superset
        assert!((0..n).all(|k| !held_out(k, 0.1) || held_out(k, 0.2)));
    }

    #[test]
    fn classes_say_why_a_sample_has_none() {
        let c = Classes::new(&["a".into(), "b".into()]);
        assert_eq!(c.class(Some("b")), Ok(1));
        assert_eq!(&*c.class(None).unwrap_err(), "it has no label");
        assert_eq!(
            &*c.class(Some("z")).unwrap_err(),
            "its label \"z\" is not one of the model's classes"
        );
    }
}
