//! The `testing` feature's public API: strategies keep their promises, check_grads and
//! the sweep catch wrong rules at the order and in the mode where they are wrong.

use proptest::prelude::*;
use tapegrad_core::prop_assert_gradcheck;
use tapegrad_core::testing::*;
use tapegrad_core::{Error, Result, Shape, Tensor};

/// x³ with a custom rule; `detach_rule` computes 3x² from detached data, which is right to
/// first order and wrong to second (its own derivative is lost); `wrong` returns 2x².
fn cube(x: &Tensor<f64>, detach_rule: bool, wrong: bool) -> Result<Tensor<f64>> {
    let y = Tensor::from_vec(x.data().iter().map(|v| v * v * v).collect(), x.shape().clone())?;
    Tensor::custom_op("cube", &[x], y, false, move |ctx| {
        let x = if detach_rule {
            ctx.input(0).detach()
        } else {
            ctx.input(0).clone()
        };
        let k = if wrong { 2.0 } else { 3.0 };
        Ok([Some(ctx.grad.mul(&x.mul(&x)?.mul_scalar(k))?)].into_iter().collect())
    })
}

#[test]
fn check_grads_finds_the_order_and_mode_that_fail() {
    let x = Tensor::from_vec(vec![0.5, -1.2, 0.9], [3]).unwrap();
    let both = [Mode::Reverse, Mode::Forward];
    let reports = check_grads(|xs| cube(&xs[0], false, false), std::slice::from_ref(&x), 2, &both).unwrap();
    assert_eq!(reports.len(), 6);
    // Detached rule: first order passes in both modes, second order fails.
    check_grads(|xs| cube(&xs[0], true, false), std::slice::from_ref(&x), 1, &both).unwrap();
    let e = check_grads(
        |xs| cube(&xs[0], true, false),
        std::slice::from_ref(&x),
        2,
        &[Mode::Reverse],
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::GradCheck(m) if m.starts_with("order 2 (Reverse of Reverse mode)")),
        "{e}"
    );
    // Wrong rule: caught at first order in each mode, naming the mode and the entry.
    for mode in both {
        let e = check_grads(|xs| cube(&xs[0], false, true), std::slice::from_ref(&x), 1, &[mode]).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains(&format!("order 1 ({mode:?} mode)")) && m.contains("input 0 element"),
            "{m}"
        );
    }
    assert!(check_grads(|xs| Ok(xs[0].exp()), &[x], 0, &both).is_err());
}

#[test]
fn the_sweep_catches_a_wrong_custom_rule_and_names_the_op() {
    let good = OpSpec::unary("cube", bounded(-2.0, 2.0), |x| cube(x, false, false));
    let report = sweep(std::slice::from_ref(&good), 16).unwrap();
    assert_eq!(report.ops.len(), 1);
    let bad = OpSpec::unary("bad_cube", bounded(-2.0, 2.0), |x| cube(x, false, true));
    let e = sweep(&[good.clone(), bad], 16).unwrap_err().to_string();
    assert!(
        e.contains("op `bad_cube`") && e.contains("minimal failing input"),
        "{e}"
    );
    // A first-order-only rule passes when the spec says so.
    let detached = OpSpec::unary("cube1", bounded(-2.0, 2.0), |x| cube(x, true, false));
    assert!(sweep(std::slice::from_ref(&detached), 16).is_err());
    sweep(&[detached.max_order(1)], 16).unwrap();
}

#[test]
fn binary_specs_broadcast() {
    let spec = OpSpec::binary("hypot", bounded(0.5, 2.0), bounded(-2.0, 2.0), |a, b| {
        Ok(a.square().add(&b.square())?.sqrt())
    });
    sweep(&[spec], 16).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn shapes_respect_their_bounds(s in array_shapes(1..=4, 2..=5)) {
        prop_assert!((1..=4).contains(&s.len()) && s.iter().all(|d| (2..=5).contains(d)));
    }

    #[test]
    fn broadcastable_shapes_broadcast(s in broadcastable_shapes(vec![4, 1, 3], 0..=5, 1..=4)) {
        prop_assert!(s.len() <= 5);
        prop_assert!(Shape::from(s).broadcast("t", &Shape::from([4, 1, 3])).is_ok());
    }

    #[test]
    fn mutually_broadcastable_shapes_give_their_result(b in mutually_broadcastable_shapes(3, 0..=4, 1..=3)) {
        let mut out = Shape::scalar();
        for s in &b.input_shapes {
            out = out.broadcast("t", &Shape::from(s.clone())).unwrap();
        }
        prop_assert_eq!(out.dims(), &b.result_shape[..]);
    }

    #[test]
    fn elements_keep_their_promises(
        f in finite(),
        k in away_from(-1.0, 1.0, &[0.0, 0.5], 0.01),
        x in tensors::<f32>(vec![2, 2], bounded(-1.0, 1.0)),
        i in index_tensors(vec![5], 3),
    ) {
        prop_assert!(f.is_finite());
        prop_assert!(k.abs() >= 0.01 && (k - 0.5).abs() >= 0.01);
        prop_assert!(x.data().iter().all(|v| v.abs() <= 1.0));
        prop_assert!(i.data().iter().all(|&j| j < 3));
    }

    #[test]
    fn softplus_passes_inside_proptest(x in tensors_of::<f64>(array_shapes(0..=2, 1..=3), bounded(-3.0, 3.0))) {
        prop_assert_gradcheck!(|xs| Ok(xs[0].softplus()), std::slice::from_ref(&x));
        prop_assert_gradcheck!(|xs| Ok(xs[0].softplus()), &[x], 2, &[Mode::Reverse, Mode::Forward]);
    }
}

#[test]
fn prop_assert_gradcheck_fails_the_case_with_the_report() {
    let run = |x: Tensor<f64>| -> std::result::Result<(), TestCaseError> {
        prop_assert_gradcheck!(|xs| cube(&xs[0], false, true), &[x]);
        Ok(())
    };
    let e = run(Tensor::from_vec(vec![0.7], [1]).unwrap()).unwrap_err().to_string();
    assert!(e.contains("gradcheck failed") && e.contains("inputs: [1] [0.7]"), "{e}");
}
