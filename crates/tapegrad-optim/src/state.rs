//! [`OptimizerState`]: a serialisable, validated snapshot of an optimizer, and its bytes.
//!
//! # Format (version 2)
//!
//! The framing of tapegrad-nn's checkpoints:
//!
//! | bytes | content |
//! | --- | --- |
//! | 8 | magic `TGOPTIMS` |
//! | 4 | format version, `u32` little-endian |
//! | 3 | element dtype, `f32` or `f64` |
//! | … | bincode 2 (standard configuration) of the state's fields |
//! | 4 | CRC-32 (IEEE) of everything before it, little-endian |
//!
//! Reading checks the magic, the version and the checksum before decoding, so every
//! truncation and every flipped byte is an error; decoding runs under a byte limit
//! proportional to the input ([`MAX_STATE_BYTES`] at most), so a hostile length prefix
//! cannot make it allocate gigabytes; and the decoded state is validated
//! ([`OptimizerState`] lists the rules). Any problem is an [`Error::Format`].

use serde::{Deserialize, Serialize};
use tapegrad_core::{Element, Error, Result};

/// The first bytes of an optimizer state.
const MAGIC: &[u8; 8] = b"TGOPTIMS";
/// The format version this build writes and reads (version 1, `TGOPTIM1`, was unframed
/// and keyed by position).
pub const STATE_FORMAT_VERSION: u32 = 2;
const HEADER_LEN: usize = MAGIC.len() + 4 + 3;
const CRC_LEN: usize = 4;

/// Largest decoded size [`OptimizerState::from_bytes`] accepts: 4 GiB − 1.
pub const MAX_STATE_BYTES: usize = u32::MAX as usize;

/// One parameter's state in an [`OptimizerState`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct ParamEntry<T> {
    /// The parameter's name, e.g. `"0.weight"`.
    pub name: String,
    /// The parameter's shape when its state was made.
    pub shape: Vec<usize>,
    /// How many updates it has received: `t` in the bias corrections, ≥ 1.
    pub step: u64,
    /// One buffer per [`OptimizerState::buffer_names`], each of `shape`'s element count.
    pub buffers: Vec<Vec<T>>,
}

/// A serialisable snapshot of an optimizer (see [`Optimizer::state`](crate::Optimizer::state)).
///
/// A valid state (checked by [`OptimizerState::from_bytes`] and, with the
/// hyper-parameters' ranges, by [`Optimizer::load_state`](crate::Optimizer::load_state)):
/// entries have distinct names and `1 ≤ step ≤` the global [`step`](Self::step); each
/// has one buffer per name in [`buffer_names`](Self::buffer_names), as long as its
/// shape's element count, all finite (and ≥ 0 for averages of squares).
///
/// Discrete options (the PyTorch or Keras form, Nesterov, centering, …) are stored among
/// the hyper-parameters as `0.0` or `1.0`; disabled clipping thresholds as `+∞`.
///
/// ```
/// use tapegrad_optim::{Adam, Optimizer, OptimizerState};
/// let mut opt = Adam::<f32>::pytorch(0.1)?;
/// let mut w = vec![1.0f32, 2.0];
/// opt.step_slices(&mut [("w", &mut w[..], Some(&[0.5, 0.5][..]))])?;
/// let bytes = opt.state().to_bytes()?;
/// let state = OptimizerState::<f32>::from_bytes(&bytes)?;
/// assert_eq!((state.step, state.params[0].name.as_str()), (1, "w"));
/// assert!(OptimizerState::<f64>::from_bytes(&bytes).unwrap_err().to_string().contains("f32"));
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct OptimizerState<T> {
    /// [`Optimizer::kind`](crate::Optimizer::kind) of the optimizer that made it.
    pub kind: String,
    /// [`Optimizer::step_count`](crate::Optimizer::step_count).
    pub step: u64,
    /// Hyper-parameters by name, e.g. `("lr", 1e-3)`.
    pub hyper: Vec<(String, f64)>,
    /// Names of the per-parameter buffers, e.g. `["exp_avg", "exp_avg_sq"]` (PyTorch's).
    pub buffer_names: Vec<String>,
    /// Every parameter updated so far, by name (sorted).
    pub params: Vec<ParamEntry<T>>,
}

/// What [`OptimizerState::check`] needs from the optimizer's configuration.
pub(crate) struct StateCheck {
    pub nonnegative: &'static [&'static str],
}

/// Decodes with bincode's limit on claimed bytes set to the smallest of 1 MiB, 16 MiB,
/// 256 MiB and [`MAX_STATE_BYTES`] that a genuine state of this many bytes can need (each
/// encoded byte decodes to at most 9 claimed bytes: a 1-byte varint claims 8). A hostile
/// length prefix thus makes the decoder allocate at most about 150× the input's size
/// (at least 1 MiB), never gigabytes for a small file.
fn decode_bounded<S: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<(S, usize), bincode::error::DecodeError> {
    fn with<S: for<'de> Deserialize<'de>, const N: usize>(
        body: &[u8],
    ) -> Result<(S, usize), bincode::error::DecodeError> {
        bincode::serde::decode_from_slice(body, bincode::config::standard().with_limit::<N>())
    }
    let need = body.len().saturating_mul(9).saturating_add(1 << 16);
    match need {
        n if n <= 1 << 20 => with::<S, { 1 << 20 }>(body),
        n if n <= 1 << 24 => with::<S, { 1 << 24 }>(body),
        n if n <= 1 << 28 => with::<S, { 1 << 28 }>(body),
        _ => with::<S, MAX_STATE_BYTES>(body),
    }
}

fn format_err(msg: impl std::fmt::Display) -> Error {
    Error::Format(format!("optimizer state: {msg}"))
}

impl<T: Element> OptimizerState<T> {
    /// The structural rules of a valid state (see the type's docs); the message names
    /// the parameter and the values.
    pub(crate) fn check(&self, rules: StateCheck) -> std::result::Result<(), String> {
        let nonneg: Vec<bool> = self
            .buffer_names
            .iter()
            .map(|b| rules.nonnegative.contains(&b.as_str()))
            .collect();
        for (i, e) in self.params.iter().enumerate() {
            let name = &e.name;
            if self.params[..i].iter().any(|o| o.name == e.name) {
                return Err(format!("parameter `{name}` has two entries"));
            }
            if e.step == 0 || e.step > self.step {
                return Err(format!(
                    "parameter `{name}` has {} updates but the optimizer took {} steps (must be 1 ..= the step count)",
                    e.step, self.step
                ));
            }
            let len = e
                .shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| format!("parameter `{name}` has shape {:?}, too many elements", e.shape))?;
            if e.buffers.len() != self.buffer_names.len() {
                return Err(format!(
                    "parameter `{name}` has {} buffers but the state names {} ({:?})",
                    e.buffers.len(),
                    self.buffer_names.len(),
                    self.buffer_names
                ));
            }
            for ((buf, bname), &nonneg) in e.buffers.iter().zip(&self.buffer_names).zip(&nonneg) {
                if buf.len() != len {
                    return Err(format!(
                        "buffer `{bname}` of parameter `{name}` has {} elements but the shape {:?} has {len}",
                        buf.len(),
                        e.shape
                    ));
                }
                if let Some((k, v)) = buf
                    .iter()
                    .enumerate()
                    .find(|(_, v)| !v.is_finite() || (nonneg && **v < T::zero()))
                {
                    let must = if nonneg { "finite and ≥ 0" } else { "finite" };
                    return Err(format!(
                        "buffer `{bname}` of parameter `{name}` holds {v:?} at index {k} (must be {must})"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl<T: Element + Serialize + for<'de> Deserialize<'de>> OptimizerState<T> {
    /// Encodes the state in the format of the [module docs](self).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let body = bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| format_err(format!("cannot encode: {e}")))?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len() + CRC_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&STATE_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(T::DTYPE.as_bytes());
        out.extend_from_slice(&body);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Decodes and validates bytes written by [`OptimizerState::to_bytes`].
    ///
    /// Errors ([`Error::Format`]) on a missing magic, another format version, a
    /// truncated or corrupt file (checksum), a state of another element type (naming
    /// both), a malformed body or trailing bytes, or an invalid state (see the type's
    /// docs). Decoding is bounded (see [`MAX_STATE_BYTES`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if !bytes.starts_with(MAGIC) {
            return Err(format_err("missing the TGOPTIMS header (not an optimizer state file?)"));
        }
        if bytes.len() < HEADER_LEN + CRC_LEN {
            return Err(format_err(format!(
                "{} bytes is too short for the header and checksum (truncated file?)",
                bytes.len()
            )));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != STATE_FORMAT_VERSION {
            return Err(format_err(format!(
                "format version {version}, this build reads version {STATE_FORMAT_VERSION}"
            )));
        }
        let (framed, crc) = bytes.split_at(bytes.len() - CRC_LEN);
        let stored = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
        let computed = crc32fast::hash(framed);
        if stored != computed {
            return Err(format_err(format!(
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is corrupt or truncated"
            )));
        }
        let dtype = &framed[12..HEADER_LEN];
        if dtype != T::DTYPE.as_bytes() {
            return Err(format_err(format!(
                "holds {} values, cannot be read as {}",
                String::from_utf8_lossy(dtype),
                T::DTYPE
            )));
        }
        let body = &framed[HEADER_LEN..];
        let (state, read): (Self, usize) =
            decode_bounded(body).map_err(|e| format_err(format!("cannot decode: {e}")))?;
        if read != body.len() {
            return Err(format_err(format!(
                "{} trailing bytes after the state",
                body.len() - read
            )));
        }
        state.check(StateCheck { nonnegative: &[] }).map_err(format_err)?;
        Ok(state)
    }
}
