//! Convolution, lowered to the GEMM: `im2col` unrolls every kernel window of the input into
//! a column of one matrix, the kernel becomes a matrix with one row per output channel,
//! and their product is the convolution. `col2im` is im2col's transpose; each is the
//! other's gradient rule, so the pair closes under differentiation (second order works).
//!
//! `conv2d` itself lowers one image at a time (the crate's `kernels::conv_gemm`), and its
//! gradients are two more ops lowered the same way: `conv2d_input_grad` (the transposed
//! convolution) and `conv2d_weight_grad`. The three are bilinear, and each one's rule is
//! written in the other two, so the trio closes under differentiation too.

use crate::element::Element;
use crate::error::{Error, Result};
use crate::kernels::conv::{self, Geometry};
use crate::kernels::conv_gemm::{Conv, GradIn};
use crate::ops::record;
use crate::ops::unary::relu_rule;
use crate::ops::OpKind;
use crate::shape::Shape;
use crate::tape::{one, BackwardCtx, InputGrads};
use crate::tensor::Tensor;
use smallvec::smallvec;

pub use super::window::{Padding, Window2d};

impl<T: Element> Tensor<T> {
    /// Unrolls every window of `x [N, C, H, W]` into a column: the result is
    /// `[C·kh·kw, N·OH·OW]`, row `(c·kh + i)·kw + j`, column `(n·OH + oy)·OW + ox` holding
    /// `x[n, c, oy·sh + i·dh − p_top, ox·sw + j·dw − p_left]` (0 in the padding).
    /// This is `torch.nn.functional.unfold` with the batch folded into the columns (one
    /// GEMM for the whole batch). ∂/∂x: [`Tensor::col2im`] of the gradient.
    ///
    /// ```
    /// use tapegrad_core::{ops::conv::Window2d, Tensor};
    /// let x = Tensor::<f64>::arange(0.0, 9.0, 1.0)?.reshape([1, 1, 3, 3])?;
    /// let cols = x.im2col(&Window2d::new([2, 2]))?; // 4 windows of 4 cells
    /// assert_eq!(cols.dims(), &[4, 4]);
    /// assert_eq!(cols.to_vec()[..4], [0.0, 1.0, 3.0, 4.0]); // top-left cell of each window
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn im2col(&self, window: &Window2d) -> Result<Tensor<T>> {
        let g = window_geometry("im2col", window, self.shape())?;
        let shape = Shape::from([g.rows(), g.cols()]);
        crate::storage::ensure_alloc::<T>("im2col", &shape)?;
        let out = Tensor::from_parts(conv::im2col(self.data(), &g), shape);
        let (window, in_dims) = (*window, [g.n, g.c, g.h, g.w]);
        Ok(record(OpKind::Im2col, &[self], out, false, move |ctx| {
            Ok(one(ctx.grad.col2im(&window, in_dims)?))
        }))
    }

    /// The transpose of [`Tensor::im2col`] (`torch.nn.functional.fold` with the batch in
    /// the columns): a `[C·kh·kw, N·OH·OW]` column matrix summed back into `[N, C, H, W]`
    /// (`shape`), each entry added at the input cell it was read from.
    /// ∂/∂cols: [`Tensor::im2col`] of the gradient.
    ///
    /// ```
    /// use tapegrad_core::{ops::conv::Window2d, Tensor};
    /// let w = Window2d::new([2, 2]);
    /// let ones = Tensor::<f64>::ones([4, 4])?;
    /// // How many windows cover each cell of a 3×3 image.
    /// assert_eq!(ones.col2im(&w, [1, 1, 3, 3])?.to_vec(), vec![1., 2., 1., 2., 4., 2., 1., 2., 1.]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn col2im(&self, window: &Window2d, shape: [usize; 4]) -> Result<Tensor<T>> {
        let g = window.geometry("col2im", &shape)?;
        if self.dims() != [g.rows(), g.cols()] {
            return Err(Error::bad_shape(
                "col2im",
                format!(
                    "columns of shape {} do not match the windows of {shape:?} ([{}, {}] expected)",
                    self.shape(),
                    g.rows(),
                    g.cols()
                ),
            ));
        }
        let out_shape = Shape::from(shape);
        crate::storage::ensure_alloc::<T>("col2im", &out_shape)?;
        let out = Tensor::from_parts(conv::col2im(self.data(), &g), out_shape);
        let window = *window;
        Ok(record(OpKind::Col2im, &[self], out, false, move |ctx| {
            Ok(one(ctx.grad.im2col(&window)?))
        }))
    }

    /// 2-D convolution (a cross-correlation, no kernel flip), as
    /// `torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation, groups)`:
    /// x `[N, C, H, W]`, weight `[O, C/groups, kh, kw]`, bias `[O]`, result `[N, O, OH, OW]`,
    ///
    /// `y[n, o, p, q] = b[o] + Σ_{c, i, j} w[o, c, i, j] · x[n, g·C/groups + c, p·s₀ + i·d₀ − pad, q·s₁ + j·d₁ − pad]`
    ///
    /// where `g` is `o`'s group. Computed one image at a time, images in parallel: per
    /// image and group one GEMM of the image's windows `[OH·OW, C/groups·kh·kw]` by
    /// `W_gᵀ`, the windows packed for the GEMM straight from the image (no column matrix is
    /// laid out; small products, and CPUs without our GEMM kernels, use
    /// `weight × im2col(xₙ)`), the bias added as the product is written out in NCHW. With
    /// `G` the output's gradient laid out as `[O, N·OH·OW]`, `∂x = col2im(Wᵀ·G)`,
    /// `∂W = G·im2col(x)ᵀ` and `∂b[o] = Σ_{n,p,q} ∂y[n, o, p, q]`: ops of their own,
    /// `conv2d_input_grad`, `conv2d_weight_grad` (PyTorch's `torch.nn.grad.conv2d_input` and
    /// `conv2d_weight`) and `conv2d_bias_grad`, computed per image, whose rules are each other
    /// and conv2d, so derivatives of every order work. When the backward pass is not recorded,
    /// the three are computed in one pass over each image's gradient (the same values).
    ///
    /// Errors, naming conv2d and the shapes, if x or the weight is not 4-D, channels or
    /// outputs are not divisible by `groups`, the weight's channels are not `C/groups`,
    /// the bias is not `[O]`, or the kernel is larger than the padded input.
    ///
    /// ```
    /// use tapegrad_core::{ops::conv::Padding, Tensor};
    /// let x = Tensor::<f64>::ones([1, 1, 4, 4])?;
    /// let w = Tensor::<f64>::ones([2, 1, 3, 3])?;
    /// let b = Tensor::<f64>::from_vec(vec![0.0, 1.0], [2])?;
    /// let y = x.conv2d(&w, Some(&b), [1, 1], Padding::Valid, [1, 1], 1)?;
    /// assert_eq!(y.dims(), &[1, 2, 2, 2]);
    /// assert_eq!(y.to_vec(), vec![9., 9., 9., 9., 10., 10., 10., 10.]);
    /// let same = x.conv2d(&w, None, [1, 1], Padding::Same, [1, 1], 1)?;
    /// assert_eq!(same.dims(), &[1, 2, 4, 4]);
    /// assert_eq!(same.to_vec()[0], 4.0); // a corner window sees 4 cells
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn conv2d(
        &self,
        weight: &Tensor<T>,
        bias: Option<&Tensor<T>>,
        stride: [usize; 2],
        padding: impl Into<Padding>,
        dilation: [usize; 2],
        groups: usize,
    ) -> Result<Tensor<T>> {
        let window = self.conv2d_args("conv2d", weight, bias, stride, padding.into(), dilation, groups)?;
        self.conv2d_window(weight, bias, window, groups, false)
    }

    /// `relu(conv2d(x, weight, bias, …))` as one op, the ReLU applied as the convolution's
    /// output is written (PyTorch's fused `ConvReLU2d`; what Keras's
    /// `Conv2D(activation="relu")` computes): the same arguments, errors and values as
    /// [`Tensor::conv2d`] followed by [`Tensor::relu`], without a second pass over the
    /// output. The rule zeroes the gradient where the output is 0 (ReLU's rule, read from
    /// the output: `y > 0` exactly where the convolution was), then continues as conv2d's;
    /// unrecorded, the mask is applied as each image's gradient is read by conv2d's one-pass
    /// backward, without a masked copy of the gradient.
    ///
    /// ```
    /// use tapegrad_core::{ops::conv::Padding, Tensor};
    /// let x = Tensor::<f64>::from_vec(vec![1., -2., 3., -4.], [1, 1, 2, 2])?;
    /// let w = Tensor::<f64>::ones([2, 1, 1, 1])?;
    /// let b = Tensor::<f64>::from_vec(vec![0.0, 2.0], [2])?;
    /// let y = x.conv2d_relu(&w, Some(&b), [1, 1], Padding::Valid, [1, 1], 1)?;
    /// assert_eq!(y.to_vec(), vec![1., 0., 3., 0., 3., 0., 5., 0.]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn conv2d_relu(
        &self,
        weight: &Tensor<T>,
        bias: Option<&Tensor<T>>,
        stride: [usize; 2],
        padding: impl Into<Padding>,
        dilation: [usize; 2],
        groups: usize,
    ) -> Result<Tensor<T>> {
        let window = self.conv2d_args("conv2d_relu", weight, bias, stride, padding.into(), dilation, groups)?;
        self.conv2d_window(weight, bias, window, groups, true)
    }

    /// conv2d's arguments checked (errors name `op`), and its window resolved.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv2d_args(
        &self,
        op: &'static str,
        weight: &Tensor<T>,
        bias: Option<&Tensor<T>>,
        stride: [usize; 2],
        padding: Padding,
        dilation: [usize; 2],
        groups: usize,
    ) -> Result<Window2d> {
        let (x, w) = (self, weight);
        if x.ndim() != 4 || w.ndim() != 4 {
            return Err(Error::mismatch(
                op,
                x.shape(),
                w.shape(),
                "input [N, C, H, W] and weight [O, C/groups, kh, kw]",
            ));
        }
        let c = x.dims()[1];
        let (o, cg, kh, kw) = (w.dims()[0], w.dims()[1], w.dims()[2], w.dims()[3]);
        if groups == 0 || c % groups != 0 || o % groups != 0 || cg * groups != c {
            return Err(Error::bad_shape(
                op,
                format!(
                    "input {} and weight {} with groups={groups}: channels ({c}) and outputs ({o}) must be \
                     divisible by groups, and the weight must have C/groups input channels",
                    x.shape(),
                    w.shape()
                ),
            ));
        }
        if let Some(b) = bias {
            if b.dims() != [o] {
                return Err(Error::mismatch(
                    op,
                    w.shape(),
                    b.shape(),
                    "a bias [O] for weight [O, …]",
                ));
            }
        }
        let kernel = [kh, kw];
        let pad = padding.resolve(op, kernel, stride, dilation)?;
        let window = Window2d {
            kernel,
            stride,
            padding: pad,
            dilation,
        };
        window.geometry(op, x.dims())?;
        Ok(window)
    }

    /// [`Tensor::conv2d`] (or, when `relu`, [`Tensor::conv2d_relu`]) over a resolved window, its arguments checked by the caller.
    /// The rule: `∂x = conv2d_input_grad(∂y, W)`, `∂W = conv2d_weight_grad(x, ∂y)`,
    /// `∂b = conv2d_bias_grad(∂y)` (`∂y` masked by `y > 0` first for conv2d_relu); when the
    /// backward pass is not recorded, the three in one pass over `∂y` (the same values).
    fn conv2d_window(
        &self,
        w: &Tensor<T>,
        bias: Option<&Tensor<T>>,
        window: Window2d,
        groups: usize,
        relu: bool,
    ) -> Result<Tensor<T>> {
        let op = if relu { "conv2d_relu" } else { "conv2d" };
        let g = window.geometry(op, self.dims())?;
        let o = w.dims()[0];
        let out_shape = Shape::from([g.n, o, g.oh, g.ow]);
        crate::storage::ensure_alloc::<T>(op, &out_shape)?;
        let conv = Conv { g, o, groups };
        let out = conv.forward(self.data(), w.data(), bias.map(Tensor::data), relu);
        let out = Tensor::from_parts(out, out_shape);
        let has_bias = bias.is_some();
        let mut inputs = vec![self, w];
        inputs.extend(bias);
        let kind = if relu { OpKind::Conv2dRelu } else { OpKind::Conv2d };
        Ok(record(kind, &inputs, out, relu, move |ctx| {
            let need = [ctx.needs(0), ctx.needs(1), has_bias && ctx.needs(2)];
            if !ctx.create_graph() {
                // One pass over the gradient for all three, ReLU's mask applied as it is
                // read: the same values as the ops below (Conv::backward is their kernel).
                let out = relu.then(|| ctx.output()).transpose()?;
                let gy = match &out {
                    Some(out) => GradIn::Relu {
                        g: ctx.grad.data(),
                        out: out.data(),
                    },
                    None => GradIn::Plain(ctx.grad.data()),
                };
                return Ok(conv_grads_plain(ctx, &conv, gy, need, has_bias));
            }
            let masked;
            let gy = if relu {
                masked = relu_rule(ctx.grad, &ctx.output()?, true)?;
                &masked
            } else {
                ctx.grad
            };
            conv_grads_recorded(ctx, gy, window, groups, need, has_bias)
        }))
    }

    /// The gradient of a convolution's bias: `self` is `∂y [N, O, OH, OW]`, the result
    /// `∂b[o] = Σ_{n,p,q} ∂y[n, o, p, q]`, summed image by image in the order of
    /// conv2d's fused backward pass (so the recorded and plain backward agree bit for bit).
    /// Linear in `∂y`: for a cotangent `k [O]`, `∂(∂y)[n, o, p, q] = k[o]`.
    fn conv2d_bias_grad(&self, window: Window2d, groups: usize, x_shape: &Shape) -> Result<Tensor<T>> {
        let g = window.geometry("conv2d", x_shape.dims())?;
        let o = self.dims()[1];
        let conv = Conv { g, o, groups };
        let out = Tensor::from_parts(conv.bias_grad(self.data()), Shape::from([o]));
        Ok(record(OpKind::Conv2dBiasGrad, &[self], out, false, move |ctx| {
            let gy = ctx.input(0);
            Ok(one(ctx.grad.reshape([1, o, 1, 1])?.broadcast_to(gy.shape())?))
        }))
    }

    /// The gradient of a convolution's input (`torch.nn.grad.conv2d_input`, the transposed
    /// convolution): `self` is `∂y [N, O, OH, OW]`, the result `∂x` of shape `x_shape`,
    /// `∂x[n] = col2im(W_gᵀ · ∂yₙ,g)` per image and group. Linear in `∂y` and in `W`, so
    /// for a cotangent `H` of `∂x`'s shape its rule is `∂(∂y) = conv2d(H, W)` and
    /// `∂W = conv2d_weight_grad(H, ∂y)`.
    fn conv2d_input_grad(&self, w: &Tensor<T>, window: Window2d, groups: usize, x_shape: &Shape) -> Result<Tensor<T>> {
        let g = window.geometry("conv2d", x_shape.dims())?;
        crate::storage::ensure_alloc::<T>("conv2d", x_shape)?;
        let conv = Conv {
            g,
            o: w.dims()[0],
            groups,
        };
        let out = Tensor::from_parts(conv.input_grad(w.data(), self.data()), x_shape.clone());
        Ok(record(OpKind::Conv2dInputGrad, &[self, w], out, false, move |ctx| {
            let (gy, w, h) = (ctx.input(0), ctx.input(1), ctx.grad);
            let dgy = ctx
                .needs(0)
                .then(|| h.conv2d_window(w, None, window, groups, false))
                .transpose()?;
            let dw = ctx
                .needs(1)
                .then(|| h.conv2d_weight_grad(gy, window, groups, w.shape()))
                .transpose()?;
            Ok(smallvec![dgy, dw])
        }))
    }

    /// The gradient of a convolution's weight (`torch.nn.grad.conv2d_weight`): `self` is
    /// the input `x`, `gy` is `∂y`, the result `∂W` of shape `w_shape`,
    /// `∂W_g = Σₙ ∂yₙ,g · im2col(xₙ)_gᵀ`. Bilinear in `x` and `∂y`, so for a cotangent `K`
    /// of the weight's shape its rule is `∂x = conv2d_input_grad(∂y, K)` and
    /// `∂(∂y) = conv2d(x, K)`.
    fn conv2d_weight_grad(
        &self,
        gy: &Tensor<T>,
        window: Window2d,
        groups: usize,
        w_shape: &Shape,
    ) -> Result<Tensor<T>> {
        let g = window.geometry("conv2d", self.dims())?;
        let conv = Conv {
            g,
            o: w_shape.dims()[0],
            groups,
        };
        let out = Tensor::from_parts(conv.weight_grad(self.data(), gy.data()), w_shape.clone());
        Ok(record(OpKind::Conv2dWeightGrad, &[self, gy], out, false, move |ctx| {
            let (x, gy, k) = (ctx.input(0), ctx.input(1), ctx.grad);
            let dx = ctx
                .needs(0)
                .then(|| gy.conv2d_input_grad(k, window, groups, x.shape()))
                .transpose()?;
            let dgy = ctx
                .needs(1)
                .then(|| x.conv2d_window(k, None, window, groups, false))
                .transpose()?;
            Ok(smallvec![dx, dgy])
        }))
    }

    /// 1-D convolution, as `torch.nn.functional.conv1d`: x `[N, C, L]`, weight
    /// `[O, C/groups, k]`, bias `[O]`, result `[N, O, L_out]` (conv2d over a height of 1).
    /// `padding` is a number, [`Padding::Valid`] or [`Padding::Same`]; an
    /// [`Padding::Explicit`] pair must have its height entry 0 or equal to its width entry.
    ///
    /// ```
    /// use tapegrad_core::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![1., 2., 3., 4.], [1, 1, 4])?;
    /// let w = Tensor::<f64>::from_vec(vec![1., -1.], [1, 1, 2])?;
    /// assert_eq!(x.conv1d(&w, None, 1, 0, 1, 1)?.to_vec(), vec![-1., -1., -1.]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn conv1d(
        &self,
        weight: &Tensor<T>,
        bias: Option<&Tensor<T>>,
        stride: usize,
        padding: impl Into<Padding>,
        dilation: usize,
        groups: usize,
    ) -> Result<Tensor<T>> {
        if self.ndim() != 3 || weight.ndim() != 3 {
            return Err(Error::mismatch(
                "conv1d",
                self.shape(),
                weight.shape(),
                "input [N, C, L] and weight [O, C/groups, k]",
            ));
        }
        let padding = match padding.into() {
            Padding::Explicit([a, b]) if a == 0 || a == b => Padding::Explicit([0, b]),
            Padding::Explicit(p) => return Err(Error::bad_value("conv1d", format!("one padding per side, got {p:?}"))),
            other => other,
        };
        let x = self.unsqueeze(2)?;
        let w = weight.unsqueeze(2)?;
        let y = x
            .conv2d(&w, bias, [1, stride], padding, [1, dilation], groups)
            .map_err(|e| rename(e, "conv1d"))?;
        y.squeeze(2)
    }
}

/// A convolution's input gradients `[∂x, ∂W, (∂b)]` (inputs `x, w, (b)` of `ctx`), those
/// in `need`, from the output gradient `gy` in one pass ([`Conv::backward`]), unrecorded.
pub(crate) fn conv_grads_plain<T: Element>(
    ctx: &BackwardCtx<'_, T>,
    conv: &Conv,
    gy: GradIn<'_, T>,
    need: [bool; 3],
    has_bias: bool,
) -> InputGrads<T> {
    let (x, w) = (ctx.input(0), ctx.input(1));
    let [gx, gw, gb] = conv.backward(x.data(), w.data(), gy, need);
    let mut grads: InputGrads<T> = smallvec![
        gx.map(|v| Tensor::from_parts(v, x.shape().clone())),
        gw.map(|v| Tensor::from_parts(v, w.shape().clone())),
    ];
    if has_bias {
        grads.push(gb.map(|v| Tensor::from_parts(v, Shape::from([conv.o]))));
    }
    grads
}

/// [`conv_grads_plain`]'s gradients as differentiable ops of the output gradient `gy`
/// (`conv2d_input_grad`, `conv2d_weight_grad`, `conv2d_bias_grad`).
pub(crate) fn conv_grads_recorded<T: Element>(
    ctx: &BackwardCtx<'_, T>,
    gy: &Tensor<T>,
    window: Window2d,
    groups: usize,
    need: [bool; 3],
    has_bias: bool,
) -> Result<InputGrads<T>> {
    let (x, w) = (ctx.input(0), ctx.input(1));
    let gx = need[0]
        .then(|| gy.conv2d_input_grad(w, window, groups, x.shape()))
        .transpose()?;
    let gw = need[1]
        .then(|| x.conv2d_weight_grad(gy, window, groups, w.shape()))
        .transpose()?;
    let mut grads: InputGrads<T> = smallvec![gx, gw];
    if has_bias {
        grads.push(
            need[2]
                .then(|| gy.conv2d_bias_grad(window, groups, x.shape()))
                .transpose()?,
        );
    }
    Ok(grads)
}

/// The geometry of `window` over a 4-D `shape`, or an error naming `op`.
fn window_geometry(op: &'static str, window: &Window2d, shape: &Shape) -> Result<Geometry> {
    if shape.ndim() != 4 {
        return Err(Error::bad_shape(
            op,
            format!("needs an input [N, C, H, W], got {shape}"),
        ));
    }
    window.geometry(op, shape.dims())
}

/// The error `e` reported under `op` (for ops that delegate to another).
pub(crate) fn rename(e: Error, op: &'static str) -> Error {
    match e {
        Error::BadShape { msg, .. } => Error::BadShape { op, msg },
        Error::BadValue { msg, .. } => Error::BadValue { op, msg },
        Error::ShapeMismatch { lhs, rhs, expected, .. } => Error::ShapeMismatch { op, lhs, rhs, expected },
        Error::IndexOutOfRange { index, size, .. } => Error::IndexOutOfRange { op, index, size },
        e => e,
    }
}
