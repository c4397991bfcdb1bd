//! The tape's behaviour: accumulation, errors, seeds, no_grad, detach, deep chains,
//! memory across steps, higher-order gradients.

use tapegrad_core::{grad, no_grad, Error, Tensor};

fn t(v: &[f64], s: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), s).unwrap()
}

#[test]
fn gradients_accumulate_over_every_use() {
    let x = t(&[1.5, -2.0], &[2]).requires_grad();
    // y = x·x + x·3 + exp(x) uses x four times.
    let y = x
        .mul(&x)
        .unwrap()
        .add(&x.mul_scalar(3.0))
        .unwrap()
        .add(&x.exp())
        .unwrap()
        .sum_all();
    let g = y.backward().unwrap().wrt(&x).unwrap();
    for (gi, xi) in g.data().iter().zip(x.data()) {
        assert!((gi - (2.0 * xi + 3.0 + xi.exp())).abs() < 1e-12);
    }
}

#[test]
fn errors_name_the_op_and_shapes() {
    let a = Tensor::<f32>::zeros([2, 3]).unwrap();
    let b = Tensor::<f32>::zeros([4, 5]).unwrap();
    let e = a.add(&b).unwrap_err().to_string();
    assert_eq!(
        e,
        "add: shape mismatch [2, 3] vs [4, 5] (expected broadcastable shapes)"
    );
    let e = a.matmul(&b).unwrap_err().to_string();
    assert!(e.starts_with("matmul: shape mismatch [2, 3] vs [4, 5]"), "{e}");
    let e = a.sum([2], false).unwrap_err().to_string();
    assert_eq!(e, "sum: axis 2 is out of range for shape [2, 3] (ndim 2)");
    assert!(matches!(
        Tensor::<f32>::from_vec(vec![1.0; 5], [2, 3]),
        Err(Error::BadShape { op: "from_vec", .. })
    ));
    let r = std::panic::catch_unwind(|| &a + &b);
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert_eq!(
        msg,
        "add: shape mismatch [2, 3] vs [4, 5] (expected broadcastable shapes)"
    );
}

#[test]
fn backward_needs_a_scalar_or_a_seed_and_a_tracked_output() {
    let x = t(&[1.0, 2.0], &[2]).requires_grad();
    let y = x.mul_scalar(2.0);
    let e = y.backward().unwrap_err().to_string();
    assert!(e.contains("single-element") && e.contains("[2]"), "{e}");
    // A seed gives the vector-Jacobian product.
    let g = y.backward_with(&t(&[1.0, 10.0], &[2]), false).unwrap().wrt(&x).unwrap();
    assert_eq!(g.to_vec(), vec![2.0, 20.0]);
    let e = y.backward_with(&t(&[1.0], &[1]), false).unwrap_err().to_string();
    assert!(e.contains("[2] vs [1]"), "{e}");
    let c = t(&[1.0], &[1]);
    assert!(c.exp().backward().unwrap_err().to_string().contains("not tracked"));
    let grads = x.sum_all().backward().unwrap();
    let e = grads.wrt(&c).unwrap_err().to_string();
    assert!(e.contains("untracked tensor of shape [1]"), "{e}");
}

#[test]
fn unused_leaves_get_zero_and_constants_get_none() {
    let x = t(&[1.0, 2.0], &[2]).requires_grad();
    let unused = t(&[3.0], &[1]).requires_grad();
    let c = t(&[5.0, 6.0], &[2]);
    let grads = x.mul(&c).unwrap().sum_all().backward().unwrap();
    assert_eq!(grads.wrt(&unused).unwrap().to_vec(), vec![0.0]);
    assert!(grads.get(&unused).is_none());
    assert_eq!(grads.len(), 1);
}

#[test]
fn no_grad_records_nothing_and_detach_cuts() {
    let x = t(&[1.0], &[1]).requires_grad();
    let y = no_grad(|| x.exp().mul_scalar(2.0));
    assert!(!y.is_tracked());
    let z = x.detach().exp().add(&x).unwrap().sum_all();
    assert_eq!(z.backward().unwrap().wrt(&x).unwrap().to_vec(), vec![1.0]);
}

#[test]
fn deep_chains_neither_recurse_nor_overflow() {
    // 200k ops: a recursive backward or drop would overflow a test thread's 2 MiB stack.
    let x = Tensor::<f32>::scalar(0.3).requires_grad();
    let mut y = x.clone();
    for i in 0..200_000 {
        y = match i % 3 {
            0 => y.add_scalar(1e-4),
            1 => y.mul_scalar(0.9999),
            _ => y.tanh(),
        };
    }
    let g = y.backward().unwrap().wrt(&x).unwrap().item().unwrap();
    assert!(g.is_finite() && g > 0.0);
    drop(y);
}

#[test]
fn grad_of_grad_and_hessian_vector_products() {
    // f(x) = Σ x³ → ∇f = 3x², H = diag(6x); H·v = 6 x ⊙ v.
    let x = t(&[1.0, -2.0, 0.5], &[3]).requires_grad();
    let f = x.powf(3.0).unwrap().sum_all();
    let g = grad(&f, &[&x], None, true).unwrap().remove(0);
    assert_eq!(g.to_vec(), vec![3.0, 12.0, 0.75]);
    assert!(g.is_tracked());
    let v = t(&[1.0, 1.0, 2.0], &[3]);
    let hv = grad(&g.mul(&v).unwrap().sum_all(), &[&x], None, false)
        .unwrap()
        .remove(0);
    assert_eq!(hv.to_vec(), vec![6.0, -12.0, 6.0]);
    // Gradients of intermediate (non-leaf) tensors too, like torch.autograd.grad.
    let h = x.mul_scalar(2.0);
    let out = h.exp().sum_all();
    let dh = grad(&out, &[&h], None, false).unwrap().remove(0);
    assert_eq!(dh.to_vec(), h.data().iter().map(|v| v.exp()).collect::<Vec<_>>());
}

#[test]
fn data_mut_keeps_identity_and_copies_shared_buffers() {
    let mut w = t(&[1.0, 2.0], &[2]).requires_grad();
    let y = w.mul_scalar(3.0).sum_all(); // the graph holds w's old buffer
    w.data_mut()[0] = 100.0;
    let g = y.backward().unwrap();
    assert_eq!(g.wrt(&w).unwrap().to_vec(), vec![3.0, 3.0]);
    assert_eq!(y.item().unwrap(), 9.0);
}

#[test]
fn stable_at_large_magnitudes() {
    let x = Tensor::<f32>::from_vec(vec![1e4, -1e4, 0.0, 1e4], [2, 2])
        .unwrap()
        .requires_grad();
    let ls = x.log_softmax(1).unwrap();
    assert!(ls.data().iter().all(|v| v.is_finite()), "{ls}");
    let g = ls.sum_all().backward().unwrap().wrt(&x).unwrap();
    assert!(g.data().iter().all(|v| v.is_finite()));
    assert!(x.softplus().data().iter().all(|v| v.is_finite()));
    assert!(x.sigmoid().data().iter().all(|v| v.is_finite()));
}

#[test]
fn constructors() {
    assert_eq!(
        Tensor::<f64>::arange(0.0, 1.0, 0.25).unwrap().to_vec(),
        vec![0.0, 0.25, 0.5, 0.75]
    );
    assert!(Tensor::<f64>::arange(0.0, 1.0, 0.0).is_err());
    assert_eq!(
        Tensor::<f32>::linspace(0.0, 1.0, 5).unwrap().to_vec(),
        vec![0.0, 0.25, 0.5, 0.75, 1.0]
    );
    assert_eq!(Tensor::<f32>::eye(2).unwrap().to_vec(), vec![1.0, 0.0, 0.0, 1.0]);
    use rand::SeedableRng;
    let mut r1 = rand::rngs::StdRng::seed_from_u64(7);
    let mut r2 = rand::rngs::StdRng::seed_from_u64(7);
    let a = Tensor::<f32>::rand_normal([100], 0.0, 1.0, &mut r1).unwrap();
    let b = Tensor::<f32>::rand_normal([100], 0.0, 1.0, &mut r2).unwrap();
    assert_eq!(a.to_vec(), b.to_vec());
    let u = Tensor::<f64>::rand_uniform([1000], -1.0, 1.0, &mut r1).unwrap();
    assert!(u.data().iter().all(|v| (-1.0..1.0).contains(v)));
    assert!(Tensor::<f64>::rand_uniform([1], 1.0, -1.0, &mut r1).is_err());
}

#[test]
fn custom_ops_are_checked_like_built_in_ones() {
    use tapegrad_core::{gradcheck, GradCheck};
    // sin x whose rule wrongly says d/dx = sin x: gradcheck names the mismatch.
    let wrong_sin = |xs: &[Tensor<f64>]| {
        let x = &xs[0];
        let y = Tensor::from_vec(x.data().iter().map(|v| v.sin()).collect(), x.shape().clone())?;
        Tensor::custom_op("sin", &[x], y.clone(), false, move |ctx| {
            Ok([Some(ctx.grad.mul(&y)?)].into_iter().collect())
        })
    };
    let x = t(&[0.4, 1.3, -0.8], &[3]);
    let e = gradcheck(wrong_sin, std::slice::from_ref(&x)).unwrap_err().to_string();
    assert!(e.contains("input 0 element"), "{e}");
    assert!(GradCheck::new()
        .fast(true)
        .check(wrong_sin, std::slice::from_ref(&x))
        .is_err());

    // Misuse is an error naming the op: a gradient of the wrong shape, or of the wrong count.
    let xt = x.requires_grad();
    let y = Tensor::custom_op("bad_shape", &[&xt], xt.detach(), false, |_| {
        Ok([Some(Tensor::zeros([2]).unwrap())].into_iter().collect())
    })
    .unwrap();
    let e = y.sum_all().backward().unwrap_err().to_string();
    assert!(e.contains("bad_shape") && e.contains("[2]") && e.contains("[3]"), "{e}");
    let y = Tensor::custom_op("bad_count", &[&xt], xt.detach(), false, |_| Ok(Default::default())).unwrap();
    let e = y.sum_all().backward().unwrap_err().to_string();
    assert!(e.contains("bad_count") && e.contains("0 gradients for 1 inputs"), "{e}");
    let e = Tensor::custom_op("tracked", &[&xt], xt.exp(), false, |_| Ok(Default::default()))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("tracked:"), "{e}");
}
