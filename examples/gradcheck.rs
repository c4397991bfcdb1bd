//! A walk-through of `tapegrad::gradcheck`: how to know that backprop's ∂L/∂W is right.
//!
//! Backprop computes ∂L/∂W by the chain rule, one hand-written gradient rule per op. A
//! wrong rule does not crash: training just goes worse, silently. A gradient check
//! compares the analytic derivatives with central differences,
//!
//! ```text
//! ∂f/∂xₖ ≈ (f(x + ε·eₖ) − f(x − ε·eₖ)) / 2ε       (error O(ε²))
//! ```
//!
//! and fails if any entry misses `|analytic − numeric| ≤ atol + rtol·|numeric|`. It runs
//! in f64: with ε = 1e-6, f32's rounding alone would swamp the comparison.
//!
//! The tour: (1) check a composite function, softmax cross-entropy of a linear layer
//! written out by hand; (2) the same in fast mode; (3) second derivatives with
//! gradgradcheck; (4) a function whose value is right but whose gradient is wrong, and
//! the report that catches it; (5) a Hessian-vector product with `grad(…, create_graph)`.
//!
//! ```text
//! cargo run --release --example gradcheck
//! ```
//!
//! Exits with status 1 if a correct gradient fails its check or the wrong one passes.

use tapegrad::nn::loss::sparse_categorical_cross_entropy_with_logits;
use tapegrad::prelude::*;
use tapegrad::GradCheckReport;

/// Class labels of the three samples below.
const LABELS: [usize; 3] = [0, 3, 1];

/// Softmax cross-entropy of a linear layer, by hand:
///
/// ```text
/// z = x·W + b                     logits, [N, C]
/// log pᵢ = zᵢ − log Σⱼ exp(zⱼ)    log-softmax over the classes
/// L = −(1/N) Σₙ log p[n, yₙ]      mean negative log-likelihood of the true classes
/// ```
///
/// `inputs` = [x, W, b]; gradcheck differentiates with respect to all three.
fn softmax_cross_entropy(inputs: &[Tensor<f64>]) -> Result<Tensor<f64>> {
    let (x, w, b) = (&inputs[0], &inputs[1], &inputs[2]);
    let z = x.matmul(w)?.add(b)?;
    let log_p = z.sub(&z.logsumexp(-1, true)?)?;
    // Picking log p[n, yₙ] as a product with a constant one-hot matrix keeps the function
    // made of elementwise ops, matmul and reductions only.
    let (n, classes) = (z.dims()[0], z.dims()[1]);
    let mut one_hot = vec![0.0; n * classes];
    for (row, &label) in LABELS.iter().enumerate() {
        one_hot[row * classes + label] = 1.0;
    }
    let one_hot = Tensor::from_vec(one_hot, [n, classes])?;
    Ok(log_p.mul(&one_hot)?.sum_all().mul_scalar(-1.0 / n as f64))
}

/// A function whose *value* is sin x but whose *gradient* is wrong: sin x instead of cos x.
///
/// `s = sin x` is computed from the raw numbers, so it is an untracked constant. Then
/// `x·s − detach(x)·s` is 0 in value but has gradient s (only the first term is tracked),
/// and adding s gives the value sin x. It is the kind of bug a hand-written gradient rule
/// can have (here: "the derivative of sin is sin"), and only a gradient check sees it.
fn sin_with_wrong_gradient(inputs: &[Tensor<f64>]) -> Result<Tensor<f64>> {
    let x = &inputs[0];
    let s = Tensor::from_vec(x.data().iter().map(|v| v.sin()).collect(), x.shape().clone())?;
    x.mul(&s)?.sub(&x.detach().mul(&s)?)?.add(&s)
}

fn print_report(what: &str, report: &GradCheckReport) {
    println!(
        "  {what}: passed; entries compared: {}, max |analytic − numeric| = {:.2e}",
        report.compared, report.max_abs_error
    );
    if let Some(worst) = &report.worst {
        println!("    closest to its tolerance: {worst}");
    }
}

fn run() -> Result<bool> {
    let mut ok = true;
    let mut rng = StdRng::seed_from_u64(7);
    // A small layer: 3 samples of 4 features, 5 classes. Random, not round, values:
    // symmetric points (all zeros, say) can hide a transposed or mis-indexed rule.
    let x = Tensor::<f64>::rand_normal([3, 4], 0.0, 1.0, &mut rng)?;
    let w = Tensor::<f64>::rand_normal([4, 5], 0.0, 0.5, &mut rng)?;
    let b = Tensor::<f64>::rand_normal([5], 0.0, 0.1, &mut rng)?;
    let inputs = [x, w, b];

    println!("1. gradcheck: softmax cross-entropy of x·W + b, x: [3, 4], W: [4, 5], b: [5]");
    // Sanity: the hand-written loss is the library's cross-entropy.
    let ours = softmax_cross_entropy(&inputs)?.item()?;
    let library = sparse_categorical_cross_entropy_with_logits(
        &inputs[0].matmul(&inputs[1])?.add(&inputs[2])?,
        &LABELS,
        Reduction::Mean,
    )?
    .item()?;
    println!("  L = {ours:.12} (tapegrad::nn::loss::sparse_categorical_cross_entropy_with_logits: {library:.12})");
    ok &= (ours - library).abs() < 1e-12;
    // Full mode: the whole Jacobian, one backward per output element and two forwards
    // per input element: 1 output × (12 + 20 + 5) inputs = 37 entries.
    match gradcheck(softmax_cross_entropy, &inputs) {
        Ok(report) => print_report("gradcheck", &report),
        Err(e) => {
            println!("  unexpected failure: {e}");
            ok = false;
        }
    }

    println!("2. fast mode: one random projection vᵀJu instead of the whole Jacobian");
    // One backward and two forwards however big the inputs: what a property test that
    // sweeps thousands of shapes can afford. It compares a single number, so it can miss
    // an error that happens to be orthogonal to u; a different seed draws another u.
    match GradCheck::new().fast(true).check(softmax_cross_entropy, &inputs) {
        Ok(report) => print_report("fast gradcheck", &report),
        Err(e) => {
            println!("  unexpected failure: {e}");
            ok = false;
        }
    }

    println!("3. gradgradcheck: second derivatives");
    // It gradchecks x ↦ vᵀ·∂f/∂x, the gradient computed with create_graph (so the backward
    // pass is itself recorded): this tests the gradient rules of the gradient rules, which
    // Hessian-vector products and gradient penalties rely on.
    match gradgradcheck(softmax_cross_entropy, &inputs) {
        Ok(report) => print_report("gradgradcheck", &report),
        Err(e) => {
            println!("  unexpected failure: {e}");
            ok = false;
        }
    }

    println!("4. a wrong gradient: value sin x, gradient sin x (should be cos x)");
    let x = Tensor::<f64>::from_vec(vec![0.4, 1.3, -0.8], [3])?;
    let value = sin_with_wrong_gradient(std::slice::from_ref(&x))?.to_vec();
    println!("  value at x = {:?}: {value:.4?} (= sin x, correct)", x.to_vec());
    // The failure is an Err whose message names the worst entry: which input element,
    // which output element, the two derivatives, and the tolerance it exceeded.
    match gradcheck(sin_with_wrong_gradient, std::slice::from_ref(&x)) {
        Ok(report) => {
            println!("  NOT caught (max error {:.2e})", report.max_abs_error);
            ok = false;
        }
        Err(e) => println!("  caught: {e}"),
    }
    match GradCheck::new()
        .fast(true)
        .check(sin_with_wrong_gradient, std::slice::from_ref(&x))
    {
        Ok(_) => {
            println!("  fast mode: NOT caught");
            ok = false;
        }
        Err(e) => println!("  fast mode caught it too: {e}"),
    }

    println!("5. Hessian-vector product with grad(…, create_graph = true)");
    // f(x) = Σ xᵢ³ + (Σ xᵢ)²  has  ∇f = 3x² + 2(Σx)  and  H = diag(6x) + 2·11ᵀ,
    // so H·v = 6x ⊙ v + 2(Σv): a known answer for a non-diagonal Hessian.
    let x = Tensor::<f64>::from_vec(vec![0.5, -1.0, 2.0], [3])?.requires_grad();
    let v = Tensor::<f64>::from_vec(vec![1.0, 0.5, -2.0], [3])?;
    let f = x.powf(3.0)?.sum_all().add(&x.sum_all().square())?;
    // create_graph = true records the backward pass, so ∇f is itself differentiable...
    let g = grad(&f, &[&x], None, true)?.remove(0);
    // ...and the gradient of the scalar ∇f·v is H·v: two backward passes, never forming H.
    let hv = grad(&g.mul(&v)?.sum_all(), &[&x], None, false)?.remove(0).to_vec();
    let (xs, vs) = (x.to_vec(), v.to_vec());
    let v_sum: f64 = vs.iter().sum();
    let expected: Vec<f64> = xs.iter().zip(&vs).map(|(x, v)| 6.0 * x * v + 2.0 * v_sum).collect();
    println!("  ∇f(x)      = {:?}", g.to_vec());
    println!("  H·v (tape) = {hv:?}");
    println!("  H·v (math) = {expected:?}");
    let hvp_ok = hv.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-12);
    println!("  {}", if hvp_ok { "match" } else { "MISMATCH" });
    ok &= hvp_ok;
    Ok(ok)
}

fn main() {
    match run() {
        Ok(true) => println!("OK: correct gradients passed, the wrong one was caught, H·v matches"),
        Ok(false) => {
            eprintln!("FAILED: see above");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
