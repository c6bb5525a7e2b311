//! encode -> decode and JSON round trips for arbitrary values.

mod common;

use common::{
    any_changeset, any_model_release, any_pipeline_spec, any_rejected, any_sample,
    any_training_set, valid_sample,
};
use flywheel_schemas::{
    Event, MARKER, decode, decode_sample, encode, parse_sample_json, peek_fingerprint,
    sample_to_json,
};
use proptest::prelude::*;

fn round_trip<E: Event + PartialEq + std::fmt::Debug>(e: &E) -> Result<(), TestCaseError> {
    let bytes = encode(e);
    prop_assert_eq!(&bytes[..2], &MARKER[..]);
    prop_assert_eq!(peek_fingerprint(&bytes), Some(E::schemas().fingerprint));
    let back: E = decode(&bytes).map_err(|err| TestCaseError::fail(err.to_string()))?;
    prop_assert_eq!(&back, e);
    Ok(())
}

proptest! {
    #[test]
    fn sample_round_trips(e in any_sample()) {
        round_trip(&e)?;
    }

    #[test]
    fn rejected_sample_round_trips(e in any_rejected()) {
        round_trip(&e)?;
    }

    #[test]
    fn changeset_round_trips(e in any_changeset()) {
        round_trip(&e)?;
    }

    #[test]
    fn pipeline_spec_round_trips(e in any_pipeline_spec()) {
        round_trip(&e)?;
    }

    #[test]
    fn training_set_round_trips(e in any_training_set()) {
        round_trip(&e)?;
    }

    #[test]
    fn model_release_round_trips(e in any_model_release()) {
        round_trip(&e)?;
    }

    #[test]
    fn valid_sample_round_trips_through_json(sample in valid_sample()) {
        let line = serde_json::to_vec(&sample_to_json(&sample)).unwrap();
        prop_assert_eq!(parse_sample_json(&line), Ok(sample.clone()));
        // decode_sample takes the JSON form too, and the Avro form of the same sample.
        prop_assert_eq!(decode_sample(&line), Ok(sample.clone()));
        prop_assert_eq!(decode_sample(&encode(&sample)), Ok(sample));
    }
}

#[test]
fn nan_and_infinities_survive_avro() {
    let sample = flywheel_schemas::Sample {
        dataset: "d".into(),
        features: vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0],
        payload: Some(vec![]),
        blob: None,
        label: None,
        event_time: i64::MIN,
        producer: None,
    };
    let back: flywheel_schemas::Sample = decode(&encode(&sample)).unwrap();
    let bits =
        |s: &flywheel_schemas::Sample| s.features.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&sample));
    assert_eq!(back.event_time, sample.event_time);
    assert_eq!(back.payload, Some(vec![]));
}

#[test]
fn design_example_parses() {
    let line = br#"{"dataset":"sensors","features":[0.1,-2.0,3.5],"label":"1","event_time":"2026-11-21T10:00:00Z"}"#;
    let sample = parse_sample_json(line).unwrap();
    assert_eq!(sample.dataset, "sensors");
    assert_eq!(sample.features, vec![0.1, -2.0, 3.5]);
    assert_eq!(sample.label.as_deref(), Some("1"));
    assert_eq!(sample.event_time, 1_795_255_200_000_000);
    assert_eq!(
        (sample.payload, sample.blob, sample.producer),
        (None, None, None)
    );

    let json = sample_to_json(&parse_sample_json(line).unwrap());
    assert_eq!(json["event_time"], "2026-11-21T10:00:00Z");
    assert!(json.get("payload_b64").is_none());
}

#[test]
fn payload_travels_as_standard_base64() {
    let line = br#" {"dataset":"img","payload_b64":"iVBORw0KGgo=","event_time":"2026-11-21T10:00:00.5+01:00","producer":"cam-1","blob":null,"label":null}
"#;
    let sample = decode_sample(line).unwrap();
    assert_eq!(sample.payload.as_deref(), Some(&b"\x89PNG\r\n\x1a\n"[..]));
    assert_eq!(sample.event_time, 1_795_251_600_500_000);
    assert_eq!(sample.label, None);
    let json = sample_to_json(&sample);
    assert_eq!(json["payload_b64"], "iVBORw0KGgo=");
    assert_eq!(json["event_time"], "2026-11-21T09:00:00.5Z");
    assert_eq!(json["producer"], "cam-1");
}
