//! `log_softmax`, a primitive (one recorded op, as `torch.log_softmax`), and the
//! composites `logsumexp` and `softmax`, built from primitives after subtracting the
//! (detached) maximum. All three subtract the maximum first, so they stay finite for inputs
//! of ±1e4 and beyond; subtracting a constant does not change them, so detaching it leaves
//! the gradient exact: ∂ logsumexp/∂x = softmax(x).

use crate::element::Element;
use crate::error::Result;
use crate::kernels::reduce;
use crate::ops::OpKind;
use crate::shape::Axes;
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// `axes` normalised, or an error naming `op` if one of them is empty (these functions
    /// have no value over zero elements).
    fn nonempty_axes(&self, op: &'static str, axes: &[isize]) -> Result<smallvec::SmallVec<[usize; 4]>> {
        let ax = self.shape().axes(op, axes)?;
        if let Some(&a) = ax.iter().find(|&&a| self.dims()[a] == 0) {
            return Err(crate::Error::bad_shape(
                op,
                format!("empty dim {a} of shape {}", self.shape()),
            ));
        }
        Ok(ax)
    }

    /// The maximum over `axes` (keepdim), detached, with non-finite maxima replaced by 0
    /// so that rows of −inf give −inf (not NaN) after the shift.
    #[track_caller]
    fn stable_shift(&self, op: &'static str, axes: &Axes) -> Result<Tensor<T>> {
        self.nonempty_axes(op, axes.as_slice())?;
        let m = crate::no_grad(|| self.max(axes, true))?;
        let clean = m
            .data()
            .iter()
            .map(|&v| if v.is_finite() { v } else { T::zero() })
            .collect();
        Tensor::from_vec(clean, m.shape().clone())
    }

    /// `log Σⱼ exp(xⱼ)` over `axes` (one or several, like `torch.logsumexp`).
    /// ∂/∂x = softmax(x) over those axes.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1e4, 1e4], [2])?;
    /// assert!((x.logsumexp(0, false)?.item()? - (1e4 + 2f32.ln())).abs() < 1e-2);
    /// let y = Tensor::<f64>::zeros([2, 3])?;
    /// assert!((y.logsumexp([0, 1], false)?.item()? - 6f64.ln()).abs() < 1e-12);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn logsumexp(&self, axes: impl Into<Axes>, keepdim: bool) -> Result<Tensor<T>> {
        let axes = axes.into();
        let m = self.stable_shift("logsumexp", &axes)?;
        let out = self.sub(&m)?.exp().sum(&axes, true)?.log().add(&m)?;
        if keepdim {
            Ok(out)
        } else {
            let ax = self.shape().axes("logsumexp", axes.as_slice())?;
            out.reshape(self.shape().reduced(&ax, false))
        }
    }

    /// `exp(xᵢ) / Σⱼ exp(xⱼ)` along `axis` (one axis, as `torch.softmax`).
    /// ∂yᵢ/∂xⱼ = yᵢ(δᵢⱼ − yⱼ).
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![0.0, 2f64.ln()], [2])?;
    /// let s = x.softmax(-1)?.to_vec();
    /// assert!((s[0] - 1.0 / 3.0).abs() < 1e-15 && (s[1] - 2.0 / 3.0).abs() < 1e-15);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn softmax(&self, axis: isize) -> Result<Tensor<T>> {
        let axes = Axes::from(axis);
        let e = self.sub(&self.stable_shift("softmax", &axes)?)?.exp();
        e.div(&e.sum(&axes, true)?)
    }

    /// `yᵢ = xᵢ − log Σⱼ exp(xⱼ)` along `axis` (one axis, as `torch.log_softmax`): the log
    /// of the softmax, without its underflow. One recorded op, computed as `(x − m) − log Σⱼ
    /// exp(xⱼ − m)` with `m` the maximum along the axis (0 where it is not finite: a row of
    /// −inf gives −inf; a NaN gives NaN). ∂L/∂xᵢ = gᵢ − softmax(x)ᵢ · Σⱼ gⱼ, with softmax(x)
    /// = exp(y): a rule of recorded ops, so it differentiates again. Errors on an empty
    /// `axis`.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![-1e4, 0.0], [2])?;
    /// assert_eq!(x.log_softmax(0)?.to_vec(), vec![-1e4, 0.0]);
    /// let z = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?.log_softmax(0)?;
    /// assert!((z.to_vec()[0] + (1.0 + (2f64).exp()).ln()).abs() < 1e-15);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor<T>> {
        let a = self.nonempty_axes("log_softmax", &[axis])?[0];
        let dims = self.dims();
        let (outer, inner) = (dims[..a].iter().product(), dims[a + 1..].iter().product());
        let y = reduce::log_softmax(self.data(), outer, dims[a], inner);
        let out = Tensor::from_vec(y, self.shape().clone())?;
        let axes = Axes::from(axis);
        Ok(crate::ops::record_one(
            OpKind::LogSoftmax,
            self,
            out,
            true,
            move |ctx| ctx.grad.sub(&ctx.output()?.exp().mul(&ctx.grad.sum(&axes, true)?)?),
        ))
    }
}
