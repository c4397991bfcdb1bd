//! Keras's "Simple MNIST convnet", in tapegrad:
//!
//! ```text
//! Reshape(1×28×28) → Conv2D(32, 3×3, relu) → MaxPool(2) → Conv2D(64, 3×3, relu) → MaxPool(2)
//!     → Flatten → Dropout(0.5) → Dense(10)
//! ```
//!
//! with Adam (Keras's defaults) on sparse categorical cross-entropy from logits (Keras's
//! softmax output + categorical cross-entropy, computed stably), batch 128, 15 epochs, on
//! the first 54,000 training images (Keras's example holds out the last 10% with
//! `validation_split=0.1`), then evaluated on the 10,000 test images. Layout is channels
//! first (PyTorch's); the model is the same as `../shared/peers/python/{keras,torch}_cnn.py`.
//! `Sequential` runs each Conv2D(relu) → MaxPool pair as one op,
//! `Tensor::conv2d_relu_max_pool2d`, which pools each image's convolution output while it is
//! in cache (the same values and gradients as the two layers).
//!
//! ```text
//! cargo run --release --example mnist_cnn -- [--epochs N] [--batch-size N] [--limit N]
//!     [--data DIR] [--seed N] [--threads N]
//! ```
//!
//! Prints one line per epoch, `test accuracy: 0.XXXX`, and last a `RESULT …` line in the
//! format of `../shared/peers` (epoch times exclude loading; peak RSS is VmHWM).

mod common;

use common::parse;
use std::path::PathBuf;
use tapegrad::prelude::*;

struct Args {
    epochs: usize,
    batch_size: usize,
    limit: usize,
    data: PathBuf,
    seed: u64,
    threads: usize,
}

const USAGE: &str =
    "usage: mnist_cnn [--epochs N] [--batch-size N] [--limit N (training images, default 54000)] [--data DIR] \
     [--seed N] [--threads N]";

fn parse_args() -> std::result::Result<Args, String> {
    let mut a = Args {
        epochs: 15,
        batch_size: 128,
        limit: 54_000,
        data: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist"),
        seed: 0,
        threads: 2,
    };
    common::parse_flags(USAGE, &[], |flag, v| {
        match flag {
            "--epochs" => a.epochs = parse(flag, v)?,
            "--batch-size" => a.batch_size = parse(flag, v)?,
            "--limit" => a.limit = parse(flag, v)?,
            "--data" => a.data = v.into(),
            "--seed" => a.seed = parse(flag, v)?,
            "--threads" => a.threads = parse(flag, v)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
        Ok(())
    })?;
    Ok(a)
}

fn main() {
    let args = parse_args().unwrap_or_else(|msg| {
        eprintln!("{msg}");
        std::process::exit(2);
    });
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.max(1))
        .build_global()
        .map_err(|e| Error::bad_value("--threads", e.to_string()))?;
    let mnist = Mnist::load(&args.data)?;
    // The first `limit` images; the full set is freed once they are copied out.
    let train = match mnist.train {
        t if args.limit < t.len() => t.take(args.limit),
        t => t,
    };
    let mut model = common::convnet(args.seed)?;
    let mut optimizer = Adam::keras_default()?;
    println!("{}", model.summary());
    println!(
        "train {} / test {} images, batch {}, {} epochs, {} params",
        train.len(),
        mnist.test.len(),
        args.batch_size,
        args.epochs,
        model.num_parameters()
    );
    let loss = |out: &Tensor<f32>, y: &Targets<f32>| {
        loss::sparse_categorical_cross_entropy_with_logits(out, y.classes()?, Reduction::Mean)
    };
    let config = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        seed: args.seed,
        verbosity: Verbosity::Lines,
        metrics: vec![Metric::accuracy()],
        ..FitConfig::default()
    };
    let history = fit(&mut model, &mut optimizer, loss, &train, config)?;
    let test = evaluate(&mut model, &mnist.test, loss, &[Metric::accuracy()], args.batch_size)?;
    let test_acc = test.get("accuracy").unwrap_or(f64::NAN);
    println!("test loss: {:.4}", test.get("loss").unwrap_or(f64::NAN));
    println!("test accuracy: {test_acc:.4}");
    let times: Vec<f64> = history.epochs.iter().map(|e| e.seconds).collect();
    println!(
        "RESULT framework=tapegrad model=cnn epochs={} mean_epoch_s={:.3} last_epoch_s={:.3} test_acc={:.4} peak_rss_mb={}",
        times.len(),
        times.iter().sum::<f64>() / times.len() as f64,
        times.last().copied().unwrap_or(0.0),
        test_acc,
        common::peak_rss_mb()
    );
    Ok(())
}
