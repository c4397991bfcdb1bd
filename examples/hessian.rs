//! Newton's method with the exact Hessian, beside gradient descent, on the Rosenbrock
//! function f(x, y) = (1 − x)² + 100 (y − x²)² from the classic start (−1.2, 1).
//!
//! Gradient descent follows −∇f with a fixed step; Newton's method solves H·d = −∇f with
//! the Hessian from `tapegrad::func::hessian` (no finite differences, no hand derivation)
//! and converges quadratically once near the minimum (1, 1). Both curves are printed: the
//! loss per step, Newton's for its few steps, gradient descent's out to 10,000 steps.
//!
//! ```text
//! cargo run --release --example hessian
//! ```
//!
//! Exits with status 1 if Newton's method has not reached the minimum to 1e-10 in 20 steps.

use tapegrad::func;
use tapegrad::prelude::*;

/// f on one 2-vector p = (x, y).
fn rosenbrock(ps: &[Tensor<f64>]) -> Result<Tensor<f64>> {
    let (x, y) = (ps[0].narrow(0, 0, 1)?, ps[0].narrow(0, 1, 1)?);
    let a = x.neg().add_scalar(1.0).square();
    let b = y.sub(&x.square())?.square().mul_scalar(100.0);
    Ok(a.add(&b)?.sum_all())
}

/// Solves the 2×2 system H d = −g by Cramer's rule.
fn newton_step(h: &[f64], g: &[f64]) -> Option<[f64; 2]> {
    let det = h[0] * h[3] - h[1] * h[2];
    if det.abs() < 1e-300 {
        return None;
    }
    Some([(-g[0] * h[3] + g[1] * h[1]) / det, (g[0] * h[2] - g[1] * h[0]) / det])
}

fn main() -> Result<()> {
    let start = vec![-1.2, 1.0];

    let mut newton = Vec::new();
    let mut p = Tensor::from_vec(start.clone(), [2])?;
    for _ in 0..20 {
        let (f, g) = func::value_and_grad(rosenbrock, std::slice::from_ref(&p))?;
        newton.push(f.item()?);
        if f.item()? < 1e-20 {
            break;
        }
        let h = func::hessian(rosenbrock, std::slice::from_ref(&p))?.remove(0).remove(0);
        let Some(d) = newton_step(h.data(), g[0].data()) else {
            break;
        };
        p = Tensor::from_vec(vec![p.data()[0] + d[0], p.data()[1] + d[1]], [2])?;
    }
    let newton_end = p.to_vec();

    let lr = 1e-3;
    let mut gd = Vec::new();
    let mut q = Tensor::from_vec(start, [2])?;
    for _ in 0..=10_000 {
        let (f, g) = func::value_and_grad(rosenbrock, std::slice::from_ref(&q))?;
        gd.push(f.item()?);
        q = q.sub(&g[0].mul_scalar(lr))?;
    }

    println!("Rosenbrock from (-1.2, 1): loss per step");
    println!("{:>6}  {:>14}  {:>14}", "step", "Newton", "GD (lr 1e-3)");
    let shown = (0..=10).chain([20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000]);
    for k in shown {
        let n = newton.get(k).map_or(String::from("-"), |v| format!("{v:.3e}"));
        println!("{k:>6}  {n:>14}  {:>14.3e}", gd[k]);
    }
    println!(
        "Newton: {} steps to ({:.12}, {:.12}); GD after 10000 steps: ({:.6}, {:.6})",
        newton.len() - 1,
        newton_end[0],
        newton_end[1],
        q.data()[0],
        q.data()[1]
    );
    let err = (newton_end[0] - 1.0).abs().max((newton_end[1] - 1.0).abs());
    if err > 1e-10 {
        eprintln!("Newton's method did not converge: error {err:.3e}");
        std::process::exit(1);
    }
    Ok(())
}
