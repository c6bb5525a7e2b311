//! `loadgen stream sensor|clicks|images`: a synthetic collector. Publishes a drifting
//! stream ([`loadgen::streams`]) to a tenant's samples topic on Kafka (`--to
//! kafka://HOST:PORT`, Avro) or through the gateway (`--to http://HOST:PORT`, JSON
//! lines), at a given rate, with a progress bar. Labels can be partial (`--labelled`) and,
//! through the gateway, late (`--label-delay`: sent as relabel changesets of the keys the
//! gateway answered with).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use flywheel_schemas::{encode, now_micros, sample_to_json};
use flywheel_topics::{BusMetrics, Record, Tenant, TopicKind, connect};
use loadgen::streams::{Clicks, Common, Drift, Generated, Images, Sensor};
use serde::Serialize;

/// Most late labels in one relabel changeset.
const RELABEL_CHUNK: usize = 10_000;

/// Which stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Kind {
    /// A sensor's numeric readings, two classes ("0", "1"), drifting.
    Sensor,
    /// A clickstream ("click" or "skip"), tastes drifting.
    Clicks,
    /// Small greyscale PNG images of a bar ("h" or "v"), brightness and noise drifting.
    Images,
}

#[derive(Debug, Args)]
pub(crate) struct StreamArgs {
    /// The stream.
    #[arg(value_enum)]
    kind: Kind,
    /// Where to publish: kafka://HOST:PORT (Avro, to the tenant's samples topic) or
    /// http(s)://HOST:PORT (the gateway's POST /api/v1/samples, JSON lines).
    #[arg(long, env = "LOADGEN_TO", default_value = "http://127.0.0.1:8480")]
    to: String,
    /// The gateway's bearer token (for http(s)://).
    #[arg(long, env = "FLYWHEEL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The tenant whose samples topic receives the samples (for kafka://).
    #[arg(long, default_value = "default")]
    tenant: String,
    /// The dataset the samples name (default: the stream's name).
    #[arg(long)]
    dataset: Option<String>,
    /// Samples to publish.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Samples per second (0: as fast as the target takes them).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Samples per request (HTTP) or produce call (Kafka).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch: u64,
    /// The seed: the same seed, the same samples.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Gradual drift: how far the concept turns every 1,000 samples, in degrees.
    #[arg(long, default_value_t = 10.0)]
    drift_degrees: f64,
    /// Sudden drift: the concept jumps every this many samples (0: never).
    #[arg(long, default_value_t = 0)]
    sudden_every: u64,
    /// The share of samples that get a label, in [0, 1] (the rest never do).
    #[arg(long, default_value_t = 1.0)]
    labelled: f64,
    /// Labels arrive this many samples late: the samples are published without them, and
    /// the labels follow as relabel changesets once the stream is that much further on
    /// (those still due when it ends, at its end). Needs the gateway (--to http(s)://).
    #[arg(long, default_value_t = 0)]
    label_delay: u64,
    /// Sensor: readings per sample.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(2..=4096))]
    features: u64,
    /// Sensor: how far apart the two classes are, in units of the noise.
    #[arg(long, default_value_t = 3.0)]
    separation: f64,
    /// Images: width and height in pixels.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(4..=256))]
    size: u32,
    /// Event time between two samples, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Print a JSON summary instead of text, and no progress bar.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Summary {
    stream: String,
    dataset: String,
    to: String,
    published: u64,
    labelled: u64,
    /// Labels sent late, as relabel changesets, and how many changesets.
    late_labels: u64,
    relabel_changesets: u64,
    seconds: f64,
    per_second: f64,
}

/// The stream a command line asks for.
fn stream(args: &StreamArgs) -> anyhow::Result<Box<dyn Iterator<Item = Generated> + Send>> {
    if !(0.0..=1.0).contains(&args.labelled) {
        bail!("--labelled must be in [0, 1], not {}", args.labelled);
    }
    if !args.drift_degrees.is_finite() {
        bail!("--drift-degrees must be a number");
    }
    if !(args.separation.is_finite() && args.separation > 0.0) {
        bail!("--separation must be positive");
    }
    let name = match args.kind {
        Kind::Sensor => "sensors",
        Kind::Clicks => "clicks",
        Kind::Images => "images",
    };
    let common = Common {
        dataset: args.dataset.clone().unwrap_or_else(|| name.to_owned()),
        producer: format!("loadgen-{name}"),
        seed: args.seed,
        start_micros: now_micros(),
        interval_micros: i64::try_from(args.interval_ms.saturating_mul(1000))
            .context("--interval-ms is too large")?,
        labelled: args.labelled,
    };
    flywheel_schemas::check_dataset_name(&common.dataset)
        .map_err(|e| anyhow::anyhow!("--dataset: {}", e.detail))?;
    let drift = Drift {
        degrees_per_1000: args.drift_degrees,
        sudden_every: (args.sudden_every > 0).then_some(args.sudden_every),
    };
    Ok(match args.kind {
        Kind::Sensor => Box::new(Sensor::new(
            common,
            args.features as usize,
            args.separation,
            drift,
        )),
        Kind::Clicks => Box::new(Clicks::new(common, drift)),
        Kind::Images => Box::new(Images::new(common, args.size, drift)),
    })
}

/// Where samples go.
enum Target {
    Bus {
        bus: std::sync::Arc<dyn flywheel_topics::Bus>,
        topic: String,
    },
    Gateway {
        client: reqwest::Client,
        /// `http(s)://HOST:PORT/api/v1`.
        api: String,
        token: Option<String>,
    },
}

impl Target {
    async fn open(args: &StreamArgs) -> anyhow::Result<Self> {
        let scheme = args.to.split_once("://").map(|(s, _)| s);
        match scheme {
            Some("kafka") => {
                let registry = prometheus::Registry::new();
                let bus = connect(&args.to, &BusMetrics::new(&registry))
                    .await
                    .with_context(|| format!("connecting to {}", args.to))?;
                let tenant = Tenant::new(&args.tenant).context("--tenant")?;
                Ok(Self::Bus {
                    bus,
                    topic: TopicKind::Samples.topic(&tenant),
                })
            }
            Some("http" | "https") => Ok(Self::Gateway {
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()?,
                api: format!("{}/api/v1", args.to.trim_end_matches('/')),
                token: args.token.clone(),
            }),
            _ => bail!(
                "--to {}: publish to kafka://HOST:PORT or http(s)://HOST:PORT (the gateway); \
                 an embedded:// log belongs to the one process that runs it",
                args.to
            ),
        }
    }

    /// Publishes a batch; the samples' keys, in order, where the target tells them (the
    /// gateway does).
    async fn send(&self, batch: &[Generated]) -> anyhow::Result<Vec<u64>> {
        match self {
            Self::Bus { bus, topic } => {
                let records = batch
                    .iter()
                    .map(|g| Record::keyed(g.sample.dataset.as_bytes(), encode(&g.sample)))
                    .collect();
                bus.produce(topic, records)
                    .await
                    .with_context(|| format!("publishing to {topic}"))?;
                Ok(Vec::new())
            }
            Self::Gateway { client, api, token } => {
                let url = format!("{api}/samples");
                let mut body = Vec::new();
                for g in batch {
                    serde_json::to_writer(&mut body, &sample_to_json(&g.sample))?;
                    body.push(b'\n');
                }
                let request = client
                    .post(url.as_str())
                    .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
                    .body(body);
                let answer = post(request, token.as_deref(), &url).await?;
                let status = answer.status();
                if !status.is_success() {
                    let text = answer.text().await.unwrap_or_default();
                    bail!("the gateway refused the samples ({status}): {text}");
                }
                let answer: serde_json::Value = answer
                    .json()
                    .await
                    .with_context(|| format!("reading the answer of {url}"))?;
                let keys: Vec<u64> = (answer["keys"].as_array().into_iter().flatten())
                    .filter_map(serde_json::Value::as_u64)
                    .collect();
                if keys.len() != batch.len() {
                    bail!(
                        "the gateway answered {} keys for {} samples: {answer}",
                        keys.len(),
                        batch.len()
                    );
                }
                Ok(keys)
            }
        }
    }

    /// Sends late labels (key, label) of `dataset` as relabel changesets (of at most
    /// [`RELABEL_CHUNK`] labels), through the gateway; how many. A sample ingest has not
    /// stored yet cannot be relabelled (nor one of a dataset it has not created yet): tried
    /// again for up to a minute.
    async fn relabel(&self, dataset: &str, labels: &[(u64, String)]) -> anyhow::Result<u64> {
        // well within the gateway's 2 MiB limit on a request's body
        let mut changesets = 0;
        for chunk in labels.chunks(RELABEL_CHUNK) {
            self.relabel_chunk(dataset, chunk).await?;
            changesets += 1;
        }
        Ok(changesets)
    }

    async fn relabel_chunk(&self, dataset: &str, labels: &[(u64, String)]) -> anyhow::Result<()> {
        let Self::Gateway { client, api, token } = self else {
            bail!("late labels need the gateway");
        };
        let url = format!("{api}/datasets/{dataset}/changesets");
        let body = serde_json::json!({ "kind": "relabel", "labels": labels });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let request = client.post(url.as_str()).json(&body);
            let answer = post(request, token.as_deref(), &url).await?;
            let status = answer.status();
            if status.is_success() {
                return Ok(());
            }
            let text = answer.text().await.unwrap_or_default();
            // not stored yet (the samples, or the dataset their first one creates): ingest
            // is behind
            let behind = text.contains("is not in the dataset")
                || (status == reqwest::StatusCode::NOT_FOUND && text.contains("not found"));
            if !(behind && Instant::now() < deadline) {
                bail!("the gateway refused the late labels ({status}): {text}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Sends a request to the gateway at `url`, with the bearer token if there is one.
async fn post(
    request: reqwest::RequestBuilder,
    token: Option<&str>,
    url: &str,
) -> anyhow::Result<reqwest::Response> {
    let request = match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    };
    request
        .send()
        .await
        .with_context(|| format!("posting to {url}"))
}

pub(crate) async fn run(args: &StreamArgs) -> anyhow::Result<()> {
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        bail!("--rate must be a number of samples per second, 0 or more");
    }
    let mut samples = stream(args)?;
    if args.label_delay > 0 && !args.to.starts_with("http") {
        bail!(
            "--label-delay needs the gateway (--to http(s)://HOST:PORT): a late label is an edit of the dataset, which the samples topic does not carry"
        );
    }
    let target = Target::open(args).await?;
    let bar = crate::progress(usize::try_from(args.count)?, "published", args.json);
    let started = Instant::now();
    let (mut published, mut labelled) = (0u64, 0u64);
    let (mut late_labels, mut relabel_changesets) = (0u64, 0u64);
    // labels still to send: (due once this many samples are published, key, label)
    let mut pending: std::collections::VecDeque<(u64, u64, String)> = Default::default();
    let mut dataset = String::new();
    while published < args.count {
        let n = args.batch.min(args.count - published);
        let mut batch: Vec<Generated> = samples.by_ref().take(n as usize).collect();
        if let Some(first) = batch.first() {
            dataset.clone_from(&first.sample.dataset);
        }
        if args.rate > 0.0 {
            // keep to the rate: this batch goes when the ones before it are due
            let due = Duration::from_secs_f64(published as f64 / args.rate);
            tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
        }
        labelled += batch.iter().filter(|g| g.sample.label.is_some()).count() as u64;
        let late: Vec<Option<String>> = batch
            .iter_mut()
            .map(|g| {
                (args.label_delay > 0)
                    .then(|| g.sample.label.take())
                    .flatten()
            })
            .collect();
        let keys = target.send(&batch).await?;
        for ((g, key), label) in batch.iter().zip(keys).zip(late) {
            if let Some(label) = label {
                pending.push_back((
                    g.index.saturating_add(1).saturating_add(args.label_delay),
                    key,
                    label,
                ));
            }
        }
        published += batch.len() as u64;
        bar.set_position(published);
        // the labels now due
        let due: Vec<(u64, String)> = std::iter::from_fn(|| {
            pending
                .front()
                .is_some_and(|p| p.0 <= published)
                .then(|| pending.pop_front().map(|(_, k, l)| (k, l)))
                .flatten()
        })
        .collect();
        if !due.is_empty() {
            relabel_changesets += target.relabel(&dataset, &due).await?;
            late_labels += due.len() as u64;
        }
    }
    // the stream has ended: the labels still due come now
    if !pending.is_empty() {
        let rest: Vec<(u64, String)> = pending.drain(..).map(|(_, k, l)| (k, l)).collect();
        relabel_changesets += target.relabel(&dataset, &rest).await?;
        late_labels += rest.len() as u64;
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    let summary = Summary {
        stream: format!("{:?}", args.kind).to_lowercase(),
        dataset,
        to: args.to.clone(),
        published,
        labelled,
        late_labels,
        relabel_changesets,
        seconds,
        per_second: published as f64 / seconds.max(1e-9),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "published {} {} samples ({} labelled, {} of the labels late in {} relabel changesets) to {} in {:.1} s ({:.0}/s), dataset {}",
            summary.published,
            summary.stream,
            summary.labelled,
            summary.late_labels,
            summary.relabel_changesets,
            summary.to,
            summary.seconds,
            summary.per_second,
            summary.dataset
        );
    }
    Ok(())
}
