//! Strategies shared by the property tests: shapes (size-1 dims and 0-d scalars
//! included), broadcast-compatible pairs, and data kept inside an op's domain.
#![allow(dead_code)]

use proptest::prelude::*;
use tapegrad_core::Tensor;

/// Dims of `min_nd` to `max_nd` axes, each 1..=3 (the public `array_shapes`).
pub fn shape(min_nd: usize, max_nd: usize) -> impl Strategy<Value = Vec<usize>> {
    tapegrad_core::testing::array_shapes(min_nd..=max_nd, 1..=3)
}

/// A shape that broadcasts with `base`: some dims set to 1, some leading dims dropped.
pub fn broadcast_partner(base: Vec<usize>) -> impl Strategy<Value = Vec<usize>> {
    let n = base.len();
    (prop::collection::vec(any::<bool>(), n), 0..=n).prop_map(move |(ones, drop)| {
        base.iter()
            .zip(&ones)
            .skip(drop)
            .map(|(&d, &one)| if one { 1 } else { d })
            .collect()
    })
}

/// Two shapes that broadcast together, in either order.
pub fn broadcast_pair(min_nd: usize) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (shape(min_nd, 3), any::<bool>())
        .prop_flat_map(|(s, swap)| (Just(s.clone()), broadcast_partner(s), Just(swap)))
        .prop_map(|(a, b, swap)| if swap { (b, a) } else { (a, b) })
}

/// Uniform values in `[lo, hi)`.
pub fn values(n: usize, lo: f64, hi: f64) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(lo..hi, n)
}

/// Values with magnitude in `[lo, hi)` and random sign: away from a kink or pole at 0.
pub fn away_from_zero(n: usize, lo: f64, hi: f64) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec((lo..hi, any::<bool>()), n)
        .prop_map(|v| v.into_iter().map(|(m, neg)| if neg { -m } else { m }).collect())
}

/// Values in `[lo, hi)` whose pairwise gaps all exceed `gap` (no ties for max/min).
pub fn distinct(n: usize, lo: f64, hi: f64, gap: f64) -> impl Strategy<Value = Vec<f64>> {
    values(n, lo, hi).prop_filter("near-tie", move |v| {
        let mut s = v.clone();
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        s.windows(2).all(|w| w[1] - w[0] > gap)
    })
}

/// A tensor of `dims` with data from `data(numel)`.
pub fn tensor<S: Strategy<Value = Vec<f64>>>(
    dims: Vec<usize>,
    data: impl Fn(usize) -> S,
) -> impl Strategy<Value = Tensor<f64>> {
    let n = dims.iter().product();
    data(n).prop_map(move |v| Tensor::from_vec(v, dims.clone()).unwrap())
}
