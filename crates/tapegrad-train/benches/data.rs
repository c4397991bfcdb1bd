//! The batch gather of the seed's workload: `Dataset::batch` of 32 shuffled MNIST training
//! images (one epoch's batches, in order), with 4 MiB of other memory traffic between batches,
//! as a training step has (so the rows are not left in the cache by the previous batch).
//! Prints the median µs per batch in the `RESULT` format of `../shared/peers`.
//!
//! `products`: the seed step's two large products on real MNIST batches (81% of the pixels
//! exactly zero, clustered in the middle of the image, so they take the zero-skipping path):
//! the forward `x · W1` (32×784 · 784×128) and the weight gradient `xᵀ · g` (784×32 ·
//! 32×128), 8 batches in turn; median µs of each (both stay on the calling thread: they
//! are below the split threshold).
//!
//! `step`: the seed's whole training step (Flatten → Dense(128, relu) → Dropout(0.2) →
//! Dense(10), Keras-form Adam, sparse cross-entropy from logits and the accuracy metric, as
//! `examples/mnist.rs` trains it) over one epoch of real MNIST batches, timed in the phases
//! `fit` runs one after the other: the batch gather, the forward, the loss with the metric,
//! the backward and the optimizer's update. Prints the median µs of each phase over the
//! epoch's steps (the first 20 left out), and the mean of the whole step: medians are steady
//! on a noisy machine, and they say where a step's time goes without a profiler.
//!
//! `dropout`: the seed's `Dropout(0.2)` forward in training mode on a 32×128 batch (4,096
//! draws from its ChaCha12 keystream, the keep mask, the scaled product); median µs.
//!
//! `cargo bench -p tapegrad-train --bench data [-- gather | products | step | dropout]`
//! (reads the shipped `data/mnist`, or `MNIST_DIR`; no argument runs all four).

use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;
use tapegrad_core::{Result, Tensor};
use tapegrad_nn::loss::sparse_categorical_cross_entropy_with_logits;
use tapegrad_nn::{Activation, Dense, Dropout, Flatten, Module, Reduction, Sequential};
use tapegrad_optim::{Adam, Optimizer};
use tapegrad_train::{Dataset, Metric, Mnist};

fn main() {
    let dir = std::env::var("MNIST_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/mnist").to_string());
    let mnist = Mnist::load(&dir).expect("MNIST files (set MNIST_DIR)");
    let part = std::env::args().skip(1).find(|a| a != "--bench");
    if part.as_deref().is_none_or(|p| p == "gather") {
        gather(&mnist.train);
    }
    if part.as_deref().is_none_or(|p| p == "products") {
        products(&mnist.train);
    }
    if part.as_deref().is_none_or(|p| p == "step") {
        step(&mnist.train).expect("training step");
    }
    if part.as_deref().is_none_or(|p| p == "dropout") {
        dropout().expect("dropout");
    }
}

/// The seed's dropout layer alone (see the module docs).
fn dropout() -> Result<()> {
    let mut layer = Dropout::<f32>::new(0.2, 1)?;
    let x = Tensor::from_vec((0..32 * 128).map(|i| i as f32).collect(), [32, 128])?;
    let us = median_us(20_000, || {
        drop(std::hint::black_box(layer.forward(&x).expect("forward")))
    });
    println!("RESULT framework=tapegrad bench=dropout_forward shape=32x128 median_us={us:.2}");
    Ok(())
}

/// The seed's step in phases (see the module docs).
fn step(data: &Dataset) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(0);
    let mut model = Sequential::new()
        .add(Flatten)
        .add(Dense::new(28 * 28, 128, &mut rng)?.with_activation(Activation::Relu))
        .add(Dropout::new(0.2, 1)?)
        .add(Dense::new(128, 10, &mut rng)?);
    let mut optimizer = Adam::keras_default()?;
    let accuracy = Metric::accuracy();
    const PHASES: [&str; 5] = ["gather", "forward", "loss", "backward", "update"];
    let mut times: Vec<[f64; 5]> = Vec::new();
    for idx in &data.batch_indices(32, true, 0, 0, false)? {
        let mut t = [Instant::now(); 6];
        let batch = data.batch::<f32>(idx)?;
        t[1] = Instant::now();
        let out = model.forward(&batch.x)?;
        t[2] = Instant::now();
        let loss = sparse_categorical_cross_entropy_with_logits(&out, batch.y.classes()?, Reduction::Mean)?;
        std::hint::black_box((loss.item()?, accuracy.compute(&out, &batch.y)?));
        t[3] = Instant::now();
        // As `fit` does: the graph released before the update.
        drop(out);
        let grads = loss.backward()?;
        drop(loss);
        t[4] = Instant::now();
        optimizer.step(&mut model.trainable_parameters_mut(), &grads)?;
        t[5] = Instant::now();
        times.push(std::array::from_fn(|k| (t[k + 1] - t[k]).as_secs_f64() * 1e6));
    }
    let steady = &times[20..];
    let mut line = String::from("RESULT framework=tapegrad bench=seed_step");
    for (k, name) in PHASES.iter().enumerate() {
        let mut v: Vec<f64> = steady.iter().map(|r| r[k]).collect();
        v.sort_by(|a, b| a.partial_cmp(b).expect("finite times"));
        line += &format!(" {name}_median_us={:.2}", v[v.len() / 2]);
    }
    let mean = steady.iter().map(|r| r.iter().sum::<f64>()).sum::<f64>() / steady.len() as f64;
    println!("{line} step_mean_us={mean:.2} steps={}", steady.len());
    Ok(())
}

/// Median µs of `f`, called `reps` times.
fn median_us(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).expect("finite times"));
    t[t.len() / 2]
}

fn products(data: &Dataset) {
    let batches = data.batch_indices(32, true, 2, 0, false).expect("batch indices");
    let xs: Vec<Tensor<f32>> = batches[..8]
        .iter()
        .map(|idx| {
            data.batch::<f32>(idx)
                .expect("batch")
                .x
                .reshape([32, 784])
                .expect("flat")
        })
        .collect();
    let fill = |n: usize, k: f32| (0..n).map(|i| ((i as f32 * k).sin()) * 0.1).collect::<Vec<f32>>();
    let w1 = Tensor::from_vec(fill(784 * 128, 0.37), [784, 128]).expect("W1");
    let g = Tensor::from_vec(fill(32 * 128, 0.91), [32, 128]).expect("g");
    let mut i = 0;
    let mut next = || {
        i = (i + 1) % xs.len();
        &xs[i]
    };
    let fwd = median_us(4000, || drop(std::hint::black_box(next().matmul(&w1).expect("x·W1"))));
    let wgrad = median_us(4000, || {
        drop(std::hint::black_box(next().matmul_t(&g, true, false).expect("xᵀ·g")))
    });
    for (shape, us) in [("mnist_x_w1", fwd), ("mnist_xt_g1", wgrad)] {
        println!("RESULT framework=tapegrad bench=seed_product shape={shape} median_us={us:.2} threads=1");
    }
}

fn gather(data: &Dataset) {
    let batches = data.batch_indices(32, true, 1, 0, false).expect("batch indices");
    let other = vec![1u8; 4 << 20];
    let mut times: Vec<f64> = batches
        .iter()
        .map(|idx| {
            let t = Instant::now();
            std::hint::black_box(data.batch::<f32>(idx).expect("batch"));
            let us = t.elapsed().as_secs_f64() * 1e6;
            std::hint::black_box(other.iter().map(|&x| u64::from(x)).sum::<u64>());
            us
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).expect("finite times"));
    println!(
        "RESULT framework=tapegrad bench=batch_gather batch=32 median_us={:.2} p90_us={:.2} batches={}",
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        times.len()
    );
}
