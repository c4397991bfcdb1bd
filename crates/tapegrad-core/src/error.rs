//! The one error type of tapegrad.
//!
//! Policy: every fallible operation is a method returning [`Result`]. The arithmetic
//! operator overloads (`&a + &b`, …) are a convenience for code that has already checked
//! its shapes: they panic with exactly the message the `Result` form would return.

use crate::shape::Shape;
use std::fmt;

/// Result alias used throughout tapegrad.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, naming the operation and the shapes or values involved.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Two shapes that the op needs to agree (or broadcast) do not.
    ShapeMismatch {
        /// The operation, e.g. `"add"`.
        op: &'static str,
        /// Left-hand shape.
        lhs: Shape,
        /// Right-hand shape.
        rhs: Shape,
        /// What the op needed, e.g. `"broadcastable shapes"`.
        expected: &'static str,
    },
    /// An axis outside `-ndim..ndim` (or repeated where it must be unique).
    BadAxis {
        /// The operation.
        op: &'static str,
        /// The axis as given.
        axis: isize,
        /// The shape it was applied to.
        shape: Shape,
    },
    /// The number of elements does not match the shape, or a size is invalid.
    BadShape {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// An index outside its dimension.
    IndexOutOfRange {
        /// The operation.
        op: &'static str,
        /// The index.
        index: usize,
        /// The size of the indexed dimension.
        size: usize,
    },
    /// A bad argument value (not a shape problem): a NaN, a negative size, `low > high`…
    BadValue {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// Autograd misuse: backward of an untracked tensor, a non-scalar without a seed…
    Autograd {
        /// What was asked.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// A gradient check found a mismatch; the report says where.
    GradCheck(String),
    /// Anomaly mode found a NaN or an infinity (see [`crate::anomaly`]).
    Anomaly {
        /// The op whose output (forward) or whose rule's gradient (backward) held it.
        op: &'static str,
        /// `"forward"` or `"backward"`.
        direction: &'static str,
        /// The counts, the input shapes and where the op was called.
        msg: String,
    },
    /// A file could not be read or written.
    Io(String),
    /// A file is not in the expected format.
    Format(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ShapeMismatch { op, lhs, rhs, expected } => {
                write!(f, "{op}: shape mismatch {lhs} vs {rhs} (expected {expected})")
            }
            Error::BadAxis { op, axis, shape } => write!(
                f,
                "{op}: axis {axis} is out of range for shape {shape} (ndim {})",
                shape.ndim()
            ),
            Error::BadShape { op, msg } => write!(f, "{op}: {msg}"),
            Error::IndexOutOfRange { op, index, size } => {
                write!(f, "{op}: index {index} is out of range for a dimension of size {size}")
            }
            Error::BadValue { op, msg } => write!(f, "{op}: {msg}"),
            Error::Autograd { op, msg } => write!(f, "{op}: {msg}"),
            Error::GradCheck(report) => write!(f, "gradcheck failed: {report}"),
            Error::Anomaly { op, direction, msg } => {
                write!(f, "anomaly detected in the {direction} pass of {op}: {msg}")
            }
            Error::Io(msg) => write!(f, "i/o error: {msg}"),
            Error::Format(msg) => write!(f, "format error: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

impl Error {
    /// A [`Error::ShapeMismatch`].
    pub fn mismatch(op: &'static str, lhs: &Shape, rhs: &Shape, expected: &'static str) -> Self {
        Error::ShapeMismatch {
            op,
            lhs: lhs.clone(),
            rhs: rhs.clone(),
            expected,
        }
    }

    /// A [`Error::BadShape`].
    pub fn bad_shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::BadShape { op, msg: msg.into() }
    }

    /// A [`Error::BadValue`].
    pub fn bad_value(op: &'static str, msg: impl Into<String>) -> Self {
        Error::BadValue { op, msg: msg.into() }
    }

    /// An [`Error::Autograd`].
    pub fn autograd(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Autograd { op, msg: msg.into() }
    }
}
