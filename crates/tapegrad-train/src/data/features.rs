//! [`Features`]: the per-sample values of a dataset, of any sample shape, stored as bytes,
//! `f32` or `f64` and converted to the model's element type only when a batch is drawn.

use std::ops::Range;
use tapegrad_core::{Element, Error, Result};

/// The buffer of a [`Features`] block, in its stored element type.
#[derive(Clone, Debug, PartialEq)]
enum Store {
    /// Bytes, read as `b / 255` (pixels scaled to `[0, 1]`).
    Bytes(Vec<u8>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// `n` samples of shape `sample_dims`, stored row-major (sample after sample) as bytes,
/// `f32` or `f64`, taken from a `Vec` (moved; a slice with `.to_vec()`).
///
/// Bytes are pixels: a byte `b` reads as `b / 255`, so images land in `[0, 1]` like
/// Keras's usual `x / 255.0` preprocessing, converted through a 256-entry lookup table per
/// batch. Floats are converted to the model's element type as they are drawn.
///
/// ```
/// use tapegrad_train::Features;
/// let f = Features::from_f32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3])?; // 2 samples of [3]
/// assert_eq!((f.len(), f.sample_dims()), (2, &[3][..]));
/// assert!(Features::from_f64(vec![0.0; 5], [2]).is_err()); // 5 values are not samples of 2
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    store: Store,
    sample_dims: Vec<usize>,
    per: usize,
    len: usize,
}

impl Features {
    /// Byte samples (e.g. pixels), read as `b / 255`.
    ///
    /// Errors if `sample_dims` has a zero dim, its product overflows `usize`, or
    /// `data.len()` is not a multiple of it.
    ///
    /// ```
    /// use tapegrad_train::Features;
    /// let images = Features::from_bytes(vec![0, 255, 51, 102], [2, 2])?; // one 2×2 image
    /// assert_eq!(images.len(), 1);
    /// // Dims whose product overflows are refused up front, not when a batch is drawn.
    /// assert!(Features::from_bytes(vec![], [usize::MAX, 2]).is_err());
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn from_bytes(data: Vec<u8>, sample_dims: impl Into<Vec<usize>>) -> Result<Self> {
        let n = data.len();
        Self::build(Store::Bytes(data), n, sample_dims.into())
    }

    /// `f32` samples, used as they are.
    ///
    /// Errors as [`Features::from_bytes`] does.
    ///
    /// ```
    /// use tapegrad_train::Features;
    /// assert_eq!(Features::from_f32(vec![0.5; 12], [2, 3])?.len(), 2);
    /// assert_eq!(Features::from_f32([1.0, 2.0][..].to_vec(), [1])?.len(), 2); // from a slice
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn from_f32(data: Vec<f32>, sample_dims: impl Into<Vec<usize>>) -> Result<Self> {
        let n = data.len();
        Self::build(Store::F32(data), n, sample_dims.into())
    }

    /// `f64` samples, used as they are (rounded when the model computes in `f32`).
    ///
    /// Errors as [`Features::from_bytes`] does.
    ///
    /// ```
    /// use tapegrad_train::Features;
    /// assert_eq!(Features::from_f64(vec![0.5; 12], [4])?.len(), 3);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn from_f64(data: Vec<f64>, sample_dims: impl Into<Vec<usize>>) -> Result<Self> {
        let n = data.len();
        Self::build(Store::F64(data), n, sample_dims.into())
    }

    fn build(store: Store, values: usize, sample_dims: Vec<usize>) -> Result<Self> {
        let per = sample_numel("Features", &sample_dims)?;
        if !values.is_multiple_of(per) {
            return Err(Error::bad_shape(
                "Features",
                format!(
                    "{values} values are not a whole number of samples of shape {sample_dims:?} ({per} values each)"
                ),
            ));
        }
        Ok(Features {
            store,
            sample_dims,
            per,
            len: values / per,
        })
    }

    /// Number of samples.
    ///
    /// ```
    /// use tapegrad_train::Features;
    /// assert_eq!(Features::from_f32(vec![0.0; 6], [3])?.len(), 2);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no samples.
    ///
    /// ```
    /// use tapegrad_train::Features;
    /// assert!(Features::from_f32(vec![], [3])?.is_empty());
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Shape of one sample.
    ///
    /// ```
    /// use tapegrad_train::Features;
    /// assert_eq!(Features::from_bytes(vec![0; 8], [2, 2])?.sample_dims(), &[2, 2]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn sample_dims(&self) -> &[usize] {
        &self.sample_dims
    }

    /// The samples in `range` (clamped to the available ones), copied.
    pub(crate) fn slice(&self, range: Range<usize>) -> Features {
        let (a, b) = (
            range.start.min(self.len),
            range.end.min(self.len).max(range.start.min(self.len)),
        );
        let (lo, hi) = (a * self.per, b * self.per);
        let store = match &self.store {
            Store::Bytes(v) => Store::Bytes(v[lo..hi].to_vec()),
            Store::F32(v) => Store::F32(v[lo..hi].to_vec()),
            Store::F64(v) => Store::F64(v[lo..hi].to_vec()),
        };
        Features {
            store,
            sample_dims: self.sample_dims.clone(),
            per: self.per,
            len: b - a,
        }
    }

    /// Values per sample (the product of `sample_dims`).
    pub(crate) fn per_sample(&self) -> usize {
        self.per
    }

    /// Appends the samples at `indices` (all checked to be `< len` by the caller) to `out`,
    /// `per_sample` values each, converted to `T` (bytes scaled to `[0, 1]` as `b / 255`).
    pub(crate) fn gather_extend<T: Element>(&self, indices: &[usize], out: &mut Vec<T>) {
        let per = self.per;
        match &self.store {
            Store::Bytes(v) => {
                touch_lines(v, indices, per, u64::from);
                // One conversion per byte value, not per element.
                let mut lut = [T::zero(); 256];
                for (b, slot) in lut.iter_mut().enumerate() {
                    *slot = T::from_f64_lossy(b as f64 / 255.0);
                }
                for &i in indices {
                    out.extend(v[i * per..(i + 1) * per].iter().map(|&b| lut[b as usize]));
                }
            }
            Store::F32(v) => {
                touch_lines(v, indices, per, |x| u64::from(x.to_bits()));
                for &i in indices {
                    out.extend(v[i * per..(i + 1) * per].iter().map(|&x| T::from_f64_lossy(x as f64)));
                }
            }
            Store::F64(v) => {
                touch_lines(v, indices, per, f64::to_bits);
                for &i in indices {
                    out.extend(v[i * per..(i + 1) * per].iter().map(|&x| T::from_f64_lossy(x)));
                }
            }
        }
    }
}

/// Reads one value from each cache line of the samples at `indices` before they are copied.
/// The samples are random rows of a dataset far larger than the cache, so each row's first
/// lines miss; these reads do not depend on one another, so the CPU keeps dozens of the misses
/// in flight at once, where the copy loop would meet them one row at a time (a batch of 32
/// MNIST images: 30–34 → 17–22 µs, old and new builds alternated on an AMD EPYC; `cargo
/// bench -p tapegrad-train --bench data`). The values read are discarded.
fn touch_lines<V: Copy>(v: &[V], indices: &[usize], per: usize, bits: impl Fn(V) -> u64) {
    let step = (64 / std::mem::size_of::<V>()).max(1);
    let mut acc = 0;
    for &i in indices {
        for &x in v[i * per..(i + 1) * per].iter().step_by(step) {
            acc ^= bits(x);
        }
    }
    std::hint::black_box(acc);
}

/// The number of values in one sample of shape `dims`: errors on a zero dim or a product
/// that overflows `usize`.
pub(crate) fn sample_numel(op: &'static str, dims: &[usize]) -> Result<usize> {
    let per = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::bad_shape(
                op,
                format!("sample shape {dims:?} has more elements than usize can count"),
            )
        })?;
    if per == 0 {
        return Err(Error::bad_shape(
            op,
            format!("sample shape {dims:?} has a zero dim: samples must hold at least one value"),
        ));
    }
    Ok(per)
}
