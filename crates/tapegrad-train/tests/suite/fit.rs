//! `fit` and `evaluate` for any loss: regression with float targets, metrics (built-in and
//! user-defined), validation split and data, drop_last, and clear errors.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tapegrad_core::{Result, Tensor};
use tapegrad_nn::{loss, Dense, Module, Reduction, Sequential};
use tapegrad_optim::{Adam, Sgd};
use tapegrad_train::{
    evaluate, fit, Callback, CallbackContext, Dataset, Features, FitConfig, Metric, TargetData, Targets, Validation,
    Verbosity,
};

const W: [[f64; 3]; 2] = [[1.5, -2.0, 0.5], [0.0, 1.0, -1.0]];
const B: [f64; 2] = [0.25, -0.75];

/// y = W x + b (+ noise) for 200 samples x ∈ [−1, 1]³.
fn linear_data(noise: f64) -> Dataset {
    let mut rng = StdRng::seed_from_u64(3);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let x: [f64; 3] = [
            rng.random_range(-1.0..1.0),
            rng.random_range(-1.0..1.0),
            rng.random_range(-1.0..1.0),
        ];
        xs.extend(x);
        for (w, b) in W.iter().zip(B) {
            ys.push(w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() + b + noise * rng.random_range(-1.0..1.0));
        }
    }
    Dataset::new(
        Features::from_f64(xs, [3]).unwrap(),
        TargetData::Values(Features::from_f64(ys, [2]).unwrap()),
    )
    .unwrap()
}

fn mse(out: &Tensor<f64>, y: &Targets<f64>) -> Result<Tensor<f64>> {
    loss::mse(out, y.values()?, Reduction::Mean)
}

fn linear_model() -> Sequential<f64> {
    Sequential::new().add(Dense::new(3, 2, &mut StdRng::seed_from_u64(1)).unwrap())
}

fn quiet<'a>(epochs: usize) -> FitConfig<'a, f64> {
    FitConfig {
        epochs,
        batch_size: 16,
        verbosity: Verbosity::Silent,
        metrics: vec![Metric::mse(), Metric::mae()],
        ..FitConfig::default()
    }
}

#[test]
fn regression_recovers_w_and_b_with_mse() {
    let data = linear_data(0.0);
    let mut model = linear_model();
    let mut adam = Adam::keras(0.05).unwrap();
    let history = fit(&mut model, &mut adam, mse, &data, quiet(60)).unwrap();
    assert_eq!(history.epochs.len(), 60);
    assert_eq!(history.names(), ["loss", "mse", "mae"]);
    let loss = history.series("loss");
    assert!(
        loss[59] < 1e-6 && loss[59] < loss[0] * 1e-4,
        "{} → {}",
        loss[0],
        loss[59]
    );
    // The MSE metric is the same per-sample mean as the MSE loss.
    let (l, m) = (history.series("loss"), history.series("mse"));
    assert!(l.iter().zip(&m).all(|(a, b)| (a - b).abs() <= 1e-12 * a.max(1e-300)));
    let params = model.parameters();
    let (w, b) = (params[0].1.to_vec(), params[1].1.to_vec());
    // Dense stores W as [in, out].
    for i in 0..3 {
        for j in 0..2 {
            assert!((w[i * 2 + j] - W[j][i]).abs() < 2e-3, "W[{j}][{i}] = {}", w[i * 2 + j]);
        }
    }
    for j in 0..2 {
        assert!((b[j] - B[j]).abs() < 2e-3, "b[{j}] = {}", b[j]);
    }
}

#[test]
fn validation_split_holds_out_the_last_fraction() {
    let data = linear_data(0.1);
    let mut model = linear_model();
    let mut sgd = Sgd::pytorch(0.05).unwrap();
    let config = FitConfig {
        validation: Validation::Split(0.25),
        ..quiet(2)
    };
    let h = fit(&mut model, &mut sgd, mse, &data, config).unwrap();
    assert_eq!(h.names(), ["loss", "mse", "mae", "val_loss", "val_mse", "val_mae"]);
    // The validation values are those of the last 50 samples under the final weights.
    let (_, held_out) = data.split_at(150);
    let logs = evaluate(&mut model, &held_out, mse, &[Metric::mae()], 7).unwrap();
    assert_eq!(logs.get("loss"), h.epochs[1].logs.get("val_loss"));
    assert!((logs.get("mae").unwrap() - h.series("val_mae")[1]).abs() < 1e-12);
    // Explicit validation data gives the same numbers.
    let mut model2 = linear_model();
    let mut sgd2 = Sgd::pytorch(0.05).unwrap();
    let (train, val) = data.validation_split(0.25).unwrap();
    let config = FitConfig {
        validation: Validation::Data(&val),
        ..quiet(2)
    };
    assert_eq!(
        fit(&mut model2, &mut sgd2, mse, &train, config)
            .unwrap()
            .epochs
            .iter()
            .map(|e| &e.logs)
            .collect::<Vec<_>>(),
        h.epochs.iter().map(|e| &e.logs).collect::<Vec<_>>()
    );
    let bad = FitConfig {
        validation: Validation::Split(1.5),
        ..quiet(1)
    };
    assert!(fit(&mut model, &mut sgd, mse, &data, bad)
        .unwrap_err()
        .to_string()
        .contains("(0, 1)"));
}

/// Counts the steps of each epoch.
#[derive(Default)]
struct Steps(Vec<u64>);

impl Callback<f64> for Steps {
    fn on_epoch_begin(&mut self, _epoch: usize, _ctx: &mut CallbackContext<'_, f64>) -> Result<()> {
        self.0.push(0);
        Ok(())
    }
    fn on_batch_begin(&mut self, _step: u64, _ctx: &mut CallbackContext<'_, f64>) -> Result<()> {
        *self.0.last_mut().unwrap() += 1;
        Ok(())
    }
}

#[test]
fn drop_last_seeded_runs_and_user_metrics() {
    let data = linear_data(0.1).take(70);
    let run = |drop_last: bool| {
        let mut model = linear_model();
        let mut adam = Adam::keras(0.01).unwrap();
        let mut steps = Steps::default();
        let max_err = Metric::new("max_abs_error", |out: &Tensor<f64>, y: &Targets<f64>| {
            let y = y.values()?;
            Ok(out
                .data()
                .iter()
                .zip(y.data())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max))
        });
        let config = FitConfig {
            drop_last,
            metrics: vec![max_err],
            callbacks: vec![&mut steps],
            ..quiet(2)
        };
        let h = fit(&mut model, &mut adam, mse, &data, config).unwrap();
        (h, steps.0, model.parameters()[0].1.to_vec())
    };
    let (h, steps, w) = run(false);
    assert_eq!(steps, [5, 5]); // 70 = 4·16 + 6
    assert!(h.series("max_abs_error").iter().all(|&m| m > 0.0));
    let (h2, _, w2) = run(false);
    assert_eq!(
        (h.series("loss"), w),
        (h2.series("loss"), w2),
        "seeded runs repeat bit for bit"
    );
    assert_eq!(run(true).1, [4, 4]);
}

#[test]
fn wrong_target_kinds_and_bad_settings_are_clear_errors() {
    let data = linear_data(0.0);
    let mut model = linear_model();
    let mut sgd = Sgd::pytorch(0.1).unwrap();
    let ce = |out: &Tensor<f64>, y: &Targets<f64>| {
        loss::sparse_categorical_cross_entropy_with_logits(out, y.classes()?, Reduction::Mean)
    };
    let e = fit(&mut model, &mut sgd, ce, &data, quiet(1)).unwrap_err().to_string();
    assert!(e.contains("not class indices") && e.contains("mse"), "{e}");
    let config = FitConfig {
        metrics: vec![Metric::accuracy()],
        ..quiet(1)
    };
    let e = fit(&mut model, &mut sgd, mse, &data, config).unwrap_err().to_string();
    assert!(e.contains("Targets::classes"), "{e}");
    let zero = FitConfig {
        batch_size: 0,
        ..quiet(1)
    };
    assert!(fit(&mut model, &mut sgd, mse, &data, zero).is_err());
    let blowup = |out: &Tensor<f64>, y: &Targets<f64>| Ok(mse(out, y)?.mul_scalar(f64::INFINITY));
    let e = fit(&mut model, &mut sgd, blowup, &data, quiet(1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("epoch 1, step 1"), "{e}");
    assert!(evaluate(&mut model, &data.take(0), mse, &[], 8).is_err());
}
