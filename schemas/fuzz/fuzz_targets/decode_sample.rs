//! Every decoder of untrusted bytes must return an error, never panic.
#![no_main]

use flywheel_schemas::{
    Changeset, ModelRelease, PipelineSpec, RejectedSample, Sample, TrainingSet, decode,
    decode_sample, parse_sample_json, read_body, sample_to_json,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sample) = decode_sample(data) {
        // Whatever is accepted must survive the JSON form unchanged.
        let line = serde_json_line(&sample);
        assert_eq!(parse_sample_json(&line).as_ref(), Ok(&sample));
    }
    let _ = parse_sample_json(data);
    let _ = decode::<Sample>(data);
    let _ = decode::<RejectedSample>(data);
    let _ = decode::<Changeset>(data);
    let _ = decode::<PipelineSpec>(data);
    let _ = decode::<TrainingSet>(data);
    let _ = decode::<ModelRelease>(data);
    // the stored form ingest writes and readers parse back
    let _ = read_body(data);
});

fn serde_json_line(sample: &Sample) -> Vec<u8> {
    sample_to_json(sample).to_string().into_bytes()
}
