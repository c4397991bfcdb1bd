//! Keras-style progress: a bar with loss, accuracy, steps/s and ETA while an epoch runs,
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
    start: Instant,
}

impl Progress {
    pub(crate) fn new(verbosity: Verbosity, epoch: usize, epochs: usize, steps: usize) -> Self {
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
            start: Instant::now(),
        }
    }

    pub(crate) fn step(&mut self, step: usize, loss: f64, accuracy: f64) {
        if let Some(bar) = &self.bar {
            // The bar redraws at most ~20 times a second; formatting every 16 steps is
            // plenty and keeps the step loop free of string work.
            if step == 1 || step.is_multiple_of(16) || step == self.steps {
                let rate = step as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("{rate:.0} steps/s - loss: {loss:.4} - accuracy: {accuracy:.4}"));
            }
            bar.set_position(step as u64);
        }
    }

    pub(crate) fn finish(self, log: &EpochLog) {
        let mut line = format!(
            "{}/{} - {:.2}s {:.0}us/step - loss: {:.4} - accuracy: {:.4}",
            self.steps,
            self.steps,
            log.seconds,
            log.seconds / self.steps.max(1) as f64 * 1e6,
            log.loss,
            log.accuracy
        );
        if let (Some(l), Some(a)) = (log.val_loss, log.val_accuracy) {
            line.push_str(&format!(" - val_loss: {l:.4} - val_accuracy: {a:.4}"));
        }
        match self.bar {
            Some(bar) => bar.finish_and_clear(),
            None if self.show_line => print!("Epoch {}/{} - ", self.epoch, self.epochs),
            None => return,
        }
        println!("{line}");
    }
}
