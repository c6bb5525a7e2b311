//! The pipeline document: a TOML file naming a dataset, a trigger policy, a selection
//! policy, the model and its training, and the evaluation. Unknown keys are refused by
//! name; every value is checked, and an error names its field.
//!
//! ```toml
//! name = "sensors-retrain"
//! dataset = "sensors"
//! seed = 7                  # of the selection's draws
//! warm_up_samples = 1000    # no trigger before this many samples
//!
//! [trigger]
//! kind = "data_amount"
//! samples = 10000
//!
//! [selection]
//! policy = "new_data"
//! limit = 50000
//! limit_by = "uniform"
//!
//! [model]
//! kind = "mlp"
//! hidden = [64, 64]
//!
//! [training]
//! epochs = 2
//! batch_size = 256
//! learning_rate = 0.001
//! warm_start = true
//!
//! [evaluation]
//! holdout = 0.1
//! ```

use serde::{Deserialize, Serialize};

use crate::selection::Policy;
use crate::trigger::TriggerConfig;

/// A pipeline as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// The pipeline's name (letters, digits, `-`, `_`; at most 64).
    pub name: String,
    /// The dataset it trains on.
    pub dataset: String,
    /// The seed of the selection's draws.
    #[serde(default)]
    pub seed: u64,
    /// No trigger fires before this many samples.
    #[serde(default)]
    pub warm_up_samples: u64,
    /// When to retrain.
    pub trigger: TriggerConfig,
    /// On which samples.
    pub selection: Policy,
    /// The model.
    pub model: ModelConfig,
    /// How to train it.
    #[serde(default)]
    pub training: TrainingConfig,
    /// How to evaluate it.
    #[serde(default)]
    pub evaluation: EvaluationConfig,
}

/// The model to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelConfig {
    /// Logistic regression over the features.
    Linear,
    /// A multi-layer perceptron with these hidden layer widths.
    Mlp {
        /// Widths of the hidden layers.
        hidden: Vec<u32>,
    },
}

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Passes over the training set.
    #[serde(default = "defaults::epochs")]
    pub epochs: u32,
    /// Samples per step.
    #[serde(default = "defaults::batch_size")]
    pub batch_size: u32,
    /// The optimizer's learning rate.
    #[serde(default = "defaults::learning_rate")]
    pub learning_rate: f64,
    /// Start from the previous model of the pipeline (fine-tune) rather than from scratch.
    #[serde(default = "defaults::warm_start")]
    pub warm_start: bool,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            epochs: defaults::epochs(),
            batch_size: defaults::batch_size(),
            learning_rate: defaults::learning_rate(),
            warm_start: defaults::warm_start(),
        }
    }
}

/// Evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationConfig {
    /// The share of a training set held out to evaluate on, in [0, 1).
    #[serde(default = "defaults::holdout")]
    pub holdout: f64,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            holdout: defaults::holdout(),
        }
    }
}

mod defaults {
    pub(super) fn epochs() -> u32 {
        1
    }
    pub(super) fn batch_size() -> u32 {
        256
    }
    pub(super) fn learning_rate() -> f64 {
        1e-3
    }
    pub(super) fn warm_start() -> bool {
        true
    }
    pub(super) fn holdout() -> f64 {
        0.1
    }
}

/// Why a pipeline document was refused: the field (a dotted path) and the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("pipeline{}{field}: {reason}", if field.is_empty() { "" } else { " " })]
pub struct PipelineError {
    /// The field, e.g. `trigger.samples`; empty for the document as a whole.
    pub field: String,
    /// Why.
    pub reason: String,
}

/// Checks a pipeline name: 1 to 64 ASCII letters, digits, `-` or `_`.
pub fn check_pipeline_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err("use 1 to 64 letters, digits, '-' or '_'".to_owned())
    }
}

impl Pipeline {
    /// Parses and checks a document.
    pub fn parse(text: &str) -> Result<Self, PipelineError> {
        let p: Pipeline = toml::from_str(text).map_err(|e| PipelineError {
            field: String::new(),
            reason: e.to_string().trim().replace('\n', " "),
        })?;
        p.validate()?;
        Ok(p)
    }

    /// Checks every value; the first problem, by field.
    pub fn validate(&self) -> Result<(), PipelineError> {
        let bad = |field: &str, reason: &str| {
            Err(PipelineError {
                field: field.to_owned(),
                reason: reason.to_owned(),
            })
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && (self.name.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return bad("name", "use 1 to 64 letters, digits, '-' or '_'");
        }
        let dataset_ok = !self.dataset.is_empty()
            && (self.dataset.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !dataset_ok {
            return bad("dataset", "not a dataset name");
        }
        self.trigger
            .validate("trigger")
            .map_err(|e| PipelineError {
                field: e.field,
                reason: e.reason,
            })?;
        self.selection.validate().map_err(|e| PipelineError {
            field: format!("selection.{}", e.field),
            reason: e.reason,
        })?;
        if let ModelConfig::Mlp { hidden } = &self.model {
            if hidden.is_empty() {
                return bad("model.hidden", "an mlp needs at least one hidden layer");
            }
            if hidden.iter().any(|&w| w == 0 || w > 65_536) {
                return bad("model.hidden", "layer widths are 1 to 65536");
            }
        }
        let t = &self.training;
        if t.epochs == 0 || t.epochs > 10_000 {
            return bad("training.epochs", "must be 1 to 10000");
        }
        if t.batch_size == 0 {
            return bad("training.batch_size", "must be at least 1");
        }
        if !(t.learning_rate > 0.0 && t.learning_rate < 10.0) {
            return bad("training.learning_rate", "must be in (0, 10)");
        }
        if !(0.0..1.0).contains(&self.evaluation.holdout) {
            return bad("evaluation.holdout", "must be in [0, 1)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "sensors-retrain"
dataset = "sensors"
seed = 7

[trigger]
kind = "data_amount"
samples = 10000

[selection]
policy = "new_data"
limit = 50000
limit_by = "uniform"

[model]
kind = "mlp"
hidden = [64, 64]
"#;

    #[test]
    fn a_good_document_parses_with_defaults() {
        let p = Pipeline::parse(GOOD).unwrap();
        assert_eq!(p.trigger, TriggerConfig::DataAmount { samples: 10_000 });
        assert_eq!(p.training, TrainingConfig::default());
        assert_eq!(p.evaluation.holdout, 0.1);
    }

    #[test]
    fn the_examples_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let p =
                    Pipeline::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(p.dataset, "sensors", "{}", path.display());
                n += 1;
            }
        }
        assert!(n >= 4, "{n} examples");
    }

    #[test]
    fn bad_documents_name_the_field() {
        let cases = [
            (
                GOOD.replace("name = \"sensors-retrain\"", "name = \"a b\""),
                "pipeline name:",
            ),
            (
                GOOD.replace("dataset = \"sensors\"", "dataset = \"\""),
                "pipeline dataset:",
            ),
            (
                GOOD.replace("samples = 10000", "samples = 0"),
                "pipeline trigger.samples:",
            ),
            (
                GOOD.replace("limit = 50000", "limit = 0"),
                "pipeline selection.limit:",
            ),
            (
                GOOD.replace("hidden = [64, 64]", "hidden = []"),
                "pipeline model.hidden:",
            ),
            (
                GOOD.replace("policy = \"new_data\"", "policy = \"best\""),
                "best",
            ),
            (
                GOOD.replace("kind = \"data_amount\"", "kind = \"often\""),
                "often",
            ),
            (GOOD.replace("seed = 7", "seed = 7\nseeds = 8"), "seeds"),
            // inside a tagged table serde names the table and the type, not the key
            (
                GOOD.replace("samples = 10000", "samples = \"many\""),
                "[trigger]",
            ),
            (
                format!("{GOOD}\n[training]\nlearning_rate = 0.0\n"),
                "pipeline training.learning_rate:",
            ),
            (
                format!("{GOOD}\n[evaluation]\nholdout = 1.0\n"),
                "pipeline evaluation.holdout:",
            ),
            (
                GOOD.replace("[model]\nkind = \"mlp\"\nhidden = [64, 64]\n", ""),
                "model",
            ),
        ];
        for (text, want) in cases {
            let e = Pipeline::parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
