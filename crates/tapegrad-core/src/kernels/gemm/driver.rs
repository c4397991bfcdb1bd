//! The cache-blocked GEMM loop around a microkernel (the BLIS scheme): for each `nc`-wide
//! column block of C and each `kc`-deep slice of the shared dimension, B's `kc × nc` block is
//! packed into `nr`-column panels; then for each `mc`-row block, A's `mc × kc` block is packed
//! into `mr`-row panels, and the microkernel runs over every `mr × nr` tile. A micro-panel of A
//! is reused across the whole row of tiles (it stays in L1) while B's panels stream from L2.

use super::GemmScalar;
use crate::element::Element;

/// A microkernel and the block sizes it runs with.
#[derive(Clone, Copy)]
pub struct Kernel<T> {
    /// Rows of the register tile (and of a packed A panel).
    pub(crate) mr: usize,
    /// Columns of the register tile (and of a packed B panel).
    pub(crate) nr: usize,
    /// Depth of a packed block (the shared dimension).
    pub(crate) kc: usize,
    /// Rows of a packed A block; a multiple of `mr`.
    pub(crate) mc: usize,
    /// Columns of a packed B block; a multiple of `nr`.
    pub(crate) nc: usize,
    /// `ukr(kc, a, b, ldb, c, ldc, accumulate)`: C's `mr × nr` tile at `c` (row stride
    /// `ldc`) becomes (`accumulate` false) or gains (`accumulate` true) the product of the
    /// packed `a` panel (`kc·mr` elements) and the `kc × nr` B panel at `b` (row stride
    /// `ldb`). Unsafe: the pointers must hold those extents, and the CPU must have the
    /// kernel's instruction set.
    pub(crate) ukr: unsafe fn(usize, *const T, *const T, usize, *mut T, usize, bool),
    /// [`pack`] with `W = mr`, for A's panels, compiled for the kernel's instruction set
    /// (unsafe: the CPU must have it).
    pub(crate) pack_a: unsafe fn(&mut [T], View<'_, T>, usize, usize),
    /// [`pack`] with `W = nr`, for B's panels, likewise.
    pub(crate) pack_b: unsafe fn(&mut [T], View<'_, T>, usize, usize),
}

/// A strided matrix view: element `(i, j)` is `data[off + i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a, T> {
    pub(crate) data: &'a [T],
    pub(crate) off: usize,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

/// The block size that cuts `len` into the fewest blocks of at most `max`, near-equal in
/// size and rounded up to a multiple of `unit`: blocks of near-equal size rather than full
/// blocks and a sliver, so k = 784 runs as four slices of 196, not three of 256 and one of
/// 16 (a C pass each). The zero-skipping products (`sparse`) follow the same depth slices.
pub(super) fn even(len: usize, max: usize, unit: usize) -> usize {
    len.div_ceil(len.div_ceil(max)).div_ceil(unit) * unit
}

impl<'a, T> View<'a, T> {
    /// `op(data)` of a contiguous row-major matrix with `cols` columns: the matrix itself, or
    /// its transpose when `transposed` (nothing copied).
    pub(crate) fn of(data: &'a [T], cols: usize, transposed: bool) -> Self {
        let v = View {
            data,
            off: 0,
            rs: cols,
            cs: 1,
        };
        if transposed {
            v.t()
        } else {
            v
        }
    }

    /// The transposed view (rows and columns swapped, nothing copied).
    pub(crate) fn t(self) -> Self {
        View {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// The view starting at element `(i, j)`.
    pub(crate) fn at(self, i: usize, j: usize) -> Self {
        View {
            off: self.off + i * self.rs + j * self.cs,
            ..self
        }
    }
}

/// Packs the `depth × width` block of `src` into panels of `W` columns, each stored
/// depth-major (`dst[panel·depth·W + p·W + j] = src(p, panel·W + j)`); the last panel's missing
/// columns are zero. `dst` must hold `depth · width.div_ceil(W) · W` elements.
///
/// The bounds are checked once up front, so the element loop runs without checks (packing is
/// a third of a 128³ product's time with them).
#[inline(always)]
pub(crate) fn pack<T: Element, const W: usize>(dst: &mut [T], src: View<'_, T>, depth: usize, width: usize) {
    if depth == 0 || width == 0 {
        return;
    }
    let panels = width.div_ceil(W);
    assert!(dst.len() >= panels * depth * W, "gemm pack: destination too short");
    // Every element read is at an index ≤ this one (the strides are non-negative).
    let last = src.off + (depth - 1) * src.rs + (width - 1) * src.cs;
    assert!(last < src.data.len(), "gemm pack: source too short");
    let (base, rs, cs) = (src.data.as_ptr(), src.rs, src.cs);
    for (panel, out) in dst.chunks_exact_mut(depth * W).take(panels).enumerate() {
        let j0 = panel * W;
        let jw = W.min(width - j0);
        for (p, row) in out.chunks_exact_mut(W).enumerate() {
            // Element (p, j0 + j) is at r0 + j·cs.
            let r0 = src.off + p * rs + j0 * cs;
            if jw == W && cs == 1 {
                // SAFETY: the W elements r0..r0+W are (p, j0..j0+W), all ≤ `last`, which is
                // in bounds; [T; W] has T's alignment.
                let v = unsafe { base.add(r0).cast::<[T; W]>().read() };
                row.copy_from_slice(&v);
            } else if jw == W {
                for (j, r) in row.iter_mut().enumerate() {
                    // SAFETY: r0 + j·cs is element (p, j0 + j), ≤ `last`.
                    *r = unsafe { *base.add(r0 + j * cs) };
                }
            } else {
                for (j, r) in row.iter_mut().enumerate() {
                    // SAFETY: for j < jw, r0 + j·cs is element (p, j0 + j), ≤ `last`.
                    *r = if j < jw {
                        unsafe { *base.add(r0 + j * cs) }
                    } else {
                        T::zero()
                    };
                }
            }
        }
    }
}

/// The most rows of A for which a row-major B is read in place rather than packed.
pub(crate) const DIRECT_B_MAX_ROWS: usize = 48;

/// The largest row-major B, in bytes, read in place whatever A's rows: one that fits in L1
/// (32 KB on the smallest L1 among the CPUs measured here). f32 64³ on a Xeon with AVX-512,
/// 3 alternations of separate processes: 110.9–111.4 → 120.6–122.0 GFLOP/s (`cargo bench
/// -p tapegrad-core --bench core -- matmul 64`; 96³, whose B is larger, unchanged).
pub(crate) const DIRECT_B_MAX_BYTES: usize = 32 * 1024;

/// The A operand of [`gemm`]: a strided matrix, or a safe function that packs A's blocks
/// itself — for an operand never laid out as a matrix, such as a convolution's windows
/// (`conv_windows`). `Packer(f)`: `f(dst, i0, p0, depth, rows)` writes rows `i0..i0 + rows` and
/// depths `p0..p0 + depth` of A into `dst` as [`pack`] lays out `W = mr` panels (panel-major,
/// each `depth × mr` depth-major, rows past A's end zero).
#[derive(Clone, Copy)]
pub(crate) enum AOperand<'a, T> {
    View(View<'a, T>),
    Packer(&'a PackA<'a, T>),
}

/// A packing function of [`AOperand::Packer`]: `(dst, i0, p0, depth, rows)`.
pub(crate) type PackA<'a, T> = dyn Fn(&mut [T], usize, usize, usize, usize) + 'a;

/// `C = A · B` for the `m × k` operand `a` and the `k × n` view `b`, C being `m × n` at `c`
/// with row stride `ldc`; every element of C is written (β = 0; C may be uninitialised).
/// A row-major B (`b.cs == 1`) is read in place, without packing, when A has at most
/// [`DIRECT_B_MAX_ROWS`] rows, B has at most [`DIRECT_B_MAX_BYTES`], or `b_in_place` says
/// so (a B reused across calls).
///
/// # Safety
/// `c` must be valid for writes of the `m × n` block with row stride `ldc` (and for reads of
/// what this call wrote there), not aliased by anything else during the call; the CPU must
/// support `kern`'s instruction set; `k > 0`; `a` and `b` must hold their `m × k` and `k × n`
/// extents (they are bounds-checked slices, so a violation panics rather than misreads).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm<T: Element + GemmScalar>(
    kern: &Kernel<T>,
    m: usize,
    k: usize,
    n: usize,
    a: AOperand<'_, T>,
    b: View<'_, T>,
    b_in_place: bool,
    c: *mut T,
    ldc: usize,
) {
    let Kernel {
        mr,
        nr,
        kc,
        mc,
        nc,
        ukr,
        pack_a,
        pack_b,
    } = *kern;
    if m == 0 || n == 0 {
        return;
    }
    let (kc, mc, nc) = (even(k, kc, 1), even(m, mc, mr), even(n, nc, nr));
    // A row-major B is read in place, without packing, when A has few rows: each B panel is
    // then used by few A panels, too few to repay its packing (32×784×128: B's 100 K
    // elements against 3.2 M multiply-adds); or when all of B fits in L1, where its rows
    // are read as fast in place as packed (64³: packing B was a tenth of the product's
    // time). Only a partial last panel is packed.
    let direct_b =
        b.cs == 1 && (m <= DIRECT_B_MAX_ROWS || b_in_place || k * n * std::mem::size_of::<T>() <= DIRECT_B_MAX_BYTES);
    assert!(
        b.off + (k - 1) * b.rs + (n - 1) * b.cs < b.data.len(),
        "gemm: B too short"
    );
    let b_len = kc * if direct_b { nr } else { nc };
    let a_len = kc * mc;
    // Room to start both buffers on a 64-byte boundary: an unaligned 512-bit load that
    // straddles two cache lines costs two.
    let pad = 64 / std::mem::size_of::<T>();
    let mut buf = T::take_scratch();
    if buf.len() < a_len + b_len + 2 * pad {
        buf = vec![T::zero(); a_len + b_len + 2 * pad];
    }
    let start = buf.as_ptr().align_offset(64).min(pad);
    let b_end = start + b_len.div_ceil(pad) * pad;
    let (bpack, rest) = buf[start..].split_at_mut(b_end - start);
    let apack = &mut rest[..a_len];
    // The edge tile: a partial tile of C is computed here in full, then its valid part copied.
    let mut tile = vec![T::zero(); mr * nr];
    for jc in (0..n).step_by(nc) {
        let nb = nc.min(n - jc);
        for pc in (0..k).step_by(kc) {
            let kb = kc.min(k - pc);
            // SAFETY (the pack calls): the caller checked the kernel's ISA.
            if direct_b {
                if nb % nr != 0 {
                    unsafe { pack_b(bpack, b.at(pc, jc + nb / nr * nr), kb, nb % nr) };
                }
            } else {
                unsafe { pack_b(bpack, b.at(pc, jc), kb, nb) };
            }
            for ic in (0..m).step_by(mc) {
                let mb = mc.min(m - ic);
                match a {
                    // SAFETY: as above.
                    AOperand::View(v) => unsafe { pack_a(apack, v.at(ic, pc).t(), kb, mb) },
                    // Safe code: whatever it writes, the kernel reads only `apack`'s own
                    // elements below.
                    AOperand::Packer(f) => f(apack, ic, pc, kb, mb),
                }
                for (ir, ap) in (0..mb).step_by(mr).zip(apack.chunks_exact(kb * mr)) {
                    let mre = mr.min(mb - ir);
                    for jr in (0..nb).step_by(nr) {
                        let nre = nr.min(nb - jr);
                        // B's panel: in place (row stride b.rs) or packed (row stride nr).
                        let (bp, ldb) = if direct_b && nre == nr {
                            (b.data[b.at(pc, jc + jr).off..].as_ptr(), b.rs)
                        } else if direct_b {
                            (bpack.as_ptr(), nr)
                        } else {
                            (bpack[jr * kb..].as_ptr(), nr)
                        };
                        // SAFETY: the tile's top-left element (ic+ir, jc+jr) lies inside the
                        // m × n block at `c` (the caller's contract).
                        let cp = unsafe { c.add((ic + ir) * ldc + jc + jr) };
                        if mre == mr && nre == nr {
                            // SAFETY: `ap` holds kb·mr packed elements; `bp` addresses kb rows
                            // of nr elements, ldb apart: packed, or B's own rows pc.. and
                            // columns jc+jr..+nr, inside B (asserted above); the full tile at
                            // `cp` lies inside C, and was written by the pc = 0 pass when
                            // `accumulate` is true; the caller checked the ISA.
                            unsafe { ukr(kb, ap.as_ptr(), bp, ldb, cp, ldc, pc > 0) };
                        } else {
                            // SAFETY: as above, with the mr × nr `tile` as C (row stride nr).
                            unsafe { ukr(kb, ap.as_ptr(), bp, ldb, tile.as_mut_ptr(), nr, false) };
                            for (i, row) in tile.chunks_exact(nr).take(mre).enumerate() {
                                for (j, &v) in row[..nre].iter().enumerate() {
                                    // SAFETY: (i, j) < (mre, nre): inside C's block; read
                                    // only when the pc = 0 pass wrote it.
                                    unsafe {
                                        let p = cp.add(i * ldc + j);
                                        p.write(if pc > 0 { p.read() + v } else { v });
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    T::give_scratch(buf);
}
