//! `conv2d_relu_max_pool2d`: a convolution, ReLU and max pooling as one op, the usual
//! block of a CNN. Its values and gradients are those of [`Tensor::conv2d_relu`] followed
//! by [`Tensor::max_pool2d`], bit for bit; what it saves is the full-resolution activation
//! between them, which is never stored: each image's convolution output is pooled while it
//! is in cache, and the backward rebuilds each image's gradient from the pooled one.

use crate::element::Element;
use crate::error::Result;
use crate::kernels::conv_gemm::{Conv, GradIn};
use crate::ops::conv::{conv_grads_plain, conv_grads_recorded, Padding};
use crate::ops::pool::{max_pool_geometry, unpool};
use crate::ops::unary::relu_rule;
use crate::ops::{record, OpKind};
use crate::shape::Shape;
use crate::tensor::Tensor;
use std::sync::Arc;

const OP: &str = "conv2d_relu_max_pool2d";

impl<T: Element> Tensor<T> {
    /// `max_pool2d(relu(conv2d(x, weight, bias, stride, padding, dilation, groups)), pool,
    /// pool_stride, pool_padding)` as one op:
    /// `y[n, o, p, q] = max_{i, j} relu(conv2d(x)[n, o, p·s₀ + i − pad₀, q·s₁ + j − pad₁])`.
    /// The arguments are those of [`Tensor::conv2d`] and then [`Tensor::max_pool2d`] (the
    /// pooling's over the convolution's output), with their errors, values and gradients
    /// (bit for bit), and ties resolved as PyTorch does (the first maximum in scan order).
    /// The difference is memory: the convolution's output is pooled image by image while it
    /// is in cache and is never stored, nor read back, nor is its gradient (for a 2×2
    /// pooling, a quarter of the traffic). `nn::Sequential` runs a
    /// `Conv2d` with ReLU followed by a `MaxPool2d` as this op.
    ///
    /// ∂/∂(x, W, b): the pooled gradient is masked where the window's maximum is not > 0
    /// (ReLU's rule, read at the maximum, where ReLU's output is the window's value),
    /// scattered to the maxima (`max_pool2d_backward`), and continues as conv2d's rule.
    ///
    /// ```
    /// use tapegrad_core::{ops::conv::Padding, Tensor};
    /// let x = Tensor::<f64>::from_vec((0..32).map(|i| (i as f64 * 0.7).sin()).collect(), [1, 2, 4, 4])?;
    /// let w = Tensor::<f64>::from_vec((0..18).map(|i| (i as f64 * 1.3).cos()).collect(), [1, 2, 3, 3])?;
    /// let y = x.conv2d_relu_max_pool2d(&w, None, [1, 1], Padding::Same, [1, 1], 1, [2, 2], None, [0, 0])?;
    /// let z = x.conv2d(&w, None, [1, 1], Padding::Same, [1, 1], 1)?.relu().max_pool2d([2, 2], None, [0, 0])?;
    /// assert_eq!(y.dims(), &[1, 1, 2, 2]);
    /// assert_eq!(y.to_vec(), z.to_vec());
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_relu_max_pool2d(
        &self,
        weight: &Tensor<T>,
        bias: Option<&Tensor<T>>,
        stride: [usize; 2],
        padding: impl Into<Padding>,
        dilation: [usize; 2],
        groups: usize,
        pool: [usize; 2],
        pool_stride: Option<[usize; 2]>,
        pool_padding: [usize; 2],
    ) -> Result<Tensor<T>> {
        let window = self.conv2d_args(OP, weight, bias, stride, padding.into(), dilation, groups)?;
        let g = window.geometry(OP, self.dims())?;
        let o = weight.dims()[0];
        let pg = max_pool_geometry(OP, &Shape::from([g.n, o, g.oh, g.ow]), pool, pool_stride, pool_padding)?;
        let out_shape = Shape::from([g.n, o, pg.oh, pg.ow]);
        crate::storage::ensure_alloc::<T>(OP, &out_shape)?;
        let conv = Conv { g, o, groups };
        let (vals, args) = conv.forward_pooled(self.data(), weight.data(), bias.map(Tensor::data), &pg);
        let out = Tensor::from_parts(vals, out_shape);
        let args = Arc::new(args);
        let has_bias = bias.is_some();
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Ok(record(OpKind::Conv2dReluMaxPool2d, &inputs, out, true, move |ctx| {
            let need = [ctx.needs(0), ctx.needs(1), has_bias && ctx.needs(2)];
            let pooled = ctx.output()?;
            if !ctx.create_graph() {
                // Each image's gradient rebuilt from the pooled one in the backward's pass:
                // the values of the ops below (scatter, mask, then conv2d's kernel).
                let gy = GradIn::Pooled {
                    gp: ctx.grad.data(),
                    vals: pooled.data(),
                    args: &args,
                    pool: pg,
                };
                return Ok(conv_grads_plain(ctx, &conv, gy, need, has_bias));
            }
            let gy = unpool(&relu_rule(ctx.grad, &pooled, true)?, args.clone(), pg);
            conv_grads_recorded(ctx, &gy, window, groups, need, has_bias)
        }))
    }
}
