//! The batch gather of the seed's workload: `Dataset::batch` of 32 shuffled MNIST training
//! images (one epoch's batches, in order), with 4 MiB of other memory traffic between batches,
//! as a training step has (so the rows are not left in the cache by the previous batch).
//! Prints the median µs per batch in the `RESULT` format of `../shared/peers`.
//!
//! `cargo bench -p tapegrad-train --bench data` (reads the shipped `data/mnist`, or
//! `MNIST_DIR`).

use std::time::Instant;
use tapegrad_train::Mnist;

fn main() {
    let dir = std::env::var("MNIST_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/mnist").to_string());
    let mnist = Mnist::load(&dir).expect("MNIST files (set MNIST_DIR)");
    let data = &mnist.train;
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
