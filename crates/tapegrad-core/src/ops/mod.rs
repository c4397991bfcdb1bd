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
//! | [`softmax`] | `logsumexp softmax log_softmax` (composites) |
//! | [`compare`] | `eq ne lt le gt ge argmax argmin sign` (no gradient) |

pub mod arith;
pub mod compare;
pub mod index;
pub mod layout;
pub mod matmul;
pub mod reduce;
pub mod softmax;
pub mod unary;

/// The primitive ops the tape records. Composite ops (mean, softmax, stack, …) are built
/// from these and inherit their rules. Each variant is named after the [`Tensor`](crate::Tensor)
/// method that records it (`MatMul` ← `matmul`/`matmul_t`, `PowScalar` ← `powf`, …).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum OpKind {
    /// A tracked leaf (not an op).
    Leaf,
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
    AddScalar,
    MulScalar,
    PowScalar,
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    Tanh,
    Sigmoid,
    Relu,
    LeakyRelu,
    Softplus,
    Clamp,
    MatMul,
    Sum,
    Max,
    Min,
    Reshape,
    Permute,
    BroadcastTo,
    Narrow,
    Concat,
    IndexSelect,
    IndexAdd,
    Gather,
    ScatterAdd,
    Where,
}

impl OpKind {
    /// Every recorded op except [`OpKind::Leaf`], in declaration order.
    pub const ALL: &'static [OpKind] = &[
        OpKind::Add,
        OpKind::Sub,
        OpKind::Mul,
        OpKind::Div,
        OpKind::Pow,
        OpKind::Maximum,
        OpKind::Minimum,
        OpKind::AddScalar,
        OpKind::MulScalar,
        OpKind::PowScalar,
        OpKind::Neg,
        OpKind::Exp,
        OpKind::Log,
        OpKind::Sqrt,
        OpKind::Abs,
        OpKind::Tanh,
        OpKind::Sigmoid,
        OpKind::Relu,
        OpKind::LeakyRelu,
        OpKind::Softplus,
        OpKind::Clamp,
        OpKind::MatMul,
        OpKind::Sum,
        OpKind::Max,
        OpKind::Min,
        OpKind::Reshape,
        OpKind::Permute,
        OpKind::BroadcastTo,
        OpKind::Narrow,
        OpKind::Concat,
        OpKind::IndexSelect,
        OpKind::IndexAdd,
        OpKind::Gather,
        OpKind::ScatterAdd,
        OpKind::Where,
    ];

    /// The op's name as it appears in error messages (`"matmul"`, `"add"`, …).
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Leaf => "leaf",
            OpKind::Add => "add",
            OpKind::Sub => "sub",
            OpKind::Mul => "mul",
            OpKind::Div => "div",
            OpKind::Pow => "pow",
            OpKind::Maximum => "maximum",
            OpKind::Minimum => "minimum",
            OpKind::AddScalar => "add_scalar",
            OpKind::MulScalar => "mul_scalar",
            OpKind::PowScalar => "powf",
            OpKind::Neg => "neg",
            OpKind::Exp => "exp",
            OpKind::Log => "log",
            OpKind::Sqrt => "sqrt",
            OpKind::Abs => "abs",
            OpKind::Tanh => "tanh",
            OpKind::Sigmoid => "sigmoid",
            OpKind::Relu => "relu",
            OpKind::LeakyRelu => "leaky_relu",
            OpKind::Softplus => "softplus",
            OpKind::Clamp => "clamp",
            OpKind::MatMul => "matmul",
            OpKind::Sum => "sum",
            OpKind::Max => "max",
            OpKind::Min => "min",
            OpKind::Reshape => "reshape",
            OpKind::Permute => "permute",
            OpKind::BroadcastTo => "broadcast_to",
            OpKind::Narrow => "narrow",
            OpKind::Concat => "concat",
            OpKind::IndexSelect => "index_select",
            OpKind::IndexAdd => "index_add",
            OpKind::Gather => "gather",
            OpKind::ScatterAdd => "scatter_add",
            OpKind::Where => "where_cond",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OpKind;

    #[test]
    fn all_lists_every_kind_but_leaf_once() {
        // `name` matches exhaustively, so a new variant must be named; a named variant
        // missing from ALL (or listed twice) fails here.
        let mut names: Vec<_> = OpKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "OpKind::ALL lists a kind twice");
        assert!(!OpKind::ALL.contains(&OpKind::Leaf));
        // Count the variants through the discriminants: Leaf is 0, the rest are 1..=N.
        assert_eq!(
            OpKind::Where as usize,
            OpKind::ALL.len(),
            "OpKind::ALL is missing a kind"
        );
    }
}
