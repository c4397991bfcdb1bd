//! tapegrad-nn (work in progress).
#![forbid(unsafe_code)]
