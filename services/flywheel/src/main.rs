//! `flywheel`: the one binary. `flywheel up` runs every service in one process,
//! `flywheel serve <service>` runs one, and the admin commands are clients of the
//! gateway. Exit status: 0 on success, 1 on an error, 2 on a usage error, 3 for a command
//! this version does not have yet; the reason is one line on stderr.

mod admin;
mod cli;
mod client;
mod config;
mod demo;
mod model_cmd;
mod pipeline_cmd;
mod produce;
mod topics_cmd;
mod trainset_cmd;
mod up;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, Service};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Up => runtime().and_then(|rt| {
            rt.block_on(up::run(
                &cli.global,
                &[
                    Service::Gateway,
                    Service::Ingest,
                    Service::Supervisor,
                    Service::Trainer,
                ],
            ))
        }),
        Command::Serve { service } => {
            runtime().and_then(|rt| rt.block_on(up::run(&cli.global, &[service])))
        }
        Command::Produce(args) => {
            runtime().and_then(|rt| rt.block_on(produce::run(&cli.global, &args)))
        }
        Command::Dataset { command } => {
            runtime().and_then(|rt| rt.block_on(admin::dataset(&cli.global, &command)))
        }
        Command::Changeset { command } => {
            runtime().and_then(|rt| rt.block_on(admin::changeset(&cli.global, &command)))
        }
        Command::Trainset { command } => {
            runtime().and_then(|rt| rt.block_on(trainset_cmd::run(&cli.global, &command)))
        }
        Command::Pipeline { command } => {
            runtime().and_then(|rt| rt.block_on(pipeline_cmd::run(&cli.global, &command)))
        }
        Command::Model { command } => {
            runtime().and_then(|rt| rt.block_on(model_cmd::run(&cli.global, &command)))
        }
        Command::Topics(args) => {
            runtime().and_then(|rt| rt.block_on(topics_cmd::run(&cli.global, &args)))
        }
        Command::Demo(args) => runtime().and_then(|rt| rt.block_on(demo::run(&cli.global, &args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // one line: the error and its causes
            let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("flywheel: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Logs go to stderr; `RUST_LOG` filters them. By default: warnings, without librdkafka's
/// own client logs (a broker that is down is reported once, as flywheel's error;
/// `RUST_LOG=warn,librdkafka=warn` shows them).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,librdkafka=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
