//! Saving and loading a module's named parameters in tapegrad's own binary format.
//!
//! # Format (version 1)
//!
//! | bytes | content |
//! | --- | --- |
//! | 8 | magic `TAPEGRAD` |
//! | 4 | format version, `u32` little-endian |
//! | … | bincode 2 (standard config, fixed-width little-endian integers) of the element dtype string (`"f32"`/`"f64"`), then of the entries: a sequence of `(name: String, shape: Vec<u64>, data: Vec<f32 or f64>)` |
//! | 4 | CRC-32 (IEEE) of everything before it, little-endian |
//!
//! Reading is defensive: the magic, the version and the checksum are checked before any
//! decoding, so truncation and flipped bits are reported as such; decoding runs under a
//! bincode byte limit close to the input's length, so a crafted length prefix cannot make
//! it allocate more than a few times the file size; every shape must match its data. Any
//! problem is an [`Error::Format`], never a panic.
//!
//! Saving writes a temporary file in the target's directory, fsyncs it and renames it over
//! the target ([`write_atomic`]): a crash mid-save leaves the previous checkpoint intact.

use crate::module::{Module, StateDict};
use bincode::config::{self, Config};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use tapegrad_core::{Element, Error, Result, Tensor};

/// The first bytes of every checkpoint.
pub const MAGIC: &[u8; 8] = b"TAPEGRAD";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const HEADER_LEN: usize = MAGIC.len() + 4;
const CRC_LEN: usize = 4;

#[derive(Serialize, Deserialize)]
struct Entry<E> {
    name: String,
    shape: Vec<u64>,
    data: Vec<E>,
}

fn bincode_config() -> impl Config {
    // Fixed-width integers make bincode's byte claims equal the bytes it reads, so the
    // limit below bounds allocations by (a small multiple of) the input length.
    config::standard().with_fixed_int_encoding()
}

/// Decodes `D` from the front of `bytes` under a bincode byte limit: the smallest power of
/// 4 at least `bytes.len()`. Bincode checks each length prefix against the limit before
/// allocating, so a hostile prefix fails instead of reserving terabytes. (The limit is a
/// const generic, hence the dispatch over fixed sizes.)
fn decode_limited<D: DeserializeOwned>(bytes: &[u8]) -> Result<(D, usize)> {
    fn run<D: DeserializeOwned, const LIMIT: usize>(bytes: &[u8]) -> Result<(D, usize)> {
        bincode::serde::decode_from_slice(
            bytes,
            config::standard().with_fixed_int_encoding().with_limit::<LIMIT>(),
        )
        .map_err(|e| Error::Format(format!("checkpoint: undecodable contents ({e})")))
    }
    let n = bytes.len();
    macro_rules! dispatch {
        ($($bits:literal),*) => {
            $(if n <= (1usize << $bits) {
                return run::<D, { 1usize << $bits }>(bytes);
            })*
        };
    }
    dispatch!(10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    #[cfg(target_pointer_width = "64")]
    dispatch!(32, 34, 36, 38, 40, 42, 44, 46, 48);
    Err(Error::Format(format!(
        "checkpoint: {n} bytes is larger than this reader supports"
    )))
}

/// CRC-32 (IEEE 802.3, reflected, as zlib/PNG), by `crc32fast`.
fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn encode_err(e: bincode::error::EncodeError) -> Error {
    Error::Format(format!("checkpoint: cannot encode ({e})"))
}

fn entries<T: Element, E>(state: &[(String, Tensor<T>)], conv: fn(T) -> E) -> Vec<Entry<E>> {
    state
        .iter()
        .map(|(name, t)| Entry {
            name: name.clone(),
            shape: t.dims().iter().map(|&d| d as u64).collect(),
            data: t.data().iter().map(|&v| conv(v)).collect(),
        })
        .collect()
}

/// Encodes named tensors in the checkpoint format: the in-memory form of [`save`], for
/// callers that bundle several states (model, optimizer moments) into one file.
///
/// Errors on a duplicate name.
pub fn encode<T: Element>(state: &[(String, Tensor<T>)]) -> Result<Vec<u8>> {
    check_unique(state.iter().map(|(n, _)| n.as_str()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + 64 + state.iter().map(|(_, t)| t.numel() * 8).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend(bincode::serde::encode_to_vec(T::DTYPE, bincode_config()).map_err(encode_err)?);
    // Converting through f64 is exact in both directions for the matching precision.
    let body = match T::DTYPE {
        "f32" => bincode::serde::encode_to_vec(entries(state, |v| v.as_f64() as f32), bincode_config()),
        _ => bincode::serde::encode_to_vec(entries(state, |v| v.as_f64()), bincode_config()),
    };
    out.extend(body.map_err(encode_err)?);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

fn check_unique<'a>(names: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err(Error::Format(format!("checkpoint: the name '{n}' appears twice")));
        }
    }
    Ok(())
}

fn to_tensors<T: Element, E: Copy>(entries: Vec<Entry<E>>, conv: fn(E) -> T) -> Result<StateDict<T>> {
    check_unique(entries.iter().map(|e| e.name.as_str()))?;
    entries
        .into_iter()
        .map(|e| {
            let dims = e
                .shape
                .iter()
                .map(|&d| usize::try_from(d).ok())
                .collect::<Option<Vec<usize>>>();
            let numel = dims
                .as_ref()
                .and_then(|d| d.iter().try_fold(1usize, |acc, &x| acc.checked_mul(x)));
            match (dims, numel) {
                (Some(dims), Some(n)) if n == e.data.len() => {
                    let data = e.data.into_iter().map(conv).collect();
                    Ok((e.name, Tensor::from_vec(data, dims)?))
                }
                _ => Err(Error::Format(format!(
                    "checkpoint: entry '{}' has shape {:?} but {} values",
                    e.name,
                    e.shape,
                    e.data.len()
                ))),
            }
        })
        .collect()
}

/// Decodes named tensors written by [`encode`] (or read from a file saved by [`save`]).
///
/// Errors ([`Error::Format`]) on a wrong magic, an unknown version, a checksum mismatch
/// (truncation, corruption), an element type other than `T` (naming both), a shape that
/// does not match its data, a duplicate name, or trailing bytes.
pub fn decode<T: Element>(bytes: &[u8]) -> Result<StateDict<T>> {
    if bytes.len() < HEADER_LEN + CRC_LEN {
        return Err(Error::Format(format!(
            "checkpoint: {} bytes is too short (truncated file?); a checkpoint has at least {}",
            bytes.len(),
            HEADER_LEN + CRC_LEN
        )));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(Error::Format(format!(
            "not a tapegrad checkpoint: it starts with {:?}, expected {:?}",
            String::from_utf8_lossy(&bytes[..MAGIC.len()]),
            String::from_utf8_lossy(MAGIC)
        )));
    }
    let version = u32::from_le_bytes(bytes[MAGIC.len()..HEADER_LEN].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(Error::Format(format!(
            "checkpoint: format version {version} is not supported (this build reads version {FORMAT_VERSION})"
        )));
    }
    let (content, tail) = bytes.split_at(bytes.len() - CRC_LEN);
    let stored = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
    let actual = crc32(content);
    if stored != actual {
        return Err(Error::Format(format!(
            "checkpoint: checksum mismatch (stored {stored:#010x}, computed {actual:#010x}): the file is corrupted or truncated"
        )));
    }
    let body = &content[HEADER_LEN..];
    let (dtype, used): (String, usize) = decode_limited(body)?;
    if dtype != T::DTYPE {
        return Err(Error::Format(format!(
            "checkpoint: it holds {dtype} parameters but the model is {}",
            T::DTYPE
        )));
    }
    let rest = &body[used..];
    let (state, used) = match dtype.as_str() {
        "f32" => {
            let (e, used) = decode_limited::<Vec<Entry<f32>>>(rest)?;
            (to_tensors(e, |v| T::from_f64_lossy(v as f64))?, used)
        }
        "f64" => {
            let (e, used) = decode_limited::<Vec<Entry<f64>>>(rest)?;
            (to_tensors(e, T::from_f64_lossy)?, used)
        }
        other => return Err(Error::Format(format!("checkpoint: unknown element type {other:?}"))),
    };
    if used != rest.len() {
        return Err(Error::Format(format!(
            "checkpoint: {} unexpected bytes after the last entry",
            rest.len() - used
        )));
    }
    Ok(state)
}

/// A module's parameters in the checkpoint format (see [`encode`]).
pub fn to_bytes<T: Element, M: Module<T> + ?Sized>(module: &M) -> Result<Vec<u8>> {
    encode(&module.state_dict())
}

/// Loads parameters from checkpoint bytes into `module` (strictly; see
/// [`Module::load_state_dict`]). Nothing is modified on error.
pub fn load_from_bytes<T: Element, M: Module<T> + ?Sized>(module: &mut M, bytes: &[u8]) -> Result<()> {
    module.load_state_dict(&decode(bytes)?)
}

/// Saves a module's parameters to `path`, atomically (see [`write_atomic`]).
///
/// ```
/// use tapegrad_nn::{SeedableRng, StdRng};
/// use tapegrad_nn::{checkpoint, Dense, Module, Sequential};
/// let dir = std::env::temp_dir().join(format!("tapegrad-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("model.tgc");
/// let mut rng = StdRng::seed_from_u64(0);
/// let model = Sequential::<f32>::new().add(Dense::new(3, 2, &mut rng)?);
/// checkpoint::save(&model, &path)?;
///
/// let mut other = Sequential::<f32>::new().add(Dense::new(3, 2, &mut rng)?);
/// checkpoint::load(&mut other, &path)?;
/// assert_eq!(other.parameters()[0].1.to_vec(), model.parameters()[0].1.to_vec());
///
/// let mut wrong = Sequential::<f32>::new().add(Dense::new(4, 2, &mut rng)?);
/// let err = checkpoint::load(&mut wrong, &path).unwrap_err().to_string();
/// assert!(err.contains("'0.weight'") && err.contains("[3, 2]") && err.contains("[4, 2]"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save<T: Element, M: Module<T> + ?Sized>(module: &M, path: impl AsRef<Path>) -> Result<()> {
    write_atomic(path.as_ref(), &to_bytes(module)?)
}

/// Loads parameters saved by [`save`] into `module`; nothing is modified on error.
pub fn load<T: Element, M: Module<T> + ?Sized>(module: &mut M, path: impl AsRef<Path>) -> Result<()> {
    load_from_bytes(module, &read(path.as_ref())?)
}

/// Reads a whole file, naming the path in the error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::Io(format!("reading {}: {e}", path.display())))
}

/// Writes `bytes` to `path` so that a crash at any point leaves either the old file or the
/// complete new one: write a temporary file in the same directory, fsync it, rename it
/// over `path` (atomic on POSIX and Windows), then fsync the directory (on Unix) so the
/// rename itself is durable. The temporary file is removed on error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io_err = |e: std::io::Error| Error::Io(format!("saving {}: {e}", path.display()));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Io(format!("saving {}: the path does not name a file", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
    Ok(())
}
