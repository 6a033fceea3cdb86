//! Probe and the whole pipeline on arbitrary bytes, with a small pixel cap
//! so the fuzzer explores parsers rather than allocating. Errors are fine;
//! panics are what the worker pool's catch_unwind would have to contain.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::image::options::{Options, Presets};
use sluice::image::pipeline::{process, Defaults};
use sluice::image::probe::probe;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(p)) = probe(data, true) else {
        return;
    };
    if p.pixels() > 4_000_000 {
        return;
    }
    let options = Options::parse(["rs:fit:64:64"], &Presets::default()).expect("static options");
    let _ = process(data, &options, Some("image/webp"), Defaults { quality: 80, jpeg_progressive: false });
});
