//! Reading a pipeline's training-set events back from its tenant's trainsets topic.

use std::time::Duration;

use flywheel_schemas::{TrainingSet, decode};
use flywheel_topics::{Bus, BusError, Tenant, TopicKind, partition_for_key};

/// Records read at once.
const BATCH: usize = 1000;

/// The training-set events of `pipeline` still kept on the tenant's trainsets topic
/// (all of one pipeline's are in one partition, keyed by its name), oldest first; the
/// newest `limit` of them. Records that do not decode are skipped with a warning.
pub async fn pipeline_events(
    bus: &dyn Bus,
    tenant: &Tenant,
    pipeline: &str,
    limit: usize,
) -> Result<Vec<TrainingSet>, BusError> {
    let topic = TopicKind::Trainsets.topic(tenant);
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
            match decode::<TrainingSet>(&r.value) {
                Ok(e) if e.pipeline == pipeline && e.tenant == tenant.as_str() => {
                    out.push_back(e);
                    if out.len() > limit {
                        out.pop_front();
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    topic = %topic,
                    offset = r.offset,
                    "a training-set event does not decode ({e}); skipped"
                ),
            }
        }
    }
    Ok(out.into())
}
