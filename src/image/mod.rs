//! Recompression: imgproxy-compatible processing URLs, by stage, each
//! stage importing only those before it:
//!
//! - [`codec`]: bytes ▶ header, metadata, pixels, and back (no sluice
//!   imports at all);
//! - [`plan`]: what to make and what it will cost, from the header alone;
//! - [`run`]: counted input, the worker pool, the pipeline, coalescing;
//! - [`http`]: the `/img` route, its URL grammar, signatures and ETags.
//!
//! origin ▶ bounded compressed input ▶ worker pool (probe ▶ decode ▶ resize
//! ▶ encode) ▶ client. Every buffer is reserved from the one memory budget
//! before it exists.

pub mod codec;
pub mod http;
pub mod plan;
pub mod run;

use std::time::Duration;

pub use http::service::ImageService;

/// Signing keys (`--key`, `--salt`, `--signature-size`).
#[derive(Debug, Clone, Default)]
pub struct SigningSettings {
    pub keys: Vec<String>,
    pub salts: Vec<String>,
    pub signature_size: usize,
}

/// Everything the `/img` route is built from.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    /// Path prefix of processing URLs (`--img-prefix`).
    pub prefix: String,
    pub signing: SigningSettings,
    /// `--allowed-source` URL prefixes.
    pub allowed_sources: Vec<String>,
    /// `--preset name=options` definitions.
    pub presets: Vec<String>,
    /// `Cache-Control: max-age` of results (`--ttl`).
    pub ttl: Duration,
    pub processor: run::ProcessorSettings,
}
