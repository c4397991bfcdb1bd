//! proptest strategies for shapes, elements and tensors, modeled on Hypothesis's
//! `hypothesis.extra.numpy` (`array_shapes`, `broadcastable_shapes`,
//! `mutually_broadcastable_shapes`, `arrays`, `integer_array_indices`). Shapes shrink toward
//! fewer and smaller dims and values toward the low end of their range, so a failure is
//! reported on a small case.

use crate::element::{c, Element};
use crate::ops::index::IndexTensor;
use crate::tensor::Tensor;
use proptest::prelude::*;
use std::ops::RangeInclusive;

/// Shapes with a number of dims in `dims` and every side in `sides` (Hypothesis's
/// `array_shapes(min_dims, max_dims, min_side, max_side)`); `0..=0` dims gives 0-d scalars.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
/// use tapegrad_core::testing::array_shapes;
/// let s = array_shapes(1..=3, 2..=4).new_tree(&mut TestRunner::deterministic()).unwrap().current();
/// assert!((1..=3).contains(&s.len()) && s.iter().all(|d| (2..=4).contains(d)));
/// ```
pub fn array_shapes(dims: RangeInclusive<usize>, sides: RangeInclusive<usize>) -> BoxedStrategy<Vec<usize>> {
    prop::collection::vec(sides, dims).boxed()
}

/// Shapes that broadcast with `shape` (Hypothesis's `broadcastable_shapes`): `dims` dims in
/// all, aligned from the right; where they overlap `shape` each side is `shape`'s or 1 (any
/// side in `sides` where `shape` has 1), and extra leading dims take any side in `sides`.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
/// use tapegrad_core::{testing::broadcastable_shapes, Shape};
/// let mut runner = TestRunner::deterministic();
/// for _ in 0..20 {
///     let s = broadcastable_shapes(vec![3, 1, 2], 0..=4, 1..=3).new_tree(&mut runner).unwrap().current();
///     assert!(Shape::from(s).broadcast("test", &Shape::from([3, 1, 2])).is_ok());
/// }
/// ```
pub fn broadcastable_shapes(
    shape: Vec<usize>,
    dims: RangeInclusive<usize>,
    sides: RangeInclusive<usize>,
) -> BoxedStrategy<Vec<usize>> {
    let max = *dims.end();
    let per_dim = prop::collection::vec((any::<bool>(), sides), max);
    (dims, per_dim)
        .prop_map(move |(n, picks)| {
            (0..n)
                .map(|i| {
                    // i counts from the left of the result; j from the right.
                    let j = n - 1 - i;
                    let (keep, side) = picks[j];
                    match shape.len().checked_sub(1 + j).map(|k| shape[k]) {
                        Some(1) | None => side,
                        Some(d) if keep => d,
                        Some(_) => 1,
                    }
                })
                .collect()
        })
        .boxed()
}

/// Shapes that broadcast together, and the shape they broadcast to (Hypothesis's
/// `mutually_broadcastable_shapes(num_shapes, ...)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BroadcastableShapes {
    /// One shape per input.
    pub input_shapes: Vec<Vec<usize>>,
    /// Their broadcast (numpy rules).
    pub result_shape: Vec<usize>,
}

/// `num_shapes` shapes that broadcast together: each takes a random trailing part of a
/// common shape (of `dims` dims, sides in `sides`) with random sides set to 1.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
/// use tapegrad_core::{testing::mutually_broadcastable_shapes, Tensor};
/// let b = mutually_broadcastable_shapes(3, 0..=3, 1..=3).new_tree(&mut TestRunner::deterministic()).unwrap().current();
/// let xs: Vec<Tensor<f64>> = b.input_shapes.iter().map(|s| Tensor::ones(s.clone()).unwrap()).collect();
/// let sum = xs[0].add(&xs[1])?.add(&xs[2])?;
/// assert_eq!(sum.dims(), &b.result_shape[..]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn mutually_broadcastable_shapes(
    num_shapes: usize,
    dims: RangeInclusive<usize>,
    sides: RangeInclusive<usize>,
) -> BoxedStrategy<BroadcastableShapes> {
    let max = *dims.end();
    let one_input = (0..=max, prop::collection::vec(any::<bool>(), max));
    (array_shapes(dims, sides), prop::collection::vec(one_input, num_shapes))
        .prop_map(|(base, inputs)| {
            let input_shapes: Vec<Vec<usize>> = inputs
                .iter()
                .map(|(drop, ones)| {
                    let drop = (*drop).min(base.len());
                    base.iter()
                        .enumerate()
                        .skip(drop)
                        .map(|(i, &d)| if ones[i] { 1 } else { d })
                        .collect()
                })
                .collect();
            let n = input_shapes.iter().map(|s| s.len()).max().unwrap_or(0);
            let result_shape = (0..n)
                .map(|i| {
                    input_shapes
                        .iter()
                        .filter_map(|s| (s.len() + i).checked_sub(n).map(|k| s[k]))
                        .max()
                        .unwrap_or(1)
                })
                .collect();
            BroadcastableShapes {
                input_shapes,
                result_shape,
            }
        })
        .boxed()
}

/// Any finite `f64` (no NaN, no infinity), normal, subnormal or zero, of either sign.
pub fn finite() -> BoxedStrategy<f64> {
    use proptest::num::f64;
    (f64::POSITIVE | f64::NEGATIVE | f64::NORMAL | f64::SUBNORMAL | f64::ZERO).boxed()
}

/// Values in `[lo, hi]`.
pub fn bounded(lo: f64, hi: f64) -> BoxedStrategy<f64> {
    (lo..=hi).boxed()
}

/// Values in `[lo, hi]` at least `margin` away from every point of `kinks`: the points where
/// an op is not differentiable (0 for relu and abs, the bounds of clamp), which a
/// finite-difference check must not straddle.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
/// use tapegrad_core::testing::away_from;
/// let mut runner = TestRunner::deterministic();
/// for _ in 0..50 {
///     let v = away_from(-1.0, 1.0, &[0.0, 0.5], 0.05).new_tree(&mut runner).unwrap().current();
///     assert!(v.abs() >= 0.05 && (v - 0.5).abs() >= 0.05);
/// }
/// ```
pub fn away_from(lo: f64, hi: f64, kinks: &[f64], margin: f64) -> BoxedStrategy<f64> {
    let kinks = kinks.to_vec();
    (lo..=hi)
        .prop_filter("too close to a kink", move |v| {
            kinks.iter().all(|k| (v - k).abs() >= margin)
        })
        .boxed()
}

/// A tensor of `shape` (of `f32` or `f64`) with elements from `elements` (Hypothesis's
/// `arrays(dtype, shape, elements)`), drawn as `f64` and rounded to `T`.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
/// use tapegrad_core::testing::{bounded, tensors};
/// let x = tensors::<f32>(vec![2, 3], bounded(-1.0, 1.0)).new_tree(&mut TestRunner::deterministic()).unwrap().current();
/// assert_eq!(x.dims(), &[2, 3]);
/// assert!(x.data().iter().all(|v| v.abs() <= 1.0));
/// ```
pub fn tensors<T: Element>(shape: Vec<usize>, elements: BoxedStrategy<f64>) -> BoxedStrategy<Tensor<T>> {
    let n: usize = shape.iter().product();
    prop::collection::vec(elements, n)
        .prop_map(move |v| Tensor::from_parts(v.into_iter().map(c::<T>).collect(), shape.clone().into()))
        .boxed()
}

/// Tensors of any shape from `shapes`, with elements from `elements`.
pub fn tensors_of<T: Element>(
    shapes: BoxedStrategy<Vec<usize>>,
    elements: BoxedStrategy<f64>,
) -> BoxedStrategy<Tensor<T>> {
    shapes.prop_flat_map(move |s| tensors::<T>(s, elements.clone())).boxed()
}

/// An index tensor of `shape` with every index in `0..bound` (for `gather` and
/// `scatter_add`; Hypothesis's `integer_array_indices`). `bound` must be positive.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
/// use tapegrad_core::testing::index_tensors;
/// let i = index_tensors(vec![4], 3).new_tree(&mut TestRunner::deterministic()).unwrap().current();
/// assert!(i.data().iter().all(|&k| k < 3));
/// ```
pub fn index_tensors(shape: Vec<usize>, bound: usize) -> BoxedStrategy<IndexTensor> {
    let n: usize = shape.iter().product();
    prop::collection::vec(0..bound.max(1), n)
        .prop_map(move |v| IndexTensor::from_vec(v, shape.clone()).expect("the length matches the shape"))
        .boxed()
}
