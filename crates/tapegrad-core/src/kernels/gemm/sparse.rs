//! Products whose left operand is mostly exact zeros: a first layer's input (MNIST's pixels
//! are 81% zeros), its transpose in that layer's weight gradient, one-hot rows. Each element
//! of C sums only the terms whose `A[i, p]` is nonzero: an exact zero's fused multiply-add,
//! `fma(0, b, acc)`, leaves `acc` as it was whenever `b` is finite, so skipping it changes
//! nothing.
//!
//! The sums are the dense kernel's, operation for operation: each element of C is, for each
//! of the same depth slices as [`driver::gemm`](super::driver::gemm) (`kc` rounded to even
//! slices by [`driver::even`](super::driver::even)), a chain of fused multiply-adds from
//! zero in increasing depth, the slices' sums added in order. So the values are the dense kernel's bit for bit whenever B is finite
//! (checked before anything is written: a zero times an infinity must still give NaN); the
//! one possible difference is the sign of a zero that only an underflowing product made.
//!
//! One loop order: depth slice outermost, then each 64-deep sub-slice (the slice's part of
//! one word of the rows' nonzero masks), then each group of `W` columns, then each row of C,
//! whose nonzeros in the sub-slice, found by walking the word's set bits, are summed into
//! the group's `W` columns: a chain of fused multiply-adds in registers, carried from one
//! sub-slice to the next through a row of sums (in L1). A sub-slice's rows of B (32 KB of an
//! MNIST layer's 784 × 128 weights) stay in L1 while every row of C passes over them; with
//! the slice's 196 rows (100 KB) they were read from L2 for every row of C. With that and the
//! bits walked in place of a list of nonzeros gathered first, on real MNIST batches (3
//! alternated runs on an AVX-512 Xeon) the forward went from 51.0–51.6 to 40.5 µs. A
//! product at most 64 deep in one slice (the weight gradient's, 32 deep) checks B first and
//! runs each chain once, from zero, straight into C (two rows' chains at a time where
//! AVX-512's registers hold both). Otherwise B is checked after the sums and before C is
//! written (see the end of `sliced`), so a non-finite B leaves C untouched.

use super::driver::View;
use crate::element::Element;
use multiversion::multiversion;
use std::mem::MaybeUninit;

/// Elements of op(A) sampled by [`worth_trying`].
const SAMPLE: usize = 64;

/// Whether a sample of [`SAMPLE`] evenly spaced elements of `a` (op(A)'s storage, any
/// layout) is at most 3/8 nonzeros: a dense operand, or a ReLU's output (about half zeros),
/// is turned away at almost no cost, and [`gemm`] counts the rest exactly (an MNIST batch,
/// a fifth nonzeros, samples 12 ± 3 of 64).
pub(super) fn worth_trying<T: Element>(a: &[T]) -> bool {
    a.len() >= SAMPLE * 4
        && a.iter()
            .step_by(a.len() / SAMPLE)
            .take(SAMPLE)
            .filter(|v| !v.is_zero())
            .count()
            <= SAMPLE * 3 / 8
}

/// `C = op(A) · B` for the `m × k` view `a`, the row-major `k × n` matrix `b` and the
/// row-major `m × n` matrix `c`, with the dense kernel's depth slices of `kc` (see the
/// module docs), if at most a quarter of A's elements are nonzero and B is finite. Returns
/// whether it did (writing every element of `c`), else leaves `c` untouched.
///
/// A quarter: each multiply-add kept costs about twice the dense kernel's (gathering the
/// nonzeros, B's rows read in place rather than packed), so skipping zeros pays below about
/// half density; a quarter leaves a margin.
///
/// `wide` ([`wide_vectors`] for this CPU; the tests run both) sums 512 bytes of C's row at a
/// time (128 f32 or 64 f64), else 256, so that a group's sums fill 8 vector registers either
/// way (4 AVX-512 ones left each chain of fused multiply-adds waiting on its latency: on real
/// MNIST batches, 4 alternated runs on a Xeon with AVX-512, the forward took 54–56 µs and the
/// weight gradient 38.5–38.7 instead of 51 and 35–36.5).
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm<T: Element>(
    a: View<'_, T>,
    b: &[T],
    c: &mut [MaybeUninit<T>],
    m: usize,
    k: usize,
    n: usize,
    kc: usize,
    wide: bool,
) -> bool {
    assert!(
        m * n == c.len() && k * n == b.len() && m > 0 && k > 0 && kc > 0,
        "sparse gemm: operand sizes"
    );
    assert!(
        a.off + (m - 1) * a.rs + (k - 1) * a.cs < a.data.len(),
        "sparse gemm: A too short"
    );
    match (std::mem::size_of::<T>() == 4, wide) {
        (true, true) => gemm_w::<T, 128, true>(a, b, c, m, k, n, kc),
        (false, true) => gemm_w::<T, 64, true>(a, b, c, m, k, n, kc),
        (true, false) => gemm_w::<T, 64, false>(a, b, c, m, k, n, kc),
        (false, false) => gemm_w::<T, 32, false>(a, b, c, m, k, n, kc),
    }
}

/// Whether the CPU has 512-bit vectors (AVX-512F; the standard library checks once).
pub(super) fn wide_vectors() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`gemm`], summing `W` columns of C at a time; with `PAIRS` (AVX-512's 32 registers), two
/// rows' chains side by side where one group spans the row.
#[multiversion(targets = "simd")]
fn gemm_w<T: Element, const W: usize, const PAIRS: bool>(
    a: View<'_, T>,
    b: &[T],
    c: &mut [MaybeUninit<T>],
    m: usize,
    k: usize,
    n: usize,
    kc: usize,
) -> bool {
    // For each row i, words whose bit p % 64 of word p / 64 says A[i, p] ≠ 0.
    let mask = row_mask(a, m, k);
    let nonzeros: usize = mask.iter().map(|w| w.count_ones() as usize).sum();
    if nonzeros > m * k / 4 {
        return false;
    }
    let at = |i: usize, p: usize| a.data[a.off + i * a.rs + p * a.cs];
    if k <= kc.min(64) {
        // One slice, one mask word per row: each row's chains run once, from zero, and are
        // stored in C.
        if !finite(b) {
            return false;
        }
        if n == W && PAIRS {
            // Two rows at a time: 16 chains in flight (on real MNIST batches on the Xeon, the
            // weight gradient 23.8–25.0 → 20.5–21.0 µs in 3 of 4 alternations, 32.1 in a
            // noisy one).
            for (pair, out) in c.chunks_mut(2 * n).enumerate() {
                let i = 2 * pair;
                let (oa, ob) = out.split_at_mut(n);
                let zero = [T::zero(); W];
                if ob.is_empty() {
                    store(oa, chain::<T, W>(zero, mask[i], 0, |p| at(i, p), b, n, 0));
                    continue;
                }
                let (x, y) = chain2::<T, W>(
                    (zero, zero),
                    (mask[i], mask[i + 1]),
                    0,
                    |p| at(i, p),
                    |p| at(i + 1, p),
                    b,
                    n,
                    0,
                );
                store(oa, x);
                store(ob, y);
            }
            return true;
        }
        for ((i, &bits), out) in mask.iter().enumerate().zip(c.chunks_exact_mut(n)) {
            for j0 in (0..n).step_by(W) {
                let w = W.min(n - j0);
                if w == W {
                    store(
                        &mut out[j0..j0 + W],
                        chain::<T, W>([T::zero(); W], bits, 0, |p| at(i, p), b, n, j0),
                    );
                } else {
                    let mut acc = [T::zero(); W];
                    tail(&mut acc[..w], bits, 0, |p| at(i, p), b, n, j0);
                    for (o, &x) in out[j0..j0 + w].iter_mut().zip(&acc) {
                        o.write(x);
                    }
                }
            }
        }
        return true;
    }
    sliced::<T, W>(a, b, c, &mask, m, k, n, kc)
}

/// [`gemm_w`] for a product deeper than 64 or in several slices: in 64-deep sub-slices of
/// each depth slice (see the module docs), B checked after the sums. Its own function, so
/// that its code is compiled apart from the weight gradient's paired chains (together, the
/// forward took 1 µs more).
#[allow(clippy::too_many_arguments)]
#[multiversion(targets = "simd")]
fn sliced<T: Element, const W: usize>(
    a: View<'_, T>,
    b: &[T],
    c: &mut [MaybeUninit<T>],
    mask: &[u64],
    m: usize,
    k: usize,
    n: usize,
    kc: usize,
) -> bool {
    let words = k.div_ceil(64);
    let at = |i: usize, p: usize| a.data[a.off + i * a.rs + p * a.cs];
    // Each row's sums: the first slice's in `totals`, a later slice's in `part` and then
    // added to them, in order. A chain is carried from one sub-slice to the next through
    // these rows (the value it would have had in registers).
    let mut totals = vec![T::zero(); m * n];
    let mut part = vec![T::zero(); if k > kc { m * n } else { 0 }];
    for (s, p0) in (0..k).step_by(kc).enumerate() {
        let p1 = (p0 + kc).min(k);
        let sums = if s == 0 {
            &mut totals
        } else {
            part.fill(T::zero());
            &mut part
        };
        // Sub-slices: the slice's part of each mask word.
        for word in p0 / 64..p1.div_ceil(64) {
            let (q0, q1) = (p0.max(word * 64) - word * 64, p1.min(word * 64 + 64) - word * 64);
            let range = (u64::MAX >> (64 - (q1 - q0))) << q0;
            for j0 in (0..n).step_by(W) {
                let w = W.min(n - j0);
                for (i, row) in sums.chunks_exact_mut(n).enumerate() {
                    let bits = mask[i * words + word] & range;
                    if bits == 0 {
                        continue;
                    }
                    if w == W {
                        let acc: &mut [T; W] = (&mut row[j0..j0 + W]).try_into().expect("W wide");
                        *acc = chain::<T, W>(*acc, bits, word * 64, |p| at(i, p), b, n, j0);
                    } else {
                        tail(&mut row[j0..j0 + w], bits, word * 64, |p| at(i, p), b, n, j0);
                    }
                }
            }
        }
        if s > 0 {
            for (t, &x) in totals.iter_mut().zip(&part) {
                *t += x;
            }
        }
    }
    // B is checked before C is written. Every element of a row of B that a nonzero of A meets
    // enters a sum (times that nonzero), and an infinity or a NaN there leaves the sum
    // non-finite (no later term makes it finite again), so when all sums are finite only the
    // rows no nonzero meets need a look (on an MNIST batch the pixels no image lit; checking
    // all rows before use had cost the forward 2.5 µs more: 38.7–39.0 → 36.3–36.4 µs, 4
    // alternations).
    let whole = if finite(&totals) {
        let mut met = vec![0u64; words];
        for row in mask.chunks_exact(words) {
            met.iter_mut().zip(row).for_each(|(m, &r)| *m |= r);
        }
        (0..k).all(|p| met[p / 64] >> (p % 64) & 1 == 1 || finite(&b[p * n..(p + 1) * n]))
    } else {
        finite(b)
    };
    if !whole {
        return false;
    }
    for (o, &x) in c.iter_mut().zip(&totals) {
        o.write(x);
    }
    true
}

/// Stores `W` sums into `out` (exactly `W` long) whole, as vector stores.
#[inline(always)]
fn store<T: Element, const W: usize>(out: &mut [MaybeUninit<T>], acc: [T; W]) {
    let dst: &mut [MaybeUninit<T>; W] = out.try_into().expect("W wide");
    *dst = acc.map(MaybeUninit::new);
}

/// Whether every element of `rows` is finite: a fold without an early exit, so that it
/// vectorises.
#[inline(always)]
fn finite<T: Element>(rows: &[T]) -> bool {
    rows.iter().fold(true, |ok, x| ok & x.is_finite())
}

/// `acc[j] += v · B[p, j0 + j]`, a fused multiply-add, for each set bit `p − base` of
/// `bits` in increasing depth, with `v = A[i, p]` from `at(p)`: a chain carried on from the
/// sums given, returned by value so that they stay in registers and the caller stores them
/// whole (a runtime-length copy made them go through the stack and `memcpy`: the weight
/// gradient 57 → 50 µs).
#[inline(always)]
fn chain<T: Element, const W: usize>(
    mut acc: [T; W],
    mut bits: u64,
    base: usize,
    at: impl Fn(usize) -> T,
    b: &[T],
    n: usize,
    j0: usize,
) -> [T; W] {
    while bits != 0 {
        let p = base + bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let v = at(p);
        let br: &[T; W] = b[p * n + j0..][..W].try_into().expect("W wide");
        for (x, &y) in acc.iter_mut().zip(br) {
            *x = v.mul_add(y, *x);
        }
    }
    acc
}

/// Two rows' [`chain`]s side by side, each with its own bits and values, while both have
/// terms left; then each alone.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn chain2<T: Element, const W: usize>(
    (mut x, mut y): ([T; W], [T; W]),
    (mut bx, mut by): (u64, u64),
    base: usize,
    at_x: impl Fn(usize) -> T,
    at_y: impl Fn(usize) -> T,
    b: &[T],
    n: usize,
    j0: usize,
) -> ([T; W], [T; W]) {
    while bx != 0 && by != 0 {
        let (p, q) = (base + bx.trailing_zeros() as usize, base + by.trailing_zeros() as usize);
        bx &= bx - 1;
        by &= by - 1;
        let (u, v) = (at_x(p), at_y(q));
        let bp: &[T; W] = b[p * n + j0..][..W].try_into().expect("W wide");
        let bq: &[T; W] = b[q * n + j0..][..W].try_into().expect("W wide");
        for j in 0..W {
            x[j] = u.mul_add(bp[j], x[j]);
            y[j] = v.mul_add(bq[j], y[j]);
        }
    }
    (chain(x, bx, base, at_x, b, n, j0), chain(y, by, base, at_y, b, n, j0))
}

/// [`chain`] for the last `acc.len() < W` columns, in place.
#[inline(always)]
fn tail<T: Element>(acc: &mut [T], mut bits: u64, base: usize, at: impl Fn(usize) -> T, b: &[T], n: usize, j0: usize) {
    let w = acc.len();
    while bits != 0 {
        let p = base + bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let v = at(p);
        for (x, &y) in acc.iter_mut().zip(&b[p * n + j0..p * n + j0 + w]) {
            *x = v.mul_add(y, *x);
        }
    }
}

/// For each row `i` of the `m × k` operand, `k.div_ceil(64)` words: bit `p % 64` of word
/// `p / 64` says whether `A[i, p]` is nonzero; built in A's storage order without a branch
/// per element.
#[inline(always)]
fn row_mask<T: Element>(a: View<'_, T>, m: usize, k: usize) -> Vec<u64> {
    let words = k.div_ceil(64);
    let mut mask = vec![0u64; m * words];
    if a.cs == 1 {
        // Row-major: up to 64 consecutive elements of a row make one word.
        for (i, row) in mask.chunks_exact_mut(words).enumerate() {
            let start = a.off + i * a.rs;
            for (word, chunk) in row.iter_mut().zip(a.data[start..start + k].chunks(64)) {
                *word = bits_of(chunk.iter());
            }
        }
    } else {
        // Column-major (a transposed operand): column p is contiguous.
        for p in 0..k {
            let (w, bit) = (p / 64, p % 64);
            let start = a.off + p * a.cs;
            let column = &a.data[start..start + m];
            if words == 1 {
                for (word, v) in mask.iter_mut().zip(column) {
                    *word |= u64::from(!v.is_zero()) << bit;
                }
            } else {
                for (i, v) in column.iter().enumerate() {
                    mask[i * words + w] |= u64::from(!v.is_zero()) << bit;
                }
            }
        }
    }
    mask
}

/// Bit `j` set where the `j`-th of at most 64 values is nonzero.
#[inline(always)]
fn bits_of<'v, T: Element>(values: impl Iterator<Item = &'v T>) -> u64 {
    values
        .enumerate()
        .fold(0, |w, (j, v)| w | (u64::from(!v.is_zero()) << j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_marks_the_nonzeros_in_both_layouts() {
        for (m, k) in [(5usize, 130usize), (64, 20), (70, 64)] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| if i % 7 == 0 || i % 11 == 3 { 1.0 } else { 0.0 })
                .collect();
            let words = k.div_ceil(64);
            let row_major = View::of(&a, k, false);
            // The same m × k matrix stored transposed (k × m).
            let t: Vec<f32> = (0..k * m).map(|e| a[(e % m) * k + e / m]).collect();
            let col_major = View::of(&t, m, true);
            for v in [row_major, col_major] {
                let rows = row_mask(v, m, k);
                for i in 0..m {
                    for p in 0..k {
                        let nonzero = a[i * k + p] != 0.0;
                        let by_row = rows[i * words + p / 64] >> (p % 64) & 1 == 1;
                        assert_eq!(by_row, nonzero, "row mask ({i}, {p}), cs = {}", v.cs);
                    }
                }
            }
        }
    }
}
