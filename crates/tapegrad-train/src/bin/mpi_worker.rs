//! The program that the `distributed` integration tests start under `mpirun` (and once
//! alone, without MPI, for the single-process reference). Not a user tool.
//!
//! ```text
//! mpi_worker train f32|f64 OUT BATCH [--single]  train a seeded MLP on synthetic data, checking
//!                                            after every step that all ranks hold the same
//!                                            bits; rank 0 writes the parameters and losses
//! mpi_worker panic                           rank 1 panics while rank 0 waits in a barrier
//! ```
#![forbid(unsafe_code)]

use mpi::traits::{Communicator, CommunicatorCollectives, Root};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::fmt::Write as _;
use tapegrad_core::{Element, Error, Result};
use tapegrad_nn::{loss, Activation, Dense, Module, Reduction, Sequential};
use tapegrad_optim::Adam;
use tapegrad_train::distributed::Distributed;
use tapegrad_train::{fit, Callback, CallbackContext, Dataset, Features, FitConfig, Metric, TargetData, Verbosity};

/// Samples, features and classes of the synthetic data; epochs.
const SAMPLES: usize = 96;
const FEATURES: usize = 6;
const CLASSES: usize = 3;
const EPOCHS: usize = 3;

/// Checks, at the start of every step and at the end, that every rank's parameters equal
/// rank 0's bit for bit; an error otherwise (which aborts the job).
struct SameBits<'a> {
    dist: &'a Distributed,
    checks: usize,
}

impl SameBits<'_> {
    fn check<T: Element>(&mut self, model: &dyn Module<T>) -> Result<()> {
        let mine: Vec<u64> = model
            .state_dict()
            .iter()
            .flat_map(|(_, t)| t.data().iter().map(|v| v.as_f64().to_bits()).collect::<Vec<_>>())
            .collect();
        let mut root = mine.clone();
        let world = self.dist.communicator();
        world.process_at_rank(0).broadcast_into(&mut root[..]);
        let same = i32::from(root == mine);
        let mut all = 0i32;
        world.all_reduce_into(&same, &mut all, mpi::collective::SystemOperation::min());
        if all != 1 {
            return Err(Error::bad_value(
                "mpi_worker",
                format!("the ranks' parameters differ at check {}", self.checks),
            ));
        }
        self.checks += 1;
        Ok(())
    }
}

impl<T: Element> Callback<T> for SameBits<'_> {
    fn on_batch_begin(&mut self, _step: u64, ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        self.check(&*ctx.model)
    }
    fn on_train_end(&mut self, ctx: &mut CallbackContext<'_, T>) -> Result<()> {
        self.check(&*ctx.model)
    }
}

fn data() -> Result<Dataset> {
    let mut rng = StdRng::seed_from_u64(7);
    let x: Vec<f64> = (0..SAMPLES * FEATURES).map(|_| rng.random_range(-1.0..1.0)).collect();
    let labels = x
        .chunks(FEATURES)
        .map(|s| usize::from(s[0] + s[1] > 0.0) + usize::from(s[2] > 0.5))
        .collect();
    Dataset::new(
        Features::from_f64(x, [FEATURES])?,
        TargetData::Classes {
            labels,
            classes: CLASSES,
        },
    )
}

fn train<T: Element>(out: &str, batch_size: usize, dist: Option<&Distributed>) -> Result<()> {
    let data = data()?;
    // A different initialization on every rank (the single-process reference has rank 0's):
    // the broadcast must make them equal.
    let mut rng = StdRng::seed_from_u64(1 + dist.map_or(0, |d| d.rank() as u64));
    let mut model = Sequential::<T>::new()
        .add(Dense::new(FEATURES, 16, &mut rng)?.with_activation(Activation::Tanh))
        .add(Dense::new(16, CLASSES, &mut rng)?);
    if let Some(d) = dist {
        d.broadcast_parameters(&mut model)?;
    }
    let mut adam = Adam::keras(0.01)?;
    let mut same = dist.map(|dist| SameBits { dist, checks: 0 });
    let mut callbacks: Vec<&mut dyn Callback<T>> = Vec::new();
    if let Some(s) = same.as_mut() {
        callbacks.push(s);
    }
    let config = FitConfig {
        epochs: EPOCHS,
        batch_size,
        seed: 3,
        verbosity: Verbosity::Silent,
        metrics: vec![Metric::accuracy()],
        callbacks,
        distributed: dist,
        ..FitConfig::default()
    };
    let history = fit(
        &mut model,
        &mut adam,
        |o, y| loss::sparse_categorical_cross_entropy_with_logits(o, y.classes()?, Reduction::Mean),
        &data,
        config,
    )?;
    if dist.is_some_and(|d| !d.is_root()) {
        return Ok(());
    }
    let mut text = String::new();
    let checks = same.map_or(0, |s| s.checks);
    let _ = writeln!(text, "checks {checks}");
    for name in ["loss", "accuracy"] {
        let series: Vec<String> = history.series(name).iter().map(|v| format!("{v:?}")).collect();
        let _ = writeln!(text, "{name} {}", series.join(" "));
    }
    for (name, t) in model.state_dict() {
        let values: Vec<String> = t.data().iter().map(|v| format!("{:?}", v.as_f64())).collect();
        let _ = writeln!(text, "param:{name} {}", values.join(" "));
    }
    std::fs::write(out, text).map_err(|e| Error::Io(format!("{out}: {e}")))
}

fn run(args: &[String]) -> Result<()> {
    let usage = || Error::bad_value("mpi_worker", format!("bad arguments {args:?}"));
    match args.first().map(String::as_str) {
        Some("train") => {
            let (dtype, out) = (args.get(1).ok_or_else(usage)?, args.get(2).ok_or_else(usage)?);
            let batch: usize = args.get(3).and_then(|b| b.parse().ok()).ok_or_else(usage)?;
            let single = args.get(4).is_some_and(|a| a == "--single");
            let dist = if single { None } else { Some(Distributed::init()?) };
            match dtype.as_str() {
                "f32" => train::<f32>(out, batch, dist.as_ref()),
                "f64" => train::<f64>(out, batch, dist.as_ref()),
                _ => Err(usage()),
            }
        }
        Some("panic") => {
            let dist = Distributed::init()?;
            if dist.rank() == 1 {
                panic!("rank 1 fails on purpose");
            }
            // Rank 0 waits for a rank that will never come: only the abort ends it.
            dist.barrier();
            Ok(())
        }
        _ => Err(usage()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
