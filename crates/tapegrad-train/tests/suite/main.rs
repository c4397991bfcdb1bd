//! tapegrad-train's integration tests (new ones go here, one binary).

mod cnn_train;
