//! Reductions over any set of axes, with or without `keepdim`.
//!
//! Axes are an [`Axes`]: one `isize` or a list (`x.sum(-1, false)`, `x.sum([0, 2], true)`).
//! An empty axis list reduces nothing (NumPy's `axis=()`); `*_all` reduce everything.

use crate::element::{c, Element};
use crate::error::{Error, Result};
use crate::grad_mode::no_grad;
use crate::kernels::reduce;
use crate::ops::OpKind;
use crate::ops::{record, record_one};
use crate::shape::{Axes, Shape};
use crate::tape::one;
use crate::tensor::Tensor;
use smallvec::SmallVec;

impl<T: Element> Tensor<T> {
    /// Sum over `axes` (negative counts from the end). With `keepdim` the reduced dims stay
    /// as size 1. ∂/∂x = 1: the gradient is broadcast back over the reduced dims.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], [2, 3])?;
    /// assert_eq!(x.sum(1, false)?.to_vec(), vec![6., 15.]);
    /// assert_eq!(x.sum([0], true)?.dims(), &[1, 3]);
    /// assert_eq!(x.sum([0, 1], false)?.item()?, 21.);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn sum(&self, axes: impl Into<Axes>, keepdim: bool) -> Result<Tensor<T>> {
        let ax = self.shape().axes("sum", axes.into().as_slice())?;
        self.check_reduced_alloc("sum", &ax)?;
        Ok(self.sum_normalized(ax, keepdim))
    }

    /// Only an empty tensor's reduction can be larger than the tensor itself (the sum of
    /// `[0, n, n]` over dim 0 is `n²` zeros): check that it can be allocated.
    fn check_reduced_alloc(&self, op: &'static str, ax: &[usize]) -> Result<()> {
        if self.numel() == 0 {
            crate::storage::ensure_alloc::<T>(op, &self.shape().reduced(ax, true))?;
        }
        Ok(())
    }

    /// [`Tensor::sum`] over normalised, sorted axes: cannot fail.
    #[track_caller]
    fn sum_normalized(&self, ax: SmallVec<[usize; 4]>, keepdim: bool) -> Tensor<T> {
        let data = reduce::reduce(self.data(), self.shape(), &ax, T::zero(), |a, b| a + b);
        let out = Tensor::from_parts(data, self.shape().reduced(&ax, keepdim));
        let kept = self.shape().reduced(&ax, true);
        record_one(OpKind::Sum, self, out, false, move |ctx| {
            ctx.grad.reshape(kept.clone())?.broadcast_to(ctx.input(0).shape())
        })
    }

    /// Sum of all elements, as a 0-d tensor (0 for an empty tensor).
    #[track_caller]
    pub fn sum_all(&self) -> Tensor<T> {
        self.sum_normalized((0..self.ndim()).collect(), false)
    }

    /// Mean over `axes`: the sum divided by the number of elements reduced (NaN for an
    /// empty reduction, as in PyTorch).
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1., 2., 3., 4.], [2, 2])?;
    /// assert_eq!(x.mean(0, false)?.to_vec(), vec![2., 3.]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn mean(&self, axes: impl Into<Axes>, keepdim: bool) -> Result<Tensor<T>> {
        let ax = self.shape().axes("mean", axes.into().as_slice())?;
        self.check_reduced_alloc("mean", &ax)?;
        // In f64: the reduced dims of an empty tensor (`[2⁴⁰, 2⁴⁰, 0]`) may multiply past
        // usize::MAX before the 0 is reached.
        let count: f64 = ax.iter().map(|&a| self.dims()[a] as f64).product();
        Ok(self.sum_normalized(ax, keepdim).mul_scalar(T::one() / c::<T>(count)))
    }

    /// Mean of all elements, as a 0-d tensor (NaN for an empty tensor).
    #[track_caller]
    pub fn mean_all(&self) -> Tensor<T> {
        self.sum_all().mul_scalar(T::one() / c::<T>(self.numel() as f64))
    }

    /// Maximum over `axes`. The gradient goes to the maximal elements, split evenly among
    /// ties. Errors on an empty reduction.
    #[track_caller]
    pub fn max(&self, axes: impl Into<Axes>, keepdim: bool) -> Result<Tensor<T>> {
        self.extreme(OpKind::Max, axes, keepdim, T::neg_infinity(), |a, b| {
            if b > a || b.is_nan() {
                b
            } else {
                a
            }
        })
    }

    /// Minimum over `axes`; see [`Tensor::max`].
    #[track_caller]
    pub fn min(&self, axes: impl Into<Axes>, keepdim: bool) -> Result<Tensor<T>> {
        self.extreme(OpKind::Min, axes, keepdim, T::infinity(), |a, b| {
            if b < a || b.is_nan() {
                b
            } else {
                a
            }
        })
    }

    /// Maximum of all elements, as a 0-d tensor.
    #[track_caller]
    pub fn max_all(&self) -> Result<Tensor<T>> {
        self.max(self.shape().all_axes(), false)
    }

    /// Minimum of all elements, as a 0-d tensor.
    #[track_caller]
    pub fn min_all(&self) -> Result<Tensor<T>> {
        self.min(self.shape().all_axes(), false)
    }

    #[track_caller]
    fn extreme(
        &self,
        kind: OpKind,
        axes: impl Into<Axes>,
        keepdim: bool,
        init: T,
        f: fn(T, T) -> T,
    ) -> Result<Tensor<T>> {
        let ax = self.shape().axes(kind.name(), axes.into().as_slice())?;
        if ax.iter().any(|&a| self.dims()[a] == 0) {
            return Err(Error::bad_shape(
                kind.name(),
                format!("reduction over an empty dim of shape {}", self.shape()),
            ));
        }
        let data = reduce::reduce(self.data(), self.shape(), &ax, init, f);
        let kept = self.shape().reduced(&ax, true);
        let out = Tensor::from_parts(data, self.shape().reduced(&ax, keepdim));
        let ax_signed: Vec<isize> = ax.iter().map(|&a| a as isize).collect();
        Ok(record(kind, &[self], out, true, move |ctx| {
            let x = ctx.input(0);
            // Which elements attained the extreme, and how many per slot (ties share).
            let (mask, count) = no_grad(|| -> Result<_> {
                let best = ctx.output()?.detach().reshape(kept.clone())?;
                let mask = crate::ops::arith::mask2(x, &best, |v, b| v == b)?;
                let count = mask.sum(&ax_signed[..], true)?;
                Ok((mask, count))
            })?;
            let share = mask.div(&count)?;
            let spread = ctx.grad.reshape(kept.clone())?.broadcast_to(x.shape())?;
            Ok(one(crate::ops::arith::keep_where(&mask, &spread.mul(&share)?)?))
        }))
    }

    /// Sums over the dims along which `shape` would be broadcast to `self.shape()`: the
    /// adjoint of [`Tensor::broadcast_to`], used to reduce gradients of broadcast inputs.
    #[track_caller]
    pub fn sum_to(&self, shape: impl Into<Shape>) -> Result<Tensor<T>> {
        let shape = &shape.into();
        if self.shape() == shape {
            return Ok(self.clone());
        }
        if !shape.broadcasts_to(self.shape()) {
            return Err(Error::mismatch(
                "sum_to",
                self.shape(),
                shape,
                "a target shape that broadcasts to the source",
            ));
        }
        if self.numel() == 0 {
            crate::storage::ensure_alloc::<T>("sum_to", shape)?;
        }
        let lead = self.ndim() - shape.ndim();
        let axes: SmallVec<[usize; 4]> = (0..self.ndim())
            .filter(|&d| d < lead || (shape.dims()[d - lead] == 1 && self.dims()[d] != 1))
            .collect();
        self.sum_normalized(axes, true).reshape(shape.clone())
    }
}
