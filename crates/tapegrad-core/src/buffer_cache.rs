//! A cache of freed tensor buffers, so that a training loop, which makes the same large
//! tensors every step, reuses their memory instead of asking the operating system for
//! fresh pages each time.
//!
//! Without it, a buffer of a few megabytes (a convolution's column matrix, a layer's
//! output for a large batch) is typically returned to the kernel when freed and faulted
//! back in, page by page, when the next step allocates it again: on the MNIST CNN that
//! was a third of the process's CPU time, spent in the kernel. With it, a freed buffer of
//! at least [`MIN_BYTES`] whose tensor held it alone waits here, and the next request for
//! the same number of elements takes it back.
//!
//! What it keeps is bounded twice. Per size, it keeps no more buffers than the most that
//! kernels have ever had out at once at that size (so a buffer of a size that kernels do
//! not ask for, such as a data loader's batch, is freed at once, and a training step keeps
//! exactly the buffers its next step will take again). In all, it holds at most
//! [`buffer_cache_limit`] bytes per element type (256 MiB by default), freeing the oldest
//! buffers first; [`set_buffer_cache_limit`] changes that, and a limit of 0 empties it and
//! turns it off. What it holds counts in the process's resident memory. Small buffers
//! never enter it: the allocator recycles those quickly itself.

use crate::element::Element;
use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Buffers smaller than this many bytes are left to the allocator.
pub const MIN_BYTES: usize = 1 << 16;

/// The default limit: 256 MiB per element type.
const DEFAULT_LIMIT: usize = 1 << 28;

/// Sizes tracked at most; past this, sizes with nothing out and nothing cached are
/// forgotten (a program whose shapes keep changing does not grow the list forever).
const MAX_SIZES: usize = 1024;

static LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_LIMIT);

/// What the cache knows of one buffer size (in elements).
struct Size {
    n: usize,
    /// Buffers of this size handed out by [`vec_with_capacity`] and not yet recycled.
    out: usize,
    /// The most that were out at once: how many are worth keeping.
    demand: usize,
    /// Buffers of this size in the cache now.
    cached: usize,
}

/// The cache of one element type: freed buffers (oldest first), their bytes, and the
/// per-size counts.
struct Inner<T> {
    free: Vec<Vec<T>>,
    bytes: usize,
    sizes: Vec<Size>,
}

struct Cache<T>(Mutex<Inner<T>>);

impl<T> Cache<T> {
    const fn new() -> Self {
        Cache(Mutex::new(Inner {
            free: Vec::new(),
            bytes: 0,
            sizes: Vec::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // Every update leaves the lists consistent before anything can panic, so a
        // poisoned lock (a panic elsewhere while it was held) is still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T> Inner<T> {
    fn size(&mut self, n: usize) -> &mut Size {
        if let Some(i) = self.sizes.iter().position(|s| s.n == n) {
            return &mut self.sizes[i];
        }
        if self.sizes.len() >= MAX_SIZES {
            self.sizes.retain(|s| s.out > 0 || s.cached > 0);
        }
        self.sizes.push(Size {
            n,
            out: 0,
            demand: 0,
            cached: 0,
        });
        self.sizes.last_mut().expect("just pushed")
    }

    /// Removes the oldest cached buffer and returns it (to be freed outside the lock).
    fn evict_oldest(&mut self) -> Option<Vec<T>> {
        if self.free.is_empty() {
            return None;
        }
        let old = self.free.remove(0);
        self.bytes -= bytes::<T>(old.capacity());
        if let Some(s) = self.sizes.iter_mut().find(|s| s.n == old.capacity()) {
            s.cached -= 1;
        }
        Some(old)
    }
}

static F32: Cache<f32> = Cache::new();
static F64: Cache<f64> = Cache::new();

fn cache<T: Element>() -> Option<&'static Cache<T>> {
    let any: [&'static dyn Any; 2] = [&F32, &F64];
    any.into_iter().find_map(|c| c.downcast_ref::<Cache<T>>())
}

fn bytes<T>(capacity: usize) -> usize {
    capacity.saturating_mul(std::mem::size_of::<T>())
}

/// An empty Vec with room for exactly `n` elements: a cached buffer of that capacity if
/// there is one, else a new allocation.
pub(crate) fn vec_with_capacity<T: Element>(n: usize) -> Vec<T> {
    let mut v = take_any(n);
    v.clear();
    v
}

/// A cached buffer of capacity `n` with whatever values it last held, or a new empty one.
fn take_any<T: Element>(n: usize) -> Vec<T> {
    match cache::<T>() {
        Some(c) if bytes::<T>(n) >= MIN_BYTES => take(c, n),
        _ => Vec::with_capacity(n),
    }
}

/// A Vec of `n` elements whose values are unspecified (those a recycled buffer last held,
/// or 0): scratch space for a kernel that writes every element before reading it, without
/// the pass that [`vec_filled`] makes over it.
pub(crate) fn vec_scratch<T: Element>(n: usize) -> Vec<T> {
    let mut v = take_any(n);
    v.resize(n, T::zero());
    v
}

fn take<T>(c: &Cache<T>, n: usize) -> Vec<T> {
    let mut g = c.lock();
    let size = g.size(n);
    size.out += 1;
    size.demand = size.demand.max(size.out);
    if size.cached == 0 {
        drop(g);
        return Vec::with_capacity(n);
    }
    size.cached -= 1;
    // Newest first: it is the likeliest to be still in the CPU's caches.
    let i = g
        .free
        .iter()
        .rposition(|v| v.capacity() == n)
        .expect("counted as cached");
    let v = g.free.remove(i);
    g.bytes -= bytes::<T>(n);
    v
}

/// A Vec of `n` copies of `value`, in a cached buffer when there is one.
pub(crate) fn vec_filled<T: Element>(n: usize, value: T) -> Vec<T> {
    let mut v = vec_with_capacity(n);
    v.resize(n, value);
    v
}

/// Takes `v` into the cache if buffers of its size are in demand and it fits under the
/// limit (freeing the oldest buffers to make room); otherwise frees it.
pub(crate) fn recycle<T: Element>(v: Vec<T>) {
    if bytes::<T>(v.capacity()) >= MIN_BYTES {
        if let Some(c) = cache::<T>() {
            keep(c, v, LIMIT.load(Ordering::Relaxed));
        }
    }
}

fn keep<T>(c: &Cache<T>, v: Vec<T>, limit: usize) {
    let (n, size) = (v.capacity(), bytes::<T>(v.capacity()));
    let mut evicted = Vec::new();
    {
        let mut g = c.lock();
        let Some(s) = g.sizes.iter_mut().find(|s| s.n == n) else {
            return; // a size no kernel asked for
        };
        s.out = s.out.saturating_sub(1);
        if s.cached >= s.demand || size > limit {
            drop(g);
            return;
        }
        s.cached += 1;
        while g.bytes + size > limit {
            evicted.extend(g.evict_oldest());
        }
        g.free.push(v);
        g.bytes += size;
    }
    drop(evicted); // freed outside the lock
}

/// Sets the most bytes of freed buffers kept for reuse, per element type (`f32`, `f64`);
/// buffers over the new limit are freed now. `0` turns the cache off.
///
/// ```
/// use tapegrad_core::{buffer_cache_limit, set_buffer_cache_limit};
/// let before = buffer_cache_limit();
/// set_buffer_cache_limit(64 << 20); // keep at most 64 MiB of f32 and of f64 buffers
/// assert_eq!(buffer_cache_limit(), 64 << 20);
/// set_buffer_cache_limit(before);
/// ```
pub fn set_buffer_cache_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
    trim(&F32, bytes);
    trim(&F64, bytes);
}

/// The current limit of [`set_buffer_cache_limit`] (256 MiB per element type unless set).
pub fn buffer_cache_limit() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

/// Bytes of freed buffers of element type `T` held for reuse now.
///
/// ```
/// use tapegrad_core::{buffer_cache_bytes, Tensor};
/// let x = Tensor::<f64>::ones([256, 256])?; // 512 KiB
/// let y = x.exp(); // a kernel's output buffer
/// drop(y);
/// assert!(buffer_cache_bytes::<f64>() >= 256 * 256 * 8);
/// let z = x.exp(); // takes that buffer back
/// # drop(z);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn buffer_cache_bytes<T: Element>() -> usize {
    cache::<T>().map_or(0, |c| c.lock().bytes)
}

fn trim<T>(c: &Cache<T>, limit: usize) {
    let mut evicted = Vec::new();
    {
        let mut g = c.lock();
        while g.bytes > limit {
            evicted.extend(g.evict_oldest());
        }
    }
    drop(evicted);
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = MIN_BYTES / 8; // f64 elements in the smallest cached buffer

    fn count(c: &Cache<f64>) -> (usize, usize) {
        let g = c.lock();
        (g.free.len(), g.bytes)
    }

    #[test]
    fn a_freed_buffer_is_taken_back_by_the_next_request_of_its_size() {
        let c = Cache::<f64>::new();
        let v = take(&c, N);
        let ptr = v.as_ptr();
        keep(&c, v, usize::MAX);
        assert_eq!(count(&c), (1, N * 8));
        let w = take(&c, N);
        assert_eq!(w.as_ptr(), ptr, "the same allocation");
        assert!(w.is_empty() && w.capacity() == N);
        assert_eq!(count(&c), (0, 0));
        // Another size misses.
        let other = take(&c, N + 1);
        assert_ne!(other.as_ptr(), ptr);
    }

    #[test]
    fn it_keeps_no_more_buffers_of_a_size_than_were_ever_out_at_once() {
        let c = Cache::<f64>::new();
        let (a, b) = (take(&c, N), take(&c, N)); // two out at once: demand 2
        keep(&c, a, usize::MAX);
        keep(&c, b, usize::MAX);
        assert_eq!(count(&c).0, 2);
        // A third buffer of that size, made elsewhere (not through `take`), is not kept.
        keep(&c, Vec::with_capacity(N), usize::MAX);
        assert_eq!(count(&c).0, 2);
        // A size no kernel asked for is never kept (a data loader's batch, say).
        keep(&c, Vec::with_capacity(3 * N), usize::MAX);
        assert_eq!(count(&c), (2, 2 * N * 8));
    }

    #[test]
    fn the_limit_frees_the_oldest_buffers_first() {
        let c = Cache::<f64>::new();
        let limit = 4 * N * 8;
        let (a, b) = (take(&c, N), take(&c, 2 * N));
        let b_ptr = b.as_ptr();
        keep(&c, a, limit);
        keep(&c, b, limit);
        assert_eq!(count(&c).0, 2);
        let d = take(&c, 5 * N);
        keep(&c, d, limit); // larger than the limit: freed, the others stay
        assert_eq!(count(&c).0, 2);
        let e = take(&c, N + N / 2); // 3 N cached + 1.5 N: room is made by freeing `a`, the oldest
        keep(&c, e, limit);
        assert_eq!(count(&c), (2, (2 * N + N + N / 2) * 8));
        let b = take(&c, 2 * N);
        assert_eq!(b.as_ptr(), b_ptr, "b, newer, was kept");
        assert_eq!(count(&c).0, 1);
        trim(&c, 0);
        assert_eq!(count(&c), (0, 0));
    }

    #[test]
    fn tensors_go_through_the_cache() {
        // A size no other test uses, so that parallel tests cannot take the buffer.
        let n = N + 12_345;
        let x = crate::Tensor::<f64>::ones([n]).unwrap();
        let y = x.exp();
        let ptr = y.data().as_ptr();
        drop(y);
        assert_eq!(x.exp().data().as_ptr(), ptr, "the output buffer was reused");
        // A tensor shared by a clone is recycled only when its last holder drops it.
        let y = x.exp();
        let ptr = y.data().as_ptr();
        let y2 = y.clone();
        drop(y);
        assert_ne!(x.exp().data().as_ptr(), ptr);
        assert_eq!(y2.data()[0], 1f64.exp(), "the clone still holds its values");
    }
}
