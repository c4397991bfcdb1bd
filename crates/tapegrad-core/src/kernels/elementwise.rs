//! Elementwise maps and broadcasting zips. The inner loops run over the last dimension
//! with a unit or zero stride, which the compiler vectorises; outer dimensions advance a
//! small index counter.

use crate::buffer_cache;
use crate::element::Element;
use crate::shape::Shape;
use crate::storage::Storage;
use rayon::prelude::*;

/// Below this many elements a map runs on one thread: spawning costs more than it saves.
const PAR_MIN: usize = 1 << 16;

/// `f` applied to every element, into a buffer from the [`buffer_cache`] when one fits;
/// from 64 Ki elements on, in parallel.
pub(crate) fn map<T: Element, F: Fn(T) -> T + Sync>(x: &[T], f: F) -> Storage<T> {
    if x.len() >= PAR_MIN {
        let mut v = buffer_cache::vec_with_capacity(x.len());
        x.par_iter().map(|&v| f(v)).collect_into_vec(&mut v);
        Storage::from_vec(v)
    } else {
        Storage::collect_exact(x.len(), x.iter().map(|&v| f(v)))
    }
}

/// `f(a, b)` with NumPy broadcasting to `out`; the caller has checked that both shapes
/// broadcast to `out`.
pub(crate) fn zip<T: Element, F: Fn(T, T) -> T + Sync>(
    a: &[T],
    sa: &Shape,
    b: &[T],
    sb: &Shape,
    out: &Shape,
    f: F,
) -> Storage<T> {
    if sa == sb {
        if a.len() >= PAR_MIN {
            let mut v = buffer_cache::vec_with_capacity(a.len());
            a.par_iter()
                .zip(b.par_iter())
                .map(|(&x, &y)| f(x, y))
                .collect_into_vec(&mut v);
            return Storage::from_vec(v);
        }
        return Storage::collect_exact(a.len(), a.iter().zip(b).map(|(&x, &y)| f(x, y)));
    }
    if b.len() == 1 {
        let y = b[0];
        return map(a, |x| f(x, y));
    }
    if a.len() == 1 {
        let x = a[0];
        return map(b, |y| f(x, y));
    }
    let stra = sa.broadcast_strides(out);
    let strb = sb.broadcast_strides(out);
    let mut res = buffer_cache::vec_with_capacity(out.numel());
    for_each_row(out, &[&stra, &strb], |offs, len| {
        let (oa, ob) = (offs[0], offs[1]);
        let (ia, ib) = (stra[out.ndim() - 1], strb[out.ndim() - 1]);
        match (ia, ib) {
            (1, 1) => res.extend(a[oa..oa + len].iter().zip(&b[ob..ob + len]).map(|(&x, &y)| f(x, y))),
            (1, 0) => res.extend(a[oa..oa + len].iter().map(|&x| f(x, b[ob]))),
            (0, 1) => res.extend(b[ob..ob + len].iter().map(|&y| f(a[oa], y))),
            _ => res.extend((0..len).map(|j| f(a[oa + j * ia], b[ob + j * ib]))),
        }
    });
    Storage::from_vec(res)
}

/// Reads `src` through per-dimension `strides` (in elements, one per dim of `out`) into a
/// new contiguous buffer of shape `out`: broadcasting (stride 0) and permutation.
pub(crate) fn gather_strided<T: Element>(src: &[T], strides: &[usize], out: &Shape) -> Vec<T> {
    let mut res = buffer_cache::vec_with_capacity(out.numel());
    if out.numel() == 0 {
        return res;
    }
    if out.ndim() == 0 {
        res.push(src[0]);
        return res;
    }
    let inner = strides[out.ndim() - 1];
    for_each_row(out, &[strides], |offs, len| {
        let o = offs[0];
        match inner {
            1 => res.extend_from_slice(&src[o..o + len]),
            0 => res.extend(std::iter::repeat_n(src[o], len)),
            s => res.extend((0..len).map(|j| src[o + j * s])),
        }
    });
    res
}

/// Calls `f(offsets, row_len)` once per row (last dimension) of `shape`, in row-major
/// order, with the starting offset of that row in each of the strided operands.
pub(crate) fn for_each_row<const N: usize>(
    shape: &Shape,
    strides: &[&[usize]; N],
    mut f: impl FnMut([usize; N], usize),
) {
    let dims = shape.dims();
    if shape.numel() == 0 {
        return;
    }
    let nd = dims.len();
    if nd == 0 {
        f([0; N], 1);
        return;
    }
    let len = dims[nd - 1];
    let rows = shape.numel() / len;
    let mut idx = [0usize; 16];
    let mut idx_vec;
    let idx: &mut [usize] = if nd <= 16 {
        &mut idx[..nd]
    } else {
        idx_vec = vec![0usize; nd];
        &mut idx_vec
    };
    let mut offs = [0usize; N];
    for _ in 0..rows {
        f(offs, len);
        for d in (0..nd - 1).rev() {
            idx[d] += 1;
            for (o, s) in offs.iter_mut().zip(strides.iter()) {
                *o += s[d];
            }
            if idx[d] < dims[d] {
                break;
            }
            for (o, s) in offs.iter_mut().zip(strides.iter()) {
                *o -= s[d] * dims[d];
            }
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Maps and same-shape zips above PAR_MIN run on rayon's pool; they must give exactly
    /// what a plain serial loop gives, on any number of threads.
    #[test]
    fn parallel_elementwise_paths_match_serial_loops() {
        let n = PAR_MIN * 3 + 17;
        let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let y: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
        let f = |v: f32| v.tanh() * 3.0 + 1.0;
        let g = |a: f32, b: f32| a * b - a / (b.abs() + 1.0);
        let want_map: Vec<f32> = x.iter().map(|&v| f(v)).collect();
        let want_zip: Vec<f32> = x.iter().zip(&y).map(|(&a, &b)| g(a, b)).collect();
        let s = Shape::from([n]);
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let (m, z) = pool.install(|| (map(&x, f), zip(&x, &s, &y, &s, &s, g)));
            assert_eq!(&m[..], &want_map[..], "map on {threads} threads");
            assert_eq!(&z[..], &want_zip[..], "zip on {threads} threads");
        }
        // A scalar broadcast against a large operand goes through the parallel map too.
        let one = Shape::from([1]);
        let z = zip(&x, &s, &[2.0], &one, &s, g);
        let want: Vec<f32> = x.iter().map(|&a| g(a, 2.0)).collect();
        assert_eq!(&z[..], &want[..]);
    }
}
