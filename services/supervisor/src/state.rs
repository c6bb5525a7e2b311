//! What the supervisor keeps of a pipeline in the metadata store (JSON, written with
//! compare-and-set): which submission it follows, how far its triggers are emitted, where
//! its last checkpoint is, and the training set it is about to announce.

use flywheel_schemas::TrainingSet;
use serde::{Deserialize, Serialize};

/// Format of the stored state.
pub const STATE_FORMAT: u32 = 1;

/// A pipeline's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineState {
    /// [`STATE_FORMAT`].
    pub format: u32,
    /// The submission this state follows (its `submitted_at`).
    pub submitted_at: i64,
    /// Fingerprint of the policies (`runner::policies_fingerprint`).
    pub policies: String,
    /// Changesets up to this one were committed before the submission (the last one
    /// created at or before `submitted_at`): the policies observe them, but triggers on
    /// them are not emitted.
    pub live_from: i64,
    /// The last changeset whose triggers are all emitted.
    pub processed: i64,
    /// The id of the last trigger emitted (ids go 1, 2, ... per pipeline, across its
    /// submissions).
    pub emitted: u64,
    /// Ids of this submission's triggers are `base` + their ordinal.
    pub base: u64,
    /// Samples the selector tracked at the last checkpoint.
    #[serde(default)]
    pub tracked: u64,
    /// The newest checkpoint of the policies' state.
    pub checkpoint: Option<CheckpointRef>,
    /// A training set being announced: set before its event is published, cleared after.
    pub pending: Option<Pending>,
    /// The last trigger emitted.
    pub last: Option<LastTrigger>,
}

/// Where a checkpoint is and what it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRef {
    /// The last changeset it folded.
    pub changeset: i64,
    /// Its object, relative to the blob store's root.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// A training-set event about to be published, and where to look for it after a crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// The event.
    pub event: TrainingSet,
    /// When the changeset holding the sample that fired was committed (microseconds).
    pub caused_at: i64,
    /// The trainsets topic's partition it goes to.
    pub partition: i32,
    /// That partition's end offset before it was published: if it was, it is at or after.
    pub from_offset: i64,
}

/// The last trigger a pipeline emitted, for `flywheel pipeline show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastTrigger {
    /// Its id.
    pub trigger_id: i64,
    /// Its training-set version.
    pub version: String,
    /// Samples in it.
    pub sample_count: i64,
    /// Its changeset.
    pub changeset: i64,
    /// When it was emitted (microseconds).
    pub at: i64,
}

impl PipelineState {
    /// The state of a pipeline submitted at `submitted_at` that has emitted nothing yet
    /// and sees changesets after `live_from` live.
    pub fn new(submitted_at: i64, policies: String, live_from: i64) -> Self {
        Self {
            format: STATE_FORMAT,
            submitted_at,
            policies,
            live_from,
            processed: 0,
            emitted: 0,
            base: 0,
            tracked: 0,
            checkpoint: None,
            pending: None,
            last: None,
        }
    }

    /// Parses a stored state.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let state: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if state.format != STATE_FORMAT {
            return Err(format!(
                "format {} (this build reads {STATE_FORMAT})",
                state.format
            ));
        }
        Ok(state)
    }

    /// The stored bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a pipeline state serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_bad_ones_are_refused() {
        let mut s = PipelineState::new(5, "ab".into(), 3);
        s.pending = Some(Pending {
            event: TrainingSet {
                tenant: "acme".into(),
                pipeline: "p".into(),
                trigger_id: 2,
                dataset: "sensors".into(),
                version: "v".into(),
                head_changeset: 4,
                manifest_uri: "m".into(),
                sample_count: 10,
                trigger_reason: "drift".into(),
                created_at: 9,
            },
            caused_at: 8,
            partition: 1,
            from_offset: 17,
        });
        assert_eq!(PipelineState::parse(&s.to_bytes()), Ok(s.clone()));
        s.format = 2;
        assert!(
            PipelineState::parse(&s.to_bytes())
                .unwrap_err()
                .contains("format 2")
        );
        assert!(PipelineState::parse(b"{}").is_err());
        assert!(PipelineState::parse(b"\xff").is_err());
    }
}
