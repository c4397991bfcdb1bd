//! Loss functions, numerically stable by construction.
//!
//! Every loss computes a per-element (regression, binary) or per-sample (categorical)
//! loss `ℓ`, then reduces it with a [`Reduction`]: the mean (the default in both PyTorch
//! and Keras), the sum, or none.
//!
//! | function | per-element / per-sample loss | reference |
//! | --- | --- | --- |
//! | [`mse`] | `(p − y)²` | `torch.nn.MSELoss` |
//! | [`mae`] | `\|p − y\|` | `torch.nn.L1Loss` |
//! | [`binary_cross_entropy`] | `−[y ln p̂ + (1 − y) ln(1 − p̂)]`, `p̂ = clamp(p, ε, 1 − ε)` | Keras `binary_crossentropy` |
//! | [`binary_cross_entropy_with_logits`] | `y·softplus(−z) + (1 − y)·softplus(z)` | `torch.nn.BCEWithLogitsLoss` |
//! | [`categorical_cross_entropy`] | `−Σ_c y_c ln p̂_c`, `p̂ = clamp(p/Σp, ε, 1 − ε)` | Keras `categorical_crossentropy` |
//! | [`categorical_cross_entropy_with_logits`] | `−Σ_c y_c log_softmax(z)_c` | `torch.nn.CrossEntropyLoss` (probability targets) |
//! | [`sparse_categorical_cross_entropy`] | `−ln clamp(p_y, ε, 1 − ε)` | Keras `sparse_categorical_crossentropy` |
//! | [`sparse_categorical_cross_entropy_with_logits`] | `−log_softmax(z)_y` | `torch.nn.CrossEntropyLoss`, `F.cross_entropy` |
//!
//! ε is Keras's `backend.epsilon()` = [`EPSILON`] = 1e-7. The class axis is the last one
//! (Keras's `axis=-1`; the same as PyTorch's dim 1 for `[N, C]` scores). Shapes must match
//! exactly: no broadcasting of `[N]` against `[N, 1]`, a classic silent bug.
//!
//! One name per loss: a loss on probabilities is named after Keras's loss, and the same
//! loss on logits (pre-sigmoid or pre-softmax scores) adds `_with_logits`. PyTorch's
//! `F.cross_entropy` with class-index targets is
//! [`sparse_categorical_cross_entropy_with_logits`].

use crate::labels::{label_index, Labels};
use tapegrad_core::{Element, Error, Result, Tensor};

/// Keras's fuzz factor `backend.epsilon()`: probabilities are clamped to `[ε, 1 − ε]`
/// before their logarithm, so a confident wrong prediction costs at most `−ln ε ≈ 16.1`.
pub const EPSILON: f64 = 1e-7;

/// How the per-element or per-sample losses are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    /// Their mean (PyTorch's `reduction="mean"`, Keras's `"sum_over_batch_size"`).
    #[default]
    Mean,
    /// Their sum.
    Sum,
    /// No reduction: elementwise losses for regression and binary losses (as PyTorch),
    /// one loss per sample (shape `[...]` without the class axis) for categorical ones.
    None,
}

fn reduce<T: Element>(per: Tensor<T>, reduction: Reduction) -> Result<Tensor<T>> {
    match reduction {
        Reduction::Mean => Ok(per.mean_all()),
        Reduction::Sum => Ok(per.sum_all()),
        Reduction::None => Ok(per),
    }
}

fn same_shape<T: Element>(op: &'static str, pred: &Tensor<T>, target: &Tensor<T>) -> Result<()> {
    if pred.shape() == target.shape() {
        Ok(())
    } else {
        Err(Error::mismatch(
            op,
            pred.shape(),
            target.shape(),
            "predictions and targets of one shape",
        ))
    }
}

fn clamp_eps<T: Element>(p: &Tensor<T>) -> Result<Tensor<T>> {
    let eps = T::from_f64_lossy(EPSILON);
    p.clamp(eps, T::one() - eps)
}

/// Mean squared error: `ℓ = (p − y)²`. ∂ℓ/∂p = 2(p − y).
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::loss::{mse, Reduction};
/// let p = Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?;
/// let y = Tensor::from_vec(vec![0.0, 4.0], [2])?;
/// assert_eq!(mse(&p, &y, Reduction::Mean)?.item()?, 2.5); // (1 + 4) / 2
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn mse<T: Element>(pred: &Tensor<T>, target: &Tensor<T>, reduction: Reduction) -> Result<Tensor<T>> {
    same_shape("mse", pred, target)?;
    let d = pred.sub(target)?;
    reduce(d.mul(&d)?, reduction)
}

/// Mean absolute error: `ℓ = |p − y|`. ∂ℓ/∂p = sign(p − y) (0 at a tie, as PyTorch).
pub fn mae<T: Element>(pred: &Tensor<T>, target: &Tensor<T>, reduction: Reduction) -> Result<Tensor<T>> {
    same_shape("mae", pred, target)?;
    reduce(pred.sub(target)?.abs(), reduction)
}

/// Binary cross-entropy from probabilities, as Keras's `binary_crossentropy`:
/// `ℓ = −[y ln p̂ + (1 − y) ln(1 − p̂)]` with `p̂ = clamp(p, ε, 1 − ε)`, ε = [`EPSILON`].
///
/// The clamp keeps `ℓ ≤ −ln ε ≈ 16.1` and its gradient is zero outside `[ε, 1 − ε]`
/// (PyTorch's `BCELoss` instead clamps each log at −100; inside `[ε, 1 − ε]` the two
/// agree). Prefer [`binary_cross_entropy_with_logits`] on the pre-sigmoid values.
pub fn binary_cross_entropy<T: Element>(
    probs: &Tensor<T>,
    target: &Tensor<T>,
    reduction: Reduction,
) -> Result<Tensor<T>> {
    same_shape("binary_cross_entropy", probs, target)?;
    let p = clamp_eps(probs)?;
    let one_minus = |t: &Tensor<T>| t.neg().add_scalar(T::one());
    let pos = target.mul(&p.log())?;
    let neg = one_minus(target).mul(&one_minus(&p).log())?;
    reduce(pos.add(&neg)?.neg(), reduction)
}

/// Binary cross-entropy from logits `z` (`torch.nn.BCEWithLogitsLoss`, Keras with
/// `from_logits=True`): `ℓ = −[y ln σ(z) + (1 − y) ln(1 − σ(z))]`, computed as
/// `ℓ = y·softplus(−z) + (1 − y)·softplus(z)` (since `−ln σ(z) = softplus(−z)` and
/// `−ln(1 − σ(z)) = softplus(z)`), with `softplus(x) = max(x, 0) + ln(1 + e^−|x|)`: it
/// never overflows and never takes the log of a rounded-to-zero sigmoid.
///
/// ∂ℓ/∂z = σ(z) − y, which the tape computes as `(1 − y)·σ(z) − y·σ(−z)`: no
/// cancellation where σ(z) rounds towards `y` (at z = 30, y = 1 the gradient is
/// `−σ(−30) ≈ −9.36e-14` to a few ulps, where `σ(30) − 1` would keep only three
/// digits). The rule is built from recorded ops, so second derivatives work too.
/// ∂ℓ/∂y = −z.
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::loss::{binary_cross_entropy_with_logits, Reduction};
/// let z = Tensor::<f32>::from_vec(vec![0.0, 1e4, -1e4], [3])?;
/// let y = Tensor::from_vec(vec![1.0, 0.0, 0.0], [3])?;
/// let l = binary_cross_entropy_with_logits(&z, &y, Reduction::None)?.to_vec();
/// assert!((l[0] - 2f32.ln()).abs() < 1e-7 && l[1] == 1e4 && l[2] == 0.0);
///
/// let z = Tensor::<f64>::from_vec(vec![30.0], [1])?.requires_grad();
/// let y = Tensor::from_vec(vec![1.0], [1])?;
/// let g = binary_cross_entropy_with_logits(&z, &y, Reduction::Sum)?.backward()?.wrt(&z)?.to_vec();
/// let exact = -1.0 / (1.0 + 30f64.exp()); // σ(30) − 1 = −σ(−30)
/// assert!((g[0] - exact).abs() <= 4.0 * f64::EPSILON * exact.abs());
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn binary_cross_entropy_with_logits<T: Element>(
    logits: &Tensor<T>,
    target: &Tensor<T>,
    reduction: Reduction,
) -> Result<Tensor<T>> {
    same_shape("binary_cross_entropy_with_logits", logits, target)?;
    // Each softplus's rule is a sigmoid of its own argument, so the gradient is
    // (1 − y)·σ(z) − y·σ(−z): both terms are computed accurately, never as 1 − (1 − ε).
    let pos = target.mul(&logits.neg().softplus())?;
    let neg = target.neg().add_scalar(T::one()).mul(&logits.softplus())?;
    reduce(pos.add(&neg)?, reduction)
}

fn check_class_scores<T: Element>(op: &'static str, scores: &Tensor<T>, target: &Tensor<T>) -> Result<()> {
    same_shape(op, scores, target)?;
    if scores.ndim() == 0 {
        return Err(Error::bad_shape(
            op,
            "needs scores of shape [..., classes], got a 0-d tensor",
        ));
    }
    Ok(())
}

/// Categorical cross-entropy from probabilities with one-hot or probability targets, as
/// Keras's `categorical_crossentropy` (`from_logits=False`, the default): each row is
/// normalised to sum to 1, clamped to `[ε, 1 − ε]`, then `ℓ = −Σ_c y_c ln p̂_c` over the
/// last axis. One loss per row; see [`Reduction`].
pub fn categorical_cross_entropy<T: Element>(
    probs: &Tensor<T>,
    target: &Tensor<T>,
    reduction: Reduction,
) -> Result<Tensor<T>> {
    check_class_scores("categorical_cross_entropy", probs, target)?;
    let p = clamp_eps(&probs.div(&probs.sum([-1], true)?)?)?;
    reduce(target.mul(&p.log())?.sum([-1], false)?.neg(), reduction)
}

/// Categorical cross-entropy from logits with one-hot or probability targets:
/// `ℓ = −Σ_c y_c log_softmax(z)_c` over the last axis (PyTorch's `CrossEntropyLoss` with
/// probability targets; Keras with `from_logits=True`). The log-softmax subtracts the row
/// maximum first, so logits of ±1e4 stay finite. ∂ℓ/∂z = softmax(z)·Σ_c y_c − y.
pub fn categorical_cross_entropy_with_logits<T: Element>(
    logits: &Tensor<T>,
    target: &Tensor<T>,
    reduction: Reduction,
) -> Result<Tensor<T>> {
    check_class_scores("categorical_cross_entropy_with_logits", logits, target)?;
    reduce(target.mul(&logits.log_softmax(-1)?)?.sum([-1], false)?.neg(), reduction)
}

/// Cross-entropy from probabilities with integer labels, as Keras's
/// `sparse_categorical_crossentropy` (`from_logits=False`, the default):
/// `ℓ = −ln clamp(p_y, ε, 1 − ε)` for each row of `probs: [..., C]` and its label `y`.
///
/// `labels` holds one class index per row (a slice, or an [`IndexTensor`] of shape
/// `[...]`). Errors name the first label outside `0..C`.
///
/// [`IndexTensor`]: tapegrad_core::IndexTensor
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::loss::{sparse_categorical_cross_entropy, Reduction};
/// // Keras's documented example: losses [0.0513, 2.3026], mean 1.1769.
/// let p = Tensor::<f64>::from_vec(vec![0.05, 0.95, 0.0, 0.1, 0.8, 0.1], [2, 3])?;
/// let l = sparse_categorical_cross_entropy(&p, &[1, 2], Reduction::Mean)?.item()?;
/// assert!((l - 1.1769392).abs() < 1e-6);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn sparse_categorical_cross_entropy<T: Element, L: Labels + ?Sized>(
    probs: &Tensor<T>,
    labels: &L,
    reduction: Reduction,
) -> Result<Tensor<T>> {
    let idx = label_index("sparse_categorical_cross_entropy", probs, labels)?;
    let picked = clamp_eps(&probs.gather(-1, &idx)?)?;
    reduce(picked.log().squeeze(-1)?.neg(), reduction)
}

/// Cross-entropy from logits with integer labels (PyTorch's `CrossEntropyLoss`, Keras's
/// sparse loss with `from_logits=True`): `ℓ = −log_softmax(z)_y = logsumexp(z) − z_y`.
/// With [`Reduction::Mean`] over N rows, ∂L/∂z = (softmax(z) − onehot(y))/N.
///
/// Stable for logits of any size (the row maximum is subtracted before `exp`). Errors name
/// the first label outside `0..C`.
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::loss::{sparse_categorical_cross_entropy_with_logits, Reduction};
/// let z = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0], [1, 3])?.requires_grad();
/// let l = sparse_categorical_cross_entropy_with_logits(&z, &[2], Reduction::Mean)?;
/// // −ln(e³/(e + e² + e³)) = ln(1 + e⁻¹ + e⁻²)
/// assert!((l.item()? - 0.40760596444437994).abs() < 1e-12);
/// let g = l.backward()?.wrt(&z)?.to_vec(); // softmax − onehot
/// assert!(g[2] < 0.0 && g[0] > 0.0 && g.iter().sum::<f64>().abs() < 1e-12);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn sparse_categorical_cross_entropy_with_logits<T: Element, L: Labels + ?Sized>(
    logits: &Tensor<T>,
    labels: &L,
    reduction: Reduction,
) -> Result<Tensor<T>> {
    let idx = label_index("sparse_categorical_cross_entropy_with_logits", logits, labels)?;
    let picked = logits.log_softmax(-1)?.gather(-1, &idx)?;
    reduce(picked.squeeze(-1)?.neg(), reduction)
}
