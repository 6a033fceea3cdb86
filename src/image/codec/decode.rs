//! Decoding a whole compressed source into an 8-bit bitmap (gray, gray+alpha,
//! RGB or RGBA), shrinking JPEGs on load when the output is much smaller.
//!
//! JPEG goes through libjpeg-turbo (`sluice_ffi::libjpeg`, chosen by
//! measurement); PNG, GIF and WebP through pure-Rust crates.

use std::io::Cursor;
use std::sync::atomic::AtomicBool;

use sluice_ffi::libjpeg;

use super::metadata::{jpeg_icc, jpeg_is_adobe};
use super::probe::{Probe, SourceFormat};
use super::{Bitmap, CodecError, Result};

pub struct Decoded {
    pub bitmap: Bitmap,
    pub icc: Option<Vec<u8>>,
}

fn corrupt(format: SourceFormat, e: impl std::fmt::Display) -> CodecError {
    CodecError::Unprocessable(format!("cannot decode {} image: {e}", format.name()))
}

/// Decode `data`. For JPEG, `shrink` (1, 2, 4 or 8) reduces the decoded
/// size; the caller maps its plan with the actual dimensions. A JPEG
/// decode stops early once `cancelled` is set.
pub fn decode(
    data: &[u8],
    probe: &Probe,
    shrink: u32,
    keep_icc: bool,
    cancelled: &AtomicBool,
) -> Result<Decoded> {
    match probe.format {
        SourceFormat::Jpeg => jpeg(data, probe, shrink, keep_icc, cancelled),
        SourceFormat::Png => png(data, keep_icc),
        SourceFormat::Gif => gif(data),
        SourceFormat::Webp => webp(data, keep_icc),
    }
}

fn jpeg(
    data: &[u8],
    probe: &Probe,
    shrink: u32,
    keep_icc: bool,
    cancelled: &AtomicBool,
) -> Result<Decoded> {
    let raw = libjpeg::decode(
        data,
        shrink,
        jpeg_is_adobe(data),
        (probe.width, probe.height),
        cancelled,
    )
    .map_err(|failure| match failure {
        libjpeg::Failure::Corrupt(e) => corrupt(SourceFormat::Jpeg, e),
        libjpeg::Failure::Cancelled => CodecError::Cancelled,
    })?;
    Ok(Decoded {
        bitmap: Bitmap {
            pixels: raw.pixels,
            width: raw.width,
            height: raw.height,
            channels: raw.channels,
        },
        icc: if keep_icc { jpeg_icc(data) } else { None },
    })
}

fn png(data: &[u8], keep_icc: bool) -> Result<Decoded> {
    let mut d = png::Decoder::new(Cursor::new(data));
    d.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = d.read_info().map_err(|e| corrupt(SourceFormat::Png, e))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| corrupt(SourceFormat::Png, "image too large"))?;
    let mut pixels = vec![0u8; size];
    let out = reader
        .next_frame(&mut pixels)
        .map_err(|e| corrupt(SourceFormat::Png, e))?;
    pixels.truncate(out.buffer_size());
    let channels = match out.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(corrupt(SourceFormat::Png, "palette not expanded")),
    };
    if out.bit_depth != png::BitDepth::Eight || out.line_size != out.width as usize * channels {
        return Err(corrupt(SourceFormat::Png, "unexpected bit depth"));
    }
    let icc = if keep_icc {
        reader.info().icc_profile.as_ref().map(|c| c.to_vec())
    } else {
        None
    };
    Ok(Decoded {
        bitmap: Bitmap {
            pixels,
            width: out.width,
            height: out.height,
            channels: channels as u8,
        },
        icc,
    })
}

/// The first frame of a GIF, composed onto its logical screen.
fn gif(data: &[u8]) -> Result<Decoded> {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut d = options
        .read_info(Cursor::new(data))
        .map_err(|e| corrupt(SourceFormat::Gif, e))?;
    let (width, height) = (u32::from(d.width()), u32::from(d.height()));
    let mut canvas = vec![0u8; width as usize * height as usize * 4];
    let frame = d
        .read_next_frame()
        .map_err(|e| corrupt(SourceFormat::Gif, e))?
        .ok_or_else(|| corrupt(SourceFormat::Gif, "no frames"))?;
    let (fl, ft) = (usize::from(frame.left), usize::from(frame.top));
    let (fw, fh) = (usize::from(frame.width), usize::from(frame.height));
    for row in 0..fh {
        let y = ft + row;
        if y >= height as usize || fl >= width as usize {
            break;
        }
        let visible = fw.min(width as usize - fl);
        let src = &frame.buffer[row * fw * 4..(row * fw + visible) * 4];
        let at = (y * width as usize + fl) * 4;
        canvas[at..at + visible * 4].copy_from_slice(src);
    }
    Ok(Decoded {
        bitmap: Bitmap {
            pixels: canvas,
            width,
            height,
            channels: 4,
        },
        icc: None,
    })
}

/// The (first frame of a) WebP.
fn webp(data: &[u8], keep_icc: bool) -> Result<Decoded> {
    let mut d = image_webp::WebPDecoder::new(Cursor::new(data))
        .map_err(|e| corrupt(SourceFormat::Webp, e))?;
    let (width, height) = d.dimensions();
    let channels = if d.has_alpha() { 4 } else { 3 };
    let size = d
        .output_buffer_size()
        .ok_or_else(|| corrupt(SourceFormat::Webp, "image too large"))?;
    let mut pixels = vec![0u8; size];
    d.read_image(&mut pixels)
        .map_err(|e| corrupt(SourceFormat::Webp, e))?;
    let icc = if keep_icc {
        d.icc_profile().ok().flatten()
    } else {
        None
    };
    Ok(Decoded {
        bitmap: Bitmap {
            pixels,
            width,
            height,
            channels,
        },
        icc,
    })
}
