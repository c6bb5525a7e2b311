//! Schema evolution: every released version stays readable by the current reader.

mod common;

use std::{fs, path::PathBuf};

use apache_avro::{
    Schema,
    reader::datum::GenericDatumReader,
    schema_compatibility::{Compatibility, SchemaCompatibility},
};
use common::{Rng, decode_as, encode_with, random_value};
use flywheel_schemas::{Changeset, Event, catalogue, encode, fingerprint};

fn avro_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("avro")
}

/// `vN.avsc` files of one event's history directory, sorted by N.
fn history_files(stem: &str) -> Vec<(u32, String)> {
    let dir = avro_dir().join("history").join(stem);
    let mut files: Vec<(u32, String)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let n = name
                .strip_prefix('v')
                .and_then(|rest| rest.strip_suffix(".avsc"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{}: history files are named vN.avsc", path.display()));
            (n, fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort_by_key(|(n, _)| *n);
    files
}

#[test]
fn every_schema_file_belongs_to_a_catalogued_event() {
    let stems: Vec<_> = catalogue().iter().map(|e| e.file_stem).collect();
    for entry in fs::read_dir(avro_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            assert_eq!(name, "history", "unexpected directory avro/{name}");
            continue;
        }
        let stem = name
            .strip_suffix(".avsc")
            .expect("only .avsc files in avro/");
        assert!(stems.contains(&stem), "avro/{name} is not in the registry");
    }
    for entry in fs::read_dir(avro_dir().join("history")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            stems.contains(&name.as_str()),
            "avro/history/{name} is not in the registry"
        );
    }
}

#[test]
fn every_history_file_is_embedded_and_numbered_from_one() {
    for event in catalogue() {
        let files = history_files(event.file_stem);
        let numbers: Vec<u32> = files.iter().map(|(n, _)| *n).collect();
        let expected: Vec<u32> = (1..=files.len() as u32).collect();
        assert_eq!(numbers, expected, "{}: history must be v1..vN", event.name);
        let embedded: Vec<(u32, &str)> = event
            .history
            .iter()
            .map(|v| (v.version, v.source))
            .collect();
        let on_disk: Vec<(u32, &str)> = files.iter().map(|(n, s)| (*n, s.as_str())).collect();
        assert_eq!(
            embedded, on_disk,
            "{}: registry.rs must list exactly the files in avro/history/{}",
            event.name, event.file_stem
        );
        let current = fs::read_to_string(avro_dir().join(format!("{}.avsc", event.file_stem)));
        assert_eq!(current.unwrap(), event.current_source);
    }
}

#[test]
fn current_schema_is_the_newest_released_version() {
    for event in catalogue() {
        let newest = event.newest().expect("at least v1");
        assert_eq!(
            event.current.canonical_form(),
            newest.schema.canonical_form(),
            "avro/{}.avsc differs from its newest history file v{}: a changed schema needs \
             a new avro/history/{}/v{}.avsc (and its number in registry.rs)",
            event.file_stem,
            newest.version,
            event.file_stem,
            newest.version + 1,
        );
    }
}

#[test]
fn released_versions_have_distinct_fingerprints() {
    for event in catalogue() {
        let mut fps: Vec<u64> = event.history.iter().map(|v| v.fingerprint).collect();
        fps.dedup();
        assert_eq!(
            fps.len(),
            event.history.len(),
            "{}: a version repeats its predecessor",
            event.name
        );
    }
}

#[test]
fn every_released_writer_is_readable_by_the_current_reader() {
    for event in catalogue() {
        for v in &event.history {
            let compat = SchemaCompatibility::can_read(&v.schema, &event.current);
            assert_eq!(
                compat,
                Ok(Compatibility::Full),
                "{} v{} cannot be fully read by the current schema",
                event.name,
                v.version
            );
        }
    }
}

#[test]
fn data_written_with_every_released_version_decodes() {
    for event in catalogue() {
        for v in &event.history {
            let mut rng = Rng::new(u64::from(v.version) ^ fingerprint(&v.schema));
            for i in 0..200 {
                let value = random_value(&v.schema, &mut rng);
                let bytes = encode_with(&v.schema, value);
                if let Err(e) = decode_as(event.name, &bytes) {
                    panic!(
                        "{} v{} datum {i} does not decode: {e}",
                        event.name, v.version
                    );
                }
            }
        }
    }
}

fn changeset_with_extra_field(field: serde_json::Value) -> Schema {
    let mut json: serde_json::Value =
        serde_json::from_str(Changeset::schemas().current_source).unwrap();
    json["fields"].as_array_mut().unwrap().push(field);
    Schema::parse(&json).unwrap()
}

/// The compatibility check can fail: a new required field without a default is caught, both
/// by the checker and by resolution of real data.
#[test]
fn a_new_field_without_default_is_detected_as_incompatible() {
    let writer = Changeset::schema();
    let breaking =
        changeset_with_extra_field(serde_json::json!({"name": "priority", "type": "int"}));
    assert!(SchemaCompatibility::can_read(writer, &breaking).is_err());

    let bytes = encode(&sample_changeset());
    let resolved = GenericDatumReader::builder(writer)
        .reader_schema(&breaking)
        .build()
        .unwrap()
        .read_value(&mut &bytes[10..]);
    assert!(
        resolved.is_err(),
        "resolution should fail without a default"
    );

    let fine = changeset_with_extra_field(
        serde_json::json!({"name": "priority", "type": "int", "default": 0}),
    );
    assert_eq!(
        SchemaCompatibility::can_read(writer, &fine),
        Ok(Compatibility::Full)
    );
}

#[test]
fn a_changed_field_type_is_detected_as_incompatible() {
    let text = Changeset::schemas().current_source.replace(
        r#"{"name": "sample_count", "type": "long"}"#,
        r#"{"name": "sample_count", "type": "string"}"#,
    );
    assert_ne!(
        text,
        Changeset::schemas().current_source,
        "test must change the schema"
    );
    let changed = Schema::parse_str(&text).unwrap();
    assert!(SchemaCompatibility::can_read(Changeset::schema(), &changed).is_err());
}

fn sample_changeset() -> Changeset {
    Changeset {
        tenant: "acme".into(),
        dataset: "sensors".into(),
        id: 3,
        kind: flywheel_schemas::ChangesetKind::Revert,
        created_at: 1,
        sample_count: 10,
        bytes: 100,
        reverts: Some(2),
        query: None,
        sources: vec![],
        segments: vec!["file:///seg/1".into()],
    }
}
