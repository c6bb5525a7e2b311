//! Prometheus metrics of the supervisor, registered in the process's registry.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, core::Collector,
};

/// Metric families the supervisor updates.
#[derive(Debug, Clone)]
pub struct SupervisorMetrics {
    /// `flywheel_supervisor_triggers_total{tenant,pipeline,policy}`: triggers emitted as
    /// training-set events, by trigger policy.
    pub triggers: IntCounterVec,
    /// `flywheel_supervisor_selected_samples{tenant,pipeline,policy}`: samples each
    /// emitted training set holds, by selection policy.
    pub selected: HistogramVec,
    /// `flywheel_supervisor_trigger_latency_seconds{tenant}`: from the commit of the
    /// changeset holding the sample a trigger fired at, to its event's publication.
    pub latency: HistogramVec,
    /// `flywheel_supervisor_changesets_total{tenant}`: changesets folded.
    pub changesets: IntCounterVec,
    /// `flywheel_supervisor_lag_changesets{tenant,pipeline}`: the dataset's head minus the
    /// last changeset the pipeline folded.
    pub lag: IntGaugeVec,
    /// `flywheel_supervisor_tracked_samples{tenant,pipeline}`: samples the selector tracks.
    pub tracked: IntGaugeVec,
    /// `flywheel_supervisor_pipelines{tenant}`: pipelines running here.
    pub pipelines: IntGaugeVec,
    /// `flywheel_supervisor_checkpoint_bytes{tenant,pipeline}`: size of the last
    /// checkpoint of the policies' state.
    pub checkpoint_bytes: IntGaugeVec,
    /// `flywheel_supervisor_recovered_total{tenant,outcome}`: pending events found after a
    /// restart, `published` (already on the topic) or `republished`.
    pub recovered: IntCounterVec,
    /// `flywheel_supervisor_errors_total{tenant,stage}`: failures, retried later.
    pub errors: IntCounterVec,
}

impl SupervisorMetrics {
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
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            register(
                registry,
                HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                    .expect("valid metric"),
            )
        };
        Self {
            triggers: counter(
                "flywheel_supervisor_triggers_total",
                "Triggers emitted as training-set events, by trigger policy.",
                &["tenant", "pipeline", "policy"],
            ),
            selected: histogram(
                "flywheel_supervisor_selected_samples",
                "Samples in each emitted training set, by selection policy.",
                &["tenant", "pipeline", "policy"],
                prometheus::exponential_buckets(1.0, 4.0, 13).expect("buckets"),
            ),
            latency: histogram(
                "flywheel_supervisor_trigger_latency_seconds",
                "From the commit of the changeset holding the sample a trigger fired at to the publication of its training-set event.",
                &["tenant"],
                prometheus::exponential_buckets(0.005, 2.5, 12).expect("buckets"),
            ),
            changesets: counter(
                "flywheel_supervisor_changesets_total",
                "Changesets folded through pipelines' policies.",
                &["tenant"],
            ),
            lag: gauge(
                "flywheel_supervisor_lag_changesets",
                "The dataset's head changeset minus the last one the pipeline folded.",
                &["tenant", "pipeline"],
            ),
            tracked: gauge(
                "flywheel_supervisor_tracked_samples",
                "Samples a pipeline's selector tracks.",
                &["tenant", "pipeline"],
            ),
            pipelines: gauge(
                "flywheel_supervisor_pipelines",
                "Pipelines this supervisor runs.",
                &["tenant"],
            ),
            checkpoint_bytes: gauge(
                "flywheel_supervisor_checkpoint_bytes",
                "Size of a pipeline's last checkpoint of its policies' state.",
                &["tenant", "pipeline"],
            ),
            recovered: counter(
                "flywheel_supervisor_recovered_total",
                "Training-set events left pending by a stopped supervisor: found on the topic (published) or published again (republished).",
                &["tenant", "outcome"],
            ),
            errors: counter(
                "flywheel_supervisor_errors_total",
                "Supervisor failures, by stage; the work is retried.",
                &["tenant", "stage"],
            ),
        }
    }
}

/// Registers a family; one of the same name already registered is left in place.
fn register<C: Collector + Clone + 'static>(registry: &Registry, metric: C) -> C {
    match registry.register(Box::new(metric.clone())) {
        Ok(()) | Err(prometheus::Error::AlreadyReg) => metric,
        Err(e) => panic!("registering a supervisor metric: {e}"),
    }
}
