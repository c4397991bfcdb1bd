//! Elementwise unary functions. Rules whose derivative is a step function (relu, abs,
//! clamp, leaky_relu) multiply by an untracked 0/1 (or slope) mask: its own derivative is
//! zero almost everywhere, so second derivatives stay correct.

use super::arith::{keep_where, unary, unary_scalar};
use crate::element::{c, Element};
use crate::error::{Error, Result};
use crate::kernels::elementwise;
use crate::ops::OpKind;
use crate::tensor::Tensor;

/// An untracked tensor of `f(x)` for each element of `x` (used for masks and signs).
fn constant_map<T: Element>(x: &Tensor<T>, f: impl Fn(T) -> T + Sync) -> Tensor<T> {
    Tensor::from_storage(elementwise::map(x.data(), f), x.shape().clone())
}

impl<T: Element> Tensor<T> {
    /// `−x`. ∂/∂x = −1.
    #[track_caller]
    pub fn neg(&self) -> Tensor<T> {
        unary(OpKind::Neg, self, false, |x| -x, |ctx| Ok(ctx.grad.neg()))
    }

    /// `eˣ`. ∂/∂x = eˣ (the output).
    #[track_caller]
    pub fn exp(&self) -> Tensor<T> {
        unary(OpKind::Exp, self, true, |x| x.exp(), |ctx| ctx.grad.mul(&ctx.output()?))
    }

    /// Natural logarithm. ∂/∂x = 1/x. Gives −inf at 0 and NaN below, as IEEE does.
    #[track_caller]
    pub fn log(&self) -> Tensor<T> {
        unary(OpKind::Log, self, false, |x| x.ln(), |ctx| ctx.grad.div(ctx.input(0)))
    }

    /// `√x`. ∂/∂x = 1/(2√x).
    #[track_caller]
    pub fn sqrt(&self) -> Tensor<T> {
        unary(
            OpKind::Sqrt,
            self,
            true,
            |x| x.sqrt(),
            |ctx| Ok(ctx.grad.div(&ctx.output()?)?.mul_scalar(c(0.5))),
        )
    }

    /// `|x|`. ∂/∂x = sign(x) (0 at 0, as in PyTorch).
    #[track_caller]
    pub fn abs(&self) -> Tensor<T> {
        unary(
            OpKind::Abs,
            self,
            false,
            |x| x.abs(),
            |ctx| ctx.grad.mul(&ctx.input(0).sign()),
        )
    }

    /// `tanh x`. ∂/∂x = 1 − tanh²x.
    #[track_caller]
    pub fn tanh(&self) -> Tensor<T> {
        unary(
            OpKind::Tanh,
            self,
            true,
            |x| x.tanh(),
            |ctx| {
                if !ctx.create_graph() {
                    return fused(ctx.grad, ctx.output_values()?, |g, y| g * (T::one() - y * y));
                }
                let y = ctx.output()?;
                ctx.grad.mul(&y.mul(&y)?.neg().add_scalar(T::one()))
            },
        )
    }

    /// `σ(x) = 1/(1 + e⁻ˣ)`, computed without overflow for large |x|. ∂/∂x = σ(x)(1 − σ(x)).
    #[track_caller]
    pub fn sigmoid(&self) -> Tensor<T> {
        unary(OpKind::Sigmoid, self, true, sigmoid_scalar, |ctx| {
            if !ctx.create_graph() {
                return fused(ctx.grad, ctx.output_values()?, |g, y| g * (y * (T::one() - y)));
            }
            let y = ctx.output()?;
            ctx.grad.mul(&y.mul(&y.neg().add_scalar(T::one()))?)
        })
    }

    /// `max(x, 0)` (NaN stays NaN). ∂/∂x = 1 where x > 0, else 0.
    #[track_caller]
    pub fn relu(&self) -> Tensor<T> {
        unary(
            OpKind::Relu,
            self,
            false,
            |x| if x > T::zero() || x.is_nan() { x } else { T::zero() },
            |ctx| relu_rule(ctx.grad, ctx.input(0), ctx.create_graph()),
        )
    }

    /// `x` where x > 0, else `α·x`. ∂/∂x = 1 or α.
    #[track_caller]
    pub fn leaky_relu(&self, alpha: T) -> Tensor<T> {
        unary_scalar(
            OpKind::LeakyRelu,
            self,
            alpha,
            move |x| if x > T::zero() { x } else { alpha * x },
            |ctx, alpha| {
                let positive = constant_map(ctx.input(0), |x| if x > T::zero() { T::one() } else { T::zero() });
                Tensor::where_cond(&positive, ctx.grad, &ctx.grad.mul_scalar(alpha))
            },
        )
    }

    /// `ln(1 + eˣ)`, computed as `max(x, 0) + ln(1 + e^−|x|)` so it never overflows.
    /// ∂/∂x = σ(x).
    #[track_caller]
    pub fn softplus(&self) -> Tensor<T> {
        unary(
            OpKind::Softplus,
            self,
            false,
            |x| x.max(T::zero()) + (-x.abs()).exp().ln_1p(),
            |ctx| ctx.grad.mul(&ctx.input(0).sigmoid()),
        )
    }

    /// Limits every element to `[min, max]` (NaN stays NaN). ∂/∂x = 1 inside the interval
    /// (bounds included, as in PyTorch), 0 outside. Errors if `min > max` or either is NaN.
    #[track_caller]
    pub fn clamp(&self, min: T, max: T) -> Result<Tensor<T>> {
        if min.is_nan() || max.is_nan() || min > max {
            return Err(Error::bad_value(
                "clamp",
                format!("needs min <= max, got min={min} max={max}"),
            ));
        }
        Ok(unary(
            OpKind::Clamp,
            self,
            false,
            move |x| if x.is_nan() { x } else { x.max(min).min(max) },
            move |ctx| {
                let inside = constant_map(
                    ctx.input(0),
                    |x| if x >= min && x <= max { T::one() } else { T::zero() },
                );
                keep_where(&inside, ctx.grad)
            },
        ))
    }
}

/// ReLU's rule: `grad` where `v > 0`, else 0, for `v` the ReLU's input or its output
/// (positive at the same cells). One fused pass unless the backward pass is recorded, when
/// it is a `where` on a constant mask (the same values).
pub(crate) fn relu_rule<T: Element>(grad: &Tensor<T>, v: &Tensor<T>, create_graph: bool) -> Result<Tensor<T>> {
    if !create_graph {
        return fused(grad, v.data(), |g, v| if v > T::zero() { g } else { T::zero() });
    }
    keep_where(
        &constant_map(v, |v| if v > T::zero() { T::one() } else { T::zero() }),
        grad,
    )
}

/// `f(g, v)` elementwise over a gradient and the values of a tensor of its shape (the op's
/// input or output): a first-order rule in one pass, giving exactly the values of the
/// composite form (`−(y·y) + 1` is `1 − y·y` in IEEE arithmetic; a select is a select).
fn fused<T: Element>(g: &Tensor<T>, v: &[T], f: impl Fn(T, T) -> T + Sync) -> Result<Tensor<T>> {
    assert_eq!(
        g.numel(),
        v.len(),
        "a fused rule's values must have the gradient's shape"
    );
    let data = elementwise::zip(g.data(), g.shape(), v, g.shape(), g.shape(), f);
    Ok(Tensor::from_storage(data, g.shape().clone()))
}

/// σ(x) without overflow: for x < 0 use eˣ/(1 + eˣ).
#[inline]
pub(crate) fn sigmoid_scalar<T: Element>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}
