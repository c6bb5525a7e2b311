//! Every known version of every event schema, embedded at compile time and parsed once.

use std::sync::LazyLock;

use apache_avro::{Schema, rabin::Rabin};

/// One released version of an event's schema (`avro/history/<event>/v<N>.avsc`).
#[derive(Debug)]
pub struct SchemaVersion {
    /// N in `vN.avsc`, starting at 1.
    pub version: u32,
    /// CRC-64-AVRO (Rabin) fingerprint of the parsing canonical form.
    pub fingerprint: u64,
    /// The parsed schema.
    pub schema: Schema,
    /// The `.avsc` text as released.
    pub source: &'static str,
}

/// The current schema of one event and all its released versions.
#[derive(Debug)]
pub struct EventSchemas {
    /// The event (and Avro record) name, e.g. `Sample`.
    pub name: &'static str,
    /// The file stem, e.g. `sample` for `avro/sample.avsc` and `avro/history/sample/`.
    pub file_stem: &'static str,
    /// The current schema: what [`encode`](crate::encode) writes and [`decode`](crate::decode)
    /// resolves to.
    pub current: Schema,
    /// The `.avsc` text of the current schema.
    pub current_source: &'static str,
    /// Fingerprint of the current schema.
    pub fingerprint: u64,
    /// Released versions, oldest first.
    pub history: Vec<SchemaVersion>,
}

impl EventSchemas {
    pub(crate) fn load(
        name: &'static str,
        file_stem: &'static str,
        current_source: &'static str,
        history: &[(u32, &'static str)],
    ) -> Self {
        let parse = |what: &str, source: &str| {
            Schema::parse_str(source).unwrap_or_else(|e| {
                panic!("embedded schema {what} of event {name} does not parse: {e}")
            })
        };
        let current = parse("current", current_source);
        let history = history
            .iter()
            .map(|&(version, source)| {
                let schema = parse(&format!("v{version}"), source);
                SchemaVersion {
                    version,
                    fingerprint: fingerprint(&schema),
                    schema,
                    source,
                }
            })
            .collect();
        Self {
            name,
            file_stem,
            fingerprint: fingerprint(&current),
            current,
            current_source,
            history,
        }
    }

    /// The writer schema with this fingerprint, if it is the current one or a released one.
    pub fn find(&self, fingerprint: u64) -> Option<&Schema> {
        if fingerprint == self.fingerprint {
            return Some(&self.current);
        }
        self.history
            .iter()
            .find(|v| v.fingerprint == fingerprint)
            .map(|v| &v.schema)
    }

    /// The newest released version.
    pub fn newest(&self) -> Option<&SchemaVersion> {
        self.history.last()
    }
}

/// CRC-64-AVRO (Rabin) fingerprint of the schema's parsing canonical form, as the integer whose
/// little-endian bytes follow the single-object marker.
pub fn fingerprint(schema: &Schema) -> u64 {
    let fp = schema.fingerprint::<Rabin>();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&fp.bytes[..8]);
    u64::from_le_bytes(bytes)
}

macro_rules! event_schemas {
    ($static:ident, $name:literal, $stem:literal, [$($v:literal),+ $(,)?]) => {
        pub(crate) static $static: LazyLock<EventSchemas> = LazyLock::new(|| {
            EventSchemas::load(
                $name,
                $stem,
                include_str!(concat!("../avro/", $stem, ".avsc")),
                &[$(($v, include_str!(concat!("../avro/history/", $stem, "/v", $v, ".avsc")))),+],
            )
        });
    };
}

// To release a new version of a schema, add `avro/history/<stem>/v<N+1>.avsc` and its number here.
event_schemas!(SAMPLE, "Sample", "sample", [1]);
event_schemas!(REJECTED_SAMPLE, "RejectedSample", "rejected_sample", [1]);
event_schemas!(CHANGESET, "Changeset", "changeset", [1]);
event_schemas!(PIPELINE_SPEC, "PipelineSpec", "pipeline_spec", [1]);
event_schemas!(TRAINING_SET, "TrainingSet", "training_set", [1]);
event_schemas!(MODEL_RELEASE, "ModelRelease", "model_release", [1]);

/// Every event's schemas, in pipeline order.
pub fn catalogue() -> [&'static EventSchemas; 6] {
    [
        &SAMPLE,
        &REJECTED_SAMPLE,
        &CHANGESET,
        &PIPELINE_SPEC,
        &TRAINING_SET,
        &MODEL_RELEASE,
    ]
}

/// The schemas of the event with this name (e.g. `Changeset`).
pub fn event_schemas(name: &str) -> Option<&'static EventSchemas> {
    catalogue().into_iter().find(|e| e.name == name)
}

/// The event whose current or released schema has this fingerprint.
pub fn find_fingerprint(fingerprint: u64) -> Option<&'static EventSchemas> {
    catalogue()
        .into_iter()
        .find(|e| e.find(fingerprint).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_the_avro_test_vectors() {
        let null = Schema::parse_str(r#""null""#).unwrap();
        assert_eq!(fingerprint(&null), 7_195_948_357_588_979_594);
        let boolean = Schema::parse_str(r#""boolean""#).unwrap();
        assert_eq!(
            fingerprint(&boolean),
            u64::from_ne_bytes((-6_970_731_678_124_411_036_i64).to_ne_bytes())
        );
    }

    #[test]
    fn every_event_is_catalogued_once_with_distinct_fingerprints() {
        let mut seen = std::collections::HashMap::new();
        for event in catalogue() {
            assert_eq!(event_schemas(event.name).map(|e| e.name), Some(event.name));
            assert!(
                !event.history.is_empty(),
                "{} has no released version",
                event.name
            );
            for v in &event.history {
                if let Some(other) = seen.insert(v.fingerprint, event.name) {
                    assert_eq!(other, event.name, "fingerprint shared across events");
                }
                assert_eq!(
                    find_fingerprint(v.fingerprint).map(|e| e.name),
                    Some(event.name)
                );
                assert!(event.find(v.fingerprint).is_some());
            }
            assert_eq!(
                find_fingerprint(event.fingerprint).map(|e| e.name),
                Some(event.name)
            );
        }
        assert!(event_schemas("Nope").is_none());
        assert!(find_fingerprint(0).is_none());
    }

    #[test]
    fn record_names_are_the_event_names() {
        for event in catalogue() {
            let Schema::Record(record) = &event.current else {
                panic!("{} is not a record", event.name);
            };
            assert_eq!(record.name.name(), event.name);
            assert_eq!(record.name.namespace(), Some("io.flywheel"));
        }
    }
}
