//! Lossy WebP encoding through libwebp (the `libwebp-sys` crate, which
//! builds libwebp from its bundled C sources). This module owns every
//! `unsafe` call into it and frees every buffer libwebp hands back; the rest
//! of the pipeline only sees `encode(bitmap, quality, icc) -> bytes`.
//!
//! libwebp's simple API (`WebPEncodeRGB`/`WebPEncodeRGBA`) makes the image
//! bitstream; when an ICC profile or EXIF is to be kept, libwebp's mux API
//! wraps it in the extended (VP8X) container with `ICCP`/`EXIF` chunks.
#![allow(unsafe_code)]

use std::ffi::c_int;

use libwebp_sys as ffi;

use super::decode::Bitmap;
use super::encode::Metadata;
use crate::error::{Error, Result};

fn failed(why: impl std::fmt::Display) -> Error {
    Error::internal(format!("WebP encoding failed: {why}"))
}

/// A buffer allocated by libwebp, freed with `WebPFree` on drop.
struct LibwebpBytes {
    ptr: *mut u8,
    len: usize,
}

impl LibwebpBytes {
    fn as_slice(&self) -> &[u8] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: libwebp returned `ptr` with `len` initialised bytes, and
        // they stay alive until `self` is dropped.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for LibwebpBytes {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: allocated by libwebp, freed exactly once.
            unsafe { ffi::WebPFree(self.ptr.cast()) }
        }
    }
}

/// A mux object, deleted on drop.
struct Mux(*mut ffi::WebPMux);

impl Drop for Mux {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: created by WebPMuxNew, deleted exactly once.
            unsafe { ffi::WebPMuxDelete(self.0) }
        }
    }
}

/// Encode `b` as lossy WebP at `quality` (1–100). Gray bitmaps are expanded
/// to RGB (libwebp's simple API takes RGB or RGBA).
pub fn encode(b: &Bitmap, quality: u8, meta: Metadata<'_>) -> Result<Vec<u8>> {
    let dim = |v: u32| {
        c_int::try_from(v)
            .ok()
            .filter(|v| (1..=16383).contains(v))
            .ok_or_else(|| {
                failed(format!(
                    "{}x{} is outside WebP's 16383 px limit",
                    b.width, b.height
                ))
            })
    };
    let (w, h) = (dim(b.width)?, dim(b.height)?);
    let expanded;
    let (pixels, channels): (&[u8], usize) = match b.channels {
        3 | 4 => (&b.pixels, usize::from(b.channels)),
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
        n => return Err(failed(format!("{n} channels"))),
    };
    let stride = w as usize * channels;
    if pixels.len() < stride * h as usize {
        return Err(failed("bitmap is shorter than its dimensions"));
    }
    let stride = c_int::try_from(stride).map_err(failed)?;
    let quality = f32::from(quality.clamp(1, 100));
    let mut out = LibwebpBytes {
        ptr: std::ptr::null_mut(),
        len: 0,
    };
    // SAFETY: `pixels` holds `h` rows of `stride` bytes (checked above) and
    // outlives the call; libwebp writes a buffer pointer into `out.ptr`.
    out.len = unsafe {
        if channels == 4 {
            ffi::WebPEncodeRGBA(pixels.as_ptr(), w, h, stride, quality, &mut out.ptr)
        } else {
            ffi::WebPEncodeRGB(pixels.as_ptr(), w, h, stride, quality, &mut out.ptr)
        }
    };
    if out.len == 0 {
        return Err(failed("libwebp returned no data"));
    }
    if meta.icc.is_none() && meta.exif.is_none() && meta.xmp.is_none() {
        return Ok(out.as_slice().to_vec());
    }
    with_metadata(out.as_slice(), meta)
}

/// Re-wrap a simple-format WebP in the extended format with an ICC
/// profile, an EXIF block and/or an XMP packet.
fn with_metadata(webp: &[u8], meta: Metadata<'_>) -> Result<Vec<u8>> {
    let mux = Mux(ffi::WebPMuxNew());
    if mux.0.is_null() {
        return Err(failed("WebPMuxNew"));
    }
    let image = ffi::WebPData {
        bytes: webp.as_ptr(),
        size: webp.len(),
    };
    let ok = ffi::WebPMuxError::WEBP_MUX_OK;
    // SAFETY: `mux` is live; with copy_data = 1 libwebp copies every input,
    // so the borrowed slices only need to live through each call.
    unsafe {
        if ffi::WebPMuxSetImage(mux.0, &image, 1) != ok {
            return Err(failed("WebPMuxSetImage"));
        }
        let chunks = [
            (c"ICCP", meta.icc),
            (c"EXIF", meta.exif),
            (c"XMP ", meta.xmp),
        ];
        for (fourcc, data) in chunks {
            let Some(data) = data else { continue };
            let chunk = ffi::WebPData {
                bytes: data.as_ptr(),
                size: data.len(),
            };
            if ffi::WebPMuxSetChunk(mux.0, fourcc.as_ptr(), &chunk, 1) != ok {
                return Err(failed(format!("WebPMuxSetChunk({fourcc:?})")));
            }
        }
    }
    let mut assembled = ffi::WebPData {
        bytes: std::ptr::null(),
        size: 0,
    };
    // SAFETY: `mux` is live; on success libwebp allocates `assembled`,
    // which LibwebpBytes frees.
    let status = unsafe { ffi::WebPMuxAssemble(mux.0, &mut assembled) };
    let assembled = LibwebpBytes {
        ptr: assembled.bytes.cast_mut(),
        len: assembled.size,
    };
    if status != ok {
        return Err(failed("WebPMuxAssemble"));
    }
    Ok(assembled.as_slice().to_vec())
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

    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>, bool) {
        let mut d = image_webp::WebPDecoder::new(std::io::Cursor::new(bytes)).unwrap();
        let (w, h) = d.dimensions();
        let mut buf = vec![0; d.output_buffer_size().unwrap()];
        d.read_image(&mut buf).unwrap();
        let icc = d.icc_profile().unwrap();
        (w, h, buf, icc.is_some())
    }

    #[test]
    fn lossy_rgb_gray_and_alpha_decode_back_close() {
        for channels in [1, 2, 3, 4] {
            let b = gradient(97, 61, channels);
            let out = encode(&b, 90, Metadata::default()).unwrap();
            assert_eq!(&out[..4], b"RIFF");
            assert_eq!(&out[8..12], b"WEBP");
            // Lossy (VP8), with an alpha chunk only when there is alpha.
            let chunk: &[u8] = if channels % 2 == 0 { b"VP8X" } else { b"VP8 " };
            assert_eq!(&out[12..16], chunk);
            let (w, h, px, _) = decode(&out);
            assert_eq!((w, h), (97, 61));
            assert_eq!(px.len(), 97 * 61 * if channels % 2 == 0 { 4 } else { 3 });
            // Lossy but close: mean absolute error of the first channel.
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
    fn icc_profile_is_embedded() {
        let b = gradient(40, 30, 3);
        let icc = b"fake icc profile bytes, kept verbatim".to_vec();
        let out = encode(
            &b,
            80,
            Metadata {
                icc: Some(&icc),
                ..Metadata::default()
            },
        )
        .unwrap();
        assert_eq!(&out[12..16], b"VP8X");
        let mut d = image_webp::WebPDecoder::new(std::io::Cursor::new(&out[..])).unwrap();
        assert_eq!(d.icc_profile().unwrap(), Some(icc));
    }

    #[test]
    fn oversized_and_short_bitmaps_are_errors() {
        let mut b = gradient(10, 10, 3);
        b.width = 20_000;
        assert!(encode(&b, 80, Metadata::default()).is_err());
        let mut b = gradient(10, 10, 3);
        b.pixels.truncate(50);
        assert!(encode(&b, 80, Metadata::default()).is_err());
    }
}
