//! Pooling over the spatial dims of `[N, C, H, W]`, as `torch.nn.functional`'s
//! `max_pool2d`, `avg_pool2d` and `adaptive_avg_pool2d`. Max pooling is its own op: one
//! sweep finds each window's maximum and where it lies, and its rule scatters the gradient
//! to those places (`max_pool2d_backward`, whose own rule gathers there again, so second
//! order works). Average pooling is a mean over [`Tensor::im2col`]'s windows.

use crate::element::Element;
use crate::error::{Error, Result};
use crate::kernels::conv as kernel;
use crate::kernels::pool as pool_kernel;
use crate::ops::conv::Window2d;
use crate::ops::{one, record, OpKind};
use crate::shape::Shape;
use crate::tensor::Tensor;
use std::sync::Arc;

/// `x [N, C, H, W]` read at the positions `args` (flat `y·W + x` per plane) of the
/// windows `g` into `vals` (already computed by the caller), recorded as max_pool2d:
/// ∂/∂x scatters the gradient back to the positions.
fn pool_at<T: Element>(x: &Tensor<T>, args: Arc<Vec<u32>>, vals: Vec<T>, g: kernel::Geometry) -> Tensor<T> {
    let y = Tensor::from_parts(vals, Shape::from([g.n, g.c, g.oh, g.ow]));
    record(OpKind::MaxPool2d, &[x], y, false, move |ctx| {
        Ok(one(unpool(ctx.grad, args.clone(), g)))
    })
}

/// The gradient `grad [N, C, OH, OW]` of a max pooling added at its positions `args` into
/// zeros `[N, C, H, W]` (recorded as max_pool2d_backward: ∂/∂grad gathers at the positions).
pub(crate) fn unpool<T: Element>(grad: &Tensor<T>, args: Arc<Vec<u32>>, g: kernel::Geometry) -> Tensor<T> {
    let data = pool_kernel::scatter(grad.data(), &args, &g);
    let out = Tensor::from_parts(data, Shape::from([g.n, g.c, g.h, g.w]));
    record(OpKind::MaxPool2dBackward, &[grad], out, false, move |ctx| {
        let vals = pool_kernel::gather(ctx.grad.data(), &args, &g);
        Ok(one(pool_at(ctx.grad, args.clone(), vals, g)))
    })
}

/// The window of a pooling op: stride defaults to the kernel (PyTorch's `stride=None`),
/// and padding may be at most half the kernel (PyTorch's rule).
fn pool_window(
    op: &'static str,
    x: &Shape,
    kernel: [usize; 2],
    stride: Option<[usize; 2]>,
    padding: [usize; 2],
) -> Result<Window2d> {
    if x.ndim() != 4 {
        return Err(Error::bad_shape(op, format!("needs an input [N, C, H, W], got {x}")));
    }
    if (0..2).any(|d| 2 * padding[d] > kernel[d]) {
        return Err(Error::bad_value(
            op,
            format!("padding {padding:?} must be at most half the kernel {kernel:?} (as in PyTorch)"),
        ));
    }
    let window = Window2d::new(kernel)
        .stride(stride.unwrap_or(kernel))
        .padding([[padding[0], padding[0]], [padding[1], padding[1]]]);
    window.output_size(op, [x.dims()[2], x.dims()[3]])?;
    Ok(window)
}

/// The geometry of max pooling `x` (of shape `shape`, `[N, C, H, W]`) over `kernel`
/// windows, its arguments checked as [`Tensor::max_pool2d`] documents (errors name `op`).
pub(crate) fn max_pool_geometry(
    op: &'static str,
    shape: &Shape,
    kernel: [usize; 2],
    stride: Option<[usize; 2]>,
    padding: [usize; 2],
) -> Result<kernel::Geometry> {
    let window = pool_window(op, shape, kernel, stride, padding)?;
    let d = shape.dims();
    let (n, c, h, w) = (d[0], d[1], d[2], d[3]);
    let [oh, ow] = window.output_size(op, [h, w])?;
    if h * w > u32::MAX as usize {
        return Err(Error::bad_shape(
            op,
            format!("planes of 2³² cells or more are not supported, got {shape}"),
        ));
    }
    Ok(kernel::Geometry {
        n,
        c,
        h,
        w,
        kh: kernel[0],
        kw: kernel[1],
        sh: window.stride[0],
        sw: window.stride[1],
        dh: 1,
        dw: 1,
        pt: padding[0],
        pb: padding[0],
        pl: padding[1],
        pr: padding[1],
        oh,
        ow,
    })
}

impl<T: Element> Tensor<T> {
    /// The maximum of each `kernel` window of `x [N, C, H, W]`, as
    /// `torch.nn.functional.max_pool2d(x, kernel, stride, padding)` (dilation 1, floor
    /// mode): `y[n, c, p, q] = max_{i, j} x[n, c, p·s₀ + i − pad₀, q·s₁ + j − pad₁]`, padded
    /// cells counting as −∞. `stride: None` means the kernel size.
    ///
    /// ∂/∂x: each output's gradient goes to the one input cell that won its window: the
    /// first maximum in scan order, or a NaN (which propagates), exactly as PyTorch's CPU
    /// kernel chooses.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let x = Tensor::<f64>::from_vec(vec![1., 5., 2., 3., 4., 0., 7., 1., 2., 2., 9., 9., 2., 2., 9., 9.], [1, 1, 4, 4])?
    ///     .requires_grad();
    /// let y = x.max_pool2d([2, 2], None, [0, 0])?;
    /// assert_eq!(y.to_vec(), vec![5., 7., 2., 9.]);
    /// let g = y.sum_all().backward()?;
    /// // The tied windows send their gradient to their first maximum only.
    /// assert_eq!(g.wrt(&x)?.to_vec(), vec![0., 1., 0., 0., 0., 0., 1., 0., 1., 0., 1., 0., 0., 0., 0., 0.]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn max_pool2d(&self, kernel: [usize; 2], stride: Option<[usize; 2]>, padding: [usize; 2]) -> Result<Tensor<T>> {
        let g = max_pool_geometry("max_pool2d", self.shape(), kernel, stride, padding)?;
        let (vals, args) = pool_kernel::max_pool(self.data(), &g);
        Ok(pool_at(self, Arc::new(args), vals, g))
    }

    /// The mean of each `kernel` window of `x [N, C, H, W]`, as
    /// `torch.nn.functional.avg_pool2d(x, kernel, stride, padding)` with its defaults
    /// (`count_include_pad=True`: the divisor is always `kh·kw`, padded zeros included;
    /// floor mode). `stride: None` means the kernel size. ∂/∂x: each output's gradient
    /// spread evenly over its window.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let x = Tensor::<f64>::arange(0.0, 16.0, 1.0)?.reshape([1, 1, 4, 4])?;
    /// assert_eq!(x.avg_pool2d([2, 2], None, [0, 0])?.to_vec(), vec![2.5, 4.5, 10.5, 12.5]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn avg_pool2d(&self, kernel: [usize; 2], stride: Option<[usize; 2]>, padding: [usize; 2]) -> Result<Tensor<T>> {
        let window = pool_window("avg_pool2d", self.shape(), kernel, stride, padding)?;
        let d = self.dims();
        let (n, c, h, w) = (d[0], d[1], d[2], d[3]);
        let [oh, ow] = window.output_size("avg_pool2d", [h, w])?;
        // One channel per plane: the columns are [kh·kw, N·C·OH·OW], in output order.
        self.reshape([n * c, 1, h, w])?
            .im2col(&window)?
            .mean(0, false)?
            .reshape([n, c, oh, ow])
    }

    /// Average pooling to an `out` grid, as `torch.nn.functional.adaptive_avg_pool2d`:
    /// output cell `(p, q)` averages rows `⌊p·H/OH⌋ .. ⌈(p+1)·H/OH⌉` and the columns alike.
    /// `[1, 1]` is global average pooling (a mean over H and W). ∂/∂x: each cell's gradient
    /// spread over its region.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let x = Tensor::<f64>::arange(0.0, 8.0, 1.0)?.reshape([1, 2, 2, 2])?;
    /// assert_eq!(x.adaptive_avg_pool2d([1, 1])?.to_vec(), vec![1.5, 5.5]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn adaptive_avg_pool2d(&self, out: [usize; 2]) -> Result<Tensor<T>> {
        if self.ndim() != 4 || out.contains(&0) || self.dims()[2] == 0 || self.dims()[3] == 0 {
            return Err(Error::bad_shape(
                "adaptive_avg_pool2d",
                format!(
                    "needs an input [N, C, H, W] with H, W > 0 and an output size > 0, got input {} and output {out:?}",
                    self.shape()
                ),
            ));
        }
        let (h, w) = (self.dims()[2], self.dims()[3]);
        if out == [1, 1] {
            return self.mean([2, 3], true);
        }
        let range = |i: usize, o: usize, len: usize| (i * len / o, ((i + 1) * len).div_ceil(o));
        let mut rows = Vec::with_capacity(out[0]);
        for p in 0..out[0] {
            let (y0, y1) = range(p, out[0], h);
            let band = self.narrow(2, y0, y1 - y0)?;
            let mut cells = Vec::with_capacity(out[1]);
            for q in 0..out[1] {
                let (x0, x1) = range(q, out[1], w);
                cells.push(band.narrow(3, x0, x1 - x0)?.mean([2, 3], true)?);
            }
            rows.push(Tensor::concat(&cells.iter().collect::<Vec<_>>(), 3)?);
        }
        Tensor::concat(&rows.iter().collect::<Vec<_>>(), 2)
    }
}
