//! Property-based testing of backprop math (the `testing` cargo feature; without it this
//! module and its proptest dependency are not compiled).
//!
//! - [strategies](strategies) for shapes, broadcastable shapes, elements (finite, bounded,
//!   away from kinks), tensors of `f32`/`f64` and index tensors, after Hypothesis's numpy
//!   strategies;
//! - [`check_grads`], JAX's `check_grads`: every derivative up to `order`, in reverse and
//!   forward mode, against finite differences, with gradcheck's report on failure;
//! - [`prop_assert_gradcheck!`](crate::prop_assert_gradcheck) for use inside `proptest!`;
//! - [`OpSpec`], an op's registry entry (a name and a strategy of samples) and [`sweep`], the
//!   sweep that tapegrad-core's own op registry runs: register your ops and custom gradient
//!   rules and they are tested exactly as the built-in ones are.
//!
//! ```
//! use proptest::prelude::*;
//! use tapegrad_core::prop_assert_gradcheck;
//! use tapegrad_core::testing::{array_shapes, bounded, tensors_of, Mode};
//!
//! proptest! {
//!     #![proptest_config(ProptestConfig::with_cases(16))]
//!     fn tanh_times_x(x in tensors_of::<f64>(array_shapes(0..=2, 1..=3), bounded(-2.0, 2.0))) {
//!         prop_assert_gradcheck!(|xs| xs[0].tanh().mul(&xs[0]), &[x], 2, &[Mode::Reverse, Mode::Forward]);
//!     }
//! }
//! # tanh_times_x();
//! ```

mod spec;
pub mod strategies;

pub use proptest;
pub use spec::{sweep, OpSpec, Sample, SampleFn, SweepReport};
pub use strategies::*;

use crate::error::{Error, Result};
use crate::func;
use crate::grad_mode::no_grad;
use crate::gradcheck::{GradCheck, GradCheckReport};
use crate::tensor::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which way derivatives are computed in a check (JAX's `modes=("fwd", "rev")`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Vector-Jacobian products (backward), as [`GradCheck::check`].
    Reverse,
    /// Jacobian-vector products ([`func::jvp`]), as [`GradCheck::check_forward`].
    Forward,
}

type DynFn<'a> = dyn Fn(&[Tensor<f64>]) -> Result<Tensor<f64>> + 'a;

/// [`GradCheck::check_grads`] with the default settings.
///
/// ```
/// use tapegrad_core::testing::{check_grads, Mode};
/// use tapegrad_core::Tensor;
/// let x = Tensor::<f64>::from_vec(vec![0.4, -0.9], [2])?;
/// let reports = check_grads(|xs| Ok(xs[0].exp().mul(&xs[0])?.sum_all()), &[x], 2, &[Mode::Reverse, Mode::Forward])?;
/// assert_eq!(reports.len(), 2 + 4); // order 1 in each mode, then order 2 in each mode of each
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn check_grads<F>(f: F, inputs: &[Tensor<f64>], order: usize, modes: &[Mode]) -> Result<Vec<GradCheckReport>>
where
    F: Fn(&[Tensor<f64>]) -> Result<Tensor<f64>>,
{
    GradCheck::default().check_grads(f, inputs, order, modes)
}

impl GradCheck {
    /// Checks every derivative of `f` up to `order` in each of `modes`, like JAX's
    /// `check_grads(f, args, order, modes)`: the first derivative in each mode against
    /// central differences, then, for `order ≥ 2`, the same checks of each first-order map —
    /// `x ↦ vᵀ∂f/∂x` (reverse, for a fixed random `v`) and `x ↦ ∂f/∂x·t` (forward, for a
    /// fixed random `t`) — and so on. Returns one report per check (`Σₖ |modes|ᵏ` of them);
    /// the first failure is an [`Error::GradCheck`] saying which order and mode failed.
    pub fn check_grads<F>(
        &self,
        f: F,
        inputs: &[Tensor<f64>],
        order: usize,
        modes: &[Mode],
    ) -> Result<Vec<GradCheckReport>>
    where
        F: Fn(&[Tensor<f64>]) -> Result<Tensor<f64>>,
    {
        if order == 0 || modes.is_empty() {
            return Err(Error::bad_value(
                "check_grads",
                format!("needs order >= 1 and at least one mode, got order {order} and modes {modes:?}"),
            ));
        }
        let mut reports = Vec::new();
        self.check_level(&f, inputs, 1, order, modes, "", &mut reports)?;
        Ok(reports)
    }

    #[allow(clippy::too_many_arguments)]
    fn check_level(
        &self,
        f: &DynFn<'_>,
        inputs: &[Tensor<f64>],
        level: usize,
        order: usize,
        modes: &[Mode],
        path: &str,
        reports: &mut Vec<GradCheckReport>,
    ) -> Result<()> {
        for &mode in modes {
            let path = format!("{path}{}{mode:?}", if path.is_empty() { "" } else { " of " });
            let r = match mode {
                Mode::Reverse => self.check(f, inputs),
                Mode::Forward => self.check_forward(f, inputs),
            };
            reports.push(r.map_err(|e| match e {
                Error::GradCheck(m) => Error::GradCheck(format!("order {level} ({path} mode): {m}")),
                e => e,
            })?);
            if level == order {
                continue;
            }
            let mut rng = StdRng::seed_from_u64(self.seed ^ (0x5eed + level as u64));
            let mut random = |dims: &[usize]| -> Result<Tensor<f64>> {
                let n = dims.iter().product();
                Tensor::from_vec((0..n).map(|_| rng.random_range(-1.0..1.0)).collect(), dims.to_vec())
            };
            let next: Box<DynFn<'_>> = match mode {
                Mode::Reverse => {
                    let v = random(no_grad(|| f(inputs))?.dims())?;
                    Box::new(move |xs: &[Tensor<f64>]| {
                        let parts = func::vjp(f, xs)?.1.call(&v)?;
                        let flat = parts
                            .iter()
                            .map(|g| g.reshape([g.numel()]))
                            .collect::<Result<Vec<_>>>()?;
                        Tensor::concat(&flat.iter().collect::<Vec<_>>(), 0)
                    })
                }
                Mode::Forward => {
                    let ts = inputs.iter().map(|x| random(x.dims())).collect::<Result<Vec<_>>>()?;
                    Box::new(move |xs: &[Tensor<f64>]| Ok(func::jvp(f, xs, &ts)?.1))
                }
            };
            self.check_level(&*next, inputs, level + 1, order, modes, &path, reports)?;
        }
        Ok(())
    }
}

/// Inside `proptest!`: fails the case, with gradcheck's report and the inputs, unless
/// `f`'s derivatives at `inputs` pass. `prop_assert_gradcheck!(f, inputs)` checks the first
/// derivative in reverse mode ([`gradcheck`](crate::gradcheck())); with an order and modes
/// it is [`check_grads`]`(f, inputs, order, modes)`. See the [module docs](crate::testing)
/// for an example.
#[macro_export]
macro_rules! prop_assert_gradcheck {
    ($f:expr, $inputs:expr) => {
        $crate::prop_assert_gradcheck!($f, $inputs, 1, &[$crate::testing::Mode::Reverse])
    };
    ($f:expr, $inputs:expr, $order:expr, $modes:expr) => {{
        let inputs: &[$crate::Tensor<f64>] = $inputs;
        if let Err(e) = $crate::testing::check_grads($f, inputs, $order, $modes) {
            let shown: Vec<String> = inputs
                .iter()
                .map(|x| format!("{:?} {:?}", x.dims(), x.data()))
                .collect();
            return Err($crate::testing::proptest::test_runner::TestCaseError::fail(format!(
                "{e}\n  inputs: {}",
                shown.join("; ")
            )));
        }
    }};
}
