//! The population stability index.

use super::{DriftError, Score, check_pair, column_into, max_with_index};

/// The default number of bins per feature for [`psi`].
pub const DEFAULT_PSI_BINS: usize = 10;

/// The share an empty bin counts as, in either window, so that its logarithm is finite.
/// With it one bin contributes at most about `p ln(p / 1e-4)` (0.92 for `p = 0.1`); it is
/// the value the usual PSI tables assume.
pub const PSI_EMPTY_BIN: f64 = 1e-4;

/// The population stability index of each feature, `Σ_b (c_b - r_b) ln(c_b / r_b)` over
/// bins `b`, where `r_b` and `c_b` are the shares of the reference and current samples in
/// the bin (an empty bin counts as [`PSI_EMPTY_BIN`]). Never negative (every term is), 0
/// when both windows fill the bins alike; not symmetric, as the bins come from the
/// reference.
///
/// Bins are the reference's quantiles: the `k`-th of the `bins - 1` inner edges is the
/// sorted reference's value at index `⌊k n / bins⌋`; bin `b` is `[e_b, e_{b+1})` with the
/// outer bins open-ended. Repeated edges (ties in the reference) are merged, so a feature
/// with few distinct values gets fewer bins. Cost: O(d (n log n + m log bins)) time,
/// O(n + bins) extra memory.
pub fn psi_per_dimension<A, B>(
    reference: &[A],
    current: &[B],
    bins: usize,
) -> Result<Vec<f64>, DriftError>
where
    A: AsRef<[f64]>,
    B: AsRef<[f64]>,
{
    if bins < 2 {
        return Err(DriftError::config("drift.psi_bins", "must be at least 2"));
    }
    let dims = check_pair(reference, current)?;
    let mut column = Vec::with_capacity(reference.len().max(current.len()));
    let mut edges = Vec::with_capacity(bins - 1);
    let mut counts_ref = Vec::with_capacity(bins);
    let mut counts_cur = Vec::with_capacity(bins);
    Ok((0..dims)
        .map(|j| {
            column_into(reference, j, &mut column);
            column.sort_unstable_by(f64::total_cmp);
            quantile_edges(&column, bins, &mut edges);
            // Sorted, so a bin's count is the difference of two partition points.
            counts_ref.clear();
            let mut below = 0;
            for &e in &edges {
                let next = column.partition_point(|&v| v < e);
                counts_ref.push(next - below);
                below = next;
            }
            counts_ref.push(column.len() - below);

            counts_cur.clear();
            counts_cur.resize(edges.len() + 1, 0usize);
            for sample in current {
                let v = sample.as_ref()[j];
                counts_cur[edges.partition_point(|&e| e <= v)] += 1;
            }
            index(&counts_ref, reference.len(), &counts_cur, current.len())
        })
        .collect())
}

/// The window's PSI score: the largest per-feature index of [`psi_per_dimension`], and
/// that feature. The maximum rather than the mean, so that a shift in one feature reads on
/// the usual per-feature scale (0.1 "moderate", 0.25 "significant") whatever the number
/// of stable features beside it; the price is that the score of two windows from the same
/// distribution grows (slowly) with the number of features.
pub fn psi<A, B>(reference: &[A], current: &[B], bins: usize) -> Result<Score, DriftError>
where
    A: AsRef<[f64]>,
    B: AsRef<[f64]>,
{
    let per = psi_per_dimension(reference, current, bins)?;
    Ok(max_with_index(&per).unwrap_or(Score {
        value: 0.0,
        dimension: None,
    }))
}

/// The inner edges of `bins` quantile bins of a sorted, non-empty column, repeats merged.
fn quantile_edges(sorted: &[f64], bins: usize, edges: &mut Vec<f64>) {
    edges.clear();
    let n = sorted.len();
    for k in 1..bins {
        let e = sorted[k * n / bins];
        if edges.last() != Some(&e) {
            edges.push(e);
        }
    }
}

/// The index of two histograms over the same bins.
fn index(counts_ref: &[usize], n: usize, counts_cur: &[usize], m: usize) -> f64 {
    let share = |count: usize, total: usize| {
        if count == 0 {
            PSI_EMPTY_BIN
        } else {
            count as f64 / total as f64
        }
    };
    counts_ref
        .iter()
        .zip(counts_cur)
        .map(|(&r, &c)| {
            let (r, c) = (share(r, n), share(c, m));
            (c - r) * (c / r).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{gaussian_rows, shifted};
    use super::*;

    fn rows(values: impl IntoIterator<Item = f64>) -> Vec<[f64; 1]> {
        values.into_iter().map(|v| [v]).collect()
    }

    #[test]
    fn identical_distributions_score_zero() {
        let x = gaussian_rows(1, 500, 3);
        assert_eq!(psi(&x, &x, 10).unwrap().value, 0.0);
        // Two samples of one distribution: close to 0 (about (bins - 1) (1/n + 1/m)).
        let y = gaussian_rows(2, 500, 3);
        let v = psi(&x, &y, 10).unwrap().value;
        assert!(v < 0.08, "{v}");
    }

    #[test]
    fn known_values() {
        // Reference 0..100 in 10 bins of 10 values each (edges 10, 20, .., 90).
        let reference = rows((0..100).map(f64::from));
        let mut edges = Vec::new();
        quantile_edges(&(0..100).map(f64::from).collect::<Vec<_>>(), 10, &mut edges);
        assert_eq!(
            edges,
            (1..10).map(|k| f64::from(k * 10)).collect::<Vec<_>>()
        );
        // Every current sample in the first bin: 9 empty bins.
        let current = rows((0..50).map(|v| f64::from(v) / 5.0));
        let empty = PSI_EMPTY_BIN;
        let expected = 0.9 * 10f64.ln() + 9.0 * (empty - 0.1) * (empty / 0.1).ln();
        let got = psi(&reference, &current, 10).unwrap().value;
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        // Half in the first bin, half in the last.
        let current = rows([5.0, 95.0]);
        let expected = 2.0 * (0.4 * 5f64.ln()) + 8.0 * (empty - 0.1) * (empty / 0.1).ln();
        let got = psi(&reference, &current, 10).unwrap().value;
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn ties_merge_bins() {
        // A 0/1 feature, 70 % zeros: edges [0, 1] (bins (-inf, 0), [0, 1), [1, inf)).
        let reference = rows((0..100).map(|i| if i < 70 { 0.0 } else { 1.0 }));
        let same_mix = rows((0..10).map(|i| if i < 7 { 0.0 } else { 1.0 }));
        assert!(psi(&reference, &same_mix, 10).unwrap().value.abs() < 1e-15);
        let flipped = rows((0..10).map(|i| if i < 3 { 0.0 } else { 1.0 }));
        let expected = (0.3 - 0.7) * (0.3f64 / 0.7).ln() + (0.7 - 0.3) * (0.7f64 / 0.3).ln();
        let got = psi(&reference, &flipped, 10).unwrap().value;
        assert!((got - expected).abs() < 1e-12);
    }

    #[test]
    fn grows_with_a_mean_shift_and_names_the_feature() {
        let x = gaussian_rows(3, 1000, 2);
        let y = gaussian_rows(4, 1000, 2);
        let moved = |s: f64| -> Vec<Vec<f64>> {
            y.iter().map(|r| vec![r[0], r[1] + s]).collect::<Vec<_>>()
        };
        let small = psi(&x, &moved(0.25), 10).unwrap();
        let large = psi(&x, &moved(1.0), 10).unwrap();
        assert_eq!(large.dimension, Some(1));
        assert!(large.value > small.value && small.value > 0.0);
        assert!(psi(&x, &shifted(&y, 1.0), 10).unwrap().value > 0.25);
    }

    #[test]
    fn refuses_fewer_than_two_bins() {
        let err = psi(&[[0.0]], &[[1.0]], 1).unwrap_err();
        assert_eq!(err.to_string(), "drift.psi_bins must be at least 2");
    }
}
