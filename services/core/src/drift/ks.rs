//! The two-sample Kolmogorov–Smirnov statistic.

use super::{DriftError, Score, check_pair, column_into, max_with_index};

/// The two-sample KS statistic `D = sup_t |F_ref(t) - F_cur(t)|` of each feature, in
/// [0, 1]: 0 when both windows have the same empirical distribution, 1 when they do not
/// overlap.
///
/// Sort-based: each feature's two columns are copied, sorted and merged, O(d (n log n +
/// m log m)) time and O(n + m) extra memory for windows of `n` and `m` samples. Ties (across
/// and within windows) are handled exactly, and the statistic is computed from integer
/// counts, so it is exactly symmetric in its two windows.
pub fn ks_per_dimension<A, B>(reference: &[A], current: &[B]) -> Result<Vec<f64>, DriftError>
where
    A: AsRef<[f64]>,
    B: AsRef<[f64]>,
{
    let dims = check_pair(reference, current)?;
    let mut a = Vec::with_capacity(reference.len());
    let mut b = Vec::with_capacity(current.len());
    Ok((0..dims)
        .map(|j| {
            column_into(reference, j, &mut a);
            column_into(current, j, &mut b);
            a.sort_unstable_by(f64::total_cmp);
            b.sort_unstable_by(f64::total_cmp);
            ks_sorted(&a, &b)
        })
        .collect())
}

/// The window's KS score: the largest per-feature statistic of [`ks_per_dimension`], and
/// that feature. The maximum rather than the mean, so that one drifting feature among many
/// stable ones is not averaged away; the price is that the score of two windows from the
/// same distribution grows (slowly) with the number of features.
pub fn ks<A, B>(reference: &[A], current: &[B]) -> Result<Score, DriftError>
where
    A: AsRef<[f64]>,
    B: AsRef<[f64]>,
{
    let per = ks_per_dimension(reference, current)?;
    // `check_pair` guarantees at least one feature.
    Ok(max_with_index(&per).unwrap_or(Score {
        value: 0.0,
        dimension: None,
    }))
}

/// `D` of two sorted, non-empty columns.
fn ks_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len() as u64, b.len() as u64);
    let (mut i, mut j) = (0usize, 0usize);
    // |i/n - j/m| = |i m - j n| / (n m): compare the integer numerators.
    let mut widest = 0u64;
    while i < a.len() && j < b.len() {
        let t = if a[i] <= b[j] { a[i] } else { b[j] };
        while i < a.len() && a[i] <= t {
            i += 1;
        }
        while j < b.len() && b[j] <= t {
            j += 1;
        }
        widest = widest.max((i as u64 * m).abs_diff(j as u64 * n));
    }
    // Once one column is used up the two distribution functions only draw closer.
    widest as f64 / (n * m) as f64
}

/// The asymptotic p-value of a two-sample KS statistic `statistic` of windows of `n` and
/// `m` samples: `Q(λ)` of the Kolmogorov distribution at `λ = (√e + 0.12 + 0.11/√e) D`,
/// `e = n m / (n + m)` (Stephens' small-sample correction). Accurate to a few units in the
/// third decimal from about `e >= 4`; O(1).
///
/// It is per feature: for the window's score (a maximum over `d` features) a conservative
/// p-value is `min(1, d * ks_p_value(..))` (Bonferroni). Returns 1 for an empty window or
/// a non-positive statistic.
pub fn ks_p_value(statistic: f64, n: usize, m: usize) -> f64 {
    if n == 0 || m == 0 || statistic.is_nan() || statistic <= 0.0 {
        return 1.0;
    }
    let e = (n as f64 * m as f64) / (n as f64 + m as f64);
    let root = e.sqrt();
    kolmogorov_survival((root + 0.12 + 0.11 / root) * statistic)
}

/// `Q(λ) = P(K > λ)` of the Kolmogorov distribution, to about 1e-12.
fn kolmogorov_survival(lambda: f64) -> f64 {
    use std::f64::consts::PI;
    if lambda <= 0.0 {
        return 1.0;
    }
    let q = if lambda < 1.18 {
        // The Jacobi form converges fast for small λ: P(K <= λ) = √(2π)/λ Σ e^{-(2k-1)²π²/(8λ²)}.
        let c = -PI * PI / (8.0 * lambda * lambda);
        let sum: f64 = (1..=6)
            .map(|k| {
                let odd = f64::from(2 * k - 1);
                (c * odd * odd).exp()
            })
            .sum();
        1.0 - (2.0 * PI).sqrt() / lambda * sum
    } else {
        // Q(λ) = 2 Σ (-1)^{k-1} e^{-2k²λ²}, fast for large λ.
        (1..=6)
            .map(|k| {
                let k = f64::from(k);
                let sign = if k % 2.0 == 1.0 { 2.0 } else { -2.0 };
                sign * (-2.0 * k * k * lambda * lambda).exp()
            })
            .sum()
    };
    q.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::super::Side;
    use super::*;

    fn rows(values: &[f64]) -> Vec<[f64; 1]> {
        values.iter().map(|&v| [v]).collect()
    }

    #[test]
    fn identical_windows_score_zero() {
        let a = rows(&[3.0, 1.0, 2.0, 2.0, 5.0]);
        assert_eq!(ks(&a, &a).unwrap().value, 0.0);
        let shuffled = rows(&[2.0, 5.0, 1.0, 3.0, 2.0]);
        assert_eq!(ks(&a, &shuffled).unwrap().value, 0.0);
    }

    #[test]
    fn disjoint_windows_score_one() {
        let a = rows(&[1.0, 2.0, 3.0]);
        let b = rows(&[4.0, 5.0, 6.0, 7.0]);
        assert_eq!(ks(&a, &b).unwrap().value, 1.0);
        assert_eq!(ks(&b, &a).unwrap().value, 1.0);
    }

    #[test]
    fn known_values() {
        // F_a - F_b at 2: 2/3 - 1/4 (b holds 1.5) = 5/12; at 3: 1 - 2/4 = 1/2.
        let a = rows(&[1.0, 2.0, 3.0]);
        let b = rows(&[1.5, 2.5, 3.5, 4.5]);
        assert!((ks(&a, &b).unwrap().value - 0.5).abs() < 1e-15);
        // Ties across windows: both step at 2, so only the step at 1 counts: 1/2 - 0.
        let a = rows(&[1.0, 2.0]);
        let b = rows(&[2.0, 2.0]);
        assert!((ks(&a, &b).unwrap().value - 0.5).abs() < 1e-15);
    }

    #[test]
    fn the_score_is_the_largest_feature() {
        let a = [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]];
        let b = [[0.0, 2.0], [1.0, 3.0], [2.0, 4.0], [3.0, 5.0]];
        assert_eq!(ks_per_dimension(&a, &b).unwrap(), vec![0.0, 0.5]);
        let score = ks(&a, &b).unwrap();
        assert_eq!((score.value, score.dimension), (0.5, Some(1)));
    }

    #[test]
    fn p_value_matches_the_kolmogorov_distribution() {
        // Q(λ) from tables: Q(0.5) = 0.963945, Q(1) = 0.269999, Q(1.358) = 0.050027.
        for (lambda, q) in [(0.5, 0.963_945), (1.0, 0.269_999), (1.358, 0.050_027)] {
            let got = kolmogorov_survival(lambda);
            assert!((got - q).abs() < 2e-6, "Q({lambda}) = {got}, expected {q}");
        }
        // Both series agree where they meet.
        let (lo, hi) = (kolmogorov_survival(1.18 - 1e-12), kolmogorov_survival(1.18));
        assert!((lo - hi).abs() < 1e-10);
        assert_eq!(ks_p_value(0.0, 10, 10), 1.0);
        assert_eq!(ks_p_value(0.5, 0, 10), 1.0);
        // Disjoint windows of 100 samples each: overwhelming evidence.
        assert!(ks_p_value(1.0, 100, 100) < 1e-30);
        // Decreasing in the statistic.
        assert!(ks_p_value(0.2, 100, 100) > ks_p_value(0.3, 100, 100));
    }

    #[test]
    fn refuses_bad_windows() {
        let empty: [[f64; 1]; 0] = [];
        let one = [[1.0]];
        assert_eq!(
            ks(&empty, &one),
            Err(DriftError::EmptyWindow {
                side: Side::Reference
            })
        );
        assert_eq!(
            ks(&one, &empty),
            Err(DriftError::EmptyWindow {
                side: Side::Current
            })
        );
        let err = ks(&[vec![1.0, 2.0]], &[vec![1.0]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sample 0 of the current window has 1 features, expected 2"
        );
        let err = ks(&[vec![1.0], vec![f64::NAN]], &[vec![1.0]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "feature 0 of sample 1 of the reference window is not finite (NaN)"
        );
        let err = ks(&[vec![1.0]], &[vec![f64::INFINITY]]).unwrap_err();
        assert!(matches!(err, DriftError::NonFinite { value, .. } if value == f64::INFINITY));
        let none: [&[f64]; 1] = [&[]];
        assert_eq!(
            ks(&none, &none),
            Err(DriftError::NoFeatures {
                side: Side::Reference,
                row: 0
            })
        );
    }
}
