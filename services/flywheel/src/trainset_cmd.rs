//! `flywheel trainset ...`: clients of the gateway's `/api/v1/trainsets`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use flywheel_schemas::parse_rfc3339;
use flywheel_store::TrainsetRecord;
use flywheel_trainset::{QueryRequest, Selection, Summary, Version, format_changesets};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use tokio::io::AsyncWriteExt;

use crate::admin::{print_json, time};
use crate::cli::{GetArgs, Global, PrepareArgs, TrainsetCommand};
use crate::client::Client;

pub(crate) async fn run(global: &Global, command: &TrainsetCommand) -> anyhow::Result<()> {
    let client = Client::new(global)?;
    match command {
        TrainsetCommand::Prepare(args) => {
            let request = request(args)?;
            let summary: Summary = client
                .post("/trainsets", &serde_json::to_value(&request)?)
                .await?;
            if global.json {
                return print_json(&summary);
            }
            println!("{}", summary.version);
            eprintln!(
                "{} training set {}: {} samples of dataset {} as of changeset {}, {} shard(s)",
                if summary.created == Some(false) {
                    "existing"
                } else {
                    "prepared"
                },
                summary.version,
                summary.samples,
                summary.dataset,
                summary.query.as_of,
                summary.shard_count()
            );
        }
        TrainsetCommand::List { dataset } => {
            let path = match dataset {
                Some(d) => {
                    flywheel_schemas::check_dataset_name(d)
                        .map_err(|e| anyhow::anyhow!("invalid dataset name {d:?}: {}", e.detail))?;
                    format!("/trainsets?dataset={d}")
                }
                None => "/trainsets".to_owned(),
            };
            let list: Vec<TrainsetRecord> = client.get(&path).await?;
            if global.json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no training sets yet (see `flywheel trainset prepare`)");
                return Ok(());
            }
            println!(
                "{:<32} {:<24} {:>6} {:>12}  PREPARED",
                "VERSION", "DATASET", "AS OF", "SAMPLES"
            );
            for t in list {
                println!(
                    "{:<32} {:<24} {:>6} {:>12}  {}",
                    t.version,
                    t.dataset,
                    t.head_changeset,
                    t.sample_count,
                    time(t.created_at)
                );
            }
        }
        TrainsetCommand::Show { version } => {
            let summary = show(&client, version).await?;
            if global.json {
                return print_json(&summary);
            }
            print_summary(&summary);
        }
        TrainsetCommand::Get(args) => get(global, &client, args).await?,
    }
    Ok(())
}

/// The query the flags ask for; times and percentages are checked here already, so a bad
/// one is refused by its flag before anything is sent.
fn request(args: &PrepareArgs) -> anyhow::Result<QueryRequest> {
    let when = |flag: &str, text: &Option<String>| -> anyhow::Result<Option<i64>> {
        text.as_deref()
            .map(|t| {
                parse_rfc3339(t)
                    .map_err(|e| anyhow::anyhow!("--{flag} {t:?} is not an RFC 3339 time: {e}"))
            })
            .transpose()
    };
    if let Some(p) = args.percentage
        && !(p > 0.0 && p <= 1.0)
    {
        bail!("--percentage {p} is outside (0, 1]: 0.8 selects the newest 80 %");
    }
    if let Some(text) = &args.changesets {
        flywheel_trainset::parse_changesets(text)
            .map_err(|e| anyhow::anyhow!("--changesets {text:?}: {e}"))?;
    }
    let selection = match (args.sample, args.per_label) {
        (Some(count), _) => Some(Selection::Uniform {
            count,
            seed: args.seed,
        }),
        (None, Some(per_label)) => Some(Selection::LabelBalanced {
            per_label,
            seed: args.seed,
        }),
        (None, None) => None,
    };
    Ok(QueryRequest {
        dataset: args.dataset.clone(),
        as_of: args.as_of,
        changesets: args.changesets.clone(),
        labels: args.labels.clone(),
        from: when("from", &args.from)?,
        to: when("to", &args.to)?,
        percentage: args.percentage,
        selection,
    })
}

async fn show(client: &Client, version: &str) -> anyhow::Result<Summary> {
    let version = Version::parse(version)?;
    client.get(&format!("/trainsets/{version}")).await
}

fn print_summary(s: &Summary) {
    let q = &s.query;
    println!("version     {}", s.version);
    println!("dataset     {} as of changeset {}", s.dataset, q.as_of);
    println!("prepared    {}", time(s.created_at));
    let mut filters = Vec::new();
    if let Some(ranges) = &q.changesets {
        filters.push(format!("changesets {}", format_changesets(ranges)));
    }
    if !q.labels.is_empty() {
        filters.push(format!("labels {}", q.labels.join(",")));
    }
    if q.from.is_some() || q.to.is_some() {
        let t = |v: Option<i64>| v.map_or_else(|| "..".to_owned(), time);
        filters.push(format!("event time {} to {}", t(q.from), t(q.to)));
    }
    if let Some(p) = q.percentage {
        filters.push(format!("newest {}%", p * 100.0));
    }
    match &q.selection {
        Some(Selection::Uniform { count, seed }) => {
            filters.push(format!("{count} drawn uniformly (seed {seed})"));
        }
        Some(Selection::LabelBalanced { per_label, seed }) => {
            filters.push(format!("{per_label} per label (seed {seed})"));
        }
        Some(Selection::Keys { list, count }) => {
            filters.push(format!("the {count} keys of key list {list}"));
        }
        None => {}
    }
    if filters.is_empty() {
        filters.push("every sample".into());
    }
    println!("query       {}", filters.join("; "));
    println!("samples     {}", s.samples);
    println!("bytes       {}", s.bytes);
    match (s.first_event_time, s.last_event_time) {
        (Some(a), Some(b)) => println!("event time  {} .. {}", time(a), time(b)),
        _ => println!("event time  -"),
    }
    println!("shards      {}", s.shard_count());
    println!("labels");
    let name = |l: &Option<String>| l.clone().unwrap_or_else(|| "(unlabelled)".into());
    let width = s
        .labels
        .iter()
        .map(|l| name(&l.label).len())
        .max()
        .unwrap_or(0);
    for l in &s.labels {
        println!("  {:<width$} {:>12}", name(&l.label), l.samples);
    }
    for r in &s.restricted {
        println!(
            "restricted  changeset {}: rows of source {:?}, read at training time only",
            r.changeset, r.query.source
        );
    }
}

/// Writes a file whole or not at all: to `NAME.part`, then renamed.
async fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let part = part_path(path);
    tokio::fs::write(&part, bytes)
        .await
        .with_context(|| format!("writing {}", part.display()))?;
    tokio::fs::rename(&part, path)
        .await
        .with_context(|| format!("renaming {} to {}", part.display(), path.display()))
}

fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".part");
    path.with_file_name(name)
}

async fn get(global: &Global, client: &Client, args: &GetArgs) -> anyhow::Result<()> {
    let summary = show(client, &args.version).await?;
    if !summary.restricted.is_empty() && !args.write_restricted_rows {
        let parts: Vec<String> = (summary.restricted.iter())
            .map(|r| format!("changeset {} (source {:?})", r.changeset, r.query.source))
            .collect();
        bail!(
            "training set {} has rows of restricted sources ({}); they are read at training time and never stored, so they are not written to {} unless you pass --write-restricted-rows",
            summary.version,
            parts.join(", "),
            args.out.display()
        );
    }
    tokio::fs::create_dir_all(&args.out)
        .await
        .with_context(|| format!("creating {}", args.out.display()))?;

    let manifest_path = args.out.join("manifest.bin");
    let response = client
        .stream(
            Method::GET,
            &format!("/trainsets/{}/manifest", summary.version),
        )
        .await?;
    let what = format!("the manifest of training set {}", summary.version);
    let (_, tail) = stream_to(response, &part_path(&manifest_path), &what).await?;
    // a whole manifest ends with its footer's length and an end mark
    let trailer = tail.len().saturating_sub(16);
    flywheel_trainset::manifest::footer_len(&tail[trailer..], &what)
        .with_context(|| format!("{what} is incomplete"))?;
    tokio::fs::rename(part_path(&manifest_path), &manifest_path)
        .await
        .with_context(|| format!("renaming into {}", manifest_path.display()))?;
    write_atomically(
        &args.out.join("trainset.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )
    .await?;

    let bar = if args.quiet || global.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(summary.samples);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} shards {msg} [{bar:30}] {human_pos}/{human_len} samples {binary_bytes_per_sec} eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    };
    let mut files = Vec::new();
    let mut bytes_total = 0u64;
    for n in 0..summary.shard_count() {
        bar.set_message(format!("{}/{}", n + 1, summary.shard_count()));
        let path = args.out.join(format!("shard-{n:06}.tar"));
        let want = summary.shard_samples.get(n).copied();
        let written = download_shard(client, &summary.version, n, want, &path, &bar).await?;
        bytes_total += written;
        files.push(path);
    }
    bar.finish_and_clear();
    if global.json {
        return print_json(&serde_json::json!({
            "version": summary.version,
            "out": args.out,
            "samples": summary.samples,
            "shards": files,
            "bytes": bytes_total,
        }));
    }
    println!(
        "wrote training set {}: {} samples in {} shard(s), {} bytes, to {}",
        summary.version,
        summary.samples,
        files.len(),
        bytes_total,
        args.out.display()
    );
    Ok(())
}

/// Streams an answer into the file `part` (synced); returns the bytes written and the
/// last 1024 of them.
async fn stream_to(
    mut response: reqwest::Response,
    part: &Path,
    what: &str,
) -> anyhow::Result<(u64, Vec<u8>)> {
    let mut file = tokio::fs::File::create(part)
        .await
        .with_context(|| format!("creating {}", part.display()))?;
    let mut written = 0u64;
    let mut tail = Vec::with_capacity(1024);
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("reading {what} (the transfer broke off)"))?
    {
        file.write_all(&chunk)
            .await
            .with_context(|| format!("writing {}", part.display()))?;
        written += chunk.len() as u64;
        tail.extend_from_slice(&chunk);
        if tail.len() > 1024 {
            tail.drain(..tail.len() - 1024);
        }
    }
    file.flush().await?;
    file.sync_all().await?;
    Ok((written, tail))
}

/// Streams shard `n` into `path` (through `path.part`), checking that it is whole.
async fn download_shard(
    client: &Client,
    version: &str,
    n: usize,
    want_samples: Option<u64>,
    path: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let what = format!("shard {n} of training set {version}");
    let response = client
        .stream(Method::GET, &format!("/trainsets/{version}/shards/{n}"))
        .await?;
    let says: Option<u64> = response
        .headers()
        .get(flywheel_gateway::SAMPLES_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if let (Some(want), Some(says)) = (want_samples, says)
        && want != says
    {
        bail!("{what}: the gateway says {says} samples, the manifest {want}");
    }
    let part = part_path(path);
    let (written, tail) = stream_to(response, &part, &what).await?;
    // a tar archive ends with two zero blocks; a cut transfer does not
    if !written.is_multiple_of(512) || tail.len() < 1024 || tail.iter().any(|&b| b != 0) {
        let _ = tokio::fs::remove_file(&part).await;
        bail!("{what} is incomplete ({written} bytes, not a whole tar archive)");
    }
    tokio::fs::rename(&part, path)
        .await
        .with_context(|| format!("renaming {} to {}", part.display(), path.display()))?;
    bar.inc(want_samples.unwrap_or(0));
    Ok(written)
}
