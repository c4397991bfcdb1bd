//! tapegrad-train's integration tests, one binary.

mod callbacks;
mod csv;
mod data;
#[cfg(feature = "mpi")]
mod distributed;
mod fit;
mod history;
