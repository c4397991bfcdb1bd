//! Matrix products through `matrixmultiply` (the GEMM behind ndarray), split over rows
//! across rayon's pool when the product is large enough to pay for a second thread.
#![allow(unsafe_code)]

use crate::element::Element;
use rayon::prelude::*;

/// Products below this many multiply-adds stay on the calling thread. Rayon's idle workers
/// sleep rather than spin, but a split still costs a wake-up (~10 µs); a batch-32 MLP
/// layer (32·784·128 ≈ 3.2 M) is cheaper on one core than split.
const PAR_MIN_MACS: usize = 1 << 23;

/// `c = op(a) · op(b)` where `op(a)` is `m×k` and `op(b)` is `k×n`, all row-major and
/// contiguous; `ta`/`tb` say that `a` is stored as `k×m` / `b` as `n×k`. `c` is overwritten.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<T: Element>(a: &[T], b: &[T], c: &mut [T], m: usize, k: usize, n: usize, ta: bool, tb: bool) {
    assert!(
        a.len() == m * k && b.len() == k * n && c.len() == m * n,
        "gemm: operand sizes"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(T::zero());
        return;
    }
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let threads = rayon::current_num_threads();
    if m * n * k < PAR_MIN_MACS || threads < 2 || m < 2 * 16 {
        // SAFETY: the assert above guarantees a, b and c hold m×k, k×n and m×n elements, and
        // (rsa, csa), (rsb, csb), (n, 1) address exactly those layouts; c is exclusively borrowed.
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
                c.as_mut_ptr(),
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
        // (r0 + mb ≤ m); b is read whole; cb is this block's own mb×n slice of c.
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
                cb.as_mut_ptr(),
                n as isize,
                1,
            );
        }
    });
}
