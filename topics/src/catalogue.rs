//! The topic catalogue: every topic flywheel reads or writes, written down once.
//!
//! Topic names follow `flywheel.{tenant}.{kind}`. Services never spell a topic name
//! themselves: they ask this module for it, so that names, keys, partition counts,
//! retention and the schema carried stay in one place (and `docs/topics.md` is generated
//! from here).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::BusError;

/// The prefix every flywheel topic starts with.
pub const PREFIX: &str = "flywheel";

/// A validated tenant name: 1 to 63 characters of `[a-z0-9_-]`, starting with a letter or
/// digit. Tenant names appear in topic names, object-store prefixes and database names, so
/// the alphabet is deliberately small (no dots: a dot separates the parts of a topic name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Tenant(String);

impl Tenant {
    /// The tenant of a server that has no tokens configured.
    pub const DEFAULT: &'static str = "default";

    /// Validates a tenant name.
    pub fn new(name: &str) -> Result<Self, BusError> {
        let invalid = |reason: &str| BusError::InvalidName {
            what: "tenant",
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        if name.is_empty() || name.len() > 63 {
            return Err(invalid("must be 1 to 63 characters long"));
        }
        let mut chars = name.chars();
        if !chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Err(invalid("must start with a lowercase letter or a digit"));
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') {
            return Err(invalid("may only contain a-z, 0-9, '_' and '-'"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The tenant used when a server has no tokens configured.
    pub fn default_tenant() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    /// The tenant's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of topic every tenant has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicKind {
    /// Samples published by collectors (Avro or JSON).
    Samples,
    /// Samples ingest refused, with the original bytes and a reason.
    SamplesRejected,
    /// One event per committed changeset.
    Changesets,
    /// Pipeline submissions and stops (control).
    Pipelines,
    /// Training-set events emitted by the supervisor when a trigger fires.
    Trainsets,
    /// Model releases published by trainers.
    Models,
}

/// What the catalogue says about one kind of topic.
#[derive(Debug, Clone, Serialize)]
pub struct KindSpec {
    /// The kind.
    pub kind: TopicKind,
    /// The topic name pattern, e.g. `flywheel.{tenant}.samples`.
    pub name_pattern: String,
    /// What the message key holds (it decides the partition and so the ordering).
    pub key: &'static str,
    /// Partitions the topic is created with.
    pub partitions: u32,
    /// How long messages are kept; `None` keeps them forever.
    #[serde(serialize_with = "ser_retention")]
    pub retention: Option<Duration>,
    /// The Avro schema of the values (see `schemas/avro/`).
    pub schema: &'static str,
    /// Who writes the topic.
    pub producers: &'static str,
    /// Who reads it.
    pub consumers: &'static str,
    /// One line on what it is for.
    pub description: &'static str,
}

// serde's `serialize_with` hands the field by reference.
#[allow(clippy::ref_option)]
fn ser_retention<S: serde::Serializer>(r: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => s.serialize_i64(-1),
    }
}

const DAY: u64 = 24 * 60 * 60;

impl TopicKind {
    /// Every kind, in pipeline order.
    pub const ALL: [TopicKind; 6] = [
        TopicKind::Samples,
        TopicKind::SamplesRejected,
        TopicKind::Changesets,
        TopicKind::Pipelines,
        TopicKind::Trainsets,
        TopicKind::Models,
    ];

    /// The last part of the topic name.
    pub fn suffix(self) -> &'static str {
        match self {
            TopicKind::Samples => "samples",
            TopicKind::SamplesRejected => "samples.rejected",
            TopicKind::Changesets => "changesets",
            TopicKind::Pipelines => "pipelines",
            TopicKind::Trainsets => "trainsets",
            TopicKind::Models => "models",
        }
    }

    /// The catalogue entry of this kind.
    pub fn spec(self) -> KindSpec {
        let (key, partitions, retention_days, schema, producers, consumers, description) =
            match self {
                TopicKind::Samples => (
                    "dataset",
                    8,
                    Some(7),
                    "Sample (or its JSON form)",
                    "collectors, gateway, `flywheel produce`",
                    "ingest",
                    "samples as collectors publish them",
                ),
                TopicKind::SamplesRejected => (
                    "dataset (if known); pipeline (a training set)",
                    1,
                    Some(30),
                    "RejectedSample",
                    "ingest; trainers (training sets they cannot train on)",
                    "operators",
                    "dead letters: the original bytes and the reason they were refused (at least once)",
                ),
                TopicKind::Changesets => (
                    "dataset",
                    4,
                    Some(30),
                    "Changeset",
                    "ingest, gateway (remove, relabel, revert)",
                    "supervisor",
                    "one event per committed changeset of a dataset, at least once (consumers deduplicate by dataset and id)",
                ),
                TopicKind::Pipelines => (
                    "pipeline",
                    1,
                    None,
                    "PipelineSpec",
                    "gateway (`flywheel pipeline submit|stop`)",
                    "supervisor",
                    "pipeline submissions and stops",
                ),
                TopicKind::Trainsets => (
                    "pipeline",
                    4,
                    Some(30),
                    "TrainingSet",
                    "supervisor",
                    "trainers",
                    "a training set to train on, emitted when a trigger fires",
                ),
                TopicKind::Models => (
                    "pipeline",
                    4,
                    None,
                    "ModelRelease",
                    "trainers",
                    "users' consumers, supervisor, gateway",
                    "model releases with their lineage and metrics",
                ),
            };
        KindSpec {
            kind: self,
            name_pattern: format!("{PREFIX}.{{tenant}}.{}", self.suffix()),
            key,
            partitions,
            retention: retention_days.map(|d| Duration::from_secs(d * DAY)),
            schema,
            producers,
            consumers,
            description,
        }
    }

    /// The topic of this kind for one tenant.
    pub fn topic(self, tenant: &Tenant) -> String {
        format!("{PREFIX}.{tenant}.{}", self.suffix())
    }

    /// A regular expression matching this kind's topic of every tenant, for pattern
    /// subscriptions (Kafka's `^...` subscriptions and the embedded bus alike).
    pub fn pattern(self) -> String {
        format!(
            "^{PREFIX}\\.[a-z0-9][a-z0-9_-]*\\.{}$",
            self.suffix().replace('.', "\\.")
        )
    }

    /// The topic spec to create for one tenant.
    pub fn topic_spec(self, tenant: &Tenant) -> TopicSpec {
        let spec = self.spec();
        TopicSpec {
            name: self.topic(tenant),
            partitions: spec.partitions,
            retention: spec.retention,
        }
    }
}

/// Splits a flywheel topic name into its tenant and kind; `None` for any other name.
pub fn parse_topic(name: &str) -> Option<(Tenant, TopicKind)> {
    let rest = name.strip_prefix(PREFIX)?.strip_prefix('.')?;
    let (tenant, suffix) = rest.split_once('.')?;
    let kind = TopicKind::ALL.into_iter().find(|k| k.suffix() == suffix)?;
    Some((Tenant::new(tenant).ok()?, kind))
}

/// Every topic a tenant needs, ready to be created.
pub fn tenant_topics(tenant: &Tenant) -> Vec<TopicSpec> {
    TopicKind::ALL
        .into_iter()
        .map(|k| k.topic_spec(tenant))
        .collect()
}

/// A topic to create: name, partitions, retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// The topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Retention; `None` keeps messages forever.
    pub retention: Option<Duration>,
}

impl TopicSpec {
    /// Checks the name (Kafka's rules) and the partition count (1 to 10,000).
    pub fn validate(&self) -> Result<(), BusError> {
        validate_topic_name(&self.name)?;
        if self.partitions == 0 || self.partitions > 10_000 {
            return Err(BusError::InvalidName {
                what: "topic",
                name: self.name.clone(),
                reason: format!("{} partitions is out of range 1..=10000", self.partitions),
            });
        }
        Ok(())
    }

    /// A topic with `partitions` partitions kept forever.
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        Self {
            name: name.into(),
            partitions,
            retention: None,
        }
    }
}

/// Checks a topic name the way Kafka does: 1 to 249 characters of `[A-Za-z0-9._-]`,
/// not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), BusError> {
    let invalid = |reason: &str| BusError::InvalidName {
        what: "topic",
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() || name.len() > 249 {
        return Err(invalid("must be 1 to 249 characters long"));
    }
    if name == "." || name == ".." {
        return Err(invalid("may not be '.' or '..'"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid("may only contain A-Z, a-z, 0-9, '.', '_' and '-'"));
    }
    Ok(())
}

/// The catalogue as Markdown: the source of `docs/topics.md`.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str("# Topics\n\n");
    out.push_str(
        "<!-- generated by `flywheel topics --markdown` from topics/src/catalogue.rs; \
         do not edit by hand -->\n\n",
    );
    out.push_str(
        "Every arrow between flywheel's services is a topic. Each tenant has one topic of \
         each kind below, named `flywheel.{tenant}.{kind}`; flywheel creates them when they \
         are missing (a Kafka broker may not auto-create topics). Values are Avro in \
         single-object encoding (see `schemas/README.md`); the samples topic also accepts \
         the JSON form of a sample. Services subscribe to a kind across all tenants with the \
         pattern shown.\n\n",
    );
    out.push_str(
        "| topic | key | partitions | retention | value schema | written by | read by |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    for kind in TopicKind::ALL {
        let s = kind.spec();
        let retention = match s.retention {
            Some(d) => format!("{} days", d.as_secs() / DAY),
            None => "forever".to_owned(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            s.name_pattern, s.key, s.partitions, retention, s.schema, s.producers, s.consumers
        ));
    }
    out.push_str("\n## What each topic is for\n\n");
    for kind in TopicKind::ALL {
        let s = kind.spec();
        out.push_str(&format!(
            "- `{}`: {}. Subscription pattern over all tenants: `{}`\n",
            s.name_pattern,
            s.description,
            kind.pattern()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    #[test]
    fn tenant_names_are_validated() {
        assert!(Tenant::new("acme").is_ok());
        assert!(Tenant::new("a-b_9").is_ok());
        for bad in ["", "Acme", "a.b", "-a", "a b", &"x".repeat(64)] {
            let err = Tenant::new(bad).unwrap_err().to_string();
            assert!(err.contains("tenant"), "{err}");
        }
    }

    #[test]
    fn names_round_trip_and_patterns_match_only_their_kind() {
        let t = Tenant::new("acme").unwrap();
        for kind in TopicKind::ALL {
            let name = kind.topic(&t);
            assert_eq!(parse_topic(&name), Some((t.clone(), kind)));
            validate_topic_name(&name).unwrap();
            let re = Regex::new(&kind.pattern()).unwrap();
            for other in TopicKind::ALL {
                assert_eq!(
                    re.is_match(&other.topic(&t)),
                    other == kind,
                    "{kind:?} vs {other:?}"
                );
            }
        }
        assert_eq!(parse_topic("flywheel.acme.nope"), None);
        assert_eq!(parse_topic("other.acme.samples"), None);
    }

    #[test]
    fn topic_names_are_validated() {
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn docs_topics_md_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/topics.md");
        let want = markdown();
        if std::env::var_os("FLYWHEEL_BLESS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/topics.md is stale: run `flywheel topics --markdown > docs/topics.md` \
             (or FLYWHEEL_BLESS=1 cargo test -p flywheel-topics)"
        );
    }
}
