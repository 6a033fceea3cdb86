//! The unsafe corner of sluice, kept in a crate of its own so that sluice
//! itself can `forbid(unsafe_code)`: every call into C (libjpeg-turbo,
//! libwebp) and every jemalloc control whose C type Rust cannot check. Each
//! module offers safe functions over plain data (bytes, dimensions,
//! strings for errors) and documents every `unsafe` block with the
//! invariant that makes it sound.
//!
//! - [`libjpeg`]: JPEG decoding with shrink-on-load, a strict error manager
//!   (damaged data is an error, not grey rows), scan-bomb and cancel checks;
//! - [`libwebp`]: lossy WebP encoding and the extended container for
//!   metadata;
//! - [`jemalloc`]: the image workers' arena, and `malloc_conf`.

pub mod jemalloc;
pub mod libjpeg;
pub mod libwebp;
