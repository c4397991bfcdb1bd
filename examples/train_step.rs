//! A fixed number of training steps of the seed's MLP (or the MNIST CNN) on seeded
//! synthetic data, for counting instructions: the work per step does not depend on the
//! machine's load, so an instruction count (callgrind) shows a regression that epoch
//! timings on a shared machine would hide. `scripts/instructions.sh` runs it under
//! callgrind twice (few steps and more steps) and prints the difference per step.
//!
//! ```text
//! cargo run --release --example train_step -- [--model mlp|cnn] [--steps N]
//! ```
//!
//! The MLP is Flatten → Dense(128, relu) → Dropout(0.2) → Dense(10) with Adam (Keras's
//! defaults) at batch 32; the CNN is `examples/mnist_cnn.rs`'s model at batch 128. One
//! rayon thread, so that the count is the same on every machine.

use tapegrad::nn::{Conv2d, MaxPool2d, Reshape};
use tapegrad::prelude::*;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut model_name, mut steps) = (String::from("mlp"), 10usize);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--model" => model_name = value,
            "--steps" => steps = value.parse().map_err(|_| Error::bad_value("train_step", "--steps N"))?,
            other => {
                return Err(Error::bad_value(
                    "train_step",
                    format!("unknown flag {other}; usage: train_step [--model mlp|cnn] [--steps N]"),
                ))
            }
        }
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .map_err(|e| Error::bad_value("train_step", e.to_string()))?;
    let mut rng = StdRng::seed_from_u64(0);
    let (mut model, batch) = match model_name.as_str() {
        "mlp" => (
            Sequential::<f32>::new()
                .add(Flatten)
                .add(Dense::new(28 * 28, 128, &mut rng)?.with_activation(Activation::Relu))
                .add(Dropout::new(0.2, 1)?)
                .add(Dense::new(128, 10, &mut rng)?),
            32,
        ),
        "cnn" => (
            Sequential::<f32>::new()
                .add(Reshape::new(&[1, 28, 28]))
                .add(Conv2d::new(1, 32, [3, 3], &mut rng)?.with_activation(Activation::Relu))
                .add(MaxPool2d::new([2, 2]))
                .add(Conv2d::new(32, 64, [3, 3], &mut rng)?.with_activation(Activation::Relu))
                .add(MaxPool2d::new([2, 2]))
                .add(Flatten)
                .add(Dropout::new(0.5, 1)?)
                .add(Dense::new(1600, 10, &mut rng)?),
            128,
        ),
        other => return Err(Error::bad_value("train_step", format!("--model mlp|cnn, got {other}"))),
    };
    let mut optimizer = Adam::keras_default()?;
    // Seeded pixels in [0, 1] and labels, made once outside the loop.
    let x: Vec<f32> = (0..batch * 784)
        .map(|_| rng.random_range(0..=255u8) as f32 / 255.0)
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
