//! Prometheus metrics of the trainer, registered in the process's registry.

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    core::Collector,
};

/// Metric families the trainer updates.
#[derive(Debug, Clone)]
pub struct TrainerMetrics {
    /// `flywheel_trainer_trainsets_total{tenant,outcome}`: training sets handled:
    /// `released`, `already_released` (found released after a restart) or `failed`
    /// (dead-lettered).
    pub trainsets: IntCounterVec,
    /// `flywheel_trainer_samples_total{tenant}`: samples fed through training loops.
    pub samples: IntCounterVec,
    /// `flywheel_trainer_skipped_samples_total{tenant}`: bad samples skipped
    /// (`on_bad_sample = "skip"`).
    pub skipped: IntCounterVec,
    /// `flywheel_trainer_train_seconds{tenant}`: time in the training loop per set.
    pub train_seconds: HistogramVec,
    /// `flywheel_trainer_release_latency_seconds{tenant}`: from a training-set event's
    /// creation to its model's release.
    pub release_latency: HistogramVec,
    /// `flywheel_trainer_loader_bytes_total{tenant}`: bytes read from the object store.
    pub loader_bytes: IntCounterVec,
    /// `flywheel_trainer_cache_total{tenant,result}`: samples looked up in the cache of
    /// decoded inputs, `hit` or `miss`.
    pub cache: IntCounterVec,
    /// `flywheel_trainer_cache_bytes`: bytes the cache holds.
    pub cache_bytes: IntGauge,
    /// `flywheel_trainer_progress_samples{tenant,pipeline}`: samples done in the current
    /// epoch of the set being trained.
    pub progress: IntGaugeVec,
    /// `flywheel_trainer_errors_total{tenant,stage}`: failures; the set is tried again.
    pub errors: IntCounterVec,
    /// `flywheel_trainer_model_accuracy{tenant,pipeline,on}`: the accuracy of the last model
    /// this trainer released for the pipeline, `on` its held-out samples (`held_out`) or on
    /// the samples that arrived after its training set (`after`).
    pub model_accuracy: GaugeVec,
}

impl TrainerMetrics {
    /// Creates the families and registers them (families already registered stay).
    pub fn new(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            register(
                registry,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            register(
                registry,
                HistogramVec::new(
                    HistogramOpts::new(name, help)
                        .buckets(prometheus::exponential_buckets(0.05, 2.5, 12).expect("buckets")),
                    labels,
                )
                .expect("valid metric"),
            )
        };
        Self {
            trainsets: counter(
                "flywheel_trainer_trainsets_total",
                "Training sets handled: released, already_released (found released after a restart) or failed (dead-lettered).",
                &["tenant", "outcome"],
            ),
            samples: counter(
                "flywheel_trainer_samples_total",
                "Samples fed through training loops.",
                &["tenant"],
            ),
            skipped: counter(
                "flywheel_trainer_skipped_samples_total",
                "Bad samples skipped under on_bad_sample = \"skip\".",
                &["tenant"],
            ),
            train_seconds: histogram(
                "flywheel_trainer_train_seconds",
                "Time in the training loop, per training set.",
                &["tenant"],
            ),
            release_latency: histogram(
                "flywheel_trainer_release_latency_seconds",
                "From a training-set event's creation to the release of its model.",
                &["tenant"],
            ),
            loader_bytes: counter(
                "flywheel_trainer_loader_bytes_total",
                "Bytes the loader read from the object store.",
                &["tenant"],
            ),
            cache: counter(
                "flywheel_trainer_cache_total",
                "Samples looked up in the cache of decoded inputs, by result (hit, miss).",
                &["tenant", "result"],
            ),
            cache_bytes: register(
                registry,
                IntGauge::new(
                    "flywheel_trainer_cache_bytes",
                    "Bytes the cache of decoded inputs holds.",
                )
                .expect("valid metric"),
            ),
            progress: gauge(
                "flywheel_trainer_progress_samples",
                "Samples done in the current epoch of the training set being trained.",
                &["tenant", "pipeline"],
            ),
            errors: counter(
                "flywheel_trainer_errors_total",
                "Trainer failures, by stage; the training set is tried again.",
                &["tenant", "stage"],
            ),
            model_accuracy: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "flywheel_trainer_model_accuracy",
                        "Accuracy (0 to 1) of the last model released for the pipeline, on its held-out samples (held_out) or on the samples after its training set (after).",
                    ),
                    &["tenant", "pipeline", "on"],
                )
                .expect("valid metric"),
            ),
        }
    }
}

/// Registers a family; one of the same name already registered is left in place.
fn register<C: Collector + Clone + 'static>(registry: &Registry, metric: C) -> C {
    match registry.register(Box::new(metric.clone())) {
        Ok(()) | Err(prometheus::Error::AlreadyReg) => metric,
        Err(e) => panic!("registering a trainer metric: {e}"),
    }
}
