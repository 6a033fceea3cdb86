//! An origin's HTTP/1 response head and body framing, fed in pieces.
//! The body lives in `sluice::fuzzing`, which `tests/fuzz_corpora.rs`
//! also replays the corpus through.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::origin_response(data));
