//! Run the recompression pipeline on a file, without the server:
//! `cargo run --release --example process -- IN OPTIONS OUT` (OPTIONS like
//! `rs:fit:800:0/q:80/f:jpg`). Used by bench/img/psnr.sh to compare the
//! library with vipsthumbnail.

use sluice::image::options::{Options, Presets};
use sluice::image::pipeline::{process, Defaults};

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
        let t = std::time::Instant::now();
        let out = process(&data, &options, None, defaults).map_err(|e| format!("{e:?}"))?;
        eprintln!(
            "{}x{} {:?} {} bytes in {:?}",
            out.width,
            out.height,
            out.format,
            out.bytes.len(),
            t.elapsed()
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
