//! The [`Module`] trait and [`Param`], a trainable tensor that can be frozen.

use crate::conv::MaxPool2d;
use crate::state::{load_matched, state_names, Entry, LoadReport};
use tapegrad_core::{Element, Error, Result, Tensor};

/// Named parameter values, in a module's parameter order: what checkpoints hold.
pub type StateDict<T> = Vec<(String, Tensor<T>)>;

/// Where a parameter lives in the PyTorch model that a tapegrad model mirrors: its name in
/// PyTorch's `state_dict()` and whether PyTorch stores the transpose of tapegrad's 2-D
/// tensor. Returned by [`Module::torch_params`]; used by
/// [`safetensors`](crate::safetensors) with [`Layout::PyTorch`](crate::safetensors::Layout).
///
/// ```
/// use tapegrad_nn::{Dense, Module, SeedableRng, StdRng, TorchParam};
/// let mut rng = StdRng::seed_from_u64(0);
/// let layer = Dense::<f32>::new(3, 2, &mut rng)?;
/// let names = layer.torch_params();
/// assert_eq!(names[0], TorchParam { name: "weight".into(), transposed: true }); // nn.Linear: [out, in]
/// assert_eq!(names[1], TorchParam { name: "bias".into(), transposed: false });
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorchParam {
    /// The name in PyTorch's `state_dict`, e.g. `4.weight`.
    pub name: String,
    /// Whether PyTorch stores the transpose (`nn.Linear`'s weight is `[out, in]`,
    /// tapegrad's [`Dense`](crate::Dense) weight `[in, out]`).
    pub transposed: bool,
}

/// A named, trainable tensor owned by a layer.
///
/// A trainable parameter is stored as a tracked leaf ([`Tensor::requires_grad`]), so
/// `loss.backward()` returns its gradient, found with `grads.get(param.tensor())`. A
/// *frozen* parameter is stored untracked ([`Tensor::detach`]): no op records it, no
/// gradient is computed for it, and an optimizer given the gradients skips it.
#[derive(Clone, Debug)]
pub struct Param<T: Element> {
    tensor: Tensor<T>,
    frozen: bool,
}

impl<T: Element> Param<T> {
    /// A trainable parameter holding `tensor`.
    ///
    /// An untracked tensor becomes a fresh leaf. An already tracked tensor is kept as it
    /// is, so gradients still reach the caller's leaf: this is what lets a gradcheck (or a
    /// hypernetwork) pass its own leaves in as weights.
    pub fn new(tensor: Tensor<T>) -> Self {
        let tensor = if tensor.is_tracked() {
            tensor
        } else {
            tensor.requires_grad()
        };
        Param { tensor, frozen: false }
    }

    /// The current value (tracked unless frozen).
    #[inline]
    pub fn tensor(&self) -> &Tensor<T> {
        &self.tensor
    }

    /// Mutable access for in-place updates through [`Tensor::data_mut`], which keeps the
    /// tensor's autograd identity. Replacing the tensor wholesale is allowed too, but the
    /// replacement should be tracked unless the parameter is frozen.
    #[inline]
    pub fn tensor_mut(&mut self) -> &mut Tensor<T> {
        &mut self.tensor
    }

    /// Whether the parameter is frozen (excluded from gradients).
    #[inline]
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Stops gradients: the value is kept, cut from the graph.
    pub fn freeze(&mut self) {
        if !self.frozen {
            self.tensor = self.tensor.detach();
            self.frozen = true;
        }
    }

    /// Makes the parameter trainable again, as a new leaf (gradients from graphs recorded
    /// before this call are not found under it).
    pub fn unfreeze(&mut self) {
        if self.frozen {
            self.tensor = self.tensor.detach().requires_grad();
            self.frozen = false;
        }
    }

    /// Overwrites the values in place (keeping autograd identity and frozen state).
    ///
    /// Errors if `values` does not have the parameter's shape.
    pub fn assign(&mut self, values: &Tensor<T>) -> Result<()> {
        if values.shape() != self.tensor.shape() {
            return Err(Error::mismatch(
                "Param::assign",
                self.tensor.shape(),
                values.shape(),
                "values of the parameter's shape",
            ));
        }
        self.tensor.data_mut().copy_from_slice(values.data());
        Ok(())
    }
}

/// A layer or a network of layers: a function of one tensor with named parameters.
///
/// Parameter names are stable and hierarchical like a PyTorch `state_dict`: a
/// [`Dense`](crate::Dense) has `weight` and `bias`, and inside a
/// [`Sequential`](crate::Sequential) they become `0.weight`, `0.bias`, `2.weight`, …
///
/// Implementors provide [`forward`](Module::forward) and, if they own parameters,
/// [`params`](Module::params) and [`params_mut`](Module::params_mut) (in the same order);
/// layers whose forward depends on the mode override [`train`](Module::train) and
/// [`is_training`](Module::is_training). Everything else is provided.
///
/// ```
/// use tapegrad_nn::{SeedableRng, StdRng};
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{loss, Activation, Dense, Module, Reduction, Sequential};
/// let mut rng = StdRng::seed_from_u64(0);
/// let mut model = Sequential::new()
///     .add(Dense::new(3, 4, &mut rng)?.with_activation(Activation::Relu))
///     .add(Dense::new(4, 2, &mut rng)?);
/// let names: Vec<String> = model.parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "1.weight", "1.bias"]);
///
/// let x = Tensor::<f64>::ones([5, 3])?;
/// let logits = model.forward(&x)?;
/// let loss = loss::sparse_categorical_cross_entropy_with_logits(&logits, &[0, 1, 0, 1, 1], Reduction::Mean)?;
/// let grads = loss.backward()?;
/// model.freeze("0")?; // freeze the first layer: its params are no longer trainable
/// assert_eq!(model.trainable_parameters_mut().len(), 2);
/// let w1 = model.parameters()[2].1.clone();
/// assert_eq!(grads.wrt(&w1)?.dims(), &[4, 2]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub trait Module<T: Element> {
    /// Computes the layer's output. Takes `&mut self` because some layers advance state
    /// (Dropout draws its mask from its own RNG).
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>>;

    /// The parameters this module owns (recursively), with their names, in a stable order.
    /// The default is none.
    fn params(&self) -> Vec<(String, &Param<T>)> {
        Vec::new()
    }

    /// Mutable form of [`params`](Module::params): same names, same order.
    fn params_mut(&mut self) -> Vec<(String, &mut Param<T>)> {
        Vec::new()
    }

    /// The module's *buffers* (recursively), with their names: state that belongs in a
    /// checkpoint but is not trained, like PyTorch's `named_buffers()` (a batch norm's
    /// running statistics). Buffers are untracked tensors that the forward pass updates
    /// itself; optimizers never see them. The default is none.
    fn buffers(&self) -> Vec<(String, &Tensor<T>)> {
        Vec::new()
    }

    /// Mutable form of [`buffers`](Module::buffers): same names, same order.
    fn buffers_mut(&mut self) -> Vec<(String, &mut Tensor<T>)> {
        Vec::new()
    }

    /// Switches training mode (`true`) or evaluation mode (`false`), like PyTorch's
    /// `module.train(mode)`. Containers pass it on to their layers. The default does
    /// nothing, for layers whose forward is the same in both modes.
    fn train(&mut self, _on: bool) {}

    /// Whether the module is in training mode. Layers that ignore the mode report `true`.
    fn is_training(&self) -> bool {
        true
    }

    /// A short description for summaries, e.g. `Dense(3 → 4, relu)`.
    fn describe(&self) -> String {
        std::any::type_name::<Self>()
            .rsplit("::")
            .next()
            .unwrap_or("Module")
            .to_string()
    }

    /// The max pooling this layer is, if it is one: what [`Sequential`](crate::Sequential)
    /// looks for after a layer that can fuse it ([`Module::forward_max_pooled`]). Only
    /// [`MaxPool2d`] says yes.
    ///
    /// ```
    /// use tapegrad_nn::{Flatten, MaxPool2d, Module};
    /// let pool = MaxPool2d::new([2, 2]);
    /// assert_eq!(Module::<f32>::as_max_pool2d(&pool), Some(pool));
    /// assert_eq!(Module::<f32>::as_max_pool2d(&Flatten), None);
    /// ```
    fn as_max_pool2d(&self) -> Option<MaxPool2d> {
        None
    }

    /// This layer's forward followed by the max pooling `pool`, as one fused op, or `None`
    /// where the layer has no fused form (the default). Where it returns a result, it must be
    /// `pool.forward(self.forward(x))`'s, values and gradients; [`Sequential`](crate::Sequential)
    /// calls it for a layer followed by a [`MaxPool2d`]. A [`Conv2d`](crate::Conv2d) with
    /// ReLU has one: [`Tensor::conv2d_relu_max_pool2d`], which never stores the convolution's
    /// full-resolution output.
    ///
    /// ```
    /// use tapegrad_core::Tensor;
    /// use tapegrad_nn::{Activation, Conv2d, MaxPool2d, Module, SeedableRng, StdRng};
    /// let mut conv = Conv2d::<f64>::new(1, 2, [3, 3], &mut StdRng::seed_from_u64(0))?
    ///     .with_activation(Activation::Relu);
    /// let (mut pool, x) = (MaxPool2d::new([2, 2]), Tensor::<f64>::ones([1, 1, 6, 6])?);
    /// let fused = conv.forward_max_pooled(&x, &pool).expect("a ReLU convolution fuses")?;
    /// assert_eq!(fused.to_vec(), pool.forward(&conv.forward(&x)?)?.to_vec());
    /// assert!(MaxPool2d::new([2, 2]).forward_max_pooled(&x, &pool).is_none());
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    fn forward_max_pooled(&mut self, _x: &Tensor<T>, _pool: &MaxPool2d) -> Option<Result<Tensor<T>>> {
        None
    }

    /// How many consecutive modules of a `torch.nn.Sequential` this layer stands for, which
    /// shifts the indices in PyTorch's parameter names. The default is 1; a
    /// [`Dense`](crate::Dense) with a folded-in activation is 2 (`nn.Linear`, then e.g.
    /// `nn.ReLU`), so tapegrad's Flatten → Dense(relu) → Dropout → Dense is PyTorch's
    /// Flatten → Linear → ReLU → Dropout → Linear, and the last weight is `4.weight` there
    /// (`3.weight` in tapegrad's own names). A layer with no PyTorch counterpart that
    /// should be skipped in the numbering returns 0.
    ///
    /// ```
    /// use tapegrad_nn::{Activation, Dense, Module, SeedableRng, StdRng};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let plain = Dense::<f32>::new(3, 2, &mut rng)?;
    /// assert_eq!(plain.torch_modules(), 1); // nn.Linear
    /// assert_eq!(plain.with_activation(Activation::Relu).torch_modules(), 2); // nn.Linear, nn.ReLU
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    fn torch_modules(&self) -> usize {
        1
    }

    /// The state entries — the parameters in [`params`](Module::params) order, then the
    /// [buffers](Module::buffers) — under PyTorch's names and layouts (PyTorch's
    /// `state_dict()` order). The default keeps tapegrad's names untransposed; layers whose
    /// PyTorch counterpart stores a tensor differently override it, and containers renumber
    /// their layers with [`torch_modules`](Module::torch_modules).
    fn torch_params(&self) -> Vec<TorchParam> {
        state_names(self)
    }

    /// Evaluation mode: shorthand for `train(false)`.
    fn eval(&mut self) {
        self.train(false);
    }

    /// Named parameter tensors, like PyTorch's `named_parameters()`.
    fn parameters(&self) -> Vec<(String, &Tensor<T>)> {
        self.params().into_iter().map(|(n, p)| (n, p.tensor())).collect()
    }

    /// Named mutable parameter tensors (frozen ones included).
    fn parameters_mut(&mut self) -> Vec<(String, &mut Tensor<T>)> {
        self.params_mut()
            .into_iter()
            .map(|(n, p)| (n, p.tensor_mut()))
            .collect()
    }

    /// The named tensors an optimizer should update: every parameter that is not frozen,
    /// in [`params`](Module::params) order. The one way to step a model:
    /// `optimizer.step(&mut model.trainable_parameters_mut(), &grads)` (the optimizer keys
    /// its state by these names).
    fn trainable_parameters_mut(&mut self) -> Vec<(String, &mut Tensor<T>)> {
        self.params_mut()
            .into_iter()
            .filter(|(_, p)| !p.is_frozen())
            .map(|(n, p)| (n, p.tensor_mut()))
            .collect()
    }

    /// Total number of scalar parameters (frozen ones included).
    fn num_parameters(&self) -> usize {
        self.params().iter().map(|(_, p)| p.tensor().numel()).sum()
    }

    /// Freezes the parameter called `name`, or every parameter under the prefix `name.`
    /// (so `freeze("0")` freezes the whole first layer of a Sequential).
    ///
    /// Errors, listing the names, if nothing matches.
    fn freeze(&mut self, name: &str) -> Result<()> {
        set_frozen(self.params_mut(), name, true)
    }

    /// Undoes [`freeze`](Module::freeze) for `name` or the prefix `name.`; the parameters
    /// become new leaves.
    fn unfreeze(&mut self, name: &str) -> Result<()> {
        set_frozen(self.params_mut(), name, false)
    }

    /// The parameters' values, detached, under their names, then the
    /// [buffers](Module::buffers): what a checkpoint stores (PyTorch's `state_dict()`).
    fn state_dict(&self) -> StateDict<T> {
        let params = self.params().into_iter().map(|(n, p)| (n, p.tensor().detach()));
        let buffers = self.buffers().into_iter().map(|(n, b)| (n, b.detach()));
        params.chain(buffers).collect()
    }

    /// Copies `state` into the parameters and buffers in place, like PyTorch's strict
    /// `load_state_dict`: every parameter and buffer must be present with its exact shape
    /// and no extra entry may appear. Nothing is modified unless everything matches.
    ///
    /// On a mismatch, one [`Error::Format`] lists every missing, unexpected and
    /// wrongly shaped parameter or buffer, with the shapes. For PyTorch's `strict=False` (a report of
    /// missing and unexpected names instead of an error), see
    /// [`load_state_dict_with`](Module::load_state_dict_with).
    fn load_state_dict(&mut self, state: &[(String, Tensor<T>)]) -> Result<()> {
        self.load_state_dict_with(state, true).map(|_| ())
    }

    /// [`load_state_dict`](Module::load_state_dict) with PyTorch's `strict` switch. With
    /// `strict = false`, parameters absent from `state` keep their values and entries the
    /// model lacks are ignored; both are listed in the returned [`LoadReport`]. A shape
    /// mismatch is an error either way (as in PyTorch), and nothing is modified on error.
    ///
    /// ```
    /// use tapegrad_core::Tensor;
    /// use tapegrad_nn::{Dense, Module, SeedableRng, StdRng};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let mut layer = Dense::<f64>::new(2, 1, &mut rng)?;
    /// let state = vec![
    ///     ("weight".to_string(), Tensor::from_vec(vec![1.0, 2.0], [2, 1])?),
    ///     ("scale".to_string(), Tensor::ones([1])?),
    /// ];
    /// let report = layer.load_state_dict_with(&state, false)?;
    /// assert_eq!(report.missing, ["bias"]);
    /// assert_eq!(report.unexpected, ["scale"]);
    /// assert_eq!(layer.weight().to_vec(), [1.0, 2.0]);
    /// let err = layer.load_state_dict(&state).unwrap_err().to_string();
    /// assert!(err.contains("missing: 'bias'") && err.contains("unexpected: 'scale'"), "{err}");
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    fn load_state_dict_with(&mut self, state: &[(String, Tensor<T>)], strict: bool) -> Result<LoadReport> {
        let targets = state_names(self);
        let source: Vec<Entry<'_, T>> = state.iter().map(|(n, t)| Entry::float(n, t)).collect();
        load_matched(self, targets, &source, strict, "load_state_dict")
    }
}

fn set_frozen<T: Element>(params: Vec<(String, &mut Param<T>)>, name: &str, frozen: bool) -> Result<()> {
    let prefix = format!("{name}.");
    let mut hit = false;
    let mut names = Vec::with_capacity(params.len());
    for (n, p) in params {
        if n == name || n.starts_with(&prefix) {
            hit = true;
            if frozen {
                p.freeze();
            } else {
                p.unfreeze();
            }
        }
        names.push(n);
    }
    if hit {
        Ok(())
    } else {
        Err(Error::bad_value(
            if frozen { "freeze" } else { "unfreeze" },
            format!("no parameter is named '{name}' or starts with '{prefix}'; the parameters are {names:?}"),
        ))
    }
}
