//! One optimizer step over the seed MLP's parameters (784×128 + 128 + 128×10 + 10 =
//! 101,770 values, f32), for Keras-form Adam (the seed's optimizer) and plain SGD beside it
//! (the memory pass without Adam's square root and division). Prints the median µs per
//! step in the `RESULT` format of `../shared/peers`.
//!
//! `cargo bench -p tapegrad-optim --bench update`

use std::time::Instant;
use tapegrad_optim::{Adam, Optimizer, Sgd};

const SHAPES: [usize; 4] = [784 * 128, 128, 128 * 10, 10];

/// One parameter's update for `step_slices`: name, values, gradient.
type Slot<'a> = (&'a str, &'a mut [f32], Option<&'a [f32]>);

fn median_us(opt: &mut dyn FnMut(&mut [Slot])) -> f64 {
    let mut params: Vec<Vec<f32>> = SHAPES.iter().map(|&n| vec![0.01; n]).collect();
    let grads: Vec<Vec<f32>> = SHAPES
        .iter()
        .map(|&n| (0..n).map(|i| ((i % 17) as f32 - 8.0) * 1e-3).collect())
        .collect();
    let mut times = Vec::new();
    for rep in 0..2100 {
        let mut slices: Vec<Slot> = params
            .iter_mut()
            .zip(&grads)
            .zip(["w1", "b1", "w2", "b2"])
            .map(|((p, g), name)| (name, &mut p[..], Some(&g[..])))
            .collect();
        let t = Instant::now();
        opt(&mut slices);
        if rep >= 100 {
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).expect("finite times"));
    times[times.len() / 2]
}

fn main() {
    let mut adam = Adam::<f32>::keras(1e-3).expect("adam");
    let adam_us = median_us(&mut |s| adam.step_slices(s).expect("adam step"));
    let mut sgd = Sgd::<f32>::keras(1e-3).expect("sgd");
    let sgd_us = median_us(&mut |s| sgd.step_slices(s).expect("sgd step"));
    println!(
        "RESULT framework=tapegrad bench=optimizer_step params=101770 adam_keras_us={adam_us:.2} sgd_us={sgd_us:.2}"
    );
}
