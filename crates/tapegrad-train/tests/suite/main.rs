//! tapegrad-train's integration tests, one binary.

mod adder_train;
mod callbacks;
mod cnn_train;
mod csv;
mod data;
#[cfg(feature = "mpi")]
mod distributed;
mod fit;
mod history;
mod mnist_train;
