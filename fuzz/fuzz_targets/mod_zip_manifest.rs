//! nginx mod_zip manifests: parse, plan, name, meter.
//! The body lives in `sluice::fuzzing`, which `tests/fuzz_corpora.rs`
//! also replays the corpus through.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::mod_zip_manifest(data));
