//! Ops that move elements without arithmetic: reshape, permute, broadcast, narrow, concat.
//! Each rule is the op's adjoint: reshape ↔ reshape back, permute ↔ inverse permutation,
//! broadcast_to ↔ sum_to, narrow ↔ zero padding (a concat), concat ↔ narrow.

use crate::element::Element;
use crate::error::{Error, Result};
use crate::kernels::elementwise::gather_strided;
use crate::ops::OpKind;
use crate::ops::{record, record_one};
use crate::shape::{Axes, Shape};
use crate::storage::ensure_alloc;
use crate::tape::{one, InputGrads};
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::ops::Range;

impl<T: Element> Tensor<T> {
    /// The same elements under another shape with the same number of elements (no copy).
    /// ∂/∂x: the gradient reshaped back.
    #[track_caller]
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor<T>> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(Error::mismatch(
                "reshape",
                self.shape(),
                &shape,
                "the same number of elements",
            ));
        }
        let out = Tensor {
            data: self.data.clone(),
            shape,
            node: None,
        };
        Ok(record_one(OpKind::Reshape, self, out, false, |ctx| {
            ctx.grad.reshape(ctx.input(0).shape().clone())
        }))
    }

    /// Collapses all dims from `start` on into one (`flatten(1)` turns `[N, 28, 28]` into
    /// `[N, 784]`).
    #[track_caller]
    pub fn flatten(&self, start: isize) -> Result<Tensor<T>> {
        if self.ndim() == 0 {
            return self.reshape([1]);
        }
        let s = self.shape().axis("flatten", start)?;
        let mut dims: SmallVec<[usize; 4]> = SmallVec::from_slice(&self.dims()[..s]);
        // An empty tensor may have huge trailing dims (`[0, 2⁴⁰, 2⁴⁰]`) whose product
        // overflows: refused, as no shape can hold it.
        let tail = self.dims()[s..]
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| {
                Error::bad_shape(
                    "flatten",
                    format!(
                        "flattening dims {start}.. of shape {} gives a dim past usize::MAX",
                        self.shape()
                    ),
                )
            })?;
        dims.push(tail);
        self.reshape(Shape::from(dims))
    }

    /// Reorders the dims, like `torch.permute`: result dim `i` is input dim `perm[i]`
    /// (negative axes count from the end). ∂/∂x: the gradient permuted back.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let x = Tensor::<f32>::zeros([2, 3, 4])?;
    /// assert_eq!(x.permute([2, 0, 1])?.dims(), &[4, 2, 3]);
    /// assert_eq!(x.permute([-1, 0, 1])?.dims(), &[4, 2, 3]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn permute(&self, perm: impl Into<Axes>) -> Result<Tensor<T>> {
        let given = perm.into();
        let nd = self.ndim();
        let not_a_permutation = || {
            Error::bad_shape(
                "permute",
                format!(
                    "{:?} is not a permutation of the {nd} dims of {}",
                    given.as_slice(),
                    self.shape()
                ),
            )
        };
        if given.as_slice().len() != nd {
            return Err(not_a_permutation());
        }
        let mut perm: SmallVec<[usize; 4]> = SmallVec::with_capacity(nd);
        let mut seen: SmallVec<[bool; 4]> = SmallVec::from_elem(false, nd);
        for &a in given.as_slice() {
            let p = crate::shape::normalize_axis(a, nd).ok_or_else(not_a_permutation)?;
            if std::mem::replace(&mut seen[p], true) {
                return Err(not_a_permutation());
            }
            perm.push(p);
        }
        let strides = self.shape().strides();
        let out_shape: Shape = perm.iter().map(|&p| self.dims()[p]).collect::<Vec<_>>().into();
        let src_strides: SmallVec<[usize; 4]> = perm.iter().map(|&p| strides[p]).collect();
        let out = Tensor::from_parts(gather_strided(self.data(), &src_strides, &out_shape), out_shape);
        let mut inverse: Vec<isize> = vec![0; nd];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i as isize;
        }
        Ok(record_one(OpKind::Permute, self, out, false, move |ctx| {
            ctx.grad.permute(&inverse[..])
        }))
    }

    /// Swaps two dims.
    #[track_caller]
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Tensor<T>> {
        let (a, b) = (self.shape().axis("transpose", d0)?, self.shape().axis("transpose", d1)?);
        let mut perm: Vec<isize> = (0..self.ndim() as isize).collect();
        perm.swap(a, b);
        self.permute(perm)
    }

    /// The transpose of a 2-D tensor.
    #[track_caller]
    pub fn t(&self) -> Result<Tensor<T>> {
        if self.ndim() != 2 {
            return Err(Error::bad_shape(
                "t",
                format!("needs a 2-D tensor, got shape {}", self.shape()),
            ));
        }
        self.transpose(0, 1)
    }

    /// Inserts a dim of size 1 at `axis` (`-1` appends).
    #[track_caller]
    pub fn unsqueeze(&self, axis: isize) -> Result<Tensor<T>> {
        let nd = self.ndim() as isize;
        let a = if axis < 0 { axis + nd + 1 } else { axis };
        if !(0..=nd).contains(&a) {
            return Err(Error::BadAxis {
                op: "unsqueeze",
                axis,
                shape: self.shape().clone(),
            });
        }
        let mut dims: SmallVec<[usize; 4]> = SmallVec::from_slice(self.dims());
        dims.insert(a as usize, 1);
        self.reshape(Shape::from(dims))
    }

    /// Removes the dim at `axis`, which must have size 1.
    #[track_caller]
    pub fn squeeze(&self, axis: isize) -> Result<Tensor<T>> {
        let a = self.shape().axis("squeeze", axis)?;
        if self.dims()[a] != 1 {
            return Err(Error::bad_shape(
                "squeeze",
                format!("dim {a} of shape {} is not 1", self.shape()),
            ));
        }
        let mut dims: SmallVec<[usize; 4]> = SmallVec::from_slice(self.dims());
        dims.remove(a);
        self.reshape(Shape::from(dims))
    }

    /// Repeats size-1 (and missing leading) dims to reach `shape`, NumPy style.
    /// ∂/∂x: the gradient summed back over the broadcast dims.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let b = Tensor::<f32>::from_vec(vec![1., 2.], [2])?;
    /// assert_eq!(b.broadcast_to([2, 2])?.to_vec(), vec![1., 2., 1., 2.]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor<T>> {
        let shape = &shape.into();
        if self.shape() == shape {
            return Ok(self.clone());
        }
        if !self.shape().broadcasts_to(shape) {
            return Err(Error::mismatch(
                "broadcast_to",
                self.shape(),
                shape,
                "a shape the source broadcasts to",
            ));
        }
        ensure_alloc::<T>("broadcast_to", shape)?;
        let strides = self.shape().broadcast_strides(shape);
        let out = Tensor::from_parts(gather_strided(self.data(), &strides, shape), shape.clone());
        Ok(record_one(OpKind::BroadcastTo, self, out, false, |ctx| {
            ctx.grad.sum_to(ctx.input(0).shape())
        }))
    }

    /// The `len` elements along `axis` starting at `start` (a copy, like `torch.narrow`).
    /// ∂/∂x: the gradient placed back at those positions, zero elsewhere.
    #[track_caller]
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor<T>> {
        let ax = self.shape().axis("narrow", axis)?;
        let d = self.dims()[ax];
        if start.checked_add(len).is_none_or(|end| end > d) {
            return Err(Error::bad_shape(
                "narrow",
                format!(
                    "range {start}..{} is outside dim {ax} (size {d}) of shape {}",
                    start.saturating_add(len),
                    self.shape()
                ),
            ));
        }
        let (outer, inner) = self.shape().outer_inner(ax);
        let mut dims: SmallVec<[usize; 4]> = SmallVec::from_slice(self.dims());
        dims[ax] = len;
        let out_shape = Shape::from(dims);
        let mut data = crate::buffer_cache::vec_with_capacity(out_shape.numel());
        // An empty result copies nothing (and its other dims may be huge: no loop over them).
        if out_shape.numel() > 0 {
            for o in 0..outer {
                let base = (o * d + start) * inner;
                data.extend_from_slice(&self.data()[base..base + len * inner]);
            }
        }
        let out = Tensor::from_parts(data, out_shape);
        Ok(record(OpKind::Narrow, &[self], out, false, move |ctx| {
            let x = ctx.input(0);
            let piece = |n: usize| {
                let mut dims: SmallVec<[usize; 4]> = SmallVec::from_slice(x.dims());
                dims[ax] = n;
                Tensor::zeros(Shape::from(dims))
            };
            let (before, after) = (piece(start)?, piece(d - start - len)?);
            let parts: Vec<&Tensor<T>> = [&before, ctx.grad, &after]
                .into_iter()
                .filter(|t| t.dims()[ax] > 0)
                .collect();
            if parts.is_empty() {
                return Ok(one(x.zeros_like())); // an empty dim: nothing to place
            }
            Ok(one(Tensor::concat(&parts, ax as isize)?))
        }))
    }

    /// The elements at positions `range` along `axis` (shorthand for [`Tensor::narrow`]).
    #[track_caller]
    pub fn slice(&self, axis: isize, range: Range<usize>) -> Result<Tensor<T>> {
        if range.start > range.end {
            return Err(Error::bad_value("slice", format!("range {range:?} is reversed")));
        }
        self.narrow(axis, range.start, range.end - range.start)
    }

    /// Joins tensors along an existing `axis`; all other dims must agree.
    /// ∂/∂xᵢ: the gradient's slice at xᵢ's position.
    #[track_caller]
    pub fn concat(tensors: &[&Tensor<T>], axis: isize) -> Result<Tensor<T>> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::bad_value("concat", "needs at least one tensor"))?;
        let ax = first.shape().axis("concat", axis)?;
        for t in &tensors[1..] {
            let same = t.ndim() == first.ndim() && (0..first.ndim()).all(|d| d == ax || t.dims()[d] == first.dims()[d]);
            if !same {
                return Err(Error::mismatch(
                    "concat",
                    first.shape(),
                    t.shape(),
                    "equal dims except along the concat axis",
                ));
            }
        }
        let sizes: Vec<usize> = tensors.iter().map(|t| t.dims()[ax]).collect();
        let total = sizes
            .iter()
            .try_fold(0usize, |acc, &n| acc.checked_add(n))
            .ok_or_else(|| {
                Error::bad_shape(
                    "concat",
                    format!("the sizes {sizes:?} along axis {ax} overflow when added"),
                )
            })?;
        let (outer, inner) = first.shape().outer_inner(ax);
        let mut dims: SmallVec<[usize; 4]> = SmallVec::from_slice(first.dims());
        dims[ax] = total;
        let out_shape = Shape::from(dims);
        ensure_alloc::<T>("concat", &out_shape)?;
        let mut data = crate::buffer_cache::vec_with_capacity(out_shape.numel());
        // An empty result copies nothing (and its other dims may be huge: no loop over them).
        if out_shape.numel() > 0 {
            for o in 0..outer {
                for (t, &n) in tensors.iter().zip(&sizes) {
                    data.extend_from_slice(&t.data()[o * n * inner..(o + 1) * n * inner]);
                }
            }
        }
        let out = Tensor::from_parts(data, out_shape);
        Ok(record(OpKind::Concat, tensors, out, false, move |ctx| {
            let mut grads = InputGrads::new();
            let mut offset = 0;
            for (i, &n) in sizes.iter().enumerate() {
                grads.push(if ctx.needs(i) {
                    Some(ctx.grad.narrow(ax as isize, offset, n)?)
                } else {
                    None
                });
                offset += n;
            }
            Ok(grads)
        }))
    }

    /// Joins equally shaped tensors along a new `axis`.
    #[track_caller]
    pub fn stack(tensors: &[&Tensor<T>], axis: isize) -> Result<Tensor<T>> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::bad_value("stack", "needs at least one tensor"))?;
        if let Some(t) = tensors.iter().find(|t| t.shape() != first.shape()) {
            return Err(Error::mismatch("stack", first.shape(), t.shape(), "equal shapes"));
        }
        let expanded = tensors.iter().map(|t| t.unsqueeze(axis)).collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Tensor<T>> = expanded.iter().collect();
        Tensor::concat(&refs, axis)
    }
}
