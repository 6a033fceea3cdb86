//! Where pixels go: from the source size, EXIF orientation and the options,
//! compute which region of the source is resized to which output size.
//!
//! Everything is decided in *oriented* space (what the viewer sees) and then
//! mapped back to the stored (raw) orientation, so the decoder and resizer
//! work on raw pixels and only the small output is rotated.

use super::options::{Crop, Gravity, GravityType, Options, ResizingType};
use crate::image::codec::orient::transposes;
use crate::image::codec::Region;

/// The outcome: resize `src` (raw coordinates) to `raw_dst`, then orient to
/// `dst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub src: Region,
    /// Output size before orientation (w, h swapped for orientations 5..=8).
    pub raw_dst: (u32, u32),
    /// Final output size.
    pub dst: (u32, u32),
    pub orientation: u8,
}

impl Plan {
    /// Map the source region onto a decoded image that is `sw x sh` instead
    /// of `rw x rh` (shrink-on-load).
    pub fn scaled_src(&self, raw: (u32, u32), decoded: (u32, u32)) -> Region {
        let fx = f64::from(decoded.0) / f64::from(raw.0);
        let fy = f64::from(decoded.1) / f64::from(raw.1);
        let r = Region {
            x: self.src.x * fx,
            y: self.src.y * fy,
            w: self.src.w * fx,
            h: self.src.h * fy,
        };
        // Keep within the decoded image despite rounding.
        let w = r.w.min(f64::from(decoded.0));
        let h = r.h.min(f64::from(decoded.1));
        Region {
            x: r.x.clamp(0.0, f64::from(decoded.0) - w),
            y: r.y.clamp(0.0, f64::from(decoded.1) - h),
            w,
            h,
        }
    }
}

/// Plan the geometry for a raw `width x height` source.
pub fn plan(width: u32, height: u32, orientation: u8, o: &Options) -> Plan {
    let orientation = if o.auto_rotate && (1..=8).contains(&orientation) {
        orientation
    } else {
        1
    };
    let (ow, oh) = if transposes(orientation) {
        (f64::from(height), f64::from(width))
    } else {
        (f64::from(width), f64::from(height))
    };
    let region = o.crop.map_or(
        Region {
            x: 0.0,
            y: 0.0,
            w: ow,
            h: oh,
        },
        |c| crop_region(ow, oh, &c, &o.gravity),
    );
    let tw = (f64::from(o.width) * o.dpr).round();
    let th = (f64::from(o.height) * o.dpr).round();

    let kind = match o.resizing_type {
        ResizingType::Auto if tw > 0.0 && th > 0.0 => {
            if (region.w >= region.h) == (tw >= th) {
                ResizingType::Fill
            } else {
                ResizingType::Fit
            }
        }
        ResizingType::Auto => ResizingType::Fit,
        other => other,
    };
    let ratio = |t: f64, s: f64| if t > 0.0 { Some(t / s) } else { None };
    let (rx, ry) = (ratio(tw, region.w), ratio(th, region.h));
    let cap = |s: f64| if o.enlarge { s } else { s.min(1.0) };

    let (src, out) = match (kind, rx, ry) {
        (_, None, None) => (region, (region.w, region.h)),
        (ResizingType::Force, _, _) => {
            let sx = cap(rx.or(ry).unwrap_or(1.0));
            let sy = cap(ry.or(rx).unwrap_or(1.0));
            (region, (region.w * sx, region.h * sy))
        }
        (ResizingType::Fit, _, _) | (_, None, _) | (_, _, None) => {
            let s = match (rx, ry) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => 1.0,
            };
            let s = cap(s);
            (region, (region.w * s, region.h * s))
        }
        (ResizingType::Fill | ResizingType::FillDown, Some(a), Some(b)) => {
            let uncapped = a.max(b);
            let s = cap(uncapped);
            let (mut out_w, mut out_h) = ((region.w * s).min(tw), (region.h * s).min(th));
            if kind == ResizingType::FillDown && s < uncapped {
                // Smaller than asked: keep the requested aspect ratio.
                let aspect = tw / th;
                if out_w / out_h > aspect {
                    out_w = out_h * aspect;
                } else {
                    out_h = out_w / aspect;
                }
            }
            let inner_w = (out_w / s).min(region.w);
            let inner_h = (out_h / s).min(region.h);
            let (x, y) = place(region.w, region.h, inner_w, inner_h, &o.gravity);
            (
                Region {
                    x: region.x + x,
                    y: region.y + y,
                    w: inner_w,
                    h: inner_h,
                },
                (out_w, out_h),
            )
        }
        (ResizingType::Auto, _, _) => (region, (region.w, region.h)),
    };
    let dst = (to_px(out.0), to_px(out.1));
    let raw_dst = if transposes(orientation) {
        (dst.1, dst.0)
    } else {
        dst
    };
    Plan {
        src: to_raw(src, width, height, orientation),
        raw_dst,
        dst,
        orientation,
    }
}

fn to_px(v: f64) -> u32 {
    (v.round() as u32).clamp(1, super::options::MAX_DIMENSION)
}

fn crop_region(ow: f64, oh: f64, c: &Crop, main: &Gravity) -> Region {
    let side = |v: f64, full: f64| {
        if v <= 0.0 {
            full
        } else if v < 1.0 {
            (full * v).max(1.0)
        } else {
            v.min(full)
        }
    };
    let (w, h) = (side(c.width, ow), side(c.height, oh));
    let (x, y) = place(ow, oh, w, h, c.gravity.as_ref().unwrap_or(main));
    Region { x, y, w, h }
}

/// Top-left of a `w x h` box inside `outer_w x outer_h`, by gravity.
fn place(outer_w: f64, outer_h: f64, w: f64, h: f64, g: &Gravity) -> (f64, f64) {
    let (free_x, free_y) = (outer_w - w, outer_h - h);
    let (x, y) = match g.kind {
        GravityType::Center => (free_x / 2.0 + g.x_offset, free_y / 2.0 + g.y_offset),
        GravityType::North => (free_x / 2.0 + g.x_offset, g.y_offset),
        GravityType::South => (free_x / 2.0 + g.x_offset, free_y - g.y_offset),
        GravityType::East => (free_x - g.x_offset, free_y / 2.0 + g.y_offset),
        GravityType::West => (g.x_offset, free_y / 2.0 + g.y_offset),
        GravityType::NorthEast => (free_x - g.x_offset, g.y_offset),
        GravityType::NorthWest => (g.x_offset, g.y_offset),
        GravityType::SouthEast => (free_x - g.x_offset, free_y - g.y_offset),
        GravityType::SouthWest => (g.x_offset, free_y - g.y_offset),
        GravityType::FocusPoint(fx, fy) => (fx * outer_w - w / 2.0, fy * outer_h - h / 2.0),
    };
    (x.clamp(0.0, free_x.max(0.0)), y.clamp(0.0, free_y.max(0.0)))
}

/// Map a region of the oriented image back to raw (stored) coordinates.
fn to_raw(r: Region, rw: u32, rh: u32, orientation: u8) -> Region {
    let (rw, rh) = (f64::from(rw), f64::from(rh));
    let Region { x, y, w, h } = r;
    let (x, y, w, h) = match orientation {
        2 => (rw - x - w, y, w, h),
        3 => (rw - x - w, rh - y - h, w, h),
        4 => (x, rh - y - h, w, h),
        5 => (y, x, h, w),
        6 => (y, rh - x - w, h, w),
        7 => (rw - y - h, rh - x - w, h, w),
        8 => (rw - y - h, x, h, w),
        _ => (x, y, w, h),
    };
    Region { x, y, w, h }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::codec::orient::orient;
    use crate::image::http::options::Presets;

    fn opts(s: &str) -> Options {
        Options::parse(s.split('/'), &Presets::default()).unwrap()
    }

    #[test]
    fn fit_keeps_aspect_and_never_enlarges_by_default() {
        let p = plan(4000, 3000, 1, &opts("rs:fit:800:800"));
        assert_eq!(p.dst, (800, 600));
        let p = plan(400, 300, 1, &opts("rs:fit:800:800"));
        assert_eq!(p.dst, (400, 300));
        let p = plan(400, 300, 1, &opts("rs:fit:800:800:1"));
        assert_eq!(p.dst, (800, 600));
        let p = plan(4000, 3000, 1, &opts("w:800"));
        assert_eq!(p.dst, (800, 600));
        let p = plan(4000, 3000, 1, &opts("w:400/dpr:2"));
        assert_eq!(p.dst, (800, 600));
    }

    #[test]
    fn fill_crops_by_gravity() {
        let p = plan(4000, 3000, 1, &opts("rs:fill:300:300"));
        assert_eq!(p.dst, (300, 300));
        assert_eq!(
            p.src,
            Region {
                x: 500.0,
                y: 0.0,
                w: 3000.0,
                h: 3000.0
            }
        );
        let p = plan(4000, 3000, 1, &opts("rs:fill:300:300/g:we"));
        assert_eq!(p.src.x, 0.0);
        let p = plan(4000, 3000, 1, &opts("rs:fill:300:300/g:ea"));
        assert_eq!(p.src.x, 1000.0);
        // Not enlarged: the result is the part that exists.
        let p = plan(200, 100, 1, &opts("rs:fill:300:300"));
        assert_eq!(p.dst, (200, 100));
        // fill-down keeps the requested 1:1 aspect.
        let p = plan(200, 100, 1, &opts("rs:fill-down:300:300"));
        assert_eq!(p.dst, (100, 100));
    }

    #[test]
    fn force_and_auto() {
        assert_eq!(
            plan(4000, 3000, 1, &opts("rs:force:100:300")).dst,
            (100, 300)
        );
        // Landscape into a portrait box: fit.
        assert_eq!(
            plan(4000, 3000, 1, &opts("rs:auto:300:400")).dst,
            (300, 225)
        );
        // Landscape into a landscape box: fill.
        assert_eq!(
            plan(4000, 3000, 1, &opts("rs:auto:400:200")).dst,
            (400, 200)
        );
    }

    #[test]
    fn crop_happens_before_resize() {
        let p = plan(4000, 3000, 1, &opts("c:1000:1000:nowe/w:100"));
        assert_eq!(
            p.src,
            Region {
                x: 0.0,
                y: 0.0,
                w: 1000.0,
                h: 1000.0
            }
        );
        assert_eq!(p.dst, (100, 100));
        let p = plan(4000, 3000, 1, &opts("c:0.5:0.5"));
        assert_eq!(
            p.src,
            Region {
                x: 1000.0,
                y: 750.0,
                w: 2000.0,
                h: 1500.0
            }
        );
    }

    #[test]
    fn orientation_swaps_sides_and_maps_crops_to_raw() {
        // Stored 4000x3000, displayed rotated 90° (orientation 6): 3000x4000.
        let p = plan(4000, 3000, 6, &opts("w:300"));
        assert_eq!(p.dst, (300, 400));
        assert_eq!(p.raw_dst, (400, 300));
        // The top-left 1000x500 of the displayed image is, in raw
        // coordinates, the bottom-left 500x1000 strip... rotated: x from 0,
        // y from the bottom.
        let p = plan(4000, 3000, 6, &opts("c:1000:500:nowe"));
        assert_eq!(
            p.src,
            Region {
                x: 0.0,
                y: 2000.0,
                w: 500.0,
                h: 1000.0
            }
        );
        // Without auto-rotate the orientation is ignored.
        assert_eq!(plan(4000, 3000, 6, &opts("w:300/ar:0")).dst, (300, 225));
    }

    #[test]
    fn orient_matches_the_exif_definitions() {
        // 3x2 image, one byte per pixel:
        //   1 2 3
        //   4 5 6
        let raw = vec![1, 2, 3, 4, 5, 6];
        let cases: [(u8, &[u8], (u32, u32)); 8] = [
            (1, &[1, 2, 3, 4, 5, 6], (3, 2)),
            (2, &[3, 2, 1, 6, 5, 4], (3, 2)),
            (3, &[6, 5, 4, 3, 2, 1], (3, 2)),
            (4, &[4, 5, 6, 1, 2, 3], (3, 2)),
            (5, &[1, 4, 2, 5, 3, 6], (2, 3)),
            (6, &[4, 1, 5, 2, 6, 3], (2, 3)),
            (7, &[6, 3, 5, 2, 4, 1], (2, 3)),
            (8, &[3, 6, 2, 5, 1, 4], (2, 3)),
        ];
        for (o, want, dims) in cases {
            let (px, w, h) = orient(raw.clone(), 3, 2, 1, o);
            assert_eq!((px.as_slice(), (w, h)), (want, dims), "orientation {o}");
        }
    }

    #[test]
    fn region_mapping_agrees_with_pixel_orientation() {
        // For every orientation, the raw region of the oriented top-left
        // pixel must hold the pixel that orient() puts at the top-left.
        let raw: Vec<u8> = (0..12).collect(); // 4x3
        for o in 1..=8u8 {
            let (oriented, _, _) = orient(raw.clone(), 4, 3, 1, o);
            let r = to_raw(
                Region {
                    x: 0.0,
                    y: 0.0,
                    w: 1.0,
                    h: 1.0,
                },
                4,
                3,
                o,
            );
            let at = (r.y as usize) * 4 + r.x as usize;
            assert_eq!(raw[at], oriented[0], "orientation {o}");
        }
    }
}
