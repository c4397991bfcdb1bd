//! Normalization layers: [`BatchNorm1d`], [`BatchNorm2d`] (running statistics as
//! buffers) and [`LayerNorm`], with PyTorch's defaults.

use crate::module::{Module, Param};
use tapegrad_core::ops::norm::RunningStats;
use tapegrad_core::{Element, Error, Result, Tensor};

/// The batch norm behind [`BatchNorm1d`] and [`BatchNorm2d`].
#[derive(Clone, Debug)]
struct BatchNorm<T: Element> {
    name: &'static str,
    ndims: &'static [usize],
    weight: Param<T>,
    bias: Param<T>,
    running_mean: Tensor<T>,
    running_var: Tensor<T>,
    momentum: f64,
    eps: f64,
    training: bool,
}

impl<T: Element> BatchNorm<T> {
    fn new(name: &'static str, ndims: &'static [usize], features: usize) -> Result<Self> {
        if features == 0 {
            return Err(Error::bad_value(name, "needs at least one feature"));
        }
        Ok(BatchNorm {
            name,
            ndims,
            weight: Param::new(Tensor::ones([features])?),
            bias: Param::new(Tensor::zeros([features])?),
            running_mean: Tensor::zeros([features])?,
            running_var: Tensor::ones([features])?,
            momentum: 0.1,
            eps: 1e-5,
            training: true,
        })
    }

    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        if !self.ndims.contains(&x.ndim()) {
            return Err(Error::bad_shape(
                self.name,
                format!("needs an input of {:?} dims, got {}", self.ndims, x.shape()),
            ));
        }
        let running = RunningStats {
            mean: &mut self.running_mean,
            var: &mut self.running_var,
        };
        x.batch_norm(
            Some(running),
            Some(self.weight.tensor()),
            Some(self.bias.tensor()),
            self.training,
            T::from_f64_lossy(self.momentum),
            T::from_f64_lossy(self.eps),
        )
    }
}

macro_rules! batch_norm_layer {
    ($(#[$doc:meta])* $name:ident, $ndims:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name<T: Element>(BatchNorm<T>);

        impl<T: Element> $name<T> {
            /// A batch norm over `features` channels with PyTorch's defaults: `eps = 1e-5`,
            /// `momentum = 0.1`, weight 1, bias 0, running mean 0 and variance 1, training
            /// mode. Errors if `features` is 0.
            pub fn new(features: usize) -> Result<Self> {
                Ok($name(BatchNorm::new(stringify!($name), $ndims, features)?))
            }

            /// With this momentum (PyTorch's convention: the weight of the new batch).
            pub fn with_momentum(mut self, momentum: f64) -> Self {
                self.0.momentum = momentum;
                self
            }

            /// With this ε.
            pub fn with_eps(mut self, eps: f64) -> Self {
                self.0.eps = eps;
                self
            }

            /// The running mean `[C]`.
            pub fn running_mean(&self) -> &Tensor<T> {
                &self.0.running_mean
            }

            /// The running (unbiased) variance `[C]`.
            pub fn running_var(&self) -> &Tensor<T> {
                &self.0.running_var
            }
        }

        impl<T: Element> Module<T> for $name<T> {
            fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
                self.0.forward(x)
            }

            fn params(&self) -> Vec<(String, &Param<T>)> {
                vec![("weight".into(), &self.0.weight), ("bias".into(), &self.0.bias)]
            }

            fn params_mut(&mut self) -> Vec<(String, &mut Param<T>)> {
                vec![("weight".into(), &mut self.0.weight), ("bias".into(), &mut self.0.bias)]
            }

            fn buffers(&self) -> Vec<(String, &Tensor<T>)> {
                vec![("running_mean".into(), &self.0.running_mean), ("running_var".into(), &self.0.running_var)]
            }

            fn buffers_mut(&mut self) -> Vec<(String, &mut Tensor<T>)> {
                vec![
                    ("running_mean".into(), &mut self.0.running_mean),
                    ("running_var".into(), &mut self.0.running_var),
                ]
            }

            fn train(&mut self, on: bool) {
                self.0.training = on;
            }

            fn is_training(&self) -> bool {
                self.0.training
            }

            fn describe(&self) -> String {
                format!("{}({})", stringify!($name), self.0.running_mean.numel())
            }
        }
    };
}

batch_norm_layer!(
    /// Batch normalization of `[N, C]` or `[N, C, L]` per channel, as `torch.nn.BatchNorm1d`
    /// (see [`Tensor::batch_norm`]): training normalizes with the batch statistics and
    /// updates the running ones; evaluation uses the running ones. The running statistics
    /// are [buffers](Module::buffers) (`running_mean`, `running_var`): saved in checkpoints,
    /// never trained. PyTorch's `num_batches_tracked` is not kept (it only matters for
    /// `momentum=None`).
    ///
    /// ```
    /// use tapegrad_core::Tensor;
    /// use tapegrad_nn::{BatchNorm1d, Module};
    /// let mut bn = BatchNorm1d::<f64>::new(2)?;
    /// let x = Tensor::from_vec(vec![1., 10., 3., 30.], [2, 2])?;
    /// assert_eq!(bn.forward(&x)?.to_vec().iter().map(|v| v.round()).collect::<Vec<_>>(), vec![-1., -1., 1., 1.]);
    /// assert_eq!(bn.running_mean().to_vec(), vec![0.2, 2.0]);
    /// let names: Vec<String> = bn.state_dict().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["weight", "bias", "running_mean", "running_var"]);
    /// bn.eval();
    /// assert!(bn.forward(&Tensor::ones([1, 2])?).is_ok()); // one sample is fine in evaluation
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    BatchNorm1d,
    &[2, 3]
);

batch_norm_layer!(
    /// Batch normalization of `[N, C, H, W]` per channel, as `torch.nn.BatchNorm2d`; see
    /// [`BatchNorm1d`] for the modes and buffers.
    ///
    /// ```
    /// use tapegrad_core::Tensor;
    /// use tapegrad_nn::{BatchNorm2d, Module};
    /// let mut bn = BatchNorm2d::<f32>::new(3)?;
    /// assert_eq!(bn.forward(&Tensor::ones([2, 3, 4, 4])?)?.dims(), &[2, 3, 4, 4]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    BatchNorm2d,
    &[4]
);

/// Layer normalization over the trailing `normalized_shape`, as `torch.nn.LayerNorm`
/// (see [`Tensor::layer_norm`]): weight 1 and bias 0 of that shape, `eps = 1e-5`
/// (PyTorch's; Keras's `LayerNormalization` uses 1e-3, see [`LayerNorm::with_eps`]).
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{LayerNorm, Module};
/// let mut ln = LayerNorm::<f64>::new(&[2])?.with_eps(0.0);
/// assert_eq!(ln.forward(&Tensor::from_vec(vec![1., 3.], [1, 2])?)?.to_vec(), vec![-1., 1.]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct LayerNorm<T: Element> {
    shape: Vec<usize>,
    weight: Param<T>,
    bias: Param<T>,
    eps: f64,
}

impl<T: Element> LayerNorm<T> {
    /// Normalizes over the trailing dims `normalized_shape`. Errors if it is empty or has a 0.
    pub fn new(normalized_shape: &[usize]) -> Result<Self> {
        if normalized_shape.is_empty() || normalized_shape.contains(&0) {
            return Err(Error::bad_value(
                "LayerNorm",
                format!("needs a non-empty normalized_shape of positive dims, got {normalized_shape:?}"),
            ));
        }
        Ok(LayerNorm {
            shape: normalized_shape.to_vec(),
            weight: Param::new(Tensor::ones(normalized_shape.to_vec())?),
            bias: Param::new(Tensor::zeros(normalized_shape.to_vec())?),
            eps: 1e-5,
        })
    }

    /// With this ε.
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
}

impl<T: Element> Module<T> for LayerNorm<T> {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        x.layer_norm(
            &self.shape,
            Some(self.weight.tensor()),
            Some(self.bias.tensor()),
            T::from_f64_lossy(self.eps),
        )
    }

    fn params(&self) -> Vec<(String, &Param<T>)> {
        vec![("weight".into(), &self.weight), ("bias".into(), &self.bias)]
    }

    fn params_mut(&mut self) -> Vec<(String, &mut Param<T>)> {
        vec![("weight".into(), &mut self.weight), ("bias".into(), &mut self.bias)]
    }

    fn describe(&self) -> String {
        format!("LayerNorm({:?})", self.shape)
    }
}
