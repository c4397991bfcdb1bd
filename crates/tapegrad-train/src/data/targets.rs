//! Targets: [`TargetData`] is what a dataset stores (class indices or float samples),
//! [`Targets`] is what one batch hands to the loss and the metrics.

use super::features::Features;
use tapegrad_core::{Element, Error, Result, Tensor};

/// The targets of a whole dataset: one class index per sample (for
/// `sparse_categorical_cross_entropy`-style losses), or float samples of any shape (for
/// regression, multi-output, one-hot or autoencoder targets).
///
/// ```
/// use tapegrad_train::{Features, TargetData};
/// let labels = TargetData::Classes { labels: vec![0, 2, 1], classes: 3 };
/// let values = TargetData::Values(Features::from_f32(vec![0.5, 1.5, 2.5], [1])?);
/// assert_eq!((labels.len(), values.len()), (3, 3));
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum TargetData {
    /// Class indices, each below `classes` (checked by [`Dataset::new`](crate::Dataset::new)).
    Classes {
        /// One label per sample.
        labels: Vec<usize>,
        /// Number of classes.
        classes: usize,
    },
    /// Float (or byte) samples; a batch of them becomes a `[B, ...sample_dims]` tensor.
    Values(Features),
}

impl TargetData {
    /// Number of samples.
    ///
    /// ```
    /// use tapegrad_train::TargetData;
    /// assert_eq!(TargetData::Classes { labels: vec![1, 0], classes: 2 }.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        match self {
            TargetData::Classes { labels, .. } => labels.len(),
            TargetData::Values(f) => f.len(),
        }
    }

    /// Whether there are no samples.
    ///
    /// ```
    /// use tapegrad_train::TargetData;
    /// assert!(TargetData::Classes { labels: vec![], classes: 2 }.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn slice(&self, range: std::ops::Range<usize>) -> TargetData {
        match self {
            TargetData::Classes { labels, classes } => {
                let hi = range.end.min(labels.len());
                let lo = range.start.min(hi);
                TargetData::Classes {
                    labels: labels[lo..hi].to_vec(),
                    classes: *classes,
                }
            }
            TargetData::Values(f) => TargetData::Values(f.slice(range)),
        }
    }
}

/// The targets of one batch, as the loss and the metrics see them: class indices or a
/// `[B, ...]` float tensor. Losses of nn plug in with a one-line closure through
/// [`Targets::classes`] or [`Targets::values`], which error clearly on the other kind.
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{loss, Reduction};
/// use tapegrad_train::Targets;
/// let out = Tensor::<f32>::from_vec(vec![2.0, 0.0, 0.0, 2.0], [2, 2])?;
/// let labels = Targets::<f32>::Classes(vec![0, 1]);
/// let ce = loss::sparse_categorical_cross_entropy_with_logits(&out, labels.classes()?, Reduction::Mean)?;
/// let values = Targets::Values(Tensor::<f32>::zeros([2, 2])?);
/// let mse = loss::mse(&out, values.values()?, Reduction::Mean)?;
/// assert_eq!(mse.item()?, 2.0);
/// assert!(labels.values().is_err() && values.classes().is_err());
/// # let _ = ce;
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub enum Targets<T: Element> {
    /// One class index per sample.
    Classes(Vec<usize>),
    /// A `[B, ...sample_dims]` tensor.
    Values(Tensor<T>),
}

impl<T: Element> Targets<T> {
    /// The class indices; errors if the targets are float values.
    ///
    /// ```
    /// use tapegrad_train::Targets;
    /// assert_eq!(Targets::<f32>::Classes(vec![3, 1]).classes()?, &[3, 1]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn classes(&self) -> Result<&[usize]> {
        match self {
            Targets::Classes(c) => Ok(c),
            Targets::Values(t) => Err(Error::bad_value(
                "Targets::classes",
                format!(
                    "the targets are float values of shape {}, not class indices: use a loss or metric for values (e.g. mse)",
                    t.shape()
                ),
            )),
        }
    }

    /// The float targets; errors if the targets are class indices.
    ///
    /// ```
    /// use tapegrad_core::Tensor;
    /// use tapegrad_train::Targets;
    /// let y = Targets::Values(Tensor::<f64>::ones([4, 1])?);
    /// assert_eq!(y.values()?.dims(), &[4, 1]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn values(&self) -> Result<&Tensor<T>> {
        match self {
            Targets::Values(t) => Ok(t),
            Targets::Classes(c) => Err(Error::bad_value(
                "Targets::values",
                format!(
                    "the targets are {} class indices, not float values: use a loss or metric for classes (e.g. sparse categorical cross-entropy)",
                    c.len()
                ),
            )),
        }
    }

    /// Number of samples in the batch.
    ///
    /// ```
    /// use tapegrad_core::Tensor;
    /// use tapegrad_train::Targets;
    /// assert_eq!(Targets::Values(Tensor::<f32>::ones([5, 2])?).len(), 5);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(c) => c.len(),
            Targets::Values(t) => t.dims().first().copied().unwrap_or(1),
        }
    }

    /// Whether the batch is empty.
    ///
    /// ```
    /// use tapegrad_train::Targets;
    /// assert!(Targets::<f32>::Classes(vec![]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
