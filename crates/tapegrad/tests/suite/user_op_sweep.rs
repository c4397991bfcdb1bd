//! A user's crate: it defines its own op with a hand-written gradient rule and tests it
//! with the public `testing` API (feature `testing`) through the same sweep that
//! tapegrad-core runs over its built-in ops.

use proptest::prelude::*;
use tapegrad::prop_assert_gradcheck;
use tapegrad::testing::{array_shapes, away_from, bounded, check_grads, sweep, tensors_of, Mode, OpSpec};
use tapegrad::{func, Result, Tensor};

/// swish(x) = x·σ(x), with its rule σ(x)(1 + x(1 − σ(x))) written in tensor ops so that it
/// is differentiable again.
fn swish(x: &Tensor<f64>) -> Result<Tensor<f64>> {
    let y = tapegrad::no_grad(|| x.mul(&x.sigmoid()))?;
    Tensor::custom_op("swish", &[x], y, false, |ctx| {
        let x = ctx.input(0);
        let s = x.sigmoid();
        let d = s.mul(&x.mul(&s.neg().add_scalar(1.0))?.add_scalar(1.0))?;
        Ok([Some(ctx.grad.mul(&d)?)].into_iter().collect())
    })
}

/// A wrong rule: it forgets the x(1 − σ) term.
fn bad_swish(x: &Tensor<f64>) -> Result<Tensor<f64>> {
    let y = tapegrad::no_grad(|| x.mul(&x.sigmoid()))?;
    Tensor::custom_op("bad_swish", &[x], y, false, |ctx| {
        Ok([Some(ctx.grad.mul(&ctx.input(0).sigmoid())?)].into_iter().collect())
    })
}

#[test]
fn a_custom_op_passes_the_registry_sweep() {
    let ops = [
        OpSpec::unary("swish", bounded(-4.0, 4.0), swish),
        // A composite of the user's op and a built-in with a kink, kept away from it.
        OpSpec::binary(
            "swish_max",
            away_from(-2.0, 2.0, &[0.0], 0.05),
            bounded(-2.0, 2.0),
            |a, b| swish(&a.relu())?.mul(b),
        ),
    ];
    let report = sweep(&ops, 64).unwrap();
    assert_eq!(
        report.ops.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["swish", "swish_max"]
    );
}

#[test]
fn the_sweep_rejects_a_wrong_rule() {
    let e = sweep(&[OpSpec::unary("bad_swish", bounded(-4.0, 4.0), bad_swish)], 64).unwrap_err();
    assert!(e.to_string().contains("op `bad_swish`"), "{e}");
}

#[test]
fn check_grads_and_transforms_agree_on_the_custom_op() {
    let x = Tensor::from_vec(vec![-1.5, 0.2, 2.0], [3]).unwrap();
    check_grads(
        |xs| swish(&xs[0]),
        std::slice::from_ref(&x),
        2,
        &[Mode::Reverse, Mode::Forward],
    )
    .unwrap();
    // The Hessian of Σ swish is diagonal with swish''.
    let h = func::hessian(|xs| Ok(swish(&xs[0])?.sum_all()), std::slice::from_ref(&x)).unwrap();
    for (i, &v) in x.data().iter().enumerate() {
        let s = 1.0 / (1.0 + (-v).exp());
        let want = s * (1.0 - s) * (2.0 + v * (1.0 - 2.0 * s));
        assert!((h[0][0].get(&[i, i]).unwrap() - want).abs() < 1e-12);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn swish_inside_proptest(x in tensors_of::<f64>(array_shapes(0..=3, 1..=4), bounded(-4.0, 4.0))) {
        prop_assert_gradcheck!(|xs| swish(&xs[0]), &[x], 2, &[Mode::Reverse, Mode::Forward]);
    }
}
