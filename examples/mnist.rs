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
//!     [--data DIR] [--seed N] [--threads N] [--plot FILE.svg|.png|.csv|.json] [--save FILE]
//!     [--limit N] [--validate]
//! cargo build --release --features mpi --example mnist
//! mpirun -np 2 target/release/examples/mnist --distributed [flags as above]
//! ```
//!
//! Prints one line per epoch (a progress bar on a terminal), `test accuracy: 0.XXXX`, and
//! last a `RESULT …` line in the format of `../shared/peers` (epoch times exclude loading;
//! peak RSS is the process's VmHWM).
//!
//! With `--distributed` (feature `mpi`, under `mpirun`), every rank trains on its shard of
//! each global batch of `--batch-size` and the gradients are averaged across ranks
//! (`tapegrad::train::distributed`); rank 0 alone prints and writes outputs, and adds a
//! `distributed:` line with the time per step and the allreduce's share of it.
//!
//! Output paths (`--plot`, `--save`) are checked before training, so a typo cannot waste a
//! run; if writing one still fails after training, the others are written anyway and the
//! program exits with status 1.

mod common;

use common::parse;
use std::path::PathBuf;
use tapegrad::nn::checkpoint;
use tapegrad::prelude::*;
use tapegrad::train::check_writable;

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
    #[cfg(feature = "mpi")]
    distributed: bool,
}

const USAGE: &str = "usage: mnist [--epochs N] [--batch-size N] [--hidden N] [--data DIR] [--seed N] \
                     [--threads N] [--plot FILE.svg|.png|.csv|.json] [--save FILE] [--limit N] \
                     [--validate (evaluate on the test set after every epoch)] \
                     [--distributed (data-parallel under mpirun; feature mpi)]";

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
        #[cfg(feature = "mpi")]
        distributed: false,
    };
    common::parse_flags(USAGE, &["--validate", "--distributed"], |flag, v| {
        match flag {
            "--validate" => a.validate = true,
            #[cfg(feature = "mpi")]
            "--distributed" => a.distributed = true,
            #[cfg(not(feature = "mpi"))]
            "--distributed" => {
                return Err("--distributed needs the mpi feature: \
                            cargo build --release --features mpi --example mnist"
                    .into())
            }
            "--epochs" => a.epochs = parse(flag, v)?,
            "--batch-size" => a.batch_size = parse(flag, v)?,
            "--hidden" => a.hidden = parse(flag, v)?,
            "--data" => a.data = v.into(),
            "--seed" => a.seed = parse(flag, v)?,
            "--threads" => a.threads = parse(flag, v)?,
            "--plot" => a.plot = Some(v.into()),
            "--save" => a.save = Some(v.into()),
            "--limit" => a.limit = Some(parse(flag, v)?),
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

/// Sparse categorical cross-entropy from logits, the batch mean: the seed's loss.
fn loss(out: &Tensor<f32>, y: &Targets<f32>) -> Result<Tensor<f32>> {
    loss::sparse_categorical_cross_entropy_with_logits(out, y.classes()?, Reduction::Mean)
}

fn run(args: &Args) -> Result<()> {
    #[cfg(feature = "mpi")]
    let dist = match args.distributed {
        true => Some(tapegrad::train::distributed::Distributed::init()?),
        false => None,
    };
    #[cfg(feature = "mpi")]
    let (rank, ranks) = dist.as_ref().map_or((0, 1), |d| (d.rank(), d.world_size()));
    #[cfg(not(feature = "mpi"))]
    let (rank, ranks) = (0usize, 1usize);
    let root = rank == 0;
    // Every output path is checked before the (long) training run.
    if let Some(path) = args.plot.as_ref().filter(|_| root) {
        History::check_save_path(path).map_err(|e| Error::bad_value("--plot", e.to_string()))?;
    }
    if let Some(path) = args.save.as_ref().filter(|_| root) {
        check_writable(path).map_err(|e| Error::bad_value("--save", e.to_string()))?;
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.max(1))
        .build_global()
        .map_err(|e| Error::bad_value("--threads", e.to_string()))?;
    let mnist = Mnist::load(&args.data)?;
    // The training set as loaded (a clone would hold a second 47 MB copy of the pixels).
    let train = match args.limit {
        Some(n) => mnist.train.take(n),
        None => mnist.train,
    };
    let mut rng = StdRng::seed_from_u64(args.seed);
    // Each rank its own Dropout masks.
    let mut model = common::seed_mlp(args.hidden, &mut rng, args.seed.wrapping_add(1 + rank as u64))?;
    #[cfg(feature = "mpi")]
    if let Some(d) = &dist {
        d.broadcast_parameters(&mut model)?;
    }
    let mut optimizer = Adam::keras_default()?;
    if root {
        println!("{}", model.summary());
        println!(
            "train {} / test {} images, batch {}, {} epochs, {ranks} rank(s)",
            train.len(),
            mnist.test.len(),
            args.batch_size,
            args.epochs
        );
    }
    let config = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        seed: args.seed,
        metrics: vec![Metric::accuracy()],
        validation: if args.validate {
            Validation::Data(&mnist.test)
        } else {
            Validation::None
        },
        #[cfg(feature = "mpi")]
        distributed: dist.as_ref(),
        ..FitConfig::default()
    };
    let history = fit(&mut model, &mut optimizer, loss, &train, config)?;
    #[cfg(feature = "mpi")]
    if let Some(d) = &dist {
        // Steps per epoch: the full batches, and the last one when every rank gets a sample.
        let per_epoch = train.len() / args.batch_size + usize::from(train.len() % args.batch_size >= ranks);
        let steps = (per_epoch * history.epochs.len()) as f64;
        let seconds: f64 = history.epochs.iter().map(|e| e.seconds).sum();
        let allreduce = d.all_reduce_sum(&[d.allreduce_seconds()])[0] / ranks as f64;
        if root {
            println!(
                "distributed: {ranks} ranks, {steps} steps, {:.3} ms/step, gradient allreduce {:.3} ms/step \
                 ({:.1}% of the step, mean over ranks, waits for slower ranks included)",
                seconds / steps * 1e3,
                allreduce / steps * 1e3,
                100.0 * allreduce / seconds
            );
        }
    }
    if !root {
        return Ok(());
    }
    let test = evaluate(&mut model, &mnist.test, loss, &[Metric::accuracy()], 256)?;
    let test_acc = test.get("accuracy").unwrap_or(f64::NAN);
    println!("test loss: {:.4}", test.get("loss").unwrap_or(f64::NAN));
    println!("test accuracy: {test_acc:.4}");
    // Write every output even if one fails, then report all failures.
    let mut failed = Vec::new();
    if let Some(path) = &args.plot {
        match history.save(path) {
            Ok(()) => println!("training curves written to {}", path.display()),
            Err(e) => failed.push(format!("--plot: {e}")),
        }
    }
    if let Some(path) = &args.save {
        match checkpoint::save(&model, path) {
            Ok(()) => println!("model saved to {}", path.display()),
            Err(e) => failed.push(format!("--save: {e}")),
        }
    }
    let times: Vec<f64> = history.epochs.iter().map(|e| e.seconds).collect();
    println!(
        "RESULT framework=tapegrad epochs={} mean_epoch_s={:.3} last_epoch_s={:.3} test_acc={:.4} peak_rss_mb={}",
        times.len(),
        times.iter().sum::<f64>() / times.len() as f64,
        times.last().copied().unwrap_or(0.0),
        test_acc,
        common::peak_rss_mb()
    );
    for msg in &failed {
        eprintln!("error: {msg}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Io(format!(
            "{} of the outputs could not be written",
            failed.len()
        )))
    }
}
