//! A Keras-like training loop: [`fit`] runs epochs of mini-batch steps with a progress
//! display and returns a [`History`]; [`evaluate`] measures loss and accuracy without
//! recording anything.
//!
//! One step is the seed's recipe: forward, loss, `backward` for ∂L/∂W, optimizer update.

use crate::data::Dataset;
use crate::history::{EpochLog, History};
use crate::progress::Progress;
use std::time::Instant;
use tapegrad_core::{no_grad, Element, Error, Result, Tensor};
use tapegrad_nn::{loss, metrics, Module, Reduction};
use tapegrad_optim::Optimizer;

/// How `fit` reports progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// A progress bar when stdout is a terminal, else one plain line per epoch.
    #[default]
    Auto,
    /// Always a progress bar (Keras `verbose=1`).
    Bar,
    /// One line per epoch (Keras `verbose=2`).
    Lines,
    /// Nothing.
    Silent,
}

/// A loss of `(model output, integer labels)` averaged over the batch, e.g. sparse
/// categorical cross-entropy. `fit` and `evaluate` weight each batch's value by its size.
pub type LossFn<T> = fn(&Tensor<T>, &[usize]) -> Result<Tensor<T>>;

/// Sparse categorical cross-entropy from logits, averaged over the batch: the loss of the
/// seed's model (softmax + cross-entropy, fused for stability).
pub fn sparse_categorical_cross_entropy_from_logits<T: Element>(
    logits: &Tensor<T>,
    labels: &[usize],
) -> Result<Tensor<T>> {
    loss::sparse_categorical_cross_entropy_with_logits(logits, labels, Reduction::Mean)
}

/// Settings of [`fit`]; the defaults are Keras's (`batch_size=32`, shuffled each epoch).
#[derive(Clone, Debug)]
pub struct FitConfig<T: Element> {
    /// Number of passes over the training data.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Reshuffle the training data before every epoch.
    pub shuffle: bool,
    /// Seed of the shuffles.
    pub seed: u64,
    /// Skip the last batch of an epoch when it is short.
    pub drop_last: bool,
    /// Progress display.
    pub verbosity: Verbosity,
    /// The loss, of the model's output and the labels.
    pub loss: LossFn<T>,
}

impl<T: Element> Default for FitConfig<T> {
    fn default() -> Self {
        FitConfig {
            epochs: 1,
            batch_size: 32,
            shuffle: true,
            seed: 0,
            drop_last: false,
            verbosity: Verbosity::Auto,
            loss: sparse_categorical_cross_entropy_from_logits::<T>,
        }
    }
}

/// Trains `model` on `train` with `optimizer`, like Keras's `model.fit`, evaluating on
/// `validation` after each epoch when given. Returns the per-epoch [`History`].
///
/// The trainable parameters are passed to the optimizer by name
/// (`trainable_parameters_mut()`), so its state stays attached to each parameter when
/// layers are frozen or unfrozen between calls.
pub fn fit<T, M, O>(
    model: &mut M,
    optimizer: &mut O,
    train: &Dataset,
    validation: Option<&Dataset>,
    config: &FitConfig<T>,
) -> Result<History>
where
    T: Element,
    M: Module<T> + ?Sized,
    O: Optimizer<T> + ?Sized,
{
    if config.epochs == 0 || config.batch_size == 0 {
        return Err(Error::bad_value(
            "fit",
            format!(
                "epochs ({}) and batch_size ({}) must be at least 1",
                config.epochs, config.batch_size
            ),
        ));
    }
    if train.is_empty() || (config.drop_last && train.len() < config.batch_size) {
        return Err(Error::bad_value(
            "fit",
            format!(
                "{} training samples give no full batch of {} (drop_last = {})",
                train.len(),
                config.batch_size,
                config.drop_last
            ),
        ));
    }
    let mut history = History::default();
    for epoch in 1..=config.epochs {
        let batches = train.batch_indices(
            config.batch_size,
            config.shuffle,
            config.seed,
            epoch as u64,
            config.drop_last,
        )?;
        let mut progress = Progress::new(config.verbosity, epoch, config.epochs, batches.len());
        model.train(true);
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0.0, 0usize);
        let start = Instant::now();
        train.for_each_batch::<T>(&batches, |step, x, y| {
            let out = model.forward(&x)?;
            let batch_loss = (config.loss)(&out, &y)?;
            let value = batch_loss.item()?.as_f64();
            if !value.is_finite() {
                return Err(Error::bad_value(
                    "fit",
                    format!("the loss became {value} at epoch {epoch}, step {}", step + 1),
                ));
            }
            let n = y.len();
            correct += metrics::accuracy(&out, &y[..])? * n as f64;
            loss_sum += value * n as f64;
            seen += n;
            // Release the graph before the update (the output now, the loss once its
            // gradients are out): while it lives it shares the parameters' buffers, and the
            // optimizer's in-place write would have to copy them.
            drop(out);
            let grads = batch_loss.backward()?;
            drop(batch_loss);
            optimizer.step(&mut model.trainable_parameters_mut(), &grads)?;
            progress.step(step + 1, loss_sum / seen as f64, correct / seen as f64);
            Ok(())
        })?;
        let seconds = start.elapsed().as_secs_f64();
        let (val_loss, val_accuracy) = match validation {
            Some(v) => {
                let (l, a) = evaluate(model, v, config.batch_size, config.loss)?;
                (Some(l), Some(a))
            }
            None => (None, None),
        };
        let log = EpochLog {
            epoch,
            loss: loss_sum / seen.max(1) as f64,
            accuracy: correct / seen.max(1) as f64,
            val_loss,
            val_accuracy,
            seconds,
        };
        progress.finish(&log);
        history.epochs.push(log);
    }
    Ok(history)
}

/// Mean loss and accuracy of `model` on `data`, in evaluation mode (Dropout off) and
/// without recording a graph, like Keras's `model.evaluate`. Restores the previous mode.
pub fn evaluate<T, M>(model: &mut M, data: &Dataset, batch_size: usize, loss: LossFn<T>) -> Result<(f64, f64)>
where
    T: Element,
    M: Module<T> + ?Sized,
{
    if data.is_empty() {
        return Err(Error::bad_value("evaluate", "the dataset is empty"));
    }
    let was_training = model.is_training();
    model.train(false);
    let result = no_grad(|| -> Result<(f64, f64)> {
        let (mut loss_sum, mut correct) = (0.0, 0.0);
        for idx in data.batch_indices(batch_size, false, 0, 0, false)? {
            let (x, y) = data.batch::<T>(&idx)?;
            let out = model.forward(&x)?;
            loss_sum += loss(&out, &y)?.item()?.as_f64() * y.len() as f64;
            correct += metrics::accuracy(&out, &y[..])? * y.len() as f64;
        }
        let n = data.len().max(1) as f64;
        Ok((loss_sum / n, correct / n))
    });
    model.train(was_training);
    result
}
