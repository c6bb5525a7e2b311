//! Shared by the integration tests: proptest strategies for every event, a generator of random
//! Avro values for any schema, and decoding by event name.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};

use apache_avro::{Schema, types::Value, writer::datum::GenericDatumWriter};
use flywheel_schemas::{
    Changeset, ChangesetKind, Event, MARKER, ModelRelease, PipelineAction, PipelineSpec,
    RejectedSample, RestrictedQuery, Sample, SchemaError, SourceRange, TrainingSet, fingerprint,
};
use proptest::{num::f64 as pf64, prelude::*};

/// Microseconds of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z.
pub const MIN_MICROS: i64 = -62_167_219_200_000_000;
pub const MAX_MICROS: i64 = 253_402_300_799_999_999;

pub fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

pub fn finite() -> impl Strategy<Value = f64> {
    pf64::POSITIVE | pf64::NEGATIVE | pf64::NORMAL | pf64::SUBNORMAL | pf64::ZERO
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Any sample the Avro schema can carry (not necessarily a valid one).
pub fn any_sample() -> impl Strategy<Value = Sample> {
    (
        text(),
        prop::collection::vec(finite(), 0..6),
        prop::option::of(bytes(32)),
        prop::option::of(text()),
        prop::option::of(text()),
        any::<i64>(),
        prop::option::of(text()),
    )
        .prop_map(
            |(dataset, features, payload, blob, label, event_time, producer)| Sample {
                dataset,
                features,
                payload,
                blob,
                label,
                event_time,
                producer,
            },
        )
}

/// A sample that passes validation.
pub fn valid_sample() -> impl Strategy<Value = Sample> {
    (
        "[A-Za-z0-9_.-]{1,128}",
        prop::collection::vec(finite(), 0..6),
        prop::option::of(prop::collection::vec(any::<u8>(), 1..48)),
        prop::option::of("\\PC{1,24}"),
        prop::option::of(text()),
        MIN_MICROS..=MAX_MICROS,
        prop::option::of(text()),
    )
        .prop_filter(
            "features, payload or blob; not payload and blob",
            |(_, features, payload, blob, ..)| {
                (!features.is_empty() || payload.is_some() || blob.is_some())
                    && !(payload.is_some() && blob.is_some())
            },
        )
        .prop_map(
            |(dataset, features, payload, blob, label, event_time, producer)| Sample {
                dataset,
                features,
                payload,
                blob,
                label,
                event_time,
                producer,
            },
        )
}

pub fn any_rejected() -> impl Strategy<Value = RejectedSample> {
    (
        (text(), text(), any::<i32>(), any::<i64>()),
        (text(), text(), bytes(64), any::<i64>()),
    )
        .prop_map(
            |(
                (tenant, source_topic, source_partition, source_offset),
                (reason, detail, original, rejected_at),
            )| {
                RejectedSample {
                    tenant,
                    source_topic,
                    source_partition,
                    source_offset,
                    reason,
                    detail,
                    original,
                    rejected_at,
                }
            },
        )
}

fn kind() -> impl Strategy<Value = ChangesetKind> {
    prop::sample::select(vec![
        ChangesetKind::Add,
        ChangesetKind::Remove,
        ChangesetKind::Relabel,
        ChangesetKind::Revert,
        ChangesetKind::Query,
    ])
}

fn query() -> impl Strategy<Value = RestrictedQuery> {
    (
        text(),
        text(),
        prop::option::of(text()),
        prop::collection::vec(text(), 0..4),
    )
        .prop_map(
            |(source, sql, label_column, feature_columns)| RestrictedQuery {
                source,
                sql,
                label_column,
                feature_columns,
            },
        )
}

fn source_range() -> impl Strategy<Value = SourceRange> {
    (text(), any::<i32>(), any::<i64>(), any::<i64>()).prop_map(
        |(topic, partition, first_offset, last_offset)| SourceRange {
            topic,
            partition,
            first_offset,
            last_offset,
        },
    )
}

pub fn any_changeset() -> impl Strategy<Value = Changeset> {
    (
        (text(), text(), any::<i64>(), kind(), any::<i64>()),
        (any::<i64>(), any::<i64>(), prop::option::of(any::<i64>())),
        (
            prop::option::of(query()),
            prop::collection::vec(source_range(), 0..4),
            prop::collection::vec(text(), 0..4),
        ),
    )
        .prop_map(
            |(
                (tenant, dataset, id, kind, created_at),
                (sample_count, bytes, reverts),
                (query, sources, segments),
            )| {
                Changeset {
                    tenant,
                    dataset,
                    id,
                    kind,
                    created_at,
                    sample_count,
                    bytes,
                    reverts,
                    query,
                    sources,
                    segments,
                }
            },
        )
}

pub fn any_pipeline_spec() -> impl Strategy<Value = PipelineSpec> {
    (
        text(),
        text(),
        prop::sample::select(vec![PipelineAction::Submit, PipelineAction::Stop]),
        prop::option::of(text()),
        any::<i64>(),
        prop::option::of(text()),
    )
        .prop_map(
            |(tenant, pipeline, action, document, submitted_at, submitted_by)| PipelineSpec {
                tenant,
                pipeline,
                action,
                document,
                submitted_at,
                submitted_by,
            },
        )
}

pub fn any_training_set() -> impl Strategy<Value = TrainingSet> {
    (
        (text(), text(), any::<i64>(), text(), text()),
        (any::<i64>(), text(), any::<i64>(), text(), any::<i64>()),
    )
        .prop_map(
            |(
                (tenant, pipeline, trigger_id, dataset, version),
                (head_changeset, manifest_uri, sample_count, trigger_reason, created_at),
            )| {
                TrainingSet {
                    tenant,
                    pipeline,
                    trigger_id,
                    dataset,
                    version,
                    head_changeset,
                    manifest_uri,
                    sample_count,
                    trigger_reason,
                    created_at,
                }
            },
        )
}

pub fn any_model_release() -> impl Strategy<Value = ModelRelease> {
    (
        (text(), text(), any::<i64>(), text(), text()),
        (
            text(),
            prop::option::of(text()),
            prop::collection::btree_map(text(), finite(), 0..5),
            any::<i64>(),
        ),
    )
        .prop_map(
            |(
                (tenant, pipeline, trigger_id, model_id, model_uri),
                (trainset_version, parent_model, metrics, created_at),
            )| {
                ModelRelease {
                    tenant,
                    pipeline,
                    trigger_id,
                    model_id,
                    model_uri,
                    trainset_version,
                    parent_model,
                    metrics: metrics.into_iter().collect::<BTreeMap<_, _>>(),
                    created_at,
                }
            },
        )
}

/// Decode `bytes` as the event called `name`, discarding the value.
pub fn decode_as(name: &str, bytes: &[u8]) -> Result<(), SchemaError> {
    fn go<E: Event>(bytes: &[u8]) -> Result<(), SchemaError> {
        flywheel_schemas::decode::<E>(bytes).map(drop)
    }
    match name {
        "Sample" => go::<Sample>(bytes),
        "RejectedSample" => go::<RejectedSample>(bytes),
        "Changeset" => go::<Changeset>(bytes),
        "PipelineSpec" => go::<PipelineSpec>(bytes),
        "TrainingSet" => go::<TrainingSet>(bytes),
        "ModelRelease" => go::<ModelRelease>(bytes),
        other => panic!("event {other} is missing from tests/common/mod.rs decode_as"),
    }
}

/// Single-object encode a value with an arbitrary writer schema.
pub fn encode_with(writer: &Schema, value: Value) -> Vec<u8> {
    let datum = GenericDatumWriter::builder(writer)
        .build()
        .and_then(|w| w.write_value_to_vec(value))
        .unwrap_or_else(|e| panic!("generated value does not fit its schema: {e}"));
    let mut out = MARKER.to_vec();
    out.extend_from_slice(&fingerprint(writer).to_le_bytes());
    out.extend_from_slice(&datum);
    out
}

/// A small deterministic generator (xorshift64*), enough for "random-ish" test data.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn text(&mut self) -> String {
        let len = self.below(10);
        (0..len)
            .map(|_| char::from_u32(0x20 + self.below(0x3000) as u32).unwrap_or('?'))
            .collect()
    }

    fn bytes(&mut self) -> Vec<u8> {
        (0..self.below(16)).map(|_| self.next() as u8).collect()
    }
}

/// A random value of `schema` (as a writer would produce), for the schema kinds flywheel uses.
pub fn random_value(schema: &Schema, rng: &mut Rng) -> Value {
    let mut named = HashMap::new();
    collect_named(schema, &mut named);
    gen_value(schema, &named, rng, 0)
}

fn collect_named<'a>(schema: &'a Schema, named: &mut HashMap<String, &'a Schema>) {
    match schema {
        Schema::Record(r) => {
            named.insert(r.name.name().to_owned(), schema);
            for f in &r.fields {
                collect_named(&f.schema, named);
            }
        }
        Schema::Enum(e) => {
            named.insert(e.name.name().to_owned(), schema);
        }
        Schema::Fixed(f) => {
            named.insert(f.name.name().to_owned(), schema);
        }
        Schema::Array(a) => collect_named(&a.items, named),
        Schema::Map(m) => collect_named(&m.types, named),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_named(v, named)),
        _ => {}
    }
}

fn gen_value(
    schema: &Schema,
    named: &HashMap<String, &Schema>,
    rng: &mut Rng,
    depth: u32,
) -> Value {
    let n = if depth > 6 { 0 } else { rng.below(4) };
    match schema {
        Schema::Null => Value::Null,
        Schema::Boolean => Value::Boolean(rng.below(2) == 1),
        Schema::Int => Value::Int(rng.next() as i32),
        Schema::Long => Value::Long(rng.next() as i64),
        Schema::Float => Value::Float((rng.next() as i32) as f32 / 7.0),
        Schema::Double => Value::Double((rng.next() as i64) as f64 / 3.0),
        Schema::Bytes => Value::Bytes(rng.bytes()),
        Schema::String => Value::String(rng.text()),
        Schema::Date => Value::Date(rng.next() as i32),
        Schema::TimestampMillis => Value::TimestampMillis(rng.next() as i64),
        Schema::TimestampMicros => Value::TimestampMicros(rng.next() as i64),
        Schema::Array(a) => Value::Array(
            (0..n)
                .map(|_| gen_value(&a.items, named, rng, depth + 1))
                .collect(),
        ),
        Schema::Map(m) => Value::Map(
            (0..n)
                .map(|_| (rng.text(), gen_value(&m.types, named, rng, depth + 1)))
                .collect(),
        ),
        Schema::Union(u) => {
            let i = if depth > 6 {
                0
            } else {
                rng.below(u.variants().len() as u64)
            };
            let inner = gen_value(&u.variants()[i as usize], named, rng, depth + 1);
            Value::Union(i as u32, Box::new(inner))
        }
        Schema::Record(r) => Value::Record(
            r.fields
                .iter()
                .map(|f| (f.name.clone(), gen_value(&f.schema, named, rng, depth + 1)))
                .collect(),
        ),
        Schema::Enum(e) => {
            let i = rng.below(e.symbols.len() as u64) as usize;
            Value::Enum(i as u32, e.symbols[i].clone())
        }
        Schema::Fixed(f) => Value::Fixed(f.size, (0..f.size).map(|_| rng.next() as u8).collect()),
        Schema::Ref { name } => {
            let target = named
                .get(name.name())
                .unwrap_or_else(|| panic!("unresolved schema reference {}", name.name()));
            gen_value(target, named, rng, depth + 1)
        }
        other => panic!("extend tests/common/mod.rs gen_value for {other:?}"),
    }
}
