//! tapegrad-nn's integration tests for the convolution, normalization and attention layers,
//! in one binary.

mod nn_layers;
