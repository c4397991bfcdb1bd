//! [`Sequential`]: a stack of layers applied in order.

use crate::module::{Module, Param, TorchParam};
use std::fmt;
use tapegrad_core::{Element, Result, Tensor};

/// A list of layers applied one after the other, like `keras.Sequential` and
/// `torch.nn.Sequential`. Parameters are named `{index}.{name}` by the layer's position
/// (counting parameter-free layers too, as PyTorch does): `0.weight`, `0.bias`, `2.weight`…
/// Nested Sequentials nest the names (`1.0.weight`). PyTorch's own names differ where a
/// [`Dense`](crate::Dense) has an activation folded in (two modules in PyTorch):
/// [`torch_params`](Module::torch_params) gives them, and
/// [`safetensors`](crate::safetensors) uses them for [`Layout::PyTorch`](crate::safetensors::Layout).
///
/// A layer followed by a [`MaxPool2d`](crate::MaxPool2d) runs as one fused op where the
/// layer has one ([`Module::forward_max_pooled`]: a [`Conv2d`](crate::Conv2d) with ReLU runs
/// as [`Tensor::conv2d_relu_max_pool2d`]), with the same values and gradients and without
/// storing the full-resolution activation between them.
///
/// [`train`](Module::train)/[`eval`](Module::eval) reach every layer. For inference,
/// evaluation mode inside [`no_grad`](tapegrad_core::no_grad) records nothing:
///
/// ```
/// use tapegrad_nn::{SeedableRng, StdRng};
/// use tapegrad_core::{no_grad, Tensor};
/// use tapegrad_nn::{Activation, Dense, Dropout, Module, Sequential};
/// let mut rng = StdRng::seed_from_u64(0);
/// let mut model = Sequential::<f32>::new()
///     .add(Dense::new(4, 16, &mut rng)?.with_activation(Activation::Relu))
///     .add(Dropout::new(0.2, 1)?)
///     .add(Dense::new(16, 3, &mut rng)?);
/// model.eval();
/// let y = no_grad(|| model.forward(&Tensor::ones([2, 4])?))?;
/// assert!(!y.is_tracked());
/// assert_eq!(y.dims(), &[2, 3]);
/// assert_eq!(model.num_parameters(), 4 * 16 + 16 + 16 * 3 + 3);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub struct Sequential<T: Element> {
    layers: Vec<Box<dyn Module<T> + Send>>,
    training: bool,
}

impl<T: Element> Default for Sequential<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> Sequential<T> {
    /// An empty model (its forward is the identity), in training mode.
    pub fn new() -> Self {
        Sequential {
            layers: Vec::new(),
            training: true,
        }
    }

    /// Appends a layer, builder style (Keras's `model.add`). The layer is put in the
    /// model's current mode.
    // `add` is the name Keras users look for; Sequential is not a number, so no `ops::Add`.
    #[allow(clippy::should_implement_trait)]
    pub fn add<M: Module<T> + Send + 'static>(mut self, layer: M) -> Self {
        self.push(layer);
        self
    }

    /// Appends a layer in place. The layer is put in the model's current mode.
    pub fn push<M: Module<T> + Send + 'static>(&mut self, mut layer: M) {
        layer.train(self.training);
        self.layers.push(Box::new(layer));
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there is no layer.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layer at `index`.
    pub fn layer(&self, index: usize) -> Option<&(dyn Module<T> + Send)> {
        self.layers.get(index).map(|l| &**l)
    }

    /// The layer at `index`, mutably.
    pub fn layer_mut(&mut self, index: usize) -> Option<&mut (dyn Module<T> + Send)> {
        match self.layers.get_mut(index) {
            Some(l) => Some(&mut **l),
            None => None,
        }
    }

    /// A table of the layers and their parameter counts, like Keras's `model.summary()`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (i, l) in self.layers.iter().enumerate() {
            s.push_str(&format!("{i:>3}  {:<40} {:>10}\n", l.describe(), l.num_parameters()));
        }
        s.push_str(&format!("total parameters: {}\n", self.num_parameters()));
        s
    }
}

impl<T: Element> Module<T> for Sequential<T> {
    /// The layers in order; a layer followed by a [`MaxPool2d`](crate::MaxPool2d) that has a
    /// fused form with it ([`Module::forward_max_pooled`], e.g. a `Conv2d` with ReLU) runs
    /// as that one op, with the same values and gradients.
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let mut h = x.clone();
        let mut i = 0;
        while i < self.layers.len() {
            if let Some(pool) = self.layers.get(i + 1).and_then(|l| l.as_max_pool2d()) {
                if let Some(y) = self.layers[i].forward_max_pooled(&h, &pool) {
                    h = y?;
                    i += 2;
                    continue;
                }
            }
            h = self.layers[i].forward(&h)?;
            i += 1;
        }
        Ok(h)
    }

    fn params(&self) -> Vec<(String, &Param<T>)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| l.params().into_iter().map(move |(n, p)| (format!("{i}.{n}"), p)))
            .collect()
    }

    fn params_mut(&mut self) -> Vec<(String, &mut Param<T>)> {
        self.layers
            .iter_mut()
            .enumerate()
            .flat_map(|(i, l)| l.params_mut().into_iter().map(move |(n, p)| (format!("{i}.{n}"), p)))
            .collect()
    }

    /// Each layer's PyTorch names under `{k}.`, where `k` counts the PyTorch modules
    /// before it ([`Module::torch_modules`]): a [`Dense`](crate::Dense) with an activation
    /// takes two indices, as `nn.Linear` followed by the activation module.
    fn torch_params(&self) -> Vec<TorchParam> {
        let mut k = 0usize;
        let mut out = Vec::new();
        for l in &self.layers {
            out.extend(l.torch_params().into_iter().map(|p| TorchParam {
                name: format!("{k}.{}", p.name),
                transposed: p.transposed,
            }));
            k = k.saturating_add(l.torch_modules());
        }
        out
    }

    fn buffers(&self) -> Vec<(String, &Tensor<T>)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| l.buffers().into_iter().map(move |(n, b)| (format!("{i}.{n}"), b)))
            .collect()
    }

    fn buffers_mut(&mut self) -> Vec<(String, &mut Tensor<T>)> {
        self.layers
            .iter_mut()
            .enumerate()
            .flat_map(|(i, l)| l.buffers_mut().into_iter().map(move |(n, b)| (format!("{i}.{n}"), b)))
            .collect()
    }

    fn train(&mut self, on: bool) {
        self.training = on;
        for l in &mut self.layers {
            l.train(on);
        }
    }

    fn is_training(&self) -> bool {
        self.training
    }

    fn describe(&self) -> String {
        format!("Sequential({} layers)", self.layers.len())
    }
}

impl<T: Element> fmt::Debug for Sequential<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.layers.iter().map(|l| l.describe()))
            .finish()
    }
}
