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
//! `cargo bench -p tapegrad-train --bench data [-- gather | products]` (reads the shipped
//! `data/mnist`, or `MNIST_DIR`; no argument runs both).

use std::time::Instant;
use tapegrad_core::Tensor;
use tapegrad_train::{Dataset, Mnist};

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
