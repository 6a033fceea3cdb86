//! What a source carries besides pixels, read from its bytes (and one
//! rewrite): the EXIF block and its orientation, XMP, IPTC, the ICC
//! profile and the Adobe marker of JPEGs, and the chunks of PNG and WebP
//! they sit in. Works on any prefix of a file: what is not there yet is
//! simply not found.

use super::format::{be16, SourceFormat};

/// The signature that starts an XMP APP1 segment in a JPEG.
pub const JPEG_XMP_PREFIX: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";

/// The Orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block.
pub fn exif_orientation(tiff: &[u8]) -> Option<u8> {
    let (at, big) = orientation_value_at(tiff)?;
    let b = [*tiff.get(at)?, *tiff.get(at + 1)?];
    let value = if big {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    };
    (1..=8).contains(&value).then_some(value as u8)
}

/// A copy of a TIFF-structured EXIF block whose Orientation says 1 (for
/// output whose pixels were rotated already; a viewer must not rotate
/// them again). Blocks without the tag are copied unchanged.
pub fn exif_upright(tiff: &[u8]) -> Vec<u8> {
    let mut out = tiff.to_vec();
    if let Some((at, big)) = orientation_value_at(tiff) {
        let one = if big { [0, 1] } else { [1, 0] };
        out[at..at + 2].copy_from_slice(&one);
    }
    out
}

/// Offset of the Orientation value in IFD0, and whether the block is
/// big-endian.
fn orientation_value_at(tiff: &[u8]) -> Option<(usize, bool)> {
    let big = match tiff.get(..4)? {
        b"MM\0*" => true,
        b"II*\0" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = [*tiff.get(at)?, *tiff.get(at + 1)?];
        Some(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = [
            *tiff.get(at)?,
            *tiff.get(at + 1)?,
            *tiff.get(at + 2)?,
            *tiff.get(at + 3)?,
        ];
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let ifd = u32_at(4)? as usize;
    let count = u16_at(ifd)? as usize;
    (0..count.min(512)).find_map(|i| {
        let entry = ifd + 2 + i * 12;
        if u16_at(entry)? != 0x0112 {
            return None;
        }
        // The value (a SHORT) sits in the entry's 4-byte value field.
        u16_at(entry + 8)?;
        Some((entry + 8, big))
    })
}

/// The TIFF-structured EXIF block of a JPEG (its APP1 `Exif` segment).
pub fn jpeg_exif(d: &[u8]) -> Option<&[u8]> {
    jpeg_segments(d).find_map(|(marker, body)| match marker {
        0xE1 => body.strip_prefix(b"Exif\0\0"),
        _ => None,
    })
}

/// The XMP packet of a JPEG (its APP1 segment with the XMP signature).
/// Extended XMP (split over further segments) is not joined.
pub fn jpeg_xmp(d: &[u8]) -> Option<&[u8]> {
    jpeg_segments(d).find_map(|(marker, body)| match marker {
        0xE1 => body.strip_prefix(JPEG_XMP_PREFIX),
        _ => None,
    })
}

/// The chunks of a PNG after its signature, as (type, data), up to IEND or
/// the first that runs past the end.
fn png_chunks(d: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut at = 8usize;
    std::iter::from_fn(move || {
        let len = usize::try_from(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?)).ok()?;
        let kind = d.get(at + 4..at + 8)?;
        let body = d.get(at + 8..(at + 8).checked_add(len)?)?;
        at = at + 12 + len;
        (kind != b"IEND").then_some((kind, body))
    })
}

/// The chunks of a WebP (RIFF) after its header, as (FourCC, data).
fn webp_chunks(d: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut at = 12usize;
    std::iter::from_fn(move || {
        let kind = d.get(at..at + 4)?;
        let len =
            usize::try_from(u32::from_le_bytes(d.get(at + 4..at + 8)?.try_into().ok()?)).ok()?;
        let body = d.get(at + 8..(at + 8).checked_add(len)?)?;
        at = at + 8 + len + (len & 1);
        Some((kind, body))
    })
}

/// A source's TIFF-structured EXIF block: JPEG APP1 `Exif`, PNG `eXIf`,
/// WebP `EXIF`. A WebP's EXIF chunk follows the image data, so only the
/// whole file has it.
pub fn source_exif(d: &[u8], format: SourceFormat) -> Option<&[u8]> {
    let raw = match format {
        SourceFormat::Jpeg => return jpeg_exif(d),
        SourceFormat::Png => png_chunks(d).find_map(|(k, b)| (k == b"eXIf").then_some(b)),
        SourceFormat::Webp => webp_chunks(d).find_map(|(k, b)| (k == b"EXIF").then_some(b)),
        SourceFormat::Gif => None,
    }?;
    // Some writers keep JPEG's "Exif\0\0" signature inside the chunk.
    Some(raw.strip_prefix(b"Exif\0\0").unwrap_or(raw))
}

/// A source's EXIF orientation, 1 when it has none.
pub fn source_orientation(d: &[u8], format: SourceFormat) -> u8 {
    source_exif(d, format)
        .and_then(exif_orientation)
        .unwrap_or(1)
}

/// A source's XMP packet: JPEG APP1, PNG `iTXt` `XML:com.adobe.xmp` (when
/// stored uncompressed, as XMP writers do), WebP `XMP `.
pub fn source_xmp(d: &[u8], format: SourceFormat) -> Option<&[u8]> {
    match format {
        SourceFormat::Jpeg => jpeg_xmp(d),
        SourceFormat::Png => png_chunks(d).find_map(|(k, b)| (k == b"iTXt").then(|| png_xmp(b))?),
        SourceFormat::Webp => webp_chunks(d).find_map(|(k, b)| (k == b"XMP ").then_some(b)),
        SourceFormat::Gif => None,
    }
}

/// The text of an uncompressed `iTXt` chunk with the XMP keyword.
fn png_xmp(itxt: &[u8]) -> Option<&[u8]> {
    // keyword \0, compressed flag, method, language \0, translated \0, text
    let rest = itxt.strip_prefix(b"XML:com.adobe.xmp\0")?;
    let (&compressed, rest) = rest.split_first()?;
    if compressed != 0 {
        return None;
    }
    let rest = rest.get(1..)?;
    let rest = &rest[rest.iter().position(|&c| c == 0)? + 1..];
    Some(&rest[rest.iter().position(|&c| c == 0)? + 1..])
}

/// A JPEG's IPTC-NAA records: Photoshop image resource 0x0404 of its APP13
/// `Photoshop 3.0` segment. The other resources there (a thumbnail of the
/// original among them) are not kept.
pub fn jpeg_iptc(d: &[u8]) -> Option<&[u8]> {
    jpeg_segments(d).find_map(|(marker, body)| match marker {
        0xED => photoshop_resource(body.strip_prefix(b"Photoshop 3.0\0")?, 0x0404),
        _ => None,
    })
}

/// The data of one resource in a run of Photoshop `8BIM` image resources:
/// signature, id, a padded Pascal-string name, a size, padded data.
fn photoshop_resource(mut d: &[u8], wanted: u16) -> Option<&[u8]> {
    while d.len() >= 12 && d.starts_with(b"8BIM") {
        let id = u16::from_be_bytes([d[4], d[5]]);
        let name_len = usize::from(d[6]);
        let name_field = (1 + name_len + 1) & !1; // padded to even
        let at = 6 + name_field;
        let size = usize::try_from(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?)).ok()?;
        let data = d.get(at + 4..(at + 4).checked_add(size)?)?;
        if id == wanted {
            return Some(data);
        }
        d = d.get(at + 4 + size + (size & 1)..)?;
    }
    None
}

/// Whether a JPEG has an Adobe APP14 segment (its CMYK is stored inverted).
pub fn jpeg_is_adobe(d: &[u8]) -> bool {
    jpeg_segments(d).any(|(marker, body)| marker == 0xEE && body.starts_with(b"Adobe"))
}

/// A JPEG's ICC profile: the payloads of its APP2 `ICC_PROFILE` segments,
/// joined in their sequence order. None if absent or inconsistent.
pub fn jpeg_icc(d: &[u8]) -> Option<Vec<u8>> {
    let mut chunks: Vec<(u8, u8, &[u8])> = jpeg_segments(d)
        .filter(|&(marker, _)| marker == 0xE2)
        .filter_map(|(_, body)| {
            let rest = body.strip_prefix(b"ICC_PROFILE\0")?;
            Some((*rest.first()?, *rest.get(1)?, rest.get(2..)?))
        })
        .collect();
    let count = chunks.first()?.1;
    chunks.sort_by_key(|c| c.0);
    let complete = chunks.len() == usize::from(count)
        && chunks
            .iter()
            .enumerate()
            .all(|(i, c)| c.1 == count && usize::from(c.0) == i + 1);
    complete.then(|| chunks.iter().flat_map(|c| c.2).copied().collect())
}

/// The marker segments of a JPEG before its image data, as (marker, body).
fn jpeg_segments(d: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut at = if d.starts_with(&[0xFF, 0xD8]) {
        2
    } else {
        d.len()
    };
    std::iter::from_fn(move || loop {
        if *d.get(at)? != 0xFF {
            return None;
        }
        let marker = *d.get(at + 1)?;
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            return None; // image data (or the end) reached
        }
        let len = be16(d, at + 2)? as usize;
        let body = d.get(at + 4..(at + 2 + len).max(at + 4))?;
        at += 2 + len.max(2);
        return Some((marker, body));
    })
}
