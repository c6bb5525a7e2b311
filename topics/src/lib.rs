//! The topic catalogue and the event bus of flywheel.
//!
//! Every arrow between flywheel's services is a topic (`flywheel.{tenant}.{kind}`, see
//! [`catalogue`]). Services talk to topics through one [`Bus`] trait with two backends,
//! picked by URL: `embedded://DIR`, a durable log inside the process for one machine, and
//! `kafka://HOST:PORT,...` for a cluster. One conformance suite checks both.

mod bus;
pub mod catalogue;
pub mod embedded;
mod error;
pub mod kafka;
mod metrics;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::PathBuf;
use std::sync::Arc;

pub use bus::{
    Ack, Bus, Consumer, ConsumerConfig, Message, Record, SeekTo, StartFrom, Subscription,
    TopicPartition, offsets_after, partition_for_key,
};
pub use catalogue::{Tenant, TopicKind, TopicSpec, tenant_topics, validate_topic_name};
pub use embedded::{EmbeddedBus, EmbeddedOptions};
pub use error::BusError;
pub use kafka::KafkaBus;
pub use metrics::BusMetrics;

/// Opens the bus a URL names: `embedded://DIR` (relative or absolute path) or
/// `kafka://HOST:PORT[,HOST:PORT...][?librdkafka.property=value&...]`.
pub async fn connect(url: &str, metrics: &BusMetrics) -> Result<Arc<dyn Bus>, BusError> {
    let invalid = |reason: String| BusError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid(
            "expected SCHEME://..., e.g. embedded://./flywheel-data/bus or kafka://127.0.0.1:9092"
                .into(),
        ));
    };
    match scheme {
        "embedded" => {
            if rest.is_empty() {
                return Err(invalid(
                    "embedded:// needs a directory, e.g. embedded://./flywheel-data/bus".into(),
                ));
            }
            let dir = PathBuf::from(rest);
            let metrics = metrics.clone();
            let bus = tokio::task::spawn_blocking(move || {
                EmbeddedBus::open(&dir, EmbeddedOptions::default(), metrics)
            })
            .await
            .expect("opening the embedded bus panicked")?;
            Ok(Arc::new(bus))
        }
        "kafka" => Ok(Arc::new(KafkaBus::connect(url, metrics).await?)),
        other => Err(invalid(format!(
            "unknown scheme {other:?}; supported: embedded://DIR, kafka://HOST:PORT"
        ))),
    }
}
