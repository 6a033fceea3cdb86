//! EXIF orientation applied to pixels: the (small) output is turned
//! upright after resizing, so the decoder and resizer work on the stored
//! pixels.

/// Whether an EXIF orientation swaps width and height (5 to 8).
pub fn transposes(orientation: u8) -> bool {
    orientation >= 5
}

/// Turn a raw `w x h` image with `channels` bytes per pixel into its
/// oriented form. Orientation 1 returns the input unchanged.
pub fn orient(
    pixels: Vec<u8>,
    w: u32,
    h: u32,
    channels: usize,
    orientation: u8,
) -> (Vec<u8>, u32, u32) {
    if !(2..=8).contains(&orientation) {
        return (pixels, w, h);
    }
    let (ow, oh) = if transposes(orientation) {
        (h, w)
    } else {
        (w, h)
    };
    let (wu, hu) = (w as usize, h as usize);
    let mut out = vec![0u8; pixels.len()];
    for oy in 0..oh as usize {
        for ox in 0..ow as usize {
            let (x, y) = match orientation {
                2 => (wu - 1 - ox, oy),
                3 => (wu - 1 - ox, hu - 1 - oy),
                4 => (ox, hu - 1 - oy),
                5 => (oy, ox),
                6 => (oy, hu - 1 - ox),
                7 => (wu - 1 - oy, hu - 1 - ox),
                _ => (wu - 1 - oy, ox), // 8
            };
            let src = (y * wu + x) * channels;
            let dst = (oy * ow as usize + ox) * channels;
            out[dst..dst + channels].copy_from_slice(&pixels[src..src + channels]);
        }
    }
    (out, ow, oh)
}
