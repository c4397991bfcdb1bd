//! Raw loops over contiguous buffers. No autograd here: the ops in [`crate::ops`] call
//! these for their forward values and record their gradient rules themselves.
//!
//! Every kernel takes slices whose lengths the calling op has already checked against the
//! shapes, so a kernel never sees inconsistent input.

pub(crate) mod conv;
pub(crate) mod conv_gemm;
mod conv_image;
mod conv_pool;
mod conv_windows;
pub(crate) mod elementwise;
pub(crate) mod fill;
pub(crate) mod gemm;
pub(crate) mod pool;
pub(crate) mod reduce;
