//! Matrix products: a packed, cache-blocked GEMM with AVX-512 / AVX2+FMA microkernels chosen
//! at run time (`driver`, `x86`), `matrixmultiply` (the GEMM behind ndarray) for CPUs without
//! them and for the small shapes where packing does not pay, split over rayon's pool when the
//! product is large enough to pay for a second thread. A product whose left operand is mostly
//! exact zeros (a first layer's input) skips them with the same sums (`sparse`).
#![allow(unsafe_code)]

#[cfg(feature = "blas")]
mod blas;
mod driver;
mod sparse;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::element::Element;
use driver::{AOperand, Kernel, PackA, View};
use rayon::prelude::*;
use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::OnceLock;
/// Products below this many multiply-adds stay on the calling thread. Rayon's idle workers
/// sleep rather than spin, but a split still costs a wake-up (9–130 µs on the 2-vCPU VMs
/// measured, `cargo bench -p tapegrad-core --bench core -- wake`) and competes with
/// the batch loader for the second core: splitting a batch-32 MLP layer (32·784·128 ≈
/// 3.2 M) made an MNIST epoch 40% slower (measured), so such layers stay on one core.
const PAR_MIN_MACS: usize = 1 << 23;

/// A parallel product below this many multiply-adds runs its first block on the calling
/// thread while the pool runs the others. Handed whole to the pool from outside it (a
/// training loop on the main thread), a product wakes a worker, which wakes the other, and
/// the caller sleeps until the last block is done and is woken in turn; on a 256³ product
/// (≈ 250 µs) those wake-ups are a large share (session 9, 6 alternated runs: median 119 →
/// 128 GFLOP/s, and the runs at 90 were gone; 384³ 130 → 133). Larger products keep the
/// pool alone: with the caller working beside it, the 784-1024-10 MLP's products (2·10⁸
/// multiply-adds) made its epoch slower in 7 of 7 alternated runs.
const CALLER_MAX_MACS: usize = 1 << 26;

/// When a product is split over rayon's pool: from `min_macs` multiply-adds, with the caller
/// taking a block below `caller_max_macs` ([`PAR_MIN_MACS`], [`CALLER_MAX_MACS`]; the tests
/// force each case).
#[derive(Clone, Copy)]
struct Split {
    min_macs: usize,
    caller_max_macs: usize,
}

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

/// `c = op(a) · op(b)` into an initialised `c` (`m×n`, row-major): [`batched`]'s single
/// product for kernels that keep their own scratch buffers. `k` may be 0 (c becomes 0).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_into<T: Element>(a: &[T], b: &[T], c: &mut [T], m: usize, k: usize, n: usize, ta: bool, tb: bool) {
    if k == 0 {
        c.fill(T::zero());
        return;
    }
    // SAFETY: MaybeUninit<T> has T's layout, and `matmul` only stores initialised values
    // into c (it writes every element, β = 0, and reads none), so c holds valid values of
    // T whenever this borrow ends, a panic included.
    let c = unsafe { &mut *(c as *mut [T] as *mut [MaybeUninit<T>]) };
    matmul(a, b, c, m, k, n, ta, tb);
}

/// The rows `mr` of the packed kernel's register tile on this CPU (its A panels), or `None`
/// where products run on `matrixmultiply` (no kernel of ours).
pub(crate) fn packed_rows<T: Element>() -> Option<usize> {
    T::kernel(Isa::detect()).map(|k| k.mr)
}

/// `c = A · b` on the calling thread for an A operand that packs itself: `pack_a(dst, i0, p0,
/// depth, rows)` writes rows `i0..i0 + rows` and depths `p0..p0 + depth` of the `m × k` A into
/// `dst` in [`packed_rows`]-row panels (panel-major, each `depth × mr` depth-major, rows past
/// `m` zero); `b` is `k × n` row-major, read in place; `c` is `m × n` row-major. For operands
/// that are cheaper to pack from their source than to lay out as a matrix first (a
/// convolution's windows). Panics if there is no packed kernel (check [`packed_rows`]) or
/// the sizes do not match.
pub(crate) fn matmul_packing_a<T: Element>(pack_a: &PackA<'_, T>, b: &[T], c: &mut [T], m: usize, k: usize, n: usize) {
    matmul_packing_a_on(Isa::detect(), pack_a, b, c, m, k, n);
}

/// [`matmul_packing_a`] on the given instruction set (which the CPU must have: the tests
/// force each).
fn matmul_packing_a_on<T: Element>(
    isa: Isa,
    pack_a: &PackA<'_, T>,
    b: &[T],
    c: &mut [T],
    m: usize,
    k: usize,
    n: usize,
) {
    let kern = T::kernel(isa).expect("matmul_packing_a: no packed kernel on this CPU");
    assert!(b.len() == k * n && c.len() == m * n, "matmul_packing_a: operand sizes");
    if k == 0 {
        c.fill(T::zero());
        return;
    }
    let bv = View::of(b, n, false);
    // SAFETY: c is the exclusively borrowed m×n block (row stride n); the kernel's ISA was
    // detected on this CPU (or forced by a test that checked it); k > 0; b holds k×n
    // (asserted).
    unsafe { driver::gemm(&kern, m, k, n, AOperand::Packer(pack_a), bv, true, c.as_mut_ptr(), n) };
}

/// The instruction sets a GEMM kernel exists for, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F (x86-64).
    Avx512,
    /// AVX2 with FMA (x86-64).
    Avx2,
    /// No kernel of ours: `matrixmultiply`.
    Fallback,
}

impl Isa {
    /// The best instruction set of the running CPU, detected once.
    fn detect() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    return Isa::Avx512;
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    return Isa::Avx2;
                }
            }
            Isa::Fallback
        })
    }

    /// The ISAs this CPU can run, the fallback included (for the tests).
    #[cfg(test)]
    fn available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Fallback]
            .into_iter()
            .filter(|&i| match i {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
                Isa::Fallback => true,
                #[allow(unreachable_patterns)]
                _ => false,
            })
            .collect()
    }
}

/// What the GEMM needs from an element type beyond [`Element`]: its microkernel for an ISA
/// and a per-thread packing buffer. A supertrait of the sealed `Element`, so only `f32` and
/// `f64` implement it.
pub trait GemmScalar: Sized + Copy + 'static + Cblas {
    /// The microkernel for `isa`, or `None` for the fallback.
    fn kernel(isa: Isa) -> Option<Kernel<Self>>;
    /// This thread's packing buffer, taken out (empty if in use or never made).
    fn take_scratch() -> Vec<Self>;
    /// Puts the packing buffer back for the next call on this thread.
    fn give_scratch(v: Vec<Self>);
}

#[cfg(feature = "blas")]
use blas::Cblas;
/// Without the `blas` feature, no CBLAS routine is needed.
#[cfg(not(feature = "blas"))]
pub trait Cblas {}
#[cfg(not(feature = "blas"))]
impl<T> Cblas for T {}

macro_rules! gemm_scalar {
    ($t:ty, $avx512:ident, $avx2:ident) => {
        impl GemmScalar for $t {
            fn kernel(isa: Isa) -> Option<Kernel<Self>> {
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => Some(x86::$avx512()),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => Some(x86::$avx2()),
                    _ => None,
                }
            }
            fn take_scratch() -> Vec<Self> {
                Self::scratch().with(|b| b.take())
            }
            fn give_scratch(v: Vec<Self>) {
                Self::scratch().with(|b| b.set(v))
            }
        }
    };
}
gemm_scalar!(f32, avx512_f32_kernel, avx2_f32_kernel);
gemm_scalar!(f64, avx512_f64_kernel, avx2_f64_kernel);

/// The per-thread packing buffers behind [`GemmScalar::take_scratch`].
trait ScratchKey: Sized + 'static {
    fn scratch() -> &'static std::thread::LocalKey<Cell<Vec<Self>>>;
}
thread_local! {
    static SCRATCH_F32: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static SCRATCH_F64: Cell<Vec<f64>> = const { Cell::new(Vec::new()) };
}
impl ScratchKey for f32 {
    fn scratch() -> &'static std::thread::LocalKey<Cell<Vec<Self>>> {
        &SCRATCH_F32
    }
}
impl ScratchKey for f64 {
    fn scratch() -> &'static std::thread::LocalKey<Cell<Vec<Self>>> {
        &SCRATCH_F64
    }
}

/// Below this many multiply-adds (64³) `matrixmultiply` is used: packing both operands costs
/// more than our kernel gains.
const PACKED_MIN_MACS: usize = 1 << 18;

/// `c = op(a) · op(b)` where `op(a)` is `m×k` and `op(b)` is `k×n`, all row-major and
/// contiguous; `ta`/`tb` say that `a` is stored as `k×m` / `b` as `n×k`. Writes every
/// element of `c`, which may start uninitialised. Needs `k > 0`.
#[allow(clippy::too_many_arguments)]
fn matmul<T: Element>(a: &[T], b: &[T], c: &mut [MaybeUninit<T>], m: usize, k: usize, n: usize, ta: bool, tb: bool) {
    #[cfg(feature = "blas")]
    if blas::gemm(a, b, c, m, k, n, ta, tb) {
        return;
    }
    // Measured (BENCHMARKS.md): our kernel wins from 64³ up, and when B is row-major or
    // op(A) has many rows; matrixmultiply wins on tiny products, and when a transposed B must
    // be gathered for a batch of few rows (32×128×784 with B stored 784×128).
    let packed = m.saturating_mul(n).saturating_mul(k) >= PACKED_MIN_MACS && !(tb && m <= driver::DIRECT_B_MAX_ROWS);
    let isa = if packed { Isa::detect() } else { Isa::Fallback };
    let split = Split {
        min_macs: PAR_MIN_MACS,
        caller_max_macs: CALLER_MAX_MACS,
    };
    matmul_with(isa, split, a, b, c, m, k, n, ta, tb);
}

/// [`matmul`] on the given instruction set (which the CPU must have: the tests force each),
/// split over rayon's pool as `split` says.
#[allow(clippy::too_many_arguments)]
fn matmul_with<T: Element>(
    isa: Isa,
    split: Split,
    a: &[T],
    b: &[T],
    c: &mut [MaybeUninit<T>],
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
) {
    let fits = |rows: usize, cols: usize, len: usize| rows.checked_mul(cols) == Some(len);
    assert!(
        fits(m, k, a.len())
            && fits(k, n, b.len())
            && fits(m, n, c.len())
            && k > 0
            && m.max(n).max(k) <= isize::MAX as usize,
        "gemm: operand sizes"
    );
    let threads = rayon::current_num_threads();
    let macs = m.saturating_mul(n).saturating_mul(k);
    let parallel = macs >= split.min_macs && threads >= 2;
    let caller_works = macs < split.caller_max_macs;
    let Some(kern) = T::kernel(isa) else {
        return fallback(a, b, c, m, k, n, ta, tb, parallel, caller_works);
    };
    // a is stored k×m when ta, b n×k when tb.
    let av = View::of(a, if ta { m } else { k }, ta);
    let bv = View::of(b, if tb { k } else { n }, tb);
    // A serial product whose A is mostly zeros skips them, with the same values (`sparse`),
    // following the dense kernel's depth slices (`driver::even`).
    if !parallel && !tb && m > 0 && n > 0 && sparse::worth_trying(a) {
        let kc = driver::even(k, kern.kc, 1);
        if sparse::gemm(av, b, c, m, k, n, kc, sparse::wide_vectors()) {
            return;
        }
    }
    if !parallel || m == 0 || n == 0 {
        // SAFETY: c holds the m×n block (row stride n), exclusively borrowed; `isa` was
        // detected on this CPU (or forced by a test that checked it); k > 0 (asserted).
        unsafe { driver::gemm(&kern, m, k, n, AOperand::View(av), bv, false, c.as_mut_ptr().cast(), n) };
        return;
    }
    // Each thread packs its share of one operand and all of the other: a row split packs
    // all of B in every thread, a column split all of A. Split the dimension that leaves the
    // smaller operand whole (rows when m ≥ n: 256×784·784×1024 splits its 1024 columns, and
    // each thread packs a 200 K-element A instead of an 800 K-element B), unless there are too
    // few column tiles to share out evenly.
    let by_rows = m >= n || n.div_ceil(kern.nr) < 2 * threads;
    if by_rows {
        // Row blocks of C (and of op(A)), whole register tiles each.
        let rows = m.div_ceil(threads).div_ceil(kern.mr) * kern.mr;
        let block = |i: usize, cb: &mut [MaybeUninit<T>]| {
            let mb = cb.len() / n;
            // SAFETY: cb is this block's own mb×n slice of c (row stride n), and rows
            // i·rows..i·rows+mb of op(A) exist; ISA and k as above.
            unsafe {
                driver::gemm(
                    &kern,
                    mb,
                    k,
                    n,
                    AOperand::View(av.at(i * rows, 0)),
                    bv,
                    false,
                    cb.as_mut_ptr().cast(),
                    n,
                )
            };
        };
        run_blocks(c.chunks_mut(rows * n), caller_works, block);
    } else {
        // Column blocks of C (and of op(B)): the product is wide and short.
        let cols = n.div_ceil(threads).div_ceil(kern.nr) * kern.nr;
        let cp = SendPtr(c.as_mut_ptr().cast::<T>());
        let block = |i: usize| {
            let j0 = i * cols;
            let nb = cols.min(n - j0);
            // SAFETY: columns j0..j0+nb of C (row stride n) are written by this task alone
            // (the blocks are disjoint) while `c` stays mutably borrowed by this function;
            // ISA and k as above.
            unsafe {
                driver::gemm(
                    &kern,
                    m,
                    k,
                    nb,
                    AOperand::View(av),
                    bv.at(0, j0),
                    false,
                    cp.get().add(j0),
                    n,
                )
            };
        };
        run_blocks(0..n.div_ceil(cols), caller_works, |_, i| block(i));
    }
}

/// Runs `f(i, block)` for each of a split product's blocks on rayon's pool, returning when
/// all are done; when `caller_works` the first runs on the calling thread meanwhile
/// (`in_place_scope`), else every block is a task of the pool.
fn run_blocks<I: Send>(blocks: impl IntoIterator<Item = I>, caller_works: bool, f: impl Fn(usize, I) + Sync) {
    let mut blocks = blocks.into_iter().enumerate();
    if !caller_works {
        return blocks.collect::<Vec<_>>().into_par_iter().for_each(|(i, b)| f(i, b));
    }
    let Some((i0, first)) = blocks.next() else {
        return;
    };
    let f = &f;
    rayon::in_place_scope(|s| {
        for (i, b) in blocks {
            s.spawn(move |_| f(i, b));
        }
        f(i0, first);
    });
}

/// C's base pointer, shared by the tasks that write its disjoint column blocks.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: the pointer is only used by tasks writing disjoint parts of C, whose `T: Send`.
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above; no two tasks touch the same element.
unsafe impl<T: Send> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

/// The product through `matrixmultiply`, split over row blocks when `parallel` (the
/// caller taking one when `caller_works`).
#[allow(clippy::too_many_arguments)]
fn fallback<T: Element>(
    a: &[T],
    b: &[T],
    c: &mut [MaybeUninit<T>],
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    parallel: bool,
    caller_works: bool,
) {
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let threads = rayon::current_num_threads();
    if !parallel || m < 2 * 16 {
        // SAFETY: the caller's assert guarantees a, b and c hold m×k, k×n and m×n elements,
        // and (rsa, csa), (rsb, csb), (n, 1) address exactly those layouts; c is exclusively
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
    run_blocks(c.chunks_mut(rows * n), caller_works, |i, cb: &mut [MaybeUninit<T>]| {
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
mod tests;
