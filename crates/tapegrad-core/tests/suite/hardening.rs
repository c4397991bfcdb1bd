//! Issue 11's core items, each a regression test: shapes too large to allocate are errors
//! (never an abort), a custom rule that reads an unsaved output is an error naming the op,
//! and vacuous checks or arguments are refused.

use tapegrad_core::{gradcheck, Error, GradCheck, OpKind, Tensor};

fn is_alloc_error<T: std::fmt::Debug>(r: tapegrad_core::Result<T>, op: &str) {
    let e = r.unwrap_err().to_string();
    assert!(e.starts_with(op) && e.contains("cannot be allocated"), "{e}");
}

#[test]
fn shapes_too_large_to_allocate_are_errors_not_aborts() {
    is_alloc_error(Tensor::<f32>::zeros([1 << 20, 1 << 20]), "full");
    is_alloc_error(Tensor::<f32>::zeros([1 << 40, 1 << 40]), "full");
    is_alloc_error(Tensor::<f64>::ones([usize::MAX]), "full");
    is_alloc_error(Tensor::<f32>::eye(1 << 40), "eye");
    is_alloc_error(Tensor::<f32>::linspace(0.0, 1.0, 1 << 60), "linspace");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
    is_alloc_error(Tensor::<f32>::rand_normal([1 << 50], 0.0, 1.0, &mut rng), "rand_normal");
    is_alloc_error(
        Tensor::<f32>::rand_uniform([1 << 50], 0.0, 1.0, &mut rng),
        "rand_uniform",
    );
    // Outputs much larger than the inputs: broadcasting, outer products, index_select.
    let s = Tensor::<f32>::scalar(1.0);
    is_alloc_error(s.broadcast_to([1 << 40]), "broadcast_to");
    let col = Tensor::<f32>::zeros([1 << 18, 1]).unwrap();
    let row = Tensor::<f32>::zeros([1, 1 << 18]).unwrap();
    is_alloc_error(col.matmul(&row), "matmul");
    let wide = Tensor::<f32>::zeros([1, 1 << 26]).unwrap();
    is_alloc_error(wide.index_select(0, &vec![0; 1 << 20]), "index_select");
    let (a, b) = (
        Tensor::<f32>::zeros([1 << 18, 1, 1]).unwrap(),
        Tensor::<f32>::zeros([1, 1 << 18, 1 << 4]).unwrap(),
    );
    is_alloc_error(a.add(&b), "add");
}

#[test]
fn an_empty_shape_with_huge_dims_is_empty() {
    // The element count is 0 whatever the other dims: it must not saturate first.
    let t = Tensor::<f32>::zeros([1 << 40, 1 << 40, 0]).unwrap();
    assert_eq!(t.numel(), 0);
    let t = Tensor::<f32>::zeros([0, 1 << 40, 1 << 40]).unwrap();
    assert_eq!(t.numel(), 0);
    // Reducing an empty dim can make a larger tensor than the input: still an error.
    is_alloc_error(t.sum(0, false), "sum");
    is_alloc_error(t.mean(0, true), "mean");
    is_alloc_error(t.sum_to([1 << 40, 1 << 40]), "sum_to");
    assert_eq!(t.sum_all().item().unwrap(), 0.0);
}

#[test]
fn a_rule_reading_an_unsaved_output_is_an_error_naming_the_custom_op() {
    let x = Tensor::<f64>::ones([2]).unwrap().requires_grad();
    let y = Tensor::custom_op("my_exp", &[&x], x.detach().exp(), false, |ctx| {
        Ok([Some(ctx.grad.mul(&ctx.output()?)?)].into_iter().collect())
    })
    .unwrap();
    let e = y.sum_all().backward().unwrap_err();
    assert!(matches!(e, Error::Autograd { op: "my_exp", .. }), "{e}");
    assert!(e.to_string().contains("save_output"), "{e}");
}

#[test]
fn custom_ops_cannot_take_a_built_in_name() {
    let x = Tensor::<f64>::ones([2]).unwrap().requires_grad();
    let e = Tensor::custom_op("add", &[&x], x.detach(), false, |ctx| {
        Ok([Some(ctx.grad.clone())].into_iter().collect())
    })
    .unwrap_err();
    assert!(e.to_string().contains("built-in"), "{e}");
    let y = Tensor::custom_op("twice", &[&x], x.detach().mul_scalar(2.0), false, |ctx| {
        Ok([Some(ctx.grad.mul_scalar(2.0))].into_iter().collect())
    })
    .unwrap();
    assert_eq!(y.recorded_ops(), vec![OpKind::Custom]);
}

#[test]
fn a_custom_rule_may_return_its_gradient_at_the_broadcast_shape() {
    // x [3] + b [1] as a custom op whose rule returns ∂L/∂b at the output's shape: the tape
    // sums it back, as it does for the built-in ops.
    let f = |xs: &[Tensor<f64>]| {
        let (x, b) = (&xs[0], &xs[1]);
        let out = x.detach().add(&b.detach())?;
        Tensor::custom_op("bias_add", &[x, b], out, false, |ctx| {
            Ok([Some(ctx.grad.clone()), Some(ctx.grad.clone())].into_iter().collect())
        })
    };
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]).unwrap();
    let b = Tensor::from_vec(vec![0.5], [1]).unwrap();
    gradcheck(f, &[x.clone(), b.clone()]).unwrap();
    // A gradient that does not broadcast back is still blamed on the rule.
    let bad = |xs: &[Tensor<f64>]| {
        let out = xs[0].detach().mul_scalar(2.0);
        Tensor::custom_op("bad_rule", &[&xs[0]], out, false, |_| {
            Ok([Some(Tensor::zeros([2])?)].into_iter().collect())
        })
    };
    let e = gradcheck(bad, &[x]).unwrap_err().to_string();
    assert!(e.contains("rule of bad_rule"), "{e}");
}

#[test]
fn vacuous_gradchecks_are_refused() {
    let f =
        |xs: &[Tensor<f64>]| Tensor::scalar(1.0).add(&xs.first().map(|x| x.sum_all()).unwrap_or(Tensor::scalar(0.0)));
    let e = gradcheck(f, &[]).unwrap_err().to_string();
    assert!(e.contains("nothing to check"), "{e}");
    let empty = Tensor::<f64>::zeros([0, 3]).unwrap();
    let e = gradcheck(f, std::slice::from_ref(&empty)).unwrap_err().to_string();
    assert!(e.contains("nothing to check"), "{e}");
    let e = GradCheck::new().fast(true).check(f, &[empty]).unwrap_err().to_string();
    assert!(e.contains("nothing to check"), "{e}");
    let to_empty = |xs: &[Tensor<f64>]| xs[0].narrow(0, 0, 0);
    let e = gradcheck(to_empty, &[Tensor::ones([2]).unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty tensor"), "{e}");
}

#[test]
fn bad_arguments_that_used_to_pass_are_refused() {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
    let e = Tensor::<f32>::rand_normal([2], 0.0, -1.0, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rand_normal") && e.contains("std=-1"), "{e}");
    assert!(Tensor::<f32>::rand_normal([2], f32::NAN, 1.0, &mut rng).is_err());
    let e = Tensor::<f64>::arange(0.0, 10.0, -1.0).unwrap_err().to_string();
    assert!(e.starts_with("arange") && e.contains("points away"), "{e}");
    assert_eq!(Tensor::<f64>::arange(2.0, 2.0, 1.0).unwrap().numel(), 0);
    assert_eq!(
        Tensor::<f64>::arange(3.0, 0.0, -1.0).unwrap().to_vec(),
        vec![3.0, 2.0, 1.0]
    );
}

#[test]
fn one_axes_type_for_every_op_that_takes_axes() {
    let x = Tensor::<f64>::from_vec((0..24).map(f64::from).collect(), [2, 3, 4]).unwrap();
    // One axis, several, negative, a slice or a Vec: the same rule everywhere.
    assert_eq!(x.sum(-1, false).unwrap().to_vec(), x.sum([2], false).unwrap().to_vec());
    assert_eq!(x.sum([0, -1], true).unwrap().dims(), &[1, 3, 1]);
    assert_eq!(x.mean(vec![1, 2], false).unwrap().dims(), &[2]);
    assert_eq!(x.max(&[0, 1][..], false).unwrap().dims(), &[4]);
    assert_eq!(x.logsumexp([1, 2], false).unwrap().dims(), &[2]);
    assert_eq!(x.permute([-1, 0, 1]).unwrap().dims(), &[4, 2, 3]);
    let e = x.permute([0, 0, 1]).unwrap_err().to_string();
    assert!(e.starts_with("permute") && e.contains("[0, 0, 1]"), "{e}");
    let e = x.sum([0, -3], false).unwrap_err().to_string();
    assert!(e.contains("repeated"), "{e}");
    // Shapes: anything Into<Shape>.
    let b = Tensor::<f64>::ones([4]).unwrap();
    assert_eq!(b.broadcast_to([2, 4]).unwrap().dims(), &[2, 4]);
    assert_eq!(
        b.broadcast_to([2, 4]).unwrap().sum_to([1, 4]).unwrap().to_vec(),
        vec![2.0; 4]
    );
    // logsumexp over several axes against the closed form.
    let z = Tensor::<f64>::zeros([2, 3]).unwrap();
    assert!((z.logsumexp([0, 1], false).unwrap().item().unwrap() - 6f64.ln()).abs() < 1e-15);
}

#[test]
fn empty_tensors_with_huge_dims_neither_hang_nor_overflow() {
    // Found by the op-program interpreter: loops over the outer dims of an empty result
    // (2⁴⁰ iterations of nothing) and a per-batch Vec sized by an empty batch's dims.
    let e = Tensor::<f64>::zeros([1 << 40, 0]).unwrap();
    assert_eq!(Tensor::stack(&[&e, &e], 1).unwrap().dims(), &[1 << 40, 2, 0]);
    assert_eq!(Tensor::concat(&[&e, &e], 1).unwrap().dims(), &[1 << 40, 0]);
    assert_eq!(e.narrow(0, 5, 3).unwrap().dims(), &[3, 0]);
    assert_eq!(e.index_select(0, &[1, 2]).unwrap().dims(), &[2, 0]);
    assert_eq!(e.argmax(0, false).unwrap().shape().dims(), &[0]);
    let batch = Tensor::<f64>::zeros([1 << 40, 0, 3]).unwrap();
    let w = Tensor::<f64>::zeros([3, 2]).unwrap();
    assert_eq!(batch.matmul(&w).unwrap().dims(), &[1 << 40, 0, 2]);
    // Sizes along the concat axis that overflow when added are an error.
    let big = Tensor::<f64>::zeros([usize::MAX, 0]).unwrap();
    let e = Tensor::concat(&[&big, &big], 0).unwrap_err().to_string();
    assert!(e.starts_with("concat") && e.contains("overflow"), "{e}");
}

#[test]
fn flattening_huge_dims_of_an_empty_tensor_is_an_error_not_an_overflow() {
    // Found by the `op_program` fuzz target: flatten multiplied the trailing dims
    // unchecked, which overflowed (a panic under overflow checks) for an empty tensor.
    let x = Tensor::<f64>::zeros([0, 1 << 40, 1 << 40]).unwrap();
    let e = x.flatten(1).unwrap_err().to_string();
    assert!(e.contains("flatten") && e.contains("usize::MAX"), "{e}");
    // Dims whose product fits still flatten, empty or not.
    assert_eq!(x.flatten(2).unwrap().dims(), &[0, 1 << 40, 1 << 40]);
    assert_eq!(
        Tensor::<f64>::zeros([0, 1 << 20, 1 << 20])
            .unwrap()
            .flatten(1)
            .unwrap()
            .dims(),
        &[0, 1 << 40]
    );
}

#[test]
fn the_mean_over_huge_dims_of_an_empty_tensor_does_not_overflow_its_count() {
    // Found by the `op_program` fuzz target: mean multiplied the reduced dims in usize,
    // which overflowed for [2⁴⁰, 2⁴⁰, 0] before the 0: a panic in a debug `cargo test`
    // (overflow checks); a release build wrapped to the right 0 by luck.
    let x = Tensor::<f64>::zeros([1 << 40, 1 << 40, 0]).unwrap();
    let m = x.mean([0, 1, 2], false).unwrap();
    assert!(m.item().unwrap().is_nan(), "an empty mean is NaN, as in PyTorch");
    let y = Tensor::<f64>::zeros([0, 1 << 40, 1 << 40]).unwrap();
    assert_eq!(y.mean([1, 2], false).unwrap().dims(), &[0]);
}
