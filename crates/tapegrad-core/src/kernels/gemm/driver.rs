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
    /// `ukr(kc, a, b, c, ldc, accumulate)`: C's `mr × nr` tile at `c` (row stride `ldc`)
    /// becomes (`accumulate` false) or gains (`accumulate` true) the product of the packed
    /// `a` (`kc·mr` elements) and `b` (`kc·nr`) panels. Unsafe: the pointers must hold
    /// those extents, and the CPU must have the kernel's instruction set.
    pub(crate) ukr: unsafe fn(usize, *const T, *const T, *mut T, usize, bool),
}

/// A strided matrix view: element `(i, j)` is `data[off + i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a, T> {
    pub(crate) data: &'a [T],
    pub(crate) off: usize,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl<'a, T> View<'a, T> {
    /// The transposed view (rows and columns swapped, nothing copied).
    pub(crate) fn t(self) -> Self {
        View { rs: self.cs, cs: self.rs, ..self }
    }

    /// The view starting at element `(i, j)`.
    pub(crate) fn at(self, i: usize, j: usize) -> Self {
        View { off: self.off + i * self.rs + j * self.cs, ..self }
    }
}

/// Packs the `depth × width` block of `src` into panels of `w` columns, each stored depth-major
/// (`dst[panel·depth·w + p·w + j] = src(p, panel·w + j)`); the last panel's missing columns are
/// zero. `dst` must hold `depth · width.div_ceil(w) · w` elements.
fn pack<T: Element>(dst: &mut [T], src: View<'_, T>, depth: usize, width: usize, w: usize) {
    for (panel, out) in dst.chunks_exact_mut(depth * w).take(width.div_ceil(w)).enumerate() {
        let j0 = panel * w;
        let jw = w.min(width - j0);
        let s = src.at(0, j0);
        if s.cs == 1 {
            // Rows of the panel are contiguous in the source.
            for (p, row) in out.chunks_exact_mut(w).enumerate() {
                let start = s.off + p * s.rs;
                row[..jw].copy_from_slice(&s.data[start..start + jw]);
                row[jw..].fill(T::zero());
            }
        } else if s.rs == 1 {
            // Columns are contiguous: walk each one down the depth.
            for j in 0..jw {
                let start = s.off + j * s.cs;
                for (row, &v) in out.chunks_exact_mut(w).zip(&s.data[start..start + depth]) {
                    row[j] = v;
                }
            }
            if jw < w {
                for row in out.chunks_exact_mut(w) {
                    row[jw..].fill(T::zero());
                }
            }
        } else {
            for (p, row) in out.chunks_exact_mut(w).enumerate() {
                for (j, r) in row.iter_mut().enumerate() {
                    *r = if j < jw { s.data[s.off + p * s.rs + j * s.cs] } else { T::zero() };
                }
            }
        }
    }
}

/// `C = A · B` for the `m × k` view `a` and the `k × n` view `b`, C being `m × n` at `c` with
/// row stride `ldc`; every element of C is written (β = 0; C may be uninitialised).
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
    a: View<'_, T>,
    b: View<'_, T>,
    c: *mut T,
    ldc: usize,
) {
    let Kernel { mr, nr, kc, mc, nc, ukr } = *kern;
    let b_len = kc.min(k) * nc.min(n.div_ceil(nr) * nr);
    let a_len = kc.min(k) * mc.min(m.div_ceil(mr) * mr);
    let mut buf = T::take_scratch();
    if buf.len() < a_len + b_len {
        buf = vec![T::zero(); a_len + b_len];
    }
    let (bpack, rest) = buf.split_at_mut(b_len);
    let apack = &mut rest[..a_len];
    // The edge tile: a partial tile of C is computed here in full, then its valid part copied.
    let mut tile = vec![T::zero(); mr * nr];
    for jc in (0..n).step_by(nc) {
        let nb = nc.min(n - jc);
        for pc in (0..k).step_by(kc) {
            let kb = kc.min(k - pc);
            pack(bpack, b.at(pc, jc), kb, nb, nr);
            for ic in (0..m).step_by(mc) {
                let mb = mc.min(m - ic);
                pack(apack, a.at(ic, pc).t(), kb, mb, mr);
                for (ir, ap) in (0..mb).step_by(mr).zip(apack.chunks_exact(kb * mr)) {
                    let mre = mr.min(mb - ir);
                    for (jr, bp) in (0..nb).step_by(nr).zip(bpack.chunks_exact(kb * nr)) {
                        let nre = nr.min(nb - jr);
                        // SAFETY: the tile's top-left element (ic+ir, jc+jr) lies inside the
                        // m × n block at `c` (the caller's contract).
                        let cp = unsafe { c.add((ic + ir) * ldc + jc + jr) };
                        if mre == mr && nre == nr {
                            // SAFETY: `ap`/`bp` hold kb·mr / kb·nr packed elements; the full
                            // tile at `cp` lies inside C; it was written by the pc = 0 pass
                            // when `accumulate` is true; the caller checked the ISA.
                            unsafe { ukr(kb, ap.as_ptr(), bp.as_ptr(), cp, ldc, pc > 0) };
                        } else {
                            // SAFETY: as above, with the mr × nr `tile` as C (row stride nr).
                            unsafe { ukr(kb, ap.as_ptr(), bp.as_ptr(), tile.as_mut_ptr(), nr, false) };
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
