//! `flywheel dataset ...` and `flywheel changeset ...`: clients of the gateway's API.

use anyhow::{Context, bail};
use flywheel_schemas::{format_rfc3339, parse_rfc3339};
use flywheel_store::{ChangesetRecord, Dataset, DatasetStats};
use serde_json::{Value, json};

use crate::cli::{ChangesetCommand, DatasetCommand, Global, RelabelArgs, RemoveArgs};
use crate::client::Client;

pub(crate) fn time(micros: i64) -> String {
    format_rfc3339(micros).unwrap_or_else(|_| micros.to_string())
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `/datasets/NAME` with the name checked first, so a bad one is refused here by name.
fn dataset_path(name: &str) -> anyhow::Result<String> {
    flywheel_schemas::check_dataset_name(name)
        .map_err(|e| anyhow::anyhow!("invalid dataset name {name:?}: {}", e.detail))?;
    Ok(format!("/datasets/{name}"))
}

pub(crate) async fn dataset(global: &Global, command: &DatasetCommand) -> anyhow::Result<()> {
    let client = Client::new(global)?;
    match command {
        DatasetCommand::List => {
            let list: Vec<Dataset> = client.get("/datasets").await?;
            if global.json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no datasets yet (samples create them; see `flywheel produce`)");
                return Ok(());
            }
            println!(
                "{:<32} {:>6} {:>12} {:>14}",
                "DATASET", "HEAD", "SAMPLES", "BYTES"
            );
            for d in list {
                println!(
                    "{:<32} {:>6} {:>12} {:>14}",
                    d.name, d.head, d.samples, d.bytes
                );
            }
        }
        DatasetCommand::Show { name } => {
            let d: Dataset = client.get(&dataset_path(name)?).await?;
            if global.json {
                return print_json(&d);
            }
            println!("dataset   {}", d.name);
            println!("created   {}", time(d.created_at));
            println!("head      changeset {}", d.head);
            println!("samples   {}", d.samples);
            println!("bytes     {}", d.bytes);
        }
        DatasetCommand::Stats { name } => {
            let s: DatasetStats = client
                .get(&format!("{}/stats", dataset_path(name)?))
                .await?;
            if global.json {
                return print_json(&s);
            }
            println!("dataset     {} (as of changeset {})", s.dataset, s.head);
            println!("samples     {}", s.samples);
            println!("bytes       {}", s.bytes);
            match (s.first_event_time, s.last_event_time) {
                (Some(a), Some(b)) => println!("event time  {} .. {}", time(a), time(b)),
                _ => println!("event time  -"),
            }
            println!("labels");
            let width = s.labels.keys().map(String::len).max().unwrap_or(0).max(11);
            for (label, n) in &s.labels {
                println!("  {label:<width$} {n:>12}");
            }
            if s.unlabelled > 0 {
                println!("  {:<width$} {:>12}", "(unlabelled)", s.unlabelled);
            }
        }
        DatasetCommand::Create { name } => {
            let d: Dataset = client.post("/datasets", &json!({ "name": name })).await?;
            if global.json {
                return print_json(&d);
            }
            println!("dataset {} exists (head changeset {})", d.name, d.head);
        }
    }
    Ok(())
}

pub(crate) async fn changeset(global: &Global, command: &ChangesetCommand) -> anyhow::Result<()> {
    let client = Client::new(global)?;
    match command {
        ChangesetCommand::List { dataset } => {
            let list: Vec<Value> = client
                .get(&format!("{}/changesets", dataset_path(dataset)?))
                .await?;
            if global.json {
                return print_json(&list);
            }
            println!(
                "{:>6}  {:<8} {:<27} {:>10} {:>12}  SOURCES",
                "ID", "KIND", "CREATED", "SAMPLES", "BYTES"
            );
            for c in list {
                let kind = c["kind"].as_str().unwrap_or("?");
                let kind = match c["reverts"].as_i64() {
                    Some(n) => format!("{kind} {n}"),
                    None => kind.to_owned(),
                };
                let sources: Vec<String> = c["sources"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|s| {
                                format!(
                                    "{}[{}] {}..{}",
                                    s["topic"].as_str().unwrap_or("?"),
                                    s["partition"],
                                    s["first_offset"],
                                    s["last_offset"]
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let num = |v: &Value| v.as_i64().map_or_else(|| "?".to_owned(), |n| n.to_string());
                println!(
                    "{:>6}  {:<8} {:<27} {:>10} {:>12}  {}",
                    num(&c["id"]),
                    kind,
                    time(c["created_at"].as_i64().unwrap_or(0)),
                    num(&c["sample_count"]),
                    num(&c["bytes"]),
                    sources.join(", ")
                );
            }
        }
        ChangesetCommand::Show { dataset, id } => {
            let c: ChangesetRecord = client
                .get(&format!("{}/changesets/{id}", dataset_path(dataset)?))
                .await?;
            if global.json {
                return print_json(&c);
            }
            show(&c);
        }
        ChangesetCommand::Revert { dataset, id } => {
            let edit = json!({ "kind": "revert", "changeset": id });
            committed(global, &client, dataset, &edit).await?;
        }
        ChangesetCommand::Remove(args) => {
            let edit = remove_edit(args)?;
            committed(global, &client, &args.dataset, &edit).await?;
        }
        ChangesetCommand::Relabel(args) => {
            let edit = relabel_edit(args)?;
            committed(global, &client, &args.dataset, &edit).await?;
        }
        ChangesetCommand::Query(args) => {
            let edit = json!({
                "kind": "query",
                "query": {
                    "source": args.source,
                    "sql": args.sql,
                    "label_column": args.label_column,
                    "feature_columns": args.feature_columns,
                },
            });
            committed(global, &client, &args.dataset, &edit).await?;
        }
    }
    Ok(())
}

async fn committed(
    global: &Global,
    client: &Client,
    dataset: &str,
    edit: &Value,
) -> anyhow::Result<()> {
    let c: ChangesetRecord = client
        .post(&format!("{}/changesets", dataset_path(dataset)?), edit)
        .await?;
    if global.json {
        return print_json(&c);
    }
    println!(
        "committed changeset {} of dataset {} ({}, {} samples)",
        c.id,
        c.dataset,
        kind_text(&c),
        c.sample_count
    );
    Ok(())
}

fn kind_text(c: &ChangesetRecord) -> String {
    let kind = serde_json::to_value(c.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    match c.reverts {
        Some(n) => format!("{kind} of changeset {n}"),
        None => kind,
    }
}

fn show(c: &ChangesetRecord) {
    println!("changeset {} of dataset {}", c.id, c.dataset);
    println!("kind      {}", kind_text(c));
    println!("created   {}", time(c.created_at));
    println!("samples   {}", c.sample_count);
    println!("bytes     {}", c.bytes);
    for s in &c.sources {
        println!(
            "source    {}[{}] offsets {}..={}",
            s.topic, s.partition, s.first_offset, s.last_offset
        );
    }
    for s in &c.segments {
        println!("segment   {s}");
    }
    if let Some(q) = &c.query {
        println!("query     {} on source {}", q.sql, q.source);
    }
    if !c.removed.is_empty() {
        println!(
            "removed   {} keys: {}",
            c.removed.len(),
            abbreviated(c.removed.iter().map(u64::to_string))
        );
    }
    if !c.relabels.is_empty() {
        let labels = c
            .relabels
            .iter()
            .map(|(k, l)| format!("{k}={}", l.as_deref().unwrap_or("(none)")));
        println!("relabels  {}: {}", c.relabels.len(), abbreviated(labels));
    }
}

/// The first few items and how many more.
fn abbreviated(items: impl ExactSizeIterator<Item = String>) -> String {
    let n = items.len();
    let shown: Vec<String> = items.take(10).collect();
    if n > shown.len() {
        format!("{} ... ({} more)", shown.join(", "), n - shown.len())
    } else {
        shown.join(", ")
    }
}

fn remove_edit(args: &RemoveArgs) -> anyhow::Result<Value> {
    if !args.keys.is_empty() {
        return Ok(json!({ "kind": "remove", "keys": args.keys }));
    }
    let micros = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<i64>> {
        v.as_deref()
            .map(|t| {
                parse_rfc3339(t).with_context(|| {
                    format!("--{flag} {t:?} is not an RFC 3339 time (e.g. 2026-11-21T10:00:00Z)")
                })
            })
            .transpose()
    };
    let filter = json!({
        "label": args.label,
        "unlabelled": args.unlabelled,
        "from": micros("from", &args.from)?,
        "to": micros("to", &args.to)?,
    });
    if args.label.is_none() && !args.unlabelled && args.from.is_none() && args.to.is_none() {
        bail!("say what to remove: --keys, or a filter (--label, --unlabelled, --from, --to)");
    }
    Ok(json!({ "kind": "remove_where", "filter": filter }))
}

fn relabel_edit(args: &RelabelArgs) -> anyhow::Result<Value> {
    let mut labels: Vec<(u64, Option<String>)> = Vec::new();
    for s in &args.set {
        let (key, label) = s
            .split_once('=')
            .with_context(|| format!("--set {s:?}: expected KEY=LABEL"))?;
        let key: u64 = key
            .trim()
            .parse()
            .with_context(|| format!("--set {s:?}: the key {key:?} is not a number"))?;
        labels.push((key, Some(label.to_owned())));
    }
    labels.extend(args.clear.iter().map(|k| (*k, None)));
    if labels.is_empty() {
        bail!("say what to relabel: --set KEY=LABEL or --clear KEY (repeatable)");
    }
    Ok(json!({ "kind": "relabel", "labels": labels }))
}
