//! Prometheus metrics of the ingest service, registered in the process's registry.

use prometheus::{
    Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry, core::Collector,
};

/// Metric families ingest updates.
#[derive(Debug, Clone)]
pub struct IngestMetrics {
    /// `flywheel_ingest_samples_total{tenant}`: samples stored (committed in a changeset).
    pub samples: IntCounterVec,
    /// `flywheel_ingest_bytes_total{tenant}`: bytes of the stored samples.
    pub bytes: IntCounterVec,
    /// `flywheel_ingest_changesets_total{tenant}`: changesets committed.
    pub changesets: IntCounterVec,
    /// `flywheel_dead_letters_total{tenant,reason}`: messages refused, by reason code.
    pub dead_letters: IntCounterVec,
    /// `flywheel_ingest_replayed_total{tenant}`: redelivered messages the store already had.
    pub replayed: IntCounterVec,
    /// `flywheel_ingest_open_samples{tenant}`: samples waiting in open changesets.
    pub open_samples: IntGaugeVec,
    /// `flywheel_ingest_commit_seconds`: time to write a changeset's segments and commit it.
    pub commit_seconds: Histogram,
    /// `flywheel_ingest_commit_retries_total{tenant}`: commits retried after another writer
    /// moved the dataset's head.
    pub commit_retries: IntCounterVec,
}

impl IngestMetrics {
    /// Creates the families and registers them. In a registry that has them already (two
    /// ingest services in one process, in tests) the first stay exported and these count
    /// on their own.
    pub fn new(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        Self {
            samples: counter(
                "flywheel_ingest_samples_total",
                "Samples stored: committed in a changeset with their index rows.",
                &["tenant"],
            ),
            bytes: counter(
                "flywheel_ingest_bytes_total",
                "Bytes of the samples stored (features and inline payloads).",
                &["tenant"],
            ),
            changesets: counter(
                "flywheel_ingest_changesets_total",
                "Changesets committed by ingest.",
                &["tenant"],
            ),
            dead_letters: counter(
                "flywheel_dead_letters_total",
                "Messages refused and sent to the tenant's samples.rejected topic, by reason.",
                &["tenant", "reason"],
            ),
            replayed: counter(
                "flywheel_ingest_replayed_total",
                "Redelivered messages skipped because the store already holds them.",
                &["tenant"],
            ),
            open_samples: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "flywheel_ingest_open_samples",
                        "Samples waiting in open changesets.",
                    ),
                    &["tenant"],
                )
                .expect("valid metric"),
            ),
            commit_seconds: register(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "flywheel_ingest_commit_seconds",
                        "Time to write a changeset's payload segments and commit it.",
                    )
                    .buckets(prometheus::exponential_buckets(0.0005, 3.0, 10).expect("buckets")),
                )
                .expect("valid metric"),
            ),
            commit_retries: counter(
                "flywheel_ingest_commit_retries_total",
                "Changeset commits retried because another writer moved the dataset's head.",
                &["tenant"],
            ),
        }
    }
}

/// Registers a family; one of the same name already registered is left in place.
fn register<C: Collector + Clone + 'static>(registry: &Registry, metric: C) -> C {
    match registry.register(Box::new(metric.clone())) {
        Ok(()) | Err(prometheus::Error::AlreadyReg) => metric,
        Err(e) => panic!("registering an ingest metric: {e}"),
    }
}
