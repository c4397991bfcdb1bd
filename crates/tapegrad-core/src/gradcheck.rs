//! Finite-difference gradient checking, like `torch.autograd.gradcheck`.
//!
//! For `f: (x₁, …, xₙ) ↦ y` the analytic Jacobian comes from one vector-Jacobian product per
//! output element (seed = one-hot), the numerical one from central differences
//! `(f(x + ε·eₖ) − f(x − ε·eₖ)) / 2ε` per input element. Entries must satisfy
//! `|analytic − numeric| ≤ atol + rtol·|numeric|`. In fast mode a single random projection
//! `vᵀ J u` is compared instead (one backward and two forwards per call), which is what a
//! property test sweeping thousands of cases wants.
//!
//! Checks run in `f64`: central differences with ε = 1e-6 have ~1e-10 truncation and
//! ~1e-10 rounding error there, while in `f32` rounding alone is ~1e-1 at that ε.
//!
//! ```
//! use tapegrad_core::{gradcheck, Tensor};
//! let x = Tensor::<f64>::from_vec(vec![0.3, -1.2, 2.0], [3])?;
//! let report = gradcheck(|xs| Ok(xs[0].tanh().mul(&xs[0])?), &[x])?;
//! assert!(report.max_abs_error < 1e-8);
//! # Ok::<(), tapegrad_core::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::grad_mode::no_grad;
use crate::gradients::grad;
use crate::tensor::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt;

/// Settings of a gradient check; the defaults are PyTorch's for `float64`.
#[derive(Clone, Debug)]
pub struct GradCheck {
    /// Finite-difference step (default 1e-6).
    pub eps: f64,
    /// Absolute tolerance (default 1e-5).
    pub atol: f64,
    /// Relative tolerance (default 1e-3).
    pub rtol: f64,
    /// Compare one random projection `vᵀ J u` instead of the whole Jacobian.
    pub fast_mode: bool,
    /// Seed of the random projections of fast mode and of gradgradcheck's seed gradient.
    pub seed: u64,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            fast_mode: false,
            seed: 0,
        }
    }
}

/// Where the worst disagreement between analytic and numerical derivatives was.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// Which input (position in the input slice).
    pub input: usize,
    /// Multi-index of the input element (`None` in fast mode, which checks a projection).
    pub element: Option<Vec<usize>>,
    /// Multi-index of the output element (`None` in fast mode).
    pub output: Option<Vec<usize>>,
    /// ∂y/∂x from backward.
    pub analytic: f64,
    /// ∂y/∂x from central differences.
    pub numeric: f64,
}

/// The outcome of a gradient check that passed (a failure is an [`Error::GradCheck`]).
#[derive(Clone, Debug)]
pub struct GradCheckReport {
    /// Largest `|analytic − numeric|` seen.
    pub max_abs_error: f64,
    /// Number of Jacobian entries (or projections) compared.
    pub compared: usize,
    /// The entry closest to (or, in a failure, furthest past) its tolerance.
    pub worst: Option<Mismatch>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.element, &self.output) {
            (Some(e), Some(o)) => write!(f, "input {} element {e:?} → output element {o:?}", self.input)?,
            _ => write!(f, "random projection vᵀJu")?,
        }
        write!(
            f,
            ": analytic {:.10e} vs numeric {:.10e} (|diff| {:.3e})",
            self.analytic,
            self.numeric,
            (self.analytic - self.numeric).abs()
        )
    }
}

/// [`GradCheck::check`] with the default settings.
pub fn gradcheck<F>(f: F, inputs: &[Tensor<f64>]) -> Result<GradCheckReport>
where
    F: Fn(&[Tensor<f64>]) -> Result<Tensor<f64>>,
{
    GradCheck::default().check(f, inputs)
}

/// [`GradCheck::check_second_order`] with the default settings.
pub fn gradgradcheck<F>(f: F, inputs: &[Tensor<f64>]) -> Result<GradCheckReport>
where
    F: Fn(&[Tensor<f64>]) -> Result<Tensor<f64>>,
{
    GradCheck::default().check_second_order(f, inputs)
}

fn unravel(mut flat: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for (i, &d) in dims.iter().enumerate().rev() {
        if d > 0 {
            idx[i] = flat % d;
            flat /= d;
        }
    }
    idx
}

/// Running comparison of analytic and numeric values.
struct Tally {
    atol: f64,
    rtol: f64,
    max_abs: f64,
    worst_excess: f64,
    worst: Option<Mismatch>,
    compared: usize,
}

impl Tally {
    fn see(&mut self, m: impl FnOnce() -> Mismatch, analytic: f64, numeric: f64) {
        self.compared += 1;
        let diff = (analytic - numeric).abs();
        let excess = if diff.is_nan() {
            f64::INFINITY
        } else {
            diff / (self.atol + self.rtol * numeric.abs())
        };
        self.max_abs = self.max_abs.max(diff);
        if excess > self.worst_excess || self.worst.is_none() {
            self.worst_excess = excess;
            self.worst = Some(m());
        }
    }

    fn finish(self, what: &str) -> Result<GradCheckReport> {
        if self.worst_excess > 1.0 {
            let w = self.worst.expect("a failing tally has a worst entry");
            return Err(Error::GradCheck(format!(
                "{what}: {w} exceeds atol {} + rtol {}·|numeric| ({} entries compared)",
                self.atol, self.rtol, self.compared
            )));
        }
        Ok(GradCheckReport {
            max_abs_error: self.max_abs,
            compared: self.compared,
            worst: self.worst,
        })
    }
}

impl GradCheck {
    /// Default settings (PyTorch's for `float64`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the finite-difference step.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets the absolute tolerance.
    pub fn atol(mut self, atol: f64) -> Self {
        self.atol = atol;
        self
    }

    /// Sets the relative tolerance.
    pub fn rtol(mut self, rtol: f64) -> Self {
        self.rtol = rtol;
        self
    }

    /// Compares random projections instead of whole Jacobians.
    pub fn fast(mut self, on: bool) -> Self {
        self.fast_mode = on;
        self
    }

    /// Seeds the random projections.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    fn tally(&self) -> Tally {
        Tally {
            atol: self.atol,
            rtol: self.rtol,
            max_abs: 0.0,
            worst_excess: 0.0,
            worst: None,
            compared: 0,
        }
    }

    /// Checks the gradients of `f` at `inputs` against central differences. `f` must be
    /// deterministic. Errors with a report naming the worst entry if any exceeds the
    /// tolerance, if there is nothing to compare (no input elements, or an empty output),
    /// or if `f` itself fails.
    pub fn check<F>(&self, f: F, inputs: &[Tensor<f64>]) -> Result<GradCheckReport>
    where
        F: Fn(&[Tensor<f64>]) -> Result<Tensor<f64>>,
    {
        self.check_in(f, inputs, false)
    }

    /// [`GradCheck::check`] in forward mode, like `torch.autograd.gradcheck(check_forward_ad=True)`:
    /// the Jacobian comes from [`func::jacobian`](crate::func::jacobian) in
    /// [`JacobianMode::Forward`](crate::func::JacobianMode::Forward) (in fast mode, one
    /// [`func::jvp`](crate::func::jvp) along a random direction), compared with the same
    /// central differences.
    ///
    /// ```
    /// use tapegrad_core::{GradCheck, Tensor};
    /// let x = Tensor::<f64>::from_vec(vec![0.3, -1.2], [2])?;
    /// GradCheck::new().check_forward(|xs| Ok(xs[0].tanh().mul(&xs[0])?), &[x])?;
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn check_forward<F>(&self, f: F, inputs: &[Tensor<f64>]) -> Result<GradCheckReport>
    where
        F: Fn(&[Tensor<f64>]) -> Result<Tensor<f64>>,
    {
        self.check_in(f, inputs, true)
    }

    fn check_in<F>(&self, f: F, inputs: &[Tensor<f64>], forward: bool) -> Result<GradCheckReport>
    where
        F: Fn(&[Tensor<f64>]) -> Result<Tensor<f64>>,
    {
        if !(self.eps > 0.0 && self.atol >= 0.0 && self.rtol >= 0.0) {
            return Err(Error::bad_value(
                "gradcheck",
                format!("needs eps > 0 and tolerances >= 0, got {self:?}"),
            ));
        }
        if inputs.iter().all(|x| x.numel() == 0) {
            // PyTorch refuses too: a check that compares nothing must not pass.
            return Err(Error::bad_value(
                "gradcheck",
                format!(
                    "nothing to check: {} input(s) with no elements in all (shapes {:?})",
                    inputs.len(),
                    inputs.iter().map(|x| x.shape()).collect::<Vec<_>>()
                ),
            ));
        }
        let leaves: Vec<Tensor<f64>> = inputs.iter().map(|x| x.detach().requires_grad()).collect();
        let y = f(&leaves)?;
        if y.numel() == 0 && !self.fast_mode {
            return Err(Error::bad_value(
                "gradcheck",
                format!("nothing to check: f returned an empty tensor of shape {}", y.shape()),
            ));
        }
        // Perturbed inputs are fresh leaves so that an `f` which itself differentiates
        // (gradgradcheck's first-order map) still can.
        let eval = |xs: &[Tensor<f64>]| -> Result<Vec<f64>> {
            let xs: Vec<Tensor<f64>> = xs.iter().map(|x| x.detach().requires_grad()).collect();
            let out = f(&xs)?;
            if out.shape() != y.shape() {
                return Err(Error::mismatch(
                    "gradcheck",
                    y.shape(),
                    out.shape(),
                    "f to return one shape for every input",
                ));
            }
            Ok(out.to_vec())
        };
        let plain: Vec<Tensor<f64>> = inputs.iter().map(|x| x.detach()).collect();
        let shifted = |i: usize, delta: &dyn Fn(&mut [f64])| -> Result<Vec<f64>> {
            let mut xs = plain.clone();
            delta(xs[i].data_mut());
            eval(&xs)
        };
        let mut tally = self.tally();
        if self.fast_mode {
            let mut rng = StdRng::seed_from_u64(self.seed);
            let mut rand_like = |t: &Tensor<f64>| -> Tensor<f64> {
                let data = (0..t.numel()).map(|_| rng.random_range(-1.0..1.0)).collect();
                Tensor::from_parts(data, t.shape().clone())
            };
            let v = rand_like(&y);
            let us: Vec<Tensor<f64>> = inputs.iter().map(&mut rand_like).collect();
            let analytic: f64 = if forward {
                dot(crate::func::jvp(&f, &plain, &us)?.1.data(), v.data())
            } else if y.is_tracked() {
                let grads = grad(&y, &leaves.iter().collect::<Vec<_>>(), Some(&v), false)?;
                grads.iter().zip(&us).map(|(g, u)| dot(g.data(), u.data())).sum()
            } else {
                0.0
            };
            let eps = self.eps;
            let step = |sign: f64| -> Result<Vec<f64>> {
                let xs: Vec<Tensor<f64>> = plain
                    .iter()
                    .zip(&us)
                    .map(|(x, u)| {
                        let data = x.data().iter().zip(u.data()).map(|(a, b)| a + sign * eps * b).collect();
                        Tensor::from_parts(data, x.shape().clone())
                    })
                    .collect();
                eval(&xs)
            };
            let (plus, minus) = (step(1.0)?, step(-1.0)?);
            let numeric: f64 = plus
                .iter()
                .zip(&minus)
                .zip(v.data())
                .map(|((p, m), v)| (p - m) / (2.0 * eps) * v)
                .sum();
            tally.see(
                || Mismatch {
                    input: 0,
                    element: None,
                    output: None,
                    analytic,
                    numeric,
                },
                analytic,
                numeric,
            );
            return tally.finish(if forward {
                "fast forward-mode gradcheck"
            } else {
                "fast gradcheck"
            });
        }
        // Analytic Jacobian, one row (output element) at a time.
        let m = y.numel();
        let mut analytic: Vec<Vec<f64>> = inputs.iter().map(|x| vec![0.0; m * x.numel()]).collect();
        if forward {
            let jac = crate::func::jacobian(&f, &plain, crate::func::JacobianMode::Forward)?;
            for (a, j) in analytic.iter_mut().zip(jac) {
                a.copy_from_slice(j.data());
            }
        } else if y.is_tracked() {
            let refs: Vec<&Tensor<f64>> = leaves.iter().collect();
            for j in 0..m {
                let mut seed = vec![0.0; m];
                seed[j] = 1.0;
                let seed = Tensor::from_parts(seed, y.shape().clone());
                for (i, g) in grad(&y, &refs, Some(&seed), false)?.iter().enumerate() {
                    let n = inputs[i].numel();
                    analytic[i][j * n..(j + 1) * n].copy_from_slice(g.data());
                }
            }
        }
        for (i, x) in inputs.iter().enumerate() {
            let n = x.numel();
            for k in 0..n {
                let plus = shifted(i, &|d| d[k] += self.eps)?;
                let minus = shifted(i, &|d| d[k] -= self.eps)?;
                for j in 0..m {
                    let numeric = (plus[j] - minus[j]) / (2.0 * self.eps);
                    let a = analytic[i][j * n + k];
                    tally.see(
                        || Mismatch {
                            input: i,
                            element: Some(unravel(k, x.dims())),
                            output: Some(unravel(j, y.dims())),
                            analytic: a,
                            numeric,
                        },
                        a,
                        numeric,
                    );
                }
            }
        }
        tally.finish(if forward { "forward-mode gradcheck" } else { "gradcheck" })
    }

    /// Checks second derivatives, like `torch.autograd.gradgradcheck`: gradchecks the map
    /// `x ↦ vᵀ ∂f/∂x` (the gradients from a backward with `create_graph`, for a fixed random
    /// seed gradient `v`), which exercises the gradient rules of the gradient rules.
    pub fn check_second_order<F>(&self, f: F, inputs: &[Tensor<f64>]) -> Result<GradCheckReport>
    where
        F: Fn(&[Tensor<f64>]) -> Result<Tensor<f64>>,
    {
        let probe = no_grad(|| f(inputs))?;
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x5eed);
        let v = Tensor::from_parts(
            (0..probe.numel()).map(|_| rng.random_range(-1.0..1.0)).collect(),
            probe.shape().clone(),
        );
        let first_order = |xs: &[Tensor<f64>]| -> Result<Tensor<f64>> {
            let y = f(xs)?;
            if !y.is_tracked() {
                return Tensor::zeros([xs.iter().map(|x| x.numel()).sum::<usize>()]);
            }
            let gs = grad(&y, &xs.iter().collect::<Vec<_>>(), Some(&v), true)?;
            let flat = gs.iter().map(|g| g.flatten(0)).collect::<Result<Vec<_>>>()?;
            Tensor::concat(&flat.iter().collect::<Vec<_>>(), 0)
        };
        self.check(first_order, inputs)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_a_correct_rule() {
        let x = Tensor::from_vec(vec![0.3, -0.7, 1.1, 2.0], [2, 2]).unwrap();
        let w = Tensor::from_vec(vec![0.5, -1.5, 0.25, 1.0], [2, 2]).unwrap();
        let r = gradcheck(
            |xs| xs[0].matmul(&xs[1])?.tanh().sum([0], false),
            &[x.clone(), w.clone()],
        )
        .unwrap();
        assert_eq!(r.compared, 2 * (4 + 4));
        assert!(GradCheck::new()
            .fast(true)
            .check(|xs| xs[0].matmul(&xs[1]), &[x, w])
            .is_ok());
    }

    #[test]
    fn catches_a_planted_wrong_rule() {
        // A "sin" whose rule claims d/dx = sin x instead of cos x, built from a
        // differentiable op with the wrong derivative: y = x − x + sin x with the sin part
        // detached and replaced by an op whose gradient is wrong.
        let x = Tensor::from_vec(vec![0.4, 1.3, -0.8], [3]).unwrap();
        let wrong = |xs: &[Tensor<f64>]| -> Result<Tensor<f64>> {
            let x = &xs[0];
            let sin = Tensor::from_vec(x.data().iter().map(|v| v.sin()).collect(), x.shape().clone())?;
            // value: sin x; gradient: that of x·(sin x) with sin x held constant = sin x.
            let wrong_rule = x.mul(&sin)?.sub(&x.detach().mul(&sin)?)?;
            wrong_rule.add(&sin)
        };
        let err = gradcheck(wrong, std::slice::from_ref(&x)).unwrap_err().to_string();
        assert!(
            err.contains("gradcheck failed") && err.contains("input 0 element"),
            "{err}"
        );
        assert!(GradCheck::new().fast(true).seed(3).check(wrong, &[x]).is_err());
    }

    #[test]
    fn second_order_of_a_cubic() {
        let x = Tensor::from_vec(vec![0.5, -1.5], [2]).unwrap();
        let r = gradgradcheck(|xs| Ok(xs[0].powf(3.0)?.sum_all()), &[x]).unwrap();
        assert!(r.max_abs_error < 1e-6);
    }
}
