//! Callbacks: early stopping (patience, min_delta, modes, restoring the best weights),
//! checkpoints of the best model, learning-rate schedules per epoch and per step, and the
//! `Callback` trait for users.

use rand::rngs::StdRng;
use rand::SeedableRng;
use tapegrad_core::{Element, Result, Tensor};
use tapegrad_nn::{checkpoint, loss, Dense, Module, Reduction, Sequential};
use tapegrad_optim::{ExponentialDecay, Sgd, StepDecay};
use tapegrad_train::{
    fit, Callback, CallbackContext, Dataset, EarlyStopping, Features, FitConfig, Logs, LrScheduler, Mode,
    ModelCheckpoint, TargetData, Targets, Verbosity,
};

fn data() -> Dataset {
    let xs: Vec<f64> = (0..32).map(|i| i as f64 / 16.0 - 1.0).collect();
    let ys: Vec<f64> = xs.iter().map(|x| 3.0 * x + 1.0).collect();
    Dataset::new(
        Features::from_f64(xs, [1]).unwrap(),
        TargetData::Values(Features::from_f64(ys, [1]).unwrap()),
    )
    .unwrap()
}

fn model() -> Sequential<f64> {
    Sequential::new().add(Dense::new(1, 1, &mut StdRng::seed_from_u64(0)).unwrap())
}

fn mse(out: &Tensor<f64>, y: &Targets<f64>) -> Result<Tensor<f64>> {
    loss::mse(out, y.values()?, Reduction::Mean)
}

/// Writes a scripted `score` into each epoch's logs and records the weights after it.
struct Script {
    scores: Vec<f64>,
    weights: Vec<Vec<f64>>,
}

impl Script {
    fn new(scores: &[f64]) -> Self {
        Script {
            scores: scores.to_vec(),
            weights: Vec::new(),
        }
    }
}

fn weights(m: &dyn Module<f64>) -> Vec<f64> {
    m.parameters().iter().flat_map(|(_, t)| t.to_vec()).collect()
}

impl Callback<f64> for Script {
    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext<'_, f64>) -> Result<()> {
        logs.set("score", self.scores[epoch - 1]);
        self.weights.push(weights(&*ctx.model));
        Ok(())
    }
}

fn config<'a>(epochs: usize, callbacks: Vec<&'a mut dyn Callback<f64>>) -> FitConfig<'a, f64> {
    FitConfig {
        epochs,
        batch_size: 8,
        verbosity: Verbosity::Silent,
        callbacks,
        ..FitConfig::default()
    }
}

#[test]
fn early_stopping_waits_patience_epochs_and_restores_the_best_weights() {
    // Best at epoch 3; epochs 4 and 5 do not beat it by more than min_delta = 0.1.
    let mut script = Script::new(&[5.0, 4.0, 3.0, 2.95, 3.5, 1.0, 1.0]);
    let mut stop = EarlyStopping::new("score")
        .patience(2)
        .min_delta(0.1)
        .restore_best_weights(true);
    let mut m = model();
    let mut sgd = Sgd::pytorch(0.01).unwrap();
    let h = fit(&mut m, &mut sgd, mse, &data(), config(7, vec![&mut script, &mut stop])).unwrap();
    assert_eq!(h.epochs.len(), 5);
    assert_eq!(
        (stop.best_epoch(), stop.stopped_epoch(), stop.best()),
        (Some(3), Some(5), Some(3.0))
    );
    assert_eq!(weights(&m), script.weights[2], "the weights of epoch 3 are back");
    assert_ne!(script.weights[2], script.weights[4]);

    // Without restoring, the last weights stay; max mode (auto for names with "acc").
    let mut script = Script::new(&[0.5, 0.7, 0.6, 0.65, 0.9]);
    let mut stop = EarlyStopping::new("score").mode(Mode::Max).patience(2);
    let mut m = model();
    let h = fit(&mut m, &mut sgd, mse, &data(), config(5, vec![&mut script, &mut stop])).unwrap();
    assert_eq!((h.epochs.len(), stop.best_epoch()), (4, Some(2)));
    assert_eq!(weights(&m), script.weights[3]);

    // Patience 0 stops at the first epoch without improvement.
    let mut script = Script::new(&[1.0, 1.0, 0.5]);
    let mut stop = EarlyStopping::new("score");
    let h = fit(
        &mut model(),
        &mut sgd,
        mse,
        &data(),
        config(3, vec![&mut script, &mut stop]),
    )
    .unwrap();
    assert_eq!(h.epochs.len(), 2);

    // A metric that is never recorded is an error naming what is.
    let mut stop = EarlyStopping::new("val_loss");
    let e = fit(&mut model(), &mut sgd, mse, &data(), config(3, vec![&mut stop]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("'val_loss'") && e.contains("the logs have: loss"), "{e}");
}

#[test]
fn checkpoint_keeps_the_best_model_on_disk() {
    let dir = std::env::temp_dir().join(format!("tapegrad-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("best.tgc");
    let mut script = Script::new(&[0.3, 0.8, 0.9, 0.85]);
    let mut ckpt = ModelCheckpoint::new(&path, "score_acc");
    struct Rename;
    impl Callback<f64> for Rename {
        fn on_epoch_end(&mut self, _e: usize, logs: &mut Logs, _c: &mut CallbackContext<'_, f64>) -> Result<()> {
            logs.set("score_acc", logs.get("score").unwrap());
            Ok(())
        }
    }
    let mut sgd = Sgd::pytorch(0.01).unwrap();
    fit(
        &mut model(),
        &mut sgd,
        mse,
        &data(),
        config(4, vec![&mut script, &mut Rename, &mut ckpt]),
    )
    .unwrap();
    assert_eq!(ckpt.saved_epoch(), Some(3), "auto mode maximises a name with 'acc'");
    let mut loaded = model();
    checkpoint::load(&mut loaded, &path).unwrap();
    assert_eq!(weights(&loaded), script.weights[2]);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file is left");
    std::fs::remove_dir_all(&dir).ok();
}

/// Records the optimizer's learning rate before every step.
#[derive(Default)]
struct Rates(Vec<f64>);

impl Callback<f64> for Rates {
    fn on_batch_begin(&mut self, _step: u64, ctx: &mut CallbackContext<'_, f64>) -> Result<()> {
        self.0.push(ctx.optimizer.learning_rate().as_f64());
        Ok(())
    }
}

#[test]
fn learning_rate_schedules_per_epoch_and_per_step() {
    let mut sched = LrScheduler::per_epoch(StepDecay::new(0.1, 0.5, 1).unwrap());
    let mut rates = Rates::default();
    let mut sgd = Sgd::pytorch(1.0).unwrap();
    let h = fit(
        &mut model(),
        &mut sgd,
        mse,
        &data(),
        config(3, vec![&mut sched, &mut rates]),
    )
    .unwrap();
    assert_eq!(h.series("learning_rate"), [0.1, 0.05, 0.025]);
    // 4 steps an epoch, each at its epoch's rate.
    assert_eq!(rates.0, [[0.1; 4], [0.05; 4], [0.025; 4]].concat());

    let mut sched = LrScheduler::per_step(ExponentialDecay::new(0.1, 0.5).unwrap());
    let mut rates = Rates::default();
    let h = fit(
        &mut model(),
        &mut sgd,
        mse,
        &data(),
        config(2, vec![&mut sched, &mut rates]),
    )
    .unwrap();
    let expected: Vec<f64> = (0..8).map(|t| 0.1 * 0.5f64.powi(t)).collect();
    assert!(
        rates.0.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-15),
        "{:?}",
        rates.0
    );
    assert_eq!(h.series("learning_rate").len(), 2);
    assert!((h.series("learning_rate")[1] - expected[7]).abs() < 1e-15);
}
