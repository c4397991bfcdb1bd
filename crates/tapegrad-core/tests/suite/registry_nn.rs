//! Registry entries for the neural-network ops (convolution, pooling, normalization,
//! embedding, activations, attention): random shapes, strides, paddings, dilations and
//! groups, swept by the registry's gradcheck and gradgradcheck like every other op.

use crate::common::*;
use crate::registry::{case, sample, unary, OpCase};
use proptest::prelude::*;
use tapegrad_core::ops::conv::{Padding, Window2d};
use tapegrad_core::ops::norm::RunningStats;
use tapegrad_core::{func, IndexTensor, Tensor};

/// `n` distinct values spread over [−2, 2) in random order (gaps ≥ 4/n: no ties for max).
fn spread(n: usize) -> impl Strategy<Value = Vec<f64>> {
    Just((0..n).collect::<Vec<usize>>()).prop_shuffle().prop_map(move |p| {
        p.into_iter()
            .map(|i| -2.0 + 4.0 * (i as f64 + 0.5) / n as f64)
            .collect()
    })
}

/// A convolution's hyper-parameters, with the kernel fitting the padded input.
#[derive(Clone, Debug)]
struct ConvSpec {
    n: usize,
    groups: usize,
    cg: usize,
    og: usize,
    hw: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
    same: bool,
    bias: bool,
}

impl ConvSpec {
    /// The padding argument: `same`, or the numbers.
    fn padding(&self) -> Padding {
        if self.same {
            Padding::Same
        } else {
            Padding::from(self.pad)
        }
    }
}

fn conv_spec() -> impl Strategy<Value = ConvSpec> {
    (
        (1usize..=2, 1usize..=2, 1usize..=2, 1usize..=2),
        (
            [1usize..=5, 1usize..=5],
            [1usize..=3, 1usize..=3],
            [1usize..=2, 1usize..=2],
        ),
        (
            [0usize..=2, 0usize..=2],
            [1usize..=2, 1usize..=2],
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((n, groups, cg, og), (hw, kernel, stride), (pad, dilation, same, bias))| {
                let stride = if same { [1, 1] } else { stride };
                ConvSpec {
                    n,
                    groups,
                    cg,
                    og,
                    hw,
                    kernel,
                    stride,
                    pad,
                    dilation,
                    same,
                    bias,
                }
            },
        )
        .prop_filter("kernel larger than the padded input", |s| {
            (0..2).all(|d| s.same || s.dilation[d] * (s.kernel[d] - 1) < s.hw[d] + 2 * s.pad[d])
        })
}

/// conv2d, or (`relu`) conv2d_relu, on an input, a weight and maybe a bias; conv2d_relu's
/// outputs are kept ≥ 1e-3 from ReLU's kink, where finite differences fail.
fn conv2d_case(name: &'static str, relu: bool) -> OpCase {
    case(
        name,
        conv_spec()
            .prop_flat_map(|s| {
                let (c, o) = (s.groups * s.cg, s.groups * s.og);
                (
                    tensor(vec![s.n, c, s.hw[0], s.hw[1]], |n| values(n, -2.0, 2.0)),
                    tensor(vec![o, s.cg, s.kernel[0], s.kernel[1]], |n| values(n, -1.0, 1.0)),
                    tensor(vec![o], |n| values(n, -1.0, 1.0)),
                    Just(s),
                )
            })
            .prop_filter("an output within 1e-3 of 0", move |(x, w, b, s)| {
                !relu || {
                    let b = s.bias.then_some(b);
                    let z = x.conv2d(w, b, s.stride, s.padding(), s.dilation, s.groups).unwrap();
                    z.data().iter().all(|v| v.abs() > 1e-3)
                }
            })
            .prop_map(move |(x, w, b, s)| {
                let mut inputs = vec![x, w];
                if s.bias {
                    inputs.push(b);
                }
                sample(inputs, format!("{name} {s:?}"), move |xs| {
                    let (w, b, pad) = (&xs[1], xs.get(2), s.padding());
                    if relu {
                        xs[0].conv2d_relu(w, b, s.stride, pad, s.dilation, s.groups)
                    } else {
                        xs[0].conv2d(w, b, s.stride, pad, s.dilation, s.groups)
                    }
                })
            }),
    )
}

/// Whether every pooling window (`kernel`, `stride`, `pad`) of `z [N, C, H, W]` whose
/// maximum is positive has it at least `gap` above the window's runner-up: where it is not,
/// a small step moves the maximum to another cell and finite differences fail.
fn clear_maxima(z: &Tensor<f64>, kernel: [usize; 2], stride: [usize; 2], pad: [usize; 2], gap: f64) -> bool {
    let d = z.dims();
    let (h, w) = (d[2], d[3]);
    let out = |i: usize, len: usize| (len + 2 * pad[i] - kernel[i]) / stride[i] + 1;
    let data = z.data();
    data.chunks(h * w).all(|plane| {
        (0..out(0, h)).all(|p| {
            (0..out(1, w)).all(|q| {
                let mut v: Vec<f64> = (0..kernel[0])
                    .flat_map(|i| (0..kernel[1]).map(move |j| (i, j)))
                    .filter_map(|(i, j)| {
                        let y = (p * stride[0] + i).checked_sub(pad[0]).filter(|&y| y < h)?;
                        let x = (q * stride[1] + j).checked_sub(pad[1]).filter(|&x| x < w)?;
                        Some(plane[y * w + x])
                    })
                    .collect();
                v.sort_by(|a, b| b.total_cmp(a));
                v.len() < 2 || v[0] <= 0.0 || v[0] - v[1] > gap
            })
        })
    })
}

/// conv2d_relu_max_pool2d on an input, a weight and maybe a bias, with a random pooling
/// (window 1–3, stride default or 1–2, padding up to half the window) that fits the
/// convolution's output; the convolution's outputs kept ≥ 1e-3 from ReLU's kink and the
/// windows' positive maxima ≥ 1e-3 above their runners-up.
fn conv_pool_case() -> OpCase {
    let pool = (
        [1usize..=3, 1usize..=3],
        proptest::option::of([1usize..=2, 1usize..=2]),
        [0usize..=1, 0usize..=1],
    );
    case(
        "conv2d_relu_max_pool2d",
        (conv_spec(), pool)
            .prop_flat_map(|(s, (pk, ps, pp))| {
                let (c, o) = (s.groups * s.cg, s.groups * s.og);
                let pp = [pp[0].min(pk[0] / 2), pp[1].min(pk[1] / 2)];
                (
                    tensor(vec![s.n, c, s.hw[0], s.hw[1]], |n| values(n, -2.0, 2.0)),
                    tensor(vec![o, s.cg, s.kernel[0], s.kernel[1]], |n| values(n, -1.0, 1.0)),
                    tensor(vec![o], |n| values(n, -1.0, 1.0)),
                    Just((s, pk, ps, pp)),
                )
            })
            .prop_filter(
                "a pooling that does not fit, or an output near a kink",
                |(x, w, b, (s, pk, ps, pp))| {
                    let b = s.bias.then_some(b);
                    let z = x.conv2d(w, b, s.stride, s.padding(), s.dilation, s.groups).unwrap();
                    (0..2).all(|i| pk[i] <= z.dims()[2 + i] + 2 * pp[i])
                        && z.data().iter().all(|v| v.abs() > 1e-3)
                        && clear_maxima(&z, *pk, ps.unwrap_or(*pk), *pp, 1e-3)
                },
            )
            .prop_map(|(x, w, b, (s, pk, ps, pp))| {
                let mut inputs = vec![x, w];
                if s.bias {
                    inputs.push(b);
                }
                let name = format!("conv2d_relu_max_pool2d {s:?} pool {pk:?} {ps:?} {pp:?}");
                sample(inputs, name, move |xs| {
                    let (w, b, pad) = (&xs[1], xs.get(2), s.padding());
                    xs[0].conv2d_relu_max_pool2d(w, b, s.stride, pad, s.dilation, s.groups, pk, ps, pp)
                })
            }),
    )
}

/// The rule of conv2d as ops of their own: `conv2d_input_grad` (`pick` 0, ∂x),
/// `conv2d_weight_grad` (`pick` 1, ∂W) or `conv2d_bias_grad` (`pick` 2, ∂b) of a cotangent
/// `v`, as the recorded pullback of conv2d (with a bias) gives them, so that their rules
/// (each other and conv2d) are swept too.
fn conv2d_grad_case(name: &'static str, pick: usize) -> OpCase {
    case(
        name,
        conv_spec()
            .prop_flat_map(|s| {
                let (c, o) = (s.groups * s.cg, s.groups * s.og);
                let out = |d: usize| {
                    if s.same {
                        s.hw[d]
                    } else {
                        (s.hw[d] + 2 * s.pad[d] - s.dilation[d] * (s.kernel[d] - 1) - 1) / s.stride[d] + 1
                    }
                };
                (
                    tensor(vec![s.n, c, s.hw[0], s.hw[1]], |n| values(n, -2.0, 2.0)),
                    tensor(vec![o, s.cg, s.kernel[0], s.kernel[1]], |n| values(n, -1.0, 1.0)),
                    tensor(vec![o], |n| values(n, -1.0, 1.0)),
                    tensor(vec![s.n, o, out(0), out(1)], |n| values(n, -1.0, 1.0)),
                    Just(s),
                )
            })
            .prop_map(move |(x, w, b, v, s)| {
                sample(vec![x, w, b, v], format!("{name} {s:?}"), move |xs| {
                    let conv = |ys: &[Tensor<f64>]| {
                        ys[0].conv2d(&ys[1], Some(&ys[2]), s.stride, s.padding(), s.dilation, s.groups)
                    };
                    let (_, pullback) = func::vjp(conv, &xs[..3])?;
                    Ok(pullback.call(&xs[3])?.remove(pick))
                })
            }),
    )
}

fn conv1d_case() -> OpCase {
    case(
        "conv1d",
        conv_spec()
            .prop_flat_map(|s| {
                let (c, o) = (s.groups * s.cg, s.groups * s.og);
                (
                    tensor(vec![s.n, c, s.hw[1]], |n| values(n, -2.0, 2.0)),
                    tensor(vec![o, s.cg, s.kernel[1]], |n| values(n, -1.0, 1.0)),
                    tensor(vec![o], |n| values(n, -1.0, 1.0)),
                    Just(s),
                )
            })
            .prop_map(|(x, w, b, s)| {
                let desc = format!("conv1d {s:?}");
                sample(vec![x, w, b], desc, move |xs| {
                    let pad = if s.same { Padding::Same } else { Padding::from(s.pad[1]) };
                    xs[0].conv1d(&xs[1], Some(&xs[2]), s.stride[1], pad, s.dilation[1], s.groups)
                })
            }),
    )
}

/// A window over a random image, and its output size.
fn window_case() -> impl Strategy<Value = (Vec<usize>, Window2d)> {
    conv_spec()
        .prop_map(|s| {
            let w = Window2d::new(s.kernel)
                .stride(s.stride)
                .padding([[s.pad[0], s.pad[1]], [s.pad[1], s.pad[0]]])
                .dilation(s.dilation);
            (vec![s.n, s.cg, s.hw[0], s.hw[1]], w)
        })
        .prop_filter("kernel larger than the padded input", |(d, w)| {
            w.output_size("t", [d[2], d[3]]).is_ok()
        })
}

fn im2col_cases() -> Vec<OpCase> {
    vec![
        case(
            "im2col",
            window_case()
                .prop_flat_map(|(d, w)| (tensor(d, |n| values(n, -2.0, 2.0)), Just(w)))
                .prop_map(|(x, w)| sample(vec![x], format!("im2col {w:?}"), move |xs| xs[0].im2col(&w))),
        ),
        case(
            "col2im",
            window_case()
                .prop_flat_map(|(d, w)| {
                    let [oh, ow] = w.output_size("t", [d[2], d[3]]).unwrap();
                    let shape = vec![d[1] * w.kernel[0] * w.kernel[1], d[0] * oh * ow];
                    (
                        tensor(shape, |n| values(n, -2.0, 2.0)),
                        Just(w),
                        Just([d[0], d[1], d[2], d[3]]),
                    )
                })
                .prop_map(|(c, w, d)| sample(vec![c], format!("col2im {w:?} to {d:?}"), move |xs| xs[0].col2im(&w, d))),
        ),
    ]
}

/// A pooling input `[N, C, H, W]` with kernel, optional stride and padding ≤ kernel/2.
fn pool_spec() -> impl Strategy<Value = (Vec<usize>, [usize; 2], Option<[usize; 2]>, [usize; 2])> {
    (
        1usize..=2,
        1usize..=2,
        [1usize..=5, 1usize..=5],
        [1usize..=3, 1usize..=3],
        prop::option::of([1usize..=3, 1usize..=3]),
        [0usize..=1, 0usize..=1],
    )
        .prop_map(|(n, c, hw, k, s, p)| {
            let p = [p[0].min(k[0] / 2), p[1].min(k[1] / 2)];
            (vec![n, c, hw[0], hw[1]], k, s, p)
        })
        .prop_filter("kernel larger than the padded input", |(d, k, _, p)| {
            (0..2).all(|i| k[i] <= d[2 + i] + 2 * p[i])
        })
}

fn pool_cases() -> Vec<OpCase> {
    vec![
        case(
            "max_pool2d",
            pool_spec()
                .prop_flat_map(|(d, k, s, p)| (tensor(d, spread), Just((k, s, p))))
                .prop_map(|(x, (k, s, p))| {
                    sample(vec![x], format!("max_pool2d k {k:?} s {s:?} p {p:?}"), move |xs| {
                        xs[0].max_pool2d(k, s, p)
                    })
                }),
        ),
        case(
            // The rule of max_pool2d as an op of its own (a cotangent `v` scattered to the
            // argmax cells), so that its rule — a gather there — is swept too.
            "max_pool2d_backward",
            pool_spec()
                .prop_flat_map(|(d, k, s, p)| {
                    let s = s.unwrap_or(k);
                    let out = |i: usize| (d[2 + i] + 2 * p[i] - k[i]) / s[i] + 1;
                    let vd = vec![d[0], d[1], out(0), out(1)];
                    (tensor(d, spread), tensor(vd, |n| values(n, -2.0, 2.0)), Just((k, s, p)))
                })
                .prop_map(|(x, v, (k, s, p))| {
                    sample(
                        vec![x, v],
                        format!("max_pool2d_backward k {k:?} s {s:?} p {p:?}"),
                        move |xs| {
                            let (_, pullback) =
                                func::vjp(|ys: &[Tensor<f64>]| ys[0].max_pool2d(k, Some(s), p), &xs[..1])?;
                            Ok(pullback.call(&xs[1])?.remove(0))
                        },
                    )
                }),
        ),
        case(
            "avg_pool2d",
            pool_spec()
                .prop_flat_map(|(d, k, s, p)| (tensor(d, |n| values(n, -2.0, 2.0)), Just((k, s, p))))
                .prop_map(|(x, (k, s, p))| {
                    sample(vec![x], format!("avg_pool2d k {k:?} s {s:?} p {p:?}"), move |xs| {
                        xs[0].avg_pool2d(k, s, p)
                    })
                }),
        ),
        case(
            "adaptive_avg_pool2d",
            (pool_spec(), [1usize..=3, 1usize..=3])
                .prop_flat_map(|((d, ..), o)| (tensor(d, |n| values(n, -2.0, 2.0)), Just(o)))
                .prop_map(|(x, o)| {
                    sample(vec![x], format!("adaptive_avg_pool2d to {o:?}"), move |xs| {
                        xs[0].adaptive_avg_pool2d(o)
                    })
                }),
        ),
    ]
}

fn norm_cases() -> Vec<OpCase> {
    vec![
        case(
            "layer_norm",
            (shape(1, 3), 1usize..=2, any::<bool>())
                .prop_map(|(s, k, affine)| {
                    let k = k.min(s.len());
                    (s.clone(), s[s.len() - k..].to_vec(), affine)
                })
                .prop_filter("one value to normalize", |(_, ns, _)| ns.iter().product::<usize>() > 1)
                .prop_flat_map(|(s, ns, affine)| {
                    (
                        tensor(s, |n| values(n, -2.0, 2.0)),
                        tensor(ns.clone(), |n| values(n, 0.5, 1.5)),
                        tensor(ns.clone(), |n| values(n, -1.0, 1.0)),
                        Just((ns, affine)),
                    )
                })
                .prop_map(|(x, w, b, (ns, affine))| {
                    let inputs = if affine { vec![x, w, b] } else { vec![x] };
                    sample(inputs, format!("layer_norm over {ns:?} affine {affine}"), move |xs| {
                        xs[0].layer_norm(&ns, xs.get(1), xs.get(2), 1e-5)
                    })
                }),
        ),
        case(
            "batch_norm",
            (shape(2, 4), any::<bool>())
                .prop_filter("one value per channel", |(s, _)| s.iter().product::<usize>() / s[1] > 1)
                .prop_flat_map(|(s, training)| {
                    let c = s[1];
                    (
                        tensor(s, |n| values(n, -2.0, 2.0)),
                        tensor(vec![c], |n| values(n, 0.5, 1.5)),
                        tensor(vec![c], |n| values(n, -1.0, 1.0)),
                        Just(training),
                    )
                })
                .prop_map(|(x, w, b, training)| {
                    sample(vec![x, w, b], format!("batch_norm training {training}"), move |xs| {
                        let c = xs[0].dims()[1];
                        let (mut mean, mut var) = (Tensor::full([c], 0.3)?, Tensor::full([c], 1.7)?);
                        let running = RunningStats {
                            mean: &mut mean,
                            var: &mut var,
                        };
                        xs[0].batch_norm(Some(running), Some(&xs[1]), Some(&xs[2]), training, 0.1, 1e-5)
                    })
                }),
        ),
    ]
}

fn embedding_case() -> OpCase {
    case(
        "embedding",
        (1usize..=4, 1usize..=3, shape(1, 2))
            .prop_flat_map(|(v, e, s)| {
                let n: usize = s.iter().product();
                (
                    tensor(vec![v, e], |n| values(n, -2.0, 2.0)),
                    prop::collection::vec(0..v, n),
                    Just(s),
                )
            })
            .prop_map(|(w, idx, s)| {
                let ids = IndexTensor::from_vec(idx, s).unwrap();
                sample(vec![w], format!("embedding {:?}", ids.data()), move |xs| {
                    Tensor::embedding(&ids, &xs[0])
                })
            }),
    )
}

fn attention_case() -> OpCase {
    case(
        "scaled_dot_product_attention",
        (
            shape(0, 2),
            1usize..=3,
            1usize..=3,
            1usize..=3,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_flat_map(|(batch, tq, tk, d, masked, causal)| {
                let with = |t: usize| {
                    let mut s = batch.clone();
                    s.extend([t, d]);
                    tensor(s, |n| values(n, -2.0, 2.0))
                };
                // The causal mask keeps key 0 for every query, so no row is fully masked.
                (
                    with(tq),
                    with(tk),
                    with(tk),
                    tensor(vec![tq, tk], |n| values(n, -1.0, 1.0)),
                    Just((masked, causal)),
                )
            })
            .prop_map(|(q, k, v, m, (masked, causal))| {
                sample(
                    vec![q, k, v],
                    format!("sdpa mask {masked} causal {causal}"),
                    move |xs| {
                        Tensor::scaled_dot_product_attention(&xs[0], &xs[1], &xs[2], masked.then_some(&m), causal)
                    },
                )
            }),
    )
}

/// The neural-network ops' registry entries.
pub(crate) fn nn_op_cases() -> Vec<OpCase> {
    let sym = |n| values(n, -2.0, 2.0);
    let mut cases = vec![
        conv2d_case("conv2d", false),
        conv2d_case("conv2d_relu", true),
        conv_pool_case(),
        conv2d_grad_case("conv2d_input_grad", 0),
        conv2d_grad_case("conv2d_weight_grad", 1),
        conv2d_grad_case("conv2d_bias_grad", 2),
        conv1d_case(),
        embedding_case(),
        attention_case(),
        unary("erf", sym, |x| Ok(x.erf())),
        unary("gelu", |n| values(n, -3.0, 3.0), |x| x.gelu()),
        unary("gelu_tanh", |n| values(n, -3.0, 3.0), |x| x.gelu_tanh()),
        unary("silu", |n| values(n, -3.0, 3.0), |x| x.silu()),
    ];
    cases.extend(im2col_cases());
    cases.extend(pool_cases());
    cases.extend(norm_cases());
    cases
}
