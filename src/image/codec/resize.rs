//! Resampling with fast_image_resize (Lanczos3 convolution, SIMD).
//!
//! We resize in sRGB (gamma-encoded) values, not in linear light. Linear
//! light is more correct for fine high-contrast detail (thin bright lines do
//! not darken), but libvips' `vipsthumbnail` and imgproxy both resize in
//! sRGB by default, the result is judged against vipsthumbnail, and the u8
//! SIMD path is several times faster than converting to f32/u16 linear and
//! back. Alpha is premultiplied during the convolution (fast_image_resize's
//! `use_alpha`), so transparent pixels do not bleed colour.

use std::borrow::Cow;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::{Bitmap, CodecError, Region, Result};

fn pixel_type(channels: u8) -> Result<PixelType> {
    Ok(match channels {
        1 => PixelType::U8,
        2 => PixelType::U8x2,
        3 => PixelType::U8x3,
        4 => PixelType::U8x4,
        _ => return Err(CodecError::Internal("unsupported channel count".into())),
    })
}

/// Resize `region` of `src` to `dst` pixels. `src` is borrowed when several
/// outputs are made from one decoded bitmap (zip variants), owned (and
/// freed as soon as it was read) otherwise; an unchanged size copies a
/// borrowed bitmap.
pub fn resize(src: Cow<'_, Bitmap>, region: Region, dst: (u32, u32)) -> Result<Bitmap> {
    let whole = region.x == 0.0
        && region.y == 0.0
        && region.w == f64::from(src.width)
        && region.h == f64::from(src.height);
    if whole && dst == (src.width, src.height) {
        return Ok(src.into_owned());
    }
    let kind = pixel_type(src.channels)?;
    let channels = src.channels;
    let src_image = ImageRef::new(src.width, src.height, &src.pixels, kind)
        .map_err(|e| CodecError::Internal(format!("resize source: {e}")))?;
    let mut dst_image = Image::new(dst.0, dst.1, kind);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(region.x, region.y, region.w, region.h);
    Resizer::new()
        .resize(&src_image, &mut dst_image, &options)
        .map_err(|e| CodecError::Internal(format!("resize: {e}")))?;
    drop(src);
    Ok(Bitmap {
        pixels: dst_image.into_vec(),
        width: dst.0,
        height: dst.1,
        channels,
    })
}

/// Composite an image with alpha onto an opaque `background`, for outputs
/// without alpha (JPEG). Gray+alpha becomes gray only for a gray background.
pub fn flatten(src: Bitmap, background: [u8; 3]) -> Bitmap {
    if !src.has_alpha() {
        return src;
    }
    let blend = |c: u8, a: u8, bg: u8| -> u8 {
        let (c, a, bg) = (u32::from(c), u32::from(a), u32::from(bg));
        ((c * a + bg * (255 - a) + 127) / 255) as u8
    };
    let gray_bg = background[0] == background[1] && background[1] == background[2];
    let (pixels, channels) = match src.channels {
        2 if gray_bg => (
            src.pixels
                .chunks_exact(2)
                .map(|p| blend(p[0], p[1], background[0]))
                .collect(),
            1,
        ),
        2 => (
            src.pixels
                .chunks_exact(2)
                .flat_map(|p| background.map(|bg| blend(p[0], p[1], bg)))
                .collect(),
            3,
        ),
        _ => (
            src.pixels
                .chunks_exact(4)
                .flat_map(|p| [0, 1, 2].map(|i| blend(p[i], p[3], background[i])))
                .collect(),
            3,
        ),
    };
    Bitmap {
        pixels,
        width: src.width,
        height: src.height,
        channels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_region_to_size() {
        // Left half black, right half white; crop the right half.
        let mut px = vec![0u8; 8 * 4];
        for y in 0..4 {
            for x in 4..8 {
                px[y * 8 + x] = 255;
            }
        }
        let src = Bitmap {
            pixels: px,
            width: 8,
            height: 4,
            channels: 1,
        };
        let r = Region {
            x: 4.0,
            y: 0.0,
            w: 4.0,
            h: 4.0,
        };
        let out = resize(Cow::Owned(src), r, (2, 2)).unwrap();
        assert_eq!((out.width, out.height), (2, 2));
        // Lanczos reads a little past the crop edge (as libvips does), so
        // the left column is slightly darker, but it is the white half.
        assert!(out.pixels.iter().all(|&p| p >= 230), "{:?}", out.pixels);
    }

    #[test]
    fn flatten_onto_background() {
        let src = Bitmap {
            pixels: vec![255, 0, 0, 0, 0, 0, 255, 255],
            width: 2,
            height: 1,
            channels: 4,
        };
        let out = flatten(src, [10, 20, 30]);
        assert_eq!(out.channels, 3);
        assert_eq!(out.pixels, vec![10, 20, 30, 0, 0, 255]);
    }
}
