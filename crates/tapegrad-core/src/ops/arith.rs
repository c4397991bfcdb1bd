//! Binary arithmetic with NumPy broadcasting, scalar forms, and operator overloads.
//!
//! A binary op's rule computes its gradients at the broadcast output shape; the tape sums
//! each one back over the dimensions its input was broadcast along (see
//! [`crate::tape`]), once for every op.

use crate::element::{c, Element};
use crate::error::Result;
use crate::grad_mode::no_grad;
use crate::kernels::elementwise;
use crate::ops::record;
use crate::ops::OpKind;
use crate::shape::Shape;
use crate::tape::BackwardCtx;
use crate::tensor::Tensor;
use smallvec::smallvec;

/// Gradients of a binary op's two inputs, at the broadcast output shape.
type PairGrads<T> = (Option<Tensor<T>>, Option<Tensor<T>>);

/// Forward of a broadcasting binary op plus recording of `rule`, whose gradients are at
/// the output shape (the tape sums them back to each input's shape).
#[track_caller]
fn binary<T, F, R>(kind: OpKind, a: &Tensor<T>, b: &Tensor<T>, save_output: bool, f: F, rule: R) -> Result<Tensor<T>>
where
    T: Element,
    F: Fn(T, T) -> T + Sync,
    R: Fn(&BackwardCtx<'_, T>) -> Result<PairGrads<T>>
        + Send
        + Sync
        + std::panic::UnwindSafe
        + std::panic::RefUnwindSafe
        + 'static,
{
    let shape: Shape = if a.shape() == b.shape() {
        a.shape().clone()
    } else {
        let shape = a.shape().broadcast(kind.name(), b.shape())?;
        crate::storage::ensure_alloc::<T>(kind.name(), &shape)?;
        shape
    };
    let data = elementwise::zip(a.data(), a.shape(), b.data(), b.shape(), &shape, f);
    let out = Tensor::from_storage(data, shape);
    Ok(record(kind, &[a, b], out, save_output, move |ctx| {
        let (ga, gb) = rule(ctx)?;
        Ok(smallvec![ga, gb])
    }))
}

/// Elementwise-unary forward plus recording, shared with [`crate::ops::unary`].
#[track_caller]
pub(crate) fn unary<T, F, R>(kind: OpKind, x: &Tensor<T>, save_output: bool, f: F, rule: R) -> Tensor<T>
where
    T: Element,
    F: Fn(T) -> T + Sync,
    R: Fn(&BackwardCtx<'_, T>) -> Result<Tensor<T>>
        + Send
        + Sync
        + std::panic::UnwindSafe
        + std::panic::RefUnwindSafe
        + 'static,
{
    let out = Tensor::from_storage(elementwise::map(x.data(), f), x.shape().clone());
    crate::ops::record_one(kind, x, out, save_output, rule)
}

/// [`unary`] for an op with one scalar argument `s` (a factor, an exponent, a slope) whose
/// rule is a plain function of it: the rule is kept in the node without an allocation.
#[track_caller]
pub(crate) fn unary_scalar<T, F>(
    kind: OpKind,
    x: &Tensor<T>,
    s: T,
    f: F,
    rule: fn(&BackwardCtx<'_, T>, T) -> Result<Tensor<T>>,
) -> Tensor<T>
where
    T: Element,
    F: Fn(T) -> T + Sync,
{
    let out = Tensor::from_storage(elementwise::map(x.data(), f), x.shape().clone());
    crate::tape::record_scalar(kind.name(), x, out, false, rule, s)
}

/// `value` where `keep` is nonzero, else 0: a select rather than a product with a 0/1
/// mask, so an infinite or NaN `value` where `keep` is 0 still gives 0, as in PyTorch.
/// Differentiable in `value` (its rule is this same select).
pub(crate) fn keep_where<T: Element>(keep: &Tensor<T>, value: &Tensor<T>) -> Result<Tensor<T>> {
    Tensor::where_cond(keep, value, &Tensor::scalar(T::zero()))
}

/// A 0/1 tensor (untracked) that is 1 where `pred(a, b)` holds, at the broadcast shape.
pub(crate) fn mask2<T: Element>(a: &Tensor<T>, b: &Tensor<T>, pred: impl Fn(T, T) -> bool + Sync) -> Result<Tensor<T>> {
    let shape = a.shape().broadcast("mask", b.shape())?;
    let data = elementwise::zip(a.data(), a.shape(), b.data(), b.shape(), &shape, |x, y| {
        if pred(x, y) {
            T::one()
        } else {
            T::zero()
        }
    });
    Ok(Tensor::from_storage(data, shape))
}

impl<T: Element> Tensor<T> {
    /// `a + b`, broadcasting. ∂/∂a = 1, ∂/∂b = 1.
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1., 2., 3., 4.], [2, 2])?;
    /// let b = Tensor::from_vec(vec![10., 20.], [2])?;
    /// assert_eq!(a.add(&b)?.to_vec(), vec![11., 22., 13., 24.]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn add(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        binary(
            OpKind::Add,
            self,
            other,
            false,
            |x, y| x + y,
            |ctx| {
                Ok((
                    ctx.needs(0).then(|| ctx.grad.clone()),
                    ctx.needs(1).then(|| ctx.grad.clone()),
                ))
            },
        )
    }

    /// `a − b`, broadcasting. ∂/∂a = 1, ∂/∂b = −1.
    #[track_caller]
    pub fn sub(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        binary(
            OpKind::Sub,
            self,
            other,
            false,
            |x, y| x - y,
            |ctx| {
                Ok((
                    ctx.needs(0).then(|| ctx.grad.clone()),
                    ctx.needs(1).then(|| ctx.grad.neg()),
                ))
            },
        )
    }

    /// `a · b` elementwise, broadcasting. ∂/∂a = b, ∂/∂b = a.
    #[track_caller]
    pub fn mul(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        binary(
            OpKind::Mul,
            self,
            other,
            false,
            |x, y| x * y,
            |ctx| {
                let ga = if ctx.needs(0) {
                    Some(ctx.grad.mul(ctx.input(1))?)
                } else {
                    None
                };
                let gb = if ctx.needs(1) {
                    Some(ctx.grad.mul(ctx.input(0))?)
                } else {
                    None
                };
                Ok((ga, gb))
            },
        )
    }

    /// `a / b` elementwise, broadcasting. ∂/∂a = 1/b, ∂/∂b = −a/b² = −(a/b)/b.
    #[track_caller]
    pub fn div(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        binary(
            OpKind::Div,
            self,
            other,
            true,
            |x, y| x / y,
            |ctx| {
                let g_over_b = ctx.grad.div(ctx.input(1))?;
                let gb = if ctx.needs(1) {
                    Some(g_over_b.mul(&ctx.output()?)?.neg())
                } else {
                    None
                };
                Ok((ctx.needs(0).then_some(g_over_b), gb))
            },
        )
    }

    /// `aᵇ` elementwise, broadcasting. ∂/∂a = b·aᵇ⁻¹, ∂/∂b = aᵇ·ln a (defined for a > 0).
    #[track_caller]
    pub fn pow(&self, exponent: &Tensor<T>) -> Result<Tensor<T>> {
        binary(
            OpKind::Pow,
            self,
            exponent,
            true,
            |x, y| x.powf(y),
            |ctx| {
                // PyTorch's conventions where the formulas give 0·∞: ∂/∂a = 0 where b = 0,
                // and ∂/∂b = 0 where a = 0 and b ≥ 0.
                let (a, b) = (ctx.input(0), ctx.input(1));
                let ga = if ctx.needs(0) {
                    let keep = no_grad(|| mask2(a, b, |_, y| y != T::zero()))?;
                    Some(keep_where(
                        &keep,
                        &ctx.grad.mul(&b.mul(&a.pow(&b.add_scalar(-T::one()))?)?)?,
                    )?)
                } else {
                    None
                };
                let gb = if ctx.needs(1) {
                    let keep = no_grad(|| mask2(a, b, |x, y| !(x == T::zero() && y >= T::zero())))?;
                    Some(keep_where(&keep, &ctx.grad.mul(&ctx.output()?.mul(&a.log())?)?)?)
                } else {
                    None
                };
                Ok((ga, gb))
            },
        )
    }

    /// Elementwise maximum, broadcasting. The gradient goes to the larger input; on a tie
    /// it is split in half (as in PyTorch).
    #[track_caller]
    pub fn maximum(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        binary(
            OpKind::Maximum,
            self,
            other,
            false,
            |x, y| if x.is_nan() || x >= y { x } else { y },
            |ctx| extreme_rule(ctx, |x, y| x > y || x.is_nan()),
        )
    }

    /// Elementwise minimum, broadcasting; ties split the gradient in half.
    #[track_caller]
    pub fn minimum(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        binary(
            OpKind::Minimum,
            self,
            other,
            false,
            |x, y| if x.is_nan() || x <= y { x } else { y },
            |ctx| extreme_rule(ctx, |x, y| x < y || x.is_nan()),
        )
    }

    /// `x + s` for a scalar `s`. ∂/∂x = 1.
    #[track_caller]
    pub fn add_scalar(&self, s: T) -> Tensor<T> {
        unary(
            OpKind::AddScalar,
            self,
            false,
            move |x| x + s,
            |ctx| Ok(ctx.grad.clone()),
        )
    }

    /// `x · s` for a scalar `s`. ∂/∂x = s.
    #[track_caller]
    pub fn mul_scalar(&self, s: T) -> Tensor<T> {
        unary_scalar(
            OpKind::MulScalar,
            self,
            s,
            move |x| x * s,
            |ctx, s| Ok(ctx.grad.mul_scalar(s)),
        )
    }

    /// `xᵖ` for a scalar exponent `p`. ∂/∂x = p·xᵖ⁻¹.
    #[track_caller]
    pub fn powf(&self, p: T) -> Result<Tensor<T>> {
        if p.is_nan() {
            return Err(crate::Error::bad_value("powf", "the exponent is NaN"));
        }
        Ok(unary_scalar(
            OpKind::PowScalar,
            self,
            p,
            move |x| x.powf(p),
            |ctx, p| {
                if p == T::zero() {
                    // x⁰ = 1 everywhere: the gradient is 0, also at x = 0 where p·x⁻¹ is 0·∞.
                    return Ok(ctx.grad.zeros_like());
                }
                ctx.grad.mul(&ctx.input(0).powf(p - T::one())?.mul_scalar(p))
            },
        ))
    }

    /// `x²`. ∂/∂x = 2x. The same values as `powf(2)` (both are the rounded `x·x`).
    ///
    /// ```
    /// # use tapegrad_core::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![-3., 2.], [2])?;
    /// assert_eq!(x.square().to_vec(), vec![9., 4.]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    #[track_caller]
    pub fn square(&self) -> Tensor<T> {
        unary(
            OpKind::PowScalar,
            self,
            false,
            |x| x * x,
            |ctx| ctx.grad.mul(&ctx.input(0).mul_scalar(c(2.0))),
        )
    }
}

/// Rule of maximum/minimum: `wins(a, b)` says where `a` is strictly the chosen one.
fn extreme_rule<T: Element>(ctx: &BackwardCtx<'_, T>, wins: fn(T, T) -> bool) -> Result<PairGrads<T>> {
    let (a, b) = (ctx.input(0), ctx.input(1));
    let half: T = c(0.5);
    let wa = no_grad(|| mask2(a, b, wins))?;
    let ties = no_grad(|| mask2(a, b, |x, y| x == y))?.mul_scalar(half);
    let ma = wa.add(&ties)?;
    let mb = ma.neg().add_scalar(T::one());
    let ga = if ctx.needs(0) {
        Some(keep_where(&ma, &ctx.grad.mul(&ma)?)?)
    } else {
        None
    };
    let gb = if ctx.needs(1) {
        Some(keep_where(&mb, &ctx.grad.mul(&mb)?)?)
    } else {
        None
    };
    Ok((ga, gb))
}

macro_rules! impl_binary_operator {
    ($trait:ident, $method:ident, $op:ident) => {
        impl<T: Element> std::ops::$trait<&Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            /// Panics with the message of the `Result` method if the shapes do not broadcast.
            #[track_caller]
            fn $method(self, rhs: &Tensor<T>) -> Tensor<T> {
                self.$op(rhs).unwrap_or_else(|e| panic!("{e}"))
            }
        }
        impl<T: Element> std::ops::$trait<Tensor<T>> for Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: Tensor<T>) -> Tensor<T> {
                std::ops::$trait::$method(&self, &rhs)
            }
        }
        impl<T: Element> std::ops::$trait<&Tensor<T>> for Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: &Tensor<T>) -> Tensor<T> {
                std::ops::$trait::$method(&self, rhs)
            }
        }
        impl<T: Element> std::ops::$trait<Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: Tensor<T>) -> Tensor<T> {
                std::ops::$trait::$method(self, &rhs)
            }
        }
    };
}

impl_binary_operator!(Add, add, add);
impl_binary_operator!(Sub, sub, sub);
impl_binary_operator!(Mul, mul, mul);
impl_binary_operator!(Div, div, div);

macro_rules! impl_scalar_operator {
    ($t:ty) => {
        impl std::ops::Add<$t> for &Tensor<$t> {
            type Output = Tensor<$t>;
            #[track_caller]
            fn add(self, s: $t) -> Tensor<$t> {
                self.add_scalar(s)
            }
        }
        impl std::ops::Sub<$t> for &Tensor<$t> {
            type Output = Tensor<$t>;
            #[track_caller]
            fn sub(self, s: $t) -> Tensor<$t> {
                self.add_scalar(-s)
            }
        }
        impl std::ops::Mul<$t> for &Tensor<$t> {
            type Output = Tensor<$t>;
            #[track_caller]
            fn mul(self, s: $t) -> Tensor<$t> {
                self.mul_scalar(s)
            }
        }
        impl std::ops::Div<$t> for &Tensor<$t> {
            type Output = Tensor<$t>;
            /// `x / s` elementwise (a true division, not a multiplication by `1/s`).
            #[track_caller]
            fn div(self, s: $t) -> Tensor<$t> {
                Tensor::div(self, &Tensor::scalar(s)).expect("a scalar broadcasts to any shape")
            }
        }
        impl std::ops::Add<$t> for Tensor<$t> {
            type Output = Tensor<$t>;
            #[track_caller]
            fn add(self, s: $t) -> Tensor<$t> {
                self.add_scalar(s)
            }
        }
        impl std::ops::Mul<$t> for Tensor<$t> {
            type Output = Tensor<$t>;
            #[track_caller]
            fn mul(self, s: $t) -> Tensor<$t> {
                self.mul_scalar(s)
            }
        }
    };
}

impl_scalar_operator!(f32);
impl_scalar_operator!(f64);

impl<T: Element> std::ops::Neg for &Tensor<T> {
    type Output = Tensor<T>;
    #[track_caller]
    fn neg(self) -> Tensor<T> {
        Tensor::neg(self)
    }
}

impl<T: Element> std::ops::Neg for Tensor<T> {
    type Output = Tensor<T>;
    #[track_caller]
    fn neg(self) -> Tensor<T> {
        Tensor::neg(&self)
    }
}
