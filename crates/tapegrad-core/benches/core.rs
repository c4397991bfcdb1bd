//! Core benchmarks, printed in the `RESULT` format of `../shared/peers`:
//!
//! - f32 square matmul GFLOP/s (2n³ / median time) through tapegrad's `matmul` (the built-in
//!   packed GEMM, AVX-512 or AVX2 chosen at run time, split over rayon's pool; the system CBLAS
//!   with the `blas` feature) — the `gemm` crate (what candle uses) is measured through the
//!   candle peer in `../shared/peers`, so this crate does not build it;
//! - tape cost: a chain of 10,000 ops (`y+1e-4`, `y·0.9999`, `tanh y`) on a 1-element tensor,
//!   forward and backward, in µs per op (median of 15 runs); `anomaly`: the same chain with
//!   anomaly mode on;
//! - `func`: what the function transforms cost on an MLP loss, relative to one forward and
//!   one backward pass.
//!
//! - `conv`: conv2d forward + backward GFLOP/s at the MNIST CNN's two layers
//!   (`examples/mnist_cnn.rs`, batch 128), beside the rate of a plain GEMM of the forward's
//!   whole-batch shape (`[O, C·kh·kw] × [C·kh·kw, N·OH·OW]`), for reference.
//!
//! - `block`: the CNN's Conv2D(relu) → MaxPool(2) blocks forward + backward, as two ops and
//!   as the fused `conv2d_relu_max_pool2d`, alternated.
//!
//! - `wake`: what handing work to rayon's pool costs after the pool has idled for a gap of
//!   0 µs to 10 ms (a `join` of two empty closures): the price of splitting a small piece of
//!   a training step over the second core.
//!
//! - `seedmm`: GFLOP/s of each product in one step of the seed's MLP (batch 32), and of its
//!   two large products again on an input as sparse as MNIST's (`xsparse_*`: the zero-skipping
//!   path).
//!
//! - `floors`: what one core can do at best on the seed step's largest pieces, for the
//!   accounting in BENCHMARKS.md: the zero-skipping product's inner loop (per nonzero, 8
//!   fused multiply-adds over 64 columns, the sums in registers, B in L1) for 9,584 steps —
//!   one product on an MNIST batch, 4,792 nonzeros × 2 groups of columns — in rows of 6
//!   and of 37 steps (the weight gradient's and the forward's); the square root and
//!   division of an Adam update over 101,770 `f32` (one divider); a read-modify-write
//!   stream over Adam's 2.8 MB (θ, m, v read and written, g read). Median µs of each.
//!
//! `cargo bench -p tapegrad-core --bench core [-- matmul [SIZES…] | seedmm | tape | anomaly | func | conv | pool | block | wake | floors]`
//! (set `RAYON_NUM_THREADS=2` to match the peers; no argument runs every part).

use std::time::Instant;
use tapegrad_core::{detect_anomaly_guard, func, Result, Tensor};

const CHAIN: usize = 10_000;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median seconds per call: at least `min_reps` calls and at least `min_s` seconds.
fn time_median(mut f: impl FnMut(), min_reps: usize, min_s: f64) -> (f64, usize) {
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < min_reps || start.elapsed().as_secs_f64() < min_s {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    let n = times.len();
    (median(&mut times), n)
}

fn main() {
    let threads = rayon::current_num_threads();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let part = args.first().map(String::as_str).unwrap_or("all");
    if part == "all" || part == "matmul" {
        let sizes: Vec<usize> = args.iter().filter_map(|s| s.parse().ok()).collect();
        matmul(
            if sizes.is_empty() {
                &[128, 256, 512, 1024]
            } else {
                &sizes
            },
            threads,
        );
    }
    if part == "all" || part == "seedmm" {
        seed_products(threads);
    }
    if part == "all" || part == "tape" {
        tape_chain(false);
    }
    if part == "all" || part == "anomaly" {
        tape_chain(true);
    }
    if part == "all" || part == "func" {
        transforms();
    }
    if part == "all" || part == "conv" {
        conv(threads);
    }
    if part == "all" || part == "pool" {
        pool(threads);
    }
    if part == "all" || part == "block" {
        block(threads);
    }
    if part == "all" || part == "wake" {
        wake(threads);
    }
    if part == "all" || part == "floors" {
        floors();
    }
}

/// The inner loop of a zero-skipping product: for each nonzero `(offset, v)`, 64 columns of
/// `acc += v · B[row]`, the sums held in registers.
#[multiversion::multiversion(targets = "simd")]
fn fma_chains(rows: &[(usize, usize)], nz: &[(usize, f32)], b: &[f32], out: &mut [[f32; 64]]) {
    for (&(lo, hi), o) in rows.iter().zip(out.iter_mut()) {
        let mut acc = [0f32; 64];
        for &(off, v) in &nz[lo..hi] {
            let br: &[f32; 64] = b[off..off + 64].try_into().unwrap();
            for (x, &y) in acc.iter_mut().zip(br) {
                *x = v.mul_add(y, *x);
            }
        }
        *o = acc;
    }
}

/// Adam's divider work alone: `q = m / (√v + ε)`.
#[multiversion::multiversion(targets = "simd")]
fn sqrt_div(m: &[f32], v: &[f32], q: &mut [f32]) {
    for ((q, &m), &v) in q.iter_mut().zip(m).zip(v) {
        *q = m / (v.sqrt() + 1e-7);
    }
}

/// Adam's memory traffic alone: θ, m and v read and written, g read, with no arithmetic
/// that would bind before the memory does.
#[multiversion::multiversion(targets = "simd")]
fn stream(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        *m += g;
        *v += g;
        *p -= g;
    }
}

fn floors() {
    // 9,584 steps (one product on an MNIST batch: 4,792 nonzeros × 2 groups of 64 columns) in
    // rows of 6 (the weight gradient's: a pixel's nonzeros among 32 images) or 37 (the
    // forward's: an image's nonzeros in a 196-deep slice); B of 64 rows × 128 columns
    // (32 KB, in L1), the offsets scattered.
    for per in [6usize, 37] {
        let rows: Vec<(usize, usize)> = (0..9_584 / per).map(|r| (r * per, r * per + per)).collect();
        let nz: Vec<(usize, f32)> = (0..9_584)
            .map(|i| ((i * 13) % 64 * 128, (i % 5) as f32 * 0.1))
            .collect();
        let b: Vec<f32> = (0..64 * 128).map(|i| (i % 7) as f32).collect();
        let mut out = vec![[0f32; 64]; rows.len()];
        let (t, _) = time_median(|| fma_chains(&rows, &nz, &b, std::hint::black_box(&mut out)), 200, 0.5);
        println!(
            "RESULT framework=tapegrad bench=floor part=fma_chains steps={} per_row={per} median_us={:.2}",
            rows.len() * per,
            t * 1e6
        );
    }
    let n = 101_770;
    let m: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos().abs() + 1e-3).collect();
    let mut q = vec![0f32; n];
    let (t, _) = time_median(|| sqrt_div(&m, &v, std::hint::black_box(&mut q)), 200, 0.5);
    println!(
        "RESULT framework=tapegrad bench=floor part=adam_sqrt_div elements={n} median_us={:.2}",
        t * 1e6
    );
    let (mut p, mut m2, mut v2) = (m.clone(), m.clone(), v.clone());
    let g = v.clone();
    let (t, _) = time_median(|| stream(&mut p, &mut m2, std::hint::black_box(&mut v2), &g), 200, 0.5);
    println!(
        "RESULT framework=tapegrad bench=floor part=adam_stream bytes={} median_us={:.2}",
        n * 4 * 7,
        t * 1e6
    );
}

/// Median and 90th-percentile µs of `rayon::join` on two empty closures, called from
/// outside the pool after it has idled for each gap (200 calls per gap).
fn wake(threads: usize) {
    for gap_us in [0u64, 100, 1_000, 10_000] {
        let mut t: Vec<f64> = (0..200)
            .map(|_| {
                std::thread::sleep(std::time::Duration::from_micros(gap_us));
                let t0 = Instant::now();
                rayon::join(|| std::hint::black_box(1), || std::hint::black_box(2));
                t0.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        let p90 = {
            t.sort_by(|a, b| a.partial_cmp(b).unwrap());
            t[t.len() * 9 / 10]
        };
        println!(
            "RESULT framework=tapegrad bench=pool_wake idle_gap_us={gap_us} join_median_us={:.1} join_p90_us={p90:.1} threads={threads}",
            median(&mut t)
        );
    }
}

/// The CNN's two Conv2D(relu) → MaxPool(2) blocks (batch 128), forward + backward, as
/// `conv2d_relu` then `max_pool2d` and as the one op `conv2d_relu_max_pool2d`, alternated
/// call by call so the machine's load hits both alike; median milliseconds of each.
fn block(threads: usize) {
    use tapegrad_core::ops::conv::Padding;
    let layers: [(&str, [usize; 4], [usize; 4], bool); 2] = [
        ("conv1", [128, 1, 28, 28], [32, 1, 3, 3], false),
        ("conv2", [128, 32, 13, 13], [64, 32, 3, 3], true),
    ];
    let values = |dims: [usize; 4], k: f32| {
        let n = dims.iter().product::<usize>();
        Tensor::<f32>::from_vec((0..n).map(|i| (i as f32 * k).sin() * 0.5).collect(), dims).unwrap()
    };
    for (name, xd, wd, x_grad) in layers {
        let x = values(xd, 0.37);
        let x = if x_grad { x.requires_grad() } else { x };
        let w = values(wd, 0.61).requires_grad();
        let b = Tensor::<f32>::full([wd[0]], 0.01).unwrap().requires_grad();
        // The pooled output: half the convolution's (`H − kh + 1`), rounded down.
        let conv_out = |d: usize| xd[d] - wd[d] + 1;
        let (oh, ow) = (conv_out(2) / 2, conv_out(3) / 2);
        let seed = Tensor::<f32>::ones([xd[0], wd[0], oh, ow]).unwrap();
        let run = |fused: bool| {
            let y = if fused {
                x.conv2d_relu_max_pool2d(&w, Some(&b), [1, 1], Padding::Valid, [1, 1], 1, [2, 2], None, [0, 0])
            } else {
                x.conv2d_relu(&w, Some(&b), [1, 1], Padding::Valid, [1, 1], 1)
                    .and_then(|y| y.max_pool2d([2, 2], None, [0, 0]))
            };
            std::hint::black_box(y.unwrap().backward_with(&seed, false).unwrap());
        };
        let (mut separate, mut fused) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            run(false);
            run(true);
        }
        let start = Instant::now();
        while separate.len() < 10 || start.elapsed().as_secs_f64() < 2.0 {
            for (f, times) in [(false, &mut separate), (true, &mut fused)] {
                let t = Instant::now();
                run(f);
                times.push(t.elapsed().as_secs_f64());
            }
        }
        let reps = separate.len();
        println!(
            "RESULT framework=tapegrad bench=conv_relu_pool layer={name} threads={threads} separate_ms={:.2} \
             fused_ms={:.2} reps={reps}",
            median(&mut separate) * 1e3,
            median(&mut fused) * 1e3,
        );
    }
}

/// max_pool2d (2×2, stride 2) forward, and forward + backward, at the CNN's shapes.
fn pool(threads: usize) {
    for (name, d) in [("pool1", [128, 32, 26, 26]), ("pool2", [128, 64, 11, 11])] {
        let n: usize = d.iter().product();
        // Distinct-ish values in no order, so the windows' maxima fall anywhere.
        let v = (0..n).map(|i| ((i * 7919) % 1009) as f32).collect();
        let x = Tensor::<f32>::from_vec(v, d).unwrap().requires_grad();
        let plain = x.detach();
        let (tf, _) = time_median(
            || drop(std::hint::black_box(plain.max_pool2d([2, 2], None, [0, 0]).unwrap())),
            5,
            1.0,
        );
        let (t, reps) = time_median(
            || {
                let y = x.max_pool2d([2, 2], None, [0, 0]).unwrap();
                std::hint::black_box(y.sum_all().backward().unwrap());
            },
            5,
            1.0,
        );
        println!(
            "RESULT framework=tapegrad bench=max_pool2d layer={name} threads={threads} fwd_ms={:.3} \
             fwd_bwd_ms={:.3} reps={reps}",
            tf * 1e3,
            t * 1e3
        );
    }
}

/// conv2d forward + backward at the CNN's shapes: (input dims, weight dims, whether the
/// input needs its gradient, as in the network).
fn conv(threads: usize) {
    use tapegrad_core::ops::conv::Padding;
    let layers: [(&str, [usize; 4], [usize; 4], bool); 2] = [
        ("conv1", [128, 1, 28, 28], [32, 1, 3, 3], false),
        ("conv2", [128, 32, 13, 13], [64, 32, 3, 3], true),
    ];
    for (name, xd, wd, x_grad) in layers {
        let x = Tensor::<f32>::full(xd, 0.5).unwrap();
        let x = if x_grad { x.requires_grad() } else { x };
        let w = Tensor::<f32>::full(wd, 0.1).unwrap().requires_grad();
        let b = Tensor::<f32>::full([wd[0]], 0.1).unwrap().requires_grad();
        let (oh, ow) = (xd[2] - wd[2] + 1, xd[3] - wd[3] + 1);
        let (k, cols) = (wd[1] * wd[2] * wd[3], xd[0] * oh * ow);
        let fwd = 2.0 * (wd[0] * k * cols) as f64;
        let flops = fwd * if x_grad { 3.0 } else { 2.0 };
        let (wp, bp) = (w.detach(), b.detach());
        let (tf, _) = time_median(
            || {
                drop(std::hint::black_box(x.detach().conv2d(
                    &wp,
                    Some(&bp),
                    [1, 1],
                    Padding::Valid,
                    [1, 1],
                    1,
                )))
            },
            5,
            1.0,
        );
        // The output's gradient: ones, made once (not a broadcast the sweep would copy).
        let seed = Tensor::<f32>::ones([xd[0], wd[0], oh, ow]).unwrap();
        let (t, reps) = time_median(
            || {
                let y = x.conv2d(&w, Some(&b), [1, 1], Padding::Valid, [1, 1], 1).unwrap();
                std::hint::black_box(y.backward_with(&seed, false).unwrap());
            },
            5,
            1.0,
        );
        let a = Tensor::<f32>::full([wd[0], k], 0.1).unwrap();
        let bm = Tensor::<f32>::full([k, cols], 0.5).unwrap();
        let (tg, _) = time_median(|| drop(std::hint::black_box(a.matmul(&bm).unwrap())), 5, 1.0);
        println!(
            "RESULT framework=tapegrad bench=conv2d layer={name} threads={threads} fwd_ms={:.2} fwd_bwd_ms={:.2} \
             gflops={:.1} gemm_gflops={:.1} reps={reps}",
            tf * 1e3,
            t * 1e3,
            flops / t / 1e9,
            fwd / tg / 1e9
        );
    }
}

/// f32 square matmul GFLOP/s.
fn matmul(sizes: &[usize], threads: usize) {
    for &n in sizes {
        let a = Tensor::<f32>::from_vec((0..n * n).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect(), [n, n]).unwrap();
        let b = Tensor::<f32>::from_vec((0..n * n).map(|i| ((i % 13) as f32 - 6.0) / 6.0).collect(), [n, n]).unwrap();
        let flop = 2.0 * (n as f64).powi(3);
        let (t, reps) = time_median(|| drop(std::hint::black_box(a.matmul(&b).unwrap())), 10, 1.0);
        println!(
            "RESULT framework=tapegrad bench=matmul_f32 n={n} median_s={t:.6} gflops={:.1} reps={reps} threads={threads}",
            flop / t / 1e9
        );
    }
}

/// GFLOP/s of the products in one step of the seed's MLP (batch 32, 784 → 128 → 10): the
/// forward `x·W1` (32×784·784×128), the weight gradient `xᵀ·g` (784×32·32×128), and the
/// second layer's forward, weight gradient and input gradient (`h·W2`, `hᵀ·g2`, `g2·W2ᵀ`).
fn seed_products(threads: usize) {
    let mat = |r: usize, c: usize, s: usize| {
        Tensor::<f32>::from_vec((0..r * c).map(|i| ((i % s) as f32 - 8.0) / 8.0).collect(), [r, c]).unwrap()
    };
    let (x, w1, g1) = (mat(32, 784, 17), mat(784, 128, 13), mat(32, 128, 11));
    let (h, w2, g2) = (mat(32, 128, 7), mat(128, 10, 5), mat(32, 10, 3));
    // An input as sparse as MNIST's (19% of pixels nonzero), scattered.
    let xs = Tensor::<f32>::from_vec(
        (0..32 * 784)
            .map(|i| {
                if (i * 37) % 100 < 19 {
                    ((i % 255) + 1) as f32 / 255.0
                } else {
                    0.0
                }
            })
            .collect(),
        [32, 784],
    )
    .unwrap();
    // (name, a, b, transpose a, transpose b, multiply-adds)
    type Case<'a> = (&'a str, &'a Tensor<f32>, &'a Tensor<f32>, bool, bool, usize);
    let cases: [Case; 7] = [
        ("x_w1", &x, &w1, false, false, 32 * 784 * 128),
        ("xt_g1", &x, &g1, true, false, 32 * 784 * 128),
        ("xsparse_w1", &xs, &w1, false, false, 32 * 784 * 128),
        ("xsparset_g1", &xs, &g1, true, false, 32 * 784 * 128),
        ("h_w2", &h, &w2, false, false, 32 * 128 * 10),
        ("ht_g2", &h, &g2, true, false, 32 * 128 * 10),
        ("g2_w2t", &g2, &w2, false, true, 32 * 128 * 10),
    ];
    for (name, a, b, ta, tb, macs) in cases {
        let (t, reps) = time_median(|| drop(std::hint::black_box(a.matmul_t(b, ta, tb).unwrap())), 50, 0.5);
        println!(
            "RESULT framework=tapegrad bench=seed_product shape={name} median_us={:.2} gflops={:.1} reps={reps} threads={threads}",
            t * 1e6,
            2.0 * macs as f64 / t / 1e9
        );
    }
}

/// Tape cost on tiny tensors: forward, backward, and freeing the graph.
fn tape_chain(anomaly: bool) {
    let _guard = anomaly.then(detect_anomaly_guard);
    let (mut fwd, mut bwd, mut total) = (Vec::new(), Vec::new(), Vec::new());
    let mut g = 0.0;
    for _ in 0..15 {
        let x = Tensor::<f32>::scalar(0.3).requires_grad();
        let t0 = Instant::now();
        let mut y = x.clone();
        for i in 0..CHAIN {
            y = match i % 3 {
                0 => y.add_scalar(1e-4),
                1 => y.mul_scalar(0.9999),
                _ => y.tanh(),
            };
        }
        let t1 = Instant::now();
        let grads = y.backward().unwrap();
        g = grads.wrt(&x).unwrap().item().unwrap();
        let t2 = Instant::now();
        drop((y, grads));
        let t3 = Instant::now();
        fwd.push((t1 - t0).as_secs_f64());
        bwd.push((t2 - t1).as_secs_f64());
        total.push((t3 - t0).as_secs_f64());
    }
    let us = |v: &mut Vec<f64>| median(v) / CHAIN as f64 * 1e6;
    println!(
        "RESULT framework=tapegrad bench=autograd_chain{} ops={CHAIN} us_per_op={:.3} fwd_us_per_op={:.3} bwd_us_per_op={:.3} reps=15 grad={g:.6e}",
        if anomaly { "_anomaly" } else { "" },
        us(&mut total),
        us(&mut fwd),
        us(&mut bwd)
    );
}

/// Transforms of an MLP loss (batch 256, 64 → 128 → 10, tanh, f64), in units of its plain
/// forward and backward passes. The variants run interleaved, one call each per round, and
/// the median over 40 rounds is kept, so that a machine's changing load hits them alike.
fn transforms() {
    use rand::{rngs::StdRng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(0);
    let mut rand = |dims: [usize; 2]| Tensor::<f64>::rand_uniform(dims, -0.5, 0.5, &mut rng).unwrap();
    let (x, y) = (rand([256, 64]), rand([256, 10]));
    let ws = [rand([64, 128]), rand([128, 10])];
    let vs = [rand([64, 128]), rand([128, 10])];
    let loss = |w: &[Tensor<f64>]| -> Result<Tensor<f64>> {
        Ok(x.matmul(&w[0])?.tanh().matmul(&w[1])?.sub(&y)?.square().mean_all())
    };
    let fwd_bwd = || {
        let w: Vec<Tensor<f64>> = ws.iter().map(|w| w.detach().requires_grad()).collect();
        loss(&w).unwrap().backward().unwrap();
    };
    type Variant<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let variants: Vec<Variant<'_>> = vec![
        ("forward", Box::new(|| drop(loss(&ws).unwrap()))),
        ("forward_backward", Box::new(fwd_bwd)),
        (
            "forward_backward_anomaly",
            Box::new(|| {
                let _on = detect_anomaly_guard();
                fwd_bwd();
            }),
        ),
        (
            "value_and_grad",
            Box::new(|| drop(func::value_and_grad(loss, &ws).unwrap())),
        ),
        (
            "vjp",
            Box::new(|| {
                let (_, pull) = func::vjp(loss, &ws).unwrap();
                pull.call(&Tensor::scalar(1.0)).unwrap();
            }),
        ),
        ("jvp", Box::new(|| drop(func::jvp(loss, &ws, &vs).unwrap()))),
        ("hvp", Box::new(|| drop(func::hvp(loss, &ws, &vs).unwrap()))),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..43 {
        for ((_, f), t) in variants.iter().zip(&mut times) {
            let start = Instant::now();
            f();
            if round >= 3 {
                t.push(start.elapsed().as_secs_f64());
            }
        }
    }
    let med: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
    let (fwd, bwd) = (med[0], med[1] - med[0]);
    let mut line = format!(
        "RESULT framework=tapegrad bench=func_mlp forward_us={:.1} backward_us={:.1}",
        fwd * 1e6,
        bwd * 1e6
    );
    for ((name, _), t) in variants.iter().zip(&med).skip(2) {
        line += &format!(" {name}_us={:.1} {name}_backwards={:.2}", t * 1e6, (t - fwd) / bwd);
    }
    println!("{line} (x_backwards = (time - forward) / backward)");
}
