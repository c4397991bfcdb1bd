//! # tapegrad
//!
//! One dependency for the whole framework: re-exports [`tapegrad_core`] (tensors, autograd,
//! gradcheck) and a [`prelude`].
//!
//! ```
//! use tapegrad::prelude::*;
//! let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?.requires_grad();
//! let y = x.exp().sum_all()?;
//! let g = y.backward()?.wrt(&x)?;
//! assert!((g.to_vec()[1] - 2f64.exp()).abs() < 1e-12);
//! # Ok::<(), tapegrad::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use tapegrad_core as core;
pub use tapegrad_core::*;

/// The names most programs need: `use tapegrad::prelude::*;`.
pub mod prelude {
    pub use tapegrad_core::{
        grad, gradcheck, no_grad, Element, Error, GradCheck, Gradients, IndexTensor, Result, Shape, Tensor,
    };
}
