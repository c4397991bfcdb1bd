//! The x86-64 microkernels: an `MR × NR` tile of C held in vector registers, updated by one
//! fused multiply-add per register per step of the shared dimension. Each kernel is compiled
//! for its instruction set with `#[target_feature]` and only ever called after
//! [`super::Isa::detect`] found that set on the running CPU.
//!
//! C is row-major, so a tile row is `NR / lanes` vectors wide and each step broadcasts one
//! element of the packed A panel against the packed B row:
//! `c[i][j] += a_panel[p·MR + i] · b_panel[p·NR + j]` for `p` in `0..kc`.

use super::driver::{pack, Kernel, View};
use std::arch::x86_64::*;

/// How many steps ahead of the one it multiplies an AVX-512 microkernel fetches B's row
/// into L1 (software prefetch). The panels stream from L2 (the packed `kc × nc` block, 1 MB)
/// or, for a B read in place, from wherever B is, and the hardware's prefetchers left the
/// loads waiting. On a Xeon with AVX-512, `cargo bench -p tapegrad-core --bench core --
/// matmul` alternated with the kernel without it (5 runs), medians of the per-run ratios:
/// one thread 64³ 1.00, 128³ 1.01, 1024³ 1.13 (4 of 5 runs faster), 2048³ 1.04 (5 of 5);
/// two threads 64³ 1.01, 128³ 1.01, 1024³ 1.10 (4 of 5), 2048³ 1.06 (4 of 5)
/// (BENCHMARKS.md, session 16). The AVX2 kernels do not prefetch: they were not measured
/// (the AMD host they were tuned on was not available).
const PREFETCH_ROWS: usize = 8;

/// The shallowest panel (`kc`) for which B is prefetched: 128 steps of 256 bytes (a row of
/// either AVX-512 kernel's B panel) are 32 KB, about what stays in L1 beside A's panel and
/// C's tile; below that the prefetches only cost (64³, prefetching at every depth: 0.96–0.98
/// of the kernel without them).
const PREFETCH_MIN_DEPTH: usize = 128;

/// Defines `$name`, an `$mr × ($nv·$lanes)` microkernel. Contract (the driver's):
/// `a` points at `kc·$mr` packed elements, `b` at `kc` rows of `$nv·$lanes` elements `ldb`
/// apart, and `c` at a tile of
/// `$mr` rows × `$nv·$lanes` columns with row stride `ldc`, which the kernel stores
/// (`accumulate == false`, C may be uninitialised) or adds to (`accumulate == true`).
macro_rules! microkernel {
    ($name:ident, $feat:literal, $t:ty, $v:ty, $lanes:literal, $mr:literal, $nv:literal, $prefetch:literal,
     $zero:ident, $load:ident, $store:ident, $set1:ident, $fma:ident, $add:ident) => {
        #[target_feature(enable = $feat)]
        unsafe fn $name(kc: usize, a: *const $t, b: *const $t, ldb: usize, c: *mut $t, ldc: usize, accumulate: bool) {
            let mut acc: [[$v; $nv]; $mr] = [[$zero(); $nv]; $mr];
            // SAFETY: the contract above: every offset read stays inside the packed panels
            // (p < kc, i < $mr, j < $nv·$lanes) and every offset written inside C's tile;
            // loads and stores are the unaligned forms.
            unsafe {
                let (mut a, mut b) = (a, b);
                // One step of the shared dimension; `prefetch` is a constant in each of
                // the two loops below, so neither tests it.
                let mut step = |prefetch: bool| {
                    let mut bv: [$v; $nv] = [$zero(); $nv];
                    for (j, v) in bv.iter_mut().enumerate() {
                        *v = $load(b.add(j * $lanes));
                        // B's row PREFETCH_ROWS steps ahead, a line at a time. The address
                        // is only a hint (`wrapping_add`, never dereferenced): past B's end
                        // it fetches nothing useful and cannot fault.
                        if prefetch && (j * $lanes * size_of::<$t>()) % 64 == 0 {
                            _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH_ROWS * ldb + j * $lanes).cast::<i8>());
                        }
                    }
                    for (i, row) in acc.iter_mut().enumerate() {
                        let av = $set1(*a.add(i));
                        for (r, v) in row.iter_mut().zip(&bv) {
                            *r = $fma(av, *v, *r);
                        }
                    }
                    a = a.add($mr);
                    b = b.add(ldb);
                };
                // A shallow panel stays in L1 across the tiles that reuse it.
                if $prefetch && kc >= PREFETCH_MIN_DEPTH {
                    for _ in 0..kc {
                        step(true);
                    }
                } else {
                    for _ in 0..kc {
                        step(false);
                    }
                }
                for (i, row) in acc.iter().enumerate() {
                    for (j, v) in row.iter().enumerate() {
                        let p = c.add(i * ldc + j * $lanes);
                        let v = if accumulate { $add($load(p), *v) } else { *v };
                        $store(p, v);
                    }
                }
            }
        }
    };
}

microkernel!(
    avx512_f32,
    "avx512f",
    f32,
    __m512,
    16,
    6,
    4,
    true,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_add_ps
);
microkernel!(
    avx512_f64,
    "avx512f",
    f64,
    __m512d,
    8,
    6,
    4,
    true,
    _mm512_setzero_pd,
    _mm512_loadu_pd,
    _mm512_storeu_pd,
    _mm512_set1_pd,
    _mm512_fmadd_pd,
    _mm512_add_pd
);
microkernel!(
    avx2_f32,
    "avx2,fma",
    f32,
    __m256,
    8,
    6,
    2,
    false,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_add_ps
);
microkernel!(
    avx2_f64,
    "avx2,fma",
    f64,
    __m256d,
    4,
    6,
    2,
    false,
    _mm256_setzero_pd,
    _mm256_loadu_pd,
    _mm256_storeu_pd,
    _mm256_set1_pd,
    _mm256_fmadd_pd,
    _mm256_add_pd
);

/// Defines `$name`, [`pack`] with `W = $w` compiled for `$feat` (so the packing loops use
/// the same vectors in a build for baseline x86-64 as in a `target-cpu=native` one).
macro_rules! packer {
    ($name:ident, $feat:literal, $t:ty, $w:literal) => {
        /// # Safety
        /// The CPU must support the instruction set this function is compiled for.
        #[target_feature(enable = $feat)]
        unsafe fn $name(dst: &mut [$t], src: View<'_, $t>, depth: usize, width: usize) {
            pack::<$t, $w>(dst, src, depth, width)
        }
    };
}
packer!(avx512_f32_a, "avx512f", f32, 6);
packer!(avx512_f32_b, "avx512f", f32, 64);
packer!(avx512_f64_a, "avx512f", f64, 6);
packer!(avx512_f64_b, "avx512f", f64, 32);
packer!(avx2_f32_a, "avx2,fma", f32, 6);
packer!(avx2_f32_b, "avx2,fma", f32, 16);
packer!(avx2_f64_a, "avx2,fma", f64, 6);
packer!(avx2_f64_b, "avx2,fma", f64, 8);

/// AVX-512 kernels, 6 × 64 (f32) and 6 × 32 (f64): 24 accumulators and four B vectors of
/// the 32 zmm registers, ten loads per 24 FMAs. Measured against 12 × 32, 8 × 48, 14 × 32 and
/// 16 × 16 tiles (BENCHMARKS.md), it was the fastest from 64³ to 512³ and wastes the least on
/// a batch of 32 rows. Blocks: the packed B block (kc × nc, 1 MB) stays in the 2 MB L2, an A
/// micro-panel (6 × kc) in L1, and B's panels stream through L1 past it.
pub(super) fn avx512_f32_kernel() -> Kernel<f32> {
    Kernel {
        mr: 6,
        nr: 64,
        kc: 256,
        mc: 144,
        nc: 1024,
        ukr: avx512_f32,
        pack_a: avx512_f32_a,
        pack_b: avx512_f32_b,
    }
}

pub(super) fn avx512_f64_kernel() -> Kernel<f64> {
    Kernel {
        mr: 6,
        nr: 32,
        kc: 256,
        mc: 144,
        nc: 512,
        ukr: avx512_f64,
        pack_a: avx512_f64_a,
        pack_b: avx512_f64_b,
    }
}

/// AVX2 + FMA kernels, 6 × 16 (f32) and 6 × 8 (f64): 12 accumulators and two B vectors of
/// the 16 ymm registers.
pub(super) fn avx2_f32_kernel() -> Kernel<f32> {
    Kernel {
        mr: 6,
        nr: 16,
        kc: 256,
        mc: 144,
        nc: 1024,
        ukr: avx2_f32,
        pack_a: avx2_f32_a,
        pack_b: avx2_f32_b,
    }
}

pub(super) fn avx2_f64_kernel() -> Kernel<f64> {
    Kernel {
        mr: 6,
        nr: 8,
        kc: 256,
        mc: 144,
        nc: 512,
        ukr: avx2_f64,
        pack_a: avx2_f64_a,
        pack_b: avx2_f64_b,
    }
}
