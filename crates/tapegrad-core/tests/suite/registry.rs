//! The op registry: every differentiable op, with the domain and shapes it accepts, as
//! public [`OpSpec`]s — the same API users register their own ops with — swept by the
//! checks of [`tapegrad_core::testing::sweep`] (first and second order, forward mode, fast
//! mode), plus two checks of the core's own: recorded and plain backward agree bit for bit,
//! and a recorded op kind that no entry exercises fails `registry_covers_every_op`.
//!
//! `case`, `sample`, `unary`, `binary` are the registry's shorthands over that API.

use crate::common::*;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::collections::BTreeSet;
use tapegrad_core::testing::{Mode, OpSpec};
use tapegrad_core::{func, GradCheck, IndexTensor, OpKind, Result, Tensor};

/// A reduction: tensor, axes, keepdim.
type ReduceFn = fn(&Tensor<f64>, &[isize], bool) -> Result<Tensor<f64>>;

/// One random instance of an op (the public [`tapegrad_core::testing::Sample`]).
pub(crate) type Sample = tapegrad_core::testing::Sample;

/// A registry entry (the public [`OpSpec`]).
pub(crate) type OpCase = OpSpec;

pub(crate) fn sample(
    inputs: Vec<Tensor<f64>>,
    desc: String,
    f: impl Fn(&[Tensor<f64>]) -> Result<Tensor<f64>> + Send + Sync + 'static,
) -> Sample {
    Sample::new(inputs, desc, f)
}

pub(crate) fn case(name: &'static str, strategy: impl Strategy<Value = Sample> + 'static) -> OpCase {
    OpSpec::new(name, strategy)
}

/// Unary elementwise op on any shape (0-d to 3-d) with data from `data`.
pub(crate) fn unary<S: Strategy<Value = Vec<f64>> + 'static>(
    name: &'static str,
    data: impl Fn(usize) -> S + Clone + 'static,
    op: fn(&Tensor<f64>) -> Result<Tensor<f64>>,
) -> OpCase {
    case(
        name,
        shape(0, 3)
            .prop_flat_map(move |s| tensor(s, data.clone()))
            .prop_map(move |x| sample(vec![x], name.into(), move |xs| op(&xs[0]))),
    )
}

/// Binary broadcasting op with data for each side.
pub(crate) fn binary<SA, SB>(
    name: &'static str,
    da: impl Fn(usize) -> SA + Clone + 'static,
    db: impl Fn(usize) -> SB + Clone + 'static,
    op: fn(&Tensor<f64>, &Tensor<f64>) -> Result<Tensor<f64>>,
) -> OpCase
where
    SA: Strategy<Value = Vec<f64>> + 'static,
    SB: Strategy<Value = Vec<f64>> + 'static,
{
    case(
        name,
        broadcast_pair(0)
            .prop_flat_map(move |(a, b)| (tensor(a, da.clone()), tensor(b, db.clone())))
            .prop_map(move |(a, b)| sample(vec![a, b], name.into(), move |xs| op(&xs[0], &xs[1]))),
    )
}

/// A shape with at least one dim, plus a random axis of it.
fn shape_and_axis() -> impl Strategy<Value = (Vec<usize>, usize)> {
    shape(1, 3).prop_flat_map(|s| {
        let n = s.len();
        (Just(s), 0..n)
    })
}

/// A shape plus a random subset of its axes (possibly empty) and keepdim.
fn shape_and_axes() -> impl Strategy<Value = (Vec<usize>, Vec<isize>, bool)> {
    shape(0, 3).prop_flat_map(|s| {
        let n = s.len();
        (Just(s), prop::collection::vec(any::<bool>(), n), any::<bool>()).prop_map(|(s, pick, keep)| {
            let axes = pick
                .iter()
                .enumerate()
                .filter(|(_, &p)| p)
                .map(|(i, _)| i as isize)
                .collect();
            (s, axes, keep)
        })
    })
}

fn reduction(name: &'static str, op: ReduceFn, ties_matter: bool) -> OpCase {
    case(
        name,
        shape_and_axes()
            .prop_flat_map(move |(s, axes, keep)| {
                let t = if ties_matter {
                    tensor(s, |n| distinct(n, -2.0, 2.0, 1e-2)).boxed()
                } else {
                    tensor(s, |n| values(n, -2.0, 2.0)).boxed()
                };
                (t, Just(axes), Just(keep))
            })
            .prop_map(move |(x, axes, keep)| {
                let desc = format!("{name} axes {axes:?} keepdim {keep}");
                sample(vec![x], desc, move |xs| op(&xs[0], &axes, keep))
            }),
    )
}

fn axis_op(name: &'static str, op: fn(&Tensor<f64>, isize) -> Result<Tensor<f64>>) -> OpCase {
    case(
        name,
        shape_and_axis()
            .prop_flat_map(|(s, ax)| (tensor(s, |n| values(n, -3.0, 3.0)), Just(ax as isize), any::<bool>()))
            .prop_map(move |(x, ax, neg)| {
                let ax = if neg { ax - x.ndim() as isize } else { ax };
                sample(vec![x], format!("{name} axis {ax}"), move |xs| op(&xs[0], ax))
            }),
    )
}

fn matmul_case() -> OpCase {
    // Batch dims broadcast; either operand may be stored transposed.
    let s = (
        broadcast_pair(0),
        1usize..=3,
        1usize..=3,
        1usize..=3,
        any::<bool>(),
        any::<bool>(),
    );
    case(
        "matmul_t",
        s.prop_flat_map(|((ba, bb), m, k, n, ta, tb)| {
            let mut sa = ba.clone();
            sa.extend(if ta { [k, m] } else { [m, k] });
            let mut sb = bb.clone();
            sb.extend(if tb { [n, k] } else { [k, n] });
            (
                tensor(sa, |n| values(n, -2.0, 2.0)),
                tensor(sb, |n| values(n, -2.0, 2.0)),
                Just(ta),
                Just(tb),
            )
        })
        .prop_map(|(a, b, ta, tb)| {
            sample(vec![a, b], format!("matmul_t ta={ta} tb={tb}"), move |xs| {
                xs[0].matmul_t(&xs[1], ta, tb)
            })
        }),
    )
}

fn matmul_vector_case() -> OpCase {
    // numpy.matmul promotion of 1-D operands.
    (1usize..=3, 1usize..=3, 0usize..3)
        .prop_flat_map(|(k, n, kind)| {
            let (sa, sb) = match kind {
                0 => (vec![k], vec![k]),
                1 => (vec![k], vec![k, n]),
                _ => (vec![n, k], vec![k]),
            };
            (
                tensor(sa, |n| values(n, -2.0, 2.0)),
                tensor(sb, |n| values(n, -2.0, 2.0)),
            )
        })
        .prop_map(|(a, b)| sample(vec![a, b], "matmul 1-d".into(), |xs| xs[0].matmul(&xs[1])))
        .pipe(|s| case("matmul_1d", s))
}

trait Pipe: Sized {
    fn pipe<R>(self, f: impl FnOnce(Self) -> R) -> R {
        f(self)
    }
}
impl<T> Pipe for T {}

fn layout_cases() -> Vec<OpCase> {
    vec![
        case(
            "reshape",
            shape(0, 3)
                .prop_flat_map(|s| tensor(s, |n| values(n, -2.0, 2.0)))
                .prop_map(|x| {
                    let rev: Vec<usize> = x.dims().iter().rev().copied().collect();
                    sample(vec![x], format!("reshape to {rev:?}"), move |xs| {
                        xs[0].reshape(rev.clone())
                    })
                }),
        ),
        case(
            "flatten",
            shape_and_axis()
                .prop_flat_map(|(s, ax)| (tensor(s, |n| values(n, -2.0, 2.0)), Just(ax)))
                .prop_map(|(x, ax)| {
                    sample(vec![x], format!("flatten from {ax}"), move |xs| {
                        xs[0].flatten(ax as isize)
                    })
                }),
        ),
        case(
            "permute",
            shape(0, 3)
                .prop_flat_map(|s| {
                    let perm = Just((0..s.len() as isize).collect::<Vec<_>>()).prop_shuffle();
                    (tensor(s, |n| values(n, -2.0, 2.0)), perm)
                })
                .prop_map(|(x, p)| sample(vec![x], format!("permute {p:?}"), move |xs| xs[0].permute(&p[..]))),
        ),
        case(
            "transpose",
            shape(2, 3)
                .prop_flat_map(|s| tensor(s, |n| values(n, -2.0, 2.0)))
                .prop_map(|x| sample(vec![x], "transpose(0,-1)".into(), |xs| xs[0].transpose(0, -1))),
        ),
        case(
            "unsqueeze_squeeze",
            shape(0, 3)
                .prop_flat_map(|s| tensor(s, |n| values(n, -2.0, 2.0)))
                .prop_map(|x| {
                    sample(vec![x], "unsqueeze(0) then mul then squeeze(0)".into(), |xs| {
                        xs[0].unsqueeze(0)?.mul_scalar(2.0).squeeze(0)
                    })
                }),
        ),
        case(
            "broadcast_to",
            broadcast_pair(0)
                .prop_filter("source must broadcast to target", |(a, b)| b.len() >= a.len())
                .prop_flat_map(|(a, b)| (tensor(a.clone(), |n| values(n, -2.0, 2.0)), Just(b), Just(a)))
                .prop_map(|(x, b, a)| {
                    let target: Vec<usize> = {
                        let off = b.len() - a.len();
                        b.iter()
                            .enumerate()
                            .map(|(i, &d)| {
                                if i >= off && a[i - off] != 1 {
                                    a[i - off]
                                } else {
                                    d.max(1)
                                }
                            })
                            .collect()
                    };
                    sample(vec![x], format!("broadcast_to {target:?}"), move |xs| {
                        xs[0].broadcast_to(target.clone())
                    })
                }),
        ),
        case(
            "sum_to",
            broadcast_pair(0)
                .prop_flat_map(|(a, b)| {
                    let big = tapegrad_core::Shape::from(a.clone())
                        .broadcast("t", &b.clone().into())
                        .unwrap();
                    (tensor(big.dims().to_vec(), |n| values(n, -2.0, 2.0)), Just(b))
                })
                .prop_map(|(x, b)| sample(vec![x], format!("sum_to {b:?}"), move |xs| xs[0].sum_to(b.clone()))),
        ),
        case(
            "narrow",
            shape_and_axis()
                .prop_flat_map(|(s, ax)| {
                    let d = s[ax];
                    (tensor(s, |n| values(n, -2.0, 2.0)), Just(ax), 0..d)
                        .prop_flat_map(move |(x, ax, start)| (Just(x), Just(ax), Just(start), 1..=d - start))
                })
                .prop_map(|(x, ax, start, len)| {
                    sample(vec![x], format!("narrow axis {ax} {start}+{len}"), move |xs| {
                        xs[0].narrow(ax as isize, start, len)
                    })
                }),
        ),
        case(
            "concat",
            (shape_and_axis(), 1usize..=3, 1usize..=3, 1usize..=3)
                .prop_flat_map(|((s, ax), n1, n2, n3)| {
                    let with = |n: usize| {
                        let mut d = s.clone();
                        d[ax] = n;
                        tensor(d, |k| values(k, -2.0, 2.0))
                    };
                    (with(n1), with(n2), with(n3), Just(ax))
                })
                .prop_map(|(a, b, c, ax)| {
                    sample(vec![a, b, c], format!("concat axis {ax}"), move |xs| {
                        Tensor::concat(&[&xs[0], &xs[1], &xs[2]], ax as isize)
                    })
                }),
        ),
        case(
            "stack",
            (shape(0, 2), any::<bool>())
                .prop_flat_map(|(s, last)| {
                    (
                        tensor(s.clone(), |n| values(n, -2.0, 2.0)),
                        tensor(s, |n| values(n, -2.0, 2.0)),
                        Just(last),
                    )
                })
                .prop_map(|(a, b, last)| {
                    let ax = if last { -1 } else { 0 };
                    sample(vec![a, b], format!("stack axis {ax}"), move |xs| {
                        Tensor::stack(&[&xs[0], &xs[1]], ax)
                    })
                }),
        ),
    ]
}

fn index_cases() -> Vec<OpCase> {
    vec![
        case(
            "index_select",
            shape_and_axis()
                .prop_flat_map(|(s, ax)| {
                    let d = s[ax];
                    (
                        tensor(s, |n| values(n, -2.0, 2.0)),
                        Just(ax),
                        prop::collection::vec(0..d, 1..=4),
                    )
                })
                .prop_map(|(x, ax, idx)| {
                    sample(vec![x], format!("index_select axis {ax} {idx:?}"), move |xs| {
                        xs[0].index_select(ax as isize, &idx)
                    })
                }),
        ),
        case(
            "index_add",
            shape_and_axis()
                .prop_flat_map(|(s, ax)| {
                    let d = s[ax];
                    prop::collection::vec(0..d, 1..=4).prop_flat_map(move |idx| {
                        let mut src = s.clone();
                        src[ax] = idx.len();
                        (
                            tensor(s.clone(), |n| values(n, -2.0, 2.0)),
                            tensor(src, |n| values(n, -2.0, 2.0)),
                            Just(ax),
                            Just(idx),
                        )
                    })
                })
                .prop_map(|(x, src, ax, idx)| {
                    sample(vec![x, src], format!("index_add axis {ax} {idx:?}"), move |xs| {
                        xs[0].index_add(ax as isize, &idx, &xs[1])
                    })
                }),
        ),
        case(
            "gather",
            (shape_and_axis(), 1usize..=3)
                .prop_flat_map(|((s, ax), m)| {
                    let d = s[ax];
                    let mut is = s.clone();
                    is[ax] = m;
                    let n: usize = is.iter().product();
                    (
                        tensor(s, |n| values(n, -2.0, 2.0)),
                        Just(ax),
                        Just(is),
                        prop::collection::vec(0..d, n),
                    )
                })
                .prop_map(|(x, ax, is, idx)| {
                    let index = IndexTensor::from_vec(idx, is).unwrap();
                    sample(vec![x], format!("gather axis {ax} {:?}", index.data()), move |xs| {
                        xs[0].gather(ax as isize, &index)
                    })
                }),
        ),
        case(
            "scatter_add",
            (shape_and_axis(), 1usize..=3)
                .prop_flat_map(|((s, ax), m)| {
                    let d = s[ax];
                    let mut is = s.clone();
                    is[ax] = m;
                    let n: usize = is.iter().product();
                    (
                        tensor(s, |n| values(n, -2.0, 2.0)),
                        tensor(is.clone(), |n| values(n, -2.0, 2.0)),
                        Just(ax),
                        Just(is),
                        prop::collection::vec(0..d, n),
                    )
                })
                .prop_map(|(x, src, ax, is, idx)| {
                    let index = IndexTensor::from_vec(idx, is).unwrap();
                    sample(
                        vec![x, src],
                        format!("scatter_add axis {ax} {:?}", index.data()),
                        move |xs| xs[0].scatter_add(ax as isize, &index, &xs[1]),
                    )
                }),
        ),
        case(
            "where_cond",
            broadcast_pair(0)
                .prop_flat_map(|(a, b)| {
                    let out = tapegrad_core::Shape::from(a.clone())
                        .broadcast("t", &b.clone().into())
                        .unwrap();
                    let n = out.numel();
                    (
                        tensor(a, |n| values(n, -2.0, 2.0)),
                        tensor(b, |n| values(n, -2.0, 2.0)),
                        Just(out),
                        prop::collection::vec(any::<bool>(), n),
                    )
                })
                .prop_map(|(a, b, out, mask)| {
                    let cond =
                        Tensor::from_vec(mask.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect(), out).unwrap();
                    sample(vec![a, b], format!("where_cond {:?}", cond.data()), move |xs| {
                        Tensor::where_cond(&cond, &xs[0], &xs[1])
                    })
                }),
        ),
    ]
}

/// Every differentiable public op, with its domain.
fn registry() -> Vec<OpCase> {
    let sym = |n| values(n, -2.0, 2.0);
    let pos = |n| values(n, 0.1, 3.0);
    let nz = |n| away_from_zero(n, 0.05, 2.0);
    let mut cases = vec![
        unary("neg", sym, |x| Ok(x.neg())),
        unary("exp", sym, |x| Ok(x.exp())),
        unary("log", pos, |x| Ok(x.log())),
        unary("sqrt", pos, |x| Ok(x.sqrt())),
        unary("abs", nz, |x| Ok(x.abs())),
        unary("tanh", sym, |x| Ok(x.tanh())),
        unary("sigmoid", |n| values(n, -4.0, 4.0), |x| Ok(x.sigmoid())),
        unary("relu", nz, |x| Ok(x.relu())),
        unary("leaky_relu", nz, |x| Ok(x.leaky_relu(0.1))),
        unary("softplus", |n| values(n, -4.0, 4.0), |x| Ok(x.softplus())),
        unary(
            "clamp",
            |n| {
                values(n, -2.0, 2.0).prop_filter("near a clamp bound", |v| {
                    v.iter().all(|x| (x + 0.5).abs() > 1e-2 && (x - 0.7).abs() > 1e-2)
                })
            },
            |x| x.clamp(-0.5, 0.7),
        ),
        unary("add_scalar", sym, |x| Ok(x.add_scalar(0.3))),
        unary("mul_scalar", sym, |x| Ok(x.mul_scalar(-1.7))),
        unary("square", sym, |x| Ok(x.square())),
        case(
            "powf",
            (shape(0, 3), -2.5f64..2.5)
                .prop_flat_map(|(s, p)| (tensor(s, |n| values(n, 0.2, 2.0)), Just(p)))
                .prop_map(|(x, p)| sample(vec![x], format!("powf {p}"), move |xs| xs[0].powf(p))),
        ),
        binary("add", sym, sym, |a, b| a.add(b)),
        binary("sub", sym, sym, |a, b| a.sub(b)),
        binary("mul", sym, sym, |a, b| a.mul(b)),
        binary("div", sym, |n| away_from_zero(n, 0.3, 2.0), |a, b| a.div(b)),
        binary("pow", |n| values(n, 0.2, 2.0), sym, |a, b| a.pow(b)),
        // Elementwise extremes: inputs from disjoint grids, so no pair can tie.
        binary(
            "maximum",
            |n| values(n, -2.0, 2.0).prop_map(snap_even),
            |n| values(n, -2.0, 2.0).prop_map(snap_odd),
            |a, b| a.maximum(b),
        ),
        binary(
            "minimum",
            |n| values(n, -2.0, 2.0).prop_map(snap_even),
            |n| values(n, -2.0, 2.0).prop_map(snap_odd),
            |a, b| a.minimum(b),
        ),
        matmul_case(),
        matmul_vector_case(),
        reduction("sum", |x, a, k| x.sum(a, k), false),
        reduction("mean", |x, a, k| x.mean(a, k), false),
        reduction("max", |x, a, k| x.max(a, k), true),
        reduction("min", |x, a, k| x.min(a, k), true),
        axis_op("logsumexp", |x, a| x.logsumexp(a, false)),
        axis_op("softmax", |x, a| x.softmax(a)),
        axis_op("log_softmax", |x, a| x.log_softmax(a)),
    ];
    // A user-defined op (x³ with its rule 3x²·g written in tensor ops, so it is
    // differentiable again): the custom-op machinery must pass the same sweep.
    cases.push(unary("custom_op", sym, |x| {
        let y = Tensor::from_vec(x.data().iter().map(|v| v * v * v).collect(), x.shape().clone())?;
        Tensor::custom_op("cube", &[x], y, false, |ctx| {
            let x = ctx.input(0);
            Ok([Some(ctx.grad.mul(&x.mul(x)?.mul_scalar(3.0))?)].into_iter().collect())
        })
    }));
    // A function transform as an op: x ↦ ∇(Σ x·tanh x), so gradcheck checks a Hessian and
    // gradgradcheck a third derivative, through the alias op nested transforms record.
    cases.push(unary("func_grad", sym, |x| {
        func::grad(|ys: &[Tensor<f64>]| Ok(ys[0].mul(&ys[0].tanh())?.sum_all()), 0)(std::slice::from_ref(x))
    }));
    cases.extend(layout_cases());
    cases.extend(index_cases());
    cases.extend(crate::registry_nn::nn_op_cases());
    cases
}

/// Rounds to the grid 0.02·k + 0.00 (even) or + 0.01 (odd): two such values differ by ≥ 0.01.
fn snap_even(v: Vec<f64>) -> Vec<f64> {
    v.into_iter().map(|x| (x / 0.02).round() * 0.02).collect()
}
fn snap_odd(v: Vec<f64>) -> Vec<f64> {
    v.into_iter().map(|x| (x / 0.02).round() * 0.02 + 0.01).collect()
}

fn cases_per_op() -> u32 {
    std::env::var("TAPEGRAD_GRADCHECK_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

/// Runs one of the sweep's checks over the whole registry, panicking with the first failure.
fn sweep_all(check: impl Fn(&OpSpec) -> Result<()>) {
    for op in registry() {
        if let Err(e) = check(&op) {
            panic!("{e}");
        }
    }
}

#[test]
fn every_op_passes_gradcheck() {
    sweep_all(|op| op.check_grads(cases_per_op(), 1, &[Mode::Reverse]));
}

#[test]
fn every_op_passes_gradgradcheck() {
    // Second derivatives: the rules are written in differentiable ops and never detach.
    sweep_all(|op| op.check_grads(cases_per_op() / 4, 2, &[Mode::Reverse]));
}

#[test]
fn every_op_passes_forward_mode() {
    // Jacobian-vector products by the double-VJP construction (func::jvp).
    sweep_all(|op| op.check_grads(cases_per_op() / 8, 1, &[Mode::Forward]));
}

#[test]
fn fast_mode_agrees_on_every_op() {
    sweep_all(|op| {
        op.clone()
            .settings(GradCheck::new().fast(true))
            .check_grads(32, 1, &[Mode::Reverse])
    });
}

#[test]
fn recorded_and_plain_backward_agree_bit_for_bit() {
    // Rules may take a fused path when the backward pass is not recorded; it must give
    // exactly the values of the differentiable path used under create_graph.
    sweep_all(|op| {
        op.for_each_case(64, |s| {
            let xs: Vec<Tensor<f64>> = s.inputs.iter().map(|x| x.detach().requires_grad()).collect();
            let y = s.call(&xs).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if !y.is_tracked() {
                return Ok(());
            }
            let v = Tensor::from_vec(
                (0..y.numel()).map(|i| 0.5 + i as f64 * 0.25).collect(),
                y.shape().clone(),
            )
            .unwrap();
            let refs: Vec<&Tensor<f64>> = xs.iter().collect();
            let plain = tapegrad_core::grad(&y, &refs, Some(&v), false).unwrap();
            let recorded = tapegrad_core::grad(&y, &refs, Some(&v), true).unwrap();
            for (p, r) in plain.iter().zip(&recorded) {
                prop_assert_eq!(p.to_vec(), r.to_vec(), "{}", s.desc);
            }
            Ok(())
        })
    });
}

#[test]
fn registry_covers_every_op() {
    // Run each entry once on tracked inputs and collect the op kinds its graph records;
    // together (first and second order) they must include every kind the tape knows.
    let mut seen = BTreeSet::new();
    let mut runner = TestRunner::deterministic();
    for op in registry() {
        for _ in 0..8 {
            let s = op.strategy().new_tree(&mut runner).unwrap().current();
            let xs: Vec<Tensor<f64>> = s.inputs.iter().map(|x| x.detach().requires_grad()).collect();
            let y = s.call(&xs).unwrap();
            seen.extend(y.recorded_ops());
            if y.is_tracked() {
                let v = y.ones_like();
                let refs: Vec<&Tensor<f64>> = xs.iter().collect();
                for g in tapegrad_core::grad(&y, &refs, Some(&v), true).unwrap() {
                    seen.extend(g.recorded_ops());
                }
            }
        }
    }
    let missing: Vec<&str> = OpKind::ALL
        .iter()
        .filter(|k| !seen.contains(k))
        .map(|k| k.name())
        .collect();
    assert!(missing.is_empty(), "ops with no registry entry: {missing:?}");
}
