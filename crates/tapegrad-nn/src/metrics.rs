//! Metrics: [`accuracy`], [`binary_accuracy`] and [`RunningMean`].

use crate::labels::{label_index, Labels};
use tapegrad_core::{Element, Error, Result, Tensor};

/// The fraction of rows of `scores: [..., C]` (logits or probabilities: the argmax is the
/// same) whose argmax over the last axis equals the label, like Keras's
/// `sparse_categorical_accuracy`. Ties go to the first maximal class.
///
/// Errors on an empty batch, a label count that does not match the rows, or a label
/// outside `0..C`.
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::metrics::accuracy;
/// let logits = Tensor::<f32>::from_vec(vec![2.0, 1.0, 0.0, 3.0, 5.0, 1.0], [3, 2])?;
/// assert_eq!(accuracy(&logits, &[0, 1, 1])?, 2.0 / 3.0);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn accuracy<T: Element, L: Labels + ?Sized>(scores: &Tensor<T>, labels: &L) -> Result<f64> {
    label_index("accuracy", scores, labels)?;
    let ys = labels.as_labels();
    if ys.is_empty() {
        return Err(Error::bad_shape("accuracy", "an empty batch has no accuracy"));
    }
    let pred = scores.argmax(-1, false)?;
    let hits = pred.data().iter().zip(ys).filter(|(p, y)| p == y).count();
    Ok(hits as f64 / ys.len() as f64)
}

/// The fraction of elements where `prediction > threshold` agrees with `target > 0.5`,
/// like Keras's `binary_accuracy` (threshold 0.5 for probabilities, 0 for logits).
pub fn binary_accuracy<T: Element>(pred: &Tensor<T>, target: &Tensor<T>, threshold: f64) -> Result<f64> {
    if pred.shape() != target.shape() {
        return Err(Error::mismatch(
            "binary_accuracy",
            pred.shape(),
            target.shape(),
            "predictions and targets of one shape",
        ));
    }
    if pred.numel() == 0 {
        return Err(Error::bad_shape("binary_accuracy", "an empty batch has no accuracy"));
    }
    let hits = pred
        .data()
        .iter()
        .zip(target.data())
        .filter(|(p, y)| (p.as_f64() > threshold) == (y.as_f64() > 0.5))
        .count();
    Ok(hits as f64 / pred.numel() as f64)
}

/// A weighted running mean, for the loss or a metric over an epoch (Keras's
/// `metrics.Mean`).
///
/// Updating with a batch's mean loss and its size gives the per-sample mean over the
/// epoch even when the last batch is smaller.
///
/// ```
/// use tapegrad_nn::metrics::RunningMean;
/// let mut m = RunningMean::new();
/// m.update_weighted(1.0, 3.0); // a batch of 3 with mean loss 1
/// m.update_weighted(4.0, 1.0); // a batch of 1 with loss 4
/// assert_eq!(m.mean(), Some(1.75));
/// m.reset();
/// assert_eq!(m.mean(), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunningMean {
    sum: f64,
    weight: f64,
}

impl RunningMean {
    /// An empty mean.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value with weight 1.
    pub fn update(&mut self, value: f64) {
        self.update_weighted(value, 1.0);
    }

    /// Adds `value` with `weight` (e.g. a batch mean and the batch size).
    pub fn update_weighted(&mut self, value: f64, weight: f64) {
        self.sum += value * weight;
        self.weight += weight;
    }

    /// The weighted mean so far, `None` before any (positively weighted) update.
    pub fn mean(&self) -> Option<f64> {
        (self.weight > 0.0).then(|| self.sum / self.weight)
    }

    /// Total weight seen (the number of values for unweighted updates).
    pub fn count(&self) -> f64 {
        self.weight
    }

    /// Forgets everything (start of a new epoch).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}
