//! The JSON manifest of POST /zip: parse, plan, name, meter.
//! The body lives in `sluice::fuzzing`, which `tests/fuzz_corpora.rs`
//! also replays the corpus through.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::json_manifest(data));
