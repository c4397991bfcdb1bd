//! # tapegrad-train
//!
//! Datasets and the training loop: an IDX/MNIST reader, seeded mini-batches, and a
//! Keras-like `fit`/`evaluate` with a progress bar and a training history.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod data;

pub use data::idx::{read_idx, IdxArray};
pub use data::mnist::Mnist;
pub use data::Dataset;
