//! Grad mode: whether ops on tracked tensors are recorded, per thread, like PyTorch's
//! `torch.no_grad` and `torch.set_grad_enabled`.

use std::cell::Cell;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on tracked tensors are being recorded on this thread.
///
/// ```
/// use tapegrad_core::{is_grad_enabled, no_grad};
/// assert!(is_grad_enabled());
/// assert!(!no_grad(is_grad_enabled));
/// ```
#[inline]
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous grad mode when dropped; made by [`no_grad_guard`].
#[must_use = "gradients are re-enabled when the guard is dropped"]
pub struct GradModeGuard {
    prev: bool,
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

pub(crate) fn set_grad_enabled(on: bool) -> GradModeGuard {
    GradModeGuard {
        prev: GRAD_ENABLED.with(|g| g.replace(on)),
    }
}

/// Turns recording off on this thread until the guard is dropped.
///
/// ```
/// use tapegrad_core::{is_grad_enabled, no_grad_guard};
/// {
///     let _guard = no_grad_guard();
///     assert!(!is_grad_enabled());
/// }
/// assert!(is_grad_enabled());
/// ```
pub fn no_grad_guard() -> GradModeGuard {
    set_grad_enabled(false)
}

/// Runs `f` with recording off on this thread (like `torch.no_grad()`): nothing inside is
/// recorded, results are untracked, and no tape cost is paid.
///
/// ```
/// use tapegrad_core::{no_grad, Tensor};
/// let w = Tensor::<f32>::ones([2])?.requires_grad();
/// let y = no_grad(|| w.exp());
/// assert!(!y.is_tracked());
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = set_grad_enabled(false);
    f()
}
