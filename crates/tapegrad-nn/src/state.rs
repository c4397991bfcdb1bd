//! Matching named tensors to a module's parameters and buffers: the one loader behind
//! [`Module::load_state_dict`] and
//! [`safetensors::load`](crate::safetensors::load), with [`LoadReport`].

use crate::module::{Module, TorchParam};
use tapegrad_core::{Element, Error, Result, Shape, Tensor};

/// What a successful load did, like the `_IncompatibleKeys` that PyTorch's
/// `load_state_dict` returns.
///
/// A strict load succeeds only with `missing` and `unexpected` empty; a non-strict one
/// lists them here. Names are those of the source (PyTorch's names for a
/// [`Layout::PyTorch`](crate::safetensors::Layout) file).
///
/// ```
/// use tapegrad_nn::LoadReport;
/// let report = LoadReport::default();
/// assert!(report.is_complete());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Parameters of the model that the source lacks; they keep their values.
    pub missing: Vec<String>,
    /// Floating-point tensors of the source that the model has no parameter for; ignored.
    pub unexpected: Vec<String>,
    /// Tensors of a non-float dtype (integer, bool, …) that no parameter asked for, such as
    /// BatchNorm's `num_batches_tracked` (`I64`): tapegrad has no integer buffers, so
    /// they are skipped, never loaded, and never an error.
    pub skipped: Vec<String>,
    /// Parameters loaded from another floating-point dtype, with that dtype's safetensors
    /// name (`"F16"`, `"BF16"`, `"F32"`, `"F64"`), e.g. `("1.weight", "F16")` in an `f32`
    /// model.
    pub converted: Vec<(String, String)>,
}

impl LoadReport {
    /// Whether every parameter was loaded and every float tensor used (what `strict`
    /// demands).
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }
}

/// One named tensor of a source: a float tensor already converted to `T` (with the
/// dtype it was stored in, when that differs from `T`), or a tensor of another dtype.
pub(crate) struct Entry<'a, T: Element> {
    pub name: &'a str,
    pub value: Value<'a, T>,
}

pub(crate) enum Value<'a, T: Element> {
    Float {
        tensor: &'a Tensor<T>,
        converted_from: Option<&'a str>,
    },
    Other {
        dtype: &'a str,
        shape: &'a [usize],
    },
}

impl<'a, T: Element> Entry<'a, T> {
    pub fn float(name: &'a str, tensor: &'a Tensor<T>) -> Self {
        Entry {
            name,
            value: Value::Float {
                tensor,
                converted_from: None,
            },
        }
    }
}

/// The dims a parameter has in the source: reversed when the source stores the transpose.
fn source_dims(dims: &[usize], transposed: bool) -> Vec<usize> {
    let mut d = dims.to_vec();
    if transposed {
        d.reverse();
    }
    d
}

/// `t` with its axes reversed (numpy's `.T`; the matrix transpose for 2-D), as a new
/// untracked tensor.
pub(crate) fn reverse_axes<T: Element>(t: &Tensor<T>) -> Result<Tensor<T>> {
    let dims = t.dims();
    let out_dims: Vec<usize> = dims.iter().rev().copied().collect();
    if dims.len() < 2 || t.numel() == 0 {
        // Nothing to move (and no strides to compute: with a 0 dim, the products of the
        // other dims may not even fit a usize).
        return Tensor::from_vec(t.data().to_vec(), out_dims);
    }
    // Row-major strides of the input, visited in reversed-axis order.
    let mut strides = vec![1usize; dims.len()];
    for i in (0..dims.len() - 1).rev() {
        strides[i] = strides[i + 1] * dims[i + 1];
    }
    let rev_strides: Vec<usize> = strides.iter().rev().copied().collect();
    let src = t.data();
    let mut out = Vec::with_capacity(src.len());
    let mut idx = vec![0usize; out_dims.len()];
    for _ in 0..src.len() {
        let off: usize = idx.iter().zip(&rev_strides).map(|(i, s)| i * s).sum();
        out.push(src[off]);
        for k in (0..idx.len()).rev() {
            idx[k] += 1;
            if idx[k] < out_dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    Tensor::from_vec(out, out_dims)
}

/// tapegrad's names of a module's state entries, untransposed: its parameters, then its
/// buffers (the default [`Module::torch_params`], and the Keras layout's names).
pub(crate) fn state_names<T: Element, M: Module<T> + ?Sized>(module: &M) -> Vec<TorchParam> {
    let params = module.params().into_iter().map(|(name, _)| name);
    let buffers = module.buffers().into_iter().map(|(name, _)| name);
    params
        .chain(buffers)
        .map(|name| TorchParam {
            name,
            transposed: false,
        })
        .collect()
}

/// Loads `source` into the module's state entries — its parameters, then its buffers —
/// whose source-side names and layouts are `targets` (same order). Collects every problem
/// first; on any, returns one error listing them all and modifies nothing.
pub(crate) fn load_matched<T: Element, M: Module<T> + ?Sized>(
    module: &mut M,
    targets: Vec<TorchParam>,
    source: &[Entry<'_, T>],
    strict: bool,
    op: &str,
) -> Result<LoadReport> {
    let n_params = module.params().len();
    let (plan, report) = {
        let params = module.params();
        let buffers = module.buffers();
        let entries: Vec<&Tensor<T>> = params
            .iter()
            .map(|(_, p)| p.tensor())
            .chain(buffers.iter().map(|(_, b)| *b))
            .collect();
        check_matched(&entries, &targets, source, strict, op)?
    };
    // Everything fits: write the parameters (keeping their autograd identity), then the
    // buffers.
    let value_for = |i: usize| -> Result<Option<Tensor<T>>> {
        let Some(&(_, j)) = plan.iter().find(|(k, _)| *k == i) else {
            return Ok(None);
        };
        let Value::Float { tensor, .. } = &source[j].value else {
            return Ok(None);
        };
        Ok(Some(if targets[i].transposed {
            reverse_axes(tensor)?
        } else {
            (*tensor).clone()
        }))
    };
    for (i, (_, p)) in module.params_mut().into_iter().enumerate() {
        if let Some(v) = value_for(i)? {
            p.assign(&v)?;
        }
    }
    for (k, (_, b)) in module.buffers_mut().into_iter().enumerate() {
        if let Some(v) = value_for(n_params + k)? {
            b.data_mut().copy_from_slice(v.data());
        }
    }
    Ok(report)
}

/// The checks of [`load_matched`] over the module's state entries (`entries[i]` named
/// `targets[i]`): the plan `(entry, source index)` and the report, or one error listing
/// every problem.
fn check_matched<T: Element>(
    entries: &[&Tensor<T>],
    targets: &[TorchParam],
    source: &[Entry<'_, T>],
    strict: bool,
    op: &str,
) -> Result<(Vec<(usize, usize)>, LoadReport)> {
    if entries.len() != targets.len() {
        return Err(Error::Format(format!(
            "{op}: the module names {} parameters and buffers for this layout but has {} (a Module's torch_params must follow its params, then its buffers)",
            targets.len(),
            entries.len()
        )));
    }
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for e in source {
        if !seen.insert(e.name) {
            problems.push(format!("duplicate: '{}' appears more than once in the source", e.name));
        }
    }
    problems.dedup();
    let mut report = LoadReport::default();
    let mut used = vec![false; source.len()];
    let mut plan = Vec::with_capacity(entries.len());
    let (mut shapes, mut dtypes) = (Vec::new(), Vec::new());
    for (i, (p, target)) in entries.iter().zip(targets).enumerate() {
        let want = source_dims(p.dims(), target.transposed);
        let Some(j) = source.iter().position(|e| e.name == target.name) else {
            report.missing.push(target.name.clone());
            continue;
        };
        used[j] = true;
        match &source[j].value {
            Value::Float { tensor, converted_from } => {
                if tensor.dims() != want.as_slice() {
                    let note = if target.transposed {
                        format!(" (the transpose of the model's {})", p.shape())
                    } else {
                        String::new()
                    };
                    shapes.push(format!(
                        "shape: '{}' is {} in the source, the model needs {}{note}",
                        target.name,
                        tensor.shape(),
                        Shape::from(want.as_slice())
                    ));
                } else {
                    if let Some(d) = converted_from {
                        report.converted.push((target.name.clone(), d.to_string()));
                    }
                    plan.push((i, j));
                }
            }
            Value::Other { dtype, shape } => dtypes.push(format!(
                "dtype: '{}' is {dtype} {} in the source; a parameter needs a float tensor (F16, BF16, F32 or F64)",
                target.name,
                Shape::from(*shape)
            )),
        }
    }
    for (e, _) in source.iter().zip(&used).filter(|(_, u)| !**u) {
        match e.value {
            Value::Float { .. } => report.unexpected.push(e.name.to_string()),
            Value::Other { .. } => report.skipped.push(e.name.to_string()),
        }
    }
    if strict {
        let shape_of = |name: &str| {
            targets
                .iter()
                .zip(entries)
                .find(|(t, _)| t.name == name)
                .map(|(t, p)| Shape::from(source_dims(p.dims(), t.transposed).as_slice()).to_string())
                .unwrap_or_default()
        };
        problems.extend(
            report
                .missing
                .iter()
                .map(|n| format!("missing: '{n}' (the model's {}) is not in the source", shape_of(n))),
        );
        problems.extend(report.unexpected.iter().map(|n| {
            let shape = source
                .iter()
                .find(|e| e.name == n)
                .and_then(|e| match e.value {
                    Value::Float { tensor, .. } => Some(tensor.shape().to_string()),
                    Value::Other { .. } => None,
                })
                .unwrap_or_default();
            format!("unexpected: '{n}' ({shape}) is not a parameter of the model")
        }));
    }
    problems.extend(shapes);
    problems.extend(dtypes);
    if !problems.is_empty() {
        return Err(Error::Format(format!(
            "{op}: the source does not fit the model ({} problem{}):\n  {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  ")
        )));
    }
    Ok((plan, report))
}
