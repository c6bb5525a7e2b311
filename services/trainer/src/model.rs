//! The model zoo (logistic regression, MLP, small CNN) on libtorch, built from a model's
//! [`Card`] (its architecture, input shape and classes), stored as safetensors beside
//! the card.

pub use flywheel_core::card::{CARD_FORMAT, Card, card_uri};
use flywheel_core::pipeline::ModelKind;
use tch::nn::{self, Module as _};
use tch::{Device, Tensor};

use crate::TrainerError;
use crate::decode::Shape;

/// A model: its weights and the network over them.
#[derive(Debug)]
pub struct Net {
    vs: nn::VarStore,
    seq: nn::Sequential,
    card: Card,
}

/// The device: a CUDA GPU where there is one and the build has the `cuda` feature (which
/// links libtorch's CUDA library), the CPU otherwise.
pub fn device() -> Device {
    Device::cuda_if_available()
}

impl Net {
    /// A freshly initialised model (weights drawn with `seed`).
    pub fn new(card: Card, device: Device, seed: u64) -> Result<Self, TrainerError> {
        if card.labels.len() < 2 {
            return Err(TrainerError::Unusable(format!(
                "a classifier needs at least two classes; the labels are {:?} (name the classes with [model] labels)",
                card.labels
            )));
        }
        #[allow(clippy::cast_possible_wrap)]
        tch::manual_seed(seed as i64);
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let classes = card.labels.len() as i64;
        let mut seq = nn::seq();
        match (card.kind, card.input) {
            (ModelKind::Linear, shape) => {
                seq = seq.add(nn::linear(
                    &root / "out",
                    shape.len() as i64,
                    classes,
                    Default::default(),
                ));
            }
            (ModelKind::Mlp, shape) => {
                let mut width = shape.len() as i64;
                for (i, &h) in card.hidden.iter().enumerate() {
                    seq = seq
                        .add(nn::linear(
                            &root / format!("hidden{i}"),
                            width,
                            i64::from(h),
                            Default::default(),
                        ))
                        .add_fn(Tensor::relu);
                    width = i64::from(h);
                }
                seq = seq.add(nn::linear(
                    &root / "out",
                    width,
                    classes,
                    Default::default(),
                ));
            }
            (
                ModelKind::Cnn,
                Shape::Image {
                    width,
                    height,
                    channels,
                },
            ) => {
                let (w, h, c) = (i64::from(width), i64::from(height), i64::from(channels));
                seq = seq.add_fn(move |xs| xs.view([-1, c, h, w]));
                let conv = nn::ConvConfig {
                    padding: 1,
                    ..Default::default()
                };
                let (mut side_w, mut side_h, mut from) = (w, h, c);
                for (i, &to) in card.channels.iter().enumerate() {
                    seq = seq
                        .add(nn::conv2d(
                            &root / format!("conv{i}"),
                            from,
                            i64::from(to),
                            3,
                            conv,
                        ))
                        .add_fn(|xs| xs.relu().max_pool2d_default(2));
                    from = i64::from(to);
                    side_w /= 2;
                    side_h /= 2;
                }
                seq = seq.add_fn(Tensor::flat_view).add(nn::linear(
                    &root / "out",
                    from * side_w * side_h,
                    classes,
                    Default::default(),
                ));
            }
            (ModelKind::Cnn, Shape::Features { .. }) => {
                return Err(TrainerError::Unusable("a cnn takes images".into()));
            }
        }
        Ok(Self { vs, seq, card })
    }

    /// A stored model (its card and safetensors weights), on the CPU, to predict with; a
    /// clear error naming `what` if the weights are not the card's model.
    pub fn stored(card: Card, weights: &[u8], what: &str) -> Result<Self, TrainerError> {
        let mut net = Self::new(card, Device::Cpu, 0)?;
        net.load_safetensors(weights, what)?;
        Ok(net)
    }

    /// The class (an index into the card's labels) it predicts for each input of
    /// `inputs`, `n` inputs of the card's input length one after another.
    ///
    /// # Panics
    /// If `inputs` is not a whole number of inputs.
    pub fn predict(&self, inputs: &[f32]) -> Vec<usize> {
        let width = self.card.input.len();
        assert!(
            width > 0 && inputs.len().is_multiple_of(width),
            "{} values are not inputs of {width}",
            inputs.len()
        );
        if inputs.is_empty() {
            return Vec::new();
        }
        let xs = Tensor::from_slice(inputs)
            .view([-1, width as i64])
            .to_device(self.vs.device());
        let classes = tch::no_grad(|| self.forward(&xs).argmax(-1, false));
        let classes: Vec<i64> =
            Vec::try_from(classes.to_device(Device::Cpu)).expect("argmax gives integers");
        classes
            .into_iter()
            .map(|c| usize::try_from(c).expect("a class index"))
            .collect()
    }

    /// Its card.
    pub fn card(&self) -> &Card {
        &self.card
    }

    /// The logits of a batch of inputs (`[n, input]`).
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        self.seq.forward(xs)
    }

    /// Its weights.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Its weights as safetensors bytes.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, TrainerError> {
        let dir = tempfile::tempdir().map_err(|e| TrainerError::io("a temporary directory", e))?;
        let path = dir.path().join("model.safetensors");
        self.vs
            .save(&path)
            .map_err(|e| TrainerError::torch("writing the model", e))?;
        std::fs::read(&path).map_err(|e| TrainerError::io("reading the written model", e))
    }

    /// Loads weights from safetensors bytes; a clear error naming `what` if they are not
    /// this model's.
    pub fn load_safetensors(&mut self, bytes: &[u8], what: &str) -> Result<(), TrainerError> {
        let dir = tempfile::tempdir().map_err(|e| TrainerError::io("a temporary directory", e))?;
        let path = dir.path().join("model.safetensors");
        std::fs::write(&path, bytes).map_err(|e| TrainerError::io("writing a model to load", e))?;
        // libtorch may panic on some malformed files; a panic is the file's fault too
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.vs.load(&path)));
        match loaded {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(TrainerError::Unusable(format!("{what} does not load: {e}"))),
            Err(_) => Err(TrainerError::Unusable(format!("{what} does not load"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flywheel_core::pipeline::ModelConfig;

    fn card(kind: ModelKind, input: Shape) -> Card {
        let model = ModelConfig {
            kind,
            hidden: Vec::new(),
            channels: Vec::new(),
            labels: Vec::new(),
        };
        Card::new(&model, input, vec!["a".into(), "b".into(), "c".into()])
    }

    /// With the `cuda` feature, libtorch's CUDA library is loaded (where libtorch has one),
    /// so `device()` can find a GPU; a CPU-only machine still trains on the CPU.
    #[cfg(feature = "cuda")]
    #[test]
    fn the_cuda_feature_loads_libtorchs_cuda_library() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(
            maps.contains("libtorch_cuda"),
            "libtorch_cuda is not loaded"
        );
        let d = device();
        assert_eq!(d.is_cuda(), tch::Cuda::is_available());
    }

    #[test]
    fn every_model_gives_one_logit_per_class_and_round_trips() {
        let features = Shape::Features { width: 5 };
        let image = Shape::Image {
            width: 8,
            height: 6,
            channels: 3,
        };
        for (kind, shape) in [
            (ModelKind::Linear, features),
            (ModelKind::Mlp, features),
            (ModelKind::Linear, image),
            (ModelKind::Cnn, image),
        ] {
            let net = Net::new(card(kind, shape), Device::Cpu, 1).unwrap();
            let xs = Tensor::rand([4, shape.len() as i64], (tch::Kind::Float, Device::Cpu));
            let out = net.forward(&xs);
            assert_eq!(out.size(), vec![4, 3], "{kind:?}");

            let bytes = net.to_safetensors().unwrap();
            let mut other = Net::new(card(kind, shape), Device::Cpu, 2).unwrap();
            assert!(
                other
                    .forward(&xs)
                    .not_equal_tensor(&out)
                    .any()
                    .int64_value(&[])
                    == 1
            );
            other.load_safetensors(&bytes, "the model").unwrap();
            assert!(
                other.forward(&xs).allclose(&out, 1e-6, 1e-6, false),
                "{kind:?}"
            );
            // a stored model predicts the argmax of its logits
            let stored = Net::stored(card(kind, shape), &bytes, "the model").unwrap();
            let inputs: Vec<f32> = Vec::try_from(xs.flatten(0, -1)).unwrap();
            let want: Vec<i64> = Vec::try_from(out.argmax(-1, false)).unwrap();
            let got: Vec<i64> = (stored.predict(&inputs).into_iter())
                .map(|c| c as i64)
                .collect();
            assert_eq!(got, want, "{kind:?}");
            assert!(stored.predict(&[]).is_empty());

            // a model of another shape does not load them
            let mut wider = Net::new(card(kind, Shape::Features { width: 9 }), Device::Cpu, 1);
            if let Ok(w) = &mut wider {
                let e = w
                    .load_safetensors(&bytes, "model m")
                    .unwrap_err()
                    .to_string();
                assert!(e.starts_with("model m does not load"), "{e}");
            }
        }
        let mut net = Net::new(card(ModelKind::Mlp, features), Device::Cpu, 1).unwrap();
        let e = net
            .load_safetensors(b"not safetensors", "model m")
            .unwrap_err();
        assert!(e.to_string().starts_with("model m does not load"), "{e}");
        let e = Net::new(card(ModelKind::Cnn, features), Device::Cpu, 1).unwrap_err();
        assert!(e.to_string().contains("a cnn takes images"), "{e}");
    }
}
