//! `flywheel produce FILE|-`: publishes samples through the gateway, in batches, each
//! checked here first (so a bad line is named before anything of its batch is sent).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};

use anyhow::{Context, bail};
use apache_avro::{Reader, Writer};
use flywheel_schemas::{Event, Sample, parse_sample_json, validate_sample};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::cli::{Global, InputFormat, ProduceArgs};
use crate::client::Client;

#[derive(Debug, Deserialize)]
struct Published {
    published: u64,
    topic: String,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    published: u64,
    skipped: u64,
    topic: String,
}

/// Where samples are sent, and what has been.
struct Sender<'a> {
    client: &'a Client,
    report: Report,
    skip_invalid: bool,
    bar: ProgressBar,
}

impl Sender<'_> {
    /// A sample that failed the checks: skipped and reported, or the end of the run.
    fn refused(&mut self, place: &str, error: &dyn std::fmt::Display) -> anyhow::Result<()> {
        if self.skip_invalid {
            self.bar.suspend(|| eprintln!("skipped {place}: {error}"));
            self.report.skipped += 1;
            return Ok(());
        }
        bail!(
            "{place}: {error}; stopped there ({} samples before it were published; --skip-invalid skips bad samples)",
            self.report.published
        )
    }

    async fn send(&mut self, content_type: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let request = self
            .client
            .request(Method::POST, "/samples")
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        let answer: Published = self.client.send(request).await.with_context(|| {
            format!(
                "publishing a batch ({} samples before it were published)",
                self.report.published
            )
        })?;
        self.report.published += answer.published;
        self.report.topic = answer.topic;
        self.bar
            .set_message(format!("{} samples", self.report.published));
        Ok(())
    }
}

pub(crate) async fn run(global: &Global, args: &ProduceArgs) -> anyhow::Result<()> {
    let client = Client::new(global)?;
    let stdin = args.file.as_os_str() == "-";
    let (input, size): (Box<dyn Read + Send>, Option<u64>) = if stdin {
        (Box::new(std::io::stdin()), None)
    } else {
        let f =
            File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(f), size)
    };
    let bar = progress(size, args.quiet || global.json);
    let mut input = BufReader::with_capacity(1 << 20, bar.wrap_read(input));
    let format = match args.format {
        InputFormat::Auto => {
            let head = input.fill_buf().context("reading the input")?;
            if head.starts_with(b"Obj\x01") {
                InputFormat::Avro
            } else {
                InputFormat::Jsonl
            }
        }
        f => f,
    };
    let mut sender = Sender {
        client: &client,
        report: Report::default(),
        skip_invalid: args.skip_invalid,
        bar: bar.clone(),
    };
    let batch = usize::try_from(args.batch).unwrap_or(1000);
    match format {
        InputFormat::Avro => avro(&mut sender, input, batch).await?,
        _ => json_lines(&mut sender, input, batch).await?,
    }
    bar.finish_and_clear();
    let r = sender.report;
    if global.json {
        println!("{}", serde_json::to_string(&r)?);
    } else if r.published == 0 && r.skipped == 0 {
        println!("no samples in the input");
    } else {
        let skipped = if r.skipped > 0 {
            format!(" ({} invalid skipped)", r.skipped)
        } else {
            String::new()
        };
        println!("published {} samples to {}{skipped}", r.published, r.topic);
    }
    Ok(())
}

async fn json_lines(
    sender: &mut Sender<'_>,
    mut input: impl BufRead,
    batch: usize,
) -> anyhow::Result<()> {
    let mut body = Vec::new();
    let mut count = 0;
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .context("reading the input")?;
        if n == 0 {
            break;
        }
        number += 1;
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        if let Err(e) = parse_sample_json(trimmed) {
            sender.refused(&format!("line {number}"), &e)?;
            continue;
        }
        body.extend_from_slice(trimmed);
        body.push(b'\n');
        count += 1;
        if count == batch {
            sender
                .send("application/x-ndjson", std::mem::take(&mut body))
                .await?;
            count = 0;
        }
    }
    if count > 0 {
        sender.send("application/x-ndjson", body).await?;
    }
    Ok(())
}

async fn avro(sender: &mut Sender<'_>, input: impl Read, batch: usize) -> anyhow::Result<()> {
    let schema = <Sample as Event>::schema();
    let reader = Reader::builder(input)
        .reader_schema(schema)
        .build()
        .context("the input is not an Avro object container file")?;
    let mut samples = Vec::new();
    for (i, value) in reader.enumerate() {
        let place = format!("record {}", i + 1);
        let value = value.with_context(|| format!("reading {place} of the Avro input"))?;
        let sample = match apache_avro::from_value::<Sample>(&value) {
            Ok(s) => s,
            Err(e) => {
                sender.refused(&place, &e)?;
                continue;
            }
        };
        if let Err(e) = validate_sample(&sample) {
            sender.refused(&place, &e)?;
            continue;
        }
        samples.push(sample);
        if samples.len() == batch {
            sender
                .send(
                    "application/avro",
                    avro_file(&std::mem::take(&mut samples))?,
                )
                .await?;
        }
    }
    if !samples.is_empty() {
        sender
            .send("application/avro", avro_file(&samples)?)
            .await?;
    }
    Ok(())
}

fn avro_file(samples: &[Sample]) -> anyhow::Result<Vec<u8>> {
    let mut w = Writer::new(<Sample as Event>::schema(), Vec::new())?;
    for s in samples {
        w.append_ser(s)?;
    }
    Ok(w.into_inner()?)
}

fn progress(size: Option<u64>, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    match size {
        Some(n) => {
            let pb = ProgressBar::new(n);
            pb.set_style(
                ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg} ({eta} left)")
                    .expect("valid template"),
            );
            pb
        }
        None => {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {bytes} read, {msg}")
                    .expect("valid template"),
            );
            pb
        }
    }
}
