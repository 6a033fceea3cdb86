//! Encoding a bitmap: JPEG (jpeg-encoder: baseline or progressive, 4:2:0
//! below quality 90, 4:4:4 from 90 up), PNG (png) and WebP (lossy, at the
//! same quality scale as JPEG, through libwebp: `sluice_ffi::libwebp`).
//! The ICC profile, EXIF and XMP are embedded when given.

use super::metadata::JPEG_XMP_PREFIX;
use super::{Bitmap, CodecError, OutputFormat, Result};

pub struct EncodeSettings {
    pub quality: u8,
    pub jpeg_progressive: bool,
}

fn failed(what: &str, e: impl std::fmt::Display) -> CodecError {
    CodecError::Internal(format!("{what} encoding failed: {e}"))
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
        OutputFormat::Webp => out = webp(b, s.quality, meta)?,
    }
    Ok(out)
}

fn jpeg(b: &Bitmap, s: &EncodeSettings, meta: Metadata<'_>, out: &mut Vec<u8>) -> Result<()> {
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
    let color = match b.channels {
        1 => ColorType::Luma,
        3 => ColorType::Rgb,
        _ => return Err(CodecError::Internal("JPEG needs an opaque bitmap".into())),
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

/// Lossy WebP through libwebp, which takes RGB or RGBA: gray bitmaps are
/// expanded first. Metadata goes into the extended container.
fn webp(b: &Bitmap, quality: u8, meta: Metadata<'_>) -> Result<Vec<u8>> {
    use sluice_ffi::libwebp;
    let expanded;
    let (pixels, channels): (&[u8], u8) = match b.channels {
        3 | 4 => (&b.pixels, b.channels),
        1 => {
            expanded = b
                .pixels
                .iter()
                .flat_map(|&v| [v, v, v])
                .collect::<Vec<u8>>();
            (&expanded, 3)
        }
        2 => {
            expanded = b
                .pixels
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0], p[1]])
                .collect::<Vec<u8>>();
            (&expanded, 4)
        }
        n => return Err(failed("WebP", format!("{n} channels"))),
    };
    let image = libwebp::encode_lossy(pixels, b.width, b.height, channels, quality)
        .map_err(CodecError::Internal)?;
    if meta.icc.is_none() && meta.exif.is_none() && meta.xmp.is_none() {
        return Ok(image);
    }
    libwebp::with_metadata(&image, meta.icc, meta.exif, meta.xmp).map_err(CodecError::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32, channels: u8) -> Bitmap {
        let mut pixels = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let v = [(x * 255 / w) as u8, (y * 255 / h) as u8, 128, 200];
                pixels.extend_from_slice(&v[..usize::from(channels).min(4)]);
            }
        }
        Bitmap {
            pixels,
            width: w,
            height: h,
            channels,
        }
    }

    fn decode_webp(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut d = image_webp::WebPDecoder::new(std::io::Cursor::new(bytes)).unwrap();
        let (w, h) = d.dimensions();
        let mut buf = vec![0; d.output_buffer_size().unwrap()];
        d.read_image(&mut buf).unwrap();
        (w, h, buf)
    }

    #[test]
    fn lossy_webp_of_gray_rgb_and_alpha_decodes_back_close() {
        let settings = EncodeSettings {
            quality: 90,
            jpeg_progressive: false,
        };
        for channels in [1, 2, 3, 4] {
            let b = gradient(97, 61, channels);
            let out = encode(&b, OutputFormat::Webp, &settings, Metadata::default()).unwrap();
            assert_eq!(&out[8..12], b"WEBP");
            let (w, h, px) = decode_webp(&out);
            assert_eq!((w, h), (97, 61));
            let step = px.len() / (97 * 61);
            let src_step = usize::from(channels);
            let err: u64 = (0..97 * 61)
                .map(|i| u64::from(px[i * step].abs_diff(b.pixels[i * src_step])))
                .sum();
            assert!(
                err / (97 * 61) < 6,
                "{channels} channels: mean error {}",
                err / (97 * 61)
            );
        }
    }

    #[test]
    fn the_icc_profile_goes_into_webp() {
        let b = gradient(40, 30, 3);
        let icc = b"fake icc profile bytes, kept verbatim".to_vec();
        let settings = EncodeSettings {
            quality: 80,
            jpeg_progressive: false,
        };
        let meta = Metadata {
            icc: Some(&icc),
            ..Metadata::default()
        };
        let out = encode(&b, OutputFormat::Webp, &settings, meta).unwrap();
        let mut d = image_webp::WebPDecoder::new(std::io::Cursor::new(&out[..])).unwrap();
        assert_eq!(d.icc_profile().unwrap(), Some(icc));
    }
}
