//! Linear regression by minibatch SGD: the seed tutorial's three equations, with nothing
//! hidden.
//!
//! ```text
//! layer:     ŷ = W·x + b                 (f is the identity: a linear layer)
//! loss:      L = mean((ŷ − y)²)          (mean squared error over a minibatch)
//! backprop:  ∂L/∂W, ∂L/∂b                (the tape applies the chain rule for us)
//! SGD:       W ← W − η·∂L/∂W,  b ← b − η·∂L/∂b
//! ```
//!
//! We generate 1000 noisy samples from a known line, y = 2·x₁ − 3.4·x₂ + 4.2 + noise, and
//! check that training recovers W = [2, −3.4] and b = 4.2. The model is trained twice from
//! the same start and on the same minibatches: once with the SGD update written out by
//! hand on the parameters' buffers, once with `tapegrad::optim::Sgd`, which must agree.
//!
//! ```text
//! cargo run --release --example linear_regression
//! ```
//!
//! Exits with status 1 if the learned parameters are not within 0.01 of the true ones.

use tapegrad::nn::rand::seq::SliceRandom;
use tapegrad::prelude::*;

/// The line the data comes from, and which training must recover.
const TRUE_W: [f32; 2] = [2.0, -3.4];
const TRUE_B: f32 = 4.2;
const SAMPLES: usize = 1000;
/// Standard deviation of the label noise: the best fit cannot be better than this.
const NOISE: f32 = 0.01;

const LEARNING_RATE: f32 = 0.03;
const BATCH_SIZE: usize = 10;
const EPOCHS: usize = 3;
/// How close to the true parameters the fit must get for the example to succeed.
const TOLERANCE: f32 = 0.01;

/// The synthetic data set: features `x: [N, 2]`, labels `y: [N, 1]`.
fn synthetic_data(rng: &mut StdRng) -> Result<(Tensor<f32>, Tensor<f32>)> {
    // x ~ N(0, 1): features of unit scale keep one learning rate right for both weights.
    let x = Tensor::<f32>::rand_normal([SAMPLES, 2], 0.0, 1.0, rng)?;
    // W is stored [in, out] = [2, 1], so a whole batch is one matmul: Y = X·W + b.
    // (The tutorial writes W·x for one column vector x; X·W is the same for a batch of rows.)
    let w = Tensor::from_vec(TRUE_W.to_vec(), [2, 1])?;
    let noise = Tensor::rand_normal([SAMPLES, 1], 0.0, NOISE, rng)?;
    let y = x.matmul(&w)?.add_scalar(TRUE_B).add(&noise)?;
    Ok((x, y))
}

/// The model ŷ = X·W + b for a batch of rows (`b: [1]` broadcasts over the batch).
fn predict(x: &Tensor<f32>, w: &Tensor<f32>, b: &Tensor<f32>) -> Result<Tensor<f32>> {
    x.matmul(w)?.add(b)
}

/// L = mean((ŷ − y)²), written with tensor ops so that every step is recorded on the tape.
fn mse_loss(pred: &Tensor<f32>, y: &Tensor<f32>) -> Result<Tensor<f32>> {
    let err = pred.sub(y)?;
    Ok(err.mul(&err)?.mean_all())
}

/// The starting point of both runs: small random weights, zero bias. `requires_grad`
/// makes them leaves of the tape, so `backward` returns ∂L/∂W and ∂L/∂b.
fn init_params(rng: &mut StdRng) -> Result<(Tensor<f32>, Tensor<f32>)> {
    let w = Tensor::<f32>::rand_normal([2, 1], 0.0, 0.01, rng)?.requires_grad();
    let b = Tensor::<f32>::zeros([1])?.requires_grad();
    Ok((w, b))
}

/// One epoch's minibatches: a fresh shuffle of the sample indices, cut into batches.
/// Drawn up front from a seeded RNG so both runs below see exactly the same batches.
fn minibatches(rng: &mut StdRng) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..SAMPLES).collect();
    order.shuffle(rng);
    order.chunks(BATCH_SIZE).map(|c| c.to_vec()).collect()
}

/// Trains `(w, b)` with `update` applying one SGD step given the gradients; returns the
/// loss on the whole data set after each epoch.
fn train(
    x: &Tensor<f32>,
    y: &Tensor<f32>,
    w: &mut Tensor<f32>,
    b: &mut Tensor<f32>,
    epochs: &[Vec<Vec<usize>>],
    mut update: impl FnMut(&mut Tensor<f32>, &mut Tensor<f32>, &Gradients<f32>) -> Result<()>,
) -> Result<Vec<f32>> {
    let mut losses = Vec::new();
    for batches in epochs {
        for batch in batches {
            // Forward and backward in their own scope: once the loss (and with it the
            // recorded graph, which holds a reference to W's buffer) is dropped, the
            // in-place update below writes W's buffer directly instead of copying it.
            let grads = {
                let (xb, yb) = (x.index_select(0, batch)?, y.index_select(0, batch)?);
                let loss = mse_loss(&predict(&xb, w, b)?, &yb)?;
                loss.backward()?
            };
            update(w, b, &grads)?;
        }
        // Evaluation needs no gradients: `no_grad` records nothing on the tape.
        let full = no_grad(|| mse_loss(&predict(x, w, b)?, y))?;
        losses.push(full.item()?);
    }
    Ok(losses)
}

/// The seed's update, W ← W − η·∂L/∂W, on one parameter's buffer.
fn sgd_by_hand(param: &mut Tensor<f32>, grads: &Gradients<f32>, lr: f32) -> Result<()> {
    // `wrt` looks the gradient up by the parameter's tape identity; `data_mut` keeps that
    // identity, so next step's gradient is found under the same tensor.
    let grad = grads.wrt(param)?;
    for (w, dl_dw) in param.data_mut().iter_mut().zip(grad.data()) {
        *w -= lr * dl_dw;
    }
    Ok(())
}

fn run() -> Result<bool> {
    let mut rng = StdRng::seed_from_u64(42);
    let (x, y) = synthetic_data(&mut rng)?;
    let (w0, b0) = init_params(&mut rng)?;
    let epochs: Vec<Vec<Vec<usize>>> = (0..EPOCHS).map(|_| minibatches(&mut rng)).collect();
    println!(
        "data: {SAMPLES} samples of y = {TRUE_W:?}·x + {TRUE_B} + N(0, {NOISE}²); \
         SGD with η = {LEARNING_RATE}, batch {BATCH_SIZE}, {EPOCHS} epochs"
    );

    // 1. SGD written out: after backward, W ← W − η·∂L/∂W and b ← b − η·∂L/∂b.
    // (`detach().requires_grad()` makes fresh leaves with w0's values, so the two runs
    // train independent copies of the same starting point.)
    let (mut w, mut b) = (w0.detach().requires_grad(), b0.detach().requires_grad());
    let losses = train(&x, &y, &mut w, &mut b, &epochs, |w, b, grads| {
        sgd_by_hand(w, grads, LEARNING_RATE)?;
        sgd_by_hand(b, grads, LEARNING_RATE)
    })?;
    for (epoch, loss) in losses.iter().enumerate() {
        println!("[by hand] epoch {}: loss {loss:.6}", epoch + 1);
    }

    // 2. The same update through the optimizer API: `Sgd` applies exactly W ← W − η·g.
    let (mut w_opt, mut b_opt) = (w0.detach().requires_grad(), b0.detach().requires_grad());
    let mut sgd = Sgd::pytorch(f64::from(LEARNING_RATE))?;
    let losses_opt = train(&x, &y, &mut w_opt, &mut b_opt, &epochs, |w, b, grads| {
        sgd.step(&mut [("w".to_string(), w), ("b".to_string(), b)], grads)
    })?;
    for (epoch, loss) in losses_opt.iter().enumerate() {
        println!("[optim::Sgd] epoch {}: loss {loss:.6}", epoch + 1);
    }

    let (w_hand, b_hand) = (w.to_vec(), b.item()?);
    let (w_sgd, b_sgd) = (w_opt.to_vec(), b_opt.item()?);
    println!("true       W = [{:.4}, {:.4}], b = {:.4}", TRUE_W[0], TRUE_W[1], TRUE_B);
    println!("by hand    W = [{:.4}, {:.4}], b = {b_hand:.4}", w_hand[0], w_hand[1]);
    println!("optim::Sgd W = [{:.4}, {:.4}], b = {b_sgd:.4}", w_sgd[0], w_sgd[1]);

    // Both runs did the same arithmetic on the same batches, so they should agree to
    // rounding; and both should have recovered the line to within the noise.
    let runs_agree = w_hand.iter().zip(&w_sgd).all(|(a, b)| (a - b).abs() < 1e-5) && (b_hand - b_sgd).abs() < 1e-5;
    let err = |w: &[f32], b: f32| {
        w.iter()
            .zip(TRUE_W)
            .map(|(w, t)| (w - t).abs())
            .fold((b - TRUE_B).abs(), f32::max)
    };
    let (err_hand, err_sgd) = (err(&w_hand, b_hand), err(&w_sgd, b_sgd));
    println!("largest |learned − true|: by hand {err_hand:.2e}, optim::Sgd {err_sgd:.2e} (tolerance {TOLERANCE})");
    let max_diff = w_hand
        .iter()
        .zip(&w_sgd)
        .map(|(a, b)| (a - b).abs())
        .fold((b_hand - b_sgd).abs(), f32::max);
    println!("by hand vs optim::Sgd: max |difference| = {max_diff:.1e}");
    if !runs_agree {
        eprintln!("the hand-written update and optim::Sgd disagree");
    }
    Ok(runs_agree && err_hand < TOLERANCE && err_sgd < TOLERANCE)
}

fn main() {
    match run() {
        Ok(true) => println!("OK: linear regression recovered W and b"),
        Ok(false) => {
            eprintln!("FAILED: linear regression did not recover W and b");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
