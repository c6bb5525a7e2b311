//! Why a sample is refused: a stable code (the `reason` of a [`crate::RejectedSample`] and the
//! `reason` label of `flywheel_dead_letters_total`) plus a human-readable detail.

use std::{fmt, str::FromStr};

/// The reason code of a rejected sample. The set is closed so that metric labels stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Neither Avro single-object encoded nor a JSON object.
    NotAvroOrJson,
    /// Decodes, but breaks a rule of the schema (missing or unknown field, bad value).
    SchemaViolation,
    /// The label is present but not a string.
    LabelType,
    /// `event_time` missing, not a string, or not RFC 3339.
    BadEventTime,
    /// The payload exceeds the ingest limit.
    PayloadTooLarge,
    /// The dataset is not known to the tenant.
    UnknownDataset,
    /// The message names another tenant than its topic or token.
    TenantMismatch,
    /// A training-set event the trainer cannot train on: a bad sample under
    /// `on_bad_sample = "fail"`, too many skipped, an unknown pipeline or training set.
    Untrainable,
}

impl RejectReason {
    /// Every reason, in a stable order.
    pub const ALL: [RejectReason; 8] = [
        RejectReason::NotAvroOrJson,
        RejectReason::SchemaViolation,
        RejectReason::LabelType,
        RejectReason::BadEventTime,
        RejectReason::PayloadTooLarge,
        RejectReason::UnknownDataset,
        RejectReason::TenantMismatch,
        RejectReason::Untrainable,
    ];

    /// The code, e.g. `schema_violation`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::NotAvroOrJson => "not_avro_or_json",
            RejectReason::SchemaViolation => "schema_violation",
            RejectReason::LabelType => "label_type",
            RejectReason::BadEventTime => "bad_event_time",
            RejectReason::PayloadTooLarge => "payload_too_large",
            RejectReason::UnknownDataset => "unknown_dataset",
            RejectReason::TenantMismatch => "tenant_mismatch",
            RejectReason::Untrainable => "untrainable",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a reject reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reject reason `{0}`")]
pub struct UnknownRejectReason(pub String);

impl FromStr for RejectReason {
    type Err = UnknownRejectReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RejectReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRejectReason(s.chars().take(64).collect()))
    }
}

/// A refused sample: a reason code and what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct SampleError {
    pub reason: RejectReason,
    pub detail: String,
}

impl SampleError {
    /// An error with this reason and detail.
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    pub(crate) fn schema(detail: impl Into<String>) -> Self {
        Self::new(RejectReason::SchemaViolation, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_parse_back() {
        for r in RejectReason::ALL {
            assert_eq!(r.as_str().parse::<RejectReason>(), Ok(r));
            assert_eq!(r.to_string(), r.as_str());
        }
        let mut codes: Vec<_> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), RejectReason::ALL.len());
        assert!("nope".parse::<RejectReason>().is_err());
    }

    #[test]
    fn display_is_code_then_detail() {
        let e = SampleError::schema("features[2] is not a finite number");
        assert_eq!(
            e.to_string(),
            "schema_violation: features[2] is not a finite number"
        );
    }
}
