//! How the demo's models did on its stream. A model is live from the end of the changeset
//! its training set was pinned to (the samples it could have been trained on) until the
//! next model is: each sample is scored by the model that was live when it arrived,
//! against its true label (known to the collector even when it was published without one).

use flywheel_trainer::model::Net;
use loadgen::streams::Generated;
use serde::Serialize;

/// The accuracy of `net` on `samples`; `None` for no samples.
pub(crate) fn accuracy(net: &Net, samples: &[Generated]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let width = net.card().input.len();
    let mut inputs = Vec::with_capacity(samples.len() * width);
    let mut fits = Vec::with_capacity(samples.len());
    for g in samples {
        // a sample the model cannot take counts as wrong
        let ok = g.sample.features.len() == width;
        fits.push(ok);
        #[allow(clippy::cast_possible_truncation)]
        inputs.extend((0..width).map(|j| if ok { g.sample.features[j] as f32 } else { 0.0 }));
    }
    let labels = &net.card().labels;
    let right = (net.predict(&inputs).iter().zip(samples).zip(fits))
        .filter(|((p, g), ok)| *ok && labels.get(**p).is_some_and(|l| *l == g.truth))
        .count();
    Some(right as f64 / samples.len() as f64)
}

/// What a model did while it was live.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Window {
    /// The first sample it was live for.
    pub(crate) from: usize,
    /// The samples it was live for.
    pub(crate) samples: usize,
    /// The previous model's accuracy on them (`None` for the first model).
    pub(crate) before: Option<f64>,
    /// Its accuracy on them.
    pub(crate) after: Option<f64>,
}

/// For each model (in the order they went live), its window; `score(m, samples)` is model
/// `m`'s accuracy on `samples`.
pub(crate) fn windows<T>(
    starts: &[usize],
    stream: &[T],
    score: impl Fn(usize, &[T]) -> Option<f64>,
) -> Vec<Window> {
    (0..starts.len())
        .map(|m| {
            let from = starts[m].min(stream.len());
            let to = starts
                .get(m + 1)
                .map_or(stream.len(), |&n| n.min(stream.len()));
            let live = &stream[from..to.max(from)];
            Window {
                from,
                samples: live.len(),
                before: m.checked_sub(1).and_then(|p| score(p, live)),
                after: score(m, live),
            }
        })
        .collect()
}

/// A point of the accuracy-over-time line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Point {
    /// The bucket's first sample.
    pub(crate) from: usize,
    /// Its samples.
    pub(crate) samples: usize,
    /// The model live at its first sample (an index into the models), if any.
    pub(crate) model: Option<usize>,
    /// That model's accuracy on the bucket.
    pub(crate) accuracy: Option<f64>,
}

/// The stream in buckets of `bucket` samples, each scored by the model live at its first
/// sample (none before the first model).
pub(crate) fn over_time<T>(
    starts: &[usize],
    stream: &[T],
    bucket: usize,
    score: impl Fn(usize, &[T]) -> Option<f64>,
) -> Vec<Point> {
    (0..stream.len())
        .step_by(bucket.max(1))
        .map(|from| {
            let to = (from + bucket.max(1)).min(stream.len());
            let model = starts.iter().rposition(|&s| s <= from);
            Point {
                from,
                samples: to - from,
                model,
                accuracy: model.and_then(|m| score(m, &stream[from..to])),
            }
        })
        .collect()
}

/// The mean of the points' accuracies, weighted by their samples, over the points at or
/// after sample `from` that have one.
pub(crate) fn mean_accuracy(points: &[Point], from: usize) -> Option<f64> {
    let (sum, n) = points
        .iter()
        .filter(|p| p.from >= from)
        .filter_map(|p| p.accuracy.map(|a| (a * p.samples as f64, p.samples)))
        .fold((0.0, 0usize), |(s, n), (a, k)| (s + a, n + k));
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake stream: sample `i` is "right" for model `m` when `i % (m + 2) == 0`.
    fn score(m: usize, s: &[usize]) -> Option<f64> {
        (!s.is_empty())
            .then(|| s.iter().filter(|&&i| i % (m + 2) == 0).count() as f64 / s.len() as f64)
    }

    #[test]
    fn each_model_is_scored_while_it_is_live_against_the_one_before() {
        let stream: Vec<usize> = (0..100).collect();
        let w = windows(&[10, 40, 100], &stream, score);
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].from, w[0].samples, w[0].before), (10, 30, None));
        assert_eq!(w[0].after, score(0, &stream[10..40]));
        assert_eq!((w[1].from, w[1].samples), (40, 60));
        assert_eq!(w[1].before, score(0, &stream[40..]));
        assert_eq!(w[1].after, score(1, &stream[40..]));
        // released after the stream's end: live for nothing
        assert_eq!((w[2].samples, w[2].before, w[2].after), (0, None, None));
    }

    #[test]
    fn buckets_are_scored_by_the_model_live_at_their_start() {
        let stream: Vec<usize> = (0..100).collect();
        let points = over_time(&[10, 40], &stream, 25, score);
        let models: Vec<Option<usize>> = points.iter().map(|p| p.model).collect();
        assert_eq!(models, [None, Some(0), Some(1), Some(1)]);
        assert_eq!(points[0].accuracy, None);
        assert_eq!(points[1].accuracy, score(0, &stream[25..50]));
        assert_eq!(points[3].samples, 25);
        let mean = mean_accuracy(&points, 25).unwrap();
        let want = (score(0, &stream[25..50]).unwrap()
            + score(1, &stream[50..75]).unwrap()
            + score(1, &stream[75..]).unwrap())
            / 3.0;
        assert!((mean - want).abs() < 1e-12);
        assert_eq!(mean_accuracy(&points[..1], 0), None);
        assert!(over_time(&[0], &stream[..0], 10, score).is_empty());
    }
}
