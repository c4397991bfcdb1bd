//! Recording an op: the node that [`super`]'s backward sweep will replay.

use super::{BackwardCtx, InputGrads, Node, Rule};
use crate::anomaly::{check_forward, is_anomaly_enabled};
use crate::element::Element;
use crate::error::Result;
use crate::grad_mode::is_grad_enabled;
use crate::tensor::Tensor;
use std::panic::{RefUnwindSafe, UnwindSafe};

/// Records `out = op(inputs)` if gradients are enabled and any input is tracked; otherwise
/// returns `out` untouched and the rule is never boxed. `name` names the op in errors;
/// `save_output` keeps the output buffer for rules that call [`BackwardCtx::output`].
#[track_caller]
pub(crate) fn record<T, F>(
    name: &'static str,
    inputs: &[&Tensor<T>],
    out: Tensor<T>,
    save_output: bool,
    rule: F,
) -> Tensor<T>
where
    T: Element,
    F: Fn(&BackwardCtx<'_, T>) -> Result<InputGrads<T>> + Send + Sync + UnwindSafe + RefUnwindSafe + 'static,
{
    if !inputs.iter().any(|t| t.node.is_some()) || !is_grad_enabled() {
        return out;
    }
    let rule = Rule::Boxed(Box::new(move |ctx: &BackwardCtx<'_, T>, grads: &mut InputGrads<T>| {
        *grads = rule(ctx)?;
        Ok(())
    }));
    record_rule(name, inputs, out, save_output, rule)
}

/// [`record`] for a one-input op whose rule is a plain function of one scalar argument
/// `s` of the op (see [`Rule::Scalar`]): nothing is allocated for the rule.
#[track_caller]
pub(crate) fn record_scalar<T: Element>(
    name: &'static str,
    input: &Tensor<T>,
    out: Tensor<T>,
    save_output: bool,
    rule: fn(&BackwardCtx<'_, T>, T) -> Result<Tensor<T>>,
    s: T,
) -> Tensor<T> {
    if input.node.is_none() || !is_grad_enabled() {
        return out;
    }
    record_rule(name, &[input], out, save_output, Rule::Scalar(rule, s))
}

/// [`record`] for a one-input op whose rule returns that input's gradient alone (see
/// [`Rule::One`]).
#[track_caller]
pub(crate) fn record_one<T, F>(
    name: &'static str,
    input: &Tensor<T>,
    out: Tensor<T>,
    save_output: bool,
    rule: F,
) -> Tensor<T>
where
    T: Element,
    F: Fn(&BackwardCtx<'_, T>) -> Result<Tensor<T>> + Send + Sync + UnwindSafe + RefUnwindSafe + 'static,
{
    if input.node.is_none() || !is_grad_enabled() {
        return out;
    }
    record_rule(name, &[input], out, save_output, Rule::One(Box::new(rule)))
}

/// Records an op whose inputs the caller found tracked, with grad mode on.
#[track_caller]
fn record_rule<T: Element>(
    name: &'static str,
    inputs: &[&Tensor<T>],
    mut out: Tensor<T>,
    save_output: bool,
    rule: Rule<T>,
) -> Tensor<T> {
    let mut site = None;
    if is_anomaly_enabled() {
        site = Some(std::panic::Location::caller()); // the user's call (ops are #[track_caller])
        check_forward(name, inputs, &out, site);
    }
    let saved_output = save_output.then(|| out.data.clone());
    out.node = Some(Node::make(name, inputs, Some(rule), site, saved_output));
    out
}
