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
//! [input]                   # how a sample becomes the model's input
//! kind = "features"         # its feature vector (or "image": its PNG/JPEG payload)
//! width = 3                 # the vector's length (default: the first sample's)
//!
//! [model]
//! kind = "mlp"              # "linear" (logistic regression), "mlp" or "cnn"
//! hidden = [64, 64]
//! labels = ["ok", "fault"]  # the classes, in order (default: the first set's, sorted)
//!
//! [training]
//! epochs = 2
//! batch_size = 256
//! learning_rate = 0.001
//! optimizer = "adam"        # or "sgd"
//! seed = 1                  # of the initial weights and the epochs' order
//! warm_start = true
//! on_bad_sample = "fail"    # or "skip": count it, name its key, go on
//! max_skipped = 0.01        # with "skip": the set fails if more are skipped
//! downsample = { method = "loss", fraction = 0.5 }   # Modyn's model-feedback selection
//!
//! [evaluation]
//! holdout = 0.1             # of the training set, by key
//! after = 10000             # at most this many samples that arrived after the set
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
    /// How a sample becomes the model's input.
    #[serde(default)]
    pub input: InputConfig,
    /// The model.
    pub model: ModelConfig,
    /// How to train it.
    #[serde(default)]
    pub training: TrainingConfig,
    /// How to evaluate it.
    #[serde(default)]
    pub evaluation: EvaluationConfig,
}

/// How a sample is decoded into the model's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InputConfig {
    /// The sample's feature vector.
    Features {
        /// Its length; by default the first sample's. A sample of another length is bad.
        #[serde(default)]
        width: Option<u32>,
    },
    /// The sample's payload (or blob): a PNG or JPEG image of exactly this size, as
    /// `channels` planes of values in [0, 1].
    Image {
        /// Pixels across.
        width: u32,
        /// Pixels down.
        height: u32,
        /// 1 (grey) or 3 (RGB).
        #[serde(default = "defaults::channels")]
        channels: u32,
    },
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig::Features { width: None }
    }
}

/// The model's architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Logistic regression over the input.
    Linear,
    /// A multi-layer perceptron.
    Mlp,
    /// A small convolutional network (images).
    Cnn,
}

impl ModelKind {
    /// Its name in a document.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Linear => "linear",
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn => "cnn",
        }
    }
}

/// The model to train.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The architecture.
    pub kind: ModelKind,
    /// An mlp's hidden layer widths (default `[64]`).
    #[serde(default)]
    pub hidden: Vec<u32>,
    /// A cnn's convolution channels, one 3x3 convolution and 2x2 pooling each (default
    /// `[16, 32]`).
    #[serde(default)]
    pub channels: Vec<u32>,
    /// The classes, in the order of the model's outputs. Empty (the default): the labels
    /// of the pipeline's first training set, sorted; a warm-started model keeps its
    /// parent's.
    #[serde(default)]
    pub labels: Vec<String>,
}

impl ModelConfig {
    /// An mlp's hidden widths, the default filled in.
    pub fn hidden_layers(&self) -> Vec<u32> {
        if self.hidden.is_empty() {
            vec![64]
        } else {
            self.hidden.clone()
        }
    }

    /// A cnn's channels, the default filled in.
    pub fn conv_channels(&self) -> Vec<u32> {
        if self.channels.is_empty() {
            vec![16, 32]
        } else {
            self.channels.clone()
        }
    }
}

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    /// Adam.
    #[default]
    Adam,
    /// Stochastic gradient descent with momentum 0.9.
    Sgd,
}

/// What a bad sample (a missing blob, an image that does not decode, a feature vector of
/// the wrong length, a label the model has no class for) does to its training set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadSamplePolicy {
    /// The training set fails, with the sample's key and the reason.
    #[default]
    Fail,
    /// The sample is skipped and counted (with its key in the log and the release's
    /// metrics); the set fails if more than `max_skipped` of it is skipped.
    Skip,
}

/// How the trainer scores samples with the current model to keep the most useful ones
/// (Modyn's model-feedback downsampling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownsampleMethod {
    /// By the sample's loss.
    Loss,
    /// By the norm of the loss's gradient at the model's output (an upper bound of the
    /// whole gradient's norm, up to a constant).
    GradientNorm,
}

/// Model-feedback downsampling: each epoch trains on `fraction` of the set, drawn with
/// probability proportional to the score and weighted by its inverse (so the expected
/// loss is the whole set's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Downsample {
    /// What scores a sample.
    pub method: DownsampleMethod,
    /// The share of the set kept, in (0, 1].
    pub fraction: f64,
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
    /// The optimizer.
    #[serde(default)]
    pub optimizer: Optimizer,
    /// The seed of the initial weights, the epochs' order and the downsampling draws.
    #[serde(default)]
    pub seed: u64,
    /// Start from the previous model of the pipeline (fine-tune) rather than from scratch.
    #[serde(default = "defaults::warm_start")]
    pub warm_start: bool,
    /// What a bad sample does.
    #[serde(default)]
    pub on_bad_sample: BadSamplePolicy,
    /// With `on_bad_sample = "skip"`, the largest share of a set that may be skipped.
    #[serde(default = "defaults::max_skipped")]
    pub max_skipped: f64,
    /// Model-feedback downsampling, if any.
    #[serde(default)]
    pub downsample: Option<Downsample>,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            epochs: defaults::epochs(),
            batch_size: defaults::batch_size(),
            learning_rate: defaults::learning_rate(),
            optimizer: Optimizer::default(),
            seed: 0,
            warm_start: defaults::warm_start(),
            on_bad_sample: BadSamplePolicy::default(),
            max_skipped: defaults::max_skipped(),
            downsample: None,
        }
    }
}

/// Evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationConfig {
    /// The share of a training set held out to evaluate on, in [0, 1), chosen by key.
    #[serde(default = "defaults::holdout")]
    pub holdout: f64,
    /// The model is also evaluated on at most this many samples that arrived after its
    /// training set (the data it will meet); 0: not.
    #[serde(default = "defaults::after")]
    pub after: u64,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            holdout: defaults::holdout(),
            after: defaults::after(),
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
    pub(super) fn after() -> u64 {
        10_000
    }
    pub(super) fn channels() -> u32 {
        1
    }
    pub(super) fn max_skipped() -> f64 {
        0.01
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
        let m = &self.model;
        if m.kind != ModelKind::Mlp && !m.hidden.is_empty() {
            return bad("model.hidden", "only an mlp has hidden layers");
        }
        if m.hidden.iter().any(|&w| w == 0 || w > 65_536) {
            return bad("model.hidden", "layer widths are 1 to 65536");
        }
        if m.kind != ModelKind::Cnn && !m.channels.is_empty() {
            return bad("model.channels", "only a cnn has convolution channels");
        }
        if m.channels.len() > 4 || m.channels.iter().any(|&c| c == 0 || c > 1024) {
            return bad(
                "model.channels",
                "at most 4 convolutions of 1 to 1024 channels",
            );
        }
        if m.labels.len() == 1 {
            return bad("model.labels", "a classifier needs at least two labels");
        }
        if let Some(l) = m.labels.iter().find(|l| l.is_empty()) {
            return bad("model.labels", &format!("{l:?} is not a label"));
        }
        let mut labels = m.labels.clone();
        labels.sort();
        if let Some(w) = labels.windows(2).find(|w| w[0] == w[1]) {
            return bad("model.labels", &format!("{:?} appears twice", w[0]));
        }
        match self.input {
            InputConfig::Features { width } => {
                if width.is_some_and(|w| w == 0 || w > 1 << 20) {
                    return bad("input.width", "must be 1 to 1048576");
                }
                if m.kind == ModelKind::Cnn {
                    return bad(
                        "model.kind",
                        "a cnn takes images ([input] kind = \"image\")",
                    );
                }
            }
            InputConfig::Image {
                width,
                height,
                channels,
            } => {
                if !(1..=4096).contains(&width) {
                    return bad("input.width", "must be 1 to 4096");
                }
                if !(1..=4096).contains(&height) {
                    return bad("input.height", "must be 1 to 4096");
                }
                if channels != 1 && channels != 3 {
                    return bad("input.channels", "must be 1 (grey) or 3 (RGB)");
                }
                let pooled = m.conv_channels().len() as u32;
                if m.kind == ModelKind::Cnn && (width >> pooled == 0 || height >> pooled == 0) {
                    return bad(
                        "input.width",
                        "the image is too small for the cnn's poolings (each halves it)",
                    );
                }
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
        if !(0.0..=1.0).contains(&t.max_skipped) {
            return bad("training.max_skipped", "must be in [0, 1]");
        }
        if let Some(d) = t.downsample
            && !(d.fraction > 0.0 && d.fraction <= 1.0)
        {
            return bad("training.downsample.fraction", "must be in (0, 1]");
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
        assert_eq!(p.evaluation.after, 10_000);
        assert_eq!(p.input, InputConfig::Features { width: None });
        assert_eq!(p.model.hidden_layers(), vec![64, 64]);
    }

    #[test]
    fn a_cnn_on_images_parses() {
        let doc = GOOD.replace("kind = \"mlp\"\nhidden = [64, 64]", "kind = \"cnn\"")
            + "[input]\nkind = \"image\"\nwidth = 28\nheight = 28\n\
               [training]\noptimizer = \"sgd\"\non_bad_sample = \"skip\"\n\
               downsample = { method = \"gradient_norm\", fraction = 0.25 }\n";
        let p = Pipeline::parse(&doc).unwrap();
        assert_eq!(
            p.input,
            InputConfig::Image {
                width: 28,
                height: 28,
                channels: 1
            }
        );
        assert_eq!(p.model.kind, ModelKind::Cnn);
        assert_eq!(p.model.conv_channels(), vec![16, 32]);
        assert_eq!(p.training.optimizer, Optimizer::Sgd);
        assert_eq!(p.training.on_bad_sample, BadSamplePolicy::Skip);
        assert_eq!(
            p.training.downsample,
            Some(Downsample {
                method: DownsampleMethod::GradientNorm,
                fraction: 0.25
            })
        );
        // two poolings (the default channels) halve 4 to 1, and 3 to nothing
        let four = doc.replace("width = 28\nheight = 28", "width = 4\nheight = 4");
        assert!(Pipeline::parse(&four).is_ok());
        let tiny = doc.replace("width = 28\nheight = 28", "width = 3\nheight = 3");
        let e = Pipeline::parse(&tiny).unwrap_err().to_string();
        assert!(e.contains("pipeline input.width:"), "{e}");
        // a cnn needs images
        let e =
            Pipeline::parse(&GOOD.replace("kind = \"mlp\"\nhidden = [64, 64]", "kind = \"cnn\""))
                .unwrap_err()
                .to_string();
        assert!(e.contains("pipeline model.kind:"), "{e}");
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
                GOOD.replace("hidden = [64, 64]", "hidden = [0]"),
                "pipeline model.hidden:",
            ),
            (
                GOOD.replace("kind = \"mlp\"", "kind = \"linear\""),
                "pipeline model.hidden:",
            ),
            (
                GOOD.replace("kind = \"mlp\"", "kind = \"cnn\""),
                "pipeline model.hidden:",
            ),
            (
                GOOD.replace("hidden = [64, 64]", "labels = [\"a\", \"a\"]"),
                "pipeline model.labels: \"a\" appears twice",
            ),
            (
                GOOD.replace("hidden = [64, 64]", "labels = [\"a\"]"),
                "pipeline model.labels:",
            ),
            (
                GOOD.replace("hidden = [64, 64]", "channels = [8]"),
                "pipeline model.channels:",
            ),
            (
                format!(
                    "{GOOD}\n[input]\nkind = \"image\"\nwidth = 28\nheight = 28\nchannels = 2\n"
                ),
                "pipeline input.channels:",
            ),
            (
                format!("{GOOD}\n[input]\nkind = \"features\"\nwidth = 0\n"),
                "pipeline input.width:",
            ),
            (format!("{GOOD}\n[input]\nkind = \"sound\"\n"), "sound"),
            (
                format!(
                    "{GOOD}\n[training]\ndownsample = {{ method = \"loss\", fraction = 0.0 }}\n"
                ),
                "pipeline training.downsample.fraction:",
            ),
            (
                format!(
                    "{GOOD}\n[training]\ndownsample = {{ method = \"entropy\", fraction = 0.5 }}\n"
                ),
                "entropy",
            ),
            (
                format!("{GOOD}\n[training]\nmax_skipped = 2.0\n"),
                "pipeline training.max_skipped:",
            ),
            (
                format!("{GOOD}\n[training]\non_bad_sample = \"ignore\"\n"),
                "ignore",
            ),
            (
                format!("{GOOD}\n[training]\noptimizer = \"lbfgs\"\n"),
                "lbfgs",
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
