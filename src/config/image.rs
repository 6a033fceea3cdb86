//! Flags of the recompression feature, flattened into [`super::Config`].

use std::time::Duration;

use clap::Args;

use super::parse::{parse_duration, parse_size};

/// Signing keys: shared by the server and `sluice sign`.
#[derive(Debug, Clone, Args)]
pub struct SigningFlags {
    /// Hex HMAC key for processing URLs (imgproxy's IMGPROXY_KEY). Repeat
    /// for several key/salt pairs; without one, signatures are not checked.
    #[arg(long = "key", env = "SLUICE_KEY", value_delimiter = ',')]
    pub keys: Vec<String>,

    /// Hex salt paired with each --key (imgproxy's IMGPROXY_SALT).
    #[arg(long = "salt", env = "SLUICE_SALT", value_delimiter = ',')]
    pub salts: Vec<String>,

    /// Bytes of the HMAC kept in a signature (1..=32).
    #[arg(long, env = "SLUICE_SIGNATURE_SIZE", default_value_t = 32)]
    pub signature_size: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ImageFlags {
    /// Path prefix of processing URLs.
    #[arg(long, env = "SLUICE_IMG_PREFIX", default_value = "/img")]
    pub img_prefix: String,

    #[command(flatten)]
    pub signing: SigningFlags,

    /// A URL prefix (`http://host/base/`) that full-URL sources may start
    /// with; such sources are fetched from that prefix. Repeatable.
    #[arg(
        long = "allowed-source",
        env = "SLUICE_ALLOWED_SOURCE",
        value_delimiter = ','
    )]
    pub allowed_sources: Vec<String>,

    /// A named option string, `name=rs:fill:300:300/q:70`, used as `pr:name`.
    /// A preset named `default` applies to every request. Repeatable.
    #[arg(long = "preset", env = "SLUICE_PRESET", value_delimiter = ',')]
    pub presets: Vec<String>,

    /// Threads that decode, resize and encode (0 = number of cores).
    #[arg(long, env = "SLUICE_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Image jobs that may wait for a worker; beyond that, 429.
    #[arg(long, env = "SLUICE_QUEUE_SIZE", default_value_t = 64)]
    pub queue_size: usize,

    /// Longest time one image request may take (fetch, wait, process); then
    /// 503. Also bounds each processed zip source (its entries then fail).
    #[arg(long, env = "SLUICE_PROCESSING_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub processing_timeout: Duration,

    /// Largest source in pixels (width x height); larger ones get 422.
    #[arg(long, env = "SLUICE_MAX_SRC_PIXELS", default_value_t = 50_000_000)]
    pub max_src_pixels: u64,

    /// Largest compressed source; larger ones get 413.
    #[arg(long, env = "SLUICE_MAX_SRC_BYTES", default_value = "32MiB", value_parser = parse_size)]
    pub max_src_bytes: u64,

    /// Cache-Control max-age of processed images.
    #[arg(long, env = "SLUICE_TTL", default_value = "3600s", value_parser = parse_duration)]
    pub ttl: Duration,

    /// Quality used when the URL gives none (JPEG and lossy WebP).
    #[arg(long, env = "SLUICE_QUALITY", default_value_t = 80)]
    pub quality: u8,

    /// Encode JPEG progressively (default baseline).
    #[arg(long, env = "SLUICE_JPEG_PROGRESSIVE")]
    pub jpeg_progressive: bool,
}
