//! One image job, start to end: plan ▶ decode (shrinking on load) ▶ resize
//! ▶ orient ▶ flatten ▶ encode. Runs on a worker thread, never on the
//! reactor. Between stages it checks whether its requester gave up (the
//! processing timeout), so an abandoned job stops at the next stage and
//! frees its memory.
//!
//! [`run`] makes one output (the `/img` route); [`run_variants`] makes
//! several outputs from one decode (zip manifest `variants`, driven by
//! [`super::variants`]). Both share the stages after decoding ([`finish`]).
//! Codec failures become sluice errors here (`From<CodecError>`).
//! [`process`] is a convenience for tools (examples, fuzzing): bytes and
//! options in, encoded image out.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Result;
use crate::image::codec::decode::decode;
use crate::image::codec::encode::{encode, EncodeSettings, Metadata};
use crate::image::codec::metadata::{exif_upright, jpeg_iptc, source_exif, source_xmp};
use crate::image::codec::orient::orient;
use crate::image::codec::probe::probe;
use crate::image::codec::resize::{flatten, resize};
use crate::image::codec::{Bitmap, CodecError, OutputFormat, Probe, SourceFormat};
use crate::image::plan::geometry::{plan, Plan};
use crate::image::plan::options::Options;
use crate::image::plan::shrink::shrink_for;

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

/// The quality an output is encoded at: the URL's, else the server's.
pub fn effective_quality(options: &Options, defaults: Defaults) -> u8 {
    if options.quality == 0 {
        defaults.quality
    } else {
        options.quality
    }
}

/// Probe, choose the format and run, for callers that hold the whole
/// source already (examples, fuzzing). The caller owns the memory
/// accounting.
pub fn process(
    data: &[u8],
    options: &Options,
    accept: Option<&str>,
    defaults: Defaults,
) -> Result<ProcessedImage> {
    let p = probe(data, true)?
        .ok_or_else(|| CodecError::Unprocessable("image header is truncated".into()))?;
    let (format, _) = choose_format(options.format, accept, &p);
    run(data, &p, options, format, defaults, &AtomicBool::new(false))
}

fn check(cancelled: &AtomicBool) -> Result<()> {
    if cancelled.load(Ordering::Relaxed) {
        return Err(CodecError::Cancelled.into());
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
    let decoded = decode(data, p, shrink_for(p, &[plan]), true, cancelled)?;
    check(cancelled)?;
    let icc = decoded.icc;
    let metadata = source_metadata(data, p, icc.as_deref());
    finish(
        Cow::Owned(decoded.bitmap),
        metadata,
        p,
        &plan,
        options,
        format,
        defaults,
        cancelled,
    )
}

/// Several outputs from one source (zip `variants`): one decode, at the
/// largest shrink-on-load factor that still serves every variant
/// ([`shrink_for`]), then resize ▶ orient ▶ flatten ▶ encode per variant
/// from that one bitmap, in order. The outer error fails them all (the
/// source does not decode); an inner one fails only its variant.
pub fn run_variants(
    data: &[u8],
    p: &Probe,
    variants: &[(&Options, OutputFormat)],
    defaults: Defaults,
    cancelled: &AtomicBool,
) -> Result<Vec<Result<ProcessedImage>>> {
    let plans: Vec<Plan> = variants
        .iter()
        .map(|(o, _)| plan(p.width, p.height, p.orientation, o))
        .collect();
    let decoded = decode(data, p, shrink_for(p, &plans), true, cancelled)?;
    check(cancelled)?;
    let metadata = source_metadata(data, p, decoded.icc.as_deref());
    let mut out = Vec::with_capacity(variants.len());
    for ((options, format), plan) in variants.iter().zip(&plans) {
        check(cancelled)?;
        out.push(finish(
            Cow::Borrowed(&decoded.bitmap),
            metadata,
            p,
            plan,
            options,
            *format,
            defaults,
            cancelled,
        ));
    }
    Ok(out)
}

/// What a source carries besides pixels: its ICC profile, EXIF block, XMP
/// packet and (JPEG) IPTC records. The ICC profile is always kept (colours
/// would shift without it); the rest only with `sm:0`.
fn source_metadata<'a>(data: &'a [u8], p: &Probe, icc: Option<&'a [u8]>) -> Metadata<'a> {
    Metadata {
        icc,
        exif: source_exif(data, p.format),
        xmp: source_xmp(data, p.format),
        iptc: (p.format == SourceFormat::Jpeg)
            .then(|| jpeg_iptc(data))
            .flatten(),
    }
}

/// The stages after decoding, shared by [`run`] and [`run_variants`]:
/// resize (the planned region of the decoded bitmap) ▶ orient ▶ flatten ▶
/// encode.
#[allow(clippy::too_many_arguments)]
fn finish(
    decoded: Cow<'_, Bitmap>,
    metadata: Metadata<'_>,
    p: &Probe,
    plan: &Plan,
    options: &Options,
    format: OutputFormat,
    defaults: Defaults,
    cancelled: &AtomicBool,
) -> Result<ProcessedImage> {
    let region = plan.scaled_src((p.width, p.height), (decoded.width, decoded.height));
    let resized = resize(decoded, region, plan.raw_dst)?;
    check(cancelled)?;
    let channels = usize::from(resized.channels);
    let (pixels, width, height) = orient(
        resized.pixels,
        resized.width,
        resized.height,
        channels,
        plan.orientation,
    );
    let mut bitmap = Bitmap {
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
        quality: effective_quality(options, defaults),
        jpeg_progressive: defaults.jpeg_progressive,
    };
    // With `sm:0` the source's EXIF goes along; when sluice has rotated
    // the pixels already, its Orientation is set to 1 so that viewers do
    // not rotate them a second time.
    let keep = !options.strip_metadata;
    let exif = metadata.exif.filter(|_| keep).map(|tiff| {
        if plan.orientation != 1 {
            exif_upright(tiff)
        } else {
            tiff.to_vec()
        }
    });
    let bytes = encode(
        &bitmap,
        format,
        &settings,
        Metadata {
            icc: metadata.icc,
            exif: exif.as_deref(),
            xmp: metadata.xmp.filter(|_| keep),
            iptc: metadata.iptc.filter(|_| keep),
        },
    )?;
    Ok(ProcessedImage {
        bytes,
        format,
        width,
        height,
    })
}
