//! Matrix products: 2-D, batched with NumPy-broadcast batch dims, 1-D operands promoted as
//! in `numpy.matmul`, and a fused-transpose form used by the gradient rules themselves.

use crate::element::Element;
use crate::error::{Error, Result};
use crate::kernels::gemm;
use crate::ops::record;
use crate::ops::OpKind;
use crate::shape::Shape;
use crate::tensor::Tensor;
use smallvec::{smallvec, SmallVec};

impl<T: Element> Tensor<T> {
    /// Matrix product, as `numpy.matmul` / `torch.matmul`.
    ///
    /// For `a: [..., m, k]` and `b: [..., k, n]` the result is `[..., m, n]`, with the batch
    /// dims broadcast. A 1-D `a` is treated as a row `[1, k]` and a 1-D `b` as a column
    /// `[k, 1]`, and that dim is removed from the result. For C = A·B:
    /// ∂L/∂A = ∂L/∂C · Bᵀ and ∂L/∂B = Aᵀ · ∂L/∂C (summed over broadcast batch dims).
    ///
    /// Speed: when A is at most a quarter nonzeros (an MNIST batch is about a fifth) and B is
    /// finite, a product too small to split over threads skips A's zeros; the sums, their
    /// order and their rounding are those of the dense kernel, so the values are the same
    /// (except, at most, the sign of a zero that only an underflowing product made).
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], [2, 3])?;
    /// let b = Tensor::from_vec(vec![1., 0., 0., 1., 1., 1.], [3, 2])?;
    /// assert_eq!(a.matmul(&b)?.to_vec(), vec![4., 5., 10., 11.]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn matmul(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        let (ad, bd) = (self.dims(), other.dims());
        if !ad.is_empty() && !bd.is_empty() {
            let k_b = if bd.len() == 1 { bd[0] } else { bd[bd.len() - 2] };
            if ad[ad.len() - 1] != k_b {
                return Err(Error::mismatch(
                    "matmul",
                    self.shape(),
                    other.shape(),
                    "inner dimensions that agree",
                ));
            }
        }
        match (self.ndim(), other.ndim()) {
            (0, _) | (_, 0) => Err(Error::mismatch(
                "matmul",
                self.shape(),
                other.shape(),
                "operands with at least 1 dim",
            )),
            (1, 1) => self
                .unsqueeze(0)?
                .matmul_t(&other.unsqueeze(1)?, false, false)?
                .reshape(Shape::scalar()),
            (1, _) => self.unsqueeze(0)?.matmul_t(other, false, false)?.squeeze(-2),
            (_, 1) => self.matmul_t(&other.unsqueeze(1)?, false, false)?.squeeze(-1),
            _ => self.matmul_t(other, false, false),
        }
    }

    /// `op(a) · op(b)` where `op` transposes the last two dims when its flag is set,
    /// without materialising the transpose (the GEMM reads the operand with swapped
    /// strides). Both operands need at least 2 dims.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let x = Tensor::<f64>::ones([4, 3])?;
    /// let w = Tensor::<f64>::ones([5, 3])?;          // PyTorch's Linear layout: [out, in]
    /// assert_eq!(x.matmul_t(&w, false, true)?.dims(), &[4, 5]); // x · wᵀ
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn matmul_t(&self, other: &Tensor<T>, transpose_a: bool, transpose_b: bool) -> Result<Tensor<T>> {
        let (a, b) = (self, other);
        if a.ndim() < 2 || b.ndim() < 2 {
            return Err(Error::mismatch(
                "matmul",
                a.shape(),
                b.shape(),
                "operands with at least 2 dims",
            ));
        }
        let (ad, bd) = (a.dims(), b.dims());
        let (ar, ac) = (ad[ad.len() - 2], ad[ad.len() - 1]);
        let (br, bc) = (bd[bd.len() - 2], bd[bd.len() - 1]);
        let (m, k) = if transpose_a { (ac, ar) } else { (ar, ac) };
        let (k2, n) = if transpose_b { (bc, br) } else { (br, bc) };
        if k != k2 {
            return Err(Error::mismatch(
                "matmul",
                a.shape(),
                b.shape(),
                "inner dimensions that agree",
            ));
        }
        let a_batch = Shape::from(&ad[..ad.len() - 2]);
        let b_batch = Shape::from(&bd[..bd.len() - 2]);
        let batch = a_batch
            .broadcast("matmul", &b_batch)
            .map_err(|_| Error::mismatch("matmul", a.shape(), b.shape(), "batch dimensions that broadcast"))?;
        let nb = batch.numel();
        let mut out_dims: SmallVec<[usize; 4]> = SmallVec::from_slice(batch.dims());
        out_dims.extend([m, n]);
        let out_shape = Shape::from(out_dims);
        crate::storage::ensure_alloc::<T>("matmul", &out_shape)?;
        let data: Vec<T> = if out_shape.numel() == 0 {
            // Nothing to compute, however large the other dims are.
            Vec::new()
        } else {
            // Which matrix of `a` and of `b` each output matrix multiplies, through the
            // broadcast batch strides (nb ≤ the output's size, which fits in memory).
            let sa = a_batch.broadcast_strides(&batch);
            let sb = b_batch.broadcast_strides(&batch);
            let mut pairs = Vec::with_capacity(nb);
            let mut idx: SmallVec<[usize; 4]> = SmallVec::from_elem(0, batch.ndim());
            for i in 0..nb {
                if i > 0 {
                    for d in (0..batch.ndim()).rev() {
                        idx[d] += 1;
                        if idx[d] < batch.dims()[d] {
                            break;
                        }
                        idx[d] = 0;
                    }
                }
                let oa: usize = idx.iter().zip(&sa).map(|(i, s)| i * s).sum();
                let ob: usize = idx.iter().zip(&sb).map(|(i, s)| i * s).sum();
                pairs.push((oa, ob));
            }
            gemm::batched(a.data(), b.data(), &pairs, m, k, n, transpose_a, transpose_b)
        };
        let out = Tensor::from_parts(data, out_shape);
        let (ta, tb) = (transpose_a, transpose_b);
        Ok(record(OpKind::MatMul, &[a, b], out, false, move |ctx| {
            let (a, b, g) = (ctx.input(0), ctx.input(1), ctx.grad);
            // C = op(A)·op(B): dop(A) = dC·op(B)ᵀ, dop(B) = op(A)ᵀ·dC, transposed back
            // into the stored layout when the flag is set.
            let ga = if !ctx.needs(0) {
                None
            } else if ta {
                Some(b.matmul_t(g, tb, true)?)
            } else {
                Some(g.matmul_t(b, false, !tb)?)
            };
            let gb = if !ctx.needs(1) {
                None
            } else if tb {
                Some(g.matmul_t(a, true, ta)?)
            } else {
                Some(a.matmul_t(g, !ta, false)?)
            };
            Ok(smallvec![ga, gb])
        }))
    }
}
