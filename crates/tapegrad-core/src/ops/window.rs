//! The window of a convolution or pooling over `[N, C, H, W]` ([`Window2d`]) and a
//! convolution's padding argument ([`Padding`]), as PyTorch states them; both are used
//! from [`crate::ops::conv`], where they are exported.

use crate::error::{Error, Result};
use crate::kernels::conv::Geometry;

/// A window sweep over the two spatial dims of `[N, C, H, W]`: kernel size, stride,
/// per-side padding and dilation, each `[height, width]` (padding `[[top, bottom],
/// [left, right]]`, zeros). What [`Tensor::im2col`](crate::Tensor::im2col) and
/// [`Tensor::col2im`](crate::Tensor::col2im) take.
///
/// Output size per dim, as in PyTorch: `⌊(H + p_before + p_after − d·(k − 1) − 1) / s⌋ + 1`.
///
/// ```
/// use tapegrad_core::ops::conv::Window2d;
/// let w = Window2d::new([3, 3]).stride([2, 2]).padding([[1, 1], [1, 1]]);
/// assert_eq!(w.output_size("conv2d", [28, 28])?, [14, 14]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window2d {
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Step between windows, per dim.
    pub stride: [usize; 2],
    /// Zero padding `[[top, bottom], [left, right]]`.
    pub padding: [[usize; 2]; 2],
    /// Spacing between kernel cells (1 = dense).
    pub dilation: [usize; 2],
}

impl Window2d {
    /// A `kernel` window with stride 1, no padding, dilation 1.
    pub fn new(kernel: [usize; 2]) -> Self {
        Window2d {
            kernel,
            stride: [1, 1],
            padding: [[0, 0], [0, 0]],
            dilation: [1, 1],
        }
    }

    /// With this stride.
    pub fn stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = stride;
        self
    }

    /// With this padding, `[[top, bottom], [left, right]]`.
    pub fn padding(mut self, padding: [[usize; 2]; 2]) -> Self {
        self.padding = padding;
        self
    }

    /// With this dilation.
    pub fn dilation(mut self, dilation: [usize; 2]) -> Self {
        self.dilation = dilation;
        self
    }

    /// The output's spatial size for an input of `hw`; errors, naming `op`, if a kernel,
    /// stride or dilation is 0 or the (dilated) kernel is larger than the padded input.
    pub fn output_size(&self, op: &'static str, hw: [usize; 2]) -> Result<[usize; 2]> {
        let mut out = [0; 2];
        for d in 0..2 {
            let (k, s, dil) = (self.kernel[d], self.stride[d], self.dilation[d]);
            if k == 0 || s == 0 || dil == 0 {
                return Err(Error::bad_value(
                    op,
                    format!(
                        "kernel {:?}, stride {:?} and dilation {:?} must be positive",
                        self.kernel, self.stride, self.dilation
                    ),
                ));
            }
            let padded = hw[d] + self.padding[d][0] + self.padding[d][1];
            let span = dil * (k - 1) + 1;
            if span > padded {
                return Err(Error::bad_shape(
                    op,
                    format!(
                        "kernel {:?} (dilation {:?}) is larger than the padded input: input {}×{}, padding {:?}",
                        self.kernel, self.dilation, hw[0], hw[1], self.padding
                    ),
                ));
            }
            out[d] = (padded - span) / s + 1;
        }
        Ok(out)
    }

    pub(crate) fn geometry(&self, op: &'static str, nchw: &[usize]) -> Result<Geometry> {
        let [oh, ow] = self.output_size(op, [nchw[2], nchw[3]])?;
        Ok(Geometry {
            n: nchw[0],
            c: nchw[1],
            h: nchw[2],
            w: nchw[3],
            kh: self.kernel[0],
            kw: self.kernel[1],
            sh: self.stride[0],
            sw: self.stride[1],
            dh: self.dilation[0],
            dw: self.dilation[1],
            pt: self.padding[0][0],
            pb: self.padding[0][1],
            pl: self.padding[1][0],
            pr: self.padding[1][1],
            oh,
            ow,
        })
    }
}

/// Padding of a convolution, as PyTorch's `padding` argument: numbers, `'valid'` (none)
/// or `'same'` (the output keeps the input's size; stride 1 only, and an odd total padding
/// puts the extra cell after, as PyTorch does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding (PyTorch's `'valid'`, Keras's default).
    Valid,
    /// Output size equals input size (PyTorch's `'same'`, needs stride 1).
    Same,
    /// `[height, width]` zeros on both sides of each dim (`conv1d` uses the second).
    Explicit([usize; 2]),
}

impl From<usize> for Padding {
    fn from(p: usize) -> Self {
        Padding::Explicit([p, p])
    }
}

impl From<[usize; 2]> for Padding {
    fn from(p: [usize; 2]) -> Self {
        Padding::Explicit(p)
    }
}

impl Padding {
    /// Per-side padding `[[top, bottom], [left, right]]` for a kernel and dilation.
    pub(crate) fn resolve(
        self,
        op: &'static str,
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<[[usize; 2]; 2]> {
        Ok(match self {
            Padding::Valid => [[0, 0], [0, 0]],
            Padding::Explicit([ph, pw]) => [[ph, ph], [pw, pw]],
            Padding::Same => {
                if stride != [1, 1] {
                    return Err(Error::bad_value(
                        op,
                        format!("padding 'same' needs stride 1 (as in PyTorch), got stride {stride:?}"),
                    ));
                }
                let side = |d: usize| {
                    let total = dilation[d] * kernel[d].saturating_sub(1);
                    [total / 2, total - total / 2]
                };
                [side(0), side(1)]
            }
        })
    }
}
