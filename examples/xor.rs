//! XOR with a two-layer perceptron: the smallest problem a linear model cannot solve.
//!
//! No line separates {(0,1), (1,0)} from {(0,0), (1,1)}, so y = Wx + b alone fails; one
//! hidden layer with a nonlinearity f bends the input space until a line does:
//!
//! ```text
//! h = tanh(x·W₁ + b₁)      Dense(2 → 8, tanh)   the hidden layer, y = f(Wx + b)
//! z = h·W₂ + b₂            Dense(8 → 1)         one logit per sample
//! L = mean(BCE(σ(z), y))   computed from z directly: max(z,0) − z·y + ln(1 + e^−|z|)
//! ```
//!
//! Backprop gives ∂L/∂W₂ = hᵀ·∂L/∂z and ∂L/∂W₁ = xᵀ·(∂L/∂z·W₂ᵀ ⊙ (1 − h²)) by the chain
//! rule. Adam then updates every weight: its step W ← W − η·m̂/(√v̂ + ε) is SGD's
//! W ← W − η·∂L/∂W with the gradient replaced by its running mean m̂ and divided by its
//! running RMS √v̂, a per-weight step size.
//!
//! ```text
//! cargo run --release --example xor
//! ```
//!
//! Exits with status 1 unless all four points are classified correctly.

use tapegrad::nn::loss::binary_cross_entropy_with_logits;
use tapegrad::prelude::*;

const STEPS: usize = 500;
const PRINT_EVERY: usize = 100;
const LEARNING_RATE: f64 = 0.05;

fn run() -> Result<bool> {
    // The whole data set is one batch of four rows: full-batch training.
    let inputs = [[0.0f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let labels = [0.0f32, 1.0, 1.0, 0.0];
    let x = Tensor::from_vec(inputs.concat(), [4, 2])?;
    // Targets [4, 1] to match the logits exactly: the losses refuse to broadcast [4]
    // against [4, 1], which would silently compare every logit with every label.
    let y = Tensor::from_vec(labels.to_vec(), [4, 1])?;

    // A seeded RNG makes the Glorot-uniform initial weights, and so the whole run,
    // reproducible.
    let mut rng = StdRng::seed_from_u64(0);
    let mut model = Sequential::<f32>::new()
        .add(Dense::new(2, 8, &mut rng)?.with_activation(Activation::Tanh))
        .add(Dense::new(8, 1, &mut rng)?);
    println!("{}", model.summary());

    // No sigmoid on the last layer: the loss takes logits, which is both cheaper and
    // numerically safe (no log of a probability rounded to 0 or 1).
    let mut optimizer = Adam::pytorch(LEARNING_RATE)?;
    for step in 1..=STEPS {
        // Forward and backward in a scope so the graph is freed before the update.
        let (loss, grads) = {
            let logits = model.forward(&x)?;
            let loss = binary_cross_entropy_with_logits(&logits, &y, Reduction::Mean)?;
            (loss.item()?, loss.backward()?)
        };
        optimizer.step(&mut model.trainable_parameters_mut(), &grads)?;
        if step == 1 || step % PRINT_EVERY == 0 {
            println!("step {step:4}: loss {loss:.6}");
        }
    }

    // Predictions: σ(z) is the model's probability that x₁ XOR x₂ = 1.
    let probs = no_grad(|| model.forward(&x).map(|z| z.sigmoid()))?.to_vec();
    let mut correct = 0;
    for ((input, label), p) in inputs.iter().zip(labels).zip(&probs) {
        let predicted = if *p > 0.5 { 1.0 } else { 0.0 };
        let ok = predicted == label;
        correct += usize::from(ok);
        println!(
            "{} XOR {} = {label}: p = {p:.4} → {predicted} {}",
            input[0],
            input[1],
            if ok { "✓" } else { "✗" }
        );
    }
    println!("{correct}/4 correct");
    Ok(correct == 4)
}

fn main() {
    match run() {
        Ok(true) => println!("OK: the MLP learned XOR"),
        Ok(false) => {
            eprintln!("FAILED: the MLP did not learn XOR");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
