//! What the API and the CLI show of a training set: its record and its footer, without
//! the footer's tables.

use flywheel_store::TrainsetRecord;
use serde::{Deserialize, Serialize};

use crate::manifest::{Footer, RestrictedPart};
use crate::query::Query;

/// A label and its samples; `None` for the unlabelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCount {
    /// The label.
    pub label: Option<String>,
    /// Samples with it.
    pub samples: u64,
}

/// A training set, as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The version.
    pub version: String,
    /// The dataset.
    pub dataset: String,
    /// The pinned query.
    pub query: Query,
    /// Stored samples.
    pub samples: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Label histogram, by label, the unlabelled last.
    pub labels: Vec<LabelCount>,
    /// Earliest event time.
    pub first_event_time: Option<i64>,
    /// Latest event time.
    pub last_event_time: Option<i64>,
    /// Shards of stored samples (numbered from 0).
    pub stored_shards: usize,
    /// Samples per stored shard.
    pub shard_samples: Vec<u64>,
    /// Query changesets whose rows are read from their source, one shard each after the
    /// stored ones.
    pub restricted: Vec<RestrictedPart>,
    /// Where the manifest is.
    pub manifest_uri: String,
    /// When it was prepared.
    pub created_at: i64,
    /// Whether the request that answered this prepared it (`false`: it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
}

impl Summary {
    /// The summary of a recorded training set and its footer.
    pub fn new(record: &TrainsetRecord, footer: &Footer, created: Option<bool>) -> Self {
        Self {
            version: record.version.clone(),
            dataset: record.dataset.clone(),
            query: footer.query.clone(),
            samples: footer.samples,
            bytes: footer.bytes,
            labels: footer
                .label_histogram()
                .into_iter()
                .map(|(label, samples)| LabelCount {
                    label: label.map(str::to_owned),
                    samples,
                })
                .collect(),
            first_event_time: footer.first_event_time,
            last_event_time: footer.last_event_time,
            stored_shards: footer.shards.len(),
            shard_samples: footer.shards.iter().map(|s| s.samples).collect(),
            restricted: footer.restricted.clone(),
            manifest_uri: record.manifest_uri.clone(),
            created_at: record.created_at,
            created,
        }
    }

    /// Shards in all.
    pub fn shard_count(&self) -> usize {
        self.stored_shards + self.restricted.len()
    }
}
