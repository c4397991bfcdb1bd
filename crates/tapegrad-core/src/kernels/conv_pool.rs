//! A convolution, ReLU and max pooling as one pass per image: each image's convolution
//! output is computed into a scratch buffer that stays in cache and pooled from there, so
//! the full-resolution activation is never written to memory nor read back (for the MNIST
//! CNN's first layer, 11 MB per step written by the convolution, read by the pooling, and
//! again in the backward: the pooling's scattered gradient written, read with ReLU's
//! output). The backward rebuilds each image's gradient from the pooled one
//! ([`GradIn::Pooled`](super::conv_gemm::GradIn)).

use super::conv_gemm::Conv;
use super::conv_image::Forward;
use crate::buffer_cache;
use crate::element::Element;
use crate::kernels::conv::Geometry;
use crate::kernels::fill::fill_chunks_pair;
use crate::kernels::pool::{sweep_plane, sweep_relu_channels_last, PoolScratch};

impl Conv {
    /// `max_pool(relu(conv(x, w) + b))` with `pool` the pooling's geometry over the
    /// convolution's output `[N, O, OH, OW]`: the pooled values `[N, O, OH', OW']` and their
    /// positions (as [`max_pool`](super::pool::max_pool) gives them), the same values as the
    /// convolution followed by the pooling.
    pub(crate) fn forward_pooled<T: Element>(
        &self,
        x: &[T],
        w: &[T],
        bias: Option<&[T]>,
        pool: &Geometry,
    ) -> (Vec<T>, Vec<u32>) {
        let f = Forward::new(self, x, w, bias, true);
        let (l, pl) = (f.d.l, pool.oh * pool.ow);
        let (ol, opl) = (self.o * l, self.o * pl);
        if f.channels_last() {
            // The windows path's product is position-major: pooled across its channels at
            // once, so only the pooled values are transposed into NCHW (a quarter of the
            // output for a 2×2 pooling), not the whole output.
            let zeros = vec![T::zero(); if bias.is_none() { self.o } else { 0 }];
            let bias = bias.unwrap_or(&zeros);
            let out = fill_chunks_pair(self.g.n * opl, f.d.per * opl, f.d.parallel, |t, best, args| {
                let mut s = f.scratch();
                let (mut run_v, mut run_k) = (vec![T::zero(); pool.ow * self.o], vec![0u32; pool.ow * self.o]);
                for (i, (best, args)) in best.chunks_mut(opl).zip(args.chunks_mut(opl)).enumerate() {
                    let (y, rs) = f.image_channels_last(&mut s, t * f.d.per + i);
                    sweep_relu_channels_last(y, rs, bias, pool, best, args, &mut run_v, &mut run_k);
                }
                s.recycle();
            });
            f.recycle();
            return out;
        }
        let out = fill_chunks_pair(self.g.n * opl, f.d.per * opl, f.d.parallel, |t, best, args| {
            let (mut s, mut ps) = (f.scratch(), PoolScratch::new(pool));
            // Every cell is written by the image's forward before the sweep reads it.
            let mut y = buffer_cache::vec_scratch(ol);
            for (i, (best, args)) in best.chunks_mut(opl).zip(args.chunks_mut(opl)).enumerate() {
                f.image(&mut s, t * f.d.per + i, &mut y[..]);
                for (c, plane) in y.chunks_exact(l.max(1)).enumerate().take(self.o) {
                    sweep_plane(
                        plane,
                        pool,
                        &mut ps,
                        &mut best[c * pl..][..pl],
                        &mut args[c * pl..][..pl],
                    );
                }
            }
            s.recycle();
            buffer_cache::recycle(y);
        });
        f.recycle();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv_gemm::tests::{cases, data, on_both_paths};
    use crate::kernels::conv_gemm::{relu_of, GradIn};
    use crate::kernels::pool::{max_pool, scatter};

    /// Max pooling geometries over a `[n, o, h, w]` output: 2×2 (the usual), 3×3 windows
    /// at stride 2 (overlapping), and 2×2 padded by 1 (windows partly outside).
    fn pools(n: usize, o: usize, h: usize, w: usize) -> Vec<Geometry> {
        let geo = |k: usize, s: usize, p: usize| Geometry {
            n,
            c: o,
            h,
            w,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            dh: 1,
            dw: 1,
            pt: p,
            pb: p,
            pl: p,
            pr: p,
            oh: (h + 2 * p - k) / s + 1,
            ow: (w + 2 * p - k) / s + 1,
        };
        [geo(2, 2, 0), geo(3, 2, 0), geo(2, 2, 1)]
            .into_iter()
            .filter(|p| p.h + p.pt + p.pb >= p.kh && p.w + p.pl + p.pr >= p.kw)
            .collect()
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// For every case and pooling, with and without bias, on both forward paths: the fused
    /// forward's values (as bits, through `f64`, which holds every `f32` exactly) and positions
    /// are the convolution's then the pooling's.
    fn fused_forward_is_conv_then_pool<T: Element>(data: impl Fn(usize, usize) -> Vec<T>) {
        on_both_paths(|| {
            for c in cases() {
                let g = &c.g;
                let (x, w, b) = (
                    data(g.n * g.c * g.h * g.w, 1),
                    data(c.o * g.rows() / c.groups, 2),
                    data(c.o, 3),
                );
                for bias in [Some(&b[..]), None] {
                    let y = c.forward(&x, &w, bias, true);
                    for pool in pools(g.n, c.o, g.oh, g.ow) {
                        let (vals, args) = c.forward_pooled(&x, &w, bias, &pool);
                        let (want, want_args) = max_pool(&y, &pool);
                        let wide = |v: &[T]| bits(&v.iter().map(|x| x.as_f64()).collect::<Vec<_>>());
                        assert_eq!(wide(&vals), wide(&want), "{c:?} {pool:?}");
                        assert_eq!(args, want_args, "{c:?} {pool:?}");
                    }
                }
            }
        });
    }

    #[test]
    fn the_fused_forward_is_the_convolution_then_the_pooling() {
        // Exact sums in f64; in f32, values whose products and sums round.
        fused_forward_is_conv_then_pool::<f64>(data);
        fused_forward_is_conv_then_pool::<f32>(|len, seed| {
            (0..len)
                .map(|i| (i as f32 * (0.37 + 0.24 * seed as f32)).sin())
                .collect()
        });
    }

    #[test]
    fn the_pooled_gradient_is_the_scattered_gradient_masked_by_relu() {
        // Outputs with ties, zeros and NaN (through negative and NaN inputs to ReLU), and
        // gradients whose sums round, so a change in the order of addition would show.
        for c in cases() {
            let g = &c.g;
            let kg = g.rows() / c.groups;
            let x: Vec<f64> = (0..g.n * g.c * g.h * g.w).map(|i| (i as f64 * 0.37).sin()).collect();
            let w: Vec<f64> = (0..c.o * kg).map(|i| (i as f64 * 0.61).cos()).collect();
            let l = g.oh * g.ow;
            let y: Vec<f64> = (0..g.n * c.o * l)
                .map(|i| relu_of([1.5, 0.0, -0.0, 2.0, f64::NAN, 1.5, (i as f64).sin()][i % 7]))
                .collect();
            for pool in pools(g.n, c.o, g.oh, g.ow) {
                let (vals, args) = max_pool(&y, &pool);
                let gp: Vec<f64> = (0..vals.len()).map(|i| (i as f64 * 0.23).sin()).collect();
                let gy = scatter(&gp, &args, &pool);
                let want = c.backward(&x, &w, GradIn::Relu { g: &gy, out: &y }, [true; 3]);
                let pooled = GradIn::Pooled {
                    gp: &gp,
                    vals: &vals,
                    args: &args,
                    pool,
                };
                let got = c.backward(&x, &w, pooled, [true; 3]);
                for (got, want) in got.iter().zip(&want) {
                    assert_eq!(
                        bits(got.as_ref().unwrap()),
                        bits(want.as_ref().unwrap()),
                        "{c:?} {pool:?}"
                    );
                }
            }
        }
    }
}
