//! How many bytes one job will hold at its peak, from the header alone.
//!
//! A model of the buffers each stage holds, stage by stage, with the
//! encoders' working sets measured (`examples/process.rs` prints this
//! estimate next to the measured peak; docs/images.md's "Memory estimate"
//! table has the calibration):
//!
//! - decode: the bitmap at the shrink-on-load scale, plus the full-size
//!   coefficients of a progressive or non-interleaved JPEG;
//! - resize: source bitmap, a premultiplied copy when it has alpha, the
//!   intermediate (source width x output height) and the output; nothing
//!   when the size does not change;
//! - finish: the resized bitmap, plus the larger of an orientation or
//!   flattening copy and the encoder's working set with its output.
//!
//! The stages follow each other, so a single output's peak is the largest
//! of the three (plus 1/16 for what the allocator keeps in between). Several outputs from one decode (zip variants) keep the
//! decoded bitmap and every finished output alive throughout. The
//! compressed input is counted separately, as it arrives.

use super::geometry::Plan;
use super::shrink::shrink_for;
use crate::image::codec::encode::jpeg_subsamples_chroma;
use crate::image::codec::{OutputFormat, Probe, SourceFormat};

/// Fixed slack per job: decoder tables, row buffers, Huffman tables, ICC,
/// the resizer's and encoders' small buffers. Measured shortfalls of the
/// model without it were up to 3.5 MiB on 2–13 MP jobs.
const FIXED: u64 = 4 << 20;

/// One output of a job: where it comes from, its format and the quality it
/// is encoded at (JPEG's chroma subsampling depends on it).
pub type OutputSpec = (Plan, OutputFormat, u8);

pub fn job_bytes(p: &Probe, plan: &Plan, format: OutputFormat, quality: u8) -> u64 {
    variants_job_bytes(p, &[(*plan, format, quality)])
}

/// The peak of a job that decodes once (at the shrink that serves every
/// plan, [`shrink_for`]) and makes one output per plan from the kept
/// bitmap (see the module docs). For one plan it is the single-output
/// estimate.
pub fn variants_job_bytes(p: &Probe, outputs: &[OutputSpec]) -> u64 {
    let (w, h) = (u64::from(p.width), u64::from(p.height));
    let ch: u64 = match (p.format, p.components) {
        (SourceFormat::Jpeg, 1) => 1,
        (SourceFormat::Jpeg, _) => 3,
        _ => u64::from(p.components),
    };
    let plans: Vec<Plan> = outputs.iter().map(|(plan, _, _)| *plan).collect();
    let shrink = u64::from(shrink_for(p, &plans));
    let (dw, dh) = (w.div_ceil(shrink), h.div_ceil(shrink));
    let decoded = dw * dh * ch;
    let decode_peak = match p.format {
        SourceFormat::Jpeg => {
            // i16 per sample of every plane, full size, whatever the scale.
            let coefficients = if p.coefficients_buffered {
                w * h * u64::from(p.planes_x16) * 2 / 16
            } else {
                0
            };
            // A few MCU rows of samples per component (16 rows of the
            // scaled width, twice) and a CMYK row.
            let rows = dw * 32 * u64::from(p.planes_x16) / 16 + dw * 4;
            decoded + coefficients + rows
        }
        // The GIF frame buffer beside the composed canvas.
        SourceFormat::Gif => decoded * 2,
        // Lossless WebP decodes into ARGB before converting.
        SourceFormat::Webp => decoded + dw * dh * 4,
        SourceFormat::Png => decoded,
    };
    // With several outputs the decoded bitmap is borrowed by each and
    // lives on, and finished outputs wait for the last one.
    let shared = outputs.len() > 1;
    let mut largest_stage = 0u64;
    let mut finished = 0u64;
    for (plan, format, quality) in outputs {
        let dst_px = u64::from(plan.raw_dst.0) * u64::from(plan.raw_dst.1);
        let dst = dst_px * ch;
        let region = plan.scaled_src((p.width, p.height), (dw as u32, dh as u32));
        let unchanged = region.w == dw as f64
            && region.h == dh as f64
            && (u64::from(plan.raw_dst.0), u64::from(plan.raw_dst.1)) == (dw, dh);
        let resize = if unchanged {
            // Moved through, or copied from a shared bitmap.
            if shared {
                dst
            } else {
                decoded
            }
        } else {
            let alpha_copy = if p.alpha { decoded } else { 0 };
            let intermediate = (region.w.ceil() as u64).max(1) * u64::from(plan.raw_dst.1) * ch;
            let source = if shared { 0 } else { decoded };
            source + alpha_copy + intermediate + dst
        };
        let copy = if plan.orientation != 1 || p.alpha {
            dst
        } else {
            0
        };
        let encoder = encoder_bytes(*format, dst_px, ch, p.alpha, *quality);
        let finish = dst + copy.max(encoder);
        largest_stage = largest_stage.max(resize).max(finish);
        // The output itself, at most about the raw size (PNG of noise).
        finished += dst + 1024;
    }
    let peak = if shared {
        decode_peak.max(decoded + largest_stage + finished)
    } else {
        decode_peak.max(largest_stage)
    };
    FIXED + peak + peak / ALLOCATOR_SLACK_DIVISOR
}

/// The allocator keeps some of what one stage freed while the next stage
/// allocates (a size class that does not fit the next request, pages not
/// yet returned): measured peaks ran up to 5 % above the live bytes, so
/// 1/16 is added.
const ALLOCATOR_SLACK_DIVISOR: u64 = 16;

/// An encoder's working set for `px` pixels of `ch` channels, the output it
/// builds included. Measured with `examples/process.rs` on 2 to 20 MP
/// photos (bytes per pixel, beside the input bitmap): JPEG 5.8 (4:2:0) and
/// 8.6 to 10.1 (4:4:4) for RGB, 2.9 to 4.4 for gray; PNG up to 2.3x the
/// bitmap; lossy WebP 2.0 for RGB, 4.9 for gray, 15.6 with alpha.
fn encoder_bytes(format: OutputFormat, px: u64, ch: u64, alpha: bool, quality: u8) -> u64 {
    let bitmap = px * ch;
    match format {
        // jpeg-encoder (with optimized Huffman tables) converts the whole
        // image to full-resolution component planes (1 byte per sample),
        // then keeps every quantized block (2 bytes per sample of each
        // component at its resolution), then writes the output: about 1
        // byte per pixel at q100 4:4:4, less below.
        OutputFormat::Jpeg if ch < 3 => px * 5,
        OutputFormat::Jpeg if jpeg_subsamples_chroma(quality) => px * 3 + px * 3 + px + (1 << 16),
        OutputFormat::Jpeg => px * 3 + px * 6 + px * 3 / 2 + (1 << 16),
        // The compressed output (about the bitmap's size for a photo) in
        // a growing Vec (old and new buffers while it reallocates) and the
        // deflate state.
        OutputFormat::Png => bitmap * 5 / 2 + (1 << 20),
        // Gray expanded to RGB(A), libwebp's YUV(A) picture and its
        // encoder's state (the lossless alpha plane's is large), the
        // output in libwebp's buffer, our copy and the mux's.
        OutputFormat::Webp => {
            let expanded = if ch < 3 { px * 4 } else { 0 };
            let alpha_state = if alpha { px * 14 } else { 0 };
            expanded + px * 5 / 2 + alpha_state + bitmap + (1 << 20)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::http::options::{Options, Presets};
    use crate::image::plan::geometry::plan;

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

    const JPEG: OutputFormat = OutputFormat::Jpeg;

    fn options(s: &str) -> Options {
        Options::parse(s.split('/'), &Presets::default()).unwrap()
    }

    #[test]
    fn shrink_on_load_and_progressive_show_in_the_estimate() {
        let o = options("w:800");
        let base = probe(5184, 3456, false);
        let prog = probe(5184, 3456, true);
        let a = job_bytes(&base, &plan(5184, 3456, 1, &o), JPEG, 80);
        let b = job_bytes(&prog, &plan(5184, 3456, 1, &o), JPEG, 80);
        // Baseline 18 MP to 800 px decodes at 1/4: well under the 51 MiB
        // a full-size RGB bitmap would take.
        assert!(a < 20 << 20, "{a}");
        // Progressive adds ~51 MiB of full-size coefficients.
        assert!(b > a + (45 << 20), "{a} {b}");
        // Full size output: at least the bitmap itself.
        let c = job_bytes(&base, &plan(5184, 3456, 1, &Options::default()), JPEG, 80);
        assert!(c > 5184 * 3456 * 3, "{c}");
    }

    #[test]
    fn a_full_size_reencode_of_20_mp_fits_the_default_budget() {
        // Measured peak (examples/process.rs): 176 MiB at q70, 235 MiB at
        // q100; the estimate must cover both, and at q70 still fit 256 MiB
        // (it used to be 655 MiB, and such requests were refused with 413).
        let p = probe(6028, 3391, false);
        let full = plan(6028, 3391, 1, &options("q:70"));
        let q70 = job_bytes(&p, &full, JPEG, 70);
        assert!((176 << 20..256 << 20).contains(&q70), "{}", q70 >> 20);
        let q100 = job_bytes(&p, &full, JPEG, 100);
        assert!(q100 >= 235 << 20, "{}", q100 >> 20);
        // WebP and PNG need less than JPEG's block store.
        for f in [OutputFormat::Webp, OutputFormat::Png] {
            assert!(job_bytes(&p, &full, f, 70) < 256 << 20);
        }
    }

    #[test]
    fn orientation_and_alpha_add_a_copy() {
        let o = options("w:2000");
        let upright = probe(4000, 3000, false);
        let rotated = Probe {
            orientation: 6,
            ..upright
        };
        let a = job_bytes(&upright, &plan(4000, 3000, 1, &o), JPEG, 80);
        let b = job_bytes(&rotated, &plan(4000, 3000, 6, &o), JPEG, 80);
        assert!(b > a, "{a} {b}");
    }

    #[test]
    fn variants_decode_once_at_the_shrink_of_the_largest() {
        let base = probe(5184, 3456, false);
        let ps = plan(5184, 3456, 1, &options("rs:fit:200:200"));
        let pl = plan(5184, 3456, 1, &options("rs:fit:1200:1200"));
        let both = variants_job_bytes(&base, &[(ps, JPEG, 80), (pl, JPEG, 80)]);
        // The 1200 px variant needs a 1/2 decode (~11 MiB of RGB) where the
        // 200 px one alone would decode at 1/8.
        assert!(both > job_bytes(&base, &pl, JPEG, 80), "{both}");
        assert!(both >= job_bytes(&base, &ps, JPEG, 80) + 5184 / 2 * 3456 / 2 * 3 / 2);
        // Still far below two separate full-size jobs.
        assert!(
            both < job_bytes(&base, &pl, JPEG, 80) + job_bytes(&base, &ps, JPEG, 80) + (12 << 20)
        );
        assert_eq!(
            variants_job_bytes(&base, &[(pl, JPEG, 80)]),
            job_bytes(&base, &pl, JPEG, 80)
        );
    }
}
