//! [`Bus::read`](crate::Bus::read) on Kafka: a consumer of its own per call, assigned the
//! one partition at an offset (it never joins a group and never commits), reading up to
//! the high watermark it saw at the start, then closed. Blocking: run it off the runtime.
//!
//! Two tansu 0.6 (`memory://`) quirks shape it; on Apache Kafka neither workaround costs
//! more than a record:
//! - A fetch from offset `o` is served with the record batches whose *first* offset is `o`
//!   or later: from inside a batch, the rest of that batch is skipped (librdkafka then
//!   delivers the next batch's records) or, inside the newest batch, nothing comes until
//!   another batch arrives. Kafka returns the whole batch and librdkafka drops the records
//!   before `o`. So when the first record that comes is past `from`, or nothing comes
//!   although the watermark says records are there, the read starts again further back
//!   (16, 256, 4096, ... records before `from`, at most back to the oldest kept record) and
//!   drops the records before `from`.
//! - Its high watermark from ListOffsets is the newest batch's first offset + 1, short of
//!   the end when that batch holds several records (its fetch responses carry the right
//!   one). So a read at or past that watermark starts at the record before it (the newest
//!   batch's first one on tansu, the last record on Kafka) and drops what is below `from`,
//!   instead of starting at the watermark itself; and a read below it stops there, which
//!   may return fewer records than are there (the next read goes on).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::config::{Settings, config_error, kafka};
use super::consumer::{recovers, to_message};
use super::{LogContext, OP_TIMEOUT};
use crate::{BusError, Message};

/// How far before `from` the first retry starts, and the factor of each further step.
const STEP_BACK: i64 = 16;
/// librdkafka's default `fetch.wait.max.ms`.
const DEFAULT_FETCH_WAIT: Duration = Duration::from_millis(500);

/// A name for the group librdkafka's `assign` requires: unique, never joined, nothing
/// committed under it.
fn throwaway_group() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "flywheel-read-{}-{nanos:x}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// How long no record may come, while the watermark says records are there, before the
/// read starts further back: a few fetch round trips (a broker may hold a fetch for
/// `fetch.wait.max.ms`; tansu always does).
fn stall_after(settings: &Settings) -> Duration {
    let fetch_wait = settings
        .property("fetch.wait.max.ms")
        .and_then(|v| v.parse().ok())
        .map_or(DEFAULT_FETCH_WAIT, Duration::from_millis);
    fetch_wait * 2 + Duration::from_millis(500)
}

/// The error when records below the watermark did not come in time (an empty result would
/// say that none are there).
fn timed_out() -> BusError {
    BusError::Kafka {
        op: "read (records below the partition's high watermark did not arrive in time)",
        source: KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut),
    }
}

struct Reader {
    consumer: BaseConsumer<LogContext>,
    topic: String,
    partition: i32,
}

impl Reader {
    fn new(settings: &Settings, topic: &str, partition: i32) -> Result<Self, BusError> {
        let consumer: BaseConsumer<LogContext> = settings
            .reader_config(&throwaway_group())
            .create_with_context(LogContext)
            .map_err(|e| config_error(settings, e))?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            partition,
        })
    }

    fn watermarks(&self) -> Result<(i64, i64), BusError> {
        self.consumer
            .fetch_watermarks(&self.topic, self.partition, OP_TIMEOUT)
            .map_err(|e| super::watermark_error(&self.topic, e))
    }

    /// Reads from `offset` on (replacing any earlier assignment).
    fn assign(&self, offset: i64) -> Result<(), BusError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, self.partition, Offset::Offset(offset))
            .map_err(kafka("read"))?;
        self.consumer
            .assign(&tpl)
            .map_err(kafka("assign a partition to read"))
    }

    /// The next record, or `None` after `wait`.
    fn next(&self, wait: Duration) -> Result<Option<Message>, BusError> {
        match self.consumer.poll(wait) {
            None => Ok(None),
            Some(Ok(m)) => Ok(Some(to_message(&m))),
            Some(Err(e)) if recovers(&e) => {
                tracing::warn!(topic = self.topic, partition = self.partition, error = %e, "kafka read error (retrying)");
                Ok(None)
            }
            Some(Err(e)) => Err(kafka("read")(e)),
        }
    }

    /// Nothing at or after `start` below the watermark `high`: reads from the record
    /// before `high` (see the module doc) and waits until `deadline` for a record at or
    /// after `start`, then takes what came with it. Records below `start` are dropped; a
    /// fetch never goes past the end (which Kafka answers with an out-of-range reset).
    fn wait_past(
        &self,
        start: i64,
        (low, high): (i64, i64),
        max: usize,
        deadline: Instant,
    ) -> Result<Vec<Message>, BusError> {
        self.assign((high - 1).max(low))?;
        let mut out = Vec::new();
        while out.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(out);
            }
            if let Some(m) = self.next(left)?
                && m.offset >= start
            {
                out.push(m);
            }
        }
        // then what is already fetched, without waiting
        let mut idle = 0;
        while out.len() < max && idle < 3 {
            match self.next(Duration::ZERO)? {
                Some(m) if m.offset >= start => {
                    idle = 0;
                    out.push(m);
                }
                Some(_) => idle = 0,
                None => idle += 1,
            }
        }
        Ok(out)
    }

    /// Records `start..high` are there (`low` is the oldest kept): reads up to `max` of
    /// them, starting further back when the broker skips or stalls (see the module doc).
    /// Bounded by [`OP_TIMEOUT`], not by the caller's timeout: an empty result would say
    /// that nothing is there.
    fn read_there(
        &self,
        start: i64,
        (low, high): (i64, i64),
        max: usize,
        stall: Duration,
    ) -> Result<Vec<Message>, BusError> {
        let deadline = Instant::now() + OP_TIMEOUT;
        let mut fetch_from = start;
        let mut back = STEP_BACK;
        let mut out = Vec::new();
        loop {
            self.assign(fetch_from)?;
            let mut seen_any = false;
            let mut last_progress = Instant::now();
            loop {
                let now = Instant::now();
                if now >= deadline {
                    if out.is_empty() {
                        tracing::warn!(
                            topic = self.topic,
                            partition = self.partition,
                            start,
                            high,
                            "kafka read: records below the high watermark did not arrive"
                        );
                        return Err(timed_out());
                    }
                    return Ok(out);
                }
                let wait = (deadline - now).min(Duration::from_millis(100));
                match self.next(wait)? {
                    Some(m) if m.offset < start => {
                        seen_any = true;
                        last_progress = Instant::now();
                    }
                    Some(m) => {
                        if !seen_any && m.offset > start && fetch_from > low {
                            // the broker skipped the rest of the batch `start` is in
                            break;
                        }
                        seen_any = true;
                        last_progress = Instant::now();
                        let next = m.offset + 1;
                        out.push(m);
                        if out.len() >= max || next >= high {
                            return Ok(out);
                        }
                    }
                    None => {
                        if !seen_any && fetch_from > low && last_progress.elapsed() >= stall {
                            // the broker serves nothing from inside the last batch
                            break;
                        }
                    }
                }
            }
            fetch_from = start.saturating_sub(back).max(low);
            back = back.saturating_mul(STEP_BACK);
            tracing::debug!(
                topic = self.topic,
                partition = self.partition,
                start,
                fetch_from,
                "kafka read: starting further back (fetch from inside a record batch)"
            );
        }
    }
}

/// Reads up to `max` records of `topic[partition]` from `from` on (see `Bus::read`). The
/// topic and partition are known to exist. Blocking.
pub(super) fn read(
    settings: &Settings,
    topic: &str,
    partition: i32,
    from: i64,
    max: usize,
    timeout: Duration,
) -> Result<Vec<Message>, BusError> {
    let deadline = Instant::now() + timeout;
    let reader = Reader::new(settings, topic, partition)?;
    let (low, high) = reader.watermarks()?;
    let start = from.max(low).max(0);
    if start >= high {
        reader.wait_past(start, (low, high), max, deadline)
    } else {
        reader.read_there(start, (low, high), max, stall_after(settings))
    }
}
