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
    /// Run every service in one process on the configured backends (the gateway, ingest,
    /// the supervisor and the trainer; the topics of every configured tenant are created). Serves the HTTP
    /// API, /healthz and /metrics on --http. Stops cleanly on SIGINT or SIGTERM.
    Up,
    /// Run one service (every one serves /healthz and /metrics on --http; the gateway
    /// the API too).
    Serve {
        /// Which service.
        #[arg(value_enum)]
        service: Service,
    },
    /// Print the topic catalogue, or create a tenant's topics on the bus.
    Topics(TopicsArgs),
    /// Run the end-to-end demo on the embedded default, in one process: a drifting sensor
    /// stream (and a few malformed messages) is published at a steady rate; ingest stores
    /// it as keyed rows, payload segments and changesets, bad input goes to the dead-letter
    /// topic; a pipeline (retrain when the features drift, on the newest samples, an MLP
    /// fine-tuned from the model before) is run by the supervisor and the trainer while
    /// the stream goes on; every model is scored on the samples it was live for against
    /// the one before; the report (JSON, a table of the models, a PNG plot of accuracy over
    /// event time) goes to --out. Checks that every sample is stored exactly once, every
    /// trigger emitted once, every training set released once. With --experiment, five
    /// selection policies are compared on the same stream.
    Demo(DemoArgs),
    /// Publish samples (JSON lines, or an Avro object container file) from a file or
    /// stdin through the gateway; a sample is acknowledged once it is on the bus.
    Produce(ProduceArgs),
    /// List, create and inspect datasets.
    Dataset {
        #[command(subcommand)]
        command: DatasetCommand,
    },
    /// List and show changesets; remove, relabel and revert.
    Changeset {
        #[command(subcommand)]
        command: ChangesetCommand,
    },
    /// Prepare, list, show and fetch versioned training sets: a training set is a query
    /// over a dataset's changesets, pinned to a changeset; its version is a hash of the
    /// query.
    Trainset {
        #[command(subcommand)]
        command: TrainsetCommand,
    },
    /// Submit, list, show and stop pipelines: a pipeline is a TOML document naming a
    /// dataset, a trigger policy, a selection policy, the model, its training and its
    /// evaluation (examples in docs/examples/).
    Pipeline {
        #[command(subcommand)]
        command: PipelineCommand,
    },
    /// List, show and fetch the models trainers released, and walk a model's lineage: to
    /// the models it was fine-tuned from, its training set, changesets and samples.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
}

/// The services `flywheel serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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

impl Service {
    /// Its name on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::Ingest => "ingest",
            Service::Supervisor => "supervisor",
            Service::Trainer => "trainer",
            Service::Gateway => "gateway",
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// The file to read; `-` for stdin.
    #[arg(default_value = "-")]
    pub(crate) file: PathBuf,
    /// What the input is; `auto` looks at its first bytes.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    pub(crate) format: InputFormat,
    /// Samples per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) batch: u64,
    /// Skip invalid samples (each is reported on stderr) instead of stopping at the first.
    #[arg(long)]
    pub(crate) skip_invalid: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// Input formats of `flywheel produce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum InputFormat {
    /// An Avro object container file when it starts with `Obj\x01`, else JSON lines.
    Auto,
    /// One JSON sample per line.
    Jsonl,
    /// An Avro object container file of Sample records.
    Avro,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DatasetCommand {
    /// Every dataset of the tenant, with its head changeset, samples and bytes.
    List,
    /// One dataset.
    Show {
        /// The dataset.
        name: String,
    },
    /// Sample count, label histogram, event-time range and bytes (scans the dataset).
    Stats {
        /// The dataset.
        name: String,
    },
    /// Creates a dataset (needed first when ingest.auto_create_datasets is off).
    Create {
        /// The dataset.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ChangesetCommand {
    /// The changesets of a dataset.
    List {
        /// The dataset.
        dataset: String,
    },
    /// One changeset, with its sources, segments, removed keys and relabels.
    Show {
        /// The dataset.
        dataset: String,
        /// The changeset id.
        id: i64,
    },
    /// Undoes a changeset where its effect is still visible, as a new changeset.
    Revert {
        /// The dataset.
        dataset: String,
        /// The changeset to undo.
        id: i64,
    },
    /// Removes samples by key, or every sample that matches a filter.
    Remove(RemoveArgs),
    /// Sets or clears labels of samples (labels that arrive later).
    Relabel(RelabelArgs),
    /// Adds the rows of a query of a restricted source (declared under [sources.NAME] in
    /// the gateway's configuration). No row is stored: the query is checked against the
    /// source now, and its rows are read only while a training set is read.
    Query(QueryArgs),
}

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// The dataset.
    pub(crate) dataset: String,
    /// The source's name.
    #[arg(long)]
    pub(crate) source: String,
    /// The SQL (one read-only statement; give it an ORDER BY so reads agree).
    #[arg(long)]
    pub(crate) sql: String,
    /// The result column holding the label.
    #[arg(long)]
    pub(crate) label_column: Option<String>,
    /// A result column holding a feature (repeatable, in order).
    #[arg(long = "feature-column", value_name = "COLUMN")]
    pub(crate) feature_columns: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RemoveArgs {
    /// The dataset.
    pub(crate) dataset: String,
    /// Keys to remove (comma-separated).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["label", "unlabelled", "from", "to"])]
    pub(crate) keys: Vec<u64>,
    /// Remove the samples with this label.
    #[arg(long)]
    pub(crate) label: Option<String>,
    /// Remove the samples without a label.
    #[arg(long, conflicts_with = "label")]
    pub(crate) unlabelled: bool,
    /// Remove samples with event time at or after this (RFC 3339).
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// Remove samples with event time before this (RFC 3339).
    #[arg(long)]
    pub(crate) to: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RelabelArgs {
    /// The dataset.
    pub(crate) dataset: String,
    /// KEY=LABEL, repeatable.
    #[arg(long = "set", value_name = "KEY=LABEL")]
    pub(crate) set: Vec<String>,
    /// A key whose label to remove, repeatable.
    #[arg(long = "clear", value_name = "KEY")]
    pub(crate) clear: Vec<u64>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PipelineCommand {
    /// Checks a pipeline document and submits it. The supervisor observes the dataset's
    /// changesets committed so far as history (no trigger fires on them) and emits
    /// training sets for triggers on later ones. Submitting a pipeline of the same name
    /// again replaces it and starts its policies over the same way; trigger ids go on.
    Submit {
        /// The TOML document; `-` for stdin.
        file: PathBuf,
    },
    /// The tenant's pipelines.
    List,
    /// One pipeline, its document and the supervisor's progress on it.
    Show {
        /// The pipeline's name.
        name: String,
    },
    /// The training sets the supervisor emitted for a pipeline (its triggers), oldest
    /// first, as long as the trainsets topic keeps them.
    Triggers {
        /// The pipeline's name.
        name: String,
        /// Only the newest N.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        limit: u64,
    },
    /// The models trainers released for a pipeline (one per training set), oldest first,
    /// from the models topic.
    Releases {
        /// The pipeline's name.
        name: String,
        /// Only the newest N.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        limit: u64,
    },
    /// Stops a pipeline.
    Stop {
        /// The pipeline's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ModelCommand {
    /// The tenant's models (or one pipeline's), oldest first, with their evaluation.
    List {
        /// Only this pipeline's.
        #[arg(long)]
        pipeline: Option<String>,
    },
    /// A model: its pipeline, trigger, training set, parent, card and metrics.
    Show {
        /// The model id (`PIPELINE-TRIGGER`).
        id: String,
    },
    /// Writes a model's weights (safetensors) and its card (JSON) to a directory.
    Get {
        /// The model id.
        id: String,
        /// The directory (created); the files are ID.safetensors and ID.json.
        #[arg(long)]
        out: PathBuf,
    },
    /// Where a model comes from: the models it was fine-tuned from, its training set,
    /// the changesets of its samples and (with --keys) the sample keys.
    Lineage {
        /// The model id.
        id: String,
        /// Print every sample key of its training set too.
        #[arg(long)]
        keys: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TrainsetCommand {
    /// Prepares a training set and prints its version. Without --as-of the query is
    /// pinned to the dataset's head now; the same query gives the same version.
    Prepare(PrepareArgs),
    /// The training sets of the tenant (or of one dataset), oldest first.
    List {
        /// Only those of this dataset.
        #[arg(long)]
        dataset: Option<String>,
    },
    /// A training set's query, sample count, label histogram and shards.
    Show {
        /// The version.
        #[arg(id = "trainset", value_name = "VERSION")]
        version: String,
    },
    /// Writes a training set to a directory: its WebDataset-style tar shards
    /// (shard-000000.tar, ...), its manifest (manifest.bin) and summary (trainset.json).
    Get(GetArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PrepareArgs {
    /// The dataset.
    #[arg(long)]
    pub(crate) dataset: String,
    /// Only samples with this label (repeatable: any of them).
    #[arg(long = "label", value_name = "LABEL")]
    pub(crate) labels: Vec<String>,
    /// Only samples with event time at or after this (RFC 3339).
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// Only samples with event time before this (RFC 3339).
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// Only the newest fraction by event time, in (0, 1]: 0.8 is the newest 80 %.
    #[arg(long)]
    pub(crate) percentage: Option<f64>,
    /// Only samples added by these changesets, e.g. 1,3-5.
    #[arg(long)]
    pub(crate) changesets: Option<String>,
    /// Read the dataset as of this changeset (default: its head now).
    #[arg(long)]
    pub(crate) as_of: Option<i64>,
    /// Then draw this many samples uniformly (seeded by --seed).
    #[arg(long, conflicts_with = "per_label")]
    pub(crate) sample: Option<u64>,
    /// Then draw up to this many samples of each label (seeded by --seed).
    #[arg(long)]
    pub(crate) per_label: Option<u64>,
    /// The seed of --sample or --per-label.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The version.
    #[arg(id = "trainset", value_name = "VERSION")]
    pub(crate) version: String,
    /// The directory to write to (created; existing shard files are replaced).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Write rows of restricted sources to the directory too. They are otherwise never
    /// stored anywhere: with this flag, keeping DIR safe is up to you.
    #[arg(long)]
    pub(crate) write_restricted_rows: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
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
    /// Samples to publish: a drifting sensor (see `loadgen stream sensor`).
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub(crate) samples: u64,
    /// Samples per produce batch.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) batch: u64,
    /// Samples published per second (0: as fast as the bus takes them).
    #[arg(long, default_value_t = 2_000.0)]
    pub(crate) rate: f64,
    /// The stream's seed: the same seed, the same samples.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Gradual drift: how far the sensor's concept turns every 1,000 samples, in degrees.
    #[arg(long, default_value_t = 8.0)]
    pub(crate) drift_degrees: f64,
    /// Sudden drift: the concept jumps every this many samples (0: never).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) sudden_every: u64,
    /// Where the report goes: report.json, models.md, accuracy.png.
    #[arg(long, default_value = "flywheel-demo")]
    pub(crate) out: std::path::PathBuf,
    /// Run the experiment instead of the demo's one pipeline: five pipelines on the same
    /// stream (retrain on all data; new data; freshness; a reservoir; new data with
    /// loss-based downsampling) and a model never retrained, compared.
    #[arg(long)]
    pub(crate) experiment: bool,
    /// Hide the progress bars.
    #[arg(long)]
    pub(crate) quiet: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// clap's own checks of every command and flag (names, conflicts, defaults), which it
    /// otherwise runs only when a command is used.
    #[test]
    fn commands_are_well_formed() {
        super::Cli::command().debug_assert();
    }
}
