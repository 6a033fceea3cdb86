//! Decoding a whole compressed source into an 8-bit bitmap (gray, gray+alpha,
//! RGB or RGBA), shrinking JPEGs on load when the output is much smaller.
//!
//! JPEG decoder choice, by measurement (examples/jpeg_decoders.rs, numbers in
//! the README, Recompression): jpeg-decoder's DCT-domain `scale` decodes an 18 MP
//! baseline JPEG to 1/4 size with ~5x less memory and ~4x less CPU than
//! zune-jpeg's full-size decode; at full size zune-jpeg is faster and leaner.
//! So: jpeg-decoder when we can shrink by 2 or more (by 4 or more for
//! progressive files, where it keeps full-size coefficients anyway),
//! zune-jpeg otherwise.

use std::io::Cursor;

use super::probe::{Probe, SourceFormat};
use crate::error::{Error, Kind, Result};

/// An 8-bit bitmap; `channels` is 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA).
#[derive(Debug, Clone)]
pub struct Bitmap {
    pub pixels: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub channels: u8,
}

impl Bitmap {
    pub fn has_alpha(&self) -> bool {
        self.channels == 2 || self.channels == 4
    }
}

pub struct Decoded {
    pub bitmap: Bitmap,
    pub icc: Option<Vec<u8>>,
}

fn corrupt(format: SourceFormat, e: impl std::fmt::Display) -> Error {
    Error::new(
        Kind::Unprocessable,
        format!("cannot decode {} image: {e}", format.name()),
    )
}

/// The DCT scale denominator (1, 2, 4 or 8) for decoding a `width x height`
/// JPEG of which a region `region_w x region_h` becomes `out_w x out_h`:
/// the largest that still leaves the region at least as large as the output.
pub fn jpeg_shrink(region: (f64, f64), out: (u32, u32)) -> u32 {
    let factor = (region.0 / f64::from(out.0)).min(region.1 / f64::from(out.1));
    [8, 4, 2]
        .into_iter()
        .find(|&s| f64::from(s) <= factor)
        .unwrap_or(1)
}

/// Whether `shrink` is better done by jpeg-decoder (see the module docs).
pub fn use_scaled_decoder(probe: &Probe, shrink: u32) -> bool {
    shrink >= 4 || (shrink >= 2 && !probe.progressive)
}

/// Decode `data`. For JPEG, `shrink` (from [`jpeg_shrink`]) may reduce the
/// decoded size; the caller maps its plan with the actual dimensions.
pub fn decode(data: &[u8], probe: &Probe, shrink: u32, keep_icc: bool) -> Result<Decoded> {
    match probe.format {
        SourceFormat::Jpeg if use_scaled_decoder(probe, shrink) => {
            jpeg_scaled(data, probe, shrink, keep_icc)
        }
        SourceFormat::Jpeg => jpeg_full(data, probe, keep_icc),
        SourceFormat::Png => png(data, keep_icc),
        SourceFormat::Gif => gif(data),
        SourceFormat::Webp => webp(data, keep_icc),
    }
}

fn jpeg_full(data: &[u8], probe: &Probe, keep_icc: bool) -> Result<Decoded> {
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let out = if probe.components == 1 {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(out)
        .set_max_width(probe.width as usize)
        .set_max_height(probe.height as usize)
        .set_strict_mode(false);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(
        zune_core::bytestream::ZCursor::new(data),
        options,
    );
    d.decode_headers()
        .map_err(|e| corrupt(SourceFormat::Jpeg, e))?;
    let info = d
        .info()
        .ok_or_else(|| corrupt(SourceFormat::Jpeg, "no header"))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    if (width, height) != (probe.width, probe.height) {
        return Err(corrupt(
            SourceFormat::Jpeg,
            "header changed between probe and decode",
        ));
    }
    let channels = out.num_components() as u8;
    let size = d
        .output_buffer_size()
        .ok_or_else(|| corrupt(SourceFormat::Jpeg, "image too large"))?;
    let mut pixels = vec![0u8; size];
    d.decode_into(&mut pixels)
        .map_err(|e| corrupt(SourceFormat::Jpeg, e))?;
    let icc = if keep_icc { d.icc_profile() } else { None };
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

fn jpeg_scaled(data: &[u8], probe: &Probe, shrink: u32, keep_icc: bool) -> Result<Decoded> {
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(data));
    let req_w = probe.width.div_ceil(shrink).min(u32::from(u16::MAX)) as u16;
    let req_h = probe.height.div_ceil(shrink).min(u32::from(u16::MAX)) as u16;
    let (w, h) = d
        .scale(req_w, req_h)
        .map_err(|e| corrupt(SourceFormat::Jpeg, e))?;
    let pixels = d.decode().map_err(|e| corrupt(SourceFormat::Jpeg, e))?;
    let info = d
        .info()
        .ok_or_else(|| corrupt(SourceFormat::Jpeg, "no header"))?;
    let (width, height) = (u32::from(w), u32::from(h));
    let (pixels, channels) = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => (pixels, 1),
        jpeg_decoder::PixelFormat::RGB24 => (pixels, 3),
        jpeg_decoder::PixelFormat::CMYK32 => (cmyk_to_rgb(&pixels), 3),
        jpeg_decoder::PixelFormat::L16 => {
            return Err(corrupt(SourceFormat::Jpeg, "16-bit JPEG is not supported"))
        }
    };
    if pixels.len() != width as usize * height as usize * channels {
        return Err(corrupt(
            SourceFormat::Jpeg,
            "decoded size does not match the header",
        ));
    }
    let icc = if keep_icc { d.icc_profile() } else { None };
    Ok(Decoded {
        bitmap: Bitmap {
            pixels,
            width,
            height,
            channels: channels as u8,
        },
        icc,
    })
}

/// CMYK to RGB, the naive way (R = (255-C)(255-K)/255), as ImageMagick
/// does without a CMYK profile. jpeg-decoder has already undone Adobe's
/// inversion, so 0 = no ink here (checked against tests/data odd cmyk.jpg).
/// No crate here converts CMYK without a colour-management engine.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let k = 255 - u16::from(p[3]);
        for &c in &p[..3] {
            rgb.push((((255 - u16::from(c)) * k + 127) / 255) as u8);
        }
    }
    rgb
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_leaves_the_region_at_least_output_sized() {
        assert_eq!(jpeg_shrink((5184.0, 3456.0), (800, 533)), 4);
        assert_eq!(jpeg_shrink((6400.0, 4800.0), (800, 600)), 8);
        assert_eq!(jpeg_shrink((1600.0, 1200.0), (800, 600)), 2);
        assert_eq!(jpeg_shrink((1500.0, 1200.0), (800, 600)), 1);
        assert_eq!(jpeg_shrink((100.0, 100.0), (800, 800)), 1);
    }

    #[test]
    fn cmyk_conversion_treats_0_as_no_ink() {
        assert_eq!(cmyk_to_rgb(&[0, 0, 0, 0]), vec![255, 255, 255]);
        assert_eq!(cmyk_to_rgb(&[255, 0, 0, 0]), vec![0, 255, 255]);
        assert_eq!(cmyk_to_rgb(&[0, 0, 0, 255]), vec![0, 0, 0]);
    }
}
