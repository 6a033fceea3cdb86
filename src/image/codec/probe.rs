//! Header-only probe: format, dimensions, components, progressive, EXIF
//! orientation, from the first bytes of a source, before anything is
//! decoded or allocated.
//!
//! Written by hand because it must work on a *prefix* of a stream that is
//! still arriving (answer "need more bytes" rather than fail) so that an
//! oversized source is refused as soon as its header is in, and because the
//! decoders' own header readers allocate and want the whole file.

pub use super::format::SourceFormat;
use super::format::{be16, le16, le24};
use super::metadata::{exif_orientation, source_orientation};
use super::{CodecError, Result};

/// What the header says about a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub format: SourceFormat,
    pub width: u32,
    pub height: u32,
    /// Colour components as stored (JPEG: 1 gray, 3 YCbCr, 4 CMYK/YCCK;
    /// others: channels of the decoded image).
    pub components: u8,
    /// Whether the decoded image may carry alpha.
    pub alpha: bool,
    /// JPEG progressive.
    pub progressive: bool,
    /// The JPEG decoder holds the whole image's coefficients before it can
    /// output a row: progressive files, and sequential ones whose first
    /// scan does not cover every component (non-interleaved scans),
    /// exactly as libjpeg decides it.
    pub coefficients_buffered: bool,
    /// EXIF orientation 1..=8 (1 when absent).
    pub orientation: u8,
    /// Sample planes per pixel, in sixteenths: JPEG 4:2:0 YCbCr is 24
    /// (1 + 1/4 + 1/4), 4:4:4 is 48. Sizes a progressive JPEG's coefficients.
    pub planes_x16: u32,
}

impl Probe {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

fn unprocessable(reason: &'static str) -> CodecError {
    CodecError::Unprocessable(reason.into())
}

/// Probe `data`. `Ok(None)` means the header is not complete yet and more
/// bytes are needed; with `complete == true` that becomes an error.
pub fn probe(data: &[u8], complete: bool) -> Result<Option<Probe>> {
    let result = match sniff(data) {
        Sniffed::Format(SourceFormat::Jpeg) => jpeg(data),
        Sniffed::Format(SourceFormat::Png) => png(data),
        Sniffed::Format(SourceFormat::Gif) => gif(data),
        Sniffed::Format(SourceFormat::Webp) => webp(data),
        Sniffed::NeedMore => Ok(None),
        Sniffed::Unknown => Err(unprocessable("unsupported image format")),
    }?;
    match result {
        Some(p) if p.width == 0 || p.height == 0 => Err(unprocessable("image has no pixels")),
        None if complete && data.is_empty() => Err(unprocessable("source is empty (0 bytes)")),
        None if complete => Err(unprocessable("image header is truncated")),
        other => Ok(other),
    }
}

enum Sniffed {
    Format(SourceFormat),
    NeedMore,
    Unknown,
}

fn sniff(d: &[u8]) -> Sniffed {
    const SIGS: [(&[u8], SourceFormat); 4] = [
        (&[0xFF, 0xD8, 0xFF], SourceFormat::Jpeg),
        (b"\x89PNG\r\n\x1a\n", SourceFormat::Png),
        (b"GIF8", SourceFormat::Gif),
        (b"RIFF", SourceFormat::Webp),
    ];
    for (sig, format) in SIGS {
        let n = sig.len().min(d.len());
        if d[..n] == sig[..n] {
            if d.len() < sig.len() {
                return Sniffed::NeedMore;
            }
            if format == SourceFormat::Webp {
                return match d.get(8..12) {
                    None => Sniffed::NeedMore,
                    Some(b"WEBP") => Sniffed::Format(format),
                    Some(_) => Sniffed::Unknown,
                };
            }
            return Sniffed::Format(format);
        }
    }
    Sniffed::Unknown
}
/// Walk JPEG markers up to the first scan header (SOS), past the frame
/// header (SOFn).
fn jpeg(d: &[u8]) -> Result<Option<Probe>> {
    let mut at = 2;
    let mut orientation = 1;
    let mut frame: Option<Probe> = None;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        let Some(&first) = d.get(at) else {
            return Ok(None);
        };
        if first != 0xFF {
            return Err(unprocessable("corrupt JPEG: expected a marker"));
        }
        while d.get(at) == Some(&0xFF) {
            at += 1;
        }
        let Some(&marker) = d.get(at) else {
            return Ok(None);
        };
        at += 1;
        if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            continue; // standalone markers carry no length
        }
        let found = match (marker, frame) {
            (0xD9 | 0xDA, None) => {
                return Err(unprocessable(
                    "corrupt JPEG: no frame header before scan data",
                ))
            }
            (0xD9, Some(_)) => return Err(unprocessable("corrupt JPEG: no scan data")),
            (0xDA, Some(found)) => found,
            _ => {
                at = match jpeg_segment(d, at, marker, &mut frame, &mut orientation)? {
                    Some(next) => next,
                    None => return Ok(None),
                };
                continue;
            }
        };
        // SOS: its component count says whether the scans interleave.
        // Answer only once the whole scan header is here.
        let Some(len) = be16(d, at) else {
            return Ok(None);
        };
        let Some(sos) = d.get(at + 2..at + len.max(3) as usize) else {
            return Ok(None);
        };
        return Ok(Some(Probe {
            coefficients_buffered: found.progressive || sos[0] < found.components,
            orientation,
            ..found
        }));
    }
}

/// One segment of a JPEG header at `at` (just past its marker): records
/// the frame header and the EXIF orientation. The offset of the next
/// marker, or None when more bytes are needed.
fn jpeg_segment(
    d: &[u8],
    at: usize,
    marker: u8,
    frame: &mut Option<Probe>,
    orientation: &mut u8,
) -> Result<Option<usize>> {
    let Some(len) = be16(d, at) else {
        return Ok(None);
    };
    let len = len as usize;
    if len < 2 {
        return Err(unprocessable("corrupt JPEG: bad segment length"));
    }
    let body = at + 2..at + len;
    match marker {
        0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
            let Some(seg) = d.get(body.clone()) else {
                return Ok(None);
            };
            if matches!(marker, 0xC3 | 0xC7 | 0xCB | 0xCF) {
                return Err(unprocessable("lossless JPEG is not supported"));
            }
            // Arithmetic coding (SOF9, SOF10) decodes; hierarchical
            // (differential) JPEG is not supported by libjpeg either.
            if matches!(marker, 0xC5..=0xC7 | 0xCD..=0xCF) {
                return Err(unprocessable("hierarchical JPEG is not supported"));
            }
            if seg.len() < 6 {
                return Err(unprocessable("corrupt JPEG: short frame header"));
            }
            if seg[0] != 8 {
                return Err(unprocessable("only 8-bit JPEG is supported"));
            }
            let components = seg[5];
            if !matches!(components, 1 | 3 | 4) {
                return Err(unprocessable(
                    "JPEG with an unsupported number of components",
                ));
            }
            let factors: Vec<(u32, u32)> = seg
                .get(6..6 + 3 * usize::from(components))
                .ok_or_else(|| unprocessable("corrupt JPEG: short frame header"))?
                .chunks_exact(3)
                .map(|c| (u32::from(c[1] >> 4), u32::from(c[1] & 0x0F)))
                .collect();
            if factors
                .iter()
                .any(|&(h, v)| h == 0 || v == 0 || h > 4 || v > 4)
            {
                return Err(unprocessable("corrupt JPEG: bad sampling factors"));
            }
            let h_max = factors.iter().map(|f| f.0).max().unwrap_or(1);
            let v_max = factors.iter().map(|f| f.1).max().unwrap_or(1);
            let planes_x16 = factors
                .iter()
                .map(|&(h, v)| (16 * h * v).div_ceil(h_max * v_max))
                .sum();
            if frame.is_some() {
                return Err(unprocessable("corrupt JPEG: two frame headers"));
            }
            let progressive = matches!(marker, 0xC2 | 0xCA);
            *frame = Some(Probe {
                format: SourceFormat::Jpeg,
                height: be16(seg, 1).unwrap_or(0),
                width: be16(seg, 3).unwrap_or(0),
                components,
                alpha: false,
                progressive,
                coefficients_buffered: progressive,
                orientation: 1,
                planes_x16,
            });
        }
        0xE1 => {
            let Some(seg) = d.get(body.clone()) else {
                return Ok(None);
            };
            if let Some(tiff) = seg.strip_prefix(b"Exif\0\0") {
                *orientation = exif_orientation(tiff).unwrap_or(1);
            }
        }
        _ => {}
    }
    Ok(Some(body.end))
}
fn png(d: &[u8]) -> Result<Option<Probe>> {
    if d.len() < 29 {
        return Ok(None);
    }
    if &d[12..16] != b"IHDR" {
        return Err(unprocessable("corrupt PNG: IHDR is not the first chunk"));
    }
    let width = u32::from_be_bytes([d[16], d[17], d[18], d[19]]);
    let height = u32::from_be_bytes([d[20], d[21], d[22], d[23]]);
    let (components, alpha) = match d[25] {
        0 => (1, false),
        2 => (3, false),
        3 => (4, true), // palette; may have tRNS, decoded as RGBA
        4 => (2, true),
        6 => (4, true),
        _ => return Err(unprocessable("corrupt PNG: bad colour type")),
    };
    Ok(Some(Probe {
        format: SourceFormat::Png,
        width,
        height,
        components,
        alpha,
        progressive: d[28] == 1,
        coefficients_buffered: false,
        // libpng and exiftool write eXIf before the image data.
        orientation: source_orientation(d, SourceFormat::Png),
        planes_x16: 16 * u32::from(components),
    }))
}

fn gif(d: &[u8]) -> Result<Option<Probe>> {
    let (Some(width), Some(height)) = (le16(d, 6), le16(d, 8)) else {
        return Ok(None);
    };
    Ok(Some(Probe {
        format: SourceFormat::Gif,
        width,
        height,
        components: 4,
        alpha: true,
        progressive: false,
        coefficients_buffered: false,
        orientation: 1,
        planes_x16: 64,
    }))
}

fn webp(d: &[u8]) -> Result<Option<Probe>> {
    let Some(fourcc) = d.get(12..16) else {
        return Ok(None);
    };
    let (width, height, alpha) = match fourcc {
        b"VP8 " => {
            let (Some(w), Some(h)) = (le16(d, 26), le16(d, 28)) else {
                return Ok(None);
            };
            (w & 0x3FFF, h & 0x3FFF, false)
        }
        b"VP8L" => {
            let Some(b) = d.get(21..25) else {
                return Ok(None);
            };
            let (b0, b1, b2, b3) = (
                u32::from(b[0]),
                u32::from(b[1]),
                u32::from(b[2]),
                u32::from(b[3]),
            );
            let w = 1 + (b0 | (b1 & 0x3F) << 8);
            let h = 1 + (b1 >> 6 | b2 << 2 | (b3 & 0x0F) << 10);
            (w, h, true)
        }
        b"VP8X" => {
            let (Some(&flags), Some(w), Some(h)) = (d.get(20), le24(d, 24), le24(d, 27)) else {
                return Ok(None);
            };
            (w + 1, h + 1, flags & 0x10 != 0 || flags & 0x02 != 0)
        }
        _ => return Err(unprocessable("corrupt WebP: unknown first chunk")),
    };
    Ok(Some(Probe {
        format: SourceFormat::Webp,
        width,
        height,
        components: if alpha { 4 } else { 3 },
        alpha,
        progressive: false,
        coefficients_buffered: false,
        // Found once the whole file is in (its EXIF chunk comes last).
        orientation: source_orientation(d, SourceFormat::Webp),
        planes_x16: if alpha { 64 } else { 48 },
    }))
}

#[cfg(test)]
mod tests {
    use super::super::metadata::*;
    use super::*;

    fn app_segment(marker: u8, body: &[u8]) -> Vec<u8> {
        let mut seg = vec![0xFF, marker];
        seg.extend_from_slice(&(body.len() as u16 + 2).to_be_bytes());
        seg.extend_from_slice(body);
        seg
    }

    fn icc_chunk(seq: u8, count: u8, payload: &[u8]) -> Vec<u8> {
        let mut body = b"ICC_PROFILE\0".to_vec();
        body.extend_from_slice(&[seq, count]);
        body.extend_from_slice(payload);
        app_segment(0xE2, &body)
    }

    #[test]
    fn icc_chunks_are_joined_in_sequence_order_and_adobe_is_seen() {
        let mut d = vec![0xFF, 0xD8];
        d.extend(app_segment(0xE0, b"JFIF\0"));
        d.extend(icc_chunk(2, 2, b"world"));
        d.extend(app_segment(0xEE, b"Adobe\0\x64\0\0\0\0\x02"));
        d.extend(icc_chunk(1, 2, b"hello "));
        d.extend([0xFF, 0xDA, 0, 2]);
        assert_eq!(jpeg_icc(&d).as_deref(), Some(&b"hello world"[..]));
        assert!(jpeg_is_adobe(&d));
        // A missing chunk means no profile rather than half of one.
        let mut partial = vec![0xFF, 0xD8];
        partial.extend(icc_chunk(1, 2, b"hello "));
        assert_eq!(jpeg_icc(&partial), None);
        assert!(!jpeg_is_adobe(&partial));
    }

    /// A JPEG header with an EXIF orientation, a frame header `sof` (0xC0
    /// baseline, 0xC2 progressive) of 65500x65500 and a first scan header
    /// naming `in_scan` components: the probe reads it from 70-odd bytes,
    /// allocating nothing.
    fn huge_header(orientation: u8, sof: u8, in_scan: u8) -> Vec<u8> {
        let mut d = vec![0xFF, 0xD8];
        // APP1 Exif, little-endian TIFF with one IFD0 entry.
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        tiff.extend_from_slice(&1u16.to_le_bytes());
        tiff.extend_from_slice(&0x0112u16.to_le_bytes());
        tiff.extend_from_slice(&3u16.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&[orientation, 0, 0, 0]);
        tiff.extend_from_slice(&0u32.to_le_bytes());
        let app1_len = (2 + 6 + tiff.len()) as u16;
        d.extend_from_slice(&[0xFF, 0xE1]);
        d.extend_from_slice(&app1_len.to_be_bytes());
        d.extend_from_slice(b"Exif\0\0");
        d.extend_from_slice(&tiff);
        // SOFn: 8-bit, 65500 x 65500, 3 components.
        d.extend_from_slice(&[0xFF, sof, 0, 17, 8]);
        d.extend_from_slice(&65500u16.to_be_bytes());
        d.extend_from_slice(&65500u16.to_be_bytes());
        d.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        // SOS: the components of the first scan, spectral selection.
        let len = 6 + 2 * u16::from(in_scan);
        d.extend_from_slice(&[0xFF, 0xDA]);
        d.extend_from_slice(&len.to_be_bytes());
        d.push(in_scan);
        for c in 1..=in_scan {
            d.extend_from_slice(&[c, 0]);
        }
        d.extend_from_slice(&[0, 63, 0]);
        d
    }

    #[test]
    fn jpeg_header_gives_dims_progressive_and_orientation() {
        let d = huge_header(6, 0xC2, 3);
        let p = probe(&d, false).unwrap().unwrap();
        assert_eq!((p.width, p.height, p.components), (65500, 65500, 3));
        assert!(p.progressive && p.coefficients_buffered);
        assert_eq!(p.orientation, 6);
        assert_eq!(p.pixels(), 65500 * 65500);
        assert_eq!(p.planes_x16, 24, "4:2:0");
    }

    #[test]
    fn a_sequential_jpeg_buffers_coefficients_only_if_its_scans_do_not_interleave() {
        let interleaved = probe(&huge_header(1, 0xC0, 3), true).unwrap().unwrap();
        assert!(!interleaved.progressive && !interleaved.coefficients_buffered);
        // One component per scan: libjpeg keeps every coefficient until
        // the last scan, as for a progressive file.
        let separate = probe(&huge_header(1, 0xC0, 1), true).unwrap().unwrap();
        assert!(!separate.progressive && separate.coefficients_buffered);
        // tests/image.rs checks the same on real files.
    }

    #[test]
    fn every_prefix_asks_for_more_or_answers_the_same() {
        let d = huge_header(3, 0xC2, 3);
        let full = probe(&d, true).unwrap().unwrap();
        for n in 0..d.len() {
            assert_eq!(probe(&d[..n], false).unwrap(), None, "prefix {n}");
            assert!(
                probe(&d[..n], true).unwrap_err().is_unprocessable(),
                "prefix {n}"
            );
        }
        assert_eq!(probe(&d, false).unwrap(), Some(full));
    }

    #[test]
    fn unknown_and_empty_sources_are_422() {
        assert!(probe(b"", true).unwrap_err().is_unprocessable());
        assert!(probe(b"<html>not an image", false)
            .unwrap_err()
            .is_unprocessable());
        assert!(probe(b"RIFF\0\0\0\0WAVE", false)
            .unwrap_err()
            .is_unprocessable());
        // Scan data before any frame header.
        assert!(probe(&[0xFF, 0xD8, 0xFF, 0xDA, 0, 2], false)
            .unwrap_err()
            .is_unprocessable());
    }

    #[test]
    fn png_gif_webp_headers() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&300u32.to_be_bytes());
        png.extend_from_slice(&200u32.to_be_bytes());
        png.extend_from_slice(&[8, 6, 0, 0, 0]);
        let p = probe(&png, false).unwrap().unwrap();
        assert_eq!(
            (p.format, p.width, p.height, p.alpha),
            (SourceFormat::Png, 300, 200, true)
        );
        let gif = b"GIF89a\x2c\x01\xc8\x00";
        let p = probe(gif, false).unwrap().unwrap();
        assert_eq!((p.width, p.height), (300, 200));
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\x10\0\0\0".to_vec();
        webp.extend_from_slice(&[0x2b, 0x01, 0x00, 0xc7, 0x00, 0x00]);
        let p = probe(&webp, false).unwrap().unwrap();
        assert_eq!(
            (p.format, p.width, p.height, p.alpha),
            (SourceFormat::Webp, 300, 200, true)
        );
    }

    #[test]
    fn exif_is_found_and_set_upright() {
        let d = huge_header(6, 0xC2, 3);
        let tiff = jpeg_exif(&d).expect("exif");
        assert_eq!(exif_orientation(tiff), Some(6));
        let upright = exif_upright(tiff);
        assert_eq!(upright.len(), tiff.len());
        assert_eq!(exif_orientation(&upright), Some(1));
        let be = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x08\0\0";
        assert_eq!(exif_orientation(be), Some(8));
        assert_eq!(exif_orientation(&exif_upright(be)), Some(1));
        assert_eq!(jpeg_exif(b"\xFF\xD8\xFF\xDA\0\x02"), None);
        assert_eq!(exif_upright(b"not tiff"), b"not tiff");
    }

    #[test]
    fn png_and_webp_chunks_give_exif_and_xmp() {
        // Orientation 8, big-endian; one writer style keeps "Exif\0\0".
        let tiff = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x08\0\0";
        let xmp = b"<x:xmpmeta/>";
        let png_chunk = |kind: &[u8], body: &[u8]| {
            let mut c = (body.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(body);
            c.extend_from_slice(&[0; 4]); // CRC, not checked here
            c
        };
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(png_chunk(b"IHDR", &[0; 13]));
        png.extend(png_chunk(b"eXIf", &[b"Exif\0\0".as_slice(), tiff].concat()));
        let itxt = [b"XML:com.adobe.xmp\0\0\0\0\0".as_slice(), xmp].concat();
        png.extend(png_chunk(b"iTXt", &itxt));
        png.extend(png_chunk(b"IEND", b""));
        assert_eq!(source_exif(&png, SourceFormat::Png), Some(tiff.as_slice()));
        assert_eq!(source_orientation(&png, SourceFormat::Png), 8);
        assert_eq!(source_xmp(&png, SourceFormat::Png), Some(xmp.as_slice()));
        // A compressed iTXt is not inflated; a chunk running past the end stops the walk.
        let compressed = [b"XML:com.adobe.xmp\0\x01\0\0\0".as_slice(), xmp].concat();
        assert_eq!(
            source_xmp(
                &[&png[..33], &png_chunk(b"iTXt", &compressed)[..]].concat(),
                SourceFormat::Png
            ),
            None
        );
        let mut cut = png[..33].to_vec();
        cut.extend_from_slice(&u32::MAX.to_be_bytes());
        cut.extend_from_slice(b"eXIf");
        assert_eq!(source_exif(&cut, SourceFormat::Png), None);

        let webp_chunk = |kind: &[u8], body: &[u8]| {
            let mut c = kind.to_vec();
            c.extend_from_slice(&(body.len() as u32).to_le_bytes());
            c.extend_from_slice(body);
            if body.len() % 2 == 1 {
                c.push(0);
            }
            c
        };
        let mut webp = b"RIFF\0\0\0\0WEBP".to_vec();
        webp.extend(webp_chunk(b"VP8X", &[0x0C, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        webp.extend(webp_chunk(b"VP8 ", &[0; 11])); // odd: padded
        webp.extend(webp_chunk(b"EXIF", tiff));
        webp.extend(webp_chunk(b"XMP ", xmp));
        assert_eq!(source_orientation(&webp, SourceFormat::Webp), 8);
        assert_eq!(source_xmp(&webp, SourceFormat::Webp), Some(xmp.as_slice()));
        assert_eq!(source_orientation(&webp[..40], SourceFormat::Webp), 1);
    }

    #[test]
    fn iptc_is_found_among_photoshop_resources() {
        let resource = |id: u16, name: &[u8], data: &[u8]| {
            let mut r = b"8BIM".to_vec();
            r.extend_from_slice(&id.to_be_bytes());
            r.push(name.len() as u8);
            r.extend_from_slice(name);
            if name.len() % 2 == 0 {
                r.push(0); // the Pascal string is padded to an even length
            }
            r.extend_from_slice(&(data.len() as u32).to_be_bytes());
            r.extend_from_slice(data);
            if data.len() % 2 == 1 {
                r.push(0);
            }
            r
        };
        let iptc = b"\x1c\x02\x50\x00\x0fA. Photographer";
        let mut body = b"Photoshop 3.0\0".to_vec();
        body.extend(resource(0x040C, b"thumb", &[0xFF; 7]));
        body.extend(resource(0x0404, b"", iptc));
        let jpeg = [
            b"\xFF\xD8".as_slice(),
            &app_segment(0xED, &body),
            b"\xFF\xDA\0\x02",
        ]
        .concat();
        assert_eq!(jpeg_iptc(&jpeg), Some(iptc.as_slice()));
        // A size that runs past the end stops the walk.
        let mut cut = b"Photoshop 3.0\08BIM\x04\x04\0\0".to_vec();
        cut.extend_from_slice(&u32::MAX.to_be_bytes());
        let jpeg = [
            b"\xFF\xD8".as_slice(),
            &app_segment(0xED, &cut),
            b"\xFF\xDA\0\x02",
        ]
        .concat();
        assert_eq!(jpeg_iptc(&jpeg), None);
    }

    #[test]
    fn big_endian_exif() {
        let tiff = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x08\0\0";
        assert_eq!(exif_orientation(tiff), Some(8));
        assert_eq!(exif_orientation(b"MM\0*\0\0\xff\xff"), None);
    }
}
