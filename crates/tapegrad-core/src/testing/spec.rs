//! [`OpSpec`]: an op's entry in a gradient-checking registry, after PyTorch's `OpInfo`, and
//! [`sweep`], the sweep tapegrad-core runs over its own registry of built-in ops.

use super::strategies::{array_shapes, mutually_broadcastable_shapes, tensors, tensors_of};
use super::Mode;
use crate::error::{Error, Result};
use crate::gradcheck::GradCheck;
use crate::tensor::Tensor;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The function a [`Sample`] checks: its inputs to one output.
pub type SampleFn = Arc<dyn Fn(&[Tensor<f64>]) -> Result<Tensor<f64>> + Send + Sync>;

/// One random instance of an op: inputs, the function of them to check (which may close
/// over the instance's axes, indices, …) and a description for failure reports.
#[derive(Clone)]
pub struct Sample {
    /// The inputs, in `f64` (checks run in `f64`, see [`crate::gradcheck`]).
    pub inputs: Vec<Tensor<f64>>,
    /// The op applied to the inputs.
    pub f: SampleFn,
    /// What this instance is (`"sum axes [0] keepdim true"`), shown when it fails.
    pub desc: String,
}

impl Sample {
    /// A sample of `f` at `inputs`.
    ///
    /// ```
    /// use tapegrad_core::{testing::Sample, Tensor};
    /// let s = Sample::new(vec![Tensor::scalar(2.0)], "square", |xs| Ok(xs[0].square()));
    /// assert_eq!(s.call(&s.inputs)?.item()?, 4.0);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn new(
        inputs: Vec<Tensor<f64>>,
        desc: impl Into<String>,
        f: impl Fn(&[Tensor<f64>]) -> Result<Tensor<f64>> + Send + Sync + 'static,
    ) -> Self {
        Sample {
            inputs,
            f: Arc::new(f),
            desc: desc.into(),
        }
    }

    /// Applies the sample's function to `xs`.
    pub fn call(&self, xs: &[Tensor<f64>]) -> Result<Tensor<f64>> {
        (self.f)(xs)
    }
}

impl fmt::Debug for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.desc)?;
        for (i, x) in self.inputs.iter().enumerate() {
            writeln!(f, "  input {i}: {:?} {:?}", x.dims(), x.data())?;
        }
        Ok(())
    }
}

/// An op's registry entry: a name, a strategy of [`Sample`]s spanning its domain and
/// shapes, the highest order of derivative it supports, and its check settings. Build one
/// for your own op or custom gradient rule and pass it to [`sweep`] (or one of its checks)
/// to test it exactly as tapegrad-core tests its built-in ops.
///
/// ```
/// use tapegrad_core::testing::{away_from, sweep, OpSpec};
/// // A user's softsign x / (1 + |x|), away from the kink of |x| at 0.
/// let spec = OpSpec::unary("softsign", away_from(-3.0, 3.0, &[0.0], 0.05), |x| {
///     x.div(&x.abs().add_scalar(1.0))
/// });
/// let report = sweep(&[spec], 8)?;
/// assert_eq!(report.ops[0].0, "softsign");
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone)]
pub struct OpSpec {
    name: String,
    strategy: BoxedStrategy<Sample>,
    max_order: usize,
    settings: GradCheck,
}

impl fmt::Debug for OpSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpSpec")
            .field("name", &self.name)
            .field("max_order", &self.max_order)
            .field("settings", &self.settings)
            .finish()
    }
}

/// How long each op of a [`sweep`] took.
#[derive(Clone, Debug, Default)]
pub struct SweepReport {
    /// `(op name, time)` in registry order.
    pub ops: Vec<(String, Duration)>,
}

impl OpSpec {
    /// An entry for the samples of `strategy`; derivatives up to second order, default
    /// [`GradCheck`] settings.
    pub fn new(name: impl Into<String>, strategy: impl Strategy<Value = Sample> + 'static) -> Self {
        OpSpec {
            name: name.into(),
            strategy: strategy.boxed(),
            max_order: 2,
            settings: GradCheck::default(),
        }
    }

    /// An elementwise unary op on tensors of 0 to 3 dims (sides 1 to 3) with elements from
    /// `elements`.
    pub fn unary(
        name: impl Into<String>,
        elements: BoxedStrategy<f64>,
        op: impl Fn(&Tensor<f64>) -> Result<Tensor<f64>> + Send + Sync + 'static,
    ) -> Self {
        let name = name.into();
        let op = Arc::new(op);
        let desc = name.clone();
        let s = tensors_of::<f64>(array_shapes(0..=3, 1..=3), elements).prop_map(move |x| {
            let op = Arc::clone(&op);
            Sample::new(vec![x], desc.clone(), move |xs| op(&xs[0]))
        });
        Self::new(name, s)
    }

    /// A broadcasting binary op on two mutually broadcastable shapes (0 to 3 dims), with
    /// elements from `a` and `b` for each side.
    pub fn binary(
        name: impl Into<String>,
        a: BoxedStrategy<f64>,
        b: BoxedStrategy<f64>,
        op: impl Fn(&Tensor<f64>, &Tensor<f64>) -> Result<Tensor<f64>> + Send + Sync + 'static,
    ) -> Self {
        let name = name.into();
        let op = Arc::new(op);
        let desc = name.clone();
        let s = mutually_broadcastable_shapes(2, 0..=3, 1..=3)
            .prop_flat_map(move |b2| {
                let [sa, sb]: [Vec<usize>; 2] = b2.input_shapes.try_into().expect("two shapes");
                (tensors::<f64>(sa, a.clone()), tensors::<f64>(sb, b.clone()))
            })
            .prop_map(move |(x, y)| {
                let op = Arc::clone(&op);
                Sample::new(vec![x, y], desc.clone(), move |xs| op(&xs[0], &xs[1]))
            });
        Self::new(name, s)
    }

    /// The highest order of derivative the op's rule supports (default 2): 1 for a rule
    /// that is not itself differentiable (one that computes its gradient from raw data).
    pub fn max_order(mut self, order: usize) -> Self {
        self.max_order = order;
        self
    }

    /// Check settings for this op (tolerances, step, fast mode).
    pub fn settings(mut self, settings: GradCheck) -> Self {
        self.settings = settings;
        self
    }

    /// The op's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The strategy of samples.
    pub fn strategy(&self) -> &BoxedStrategy<Sample> {
        &self.strategy
    }

    /// The highest order of derivative the op supports.
    pub fn supported_order(&self) -> usize {
        self.max_order
    }

    /// Runs `check` on `cases` samples (deterministically seeded, so CI is reproducible),
    /// shrinking a failure to a small sample. The error names the op and that sample.
    pub fn for_each_case(
        &self,
        cases: u32,
        check: impl Fn(&Sample) -> std::result::Result<(), TestCaseError>,
    ) -> Result<()> {
        let config = Config {
            cases,
            max_global_rejects: 100_000,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
        runner
            .run(&self.strategy, |s| check(&s))
            .map_err(|e| Error::GradCheck(format!("op `{}`: {e}", self.name)))
    }

    /// [`check_grads`](super::check_grads) on `cases` samples, at `order` (capped at the op's
    /// [`max_order`](OpSpec::max_order)) in each of `modes`, with the op's settings.
    pub fn check_grads(&self, cases: u32, order: usize, modes: &[Mode]) -> Result<()> {
        let order = order.min(self.max_order);
        self.for_each_case(cases, |s| {
            self.settings
                .check_grads(|xs| s.call(xs), &s.inputs, order, modes)
                .map(|_| ())
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", s.desc)))
        })
    }
}

/// The registry sweep, for tapegrad-core's ops and yours alike: for every op, first
/// derivatives in reverse mode on `cases` samples, second derivatives (reverse over reverse)
/// on `cases / 4`, forward mode on `cases / 8` (at least one each), and the fast
/// (random-projection) check on `cases / 8`. The first failure is an error naming the op
/// and its shrunk sample; on success, the time per op.
pub fn sweep(specs: &[OpSpec], cases: u32) -> Result<SweepReport> {
    let mut report = SweepReport::default();
    for spec in specs {
        let start = Instant::now();
        spec.check_grads(cases.max(1), 1, &[Mode::Reverse])?;
        spec.check_grads((cases / 4).max(1), 2, &[Mode::Reverse])?;
        spec.check_grads((cases / 8).max(1), 1, &[Mode::Forward])?;
        let fast = spec.clone().settings(spec.settings.clone().fast(true));
        fast.check_grads((cases / 8).max(1), 1, &[Mode::Reverse])?;
        report.ops.push((spec.name.clone(), start.elapsed()));
    }
    Ok(report)
}
