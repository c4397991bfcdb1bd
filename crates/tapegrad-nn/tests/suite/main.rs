//! tapegrad-nn's integration tests, one binary (linking dominates build time).

mod bce_logits;
mod checkpoint;
mod checkpoint_crc;
mod dropout;
mod fallible;
mod layers;
mod loss;
mod metrics;
mod nn_layers;
mod safetensors_basic;
mod safetensors_torch;
