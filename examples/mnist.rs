//! The seed's worked example, in tapegrad: on MNIST, train
//!
//! ```text
//! Flatten(28×28) → Dense(128, relu) → Dropout(0.2) → Dense(10)
//! ```
//!
//! with Adam (Keras's defaults) on sparse categorical cross-entropy from logits (the same
//! function as Keras's softmax output + `SparseCategoricalCrossentropy`, computed stably),
//! batch 32, 10 epochs, then evaluate on the test set.
//!
//! ```text
//! cargo run --release --example mnist -- [--epochs N] [--batch-size N] [--hidden N]
//!     [--data DIR] [--seed N] [--threads N] [--plot FILE.svg] [--save FILE] [--limit N]
//!     [--validate]
//! ```
//!
//! Prints one line per epoch (a progress bar on a terminal), `test accuracy: 0.XXXX`, and
//! last a `RESULT …` line in the format of `../shared/peers` (epoch times exclude loading;
//! peak RSS is the process's VmHWM).

use std::path::PathBuf;
use tapegrad::nn::checkpoint;
use tapegrad::prelude::*;
use tapegrad::train::sparse_categorical_cross_entropy_from_logits;

struct Args {
    epochs: usize,
    batch_size: usize,
    hidden: usize,
    data: PathBuf,
    seed: u64,
    threads: usize,
    plot: Option<PathBuf>,
    save: Option<PathBuf>,
    limit: Option<usize>,
    validate: bool,
}

const USAGE: &str = "usage: mnist [--epochs N] [--batch-size N] [--hidden N] [--data DIR] [--seed N] \
                     [--threads N] [--plot FILE.svg|.csv|.json] [--save FILE] [--limit N] \
                     [--validate (evaluate on the test set after every epoch)]";

fn parse_args() -> std::result::Result<Args, String> {
    let mut a = Args {
        epochs: 10,
        batch_size: 32,
        hidden: 128,
        data: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist"),
        seed: 0,
        threads: 2,
        plot: None,
        save: None,
        limit: None,
        validate: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        if flag == "--validate" {
            a.validate = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--epochs" => a.epochs = num(&value)?,
            "--batch-size" => a.batch_size = num(&value)?,
            "--hidden" => a.hidden = num(&value)?,
            "--data" => a.data = value.into(),
            "--seed" => a.seed = value.parse().map_err(|e| format!("--seed {value}: {e}"))?,
            "--threads" => a.threads = num(&value)?,
            "--plot" => a.plot = Some(value.into()),
            "--save" => a.save = Some(value.into()),
            "--limit" => a.limit = Some(num(&value)?),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(a)
}

/// Peak resident set size in MB, from /proc/self/status (Linux); 0 elsewhere.
fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        .map_or(0, |kb| kb / 1024)
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
    let train = match args.limit {
        Some(n) => mnist.train.take(n),
        None => mnist.train.clone(),
    };
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut model = Sequential::<f32>::new()
        .add(Flatten)
        .add(Dense::new(28 * 28, args.hidden, &mut rng)?.with_activation(Activation::Relu))
        .add(Dropout::new(0.2, args.seed.wrapping_add(1))?)
        .add(Dense::new(args.hidden, 10, &mut rng)?);
    let mut optimizer = Adam::keras_default()?;
    println!("{}", model.summary());
    println!(
        "train {} / test {} images, batch {}, {} epochs",
        train.len(),
        mnist.test.len(),
        args.batch_size,
        args.epochs
    );
    let config = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        seed: args.seed,
        ..FitConfig::default()
    };
    let validation = args.validate.then_some(&mnist.test);
    let history = fit(&mut model, &mut optimizer, &train, validation, &config)?;
    let (test_loss, test_acc) = evaluate(
        &mut model,
        &mnist.test,
        256,
        sparse_categorical_cross_entropy_from_logits::<f32>,
    )?;
    println!("test loss: {test_loss:.4}");
    println!("test accuracy: {test_acc:.4}");
    if let Some(path) = &args.plot {
        history.save(path)?;
        println!("training curves written to {}", path.display());
    }
    if let Some(path) = &args.save {
        checkpoint::save(&model, path)?;
        println!("model saved to {}", path.display());
    }
    let times: Vec<f64> = history.epochs.iter().map(|e| e.seconds).collect();
    println!(
        "RESULT framework=tapegrad epochs={} mean_epoch_s={:.3} last_epoch_s={:.3} test_acc={:.4} peak_rss_mb={}",
        times.len(),
        times.iter().sum::<f64>() / times.len() as f64,
        times.last().copied().unwrap_or(0.0),
        test_acc,
        peak_rss_mb()
    );
    Ok(())
}
