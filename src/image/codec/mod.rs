//! The codecs: bytes ▶ header ([`probe`]) and metadata ([`metadata`]),
//! bytes ▶ pixels ([`decode`]), pixels ▶ pixels ([`resize`], [`orient`]),
//! pixels ▶ bytes ([`encode`]). Pure functions over whole buffers, run on a
//! worker thread; they know nothing of HTTP, budgets or requests, and
//! import nothing else of sluice. The C libraries are reached through the
//! `sluice-ffi` crate.
//!
//! Failures are [`CodecError`]s: input that cannot be processed, a job
//! cancelled mid-way, or a library failing on valid input. The layer that
//! runs jobs turns them into sluice's error.

pub mod bitmap;
pub mod decode;
pub mod encode;
pub mod format;
pub mod metadata;
pub mod orient;
pub mod probe;
pub mod resize;

pub use bitmap::{Bitmap, Region};
pub use format::{OutputFormat, SourceFormat};
pub use probe::Probe;

/// Why a codec could not do its work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The input cannot be processed: damaged, unsupported, or beyond what
    /// the format allows.
    Unprocessable(String),
    /// The job was cancelled (its deadline passed) and stopped mid-way.
    Cancelled,
    /// A library failed on input it should have taken.
    Internal(String),
}

impl CodecError {
    pub fn is_unprocessable(&self) -> bool {
        matches!(self, CodecError::Unprocessable(_))
    }
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecError::Unprocessable(why) | CodecError::Internal(why) => f.write_str(why),
            CodecError::Cancelled => f.write_str("processing was cancelled"),
        }
    }
}

impl std::error::Error for CodecError {}

pub type Result<T, E = CodecError> = std::result::Result<T, E>;
