//! # tapegrad-train
//!
//! Datasets and the training loop, after Keras's `fit`: datasets of tensors of any sample
//! shape (from vectors, CSV files or IDX/MNIST files) with class or float targets, seeded
//! mini-batches, and [`fit()`]/[`evaluate`] for any loss, with [`Metric`]s, validation
//! (a split or explicit data), [`Callback`]s ([`EarlyStopping`], [`ModelCheckpoint`],
//! [`LrScheduler`]) and a [`History`] that can be saved as CSV, JSON, or an SVG/PNG chart
//! of the training curves. With the `mpi` feature, `distributed` trains data-parallel across
//! processes and machines on MPI.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod callbacks;
mod chart;
pub mod data;
#[cfg(feature = "mpi")]
pub mod distributed;
pub mod fit;
pub mod history;
pub mod metrics;
mod progress;

pub use callbacks::{Callback, CallbackContext, EarlyStopping, LrScheduler, Mode, ModelCheckpoint};
pub use data::csv::{Column, CsvOptions, TargetKind};
pub use data::features::Features;
pub use data::idx::{read_idx, IdxArray};
pub use data::mnist::Mnist;
pub use data::targets::{TargetData, Targets};
pub use data::{Batch, Dataset};
pub use fit::{evaluate, fit, FitConfig, Validation, Verbosity};
pub use history::{check_writable, EpochLog, History, Logs};
pub use metrics::Metric;
