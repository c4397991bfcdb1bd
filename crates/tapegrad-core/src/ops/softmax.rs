//! `logsumexp`, `softmax` and `log_softmax`, built from primitives after subtracting the
//! (detached) maximum, so they stay finite for inputs of ±1e4 and beyond. Subtracting a
//! constant does not change these functions, so detaching it leaves the gradient exact:
//! ∂ logsumexp/∂x = softmax(x).

use crate::element::Element;
use crate::error::Result;
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// The maximum along `axis` (keepdim), detached, with non-finite maxima replaced by 0
    /// so that rows of −inf give −inf (not NaN) after the shift.
    fn stable_shift(&self, op: &'static str, axis: isize) -> Result<Tensor<T>> {
        let ax = self.shape().axis(op, axis)?;
        if self.dims()[ax] == 0 {
            return Err(crate::Error::bad_shape(
                op,
                format!("empty dim {ax} of shape {}", self.shape()),
            ));
        }
        let m = crate::no_grad(|| self.max(&[axis], true))?;
        let clean = m
            .data()
            .iter()
            .map(|&v| if v.is_finite() { v } else { T::zero() })
            .collect();
        Tensor::from_vec(clean, m.shape().clone())
    }

    /// `log Σⱼ exp(xⱼ)` along `axis`. ∂/∂x = softmax(x).
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1e4, 1e4], [2])?;
    /// assert!((x.logsumexp(0, false)?.item()? - (1e4 + 2f32.ln())).abs() < 1e-2);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn logsumexp(&self, axis: isize, keepdim: bool) -> Result<Tensor<T>> {
        let m = self.stable_shift("logsumexp", axis)?;
        let out = self.sub(&m)?.exp().sum(&[axis], true)?.log().add(&m)?;
        if keepdim {
            Ok(out)
        } else {
            out.squeeze(axis)
        }
    }

    /// `exp(xᵢ) / Σⱼ exp(xⱼ)` along `axis`. ∂yᵢ/∂xⱼ = yᵢ(δᵢⱼ − yⱼ).
    pub fn softmax(&self, axis: isize) -> Result<Tensor<T>> {
        let e = self.sub(&self.stable_shift("softmax", axis)?)?.exp();
        e.div(&e.sum(&[axis], true)?)
    }

    /// `xᵢ − logsumexp(x)` along `axis`: the log of the softmax, without its underflow.
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor<T>> {
        let shifted = self.sub(&self.stable_shift("log_softmax", axis)?)?;
        shifted.sub(&shifted.exp().sum(&[axis], true)?.log())
    }
}
