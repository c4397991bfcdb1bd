//! A Keras-like training loop: [`fit`] runs epochs of mini-batch steps with a progress
//! display, metrics, validation and callbacks, and returns a [`History`]; [`evaluate`]
//! measures the loss and metrics without recording anything.
//!
//! One step is the seed's recipe: forward, loss, `backward` for ∂L/∂W, optimizer update.

use crate::callbacks::{Callback, CallbackContext};
use crate::data::targets::Targets;
use crate::data::Dataset;
use crate::history::{EpochLog, History, Logs};
use crate::metrics::Metric;
use crate::progress::Progress;
use std::time::Instant;
use tapegrad_core::{no_grad, Element, Error, Gradients, Result, Tensor};
use tapegrad_nn::Module;
use tapegrad_optim::Optimizer;

#[cfg(feature = "mpi")]
use crate::distributed::Distributed;
/// Without the `mpi` feature there is no distributed context: an uninhabited type, so
/// `Option<&Distributed>` is always `None` and the compiler drops every branch on it.
#[cfg(not(feature = "mpi"))]
enum Distributed {}
#[cfg(not(feature = "mpi"))]
impl Distributed {
    fn world_size(&self) -> usize {
        match *self {}
    }
    fn is_root(&self) -> bool {
        match *self {}
    }
    fn shard(&self, _: &[Vec<usize>]) -> Vec<Vec<usize>> {
        match *self {}
    }
    fn all_reduce_sum(&self, _: &[f64]) -> Vec<f64> {
        match *self {}
    }
    #[allow(clippy::type_complexity)]
    fn average_gradients<T: Element>(
        &self,
        _: &[(String, &mut Tensor<T>)],
        _: &Gradients<T>,
        _: usize,
    ) -> Result<Vec<Option<Tensor<T>>>> {
        match *self {}
    }
}

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

/// Where `fit` gets validation data from.
#[derive(Clone, Copy, Debug, Default)]
pub enum Validation<'a> {
    /// No validation.
    #[default]
    None,
    /// Keras's `validation_split`: hold out the LAST fraction of the training samples
    /// (taken before any shuffling; see [`Dataset::validation_split`]).
    Split(f64),
    /// Keras's `validation_data`: this dataset.
    Data(&'a Dataset),
}

/// Settings of [`fit`]; the defaults are Keras's (`epochs=1`, `batch_size=32`, shuffled
/// each epoch, no metrics, no validation, no callbacks).
///
/// ```
/// use tapegrad_train::{FitConfig, Metric, Validation};
/// let config = FitConfig::<f32> {
///     epochs: 5,
///     metrics: vec![Metric::accuracy()],
///     validation: Validation::Split(0.1),
///     ..FitConfig::default()
/// };
/// assert_eq!(config.batch_size, 32);
/// ```
pub struct FitConfig<'a, T: Element> {
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
    /// Metrics recorded per epoch beside the loss (and as `val_…` on validation data).
    pub metrics: Vec<Metric<T>>,
    /// Validation data, if any.
    pub validation: Validation<'a>,
    /// Callbacks, called in order; they stay the caller's, to read after `fit`.
    pub callbacks: Vec<&'a mut dyn Callback<T>>,
    /// Data-parallel training on MPI (feature `mpi`; PyTorch's DDP): each rank trains on its
    /// shard of every global batch of `batch_size`, gradients are averaged across ranks, and
    /// the logs hold the global figures. See [`crate::distributed`].
    #[cfg(feature = "mpi")]
    pub distributed: Option<&'a Distributed>,
}

impl<T: Element> Default for FitConfig<'_, T> {
    fn default() -> Self {
        FitConfig {
            epochs: 1,
            batch_size: 32,
            shuffle: true,
            seed: 0,
            drop_last: false,
            verbosity: Verbosity::Auto,
            metrics: Vec::new(),
            validation: Validation::None,
            callbacks: Vec::new(),
            #[cfg(feature = "mpi")]
            distributed: None,
        }
    }
}

/// The one place `fit` updates the parameters: the trainable ones, by name
/// (`trainable_parameters_mut()`), so the optimizer's state stays attached to each
/// parameter when layers are frozen or unfrozen between calls. Distributed, the gradients
/// of this rank's `samples` are first averaged with the other ranks'.
fn optimizer_step<T, M, O>(
    model: &mut M,
    optimizer: &mut O,
    grads: &Gradients<T>,
    distributed: Option<&Distributed>,
    samples: usize,
) -> Result<()>
where
    T: Element,
    M: Module<T> + ?Sized,
    O: Optimizer<T> + ?Sized,
{
    let mut params = model.trainable_parameters_mut();
    match distributed {
        None => optimizer.step(&mut params, grads),
        Some(d) => {
            let mean = d.average_gradients(&params, grads, samples)?;
            optimizer.step_with_grads(&mut params, &mean)
        }
    }
}

/// Calls `hook` on every callback with a fresh context, and reports whether one asked to
/// stop.
fn each_callback<T: Element>(
    callbacks: &mut [&mut dyn Callback<T>],
    model: &mut dyn Module<T>,
    optimizer: &mut dyn Optimizer<T>,
    mut hook: impl FnMut(&mut dyn Callback<T>, &mut CallbackContext<'_, T>) -> Result<()>,
) -> Result<bool> {
    let mut ctx = CallbackContext {
        model,
        optimizer,
        stop_training: false,
    };
    for cb in callbacks.iter_mut() {
        hook(&mut **cb, &mut ctx)?;
    }
    Ok(ctx.stop_training)
}

/// Trains `model` on `train` with `optimizer` and `loss`, like Keras's `model.fit`
/// (after `compile(optimizer, loss, metrics)`), and returns the per-epoch [`History`].
///
/// `loss(output, targets)` must return the batch's mean loss (e.g. `Reduction::Mean`);
/// epoch values weight each batch by its size, so they are per-sample means. Each epoch
/// records `loss` and every metric, then, with validation, `val_loss` and `val_<metric>`
/// from [`evaluate`], then lets the callbacks act (early stopping, checkpoints,
/// learning-rate schedules, …). Training stops early when a callback sets
/// `stop_training`. The model is left in training mode.
///
/// Errors on zero epochs or batch size, no full batch, a non-finite loss (naming the
/// epoch and step), a bad validation split, or any error of the model, loss, metrics,
/// optimizer or callbacks. Distributed (`config.distributed`), also errors when
/// `batch_size` is smaller than the number of ranks, and an error on any rank aborts the
/// whole MPI job (see the `distributed` module).
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use tapegrad_nn::{loss, Dense, Reduction, Sequential};
/// use tapegrad_optim::Adam;
/// use tapegrad_train::{fit, Dataset, Features, FitConfig, Metric, TargetData, Verbosity};
/// // y = 2x − 1 on 64 points.
/// let xs: Vec<f32> = (0..64).map(|i| i as f32 / 32.0 - 1.0).collect();
/// let ys: Vec<f32> = xs.iter().map(|x| 2.0 * x - 1.0).collect();
/// let data = Dataset::new(Features::from_f32(xs, [1])?, TargetData::Values(Features::from_f32(ys, [1])?))?;
/// let mut model = Sequential::<f32>::new().add(Dense::new(1, 1, &mut StdRng::seed_from_u64(0))?);
/// let mut adam = Adam::keras(0.1)?;
/// let config = FitConfig { epochs: 30, batch_size: 16, verbosity: Verbosity::Silent,
///                          metrics: vec![Metric::mae()], ..FitConfig::default() };
/// let history = fit(&mut model, &mut adam, |out, y| loss::mse(out, y.values()?, Reduction::Mean), &data, config)?;
/// assert!(history.series("mae").last().unwrap() < &0.05);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn fit<T, M, O, L>(
    model: &mut M,
    optimizer: &mut O,
    loss: L,
    train: &Dataset,
    config: FitConfig<'_, T>,
) -> Result<History>
where
    T: Element,
    M: Module<T>,
    O: Optimizer<T>,
    L: Fn(&Tensor<T>, &Targets<T>) -> Result<Tensor<T>>,
{
    #[cfg(feature = "mpi")]
    if let Some(d) = config.distributed {
        return d.or_abort(fit_loop(model, optimizer, loss, train, config));
    }
    fit_loop(model, optimizer, loss, train, config)
}

/// The body of [`fit`].
fn fit_loop<T, M, O, L>(
    model: &mut M,
    optimizer: &mut O,
    loss: L,
    train: &Dataset,
    config: FitConfig<'_, T>,
) -> Result<History>
where
    T: Element,
    M: Module<T>,
    O: Optimizer<T>,
    L: Fn(&Tensor<T>, &Targets<T>) -> Result<Tensor<T>>,
{
    let FitConfig {
        epochs,
        batch_size,
        shuffle,
        seed,
        drop_last,
        verbosity,
        metrics,
        validation,
        mut callbacks,
        #[cfg(feature = "mpi")]
        distributed,
    } = config;
    #[cfg(not(feature = "mpi"))]
    let distributed: Option<&Distributed> = None;
    if epochs == 0 || batch_size == 0 {
        return Err(Error::bad_value(
            "fit",
            format!("epochs ({epochs}) and batch_size ({batch_size}) must be at least 1"),
        ));
    }
    if let Some(d) = distributed.filter(|d| batch_size < d.world_size()) {
        return Err(Error::bad_value(
            "fit",
            format!("batch_size ({batch_size}) is smaller than the {} ranks", d.world_size()),
        ));
    }
    // Rank 0 alone reports progress.
    let verbosity = match distributed {
        Some(d) if !d.is_root() => Verbosity::Silent,
        _ => verbosity,
    };
    let split;
    let (train, validation) = match validation {
        Validation::None => (train, None),
        Validation::Data(v) => (train, Some(v)),
        Validation::Split(f) => {
            split = train.validation_split(f)?;
            (&split.0, Some(&split.1))
        }
    };
    if train.is_empty() || (drop_last && train.len() < batch_size) {
        return Err(Error::bad_value(
            "fit",
            format!(
                "{} training samples give no full batch of {batch_size} (drop_last = {drop_last})",
                train.len()
            ),
        ));
    }
    let names: Vec<&str> = std::iter::once("loss")
        .chain(metrics.iter().map(Metric::name))
        .collect();
    let mut history = History::default();
    let mut global_step = 0u64;
    each_callback(&mut callbacks, model, optimizer, |cb, ctx| cb.on_train_begin(ctx))?;
    for epoch in 1..=epochs {
        each_callback(&mut callbacks, model, optimizer, |cb, ctx| {
            cb.on_epoch_begin(epoch, ctx)
        })?;
        let mut batches = train.batch_indices(batch_size, shuffle, seed, epoch as u64, drop_last)?;
        if let Some(d) = distributed {
            batches = d.shard(&batches);
        }
        let mut progress = Progress::new(verbosity, epoch, epochs, batches.len(), &names);
        model.train(true);
        // sums[0] is the loss, sums[1 + i] metric i, each weighted by batch size.
        let mut sums = vec![0.0; names.len()];
        let mut seen = 0usize;
        let start = Instant::now();
        train.for_each_batch::<T>(&batches, |step, batch| {
            if !callbacks.is_empty() {
                each_callback(&mut callbacks, model, optimizer, |cb, ctx| {
                    cb.on_batch_begin(global_step, ctx)
                })?;
            }
            let out = model.forward(&batch.x)?;
            let batch_loss = loss(&out, &batch.y)?;
            let value = batch_loss.item()?.as_f64();
            if !value.is_finite() {
                return Err(Error::bad_value(
                    "fit",
                    format!("the loss became {value} at epoch {epoch}, step {}", step + 1),
                ));
            }
            let n = batch.y.len() as f64;
            sums[0] += value * n;
            for (s, m) in sums[1..].iter_mut().zip(&metrics) {
                *s += m.compute(&out, &batch.y)? * n;
            }
            seen += batch.y.len();
            // Release the graph before the update (the output now, the loss once its
            // gradients are out): while it lives it shares the parameters' buffers, and the
            // optimizer's in-place write would have to copy them.
            drop(out);
            let grads = batch_loss.backward()?;
            drop(batch_loss);
            optimizer_step(model, optimizer, &grads, distributed, batch.y.len())?;
            global_step += 1;
            progress.step(step + 1, &sums, seen);
            Ok(())
        })?;
        if let Some(d) = distributed {
            let mut local = sums.clone();
            local.push(seen as f64);
            let mut global = d.all_reduce_sum(&local);
            seen = global.pop().map_or(0, |n| n as usize);
            sums = global;
        }
        let seconds = start.elapsed().as_secs_f64();
        let mut logs = Logs::default();
        for (name, s) in names.iter().zip(&sums) {
            logs.set(*name, s / seen.max(1) as f64);
        }
        if let Some(v) = validation {
            for (name, value) in evaluate(model, v, &loss, &metrics, batch_size)?.iter() {
                logs.set(format!("val_{name}"), value);
            }
        }
        let stop = each_callback(&mut callbacks, model, optimizer, |cb, ctx| {
            cb.on_epoch_end(epoch, &mut logs, ctx)
        })?;
        let log = EpochLog { epoch, seconds, logs };
        progress.finish(&log);
        history.epochs.push(log);
        if stop {
            break;
        }
    }
    each_callback(&mut callbacks, model, optimizer, |cb, ctx| cb.on_train_end(ctx))?;
    Ok(history)
}

/// The mean loss and metrics of `model` on `data` (`loss` first, then each metric by
/// name), in evaluation mode (Dropout off) and without recording a graph, like Keras's
/// `model.evaluate(..., return_dict=True)`. Restores the previous mode.
///
/// Errors on an empty dataset, a zero batch size, or an error of the model, loss or
/// metrics.
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{loss, Module, Reduction};
/// use tapegrad_train::{evaluate, Dataset, Features, Metric, TargetData};
/// /// Predicts 0 for everything.
/// struct Zero;
/// impl Module<f64> for Zero {
///     fn forward(&mut self, x: &Tensor<f64>) -> tapegrad_core::Result<Tensor<f64>> { Ok(x.zeros_like()) }
/// }
/// let data = Dataset::new(Features::from_f64(vec![1.0, -3.0], [1])?,
///                         TargetData::Values(Features::from_f64(vec![1.0, -3.0], [1])?))?;
/// let logs = evaluate(&mut Zero, &data, |o, y| loss::mse(o, y.values()?, Reduction::Mean), &[Metric::mae()], 1)?;
/// assert_eq!((logs.get("loss"), logs.get("mae")), (Some(5.0), Some(2.0)));
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn evaluate<T, M, L>(
    model: &mut M,
    data: &Dataset,
    loss: L,
    metrics: &[Metric<T>],
    batch_size: usize,
) -> Result<Logs>
where
    T: Element,
    M: Module<T> + ?Sized,
    L: Fn(&Tensor<T>, &Targets<T>) -> Result<Tensor<T>>,
{
    if data.is_empty() {
        return Err(Error::bad_value("evaluate", "the dataset is empty"));
    }
    let was_training = model.is_training();
    model.train(false);
    let result = no_grad(|| -> Result<Logs> {
        let mut sums = vec![0.0; 1 + metrics.len()];
        let batches = data.batch_indices(batch_size, false, 0, 0, false)?;
        data.for_each_batch::<T>(&batches, |_, batch| {
            let out = model.forward(&batch.x)?;
            let n = batch.y.len() as f64;
            sums[0] += loss(&out, &batch.y)?.item()?.as_f64() * n;
            for (s, m) in sums[1..].iter_mut().zip(metrics) {
                *s += m.compute(&out, &batch.y)? * n;
            }
            Ok(())
        })?;
        let n = data.len() as f64;
        let mut logs = Logs::default();
        logs.set("loss", sums[0] / n);
        for (m, s) in metrics.iter().zip(&sums[1..]) {
            logs.set(m.name(), s / n);
        }
        Ok(logs)
    });
    model.train(was_training);
    result
}
