//! The command line: the process contract every flywheel command shares, and the
//! subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// flywheel keeps production models fresh: collectors publish samples, flywheel stores
/// and versions them, triggers retraining when the data calls for it, trains, and
/// publishes model releases with lineage back to the samples.
#[derive(Debug, Parser)]
#[command(
    name = "flywheel",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Settings every command shares. Flags and their variables override the configuration
/// file, which overrides the defaults.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Where the embedded backends keep their data (bus log, metadata, blobs)
    /// [default: ./flywheel-data]
    #[arg(long, global = true, env = "FLYWHEEL_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Configuration file (TOML; see docs/operations.md).
    #[arg(long, global = true, env = "FLYWHEEL_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// The event bus: embedded://DIR or kafka://HOST:PORT[,HOST:PORT...]
    /// [default: embedded://DATA_DIR/bus]
    #[arg(long, global = true, env = "FLYWHEEL_BUS")]
    pub(crate) bus: Option<String>,

    /// The metadata store: sqlite://FILE or scylla://HOST:PORT[,HOST:PORT...]
    /// [default: sqlite://DATA_DIR/meta.db]
    #[arg(long, global = true, env = "FLYWHEEL_META")]
    pub(crate) meta: Option<String>,

    /// The blob store: file://DIR, s3://BUCKET, gs://BUCKET or az://CONTAINER
    /// [default: file://DATA_DIR/blobs]
    #[arg(long, global = true, env = "FLYWHEEL_BLOBS")]
    pub(crate) blobs: Option<String>,

    /// Address the HTTP API, /metrics and /healthz are served on (port 0: any free port)
    /// [default: 127.0.0.1:8480]
    #[arg(long, global = true, env = "FLYWHEEL_HTTP")]
    pub(crate) http: Option<SocketAddr>,

    /// The gateway admin commands talk to.
    #[arg(
        long,
        global = true,
        env = "FLYWHEEL_SERVER",
        default_value = "http://127.0.0.1:8480"
    )]
    pub(crate) server: String,

    /// Bearer token for the gateway (it decides the tenant).
    #[arg(long, global = true, env = "FLYWHEEL_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,

    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run every service in one process on the configured backends (today: the gateway
    /// with /healthz and /metrics; the topics of every configured tenant are created).
    /// Stops cleanly on SIGINT or SIGTERM.
    Up,
    /// Run one service.
    Serve {
        /// Which service.
        #[arg(value_enum)]
        service: Service,
    },
    /// Print the topic catalogue, or create a tenant's topics on the bus.
    Topics(TopicsArgs),
    /// Run the end-to-end demo on the embedded default. Today: a smoke run of the event
    /// bus (topics created, samples produced as Avro, consumed back by a consumer group
    /// and decoded, offsets committed), with throughput figures.
    Demo(DemoArgs),
    /// Publish samples (JSON lines or Avro) from a file or stdin.
    Produce(Pending),
    /// List and inspect datasets.
    Dataset(Pending),
    /// List, show and revert changesets.
    Changeset(Pending),
    /// Prepare and fetch versioned training sets.
    Trainset(Pending),
    /// Submit, list, show and stop pipelines.
    Pipeline(Pending),
    /// List, show, fetch models and walk their lineage.
    Model(Pending),
}

/// The services `flywheel serve` runs.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Service {
    /// Samples in; keys, blobs and changesets out.
    Ingest,
    /// Pipelines, triggers and selection policies.
    Supervisor,
    /// Trains on training-set events, publishes model releases.
    Trainer,
    /// The HTTP API.
    Gateway,
}

/// A command that is not available in this version yet.
#[derive(Debug, Args)]
pub(crate) struct Pending {
    /// Arguments (the command is not available yet).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub(crate) args: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct TopicsArgs {
    /// Show the topic names of this tenant instead of the `{tenant}` pattern.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Print the catalogue as the Markdown of docs/topics.md.
    #[arg(long, conflicts_with = "json")]
    pub(crate) markdown: bool,
    /// Create the tenant's topics on the bus where missing (needs --tenant).
    #[arg(long, requires = "tenant")]
    pub(crate) create: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Samples to publish.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub(crate) samples: u64,
    /// Samples per produce batch.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) batch: u64,
    /// Hide the progress bars.
    #[arg(long)]
    pub(crate) quiet: bool,
}
