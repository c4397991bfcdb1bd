//! The buffer behind a tensor: a shared, reference-counted `Vec` (so a kernel's output
//! Vec becomes a tensor without a copy), or, for tensors of one or two elements (scalars, losses, a chain of tiny ops), the values themselves held
//! inline, so that creating, cloning and freeing them touches neither the allocator nor a
//! reference count. Both behave as copy-on-write: writing through a tensor never changes
//! another tensor's values.

use crate::buffer_cache;
use crate::element::Element;
use std::ops::Deref;
use std::sync::Arc;

/// Tensors with at most this many elements keep them inline.
const INLINE: usize = 2;

#[derive(Clone)]
pub(crate) enum Storage<T: Element> {
    Inline { len: u8, vals: [T; INLINE] },
    Shared(Arc<Vec<T>>),
}

impl<T: Element> Storage<T> {
    /// Takes the first `n ≤ INLINE` items of `iter` inline.
    #[inline]
    fn inline(n: usize, iter: impl Iterator<Item = T>) -> Self {
        let mut vals = [T::default(); INLINE];
        for (v, x) in vals.iter_mut().zip(iter) {
            *v = x;
        }
        Storage::Inline { len: n as u8, vals }
    }

    /// From an iterator that yields exactly `n` items (a map or zip over slices): inline
    /// when small, else collected straight into one Vec.
    #[inline]
    pub(crate) fn collect_exact(n: usize, iter: impl Iterator<Item = T>) -> Self {
        if n <= INLINE {
            Self::inline(n, iter)
        } else {
            let mut v = buffer_cache::vec_with_capacity(n);
            v.extend(iter);
            Storage::Shared(Arc::new(v))
        }
    }

    /// From a Vec, taking its buffer without a copy (inline if small).
    pub(crate) fn from_vec(v: Vec<T>) -> Self {
        if v.len() <= INLINE {
            Self::inline(v.len(), v.into_iter())
        } else {
            Storage::Shared(Arc::new(v))
        }
    }

    /// The elements, writable; a shared buffer is copied first if anyone else holds it.
    pub(crate) fn make_mut(&mut self) -> &mut [T] {
        match self {
            Storage::Inline { len, vals } => &mut vals[..*len as usize],
            Storage::Shared(a) => Arc::make_mut(a).as_mut_slice(),
        }
    }
}

/// A buffer this storage held alone goes to the [`buffer_cache`] for the next tensor of
/// its size (small ones are simply freed).
impl<T: Element> Drop for Storage<T> {
    fn drop(&mut self) {
        if let Storage::Shared(a) = self {
            if let Some(v) = Arc::get_mut(a) {
                buffer_cache::recycle(std::mem::take(v));
            }
        }
    }
}

impl<T: Element> Deref for Storage<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        match self {
            Storage::Inline { len, vals } => &vals[..*len as usize],
            Storage::Shared(a) => a.as_slice(),
        }
    }
}

/// Buffers at least this large are probed before they are made (below it, a failed
/// allocation means the machine is out of memory anyway, and probing would cost time).
const PROBE_BYTES: usize = 1 << 26;

/// Errors, naming `op` and `shape`, unless a buffer of `shape.numel()` elements of `T`
/// can be allocated: its size must fit in `isize::MAX` bytes, and a large one must be
/// granted by the allocator (tried with `try_reserve_exact`, then released). Ops whose
/// output size the caller chooses (constructors, `broadcast_to`, broadcasting
/// arithmetic, `matmul`, `index_select`) call this first, so that a shape too large for
/// memory is an [`Error`](crate::Error), never an abort of the process.
pub(crate) fn ensure_alloc<T>(op: &'static str, shape: &crate::Shape) -> crate::Result<()> {
    let n = shape.numel();
    let too_large = |why: &str| {
        crate::Error::bad_shape(
            op,
            format!(
                "a tensor of shape {shape} ({n} elements of {} bytes) cannot be allocated: {why}",
                std::mem::size_of::<T>()
            ),
        )
    };
    let bytes = n
        .checked_mul(std::mem::size_of::<T>())
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(|| too_large("its size overflows the address space"))?;
    if bytes >= PROBE_BYTES {
        let mut probe: Vec<T> = Vec::new();
        probe
            .try_reserve_exact(n)
            .map_err(|_| too_large("the allocator refused it"))?;
    }
    Ok(())
}
