//! Writes the committed seed corpora under `fuzz/seeds/<target>/`: small valid files of
//! every kind the targets read, made with the library's own writers, so that libFuzzer
//! starts from inputs that pass the headers and checksums. Deterministic: rerunning it
//! rewrites the same bytes. Run from `fuzz/`: `cargo run --example make_seeds`.

use flate2::write::GzEncoder;
use flate2::Compression;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use tapegrad_core::Tensor;
use tapegrad_nn::safetensors::{self, Layout};
use tapegrad_nn::{checkpoint, Dense, ReLU, Sequential};
use tapegrad_optim::{Adam, AdamW, Momentum, Optimizer, RmsProp, Sgd};
use tapegrad_train::data::idx::encode_idx;

/// The op-program interpreter of the core's suite and the `op_program` target.
mod interp {
    include!("../../crates/tapegrad-core/tests/suite/op_program_interp.rs");
}
use interp::run_op_program;

type Res = std::result::Result<(), Box<dyn std::error::Error>>;

fn main() -> Res {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let put = |target: &str, name: &str, bytes: &[u8]| -> Res {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
        Ok(())
    };

    // The small model of the fuzz targets (`shared.rs`): Dense(3 → 2), ReLU, Dense(2 → 1).
    let dense = |i: usize, o: usize| -> tapegrad_core::Result<Dense<f32>> {
        let w = Tensor::from_vec((0..i * o).map(|k| k as f32 / 8.0 - 0.25).collect(), [i, o])?;
        Dense::from_weights(w, Some(Tensor::from_vec(vec![0.125; o], [o])?))
    };
    let model = Sequential::new().add(dense(3, 2)?).add(ReLU).add(dense(2, 1)?);
    let ckpt = checkpoint::to_bytes(&model)?;
    let ckpt_body = &ckpt[12..ckpt.len() - 4]; // what the framed variants wrap
    let st_torch = safetensors::to_bytes(&model, Layout::PyTorch)?;
    let st_keras = safetensors::to_bytes(&model, Layout::Keras)?;
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let st_plain = safetensors::encode(
        &[("w".to_string(), Tensor::<f64>::from_vec(vec![1.0, -2.0], [2])?)],
        &meta,
    )?;
    for target in ["checkpoint_decode", "load_state_dict"] {
        put(target, "model.ckpt", &ckpt)?;
        put(target, "model.ckpt.body", ckpt_body)?;
        put(target, "model-pytorch.safetensors", &st_torch)?;
        put(target, "model-keras.safetensors", &st_keras)?;
        put(target, "f64-metadata.safetensors", &st_plain)?;
    }

    // Optimizer states after two steps on two parameters, whole and as the bare body the
    // target's framed variant wraps (after magic, version and dtype; before the CRC).
    let opts: Vec<Box<dyn Optimizer<f32>>> = vec![
        Box::new(Sgd::pytorch_default()?),
        Box::new(Momentum::pytorch_default()?),
        Box::new(RmsProp::keras_default()?),
        Box::new(Adam::pytorch_default()?),
        Box::new(AdamW::keras_default()?),
    ];
    for mut opt in opts {
        let mut a = Tensor::<f32>::from_vec(vec![1.0, -2.0, 0.5], [3])?;
        let mut b = Tensor::<f32>::from_vec(vec![0.25; 4], [2, 2])?;
        let grads = [
            Some(Tensor::from_vec(vec![0.5, -0.5, 1.0], [3])?),
            Some(Tensor::full([2, 2], 0.1f32)?),
        ];
        for _ in 0..2 {
            opt.step_with_grads(&mut [("a".to_string(), &mut a), ("b".to_string(), &mut b)], &grads)?;
        }
        let bytes = opt.state().to_bytes()?;
        let kind = opt.kind().to_lowercase();
        put("optimizer_state", &format!("{kind}.state"), &bytes)?;
        put(
            "optimizer_state",
            &format!("{kind}.state.body"),
            &bytes[15..bytes.len() - 4],
        )?;
    }

    // IDX: MNIST-shaped headers with few samples, raw and gzip'd.
    let images = encode_idx(&[2, 4, 4], &(0..32).map(|i| (i * 8) as u8).collect::<Vec<_>>());
    let labels = encode_idx(&[2], &[3, 7]);
    let matrix = encode_idx(&[3, 2], &[1, 2, 3, 4, 5, 6]);
    let gz = |b: &[u8]| -> std::io::Result<Vec<u8>> {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(b)?;
        e.finish()
    };
    for (name, bytes) in [
        ("images.idx3", &images),
        ("labels.idx1", &labels),
        ("matrix.idx2", &matrix),
    ] {
        put("idx_parse", name, bytes)?;
        put("idx_gzip", name, bytes)?;
        put("idx_gzip", &format!("{name}.gz"), &gz(bytes)?)?;
    }

    // Op programs: deterministic pseudo-random byte strings, kept when most of their ops
    // run (so the seeds start past argument validation) and backward runs.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut kept = 0;
    for _ in 0..10_000 {
        let len = 24 + (x % 40) as usize;
        let prog: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let run = run_op_program(&prog)?;
        if run.ops_ok >= 4 && run.ops_ok > run.ops_err && run.backward_ran {
            put("op_program", &format!("prog-{kept}"), &prog)?;
            kept += 1;
            if kept == 6 {
                break;
            }
        }
    }

    // The structure-aware targets read bytes through `arbitrary`, which has no encoder:
    // their seeds are deterministic byte strings of a few sizes, each of which decodes to a
    // non-trivial description.
    for target in ["optimizer_state_structured", "checkpoint_structured", "mnist_dataset"] {
        for (i, len) in [64usize, 256, 1024].into_iter().enumerate() {
            let blob: Vec<u8> = (0..len)
                .map(|k| (k as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8)
                .collect();
            put(target, &format!("bytes-{i}"), &blob)?;
        }
    }
    Ok(())
}
