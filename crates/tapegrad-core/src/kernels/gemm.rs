//! Matrix products through `matrixmultiply` (the GEMM behind ndarray), split over rows
//! across rayon's pool when the product is large enough to pay for a second thread.
#![allow(unsafe_code)]

use crate::element::Element;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Products below this many multiply-adds stay on the calling thread. Rayon's idle workers
/// sleep rather than spin, but a split still costs a wake-up (~10 µs) and competes with
/// the batch loader for the second core: splitting a batch-32 MLP layer (32·784·128 ≈
/// 3.2 M) made an MNIST epoch 40% slower (measured), so such layers stay on one core.
const PAR_MIN_MACS: usize = 1 << 23;

/// The products `op(aᵢ)·op(bᵢ)` for each pair of matrix offsets `(i_a, i_b)` (counted in
/// whole matrices into `a` and `b`), stacked into one new buffer of `pairs.len()·m·n`.
///
/// The buffer is not zeroed first: with β = 0 the GEMM writes every element of C without
/// reading it, which saves a pass over the output (400 KB per step for the weight gradient
/// of an MNIST layer).
#[allow(clippy::too_many_arguments)]
pub(crate) fn batched<T: Element>(
    a: &[T],
    b: &[T],
    pairs: &[(usize, usize)],
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
) -> Vec<T> {
    // The caller checked that the output fits in memory (ensure_alloc), so this product fits.
    let len = pairs.len().saturating_mul(m).saturating_mul(n);
    if k == 0 {
        return crate::buffer_cache::vec_filled(len, T::zero());
    }
    let mut out: Vec<T> = crate::buffer_cache::vec_with_capacity(len);
    let buf = &mut out.spare_capacity_mut()[..len];
    if m > 0 && n > 0 {
        for (&(ia, ib), c) in pairs.iter().zip(buf.chunks_exact_mut(m * n)) {
            let am = &a[ia * m * k..(ia + 1) * m * k];
            let bm = &b[ib * k * n..(ib + 1) * k * n];
            matmul(am, bm, c, m, k, n, ta, tb);
        }
    }
    // SAFETY: `len` ≤ the capacity reserved above, and k > 0 here, so each m×n block of
    // the first `len` spare elements (one block per pair, covering them all) was
    // written by a β = 0 GEMM, which stores every element of C (matrixmultiply: "if beta
    // is zero, then C does not need to be initialized"); with m or n zero it is empty.
    unsafe { out.set_len(len) };
    out
}

/// `c = op(a) · op(b)` where `op(a)` is `m×k` and `op(b)` is `k×n`, all row-major and
/// contiguous; `ta`/`tb` say that `a` is stored as `k×m` / `b` as `n×k`. Writes every
/// element of `c`, which may start uninitialised. Needs `k > 0`.
#[allow(clippy::too_many_arguments)]
fn matmul<T: Element>(a: &[T], b: &[T], c: &mut [MaybeUninit<T>], m: usize, k: usize, n: usize, ta: bool, tb: bool) {
    let fits = |rows: usize, cols: usize, len: usize| rows.checked_mul(cols) == Some(len);
    assert!(
        fits(m, k, a.len())
            && fits(k, n, b.len())
            && fits(m, n, c.len())
            && k > 0
            && m.max(n).max(k) <= isize::MAX as usize,
        "gemm: operand sizes"
    );
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let threads = rayon::current_num_threads();
    if m.saturating_mul(n).saturating_mul(k) < PAR_MIN_MACS || threads < 2 || m < 2 * 16 {
        // SAFETY: the assert guarantees a, b and c hold m×k, k×n and m×n elements, and
        // (rsa, csa), (rsb, csb), (n, 1) address exactly those layouts; c is exclusively
        // borrowed, MaybeUninit<T> has T's layout, and with β = 0 C is only written.
        unsafe {
            T::gemm_raw(
                m,
                k,
                n,
                T::one(),
                a.as_ptr(),
                rsa,
                csa,
                b.as_ptr(),
                rsb,
                csb,
                T::zero(),
                c.as_mut_ptr().cast(),
                n as isize,
                1,
            );
        }
        return;
    }
    // Row blocks of C (and of op(A)), a multiple of 16 rows each.
    let rows = m.div_ceil(threads).div_ceil(16) * 16;
    c.par_chunks_mut(rows * n).enumerate().for_each(|(i, cb)| {
        let r0 = i * rows;
        let mb = cb.len() / n;
        // SAFETY: rows r0..r0+mb of op(A) start at element r0·rsa of `a` and stay inside it
        // (r0 + mb ≤ m); b is read whole; cb is this block's own mb×n slice of c, written
        // only (β = 0).
        unsafe {
            let a0 = a.as_ptr().offset(r0 as isize * rsa);
            T::gemm_raw(
                mb,
                k,
                n,
                T::one(),
                a0,
                rsa,
                csa,
                b.as_ptr(),
                rsb,
                csb,
                T::zero(),
                cb.as_mut_ptr().cast(),
                n as isize,
                1,
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a rayon pool")
            .install(f)
    }

    /// The row-split parallel path (taken above PAR_MIN_MACS with ≥ 2 threads) gives the
    /// same bits as the one-call serial path, for every transpose combination, including a
    /// row count that leaves a short last block.
    #[test]
    fn parallel_gemm_matches_serial_for_every_transpose() {
        let (m, k, n) = (211, 300, 190); // 12 M MACs ≥ PAR_MIN_MACS; 211 rows = 7 blocks of 32 minus some
        assert!(m * k * n >= PAR_MIN_MACS);
        let a: Vec<f64> = (0..m * k).map(|i| ((i * 7 % 23) as f64 - 11.0) / 7.0).collect();
        let b: Vec<f64> = (0..k * n).map(|i| ((i * 5 % 19) as f64 - 9.0) / 5.0).collect();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let serial = run_in_pool(1, || batched(&a, &b, &[(0, 0)], m, k, n, ta, tb));
            let parallel = run_in_pool(3, || batched(&a, &b, &[(0, 0)], m, k, n, ta, tb));
            assert_eq!(serial[..], parallel[..], "ta={ta} tb={tb}");
            // And both are the product: spot-check entries against a plain dot product.
            for &(i, j) in &[(0, 0), (m - 1, n - 1), (100, 37)] {
                let at = |r: usize, c: usize| if ta { a[c * m + r] } else { a[r * k + c] };
                let bt = |r: usize, c: usize| if tb { b[c * k + r] } else { b[r * n + c] };
                let want: f64 = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
                assert!((serial[i * n + j] - want).abs() < 1e-9 * want.abs().max(1.0));
            }
        }
    }
}
