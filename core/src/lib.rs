//! PatchMix index algebra (placeholder: being written).
#![no_std]
#![forbid(unsafe_code)]
