//! Fuzzes loading a decoded state dict into a model: bytes are decoded as a checkpoint
//! (raw, and inside a valid header and CRC-32 so the body is reached) and as safetensors,
//! and whatever decodes is loaded into a small `Sequential` (`Dense(3 → 2)`, `ReLU`,
//! `Dense(2 → 1)`) with `load_state_dict` and `load_state_dict_with`, strict and not; the
//! bytes also go through both formats' `load_from_bytes`. Every call must return `Ok` or
//! `Err`; a successful load must keep the parameters' shapes, a strict one must report
//! nothing missing or unexpected, and the model must then run forward.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapegrad_nn::checkpoint;
use tapegrad_nn::safetensors::{self, Layout};

#[path = "shared.rs"]
mod shared;
use shared::{checkpoint_frame, load_into_model, small_model};

fuzz_target!(|data: &[u8]| {
    for bytes in [data.to_vec(), checkpoint_frame(data)] {
        if let Ok(state) = checkpoint::decode::<f32>(&bytes) {
            load_into_model(&state);
        }
        let mut model = small_model();
        let _ = checkpoint::load_from_bytes(&mut model, &bytes);
    }
    if let Ok(file) = safetensors::decode::<f32>(data) {
        load_into_model(&file.into_state_dict());
    }
    for layout in [Layout::PyTorch, Layout::Keras] {
        for strict in [true, false] {
            let mut model = small_model();
            let _ = safetensors::load_from_bytes(&mut model, data, layout, strict);
        }
    }
});
