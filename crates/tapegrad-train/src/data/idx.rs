//! The IDX format of MNIST (LeCun et al.): a 4-byte magic `00 00 TYPE NDIM`, NDIM big-endian
//! u32 dims, then the elements row-major. Files may be gzip-compressed (detected by the
//! gzip magic `1f 8b`, whatever the name). Only unsigned bytes (`TYPE = 0x08`) are read,
//! which is what MNIST and its relatives use.

use flate2::read::GzDecoder;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use tapegrad_core::{Error, Result};

/// The default cap on the element count a header may declare (4 Gi), so a corrupt header
/// cannot ask for a huge allocation; pass a tighter one when the expected size is known.
pub const MAX_ELEMENTS: usize = 1 << 32;

/// An n-dimensional array of bytes read from an IDX file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// Elements in row-major order.
    pub data: Vec<u8>,
}

/// Reads an IDX file, raw or gzip'd, refusing a header that declares more than
/// `max_elements` elements (use [`MAX_ELEMENTS`] when nothing tighter is known).
///
/// The file is decoded as a stream straight into a buffer of the declared size, so the
/// peak memory is the declared size (never more, even for a gzip bomb), and decoding stops
/// at the first byte past what the header declares. Errors name the file and what is
/// wrong: missing, not IDX, an unsupported element type, too many elements, or a size that
/// disagrees with the header.
///
/// ```
/// use tapegrad_train::data::idx::{encode_idx, read_idx, MAX_ELEMENTS};
/// let path = std::env::temp_dir().join(format!("tapegrad-idx-doc-{}", std::process::id()));
/// std::fs::write(&path, encode_idx(&[2, 3], &[1, 2, 3, 4, 5, 6]))?;
/// assert_eq!(read_idx(&path, MAX_ELEMENTS)?.dims, [2, 3]);
/// let e = read_idx(&path, 5).unwrap_err().to_string();
/// assert!(e.contains("6 elements") && e.contains("at most 5"), "{e}");
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_idx(path: impl AsRef<Path>, max_elements: usize) -> Result<IdxArray> {
    let path = path.as_ref();
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    let mut magic = [0u8; 2];
    let got = read_full(&mut file, &mut magic).map_err(io)?;
    let head = std::io::Cursor::new(magic[..got].to_vec());
    let result = if magic == [0x1f, 0x8b] && got == 2 {
        decode_idx(GzDecoder::new(head.chain(file)), max_elements)
    } else {
        decode_idx(head.chain(file), max_elements)
    };
    result.map_err(|msg| Error::Format(format!("{}: {msg}", path.display())))
}

/// Reads as many bytes as `buf` holds, fewer only at the end of the stream.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Decodes an IDX stream (already decompressed): the header, then exactly the declared
/// number of bytes into one buffer of that size, then one more read to check that the
/// stream ends there. Reads nothing past the first extra byte.
///
/// ```
/// use tapegrad_train::data::idx::{decode_idx, encode_idx};
/// let bytes = encode_idx(&[2], &[7, 9]);
/// assert_eq!(decode_idx(&bytes[..], 10)?.data, [7, 9]);
/// assert!(decode_idx(&bytes[..5], 10).unwrap_err().contains("truncated"));
/// # Ok::<(), String>(())
/// ```
pub fn decode_idx<R: Read>(mut r: R, max_elements: usize) -> std::result::Result<IdxArray, String> {
    let fail = |e: std::io::Error| format!("corrupt stream: {e}");
    let mut magic = [0u8; 4];
    let got = read_full(&mut r, &mut magic).map_err(fail)?;
    if got < 4 {
        return Err(format!("too short for an IDX header ({got} bytes)"));
    }
    if magic[0] != 0 || magic[1] != 0 {
        return Err(format!(
            "not an IDX file (magic {:02x} {:02x}, expected 00 00)",
            magic[0], magic[1]
        ));
    }
    if magic[2] != 0x08 {
        return Err(format!(
            "element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
            magic[2]
        ));
    }
    let ndim = magic[3] as usize;
    let mut raw_dims = vec![0u8; 4 * ndim];
    let got = read_full(&mut r, &mut raw_dims).map_err(fail)?;
    if got < raw_dims.len() {
        return Err(format!(
            "truncated header: {ndim} dims need {} bytes, the stream has {}",
            4 + 4 * ndim,
            4 + got
        ));
    }
    let dims: Vec<usize> = raw_dims
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= max_elements)
        .ok_or_else(|| {
            // Up to 255 dims of up to 2³² − 1 each: even u128 can overflow.
            let declared = dims
                .iter()
                .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
                .map_or_else(|| "more than 2^128".to_string(), |n| n.to_string());
            format!("dims {dims:?} declare {declared} elements, more than the at most {max_elements} expected")
        })?;
    let mut data = vec![0u8; count];
    let got = read_full(&mut r, &mut data).map_err(fail)?;
    if got < count {
        return Err(format!(
            "dims {dims:?} need {count} bytes of data, the stream has {got} (truncated)"
        ));
    }
    let mut extra = [0u8; 1];
    if read_full(&mut r, &mut extra).map_err(fail)? > 0 {
        return Err(format!(
            "dims {dims:?} need {count} bytes of data, the stream has more (trailing bytes)"
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Encodes bytes as IDX (uncompressed): for tests and for writing small datasets.
///
/// ```
/// use tapegrad_train::data::idx::encode_idx;
/// assert_eq!(encode_idx(&[1], &[5]), [0, 0, 8, 1, 0, 0, 0, 1, 5]);
/// ```
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
