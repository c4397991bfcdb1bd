//! Reductions over a set of axes, by combining each input row into its output slot.

use super::elementwise::for_each_row;
use crate::shape::Shape;
use rayon::prelude::*;
use smallvec::SmallVec;

/// Folds `x` (shape `shape`) over `axes` (sorted, normalised) with `f`, starting from
/// `init`. The result has `shape.reduced(axes, true).numel()` elements. `f` must be
/// associative and commutative up to rounding (sum, max, min): rows are folded in 8
/// interleaved lanes.
pub(crate) fn reduce<T: crate::element::Element, F: Fn(T, T) -> T + Sync>(
    x: &[T],
    shape: &Shape,
    axes: &[usize],
    init: T,
    f: F,
) -> Vec<T> {
    let kept = shape.reduced(axes, true);
    let mut out = crate::buffer_cache::vec_filled(kept.numel(), init);
    if x.is_empty() {
        return out;
    }
    if shape.ndim() == 0 {
        out[0] = f(init, x[0]);
        return out;
    }
    // Adjacent dims that are both reduced or both kept act as one (the input is
    // contiguous, and so is the output's kept part), so rows are as long as they can be:
    // a sum of [N, C, H, W] over (0, 2, 3) folds rows of H·W cells, not of W.
    let (mut dims, mut reduced) = (SmallVec::<[usize; 4]>::new(), SmallVec::<[bool; 4]>::new());
    for (d, &n) in shape.dims().iter().enumerate() {
        let r = axes.contains(&d);
        match (dims.last_mut(), reduced.last()) {
            _ if n == 1 => {}
            (Some(last), Some(&lr)) if lr == r => *last *= n,
            _ => {
                dims.push(n);
                reduced.push(r);
            }
        }
    }
    if dims.is_empty() {
        (dims, reduced) = (smallvec::smallvec![1], smallvec::smallvec![false]);
    }
    let merged = Shape::from(dims);
    let istr = merged.strides();
    // Strides of the output's kept dims in the merged shape: 0 along reduced ones.
    let mut ostr: SmallVec<[usize; 4]> = SmallVec::from_elem(0, merged.ndim());
    let mut step = 1;
    for d in (0..merged.ndim()).rev() {
        if !reduced[d] {
            ostr[d] = step;
            step *= merged.dims()[d];
        }
    }
    let last_reduced = reduced[merged.ndim() - 1];
    let (n0, s0) = (merged.dims()[0], istr[0]);
    if x.len() < PAR_MIN || !reduced[0] || n0 < 2 {
        fold_rows(x, &merged, &istr, &ostr, last_reduced, &mut out, &f);
        return out;
    }
    // A large input whose outer dim is reduced: that dim is cut into at most PIECES runs,
    // set by the shape alone, each folded into its own partial result on rayon's pool,
    // and the partials combined in order (the same bits on any number of threads).
    let per = n0.div_ceil(PIECES);
    let partials: Vec<Vec<T>> = (0..n0.div_ceil(per))
        .into_par_iter()
        .map(|i| {
            let len = per.min(n0 - i * per);
            let mut dims: SmallVec<[usize; 4]> = merged.dims().into();
            dims[0] = len;
            let mut part = vec![init; out.len()];
            fold_rows(
                &x[i * per * s0..][..len * s0],
                &Shape::from(dims),
                &istr,
                &ostr,
                last_reduced,
                &mut part,
                &f,
            );
            part
        })
        .collect();
    for part in partials {
        out.iter_mut().zip(part).for_each(|(o, v)| *o = f(*o, v));
    }
    out
}

/// From this many elements, a reduction over its outer dim runs in pieces on rayon's pool.
const PAR_MIN: usize = 1 << 18;

/// The most pieces a parallel reduction is cut into.
const PIECES: usize = 16;

/// Folds every row of `x` (merged shape `shape`, strides `istr`) into `out` at the offsets
/// `ostr` gives: whole rows into one slot when the last dim is reduced, else elementwise.
fn fold_rows<T: crate::element::Element, F: Fn(T, T) -> T>(
    x: &[T],
    shape: &Shape,
    istr: &[usize],
    ostr: &[usize],
    last_reduced: bool,
    out: &mut [T],
    f: &F,
) {
    for_each_row(shape, &[istr, ostr], |[i, o], len| {
        let row = &x[i..i + len];
        if last_reduced {
            out[o] = f(out[o], fold_lanes(row, f));
        } else if len >= super::elementwise::DISPATCH_MIN {
            super::elementwise::fold_into(&mut out[o..o + len], row, f);
        } else {
            for (dst, &v) in out[o..o + len].iter_mut().zip(row) {
                *dst = f(*dst, v);
            }
        }
    });
}

/// `row` folded with `f` (non-empty): 8 interleaved lanes, so the loop is not one long
/// chain of dependent adds (a sum over a row of 676 took 4 cycles per element that way),
/// then the lanes combined pairwise and the tail added.
pub(crate) fn fold_lanes<T: Copy, F: Fn(T, T) -> T>(row: &[T], f: &F) -> T {
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    let mut it = chunks;
    let Some(first) = it.next() else {
        return tail.iter().skip(1).fold(tail[0], |a, &v| f(a, v));
    };
    let mut acc: [T; 8] = first.try_into().expect("a chunk of 8");
    for c in it {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = f(*a, v);
        }
    }
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    let s = f(f(f(a0, a4), f(a1, a5)), f(f(a2, a6), f(a3, a7)));
    tail.iter().fold(s, |a, &v| f(a, v))
}

/// Index of the first maximum (`max = true`) or minimum along `axis`, one per output slot.
pub(crate) fn arg_extreme<T: Copy + PartialOrd>(x: &[T], shape: &Shape, axis: usize, max: bool) -> Vec<usize> {
    let dims = shape.dims();
    let n = dims[axis];
    let (outer, inner) = shape.outer_inner(axis);
    let mut out = Vec::with_capacity(outer.saturating_mul(inner));
    // An empty result has nothing to find (and its other dims may be huge: no loop).
    for o in 0..if outer.saturating_mul(inner) > 0 { outer } else { 0 } {
        for i in 0..inner {
            let base = o * n * inner + i;
            let mut best = 0;
            for j in 1..n {
                let (v, b) = (x[base + j * inner], x[base + best * inner]);
                // NaN wins, as in NumPy: a NaN compares false both ways, so check it first.
                let v_nan = v.partial_cmp(&v).is_none();
                let b_nan = b.partial_cmp(&b).is_none();
                if b_nan {
                    break;
                }
                if v_nan || (max && v > b) || (!max && v < b) {
                    best = j;
                }
            }
            out.push(best);
        }
    }
    out
}

/// `log_softmax`'s forward along the middle dim of `x` viewed as `[outer, n, inner]`: for
/// each of the `outer · inner` lanes of `n` elements, `yⱼ = (xⱼ − m) − ln Σₖ exp(xₖ − m)`
/// with `m` the lane's maximum (NaN if the lane holds one), replaced by 0 when it is not
/// finite, so that a lane of −inf gives −inf and not NaN. The steps of the composite
/// `x − m − log(sum(exp(x − m)))`, with the sum taken in order along the lane.
pub(crate) fn log_softmax<T: crate::element::Element>(x: &[T], outer: usize, n: usize, inner: usize) -> Vec<T> {
    assert_eq!(x.len(), outer * n * inner, "log_softmax: operand sizes");
    let mut y = crate::buffer_cache::vec_filled(x.len(), T::zero());
    if y.is_empty() {
        return y;
    }
    for (xo, yo) in x.chunks_exact(n * inner).zip(y.chunks_exact_mut(n * inner)) {
        for i in 0..inner {
            let lane = || xo.iter().skip(i).step_by(inner);
            let m = lane().fold(T::neg_infinity(), |a, &b| if b > a || b.is_nan() { b } else { a });
            let m = if m.is_finite() { m } else { T::zero() };
            let log_sum = lane().fold(T::zero(), |s, &v| s + (v - m).exp()).ln();
            for (out, &v) in yo.iter_mut().skip(i).step_by(inner).zip(lane()) {
                *out = (v - m) - log_sum;
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_reductions_in_pieces_match_the_definition() {
        // Over PAR_MIN elements with the outer dim reduced: the parallel path, with a last
        // piece shorter than the others. Small integers: every sum is exact.
        let dims = [37usize, 3, 2400];
        let n: usize = dims.iter().product();
        assert!(n >= PAR_MIN);
        let x: Vec<f64> = (0..n).map(|i| ((i * 7) % 23) as f64 - 11.0).collect();
        let shape = Shape::from(&dims[..]);
        for axes in [&[0usize, 2][..], &[0], &[0, 1, 2]] {
            let kept = shape.reduced(axes, true);
            let (mut sum, mut max) = (vec![0.0; kept.numel()], vec![f64::NEG_INFINITY; kept.numel()]);
            for (i, &v) in x.iter().enumerate() {
                let idx = [i / (dims[1] * dims[2]), (i / dims[2]) % dims[1], i % dims[2]];
                let o = (0..3).fold(0, |o, d| {
                    o * kept.dims()[d] + if axes.contains(&d) { 0 } else { idx[d] }
                });
                sum[o] += v;
                max[o] = max[o].max(v);
            }
            assert_eq!(reduce(&x, &shape, axes, 0.0, |a, b| a + b), sum, "{axes:?}");
            assert_eq!(reduce(&x, &shape, axes, f64::NEG_INFINITY, f64::max), max, "{axes:?}");
        }
    }
}
