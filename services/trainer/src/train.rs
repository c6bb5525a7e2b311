//! The training loop and the evaluation, on a blocking thread: batches come from the
//! [`Loader`] (read and decoded ahead on the async runtime), are turned into tensors and
//! fed through the model; the loss is the cross-entropy weighted by the samples' weights.
//!
//! Bad samples are the pipeline's `on_bad_sample`: `fail` ends the training set at the
//! first, naming its key; `skip` counts them (each key once) and fails the set if more
//! than `max_skipped` of it is skipped. What a run reports as trained is what it trained.
//!
//! Model-feedback downsampling (Modyn's loss and gradient-norm selection): before each
//! epoch the current model scores every sample; the epoch trains on `fraction` of the set
//! drawn with probability proportional to the score, each weighted by the inverse of its
//! probability (times the set's own weight), so the weighted loss estimates the whole set's.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use flywheel_core::pipeline::{
    BadSamplePolicy, Downsample, DownsampleMethod, Optimizer, TrainingConfig,
};
use rand::SeedableRng as _;
use rand::distr::Distribution as _;
use sha2::{Digest as _, Sha256};
use tch::nn::OptimizerConfig as _;
use tch::{Kind, Reduction, Tensor};
use tokio_util::sync::CancellationToken;

use crate::TrainerError;
use crate::decode::BadSample;
use crate::loader::{Batch, Feed, Item, epoch_order};
use crate::model::Net;

/// Samples per batch when scoring or evaluating (no gradients kept).
const EVAL_BATCH: usize = 1024;
/// Skipped samples whose keys a report keeps.
const KEEP_SKIPPED: usize = 20;

/// What a training run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Samples of the set trained on (each once, whatever the epochs).
    pub trained: u64,
    /// Samples skipped as bad (each once).
    pub skipped: u64,
    /// Some of them, with the reason.
    pub skipped_samples: Vec<BadSample>,
    /// Samples fed through the model over all epochs.
    pub fed: u64,
    /// Optimizer steps.
    pub steps: u64,
    /// The last epoch's mean (weighted) loss.
    pub loss: f64,
    /// Wall time of the loop.
    pub seconds: f64,
}

impl Outcome {
    /// Samples through the training loop per second.
    pub fn samples_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.fed as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// A model's evaluation on some samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evaluation {
    /// Samples evaluated.
    pub samples: u64,
    /// Samples that could not be (bad).
    pub skipped: u64,
    /// The share classified right.
    pub accuracy: f64,
    /// The mean cross-entropy (unweighted).
    pub loss: f64,
}

/// Counts bad samples under the pipeline's policy.
#[derive(Debug)]
struct Skips {
    policy: BadSamplePolicy,
    max_share: f64,
    total: usize,
    keys: HashSet<u64>,
    kept: Vec<BadSample>,
}

impl Skips {
    fn new(config: &TrainingConfig, total: usize) -> Self {
        Self {
            policy: config.on_bad_sample,
            max_share: config.max_skipped,
            total,
            keys: HashSet::new(),
            kept: Vec::new(),
        }
    }

    fn note(&mut self, skipped: &[BadSample], during: &str) -> Result<(), TrainerError> {
        for bad in skipped {
            if self.policy == BadSamplePolicy::Fail {
                return Err(TrainerError::Unusable(format!(
                    "{bad} (while {during}; the pipeline's training.on_bad_sample is \"fail\")"
                )));
            }
            if self.keys.insert(bad.key) {
                tracing::warn!(key = bad.key, "trainer: skipping a sample: {}", bad.reason);
                if self.kept.len() < KEEP_SKIPPED {
                    self.kept.push(bad.clone());
                }
            }
        }
        let share = self.keys.len() as f64 / self.total.max(1) as f64;
        if share > self.max_share {
            let first = self
                .kept
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            return Err(TrainerError::Unusable(format!(
                "{} of {} samples are bad, more than training.max_skipped = {} allows; the first: {first}",
                self.keys.len(),
                self.total,
                self.max_share
            )));
        }
        Ok(())
    }
}

fn tensors(net: &Net, batch: &Batch) -> (Tensor, Tensor, Tensor) {
    let device = net.var_store().device();
    let n = batch.len() as i64;
    let xs = Tensor::from_slice(&batch.inputs)
        .view([n, -1])
        .to_device(device);
    let ys = Tensor::from_slice(&batch.classes).to_device(device);
    let ws = Tensor::from_slice(&batch.weights).to_device(device);
    (xs, ys, ws)
}

fn per_sample_loss(logits: &Tensor, ys: &Tensor) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(ys, None, Reduction::None, -100, 0.0)
}

fn next_batch(
    rx: &mut tokio::sync::mpsc::Receiver<Result<Batch, TrainerError>>,
    stop: &CancellationToken,
) -> Result<Option<Batch>, TrainerError> {
    if stop.is_cancelled() {
        return Err(TrainerError::Stopped);
    }
    rx.blocking_recv().transpose()
}

/// Trains `net` on `items` (on a blocking thread). `progress` is told the epoch and the
/// samples done in it after each step.
pub fn train(
    net: &mut Net,
    feed: &dyn Feed,
    items: &Arc<[Item]>,
    version: &str,
    config: &TrainingConfig,
    stop: &CancellationToken,
    mut progress: impl FnMut(u32, u64),
) -> Result<Outcome, TrainerError> {
    let started = Instant::now();
    let mut skips = Skips::new(config, items.len());
    let mut opt = match config.optimizer {
        Optimizer::Adam => tch::nn::Adam::default().build(net.var_store(), config.learning_rate),
        Optimizer::Sgd => tch::nn::Sgd {
            momentum: 0.9,
            ..Default::default()
        }
        .build(net.var_store(), config.learning_rate),
    }
    .map_err(|e| TrainerError::torch("building the optimizer", e))?;
    let mut outcome = Outcome::default();
    let mut trained: HashSet<u64> = HashSet::new();
    for epoch in 0..config.epochs {
        let (epoch_items, order) = match config.downsample {
            None => (
                items.clone(),
                epoch_order(version, epoch, config.seed, items.len()),
            ),
            Some(d) => {
                let scores = score(net, feed, items, d.method, &mut skips, stop)?;
                let drawn = draw(items, &scores, d, version, epoch, config.seed);
                let n = drawn.len();
                (
                    drawn,
                    (0..u32::try_from(n).expect("fewer than 2^32")).collect(),
                )
            }
        };
        let expected = epoch_items.len() as u64;
        let mut rx = feed.batches(epoch_items, order, config.batch_size as usize);
        let (mut loss_sum, mut weight_sum, mut done) = (0f64, 0f64, 0u64);
        while let Some(batch) = next_batch(&mut rx, stop)? {
            skips.note(&batch.skipped, "training")?;
            done += (batch.len() + batch.skipped.len()) as u64;
            if batch.is_empty() {
                continue;
            }
            let (xs, ys, ws) = tensors(net, &batch);
            let per = per_sample_loss(&net.forward(&xs), &ys);
            let total_weight = ws.sum(Kind::Float);
            let loss = (&per * &ws).sum(Kind::Float) / &total_weight;
            opt.backward_step(&loss);
            let w = total_weight.double_value(&[]);
            loss_sum += loss.double_value(&[]) * w;
            weight_sum += w;
            outcome.steps += 1;
            outcome.fed += batch.len() as u64;
            trained.extend(batch.keys.iter().copied());
            progress(epoch, done);
        }
        if done != expected {
            // never train on less than the set without saying so
            return Err(TrainerError::Loader(format!(
                "epoch {epoch} had {done} of its {expected} samples"
            )));
        }
        outcome.loss = if weight_sum > 0.0 {
            loss_sum / weight_sum
        } else {
            0.0
        };
    }
    if trained.is_empty() {
        return Err(TrainerError::Unusable(
            "no sample of the training set could be trained on".into(),
        ));
    }
    outcome.trained = trained.len() as u64;
    outcome.skipped = skips.keys.len() as u64;
    outcome.skipped_samples = skips.kept;
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// Scores every sample of `items` with the current model (0 for a bad one).
fn score(
    net: &Net,
    feed: &dyn Feed,
    items: &Arc<[Item]>,
    method: DownsampleMethod,
    skips: &mut Skips,
    stop: &CancellationToken,
) -> Result<Vec<f64>, TrainerError> {
    let order: Vec<u32> = (0..u32::try_from(items.len()).expect("fewer than 2^32")).collect();
    let mut rx = feed.batches(items.clone(), order, EVAL_BATCH);
    let mut by_key = std::collections::HashMap::with_capacity(items.len());
    while let Some(batch) = next_batch(&mut rx, stop)? {
        skips.note(&batch.skipped, "scoring for downsampling")?;
        if batch.is_empty() {
            continue;
        }
        let (xs, ys, _) = tensors(net, &batch);
        let s = tch::no_grad(|| {
            let logits = net.forward(&xs);
            match method {
                DownsampleMethod::Loss => per_sample_loss(&logits, &ys),
                DownsampleMethod::GradientNorm => {
                    // d loss / d logits = softmax - one-hot
                    let p = logits.softmax(-1, Kind::Float);
                    let onehot = ys.one_hot(p.size()[1]).to_kind(Kind::Float);
                    (p - onehot)
                        .square()
                        .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
                        .sqrt()
                }
            }
        });
        let s: Vec<f32> = Vec::<f32>::try_from(s.to_device(tch::Device::Cpu))
            .map_err(|e| TrainerError::torch("reading scores", e))?;
        for (k, v) in batch.keys.iter().zip(s) {
            by_key.insert(*k, f64::from(v));
        }
    }
    Ok(items
        .iter()
        .map(|it| by_key.get(&it.key).copied().unwrap_or(0.0))
        .collect())
}

/// Draws the epoch's samples: `fraction` of the set, with replacement, with probability
/// proportional to the score (plus a floor, so no sample's probability is 0), each
/// weighted by `weight / (n * p)`.
fn draw(
    items: &Arc<[Item]>,
    scores: &[f64],
    d: Downsample,
    version: &str,
    epoch: u32,
    seed: u64,
) -> Arc<[Item]> {
    let n = items.len();
    let k = ((n as f64 * d.fraction).ceil() as usize).clamp(1, n.max(1));
    let total: f64 = scores.iter().sum();
    let floor = if total > 0.0 {
        total / n as f64 * 1e-3
    } else {
        1.0
    };
    let weights: Vec<f64> = scores.iter().map(|s| s + floor).collect();
    let sum: f64 = weights.iter().sum();
    let Ok(dist) = rand::distr::weighted::WeightedIndex::new(&weights) else {
        return items.clone();
    };
    let mut h = Sha256::new();
    h.update(b"flywheel downsampling\0");
    h.update(version.as_bytes());
    h.update(epoch.to_le_bytes());
    h.update(seed.to_le_bytes());
    let mut rng = rand_chacha::ChaCha8Rng::from_seed(h.finalize().into());
    (0..k)
        .map(|_| {
            let i = dist.sample(&mut rng);
            let p = weights[i] / sum;
            let mut item = items[i].clone();
            #[allow(clippy::cast_possible_truncation)]
            {
                item.weight = (f64::from(item.weight) / (n as f64 * p)) as f32;
            }
            item
        })
        .collect()
}

/// Evaluates `net` on `items`; bad samples are counted, not fatal.
pub fn evaluate(
    net: &Net,
    feed: &dyn Feed,
    items: &Arc<[Item]>,
    stop: &CancellationToken,
) -> Result<Evaluation, TrainerError> {
    let order: Vec<u32> = (0..u32::try_from(items.len()).expect("fewer than 2^32")).collect();
    let mut rx = feed.batches(items.clone(), order, EVAL_BATCH);
    let mut e = Evaluation::default();
    let (mut right, mut loss) = (0f64, 0f64);
    while let Some(batch) = next_batch(&mut rx, stop)? {
        e.skipped += batch.skipped.len() as u64;
        if batch.is_empty() {
            continue;
        }
        let (xs, ys, _) = tensors(net, &batch);
        let (r, l) = tch::no_grad(|| {
            let logits = net.forward(&xs);
            let r = logits.argmax(-1, false).eq_tensor(&ys).sum(Kind::Float);
            let l = per_sample_loss(&logits, &ys).sum(Kind::Float);
            (r.double_value(&[]), l.double_value(&[]))
        });
        right += r;
        loss += l;
        e.samples += batch.len() as u64;
    }
    if e.samples > 0 {
        e.accuracy = right / e.samples as f64;
        e.loss = loss / e.samples as f64;
    }
    Ok(e)
}
