//! Measures the JPEG decode choice behind shrink-on-load (issue 4):
//! libjpeg-turbo as sluice uses it (`libjpeg`: DCT-scaled to the largest
//! 1/2^n that stays at least TARGET_WIDTH wide; `libjpeg-full`: full size)
//! against zune-jpeg's full-size decode (`zune`) and jpeg-decoder's
//! DCT-domain `scale` (`jd`, same scale rule).
//! One process per measurement so that VmHWM is the decoder's own peak.
//!
//! `cargo run --release --example jpeg_decoders -- libjpeg|libjpeg-full|zune|jd FILE TARGET_WIDTH REPS`
#![allow(clippy::unwrap_used)]

use std::time::Instant;

fn vm_hwm_kib() -> u64 {
    sluice::peak_resident_bytes().unwrap_or(0) / 1024
}

/// User+system CPU of this process in ms (jpeg-decoder without rayon starts
/// one std thread per component, so wall time alone flatters it).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    // After the comm field: state is field 3, utime 14, stime 15 (in ticks).
    let field = |n: usize| -> f64 {
        after
            .split_whitespace()
            .nth(n - 3)
            .and_then(|x| x.parse().ok())
            .unwrap_or(0.0)
    };
    (field(14) + field(15)) * 10.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, file) = (&args[1], &args[2]);
    let target: u16 = args[3].parse().expect("target width");
    let reps: usize = args[4].parse().expect("reps");
    let data = std::fs::read(file).expect("read");
    let base = vm_hwm_kib();
    let mut times = Vec::new();
    let cpu0 = cpu_ms();
    let mut dims = (0, 0);
    for _ in 0..reps {
        let t = Instant::now();
        match mode.as_str() {
            "libjpeg" | "libjpeg-full" => {
                let mut d = jpeg_decoder::Decoder::new(std::io::Cursor::new(&data));
                d.read_info().expect("info");
                let i = d.info().expect("info");
                let (w, h) = (u32::from(i.width), u32::from(i.height));
                let shrink = if mode == "libjpeg" {
                    let out = (u32::from(target), (u32::from(target) * h / w).max(1));
                    sluice::image_tools::jpeg_shrink((f64::from(w), f64::from(h)), out)
                } else {
                    1
                };
                let never = std::sync::atomic::AtomicBool::new(false);
                let px = sluice_ffi::libjpeg::decode(&data, shrink, false, (w, h), &never)
                    .expect("libjpeg decode");
                dims = (px.width as usize, px.height as usize);
                std::hint::black_box(px);
            }
            "zune" => {
                let mut d = zune_jpeg::JpegDecoder::new(zune_core::bytestream::ZCursor::new(&data));
                let px = d.decode().expect("zune decode");
                let i = d.info().expect("info");
                dims = (i.width as usize, i.height as usize);
                std::hint::black_box(px);
            }
            "jd" => {
                let mut d = jpeg_decoder::Decoder::new(std::io::Cursor::new(&data));
                d.read_info().expect("info");
                let i = d.info().expect("info");
                let (w, h) = (u32::from(i.width), u32::from(i.height));
                let out = (u32::from(target), (u32::from(target) * h / w).max(1));
                let shrink = sluice::image_tools::jpeg_shrink((f64::from(w), f64::from(h)), out);
                let (w, h) = d
                    .scale(w.div_ceil(shrink) as u16, h.div_ceil(shrink) as u16)
                    .expect("scale");
                let px = d.decode().expect("jd decode");
                dims = (w as usize, h as usize);
                std::hint::black_box(px);
            }
            _ => panic!("mode is libjpeg, libjpeg-full, zune or jd"),
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let cpu = (cpu_ms() - cpu0) / reps as f64;
    times.sort_by(f64::total_cmp);
    println!(
        "{mode} {file} -> {}x{}: median {:.1} ms wall, {:.0} ms CPU, peak +{:.1} MiB",
        dims.0,
        dims.1,
        times[times.len() / 2],
        cpu,
        (vm_hwm_kib().saturating_sub(base)) as f64 / 1024.0
    );
}
