//! The IDX format of MNIST (LeCun et al.): a 4-byte magic `00 00 TYPE NDIM`, NDIM big-endian
//! u32 dims, then the elements row-major. Files may be gzip-compressed (detected by the
//! gzip magic `1f 8b`, whatever the name). Only unsigned bytes (`TYPE = 0x08`) are read,
//! which is what MNIST and its relatives use.

use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;
use tapegrad_core::{Error, Result};

/// Largest element count accepted, so a corrupt header cannot ask for a huge allocation.
const MAX_ELEMENTS: usize = 1 << 32;

/// An n-dimensional array of bytes read from an IDX file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// Elements in row-major order.
    pub data: Vec<u8>,
}

/// Reads an IDX file, raw or gzip'd. Errors name the file and what is wrong: missing,
/// not IDX, an unsupported element type, or a size that disagrees with the header.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let raw = std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .take(MAX_ELEMENTS as u64 + 1024)
            .read_to_end(&mut out)
            .map_err(|e| Error::Format(format!("{}: corrupt gzip stream: {e}", path.display())))?;
        out
    } else {
        raw
    };
    parse_idx(&bytes).map_err(|msg| Error::Format(format!("{}: {msg}", path.display())))
}

/// Parses IDX bytes (already decompressed).
pub fn parse_idx(bytes: &[u8]) -> std::result::Result<IdxArray, String> {
    if bytes.len() < 4 {
        return Err(format!("too short for an IDX header ({} bytes)", bytes.len()));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!(
            "not an IDX file (magic {:02x} {:02x}, expected 00 00)",
            bytes[0], bytes[1]
        ));
    }
    if bytes[2] != 0x08 {
        return Err(format!(
            "element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
            bytes[2]
        ));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(format!(
            "truncated header: {ndim} dims need {header} bytes, file has {}",
            bytes.len()
        ));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d).filter(|&n| n <= MAX_ELEMENTS))
        .ok_or_else(|| format!("dims {dims:?} describe more than {MAX_ELEMENTS} elements"))?;
    let body = &bytes[header..];
    if body.len() != count {
        return Err(format!(
            "dims {dims:?} need {count} bytes of data, the file has {} ({})",
            body.len(),
            if body.len() < count {
                "truncated"
            } else {
                "trailing bytes"
            }
        ));
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

/// Encodes bytes as IDX (uncompressed): for tests and for writing small datasets.
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
