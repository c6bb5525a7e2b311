//! Untrusted bytes: every malformed input is a clear error, never a panic.

mod common;

use common::{
    any_changeset, any_model_release, any_pipeline_spec, any_rejected, any_sample,
    any_training_set, decode_as,
};
use flywheel_schemas::{
    Changeset, Event, MARKER, ModelRelease, PipelineSpec, RejectReason, RejectedSample, Sample,
    SchemaError, TrainingSet, catalogue, decode, decode_sample, encode, parse_sample_json,
};
use proptest::prelude::*;

fn sample() -> Sample {
    Sample {
        dataset: "sensors".into(),
        features: vec![0.1, -2.0, 3.5],
        payload: None,
        blob: None,
        label: Some("1".into()),
        event_time: 1_795_255_200_000_000,
        producer: None,
    }
}

fn changeset() -> Changeset {
    decode(&encode(&Changeset {
        tenant: "acme".into(),
        dataset: "sensors".into(),
        id: 1,
        kind: flywheel_schemas::ChangesetKind::Add,
        created_at: 7,
        sample_count: 3,
        bytes: 12,
        reverts: None,
        query: None,
        sources: vec![flywheel_schemas::SourceRange {
            topic: "flywheel.acme.samples".into(),
            partition: 0,
            first_offset: 0,
            last_offset: 2,
        }],
        segments: vec!["file:///blobs/acme/seg-1".into()],
    }))
    .unwrap()
}

/// An error message is one short line that names the event.
fn assert_clear(err: &SchemaError, event: &str) {
    let text = err.to_string();
    assert!(text.starts_with(&format!("{event}: ")), "{text}");
    assert!(!text.contains('\n') && text.len() < 400, "{text}");
}

#[test]
fn empty_and_short_input_is_not_single_object() {
    for event in catalogue() {
        for bytes in [&[][..], &[0xC3], &[0xC3, 0x01, 1, 2, 3]] {
            let err = decode_as(event.name, bytes).unwrap_err();
            assert!(matches!(err, SchemaError::NotSingleObject { .. }), "{err}");
            assert_clear(&err, event.name);
        }
    }
}

#[test]
fn wrong_marker_is_named() {
    let mut bytes = encode(&sample());
    bytes[1] = 0x02;
    let err = decode::<Sample>(&bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Sample: not avro single-object encoded: marker c3 02, expected c3 01"
    );
}

#[test]
fn unknown_fingerprint_is_printed_in_hex() {
    let mut bytes = encode(&sample());
    bytes[2..10].copy_from_slice(&0xdead_beef_u64.to_le_bytes());
    let err = decode::<Sample>(&bytes).unwrap_err();
    assert_eq!(
        err,
        SchemaError::UnknownFingerprint {
            event: "Sample",
            fingerprint: 0xdead_beef
        }
    );
    assert_eq!(
        err.to_string(),
        "Sample: unknown writer schema fingerprint 0x00000000deadbeef"
    );
}

#[test]
fn a_sample_read_as_a_changeset_names_both() {
    let err = decode::<Changeset>(&encode(&sample())).unwrap_err();
    assert!(
        matches!(
            err,
            SchemaError::WrongEvent {
                actual: "Sample",
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("Changeset: writer schema fingerprint 0x"),
        "{text}"
    );
    assert!(
        text.ends_with(" is a Sample schema, not Changeset"),
        "{text}"
    );
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = encode(&changeset());
    for len in 0..bytes.len() {
        let err = decode::<Changeset>(&bytes[..len]).unwrap_err();
        if len >= 10 {
            assert!(matches!(err, SchemaError::Datum { .. }), "len {len}: {err}");
        }
        assert_clear(&err, "Changeset");
    }
    assert_eq!(decode::<Changeset>(&bytes), Ok(changeset()));
}

#[test]
fn trailing_garbage_is_counted() {
    let mut bytes = encode(&changeset());
    bytes.extend_from_slice(b"xyz");
    let err = decode::<Changeset>(&bytes).unwrap_err();
    assert_eq!(
        err,
        SchemaError::TrailingBytes {
            event: "Changeset",
            count: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "Changeset: 3 trailing bytes after the datum"
    );
}

#[test]
fn a_datum_that_breaks_its_schema_is_a_datum_error() {
    let mut bytes = encode(&sample()).into_iter().take(10).collect::<Vec<_>>();
    bytes.push(0x01); // dataset length -1
    let err = decode::<Sample>(&bytes).unwrap_err();
    assert!(matches!(err, SchemaError::Datum { .. }), "{err}");
    assert_clear(&err, "Sample");

    // A union branch index past the end of ["null", "bytes"].
    let mut bytes = encode(&sample());
    let payload_at = 10 + 1 + "sensors".len() + 1 + 3 * 8 + 1;
    assert_eq!(
        bytes[payload_at], 0,
        "payload union index is where expected"
    );
    bytes[payload_at] = 0x10;
    let err = decode::<Sample>(&bytes).unwrap_err();
    assert!(matches!(err, SchemaError::Datum { .. }), "{err}");
    assert_clear(&err, "Sample");
}

fn reason(bytes: &[u8]) -> RejectReason {
    match decode_sample(bytes) {
        Ok(s) => panic!("accepted {}: {s:?}", String::from_utf8_lossy(bytes)),
        Err(e) => {
            assert!(e.to_string().starts_with(&format!("{}: ", e.reason)));
            e.reason
        }
    }
}

fn detail(bytes: &[u8]) -> String {
    decode_sample(bytes).unwrap_err().detail
}

#[test]
fn neither_avro_nor_json() {
    use RejectReason::NotAvroOrJson;
    for bytes in [
        &b""[..],
        b"   \n",
        b"hello",
        b"[1,2]",
        b"\xc3",
        b"\xc3\x02 rest",
        b"{\"dataset\":",
    ] {
        assert_eq!(
            reason(bytes),
            NotAvroOrJson,
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    let two = br#"{"dataset":"a","features":[1],"event_time":"2026-11-21T10:00:00Z"} {}"#;
    assert_eq!(reason(two), NotAvroOrJson);
    assert_eq!(
        parse_sample_json(b"[1]").unwrap_err().reason,
        RejectReason::SchemaViolation
    );
}

const T: &str = r#""event_time":"2026-11-21T10:00:00Z""#;

fn line(fields: &str) -> Vec<u8> {
    format!("{{{fields},{T}}}").into_bytes()
}

#[test]
fn schema_violations_name_the_field() {
    use RejectReason::SchemaViolation;
    let long = "d".repeat(129);
    let cases: Vec<(String, &str)> = vec![
        (
            r#""dataset":"a","features":[1],"tenant":"evil""#.into(),
            "unknown field `tenant`",
        ),
        (r#""features":[1]"#.into(), "missing field `dataset`"),
        (r#""dataset":"","features":[1]"#.into(), "dataset is empty"),
        (
            format!(r#""dataset":"{long}","features":[1]"#),
            "at most 128",
        ),
        (
            r#""dataset":"a b","features":[1]"#.into(),
            "dataset has ` ` at character 1",
        ),
        (
            r#""dataset":"a/b","features":[1]"#.into(),
            "dataset has `/`",
        ),
        (
            r#""dataset":7,"features":[1]"#.into(),
            "dataset must be a string, not a number",
        ),
        (
            r#""dataset":"a","features":"1,2""#.into(),
            "features must be an array",
        ),
        (
            r#""dataset":"a","features":[1,"2"]"#.into(),
            "features[1] must be a number, not a string",
        ),
        (
            r#""dataset":"a","features":[]"#.into(),
            "a sample needs features, a payload or a blob",
        ),
        (
            r#""dataset":"a""#.into(),
            "a sample needs features, a payload or a blob",
        ),
        (
            r#""dataset":"a","payload_b64":"!!!""#.into(),
            "payload_b64 is not valid base64",
        ),
        (
            r#""dataset":"a","payload_b64":12"#.into(),
            "payload_b64 must be a string or null",
        ),
        (
            r#""dataset":"a","payload_b64":"""#.into(),
            "payload is empty",
        ),
        (r#""dataset":"a","blob":"""#.into(), "blob is empty"),
        (
            r#""dataset":"a","payload_b64":"AA==","blob":"s3://b/k""#.into(),
            "a payload or a blob, not both",
        ),
        (
            r#""dataset":"a","blob":["s3://x"]"#.into(),
            "blob must be a string or null, not an array",
        ),
        (
            r#""dataset":"a","features":[1],"producer":true"#.into(),
            "producer must be a string or null",
        ),
    ];
    for (fields, expected) in cases {
        let bytes = line(&fields);
        assert_eq!(reason(&bytes), SchemaViolation, "{fields}");
        let d = detail(&bytes);
        assert!(d.contains(expected), "{fields}: `{d}` lacks `{expected}`");
    }
}

#[test]
fn label_must_be_a_string_or_absent() {
    for label in ["1", "true", "[\"a\"]", "{}"] {
        let bytes = line(&format!(r#""dataset":"a","features":[1],"label":{label}"#));
        assert_eq!(reason(&bytes), RejectReason::LabelType, "{label}");
    }
    for label in [r#","label":null"#, ""] {
        let bytes = line(&format!(r#""dataset":"a","features":[1]{label}"#));
        assert_eq!(decode_sample(&bytes).unwrap().label, None);
    }
}

#[test]
fn event_time_must_be_an_rfc3339_string() {
    let base = r#"{"dataset":"a","features":[1]"#;
    for time in [
        "",
        r#","event_time":1795255200"#,
        r#","event_time":null"#,
        r#","event_time":"yesterday""#,
        r#","event_time":"2026-13-01T00:00:00Z""#,
        r#","event_time":"2026-11-21 10:00:00""#,
    ] {
        let bytes = format!("{base}{time}}}").into_bytes();
        assert_eq!(reason(&bytes), RejectReason::BadEventTime, "{time}");
    }
}

#[test]
fn the_avro_form_is_validated_too() {
    let mut s = sample();
    s.features[2] = f64::NAN;
    let err = decode_sample(&encode(&s)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "schema_violation: features[2] is not a finite number"
    );

    let mut s = sample();
    s.dataset = "no spaces".into();
    assert_eq!(reason(&encode(&s)), RejectReason::SchemaViolation);

    let mut s = sample();
    s.features.clear();
    assert_eq!(reason(&encode(&s)), RejectReason::SchemaViolation);

    let mut s = sample();
    s.event_time = i64::MAX;
    assert_eq!(reason(&encode(&s)), RejectReason::BadEventTime);

    let mut bytes = encode(&sample());
    bytes.push(0);
    assert_eq!(reason(&bytes), RejectReason::SchemaViolation);
    assert_eq!(reason(&encode(&changeset())), RejectReason::SchemaViolation);
    assert_eq!(reason(&[0xC3, 0x01, 0]), RejectReason::NotAvroOrJson);
}

fn decode_all(bytes: &[u8]) {
    let _ = decode_sample(bytes);
    let _ = parse_sample_json(bytes);
    let _ = decode::<Sample>(bytes);
    let _ = decode::<RejectedSample>(bytes);
    let _ = decode::<Changeset>(bytes);
    let _ = decode::<PipelineSpec>(bytes);
    let _ = decode::<TrainingSet>(bytes);
    let _ = decode::<ModelRelease>(bytes);
}

/// Arbitrary bytes after a valid header of `E`.
fn with_header<E: Event>(body: &[u8]) -> Vec<u8> {
    let mut bytes = MARKER.to_vec();
    bytes.extend_from_slice(&E::schemas().fingerprint.to_le_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// A valid encoding with one byte replaced.
fn mutated(mut bytes: Vec<u8>, at: usize, byte: u8) -> Vec<u8> {
    let at = 10 + at % (bytes.len() - 10).max(1);
    if at < bytes.len() {
        bytes[at] = byte;
    }
    bytes
}

proptest! {
    #[test]
    fn decode_sample_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_all(&bytes);
    }

    #[test]
    fn json_like_text_never_panics(text in "[ {]\\PC{0,80}\\}?") {
        decode_all(text.as_bytes());
    }

    #[test]
    fn random_datums_never_panic(body in prop::collection::vec(any::<u8>(), 0..128)) {
        decode_all(&with_header::<Sample>(&body));
        decode_all(&with_header::<RejectedSample>(&body));
        decode_all(&with_header::<Changeset>(&body));
        decode_all(&with_header::<PipelineSpec>(&body));
        decode_all(&with_header::<TrainingSet>(&body));
        decode_all(&with_header::<ModelRelease>(&body));
    }

    #[test]
    fn mutated_encodings_never_panic(
        (s, r, c) in (any_sample(), any_rejected(), any_changeset()),
        (p, t, m) in (any_pipeline_spec(), any_training_set(), any_model_release()),
        at in any::<usize>(),
        byte in any::<u8>(),
    ) {
        for bytes in [encode(&s), encode(&r), encode(&c), encode(&p), encode(&t), encode(&m)] {
            decode_all(&mutated(bytes.clone(), at, byte));
            decode_all(&bytes[..at % bytes.len()]);
        }
    }
}
