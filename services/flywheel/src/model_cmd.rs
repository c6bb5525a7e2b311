//! `flywheel model ...`: clients of the gateway's `/api/v1/models`.

use std::path::Path;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::Value;

use crate::admin::{print_json, time};
use crate::cli::{Global, ModelCommand};
use crate::client::Client;

pub(crate) async fn run(global: &Global, command: &ModelCommand) -> anyhow::Result<()> {
    let client = Client::new(global)?;
    match command {
        ModelCommand::List { pipeline } => {
            let path = match pipeline {
                Some(p) => {
                    check(p, "pipeline name")?;
                    format!("/models?pipeline={p}")
                }
                None => "/models".to_owned(),
            };
            let list: Vec<Value> = client.get(&path).await?;
            if global.json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!(
                    "no models yet (a trainer releases one per training set a pipeline emits)"
                );
                return Ok(());
            }
            println!(
                "{:<36} {:>8} {:>9} {:>9} {:<36} RELEASED",
                "MODEL", "TRIGGER", "SAMPLES", "ACCURACY", "PARENT"
            );
            for m in list {
                println!(
                    "{:<36} {:>8} {:>9} {:>9} {:<36} {}",
                    m["id"].as_str().unwrap_or("?"),
                    m["trigger_id"],
                    metric(&m, "train_samples", 0),
                    metric(&m, "holdout_accuracy", 3),
                    m["parent"].as_str().unwrap_or("-"),
                    time(m["created_at"].as_i64().unwrap_or(0))
                );
            }
        }
        ModelCommand::Show { id } => {
            check(id, "model id")?;
            let m: Value = client.get(&format!("/models/{id}")).await?;
            if global.json {
                return print_json(&m);
            }
            println!("model         {}", m["id"].as_str().unwrap_or("?"));
            println!(
                "pipeline      {} (trigger {})",
                m["pipeline"].as_str().unwrap_or("?"),
                m["trigger_id"]
            );
            println!(
                "training set  {}",
                m["trainset_version"].as_str().unwrap_or("?")
            );
            println!(
                "parent        {}",
                m["parent"]
                    .as_str()
                    .unwrap_or("none (trained from scratch)")
            );
            println!("weights       {}", m["uri"].as_str().unwrap_or("?"));
            println!(
                "released      {}",
                time(m["created_at"].as_i64().unwrap_or(0))
            );
            let card = &m["card"];
            if card.is_null() {
                println!("card          (cannot be read)");
            } else {
                println!(
                    "architecture  {} on {}; classes {}",
                    card["kind"].as_str().unwrap_or("?"),
                    card["input"],
                    card["labels"]
                );
            }
            if let Some(metrics) = m["metrics"].as_object() {
                println!("metrics");
                for (k, v) in metrics {
                    println!("  {k:<28} {v}");
                }
            }
        }
        ModelCommand::Get { id, out } => {
            check(id, "model id")?;
            let m: Value = client.get(&format!("/models/{id}")).await?;
            if m["card"].is_null() {
                bail!("model {id}'s card cannot be read (the gateway's log says why)");
            }
            let weights = client
                .stream(Method::GET, &format!("/models/{id}/weights"))
                .await?
                .bytes()
                .await
                .context("reading the model's weights")?;
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            let files = [
                (out.join(format!("{id}.safetensors")), weights.to_vec()),
                (
                    out.join(format!("{id}.json")),
                    serde_json::to_vec_pretty(&m["card"])?,
                ),
            ];
            for (path, bytes) in &files {
                write_atomically(path, bytes)?;
            }
            if global.json {
                return print_json(&serde_json::json!({
                    "model": id,
                    "weights": files[0].0,
                    "card": files[1].0,
                    "bytes": weights.len(),
                }));
            }
            println!(
                "wrote {} ({} bytes) and its card {}",
                files[0].0.display(),
                weights.len(),
                files[1].0.display()
            );
        }
        ModelCommand::Lineage { id, keys } => {
            check(id, "model id")?;
            let l: Value = client
                .get(&format!("/models/{id}/lineage?keys={keys}"))
                .await?;
            if global.json {
                return print_json(&l);
            }
            let m = &l["model"];
            println!(
                "model {} (pipeline {}, trigger {})",
                m["id"].as_str().unwrap_or("?"),
                m["pipeline"].as_str().unwrap_or("?"),
                m["trigger_id"]
            );
            let mut indent = String::from("  ");
            for a in l["ancestors"].as_array().into_iter().flatten() {
                println!(
                    "{indent}fine-tuned from {} (trigger {}, training set {})",
                    a["id"].as_str().unwrap_or("?"),
                    a["trigger_id"],
                    a["trainset_version"].as_str().unwrap_or("?")
                );
                indent.push_str("  ");
            }
            let t = &l["trainset"];
            println!(
                "trained on training set {} of dataset {}, pinned to changeset {}: {} samples",
                t["version"].as_str().unwrap_or("?"),
                t["dataset"].as_str().unwrap_or("?"),
                t["head_changeset"],
                l["samples"]
            );
            for c in l["changesets"].as_array().into_iter().flatten() {
                println!(
                    "  changeset {:>8}: {} samples",
                    c["changeset"], c["samples"]
                );
            }
            if let Some(keys) = l["keys"].as_array() {
                println!("sample keys:");
                for k in keys {
                    println!("{k}");
                }
            }
        }
    }
    Ok(())
}

/// A model id or pipeline name: letters, digits, `-` and `_`.
fn check(text: &str, what: &str) -> anyhow::Result<()> {
    let ok = (1..=96).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        bail!("invalid {what} {text:?}: use letters, digits, '-' or '_'");
    }
    Ok(())
}

/// A metric of a model, rounded; `-` if it has none.
fn metric(model: &Value, name: &str, decimals: usize) -> String {
    model["metrics"][name]
        .as_f64()
        .map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
