//! Property tests of the statistics.

use proptest::prelude::*;

use super::testdata::{gaussian_rows, shifted};
use super::*;

/// A feature value: mostly continuous, sometimes one of a few integers (ties).
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![3 => -100.0..100.0f64, 1 => (-3i32..3).prop_map(f64::from)]
}

/// Two windows of 1 to 40 samples with the same 1 to 3 features.
fn windows() -> impl Strategy<Value = (Vec<Vec<f64>>, Vec<Vec<f64>>)> {
    let window = |d| prop::collection::vec(prop::collection::vec(value(), d), 1..40);
    (1usize..4).prop_flat_map(move |d| (window(d), window(d)))
}

proptest! {
    #[test]
    fn ks_is_symmetric_and_in_the_unit_interval((x, y) in windows()) {
        let xy = ks_per_dimension(&x, &y).unwrap();
        prop_assert_eq!(&xy, &ks_per_dimension(&y, &x).unwrap());
        prop_assert!(xy.iter().all(|v| (0.0..=1.0).contains(v)));
        prop_assert_eq!(ks(&x, &x).unwrap().value, 0.0);
        let p = ks_p_value(ks(&x, &y).unwrap().value, x.len(), y.len());
        prop_assert!((0.0..=1.0).contains(&p));
    }

    #[test]
    fn mmd_is_symmetric_and_not_negative((x, y) in windows(), cap in 2usize..50) {
        let xy = mmd(&x, &y, cap).unwrap();
        let yx = mmd(&y, &x, cap).unwrap();
        prop_assert!(xy >= 0.0 && xy.is_finite());
        prop_assert!((xy - yx).abs() <= 1e-12 * xy.max(1.0), "{} vs {}", xy, yx);
        prop_assert!(mmd(&x, &x, cap).unwrap() < 1e-12);
    }

    #[test]
    fn psi_is_not_negative((x, y) in windows(), bins in 2usize..20) {
        let per = psi_per_dimension(&x, &y, bins).unwrap();
        prop_assert!(per.iter().all(|v| *v >= 0.0 && v.is_finite()));
        prop_assert_eq!(psi(&x, &x, bins).unwrap().value, 0.0);
    }

}

proptest! {
    // Each case computes six statistics of up to 200 samples: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A window against itself shifted: the score does not fall as the shift grows (KS
    /// exactly; MMD grows for shifts at least 0.5σ apart, up to 3σ, on 50 to 200 samples).
    /// PSI over the reference's quantile bins is not monotone in the shift on a finite
    /// window (a shift can move mass into a bin whose reference share it then matches), so
    /// of PSI only this holds: any shift of 0.5σ or more scores above the unshifted window.
    #[test]
    fn scores_grow_with_a_mean_shift(
        seed in any::<u64>(),
        n in 50usize..200,
        d in 1usize..4,
        small in 0.0..1.5f64,
        step in 0.5..1.5f64,
    ) {
        let x = gaussian_rows(seed, n, d);
        let (near, far) = (shifted(&x, small), shifted(&x, small + step));
        let ks_near = ks(&x, &near).unwrap().value;
        let ks_far = ks(&x, &far).unwrap().value;
        prop_assert!(ks_far >= ks_near, "ks {} then {}", ks_near, ks_far);
        let mmd_near = mmd(&x, &near, 200).unwrap();
        let mmd_far = mmd(&x, &far, 200).unwrap();
        prop_assert!(mmd_far > mmd_near, "mmd {} then {}", mmd_near, mmd_far);
        let psi_still = psi(&x, &x, 10).unwrap().value;
        let psi_far = psi(&x, &far, 10).unwrap().value;
        prop_assert!(psi_far > psi_still, "psi {} then {}", psi_still, psi_far);
    }
}
