//! What a stored model is: its card (architecture, input shape, classes), stored as JSON
//! beside the model's weights (`{id}-{digest}.safetensors` and `{id}-{digest}.json`).
//! Pure data, so that readers of models (the gateway, the CLI) need no libtorch.

use serde::{Deserialize, Serialize};

use crate::pipeline::{InputConfig, ModelConfig, ModelKind};

/// Format of a card.
pub const CARD_FORMAT: u32 = 1;

/// The shape of a model's input, resolved (a feature width is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shape {
    /// A feature vector of this length.
    Features {
        /// Its length.
        width: u32,
    },
    /// An image.
    Image {
        /// Pixels across.
        width: u32,
        /// Pixels down.
        height: u32,
        /// 1 (grey) or 3 (RGB).
        channels: u32,
    },
}

impl Shape {
    /// Values per sample.
    pub fn len(self) -> usize {
        match self {
            Shape::Features { width } => width as usize,
            Shape::Image {
                width,
                height,
                channels,
            } => (width * height * channels) as usize,
        }
    }

    /// Whether the input is empty (never, for a valid shape).
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The shape a pipeline's `[input]` gives, with the feature width, if it leaves it
    /// open, from `first` (the first sample's feature count).
    pub fn resolve(input: &InputConfig, first: impl FnOnce() -> Option<u32>) -> Option<Self> {
        match *input {
            InputConfig::Features { width: Some(width) } => Some(Shape::Features { width }),
            InputConfig::Features { width: None } => first()
                .filter(|&w| w > 0)
                .map(|width| Shape::Features { width }),
            InputConfig::Image {
                width,
                height,
                channels,
            } => Some(Shape::Image {
                width,
                height,
                channels,
            }),
        }
    }

    /// Whether it decodes images (and so needs a sample's payload or blob).
    pub fn is_image(self) -> bool {
        matches!(self, Shape::Image { .. })
    }
}

/// What a stored model is: enough to build it again and load its weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// [`CARD_FORMAT`].
    pub format: u32,
    /// The architecture.
    pub kind: ModelKind,
    /// The input.
    pub input: Shape,
    /// An mlp's hidden widths.
    #[serde(default)]
    pub hidden: Vec<u32>,
    /// A cnn's convolution channels.
    #[serde(default)]
    pub channels: Vec<u32>,
    /// The classes, in the order of the outputs.
    pub labels: Vec<String>,
}

/// Why bytes are not a card.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {reason}")]
pub struct CardError {
    /// The card read.
    pub what: String,
    /// What is wrong.
    pub reason: String,
}

impl Card {
    /// The card of a pipeline's model for this input and these classes.
    pub fn new(model: &ModelConfig, input: Shape, labels: Vec<String>) -> Self {
        Self {
            format: CARD_FORMAT,
            kind: model.kind,
            input,
            hidden: if model.kind == ModelKind::Mlp {
                model.hidden_layers()
            } else {
                Vec::new()
            },
            channels: if model.kind == ModelKind::Cnn {
                model.conv_channels()
            } else {
                Vec::new()
            },
            labels,
        }
    }

    /// Whether a model of `other`'s card can start from this one's weights.
    pub fn same_architecture(&self, other: &Card) -> bool {
        self == other
    }

    /// Reads a card (`what` names it in the error).
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self, CardError> {
        let bad = |reason: String| CardError {
            what: what.to_owned(),
            reason,
        };
        let card: Card =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("is not a model card: {e}")))?;
        if card.format != CARD_FORMAT {
            return Err(bad(format!(
                "has card format {} (this build reads {CARD_FORMAT})",
                card.format
            )));
        }
        Ok(card)
    }
}

/// The card beside a model's weights.
pub fn card_uri(model_uri: &str) -> String {
    let base = model_uri.strip_suffix(".safetensors").unwrap_or(model_uri);
    format!("{base}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(kind: ModelKind) -> ModelConfig {
        ModelConfig {
            kind,
            hidden: Vec::new(),
            channels: Vec::new(),
            labels: Vec::new(),
        }
    }

    #[test]
    fn cards_fill_defaults_and_parse_or_say_why() {
        let c = Card::new(
            &model(ModelKind::Mlp),
            Shape::Features { width: 3 },
            vec!["a".into(), "b".into()],
        );
        assert_eq!((c.hidden.clone(), c.channels.clone()), (vec![64], vec![]));
        let json = serde_json::to_vec(&c).unwrap();
        assert_eq!(Card::parse(&json, "card").unwrap(), c);
        let e = Card::parse(b"{}", "card x").unwrap_err().to_string();
        assert!(e.starts_with("card x is not a model card"), "{e}");
        let future = String::from_utf8(json)
            .unwrap()
            .replace("\"format\":1", "\"format\":9");
        let e = Card::parse(future.as_bytes(), "card x")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "card x has card format 9 (this build reads 1)");
        assert_eq!(
            card_uri("t/models/p/p-1-ab.safetensors"),
            "t/models/p/p-1-ab.json"
        );
    }

    #[test]
    fn shapes_resolve_from_the_input_or_the_first_sample() {
        let open = InputConfig::Features { width: None };
        assert_eq!(
            Shape::resolve(&open, || Some(4)),
            Some(Shape::Features { width: 4 })
        );
        assert_eq!(Shape::resolve(&open, || Some(0)), None);
        assert_eq!(
            Shape::resolve(&InputConfig::Features { width: Some(2) }, || None),
            Some(Shape::Features { width: 2 })
        );
        let image = InputConfig::Image {
            width: 4,
            height: 3,
            channels: 3,
        };
        let s = Shape::resolve(&image, || None).unwrap();
        assert_eq!((s.len(), s.is_image()), (36, true));
    }
}
