//! Normalization, as `torch.nn.functional.layer_norm` and `batch_norm`: composites of
//! means, differences and square roots, so their gradients (and second derivatives) come
//! from those ops' rules.

use crate::element::{c, Element};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use smallvec::SmallVec;

/// Running statistics of a batch norm, updated in place in training mode (PyTorch's
/// `running_mean` and `running_var`, each `[C]`).
pub struct RunningStats<'a, T: Element> {
    /// The running mean, `[C]`.
    pub mean: &'a mut Tensor<T>,
    /// The running (unbiased) variance, `[C]`.
    pub var: &'a mut Tensor<T>,
}

impl<T: Element> Tensor<T> {
    /// Layer normalization over the trailing dims `normalized_shape`, as
    /// `torch.nn.functional.layer_norm(x, normalized_shape, weight, bias, eps)`:
    ///
    /// `y = (x − E[x]) / √(Var[x] + ε) · γ + β`
    ///
    /// with the mean and the *biased* variance taken over those dims, and `γ`, `β` (each of
    /// `normalized_shape`, optional) applied elementwise. PyTorch's `eps` is `1e-5`.
    ///
    /// Errors if `x`'s trailing dims are not `normalized_shape` or `γ`/`β` do not have it.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![1., 3., 10., 30.], [2, 2])?;
    /// let y = x.layer_norm(&[2], None, None, 0.0)?;
    /// assert_eq!(y.to_vec(), vec![-1., 1., -1., 1.]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Tensor<T>>,
        bias: Option<&Tensor<T>>,
        eps: T,
    ) -> Result<Tensor<T>> {
        let d = self.dims();
        let k = normalized_shape.len();
        if k == 0 || k > d.len() || d[d.len() - k..] != *normalized_shape {
            return Err(Error::bad_shape(
                "layer_norm",
                format!(
                    "input {} does not end in normalized_shape {normalized_shape:?}",
                    self.shape()
                ),
            ));
        }
        for (what, p) in [("weight", weight), ("bias", bias)] {
            if let Some(p) = p {
                if p.dims() != normalized_shape {
                    return Err(Error::bad_shape(
                        "layer_norm",
                        format!("{what} {} must have normalized_shape {normalized_shape:?}", p.shape()),
                    ));
                }
            }
        }
        let axes: Vec<isize> = (1..=k as isize).map(|i| -i).collect();
        let y = normalize(self, &axes, eps)?;
        affine(y, weight, bias)
    }

    /// Batch normalization of `x [N, C, *]` per channel, as
    /// `torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias,
    /// training, momentum, eps)`:
    ///
    /// `y = (x − μ) / √(σ² + ε) · γ + β`, per channel `c`.
    ///
    /// In training, `μ` and `σ²` are the batch mean and *biased* variance over every dim
    /// but 1, and the running statistics (if given) are updated as PyTorch does:
    /// `running ← (1 − momentum)·running + momentum·batch`, the variance taking the
    /// *unbiased* batch variance `σ²·m/(m − 1)` (`m` values per channel). In evaluation
    /// (`training = false`), `μ` and `σ²` are the running statistics, which are then
    /// required. PyTorch's defaults: `momentum = 0.1`, `eps = 1e-5`.
    ///
    /// Errors if `x` has fewer than 2 dims, the statistics or `γ`/`β` are not `[C]`, or
    /// training sees one value per channel ("expected more than 1 value per channel when
    /// training", as PyTorch).
    ///
    /// ```
    /// use tapegrad_core::{ops::norm::RunningStats, Tensor};
    /// let x = Tensor::<f64>::from_vec(vec![1., 10., 3., 30.], [2, 2])?; // N = 2, C = 2
    /// let (mut mean, mut var) = (Tensor::zeros([2])?, Tensor::ones([2])?);
    /// let running = RunningStats { mean: &mut mean, var: &mut var };
    /// let y = x.batch_norm(Some(running), None, None, true, 0.1, 0.0)?;
    /// assert_eq!(y.to_vec(), vec![-1., -1., 1., 1.]);
    /// assert_eq!(mean.to_vec(), vec![0.2, 2.0]); // 0.9·0 + 0.1·(2, 20)
    /// assert!((var.to_vec()[0] - (0.9 + 0.1 * 2.0)).abs() < 1e-15); // unbiased: 1·2/1
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn batch_norm(
        &self,
        running: Option<RunningStats<'_, T>>,
        weight: Option<&Tensor<T>>,
        bias: Option<&Tensor<T>>,
        training: bool,
        momentum: T,
        eps: T,
    ) -> Result<Tensor<T>> {
        let d = self.dims();
        if d.len() < 2 {
            return Err(Error::bad_shape(
                "batch_norm",
                format!("needs an input [N, C, *], got {}", self.shape()),
            ));
        }
        let ch = d[1];
        let check = |what: &str, t: &Tensor<T>| {
            if t.dims() == [ch] {
                Ok(())
            } else {
                Err(Error::bad_shape(
                    "batch_norm",
                    format!("{what} {} must be [C] = [{ch}] for input {}", t.shape(), self.shape()),
                ))
            }
        };
        if let Some(r) = &running {
            check("running_mean", r.mean)?;
            check("running_var", r.var)?;
        }
        for (what, p) in [("weight", weight), ("bias", bias)] {
            if let Some(p) = p {
                check(what, p)?;
            }
        }
        // [1, C, 1, …]: per-channel values broadcast over the input.
        let mut bshape: SmallVec<[usize; 4]> = SmallVec::from_elem(1, d.len());
        bshape[1] = ch;
        let per_channel = |t: &Tensor<T>| t.reshape(&bshape[..]);
        let y = if training {
            let m = self.numel() / ch.max(1);
            if m <= 1 {
                return Err(Error::bad_shape(
                    "batch_norm",
                    format!(
                        "expected more than 1 value per channel when training, got input {}",
                        self.shape()
                    ),
                ));
            }
            let axes: Vec<isize> = (0..d.len() as isize).filter(|&a| a != 1).collect();
            let mean = self.mean(&axes[..], true)?;
            let centered = self.sub(&mean)?;
            let var = centered.square().mean(&axes[..], true)?;
            if let Some(r) = running {
                // Plain arithmetic on the buffers: the running statistics are not tracked.
                let unbias = c::<T>(m as f64 / (m - 1) as f64);
                let update = |dst: &mut Tensor<T>, batch: &Tensor<T>, scale: T| {
                    for (a, &b) in dst.data_mut().iter_mut().zip(batch.data()) {
                        *a = (T::one() - momentum) * *a + momentum * (b * scale);
                    }
                };
                update(r.mean, &mean, T::one());
                update(r.var, &var, unbias);
            }
            centered.div(&var.add_scalar(eps).sqrt())?
        } else {
            let r = running.ok_or_else(|| {
                Error::bad_value(
                    "batch_norm",
                    "evaluation mode needs the running statistics (as in PyTorch)",
                )
            })?;
            let (mean, var) = (per_channel(&r.mean.detach())?, per_channel(&r.var.detach())?);
            self.sub(&mean)?.div(&var.add_scalar(eps).sqrt())?
        };
        let weight = weight.map(per_channel).transpose()?;
        let bias = bias.map(per_channel).transpose()?;
        affine(y, weight.as_ref(), bias.as_ref())
    }
}

/// `(x − mean) / √(var + eps)` over `axes` (biased variance).
#[track_caller]
fn normalize<T: Element>(x: &Tensor<T>, axes: &[isize], eps: T) -> Result<Tensor<T>> {
    let centered = x.sub(&x.mean(axes, true)?)?;
    let var = centered.square().mean(axes, true)?;
    centered.div(&var.add_scalar(eps).sqrt())
}

/// `y·γ + β`, each optional.
#[track_caller]
fn affine<T: Element>(y: Tensor<T>, weight: Option<&Tensor<T>>, bias: Option<&Tensor<T>>) -> Result<Tensor<T>> {
    let y = match weight {
        Some(w) => y.mul(w)?,
        None => y,
    };
    match bias {
        Some(b) => y.add(b),
        None => Ok(y),
    }
}
