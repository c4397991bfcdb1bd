//! Function transforms against closed forms: xᵀAx, Rosenbrock, softmax, a third
//! derivative, the WGAN-GP gradient penalty, and an MLP's Hessian-vector product.

use rand::rngs::StdRng;
use rand::SeedableRng;
use tapegrad_core::func::{self, JacobianMode};
use tapegrad_core::{gradcheck, no_grad, Error, Result, Tensor};

fn t(v: &[f64], dims: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), dims.to_vec()).unwrap()
}

fn rand(dims: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::rand_uniform(dims.to_vec(), -1.0, 1.0, &mut StdRng::seed_from_u64(seed)).unwrap()
}

fn assert_close(a: &Tensor<f64>, b: &Tensor<f64>, tol: f64) {
    assert_eq!(a.dims(), b.dims());
    for (x, y) in a.data().iter().zip(b.data()) {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{:?}\nvs\n{:?}",
            a.to_vec(),
            b.to_vec()
        );
    }
}

const MODES: [JacobianMode; 3] = [JacobianMode::Auto, JacobianMode::Reverse, JacobianMode::Forward];

#[test]
fn hessian_of_a_quadratic_form_is_a_plus_a_transpose() {
    let a = rand(&[4, 4], 1);
    let x = rand(&[4], 2);
    let f = |xs: &[Tensor<f64>]| xs[0].matmul(&a)?.matmul(&xs[0]);
    let expect = a.add(&a.t().unwrap()).unwrap();
    let h = func::hessian(f, std::slice::from_ref(&x)).unwrap();
    assert_close(&h[0][0], &expect, 1e-12);
    // The gradient (A + Aᵀ)x, and the Jacobian of the gradient in every mode.
    let (_, g) = func::value_and_grad(f, std::slice::from_ref(&x)).unwrap();
    assert_close(&g[0], &expect.matmul(&x).unwrap(), 1e-12);
    for mode in MODES {
        let j = func::jacobian(func::grad(f, 0), std::slice::from_ref(&x), mode).unwrap();
        assert_close(&j[0], &expect, 1e-12);
    }
}

/// Rosenbrock f(x, y) = (1 − x)² + 100 (y − x²)², on one 2-vector.
fn rosenbrock(xs: &[Tensor<f64>]) -> Result<Tensor<f64>> {
    let (x, y) = (xs[0].narrow(0, 0, 1)?, xs[0].narrow(0, 1, 1)?);
    let a = x.neg().add_scalar(1.0).square();
    let b = y.sub(&x.square())?.square().mul_scalar(100.0);
    Ok(a.add(&b)?.sum_all())
}

#[test]
fn rosenbrock_gradient_and_hessian() {
    for &(x, y) in &[(-1.2, 1.0), (0.5, -0.3), (1.0, 1.0)] {
        let p = t(&[x, y], &[2]);
        let (v, g) = func::value_and_grad(rosenbrock, std::slice::from_ref(&p)).unwrap();
        let r = y - x * x;
        assert!((v.item().unwrap() - ((1.0 - x) * (1.0 - x) + 100.0 * r * r)).abs() < 1e-12);
        assert_close(&g[0], &t(&[-2.0 * (1.0 - x) - 400.0 * x * r, 200.0 * r], &[2]), 1e-12);
        let h = func::hessian(rosenbrock, &[p]).unwrap();
        let expect = t(
            &[2.0 - 400.0 * r + 800.0 * x * x, -400.0 * x, -400.0 * x, 200.0],
            &[2, 2],
        );
        assert_close(&h[0][0], &expect, 1e-12);
    }
}

#[test]
fn softmax_jacobian_is_diag_s_minus_s_s_transpose() {
    let x = t(&[0.3, -1.2, 2.0, 0.1, 0.7], &[5]);
    let s = x.softmax(0).unwrap().to_vec();
    let n = s.len();
    let expect: Vec<f64> = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            (if i == j { s[i] } else { 0.0 }) - s[i] * s[j]
        })
        .collect();
    for mode in MODES {
        let j = func::jacobian(|xs| xs[0].softmax(0), std::slice::from_ref(&x), mode).unwrap();
        assert_close(&j[0], &t(&expect, &[n, n]), 1e-12);
    }
}

#[test]
fn third_derivative_by_nesting_grad() {
    // f(x) = x eˣ: f' = (x + 1)eˣ, f'' = (x + 2)eˣ, f''' = (x + 3)eˣ.
    let f = |xs: &[Tensor<f64>]| xs[0].mul(&xs[0].exp());
    let d1 = func::grad(f, 0);
    let d2 = func::grad(&d1, 0);
    let d3 = func::grad(&d2, 0);
    for x in [-1.5, 0.0, 0.8] {
        let xs = [Tensor::scalar(x)];
        for (k, d) in [(1.0, d1(&xs)), (2.0, d2(&xs)), (3.0, d3(&xs))] {
            let want = (x + k) * f64::exp(x);
            assert!((d.unwrap().item().unwrap() - want).abs() < 1e-12, "order {k} at {x}");
        }
    }
    // Top-level results are plain tensors, as in torch.func.
    assert!(!d3(&[Tensor::scalar(0.1)]).unwrap().is_tracked());
}

#[test]
fn a_tensor_from_another_thread_counts_as_recorded_before_the_transform() {
    // This thread takes its block of node ids first; `w` is made later on another thread,
    // from a block above it. `w` was still recorded before the transform began, so with
    // grad mode on the result stays differentiable in it: d/dx (x·w) = w, and d/dw w = 1.
    let _ = Tensor::<f64>::scalar(0.0).requires_grad().mul_scalar(1.0);
    let w = std::thread::spawn(|| Tensor::<f64>::scalar(3.0).requires_grad())
        .join()
        .unwrap();
    let f = |xs: &[Tensor<f64>]| xs[0].mul(&w);
    let dx = func::grad(f, 0)(&[Tensor::scalar(2.0)]).unwrap();
    assert_eq!(dx.item().unwrap(), 3.0);
    assert!(dx.is_tracked(), "the result must keep its graph to w");
    assert_eq!(dx.backward().unwrap().wrt(&w).unwrap().item().unwrap(), 1.0);
}

#[test]
fn nested_transforms_do_not_confuse_perturbations() {
    // d/dx [x · (d/dy x·y)] = d/dx x² = 2x: the inner grad must see its own y, not the
    // outer x it closes over (Siskind & Pearlmutter's perturbation confusion).
    let outer = func::grad(
        |xs: &[Tensor<f64>]| {
            let x = &xs[0];
            let inner = func::grad(|ys: &[Tensor<f64>]| ys[0].mul(x), 0)(std::slice::from_ref(x))?;
            x.mul(&inner)
        },
        0,
    );
    assert_eq!(outer(&[Tensor::scalar(3.0)]).unwrap().item().unwrap(), 6.0);
}

/// A small critic D(x) = w₂ᵀ tanh(W₁x + b₁) and its WGAN-GP penalty (‖∂D/∂x‖ − 1)².
fn penalty(w1: &Tensor<f64>, b1: &Tensor<f64>, w2: &Tensor<f64>, x: &Tensor<f64>) -> Result<Tensor<f64>> {
    let d = |xs: &[Tensor<f64>]| w1.matmul(&xs[0])?.add(b1)?.tanh().matmul(w2);
    let dx = func::grad(d, 0)(std::slice::from_ref(x))?;
    Ok(dx.square().sum_all().sqrt().add_scalar(-1.0).square())
}

#[test]
fn gradient_penalty_differentiates_through_the_input_gradient() {
    let (w1, b1, w2, x) = (rand(&[3, 4], 3), rand(&[3], 4), rand(&[3], 5), rand(&[4], 6));
    // Closed form: ∂D/∂x = W₁ᵀ (w₂ ⊙ (1 − h²)) with h = tanh(W₁x + b₁).
    let h = w1.matmul(&x).unwrap().add(&b1).unwrap().tanh();
    let dx = w1
        .t()
        .unwrap()
        .matmul(&w2.mul(&h.square().neg().add_scalar(1.0)).unwrap())
        .unwrap();
    let want = (dx.square().sum_all().item().unwrap().sqrt() - 1.0).powi(2);
    assert!((penalty(&w1, &b1, &w2, &x).unwrap().item().unwrap() - want).abs() < 1e-12);
    // The penalty's gradient with respect to every weight of D, against finite differences.
    gradcheck(
        |ws| penalty(&ws[0], &ws[1], &ws[2], &x),
        &[w1.clone(), b1.clone(), w2.clone()],
    )
    .unwrap();
    // And through backward, with D's weights tracked as in a training step.
    let w1 = w1.requires_grad();
    let p = penalty(&w1, &b1, &w2, &x).unwrap();
    assert!(p.backward().unwrap().wrt(&w1).unwrap().data().iter().any(|g| *g != 0.0));
}

fn mlp_loss(w1: &Tensor<f64>, w2: &Tensor<f64>) -> Result<Tensor<f64>> {
    let x = rand(&[8, 5], 7);
    let y = rand(&[8, 2], 8);
    let out = x.matmul(w1)?.tanh().matmul(w2)?;
    Ok(out.sub(&y)?.square().mean_all())
}

#[test]
fn mlp_hessian_vector_product_matches_differences_of_gradients() {
    let f = |ws: &[Tensor<f64>]| mlp_loss(&ws[0], &ws[1]);
    let ws = [rand(&[5, 6], 9), rand(&[6, 2], 10)];
    let vs = [rand(&[5, 6], 11), rand(&[6, 2], 12)];
    let (_, hv) = func::hvp(f, &ws, &vs).unwrap();
    let eps = 1e-5;
    let shifted = |sign: f64| -> Vec<Tensor<f64>> {
        let moved: Vec<Tensor<f64>> = ws
            .iter()
            .zip(&vs)
            .map(|(w, v)| w.add(&v.mul_scalar(sign * eps)).unwrap())
            .collect();
        func::value_and_grad(f, &moved).unwrap().1
    };
    let (plus, minus) = (shifted(1.0), shifted(-1.0));
    for i in 0..2 {
        let fd = plus[i].sub(&minus[i]).unwrap().mul_scalar(0.5 / eps);
        assert_close(&hv[i], &fd, 1e-7);
    }
    // The Hessian itself agrees: H·v from hessian() blocks.
    let h = func::hessian(f, &ws).unwrap();
    let hv0 = h[0][0]
        .reshape([30, 30])
        .unwrap()
        .matmul(&vs[0].reshape([30]).unwrap())
        .unwrap();
    let hv0 = hv0
        .add(
            &h[0][1]
                .reshape([30, 12])
                .unwrap()
                .matmul(&vs[1].reshape([12]).unwrap())
                .unwrap(),
        )
        .unwrap();
    assert_close(&hv0, &hv[0].reshape([30]).unwrap(), 1e-10);
}

#[test]
fn jvp_and_vjp_agree_with_the_jacobian() {
    let f = |xs: &[Tensor<f64>]| Ok(xs[0].matmul(&xs[1])?.tanh());
    let xs = [rand(&[2, 3], 13), rand(&[3], 14)];
    let ts = [rand(&[2, 3], 15), rand(&[3], 16)];
    let j = func::jacobian(f, &xs, JacobianMode::Reverse).unwrap();
    let (y, jt) = func::jvp(f, &xs, &ts).unwrap();
    let want = j[0]
        .reshape([2, 6])
        .unwrap()
        .matmul(&ts[0].reshape([6]).unwrap())
        .unwrap()
        .add(&j[1].matmul(&ts[1]).unwrap())
        .unwrap();
    assert_close(&jt, &want, 1e-12);
    assert_close(&y, &f(&xs).unwrap(), 0.0);
    let v = rand(&[2], 17);
    let (_, pull) = func::vjp(f, &xs).unwrap();
    let vj = pull.call(&v).unwrap();
    assert_close(&vj[1], &v.matmul(&j[1]).unwrap(), 1e-12);
    assert_close(
        &vj[0],
        &v.matmul(&j[0].reshape([2, 6]).unwrap())
            .unwrap()
            .reshape([2, 3])
            .unwrap(),
        1e-12,
    );
    // A pullback can be called again, and refuses a cotangent of the wrong shape.
    assert_eq!(pull.call(&v).unwrap()[1].to_vec(), vj[1].to_vec());
    assert!(matches!(
        pull.call(&rand(&[3], 1)),
        Err(Error::ShapeMismatch { op: "vjp", .. })
    ));
}

#[test]
fn transforms_work_under_no_grad_and_on_constants() {
    let x = t(&[1.0, 2.0], &[2]);
    let g =
        no_grad(|| func::grad(|xs: &[Tensor<f64>]| Ok(xs[0].square().sum_all()), 0)(std::slice::from_ref(&x))).unwrap();
    assert_eq!(g.to_vec(), vec![2.0, 4.0]);
    // f independent of its input: zero derivatives of the right shapes, in every transform.
    let c = |_: &[Tensor<f64>]| Ok(Tensor::scalar(5.0));
    assert_eq!(
        func::value_and_grad(c, std::slice::from_ref(&x)).unwrap().1[0].to_vec(),
        vec![0.0, 0.0]
    );
    assert_eq!(
        func::hvp(c, std::slice::from_ref(&x), std::slice::from_ref(&x))
            .unwrap()
            .1[0]
            .to_vec(),
        vec![0.0, 0.0]
    );
    assert_eq!(
        func::jvp(c, std::slice::from_ref(&x), std::slice::from_ref(&x))
            .unwrap()
            .1
            .to_vec(),
        vec![0.0]
    );
    for mode in MODES {
        assert_eq!(
            func::jacobian(c, std::slice::from_ref(&x), mode).unwrap()[0].dims(),
            &[2]
        );
    }
}

#[test]
fn bad_arguments_are_errors_naming_the_transform() {
    let x = t(&[1.0, 2.0], &[2]);
    let vector = |xs: &[Tensor<f64>]| Ok(xs[0].square());
    let e = func::value_and_grad(vector, std::slice::from_ref(&x))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("value_and_grad") && e.contains("[2]"), "{e}");
    let e = func::grad(vector, 3)(std::slice::from_ref(&x)).unwrap_err().to_string();
    assert!(e.contains("argnum 3"), "{e}");
    let e = func::jvp(vector, std::slice::from_ref(&x), &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("jvp") && e.contains("1 inputs but 0"), "{e}");
    let e = func::hvp(|xs| Ok(xs[0].sum_all()), std::slice::from_ref(&x), &[t(&[1.0], &[1])]).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "hvp", .. }), "{e}");
}
