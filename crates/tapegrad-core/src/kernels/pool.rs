//! Max pooling's kernels: one sweep that gives each window's maximum and where it lies,
//! the scatter of a gradient back to those places, and the gather at them (the scatter's
//! adjoint). Positions are flat offsets `y·W + x` within each `(n, c)` plane, as `u32`
//! (the op refuses planes of more than `u32::MAX` cells).

use crate::buffer_cache;
use crate::element::Element;
use crate::kernels::conv::Geometry;
use crate::kernels::conv_gemm::relu_of;
use crate::kernels::fill::{fill_chunks, fill_chunks_pair, PAR_MIN};
use multiversion::multiversion;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Whether `v` takes over from the running maximum `m`: PyTorch's CPU rule
/// `v > max || isnan(v)`, so the first maximum in scan order wins and a NaN (the last
/// one) wins over everything.
#[inline(always)]
fn takes<T: Element>(v: T, m: T) -> bool {
    v > m || v.is_nan()
}

/// `(max, position)` of two cells in scan order: the second wins by PyTorch's rule.
#[inline(always)]
fn pick<T: Element>(m: T, i: u32, v: T, j: u32) -> (T, u32) {
    // Selects rather than a branch: which cell wins is data-dependent.
    let t = takes(v, m);
    (if t { v } else { m }, if t { j } else { i })
}

/// A task's scratch for [`sweep_plane`]: for 2×2, stride-2 windows, the tops and bottoms of
/// a plane's windows (its even and odd rows, each cut to the `2·OW` cells the windows cover)
/// and each window's top-left position, so that one flat loop runs over all the plane's
/// windows (a row of them, 13 for the MNIST CNN's first pooling, is shorter than a vector).
pub(crate) struct PoolScratch<T> {
    tops: Vec<T>,
    bottoms: Vec<T>,
    corners: Vec<u32>,
}

impl<T: Element> PoolScratch<T> {
    pub(crate) fn new(g: &Geometry) -> Self {
        if !is_pair(g) {
            return PoolScratch {
                tops: Vec::new(),
                bottoms: Vec::new(),
                corners: Vec::new(),
            };
        }
        let corners = (0..g.oh)
            .flat_map(|oy| (0..g.ow).map(move |ox| (2 * oy * g.w + 2 * ox) as u32))
            .collect();
        let n = 2 * g.oh * g.ow;
        PoolScratch {
            tops: vec![T::zero(); n],
            bottoms: vec![T::zero(); n],
            corners,
        }
    }
}

/// Whether `g` has no padding.
fn unpadded(g: &Geometry) -> bool {
    g.pt == 0 && g.pb == 0 && g.pl == 0 && g.pr == 0
}

/// Whether `g` is the usual pooling: 2×2 windows, stride 2, no padding.
fn is_pair(g: &Geometry) -> bool {
    unpadded(g) && [g.kh, g.kw, g.sh, g.sw, g.dh, g.dw] == [2, 2, 2, 2, 1, 1]
}

/// A plane's 2×2, stride-2 windows (`oh` rows of `ow`, over rows of `w` cells): each
/// window's maximum and position, from its top pair and its bottom pair, in one loop over
/// all the windows (through `s`). Compiled for the CPU's widest vectors (and dispatched
/// once per plane): every step is a compare and a select.
#[multiversion(targets = "simd")]
fn pair_plane<T: Element>(
    plane: &[T],
    w: usize,
    oh: usize,
    ow: usize,
    s: &mut PoolScratch<T>,
    best: &mut [MaybeUninit<T>],
    arg: &mut [MaybeUninit<u32>],
) {
    let r = 2 * ow;
    for oy in 0..oh {
        s.tops[oy * r..][..r].copy_from_slice(&plane[2 * oy * w..][..r]);
        s.bottoms[oy * r..][..r].copy_from_slice(&plane[(2 * oy + 1) * w..][..r]);
    }
    // One length for all of them, so the loop carries no bounds checks and vectorises;
    // every window is written (the outputs are uninitialised until then).
    let n = (oh * ow)
        .min(best.len())
        .min(arg.len())
        .min(s.corners.len())
        .min(s.tops.len() / 2)
        .min(s.bottoms.len() / 2);
    assert!(
        n == oh * ow && n == best.len() && n == arg.len(),
        "pair_plane: {oh}×{ow} windows, outputs of {} and {}, scratch for {}",
        best.len(),
        arg.len(),
        s.corners.len()
    );
    let (best, arg, corners) = (&mut best[..n], &mut arg[..n], &s.corners[..n]);
    let (tops, bottoms, w) = (&s.tops[..2 * n], &s.bottoms[..2 * n], w as u32);
    for j in 0..n {
        let a = corners[j];
        let (top, i) = pick(tops[2 * j], a, tops[2 * j + 1], a + 1);
        let (bottom, k) = pick(bottoms[2 * j], a + w, bottoms[2 * j + 1], a + w + 1);
        let (v, p) = pick(top, i, bottom, k);
        best[j].write(v);
        arg[j].write(p);
    }
}

/// The most tasks [`max_pool`] cuts its planes into.
const POOL_TASKS: usize = 16;

/// Each window's maximum of `x [N, C, H, W]` and its position in the plane, both
/// `[N·C, OH·OW]`; `−∞` padding never wins (every window covers an input cell, which the
/// caller's geometry guarantees). Cells are scanned row by row of the window.
pub(crate) fn max_pool<T: Element>(x: &[T], g: &Geometry) -> (Vec<T>, Vec<u32>) {
    let (planes, l, hw) = (g.n * g.c, g.oh * g.ow, g.h * g.w);
    // Runs of planes per task (at most POOL_TASKS tasks), each task with its own scratch.
    let per = planes.div_ceil(POOL_TASKS).max(1);
    // Every value and position is written by the sweep: neither output is zeroed first.
    fill_chunks_pair(planes * l, per * l, planes * l >= PAR_MIN, |t, best, arg| {
        let mut s = PoolScratch::new(g);
        for (i, (best, arg)) in best.chunks_mut(l).zip(arg.chunks_mut(l)).enumerate() {
            let nc = t * per + i;
            sweep_plane(&x[nc * hw..][..hw], g, &mut s, best, arg);
        }
    })
}

/// [`max_pool`] of one plane `[H, W]`: writes each of the `OH·OW` windows' maximum into
/// `best` and its position into `arg`; `s` is a task's [`PoolScratch`] for `g`.
pub(crate) fn sweep_plane<T: Element>(
    plane: &[T],
    g: &Geometry,
    s: &mut PoolScratch<T>,
    best: &mut [MaybeUninit<T>],
    arg: &mut [MaybeUninit<u32>],
) {
    if is_pair(g) {
        // 2×2 windows, stride 2 (the usual pooling). `pick` is associative (the first
        // maximum, or the last NaN, with its position), so each window is its top pair
        // combined with its bottom pair: the scan order's result in two levels of compares
        // instead of a chain of three.
        return pair_plane(plane, g.w, g.oh, g.ow, s, best, arg);
    }
    if unpadded(g) {
        // Every window lies inside the image: sweep each window cell across the whole row
        // of windows, so the windows' comparisons are independent.
        let mut run = vec![(T::zero(), 0u32); g.ow];
        for oy in 0..g.oh {
            let y0 = oy * g.sh;
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let off = (y0 + i * g.dh) * g.w + j * g.dw;
                    let row = plane[off..].iter().step_by(g.sw);
                    for (ox, (r, &v)) in run.iter_mut().zip(row).enumerate() {
                        let here = (off + ox * g.sw) as u32;
                        *r = if (i, j) == (0, 0) {
                            (v, here)
                        } else {
                            pick(r.0, r.1, v, here)
                        };
                    }
                }
            }
            let (m, k) = (&mut best[oy * g.ow..][..g.ow], &mut arg[oy * g.ow..][..g.ow]);
            for ((m, k), &(v, at)) in m.iter_mut().zip(k).zip(&run) {
                m.write(v);
                k.write(at);
            }
        }
        return;
    }
    // Per kernel column, the output columns it reaches inside the image.
    let cols: Vec<(usize, usize, usize)> = (0..g.kw).map(|j| g.valid_x(j)).collect();
    for oy in 0..g.oh {
        let (m, k) = (&mut best[oy * g.ow..][..g.ow], &mut arg[oy * g.ow..][..g.ow]);
        for (ox, (m, k)) in m.iter_mut().zip(k.iter_mut()).enumerate() {
            let mut win: Option<(usize, T)> = None;
            for i in 0..g.kh {
                let Some(y) = g.src_y(oy, i) else { continue };
                for &(lo, hi, x0) in &cols {
                    if ox < lo || ox >= hi {
                        continue;
                    }
                    let at = y * g.w + x0 + (ox - lo) * g.sw;
                    let v = plane[at];
                    if win.is_none_or(|(_, m)| takes(v, m)) {
                        win = Some((at, v));
                    }
                }
            }
            // The op's geometry gives every window a cell; −∞ would be the padding.
            let (at, v) = win.unwrap_or((0, T::neg_infinity()));
            m.write(v);
            k.write(at as u32);
        }
    }
}

/// [`max_pool`] of ReLU over one image stored position-major, `y[(yy·rs + xx)·C + ch]` for
/// the `C = g.c` channels (a convolution's output before its bias; `rs ≥ W`), with
/// `relu(v + bias[ch])` taken as each cell is read: every channel's windows at once, each
/// window's cells in scan order, the maximum and its position in the `[H, W]` plane written
/// channel-major (`best[ch·OH·OW + oy·OW + ox]`, as [`max_pool`] writes them). The channels
/// are contiguous, so each step is a vector compare and select across them, however narrow
/// the image; a row of windows is gathered in `run_v` and `run_k` (scratch of `OW·C` cells)
/// and then written out channel by channel.
#[allow(clippy::too_many_arguments)]
#[multiversion(targets = "simd")]
pub(crate) fn sweep_relu_channels_last<T: Element>(
    y: &[T],
    rs: usize,
    bias: &[T],
    g: &Geometry,
    best: &mut [MaybeUninit<T>],
    arg: &mut [MaybeUninit<u32>],
    run_v: &mut [T],
    run_k: &mut [u32],
) {
    let (c, pl) = (g.c, g.oh * g.ow);
    let bias = &bias[..c];
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let (rv, rk) = (&mut run_v[ox * c..][..c], &mut run_k[ox * c..][..c]);
            let mut first = true;
            for i in 0..g.kh {
                let Some(yy) = g.src_y(oy, i) else { continue };
                for j in 0..g.kw {
                    let xx = (ox * g.sw + j * g.dw).checked_sub(g.pl).filter(|&x| x < g.w);
                    let Some(xx) = xx else { continue };
                    let at = (yy * g.w + xx) as u32;
                    let cell = &y[(yy * rs + xx) * c..][..c];
                    let runs = rv.iter_mut().zip(rk.iter_mut()).zip(cell.iter().zip(bias));
                    if first {
                        runs.for_each(|((v, k), (&x, &b))| (*v, *k) = (relu_of(x + b), at));
                    } else {
                        runs.for_each(|((v, k), (&x, &b))| (*v, *k) = pick(*v, *k, relu_of(x + b), at));
                    }
                    first = false;
                }
            }
            // The op's geometry gives every window a cell.
            debug_assert!(!first, "a pooling window with no cell");
        }
        // The row of windows, channel by channel: contiguous runs of OW in the output.
        let (rv, rk) = (&run_v[..g.ow * c], &run_k[..g.ow * c]);
        for ch in 0..c {
            let (m, k) = (
                &mut best[ch * pl + oy * g.ow..][..g.ow],
                &mut arg[ch * pl + oy * g.ow..][..g.ow],
            );
            for (ox, (m, k)) in m.iter_mut().zip(k).enumerate() {
                m.write(rv[ox * c + ch]);
                k.write(rk[ox * c + ch]);
            }
        }
    }
}

/// One plane's share of ReLU-then-max-pool's backward: `plane [H, W]` (zeroed by the
/// caller) receives each window's gradient `grad[j]` at its maximum `args[j]` where the
/// window's maximum `vals[j]` is > 0 (ReLU's mask, read at the maximum, where ReLU's output
/// is the window's value), added in window order: the values [`scatter`] gives for the
/// masked gradient, then masked by ReLU's output.
///
/// Branch-free (whether a window passes is data-dependent): a masked window adds +0, which
/// leaves every sum as it was, since the windows that share a maximum share its value and so
/// are masked all or none (a cell they all miss stays +0).
pub(crate) fn unpool_relu_plane<T: Element>(grad: &[T], vals: &[T], args: &[u32], plane: &mut [T]) {
    for ((&g, &v), &k) in grad.iter().zip(vals).zip(args) {
        plane[k as usize] += if v > T::zero() { g } else { T::zero() };
    }
}

/// The adjoint of gathering at `args`: `[N, C, H, W]` with each element of `grad`
/// (`[N·C, OH·OW]`, as [`max_pool`] gives `args`) added at its position into zeros;
/// positions shared by overlapping windows sum.
pub(crate) fn scatter<T: Element>(grad: &[T], args: &[u32], g: &Geometry) -> Vec<T> {
    // Each plane is zeroed and scattered into by one task, while it is in cache: zeroing
    // the whole output first was a single-threaded pass over it (11 MB per step for the
    // MNIST CNN's first pooling).
    let (planes, l, hw) = (g.n * g.c, g.oh * g.ow, g.h * g.w);
    if !g.windows_overlap() {
        // Every cell receives at most one gradient: zeros, then the gradients written in
        // (as 0 + g, the value the scatter-add gives: −0 becomes +0).
        return fill_chunks(planes * hw, hw, |p, plane| {
            plane.iter_mut().for_each(|d| _ = d.write(T::zero()));
            for (&k, &v) in args[p * l..][..l].iter().zip(&grad[p * l..][..l]) {
                plane[k as usize].write(T::zero() + v);
            }
        });
    }
    let mut out = buffer_cache::vec_filled(planes * hw, T::zero());
    if l == 0 || hw == 0 {
        return out;
    }
    let fill = |p: usize, plane: &mut [T]| {
        for (&k, &g) in args[p * l..][..l].iter().zip(&grad[p * l..][..l]) {
            plane[k as usize] += g;
        }
    };
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(hw).enumerate().for_each(|(p, c)| fill(p, c));
    } else {
        out.chunks_mut(hw).enumerate().for_each(|(p, c)| fill(p, c));
    }
    out
}

/// `src [N, C, H, W]` read at each plane's positions `args`: `[N·C, OH·OW]`.
pub(crate) fn gather<T: Element>(src: &[T], args: &[u32], g: &Geometry) -> Vec<T> {
    let (l, hw) = (g.oh * g.ow, g.h * g.w);
    // Each output element is written, from its position.
    fill_chunks(args.len(), l, |p, dst| {
        let plane = &src[p * hw..][..hw];
        for (d, &k) in dst.iter_mut().zip(&args[p * l..][..l]) {
            d.write(plane[k as usize]);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window maxima by the definition, one window at a time.
    fn reference(x: &[f64], g: &Geometry) -> (Vec<f64>, Vec<u32>) {
        let (mut vals, mut args) = (vec![], vec![]);
        for nc in 0..g.n * g.c {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut win: Option<(usize, f64)> = None;
                    for i in 0..g.kh {
                        for j in 0..g.kw {
                            let (y, xx) = (oy * g.sh + i * g.dh, ox * g.sw + j * g.dw);
                            if y < g.pt || xx < g.pl || y - g.pt >= g.h || xx - g.pl >= g.w {
                                continue;
                            }
                            let at = (y - g.pt) * g.w + xx - g.pl;
                            let v = x[nc * g.h * g.w + at];
                            if win.is_none_or(|(_, m)| v > m || v.is_nan()) {
                                win = Some((at, v));
                            }
                        }
                    }
                    let (at, v) = win.unwrap();
                    vals.push(v);
                    args.push(at as u32);
                }
            }
        }
        (vals, args)
    }

    fn geometry(hw: [usize; 2], k: [usize; 2], s: [usize; 2], p: usize, dil: usize) -> Geometry {
        let out = |d: usize| (hw[d] + 2 * p - dil * (k[d] - 1) - 1) / s[d] + 1;
        Geometry {
            n: 2,
            c: 3,
            h: hw[0],
            w: hw[1],
            kh: k[0],
            kw: k[1],
            sh: s[0],
            sw: s[1],
            dh: dil,
            dw: dil,
            pt: p,
            pb: p,
            pl: p,
            pr: p,
            oh: out(0),
            ow: out(1),
        }
    }

    #[test]
    fn every_path_matches_the_definition_with_ties_and_nan() {
        // Few distinct values (many ties) and some NaN, through the 2×2 path, the unpadded
        // path and the padded path, odd sizes (a dropped last row and column) included.
        let cases = [
            geometry([6, 8], [2, 2], [2, 2], 0, 1),
            geometry([7, 9], [2, 2], [2, 2], 0, 1),
            geometry([7, 9], [3, 2], [1, 2], 0, 1),
            geometry([8, 8], [2, 3], [2, 1], 0, 2),
            geometry([7, 6], [3, 3], [2, 2], 1, 1),
            geometry([5, 5], [2, 2], [2, 2], 1, 1),
            geometry([7, 8], [2, 1], [3, 2], 0, 1),
            geometry([11, 11], [2, 2], [2, 2], 0, 1),
        ];
        for (t, g) in cases.iter().enumerate() {
            let x: Vec<f64> = (0..g.n * g.c * g.h * g.w)
                .map(|i| match (i * 7 + t) % 11 {
                    0 => f64::NAN,
                    r => (r % 4) as f64 - 1.5,
                })
                .collect();
            let (vals, args) = max_pool(&x, g);
            let (rv, ra) = reference(&x, g);
            assert_eq!(args, ra, "{g:?}");
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&vals), bits(&rv), "{g:?}");
            // The values are the input at the positions, and scatter is gather's adjoint.
            assert_eq!(bits(&gather(&x, &args, g)), bits(&vals));
            // The scatter is the plain scatter-add into zeros, bit for bit.
            let grad: Vec<f64> = (0..args.len())
                .map(|i| if i % 5 == 0 { -0.0 } else { i as f64 * 0.37 - 3.0 })
                .collect();
            let (l, hw) = (g.oh * g.ow, g.h * g.w);
            let mut want = vec![0.0; g.n * g.c * hw];
            for (i, (&k, &v)) in args.iter().zip(&grad).enumerate() {
                want[(i / l) * hw + k as usize] += v;
            }
            assert_eq!(bits(&scatter(&grad, &args, g)), bits(&want), "{g:?}");
        }
    }
}
