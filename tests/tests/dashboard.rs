//! The Grafana dashboard (`deploy/grafana/dashboards/flywheel.json`) queries only metrics
//! the services export, with labels they carry.
//!
//! A labelled family is missing from `/metrics` until it has a series, so reading an idle
//! process proves nothing. This test drives `flywheel up` (every service in one process,
//! so every family any of them registers) until each family the dashboard queries has
//! one: samples stored, one refused (a dead letter), a pipeline triggered, a model
//! trained and released. Then it reads `/metrics` and checks every query of the
//! dashboard against it: metric names (a histogram's `_bucket`, `_sum` and `_count`
//! included), the labels of selectors and of `by (...)` clauses. A second run checks that
//! the model-accuracy gauge carries the released model's held-out accuracy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use flywheel_tests::{Server, cli_json, flywheel, http_get, produce_and_wait};

/// The dashboard, relative to this crate.
const DASHBOARD: &str = "../deploy/grafana/dashboards/flywheel.json";

/// Series Prometheus writes itself for every target (not exported by a service).
const PROMETHEUS_SERIES: &[&str] = &["up"];

/// Labels Prometheus adds to every series it scrapes.
const TARGET_LABELS: &[&str] = &["job", "instance"];

/// A trigger every 40 samples, a small model, quickly trained.
const PIPELINE: &str = r#"
name = "watch"
dataset = "points"

[trigger]
kind = "data_amount"
samples = 40

[selection]
policy = "new_data"

[model]
kind = "linear"

[training]
epochs = 2
batch_size = 8

[evaluation]
holdout = 0.25
"#;

/// Samples `from..to` of `dataset`: features `[x, 1 - x]`, `hi` when x > 0.5.
fn lines(dataset: &str, from: usize, to: usize) -> String {
    (from..to)
        .map(|i| {
            let x = (i * 37 % 100) as f64 / 100.0;
            format!(
                r#"{{"dataset":"{dataset}","features":[{x},{}],"label":"{}","event_time":"2026-11-21T10:{:02}:{:02}Z"}}"#,
                1.0 - x,
                if x > 0.5 { "hi" } else { "lo" },
                i / 60 % 60,
                i % 60
            ) + "\n"
        })
        .collect()
}

#[test]
fn the_dashboard_queries_only_metrics_the_services_export() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(DASHBOARD))
            .expect("read the dashboard"),
    )
    .expect("the dashboard is JSON");
    let queries = queries(&dashboard);
    assert!(queries.len() >= 6, "too few queries found: {queries:?}");
    let wanted: BTreeSet<String> = (queries.iter())
        .flat_map(|q| parse(&q.expr).selectors)
        .map(|s| s.name)
        .filter(|n| !PROMETHEUS_SERIES.contains(&n.as_str()))
        .collect();

    let run = drive(&wanted);
    let exported = Exported::parse(&run.metrics);
    let mut problems = Vec::new();
    for q in &queries {
        problems.extend(check(q, &exported));
    }
    assert!(
        problems.is_empty(),
        "the dashboard does not match what the services export:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_accuracy_gauge_is_the_released_models_held_out_accuracy() {
    let wanted = BTreeSet::from(["flywheel_trainer_model_accuracy".to_owned()]);
    let run = drive(&wanted);
    let release = &run.releases[0];
    let want = release["metrics"]["holdout_accuracy"]
        .as_f64()
        .unwrap_or_else(|| panic!("no held-out accuracy in {release}"));
    let series =
        r#"flywheel_trainer_model_accuracy{on="held_out",pipeline="watch",tenant="default"} "#;
    let got: f64 = (run.metrics.lines())
        .find_map(|l| l.strip_prefix(series))
        .unwrap_or_else(|| panic!("no {series}in:\n{}", run.metrics))
        .parse()
        .unwrap();
    assert!((got - want).abs() < 1e-9, "gauge {got}, release {want}");
    // no sample arrived after the set before its model was evaluated: no `after` series
    if release["metrics"].get("after_accuracy").is_none() {
        assert!(!run.metrics.contains(r#"on="after""#), "{}", run.metrics);
    }
}

/// What a run of [`drive`] saw.
struct Run {
    /// The `/metrics` text at the end.
    metrics: String,
    /// The pipeline's releases (`flywheel pipeline releases watch --json`).
    releases: Vec<serde_json::Value>,
}

/// Runs `flywheel up` through a small pipeline, to a model's release, and reads its
/// `/metrics` once every name in `wanted` has a series, or 20 s after the release if
/// some never gets one (a name no service exports, say).
fn drive(wanted: &BTreeSet<String>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // samples of datasets that do not exist are refused: a dead letter on demand
    let config = d.join("flywheel.toml");
    std::fs::write(&config, "[ingest]\nauto_create_datasets = false\n").unwrap();
    let mut command = flywheel(d);
    command.args(["--config", config.to_str().unwrap(), "up"]);
    let server = Server::start(command);

    cli_json(d, &server, &["dataset", "create", "points"]);
    let pipeline = d.join("pipeline.toml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    cli_json(
        d,
        &server,
        &["pipeline", "submit", pipeline.to_str().unwrap()],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while cli_json(d, &server, &["pipeline", "show", "watch"])["state"].is_null() {
        assert!(
            Instant::now() < deadline,
            "the supervisor never took the pipeline"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    produce_and_wait(d, &server, &lines("points", 0, 60), "points", 60);
    let refused = d.join("refused.jsonl");
    std::fs::write(&refused, lines("nowhere", 0, 1)).unwrap();
    cli_json(d, &server, &["produce", refused.to_str().unwrap()]);

    let deadline = Instant::now() + Duration::from_secs(180);
    let releases = loop {
        let released = cli_json(d, &server, &["pipeline", "releases", "watch"]);
        let released = released.as_array().unwrap().clone();
        if !released.is_empty() {
            break released;
        }
        assert!(Instant::now() < deadline, "no model was released");
        std::thread::sleep(Duration::from_millis(200));
    };
    // a release's gauges and counters follow its publication at once, the lag gauges the
    // consumers' next polls, the dead letter ingest's next one
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, metrics) = http_get(&server.addr, "/metrics", None);
        assert_eq!(status, 200, "{metrics}");
        let exported = Exported::parse(&metrics);
        if wanted.iter().all(|n| exported.has(n)) || Instant::now() > deadline {
            return Run { metrics, releases };
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The metric families of one `/metrics` text: type and label names of each.
#[derive(Debug, Default)]
struct Exported {
    types: BTreeMap<String, String>,
    labels: BTreeMap<String, BTreeSet<String>>,
}

impl Exported {
    fn parse(text: &str) -> Self {
        let mut e = Self::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    e.types.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                let name_end = line.find(['{', ' ']).unwrap_or(line.len());
                let series = &line[..name_end];
                let labels = line[name_end..]
                    .strip_prefix('{')
                    .map(label_names)
                    .unwrap_or_default();
                e.labels
                    .entry(series.to_owned())
                    .or_default()
                    .extend(labels);
            }
        }
        e
    }

    /// Whether a series of this name is exported (a histogram's `_bucket`, `_sum` and
    /// `_count` are series of its family).
    fn has(&self, name: &str) -> bool {
        self.labels_of(name).is_some()
    }

    /// The label names of the series `name` carries, if it is exported.
    fn labels_of(&self, name: &str) -> Option<&BTreeSet<String>> {
        self.is_series(name)
            .then(|| self.labels.get(name))
            .flatten()
    }

    /// Whether `name` is a series of an exported family: the family's own name, or
    /// `_bucket`, `_sum` or `_count` of a histogram (`_sum`, `_count` of a summary).
    fn is_series(&self, name: &str) -> bool {
        if let Some(kind) = self.types.get(name) {
            // a histogram's or summary's own name is no series
            return kind != "histogram" && kind != "summary";
        }
        [
            ("_bucket", &["histogram"][..]),
            ("_sum", &["histogram", "summary"][..]),
            ("_count", &["histogram", "summary"][..]),
        ]
        .into_iter()
        .any(|(suffix, kinds)| {
            (name.strip_suffix(suffix))
                .and_then(|base| self.types.get(base))
                .is_some_and(|kind| kinds.contains(&kind.as_str()))
        })
    }
}

/// The label names of a `/metrics` label set, from after its `{`: `a="x",b="y\"}"} 1`.
fn label_names(mut text: &str) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if text.starts_with('}') {
            return names;
        }
        let Some((name, rest)) = text.split_once("=\"") else {
            return names;
        };
        names.push(name.to_owned());
        // the value ends at the first quote not escaped
        let mut escaped = false;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = i;
                    break;
                }
                _ => escaped = false,
            }
        }
        text = rest.get(end + 1..).unwrap_or("");
    }
}

/// One query of the dashboard and where it is.
#[derive(Debug)]
struct Query {
    place: String,
    expr: String,
}

/// Every PromQL query of the dashboard: its panels' targets (rows' panels included) and
/// its query variables. A `label_values(EXPR, LABEL)` variable is checked as `EXPR` with
/// `LABEL` as a label of it (`by (LABEL)`).
fn queries(dashboard: &serde_json::Value) -> Vec<Query> {
    fn panels(list: &serde_json::Value, out: &mut Vec<Query>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push(Query {
                        place: format!("panel {title:?}, target {}", t["refId"]),
                        expr: expr.to_owned(),
                    });
                }
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if v["type"] != "query" {
            continue;
        }
        let query = v["query"]["query"]
            .as_str()
            .or_else(|| v["query"].as_str())
            .unwrap_or_default();
        let place = format!("variable {}", v["name"]);
        let expr = match query
            .trim()
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
        {
            Some((expr, label)) => format!("group by ({}) ({expr})", label.trim()),
            None => query.to_owned(),
        };
        out.push(Query { place, expr });
    }
    out
}

/// A series selector of a query: the metric's name and the labels it matches on.
#[derive(Debug)]
struct Selector {
    name: String,
    labels: Vec<String>,
}

/// What a query refers to: its selectors and the labels of its `by`, `without`, `on`,
/// `ignoring`, `group_left` and `group_right` clauses.
#[derive(Debug, Default)]
struct Refs {
    selectors: Vec<Selector>,
    grouping: Vec<String>,
    /// What the scanner could not read (a selector without a metric name, say).
    unreadable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str,
    Number,
    Punct(char),
}

/// Splits a PromQL query into tokens. Range and subquery brackets (`[5m]`,
/// `[$__rate_interval]`) and Grafana's variables (`$tenant`) are dropped.
fn tokens(expr: &str) -> Vec<Token> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' && c != '`' { 2 } else { 1 };
            }
            i += 1;
            out.push(Token::Str);
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push(Token::Number);
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

/// PromQL's aggregation operators and keywords: never metric names.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
];

/// Clauses followed by a list of label names.
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn parse(expr: &str) -> Refs {
    let t = tokens(expr);
    let mut refs = Refs::default();
    let mut i = 0;
    // the label names of a `( a, b )` list starting at `from`; the index after it
    let list = |from: usize, out: &mut Vec<String>| -> usize {
        let mut j = from + 1;
        while j < t.len() && t[j] != Token::Punct(')') {
            if let Token::Ident(name) = &t[j] {
                out.push(name.clone());
            }
            j += 1;
        }
        j + 1
    };
    // the label names matched in a `{a="x", b=~"y"}` selector starting at `from`
    let matchers = |from: usize, out: &mut Vec<String>| -> usize {
        let mut j = from + 1;
        while j < t.len() && t[j] != Token::Punct('}') {
            if let Token::Ident(name) = &t[j] {
                out.push(name.clone());
            }
            j += 1;
        }
        j + 1
    };
    while i < t.len() {
        match &t[i] {
            Token::Ident(word) if GROUPING.contains(&word.as_str()) => {
                if t.get(i + 1) == Some(&Token::Punct('(')) {
                    i = list(i + 1, &mut refs.grouping);
                } else {
                    i += 1;
                }
            }
            Token::Ident(word) if KEYWORDS.contains(&word.as_str()) => i += 1,
            // a function call
            Token::Ident(_) if t.get(i + 1) == Some(&Token::Punct('(')) => i += 1,
            Token::Ident(name) => {
                let mut labels = Vec::new();
                i = if t.get(i + 1) == Some(&Token::Punct('{')) {
                    matchers(i + 1, &mut labels)
                } else {
                    i + 1
                };
                refs.selectors.push(Selector {
                    name: name.clone(),
                    labels,
                });
            }
            Token::Punct('{') => {
                refs.unreadable
                    .push("a selector without a metric name".to_owned());
                i = matchers(i, &mut Vec::new());
            }
            _ => i += 1,
        }
    }
    refs
}

/// What is wrong with one query, against what the services export.
fn check(q: &Query, exported: &Exported) -> Vec<String> {
    let refs = parse(&q.expr);
    let mut problems: Vec<String> = (refs.unreadable.iter())
        .map(|u| format!("{}: {u}: {}", q.place, q.expr))
        .collect();
    if refs.selectors.is_empty() {
        problems.push(format!("{}: no metric found in {}", q.place, q.expr));
    }
    let mut known: BTreeSet<String> = TARGET_LABELS.iter().map(|&l| l.to_owned()).collect();
    for s in &refs.selectors {
        let carried: BTreeSet<String> = if PROMETHEUS_SERIES.contains(&s.name.as_str()) {
            BTreeSet::new()
        } else if let Some(labels) = exported.labels_of(&s.name) {
            labels.clone()
        } else {
            // the exported families of the same subsystem, to help find the right name
            let subsystem = s.name.split('_').take(2).collect::<Vec<_>>().join("_");
            let near: Vec<&str> = (exported.types.keys())
                .filter(|n| n.starts_with(&subsystem))
                .map(String::as_str)
                .collect();
            problems.push(format!(
                "{}: {} is not exported by any service (exported: {})",
                q.place,
                s.name,
                near.join(", ")
            ));
            continue;
        };
        for label in &s.labels {
            if !carried.contains(label) && !TARGET_LABELS.contains(&label.as_str()) {
                problems.push(format!(
                    "{}: {} has no label {label} (it has: {})",
                    q.place,
                    s.name,
                    carried.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        known.extend(carried);
    }
    for label in &refs.grouping {
        if !known.contains(label) {
            problems.push(format!(
                "{}: no metric of the query has the label {label}: {}",
                q.place, q.expr
            ));
        }
    }
    problems
}

#[test]
fn the_query_scanner_finds_names_and_labels() {
    let refs = parse(
        r#"histogram_quantile(0.95, sum by (le, tenant) (rate(a_seconds_bucket{tenant=~"$tenant", x="}"}[$__rate_interval]))) / on (tenant) b_total"#,
    );
    let names: Vec<&str> = refs.selectors.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a_seconds_bucket", "b_total"]);
    assert_eq!(refs.selectors[0].labels, ["tenant", "x"]);
    assert_eq!(refs.grouping, ["le", "tenant", "tenant"]);
    assert!(refs.unreadable.is_empty());
    assert_eq!(parse(r#"{__name__="x"}"#).unreadable.len(), 1);

    let text = "# TYPE h histogram\nh_bucket{t=\"a\\\"}\",le=\"1\"} 1\nh_sum{t=\"a\"} 1\nh_count{t=\"a\"} 1\n# TYPE c counter\nc 3\n";
    let e = Exported::parse(text);
    assert!(e.has("h_bucket") && e.has("h_sum") && e.has("h_count") && e.has("c"));
    assert!(!e.has("h") && !e.has("c_count") && !e.has("d"));
    let labels: Vec<&String> = e.labels_of("h_bucket").unwrap().iter().collect();
    assert_eq!(labels, ["le", "t"]);
}
