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
use std::mem::MaybeUninit;

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
///
/// Each cell is written once, copied from the image or set to 0 where its window reaches
/// into the padding, so the buffer is not zero-filled first (a pass over 18 MB per step
/// for the MNIST CNN's second convolution).
#[allow(unsafe_code)]
pub(crate) fn im2col<T: Element>(x: &[T], g: &Geometry) -> Vec<T> {
    let (cols, l) = (g.cols(), g.oh * g.ow);
    let len = g.rows() * cols;
    let mut out = buffer_cache::vec_with_capacity(len);
    let buf = &mut out.spare_capacity_mut()[..len];
    let zero = |d: &mut [MaybeUninit<T>]| d.iter_mut().for_each(|d| _ = d.write(T::zero()));
    let fill = |r: usize, row: &mut [MaybeUninit<T>]| {
        let (c, ij) = (r / (g.kh * g.kw), r % (g.kh * g.kw));
        let (i, j) = (ij / g.kw, ij % g.kw);
        let (lo, hi, x0) = g.valid_x(j);
        for n in 0..g.n {
            let plane = &x[(n * g.c + c) * g.h * g.w..][..g.h * g.w];
            for oy in 0..g.oh {
                let dst = &mut row[n * l + oy * g.ow..][..g.ow];
                let Some(y) = g.src_y(oy, i) else {
                    zero(dst);
                    continue;
                };
                let src = &plane[y * g.w..][..g.w];
                zero(&mut dst[..lo]);
                zero(&mut dst[hi..]);
                if g.sw == 1 {
                    for (d, &v) in dst[lo..hi].iter_mut().zip(&src[x0..x0 + hi - lo]) {
                        d.write(v);
                    }
                } else {
                    for (d, &v) in dst[lo..hi].iter_mut().zip(src[x0..].iter().step_by(g.sw)) {
                        d.write(v);
                    }
                }
            }
        }
    };
    if cols > 0 {
        if len >= PAR_MIN {
            buf.par_chunks_mut(cols).enumerate().for_each(|(r, row)| fill(r, row));
        } else {
            buf.chunks_mut(cols).enumerate().for_each(|(r, row)| fill(r, row));
        }
    }
    // SAFETY: `len` ≤ the capacity reserved above, and `fill` wrote every element of the
    // first `len`: each row is N·OH runs of OW cells, and each run is either zeroed whole
    // (its image row is in the padding) or split into `..lo` (zeroed), `lo..hi` (copied,
    // as `valid_x` gives lo ≤ hi ≤ OW) and `hi..` (zeroed). With `cols == 0`, `len` is 0.
    unsafe { out.set_len(len) };
    out
}

/// The convolution's output `[N, O, L]` (NCHW, `L = OH·OW`) from the GEMM's `[O, N·L]`
/// product, with `bias[o]` added on channel `o` in the same pass.
#[allow(unsafe_code)]
pub(crate) fn nchw_from_columns<T: Element>(y: &[T], bias: Option<&[T]>, o: usize, n: usize, l: usize) -> Vec<T> {
    let len = o * n * l;
    let mut out = buffer_cache::vec_with_capacity(len);
    let buf = &mut out.spare_capacity_mut()[..len];
    let fill = |q: usize, dst: &mut [MaybeUninit<T>]| {
        let (ni, oi) = (q / o, q % o);
        let src = &y[(oi * n + ni) * l..][..l];
        match bias {
            Some(b) => dst.iter_mut().zip(src).for_each(|(d, &v)| _ = d.write(v + b[oi])),
            None => dst.iter_mut().zip(src).for_each(|(d, &v)| _ = d.write(v)),
        }
    };
    if l > 0 {
        if len >= PAR_MIN {
            buf.par_chunks_mut(l).enumerate().for_each(|(q, d)| fill(q, d));
        } else {
            buf.chunks_mut(l).enumerate().for_each(|(q, d)| fill(q, d));
        }
    }
    // SAFETY: `len` ≤ the capacity reserved above, and with l > 0 the N·O chunks of `l`
    // elements cover the first `len` exactly, each written whole by `fill` (`src` has `l`
    // elements: y holds O·N·L); with l == 0, `len` is 0.
    unsafe { out.set_len(len) };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// im2col straight from its definition, one cell at a time.
    fn im2col_naive(x: &[f64], g: &Geometry) -> Vec<f64> {
        let mut out = Vec::new();
        for c in 0..g.c {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    for n in 0..g.n {
                        for oy in 0..g.oh {
                            for ox in 0..g.ow {
                                let y = (oy * g.sh + i * g.dh) as isize - g.pt as isize;
                                let xx = (ox * g.sw + j * g.dw) as isize - g.pl as isize;
                                let inside = (0..g.h as isize).contains(&y) && (0..g.w as isize).contains(&xx);
                                out.push(if inside {
                                    x[((n * g.c + c) * g.h + y as usize) * g.w + xx as usize]
                                } else {
                                    0.0
                                });
                            }
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn im2col_writes_every_cell_of_a_dirty_recycled_buffer() {
        // Padding on every side, a stride and a dilation: runs of cells fall in the padding
        // above, below, left and right. The column buffer comes from the buffer cache full
        // of NaN, so a cell im2col failed to write would show.
        let (h, w) = (40, 45);
        for (stride, dil, pad) in [(1, 1, [2, 1, 1, 2]), (2, 2, [1, 3, 2, 0]), (3, 1, [0, 0, 0, 0])] {
            let [pt, pb, pl, pr] = pad;
            let (kh, kw) = (3, 2);
            let oh = (h + pt + pb - dil * (kh - 1) - 1) / stride + 1;
            let ow = (w + pl + pr - dil * (kw - 1) - 1) / stride + 1;
            let g = Geometry {
                n: 3,
                c: 4,
                h,
                w,
                kh,
                kw,
                sh: stride,
                sw: stride,
                dh: dil,
                dw: dil,
                pt,
                pb,
                pl,
                pr,
                oh,
                ow,
            };
            let x: Vec<f64> = (0..g.n * g.c * h * w).map(|i| 1.0 + i as f64).collect();
            let len = g.rows() * g.cols();
            assert!(len * 8 >= buffer_cache::MIN_BYTES, "the buffer must be one the cache keeps");
            let mut dirty = buffer_cache::vec_with_capacity::<f64>(len);
            dirty.resize(len, f64::NAN);
            buffer_cache::recycle(dirty);
            let got = im2col(&x, &g);
            assert_eq!(got, im2col_naive(&x, &g), "stride {stride} dilation {dil} padding {pad:?}");
        }
    }
}
