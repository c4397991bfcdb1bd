//! The convolution and its gradients one image at a time, images in parallel: each image's
//! column matrix ([`im2col`](super::conv::im2col) of one image, `[C·kh·kw, OH·OW]`) is
//! unrolled into a scratch buffer that stays in cache and multiplied by the kernel with the
//! GEMM, and the product `[O, OH·OW]` is already that image's part of the NCHW output. (Where
//! our GEMM kernel exists and the product is large enough, the forward skips the column
//! matrix altogether: `conv_windows`.) The backward reads each image's gradient once for all
//! three gradients ([`Conv::backward`]).
//!
//! Lowering the whole batch to one column matrix `[C·kh·kw, N·OH·OW]` (what
//! `Tensor::im2col` gives) writes that matrix to memory and reads it back (18 MB per step
//! for the MNIST CNN's second convolution), and needs a pass that permutes the `[O, N·L]`
//! product into `[N, O, L]`, and another that permutes the gradient back; per image,
//! neither exists.
//!
//! The weight gradient is a sum over the batch: each task sums a fixed run of images (set
//! by the batch size, not the thread count) and the tasks' partial sums are added in task
//! order, so the result is the same bits on any number of threads.

use crate::buffer_cache;
use crate::element::Element;
use crate::kernels::conv::{col2im_plane, im2col_into, Geometry};
use crate::kernels::conv_image::Forward;
use crate::kernels::fill::{fill_chunks_on, fill_chunks_with_on};
use crate::kernels::gemm::matmul_into;
use crate::kernels::pool;
use crate::kernels::reduce::fold_lanes;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// From this many multiply-adds per pass, the images are spread over rayon's pool.
const PAR_MIN_MACS: usize = 1 << 22;

/// The most tasks a batch is cut into (each sums its own share of the weight gradient).
const MAX_TASKS: usize = 16;

/// Columns of the tasks' partial sums added per piece of their final sum.
const SUM_COLS: usize = 4096;

/// One convolution: the batch's window geometry, the output channels and the groups.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conv {
    pub g: Geometry,
    pub o: usize,
    pub groups: usize,
}

/// The sizes a pass works with, derived once.
pub(super) struct Dims {
    /// One image's geometry.
    pub(super) g1: Geometry,
    /// Rows of an image's column matrix (`C·kh·kw`), and of one group's share (`kg`).
    pub(super) r: usize,
    pub(super) kg: usize,
    /// Output positions per channel, output channels per group, input cells per image.
    pub(super) l: usize,
    pub(super) og: usize,
    pub(super) chw: usize,
    /// Images per task, and tasks.
    pub(super) per: usize,
    pub(super) tasks: usize,
    pub(super) parallel: bool,
}

impl Conv {
    pub(super) fn dims(&self) -> Dims {
        let g = &self.g;
        let (r, l) = (g.rows(), g.oh * g.ow);
        let per = g.n.div_ceil(MAX_TASKS).max(1);
        let macs =
            g.n.saturating_mul(self.o)
                .saturating_mul(l)
                .saturating_mul(r / self.groups);
        Dims {
            g1: Geometry { n: 1, ..*g },
            r,
            kg: r / self.groups,
            l,
            og: self.o / self.groups,
            chw: g.c * g.h * g.w,
            per,
            tasks: g.n.div_ceil(per),
            parallel: g.n > 1 && macs >= PAR_MIN_MACS,
        }
    }

    /// `y [N, O, OH, OW]`: for each image `n` and group `g`, `W_g [O/groups, kg] ×
    /// cols_g(xₙ) [kg, OH·OW]`, plus `bias[o]` on channel `o`, through ReLU when `relu`.
    pub(crate) fn forward<T: Element>(&self, x: &[T], w: &[T], bias: Option<&[T]>, relu: bool) -> Vec<T> {
        let f = Forward::new(self, x, w, bias, relu);
        let ol = self.o * f.d.l;
        let out = fill_chunks_on(self.g.n * ol, f.d.per * ol, f.d.parallel, |t, out| {
            let mut s = f.scratch();
            for (i, out) in out.chunks_mut(ol).enumerate() {
                f.image(&mut s, t * f.d.per + i, out);
            }
            s.recycle();
        });
        f.recycle();
        out
    }

    /// `∂x [N, C, H, W]` for `gy = ∂L/∂y [N, O, OH, OW]`: with `Gₙ,g` image `n`'s
    /// gradient for group `g` as `[O/groups, L]`, `∂x[n] = col2im(W_gᵀ · Gₙ,g)` (the
    /// transposed convolution of `gy` by `w`).
    pub(crate) fn input_grad<T: Element>(&self, w: &[T], gy: &[T]) -> Vec<T> {
        let [dx, _, _] = self.backward(&[], w, GradIn::Plain(gy), [true, false, false]);
        dx.unwrap_or_default()
    }

    /// `∂W [O, C/groups, kh, kw]` for `gy = ∂L/∂y [N, O, OH, OW]`:
    /// `∂W_g = Σₙ Gₙ,g · cols_g(xₙ)ᵀ`, summed per task of images, then over the tasks in
    /// order.
    pub(crate) fn weight_grad<T: Element>(&self, x: &[T], gy: &[T]) -> Vec<T> {
        let [_, dw, _] = self.backward(x, &[], GradIn::Plain(gy), [false, true, false]);
        dw.unwrap_or_default()
    }

    /// `∂b [O]` for `gy = ∂L/∂y [N, O, OH, OW]`: `∂b[o] = Σₙ Σ_p gy[n, o, p]`, each image's
    /// row summed, the images summed per task and the tasks in order (the order
    /// [`Conv::backward`] sums in, whatever it computes alongside).
    pub(crate) fn bias_grad<T: Element>(&self, gy: &[T]) -> Vec<T> {
        let [_, _, db] = self.backward(&[], &[], GradIn::Plain(gy), [false, false, true]);
        db.unwrap_or_default()
    }

    /// The gradients `[∂x, ∂W, ∂b]` for the output gradient `gy`, those asked for in `need`,
    /// in one pass over the images: each image's gradient rows are read once (and, for a
    /// convolution followed by ReLU, masked as they are read, or rebuilt from a pooling's
    /// gradient: [`GradIn`], into a scratch buffer that stays in cache) and serve all
    /// three. Every gradient is computed per image exactly as [`Conv::input_grad`],
    /// [`Conv::weight_grad`] and [`Conv::bias_grad`] compute it (they are this function),
    /// so fused and separate give the same bits. `x` is read only for ∂W and `w` only for
    /// ∂x.
    pub(crate) fn backward<T: Element>(
        &self,
        x: &[T],
        w: &[T],
        gy: GradIn<'_, T>,
        need: [bool; 3],
    ) -> [Option<Vec<T>>; 3] {
        let d = self.dims();
        let (l, og, kg, chw) = (d.l, d.og, d.kg, d.chw);
        let (ol, hw) = (self.o * l, self.g.h * self.g.w);
        let [need_x, need_w, need_b] = need;
        // Per task: its sum of ∂Wᵀ (one [kg, O/groups] block per group), then of ∂b.
        let wlen = if need_w { d.r * og } else { 0 };
        let part = (wlen + if need_b { self.o } else { 0 }).max(1);
        // Zeroed by each task (on its own thread, where the sums will be made).
        let mut partials = buffer_cache::vec_scratch(d.tasks * part);
        let task = |t: usize, dx: &mut [MaybeUninit<T>], acc: &mut [T]| {
            acc.fill(T::zero());
            let (acc_w, acc_b) = acc.split_at_mut(wlen);
            // Scratch each image overwrites before reading: im2col or the GEMM writes every
            // cell of cols, the GEMM wt, the mask `masked`, and img is zeroed per image.
            let mut cols = buffer_cache::vec_scratch(d.r * l);
            let mut wt = buffer_cache::vec_scratch(if need_w { kg * og } else { 0 });
            let mut masked = buffer_cache::vec_scratch(if gy.is_plain() { 0 } else { ol });
            let mut img = buffer_cache::vec_scratch(if need_x { chw } else { 0 });
            let mut dx = dx.chunks_mut(chw.max(1));
            for n in t * d.per..((t + 1) * d.per).min(self.g.n) {
                let gn = gy.image(n, ol, &mut masked);
                if need_b && l > 0 {
                    for (a, row) in acc_b.iter_mut().zip(gn.chunks_exact(l)) {
                        *a += fold_lanes(row, &|a, b| a + b);
                    }
                }
                if need_w {
                    im2col_into(&x[n * chw..][..chw], &d.g1, &mut cols);
                    for gi in 0..self.groups {
                        // ∂W_gᵀ += cols_g [kg, L] · Gₙ,gᵀ [L, O/groups]: the GEMM gathers the
                        // smaller operand (G) for its transpose.
                        let gg = &gn[gi * og * l..][..og * l];
                        matmul_into(&cols[gi * kg * l..][..kg * l], gg, &mut wt, kg, l, og, false, true);
                        let acc = &mut acc_w[gi * kg * og..][..kg * og];
                        acc.iter_mut().zip(&wt).for_each(|(a, &v)| *a += v);
                    }
                }
                if need_x {
                    for gi in 0..self.groups {
                        // cols_g [kg, L] = W_gᵀ · Gₙ,g, then added back onto the image's cells.
                        let (wg, gg) = (&w[gi * og * kg..][..og * kg], &gn[gi * og * l..][..og * l]);
                        matmul_into(wg, gg, &mut cols[gi * kg * l..][..kg * l], kg, og, l, true, false);
                    }
                    img.fill(T::zero());
                    for (c, plane) in img.chunks_exact_mut(hw).enumerate() {
                        col2im_plane(&cols, &d.g1, c, plane);
                    }
                    let dst = dx.next().expect("one ∂x piece per image of the task");
                    dst.iter_mut().zip(&img).for_each(|(d, &v)| _ = d.write(v));
                }
            }
            for v in [cols, wt, masked, img] {
                buffer_cache::recycle(v);
            }
        };
        let dx = if need_x && d.per * chw > 0 {
            fill_chunks_with_on(self.g.n * chw, d.per * chw, &mut partials, part, d.parallel, task)
        } else {
            if d.parallel {
                partials
                    .par_chunks_mut(part)
                    .enumerate()
                    .for_each(|(t, p)| task(t, &mut [], p));
            } else {
                partials
                    .chunks_mut(part)
                    .enumerate()
                    .for_each(|(t, p)| task(t, &mut [], p));
            }
            Vec::new()
        };
        // The tasks' sums added in task order, element by element (split over columns on
        // the pool: the same order, so the same bits).
        let mut total = vec![T::zero(); part];
        let add = |c: usize, dst: &mut [T]| {
            for p in partials.chunks_exact(part) {
                dst.iter_mut().zip(&p[c * SUM_COLS..]).for_each(|(a, &v)| *a += v);
            }
        };
        if d.parallel {
            total
                .par_chunks_mut(SUM_COLS)
                .enumerate()
                .for_each(|(c, dst)| add(c, dst));
        } else {
            total.chunks_mut(SUM_COLS).enumerate().for_each(|(c, dst)| add(c, dst));
        }
        buffer_cache::recycle(partials);
        let dw = need_w.then(|| {
            // [groups, kg, O/groups] → [groups, O/groups, kg] = [O, C/groups, kh, kw].
            let mut gw = vec![T::zero(); d.r * og];
            for gi in 0..self.groups {
                let (src, dst) = (&total[gi * kg * og..][..kg * og], &mut gw[gi * og * kg..][..og * kg]);
                for (k, row) in src.chunks_exact(og.max(1)).enumerate() {
                    for (oi, &v) in row.iter().enumerate() {
                        dst[oi * kg + k] = v;
                    }
                }
            }
            gw
        });
        let db = need_b.then(|| total[wlen..][..self.o].to_vec());
        [need_x.then_some(dx), dw, db]
    }
}

/// The output gradient [`Conv::backward`] reads, image by image.
pub(crate) enum GradIn<'a, T> {
    /// `∂L/∂y [N, O, OH, OW]` itself.
    Plain(&'a [T]),
    /// The gradient of `relu(y)`, masked by ReLU's output `out`: `∂y = g` where `out > 0`,
    /// else 0.
    Relu { g: &'a [T], out: &'a [T] },
    /// The gradient `gp [N, O, OH', OW']` of `max_pool(relu(y))` with `pool` the pooling's
    /// geometry over `y`: each window's gradient at its maximum `args`, where the window's
    /// value `vals` is > 0 (ReLU's mask, read at the maximum), 0 elsewhere
    /// ([`pool::unpool_relu_plane`]).
    Pooled {
        gp: &'a [T],
        vals: &'a [T],
        args: &'a [u32],
        pool: Geometry,
    },
}

impl<T: Element> GradIn<'_, T> {
    fn is_plain(&self) -> bool {
        matches!(self, GradIn::Plain(_))
    }

    /// Image `n`'s gradient `[O, OH·OW]` (`ol` cells), in `scratch` unless it is `Plain`.
    fn image<'s>(&'s self, n: usize, ol: usize, scratch: &'s mut [T]) -> &'s [T] {
        match *self {
            GradIn::Plain(g) => &g[n * ol..][..ol],
            GradIn::Relu { g, out } => {
                let pairs = scratch
                    .iter_mut()
                    .zip(g[n * ol..][..ol].iter().zip(&out[n * ol..][..ol]));
                pairs.for_each(|(m, (&g, &v))| *m = if v > T::zero() { g } else { T::zero() });
                scratch
            }
            GradIn::Pooled { gp, vals, args, pool } => {
                let (pl, hw) = (pool.oh * pool.ow, pool.h * pool.w);
                scratch.fill(T::zero());
                for (c, plane) in scratch.chunks_exact_mut(hw.max(1)).enumerate() {
                    let at = (n * pool.c + c) * pl;
                    let (g, v, k) = (&gp[at..][..pl], &vals[at..][..pl], &args[at..][..pl]);
                    pool::unpool_relu_plane(g, v, k, plane);
                }
                scratch
            }
        }
    }
}

/// `max(v, 0)` with NaN kept, as `Tensor::relu`.
#[inline(always)]
pub(super) fn relu_of<T: Element>(v: T) -> T {
    if v > T::zero() || v.is_nan() {
        v
    } else {
        T::zero()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::kernels::conv::{col2im, im2col};
    use crate::kernels::conv_windows::WINDOWS_ALWAYS;
    use crate::kernels::gemm::packed_rows;

    /// Runs `f` once on each forward path: im2col, and (where the packed kernel exists)
    /// windows.
    pub(in crate::kernels) fn on_both_paths(f: impl Fn()) {
        f();
        if packed_rows::<f64>().is_some() {
            WINDOWS_ALWAYS.set(true);
            f();
            WINDOWS_ALWAYS.set(false);
        }
    }

    /// The convolution from its definition, one output cell at a time.
    fn conv_naive(x: &[f64], w: &[f64], b: &[f64], c: &Conv) -> Vec<f64> {
        let g = &c.g;
        let (cg, og) = (g.c / c.groups, c.o / c.groups);
        let mut y = Vec::new();
        for n in 0..g.n {
            for o in 0..c.o {
                let gi = o / og;
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut s = b[o];
                        for ci in 0..cg {
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let yy = (oy * g.sh + i * g.dh) as isize - g.pt as isize;
                                    let xx = (ox * g.sw + j * g.dw) as isize - g.pl as isize;
                                    if (0..g.h as isize).contains(&yy) && (0..g.w as isize).contains(&xx) {
                                        let cc = gi * cg + ci;
                                        let xv = x[((n * g.c + cc) * g.h + yy as usize) * g.w + xx as usize];
                                        s += w[((o * cg + ci) * g.kh + i) * g.kw + j] * xv;
                                    }
                                }
                            }
                        }
                        y.push(s);
                    }
                }
            }
        }
        y
    }

    pub(in crate::kernels) fn cases() -> Vec<Conv> {
        let geo = |n, c, h, w, k: [usize; 2], s, d, p: [usize; 4]| {
            let [pt, pb, pl, pr] = p;
            Geometry {
                n,
                c,
                h,
                w,
                kh: k[0],
                kw: k[1],
                sh: s,
                sw: s,
                dh: d,
                dw: d,
                pt,
                pb,
                pl,
                pr,
                oh: (h + pt + pb - d * (k[0] - 1) - 1) / s + 1,
                ow: (w + pl + pr - d * (k[1] - 1) - 1) / s + 1,
            }
        };
        vec![
            // Big enough to run in parallel, with a batch that is not a multiple of the tasks.
            Conv {
                g: geo(37, 6, 20, 20, [3, 3], 1, 1, [0; 4]),
                o: 8,
                groups: 1,
            },
            Conv {
                g: geo(5, 4, 9, 11, [3, 2], 2, 1, [1, 2, 0, 1]),
                o: 6,
                groups: 2,
            },
            Conv {
                g: geo(3, 3, 8, 8, [2, 2], 1, 2, [2, 0, 1, 1]),
                o: 3,
                groups: 3,
            },
            Conv {
                g: geo(2, 1, 6, 7, [1, 1], 1, 1, [0; 4]),
                o: 4,
                groups: 1,
            },
            // Large enough per image for the windows path by size.
            Conv {
                g: geo(3, 16, 14, 15, [3, 3], 1, 1, [1, 0, 0, 2]),
                o: 32,
                groups: 1,
            },
        ]
    }

    pub(in crate::kernels) fn data(len: usize, seed: usize) -> Vec<f64> {
        // Small integers and halves: every product and sum below is exact in f64.
        (0..len).map(|i| ((i * 7 + seed * 3) % 11) as f64 / 2.0 - 2.5).collect()
    }

    #[test]
    fn forward_matches_the_definition() {
        on_both_paths(forward_is_the_definition);
    }

    fn forward_is_the_definition() {
        for c in cases() {
            let g = &c.g;
            assert_eq!(c.dims().parallel, g.n == 37, "{c:?}");
            let x = data(g.n * g.c * g.h * g.w, 1);
            let w = data(c.o * g.rows() / c.groups, 2);
            let b = data(c.o, 3);
            let want = conv_naive(&x, &w, &b, &c);
            assert_eq!(c.forward(&x, &w, Some(&b), false), want, "{c:?}");
            let relu: Vec<f64> = want.iter().map(|&v| v.max(0.0)).collect();
            assert_eq!(c.forward(&x, &w, Some(&b), true), relu, "{c:?}");
            let zero = vec![0.0; c.o];
            assert_eq!(c.forward(&x, &w, None, false), conv_naive(&x, &w, &zero, &c), "{c:?}");
        }
    }

    #[test]
    fn gradients_match_the_whole_batch_lowering() {
        // ∂x = col2im(Wᵀ·G) and ∂W = G·colsᵀ, computed here over the whole
        // batch's column matrix with plain loops, on values whose sums are exact.
        for c in cases() {
            let (g, (og, kg)) = (&c.g, (c.o / c.groups, c.g.rows() / c.groups));
            let (l, cols_n) = (g.oh * g.ow, g.cols());
            let x = data(g.n * g.c * g.h * g.w, 4);
            let w = data(c.o * kg, 5);
            let gy = data(g.n * c.o * l, 6);
            let cols = im2col(&x, g);
            // G as [O, N·L].
            let gt = |o: usize, q: usize| gy[((q / l) * c.o + o) * l + q % l];
            let mut dcols = vec![0.0; g.rows() * cols_n];
            let mut dw = vec![0.0; c.o * kg];
            for o in 0..c.o {
                let gi = o / og;
                for k in 0..kg {
                    let r = gi * kg + k;
                    for q in 0..cols_n {
                        dcols[r * cols_n + q] += w[o * kg + k] * gt(o, q);
                        dw[o * kg + k] += gt(o, q) * cols[r * cols_n + q];
                    }
                }
            }
            assert_eq!(c.input_grad(&w, &gy), col2im(&dcols, g), "{c:?}");
            assert_eq!(c.weight_grad(&x, &gy), dw, "{c:?}");
            let db: Vec<f64> = (0..c.o).map(|o| (0..cols_n).map(|q| gt(o, q)).sum()).collect();
            assert_eq!(c.bias_grad(&gy), db, "{c:?}");
        }
    }

    #[test]
    fn the_fused_pass_gives_the_separate_gradients_of_the_masked_gradient() {
        // Values whose sums round, so any change in the order of addition would show.
        for c in cases() {
            let (g, kg) = (&c.g, c.g.rows() / c.groups);
            let x: Vec<f64> = (0..g.n * g.c * g.h * g.w).map(|i| (i as f64 * 0.37).sin()).collect();
            let w: Vec<f64> = (0..c.o * kg).map(|i| (i as f64 * 0.61).cos()).collect();
            let gy: Vec<f64> = (0..g.n * c.o * g.oh * g.ow).map(|i| (i as f64 * 0.23).sin()).collect();
            let out: Vec<f64> = (0..gy.len()).map(|i| [1.5, 0.0, -0.0, 2.0, f64::NAN][i % 5]).collect();
            let masked: Vec<f64> = gy
                .iter()
                .zip(&out)
                .map(|(&g, &v)| if v > 0.0 { g } else { 0.0 })
                .collect();
            let want = [
                c.input_grad(&w, &masked),
                c.weight_grad(&x, &masked),
                c.bias_grad(&masked),
            ];
            let [dx, dw, db] = c.backward(&x, &w, GradIn::Relu { g: &gy, out: &out }, [true; 3]);
            assert_eq!([dx.unwrap(), dw.unwrap(), db.unwrap()], want, "{c:?}");
            // Any subset, unmasked.
            let [dx, dw, db] = c.backward(&x, &w, GradIn::Plain(&gy), [false, true, true]);
            assert!(dx.is_none());
            assert_eq!(
                (dw.unwrap(), db.unwrap()),
                (c.weight_grad(&x, &gy), c.bias_grad(&gy)),
                "{c:?}"
            );
        }
    }

    #[test]
    fn the_weight_and_bias_gradients_do_not_depend_on_the_thread_count() {
        let c = &cases()[0];
        let g = &c.g;
        // Values whose sums round, so a different order of addition would show.
        let x: Vec<f64> = (0..g.n * g.c * g.h * g.w).map(|i| (i as f64 * 0.37).sin()).collect();
        let gy: Vec<f64> = (0..g.n * c.o * g.oh * g.ow).map(|i| (i as f64 * 0.23).sin()).collect();
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| (c.weight_grad(&x, &gy), c.bias_grad(&gy)))
        };
        assert_eq!(run(1), run(3));
    }
}
