//! Max pooling's kernels: one sweep that gives each window's maximum and where it lies,
//! the scatter of a gradient back to those places, and the gather at them (the scatter's
//! adjoint). Positions are flat offsets `y·W + x` within each `(n, c)` plane, as `u32`
//! (the op refuses planes of more than `u32::MAX` cells).

use crate::buffer_cache;
use crate::element::Element;
use crate::kernels::conv::{Geometry, PAR_MIN};
use rayon::prelude::*;

/// Runs `f(plane, a, b)` over matching chunks of `a` and `b` (`la` and `lb` elements per
/// plane), on rayon's pool when the planes hold at least [`PAR_MIN`] elements in all.
fn per_plane<A: Send, B: Send>(
    a: &mut [A],
    la: usize,
    b: &mut [B],
    lb: usize,
    f: impl Fn(usize, &mut [A], &mut [B]) + Sync,
) {
    if la == 0 || lb == 0 {
        return;
    }
    let run = |(p, (ca, cb)): (usize, (&mut [A], &mut [B]))| f(p, ca, cb);
    if a.len().max(b.len()) >= PAR_MIN {
        a.par_chunks_mut(la).zip(b.par_chunks_mut(lb)).enumerate().for_each(run);
    } else {
        a.chunks_mut(la).zip(b.chunks_mut(lb)).enumerate().for_each(run);
    }
}

/// Whether `v` takes over from the running maximum `m`: PyTorch's CPU rule
/// `v > max || isnan(v)`, so the first maximum in scan order wins and a NaN (the last
/// one) wins over everything.
#[inline(always)]
fn takes<T: Element>(v: T, m: T) -> bool {
    v > m || v.is_nan()
}

/// Each window's maximum of `x [N, C, H, W]` and its position in the plane, both
/// `[N·C, OH·OW]`; `−∞` padding never wins (every window covers an input cell, which the
/// caller's geometry guarantees). Cells are scanned row by row of the window.
pub(crate) fn max_pool<T: Element>(x: &[T], g: &Geometry) -> (Vec<T>, Vec<u32>) {
    let (l, hw) = (g.oh * g.ow, g.h * g.w);
    let mut vals = buffer_cache::vec_filled(g.n * g.c * l, T::zero());
    let mut args = vec![0u32; g.n * g.c * l];
    let unpadded = g.pt == 0 && g.pb == 0 && g.pl == 0 && g.pr == 0;
    let pair = unpadded && [g.kh, g.kw, g.sh, g.sw, g.dh, g.dw] == [2, 2, 2, 2, 1, 1];
    // Per kernel column, the output columns it reaches inside the image.
    let cols: Vec<(usize, usize, usize)> = (0..g.kw).map(|j| g.valid_x(j)).collect();
    per_plane(&mut vals, l, &mut args, l, |nc, best, arg| {
        let plane = &x[nc * hw..][..hw];
        for oy in 0..g.oh {
            let m = &mut best[oy * g.ow..][..g.ow];
            let k = &mut arg[oy * g.ow..][..g.ow];
            if pair {
                // 2×2 windows, stride 2 (the usual pooling): the four cells in scan order.
                let y0 = 2 * oy * g.w;
                let (r0, r1) = (&plane[y0..][..2 * g.ow], &plane[y0 + g.w..][..2 * g.ow]);
                let cells = r0.chunks_exact(2).zip(r1.chunks_exact(2));
                for (ox, ((m, k), (a, b))) in m.iter_mut().zip(k.iter_mut()).zip(cells).enumerate() {
                    let at = y0 + 2 * ox;
                    let (mut mv, mut mk) = (a[0], at);
                    for (v, kk) in [(a[1], at + 1), (b[0], at + g.w), (b[1], at + g.w + 1)] {
                        // Selects rather than a branch: which cell wins is data-dependent.
                        let t = takes(v, mv);
                        mv = if t { v } else { mv };
                        mk = if t { kk } else { mk };
                    }
                    *m = mv;
                    *k = mk as u32;
                }
            } else if unpadded {
                // Every window lies inside the image: sweep each window cell across the
                // whole row of windows, so the windows' comparisons are independent.
                let y0 = oy * g.sh;
                for i in 0..g.kh {
                    for j in 0..g.kw {
                        let off = (y0 + i * g.dh) * g.w + j * g.dw;
                        let row = plane[off..].iter().step_by(g.sw);
                        for (ox, ((m, k), &v)) in m.iter_mut().zip(k.iter_mut()).zip(row).enumerate() {
                            let here = (off + ox * g.sw) as u32;
                            if (i, j) == (0, 0) {
                                (*m, *k) = (v, here);
                            } else {
                                let t = takes(v, *m);
                                *m = if t { v } else { *m };
                                *k = if t { here } else { *k };
                            }
                        }
                    }
                }
            } else {
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
                    if let Some((at, v)) = win {
                        (*m, *k) = (v, at as u32);
                    }
                }
            }
        }
    });
    (vals, args)
}

/// The adjoint of gathering at `args`: `[planes, hw]` zeros with each `grad` element
/// added at its plane's position `args` (positions shared by overlapping windows sum).
pub(crate) fn scatter<T: Element>(grad: &[T], args: &[u32], planes: usize, hw: usize) -> Vec<T> {
    let mut out = buffer_cache::vec_filled(planes * hw, T::zero());
    let l = if planes == 0 { 0 } else { args.len() / planes };
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

/// `src [planes, hw]` read at each plane's positions `args`: `[planes, args.len()/planes]`.
pub(crate) fn gather<T: Element>(src: &[T], args: &[u32], planes: usize, hw: usize) -> Vec<T> {
    let l = if planes == 0 { 0 } else { args.len() / planes };
    let mut out = buffer_cache::vec_filled(args.len(), T::zero());
    let fill = |p: usize, dst: &mut [T]| {
        let plane = &src[p * hw..][..hw];
        for (d, &k) in dst.iter_mut().zip(&args[p * l..][..l]) {
            *d = plane[k as usize];
        }
    };
    if l == 0 {
        return out;
    }
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(l).enumerate().for_each(|(p, c)| fill(p, c));
    } else {
        out.chunks_mut(l).enumerate().for_each(|(p, c)| fill(p, c));
    }
    out
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
            let planes = g.n * g.c;
            assert_eq!(bits(&gather(&x, &args, planes, g.h * g.w)), bits(&vals));
            let ones = vec![1.0; args.len()];
            let s = scatter(&ones, &args, planes, g.h * g.w);
            assert_eq!(s.iter().sum::<f64>(), args.len() as f64);
        }
    }
}
