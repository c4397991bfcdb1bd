//! The convolution's forward without a column matrix, where the packed GEMM kernel exists:
//! the GEMM's A operand is the image's windows (one row per output position), packed
//! straight from a zero-padded copy of the image, so the column matrix is never written nor
//! read back to be packed. See [`Conv::forward`], which chooses this path.

use super::conv_gemm::{relu_of, Conv};
use super::conv_image::Scratch;
use crate::buffer_cache;
use crate::element::Element;
use crate::kernels::conv::Geometry;
use crate::kernels::fill::Slot;
use crate::kernels::gemm::{matmul_packing_a, packed_rows};

/// From this many multiply-adds per image and group, the forward packs the GEMM's A panels
/// straight from the image ([`Conv::image_windows`]); below, the product is too small for
/// the packed kernel (`gemm::PACKED_MIN_MACS`).
const WINDOWS_MIN_MACS: usize = 1 << 18;

#[cfg(test)]
thread_local! {
    /// Set by a test: every convolution's forward on this thread takes the windows path (where
    /// the packed kernel exists), whatever its size.
    pub(super) static WINDOWS_ALWAYS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Conv {
    /// One image of [`Conv::forward`] without a column matrix: per group,
    /// `yₙ,gᵀ [OH·OW', O/groups] = windows(xₙ) [OH·OW', kg] · W_gᵀ [kg, O/groups]`, whose A
    /// operand (one row per output position, one column per (channel, kernel cell)) is never
    /// laid out: the GEMM packs its panels straight from a zero-padded copy of the image
    /// ([`Windows::pack_positions`]); `OW'` is `OW` rounded up to the kernel's tile height, so
    /// each panel lies in one output row (the extra positions are computed and dropped).
    /// `W_gᵀ` ([`Conv::weights_t`]) is made once per call and read in place by the kernel. The
    /// `[positions, O/groups]` product is written out transposed into `out [O, OH·OW]`, bias
    /// and ReLU applied. Against im2col, this moves each image's data once instead of three
    /// times (im2col's columns, the GEMM's packing of them, the packing of W for every image).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn image_windows<T: Element, S: Slot<T>>(
        &self,
        win: &Windows,
        wt: &[T],
        s: &mut Scratch<T>,
        xn: &[T],
        bias: Option<&[T]>,
        relu: bool,
        out: &mut [S],
    ) {
        let g = &self.g;
        let (og, l) = (self.o / self.groups, g.oh * g.ow);
        win.pad(g, xn, &mut s.a);
        for gi in 0..self.groups {
            self.product_windows(win, wt, s, gi);
            let prod = &s.b;
            let rows = out[gi * og * l..][..og * l].chunks_exact_mut(l);
            for (oi, dst) in rows.enumerate() {
                let b = bias.map_or(T::zero(), |b| b[gi * og + oi]);
                for (oy, dst) in dst.chunks_exact_mut(g.ow).enumerate() {
                    let src = prod[oy * win.owp * og + oi..].iter().step_by(og);
                    if relu {
                        dst.iter_mut().zip(src).for_each(|(d, &v)| d.set(relu_of(v + b)));
                    } else {
                        dst.iter_mut().zip(src).for_each(|(d, &v)| d.set(v + b));
                    }
                }
            }
        }
    }

    /// Group `gi`'s product `[OH·OW', O/groups]` (position-major, without bias) into `s.b`,
    /// from the padded image in `s.a`.
    pub(super) fn product_windows<T: Element>(&self, win: &Windows, wt: &[T], s: &mut Scratch<T>, gi: usize) {
        let (og, kg) = (self.o / self.groups, self.g.rows() / self.groups);
        let xg = win.group(&s.a, gi);
        let pack = |dst: &mut [T], i0: usize, p0: usize, depth: usize, rows: usize| {
            win.pack_positions(xg, dst, i0, p0, depth, rows);
        };
        let m = self.g.oh * win.owp;
        matmul_packing_a(&pack, &wt[gi * kg * og..][..kg * og], &mut s.b, m, kg, og);
    }

    /// `W_gᵀ [kg, O/groups]` for each group, for [`Conv::image_windows`].
    pub(super) fn weights_t<T: Element>(&self, w: &[T]) -> Vec<T> {
        let (og, kg) = (self.o / self.groups, self.g.rows() / self.groups);
        let mut wt = buffer_cache::vec_filled(self.groups * kg * og, T::zero());
        for gi in 0..self.groups {
            let (src, dst) = (&w[gi * og * kg..][..og * kg], &mut wt[gi * kg * og..][..kg * og]);
            for (oi, row) in src.chunks_exact(kg.max(1)).enumerate() {
                for (k, &v) in row.iter().enumerate() {
                    dst[k * og + oi] = v;
                }
            }
        }
        wt
    }

    /// The windows of this convolution for the packed kernel (whose tile height is `mr`), if
    /// it exists on this CPU and an image's product is large enough for it.
    pub(super) fn windows<T: Element>(&self) -> Option<Windows> {
        let mr = packed_rows::<T>()?;
        let d = self.dims();
        #[cfg(test)]
        if WINDOWS_ALWAYS.get() {
            return (d.l * d.og * d.kg > 0).then(|| Windows::new(self, mr));
        }
        (d.l.saturating_mul(d.og).saturating_mul(d.kg) >= WINDOWS_MIN_MACS).then(|| Windows::new(self, mr))
    }
}

/// A convolution's windows read straight from a zero-padded copy of one image, for a GEMM
/// whose A operand is the transposed column matrix (one row per output position): the
/// packing function writes the kernel's `mr`-row panels from the image, so the column
/// matrix is never laid out (nor written, nor read back to be packed).
///
/// Measured and left out (session 6, BENCHMARKS.md): the weight gradient's column matrix
/// (rows the depths) packed the same way was no faster than im2col and the GEMM's own
/// packing (its panels interleave `mr` image rows: a stride-`mr` store per cell either way);
/// the input gradient as the forward of the transposed convolution (flipped kernel, full
/// padding) was slower than col2im (its windows over `O·kh·kw` depths are three times the
/// data col2im moves); and positions packed without the padded grid (panels spanning two
/// output rows) lost more to the split copies than the dropped columns saved.
pub(crate) struct Windows {
    mr: usize,
    /// Positions per output row in the forward's grid: `OW` rounded up to `mr`, so a panel's
    /// `mr` positions share an output row (the extra ones are computed and dropped).
    pub(super) owp: usize,
    /// The padded image's planes: rows and row length (every cell a window reads).
    hp: usize,
    wp: usize,
    /// Channels, and channels per group.
    c: usize,
    cg: usize,
    /// Offset in a group's padded planes of each depth `k = (c, i, j)` of a window.
    offs: Vec<usize>,
    /// Input cells from one output row to the next (`sh` padded rows), and from one position
    /// to the next in a row (`sw`).
    row_step: usize,
    sw: usize,
}

impl Windows {
    pub(super) fn new(conv: &Conv, mr: usize) -> Windows {
        let g = &conv.g;
        let owp = g.ow.div_ceil(mr) * mr;
        let hp = (g.oh.max(1) - 1) * g.sh + (g.kh - 1) * g.dh + 1;
        let wp = (owp.max(1) - 1) * g.sw + (g.kw - 1) * g.dw + 1;
        let cg = g.c / conv.groups;
        let mut offs = Vec::with_capacity(cg * g.kh * g.kw);
        for c in 0..cg {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    offs.push((c * hp + i * g.dh) * wp + j * g.dw);
                }
            }
        }
        Windows {
            mr,
            owp,
            hp,
            wp,
            c: g.c,
            cg,
            offs,
            row_step: g.sh * wp,
            sw: g.sw,
        }
    }

    /// A task's scratch: a padded image whose padding cells are 0, and the product.
    pub(super) fn scratch<T: Element>(&self, conv: &Conv) -> Scratch<T> {
        let og = conv.o / conv.groups;
        Scratch {
            a: buffer_cache::vec_filled(self.c * self.hp * self.wp, T::zero()),
            // Overwritten by each GEMM (β = 0) before it is read.
            b: buffer_cache::vec_scratch(conv.g.oh * self.owp * og),
        }
    }

    /// Writes image `xn [C, H, W]` into the padded image `xp`, whose padding cells are 0 (left
    /// so by the previous image: only the interior is written).
    pub(super) fn pad<T: Element>(&self, g: &Geometry, xn: &[T], xp: &mut [T]) {
        let xw = g.w.min(self.wp.saturating_sub(g.pl));
        for (c, plane) in xn.chunks_exact(g.h * g.w).enumerate() {
            for (y, row) in plane.chunks_exact(g.w).enumerate().take(self.hp.saturating_sub(g.pt)) {
                xp[(c * self.hp + y + g.pt) * self.wp + g.pl..][..xw].copy_from_slice(&row[..xw]);
            }
        }
    }

    /// Group `gi`'s planes of the padded image.
    fn group<'a, T>(&self, xp: &'a [T], gi: usize) -> &'a [T] {
        let len = self.cg * self.hp * self.wp;
        &xp[gi * len..][..len]
    }

    /// A panels of `windows(x) [OH·owp, kg]` (one row per position of the padded grid): rows
    /// `i0..i0 + rows`, depths `p0..p0 + depth`, from a group's padded planes `xg`. Each depth
    /// of a panel is `mr` neighbouring cells of one input row (at stride 1).
    fn pack_positions<T: Element>(&self, xg: &[T], dst: &mut [T], i0: usize, p0: usize, depth: usize, rows: usize) {
        let (mr, offs) = (self.mr, &self.offs[p0..p0 + depth]);
        for (panel, out) in dst.chunks_exact_mut(depth * mr).take(rows.div_ceil(mr)).enumerate() {
            // i0 and the grid's width are multiples of mr: the panel lies in one output row.
            let q0 = i0 + panel * mr;
            let xs = &xg[q0 / self.owp * self.row_step + q0 % self.owp * self.sw..];
            if mr == 6 && self.sw == 1 {
                // The kernels' tile height: fixed-size copies, not a memcpy call per 6 cells.
                for (row, &o) in out.chunks_exact_mut(6).zip(offs) {
                    let v: &[T; 6] = xs[o..o + 6].try_into().expect("6 cells");
                    <&mut [T; 6]>::try_from(row).expect("a row of 6").copy_from_slice(v);
                }
            } else {
                for (row, &o) in out.chunks_exact_mut(mr).zip(offs) {
                    for (q, r) in row.iter_mut().enumerate() {
                        *r = xs[o + q * self.sw];
                    }
                }
            }
        }
    }
}
