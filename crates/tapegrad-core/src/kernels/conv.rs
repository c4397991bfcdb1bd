//! im2col and its adjoint col2im: the data movement that lowers a convolution to one GEMM.
//!
//! For an input `x [N, C, H, W]` and a kernel window of `kh × kw` cells, the column matrix
//! has one row per (channel, kernel cell) `r = (c·kh + i)·kw + j` and one column per output
//! position `p = (n·OH + oy)·OW + ox`, holding `x[n, c, oy·sh + i·dh − pt, ox·sw + j·dw − pl]`
//! (0 where that cell falls in the padding). col2im adds every column entry back at the same
//! cell, so it is the transpose of im2col as a linear map.

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
    fn src_y(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.sh + i * self.dh)
            .checked_sub(self.pt)
            .filter(|&y| y < self.h)
    }

    /// The output columns `lo..hi` whose kernel column `j` falls inside the image, and
    /// the input column of `lo` (input columns then advance by the stride).
    #[inline]
    fn valid_x(&self, j: usize) -> (usize, usize, usize) {
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
const PAR_MIN: usize = 1 << 15;

/// The column matrix `[C·kh·kw, N·OH·OW]` of `x [N, C, H, W]` (row-major, contiguous).
pub(crate) fn im2col<T: Copy + Default + Send + Sync>(x: &[T], g: &Geometry) -> Vec<T> {
    let (cols, l) = (g.cols(), g.oh * g.ow);
    let mut out = vec![T::default(); g.rows() * cols];
    if cols == 0 {
        return out;
    }
    let fill = |r: usize, row: &mut [T]| {
        let (c, ij) = (r / (g.kh * g.kw), r % (g.kh * g.kw));
        let (i, j) = (ij / g.kw, ij % g.kw);
        for n in 0..g.n {
            let plane = &x[(n * g.c + c) * g.h * g.w..][..g.h * g.w];
            for oy in 0..g.oh {
                let dst = &mut row[n * l + oy * g.ow..][..g.ow];
                let Some(y) = g.src_y(oy, i) else { continue };
                let src = &plane[y * g.w..][..g.w];
                let (lo, hi, x0) = g.valid_x(j);
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
pub(crate) fn col2im<T: Copy + Default + Send + Sync + std::ops::AddAssign>(cols: &[T], g: &Geometry) -> Vec<T> {
    let (ncols, l, hw) = (g.cols(), g.oh * g.ow, g.h * g.w);
    let mut out = vec![T::default(); g.n * g.c * hw];
    if hw == 0 {
        return out;
    }
    let fill = |nc: usize, plane: &mut [T]| {
        let (n, c) = (nc / g.c, nc % g.c);
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &cols[((c * g.kh + i) * g.kw + j) * ncols + n * l..][..l];
                for oy in 0..g.oh {
                    let Some(y) = g.src_y(oy, i) else { continue };
                    let dst = &mut plane[y * g.w..][..g.w];
                    let (lo, hi, x0) = g.valid_x(j);
                    let src = &row[oy * g.ow..][lo..hi];
                    for (d, &v) in dst[x0..].iter_mut().step_by(g.sw).zip(src) {
                        *d += v;
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

/// For each `(n, c)` plane and output cell, the flat index `y·W + x` of the window's
/// maximum, `−∞` padding never winning: the first maximum in scan order wins, and a NaN
/// wins over everything (the last NaN: PyTorch's CPU rule `v > max || isnan(v)`).
/// Shape `[N·C, OH·OW]`.
pub(crate) fn max_pool_argmax<T: Copy + PartialOrd + Send + Sync>(
    x: &[T],
    g: &Geometry,
    is_nan: impl Fn(T) -> bool + Sync,
) -> Vec<usize> {
    let (l, hw) = (g.oh * g.ow, g.h * g.w);
    let mut out = vec![0usize; g.n * g.c * l];
    if l == 0 {
        return out;
    }
    // Per kernel column, the output columns it reaches inside the image.
    let cols: Vec<(usize, usize, usize)> = (0..g.kw).map(|j| g.valid_x(j)).collect();
    let unpadded = g.pt == 0 && g.pb == 0 && g.pl == 0 && g.pr == 0;
    let fill = |nc: usize, dst: &mut [usize]| {
        let plane = &x[nc * hw..][..hw];
        if unpadded {
            // Every window lies inside the image: scan it directly, in the same order
            // (rows, then columns) and with the same rule as the general path below.
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let (y0, x0) = (oy * g.sh, ox * g.sw);
                    let mut k = y0 * g.w + x0;
                    let mut m = plane[k];
                    for i in 0..g.kh {
                        let row = (y0 + i * g.dh) * g.w;
                        for j in 0..g.kw {
                            let kk = row + x0 + j * g.dw;
                            let v = plane[kk];
                            if v > m || is_nan(v) {
                                (k, m) = (kk, v);
                            }
                        }
                    }
                    dst[oy * g.ow + ox] = k;
                }
            }
            return;
        }
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let mut best: Option<(usize, T)> = None;
                for i in 0..g.kh {
                    let Some(y) = g.src_y(oy, i) else { continue };
                    let row = &plane[y * g.w..][..g.w];
                    for &(lo, hi, x0) in &cols {
                        if ox < lo || ox >= hi {
                            continue;
                        }
                        let xx = x0 + (ox - lo) * g.sw;
                        let v = row[xx];
                        let take = match best {
                            None => true,
                            Some((_, m)) => v > m || is_nan(v),
                        };
                        if take {
                            best = Some((y * g.w + xx, v));
                        }
                    }
                }
                // The caller guarantees every window covers at least one input cell.
                dst[oy * g.ow + ox] = best.map_or(0, |(k, _)| k);
            }
        }
    };
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(l).enumerate().for_each(|(nc, d)| fill(nc, d));
    } else {
        out.chunks_mut(l).enumerate().for_each(|(nc, d)| fill(nc, d));
    }
    out
}
