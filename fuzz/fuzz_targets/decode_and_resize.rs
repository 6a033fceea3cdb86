//! Probe, decode, resize and encode arbitrary bytes (small pixel cap).
//! The body lives in `sluice::fuzzing`, which `tests/fuzz_corpora.rs`
//! also replays the corpus through.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::decode_and_resize(data));
