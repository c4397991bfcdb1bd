//! Comparisons, arg-extremes and sign: piecewise-constant functions, so they return
//! untracked tensors (their gradient is zero wherever it exists).

use super::index::IndexTensor;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::kernels::{elementwise, reduce};
use crate::tensor::Tensor;

macro_rules! comparison {
    ($name:ident, $op:tt, $doc:literal) => {
        #[doc = $doc]
        /// Broadcasts; returns 1 where true and 0 where false (untracked).
        #[track_caller]
        pub fn $name(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
            let shape = self.shape().broadcast(stringify!($name), other.shape())?;
            let data = elementwise::zip(self.data(), self.shape(), other.data(), other.shape(), &shape, |a, b| {
                if a $op b { T::one() } else { T::zero() }
            });
            Ok(Tensor::from_storage(data, shape))
        }
    };
}

impl<T: Element> Tensor<T> {
    comparison!(eq, ==, "`a == b` elementwise.");
    comparison!(ne, !=, "`a != b` elementwise.");
    comparison!(lt, <, "`a < b` elementwise.");
    comparison!(le, <=, "`a <= b` elementwise.");
    comparison!(gt, >, "`a > b` elementwise.");
    comparison!(ge, >=, "`a >= b` elementwise.");

    /// −1, 0 or 1 by the sign of each element (NaN stays NaN). Untracked.
    #[track_caller]
    pub fn sign(&self) -> Tensor<T> {
        let data = elementwise::map(self.data(), |v| {
            if v > T::zero() {
                T::one()
            } else if v < T::zero() {
                -T::one()
            } else {
                v
            }
        });
        Tensor::from_storage(data, self.shape().clone())
    }

    /// Index of the (first) largest element along `axis`; that dim is removed (or kept as
    /// 1 with `keepdim`). A NaN counts as the largest, as in NumPy.
    #[track_caller]
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Result<IndexTensor> {
        self.arg_extreme("argmax", axis, keepdim, true)
    }

    /// Index of the (first) smallest element along `axis`.
    #[track_caller]
    pub fn argmin(&self, axis: isize, keepdim: bool) -> Result<IndexTensor> {
        self.arg_extreme("argmin", axis, keepdim, false)
    }

    fn arg_extreme(&self, op: &'static str, axis: isize, keepdim: bool, max: bool) -> Result<IndexTensor> {
        let ax = self.shape().axis(op, axis)?;
        if self.dims()[ax] == 0 {
            return Err(Error::bad_shape(
                op,
                format!("empty dim {ax} of shape {}", self.shape()),
            ));
        }
        let idx = reduce::arg_extreme(self.data(), self.shape(), ax, max);
        IndexTensor::from_vec(idx, self.shape().reduced(&[ax], keepdim))
    }
}
