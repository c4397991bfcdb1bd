//! Shapes, row-major strides, axis normalisation and NumPy broadcasting.

use crate::error::{Error, Result};
use smallvec::SmallVec;
use std::fmt;

/// Dimensions of a tensor, outermost first (row-major). Up to 4 dims live inline.
#[derive(Eq, Default)]
pub struct Shape(SmallVec<[usize; 4]>);

impl std::hash::Hash for Shape {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.dims().hash(state);
    }
}

/// Dim by dim, inline (a slice's `==` calls `memcmp`, slower for the few dims a shape has;
/// the backward sweep compares shapes at every node).
impl PartialEq for Shape {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(other.0.iter()).all(|(a, b)| a == b)
    }
}

/// A copy of the dims (SmallVec's own `clone` goes through a generic `extend`, and
/// `from_slice` through a `memcpy` call, both slow for the few dims a shape has; every
/// recorded op clones shapes). Up to 4 dims are copied as four fixed slots.
impl Clone for Shape {
    #[inline]
    fn clone(&self) -> Self {
        let dims = self.dims();
        if dims.len() > 4 {
            return Shape(SmallVec::from_slice(dims));
        }
        let mut buf = [0; 4];
        for (i, b) in buf.iter_mut().enumerate() {
            if i < dims.len() {
                *b = dims[i];
            }
        }
        Shape(SmallVec::from_buf_and_len(buf, dims.len()))
    }
}

impl Shape {
    /// The shape of a 0-d tensor (a scalar): no dimensions, one element.
    pub fn scalar() -> Self {
        Shape(SmallVec::new())
    }

    /// The dimensions as a slice.
    #[inline]
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of dimensions.
    #[inline]
    pub fn ndim(&self) -> usize {
        self.0.len()
    }

    /// Number of elements: the product of the dims (1 for a scalar, 0 if any dim is 0).
    /// Saturates at `usize::MAX` rather than wrapping, so a shape too large for memory can
    /// never pass a length check against a real buffer.
    #[inline]
    pub fn numel(&self) -> usize {
        if self.0.contains(&0) {
            return 0;
        }
        self.0
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .unwrap_or(usize::MAX)
    }

    /// Row-major strides in elements: the last dim has stride 1.
    pub fn strides(&self) -> SmallVec<[usize; 4]> {
        let mut s: SmallVec<[usize; 4]> = SmallVec::from_elem(1, self.ndim());
        for i in (0..self.ndim().saturating_sub(1)).rev() {
            // Saturating: only an empty tensor's shape can overflow here, and it is never indexed.
            s[i] = s[i + 1].saturating_mul(self.0[i + 1]);
        }
        s
    }

    /// Maps a possibly negative axis (`-1` is the last) into `0..ndim`.
    pub fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        normalize_axis(axis, self.ndim()).ok_or_else(|| Error::BadAxis {
            op,
            axis,
            shape: self.clone(),
        })
    }

    /// Normalises a list of axes, sorted and checked for repeats. An empty list means
    /// "no axis"; use [`Shape::all_axes`] for all of them.
    pub fn axes(&self, op: &'static str, axes: &[isize]) -> Result<SmallVec<[usize; 4]>> {
        let mut out: SmallVec<[usize; 4]> = SmallVec::with_capacity(axes.len());
        for &a in axes {
            let ax = self.axis(op, a)?;
            if out.contains(&ax) {
                return Err(Error::bad_shape(
                    op,
                    format!("axis {a} is repeated in {axes:?} (shape {self})"),
                ));
            }
            out.push(ax);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// `[0, 1, …, ndim-1]`, for "reduce over everything".
    pub fn all_axes(&self) -> Axes {
        Axes((0..self.ndim() as isize).collect())
    }

    /// The shape NumPy broadcasting gives `self` and `other`, or an error naming `op`.
    pub fn broadcast(&self, op: &'static str, other: &Shape) -> Result<Shape> {
        let n = self.ndim().max(other.ndim());
        let mut dims: SmallVec<[usize; 4]> = SmallVec::from_elem(0, n);
        for i in 0..n {
            let a = self.dim_from_end(n - 1 - i);
            let b = other.dim_from_end(n - 1 - i);
            dims[i] = match (a, b) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => return Err(Error::mismatch(op, self, other, "broadcastable shapes")),
            };
        }
        Ok(Shape(dims))
    }

    /// Whether `self` can be broadcast to `target` (NumPy rules, one direction).
    pub fn broadcasts_to(&self, target: &Shape) -> bool {
        self.ndim() <= target.ndim()
            && (0..self.ndim()).all(|i| {
                let a = self.dim_from_end(i);
                a == 1 || a == target.dim_from_end(i)
            })
    }

    /// Dim counted from the end (0 = last); 1 past the front, as broadcasting pads.
    #[inline]
    fn dim_from_end(&self, i: usize) -> usize {
        if i < self.ndim() {
            self.0[self.ndim() - 1 - i]
        } else {
            1
        }
    }

    /// Strides for reading `self` as if broadcast to `target` (0 on broadcast dims).
    /// Caller has checked [`Shape::broadcasts_to`].
    pub(crate) fn broadcast_strides(&self, target: &Shape) -> SmallVec<[usize; 4]> {
        let own = self.strides();
        let off = target.ndim() - self.ndim();
        (0..target.ndim())
            .map(|i| {
                if i < off || self.0[i - off] == 1 {
                    0
                } else {
                    own[i - off]
                }
            })
            .collect()
    }

    /// Sizes of the dims before and after `axis`, for moving whole blocks along it.
    pub(crate) fn outer_inner(&self, axis: usize) -> (usize, usize) {
        (
            Shape::from(&self.0[..axis]).numel(),
            Shape::from(&self.0[axis + 1..]).numel(),
        )
    }

    /// The shape with `axes` (sorted, normalised) set to 1 (`keepdim`) or removed.
    pub(crate) fn reduced(&self, axes: &[usize], keepdim: bool) -> Shape {
        let mut dims = SmallVec::new();
        for (i, &d) in self.0.iter().enumerate() {
            if axes.contains(&i) {
                if keepdim {
                    dims.push(1);
                }
            } else {
                dims.push(d);
            }
        }
        Shape(dims)
    }
}

/// `axis` in `-ndim..ndim` mapped into `0..ndim`, else `None`.
pub(crate) fn normalize_axis(axis: isize, ndim: usize) -> Option<usize> {
    let n = ndim as isize;
    let a = if axis < 0 { axis + n } else { axis };
    (0..n).contains(&a).then_some(a as usize)
}

/// One or several axes, as every op that takes axes accepts them: `isize`, where a
/// negative axis counts from the end (`-1` is the last), as in PyTorch and NumPy.
///
/// An `impl Into<Axes>` argument takes one axis or a list, so single-axis and multi-axis
/// reductions are written alike:
///
/// ```
/// # use tapegrad_core::Tensor;
/// let x = Tensor::<f32>::ones([2, 3, 4])?;
/// assert_eq!(x.sum(-1, false)?.dims(), &[2, 3]);        // one axis
/// assert_eq!(x.sum([0, 2], true)?.dims(), &[1, 3, 1]);  // several
/// assert_eq!(x.permute([2, 0, 1])?.dims(), &[4, 2, 3]); // a permutation is a list of axes too
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Axes(pub SmallVec<[isize; 4]>);

impl Axes {
    /// The axes as given.
    pub fn as_slice(&self) -> &[isize] {
        &self.0
    }
}

impl From<isize> for Axes {
    fn from(a: isize) -> Self {
        Axes(SmallVec::from_slice(&[a]))
    }
}

impl<const N: usize> From<[isize; N]> for Axes {
    fn from(a: [isize; N]) -> Self {
        Axes(SmallVec::from_slice(&a))
    }
}

impl<const N: usize> From<&[isize; N]> for Axes {
    fn from(a: &[isize; N]) -> Self {
        Axes(SmallVec::from_slice(a))
    }
}

impl From<&[isize]> for Axes {
    fn from(a: &[isize]) -> Self {
        Axes(SmallVec::from_slice(a))
    }
}

impl From<Vec<isize>> for Axes {
    fn from(a: Vec<isize>) -> Self {
        Axes(SmallVec::from_vec(a))
    }
}

impl From<&Axes> for Axes {
    fn from(a: &Axes) -> Self {
        a.clone()
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(SmallVec::from_slice(d))
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape(SmallVec::from_slice(&d))
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(SmallVec::from_vec(d))
    }
}

impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

impl From<SmallVec<[usize; 4]>> for Shape {
    fn from(d: SmallVec<[usize; 4]>) -> Self {
        Shape(d)
    }
}

impl From<()> for Shape {
    fn from(_: ()) -> Self {
        Shape::scalar()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy() {
        let a = Shape::from([3, 1, 5]);
        let b = Shape::from([4, 1]);
        assert_eq!(a.broadcast("t", &b).unwrap(), Shape::from([3, 4, 5]));
        assert!(Shape::from([2, 3]).broadcast("t", &Shape::from([3, 2])).is_err());
        assert_eq!(Shape::scalar().broadcast("t", &a).unwrap(), a);
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(Shape::from([2, 3, 4]).strides().as_slice(), &[12, 4, 1]);
        assert_eq!(
            Shape::from([4, 1])
                .broadcast_strides(&Shape::from([3, 4, 5]))
                .as_slice(),
            &[0, 1, 0]
        );
    }

    #[test]
    fn axes_normalise_and_reject_repeats() {
        let s = Shape::from([2, 3, 4]);
        assert_eq!(s.axes("t", &[-1, 0]).unwrap().as_slice(), &[0, 2]);
        assert!(s.axes("t", &[1, -2]).is_err());
        assert!(s.axis("t", 3).is_err());
    }
}
