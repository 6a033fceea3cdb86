//! Encoding a bitmap: JPEG (jpeg-encoder: baseline or progressive, 4:2:0
//! below quality 90, 4:4:4 from 90 up), PNG (png) and WebP (lossy, at the
//! same quality scale as JPEG, through libwebp: see [`super::webp_lossy`]).
//! The ICC profile, EXIF and XMP are embedded when given.

use super::decode::Bitmap;
use super::options::OutputFormat;
use crate::error::{Error, Result};

pub struct EncodeSettings {
    pub quality: u8,
    pub jpeg_progressive: bool,
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{what} encoding failed: {e}"))
}

/// Metadata to embed in an output.
#[derive(Clone, Copy, Default)]
pub struct Metadata<'a> {
    pub icc: Option<&'a [u8]>,
    /// A TIFF-structured EXIF block (only with `sm:0`).
    pub exif: Option<&'a [u8]>,
    /// An XMP packet (only with `sm:0`).
    pub xmp: Option<&'a [u8]>,
    /// IPTC-NAA records (only with `sm:0`; JPEG output only: PNG and WebP
    /// have no standard place for them).
    pub iptc: Option<&'a [u8]>,
}

/// The signature that starts an XMP APP1 segment in a JPEG.
pub const JPEG_XMP_PREFIX: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";

/// JPEG output is 4:2:0 below quality 90 and 4:4:4 from 90 up.
pub fn jpeg_subsamples_chroma(quality: u8) -> bool {
    quality < 90
}

pub fn encode(
    b: &Bitmap,
    format: OutputFormat,
    s: &EncodeSettings,
    meta: Metadata<'_>,
) -> Result<Vec<u8>> {
    // A rough size guess keeps the output Vec from re-growing many times.
    let mut out = Vec::with_capacity(b.pixels.len() / 8 + 1024);
    match format {
        OutputFormat::Jpeg => jpeg(b, s, meta, &mut out)?,
        OutputFormat::Png => png(b, meta, &mut out)?,
        OutputFormat::Webp => out = super::webp_lossy::encode(b, s.quality, meta)?,
    }
    Ok(out)
}

fn jpeg(b: &Bitmap, s: &EncodeSettings, meta: Metadata<'_>, out: &mut Vec<u8>) -> Result<()> {
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
    let color = match b.channels {
        1 => ColorType::Luma,
        3 => ColorType::Rgb,
        _ => return Err(Error::internal("JPEG needs an opaque bitmap")),
    };
    let (w, h) = (
        u16::try_from(b.width).map_err(|e| failed("JPEG", e))?,
        u16::try_from(b.height).map_err(|e| failed("JPEG", e))?,
    );
    let quality = s.quality.clamp(1, 100);
    let mut e = Encoder::new(out, quality);
    e.set_sampling_factor(if jpeg_subsamples_chroma(quality) {
        SamplingFactor::F_2_2
    } else {
        SamplingFactor::F_1_1
    });
    e.set_progressive(s.jpeg_progressive);
    e.set_optimized_huffman_tables(true);
    if let Some(icc) = meta.icc {
        e.add_icc_profile(icc).map_err(|e| failed("JPEG", e))?;
    }
    let app1s = [
        meta.exif.map(|tiff| (b"Exif\0\0".as_slice(), tiff)),
        meta.xmp.map(|packet| (JPEG_XMP_PREFIX, packet)),
    ];
    for (prefix, data) in app1s.into_iter().flatten() {
        let app1 = [prefix, data].concat();
        // An APP1 segment holds at most 65533 bytes: a larger block is
        // left out rather than failing the image (XMP's extended form,
        // split over several segments, is not written).
        if app1.len() <= 65533 {
            e.add_app_segment(1, app1).map_err(|e| failed("JPEG", e))?;
        }
    }
    if let Some(app13) = meta.iptc.and_then(photoshop_iptc_segment) {
        e.add_app_segment(13, app13)
            .map_err(|e| failed("JPEG", e))?;
    }
    e.encode(&b.pixels, w, h, color)
        .map_err(|e| failed("JPEG", e))
}

/// An APP13 body holding only the IPTC-NAA resource (Photoshop image
/// resource 0x0404), as Photoshop and exiftool write it. None when it would
/// not fit one segment.
fn photoshop_iptc_segment(iptc: &[u8]) -> Option<Vec<u8>> {
    let size = u32::try_from(iptc.len()).ok()?;
    let mut app13 = b"Photoshop 3.0\0".to_vec();
    app13.extend_from_slice(b"8BIM\x04\x04\0\0"); // resource 0x0404, empty name
    app13.extend_from_slice(&size.to_be_bytes());
    app13.extend_from_slice(iptc);
    if iptc.len() % 2 == 1 {
        app13.push(0);
    }
    (app13.len() <= 65533).then_some(app13)
}

fn png(b: &Bitmap, meta: Metadata<'_>, out: &mut Vec<u8>) -> Result<()> {
    let mut info = png::Info::with_size(b.width, b.height);
    info.bit_depth = png::BitDepth::Eight;
    info.color_type = match b.channels {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        _ => png::ColorType::Rgba,
    };
    info.icc_profile = meta.icc.map(std::borrow::Cow::Borrowed);
    info.exif_metadata = meta.exif.map(std::borrow::Cow::Borrowed);
    // XMP in PNG: an uncompressed iTXt chunk with this keyword (XMP spec
    // part 3). A packet that is not UTF-8 is not XMP and is left out.
    if let Some(text) = meta.xmp.and_then(|x| std::str::from_utf8(x).ok()) {
        info.utf8_text.push(png::text_metadata::ITXtChunk::new(
            "XML:com.adobe.xmp",
            text,
        ));
    }
    let mut e = png::Encoder::with_info(out, info).map_err(|e| failed("PNG", e))?;
    e.set_compression(png::Compression::Fast);
    let mut w = e.write_header().map_err(|e| failed("PNG", e))?;
    w.write_image_data(&b.pixels)
        .map_err(|e| failed("PNG", e))?;
    w.finish().map_err(|e| failed("PNG", e))
}
