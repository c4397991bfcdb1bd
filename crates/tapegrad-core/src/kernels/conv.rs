//! im2col and its adjoint col2im: the data movement that lowers a convolution to one GEMM.
//!
//! For an input `x [N, C, H, W]` and a kernel window of `kh × kw` cells, the column matrix
//! has one row per (channel, kernel cell) `r = (c·kh + i)·kw + j` and one column per output
//! position `p = (n·OH + oy)·OW + ox`, holding `x[n, c, oy·sh + i·dh − pt, ox·sw + j·dw − pl]`
//! (0 where that cell falls in the padding). col2im adds every column entry back at the same
//! cell, so it is the transpose of im2col as a linear map.

use crate::buffer_cache;
use crate::element::Element;
use rayon::prelude::*;

/// Spatial geometry of one convolution or pooling window sweep over `[N, C, H, W]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    /// Padding above, below, left and right.
    pub pt: usize,
    pub pb: usize,
    pub pl: usize,
    pub pr: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geometry {
    /// Rows of the column matrix: `C·kh·kw`.
    pub fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Columns of the column matrix: `N·OH·OW`.
    pub fn cols(&self) -> usize {
        self.n * self.oh * self.ow
    }

    /// The input row read by output row `oy` at kernel row `i`, if inside the image.
    #[inline]
    pub(crate) fn src_y(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.sh + i * self.dh)
            .checked_sub(self.pt)
            .filter(|&y| y < self.h)
    }

    /// The output columns `lo..hi` whose kernel column `j` falls inside the image, and
    /// the input column of `lo` (input columns then advance by the stride).
    #[inline]
    pub(crate) fn valid_x(&self, j: usize) -> (usize, usize, usize) {
        let off = j * self.dw;
        // Smallest ox with ox·sw + off ≥ pl, and the first ox with ox·sw + off ≥ pl + w.
        let lo = self.pl.saturating_sub(off).div_ceil(self.sw).min(self.ow);
        let hi = (self.pl + self.w).saturating_sub(off).div_ceil(self.sw).min(self.ow);
        if hi <= lo {
            return (lo, lo, 0); // no column of the output reaches the image
        }
        (lo, hi, lo * self.sw + off - self.pl)
    }
}

/// Below this many output elements the loops stay on one thread.
pub(crate) const PAR_MIN: usize = 1 << 15;

/// The column matrix `[C·kh·kw, N·OH·OW]` of `x [N, C, H, W]` (row-major, contiguous).
pub(crate) fn im2col<T: Element>(x: &[T], g: &Geometry) -> Vec<T> {
    let (cols, l) = (g.cols(), g.oh * g.ow);
    let mut out = buffer_cache::vec_filled(g.rows() * cols, T::zero());
    if cols == 0 {
        return out;
    }
    let fill = |r: usize, row: &mut [T]| {
        let (c, ij) = (r / (g.kh * g.kw), r % (g.kh * g.kw));
        let (i, j) = (ij / g.kw, ij % g.kw);
        let (lo, hi, x0) = g.valid_x(j);
        for n in 0..g.n {
            let plane = &x[(n * g.c + c) * g.h * g.w..][..g.h * g.w];
            for oy in 0..g.oh {
                let dst = &mut row[n * l + oy * g.ow..][..g.ow];
                let Some(y) = g.src_y(oy, i) else { continue };
                let src = &plane[y * g.w..][..g.w];
                if g.sw == 1 {
                    dst[lo..hi].copy_from_slice(&src[x0..x0 + hi - lo]);
                } else {
                    for (d, &v) in dst[lo..hi].iter_mut().zip(src[x0..].iter().step_by(g.sw)) {
                        *d = v;
                    }
                }
            }
        }
    };
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(cols).enumerate().for_each(|(r, row)| fill(r, row));
    } else {
        out.chunks_mut(cols).enumerate().for_each(|(r, row)| fill(r, row));
    }
    out
}

/// The adjoint of [`im2col`]: `[N, C, H, W]` with every column entry added back at its cell.
pub(crate) fn col2im<T: Element>(cols: &[T], g: &Geometry) -> Vec<T> {
    let (ncols, l, hw) = (g.cols(), g.oh * g.ow, g.h * g.w);
    let mut out = buffer_cache::vec_filled(g.n * g.c * hw, T::zero());
    if hw == 0 {
        return out;
    }
    let fill = |nc: usize, plane: &mut [T]| {
        let (n, c) = (nc / g.c, nc % g.c);
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &cols[((c * g.kh + i) * g.kw + j) * ncols + n * l..][..l];
                let (lo, hi, x0) = g.valid_x(j);
                for oy in 0..g.oh {
                    let Some(y) = g.src_y(oy, i) else { continue };
                    let dst = &mut plane[y * g.w..][..g.w];
                    let src = &row[oy * g.ow..][lo..hi];
                    if g.sw == 1 {
                        // Contiguous on both sides: a plain zip, which vectorises.
                        for (d, &v) in dst[x0..x0 + src.len()].iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (d, &v) in dst[x0..].iter_mut().step_by(g.sw).zip(src) {
                            *d += v;
                        }
                    }
                }
            }
        }
    };
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(hw).enumerate().for_each(|(nc, p)| fill(nc, p));
    } else {
        out.chunks_mut(hw).enumerate().for_each(|(nc, p)| fill(nc, p));
    }
    out
}
