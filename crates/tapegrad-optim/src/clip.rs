//! Gradient clipping, two ways.
//!
//! - **Inside the optimizer** (no copies): [`GradClip`] set with
//!   [`Optimizer::set_grad_clip`](crate::Optimizer::set_grad_clip) or the optimizers'
//!   `with_grad_clip` clips each gradient element on the fly during the fused update.
//! - **As functions** over explicit gradients, like `torch.nn.utils.clip_grad_norm_` and
//!   `clip_grad_value_`: take the gradients out of [`Gradients`] with [`grads_for`], clip
//!   them with [`clip_grad_norm`] / [`clip_grad_value`] (this copies each gradient, since
//!   the ones in [`Gradients`] are shared), then call
//!   [`Optimizer::step_with_grads`](crate::Optimizer::step_with_grads).
//!
//! Both give the same result. With `N = ‖(g₁, …, gₙ)‖₂` the norm of all gradients
//! together (computed in `f64`), clipping by norm multiplies every gradient by
//! `c = max_norm / (N + 10⁻⁶)` when `c < 1` (PyTorch's formula), and clipping by value
//! clamps each element to `[−v, v]`. With both, values are clamped first and the norm is
//! that of the clamped gradients. A non-finite norm is not an error (as in PyTorch with
//! `error_if_nonfinite=False`): the gradients are scaled by `max_norm / ∞ = 0`, or become
//! NaN.
//!
//! ```
//! use tapegrad_core::Tensor;
//! use tapegrad_optim::{clip_grad_norm, grads_for, GradClip, Optimizer, Sgd};
//!
//! let mut w = Tensor::<f64>::from_vec(vec![3.0, 4.0], [2])?.requires_grad();
//! let grads = w.mul(&w)?.sum_all().mul_scalar(0.5).backward()?; // ∂/∂w = w, norm 5
//!
//! // As functions: clip copies, then step with them.
//! let mut w2 = w.clone();
//! let mut params = vec![("w".to_string(), &mut w2)];
//! let mut g = grads_for(&params, &grads);
//! let norm = clip_grad_norm(&mut g, 1.0)?;
//! assert_eq!(norm, 5.0);
//! let mut opt = Sgd::pytorch(1.0)?;
//! opt.step_with_grads(&mut params, &g)?;
//!
//! // Inside the optimizer: the same update, no copies.
//! let mut opt = Sgd::pytorch(1.0)?.with_grad_clip(GradClip::norm(1.0))?;
//! opt.step(&mut [("w".to_string(), &mut w)], &grads)?;
//! assert_eq!(w.to_vec(), w2.to_vec());
//! assert_eq!(opt.last_grad_norm(), Some(5.0));
//! # Ok::<(), tapegrad_core::Error>(())
//! ```

use crate::rule::{check_positive, clamp_abs};
use tapegrad_core::{Element, Gradients, Result, Tensor};

/// Gradient clipping applied inside each optimizer step (see the [module docs](self)).
///
/// `None` turns a kind of clipping off; both off is the default.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct GradClip {
    /// Scale all gradients together so that their total L2 norm is at most this.
    pub max_norm: Option<f64>,
    /// Clamp every gradient element to `[−max_value, max_value]`.
    pub max_value: Option<f64>,
}

impl GradClip {
    /// No clipping.
    pub fn none() -> Self {
        GradClip::default()
    }

    /// Clipping by total norm, like `torch.nn.utils.clip_grad_norm_(params, max_norm)`.
    pub fn norm(max_norm: f64) -> Self {
        GradClip {
            max_norm: Some(max_norm),
            max_value: None,
        }
    }

    /// Clipping by value, like `torch.nn.utils.clip_grad_value_(params, max_value)`.
    pub fn value(max_value: f64) -> Self {
        GradClip {
            max_norm: None,
            max_value: Some(max_value),
        }
    }

    /// Errors, naming `op`, if a threshold is NaN or ≤ 0.
    pub fn validate(&self, op: &'static str) -> Result<()> {
        if let Some(v) = self.max_norm {
            check_positive(op, "max_norm", v)?;
        }
        if let Some(v) = self.max_value {
            check_positive(op, "max_value", v)?;
        }
        Ok(())
    }
}

/// The gradient of each named parameter, in order (`None` where the loss does not depend
/// on it): cheap clones that share the buffers held by `grads`, ready for
/// [`Optimizer::step_with_grads`](crate::Optimizer::step_with_grads) with the same `params`.
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_optim::grads_for;
/// let (mut a, mut b) = (Tensor::<f64>::ones([2])?.requires_grad(), Tensor::<f64>::ones([1])?);
/// let grads = a.sum_all().backward()?;
/// let params = vec![("a".to_string(), &mut a), ("b".to_string(), &mut b)];
/// let g = grads_for(&params, &grads);
/// assert_eq!((g[0].as_ref().map(|g| g.to_vec()), g[1].is_none()), (Some(vec![1.0, 1.0]), true));
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn grads_for<T: Element>(params: &[(String, &mut Tensor<T>)], grads: &Gradients<T>) -> Vec<Option<Tensor<T>>> {
    params.iter().map(|(_, p)| grads.get(p).cloned()).collect()
}

/// `‖(g₁, …, gₙ)‖₂`, the L2 norm of all gradients together, accumulated in `f64`.
///
/// ```
/// use tapegrad_core::Tensor;
/// let g = vec![Some(Tensor::<f32>::from_vec(vec![3.0], [1])?), None, Some(Tensor::from_vec(vec![4.0], [1])?)];
/// assert_eq!(tapegrad_optim::total_norm(&g), 5.0);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn total_norm<T: Element>(grads: &[Option<Tensor<T>>]) -> f64 {
    grads
        .iter()
        .flatten()
        .flat_map(|g| g.data().iter())
        .map(|&x| x.as_f64().powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Scales the gradients in place so that their total norm is at most `max_norm`, and
/// returns the norm they had, like `torch.nn.utils.clip_grad_norm_`:
/// `N = ‖(g₁, …, gₙ)‖₂` (in `f64`), and every `gᵢ ← c·gᵢ` with
/// `c = max_norm / (N + 10⁻⁶)` when `c < 1`.
///
/// Errors if `max_norm` is NaN or ≤ 0.
///
/// ```
/// use tapegrad_core::Tensor;
/// let mut g = vec![Some(Tensor::<f64>::from_vec(vec![3.0, 4.0], [2])?)];
/// assert_eq!(tapegrad_optim::clip_grad_norm(&mut g, 1.0)?, 5.0);
/// assert!((tapegrad_optim::total_norm(&g) - 1.0).abs() < 1e-6);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn clip_grad_norm<T: Element>(grads: &mut [Option<Tensor<T>>], max_norm: f64) -> Result<f64> {
    check_positive("clip_grad_norm", "max_norm", max_norm)?;
    let norm = total_norm(grads);
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        let c = T::from_f64_lossy(coef);
        for g in grads.iter_mut().flatten() {
            g.data_mut().iter_mut().for_each(|x| *x *= c);
        }
    }
    Ok(norm)
}

/// Clamps every gradient element to `[−max_value, max_value]` in place, like
/// `torch.nn.utils.clip_grad_value_` (NaN elements stay NaN).
///
/// Errors if `max_value` is NaN or ≤ 0.
///
/// ```
/// use tapegrad_core::Tensor;
/// let mut g = vec![Some(Tensor::<f32>::from_vec(vec![-2.0, 0.5], [2])?)];
/// tapegrad_optim::clip_grad_value(&mut g, 1.0)?;
/// assert_eq!(g[0].as_ref().unwrap().to_vec(), vec![-1.0, 0.5]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn clip_grad_value<T: Element>(grads: &mut [Option<Tensor<T>>], max_value: f64) -> Result<()> {
    check_positive("clip_grad_value", "max_value", max_value)?;
    let c = T::from_f64_lossy(max_value);
    for g in grads.iter_mut().flatten() {
        g.data_mut().iter_mut().for_each(|x| *x = clamp_abs(*x, c));
    }
    Ok(())
}
