//! # tapegrad-train
//!
//! Datasets and the training loop: an IDX/MNIST reader, seeded mini-batches, and a
//! Keras-like [`fit()`]/[`evaluate`] with a progress bar and a [`History`] that can be saved
//! as CSV, JSON or an SVG chart of the training curves.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod data;
pub mod fit;
pub mod history;
mod progress;

pub use data::idx::{read_idx, IdxArray};
pub use data::mnist::Mnist;
pub use data::Dataset;
pub use fit::{evaluate, fit, sparse_categorical_cross_entropy_from_logits, FitConfig, LossFn, Verbosity};
pub use history::{EpochLog, History};
