//! Recompression: imgproxy-compatible processing URLs (issue 4).
//!
//! origin ▶ bounded compressed input ▶ worker pool (probe ▶ decode ▶ resize
//! ▶ encode) ▶ client. Every buffer is reserved from the one memory budget
//! before it exists.

pub mod options;
pub mod signature;
pub mod url;
