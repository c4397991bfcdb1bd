//! A fixed number of training steps of the seed's MLP (or the MNIST CNN) on seeded
//! synthetic data, for counting instructions: the work per step does not depend on the
//! machine's load, so an instruction count (callgrind) shows a regression that epoch
//! timings on a shared machine would hide. `scripts/instructions.sh` runs it under
//! callgrind twice (few steps and more steps) and prints the difference per step.
//!
//! ```text
//! cargo run --release --example train_step -- [--model mlp|mlp-sparse|cnn] [--steps N]
//! ```
//!
//! The MLP is Flatten → Dense(128, relu) → Dropout(0.2) → Dense(10) with Adam (Keras's
//! defaults) at batch 32; `mlp-sparse` is the same on pixels of which 81% are zero, as in
//! MNIST (so its first layer's products take the zero-skipping path); the CNN is
//! `examples/mnist_cnn.rs`'s model at batch 128. One rayon thread, so that the count is the
//! same on every machine.

mod common;

use tapegrad::prelude::*;

const USAGE: &str = "usage: train_step [--model mlp|mlp-sparse|cnn] [--steps N]";

fn main() -> Result<()> {
    let (mut model_name, mut steps) = (String::from("mlp"), 10usize);
    common::parse_flags(USAGE, &[], |flag, v| {
        match flag {
            "--model" => model_name = v.to_string(),
            "--steps" => steps = common::parse(flag, v)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
        Ok(())
    })
    .map_err(|e| Error::bad_value("train_step", e))?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .map_err(|e| Error::bad_value("train_step", e.to_string()))?;
    let mut rng = StdRng::seed_from_u64(0);
    let (mut model, batch) = match model_name.as_str() {
        "mlp" | "mlp-sparse" => (common::seed_mlp(128, &mut rng, 1)?, 32),
        "cnn" => (common::convnet(0)?, 128),
        other => {
            return Err(Error::bad_value(
                "train_step",
                format!("--model mlp|mlp-sparse|cnn, got {other}"),
            ))
        }
    };
    let sparse = model_name == "mlp-sparse";
    let mut optimizer = Adam::keras_default()?;
    // Seeded pixels in [0, 1] (81% of them zero for mlp-sparse) and labels, made once
    // outside the loop.
    let x: Vec<f32> = (0..batch * 784)
        .map(|_| {
            let v = rng.random_range(0..=255u8) as f32 / 255.0;
            if sparse && rng.random_range(0..100) < 81 {
                0.0
            } else {
                v
            }
        })
        .collect();
    let x = Tensor::from_vec(x, [batch, 28, 28])?;
    let y: Vec<usize> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    let mut last = 0.0;
    for _ in 0..steps {
        let out = model.forward(&x)?;
        let loss = loss::sparse_categorical_cross_entropy_with_logits(&out, &y[..], loss::Reduction::Mean)?;
        last = loss.item()?;
        drop(out);
        let grads = loss.backward()?;
        drop(loss);
        let mut params = model.trainable_parameters_mut();
        optimizer.step(&mut params, &grads)?;
    }
    println!("model={model_name} steps={steps} last_loss={last:.6}");
    Ok(())
}
