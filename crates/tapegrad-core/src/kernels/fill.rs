//! New buffers written piece by piece, without a zero fill first: the one place where a
//! kernel's output `Vec` is built from uninitialised memory. A kernel whose every output
//! element is written exactly once (im2col, the convolution's NCHW write-out, pooling,
//! elementwise maps) saves a pass over its output this way; on the MNIST CNN those fills
//! were passes over 11–18 MB per step.

use crate::buffer_cache;
use crate::element::Element;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// From this many elements, the pieces are written on rayon's pool.
pub(crate) const PAR_MIN: usize = 1 << 15;

/// A new `Vec` of `len` elements made by `fill(i, piece, side_piece)` for each
/// `chunk`-long piece `i` of it (the last may be shorter) and the matching
/// `side_chunk`-long piece of `side` (a second buffer written alongside, such as a
/// convolution's partial sums), on rayon's pool when `parallel`: the body of every fill
/// here. `fill` must write every element of its piece.
///
/// Panics if `side` has fewer pieces than the output (a caller's bug).
#[allow(unsafe_code)]
pub(crate) fn fill_chunks_with_on<T: Element, U: Send>(
    len: usize,
    chunk: usize,
    side: &mut [U],
    side_chunk: usize,
    parallel: bool,
    fill: impl Fn(usize, &mut [MaybeUninit<T>], &mut [U]) + Sync,
) -> Vec<T> {
    let mut out = buffer_cache::vec_with_capacity(len);
    let buf = &mut out.spare_capacity_mut()[..len];
    if len > 0 {
        let (chunk, side_chunk) = (chunk.max(1), side_chunk.max(1));
        assert!(
            side.len().div_ceil(side_chunk) >= len.div_ceil(chunk),
            "fill_chunks_with_on: side too short"
        );
        let run = |(i, (c, s)): (usize, (&mut [MaybeUninit<T>], &mut [U]))| fill(i, c, s);
        if parallel {
            buf.par_chunks_mut(chunk)
                .zip(side.par_chunks_mut(side_chunk))
                .enumerate()
                .for_each(run);
        } else {
            buf.chunks_mut(chunk)
                .zip(side.chunks_mut(side_chunk))
                .enumerate()
                .for_each(run);
        }
    }
    // SAFETY: `len` ≤ the capacity reserved above; the pieces cover the first `len`
    // elements (the assert makes `side` long enough that the zip stops at none of them),
    // and each piece's `fill` call wrote every element of it (every caller's contract; a
    // panic in `fill` unwinds before this line and leaves `out` empty).
    unsafe { out.set_len(len) };
    out
}

/// [`fill_chunks_with_on`] with a second new output of the same length and pieces:
/// `fill(i, piece, side_piece)` must write every element of both (max pooling's values and
/// positions).
#[allow(unsafe_code)]
pub(crate) fn fill_chunks_pair<T: Element, U: Send>(
    len: usize,
    chunk: usize,
    parallel: bool,
    fill: impl Fn(usize, &mut [MaybeUninit<T>], &mut [MaybeUninit<U>]) + Sync,
) -> (Vec<T>, Vec<U>) {
    let mut side = Vec::with_capacity(len);
    let out = fill_chunks_with_on(len, chunk, &mut side.spare_capacity_mut()[..len], chunk, parallel, fill);
    // SAFETY: `len` ≤ the capacity reserved above; the side was cut into the same pieces as
    // the output, so `fill` was called on every piece of it (fill_chunks_with_on returns
    // after every call) and wrote every element of each (the caller's contract).
    unsafe { side.set_len(len) };
    (out, side)
}

/// A cell a kernel writes exactly once: an initialised `T` (in a scratch buffer) or an
/// uninitialised one (in a new output), so one kernel serves both.
pub(crate) trait Slot<T>: Send {
    fn set(&mut self, v: T);
}

impl<T: Send> Slot<T> for T {
    #[inline(always)]
    fn set(&mut self, v: T) {
        *self = v;
    }
}

impl<T: Send> Slot<T> for MaybeUninit<T> {
    #[inline(always)]
    fn set(&mut self, v: T) {
        self.write(v);
    }
}

/// [`fill_chunks_with_on`] without a side output, in parallel from [`PAR_MIN`] elements:
/// `fill(i, piece)` writes piece `i`.
pub(crate) fn fill_chunks<T: Element>(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    fill_chunks_on(len, chunk, len >= PAR_MIN, fill)
}

/// [`fill_chunks`], on rayon's pool when `parallel` rather than by length (for kernels
/// whose pieces are worth a thread for another reason, such as a GEMM per piece).
pub(crate) fn fill_chunks_on<T: Element>(
    len: usize,
    chunk: usize,
    parallel: bool,
    fill: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let chunk = chunk.max(1);
    let mut none = vec![(); len.div_ceil(chunk)];
    fill_chunks_with_on(len, chunk, &mut none, 1, parallel, |i, piece, _| fill(i, piece))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element is written, in both the serial and the parallel path, with a
    /// shorter last piece, and the side output is written alongside.
    #[test]
    fn pieces_cover_the_buffer() {
        for len in [0, 1, 7, PAR_MIN - 1, PAR_MIN + 5, 3 * PAR_MIN + 11] {
            let v: Vec<f64> = fill_chunks(len, 100, |i, piece| {
                for (j, d) in piece.iter_mut().enumerate() {
                    d.write((i * 100 + j) as f64);
                }
            });
            assert!(v.iter().enumerate().all(|(k, &x)| x == k as f64), "len {len}");
            let mut side = vec![0u32; len.div_ceil(100)];
            let w: Vec<f32> = fill_chunks_with_on(len, 100, &mut side, 1, len >= PAR_MIN, |i, piece, s| {
                piece.iter_mut().for_each(|d| _ = d.write(1.0));
                s[0] = i as u32 + 1;
            });
            assert_eq!(w.len(), len);
            assert!(w.iter().all(|&x| x == 1.0));
            assert!(side.iter().enumerate().all(|(i, &s)| s == i as u32 + 1));
            for parallel in [false, true] {
                let (a, b): (Vec<f32>, Vec<u32>) = fill_chunks_pair(len, 100, parallel, |i, piece, side| {
                    for (j, (d, s)) in piece.iter_mut().zip(side.iter_mut()).enumerate() {
                        d.write(2.0);
                        s.set((i * 100 + j) as u32);
                    }
                });
                assert!(a.len() == len && a.iter().all(|&x| x == 2.0));
                assert!(b.len() == len && b.iter().enumerate().all(|(k, &x)| x == k as u32));
            }
        }
    }
}
