//! Export and import in the [safetensors](https://github.com/huggingface/safetensors)
//! format, readable by PyTorch (`safetensors.torch.load_file`), JAX and others.
//!
//! Layout: an 8-byte little-endian `u64` header length `n`, then `n` bytes of JSON
//! `{name: {"dtype": "F32" | "F64", "shape": [...], "data_offsets": [begin, end]}}` (padded
//! with spaces to a multiple of 8), then the raw little-endian element bytes, the offsets
//! counting from the end of the header. Tensors are laid out sorted by name.
//!
//! Note for PyTorch users: [`Dense`](crate::Dense) stores its weight `[in, out]` (Keras's
//! layout); a `torch.nn.Linear` weight is the transpose.

use crate::checkpoint::{read, write_atomic};
use crate::module::{Module, StateDict};
use ::safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::path::Path;
use tapegrad_core::{Element, Error, Result, Tensor};

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

/// Encodes named tensors as a safetensors file in memory.
///
/// Errors on a duplicate name.
pub fn encode<T: Element>(state: &[(String, Tensor<T>)]) -> Result<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    if let Some((n, _)) = state.iter().find(|(n, _)| !seen.insert(n.as_str())) {
        return Err(Error::Format(format!("safetensors: the name '{n}' appears twice")));
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
    ::safetensors::serialize(raws.iter().map(|(n, r)| (n.as_str(), r)), &None).map_err(st_err)
}

/// Decodes a safetensors file held in memory, sorted by name. Every tensor must be of
/// `T`'s dtype (`F32` for `f32`, `F64` for `f64`); the error names both otherwise.
/// Malformed input (bad header length, invalid JSON, offsets outside the buffer, shapes
/// that do not match their bytes) is an [`Error::Format`], never a panic.
pub fn decode<T: Element>(bytes: &[u8]) -> Result<StateDict<T>> {
    let st = SafeTensors::deserialize(bytes).map_err(st_err)?;
    let mut names: Vec<&String> = st.names();
    names.sort();
    let want = dtype_of::<T>();
    names
        .into_iter()
        .map(|name| {
            let view = st.tensor(name).map_err(st_err)?;
            let raw = view.data();
            let data: Vec<T> = match view.dtype() {
                Dtype::F32 if want == Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|c| T::from_f64_lossy(f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64))
                    .collect(),
                Dtype::F64 if want == Dtype::F64 => raw
                    .chunks_exact(8)
                    .map(|c| T::from_f64_lossy(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
                    .collect(),
                other => {
                    return Err(Error::Format(format!(
                        "safetensors: tensor '{name}' is {other:?} but the model is {} ({want:?})",
                        T::DTYPE
                    )))
                }
            };
            Ok((name.clone(), Tensor::from_vec(data, view.shape().to_vec())?))
        })
        .collect()
}

/// A module's parameters as safetensors bytes.
pub fn to_bytes<T: Element, M: Module<T> + ?Sized>(module: &M) -> Result<Vec<u8>> {
    encode(&module.state_dict())
}

/// Loads safetensors bytes into `module`, strictly (see [`Module::load_state_dict`]).
pub fn load_from_bytes<T: Element, M: Module<T> + ?Sized>(module: &mut M, bytes: &[u8]) -> Result<()> {
    module.load_state_dict(&decode(bytes)?)
}

/// Exports a module's parameters to a `.safetensors` file, atomically.
pub fn save<T: Element, M: Module<T> + ?Sized>(module: &M, path: impl AsRef<Path>) -> Result<()> {
    write_atomic(path.as_ref(), &to_bytes(module)?)
}

/// Imports parameters from a `.safetensors` file into `module`.
pub fn load<T: Element, M: Module<T> + ?Sized>(module: &mut M, path: impl AsRef<Path>) -> Result<()> {
    load_from_bytes(module, &read(path.as_ref())?)
}
