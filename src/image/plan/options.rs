//! What to make of a source: the effective processing options of one
//! request (or one zip variant), as plain data. Their URL grammar
//! (`rs:fit:300`, presets, the normal form) is `image::http::options`.

pub use crate::image::codec::OutputFormat;

/// Largest requested side; keeps the output within jpeg-encoder's u16 sides.
pub const MAX_DIMENSION: u32 = 16_384;

/// How the source is fitted into the requested width and height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResizingType {
    /// Keep the aspect ratio, fit inside the box.
    #[default]
    Fit,
    /// Keep the aspect ratio, cover the box, crop the rest (by gravity).
    Fill,
    /// Like fill, but never larger than the source: a smaller result keeps
    /// the requested aspect ratio.
    FillDown,
    /// Stretch to exactly the box.
    Force,
    /// Fill if source and box have the same orientation, else fit.
    Auto,
}

/// Where to anchor a crop. `sm` (smart) is accepted and falls back to the
/// centre: sluice has no saliency detection.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum GravityType {
    #[default]
    Center,
    North,
    South,
    East,
    West,
    NorthEast,
    NorthWest,
    SouthEast,
    SouthWest,
    /// A focus point, each coordinate 0.0..=1.0 of the width/height.
    FocusPoint(f64, f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Gravity {
    pub kind: GravityType,
    /// Offsets in pixels (imgproxy: `g:type:x_offset:y_offset`).
    pub x_offset: f64,
    pub y_offset: f64,
}

/// `c:width:height[:gravity]`: cut a region of the source before resizing.
/// A size below 1 is a fraction of the source; 0 means the whole side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    pub width: f64,
    pub height: f64,
    /// `None`: use the main gravity.
    pub gravity: Option<Gravity>,
}

/// The effective options of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub resizing_type: ResizingType,
    /// Requested width and height in CSS pixels; 0 = derived from the other.
    pub width: u32,
    pub height: u32,
    pub dpr: f64,
    pub enlarge: bool,
    pub gravity: Gravity,
    pub crop: Option<Crop>,
    /// 1..=100; 0 = the server default.
    pub quality: u8,
    /// `None` = chosen from `Accept` (`f:auto` or no extension).
    pub format: Option<OutputFormat>,
    pub auto_rotate: bool,
    pub strip_metadata: bool,
    /// Colour that transparent pixels are flattened onto when the output
    /// has no alpha (JPEG); white when unset.
    pub background: Option<[u8; 3]>,
    pub filename: Option<String>,
    pub attachment: bool,
    /// imgproxy's `cb`/`cachebuster`: changes nothing in the picture, only
    /// the result's identity (ETag, coalescing key), so a new value gets a
    /// fresh result past every cache.
    pub cache_buster: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            resizing_type: ResizingType::Fit,
            width: 0,
            height: 0,
            dpr: 1.0,
            enlarge: false,
            gravity: Gravity::default(),
            crop: None,
            quality: 0,
            format: None,
            auto_rotate: true,
            strip_metadata: true,
            background: None,
            filename: None,
            attachment: false,
            cache_buster: None,
        }
    }
}
