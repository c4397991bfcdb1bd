//! Functions of neural-network layers, as in `torch.nn.functional`: `erf` (a primitive),
//! and the composites `gelu`, `gelu_tanh`, `silu`, `embedding` and
//! `scaled_dot_product_attention`, whose gradients come from their parts' rules.

use super::arith::unary;
use crate::element::{c, Element};
use crate::error::{Error, Result};
use crate::ops::conv::rename;
use crate::ops::OpKind;
use crate::tensor::Tensor;
use crate::IndexTensor;
use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI, PI};

impl<T: Element> Tensor<T> {
    /// The error function `erf x = 2/√π ∫₀ˣ e^(−t²) dt` (as `torch.erf`; values from
    /// `libm`, accurate to an ulp or so). ∂/∂x = 2/√π · e^(−x²).
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let y = Tensor::<f64>::from_vec(vec![0.0, 1.0], [2])?.erf();
    /// assert!((y.to_vec()[1] - 0.842_700_792_949_714_9).abs() < 1e-15);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn erf(&self) -> Tensor<T> {
        unary(
            OpKind::Erf,
            self,
            false,
            |x| T::from_f64_lossy(libm::erf(x.as_f64())),
            |ctx| {
                let x = ctx.input(0);
                ctx.grad.mul(&x.square().neg().exp().mul_scalar(c(FRAC_2_SQRT_PI)))
            },
        )
    }

    /// GELU, exact form, as `torch.nn.functional.gelu(x)`: `x·Φ(x) = ½·x·(1 + erf(x/√2))`.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let y = Tensor::<f64>::from_vec(vec![-1.0, 0.0, 1.0], [3])?.gelu()?;
    /// assert!((y.to_vec()[2] - 0.841_344_746_068_542_9).abs() < 1e-15);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn gelu(&self) -> Result<Tensor<T>> {
        let phi = self
            .mul_scalar(c(FRAC_1_SQRT_2))
            .erf()
            .add_scalar(T::one())
            .mul_scalar(c(0.5));
        self.mul(&phi)
    }

    /// GELU, tanh form, as `torch.nn.functional.gelu(x, approximate='tanh')`:
    /// `½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![1.0], [1])?;
    /// assert!((x.gelu_tanh()?.item()? - x.gelu()?.item()?).abs() < 2e-4);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn gelu_tanh(&self) -> Result<Tensor<T>> {
        let cube = self.mul(&self.square())?;
        let inner = self
            .add(&cube.mul_scalar(c(0.044715)))?
            .mul_scalar(c((2.0 / PI).sqrt()));
        self.mul(&inner.tanh().add_scalar(T::one()).mul_scalar(c(0.5)))
    }

    /// SiLU (swish), as `torch.nn.functional.silu`: `x·σ(x)`.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let y = Tensor::<f64>::from_vec(vec![0.0, 2.0], [2])?.silu()?;
    /// assert!((y.to_vec()[1] - 2.0 / (1.0 + (-2f64).exp())).abs() < 1e-15);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn silu(&self) -> Result<Tensor<T>> {
        self.mul(&self.sigmoid())
    }

    /// Row lookup, as `torch.nn.functional.embedding(indices, weight)`: for a table
    /// `weight [V, E]` and indices of any shape `S`, the result `[S…, E]` holds row
    /// `indices[s]` at `s`. ∂/∂weight: each output row's gradient added to its row of the
    /// table, so repeated indices accumulate.
    ///
    /// Errors if `weight` is not 2-D or an index is `≥ V` (naming the index and `V`).
    ///
    /// ```
    /// use tapegrad_core::{IndexTensor, Tensor};
    /// let table = Tensor::<f64>::from_vec(vec![0., 1., 10., 11., 20., 21.], [3, 2])?.requires_grad();
    /// let ids = IndexTensor::from_vec(vec![2, 0, 2], [3])?;
    /// let y = Tensor::embedding(&ids, &table)?;
    /// assert_eq!(y.to_vec(), vec![20., 21., 0., 1., 20., 21.]);
    /// let g = y.sum_all().backward()?;
    /// assert_eq!(g.wrt(&table)?.to_vec(), vec![1., 1., 0., 0., 2., 2.]);
    /// assert!(Tensor::embedding(&IndexTensor::from_vec(vec![3], [1])?, &table).is_err());
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn embedding(indices: &IndexTensor, weight: &Tensor<T>) -> Result<Tensor<T>> {
        if weight.ndim() != 2 {
            return Err(Error::bad_shape(
                "embedding",
                format!("needs a weight [V, E], got {}", weight.shape()),
            ));
        }
        let mut dims = indices.shape().dims().to_vec();
        dims.push(weight.dims()[1]);
        weight
            .index_select(0, indices.data())
            .map_err(|e| rename(e, "embedding"))?
            .reshape(dims)
    }

    /// Attention, as `torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask,
    /// is_causal)` with its default scale:
    ///
    /// `softmax(q·kᵀ/√d + mask)·v`
    ///
    /// for `q [..., Tq, d]`, `k [..., Tk, d]`, `v [..., Tk, dv]` (batch dims broadcast),
    /// giving `[..., Tq, dv]`. `mask` is PyTorch's float mask, added to the scores
    /// (broadcast to `[..., Tq, Tk]`; −∞ forbids a position; turn a boolean "may attend"
    /// mask into one with [`Tensor::where_cond`]). `causal` lets query `i` see keys
    /// `j ≤ i` only (PyTorch's top-left-aligned `is_causal`). The softmax subtracts each
    /// row's maximum first, so large scores do not overflow; a fully masked row gives NaN,
    /// as in PyTorch.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let q = Tensor::<f64>::zeros([1, 2, 4])?;
    /// let k = Tensor::<f64>::zeros([1, 2, 4])?;
    /// let v = Tensor::<f64>::from_vec(vec![1., 1., 1., 1., 3., 3., 3., 3.], [1, 2, 4])?;
    /// let y = Tensor::scaled_dot_product_attention(&q, &k, &v, None, true)?;
    /// // Query 0 sees only key 0; query 1 averages both.
    /// assert_eq!(y.to_vec(), vec![1., 1., 1., 1., 2., 2., 2., 2.]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn scaled_dot_product_attention(
        q: &Tensor<T>,
        k: &Tensor<T>,
        v: &Tensor<T>,
        mask: Option<&Tensor<T>>,
        causal: bool,
    ) -> Result<Tensor<T>> {
        let op = "scaled_dot_product_attention";
        if q.ndim() < 2 || k.ndim() < 2 || v.ndim() < 2 || q.dims()[q.ndim() - 1] != k.dims()[k.ndim() - 1] {
            return Err(Error::mismatch(
                op,
                q.shape(),
                k.shape(),
                "q [..., Tq, d] and k [..., Tk, d]",
            ));
        }
        if k.dims()[k.ndim() - 2] != v.dims()[v.ndim() - 2] {
            return Err(Error::mismatch(
                op,
                k.shape(),
                v.shape(),
                "k [..., Tk, d] and v [..., Tk, dv]",
            ));
        }
        let d = q.dims()[q.ndim() - 1];
        let (tq, tk) = (q.dims()[q.ndim() - 2], k.dims()[k.ndim() - 2]);
        let mut scores = q
            .matmul_t(k, false, true)
            .map_err(|e| rename(e, op))?
            .mul_scalar(c(1.0 / (d as f64).sqrt()));
        if let Some(m) = mask {
            scores = scores.add(m).map_err(|e| rename(e, op))?;
        }
        if causal {
            let allowed = (0..tq * tk)
                .map(|p| if p % tk <= p / tk { T::one() } else { T::zero() })
                .collect();
            let allowed = Tensor::from_vec(allowed, [tq, tk])?;
            scores = Tensor::where_cond(&allowed, &scores, &Tensor::scalar(T::neg_infinity()))?;
        }
        scores.softmax(-1)?.matmul(v).map_err(|e| rename(e, op))
    }
}
