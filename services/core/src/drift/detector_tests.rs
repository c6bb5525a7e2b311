//! Tests of the detector over seeded synthetic streams.

use super::testdata::Gaussian;
use super::*;

const DIMS: usize = 4;

/// Feeds `n` samples of mean `mean` to `detector`; returns its evaluations.
fn feed(detector: &mut DriftDetector, g: &mut Gaussian, n: usize, mean: f64) -> Vec<Evaluation> {
    (0..n)
        .filter_map(|_| detector.observe(&g.sample(mean, 1.0)).unwrap())
        .collect()
}

fn fired(evaluations: &[Evaluation]) -> Vec<u64> {
    evaluations
        .iter()
        .filter(|e| e.fired)
        .map(|e| e.sample)
        .collect()
}

/// Window 300, every 30, a threshold per metric above the largest score seen on stationary
/// streams of 4 standard normal features (KS 0.15, PSI 0.21, MMD 0.032 with 100 samples a
/// window) and below the score of a window half shifted by 1.5σ.
fn config(metric: Metric) -> DriftConfig {
    let threshold = match metric {
        Metric::Ks => 0.2,
        Metric::Psi => 0.35,
        Metric::Mmd => 0.06,
    };
    let mut config = DriftConfig::new(metric, 300, 30, Criterion::Threshold(threshold));
    config.mmd_max_samples = 100;
    config
}

#[test]
fn a_stationary_stream_does_not_fire() {
    for metric in [Metric::Ks, Metric::Psi, Metric::Mmd] {
        let mut detector = DriftDetector::new(config(metric)).unwrap();
        let mut g = Gaussian::new(11, DIMS);
        let evaluations = feed(&mut detector, &mut g, 6000, 0.0);
        // The first evaluation once both windows are full (600 samples), then every 30.
        assert_eq!(evaluations.len(), (6000 - 600) / 30 + 1, "{metric:?}");
        assert_eq!(evaluations[0].sample, 600);
        assert_eq!(fired(&evaluations), Vec::<u64>::new(), "{metric:?}");
    }
}

#[test]
fn an_abrupt_shift_fires_soon_after_it() {
    let shift_at = 3000;
    for metric in [Metric::Ks, Metric::Psi, Metric::Mmd] {
        let config = config(metric);
        let mut detector = DriftDetector::new(config).unwrap();
        let mut g = Gaussian::new(12, DIMS);
        let before = feed(&mut detector, &mut g, shift_at, 0.0);
        assert_eq!(fired(&before), Vec::<u64>::new(), "{metric:?}");
        let after = feed(&mut detector, &mut g, 3000, 1.5);
        let firings = fired(&after);
        let first = *firings.first().expect("fires after the shift");
        let bound = (shift_at + config.window + config.every) as u64;
        assert!(first <= bound, "{metric:?}: first firing at {first}");
        // Once the reference is entirely after the shift, it is quiet again.
        let settled = first + 2 * (config.window + config.every) as u64;
        assert!(
            firings.iter().all(|&f| f <= settled),
            "{metric:?}: {firings:?}"
        );
        assert!(firings.len() <= 2, "{metric:?}: {firings:?}");
    }
}

#[test]
fn the_dynamic_quantile_learns_the_level_of_the_scores() {
    // Stationary KS scores fall with the window size (the learnt bars are about 0.21 for
    // windows of 100, 0.06 for 1000). A threshold above the large windows' level fires on
    // noise with small ones; the dynamic criterion learns each level and fires on the
    // shift with both.
    let dynamic = Criterion::DynamicQuantile {
        quantile: 0.99,
        window: 50,
        warmup: Some(20),
    };
    let run = |window: usize, criterion| {
        let every = window / 10;
        let config = DriftConfig::new(Metric::Ks, window, every, criterion);
        let mut detector = DriftDetector::new(config).unwrap();
        let mut g = Gaussian::new(13, DIMS);
        let stationary = feed(&mut detector, &mut g, 20 * window, 0.0);
        let shifted = feed(&mut detector, &mut g, 2 * window, 1.5);
        (stationary, shifted)
    };
    let mut bars = Vec::new();
    for window in [100, 1000] {
        let (stationary, shifted) = run(window, dynamic);
        let false_alarms = fired(&stationary).len();
        // Overlapping windows make consecutive scores alike, so a quantile criterion fires
        // on noise somewhat more often than 1 - q of the evaluations (here 1 %).
        assert!(
            false_alarms * 16 <= stationary.len(),
            "{window}: {false_alarms} firings in {} evaluations",
            stationary.len()
        );
        let mut learnt: Vec<f64> = stationary.iter().filter_map(|e| e.bar).collect();
        learnt.sort_by(f64::total_cmp);
        bars.push(learnt[learnt.len() / 2]);
        let first = *fired(&shifted).first().expect("fires after the shift");
        let bound = (21 * window + window / 10) as u64;
        assert!(first <= bound, "{window}: first firing at {first}");
    }
    assert!(bars[0] > 2.0 * bars[1], "bars {bars:?}");
    // A threshold that suits windows of 1000 ...
    let (large, _) = run(1000, Criterion::Threshold(bars[1] * 1.5));
    assert_eq!(fired(&large).len(), 0);
    // ... fires on noise with windows of 100.
    let (small, _) = run(100, Criterion::Threshold(bars[1] * 1.5));
    let noise = fired(&small).len();
    assert!(noise >= 10, "{noise} firings");
}

/// Runs a stream through one detector, and through detectors rebuilt from the stored
/// state (JSON) every `cut` samples: the evaluations must be the same.
fn same_after_restarts(config: DriftConfig, cut: usize) {
    let mut g = Gaussian::new(14, 3);
    let stream: Vec<Vec<f64>> = (0..2400)
        .map(|i| g.sample(if i < 1200 { 0.0 } else { 1.5 }, 1.0))
        .collect();

    let mut straight = DriftDetector::new(config).unwrap();
    let expected: Vec<Evaluation> = stream
        .iter()
        .filter_map(|row| straight.observe(row).unwrap())
        .collect();
    assert!(expected.iter().any(|e| e.fired), "{config:?}");

    let mut got = Vec::new();
    let mut stored = serde_json::to_string(DriftDetector::new(config).unwrap().state()).unwrap();
    for chunk in stream.chunks(cut) {
        let state: DriftState = serde_json::from_str(&stored).unwrap();
        let mut detector = DriftDetector::resume(config, state).unwrap();
        got.extend(detector.observe_batch(chunk).unwrap());
        stored = serde_json::to_string(detector.state()).unwrap();
    }
    assert_eq!(got, expected, "{config:?}, cut every {cut}");
    assert_eq!(
        serde_json::from_str::<DriftState>(&stored).unwrap(),
        *straight.state()
    );
}

#[test]
fn a_restored_state_makes_the_same_decisions() {
    let dynamic = Criterion::DynamicQuantile {
        quantile: 0.9,
        window: 10,
        warmup: Some(4),
    };
    for metric in [Metric::Ks, Metric::Psi, Metric::Mmd] {
        let config = DriftConfig::new(metric, 100, 10, dynamic);
        // Cuts that fall while the reference fills, inside the ring, on evaluations.
        for cut in [37, 100, 333] {
            same_after_restarts(config, cut);
        }
    }
    let threshold = DriftConfig::new(Metric::Ks, 100, 10, Criterion::Threshold(0.3));
    same_after_restarts(threshold, 71);
}

#[test]
fn a_batch_is_the_same_as_one_sample_at_a_time() {
    let config = DriftConfig::new(Metric::Psi, 50, 5, Criterion::Threshold(0.5));
    let mut g = Gaussian::new(15, 2);
    let rows: Vec<Vec<f64>> = (0..400)
        .map(|i| g.sample(if i < 200 { 0.0 } else { 2.0 }, 1.0))
        .collect();
    let mut one = DriftDetector::new(config).unwrap();
    let singles: Vec<Evaluation> = rows
        .iter()
        .filter_map(|r| one.observe(r).unwrap())
        .collect();
    let mut batch = DriftDetector::new(config).unwrap();
    assert_eq!(batch.observe_batch(&rows).unwrap(), singles);
    assert_eq!(batch.state(), one.state());
    assert!(singles.iter().any(|e| e.fired));
}

#[test]
fn refused_samples_leave_the_detector_as_it_was() {
    let config = DriftConfig::new(Metric::Ks, 4, 1, Criterion::Threshold(0.5));
    let mut detector = DriftDetector::new(config).unwrap();
    detector.observe(&[1.0, 2.0]).unwrap();
    let before = detector.state().clone();
    let err = detector.observe(&[1.0]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sample 0 of the incoming samples has 1 features, expected 2"
    );
    let err = detector.observe(&[1.0, f64::NAN]).unwrap_err();
    assert!(matches!(err, DriftError::NonFinite { feature: 1, .. }));
    let batch = [vec![1.0, 2.0], vec![3.0, 4.0], vec![5.0, f64::NEG_INFINITY]];
    let err = detector.observe_batch(&batch).unwrap_err();
    assert_eq!(
        err.to_string(),
        "feature 1 of sample 2 of the incoming samples is not finite (-inf)"
    );
    assert_eq!(detector.state(), &before);
    assert_eq!(detector.observed(), 1);
    // The first sample of an empty detector fixes the feature count, in a batch too.
    let mut fresh = DriftDetector::new(config).unwrap();
    let err = fresh
        .observe_batch(&[vec![1.0], vec![1.0, 2.0]])
        .unwrap_err();
    assert!(matches!(
        err,
        DriftError::DimensionMismatch {
            row: 1,
            expected: 1,
            found: 2,
            ..
        }
    ));
    assert!(matches!(
        fresh.observe(&[]),
        Err(DriftError::NoFeatures { .. })
    ));
}

#[test]
fn the_state_is_bounded() {
    let config = DriftConfig::new(
        Metric::Ks,
        50,
        7,
        Criterion::DynamicQuantile {
            quantile: 0.5,
            window: 8,
            warmup: None,
        },
    );
    let mut detector = DriftDetector::new(config).unwrap();
    let mut g = Gaussian::new(16, 3);
    let evaluations = feed(&mut detector, &mut g, 5000, 0.0);
    assert!(evaluations.iter().filter(|e| e.fired).count() > 10);
    let json = serde_json::to_value(detector.state()).unwrap();
    assert_eq!(json["reference"].as_array().unwrap().len(), 50 * 3);
    assert!(json["current"].as_array().unwrap().len() <= 50 * 3);
    assert_eq!(detector.history().len(), 8);
    assert_eq!(detector.observed(), 5000);
}

#[test]
fn rebase_makes_the_latest_samples_the_reference() {
    // KS never exceeds 1: this detector never fires by itself.
    let config = DriftConfig::new(Metric::Ks, 4, 2, Criterion::Threshold(1.0));
    let mut detector = DriftDetector::new(config).unwrap();
    for v in 0..3 {
        detector.observe(&[f64::from(v)]).unwrap();
    }
    // Still filling: nothing to do.
    detector.rebase();
    assert_eq!(detector.state().reference, vec![0.0, 1.0, 2.0]);
    for v in 3..10 {
        detector.observe(&[f64::from(v)]).unwrap();
    }
    // Reference 0..4, current 4..8 then 8, 9 wrapped around the ring.
    detector.rebase();
    assert_eq!(detector.state().reference, vec![6.0, 7.0, 8.0, 9.0]);
    assert!(detector.state().current.is_empty());
    // The next evaluation is a full window later.
    let next: Vec<u64> = (10..20)
        .filter_map(|v| detector.observe(&[f64::from(v)]).unwrap())
        .map(|e| e.sample)
        .collect();
    assert_eq!(next, vec![14, 16, 18, 20]);
    // A partly filled current window: the rest comes from the reference's newest samples.
    let mut detector = DriftDetector::new(config).unwrap();
    for v in 0..6 {
        detector.observe(&[f64::from(v)]).unwrap();
    }
    detector.rebase();
    assert_eq!(detector.state().reference, vec![2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn a_state_that_does_not_fit_is_refused() {
    let config = DriftConfig::new(Metric::Ks, 10, 2, Criterion::Threshold(0.5));
    let mut detector = DriftDetector::new(config).unwrap();
    for v in 0..15 {
        detector.observe(&[f64::from(v), 0.0]).unwrap();
    }
    let state = detector.into_state();
    let smaller = DriftConfig {
        window: 5,
        every: 1,
        ..config
    };
    let err = DriftDetector::resume(smaller, state.clone()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "stored drift state does not fit the configuration: its windows hold 10 and 5 \
         samples, drift.window is 5"
    );
    let mut broken = state.clone();
    broken.current.pop();
    let err = DriftDetector::resume(config, broken).unwrap_err();
    assert!(matches!(err, DriftError::State(_)));
    let dynamic = DriftConfig {
        criterion: Criterion::DynamicQuantile {
            quantile: 0.5,
            window: 3,
            warmup: None,
        },
        ..config
    };
    let mut with_history = DriftDetector::resume(dynamic, state.clone()).unwrap();
    for v in 15..40 {
        with_history.observe(&[f64::from(v), 0.0]).unwrap();
    }
    assert_eq!(with_history.history().len(), 3);
    // A threshold keeps no history, so a state with one is not its own.
    assert!(DriftDetector::resume(config, with_history.into_state()).is_err());
    assert!(DriftDetector::resume(config, state).is_ok());
}

#[test]
fn the_config_reads_from_toml_and_names_bad_fields() {
    let config: DriftConfig = toml::from_str(
        r#"
        metric = "psi"
        window = 1000
        every = 100
        criterion = { dynamic_quantile = { quantile = 0.95, window = 30 } }
        "#,
    )
    .unwrap();
    assert_eq!(config.psi_bins, DEFAULT_PSI_BINS);
    assert_eq!(config.mmd_max_samples, DEFAULT_MMD_MAX_SAMPLES);
    assert_eq!(
        config.criterion,
        Criterion::DynamicQuantile {
            quantile: 0.95,
            window: 30,
            warmup: None
        }
    );
    config.validate().unwrap();
    let threshold: DriftConfig = toml::from_str(
        "metric = \"ks\"\nwindow = 500\nevery = 50\ncriterion = { threshold = 0.15 }\n",
    )
    .unwrap();
    assert_eq!(threshold.criterion, Criterion::Threshold(0.15));
    assert_eq!(threshold.statistic(), Statistic::Ks);

    let unknown = toml::from_str::<DriftConfig>(
        "metric = \"ks\"\nwindow = 5\nevery = 1\nevry = 2\ncriterion = { threshold = 0.1 }\n",
    )
    .unwrap_err();
    assert!(
        unknown.to_string().contains("unknown field `evry`"),
        "{unknown}"
    );
    let unknown = toml::from_str::<DriftConfig>(
        "metric = \"ks\"\nwindow = 5\nevery = 1\n\
         criterion = { dynamic_quantile = { quantile = 0.9, window = 3, q = 1 } }\n",
    )
    .unwrap_err();
    let message = unknown.to_string();
    assert!(
        message.contains("unknown field `q`") || message.contains("unexpected keys in table: q"),
        "{message}"
    );

    let err = |change: fn(&mut DriftConfig)| {
        let mut c = threshold;
        change(&mut c);
        DriftDetector::new(c).unwrap_err().to_string()
    };
    assert_eq!(err(|c| c.window = 1), "drift.window must be at least 2");
    assert_eq!(
        err(|c| c.window = MAX_WINDOW + 1),
        "drift.window must be at most 100000"
    );
    assert_eq!(err(|c| c.every = 0), "drift.every must be at least 1");
    assert_eq!(
        err(|c| c.every = 501),
        "drift.every must be at most drift.window (500), or samples would leave the current \
         window unexamined"
    );
    assert_eq!(err(|c| c.psi_bins = 1), "drift.psi_bins must be at least 2");
    assert_eq!(
        err(|c| (c.metric, c.psi_bins) = (Metric::Psi, 501)),
        "drift.psi_bins must be at most drift.window (500)"
    );
    assert_eq!(
        err(|c| c.mmd_max_samples = 0),
        "drift.mmd_max_samples must be in 2..=20000"
    );
    assert_eq!(
        err(|c| c.criterion = Criterion::Threshold(-1.0)),
        "drift.criterion.threshold must be a finite number, at least 0"
    );
}
