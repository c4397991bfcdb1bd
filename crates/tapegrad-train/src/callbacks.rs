//! Callbacks of [`fit`](crate::fit()), like Keras's `keras.callbacks`: the [`Callback`]
//! trait, [`EarlyStopping`], [`ModelCheckpoint`] and [`LrScheduler`].

use crate::history::Logs;
use std::path::PathBuf;
use tapegrad_core::{Element, Error, Result, Tensor};
use tapegrad_nn::{checkpoint, Module, StateDict};
use tapegrad_optim::{LrSchedule, Optimizer};

/// What a callback may touch: the model, the optimizer, and `stop_training` (Keras's
/// `model.stop_training`), which ends `fit` after the current epoch.
pub struct CallbackContext<'a, T: Element> {
    /// The model being trained.
    pub model: &'a mut dyn Module<T>,
    /// Its optimizer.
    pub optimizer: &'a mut dyn Optimizer<T>,
    /// Set to `true` to stop after this epoch.
    pub stop_training: bool,
}

/// Hooks called by [`fit`](crate::fit()) (Keras's `keras.callbacks.Callback`); every method
/// does nothing by default. Epochs are 1-based, as in [`History`](crate::History); `step`
/// counts every optimizer step since training began, from 0. An error from a hook stops
/// `fit` with that error.
///
/// ```
/// use tapegrad_train::{Callback, CallbackContext, Logs};
/// /// Stops as soon as the training loss is below a target.
/// struct LossTarget(f64);
/// impl Callback<f32> for LossTarget {
///     fn on_epoch_end(&mut self, _epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext<'_, f32>) -> tapegrad_core::Result<()> {
///         if logs.get("loss").is_some_and(|l| l < self.0) {
///             ctx.stop_training = true;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Callback<T: Element> {
    /// Before the first epoch.
    fn on_train_begin(&mut self, _ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        Ok(())
    }

    /// Before each epoch (1-based).
    fn on_epoch_begin(&mut self, _epoch: usize, _ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        Ok(())
    }

    /// Before each optimizer step; `step` counts from 0 across epochs.
    fn on_batch_begin(&mut self, _step: u64, _ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        Ok(())
    }

    /// After each epoch and its validation, with its logs (which the callback may extend).
    fn on_epoch_end(&mut self, _epoch: usize, _logs: &mut Logs, _ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        Ok(())
    }

    /// After the last epoch (also when a callback stopped training).
    fn on_train_end(&mut self, _ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        Ok(())
    }
}

/// Whether a monitored quantity improves by going down or up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Lower is better (losses, errors).
    Min,
    /// Higher is better (accuracies).
    Max,
    /// Keras's `"auto"`: `Max` when the name contains `acc` (e.g. `val_accuracy`), else `Min`.
    #[default]
    Auto,
}

/// The monitored value of `logs`, erroring with the recorded names when it is missing.
fn monitored(op: &'static str, monitor: &str, logs: &Logs) -> Result<f64> {
    logs.get(monitor).ok_or_else(|| {
        Error::bad_value(
            op,
            format!(
                "the monitored metric '{monitor}' was not recorded; the logs have: {}",
                logs.names().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

fn resolve(mode: Mode, monitor: &str) -> Mode {
    match mode {
        Mode::Auto if monitor.contains("acc") => Mode::Max,
        Mode::Auto => Mode::Min,
        m => m,
    }
}

/// Keras's test: `current` improves on `best` by more than `min_delta`.
fn improves(mode: Mode, current: f64, best: Option<f64>, min_delta: f64) -> bool {
    match best {
        None => current.is_finite(),
        Some(b) => match mode {
            Mode::Max => current - min_delta > b,
            _ => current + min_delta < b,
        },
    }
}

/// A deep copy of the model's parameters, unaffected by later in-place updates.
fn snapshot<T: Element>(model: &dyn Module<T>) -> Result<StateDict<T>> {
    model
        .state_dict()
        .into_iter()
        .map(|(n, t)| Ok((n, Tensor::from_vec(t.to_vec(), t.shape().clone())?)))
        .collect()
}

/// Stops training when a monitored metric has stopped improving, like Keras's
/// `EarlyStopping(monitor, min_delta, patience, mode, restore_best_weights)`.
///
/// An epoch improves when `current < best − min_delta` (`Min`) or `current > best +
/// min_delta` (`Max`). After `patience` epochs in a row without improvement, training stops.
/// With `restore_best_weights`, the weights of the best epoch are put back when training
/// ends (whether it stopped early or ran out of epochs, as in Keras 3).
///
/// ```
/// use tapegrad_train::{EarlyStopping, Mode};
/// let stop = EarlyStopping::<f32>::new("val_loss").patience(3).min_delta(1e-4).restore_best_weights(true);
/// assert_eq!((stop.stopped_epoch(), stop.best_epoch()), (None, None));
/// let acc = EarlyStopping::<f32>::new("val_accuracy").mode(Mode::Max);
/// # let _ = acc;
/// ```
#[derive(Clone, Debug)]
pub struct EarlyStopping<T: Element> {
    monitor: String,
    mode: Mode,
    patience: usize,
    min_delta: f64,
    restore_best_weights: bool,
    best: Option<f64>,
    best_epoch: Option<usize>,
    wait: usize,
    stopped_epoch: Option<usize>,
    best_weights: Option<StateDict<T>>,
}

impl<T: Element> EarlyStopping<T> {
    /// Monitors `monitor` (e.g. `"val_loss"`) with Keras's defaults: mode auto,
    /// patience 0, min_delta 0, no restoring.
    ///
    /// ```
    /// let stop = tapegrad_train::EarlyStopping::<f64>::new("val_loss");
    /// assert_eq!(stop.best(), None);
    /// ```
    pub fn new(monitor: impl Into<String>) -> Self {
        EarlyStopping {
            monitor: monitor.into(),
            mode: Mode::Auto,
            patience: 0,
            min_delta: 0.0,
            restore_best_weights: false,
            best: None,
            best_epoch: None,
            wait: 0,
            stopped_epoch: None,
            best_weights: None,
        }
    }

    /// Whether lower or higher is better.
    ///
    /// ```
    /// use tapegrad_train::{EarlyStopping, Mode};
    /// let stop = EarlyStopping::<f32>::new("val_accuracy").mode(Mode::Max);
    /// # let _ = stop;
    /// ```
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Epochs without improvement before stopping.
    ///
    /// ```
    /// let stop = tapegrad_train::EarlyStopping::<f32>::new("val_loss").patience(5);
    /// # let _ = stop;
    /// ```
    pub fn patience(mut self, patience: usize) -> Self {
        self.patience = patience;
        self
    }

    /// The smallest change that counts as an improvement (its absolute value is used).
    ///
    /// ```
    /// let stop = tapegrad_train::EarlyStopping::<f32>::new("val_loss").min_delta(1e-3);
    /// # let _ = stop;
    /// ```
    pub fn min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta.abs();
        self
    }

    /// Put back the weights of the best epoch when training ends.
    ///
    /// ```
    /// let stop = tapegrad_train::EarlyStopping::<f32>::new("val_loss").restore_best_weights(true);
    /// # let _ = stop;
    /// ```
    pub fn restore_best_weights(mut self, restore: bool) -> Self {
        self.restore_best_weights = restore;
        self
    }

    /// The epoch after which training was stopped, if it was.
    ///
    /// ```
    /// assert_eq!(tapegrad_train::EarlyStopping::<f32>::new("loss").stopped_epoch(), None);
    /// ```
    pub fn stopped_epoch(&self) -> Option<usize> {
        self.stopped_epoch
    }

    /// The epoch with the best monitored value so far.
    ///
    /// ```
    /// assert_eq!(tapegrad_train::EarlyStopping::<f32>::new("loss").best_epoch(), None);
    /// ```
    pub fn best_epoch(&self) -> Option<usize> {
        self.best_epoch
    }

    /// The best monitored value so far.
    ///
    /// ```
    /// assert_eq!(tapegrad_train::EarlyStopping::<f32>::new("loss").best(), None);
    /// ```
    pub fn best(&self) -> Option<f64> {
        self.best
    }
}

impl<T: Element> Callback<T> for EarlyStopping<T> {
    fn on_train_begin(&mut self, _ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        (
            self.best,
            self.best_epoch,
            self.wait,
            self.stopped_epoch,
            self.best_weights,
        ) = (None, None, 0, None, None);
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        let current = monitored("EarlyStopping", &self.monitor, logs)?;
        let mode = resolve(self.mode, &self.monitor);
        if improves(mode, current, self.best, self.min_delta) {
            self.best = Some(current);
            self.best_epoch = Some(epoch);
            self.wait = 0;
            if self.restore_best_weights {
                self.best_weights = Some(snapshot(&*ctx.model)?);
            }
            return Ok(());
        }
        self.wait += 1;
        if self.wait >= self.patience {
            self.stopped_epoch = Some(epoch);
            ctx.stop_training = true;
        }
        Ok(())
    }

    fn on_train_end(&mut self, ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        if let Some(w) = self.best_weights.take() {
            ctx.model.load_state_dict(&w)?;
        }
        Ok(())
    }
}

/// Saves the model with nn's checkpoint writer (atomically: temporary file, fsync,
/// rename) whenever the monitored metric improves, like Keras's
/// `ModelCheckpoint(filepath, monitor, mode, save_best_only=True)`; with
/// `save_best_only(false)`, after every epoch.
///
/// ```
/// use tapegrad_train::ModelCheckpoint;
/// let ckpt = ModelCheckpoint::new("best.tgc", "val_loss");
/// assert_eq!(ckpt.saved_epoch(), None);
/// ```
#[derive(Clone, Debug)]
pub struct ModelCheckpoint {
    path: PathBuf,
    monitor: String,
    mode: Mode,
    save_best_only: bool,
    best: Option<f64>,
    saved_epoch: Option<usize>,
}

impl ModelCheckpoint {
    /// Saves to `path` when `monitor` improves (mode auto, best only).
    ///
    /// ```
    /// let ckpt = tapegrad_train::ModelCheckpoint::new("best.tgc", "val_accuracy");
    /// # let _ = ckpt;
    /// ```
    pub fn new(path: impl Into<PathBuf>, monitor: impl Into<String>) -> Self {
        ModelCheckpoint {
            path: path.into(),
            monitor: monitor.into(),
            mode: Mode::Auto,
            save_best_only: true,
            best: None,
            saved_epoch: None,
        }
    }

    /// Whether lower or higher is better.
    ///
    /// ```
    /// use tapegrad_train::{ModelCheckpoint, Mode};
    /// let ckpt = ModelCheckpoint::new("best.tgc", "val_score").mode(Mode::Max);
    /// # let _ = ckpt;
    /// ```
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// `false` saves after every epoch.
    ///
    /// ```
    /// let every_epoch = tapegrad_train::ModelCheckpoint::new("last.tgc", "loss").save_best_only(false);
    /// # let _ = every_epoch;
    /// ```
    pub fn save_best_only(mut self, best_only: bool) -> Self {
        self.save_best_only = best_only;
        self
    }

    /// The epoch whose weights the file holds, if one was saved.
    ///
    /// ```
    /// assert_eq!(tapegrad_train::ModelCheckpoint::new("m.tgc", "loss").saved_epoch(), None);
    /// ```
    pub fn saved_epoch(&self) -> Option<usize> {
        self.saved_epoch
    }
}

impl<T: Element> Callback<T> for ModelCheckpoint {
    fn on_train_begin(&mut self, _ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        (self.best, self.saved_epoch) = (None, None);
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        let current = monitored("ModelCheckpoint", &self.monitor, logs)?;
        let better = improves(resolve(self.mode, &self.monitor), current, self.best, 0.0);
        if better {
            self.best = Some(current);
        }
        if better || !self.save_best_only {
            checkpoint::save(&*ctx.model, &self.path)?;
            self.saved_epoch = Some(epoch);
        }
        Ok(())
    }
}

/// Sets the learning rate from an [`LrSchedule`] of tapegrad-optim, like Keras's
/// `LearningRateScheduler`: per epoch (η at epoch `e` is `schedule.lr(e − 1)`, set before
/// the epoch) or per step (`schedule.lr(step)` before each step). Records the rate of the
/// epoch's last step as `learning_rate` in the logs.
///
/// ```
/// use tapegrad_optim::StepDecay;
/// use tapegrad_train::LrScheduler;
/// let per_epoch = LrScheduler::per_epoch(StepDecay::new(0.1, 0.5, 10)?);
/// let per_step = LrScheduler::per_step(StepDecay::new(0.1, 0.5, 1000)?);
/// # let _ = (per_epoch, per_step);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct LrScheduler<S: LrSchedule> {
    schedule: S,
    per_step: bool,
    last_t: u64,
}

impl<S: LrSchedule> LrScheduler<S> {
    /// Applies `schedule` once per epoch, with `t` = the 0-based epoch.
    ///
    /// ```
    /// let s = tapegrad_train::LrScheduler::per_epoch(tapegrad_optim::ExponentialDecay::new(0.01, 0.9)?);
    /// # let _ = s;
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn per_epoch(schedule: S) -> Self {
        LrScheduler {
            schedule,
            per_step: false,
            last_t: 0,
        }
    }

    /// Applies `schedule` before every step, with `t` = the 0-based step count.
    ///
    /// ```
    /// let s = tapegrad_train::LrScheduler::per_step(tapegrad_optim::CosineAnnealing::new(0.01, 0.0, 1000)?);
    /// # let _ = s;
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn per_step(schedule: S) -> Self {
        LrScheduler {
            schedule,
            per_step: true,
            last_t: 0,
        }
    }
}

impl<T: Element, S: LrSchedule> Callback<T> for LrScheduler<S> {
    fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        if !self.per_step {
            self.last_t = epoch as u64 - 1;
            self.schedule.apply(ctx.optimizer, self.last_t)?;
        }
        Ok(())
    }

    fn on_batch_begin(&mut self, step: u64, ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        if self.per_step {
            self.last_t = step;
            self.schedule.apply(ctx.optimizer, step)?;
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, _epoch: usize, logs: &mut Logs, _ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        logs.set("learning_rate", self.schedule.lr(self.last_t));
        Ok(())
    }
}
