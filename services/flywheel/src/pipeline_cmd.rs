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
            println!("\n{}", p["document"].as_str().unwrap_or("").trim_end());
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
