//! The entry points of reverse mode — [`Tensor::backward`], [`Tensor::backward_with`] and
//! [`grad`] — and [`Gradients`], what a backward pass returns, looked up by tensor. The
//! sweep itself is in [`crate::tape`].

use crate::element::Element;
use crate::error::{Error, Result};
use crate::tape::{sweep, Keep};
use crate::tensor::Tensor;

/// Gradients from one backward pass, looked up by the tensor they belong to.
///
/// Holds the gradient of every tracked leaf that the output depends on (and, for
/// [`grad`](crate::grad()), of every tensor asked for).
///
/// ```
/// use tapegrad_core::Tensor;
/// let w = Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?.requires_grad();
/// let grads = w.square().sum_all().backward()?; // ∂Σw²/∂w = 2w
/// assert_eq!(grads.wrt(&w)?.to_vec(), vec![2.0, 4.0]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub struct Gradients<T: Element> {
    /// Sorted by node id, for binary search.
    entries: Vec<(u64, Tensor<T>)>,
    /// Made by `backward`, which keeps leaf gradients only.
    leaves_only: bool,
}

impl<T: Element> std::fmt::Debug for Gradients<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(id, g)| (id, g.shape())))
            .finish()
    }
}

impl<T: Element> Gradients<T> {
    /// From `(node id, gradient)` pairs sorted by id.
    pub(crate) fn new(entries: Vec<(u64, Tensor<T>)>, leaves_only: bool) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        Gradients { entries, leaves_only }
    }

    /// The gradient for `t`, or `None` if `t` is untracked or the output does not depend on it.
    pub fn get(&self, t: &Tensor<T>) -> Option<&Tensor<T>> {
        let id = t.node_id()?;
        self.entries
            .binary_search_by_key(&id, |(i, _)| *i)
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// The gradient for `t`: zeros if the output does not depend on it. An error if `t`
    /// is not tracked (a gradient was asked of a tensor that cannot have one), or if it is
    /// an intermediate result and these gradients came from `backward`, which keeps those
    /// of leaves only (use [`grad`](crate::grad()) for intermediate tensors).
    pub fn wrt(&self, t: &Tensor<T>) -> Result<Tensor<T>> {
        if self.leaves_only && t.is_tracked() && !t.is_leaf() {
            return Err(Error::autograd(
                "gradients",
                format!(
                    "the tensor of shape {} is an intermediate result, and backward() keeps the \
                     gradients of leaves only; use grad(&output, &[&tensor], …) for it",
                    t.shape()
                ),
            ));
        }
        if !t.is_tracked() {
            return Err(Error::autograd(
                "gradients",
                format!(
                    "a gradient was asked of an untracked tensor of shape {}; make it a leaf with \
                     .requires_grad() before using it",
                    t.shape()
                ),
            ));
        }
        Ok(self.get(t).cloned().unwrap_or_else(|| t.zeros_like()))
    }

    /// Number of gradients held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no gradient is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<T: Element> Tensor<T> {
    /// Backpropagates from this single-element output (usually a loss) with seed 1 and
    /// returns the gradient of every tracked leaf it depends on.
    ///
    /// Errors if the tensor has more than one element (use [`Tensor::backward_with`]) or
    /// is untracked.
    pub fn backward(&self) -> Result<Gradients<T>> {
        if self.numel() != 1 {
            return Err(Error::autograd(
                "backward",
                format!(
                    "backward() needs a single-element output, got shape {}; pass a seed gradient \
                     of that shape to backward_with()",
                    self.shape()
                ),
            ));
        }
        self.backward_with(&self.ones_like(), false)
    }

    /// Backpropagates `seed` (∂L/∂self, same shape as `self`): a vector-Jacobian product.
    /// With `create_graph`, the backward ops are recorded too and the returned gradients
    /// are themselves differentiable (for grad-of-grad and Hessian-vector products).
    pub fn backward_with(&self, seed: &Tensor<T>, create_graph: bool) -> Result<Gradients<T>> {
        let entries = sweep(self, seed.clone(), create_graph, Keep::Leaves)?;
        Ok(Gradients::new(entries, true))
    }
}

/// Gradients of `output` with respect to each of `inputs` (any tracked tensors, not only
/// leaves), like `torch.autograd.grad`. `seed` defaults to ones for a single-element
/// output. Inputs the output does not depend on get zeros.
///
/// ```
/// use tapegrad_core::{grad, Tensor};
/// let x = Tensor::<f64>::scalar(3.0).requires_grad();
/// let y = x.powf(3.0)?;                                       // y = x³
/// let dy = grad(&y, &[&x], None, true)?.remove(0);            // 3x² = 27, still tracked
/// let d2y = grad(&dy, &[&x], None, false)?.remove(0);         // 6x = 18
/// assert_eq!((dy.item()?, d2y.item()?), (27.0, 18.0));
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn grad<T: Element>(
    output: &Tensor<T>,
    inputs: &[&Tensor<T>],
    seed: Option<&Tensor<T>>,
    create_graph: bool,
) -> Result<Vec<Tensor<T>>> {
    let mut ids: Vec<u64> = Vec::with_capacity(inputs.len());
    for t in inputs {
        ids.push(t.node_id().ok_or_else(|| {
            Error::autograd(
                "grad",
                format!("input of shape {} is not tracked, so it has no gradient", t.shape()),
            )
        })?);
    }
    let seed = match seed {
        Some(s) => s.clone(),
        None if output.numel() == 1 => output.ones_like(),
        None => {
            return Err(Error::autograd(
                "grad",
                format!(
                    "output of shape {} is not a single element: pass a seed",
                    output.shape()
                ),
            ))
        }
    };
    ids.sort_unstable();
    ids.dedup();
    let found = Gradients::new(sweep(output, seed, create_graph, Keep::Ids(&ids))?, false);
    inputs.iter().map(|t| found.wrt(t)).collect()
}
