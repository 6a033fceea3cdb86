//! Lossy WebP encoding through libwebp (the `libwebp-sys` crate, which
//! builds libwebp from its bundled C sources). This module owns every
//! `unsafe` call into it and frees every buffer libwebp hands back.
//!
//! libwebp's simple API (`WebPEncodeRGB`/`WebPEncodeRGBA`) makes the image
//! bitstream; when an ICC profile, EXIF or XMP is to be kept, libwebp's mux
//! API wraps it in the extended (VP8X) container with `ICCP`/`EXIF`/`XMP `
//! chunks.

use std::ffi::c_int;

use libwebp_sys as ffi;

fn failed(why: impl std::fmt::Display) -> String {
    format!("WebP encoding failed: {why}")
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

/// Encode `height` rows of `stride` bytes of RGB (`channels` 3) or RGBA
/// (4) pixels as lossy WebP at `quality` (1–100). The result holds no
/// metadata; [`with_metadata`] adds it.
pub fn encode_lossy(
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: u8,
    quality: u8,
) -> Result<Vec<u8>, String> {
    let dim = |v: u32| {
        c_int::try_from(v)
            .ok()
            .filter(|v| (1..=16383).contains(v))
            .ok_or_else(|| failed(format!("{width}x{height} is outside WebP's 16383 px limit")))
    };
    let (w, h) = (dim(width)?, dim(height)?);
    if channels != 3 && channels != 4 {
        return Err(failed(format!("{channels} channels")));
    }
    let stride = w as usize * usize::from(channels);
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
    Ok(out.as_slice().to_vec())
}

/// Re-wrap a simple-format WebP in the extended format with an ICC
/// profile, an EXIF block and/or an XMP packet.
pub fn with_metadata(
    webp: &[u8],
    icc: Option<&[u8]>,
    exif: Option<&[u8]>,
    xmp: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
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
        let chunks = [(c"ICCP", icc), (c"EXIF", exif), (c"XMP ", xmp)];
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

    fn gradient(w: u32, h: u32, channels: u8) -> Vec<u8> {
        let mut pixels = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let v = [(x * 255 / w) as u8, (y * 255 / h) as u8, 128, 200];
                pixels.extend_from_slice(&v[..usize::from(channels)]);
            }
        }
        pixels
    }

    #[test]
    fn lossy_rgb_and_alpha_and_metadata() {
        for channels in [3, 4] {
            let out = encode_lossy(&gradient(97, 61, channels), 97, 61, channels, 90).unwrap();
            assert_eq!(&out[..4], b"RIFF");
            let chunk: &[u8] = if channels == 4 { b"VP8X" } else { b"VP8 " };
            assert_eq!(&out[12..16], chunk);
        }
        let plain = encode_lossy(&gradient(40, 30, 3), 40, 30, 3, 80).unwrap();
        let icc = b"fake icc profile bytes, kept verbatim".to_vec();
        let out = with_metadata(&plain, Some(&icc), None, None).unwrap();
        let mut d = image_webp::WebPDecoder::new(std::io::Cursor::new(&out[..])).unwrap();
        assert_eq!(d.icc_profile().unwrap(), Some(icc));
    }

    #[test]
    fn oversized_and_short_bitmaps_are_errors() {
        assert!(encode_lossy(&gradient(10, 10, 3), 20_000, 10, 3, 80).is_err());
        assert!(encode_lossy(&gradient(10, 10, 3)[..50], 10, 10, 3, 80).is_err());
        assert!(encode_lossy(&gradient(10, 10, 3), 10, 10, 2, 80).is_err());
    }
}
