//! Reading a pipeline's events back from its tenant's topics: the training sets the
//! supervisor emitted (`trainsets`) and the models trainers released (`models`). Both
//! topics are keyed by pipeline, so all of one pipeline's events are in one partition.

use std::time::Duration;

use flywheel_schemas::{Event, ModelRelease, TrainingSet, decode};
use flywheel_topics::{Bus, BusError, Tenant, TopicKind, partition_for_key};

/// Records read at once.
const BATCH: usize = 1000;

/// An event that belongs to a tenant's pipeline.
trait PipelineEvent: Event {
    fn owner(&self) -> (&str, &str);
}

impl PipelineEvent for TrainingSet {
    fn owner(&self) -> (&str, &str) {
        (&self.tenant, &self.pipeline)
    }
}

impl PipelineEvent for ModelRelease {
    fn owner(&self) -> (&str, &str) {
        (&self.tenant, &self.pipeline)
    }
}

/// The events of `pipeline` still kept on a topic of the tenant, oldest first; the newest
/// `limit` of them. Records that do not decode are skipped with a warning.
async fn pipeline_records<E: PipelineEvent>(
    bus: &dyn Bus,
    kind: TopicKind,
    tenant: &Tenant,
    pipeline: &str,
    limit: usize,
) -> Result<Vec<E>, BusError> {
    let topic = kind.topic(tenant);
    let partition = partition_for_key(pipeline.as_bytes(), bus.partitions(&topic).await?);
    let end = bus.end_offset(&topic, partition).await?;
    let mut out = std::collections::VecDeque::new();
    let mut at = 0;
    while at < end {
        let records = bus
            .read(&topic, partition, at, BATCH, Duration::from_secs(1))
            .await?;
        let Some(last) = records.last() else { break };
        at = last.offset + 1;
        for r in records {
            match decode::<E>(&r.value) {
                Ok(e) if e.owner() == (tenant.as_str(), pipeline) => {
                    out.push_back(e);
                    if out.len() > limit {
                        out.pop_front();
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    topic = %topic,
                    offset = r.offset,
                    "a {} event does not decode ({e}); skipped",
                    E::NAME
                ),
            }
        }
    }
    Ok(out.into())
}

/// The training-set events of `pipeline` still kept on the tenant's trainsets topic,
/// oldest first; the newest `limit` of them.
pub async fn pipeline_events(
    bus: &dyn Bus,
    tenant: &Tenant,
    pipeline: &str,
    limit: usize,
) -> Result<Vec<TrainingSet>, BusError> {
    pipeline_records(bus, TopicKind::Trainsets, tenant, pipeline, limit).await
}

/// The model releases of `pipeline` on the tenant's models topic (kept forever), oldest
/// first; the newest `limit` of them.
pub async fn pipeline_releases(
    bus: &dyn Bus,
    tenant: &Tenant,
    pipeline: &str,
    limit: usize,
) -> Result<Vec<ModelRelease>, BusError> {
    pipeline_records(bus, TopicKind::Models, tenant, pipeline, limit).await
}
