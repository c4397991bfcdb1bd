//! im2col and its adjoint col2im: the data movement that lowers a convolution to one GEMM.
//!
//! For an input `x [N, C, H, W]` and a kernel window of `kh × kw` cells, the column matrix
//! has one row per (channel, kernel cell) `r = (c·kh + i)·kw + j` and one column per output
//! position `p = (n·OH + oy)·OW + ox`, holding `x[n, c, oy·sh + i·dh − pt, ox·sw + j·dw − pl]`
//! (0 where that cell falls in the padding). col2im adds every column entry back at the same
//! cell, so it is the transpose of im2col as a linear map.

use crate::buffer_cache;
use crate::element::Element;
use crate::kernels::fill::{fill_chunks, PAR_MIN};
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

    /// Whether two windows can share an input cell: a stride shorter than the dilated
    /// kernel's span in either dim (conservative for dilated kernels, whose windows may
    /// interleave without sharing).
    pub(crate) fn windows_overlap(&self) -> bool {
        self.sh < self.dh * (self.kh.max(1) - 1) + 1 || self.sw < self.dw * (self.kw.max(1) - 1) + 1
    }

    /// The input row read by output row `oy` at kernel row `i`, if inside the image.
    #[inline]
    pub(crate) fn src_y(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.sh + i * self.dh)
            .checked_sub(self.pt)
            .filter(|&y| y < self.h)
    }

    /// The output rows `lo..hi` whose kernel row `i` falls inside the image, and the input
    /// row of `lo` (input rows then advance by the stride).
    #[inline]
    pub(crate) fn valid_y(&self, i: usize) -> (usize, usize, usize) {
        valid_run(i * self.dh, self.pt, self.h, self.sh, self.oh)
    }

    /// The output columns `lo..hi` whose kernel column `j` falls inside the image, and
    /// the input column of `lo` (input columns then advance by the stride).
    #[inline]
    pub(crate) fn valid_x(&self, j: usize) -> (usize, usize, usize) {
        valid_run(j * self.dw, self.pl, self.w, self.sw, self.ow)
    }
}

/// Along one dim (input `size` cells after `pad` cells of padding, stride `stride`, `out`
/// outputs), for the kernel cell at offset `off`: the outputs `lo..hi` whose cell falls inside
/// the input — the smallest `o` with `o·stride + off ≥ pad`, and the first with
/// `o·stride + off ≥ pad + size` — and the input cell of `lo`.
#[inline]
fn valid_run(off: usize, pad: usize, size: usize, stride: usize, out: usize) -> (usize, usize, usize) {
    let lo = pad.saturating_sub(off).div_ceil(stride).min(out);
    let hi = (pad + size).saturating_sub(off).div_ceil(stride).min(out);
    if hi <= lo {
        return (lo, lo, 0); // no output reaches the input
    }
    (lo, hi, lo * stride + off - pad)
}

/// A destination cell a kernel writes once: a plain element, or one of a new buffer that
/// starts uninitialised ([`crate::kernels::fill`]). Lets one loop fill either.
pub(crate) trait Slot<T>: Sized {
    fn put(&mut self, v: T);
}
impl<T: Element> Slot<T> for T {
    #[inline(always)]
    fn put(&mut self, v: T) {
        *self = v;
    }
}
impl<T: Element> Slot<T> for MaybeUninit<T> {
    #[inline(always)]
    fn put(&mut self, v: T) {
        self.write(v);
    }
}

/// The column matrix `[C·kh·kw, N·OH·OW]` of `x [N, C, H, W]` (row-major, contiguous).
///
/// Each cell is written once, copied from the image or set to 0 where its window reaches
/// into the padding, so the buffer is not zero-filled first (a pass over 18 MB per step
/// for the MNIST CNN's second convolution).
pub(crate) fn im2col<T: Element>(x: &[T], g: &Geometry) -> Vec<T> {
    fill_chunks(g.rows() * g.cols(), g.cols(), |r, row| im2col_row(x, g, r, row))
}

/// One image's column matrix `[C·kh·kw, OH·OW]` written into `out` (`g.n` must be 1).
pub(crate) fn im2col_into<T: Element>(x: &[T], g: &Geometry, out: &mut [T]) {
    debug_assert_eq!(g.n, 1);
    let l = g.cols();
    for (r, row) in out[..g.rows() * l].chunks_exact_mut(l).enumerate() {
        im2col_row(x, g, r, row);
    }
}

/// Row `r` of the column matrix (`N·OH·OW` cells), every cell written once.
fn im2col_row<T: Element, S: Slot<T>>(x: &[T], g: &Geometry, r: usize, row: &mut [S]) {
    let l = g.oh * g.ow;
    let zero = |d: &mut [S]| {
        // Most runs have no padding to zero: skip the loop for those.
        if !d.is_empty() {
            d.iter_mut().for_each(|d| d.put(T::zero()));
        }
    };
    let (c, ij) = (r / (g.kh * g.kw), r % (g.kh * g.kw));
    let (i, j) = (ij / g.kw, ij % g.kw);
    let ((lo, hi, x0), (ylo, yhi, y0)) = (g.valid_x(j), g.valid_y(i));
    let whole = lo == 0 && hi == g.ow && g.sw == 1;
    // Every cell of the row is written: it is N blocks of OH runs of OW cells; a block
    // splits into the runs `..ylo` and `yhi..` (zeroed) and `ylo..yhi` (valid_y gives
    // ylo ≤ yhi ≤ OH), and each of those runs into `..lo` and `hi..` (zeroed) and `lo..hi`
    // (valid_x gives lo ≤ hi ≤ OW), written from a source of exactly hi − lo values (stride
    // 1) or one read per element (a `whole` run, lo = 0 and hi = OW, from OW values).
    for (n, block) in row.chunks_exact_mut(l).enumerate() {
        let plane = &x[(n * g.c + c) * g.h * g.w..][..g.h * g.w];
        // Output rows above and below the image's reach are all padding.
        let (top, rest) = block.split_at_mut(ylo * g.ow);
        let (mid, bottom) = rest.split_at_mut((yhi - ylo) * g.ow);
        zero(top);
        zero(bottom);
        for (k, dst) in mid.chunks_exact_mut(g.ow).enumerate() {
            let start = (y0 + k * g.sh) * g.w + x0;
            if whole {
                // The whole run reads one stretch of the image row (the usual case).
                for (d, &v) in dst.iter_mut().zip(&plane[start..start + g.ow]) {
                    d.put(v);
                }
                continue;
            }
            let (left, rest) = dst.split_at_mut(lo);
            let (inner, right) = rest.split_at_mut(hi - lo);
            zero(left);
            zero(right);
            if g.sw == 1 {
                for (d, &v) in inner.iter_mut().zip(&plane[start..start + (hi - lo)]) {
                    d.put(v);
                }
            } else {
                for (q, d) in inner.iter_mut().enumerate() {
                    d.put(plane[start + q * g.sw]);
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: `[N, C, H, W]` with every column entry added back at its cell.
pub(crate) fn col2im<T: Element>(cols: &[T], g: &Geometry) -> Vec<T> {
    let hw = g.h * g.w;
    let mut out = buffer_cache::vec_filled(g.n * g.c * hw, T::zero());
    if hw == 0 {
        return out;
    }
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(hw)
            .enumerate()
            .for_each(|(nc, p)| col2im_plane(cols, g, nc, p));
    } else {
        out.chunks_mut(hw)
            .enumerate()
            .for_each(|(nc, p)| col2im_plane(cols, g, nc, p));
    }
    out
}

/// Adds the column entries of plane `nc = n·C + c` (`[H, W]`) into `plane`.
pub(crate) fn col2im_plane<T: Element>(cols: &[T], g: &Geometry, nc: usize, plane: &mut [T]) {
    let (ncols, l) = (g.cols(), g.oh * g.ow);
    let (n, c) = (nc / g.c, nc % g.c);
    for i in 0..g.kh {
        let (ylo, yhi, y0) = g.valid_y(i);
        for j in 0..g.kw {
            let row = &cols[((c * g.kh + i) * g.kw + j) * ncols + n * l..][..l];
            let (lo, hi, x0) = g.valid_x(j);
            for (k, src) in row[ylo * g.ow..yhi * g.ow].chunks_exact(g.ow).enumerate() {
                let (start, src) = ((y0 + k * g.sh) * g.w + x0, &src[lo..hi]);
                if g.sw == 1 {
                    // Contiguous on both sides: a plain zip, which vectorises.
                    for (d, &v) in plane[start..start + src.len()].iter_mut().zip(src) {
                        *d += v;
                    }
                } else {
                    for (q, &v) in src.iter().enumerate() {
                        plane[start + q * g.sw] += v;
                    }
                }
            }
        }
    }
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

    /// Geometries with padding on every side, strides and dilations, where runs of cells
    /// fall in the padding above, below, left and right, or none do.
    fn geometries() -> Vec<Geometry> {
        let (h, w) = (40, 45);
        let cases = [
            (1, 1, [2, 1, 1, 2]),
            (2, 2, [1, 3, 2, 0]),
            (3, 1, [0, 0, 0, 0]),
            (1, 1, [0, 0, 0, 0]),
            (2, 1, [0, 2, 3, 0]),
        ];
        cases
            .into_iter()
            .map(|(stride, dil, [pt, pb, pl, pr])| {
                let (kh, kw) = (3, 2);
                Geometry {
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
                    oh: (h + pt + pb - dil * (kh - 1) - 1) / stride + 1,
                    ow: (w + pl + pr - dil * (kw - 1) - 1) / stride + 1,
                }
            })
            .collect()
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), c> = <x, col2im(c)> for every x and c: checked on values whose
        // products are exact in f64 (small integers), so the sums agree exactly.
        for g in geometries() {
            let x: Vec<f64> = (0..g.n * g.c * g.h * g.w).map(|i| (i % 7) as f64 - 3.0).collect();
            let c: Vec<f64> = (0..g.rows() * g.cols()).map(|i| (i % 5) as f64 - 2.0).collect();
            let lhs: f64 = im2col_naive(&x, &g).iter().zip(&c).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(col2im(&c, &g)).map(|(a, b)| a * b).sum();
            assert_eq!(lhs, rhs, "{g:?}");
        }
    }

    #[test]
    fn im2col_writes_every_cell_of_a_dirty_recycled_buffer() {
        // The column buffer comes from the buffer cache full of NaN, so a cell im2col
        // failed to write would show.
        for g in geometries() {
            let x: Vec<f64> = (0..g.n * g.c * g.h * g.w).map(|i| 1.0 + i as f64).collect();
            let len = g.rows() * g.cols();
            assert!(
                len * 8 >= buffer_cache::MIN_BYTES,
                "the buffer must be one the cache keeps"
            );
            let mut dirty = buffer_cache::vec_with_capacity::<f64>(len);
            dirty.resize(len, f64::NAN);
            buffer_cache::recycle(dirty);
            let got = im2col(&x, &g);
            assert_eq!(got, im2col_naive(&x, &g), "{g:?}");
        }
    }
}
