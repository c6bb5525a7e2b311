//! The pipelines the demo and the experiment run on the stream: one trigger (the features'
//! drift), one model (an MLP), one way of training; they differ in what they select.

use flywheel_core::pipeline::Pipeline;

/// The dataset the demo streams into.
pub(crate) const DATASET: &str = "sensors";

/// Features per sample of the demo's sensor.
pub(crate) const FEATURES: usize = 8;

/// A pipeline of the run: its name, what it is in the report, and its document.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) name: String,
    pub(crate) label: &'static str,
    pub(crate) document: String,
}

/// What each pipeline selects when the trigger fires, and how it trains: (a short name, a
/// label for the report, the `[selection]` table, extra `[training]` lines).
const POLICIES: [(&str, &str, &str, &str); 5] = [
    ("all", "retrain on all data", "policy = \"all\"", ""),
    (
        "new",
        "new data (the newest 4,000)",
        "policy = \"new_data\"\nlimit = 4000\nlimit_by = \"last\"",
        "",
    ),
    (
        "fresh",
        "freshness (4,000, 3/4 unused)",
        "policy = \"freshness\"\nsize = 4000\nunused_ratio = 0.75",
        "",
    ),
    (
        "reservoir",
        "reservoir (4,000)",
        "policy = \"reservoir\"\nsize = 4000",
        "",
    ),
    (
        "loss",
        "new data, loss-based downsampling (half)",
        "policy = \"new_data\"\nlimit = 4000\nlimit_by = \"last\"",
        "downsample = { method = \"loss\", fraction = 0.5 }\n",
    ),
];

/// The one pipeline of the demo (new data), or the experiment's five, named after the run.
pub(crate) fn plans(run: &str, experiment: bool) -> anyhow::Result<Vec<Plan>> {
    let chosen: Vec<_> = if experiment {
        POLICIES.iter().collect()
    } else {
        POLICIES.iter().filter(|p| p.0 == "new").collect()
    };
    chosen
        .into_iter()
        .map(|(short, label, selection, training)| {
            let name = if experiment {
                format!("exp-{run}-{short}")
            } else {
                format!("demo-{run}")
            };
            let document = document(&name, selection, training);
            Pipeline::parse(&document)
                .map_err(|e| anyhow::anyhow!("the demo's pipeline {name}: {e}"))?;
            Ok(Plan {
                name,
                label,
                document,
            })
        })
        .collect()
}

/// A pipeline document: retrain when the features drift (two-sample KS over windows of
/// 1,000 samples, every 250, above 0.1), an MLP fine-tuned from the previous model.
fn document(name: &str, selection: &str, training: &str) -> String {
    format!(
        r#"name = "{name}"
dataset = "{DATASET}"

[trigger]
kind = "drift"
metric = "ks"
window = 1000
every = 250
criterion = {{ threshold = 0.1 }}

[selection]
{selection}

[input]
kind = "features"
width = {FEATURES}

[model]
kind = "mlp"
hidden = [32]
labels = ["0", "1"]

[training]
epochs = 5
batch_size = 128
learning_rate = 0.01
warm_start = true
on_bad_sample = "skip"
{training}
[evaluation]
after = 2000
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_runs_one_pipeline_and_the_experiment_five_all_valid() {
        let one = plans("r1", false).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name, "demo-r1");
        let five = plans("r1", true).unwrap();
        let names: Vec<&str> = five.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "exp-r1-all",
                "exp-r1-new",
                "exp-r1-fresh",
                "exp-r1-reservoir",
                "exp-r1-loss"
            ]
        );
        for p in &five {
            let parsed = Pipeline::parse(&p.document).unwrap();
            assert_eq!(parsed.dataset, DATASET);
        }
    }
}
