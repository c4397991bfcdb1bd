//! The differentiable ops, grouped by family. Each op's forward computation and its
//! gradient rule sit side by side in one function; rules use only these same ops, so they
//! are themselves differentiable (see [`crate::tape`]).
//!
//! | file | ops |
//! | --- | --- |
//! | [`arith`] | `add sub mul div pow maximum minimum`, scalar forms, operator overloads |
//! | [`unary`] | `neg exp log sqrt abs tanh sigmoid relu leaky_relu softplus clamp` |
//! | [`matmul`] | `matmul` (2-D and batched, broadcast batch dims), `matmul_t` |
//! | [`reduce`] | `sum mean max min` over axes, `sum_to` |
//! | [`layout`] | `reshape permute transpose squeeze unsqueeze broadcast_to narrow slice concat stack` |
//! | [`index`] | `index_select index_add gather scatter_add where_cond` |
//! | [`softmax`] | `log_softmax`; composites `logsumexp softmax` |
//! | [`compare`] | `eq ne lt le gt ge argmax argmin sign` (no gradient) |
//! | [`custom`] | `custom_op`: a user's own op with its own gradient rule |
//! | [`conv`] | `im2col col2im conv2d conv2d_relu conv1d` (and its rule's `conv2d_input_grad conv2d_weight_grad conv2d_bias_grad`) |
//! | [`pool`] | `max_pool2d` (and its rule's `max_pool2d_backward`); composites `avg_pool2d adaptive_avg_pool2d` |
//! | `conv_pool` | `conv2d_relu_max_pool2d` (conv2d_relu then max_pool2d as one op) |
//! | [`norm`] | `layer_norm batch_norm` (composites) |
//! | [`nn_fn`] | `erf`; composites `gelu gelu_tanh silu embedding scaled_dot_product_attention` |

pub mod arith;
pub mod compare;
pub mod conv;
mod conv_pool;
pub mod custom;
pub mod index;
pub mod layout;
pub mod matmul;
pub mod nn_fn;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod softmax;
pub mod unary;
mod window;

use crate::element::Element;
use crate::error::Result;
use crate::tape::{BackwardCtx, InputGrads, Node};
use crate::tensor::Tensor;
use std::panic::{RefUnwindSafe, UnwindSafe};
use triomphe::Arc;

/// Convenience for rules: one gradient for a unary op.
#[inline]
pub(crate) fn one<T: Element>(g: Tensor<T>) -> InputGrads<T> {
    let mut grads = InputGrads::new();
    grads.push(Some(g));
    grads
}

/// Calls `f` on every node of the graph below `root` (itself included), once each.
pub(crate) fn visit<T: Element>(root: &Arc<Node<T>>, mut f: impl FnMut(&Node<T>)) {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if seen.insert(n.id) {
            f(n);
            stack.extend(n.inputs.iter().filter_map(|t| t.node.as_ref()));
        }
    }
}

/// Records a built-in op on the tape under its kind's name (see [`crate::tape`]).
#[track_caller]
pub(crate) fn record<T, F>(kind: OpKind, inputs: &[&Tensor<T>], out: Tensor<T>, save_output: bool, rule: F) -> Tensor<T>
where
    T: Element,
    F: Fn(&BackwardCtx<'_, T>) -> Result<InputGrads<T>> + Send + Sync + UnwindSafe + RefUnwindSafe + 'static,
{
    crate::tape::record(kind.name(), inputs, out, save_output, rule)
}

/// [`record`] for a one-input op whose rule returns that input's gradient alone.
#[track_caller]
pub(crate) fn record_one<T, F>(kind: OpKind, input: &Tensor<T>, out: Tensor<T>, save_output: bool, rule: F) -> Tensor<T>
where
    T: Element,
    F: Fn(&BackwardCtx<'_, T>) -> Result<Tensor<T>> + Send + Sync + UnwindSafe + RefUnwindSafe + 'static,
{
    crate::tape::record_one(kind.name(), input, out, save_output, rule)
}

impl<T: Element> Tensor<T> {
    /// The kinds of op recorded in the graph that produced this tensor (each once, sorted),
    /// for inspecting what backward will run; custom ops appear as [`OpKind::Custom`].
    /// Empty for untracked tensors.
    ///
    /// ```
    /// use tapegrad_core::{OpKind, Tensor};
    /// let x = Tensor::<f64>::ones([2])?.requires_grad();
    /// assert_eq!(x.exp().sum_all().recorded_ops(), vec![OpKind::Exp, OpKind::Sum]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn recorded_ops(&self) -> Vec<OpKind> {
        let mut kinds = std::collections::BTreeSet::new();
        if let Some(root) = &self.node {
            visit(root, |n| {
                if !n.is_leaf() {
                    kinds.insert(OpKind::from_name(n.name));
                }
            });
        }
        kinds.into_iter().collect()
    }
}

/// Declares [`OpKind`], its [`OpKind::ALL`] list and [`OpKind::name`] from one list, so a
/// new op cannot be left out of `ALL` (and so out of the registry's coverage check).
macro_rules! op_kinds {
    ($($kind:ident => $name:literal,)*) => {
        /// The primitive ops the tape records. Composite ops (mean, softmax, stack, …) are
        /// built from these and inherit their rules. Each variant is named after the
        /// [`Tensor`](crate::Tensor) method that records it (`MatMul` ← `matmul`/`matmul_t`,
        /// `PowScalar` ← `powf`, …).
        #[allow(missing_docs)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum OpKind {
            /// A tracked leaf (not an op).
            Leaf,
            $($kind,)*
        }

        impl OpKind {
            /// Every recorded op except [`OpKind::Leaf`], in declaration order.
            pub const ALL: &'static [OpKind] = &[$(OpKind::$kind,)*];

            /// The op's name as it appears in error messages (`"matmul"`, `"add"`, …).
            pub fn name(self) -> &'static str {
                match self {
                    OpKind::Leaf => "leaf",
                    $(OpKind::$kind => $name,)*
                }
            }

            /// The built-in op of this name; any other name is a user's [`OpKind::Custom`]
            /// op (whose names may not shadow the built-ins', see [`Tensor::custom_op`]).
            pub fn from_name(name: &str) -> OpKind {
                match name {
                    "leaf" => OpKind::Leaf,
                    $($name => OpKind::$kind,)*
                    _ => OpKind::Custom,
                }
            }
        }
    };
}

op_kinds! {
    Add => "add",
    Sub => "sub",
    Mul => "mul",
    Div => "div",
    Pow => "pow",
    Maximum => "maximum",
    Minimum => "minimum",
    AddScalar => "add_scalar",
    MulScalar => "mul_scalar",
    PowScalar => "powf",
    Neg => "neg",
    Exp => "exp",
    Log => "log",
    Sqrt => "sqrt",
    Abs => "abs",
    Tanh => "tanh",
    Sigmoid => "sigmoid",
    Relu => "relu",
    LeakyRelu => "leaky_relu",
    Softplus => "softplus",
    Clamp => "clamp",
    MatMul => "matmul",
    Sum => "sum",
    Max => "max",
    Min => "min",
    LogSoftmax => "log_softmax",
    Reshape => "reshape",
    Permute => "permute",
    BroadcastTo => "broadcast_to",
    Narrow => "narrow",
    Concat => "concat",
    IndexSelect => "index_select",
    IndexAdd => "index_add",
    Gather => "gather",
    ScatterAdd => "scatter_add",
    Where => "where_cond",
    Erf => "erf",
    Im2col => "im2col",
    Col2im => "col2im",
    Conv2d => "conv2d",
    Conv2dRelu => "conv2d_relu",
    Conv2dReluMaxPool2d => "conv2d_relu_max_pool2d",
    Conv2dInputGrad => "conv2d_input_grad",
    Conv2dWeightGrad => "conv2d_weight_grad",
    Conv2dBiasGrad => "conv2d_bias_grad",
    MaxPool2d => "max_pool2d",
    MaxPool2dBackward => "max_pool2d_backward",
    Custom => "custom",
    Alias => "alias",
}

#[cfg(test)]
mod tests {
    use super::OpKind;

    #[test]
    fn op_names_are_unique() {
        // ALL and the names come from one list (op_kinds!), so no kind can be missing
        // from ALL; the registry test then demands a gradcheck entry for each.
        let mut names: Vec<_> = OpKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "two ops share a name");
        assert!(!OpKind::ALL.contains(&OpKind::Leaf));
        for &k in OpKind::ALL {
            assert_eq!(OpKind::from_name(k.name()), k);
        }
    }
}
