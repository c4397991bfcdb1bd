//! tapegrad-nn's integration tests, one binary (linking dominates build time).

mod bce_logits;
mod checkpoint_crc;
mod fallible;
mod safetensors_basic;
mod safetensors_torch;
