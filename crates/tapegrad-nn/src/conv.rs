//! Convolution and pooling layers over `[N, C, H, W]` (PyTorch's layout), and
//! [`Reshape`]. Weights follow PyTorch's layout (`[O, C/groups, kh, kw]`) so its
//! state dicts load; initialisation follows Keras (glorot_uniform kernel, zero bias).

use crate::init::Init;
use crate::layers::Activation;
use crate::module::{Module, Param};
use rand::Rng;
use tapegrad_core::ops::conv::Padding;
use tapegrad_core::{Element, Error, Result, Tensor};

/// A 2-D convolution layer: `y = f(conv2d(x, W, b))` for `x [N, C, H, W]`, weight
/// `W [O, C/groups, kh, kw]` and bias `b [O]` (see [`Tensor::conv2d`] for the sum), with
/// an optional [`Activation`] `f` as Keras's `Conv2D(activation=…)`. With
/// [`Activation::Relu`] the two run as one op, [`Tensor::conv2d_relu`] (the same values).
///
/// [`Conv2d::new`] takes Keras's defaults: stride 1, `padding='valid'`, glorot_uniform
/// kernel (fans `C/groups·kh·kw` and `O·kh·kw`, as Keras computes them), zero bias.
/// The layout is PyTorch's (channels first), so `torch.nn.Conv2d` weights load as they are.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{Activation, Conv2d, Module};
/// let mut rng = StdRng::seed_from_u64(0);
/// let mut conv = Conv2d::<f32>::new(1, 32, [3, 3], &mut rng)?.with_activation(Activation::Relu);
/// let y = conv.forward(&Tensor::zeros([8, 1, 28, 28])?)?;
/// assert_eq!(y.dims(), &[8, 32, 26, 26]);
/// let names: Vec<String> = conv.parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["weight", "bias"]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Conv2d<T: Element> {
    weight: Param<T>,
    bias: Option<Param<T>>,
    stride: [usize; 2],
    padding: Padding,
    dilation: [usize; 2],
    groups: usize,
    activation: Activation,
}

impl<T: Element> Conv2d<T> {
    /// `in_channels → out_channels` with a `kernel` window and Keras's defaults (see the
    /// type's docs). Errors if a size is 0.
    pub fn new<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        rng: &mut R,
    ) -> Result<Self> {
        Self::with_groups(in_channels, out_channels, kernel, 1, rng)
    }

    /// Like [`Conv2d::new`] with `groups` (PyTorch's `groups`; `groups = in_channels` is a
    /// depthwise convolution). Errors if the channels are not divisible by `groups`.
    pub fn with_groups<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        groups: usize,
        rng: &mut R,
    ) -> Result<Self> {
        if in_channels == 0
            || out_channels == 0
            || kernel.contains(&0)
            || groups == 0
            || !in_channels.is_multiple_of(groups)
            || !out_channels.is_multiple_of(groups)
        {
            return Err(Error::bad_value(
                "Conv2d",
                format!(
                    "needs positive sizes and channels divisible by groups, got {in_channels} → {out_channels}, kernel {kernel:?}, groups {groups}"
                ),
            ));
        }
        let field = kernel[0] * kernel[1];
        let cg = in_channels / groups;
        let w = Init::GlorotUniform.sample(
            [out_channels, cg, kernel[0], kernel[1]],
            cg * field,
            out_channels * field,
            rng,
        )?;
        Ok(Conv2d {
            weight: Param::new(w),
            bias: Some(Param::new(Tensor::zeros([out_channels])?)),
            stride: [1, 1],
            padding: Padding::Valid,
            dilation: [1, 1],
            groups,
            activation: Activation::Linear,
        })
    }

    /// A layer with the given weight `[O, C/groups, kh, kw]` and optional bias `[O]`
    /// (e.g. from PyTorch); stride 1, no padding, `groups` as given.
    pub fn from_weights(weight: Tensor<T>, bias: Option<Tensor<T>>, groups: usize) -> Result<Self> {
        if weight.ndim() != 4 || groups == 0 || !weight.dims()[0].is_multiple_of(groups) {
            return Err(Error::bad_shape(
                "Conv2d::from_weights",
                format!(
                    "needs a weight [O, C/groups, kh, kw] with O divisible by groups={groups}, got {}",
                    weight.shape()
                ),
            ));
        }
        if let Some(b) = &bias {
            if b.dims() != [weight.dims()[0]] {
                return Err(Error::mismatch(
                    "Conv2d::from_weights",
                    weight.shape(),
                    b.shape(),
                    "a bias [O]",
                ));
            }
        }
        Ok(Conv2d {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
            stride: [1, 1],
            padding: Padding::Valid,
            dilation: [1, 1],
            groups,
            activation: Activation::Linear,
        })
    }

    /// With this stride.
    pub fn with_stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = stride;
        self
    }

    /// With this padding (a number, [`Padding::Same`] or [`Padding::Valid`]).
    pub fn with_padding(mut self, padding: impl Into<Padding>) -> Self {
        self.padding = padding.into();
        self
    }

    /// With this dilation.
    pub fn with_dilation(mut self, dilation: [usize; 2]) -> Self {
        self.dilation = dilation;
        self
    }

    /// With this activation after the convolution.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Drops the bias.
    pub fn without_bias(mut self) -> Self {
        self.bias = None;
        self
    }

    /// The weight `[O, C/groups, kh, kw]`.
    pub fn weight(&self) -> &Tensor<T> {
        self.weight.tensor()
    }

    /// The bias `[O]`, if any.
    pub fn bias(&self) -> Option<&Tensor<T>> {
        self.bias.as_ref().map(Param::tensor)
    }
}

impl<T: Element> Module<T> for Conv2d<T> {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let (w, b) = (self.weight.tensor(), self.bias.as_ref().map(Param::tensor));
        if matches!(self.activation, Activation::Relu) {
            // One op: the ReLU is applied as the convolution's output is written.
            return x.conv2d_relu(w, b, self.stride, self.padding, self.dilation, self.groups);
        }
        let y = x.conv2d(w, b, self.stride, self.padding, self.dilation, self.groups)?;
        self.activation.apply(&y)
    }

    /// With ReLU, [`Tensor::conv2d_relu_max_pool2d`]: the convolution's output is pooled
    /// image by image, never stored.
    fn forward_max_pooled(&mut self, x: &Tensor<T>, pool: &MaxPool2d) -> Option<Result<Tensor<T>>> {
        if !matches!(self.activation, Activation::Relu) {
            return None;
        }
        let (w, b) = (self.weight.tensor(), self.bias.as_ref().map(Param::tensor));
        let (s, p, d, g) = (self.stride, self.padding, self.dilation, self.groups);
        Some(x.conv2d_relu_max_pool2d(w, b, s, p, d, g, pool.kernel, pool.stride, pool.padding))
    }

    fn params(&self) -> Vec<(String, &Param<T>)> {
        let mut out = vec![("weight".to_string(), &self.weight)];
        out.extend(self.bias.as_ref().map(|b| ("bias".to_string(), b)));
        out
    }

    fn params_mut(&mut self) -> Vec<(String, &mut Param<T>)> {
        let mut out = vec![("weight".to_string(), &mut self.weight)];
        out.extend(self.bias.as_mut().map(|b| ("bias".to_string(), b)));
        out
    }

    fn describe(&self) -> String {
        let d = self.weight.tensor().dims();
        format!(
            "Conv2d({} → {}, {}×{}, stride {:?}, {:?}, {})",
            d[1] * self.groups,
            d[0],
            d[2],
            d[3],
            self.stride,
            self.padding,
            self.activation.name()
        )
    }
}

/// A 1-D convolution layer over `[N, C, L]`, weight `[O, C/groups, k]` (PyTorch's
/// `nn.Conv1d` layout), Keras's defaults as [`Conv2d`]. See [`Tensor::conv1d`].
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{Conv1d, Module};
/// let mut rng = StdRng::seed_from_u64(0);
/// let mut conv = Conv1d::<f64>::new(4, 8, 3, &mut rng)?.with_padding(1);
/// assert_eq!(conv.forward(&Tensor::zeros([2, 4, 10])?)?.dims(), &[2, 8, 10]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Conv1d<T: Element> {
    weight: Param<T>,
    bias: Option<Param<T>>,
    stride: usize,
    padding: Padding,
    dilation: usize,
    groups: usize,
}

impl<T: Element> Conv1d<T> {
    /// `in_channels → out_channels` with a kernel of `kernel` cells: stride 1, no padding,
    /// glorot_uniform kernel, zero bias. Errors if a size is 0.
    pub fn new<R: Rng + ?Sized>(in_channels: usize, out_channels: usize, kernel: usize, rng: &mut R) -> Result<Self> {
        if in_channels == 0 || out_channels == 0 || kernel == 0 {
            return Err(Error::bad_value(
                "Conv1d",
                format!("needs positive sizes, got {in_channels} → {out_channels}, kernel {kernel}"),
            ));
        }
        let w = Init::GlorotUniform.sample(
            [out_channels, in_channels, kernel],
            in_channels * kernel,
            out_channels * kernel,
            rng,
        )?;
        Ok(Conv1d {
            weight: Param::new(w),
            bias: Some(Param::new(Tensor::zeros([out_channels])?)),
            stride: 1,
            padding: Padding::Valid,
            dilation: 1,
            groups: 1,
        })
    }

    /// With this stride.
    pub fn with_stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// With this padding (a number, [`Padding::Same`] or [`Padding::Valid`]).
    pub fn with_padding(mut self, padding: impl Into<Padding>) -> Self {
        self.padding = padding.into();
        self
    }

    /// With this dilation.
    pub fn with_dilation(mut self, dilation: usize) -> Self {
        self.dilation = dilation;
        self
    }

    /// The weight `[O, C, k]`.
    pub fn weight(&self) -> &Tensor<T> {
        self.weight.tensor()
    }
}

impl<T: Element> Module<T> for Conv1d<T> {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        x.conv1d(
            self.weight.tensor(),
            self.bias.as_ref().map(Param::tensor),
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
    }

    fn params(&self) -> Vec<(String, &Param<T>)> {
        let mut out = vec![("weight".to_string(), &self.weight)];
        out.extend(self.bias.as_ref().map(|b| ("bias".to_string(), b)));
        out
    }

    fn params_mut(&mut self) -> Vec<(String, &mut Param<T>)> {
        let mut out = vec![("weight".to_string(), &mut self.weight)];
        out.extend(self.bias.as_mut().map(|b| ("bias".to_string(), b)));
        out
    }
}

/// Max pooling over `kernel` windows of `[N, C, H, W]`, as `torch.nn.MaxPool2d` and
/// Keras's `MaxPooling2D` (stride defaults to the kernel). See [`Tensor::max_pool2d`].
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{MaxPool2d, Module};
/// let y = MaxPool2d::new([2, 2]).forward(&Tensor::<f32>::zeros([1, 3, 26, 26])?)?;
/// assert_eq!(y.dims(), &[1, 3, 13, 13]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Window size.
    pub kernel: [usize; 2],
    /// Step (`None`: the kernel size).
    pub stride: Option<[usize; 2]>,
    /// Padding on each side (at most half the kernel).
    pub padding: [usize; 2],
}

impl MaxPool2d {
    /// Non-overlapping `kernel` windows, no padding.
    pub fn new(kernel: [usize; 2]) -> Self {
        MaxPool2d {
            kernel,
            stride: None,
            padding: [0, 0],
        }
    }
}

impl<T: Element> Module<T> for MaxPool2d {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        x.max_pool2d(self.kernel, self.stride, self.padding)
    }

    fn as_max_pool2d(&self) -> Option<MaxPool2d> {
        Some(*self)
    }

    fn describe(&self) -> String {
        format!("MaxPool2d({:?})", self.kernel)
    }
}

/// Average pooling over `kernel` windows of `[N, C, H, W]`, as `torch.nn.AvgPool2d`
/// (padded zeros counted). See [`Tensor::avg_pool2d`].
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{AvgPool2d, Module};
/// let y = AvgPool2d::new([2, 2]).forward(&Tensor::<f32>::ones([1, 1, 4, 4])?)?;
/// assert_eq!(y.to_vec(), vec![1.0; 4]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool2d {
    /// Window size.
    pub kernel: [usize; 2],
    /// Step (`None`: the kernel size).
    pub stride: Option<[usize; 2]>,
    /// Padding on each side (at most half the kernel).
    pub padding: [usize; 2],
}

impl AvgPool2d {
    /// Non-overlapping `kernel` windows, no padding.
    pub fn new(kernel: [usize; 2]) -> Self {
        AvgPool2d {
            kernel,
            stride: None,
            padding: [0, 0],
        }
    }
}

impl<T: Element> Module<T> for AvgPool2d {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        x.avg_pool2d(self.kernel, self.stride, self.padding)
    }

    fn describe(&self) -> String {
        format!("AvgPool2d({:?})", self.kernel)
    }
}

/// The mean over H and W: `[N, C, H, W] → [N, C]`, as Keras's `GlobalAveragePooling2D`
/// (PyTorch: `AdaptiveAvgPool2d(1)` then flatten).
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{GlobalAvgPool2d, Module};
/// let x = Tensor::<f64>::arange(0.0, 8.0, 1.0)?.reshape([1, 2, 2, 2])?;
/// assert_eq!(GlobalAvgPool2d.forward(&x)?.to_vec(), vec![1.5, 5.5]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalAvgPool2d;

impl<T: Element> Module<T> for GlobalAvgPool2d {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        if x.ndim() != 4 {
            return Err(Error::bad_shape(
                "GlobalAvgPool2d",
                format!("needs [N, C, H, W], got {}", x.shape()),
            ));
        }
        x.mean([2, 3], false)
    }
}

/// Reshapes each sample, keeping the batch dim: `[N, …] → [N, target…]`, as Keras's
/// `Reshape(target_shape)` (e.g. MNIST's `[N, 28, 28]` images to `[N, 1, 28, 28]` for a
/// convolution).
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{Module, Reshape};
/// let y = Reshape::new(&[1, 28, 28]).forward(&Tensor::<f32>::zeros([4, 28, 28])?)?;
/// assert_eq!(y.dims(), &[4, 1, 28, 28]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reshape {
    target: Vec<usize>,
}

impl Reshape {
    /// Each sample to `target`.
    pub fn new(target: &[usize]) -> Self {
        Reshape {
            target: target.to_vec(),
        }
    }
}

impl<T: Element> Module<T> for Reshape {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        if x.ndim() == 0 {
            return Err(Error::bad_shape("Reshape", "needs a batch dim, got a 0-d tensor"));
        }
        let mut dims = vec![x.dims()[0]];
        dims.extend_from_slice(&self.target);
        x.reshape(dims)
    }

    fn describe(&self) -> String {
        format!("Reshape({:?})", self.target)
    }
}
