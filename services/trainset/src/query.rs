//! Training-set queries: what a user asks for ([`QueryRequest`]), its pinned canonical form
//! ([`Query`]) and its version, a hash of that form.
//!
//! A query is pinned when it is prepared: a missing `as_of` becomes the dataset's head at
//! that moment, so the same request made later (after more changesets) is another query,
//! with another version, while a pinned query resolves to the same samples forever.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::TrainsetError;

/// Format of the canonical encoding; part of what is hashed, so a change of meaning
/// changes every version.
const QUERY_FORMAT: u32 = 1;

/// A training-set query as a user writes it (CLI flags, the HTTP body). Everything but the
/// dataset is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// The dataset.
    pub dataset: String,
    /// The changeset whose view is read; default: the head when prepared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<i64>,
    /// Only samples added by these changesets, e.g. `"1,3-5"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changesets: Option<String>,
    /// Only samples with one of these labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Only samples with an event time at or after this (microseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// Only samples with an event time before this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    /// Only the newest fraction by event time, in (0, 1]: 0.8 is the newest 80 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<f64>,
    /// Then a seeded selection among what is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
}

/// A selection among the query's samples: seeded draws (the same seed over the same
/// samples selects the same ones; a sample's chance does not depend on the order samples
/// are read in), or an explicit key list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum Selection {
    /// `count` samples drawn uniformly without replacement (all of them if fewer).
    Uniform {
        /// How many.
        count: u64,
        /// The seed.
        seed: u64,
    },
    /// Up to `per_label` samples of each label (unlabelled samples count as one label),
    /// each drawn uniformly.
    LabelBalanced {
        /// How many per label.
        per_label: u64,
        /// The seed.
        seed: u64,
    },
    /// The samples of a stored key list ([`crate::put_key_list`]), with its weights: what
    /// a supervisor's selection policy chose. Keys the view does not hold are left out.
    Keys {
        /// The list's digest (64 lowercase hex digits).
        list: String,
        /// Keys in the list.
        count: u64,
    },
}

/// An inclusive range of changeset ids.
pub type ChangesetRange = (i64, i64);

/// A pinned query in canonical form: labels sorted, changeset ranges merged, a percentage
/// of 1 dropped. Its JSON encoding ([`Query::canonical`]) is what the version hashes, so
/// two requests that mean the same thing get the same version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// The dataset.
    pub dataset: String,
    /// The changeset whose view is read.
    pub as_of: i64,
    /// Only samples added by changesets in these ranges (sorted, disjoint, not adjacent).
    pub changesets: Option<Vec<ChangesetRange>>,
    /// Only samples with one of these labels (sorted, distinct); empty: any.
    pub labels: Vec<String>,
    /// Event time at or after this.
    pub from: Option<i64>,
    /// Event time before this.
    pub to: Option<i64>,
    /// The newest fraction by event time, in (0, 1).
    pub percentage: Option<f64>,
    /// The seeded selection.
    pub selection: Option<Selection>,
}

/// A training set's version: 32 hex digits of the SHA-256 of its query's canonical
/// encoding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(String);

impl Version {
    /// Length of a version in hex digits.
    pub const LEN: usize = 32;

    /// Parses a version as a user typed it.
    pub fn parse(text: &str) -> Result<Self, TrainsetError> {
        let ok = text.len() == Self::LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(TrainsetError::invalid(
                "version",
                format!(
                    "{text:?} is not a training-set version ({} lowercase hex digits)",
                    Self::LEN
                ),
            ))
        }
    }

    /// The version's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Query {
    /// Checks a request and pins it to `head`, the dataset's head changeset now.
    pub fn pin(request: &QueryRequest, head: i64) -> Result<Self, TrainsetError> {
        flywheel_schemas::check_dataset_name(&request.dataset)
            .map_err(|e| TrainsetError::invalid("dataset", e.detail))?;
        if head < 1 {
            return Err(TrainsetError::invalid(
                "dataset",
                format!(
                    "dataset {:?} has no changesets yet: there is nothing to select",
                    request.dataset
                ),
            ));
        }
        let as_of = match request.as_of {
            None => head,
            Some(n) if (1..=head).contains(&n) => n,
            Some(n) => {
                return Err(TrainsetError::invalid(
                    "as_of",
                    format!(
                        "changeset {n} does not exist: dataset {:?} has changesets 1 to {head}",
                        request.dataset
                    ),
                ));
            }
        };
        let changesets = match &request.changesets {
            None => None,
            Some(text) => {
                let ranges = parse_changesets(text)?;
                if let Some(&(_, hi)) = ranges.last()
                    && hi > as_of
                {
                    return Err(TrainsetError::invalid(
                        "changesets",
                        format!("changeset {hi} is after the as-of changeset {as_of}"),
                    ));
                }
                Some(ranges)
            }
        };
        if let (Some(from), Some(to)) = (request.from, request.to)
            && from >= to
        {
            return Err(TrainsetError::invalid(
                "from",
                format!(
                    "the time range is empty or inverted: from ({}) is not before to ({})",
                    show_time(from),
                    show_time(to)
                ),
            ));
        }
        let percentage = match request.percentage {
            None => None,
            Some(p) if p > 0.0 && p < 1.0 => Some(p),
            Some(1.0) => None,
            Some(p) => {
                return Err(TrainsetError::invalid(
                    "percentage",
                    format!("{p} is outside (0, 1]: 0.8 selects the newest 80 %"),
                ));
            }
        };
        match &request.selection {
            Some(Selection::Uniform { count: 0, .. }) => {
                return Err(TrainsetError::invalid(
                    "selection.count",
                    "a uniform selection of 0 samples selects nothing",
                ));
            }
            Some(Selection::LabelBalanced { per_label: 0, .. }) => {
                return Err(TrainsetError::invalid(
                    "selection.per_label",
                    "a balanced selection of 0 samples per label selects nothing",
                ));
            }
            Some(Selection::Keys { list, .. }) if !crate::keys::is_digest(list) => {
                return Err(TrainsetError::invalid(
                    "selection.list",
                    format!("{list:?} is not a key list's digest (64 lowercase hex digits)"),
                ));
            }
            Some(Selection::Keys { count: 0, .. }) => {
                return Err(TrainsetError::invalid(
                    "selection.count",
                    "a key list of 0 keys selects nothing",
                ));
            }
            _ => {}
        }
        let mut labels = request.labels.clone();
        labels.sort();
        labels.dedup();
        if let Some(l) = labels.iter().find(|l| l.is_empty()) {
            return Err(TrainsetError::invalid(
                "labels",
                format!("label {l:?} is empty"),
            ));
        }
        Ok(Self {
            dataset: request.dataset.clone(),
            as_of,
            changesets,
            labels,
            from: request.from,
            to: request.to,
            percentage,
            selection: request.selection.clone(),
        })
    }

    /// The canonical encoding: compact JSON, fields in a fixed order, with the format.
    pub fn canonical(&self) -> String {
        #[derive(Serialize)]
        struct Canonical<'a> {
            format: u32,
            #[serde(flatten)]
            query: &'a Query,
        }
        serde_json::to_string(&Canonical {
            format: QUERY_FORMAT,
            query: self,
        })
        .expect("a query serializes")
    }

    /// The version: a hash of the canonical encoding.
    pub fn version(&self) -> Version {
        let digest = Sha256::digest(self.canonical().as_bytes());
        let hex: String = digest[..Version::LEN / 2]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Version(hex)
    }

    /// Whether samples added by changeset `id` are asked for.
    pub fn wants_changeset(&self, id: i64) -> bool {
        id <= self.as_of
            && self
                .changesets
                .as_ref()
                .is_none_or(|ranges| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&id)))
    }

    /// Whether a label passes the label filter.
    pub fn wants_label(&self, label: Option<&str>) -> bool {
        self.labels.is_empty()
            || label.is_some_and(|l| self.labels.binary_search_by(|x| x.as_str().cmp(l)).is_ok())
    }

    /// Whether an event time passes the time range.
    pub fn wants_time(&self, event_time: i64) -> bool {
        self.from.is_none_or(|f| event_time >= f) && self.to.is_none_or(|t| event_time < t)
    }
}

/// Parses changeset ranges: `1,3-5,9`. Ranges are merged; ids start at 1.
pub fn parse_changesets(text: &str) -> Result<Vec<ChangesetRange>, TrainsetError> {
    let bad = |reason: String| TrainsetError::invalid("changesets", reason);
    let id = |part: &str, item: &str| -> Result<i64, TrainsetError> {
        let part = part.trim();
        match part.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(n),
            Ok(_) => Err(bad(format!("{item:?}: changeset ids start at 1"))),
            Err(_) => Err(bad(format!(
                "{item:?} is not a changeset id or a range like 3-5"
            ))),
        }
    };
    let mut ranges = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(bad(format!(
                "{text:?} has an empty item; write ids and ranges like 1,3-5"
            )));
        }
        let range = match item.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (id(lo, item)?, id(hi, item)?);
                if lo > hi {
                    return Err(bad(format!("{item:?} is an inverted range")));
                }
                (lo, hi)
            }
            None => {
                let n = id(item, item)?;
                (n, n)
            }
        };
        ranges.push(range);
    }
    ranges.sort_unstable();
    let mut merged: Vec<ChangesetRange> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    Ok(merged)
}

/// Ranges written back the way [`parse_changesets`] reads them.
pub fn format_changesets(ranges: &[ChangesetRange]) -> String {
    ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn show_time(micros: i64) -> String {
    flywheel_schemas::format_rfc3339(micros).unwrap_or_else(|_| micros.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(dataset: &str) -> QueryRequest {
        QueryRequest {
            dataset: dataset.into(),
            ..QueryRequest::default()
        }
    }

    #[test]
    fn changeset_ranges_parse_and_merge() {
        assert_eq!(
            parse_changesets("1,3-5,4,9").unwrap(),
            vec![(1, 1), (3, 5), (9, 9)]
        );
        assert_eq!(parse_changesets(" 2 , 1 ,3").unwrap(), vec![(1, 3)]);
        assert_eq!(format_changesets(&[(1, 1), (3, 5)]), "1,3-5");
        for (text, want) in [
            ("", "empty item"),
            ("1,,2", "empty item"),
            ("3-", "\"3-\" is not a changeset id"),
            ("a", "\"a\" is not a changeset id"),
            ("0", "start at 1"),
            ("5-3", "inverted range"),
            ("-2", "is not a changeset id"),
            ("1-2-3", "is not a changeset id"),
        ] {
            let e = parse_changesets(text).unwrap_err().to_string();
            assert!(
                e.contains("changesets") && e.contains(want),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn pinning_fills_in_the_head_and_normalises() {
        let mut r = request("d");
        r.labels = vec!["b".into(), "a".into(), "b".into()];
        r.changesets = Some("2,1".into());
        r.percentage = Some(1.0);
        let q = Query::pin(&r, 7).unwrap();
        assert_eq!(q.as_of, 7);
        assert_eq!(q.labels, vec!["a", "b"]);
        assert_eq!(q.changesets, Some(vec![(1, 2)]));
        assert_eq!(q.percentage, None);

        // the same meaning, written differently: the same version
        let mut same = request("d");
        same.labels = vec!["a".into(), "b".into()];
        same.changesets = Some("1-2".into());
        same.as_of = Some(7);
        assert_eq!(Query::pin(&same, 9).unwrap().version(), q.version());
        // another head: another query
        assert_ne!(Query::pin(&r, 8).unwrap().version(), q.version());
        assert_eq!(q.version().as_str().len(), Version::LEN);
        Version::parse(q.version().as_str()).unwrap();
    }

    #[test]
    fn bad_requests_name_their_field() {
        let cases: Vec<(QueryRequest, i64, &str, &str)> = vec![
            (request("a b"), 3, "dataset", "invalid"),
            (request("d"), 0, "dataset", "no changesets"),
            (
                QueryRequest {
                    as_of: Some(4),
                    ..request("d")
                },
                3,
                "as_of",
                "changeset 4 does not exist",
            ),
            (
                QueryRequest {
                    changesets: Some("2-5".into()),
                    ..request("d")
                },
                3,
                "changesets",
                "changeset 5 is after",
            ),
            (
                QueryRequest {
                    from: Some(10),
                    to: Some(10),
                    ..request("d")
                },
                3,
                "from",
                "inverted",
            ),
            (
                QueryRequest {
                    percentage: Some(0.0),
                    ..request("d")
                },
                3,
                "percentage",
                "outside (0, 1]",
            ),
            (
                QueryRequest {
                    percentage: Some(f64::NAN),
                    ..request("d")
                },
                3,
                "percentage",
                "outside (0, 1]",
            ),
            (
                QueryRequest {
                    percentage: Some(1.5),
                    ..request("d")
                },
                3,
                "percentage",
                "outside (0, 1]",
            ),
            (
                QueryRequest {
                    selection: Some(Selection::Uniform { count: 0, seed: 1 }),
                    ..request("d")
                },
                3,
                "selection.count",
                "0 samples",
            ),
            (
                QueryRequest {
                    labels: vec![String::new()],
                    ..request("d")
                },
                3,
                "labels",
                "empty",
            ),
        ];
        for (r, head, field, want) in cases {
            let e = Query::pin(&r, head).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(field) && text.contains(want), "{r:?}: {text}");
        }
        for bad in ["", "xyz", &"A".repeat(32), &"0".repeat(31)] {
            Version::parse(bad).unwrap_err();
        }
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        let e = serde_json::from_str::<QueryRequest>(r#"{"dataset":"d","lables":["a"]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lables"), "{e}");
        let r: QueryRequest = serde_json::from_str(
            r#"{"dataset":"d","selection":{"policy":"label_balanced","per_label":5,"seed":3}}"#,
        )
        .unwrap();
        assert_eq!(
            r.selection,
            Some(Selection::LabelBalanced {
                per_label: 5,
                seed: 3
            })
        );
        serde_json::from_str::<QueryRequest>(r#"{"dataset":"d","selection":{"policy":"best"}}"#)
            .unwrap_err();
    }

    #[test]
    fn filters() {
        let mut r = request("d");
        r.labels = vec!["cat".into()];
        r.changesets = Some("2-3".into());
        r.from = Some(10);
        r.to = Some(20);
        let q = Query::pin(&r, 5).unwrap();
        assert!(q.wants_changeset(2) && q.wants_changeset(3));
        assert!(!q.wants_changeset(1) && !q.wants_changeset(4));
        assert!(q.wants_label(Some("cat")) && !q.wants_label(Some("dog")));
        assert!(!q.wants_label(None));
        assert!(q.wants_time(10) && q.wants_time(19));
        assert!(!q.wants_time(9) && !q.wants_time(20));
        let all = Query::pin(&request("d"), 5).unwrap();
        assert!(all.wants_label(None) && all.wants_changeset(5) && !all.wants_changeset(6));
    }
}
