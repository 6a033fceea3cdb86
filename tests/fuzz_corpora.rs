//! Replays every input of the fuzz corpora (`fuzz/corpus/<target>/`)
//! through the same entry points the fuzz targets call
//! (`sluice::fuzzing`), as an ordinary test: a finding that was fixed stays
//! fixed, and the corpora keep working as the code changes. The fuzzers
//! themselves run in `.ci/fuzz`, where cargo-fuzz can run.
#![allow(clippy::unwrap_used)]

use std::path::Path;

fn replay(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = file.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| entry(&data));
        assert!(outcome.is_ok(), "{target}: {} panics", path.display());
        inputs += 1;
    }
    assert!(inputs > 0, "the {target} corpus is empty");
}

#[test]
fn processing_url_corpus() {
    replay("processing_url", sluice::fuzzing::processing_url);
}

#[test]
fn json_manifest_corpus() {
    replay("json_manifest", sluice::fuzzing::json_manifest);
}

#[test]
fn mod_zip_manifest_corpus() {
    replay("mod_zip_manifest", sluice::fuzzing::mod_zip_manifest);
}

#[test]
fn decode_and_resize_corpus() {
    replay("decode_and_resize", sluice::fuzzing::decode_and_resize);
}

#[test]
fn origin_response_corpus() {
    replay("origin_response", sluice::fuzzing::origin_response);
}
