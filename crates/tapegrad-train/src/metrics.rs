//! [`Metric`]: a named function of a batch's (output, targets), averaged over the samples
//! of an epoch by [`fit`](crate::fit()) and [`evaluate`](crate::evaluate), like the
//! `metrics=[...]` of Keras's `compile`.

use crate::data::targets::Targets;
use std::fmt;
use tapegrad_core::{Element, Error, Result, Tensor};
use tapegrad_nn::metrics;

type MetricFn<T> = dyn Fn(&Tensor<T>, &Targets<T>) -> Result<f64>;

/// A named metric of `(model output, targets)` giving the batch's mean over its samples.
/// `fit` and `evaluate` weight each batch's value by its sample count, so the epoch value
/// is the per-sample mean (Keras's `MeanMetricWrapper`).
///
/// The value is computed from the output's data, without recording a graph.
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_train::{Metric, Targets};
/// let out = Tensor::<f32>::from_vec(vec![0.9, 0.1, 0.2, 0.8], [2, 2])?;
/// assert_eq!(Metric::accuracy().compute(&out, &Targets::Classes(vec![0, 0]))?, 0.5);
/// // A metric of your own: the largest absolute error in the batch.
/// let max_err = Metric::new("max_error", |out: &Tensor<f32>, y: &Targets<f32>| {
///     let y = y.values()?;
///     Ok(out.data().iter().zip(y.data()).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max))
/// });
/// let y = Targets::Values(Tensor::<f32>::zeros([2, 2])?);
/// assert!((max_err.compute(&out, &y)? - 0.9).abs() < 1e-6);
/// assert_eq!(max_err.name(), "max_error");
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub struct Metric<T: Element> {
    name: String,
    f: Box<MetricFn<T>>,
}

impl<T: Element> fmt::Debug for Metric<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metric").field("name", &self.name).finish()
    }
}

impl<T: Element> Metric<T> {
    /// A metric named `name` (the key in [`History`](crate::History); validation values
    /// get `val_` before it) computed by `f`.
    ///
    /// ```
    /// use tapegrad_core::Tensor;
    /// use tapegrad_train::{Metric, Targets};
    /// let zero = Metric::new("zero", |_: &Tensor<f64>, _: &Targets<f64>| Ok(0.0));
    /// assert_eq!(zero.name(), "zero");
    /// ```
    pub fn new(name: impl Into<String>, f: impl Fn(&Tensor<T>, &Targets<T>) -> Result<f64> + 'static) -> Self {
        Metric {
            name: name.into(),
            f: Box::new(f),
        }
    }

    /// The metric's name.
    ///
    /// ```
    /// assert_eq!(tapegrad_train::Metric::<f32>::mae().name(), "mae");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The metric on one batch.
    ///
    /// ```
    /// use tapegrad_core::Tensor;
    /// use tapegrad_train::{Metric, Targets};
    /// let y = Targets::Values(Tensor::<f32>::zeros([2, 1])?);
    /// assert_eq!(Metric::mse().compute(&Tensor::<f32>::ones([2, 1])?, &y)?, 1.0);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn compute(&self, output: &Tensor<T>, targets: &Targets<T>) -> Result<f64> {
        (self.f)(output, targets)
    }

    /// `accuracy`: the fraction of samples whose output argmax (last axis) is the class
    /// label, Keras's `sparse_categorical_accuracy` (which Keras logs as `accuracy` for a
    /// sparse loss). Needs class targets.
    ///
    /// ```
    /// use tapegrad_core::Tensor;
    /// use tapegrad_train::{Metric, Targets};
    /// let out = Tensor::<f32>::from_vec(vec![1.0, 3.0, 2.0, 0.0], [2, 2])?;
    /// assert_eq!(Metric::accuracy().compute(&out, &Targets::Classes(vec![1, 0]))?, 1.0);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn accuracy() -> Self {
        Metric::new("accuracy", |out: &Tensor<T>, y: &Targets<T>| {
            metrics::accuracy(out, y.classes()?)
        })
    }

    /// `categorical_accuracy`: the fraction of samples whose output argmax equals the
    /// argmax of the one-hot (or probability) target, like Keras's. Needs value targets.
    ///
    /// ```
    /// use tapegrad_core::Tensor;
    /// use tapegrad_train::{Metric, Targets};
    /// let out = Tensor::<f32>::from_vec(vec![1.0, 3.0, 2.0, 0.0], [2, 2])?;
    /// let y = Targets::Values(Tensor::<f32>::from_vec(vec![0.0, 1.0, 0.0, 1.0], [2, 2])?);
    /// assert_eq!(Metric::categorical_accuracy().compute(&out, &y)?, 0.5);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn categorical_accuracy() -> Self {
        Metric::new("categorical_accuracy", |out: &Tensor<T>, y: &Targets<T>| {
            let y = y.values()?;
            check_same("categorical_accuracy", out, y)?;
            let labels: Vec<usize> = y.argmax(-1, false)?.data().to_vec();
            metrics::accuracy(out, &labels[..])
        })
    }

    /// `binary_accuracy`: the fraction of elements where `output > threshold` agrees with
    /// `target > 0.5`, like Keras's (threshold 0.5 for probabilities, 0 for logits).
    ///
    /// ```
    /// use tapegrad_core::Tensor;
    /// use tapegrad_train::{Metric, Targets};
    /// let out = Tensor::<f32>::from_vec(vec![0.7, 0.2, 0.4], [3, 1])?;
    /// let y = Targets::Values(Tensor::<f32>::from_vec(vec![1.0, 0.0, 1.0], [3, 1])?);
    /// assert!((Metric::binary_accuracy(0.5).compute(&out, &y)? - 2.0 / 3.0).abs() < 1e-12);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn binary_accuracy(threshold: f64) -> Self {
        Metric::new("binary_accuracy", move |out: &Tensor<T>, y: &Targets<T>| {
            metrics::binary_accuracy(out, y.values()?, threshold)
        })
    }

    /// `mse`: mean squared error `mean((output − target)²)` over all elements (Keras's
    /// `mean_squared_error`). Needs value targets of the output's shape.
    ///
    /// ```
    /// use tapegrad_core::Tensor;
    /// use tapegrad_train::{Metric, Targets};
    /// let out = Tensor::<f32>::from_vec(vec![1.0, 3.0], [2, 1])?;
    /// let y = Targets::Values(Tensor::<f32>::zeros([2, 1])?);
    /// assert_eq!(Metric::mse().compute(&out, &y)?, 5.0);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn mse() -> Self {
        Metric::new("mse", |out: &Tensor<T>, y: &Targets<T>| {
            elementwise_mean("mse", out, y.values()?, |d| d * d)
        })
    }

    /// `mae`: mean absolute error `mean(|output − target|)` over all elements (Keras's
    /// `mean_absolute_error`). Needs value targets of the output's shape.
    ///
    /// ```
    /// use tapegrad_core::Tensor;
    /// use tapegrad_train::{Metric, Targets};
    /// let out = Tensor::<f32>::from_vec(vec![1.0, -3.0], [2, 1])?;
    /// let y = Targets::Values(Tensor::<f32>::zeros([2, 1])?);
    /// assert_eq!(Metric::mae().compute(&out, &y)?, 2.0);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn mae() -> Self {
        Metric::new("mae", |out: &Tensor<T>, y: &Targets<T>| {
            elementwise_mean("mae", out, y.values()?, f64::abs)
        })
    }
}

fn check_same<T: Element>(op: &'static str, out: &Tensor<T>, y: &Tensor<T>) -> Result<()> {
    if out.shape() != y.shape() {
        return Err(Error::mismatch(
            op,
            out.shape(),
            y.shape(),
            "outputs and targets of one shape",
        ));
    }
    if out.numel() == 0 {
        return Err(Error::bad_shape(op, "an empty batch has no mean"));
    }
    Ok(())
}

/// `mean(g(output − target))` over all elements, in `f64`.
fn elementwise_mean<T: Element>(op: &'static str, out: &Tensor<T>, y: &Tensor<T>, g: fn(f64) -> f64) -> Result<f64> {
    check_same(op, out, y)?;
    let sum: f64 = out
        .data()
        .iter()
        .zip(y.data())
        .map(|(a, b)| g(a.as_f64() - b.as_f64()))
        .sum();
    Ok(sum / out.numel() as f64)
}
