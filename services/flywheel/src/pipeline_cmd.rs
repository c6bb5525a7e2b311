//! `flywheel pipeline ...`: clients of the gateway's `/api/v1/pipelines`.

use std::io::Read as _;

use anyhow::{Context, bail};
use flywheel_core::pipeline::{Pipeline, check_pipeline_name};
use reqwest::Method;
use serde_json::Value;

use crate::admin::{print_json, time};
use crate::cli::{Global, PipelineCommand};
use crate::client::Client;

pub(crate) async fn run(global: &Global, command: &PipelineCommand) -> anyhow::Result<()> {
    let client = Client::new(global)?;
    match command {
        PipelineCommand::Submit { file } => {
            let text = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading the pipeline document from stdin")?;
                text
            } else {
                std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            // refused here already, by field, before anything is sent
            Pipeline::parse(&text).with_context(|| format!("{}", file.display()))?;
            let answer: Value = client
                .send(
                    client
                        .request(Method::POST, "/pipelines")
                        .header("content-type", "application/toml")
                        .body(text),
                )
                .await?;
            if global.json {
                return print_json(&answer);
            }
            println!(
                "submitted pipeline {} on dataset {}",
                answer["name"].as_str().unwrap_or("?"),
                answer["pipeline"]["dataset"].as_str().unwrap_or("?")
            );
        }
        PipelineCommand::List => {
            let list: Vec<Value> = client.get("/pipelines").await?;
            if global.json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no pipelines yet (see `flywheel pipeline submit`)");
                return Ok(());
            }
            println!(
                "{:<32} {:<8} {:<20} {:<14} {:<16} SUBMITTED",
                "PIPELINE", "STATUS", "DATASET", "TRIGGER", "SELECTION"
            );
            for p in list {
                println!(
                    "{:<32} {:<8} {:<20} {:<14} {:<16} {}",
                    p["name"].as_str().unwrap_or("?"),
                    p["status"].as_str().unwrap_or("?"),
                    p["pipeline"]["dataset"].as_str().unwrap_or("?"),
                    p["pipeline"]["trigger"]["kind"].as_str().unwrap_or("?"),
                    p["pipeline"]["selection"]["policy"].as_str().unwrap_or("?"),
                    time(p["submitted_at"].as_i64().unwrap_or(0))
                );
            }
        }
        PipelineCommand::Show { name } => {
            let p: Value = client.get(&path(name)?).await?;
            if global.json {
                return print_json(&p);
            }
            println!("pipeline   {}", p["name"].as_str().unwrap_or("?"));
            println!("status     {}", p["status"].as_str().unwrap_or("?"));
            println!(
                "submitted  {}",
                time(p["submitted_at"].as_i64().unwrap_or(0))
            );
            if let Some(t) = p["stopped_at"].as_i64() {
                println!("stopped    {}", time(t));
            }
            let s = &p["state"];
            if s.is_null() {
                println!("progress   not run by a supervisor yet");
            } else {
                println!(
                    "progress   changeset {} folded ({} and before were history), {} samples tracked at the last checkpoint",
                    s["processed"], s["live_from"], s["tracked"]
                );
                match s["last"].as_object() {
                    Some(last) => println!(
                        "triggers   {} emitted; the last: {} samples, training set {} at changeset {}",
                        s["emitted"],
                        last["sample_count"],
                        last["version"].as_str().unwrap_or("?"),
                        last["changeset"]
                    ),
                    None => println!("triggers   none emitted yet"),
                }
            }
            println!("\n{}", p["document"].as_str().unwrap_or("").trim_end());
        }
        PipelineCommand::Triggers { name, limit } => {
            let list: Vec<Value> = client
                .get(&format!("{}/triggers?limit={limit}", path(name)?))
                .await?;
            if global.json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("pipeline {name} has emitted no training sets yet");
                return Ok(());
            }
            println!(
                "{:>8} {:<32} {:>10} {:>10} {:<12} CREATED",
                "TRIGGER", "TRAINING SET", "SAMPLES", "CHANGESET", "REASON"
            );
            for e in list {
                println!(
                    "{:>8} {:<32} {:>10} {:>10} {:<12} {}",
                    e["trigger_id"],
                    e["version"].as_str().unwrap_or("?"),
                    e["sample_count"],
                    e["head_changeset"],
                    e["trigger_reason"].as_str().unwrap_or("?"),
                    time(e["created_at"].as_i64().unwrap_or(0))
                );
            }
        }
        PipelineCommand::Releases { name, limit } => {
            let list: Vec<Value> = client
                .get(&format!("{}/releases?limit={limit}", path(name)?))
                .await?;
            if global.json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no model of pipeline {name} has been released yet");
                return Ok(());
            }
            println!(
                "{:>8} {:<36} {:<32} {:<36} RELEASED",
                "TRIGGER", "MODEL", "TRAINING SET", "PARENT"
            );
            for r in list {
                println!(
                    "{:>8} {:<36} {:<32} {:<36} {}",
                    r["trigger_id"],
                    r["model_id"].as_str().unwrap_or("?"),
                    r["trainset_version"].as_str().unwrap_or("?"),
                    r["parent_model"].as_str().unwrap_or("-"),
                    time(r["created_at"].as_i64().unwrap_or(0))
                );
            }
        }
        PipelineCommand::Stop { name } => {
            let p: Value = client
                .send(client.request(Method::POST, &format!("{}/stop", path(name)?)))
                .await?;
            if global.json {
                return print_json(&p);
            }
            println!(
                "pipeline {} is {}",
                name,
                p["status"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}

/// `/pipelines/NAME`, the name checked first.
fn path(name: &str) -> anyhow::Result<String> {
    if let Err(reason) = check_pipeline_name(name) {
        bail!("invalid pipeline name {name:?}: {reason}");
    }
    Ok(format!("/pipelines/{name}"))
}
