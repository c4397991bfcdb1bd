//! Regression with `fit`: a linear map with two outputs, y = W·x + b + noise, learnt from a
//! CSV file with mean squared error, like Keras's
//!
//! ```text
//! model = keras.Sequential([keras.layers.Dense(2)])
//! model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse", metrics=["mae"])
//! model.fit(x, y, batch_size=32, epochs=40, validation_split=0.2)
//! ```
//!
//! The example writes 1,000 noisy samples of a known W: [2, 3] and b: [2] as a CSV table
//! (columns `x1,x2,x3,y1,y2`), reads it back as a dataset whose targets are the columns
//! `y1` and `y2`, fits a Dense(3 → 2) layer, and prints the fitted W and b beside the true
//! ones and a `RESULT` line.
//!
//! ```text
//! cargo run --release --example regression
//! ```
//!
//! Exits with status 1 if a fitted parameter is more than 0.02 from the true one (the
//! noise's standard error over 800 samples is about 0.002).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt::Write as _;
use tapegrad::prelude::*;
use tapegrad::train::{CsvOptions, Validation};

const TRUE_W: [[f64; 3]; 2] = [[2.0, -3.4, 0.5], [-1.0, 0.0, 1.5]];
const TRUE_B: [f64; 2] = [4.2, -0.7];
const SAMPLES: usize = 1000;
const NOISE: f64 = 0.05;
const TOLERANCE: f64 = 0.02;

/// The data as CSV text: `x1,x2,x3,y1,y2`, x ~ U(−1, 1)³, y = W·x + b + ε with ε uniform
/// of standard deviation NOISE.
fn table(seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let half_width = NOISE * 3f64.sqrt();
    let mut csv = String::from("x1,x2,x3,y1,y2\n");
    for _ in 0..SAMPLES {
        let x: [f64; 3] = std::array::from_fn(|_| rng.random_range(-1.0..1.0));
        let y: Vec<f64> = TRUE_W
            .iter()
            .zip(TRUE_B)
            .map(|(w, b)| {
                w.iter().zip(&x).map(|(w, x)| w * x).sum::<f64>() + b + rng.random_range(-half_width..half_width)
            })
            .collect();
        let _ = writeln!(csv, "{},{},{},{},{}", x[0], x[1], x[2], y[0], y[1]);
    }
    csv
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let path = std::env::temp_dir().join(format!("tapegrad-regression-{}.csv", std::process::id()));
    std::fs::write(&path, table(0)).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    let options = CsvOptions {
        targets: vec!["y1".into(), "y2".into()],
        ..CsvOptions::default()
    };
    let data = Dataset::from_csv(&path, &options);
    std::fs::remove_file(&path).ok();
    let data = data?;
    println!(
        "{} samples of {:?} from {}",
        data.len(),
        data.sample_dims(),
        path.display()
    );

    let mut model = Sequential::<f32>::new().add(Dense::new(3, 2, &mut StdRng::seed_from_u64(1))?);
    let mut adam = Adam::keras(0.05)?;
    let config = FitConfig {
        epochs: 40,
        metrics: vec![Metric::mae()],
        validation: Validation::Split(0.2),
        verbosity: Verbosity::Silent,
        ..FitConfig::default()
    };
    let mse = |out: &Tensor<f32>, y: &Targets<f32>| loss::mse(out, y.values()?, Reduction::Mean);
    let history = fit(&mut model, &mut adam, mse, &data, config)?;
    for e in history.epochs.iter().filter(|e| e.epoch % 10 == 0 || e.epoch == 1) {
        let get = |n: &str| e.logs.get(n).unwrap_or(f64::NAN);
        println!(
            "epoch {:>2}: loss {:.5}  mae {:.4}  val_loss {:.5}  val_mae {:.4}",
            e.epoch,
            get("loss"),
            get("mae"),
            get("val_loss"),
            get("val_mae")
        );
    }

    // Dense keeps its kernel as [in, out] (Keras's layout): W[j][i] is kernel[i, j].
    let params = model.parameters();
    let (kernel, bias) = (params[0].1.to_vec(), params[1].1.to_vec());
    let mut worst = 0.0f64;
    println!("         fitted    true");
    for (j, (w_row, b)) in TRUE_W.iter().zip(TRUE_B).enumerate() {
        for (i, w) in w_row.iter().enumerate() {
            let fitted = kernel[i * 2 + j] as f64;
            worst = worst.max((fitted - w).abs());
            println!("W[{j}][{i}]  {fitted:>7.4}  {w:>6.2}");
        }
        let fitted = bias[j] as f64;
        worst = worst.max((fitted - b).abs());
        println!("b[{j}]     {fitted:>7.4}  {b:>6.2}");
    }
    let last = history.epochs.last().expect("at least one epoch");
    println!(
        "RESULT example=regression epochs={} val_mse={:.5} max_param_error={worst:.4}",
        history.epochs.len(),
        last.logs.get("val_loss").unwrap_or(f64::NAN)
    );
    if worst > TOLERANCE {
        return Err(Error::bad_value(
            "regression",
            format!("a fitted parameter is {worst:.4} from the true one (tolerance {TOLERANCE})"),
        ));
    }
    Ok(())
}
