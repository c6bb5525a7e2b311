//! The JSON request bodies of the API are objects. serde's derived `Deserialize` also reads
//! a struct from an array of its fields in order (`["sensors"]` as `{"dataset":
//! "sensors"}`, `["remove", [1]]` as a removal), which no client means and no document
//! describes; [`Object`] refuses anything but an object, before the fields are read.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// A `T` read from a JSON object only: `axum::Json<Object<T>>`.
#[derive(Debug)]
pub(crate) struct Object<T>(pub(crate) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Query {
        dataset: String,
        #[serde(default)]
        labels: Vec<String>,
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Edit {
        Remove { keys: Vec<u64> },
    }

    fn read<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
        serde_json::from_str::<Object<T>>(text)
            .map(|o| o.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn objects_are_read_as_before() {
        assert_eq!(
            read::<Query>(r#"{"dataset":"d","labels":["a"]}"#).unwrap(),
            Query {
                dataset: "d".into(),
                labels: vec!["a".into()]
            }
        );
        assert_eq!(
            read::<Edit>(r#"{"kind":"remove","keys":[1]}"#).unwrap(),
            Edit::Remove { keys: vec![1] }
        );
        let e = read::<Query>(r#"{"dataset":"d","lables":[]}"#).unwrap_err();
        assert!(e.contains("unknown field `lables`"), "{e}");
        let e = read::<Edit>(r#"{"kind":"explode"}"#).unwrap_err();
        assert!(e.contains("unknown variant `explode`"), "{e}");
    }

    #[test]
    fn anything_else_is_refused() {
        // plain serde reads these two
        serde_json::from_str::<Query>(r#"["d"]"#).unwrap();
        serde_json::from_str::<Edit>(r#"["remove", [1]]"#).unwrap();
        for text in [
            r#"["d"]"#,
            r#"["remove", [1]]"#,
            r#""d""#,
            "7",
            "null",
            "true",
        ] {
            let e = read::<Query>(text).unwrap_err();
            assert!(e.contains("expected a JSON object"), "{text}: {e}");
            let e = read::<Edit>(text).unwrap_err();
            assert!(e.contains("expected a JSON object"), "{text}: {e}");
        }
    }
}
