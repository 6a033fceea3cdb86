//! JPEG shrink-on-load: libjpeg decodes at 1/2, 1/4 or 1/8 of the size in
//! the DCT domain, far faster than decoding whole and resizing. The factor
//! is chosen here from the plan, so the estimate and the decode agree.

use super::geometry::Plan;
use crate::image::codec::{Probe, SourceFormat};

/// The DCT scale denominator (1, 2, 4 or 8) for decoding a `width x height`
/// JPEG of which a region `region_w x region_h` becomes `out_w x out_h`:
/// the largest that still leaves the region at least as large as the output.
pub fn jpeg_shrink(region: (f64, f64), out: (u32, u32)) -> u32 {
    let factor = (region.0 / f64::from(out.0)).min(region.1 / f64::from(out.1));
    [8, 4, 2]
        .into_iter()
        .find(|&s| f64::from(s) <= factor)
        .unwrap_or(1)
}

/// The JPEG shrink-on-load factor that serves every plan: the smallest of
/// their factors, so no output is resized up from a too-small bitmap.
/// Other formats always decode at full size (1).
pub fn shrink_for(p: &Probe, plans: &[Plan]) -> u32 {
    if p.format != SourceFormat::Jpeg {
        return 1;
    }
    plans
        .iter()
        .map(|plan| jpeg_shrink((plan.src.w, plan.src.h), plan.raw_dst))
        .min()
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_leaves_the_region_at_least_output_sized() {
        assert_eq!(jpeg_shrink((5184.0, 3456.0), (800, 533)), 4);
        assert_eq!(jpeg_shrink((6400.0, 4800.0), (800, 600)), 8);
        assert_eq!(jpeg_shrink((1600.0, 1200.0), (800, 600)), 2);
        assert_eq!(jpeg_shrink((1500.0, 1200.0), (800, 600)), 1);
        assert_eq!(jpeg_shrink((100.0, 100.0), (800, 800)), 1);
    }
}
