//! Indexing: select, gather, their scatter-add adjoints, and `where_cond`.
//!
//! The pairs close under differentiation, so second derivatives work: the rule of
//! `index_select` is an `index_add` into zeros and the rule of `index_add` (for its source)
//! is an `index_select`; likewise `gather` ↔ `scatter_add`.

use crate::element::Element;
use crate::error::{Error, Result};
use crate::kernels::elementwise;
use crate::ops::record;
use crate::ops::OpKind;
use crate::shape::Shape;
use crate::tape::one;
use crate::tensor::Tensor;
use smallvec::{smallvec, SmallVec};
use std::sync::Arc;

/// Integer indices with a shape: what `argmax` returns and `gather` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexTensor {
    data: Vec<usize>,
    shape: Shape,
}

impl IndexTensor {
    /// Indices of `shape` in row-major order.
    #[track_caller]
    pub fn from_vec(data: Vec<usize>, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::bad_shape(
                "IndexTensor",
                format!("{} indices do not fill shape {shape}", data.len()),
            ));
        }
        Ok(IndexTensor { data, shape })
    }

    /// The shape.
    #[track_caller]
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The indices in row-major order.
    #[track_caller]
    pub fn data(&self) -> &[usize] {
        &self.data
    }
}

/// The largest index, on the CPU's widest vectors (64-bit unsigned compares need AVX2 or
/// AVX-512 to vectorise; see `kernels::elementwise` on the dispatch).
#[multiversion::multiversion(targets = "simd")]
fn max_index(idx: &[usize]) -> Option<usize> {
    idx.iter().copied().max()
}

fn check_indices(op: &'static str, idx: &[usize], size: usize) -> Result<()> {
    // The maximum first (a loop without an exit, which vectorises), the culprit only
    // when there is one.
    if max_index(idx).is_none_or(|m| m < size) {
        return Ok(());
    }
    let index = idx
        .iter()
        .copied()
        .find(|&i| i >= size)
        .expect("the maximum is out of range");
    Err(Error::IndexOutOfRange { op, index, size })
}

impl<T: Element> Tensor<T> {
    /// The slices at `indices` along `axis`, in that order (repeats allowed), like
    /// `torch.index_select`. ∂/∂x: the gradient's slices added back at their indices.
    #[track_caller]
    pub fn index_select(&self, axis: isize, indices: &[usize]) -> Result<Tensor<T>> {
        let ax = self.shape().axis("index_select", axis)?;
        let d = self.dims()[ax];
        check_indices("index_select", indices, d)?;
        let (outer, inner) = self.shape().outer_inner(ax);
        let mut dims: SmallVec<[usize; 4]> = SmallVec::from_slice(self.dims());
        dims[ax] = indices.len();
        let out_shape = Shape::from(dims);
        crate::storage::ensure_alloc::<T>("index_select", &out_shape)?;
        let mut data = crate::buffer_cache::vec_with_capacity(out_shape.numel());
        // An empty result copies nothing (and its other dims may be huge: no loop over them).
        for o in 0..if out_shape.numel() > 0 { outer } else { 0 } {
            for &i in indices {
                let base = (o * d + i) * inner;
                data.extend_from_slice(&self.data()[base..base + inner]);
            }
        }
        let out = Tensor::from_parts(data, out_shape);
        let idx: Arc<[usize]> = indices.into();
        Ok(record(OpKind::IndexSelect, &[self], out, false, move |ctx| {
            let x = ctx.input(0);
            Ok(one(x.zeros_like().index_add(ax as isize, &idx, ctx.grad)?))
        }))
    }

    /// `self` with the slices of `source` along `axis` added at `indices` (repeats
    /// accumulate), like `torch.index_add`. ∂/∂self = 1; ∂/∂source: the gradient's slices
    /// at `indices`.
    #[track_caller]
    pub fn index_add(&self, axis: isize, indices: &[usize], source: &Tensor<T>) -> Result<Tensor<T>> {
        let ax = self.shape().axis("index_add", axis)?;
        let d = self.dims()[ax];
        check_indices("index_add", indices, d)?;
        let mut want: SmallVec<[usize; 4]> = SmallVec::from_slice(self.dims());
        want[ax] = indices.len();
        if source.dims() != want.as_slice() {
            return Err(Error::mismatch(
                "index_add",
                self.shape(),
                source.shape(),
                "a source with one slice per index",
            ));
        }
        let (outer, inner) = self.shape().outer_inner(ax);
        let mut data = crate::buffer_cache::vec_with_capacity(self.numel());
        data.extend_from_slice(self.data());
        let n = indices.len();
        for o in 0..if source.numel() > 0 { outer } else { 0 } {
            for (j, &i) in indices.iter().enumerate() {
                let dst = (o * d + i) * inner;
                let src = (o * n + j) * inner;
                for (a, &b) in data[dst..dst + inner].iter_mut().zip(&source.data()[src..src + inner]) {
                    *a += b;
                }
            }
        }
        let out = Tensor::from_parts(data, self.shape().clone());
        let idx: Arc<[usize]> = indices.into();
        Ok(record(OpKind::IndexAdd, &[self, source], out, false, move |ctx| {
            let gs = if ctx.needs(1) {
                Some(ctx.grad.index_select(ax as isize, &idx)?)
            } else {
                None
            };
            Ok(smallvec![ctx.needs(0).then(|| ctx.grad.clone()), gs])
        }))
    }

    /// `out[…, j, …] = self[…, index[…, j, …], …]` along `axis`, like `torch.gather`.
    /// `index` has the shape of the result: equal to `self` in every dim but `axis`.
    /// ∂/∂x: the gradient scatter-added back at the gathered positions.
    #[track_caller]
    pub fn gather(&self, axis: isize, index: &IndexTensor) -> Result<Tensor<T>> {
        let ax = self.shape().axis("gather", axis)?;
        check_gather_shapes("gather", self.shape(), index.shape(), ax)?;
        let d = self.dims()[ax];
        check_indices("gather", index.data(), d)?;
        let (outer, inner) = index.shape().outer_inner(ax);
        let n = index.shape().dims()[ax];
        let (src, idx) = (self.data(), index.data());
        let mut data = crate::buffer_cache::vec_with_capacity(idx.len());
        for o in 0..if idx.is_empty() { 0 } else { outer } {
            let plane = &src[o * d * inner..][..d * inner];
            if inner == 1 {
                data.extend(idx[o * n..][..n].iter().map(|&k| plane[k]));
                continue;
            }
            for j in 0..n {
                let row = &idx[(o * n + j) * inner..][..inner];
                data.extend(row.iter().enumerate().map(|(i, &k)| plane[k * inner + i]));
            }
        }
        let out = Tensor::from_parts(data, index.shape().clone());
        let index = Arc::new(index.clone());
        Ok(record(OpKind::Gather, &[self], out, false, move |ctx| {
            Ok(one(ctx.input(0).zeros_like().scatter_add(
                ax as isize,
                &index,
                ctx.grad,
            )?))
        }))
    }

    /// `self` plus `source[…, j, …]` added at `self[…, index[…, j, …], …]` along `axis`,
    /// like `torch.scatter_add`; `index` and `source` share a shape. ∂/∂self = 1;
    /// ∂/∂source: the gradient gathered at `index`.
    #[track_caller]
    pub fn scatter_add(&self, axis: isize, index: &IndexTensor, source: &Tensor<T>) -> Result<Tensor<T>> {
        let ax = self.shape().axis("scatter_add", axis)?;
        check_gather_shapes("scatter_add", self.shape(), index.shape(), ax)?;
        if source.shape() != index.shape() {
            return Err(Error::mismatch(
                "scatter_add",
                index.shape(),
                source.shape(),
                "source and index of one shape",
            ));
        }
        let d = self.dims()[ax];
        check_indices("scatter_add", index.data(), d)?;
        let (outer, inner) = index.shape().outer_inner(ax);
        let n = index.shape().dims()[ax];
        let mut data = crate::buffer_cache::vec_with_capacity(self.numel());
        data.extend_from_slice(self.data());
        let (idx, src) = (index.data(), source.data());
        for o in 0..if idx.is_empty() { 0 } else { outer } {
            let plane = &mut data[o * d * inner..][..d * inner];
            let block = o * n * inner..(o + 1) * n * inner;
            // One row of `inner` indices per j, as in gather (no division per element).
            for (ks, vs) in idx[block.clone()]
                .chunks_exact(inner)
                .zip(src[block].chunks_exact(inner))
            {
                for (i, (&k, &v)) in ks.iter().zip(vs).enumerate() {
                    plane[k * inner + i] += v;
                }
            }
        }
        let out = Tensor::from_parts(data, self.shape().clone());
        let index = Arc::new(index.clone());
        Ok(record(OpKind::ScatterAdd, &[self, source], out, false, move |ctx| {
            let gs = if ctx.needs(1) {
                Some(ctx.grad.gather(ax as isize, &index)?)
            } else {
                None
            };
            Ok(smallvec![ctx.needs(0).then(|| ctx.grad.clone()), gs])
        }))
    }

    /// Elementwise `if cond { a } else { b }` with `cond` nonzero meaning true; all three
    /// broadcast together. `cond` gets no gradient; ∂/∂a = cond, ∂/∂b = 1 − cond.
    #[track_caller]
    pub fn where_cond(cond: &Tensor<T>, a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
        let shape = cond
            .shape()
            .broadcast("where_cond", a.shape())
            .and_then(|s| s.broadcast("where_cond", b.shape()))
            .map_err(|_| {
                Error::bad_shape(
                    "where_cond",
                    format!(
                        "cond {}, a {}, b {} do not broadcast together",
                        cond.shape(),
                        a.shape(),
                        b.shape()
                    ),
                )
            })?;
        let m = cond.detach().broadcast_to(&shape)?;
        let m = Tensor::from_storage(
            elementwise::map(m.data(), |v| if v != T::zero() { T::one() } else { T::zero() }),
            shape.clone(),
        );
        let (ab, bb) = (a.detach().broadcast_to(&shape)?, b.detach().broadcast_to(&shape)?);
        let data = m
            .data()
            .iter()
            .zip(ab.data().iter().zip(bb.data()))
            .map(|(&c, (&x, &y))| if c != T::zero() { x } else { y })
            .collect();
        let out = Tensor::from_parts(data, shape);
        Ok(record(OpKind::Where, &[a, b], out, false, move |ctx| {
            // Selects, not products with the mask, so an infinite gradient on the side not
            // taken still gives 0 there.
            let zero = Tensor::scalar(T::zero());
            let ga = if ctx.needs(0) {
                Some(Tensor::where_cond(&m, ctx.grad, &zero)?)
            } else {
                None
            };
            let gb = if ctx.needs(1) {
                Some(Tensor::where_cond(&m, &zero, ctx.grad)?)
            } else {
                None
            };
            Ok(smallvec![ga, gb])
        }))
    }
}

fn check_gather_shapes(op: &'static str, src: &Shape, index: &Shape, ax: usize) -> Result<()> {
    let ok = src.ndim() == index.ndim() && (0..src.ndim()).all(|d| d == ax || src.dims()[d] == index.dims()[d]);
    if ok {
        Ok(())
    } else {
        Err(Error::mismatch(
            op,
            src,
            index,
            "an index with the source's dims except along the axis",
        ))
    }
}
