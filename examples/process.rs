//! Run the recompression pipeline on a file, without the server:
//! `cargo run --release --example process -- IN OPTIONS OUT` (OPTIONS like
//! `rs:fit:800:0/q:80/f:jpg`). Used by bench/img/psnr.sh to compare the
//! library with vipsthumbnail, and to check the memory estimate: it prints
//! the job's estimate (what the server reserves, compressed input aside)
//! next to the process's peak growth while processing (VmHWM), with
//! jemalloc as in the server.
#![allow(clippy::unwrap_used)]

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use sluice::image_tools::{job_bytes, plan, probe, process, Defaults, Options, Presets};

fn vm_hwm_kib() -> u64 {
    sluice::peak_resident_bytes().unwrap_or(0) / 1024
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: process IN OPTIONS OUT");
        return std::process::ExitCode::from(2);
    }
    let run = || -> Result<(), String> {
        let data = std::fs::read(&args[1]).map_err(|e| e.to_string())?;
        let options = Options::parse(
            args[2].split('/').filter(|s| !s.is_empty()),
            &Presets::default(),
        )
        .map_err(|e| e.reason.to_string())?;
        let defaults = Defaults {
            quality: 80,
            jpeg_progressive: false,
        };
        let p = probe(&data, true)
            .map_err(|e| e.to_string())?
            .ok_or("no header")?;
        let (format, _) = sluice::image_tools::choose_format(options.format, None, &p);
        let estimate = job_bytes(
            &p,
            &plan(p.width, p.height, p.orientation, &options),
            format,
            sluice::image_tools::effective_quality(&options, defaults),
        );
        let base = vm_hwm_kib();
        let t = std::time::Instant::now();
        let out = process(&data, &options, None, defaults).map_err(|e| format!("{e:?}"))?;
        eprintln!(
            "{}x{} {:?} {} bytes in {:?}; estimate {:.1} MiB, peak +{:.1} MiB",
            out.width,
            out.height,
            out.format,
            out.bytes.len(),
            t.elapsed(),
            estimate as f64 / 1048576.0,
            vm_hwm_kib().saturating_sub(base) as f64 / 1024.0
        );
        std::fs::write(&args[3], out.bytes).map_err(|e| e.to_string())
    };
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("process: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
