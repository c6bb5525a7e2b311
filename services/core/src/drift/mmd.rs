//! Maximum mean discrepancy with a Gaussian kernel.

use super::{DriftError, check_pair};

/// The default cap on samples per window for [`mmd`].
pub const DEFAULT_MMD_MAX_SAMPLES: usize = 1000;

/// How many samples of each (capped) window the median heuristic looks at.
pub const MEDIAN_SAMPLES: usize = 256;

/// The squared maximum mean discrepancy between the two windows, with the Gaussian kernel
/// `k(x, y) = exp(-|x - y|² / (2σ²))` over the whole `d`-feature vectors.
///
/// - **Estimator**: the biased one (a V-statistic), `mean k(X, X) + mean k(Y, Y) -
///   2 mean k(X, Y)` with the diagonal terms included. It is never negative, exactly 0 for
///   identical windows, and its value on two windows of one distribution is of order
///   `1/n` (so compare scores across equal window sizes, as the detector does). The unbiased
///   one drops the diagonals and is often negative under no drift, which reads badly as a
///   score.
/// - **Bandwidth**: the median heuristic, `σ = ` the median Euclidean distance over all
///   pairs of samples of the pooled windows (the lower median). To bound its cost the pool
///   is at most [`MEDIAN_SAMPLES`] samples of each window, picked by the same rule as the
///   cap below. If that median is 0 (mostly repeated samples), the mean squared distance
///   stands in; if that is 0 too, every sample is the same point and the result is 0.
/// - **Cap**: a window of more than `max_samples` samples is cut down deterministically to
///   every k-th sample starting with the first, `k = ⌈n / max_samples⌉` (between
///   `max_samples / 2` and `max_samples` samples are kept, spread evenly over the window).
///
/// Both windows are treated alike, so the result is symmetric in them (up to rounding of
/// the sums). Cost: O(d c²) time with `c = min(n, max_samples) + min(m, max_samples)`, and
/// O(c) extra memory besides the median's pairwise distances (at most 130 816, about 1 MB).
/// Features are used as given, so put them on comparable scales first.
pub fn mmd<A, B>(reference: &[A], current: &[B], max_samples: usize) -> Result<f64, DriftError>
where
    A: AsRef<[f64]>,
    B: AsRef<[f64]>,
{
    if max_samples < 2 {
        return Err(DriftError::config(
            "drift.mmd_max_samples",
            "must be at least 2",
        ));
    }
    check_pair(reference, current)?;
    let x = every_kth(reference, max_samples);
    let y = every_kth(current, max_samples);
    let Some(gamma) = median_gamma(&x, &y) else {
        return Ok(0.0);
    };
    let value = mean_kernel_within(&x, gamma) + mean_kernel_within(&y, gamma)
        - 2.0 * mean_kernel_across(&x, &y, gamma);
    // Rounding can take a true zero a hair below it.
    Ok(value.max(0.0))
}

/// At most `cap` of `rows`: every k-th starting with the first, `k = ⌈n / cap⌉`.
fn every_kth<R: AsRef<[f64]>>(rows: &[R], cap: usize) -> Vec<&[f64]> {
    let step = rows.len().div_ceil(cap).max(1);
    rows.iter().step_by(step).map(AsRef::as_ref).collect()
}

/// `1 / (2σ²)` by the median heuristic; `None` if all pooled samples coincide.
fn median_gamma(x: &[&[f64]], y: &[&[f64]]) -> Option<f64> {
    let mut pool = every_kth(x, MEDIAN_SAMPLES);
    pool.extend(every_kth(y, MEDIAN_SAMPLES));
    let mut distances = Vec::with_capacity(pool.len() * pool.len().saturating_sub(1) / 2);
    for (i, a) in pool.iter().enumerate() {
        for b in &pool[i + 1..] {
            distances.push(squared_distance(a, b));
        }
    }
    if distances.is_empty() {
        // Cannot happen (each window holds a sample), but then there is nothing to compare.
        return None;
    }
    let middle = (distances.len() - 1) / 2;
    let (_, &mut median, _) = distances.select_nth_unstable_by(middle, f64::total_cmp);
    // σ² = median of the squared distances (= squared median distance, the lower median).
    let sigma2 = if median > 0.0 {
        median
    } else {
        distances.iter().sum::<f64>() / distances.len() as f64
    };
    (sigma2 > 0.0).then(|| 1.0 / (2.0 * sigma2))
}

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum()
}

/// `mean k(x_i, x_j)` over all ordered pairs, the diagonal (k = 1) included.
fn mean_kernel_within(x: &[&[f64]], gamma: f64) -> f64 {
    let mut off_diagonal = 0.0;
    for (i, a) in x.iter().enumerate() {
        for b in &x[i + 1..] {
            off_diagonal += (-gamma * squared_distance(a, b)).exp();
        }
    }
    let n = x.len() as f64;
    (n + 2.0 * off_diagonal) / (n * n)
}

/// `mean k(x_i, y_j)` over all pairs.
fn mean_kernel_across(x: &[&[f64]], y: &[&[f64]], gamma: f64) -> f64 {
    let mut sum = 0.0;
    for a in x {
        for b in y {
            sum += (-gamma * squared_distance(a, b)).exp();
        }
    }
    sum / (x.len() as f64 * y.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{gaussian_rows, shifted};
    use super::*;

    #[test]
    fn the_same_window_scores_zero() {
        let x = gaussian_rows(1, 200, 3);
        assert!(mmd(&x, &x, 1000).unwrap() < 1e-12);
        // The same sample in another order too.
        let mut reversed = x.clone();
        reversed.reverse();
        assert!(mmd(&x, &reversed, 1000).unwrap() < 1e-12);
    }

    #[test]
    fn shifted_gaussians_score_higher() {
        let x = gaussian_rows(2, 300, 4);
        let same = gaussian_rows(3, 300, 4);
        let none = mmd(&x, &same, 1000).unwrap();
        let small = mmd(&x, &shifted(&same, 0.5), 1000).unwrap();
        let large = mmd(&x, &shifted(&same, 2.0), 1000).unwrap();
        assert!(none < 0.02, "no shift: {none}");
        assert!(small > 3.0 * none, "0.5σ: {small} vs {none}");
        assert!(large > small, "2σ: {large} vs 0.5σ: {small}");
    }

    #[test]
    fn known_value_of_two_points() {
        // x = {0}, y = {1}: the pool's only distance is 1, so σ² = 1 and k(0, 1) = e^{-1/2}.
        let v = mmd(&[[0.0]], &[[1.0]], 10).unwrap();
        assert!((v - (2.0 - 2.0 * (-0.5f64).exp())).abs() < 1e-15);
    }

    #[test]
    fn the_cap_keeps_every_kth_sample() {
        let x = gaussian_rows(4, 1000, 2);
        let y = shifted(&gaussian_rows(5, 999, 2), 0.3);
        // 1000 samples, cap 100: every 10th; 999 samples: every 10th as well (100 kept).
        let capped = mmd(&x, &y, 100).unwrap();
        let by_hand = mmd(
            &x.iter().step_by(10).collect::<Vec<_>>(),
            &y.iter().step_by(10).collect::<Vec<_>>(),
            1000,
        )
        .unwrap();
        assert_eq!(capped, by_hand);
        assert_eq!(every_kth(&x, 100).len(), 100);
        assert_eq!(every_kth(&x, 999).len(), 500);
        assert_eq!(every_kth(&x, 1000).len(), 1000);
    }

    #[test]
    fn coincident_samples_score_zero_and_repeats_fall_back_to_the_mean() {
        assert_eq!(mmd(&[[1.0, 2.0]; 5], &[[1.0, 2.0]; 3], 10).unwrap(), 0.0);
        // Mostly repeated points: the median distance is 0, the mean one is used.
        let mut x = vec![[0.0]; 20];
        x.push([1.0]);
        let y = vec![[0.0]; 20];
        let v = mmd(&x, &y, 100).unwrap();
        assert!(v > 0.0 && v.is_finite());
    }

    #[test]
    fn refuses_a_cap_below_two() {
        let err = mmd(&[[0.0]], &[[1.0]], 1).unwrap_err();
        assert_eq!(err.to_string(), "drift.mmd_max_samples must be at least 2");
    }
}
