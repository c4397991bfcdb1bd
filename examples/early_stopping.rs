//! Early stopping on a `validation_split`, like Keras's
//!
//! ```text
//! model.fit(x, y, epochs=100, validation_split=0.2,
//!           callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=3,
//!                                                    restore_best_weights=True)])
//! ```
//!
//! A Dense(784 → 256, relu) → Dense(10) network on only 1,000 MNIST images overfits within
//! a few epochs: the training loss keeps falling while the loss on the held-out last 20%
//! turns back up. Early stopping ends the run 3 epochs after the best validation loss and
//! puts back that epoch's weights, which the example checks by evaluating them again on
//! the held-out samples. A checkpoint of the best model is written beside (atomically).
//!
//! ```text
//! cargo run --release --example early_stopping -- [--data DIR]
//! ```
//!
//! Prints one line per epoch, the epoch it stopped at, and a `RESULT` line. Exits with
//! status 1 if training did not stop early or the restored weights do not reproduce the
//! best validation loss.

use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::PathBuf;
use tapegrad::prelude::*;
use tapegrad::train::{EarlyStopping, ModelCheckpoint};

const MAX_EPOCHS: usize = 100;

fn ce(out: &Tensor<f32>, y: &Targets<f32>) -> Result<Tensor<f32>> {
    loss::sparse_categorical_cross_entropy_with_logits(out, y.classes()?, Reduction::Mean)
}

fn main() {
    let mut data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--data", Some(dir)) => data = dir.into(),
            _ => {
                eprintln!("usage: early_stopping [--data DIR]");
                std::process::exit(2);
            }
        }
    }
    if let Err(e) = run(&data) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(dir: &std::path::Path) -> Result<()> {
    let data = Mnist::load(dir)?.train.take(1000);
    let mut rng = StdRng::seed_from_u64(0);
    let mut model = Sequential::<f32>::new()
        .add(Flatten)
        .add(Dense::new(784, 256, &mut rng)?.with_activation(Activation::Relu))
        .add(Dense::new(256, 10, &mut rng)?);
    let mut adam = Adam::keras_default()?;
    let best_path = std::env::temp_dir().join(format!("tapegrad-early-stopping-{}.tgc", std::process::id()));
    let mut stop = EarlyStopping::new("val_loss").patience(3).restore_best_weights(true);
    let mut checkpoint = ModelCheckpoint::new(&best_path, "val_loss");
    let config = FitConfig {
        epochs: MAX_EPOCHS,
        metrics: vec![Metric::accuracy()],
        validation: Validation::Split(0.2),
        verbosity: Verbosity::Lines,
        callbacks: vec![&mut stop, &mut checkpoint],
        ..FitConfig::default()
    };
    let history = fit(&mut model, &mut adam, ce, &data, config)?;
    let (Some(stopped), Some(best)) = (stop.stopped_epoch(), stop.best_epoch()) else {
        return Err(Error::bad_value(
            "early_stopping",
            format!("ran all {MAX_EPOCHS} epochs without stopping"),
        ));
    };
    let best_val = stop.best().unwrap_or(f64::NAN);
    println!("stopped after epoch {stopped}; best val_loss {best_val:.4} at epoch {best} (weights restored)");
    println!(
        "best model checkpoint (epoch {}) at {}",
        checkpoint.saved_epoch().unwrap_or(0),
        best_path.display()
    );
    // The restored weights must give the best epoch's validation loss again.
    let (_, held_out) = data.validation_split(0.2)?;
    let again = evaluate(&mut model, &held_out, ce, &[Metric::accuracy()], 32)?;
    let again_loss = again.get("loss").unwrap_or(f64::NAN);
    println!("restored model on the held-out 20%: val_loss {again_loss:.4}");
    std::fs::remove_file(&best_path).ok();
    let last_val = history.series("val_loss").last().copied().unwrap_or(f64::NAN);
    println!(
        "RESULT example=early_stopping stopped_epoch={stopped} best_epoch={best} best_val_loss={best_val:.4} last_val_loss={last_val:.4} restored_val_loss={again_loss:.4}"
    );
    if (again_loss - best_val).abs() > 1e-5 * best_val.abs().max(1.0) {
        return Err(Error::bad_value(
            "early_stopping",
            format!("the restored weights give val_loss {again_loss}, the best epoch had {best_val}"),
        ));
    }
    Ok(())
}
