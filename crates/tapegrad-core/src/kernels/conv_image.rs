//! One image of a convolution's forward, on either path: im2col and the GEMM, or (where
//! our GEMM kernel exists and the product is large enough) the windows packed straight from
//! the image ([`Conv::image_windows`]). [`Conv::forward`] and the fused
//! `conv2d_relu_max_pool2d` drive it image by image, each task on its own [`Scratch`].

use super::conv_gemm::{relu_of, Conv, Dims};
use crate::buffer_cache;
use crate::element::Element;
use crate::kernels::conv::im2col_into;
use crate::kernels::conv_windows::Windows;
use crate::kernels::fill::Slot;
use crate::kernels::gemm::matmul_into;

/// One call's forward, image by image (images in parallel, each on a task's scratch): what
/// every image shares is made once, here W_gᵀ for the windows path.
pub(super) struct Forward<'a, T: Element> {
    pub(super) conv: &'a Conv,
    pub(super) d: Dims,
    x: &'a [T],
    w: &'a [T],
    bias: Option<&'a [T]>,
    relu: bool,
    /// The windows path ([`Conv::image_windows`]) where it applies: its windows and `W_gᵀ`.
    win: Option<(Windows, Vec<T>)>,
}

/// A task's scratch for [`Forward::image`]: the column matrix and the product (im2col
/// path), or the padded image and the product (windows path).
pub(super) struct Scratch<T: Element> {
    pub(super) a: Vec<T>,
    pub(super) b: Vec<T>,
}

impl<T: Element> Scratch<T> {
    pub(super) fn recycle(self) {
        buffer_cache::recycle(self.a);
        buffer_cache::recycle(self.b);
    }
}

impl<'a, T: Element> Forward<'a, T> {
    pub(super) fn new(conv: &'a Conv, x: &'a [T], w: &'a [T], bias: Option<&'a [T]>, relu: bool) -> Self {
        let win = conv.windows::<T>().map(|win| (win, conv.weights_t(w)));
        Forward {
            conv,
            d: conv.dims(),
            x,
            w,
            bias,
            relu,
            win,
        }
    }

    /// Whether [`Forward::image_channels_last`] applies: the windows path
    /// ([`Conv::image_windows`]) with one group.
    pub(super) fn channels_last(&self) -> bool {
        self.win.is_some() && self.conv.groups == 1
    }

    pub(super) fn scratch(&self) -> Scratch<T> {
        let d = &self.d;
        match &self.win {
            Some((win, _)) => win.scratch(self.conv),
            // Overwritten before each read: im2col writes every cell, the GEMM every product.
            None => Scratch {
                a: buffer_cache::vec_scratch(d.r * d.l),
                b: buffer_cache::vec_scratch(d.og * d.l),
            },
        }
    }

    /// Image `n`'s output `[O, OH·OW]` into `out` (every cell written once).
    pub(super) fn image<S: Slot<T>>(&self, s: &mut Scratch<T>, n: usize, out: &mut [S]) {
        let (conv, d) = (self.conv, &self.d);
        let xn = &self.x[n * d.chw..][..d.chw];
        if let Some((win, wt)) = &self.win {
            return conv.image_windows(win, wt, s, xn, self.bias, self.relu, out);
        }
        let (l, og, kg) = (d.l, d.og, d.kg);
        let (cols, y) = (&mut s.a, &mut s.b);
        im2col_into(xn, &d.g1, cols);
        for gi in 0..conv.groups {
            let wg = &self.w[gi * og * kg..][..og * kg];
            matmul_into(wg, &cols[gi * kg * l..][..kg * l], y, og, kg, l, false, false);
            let rows = out[gi * og * l..][..og * l].chunks_exact_mut(l);
            for (oi, (dst, src)) in rows.zip(y.chunks_exact(l)).enumerate() {
                let pairs = dst.iter_mut().zip(src);
                match (self.bias.map(|b| b[gi * og + oi]), self.relu) {
                    (Some(b), false) => pairs.for_each(|(d, &v)| d.set(v + b)),
                    (Some(b), true) => pairs.for_each(|(d, &v)| d.set(relu_of(v + b))),
                    (None, false) => pairs.for_each(|(d, &v)| d.set(v)),
                    (None, true) => pairs.for_each(|(d, &v)| d.set(relu_of(v))),
                }
            }
        }
    }

    /// Where [`Forward::channels_last`]: image `n`'s convolution without bias, position-major,
    /// as the GEMM gives it: `y[(oy·rs + ox)·O + o]` is the output at `(o, oy, ox)` before
    /// bias (the row stride `rs` ≥ OW).
    pub(super) fn image_channels_last<'s>(&self, s: &'s mut Scratch<T>, n: usize) -> (&'s [T], usize) {
        let (conv, d) = (self.conv, &self.d);
        let (win, wt) = (self.win.as_ref())
            .filter(|_| conv.groups == 1)
            .expect("image_channels_last: the windows path with one group");
        win.pad(&conv.g, &self.x[n * d.chw..][..d.chw], &mut s.a);
        conv.product_windows(win, wt, s, 0);
        (&s.b, win.owp)
    }

    pub(super) fn recycle(self) {
        if let Some((_, wt)) = self.win {
            buffer_cache::recycle(wt);
        }
    }
}
