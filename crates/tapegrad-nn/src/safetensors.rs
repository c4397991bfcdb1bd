//! Export and import in the [safetensors](https://github.com/huggingface/safetensors)
//! format, in PyTorch's layout and names or in Keras's.
//!
//! # The format
//!
//! An 8-byte little-endian `u64` header length `n`, then `n` bytes of JSON
//! `{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__":
//! {string: string}}` (padded with spaces to a multiple of 8), then the raw little-endian
//! row-major element bytes, the offsets counting from the end of the header.
//!
//! # Layouts
//!
//! A file holds a model's parameters in one of two [`Layout`]s, chosen explicitly on save
//! and on load:
//!
//! | | [`Layout::PyTorch`] | [`Layout::Keras`] |
//! | --- | --- | --- |
//! | [`Dense`](crate::Dense) weight | `[out, in]` (`nn.Linear.weight`) | `[in, out]` (Keras's kernel, tapegrad's own) |
//! | names | PyTorch's `state_dict` names: a [`Dense`](crate::Dense) with an activation counts as two modules (`nn.Linear`, then the activation), see [`Module::torch_modules`] | tapegrad's names ([`Module::parameters`]) |
//!
//! For Flatten → Dense(relu) → Dropout → Dense, the PyTorch names are `1.weight`,
//! `1.bias`, `4.weight`, `4.bias` (Flatten, Linear, ReLU, Dropout, Linear), the Keras
//! ones `1.weight`, `1.bias`, `3.weight`, `3.bias`.
//!
//! [`save`] writes `__metadata__` with `framework` = `tapegrad`, `layout` = `pytorch` or
//! `keras`, `dtype` = `f32` or `f64`, and, for the PyTorch layout, `format` = `pt` (the
//! Hugging Face convention for PyTorch files). [`load`] refuses a file whose metadata names
//! the other layout; a file without a `layout` entry (e.g. written by PyTorch's
//! `safetensors.torch.save_file`) is read in the layout the caller asks for.
//!
//! # Loading
//!
//! - Float tensors of any of `F16`, `BF16` (through the `half` crate), `F32` and `F64` are
//!   converted to the model's element type (rounding to nearest when narrowing); the
//!   [`LoadReport`] lists which were converted.
//! - Tensors of other dtypes (integers such as BatchNorm's `num_batches_tracked`, bools)
//!   are **skipped**: tapegrad has no integer buffers. They are listed in
//!   [`LoadReport::skipped`] and never fail a load, unless a parameter's name points at
//!   one (a dtype mismatch).
//! - `strict = true` (PyTorch's default) demands that every parameter be present and every
//!   float tensor be used; `strict = false` loads what matches and reports the missing and
//!   unexpected names. Either way a shape or dtype mismatch is an error, and the error lists
//!   every problem at once (missing, unexpected, shape, dtype). Nothing is modified on error.
//!
//! # Porting a PyTorch MLP in and out
//!
//! The PyTorch side (`pip install torch safetensors`):
//!
//! ```python
//! import torch, torch.nn as nn
//! from safetensors.torch import save_file, load_file
//! net = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3))
//! save_file(net.state_dict(), "mlp.safetensors")          # → tapegrad
//! net.load_state_dict(load_file("from_tapegrad.safetensors"))  # ← tapegrad
//! ```
//!
//! The same network in tapegrad, here reading a file made by its own export:
//!
//! ```
//! use tapegrad_core::Tensor;
//! use tapegrad_nn::safetensors::{self, Layout};
//! use tapegrad_nn::{Activation, Dense, Dropout, Flatten, Module, SeedableRng, Sequential, StdRng};
//! let mlp = |seed| -> tapegrad_core::Result<Sequential<f32>> {
//!     let mut rng = StdRng::seed_from_u64(seed);
//!     Ok(Sequential::new()
//!         .add(Flatten)
//!         .add(Dense::linear(4, 8, &mut rng)?.with_activation(Activation::Relu))
//!         .add(Dropout::new(0.1, seed)?)
//!         .add(Dense::linear(8, 3, &mut rng)?))
//! };
//! let dir = std::env::temp_dir().join(format!("tapegrad-st-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("from_tapegrad.safetensors");
//!
//! let trained = mlp(1)?;
//! safetensors::save(&trained, &path, Layout::PyTorch)?; // loadable by net.load_state_dict
//! let names: Vec<String> = trained.torch_params().into_iter().map(|p| p.name).collect();
//! assert_eq!(names, ["1.weight", "1.bias", "4.weight", "4.bias"]);
//!
//! let mut model = mlp(2)?; // from PyTorch: the weights are transposed into place
//! let report = safetensors::load(&mut model, &path, Layout::PyTorch, true)?;
//! assert!(report.is_complete());
//! assert_eq!(model.parameters()[0].1.to_vec(), trained.parameters()[0].1.to_vec());
//!
//! // A PyTorch file is never read as a Keras one.
//! assert!(safetensors::load(&mut model, &path, Layout::Keras, true).is_err());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::checkpoint::{read, write_atomic};
use crate::module::{Module, StateDict, TorchParam};
use crate::state::{load_matched, reverse_axes, state_names, Entry, LoadReport, Value};
use ::safetensors::tensor::{Dtype, SafeTensors, View};
use half::{bf16, f16};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use tapegrad_core::{Element, Error, Result, Tensor};

/// How parameters are named and laid out in a file; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// PyTorch's `state_dict`: `nn.Linear` weights `[out, in]`, activations counted as
    /// modules in the indices.
    PyTorch,
    /// Keras's kernel layout `[in, out]` and tapegrad's own parameter names.
    Keras,
}

impl Layout {
    /// The value of the `layout` metadata entry: `"pytorch"` or `"keras"`.
    ///
    /// ```
    /// use tapegrad_nn::safetensors::Layout;
    /// assert_eq!(Layout::PyTorch.name(), "pytorch");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Layout::PyTorch => "pytorch",
            Layout::Keras => "keras",
        }
    }
}

/// One tensor of a decoded file.
#[derive(Clone, Debug)]
pub struct FileTensor<T: Element> {
    /// Its name.
    pub name: String,
    /// Its safetensors dtype name (`"F16"`, `"BF16"`, `"F32"`, `"F64"`, `"I64"`, …).
    pub dtype: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values converted to `T` for a float dtype; `None` for any other dtype (integer
    /// and bool tensors are skipped, see the [module docs](self)).
    pub values: Option<Tensor<T>>,
}

/// A decoded safetensors file: its tensors sorted by name, and its `__metadata__`.
#[derive(Clone, Debug)]
pub struct Decoded<T: Element> {
    /// The tensors, sorted by name.
    pub tensors: Vec<FileTensor<T>>,
    /// The `__metadata__` map (empty if the file has none).
    pub metadata: BTreeMap<String, String>,
}

impl<T: Element> Decoded<T> {
    /// The layout the metadata names, `None` when it names none. Errors on a `layout`
    /// entry other than `pytorch` or `keras`.
    pub fn layout(&self) -> Result<Option<Layout>> {
        match self.metadata.get("layout").map(String::as_str) {
            None => Ok(None),
            Some("pytorch") => Ok(Some(Layout::PyTorch)),
            Some("keras") => Ok(Some(Layout::Keras)),
            Some(other) => Err(Error::Format(format!(
                "safetensors: the file's __metadata__ names the layout {other:?}, which is neither \"pytorch\" nor \"keras\""
            ))),
        }
    }

    /// The float tensors under their names (other dtypes left out).
    pub fn into_state_dict(self) -> StateDict<T> {
        self.tensors
            .into_iter()
            .filter_map(|t| t.values.map(|v| (t.name, v)))
            .collect()
    }
}

struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }

    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn st_err(e: ::safetensors::SafeTensorError) -> Error {
    Error::Format(format!("safetensors: {e:?}"))
}

/// Refuses a header whose `data_offsets` point past the end of the file before the
/// `safetensors` crate sees it: its `read_metadata` (0.4) adds the last offset to the
/// header's size unchecked, which overflows (a panic under overflow checks, a wrapped
/// comparison otherwise) for offsets near 2⁶⁴. Headers that do not parse are left to it.
fn check_offsets(bytes: &[u8]) -> Result<()> {
    let Some(len) = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    else {
        return Ok(());
    };
    let Some(header) = usize::try_from(len)
        .ok()
        .and_then(|n| bytes.get(8..8usize.checked_add(n)?))
    else {
        return Ok(());
    };
    let data_len = (bytes.len() - 8 - header.len()) as u64;
    let Ok(serde_json::Value::Object(entries)) = serde_json::from_slice::<serde_json::Value>(header) else {
        return Ok(());
    };
    for (name, entry) in &entries {
        let offsets = entry.get("data_offsets").and_then(|o| o.as_array());
        if let Some(past) = offsets
            .into_iter()
            .flatten()
            .filter_map(|o| o.as_u64())
            .find(|&o| o > data_len)
        {
            return Err(Error::Format(format!(
                "safetensors: tensor '{name}' has data offset {past}, past the end of the {data_len} data bytes"
            )));
        }
    }
    Ok(())
}

/// `T`'s safetensors dtype: F32 for `f32`, F64 for `f64`.
fn dtype_of<T: Element>() -> Dtype {
    match T::DTYPE {
        "f32" => Dtype::F32,
        _ => Dtype::F64,
    }
}

fn le_bytes<T: Element>(t: &Tensor<T>) -> Vec<u8> {
    match T::DTYPE {
        "f32" => t
            .data()
            .iter()
            .flat_map(|&v| (v.as_f64() as f32).to_le_bytes())
            .collect(),
        _ => t.data().iter().flat_map(|&v| v.as_f64().to_le_bytes()).collect(),
    }
}

/// Encodes named tensors (in `T`'s dtype) and a `__metadata__` map (omitted when empty)
/// as safetensors bytes: the low-level form of [`to_bytes`].
///
/// Errors on a duplicate name, or a tensor named `__metadata__` (the format reserves that
/// key for the metadata map, so such a file could not be read back).
///
/// ```
/// use std::collections::BTreeMap;
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::safetensors::{decode, encode};
/// let state = vec![("w".to_string(), Tensor::<f32>::from_vec(vec![1.0, 2.0], [2])?)];
/// let meta = BTreeMap::from([("step".to_string(), "10".to_string())]);
/// let file = decode::<f64>(&encode(&state, &meta)?)?;
/// assert_eq!(file.metadata["step"], "10");
/// assert_eq!(file.tensors[0].values.as_ref().unwrap().to_vec(), [1.0, 2.0]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn encode<T: Element>(state: &[(String, Tensor<T>)], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut seen = HashSet::new();
    if let Some((n, _)) = state.iter().find(|(n, _)| !seen.insert(n.as_str())) {
        return Err(Error::Format(format!("safetensors: the name '{n}' appears twice")));
    }
    if state.iter().any(|(n, _)| n == "__metadata__") {
        return Err(Error::Format(
            "safetensors: a tensor cannot be named '__metadata__' (the format's key for the metadata map)".into(),
        ));
    }
    let raws: Vec<(String, Raw)> = state
        .iter()
        .map(|(n, t)| {
            let raw = Raw {
                dtype: dtype_of::<T>(),
                shape: t.dims().to_vec(),
                bytes: le_bytes(t),
            };
            (n.clone(), raw)
        })
        .collect();
    let meta: Option<HashMap<String, String>> =
        (!metadata.is_empty()).then(|| metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    ::safetensors::serialize(raws.iter().map(|(n, r)| (n.as_str(), r)), &meta).map_err(st_err)
}

/// Converts little-endian elements of a float dtype; `None` for other dtypes.
fn float_values<T: Element>(dtype: Dtype, raw: &[u8]) -> Option<Vec<T>> {
    fn conv<T: Element, const N: usize>(raw: &[u8], f: fn([u8; N]) -> f64) -> Vec<T> {
        raw.chunks_exact(N)
            .map(|c| {
                let mut b = [0u8; N];
                b.copy_from_slice(c);
                T::from_f64_lossy(f(b))
            })
            .collect()
    }
    Some(match dtype {
        Dtype::F16 => conv::<T, 2>(raw, |b| f16::from_le_bytes(b).to_f64()),
        Dtype::BF16 => conv::<T, 2>(raw, |b| bf16::from_le_bytes(b).to_f64()),
        Dtype::F32 => conv::<T, 4>(raw, |b| f32::from_le_bytes(b) as f64),
        Dtype::F64 => conv::<T, 8>(raw, f64::from_le_bytes),
        _ => return None,
    })
}

/// Decodes a safetensors file held in memory: float tensors (F16, BF16, F32, F64) are
/// converted to `T`, others kept as name, dtype and shape only. Malformed input (bad
/// header length, invalid JSON, offsets outside the buffer, shapes that do not match their
/// bytes) is an [`Error::Format`], never a panic.
pub fn decode<T: Element>(bytes: &[u8]) -> Result<Decoded<T>> {
    check_offsets(bytes)?;
    let st = SafeTensors::deserialize(bytes).map_err(st_err)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(st_err)?;
    let metadata = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut names: Vec<&String> = st.names();
    names.sort();
    let tensors = names
        .into_iter()
        .map(|name| {
            let view = st.tensor(name).map_err(st_err)?;
            let values = match float_values::<T>(view.dtype(), view.data()) {
                Some(data) => Some(Tensor::from_vec(data, view.shape().to_vec())?),
                None => None,
            };
            Ok(FileTensor {
                name: name.clone(),
                dtype: format!("{:?}", view.dtype()),
                shape: view.shape().to_vec(),
                values,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Decoded { tensors, metadata })
}

fn targets<T: Element, M: Module<T> + ?Sized>(module: &M, layout: Layout) -> Vec<TorchParam> {
    match layout {
        Layout::PyTorch => module.torch_params(),
        Layout::Keras => state_names(module),
    }
}

/// A module's parameters and buffers as safetensors bytes in `layout`, with the metadata described in
/// the [module docs](self).
///
/// ```
/// use tapegrad_nn::safetensors::{self, Layout};
/// use tapegrad_nn::{Dense, SeedableRng, StdRng};
/// let layer = Dense::<f32>::new(3, 2, &mut StdRng::seed_from_u64(0))?;
/// let file = safetensors::decode::<f32>(&safetensors::to_bytes(&layer, Layout::PyTorch)?)?;
/// assert_eq!(file.layout()?, Some(Layout::PyTorch));
/// assert_eq!((file.tensors[1].name.as_str(), &file.tensors[1].shape[..]), ("weight", &[2, 3][..]));
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn to_bytes<T: Element, M: Module<T> + ?Sized>(module: &M, layout: Layout) -> Result<Vec<u8>> {
    let names = targets(module, layout);
    // The state entries: parameters, then buffers (BatchNorm's running statistics).
    let entries = module.state_dict();
    if names.len() != entries.len() {
        return Err(Error::Format(format!(
            "safetensors: the module names {} parameters and buffers for the {} layout but has {}",
            names.len(),
            layout.name(),
            entries.len()
        )));
    }
    let state = names
        .into_iter()
        .zip(entries)
        .map(|(t, (_, v))| {
            let v = if t.transposed { reverse_axes(&v)? } else { v };
            Ok((t.name, v))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta = BTreeMap::from([
        ("framework".to_string(), "tapegrad".to_string()),
        ("layout".to_string(), layout.name().to_string()),
        ("dtype".to_string(), T::DTYPE.to_string()),
    ]);
    if layout == Layout::PyTorch {
        meta.insert("format".into(), "pt".into());
    }
    encode(&state, &meta)
}

/// Loads safetensors bytes into `module` in `layout`; see the [module docs](self) for
/// dtypes, `strict` and errors.
///
/// ```
/// use std::collections::BTreeMap;
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::safetensors::{self, Layout};
/// use tapegrad_nn::{Dense, SeedableRng, StdRng};
/// // As PyTorch would write nn.Linear(2, 1, bias=False): weight [out, in] = [1, 2].
/// let state = vec![("weight".to_string(), Tensor::<f64>::from_vec(vec![3.0, 4.0], [1, 2])?)];
/// let bytes = safetensors::encode(&state, &BTreeMap::new())?;
/// let mut layer = Dense::<f64>::new(2, 1, &mut StdRng::seed_from_u64(0))?.without_bias();
/// let report = safetensors::load_from_bytes(&mut layer, &bytes, Layout::PyTorch, true)?;
/// assert!(report.is_complete());
/// assert_eq!(layer.weight().dims(), &[2, 1]);
/// assert_eq!(layer.weight().to_vec(), [3.0, 4.0]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn load_from_bytes<T: Element, M: Module<T> + ?Sized>(
    module: &mut M,
    bytes: &[u8],
    layout: Layout,
    strict: bool,
) -> Result<LoadReport> {
    let file = decode::<T>(bytes)?;
    if let Some(found) = file.layout()? {
        if found != layout {
            return Err(Error::Format(format!(
                "safetensors: the file's __metadata__ says layout \"{}\" but it is being loaded as Layout::{layout:?}; \
                 load it with Layout::{found:?} (reading it in the other layout would transpose or misname weights)",
                found.name()
            )));
        }
    }
    let targets = targets(module, layout);
    let source: Vec<Entry<'_, T>> = file
        .tensors
        .iter()
        .map(|t| Entry {
            name: &t.name,
            value: match &t.values {
                Some(v) => Value::Float {
                    tensor: v,
                    converted_from: (t.dtype != format!("{:?}", dtype_of::<T>())).then_some(t.dtype.as_str()),
                },
                None => Value::Other {
                    dtype: &t.dtype,
                    shape: &t.shape,
                },
            },
        })
        .collect();
    let op = match layout {
        Layout::PyTorch => "safetensors::load (PyTorch layout)",
        Layout::Keras => "safetensors::load (Keras layout)",
    };
    load_matched(module, targets, &source, strict, op)
}

/// Exports a module's parameters to a `.safetensors` file in `layout`, atomically.
pub fn save<T: Element, M: Module<T> + ?Sized>(module: &M, path: impl AsRef<Path>, layout: Layout) -> Result<()> {
    write_atomic(path.as_ref(), &to_bytes(module, layout)?)
}

/// Imports parameters from a `.safetensors` file into `module` in `layout` (see
/// [`load_from_bytes`]).
pub fn load<T: Element, M: Module<T> + ?Sized>(
    module: &mut M,
    path: impl AsRef<Path>,
    layout: Layout,
    strict: bool,
) -> Result<LoadReport> {
    load_from_bytes(module, &read(path.as_ref())?, layout, strict)
}
