//! Reductions over a set of axes, by combining each input row into its output slot.

use super::elementwise::for_each_row;
use crate::shape::Shape;
use smallvec::SmallVec;

/// Folds `x` (shape `shape`) over `axes` (sorted, normalised) with `f`, starting from
/// `init`. The result has `shape.reduced(axes, true).numel()` elements. `f` must be
/// associative and commutative up to rounding (sum, max, min): rows are folded in 8
/// interleaved lanes.
pub(crate) fn reduce<T: crate::element::Element, F: Fn(T, T) -> T>(
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
    for_each_row(&merged, &[&istr, &ostr], |[i, o], len| {
        let row = &x[i..i + len];
        if last_reduced {
            out[o] = f(out[o], fold_lanes(row, &f));
        } else if len >= super::elementwise::DISPATCH_MIN {
            super::elementwise::fold_into(&mut out[o..o + len], row, &f);
        } else {
            for (dst, &v) in out[o..o + len].iter_mut().zip(row) {
                *dst = f(*dst, v);
            }
        }
    });
    out
}

/// `row` folded with `f` (non-empty): 8 interleaved lanes, so the loop is not one long
/// chain of dependent adds (a sum over a row of 676 took 4 cycles per element that way),
/// then the lanes combined pairwise and the tail added.
fn fold_lanes<T: Copy, F: Fn(T, T) -> T>(row: &[T], f: &F) -> T {
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
