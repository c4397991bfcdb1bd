//! User-defined ops with their own gradient rules, like PyTorch's `autograd.Function`:
//! compute the output however you like, then say how ∂L/∂output maps to ∂L/∂inputs.
//! Check the rule with [`gradcheck`](crate::gradcheck()) before trusting it.

use crate::element::Element;
use crate::error::{Error, Result};
use crate::ops::OpKind;
use crate::tape::{record, BackwardCtx, InputGrads};
use crate::tensor::Tensor;
use std::panic::{RefUnwindSafe, UnwindSafe};

impl<T: Element> Tensor<T> {
    /// Records a user-defined op `output = f(inputs)` whose gradient is given by `rule`.
    ///
    /// `output` is the op's value, computed by the caller (typically from the inputs'
    /// [`data`](Tensor::data), without recording); it is returned tracked whenever an input
    /// is. `rule` receives a [`BackwardCtx`] (`ctx.grad` = ∂L/∂output, `ctx.input(i)`,
    /// `ctx.output()?`, `ctx.needs(i)`) and returns one gradient per input, shaped like that
    /// input (`None` for inputs that need none). Write the rule with tensor ops and it is
    /// differentiable too, so `create_graph` and gradgradcheck work through it. `name`
    /// appears in error messages; it may not be the name of a built-in op (`"add"`, …),
    /// and [`Tensor::recorded_ops`] lists the op as [`OpKind::Custom`].
    ///
    /// ```
    /// use tapegrad_core::{gradcheck, Tensor};
    /// // sin x, with its rule cos x · ∂L/∂y.
    /// fn sin(x: &Tensor<f64>) -> tapegrad_core::Result<Tensor<f64>> {
    ///     let y = Tensor::from_vec(x.data().iter().map(|v| v.sin()).collect(), x.shape().clone())?;
    ///     Tensor::custom_op("sin", &[x], y, false, |ctx| {
    ///         let x = ctx.input(0).detach();
    ///         let cos = Tensor::from_vec(x.data().iter().map(|v| v.cos()).collect(), x.shape().clone())?;
    ///         Ok([Some(ctx.grad.mul(&cos)?)].into_iter().collect())
    ///     })
    /// }
    /// let x = Tensor::from_vec(vec![0.3, 1.2, -2.0], [3])?;
    /// gradcheck(|xs| sin(&xs[0]), &[x])?;
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn custom_op<F>(
        name: &'static str,
        inputs: &[&Tensor<T>],
        output: Tensor<T>,
        save_output: bool,
        rule: F,
    ) -> Result<Tensor<T>>
    where
        F: Fn(&BackwardCtx<'_, T>) -> Result<InputGrads<T>> + Send + Sync + UnwindSafe + RefUnwindSafe + 'static,
    {
        if output.is_tracked() {
            return Err(Error::autograd(
                name,
                "a custom op's output must be computed without recording (from the inputs' data, \
                 or under no_grad); its gradient comes from the rule alone",
            ));
        }
        if OpKind::from_name(name) != OpKind::Custom {
            return Err(Error::bad_value(
                "custom_op",
                format!("the name {name:?} is a built-in op's; give the custom op a name of its own"),
            ));
        }
        let n = inputs.len();
        Ok(record(name, inputs, output, save_output, move |ctx| {
            let grads = rule(ctx)?;
            if grads.len() != n {
                return Err(Error::autograd(
                    name,
                    format!("the rule returned {} gradients for {n} inputs", grads.len()),
                ));
            }
            Ok(grads)
        }))
    }
}
