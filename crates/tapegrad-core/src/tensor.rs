//! The [`Tensor`] type: a contiguous row-major buffer, its [`Shape`], and (when tracked)
//! the tape node that produced it.

use crate::element::{c, Element};
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::storage::{ensure_alloc, Storage};
use crate::tape::Node;
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};
use triomphe::Arc;

/// An n-dimensional array of `f32` or `f64`, row-major and always contiguous.
///
/// Cloning is cheap (two reference counts): the buffer is shared and copied only when
/// written through [`Tensor::data_mut`] while shared (copy-on-write). A tensor is *tracked*
/// when it is a leaf made with [`Tensor::requires_grad`] or the result of an op with a tracked
/// input while gradients are enabled; ops on tracked tensors are recorded for
/// [`Tensor::backward`].
///
/// ```
/// use tapegrad_core::Tensor;
/// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0], [3])?.requires_grad();
/// let y = x.mul(&x)?.sum_all(); // y = Σ x²
/// let grads = y.backward()?;
/// assert_eq!(grads.wrt(&x)?.to_vec(), vec![2.0, 4.0, 6.0]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub struct Tensor<T: Element> {
    pub(crate) data: Storage<T>,
    pub(crate) shape: Shape,
    pub(crate) node: Option<Arc<Node<T>>>,
}

impl<T: Element> Clone for Tensor<T> {
    fn clone(&self) -> Self {
        Tensor {
            data: self.data.clone(),
            shape: self.shape.clone(),
            node: self.node.clone(),
        }
    }
}

/// A tracked tensor's last reference to its node hands the node to the tape's pool, which
/// unlinks the graph below it iteratively (a recursive drop of a long chain would overflow
/// the stack).
impl<T: Element> Drop for Tensor<T> {
    #[inline]
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            crate::tape::release(node);
        }
    }
}

impl<T: Element> std::fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl<T: Element> Tensor<T> {
    /// Internal constructor: the caller guarantees `data.len() == shape.numel()`.
    /// Takes the Vec's buffer without copying it (small tensors are held inline).
    #[inline]
    pub(crate) fn from_parts(data: Vec<T>, shape: Shape) -> Self {
        Self::from_storage(Storage::from_vec(data), shape)
    }

    /// Internal constructor over a buffer; the caller guarantees the length.
    #[inline]
    pub(crate) fn from_storage(data: Storage<T>, shape: Shape) -> Self {
        debug_assert_eq!(data.len(), shape.numel());
        Tensor {
            data,
            shape,
            node: None,
        }
    }

    /// A tensor of `shape` holding `data` in row-major order. The tensor takes `data`'s
    /// buffer: nothing is copied.
    ///
    /// Errors if `data.len()` is not the product of the dims.
    pub fn from_vec(data: Vec<T>, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        check_fills("from_vec", data.len(), &shape)?;
        Ok(Self::from_parts(data, shape))
    }

    /// Like [`Tensor::from_vec`], copying from a slice.
    pub fn from_slice(data: &[T], shape: impl Into<Shape>) -> Result<Self> {
        Self::from_vec(data.to_vec(), shape)
    }

    /// A 0-d tensor holding `v`.
    pub fn scalar(v: T) -> Self {
        Self::from_parts(vec![v], Shape::scalar())
    }

    /// A tensor of `shape` filled with `v`.
    ///
    /// Errors if the tensor is too large to allocate (like every constructor that takes a
    /// shape: an impossible shape is an error, never an abort).
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// assert_eq!(Tensor::<f32>::full([2], 7.0)?.to_vec(), vec![7.0, 7.0]);
    /// assert!(Tensor::<f32>::zeros([1 << 40, 1 << 40]).is_err());
    /// assert_eq!(Tensor::<f32>::zeros([1 << 40, 1 << 40, 0])?.numel(), 0);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn full(shape: impl Into<Shape>, v: T) -> Result<Self> {
        let shape = shape.into();
        ensure_alloc::<T>("full", &shape)?;
        Ok(Self::from_parts(
            crate::buffer_cache::vec_filled(shape.numel(), v),
            shape,
        ))
    }

    /// A tensor of zeros; see [`Tensor::full`].
    pub fn zeros(shape: impl Into<Shape>) -> Result<Self> {
        Self::full(shape, T::zero())
    }

    /// A tensor of ones; see [`Tensor::full`].
    pub fn ones(shape: impl Into<Shape>) -> Result<Self> {
        Self::full(shape, T::one())
    }

    /// Zeros with the shape of `self` (untracked).
    pub fn zeros_like(&self) -> Self {
        Self::from_parts(
            crate::buffer_cache::vec_filled(self.numel(), T::zero()),
            self.shape.clone(),
        )
    }

    /// Ones with the shape of `self` (untracked).
    pub fn ones_like(&self) -> Self {
        Self::from_parts(
            crate::buffer_cache::vec_filled(self.numel(), T::one()),
            self.shape.clone(),
        )
    }

    /// `[start, start+step, …]` up to but excluding `end`, like `numpy.arange` and
    /// `torch.arange`.
    ///
    /// Errors if `step` is zero or not finite, if `start` or `end` is not finite, or if
    /// `step` points away from `end` (as `torch.arange` does; `start == end` gives an empty
    /// tensor).
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// assert_eq!(Tensor::<f64>::arange(0.0, 1.0, 0.25)?.to_vec(), vec![0.0, 0.25, 0.5, 0.75]);
    /// assert!(Tensor::<f64>::arange(0.0, 10.0, -1.0).is_err());
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn arange(start: T, end: T, step: T) -> Result<Self> {
        if step == T::zero() || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::bad_value(
                "arange",
                format!("need finite start/end and a non-zero finite step, got start={start} end={end} step={step}"),
            ));
        }
        if (end - start) * step < T::zero() {
            return Err(Error::bad_value(
                "arange",
                format!("step={step} points away from end={end} (start={start}); the range would be empty"),
            ));
        }
        let n = ((end - start) / step).ceil().as_f64();
        // Bounded so that a huge range is an error, not an allocation failure.
        if n.is_nan() || n >= (1u64 << 40) as f64 {
            return Err(Error::bad_value(
                "arange",
                format!("start={start} end={end} step={step} would give {n} elements"),
            ));
        }
        let n = if n > 0.0 { n as usize } else { 0 };
        let shape = Shape::from([n]);
        ensure_alloc::<T>("arange", &shape)?;
        let data = (0..n).map(|i| start + step * c::<T>(i as f64)).collect();
        Ok(Self::from_parts(data, shape))
    }

    /// `steps` evenly spaced values from `start` to `end` inclusive, like `torch.linspace`.
    ///
    /// Errors if the tensor is too large to allocate.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// assert_eq!(Tensor::<f64>::linspace(0.0, 1.0, 3)?.to_vec(), vec![0.0, 0.5, 1.0]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn linspace(start: T, end: T, steps: usize) -> Result<Self> {
        let shape = Shape::from([steps]);
        ensure_alloc::<T>("linspace", &shape)?;
        let data = match steps {
            0 => vec![],
            1 => vec![start],
            _ => {
                let d = (end - start) / c::<T>((steps - 1) as f64);
                (0..steps)
                    .map(|i| {
                        if i + 1 == steps {
                            end
                        } else {
                            start + d * c::<T>(i as f64)
                        }
                    })
                    .collect()
            }
        };
        Ok(Self::from_parts(data, shape))
    }

    /// The `n × n` identity matrix, like `torch.eye`.
    ///
    /// Errors if `n × n` is too large to allocate.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// assert_eq!(Tensor::<f32>::eye(2)?.to_vec(), vec![1.0, 0.0, 0.0, 1.0]);
    /// assert!(Tensor::<f32>::eye(1 << 40).is_err());
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn eye(n: usize) -> Result<Self> {
        let mut t = Self::zeros([n, n]).map_err(|e| match e {
            Error::BadShape { msg, .. } => Error::bad_shape("eye", msg),
            e => e,
        })?;
        let data = t.data_mut();
        for i in 0..n {
            data[i * n + i] = T::one();
        }
        Ok(t)
    }

    /// Samples from U[low, high) with the caller's RNG (seed it for reproducible runs).
    ///
    /// Errors if `low ≥ high`, either is not finite, or the tensor is too large to allocate.
    pub fn rand_uniform<R: Rng + ?Sized>(shape: impl Into<Shape>, low: T, high: T, rng: &mut R) -> Result<Self> {
        let shape = shape.into();
        ensure_alloc::<T>("rand_uniform", &shape)?;
        let dist = Uniform::new(low, high)
            .map_err(|e| Error::bad_value("rand_uniform", format!("low={low} high={high}: {e}")))?;
        let data = (0..shape.numel()).map(|_| dist.sample(rng)).collect();
        Ok(Self::from_parts(data, shape))
    }

    /// Samples from N(mean, std²) with the caller's RNG.
    ///
    /// Errors if `mean` is not finite, `std` is negative or not finite (as `torch.normal`
    /// refuses a negative std), or the tensor is too large to allocate.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// use rand::{rngs::StdRng, SeedableRng};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// assert!(Tensor::<f32>::rand_normal([3], 0.0, -1.0, &mut rng).is_err());
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn rand_normal<R: Rng + ?Sized>(shape: impl Into<Shape>, mean: T, std: T, rng: &mut R) -> Result<Self> {
        let shape = shape.into();
        if !mean.is_finite() || !std.is_finite() || std < T::zero() {
            return Err(Error::bad_value(
                "rand_normal",
                format!("need a finite mean and a finite std ≥ 0, got mean={mean} std={std}"),
            ));
        }
        ensure_alloc::<T>("rand_normal", &shape)?;
        let dist = Normal::new(mean.as_f64(), std.as_f64())
            .map_err(|e| Error::bad_value("rand_normal", format!("mean={mean} std={std}: {e}")))?;
        let data = (0..shape.numel()).map(|_| c::<T>(dist.sample(rng))).collect();
        Ok(Self::from_parts(data, shape))
    }

    /// The shape.
    #[inline]
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dims as a slice (shorthand for `shape().dims()`).
    #[inline]
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// Number of dimensions.
    #[inline]
    pub fn ndim(&self) -> usize {
        self.shape.ndim()
    }

    /// Number of elements.
    #[inline]
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The elements in row-major order.
    #[inline]
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// Mutable access to the elements, copying the buffer first if it is shared
    /// (so a recorded graph that saved this tensor keeps the old values).
    ///
    /// This is how optimizers update parameters in place; it keeps the tensor's
    /// autograd identity, so gradients of later steps are still found under it.
    pub fn data_mut(&mut self) -> &mut [T] {
        self.data.make_mut()
    }

    /// The elements as a new `Vec`.
    pub fn to_vec(&self) -> Vec<T> {
        self.data.to_vec()
    }

    /// The one value of a single-element tensor.
    pub fn item(&self) -> Result<T> {
        if self.numel() != 1 {
            return Err(Error::bad_shape(
                "item",
                format!("needs exactly one element, the tensor has shape {}", self.shape),
            ));
        }
        Ok(self.data[0])
    }

    /// The element at a multi-index.
    pub fn get(&self, index: &[usize]) -> Result<T> {
        if index.len() != self.ndim() {
            return Err(Error::bad_shape(
                "get",
                format!("index of length {} for a tensor of shape {}", index.len(), self.shape),
            ));
        }
        let mut flat = 0;
        for ((&i, &d), s) in index.iter().zip(self.dims()).zip(self.shape.strides()) {
            if i >= d {
                return Err(Error::IndexOutOfRange {
                    op: "get",
                    index: i,
                    size: d,
                });
            }
            flat += i * s;
        }
        Ok(self.data[flat])
    }

    /// Converts to another element type (untracked).
    pub fn cast<U: Element>(&self) -> Tensor<U> {
        Tensor::from_parts(
            self.data.iter().map(|&v| U::from_f64_lossy(v.as_f64())).collect(),
            self.shape.clone(),
        )
    }

    /// A tracked leaf sharing this tensor's data: gradients of later results with respect
    /// to it are found in [`Gradients`](crate::Gradients) under this tensor (or a clone).
    /// Calling it on an already tracked tensor makes a *new* leaf, cut from the old graph.
    pub fn requires_grad(mut self) -> Self {
        self.node = Some(Node::leaf());
        self
    }

    /// Whether ops on this tensor are recorded for backward.
    #[inline]
    pub fn is_tracked(&self) -> bool {
        self.node.is_some()
    }

    /// Whether this is a tracked leaf (made by [`Tensor::requires_grad`]).
    pub fn is_leaf(&self) -> bool {
        self.node.as_ref().is_some_and(|n| n.is_leaf())
    }

    /// The same values, cut from the graph: nothing flows back through the result.
    pub fn detach(&self) -> Self {
        Tensor {
            data: self.data.clone(),
            shape: self.shape.clone(),
            node: None,
        }
    }

    /// A stable identity for tracked tensors (the tape node's id), `None` if untracked.
    pub fn node_id(&self) -> Option<u64> {
        self.node.as_ref().map(|n| n.id)
    }

    /// Whether every element is finite; errors naming `what` and the first bad value if not.
    pub fn check_finite(&self, what: &str) -> Result<()> {
        match self.data.iter().position(|v| !v.is_finite()) {
            None => Ok(()),
            Some(i) => Err(Error::bad_value(
                "check_finite",
                format!(
                    "{what}: element {i} of a tensor of shape {} is {}",
                    self.shape, self.data[i]
                ),
            )),
        }
    }

    /// Whether `self` and `other` have the same shape and elements within
    /// `|a − b| ≤ atol + rtol·|b|` (NaN never matches).
    pub fn allclose(&self, other: &Tensor<T>, rtol: f64, atol: f64) -> bool {
        self.shape == other.shape
            && self.data.iter().zip(other.data.iter()).all(|(&a, &b)| {
                let (a, b) = (a.as_f64(), b.as_f64());
                (a - b).abs() <= atol + rtol * b.abs()
            })
    }
}

/// Errors, naming `op`, unless `len` elements exactly fill `shape`.
fn check_fills(op: &'static str, len: usize, shape: &Shape) -> Result<()> {
    if len == shape.numel() {
        return Ok(());
    }
    Err(Error::bad_shape(
        op,
        format!("{len} elements do not fill shape {shape} ({} elements)", shape.numel()),
    ))
}
