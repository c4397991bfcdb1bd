//! Reductions over a set of axes, by combining each input row into its output slot.

use super::elementwise::for_each_row;
use crate::shape::Shape;

/// Folds `x` (shape `shape`) over `axes` (sorted, normalised) with `f`, starting from
/// `init`. The result has `shape.reduced(axes, true).numel()` elements.
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
    // Stride of each input dim in the output: 0 along reduced axes.
    let ostr: smallvec::SmallVec<[usize; 4]> = {
        let s = kept.strides();
        (0..shape.ndim())
            .map(|d| if axes.contains(&d) { 0 } else { s[d] })
            .collect()
    };
    let istr = shape.strides();
    let last_reduced = ostr[shape.ndim() - 1] == 0;
    for_each_row(shape, &[&istr, &ostr], |[i, o], len| {
        let row = &x[i..i + len];
        if last_reduced {
            out[o] = row.iter().fold(out[o], |acc, &v| f(acc, v));
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
