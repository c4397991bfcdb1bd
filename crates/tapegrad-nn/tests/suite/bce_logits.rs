//! `binary_cross_entropy_with_logits`: value and gradient against a 800-digit reference
//! (tests/fixtures/bce_reference.py) at |z| = 30 and 700, where σ(z) rounds towards y,
//! and a second-order gradcheck.

use tapegrad_core::{gradgradcheck, Tensor};
use tapegrad_nn::loss::{binary_cross_entropy_with_logits, Reduction};

/// (z, y, loss, ∂loss/∂z), each the f64 nearest the exact value (bce_reference.py).
const REFERENCE: [(f64, f64, f64, f64); 12] = [
    (30.0, 0.0, 30.000000000000092, 0.9999999999999064),
    (30.0, 1.0, 9.357622968839737e-14, -9.357622968839299e-14),
    (30.0, 0.3, 21.000000000000092, 0.6999999999999065),
    (-30.0, 0.0, 9.357622968839737e-14, 9.357622968839299e-14),
    (-30.0, 1.0, 30.000000000000092, -0.9999999999999064),
    (-30.0, 0.3, 9.000000000000092, -0.2999999999999064),
    (700.0, 0.0, 700.0, 1.0),
    (700.0, 1.0, 9.85967654375977e-305, -9.85967654375977e-305),
    (700.0, 0.3, 490.0, 0.7),
    (-700.0, 0.0, 9.85967654375977e-305, 9.85967654375977e-305),
    (-700.0, 1.0, 700.0, -1.0),
    (-700.0, 0.3, 210.0, -0.3),
];

/// Distance in units in the last place between two finite f64 of one sign.
fn ulps(a: f64, b: f64) -> u64 {
    assert!(a.is_finite() && b.is_finite(), "{a} vs {b}");
    assert!(
        a.signum() == b.signum() || a == 0.0 || b == 0.0,
        "{a} vs {b}: signs differ"
    );
    (a.abs().to_bits() as i64 - b.abs().to_bits() as i64).unsigned_abs()
}

#[test]
fn value_and_gradient_are_within_a_few_ulps_of_the_exact_ones() {
    let mut worst = (0, 0);
    for &(z0, y0, want_loss, want_grad) in &REFERENCE {
        let z = Tensor::from_vec(vec![z0], [1]).unwrap().requires_grad();
        let y = Tensor::from_vec(vec![y0], [1]).unwrap();
        let l = binary_cross_entropy_with_logits(&z, &y, Reduction::Sum).unwrap();
        let g = l.backward().unwrap().wrt(&z).unwrap().to_vec()[0];
        let (dl, dg) = (ulps(l.item().unwrap(), want_loss), ulps(g, want_grad));
        assert!(
            dl <= 4 && dg <= 4,
            "z = {z0}, y = {y0}: loss {} vs {want_loss} ({dl} ulps), gradient {g:e} vs {want_grad:e} ({dg} ulps)",
            l.item().unwrap()
        );
        worst = (worst.0.max(dl), worst.1.max(dg));
    }
    eprintln!(
        "BCE-with-logits: worst {} ulps (loss), {} ulps (gradient)",
        worst.0, worst.1
    );
}

#[test]
fn the_gradient_keeps_every_digit_where_sigma_minus_y_would_cancel() {
    // σ(30) − 1 in f64 keeps only the bits of σ(30) below 1: about three significant
    // digits of −9.357622968839299e-14. The rule used must do far better.
    let naive = 1.0 / (1.0 + (-30f64).exp()) - 1.0;
    let exact = -9.357622968839299e-14;
    assert!(
        ((naive - exact) / exact).abs() > 1e-4,
        "the naive form is not as bad as claimed: {naive:e}"
    );
    let z = Tensor::from_vec(vec![30.0f64], [1]).unwrap().requires_grad();
    let y = Tensor::from_vec(vec![1.0], [1]).unwrap();
    let g = binary_cross_entropy_with_logits(&z, &y, Reduction::Sum)
        .unwrap()
        .backward()
        .unwrap()
        .wrt(&z)
        .unwrap()
        .to_vec()[0];
    assert!(((g - exact) / exact).abs() < 1e-15, "{g:e} vs {exact:e}");
}

#[test]
fn second_order_gradients_check_in_f64() {
    let z = Tensor::from_vec(vec![-3.0, -0.5, 0.2, 1.5, 4.0, 0.0], [2, 3]).unwrap();
    let y = Tensor::from_vec(vec![0.0, 1.0, 0.3, 0.9, 1.0, 0.5], [2, 3]).unwrap();
    for reduction in [Reduction::Mean, Reduction::Sum] {
        gradgradcheck(
            |xs| binary_cross_entropy_with_logits(&xs[0], &xs[1], reduction),
            &[z.clone(), y.clone()],
        )
        .unwrap_or_else(|e| panic!("{reduction:?}: {e}"));
    }
}

#[test]
fn the_target_gradient_is_minus_the_logit() {
    let z = Tensor::from_vec(vec![-2.0f64, 0.5, 3.0], [3]).unwrap();
    let y = Tensor::from_vec(vec![0.2, 0.7, 1.0], [3]).unwrap().requires_grad();
    let g = binary_cross_entropy_with_logits(&z, &y, Reduction::Sum)
        .unwrap()
        .backward()
        .unwrap()
        .wrt(&y)
        .unwrap()
        .to_vec();
    for (g, z) in g.iter().zip([-2.0, 0.5, 3.0]) {
        assert!((g + z).abs() < 1e-15, "{g} vs {}", -z);
    }
}
