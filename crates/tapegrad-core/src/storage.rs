//! The buffer behind a tensor: a shared, reference-counted slice, or, for tensors of one
//! or two elements (scalars, losses, a chain of tiny ops), the values themselves held
//! inline, so that creating, cloning and freeing them touches neither the allocator nor a
//! reference count. Both behave as copy-on-write: writing through a tensor never changes
//! another tensor's values.

use std::ops::Deref;
use std::sync::Arc;

/// Tensors with at most this many elements keep them inline.
const INLINE: usize = 2;

#[derive(Clone)]
pub(crate) enum Storage<T> {
    Inline { len: u8, vals: [T; INLINE] },
    Shared(Arc<[T]>),
}

impl<T: Copy + Default> Storage<T> {
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
    /// when small, else collected straight into one shared allocation.
    #[inline]
    pub(crate) fn collect_exact(n: usize, iter: impl Iterator<Item = T>) -> Self {
        if n <= INLINE {
            Self::inline(n, iter)
        } else {
            Storage::Shared(iter.collect())
        }
    }

    /// From a Vec (moved into a shared allocation unless small).
    pub(crate) fn from_vec(v: Vec<T>) -> Self {
        if v.len() <= INLINE {
            Self::inline(v.len(), v.into_iter())
        } else {
            Storage::Shared(Arc::from(v))
        }
    }

    /// The elements, writable; a shared buffer is copied first if anyone else holds it.
    pub(crate) fn make_mut(&mut self) -> &mut [T] {
        match self {
            Storage::Inline { len, vals } => &mut vals[..*len as usize],
            Storage::Shared(a) => Arc::make_mut(a),
        }
    }
}

impl<T> From<Arc<[T]>> for Storage<T> {
    fn from(a: Arc<[T]>) -> Self {
        Storage::Shared(a)
    }
}

impl<T> Deref for Storage<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        match self {
            Storage::Inline { len, vals } => &vals[..*len as usize],
            Storage::Shared(a) => a,
        }
    }
}
