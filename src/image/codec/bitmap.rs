//! Pixels in memory, and a region of them.

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

/// A region in floating-point pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}
