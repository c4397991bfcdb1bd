//! Elementwise maps and broadcasting zips. The inner loops run over the last dimension
//! with a unit or zero stride, which the compiler vectorises; outer dimensions advance a
//! small index counter.
//!
//! The loops over long slices are compiled for several instruction sets
//! ([`multiversion`](mod@multiversion), `targets = "simd"`: x86-64-v4 with AVX-512, v3 with AVX2, v2) and
//! the best one the CPU has is picked at run time, so a binary built with default flags
//! runs them on the widest vectors there are. Every path computes the same values: Rust
//! never fuses `a·b + c` into an FMA unless asked, so the results do not depend on the CPU.

use crate::buffer_cache;
use crate::element::Element;
use crate::kernels::fill::fill_chunks;
use crate::shape::Shape;
use crate::storage::Storage;
use multiversion::multiversion;
use std::mem::MaybeUninit;

/// Below this many elements a map runs on one thread: spawning costs more than it saves.
const PAR_MIN: usize = 1 << 16;

/// Parallel maps split into chunks of this many elements (each runs the dispatched loop).
const PAR_CHUNK: usize = 1 << 14;

/// Slices shorter than this skip the run-time dispatch (a few feature tests) and run the
/// baseline loop: a tiny tensor gains nothing from wide vectors.
pub(crate) const DISPATCH_MIN: usize = 64;

/// Appends `f(x)` for every `x` in `src` to `out`, on the CPU's widest vectors.
#[multiversion(targets = "simd")]
fn extend_map<T: Element, F: Fn(T) -> T>(out: &mut Vec<T>, src: &[T], f: &F) {
    out.extend(src.iter().map(|&v| f(v)));
}

/// Appends `f(a, b)` for every pair of `a` and `b` (equal lengths) to `out`.
#[multiversion(targets = "simd")]
fn extend_zip<T: Element, F: Fn(T, T) -> T>(out: &mut Vec<T>, a: &[T], b: &[T], f: &F) {
    out.extend(a.iter().zip(b).map(|(&x, &y)| f(x, y)));
}

/// `out[i] = f(src[i])` over equal-length slices (a parallel chunk's body).
#[multiversion(targets = "simd")]
fn write_map<T: Element, F: Fn(T) -> T>(out: &mut [MaybeUninit<T>], src: &[T], f: &F) {
    for (o, &v) in out.iter_mut().zip(src) {
        o.write(f(v));
    }
}

/// `out[i] = f(a[i], b[i])` over equal-length slices (a parallel chunk's body).
#[multiversion(targets = "simd")]
fn write_zip<T: Element, F: Fn(T, T) -> T>(out: &mut [MaybeUninit<T>], a: &[T], b: &[T], f: &F) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        o.write(f(x, y));
    }
}

/// `out[i] = f(out[i], src[i])`: one row folded into an accumulator row (reductions).
#[multiversion(targets = "simd")]
pub(crate) fn fold_into<T: Element, F: Fn(T, T) -> T>(out: &mut [T], src: &[T], f: &F) {
    for (o, &v) in out.iter_mut().zip(src) {
        *o = f(*o, v);
    }
}

/// `f` applied to every element, into a buffer from the [`buffer_cache`] when one fits;
/// from 64 Ki elements on, in parallel.
pub(crate) fn map<T: Element, F: Fn(T) -> T + Sync>(x: &[T], f: F) -> Storage<T> {
    if x.len() >= PAR_MIN {
        let v = fill_chunks(x.len(), PAR_CHUNK, |i, o| {
            write_map(o, &x[i * PAR_CHUNK..][..o.len()], &f)
        });
        Storage::from_vec(v)
    } else if x.len() >= DISPATCH_MIN {
        let mut v = buffer_cache::vec_with_capacity(x.len());
        extend_map(&mut v, x, &f);
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
            let v = fill_chunks(a.len(), PAR_CHUNK, |i, o| {
                let r = i * PAR_CHUNK..i * PAR_CHUNK + o.len();
                write_zip(o, &a[r.clone()], &b[r], &f)
            });
            return Storage::from_vec(v);
        }
        if a.len() >= DISPATCH_MIN {
            let mut v = buffer_cache::vec_with_capacity(a.len());
            extend_zip(&mut v, a, b, &f);
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
            (1, 1) if len >= DISPATCH_MIN => extend_zip(&mut res, &a[oa..oa + len], &b[ob..ob + len], &f),
            (1, 1) => res.extend(a[oa..oa + len].iter().zip(&b[ob..ob + len]).map(|(&x, &y)| f(x, y))),
            (1, 0) if len >= DISPATCH_MIN => extend_map(&mut res, &a[oa..oa + len], &|x| f(x, b[ob])),
            (1, 0) => res.extend(a[oa..oa + len].iter().map(|&x| f(x, b[ob]))),
            (0, 1) if len >= DISPATCH_MIN => extend_map(&mut res, &b[ob..ob + len], &|y| f(a[oa], y)),
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

    /// Maps and zips of every length class (inline, baseline loop, dispatched loop,
    /// parallel dispatched chunks) give exactly what a plain loop gives: the vectorised
    /// paths may not round differently (no FMA contraction), on any number of threads.
    #[test]
    fn dispatched_elementwise_paths_match_plain_loops() {
        for n in [2, DISPATCH_MIN - 1, DISPATCH_MIN + 3, 1000] {
            let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let y: Vec<f64> = (0..n).map(|i| (i as f64 * 0.11).cos()).collect();
            let g = |a: f64, b: f64| a * b + a / (b.abs() + 1.0) - 0.25 * b;
            let s = Shape::from([n]);
            let want: Vec<f64> = x.iter().zip(&y).map(|(&a, &b)| g(a, b)).collect();
            assert_eq!(&zip(&x, &s, &y, &s, &s, g)[..], &want[..], "zip, n = {n}");
            let want: Vec<f64> = x.iter().map(|&a| g(a, 0.5)).collect();
            assert_eq!(&map(&x, |a| g(a, 0.5))[..], &want[..], "map, n = {n}");
            // A row broadcast against a matrix goes through the dispatched row loop.
            let m: Vec<f64> = (0..3 * n).map(|i| i as f64 * 0.01).collect();
            let (sm, out) = (Shape::from([3, n]), Shape::from([3, n]));
            let want: Vec<f64> = m.iter().enumerate().map(|(i, &a)| g(a, x[i % n])).collect();
            assert_eq!(&zip(&m, &sm, &x, &s, &out, g)[..], &want[..], "broadcast zip, n = {n}");
        }
    }

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
