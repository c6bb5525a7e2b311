//! Resolution of older (and foreign) writer schemas to the current reader, with synthetic
//! histories: the real history has one version per event, so these exercise what v2 will need.

use apache_avro::{Schema, types::Value, writer::datum::GenericDatumWriter};

use crate::{
    codec::{MARKER, SchemaError, decode_with},
    events::{Changeset, ChangesetKind, Event, Sample},
    registry::{EventSchemas, fingerprint},
};

/// `current`'s JSON with `edit` applied, as a `'static` schema text.
fn edited(current: &str, edit: impl FnOnce(&mut serde_json::Value)) -> &'static str {
    let mut json: serde_json::Value = serde_json::from_str(current).unwrap();
    edit(&mut json);
    String::leak(json.to_string())
}

fn without_fields(current: &str, names: &[&str]) -> &'static str {
    edited(current, |json| {
        let fields = json["fields"].as_array_mut().unwrap();
        fields.retain(|f| !names.iter().any(|n| f["name"] == *n));
    })
}

fn single_object(writer: &Schema, fields: Vec<(&str, Value)>) -> Vec<u8> {
    let record = Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    let datum = GenericDatumWriter::builder(writer)
        .build()
        .unwrap()
        .write_value_to_vec(record)
        .unwrap();
    let mut out = MARKER.to_vec();
    out.extend_from_slice(&fingerprint(writer).to_le_bytes());
    out.extend_from_slice(&datum);
    out
}

fn some(v: Value) -> Value {
    Value::Union(1, Box::new(v))
}

#[test]
fn fields_added_with_defaults_are_filled_in_for_old_writers() {
    let current = Sample::schemas().current_source;
    let v1 = without_fields(current, &["features", "producer"]);
    let schemas = EventSchemas::load("Sample", "sample", current, &[(1, v1), (2, current)]);
    let bytes = single_object(
        &schemas.history[0].schema,
        vec![
            ("dataset", Value::String("images".into())),
            ("payload", some(Value::Bytes(vec![1, 2]))),
            ("blob", Value::Union(0, Box::new(Value::Null))),
            ("label", some(Value::String("cat".into()))),
            ("event_time", Value::TimestampMicros(5)),
        ],
    );
    let sample: Sample = decode_with(&bytes, &schemas).unwrap();
    assert_eq!(
        sample,
        Sample {
            dataset: "images".into(),
            features: vec![],
            payload: Some(vec![1, 2]),
            blob: None,
            label: Some("cat".into()),
            event_time: 5,
            producer: None,
        }
    );
}

#[test]
fn an_old_writer_lacking_a_required_field_is_a_datum_error() {
    let current = Sample::schemas().current_source;
    let v1 = without_fields(current, &["dataset"]);
    let schemas = EventSchemas::load("Sample", "sample", current, &[(1, v1), (2, current)]);
    let bytes = single_object(
        &schemas.history[0].schema,
        vec![
            ("features", Value::Array(vec![Value::Double(1.0)])),
            ("payload", Value::Union(0, Box::new(Value::Null))),
            ("blob", Value::Union(0, Box::new(Value::Null))),
            ("label", Value::Union(0, Box::new(Value::Null))),
            ("event_time", Value::TimestampMicros(5)),
            ("producer", Value::Union(0, Box::new(Value::Null))),
        ],
    );
    let err = decode_with::<Sample>(&bytes, &schemas).unwrap_err();
    assert!(matches!(err, SchemaError::Datum { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("Sample: datum does not match its schema: ")
    );
}

#[test]
fn an_unknown_kind_symbol_falls_back_to_the_enum_default() {
    let current = Changeset::schemas().current_source;
    let newer = edited(current, |json| {
        let kind = json["fields"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|f| f["name"] == "kind")
            .unwrap();
        kind["type"]["symbols"]
            .as_array_mut()
            .unwrap()
            .push("merge".into());
    });
    let schemas = EventSchemas::load(
        "Changeset",
        "changeset",
        current,
        &[(1, current), (2, newer)],
    );
    let empty = || Value::Array(vec![]);
    let bytes = single_object(
        &schemas.history[1].schema,
        vec![
            ("tenant", Value::String("acme".into())),
            ("dataset", Value::String("d".into())),
            ("id", Value::Long(4)),
            ("kind", Value::Enum(5, "merge".into())),
            ("created_at", Value::TimestampMicros(1)),
            ("sample_count", Value::Long(2)),
            ("bytes", Value::Long(3)),
            ("reverts", Value::Union(0, Box::new(Value::Null))),
            ("query", Value::Union(0, Box::new(Value::Null))),
            ("sources", empty()),
            ("segments", empty()),
        ],
    );
    let changeset: Changeset = decode_with(&bytes, &schemas).unwrap();
    assert_eq!(changeset.kind, ChangesetKind::Add);
    assert_eq!(changeset.id, 4);
}
