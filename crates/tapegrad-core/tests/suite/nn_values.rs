//! Values of the neural-network ops against independent naive loops in f64 (PyTorch's
//! definitions written out directly), and their errors on bad arguments.

use rand::{rngs::StdRng, Rng, SeedableRng};
use tapegrad_core::ops::conv::Padding;
use tapegrad_core::ops::norm::RunningStats;
use tapegrad_core::{Error, IndexTensor, Tensor};

fn rand_t(rng: &mut StdRng, dims: &[usize]) -> Tensor<f64> {
    let n = dims.iter().product();
    Tensor::from_vec((0..n).map(|_| rng.random_range(-2.0..2.0)).collect(), dims.to_vec()).unwrap()
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
    }
}

/// PyTorch's conv2d by its definition: seven nested loops.
#[allow(clippy::too_many_arguments)]
fn naive_conv2d(
    x: &Tensor<f64>,
    w: &Tensor<f64>,
    b: Option<&Tensor<f64>>,
    s: [usize; 2],
    p: [[usize; 2]; 2],
    d: [usize; 2],
    groups: usize,
) -> (Vec<usize>, Vec<f64>) {
    let (n, h, wd) = (x.dims()[0], x.dims()[2], x.dims()[3]);
    let (o, cg, kh, kw) = (w.dims()[0], w.dims()[1], w.dims()[2], w.dims()[3]);
    let oh = (h + p[0][0] + p[0][1] - d[0] * (kh - 1) - 1) / s[0] + 1;
    let ow = (wd + p[1][0] + p[1][1] - d[1] * (kw - 1) - 1) / s[1] + 1;
    let og = o / groups;
    let mut out = vec![0.0; n * o * oh * ow];
    for ni in 0..n {
        for oi in 0..o {
            let g = oi / og;
            for y in 0..oh {
                for xx in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b.data()[oi]);
                    for ci in 0..cg {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (y * s[0] + i * d[0]) as isize - p[0][0] as isize;
                                let ix = (xx * s[1] + j * d[1]) as isize - p[1][0] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let cin = g * cg + ci;
                                acc += w.get(&[oi, ci, i, j]).unwrap()
                                    * x.get(&[ni, cin, iy as usize, ix as usize]).unwrap();
                            }
                        }
                    }
                    out[((ni * o + oi) * oh + y) * ow + xx] = acc;
                }
            }
        }
    }
    (vec![n, o, oh, ow], out)
}

#[test]
fn conv2d_matches_the_seven_loop_definition() {
    let mut rng = StdRng::seed_from_u64(7);
    for trial in 0..60 {
        let groups = [1, 2, 3][trial % 3];
        let (cg, og) = (rng.random_range(1..=3), rng.random_range(1..=3));
        let (n, h, w) = (
            rng.random_range(1..=3),
            rng.random_range(3..=9),
            rng.random_range(3..=9),
        );
        let k = [rng.random_range(1..=3), rng.random_range(1..=3)];
        let s = [rng.random_range(1..=3), rng.random_range(1..=3)];
        let d = [rng.random_range(1..=2), rng.random_range(1..=2)];
        let p = [rng.random_range(0..=2), rng.random_range(0..=2)];
        let x = rand_t(&mut rng, &[n, groups * cg, h, w]);
        let wt = rand_t(&mut rng, &[groups * og, cg, k[0], k[1]]);
        let b = rand_t(&mut rng, &[groups * og]);
        let Ok(y) = x.conv2d(&wt, Some(&b), s, p, d, groups) else {
            // Only a kernel larger than the padded input may be refused.
            assert!((0..2).any(|i| d[i] * (k[i] - 1) + 1 > [h, w][i] + 2 * p[i]));
            continue;
        };
        let (dims, want) = naive_conv2d(&x, &wt, Some(&b), s, [[p[0], p[0]], [p[1], p[1]]], d, groups);
        assert_eq!(y.dims(), &dims[..], "trial {trial}");
        close(y.data(), &want, 1e-12);
    }
}

#[test]
fn same_padding_puts_the_odd_cell_after() {
    // PyTorch's 'same' with an even kernel: total padding d·(k − 1), the extra cell at the end.
    let mut rng = StdRng::seed_from_u64(3);
    let x = rand_t(&mut rng, &[2, 2, 5, 6]);
    let w = rand_t(&mut rng, &[3, 2, 4, 2]);
    let y = x.conv2d(&w, None, [1, 1], Padding::Same, [1, 2], 1).unwrap();
    let (dims, want) = naive_conv2d(&x, &w, None, [1, 1], [[1, 2], [1, 1]], [1, 2], 1);
    assert_eq!(dims, vec![2, 3, 5, 6]);
    close(y.data(), &want, 1e-12);
    let valid = x.conv2d(&w, None, [1, 1], Padding::Valid, [1, 1], 1).unwrap();
    assert_eq!(valid.dims(), &[2, 3, 2, 5]);
    assert!(x.conv2d(&w, None, [2, 1], Padding::Same, [1, 1], 1).is_err());
}

#[test]
fn conv1d_is_conv2d_over_one_row() {
    let mut rng = StdRng::seed_from_u64(4);
    let x = rand_t(&mut rng, &[2, 4, 9]);
    let w = rand_t(&mut rng, &[6, 2, 3]);
    let b = rand_t(&mut rng, &[6]);
    let y = x.conv1d(&w, Some(&b), 2, 1, 2, 2).unwrap();
    let (dims, want) = naive_conv2d(
        &x.reshape([2, 4, 1, 9]).unwrap(),
        &w.reshape([6, 2, 1, 3]).unwrap(),
        Some(&b),
        [1, 2],
        [[0, 0], [1, 1]],
        [1, 2],
        2,
    );
    assert_eq!(y.dims(), &[dims[0], dims[1], dims[3]]);
    close(y.data(), &want, 1e-12);
}

#[test]
fn conv_errors_name_the_op_and_shapes() {
    let x = Tensor::<f64>::zeros([1, 4, 3, 3]).unwrap();
    let big = Tensor::<f64>::zeros([2, 4, 5, 5]).unwrap();
    let e = x.conv2d(&big, None, [1, 1], 0, [1, 1], 1).unwrap_err().to_string();
    assert!(
        e.contains("conv2d") && e.contains("larger than the padded input"),
        "{e}"
    );
    assert!(x.conv2d(&big, None, [1, 1], 1, [1, 1], 1).is_ok());
    // The fused op checks the same way and names itself.
    let e = x.conv2d_relu(&big, None, [1, 1], 0, [1, 1], 1).unwrap_err().to_string();
    assert!(
        e.contains("conv2d_relu") && e.contains("larger than the padded input"),
        "{e}"
    );
    let w = Tensor::<f64>::zeros([3, 2, 1, 1]).unwrap();
    let e = x.conv2d_relu(&w, None, [1, 1], 0, [1, 1], 2).unwrap_err().to_string();
    assert!(e.contains("conv2d_relu") && e.contains("groups=2"), "{e}");
    // So does conv2d_relu_max_pool2d, for its convolution and for its pooling (over the
    // convolution's output, [1, 2, 1, 1] here).
    let fused = |w: &Tensor<f64>, pad: usize, pool_pad: usize| {
        x.conv2d_relu_max_pool2d(w, None, [1, 1], pad, [1, 1], 1, [2, 2], None, [pool_pad; 2])
    };
    let e = fused(&big, 0, 0).unwrap_err().to_string();
    assert!(
        e.contains("conv2d_relu_max_pool2d") && e.contains("larger than the padded input"),
        "{e}"
    );
    let w1 = Tensor::<f64>::zeros([2, 4, 3, 3]).unwrap();
    let e = fused(&w1, 0, 0).unwrap_err().to_string();
    assert!(e.contains("conv2d_relu_max_pool2d") && e.contains("input 1×1"), "{e}");
    let e = fused(&w1, 1, 2).unwrap_err().to_string();
    assert!(
        e.contains("conv2d_relu_max_pool2d") && e.contains("at most half"),
        "{e}"
    );
    assert!(fused(&w1, 1, 0).is_ok());
    let w = Tensor::<f64>::zeros([3, 2, 1, 1]).unwrap();
    let e = x.conv2d(&w, None, [1, 1], 0, [1, 1], 2).unwrap_err().to_string();
    assert!(
        e.contains("conv2d") && e.contains("groups=2") && e.contains("[3, 2, 1, 1]"),
        "{e}"
    );
    let w = Tensor::<f64>::zeros([2, 3, 1, 1]).unwrap();
    assert!(x.conv2d(&w, None, [1, 1], 0, [1, 1], 1).is_err());
    let w = Tensor::<f64>::zeros([2, 4, 1, 1]).unwrap();
    let b = Tensor::<f64>::zeros([3]).unwrap();
    assert!(x.conv2d(&w, Some(&b), [1, 1], 0, [1, 1], 1).is_err());
    assert!(x.conv2d(&w, None, [0, 1], 0, [1, 1], 1).is_err());
    let e = Tensor::<f64>::zeros([1, 4, 3])
        .unwrap()
        .conv1d(&Tensor::zeros([1, 4, 5]).unwrap(), None, 1, 0, 1, 1);
    assert!(e.unwrap_err().to_string().contains("conv1d"));
}

fn naive_pool(x: &Tensor<f64>, k: [usize; 2], s: [usize; 2], p: [usize; 2], max: bool) -> (Vec<usize>, Vec<f64>) {
    let (n, c, h, w) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let oh = (h + 2 * p[0] - k[0]) / s[0] + 1;
    let ow = (w + 2 * p[1] - k[1]) / s[1] + 1;
    let mut out = Vec::new();
    for ni in 0..n {
        for ci in 0..c {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut acc: f64 = if max { f64::NEG_INFINITY } else { 0.0 };
                    for i in 0..k[0] {
                        for j in 0..k[1] {
                            let iy = (y * s[0] + i) as isize - p[0] as isize;
                            let ix = (xx * s[1] + j) as isize - p[1] as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let v = x.get(&[ni, ci, iy as usize, ix as usize]).unwrap();
                            acc = if max { acc.max(v) } else { acc + v };
                        }
                    }
                    out.push(if max { acc } else { acc / (k[0] * k[1]) as f64 });
                }
            }
        }
    }
    (vec![n, c, oh, ow], out)
}

#[test]
fn pooling_matches_its_definition() {
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..60 {
        let d = [
            rng.random_range(1..=2),
            rng.random_range(1..=3),
            rng.random_range(2..=8),
            rng.random_range(2..=8),
        ];
        let k = [rng.random_range(1..=3), rng.random_range(1..=3)];
        let s = [rng.random_range(1..=3), rng.random_range(1..=3)];
        let p = [rng.random_range(0..=k[0] / 2), rng.random_range(0..=k[1] / 2)];
        if k[0] > d[2] + 2 * p[0] || k[1] > d[3] + 2 * p[1] {
            continue;
        }
        let x = rand_t(&mut rng, &d);
        for max in [true, false] {
            let y = if max {
                x.max_pool2d(k, Some(s), p)
            } else {
                x.avg_pool2d(k, Some(s), p)
            }
            .unwrap();
            let (dims, want) = naive_pool(&x, k, s, p, max);
            assert_eq!(y.dims(), &dims[..]);
            close(y.data(), &want, 1e-12);
        }
    }
}

#[test]
fn max_pool_ties_and_nan_follow_pytorch() {
    // A window of equal values sends its gradient to the first in scan order.
    let x = Tensor::<f64>::from_vec(vec![3.0, 3.0, 3.0, 3.0], [1, 1, 2, 2])
        .unwrap()
        .requires_grad();
    let g = x
        .max_pool2d([2, 2], None, [0, 0])
        .unwrap()
        .sum_all()
        .backward()
        .unwrap();
    assert_eq!(g.wrt(&x).unwrap().to_vec(), vec![1.0, 0.0, 0.0, 0.0]);
    // A NaN propagates, and its cell takes the gradient.
    let x = Tensor::<f64>::from_vec(vec![1.0, f64::NAN, 5.0, 2.0], [1, 1, 2, 2])
        .unwrap()
        .requires_grad();
    let y = x.max_pool2d([2, 2], None, [0, 0]).unwrap();
    assert!(y.item().unwrap().is_nan());
    let g = y.sum_all().backward().unwrap();
    assert_eq!(g.wrt(&x).unwrap().to_vec(), vec![0.0, 1.0, 0.0, 0.0]);
    // Padding counts as −∞: an all-negative window with padding still picks a real cell.
    let x = Tensor::<f64>::full([1, 1, 1, 1], -4.0).unwrap();
    assert_eq!(x.max_pool2d([3, 3], Some([1, 1]), [1, 1]).unwrap().to_vec(), vec![-4.0]);
    assert!(
        x.max_pool2d([2, 2], None, [2, 2]).is_err(),
        "padding over half the kernel"
    );
    assert!(
        x.max_pool2d([2, 2], None, [0, 0]).is_err(),
        "kernel larger than the input"
    );
}

#[test]
fn adaptive_avg_pool_regions_follow_pytorch() {
    let x = Tensor::<f64>::arange(0.0, 25.0, 1.0)
        .unwrap()
        .reshape([1, 1, 5, 5])
        .unwrap();
    let y = x.adaptive_avg_pool2d([2, 3]).unwrap();
    // Rows 0..3 and 2..5; columns 0..2, 1..4, 3..5.
    let mean = |r: std::ops::Range<usize>, c: std::ops::Range<usize>| {
        let v: Vec<f64> = r.flat_map(|i| c.clone().map(move |j| (i * 5 + j) as f64)).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let want = [
        mean(0..3, 0..2),
        mean(0..3, 1..4),
        mean(0..3, 3..5),
        mean(2..5, 0..2),
        mean(2..5, 1..4),
        mean(2..5, 3..5),
    ];
    close(y.data(), &want, 1e-12);
    assert_eq!(x.adaptive_avg_pool2d([1, 1]).unwrap().to_vec(), vec![12.0]);
}

#[test]
fn batch_norm_statistics_follow_pytorch() {
    let mut rng = StdRng::seed_from_u64(5);
    let x = rand_t(&mut rng, &[4, 3, 2, 2]);
    let (mut mean, mut var) = (Tensor::zeros([3]).unwrap(), Tensor::ones([3]).unwrap());
    let w = rand_t(&mut rng, &[3]);
    let b = rand_t(&mut rng, &[3]);
    let running = RunningStats {
        mean: &mut mean,
        var: &mut var,
    };
    let y = x
        .batch_norm(Some(running), Some(&w), Some(&b), true, 0.1, 1e-5)
        .unwrap();
    for c in 0..3 {
        let vals: Vec<f64> = (0..4)
            .flat_map(|n| (0..4).map(move |k| (n, k)))
            .map(|(n, k)| x.get(&[n, c, k / 2, k % 2]).unwrap())
            .collect();
        let m = vals.iter().sum::<f64>() / 16.0;
        let v = vals.iter().map(|a| (a - m).powi(2)).sum::<f64>() / 16.0;
        assert!((mean.data()[c] - 0.1 * m).abs() < 1e-14);
        assert!((var.data()[c] - (0.9 + 0.1 * v * 16.0 / 15.0)).abs() < 1e-14);
        let want = (x.get(&[1, c, 1, 0]).unwrap() - m) / (v + 1e-5).sqrt() * w.data()[c] + b.data()[c];
        assert!((y.get(&[1, c, 1, 0]).unwrap() - want).abs() < 1e-12);
    }
    // Evaluation uses the running statistics.
    let running = RunningStats {
        mean: &mut mean,
        var: &mut var,
    };
    let e = x.batch_norm(Some(running), None, None, false, 0.1, 1e-5).unwrap();
    let want = (x.get(&[2, 1, 0, 1]).unwrap() - mean.data()[1]) / (var.data()[1] + 1e-5).sqrt();
    assert!((e.get(&[2, 1, 0, 1]).unwrap() - want).abs() < 1e-12);
    assert!(x.batch_norm(None, None, None, false, 0.1, 1e-5).is_err());
    // One value per channel in training is refused, as in PyTorch.
    let one = rand_t(&mut rng, &[1, 3]);
    let err = one.batch_norm(None, None, None, true, 0.1, 1e-5).unwrap_err();
    assert!(matches!(err, Error::BadShape { op: "batch_norm", .. }) && err.to_string().contains("more than 1 value"));
    assert!(rand_t(&mut rng, &[2, 3])
        .batch_norm(None, None, None, true, 0.1, 1e-5)
        .is_ok());
}

#[test]
fn layer_norm_matches_its_definition() {
    let mut rng = StdRng::seed_from_u64(6);
    let x = rand_t(&mut rng, &[3, 2, 4]);
    let w = rand_t(&mut rng, &[2, 4]);
    let b = rand_t(&mut rng, &[2, 4]);
    let y = x.layer_norm(&[2, 4], Some(&w), Some(&b), 1e-5).unwrap();
    for r in 0..3 {
        let v = &x.data()[r * 8..r * 8 + 8];
        let m = v.iter().sum::<f64>() / 8.0;
        let var = v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / 8.0;
        let want: Vec<f64> = (0..8)
            .map(|i| (v[i] - m) / (var + 1e-5).sqrt() * w.data()[i] + b.data()[i])
            .collect();
        close(&y.data()[r * 8..r * 8 + 8], &want, 1e-12);
    }
    assert!(x.layer_norm(&[4, 2], None, None, 1e-5).is_err());
    assert!(x.layer_norm(&[4], Some(&w), None, 1e-5).is_err());
}

#[test]
fn activations_match_reference_values() {
    // erf and Φ from tables (Abramowitz & Stegun / mpmath to 17 digits).
    let x = Tensor::<f64>::from_vec(vec![-1.5, 0.5, 2.0], [3]).unwrap();
    close(
        &x.erf().to_vec(),
        &[
            -0.966_105_146_475_310_7,
            0.520_499_877_813_046_5,
            0.995_322_265_018_952_7,
        ],
        1e-15,
    );
    let phi = [
        0.066_807_201_268_858_06,
        0.691_462_461_274_013_1,
        0.977_249_868_051_820_8,
    ];
    let want: Vec<f64> = x.data().iter().zip(phi).map(|(v, p)| v * p).collect();
    close(&x.gelu().unwrap().to_vec(), &want, 1e-15);
    let tanh: Vec<f64> = x
        .data()
        .iter()
        .map(|&v: &f64| 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh()))
        .collect();
    close(&x.gelu_tanh().unwrap().to_vec(), &tanh, 1e-15);
    let silu: Vec<f64> = x.data().iter().map(|v| v / (1.0 + (-v).exp())).collect();
    close(&x.silu().unwrap().to_vec(), &silu, 1e-15);
    let f = Tensor::<f32>::from_vec(vec![0.5], [1]).unwrap();
    assert!((f.erf().item().unwrap() - 0.520_499_9).abs() < 1e-7);
}

#[test]
fn embedding_gathers_rows_and_checks_range() {
    let table = Tensor::<f64>::arange(0.0, 12.0, 1.0).unwrap().reshape([4, 3]).unwrap();
    let ids = IndexTensor::from_vec(vec![3, 1, 1, 0], [2, 2]).unwrap();
    let y = Tensor::embedding(&ids, &table).unwrap();
    assert_eq!(y.dims(), &[2, 2, 3]);
    assert_eq!(y.to_vec()[..6], [9., 10., 11., 3., 4., 5.]);
    let bad = IndexTensor::from_vec(vec![4], [1]).unwrap();
    let err = Tensor::embedding(&bad, &table).unwrap_err();
    assert!(
        matches!(
            err,
            Error::IndexOutOfRange {
                op: "embedding",
                index: 4,
                size: 4
            }
        ),
        "{err}"
    );
}

#[test]
fn attention_matches_its_definition() {
    let mut rng = StdRng::seed_from_u64(9);
    let (b, tq, tk, d, dv) = (2, 3, 4, 5, 2);
    let q = rand_t(&mut rng, &[b, tq, d]);
    let k = rand_t(&mut rng, &[b, tk, d]);
    let v = rand_t(&mut rng, &[b, tk, dv]);
    let mask = rand_t(&mut rng, &[tq, tk]);
    for causal in [false, true] {
        let y = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(&mask), causal).unwrap();
        assert_eq!(y.dims(), &[b, tq, dv]);
        for bi in 0..b {
            for i in 0..tq {
                let scores: Vec<f64> = (0..tk)
                    .map(|j| {
                        if causal && j > i {
                            return f64::NEG_INFINITY;
                        }
                        let dot: f64 = (0..d)
                            .map(|e| q.get(&[bi, i, e]).unwrap() * k.get(&[bi, j, e]).unwrap())
                            .sum();
                        dot / (d as f64).sqrt() + mask.get(&[i, j]).unwrap()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                for e in 0..dv {
                    let want: f64 = (0..tk)
                        .map(|j| (scores[j] - m).exp() / z * v.get(&[bi, j, e]).unwrap())
                        .sum();
                    assert!((y.get(&[bi, i, e]).unwrap() - want).abs() < 1e-12);
                }
            }
        }
    }
    assert!(Tensor::scaled_dot_product_attention(&q, &v, &v, None, false).is_err());
}
