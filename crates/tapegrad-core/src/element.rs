//! The scalar types a [`Tensor`](crate::Tensor) can hold.

use num_traits::{Float, NumAssign};
use std::fmt::{Debug, Display, LowerExp};

mod sealed {
    /// Only `f32` and `f64`: the GEMM kernel's safety relies on `gemm_raw` writing every
    /// element of C, which an outside implementation could not promise.
    pub trait Sealed: crate::kernels::gemm::GemmScalar {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point element type: `f32` or `f64` (the trait is sealed).
///
/// Everything the tensor and its kernels need from a scalar: the `num-traits` float
/// interface, a name for error messages and checkpoints, and the matrix-product kernel
/// for that precision.
pub trait Element:
    sealed::Sealed
    + Float
    + NumAssign
    + Default
    + Debug
    + Display
    + LowerExp
    + Send
    + Sync
    + std::panic::UnwindSafe
    + std::panic::RefUnwindSafe
    + 'static
    + rand_distr::uniform::SampleUniform
{
    /// `"f32"` or `"f64"`: used in error messages and file headers.
    const DTYPE: &'static str;

    /// Converts from `f64`, rounding to the nearest representable value.
    fn from_f64_lossy(v: f64) -> Self;

    /// Converts to `f64` exactly (widening) or as closely as possible.
    fn as_f64(self) -> f64;

    /// `C ← α·A·B + β·C` on strided row/column layouts; see [`crate::kernels::gemm`].
    ///
    /// # Safety
    /// The pointers and strides must describe valid, non-overlapping (for `c`) memory
    /// regions of the stated dimensions.
    #[allow(clippy::too_many_arguments, unsafe_code)]
    #[doc(hidden)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

macro_rules! impl_element {
    ($t:ty, $name:literal, $gemm:path) => {
        impl Element for $t {
            const DTYPE: &'static str = $name;

            #[inline]
            fn from_f64_lossy(v: f64) -> Self {
                v as $t
            }

            #[inline]
            fn as_f64(self) -> f64 {
                self as f64
            }

            #[allow(unsafe_code)]
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: forwarded verbatim; the caller upholds matrixmultiply's contract
                // (valid pointers and strides for m×k, k×n and m×n matrices).
                unsafe { $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
        }
    };
}

impl_element!(f32, "f32", matrixmultiply::sgemm);
impl_element!(f64, "f64", matrixmultiply::dgemm);

/// Shorthand for `T::from_f64_lossy(v)` in generic code.
#[inline]
pub(crate) fn c<T: Element>(v: f64) -> T {
    T::from_f64_lossy(v)
}
