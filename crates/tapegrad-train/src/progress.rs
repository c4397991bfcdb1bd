//! Keras-style progress: a bar with the loss, metrics, steps/s and ETA while an epoch runs,
//! then one summary line; plain lines only when stdout is not a terminal, so logs stay
//! readable.

use crate::fit::Verbosity;
use crate::history::EpochLog;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    show_line: bool,
    epoch: usize,
    epochs: usize,
    steps: usize,
    names: Vec<String>,
    start: Instant,
}

/// `name: value` pairs joined Keras-style.
fn join<'a>(pairs: impl Iterator<Item = (&'a str, f64)>) -> String {
    pairs
        .map(|(n, v)| format!("{n}: {v:.4}"))
        .collect::<Vec<_>>()
        .join(" - ")
}

impl Progress {
    pub(crate) fn new(verbosity: Verbosity, epoch: usize, epochs: usize, steps: usize, names: &[&str]) -> Self {
        let bar_wanted = match verbosity {
            Verbosity::Auto => std::io::stdout().is_terminal(),
            Verbosity::Bar => true,
            Verbosity::Lines | Verbosity::Silent => false,
        };
        let bar = bar_wanted.then(|| {
            println!("Epoch {epoch}/{epochs}");
            let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template("{pos:>5}/{len} [{bar:30}] {elapsed} ETA {eta} - {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Progress {
            bar,
            show_line: verbosity != Verbosity::Silent,
            epoch,
            epochs,
            steps,
            names: names.iter().map(|n| n.to_string()).collect(),
            start: Instant::now(),
        }
    }

    /// `sums` are the running sums of the loss and metrics over `seen` samples.
    pub(crate) fn step(&mut self, step: usize, sums: &[f64], seen: usize) {
        if let Some(bar) = &self.bar {
            // The bar redraws at most ~20 times a second; formatting every 16 steps is
            // plenty and keeps the step loop free of string work.
            if step == 1 || step.is_multiple_of(16) || step == self.steps {
                let rate = step as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
                let means = self
                    .names
                    .iter()
                    .zip(sums)
                    .map(|(n, s)| (n.as_str(), s / seen.max(1) as f64));
                bar.set_message(format!("{rate:.0} steps/s - {}", join(means)));
            }
            bar.set_position(step as u64);
        }
    }

    pub(crate) fn finish(self, log: &EpochLog) {
        let line = format!(
            "{}/{} - {:.2}s {:.0}us/step - {}",
            self.steps,
            self.steps,
            log.seconds,
            log.seconds / self.steps.max(1) as f64 * 1e6,
            join(log.logs.iter())
        );
        match self.bar {
            Some(bar) => bar.finish_and_clear(),
            None if self.show_line => print!("Epoch {}/{} - ", self.epoch, self.epochs),
            None => return,
        }
        println!("{line}");
    }
}
