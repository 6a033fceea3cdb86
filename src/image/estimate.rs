//! How many bytes one job will hold at its peak, from the header alone.
//!
//! Conservative sums of the buffers each stage allocates (a reasoned upper
//! bound, not yet calibrated stage by stage; tests/image.rs only asserts an
//! overall VmHWM ceiling over the odd-image matrix): the decoder's
//! output (and the full-size coefficients of a progressive or non-interleaved JPEG), the resizer's
//! intermediate (source width x output height) and output, the oriented
//! and flattened copies, and the encoder's working set and output. The
//! compressed input is counted separately, as it arrives.

use super::geometry::Plan;
use super::pipeline::shrink_for;
use super::probe::{Probe, SourceFormat};

/// Fixed slack per job: decoder tables, row buffers, Huffman tables, ICC.
const FIXED: u64 = 1 << 20;

pub fn job_bytes(p: &Probe, plan: &Plan) -> u64 {
    variants_job_bytes(p, std::slice::from_ref(plan))
}

/// The peak of a job that decodes once (at the shrink that serves every
/// plan, [`shrink_for`]) and then makes one output per plan in turn from
/// the kept bitmap: the decode's peak or the largest variant's resize peak
/// (the decoded bitmap stays alive through all of them), plus the largest
/// variant's orient/flatten/encode working set, plus every encoded output
/// (all are held until the job returns). For one plan this is exactly the
/// single-output estimate.
pub fn variants_job_bytes(p: &Probe, plans: &[Plan]) -> u64 {
    let (w, h) = (u64::from(p.width), u64::from(p.height));
    let px = w * h;
    let out_ch: u64 = match (p.format, p.components) {
        (SourceFormat::Jpeg, 1) => 1,
        (SourceFormat::Jpeg, _) => 3,
        _ => u64::from(p.components),
    };
    // Decoder: output bitmap plus its internal planes.
    let shrink = shrink_for(p, plans);
    let coefficients = if p.format == SourceFormat::Jpeg && p.coefficients_buffered {
        // i16 per sample of every plane, full size, whatever the scale.
        px * u64::from(p.planes_x16) * 2 / 16
    } else {
        0
    };
    let (decoded_px, decode_peak) = match p.format {
        SourceFormat::Jpeg => {
            // libjpeg: the output at the DCT scale, a progressive (or non-interleaved) file's
            // coefficients, and a few MCU rows of samples per component
            // (16 rows of the scaled width, twice; a CMYK row buffer).
            let s = u64::from(shrink);
            let dpx = w.div_ceil(s) * h.div_ceil(s);
            let rows = w.div_ceil(s) * 32 * u64::from(p.planes_x16) / 16 + w.div_ceil(s) * 4;
            (dpx, dpx * out_ch + coefficients + rows)
        }
        // The GIF frame buffer plus the composed canvas.
        SourceFormat::Gif => (px, px * 8),
        // Lossless WebP decodes into ARGB before converting.
        SourceFormat::Webp => (px, px * out_ch + px * 4),
        SourceFormat::Png => (px, px * out_ch),
    };
    let decoded = decoded_px * out_ch;
    let mut resize_peak = 0u64;
    let mut finish_peak = 0u64;
    let mut outputs = 0u64;
    for plan in plans {
        let dst_px = u64::from(plan.raw_dst.0) * u64::from(plan.raw_dst.1);
        let dst = dst_px * out_ch;
        // fast_image_resize: premultiplied copy for alpha, an intermediate
        // of (source width x output height), and the output.
        let src_w = (plan.src.w.ceil() as u64).min(w) * decoded_px / px.max(1);
        let alpha_copy = if p.alpha { decoded } else { 0 };
        let intermediate = src_w.max(1) * u64::from(plan.raw_dst.1) * out_ch;
        resize_peak = resize_peak.max(decoded + alpha_copy + intermediate + dst);
        // Orientation copy and flattening copy, then the larger encoder
        // working set (the output format is not known here):
        // - JPEG: i16/f32 planes, 3 x 4 bytes per pixel;
        // - WebP (libwebp): gray expanded to RGB(A) (up to 4 bytes per
        //   pixel), libwebp's YUVA picture (2.5), and up to three copies of
        //   the output besides the one in `outputs` (libwebp's buffer, the
        //   mux's assembled file, our Vec), each at most the raw size.
        // The encoded output itself (at most about the raw size, for PNG)
        // is counted in `outputs`.
        let jpeg_planes = dst_px * 3 * 4;
        let webp_copies = dst_px * 4 + dst_px * 5 / 2 + dst * 3;
        finish_peak = finish_peak.max(dst * 2 + jpeg_planes.max(webp_copies) + 4096);
        outputs += dst;
    }
    FIXED + decode_peak.max(resize_peak) + finish_peak + outputs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::geometry::plan;
    use crate::image::options::{Options, Presets};

    fn probe(w: u32, h: u32, progressive: bool) -> Probe {
        Probe {
            format: SourceFormat::Jpeg,
            width: w,
            height: h,
            components: 3,
            alpha: false,
            progressive,
            coefficients_buffered: progressive,
            orientation: 1,
            planes_x16: 24,
        }
    }

    #[test]
    fn shrink_on_load_and_progressive_show_in_the_estimate() {
        let o = Options::parse(["w:800"], &Presets::default()).unwrap();
        let base = probe(5184, 3456, false);
        let prog = probe(5184, 3456, true);
        let a = job_bytes(&base, &plan(5184, 3456, 1, &o));
        let b = job_bytes(&prog, &plan(5184, 3456, 1, &o));
        // Baseline 18 MP to 800 px decodes at 1/4: well under the 51 MiB
        // a full-size RGB bitmap would take.
        assert!(a < 20 << 20, "{a}");
        // Progressive adds ~51 MiB of full-size coefficients.
        assert!(b > a + (45 << 20), "{a} {b}");
        // Full size output: at least the bitmap itself.
        let full = Options::default();
        let c = job_bytes(&base, &plan(5184, 3456, 1, &full));
        assert!(c > 5184 * 3456 * 3, "{c}");
    }

    #[test]
    fn variants_decode_once_at_the_shrink_of_the_largest() {
        let small = Options::parse(["rs:fit:200:200"], &Presets::default()).unwrap();
        let large = Options::parse(["rs:fit:1200:1200"], &Presets::default()).unwrap();
        let base = probe(5184, 3456, false);
        let ps = plan(5184, 3456, 1, &small);
        let pl = plan(5184, 3456, 1, &large);
        let both = variants_job_bytes(&base, &[ps, pl]);
        // The 1200 px variant needs a 1/2 decode (~11 MiB of RGB) where the
        // 200 px one alone would decode at 1/8.
        assert!(both > job_bytes(&base, &pl), "{both}");
        assert!(both >= job_bytes(&base, &ps) + 5184 / 2 * 3456 / 2 * 3 / 2);
        // Still far below two separate full-size jobs.
        assert!(both < job_bytes(&base, &pl) + job_bytes(&base, &ps) + (4 << 20));
        assert_eq!(variants_job_bytes(&base, &[pl]), job_bytes(&base, &pl));
    }
}
