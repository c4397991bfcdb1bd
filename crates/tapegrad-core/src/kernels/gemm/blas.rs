//! Products through a system CBLAS (`cblas_sgemm` / `cblas_dgemm`), behind the `blas`
//! feature, in the manner of ndarray's: OpenBLAS by default, or the library the build script
//! is told to link (`TAPEGRAD_BLAS_LIB=mkl_rt` for MKL; see the crate's `build.rs`).

use super::GemmScalar;
use std::ffi::c_int;
use std::mem::MaybeUninit;

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

extern "C" {
    fn cblas_sgemm(
        order: c_int,
        ta: c_int,
        tb: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        b: *const f32,
        ldb: c_int,
        beta: f32,
        c: *mut f32,
        ldc: c_int,
    );
    fn cblas_dgemm(
        order: c_int,
        ta: c_int,
        tb: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f64,
        a: *const f64,
        lda: c_int,
        b: *const f64,
        ldb: c_int,
        beta: f64,
        c: *mut f64,
        ldc: c_int,
    );
}

/// The CBLAS `?gemm` for an element type.
pub trait Cblas: Sized {
    /// `cblas_?gemm(RowMajor, ta, tb, m, n, k, 1, a, lda, b, ldb, 0, c, ldc)`.
    ///
    /// # Safety
    /// CBLAS's contract: `a`, `b`, `c` hold the row-major operands the other arguments
    /// describe, and `c` is not aliased.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        ta: c_int,
        tb: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        a: *const Self,
        lda: c_int,
        b: *const Self,
        ldb: c_int,
        c: *mut Self,
        ldc: c_int,
    );
}

macro_rules! cblas {
    ($t:ty, $f:ident) => {
        impl Cblas for $t {
            unsafe fn gemm(
                ta: c_int,
                tb: c_int,
                m: c_int,
                n: c_int,
                k: c_int,
                a: *const Self,
                lda: c_int,
                b: *const Self,
                ldb: c_int,
                c: *mut Self,
                ldc: c_int,
            ) {
                // SAFETY: forwarded under the caller's contract.
                unsafe { $f(ROW_MAJOR, ta, tb, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc) }
            }
        }
    };
}
cblas!(f32, cblas_sgemm);
cblas!(f64, cblas_dgemm);

/// `c = op(a) · op(b)` through CBLAS (same layout contract as `matmul`; `m, n, k > 0`), or
/// `false` without touching `c` when a dimension does not fit CBLAS's 32-bit `int`.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm<T: GemmScalar>(
    a: &[T],
    b: &[T],
    c: &mut [MaybeUninit<T>],
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
) -> bool {
    let (Ok(mi), Ok(ki), Ok(ni)) = (c_int::try_from(m), c_int::try_from(k), c_int::try_from(n)) else {
        return false;
    };
    assert!(
        a.len() == m * k && b.len() == k * n && c.len() == m * n && m * n * k > 0,
        "gemm: operand sizes"
    );
    let (tra, lda) = if ta { (TRANS, mi) } else { (NO_TRANS, ki) };
    let (trb, ldb) = if tb { (TRANS, ki) } else { (NO_TRANS, ni) };
    // SAFETY: a is m×k row-major (lda = k) or its k×m transpose (lda = m), b likewise
    // (asserted lengths); c is the exclusively borrowed m×n output (ldc = n), which with
    // β = 0 CBLAS only writes ("C need not be set on input"), every element of it.
    unsafe {
        T::gemm(
            tra,
            trb,
            mi,
            ni,
            ki,
            a.as_ptr(),
            lda,
            b.as_ptr(),
            ldb,
            c.as_mut_ptr().cast(),
            ni,
        )
    };
    true
}
