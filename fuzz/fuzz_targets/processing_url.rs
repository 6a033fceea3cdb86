//! Processing URLs: split, allow-list resolution, options and their normal form.
//! The body lives in `sluice::fuzzing`, which `tests/fuzz_corpora.rs`
//! also replays the corpus through.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::processing_url(data));
