//! Weight initialisers, Keras's and PyTorch's, all drawn from a caller-supplied RNG.
//!
//! `fan_in` and `fan_out` are those of the layer: for a [`Dense`](crate::Dense) with
//! weight `[in, out]`, `fan_in = in` and `fan_out = out`.

use rand::Rng;
use rand_distr::{Distribution, Normal};
use tapegrad_core::{Element, Error, Result, Shape, Tensor};

/// Keras draws its "normal" initialisers from a normal truncated at ±2σ; dividing the
/// target standard deviation by this constant (the std of a unit normal truncated at ±2)
/// makes the truncated samples have the intended variance.
const TRUNCATED_STD_CORRECTION: f64 = 0.879_625_661_034_239_8;

/// How to fill a new parameter tensor.
///
/// | variant | distribution |
/// | --- | --- |
/// | `GlorotUniform` (Keras's default) | U(±√(6/(fan_in + fan_out))) |
/// | `GlorotNormal` | truncated N(0, 2/(fan_in + fan_out)) |
/// | `HeUniform` | U(±√(6/fan_in)) |
/// | `HeNormal` | truncated N(0, 2/fan_in) |
/// | `LecunUniform` | U(±√(3/fan_in)) |
/// | `LecunNormal` | truncated N(0, 1/fan_in) |
/// | `TorchLinear` (PyTorch's `nn.Linear` default, weight and bias) | U(±1/√fan_in) |
/// | `Uniform { low, high }` | U(low, high) |
/// | `Normal { mean, std }` | N(mean, std²), not truncated |
/// | `Zeros`, `Ones`, `Constant(c)` | constant |
///
/// "Truncated" follows Keras's `VarianceScaling`: samples beyond 2 standard deviations are
/// redrawn and the std is pre-scaled so the result has the stated variance. (PyTorch's
/// `kaiming_normal_`/`xavier_normal_` do not truncate.)
///
/// ```
/// use tapegrad_nn::{SeedableRng, StdRng};
/// use tapegrad_nn::Init;
/// let mut rng = StdRng::seed_from_u64(7);
/// let w = Init::HeUniform.sample::<f32, _>([100, 10], 100, 10, &mut rng)?;
/// let limit = (6.0f32 / 100.0).sqrt();
/// assert!(w.data().iter().all(|v| v.abs() <= limit));
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Init {
    /// U(±√(6/(fan_in + fan_out))), Keras's default kernel initialiser.
    #[default]
    GlorotUniform,
    /// Truncated normal with variance 2/(fan_in + fan_out).
    GlorotNormal,
    /// U(±√(6/fan_in)).
    HeUniform,
    /// Truncated normal with variance 2/fan_in.
    HeNormal,
    /// U(±√(3/fan_in)).
    LecunUniform,
    /// Truncated normal with variance 1/fan_in.
    LecunNormal,
    /// U(±1/√fan_in): PyTorch's `nn.Linear` default for both weight and bias
    /// (`kaiming_uniform_(a=√5)` reduces to this bound).
    TorchLinear,
    /// U(low, high).
    Uniform {
        /// Lower bound (inclusive).
        low: f64,
        /// Upper bound (exclusive).
        high: f64,
    },
    /// N(mean, std²).
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// All zeros (Keras's default bias).
    Zeros,
    /// All ones.
    Ones,
    /// Every element equal to the value.
    Constant(f64),
}

impl Init {
    /// A tensor of `shape` drawn from this initialiser, for a layer with the given fans.
    ///
    /// Errors if a fan that the formula divides by is zero, if `fan_in + fan_out`
    /// overflows, if the bounds are invalid, or if the shape's element count (or its size
    /// in bytes) overflows, instead of panicking in the allocation.
    pub fn sample<T: Element, R: Rng + ?Sized>(
        self,
        shape: impl Into<Shape>,
        fan_in: usize,
        fan_out: usize,
        rng: &mut R,
    ) -> Result<Tensor<T>> {
        let shape = shape.into();
        checked_len::<T>("Init::sample", shape.dims())?;
        let fans = fan_in.checked_add(fan_out).ok_or_else(|| {
            Error::bad_value(
                "Init::sample",
                format!("fan_in + fan_out overflows: fan_in = {fan_in}, fan_out = {fan_out}"),
            )
        })?;
        let scaled = |num: f64, fan: usize, what: &str| -> Result<f64> {
            if fan == 0 {
                return Err(Error::bad_value(
                    "Init::sample",
                    format!("{self:?} divides by {what}, which is 0 for shape {shape}"),
                ));
            }
            Ok(num / fan as f64)
        };
        let uniform = |limit: f64, rng: &mut R| -> Result<Tensor<T>> {
            let t = T::from_f64_lossy(limit);
            Tensor::rand_uniform(shape.clone(), -t, t, rng)
        };
        match self {
            Init::GlorotUniform => uniform(scaled(6.0, fans, "fan_in + fan_out")?.sqrt(), rng),
            Init::HeUniform => uniform(scaled(6.0, fan_in, "fan_in")?.sqrt(), rng),
            Init::LecunUniform => uniform(scaled(3.0, fan_in, "fan_in")?.sqrt(), rng),
            Init::TorchLinear => uniform(scaled(1.0, fan_in, "fan_in")?.sqrt(), rng),
            Init::GlorotNormal => truncated_normal(&shape, scaled(2.0, fans, "fan_in + fan_out")?, rng),
            Init::HeNormal => truncated_normal(&shape, scaled(2.0, fan_in, "fan_in")?, rng),
            Init::LecunNormal => truncated_normal(&shape, scaled(1.0, fan_in, "fan_in")?, rng),
            Init::Uniform { low, high } => {
                Tensor::rand_uniform(shape, T::from_f64_lossy(low), T::from_f64_lossy(high), rng)
            }
            Init::Normal { mean, std } => {
                Tensor::rand_normal(shape, T::from_f64_lossy(mean), T::from_f64_lossy(std), rng)
            }
            Init::Zeros => Ok(Tensor::zeros(shape)?),
            Init::Ones => Ok(Tensor::ones(shape)?),
            Init::Constant(v) => Ok(Tensor::full(shape, T::from_f64_lossy(v))?),
        }
    }
}

/// The element count of `dims`, checked: errors if the product or the size in bytes of a
/// `T` buffer overflows (`isize::MAX` bytes is the most a `Vec` can hold), which would
/// otherwise panic with "capacity overflow" when the tensor is allocated.
pub(crate) fn checked_len<T>(op: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|n| {
            n.checked_mul(std::mem::size_of::<T>())
                .is_some_and(|b| b <= isize::MAX as usize)
        })
        .ok_or_else(|| {
            Error::bad_shape(
                op,
                format!("a tensor of shape {dims:?} has more elements than memory can address"),
            )
        })
}

/// Keras's truncated normal with the given target variance (see [`Init`]).
fn truncated_normal<T: Element, R: Rng + ?Sized>(shape: &Shape, variance: f64, rng: &mut R) -> Result<Tensor<T>> {
    let std = variance.sqrt() / TRUNCATED_STD_CORRECTION;
    let dist = Normal::new(0.0, std)
        .map_err(|e| Error::bad_value("Init::sample", format!("truncated normal with std {std}: {e}")))?;
    let data = (0..shape.numel())
        .map(|_| loop {
            // Accepts with probability 0.954, so the loop ends after ~1.05 draws.
            let v: f64 = dist.sample(rng);
            if v.abs() <= 2.0 * std {
                break T::from_f64_lossy(v);
            }
        })
        .collect();
    Tensor::from_vec(data, shape.clone())
}
