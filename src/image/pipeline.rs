//! One image job, start to end: plan ▶ decode (shrinking on load) ▶ resize
//! ▶ orient ▶ flatten ▶ encode. Runs on a worker thread, never on the
//! reactor. Between stages it checks whether its requester gave up (the
//! processing timeout), so an abandoned job stops at the next stage and
//! frees its memory.
//!
//! [`process`] is the entry point for other features (zip variants): bytes
//! and options in, encoded image out.

use std::sync::atomic::{AtomicBool, Ordering};

use super::decode::{decode, jpeg_shrink};
use super::encode::{encode, EncodeSettings};
use super::geometry::{orient, plan};
use super::options::{Options, OutputFormat};
use super::probe::{probe, Probe, SourceFormat};
use super::resize::{flatten, resize};
use crate::error::{Error, Kind, Result};

/// An encoded result.
#[derive(Debug, Clone)]
pub struct ProcessedImage {
    pub bytes: Vec<u8>,
    pub format: OutputFormat,
    pub width: u32,
    pub height: u32,
}

/// Server-wide defaults that a URL may override.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub quality: u8,
    pub jpeg_progressive: bool,
}

/// The output format: the requested one, or for `f:auto` / no extension,
/// one chosen from `Accept`. Returns whether the choice depended on
/// `Accept` (then the response needs `Vary: Accept`).
///
/// As imgproxy does with WebP detection on, WebP (lossy, with alpha where
/// the source has it) wins whenever `Accept` allows it; otherwise PNG for
/// sources with alpha or from PNG/GIF, and JPEG for the rest.
pub fn choose_format(
    requested: Option<OutputFormat>,
    accept: Option<&str>,
    source: &Probe,
) -> (OutputFormat, bool) {
    if let Some(f) = requested {
        return (f, false);
    }
    let accepts_webp = accept.is_some_and(|a| {
        a.split(',')
            .any(|t| t.split(';').next().map(str::trim) == Some("image/webp") && !t.contains("q=0"))
    });
    let format = if accepts_webp {
        OutputFormat::Webp
    } else if source.alpha || matches!(source.format, SourceFormat::Png | SourceFormat::Gif) {
        OutputFormat::Png
    } else {
        OutputFormat::Jpeg
    };
    (format, true)
}

/// Probe, choose the format and run, for callers that hold the whole
/// source already (zip entries). The caller owns the memory accounting.
pub fn process(
    data: &[u8],
    options: &Options,
    accept: Option<&str>,
    defaults: Defaults,
) -> Result<ProcessedImage> {
    let p = probe(data, true)?
        .ok_or_else(|| Error::new(Kind::Unprocessable, "image header is truncated"))?;
    let (format, _) = choose_format(options.format, accept, &p);
    run(data, &p, options, format, defaults, &AtomicBool::new(false))
}

fn check(cancelled: &AtomicBool) -> Result<()> {
    if cancelled.load(Ordering::Relaxed) {
        return Err(Error::new(Kind::Unavailable, "processing timed out"));
    }
    Ok(())
}

/// Run a job whose header was probed already.
pub fn run(
    data: &[u8],
    p: &Probe,
    options: &Options,
    format: OutputFormat,
    defaults: Defaults,
    cancelled: &AtomicBool,
) -> Result<ProcessedImage> {
    let plan = plan(p.width, p.height, p.orientation, options);
    let shrink = if p.format == SourceFormat::Jpeg {
        jpeg_shrink((plan.src.w, plan.src.h), plan.raw_dst)
    } else {
        1
    };
    let decoded = decode(data, p, shrink, true)?;
    check(cancelled)?;
    let icc = decoded.icc;
    let bitmap = decoded.bitmap;
    let region = plan.scaled_src((p.width, p.height), (bitmap.width, bitmap.height));
    let resized = resize(bitmap, region, plan.raw_dst)?;
    check(cancelled)?;
    let channels = usize::from(resized.channels);
    let (pixels, width, height) = orient(
        resized.pixels,
        resized.width,
        resized.height,
        channels,
        plan.orientation,
    );
    let mut bitmap = super::decode::Bitmap {
        pixels,
        width,
        height,
        channels: resized.channels,
    };
    if format == OutputFormat::Jpeg {
        bitmap = flatten(bitmap, options.background.unwrap_or([255, 255, 255]));
    } else if let Some(bg) = options.background {
        bitmap = flatten(bitmap, bg);
    }
    let settings = EncodeSettings {
        quality: if options.quality == 0 {
            defaults.quality
        } else {
            options.quality
        },
        jpeg_progressive: defaults.jpeg_progressive,
    };
    let bytes = encode(&bitmap, format, &settings, icc.as_deref())?;
    Ok(ProcessedImage {
        bytes,
        format,
        width,
        height,
    })
}
