//! Edge cases a review found: overflowing shapes, NaN and infinity in rules, empty dims,
//! and errors that must name what the user wrote.

use tapegrad_core::{grad, Tensor};

fn t(v: &[f64], s: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), s).unwrap()
}

#[test]
fn shapes_too_large_for_memory_are_errors_not_wrapped_sizes() {
    // 3 · 0xAAAA_AAAA_AAAA_AAAB ≡ 1 (mod 2⁶⁴): a wrapping product would accept this.
    let huge = [3usize, 0xAAAA_AAAA_AAAA_AAAB];
    assert!(Tensor::<f32>::scalar(1.0).reshape(huge).is_err());
    assert!(Tensor::<f32>::from_vec(vec![1.0], huge).is_err());
    assert!(Tensor::<f32>::arange(0.0, 1e30, 1.0).is_err());
}

#[test]
fn backward_gradients_of_intermediates_are_an_error_not_zeros() {
    let x = t(&[0.5, -1.0], &[2]).requires_grad();
    let h = x.mul_scalar(2.0);
    let loss = h.tanh().sum_all();
    let e = loss.backward().unwrap().wrt(&h).unwrap_err().to_string();
    assert!(e.contains("intermediate") && e.contains("grad("), "{e}");
    let dh = grad(&loss, &[&h], None, false).unwrap().remove(0);
    assert!(dh.data().iter().all(|&v| v > 0.0));
}

#[test]
fn nan_propagates_through_extremes_relu_and_clamp() {
    let a = t(&[1.0, f64::NAN], &[2]).requires_grad();
    let b = t(&[f64::NAN, 2.0], &[2]).requires_grad();
    let m = a.maximum(&b).unwrap();
    assert!(m.data().iter().all(|v| v.is_nan()), "{m}");
    let grads = m.sum_all().backward().unwrap();
    // The NaN side is the one taken, so it gets the gradient.
    assert_eq!(grads.wrt(&a).unwrap().to_vec(), vec![0.0, 1.0]);
    assert_eq!(grads.wrt(&b).unwrap().to_vec(), vec![1.0, 0.0]);
    assert!(a.minimum(&b).unwrap().data().iter().all(|v| v.is_nan()));
    assert!(t(&[f64::NAN], &[1]).relu().item().unwrap().is_nan());
    assert!(t(&[f64::NAN], &[1]).clamp(-1.0, 1.0).unwrap().item().unwrap().is_nan());
}

#[test]
fn pow_gradients_follow_pytorch_where_the_formula_is_zero_times_infinity() {
    let x = t(&[0.0, 2.0], &[2]).requires_grad();
    let g = x.powf(0.0).unwrap().sum_all().backward().unwrap().wrt(&x).unwrap();
    assert_eq!(g.to_vec(), vec![0.0, 0.0]);
    let a = t(&[0.0, 0.0, 3.0], &[3]).requires_grad();
    let b = t(&[2.0, 0.0, 0.0], &[3]).requires_grad();
    let grads = a.pow(&b).unwrap().sum_all().backward().unwrap();
    let (ga, gb) = (grads.wrt(&a).unwrap(), grads.wrt(&b).unwrap());
    assert!(ga.data().iter().chain(gb.data()).all(|v| v.is_finite()), "{ga} {gb}");
    assert_eq!(ga.to_vec(), vec![0.0, 0.0, 0.0]);
    assert_eq!(gb.to_vec()[..2], [0.0, 0.0]);
    assert!((gb.to_vec()[2] - 3f64.ln()).abs() < 1e-15);
}

#[test]
fn an_infinite_gradient_on_the_branch_not_taken_gives_zero_not_nan() {
    let x = t(&[-1.0, 2.0], &[2]).requires_grad();
    let seed = t(&[f64::INFINITY, 1.0], &[2]);
    for create_graph in [false, true] {
        let g = x.relu().backward_with(&seed, create_graph).unwrap().wrt(&x).unwrap();
        assert_eq!(g.to_vec(), vec![0.0, 1.0], "create_graph {create_graph}");
    }
    let a = t(&[1.0, 2.0], &[2]).requires_grad();
    let b = t(&[3.0, 4.0], &[2]).requires_grad();
    let cond = t(&[1.0, 0.0], &[2]);
    let grads = Tensor::where_cond(&cond, &a, &b)
        .unwrap()
        .backward_with(&t(&[f64::INFINITY, f64::INFINITY], &[2]), false)
        .unwrap();
    assert_eq!(grads.wrt(&a).unwrap().to_vec(), vec![f64::INFINITY, 0.0]);
    assert_eq!(grads.wrt(&b).unwrap().to_vec(), vec![0.0, f64::INFINITY]);
}

#[test]
fn narrowing_an_empty_dim_backpropagates() {
    let x = Tensor::<f64>::zeros([0, 3]).unwrap().requires_grad();
    let g = x
        .narrow(0, 0, 0)
        .unwrap()
        .sum_all()
        .backward()
        .unwrap()
        .wrt(&x)
        .unwrap();
    assert_eq!(g.dims(), &[0, 3]);
}

#[test]
fn errors_name_what_the_user_wrote() {
    let x = Tensor::<f32>::zeros([2, 3]).unwrap();
    let e = x.sum([1, -1], false).unwrap_err().to_string();
    assert!(e.contains("repeated"), "{e}");
    let e = Tensor::<f32>::zeros([3])
        .unwrap()
        .matmul(&Tensor::zeros([4]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("[3] vs [4]"), "{e}");
    let e = x.softmax(2).unwrap_err().to_string();
    assert!(e.starts_with("softmax:"), "{e}");
    let e = grad(&x, &[], None, false).unwrap_err().to_string();
    assert!(e.starts_with("grad:"), "{e}");
}

#[test]
fn scalar_division_divides() {
    let x = Tensor::<f32>::from_vec(vec![1.0, 10.0], [2]).unwrap();
    let y = &x / 3.0f32;
    assert_eq!(y.to_vec(), vec![1.0 / 3.0, 10.0 / 3.0]);
}
