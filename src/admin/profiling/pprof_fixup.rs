//! Two fixes to the pprof profiles `jemalloc_pprof` produces, so that
//! `go tool pprof` shows what an operator expects from Go's heap profiles.
//!
//! 1. Every sampled stack starts in jemalloc's sampler and the allocation
//!    layers (`prof_backtrace_impl`, `je_malloc_default`, `__rust_alloc`,
//!    `RawVec::grow_amortized`, ...), so `-top` would put all bytes on
//!    `prof_backtrace_impl`. Go's heap profiles avoid that with the
//!    profile's `drop_frames` field, a regular expression of frames that
//!    pprof cuts off (with everything they call) when it loads a profile;
//!    we set it to [`ALLOCATOR_FRAMES`].
//! 2. The stacks are symbolized in-process, but `jemalloc_pprof` 0.9 leaves
//!    the `has_functions`/`has_filenames`/`has_line_numbers`/
//!    `has_inline_frames` flags of the main binary's mapping unset, so
//!    `go tool pprof sluice heap.pb.gz` symbolizes again from the binary,
//!    with mapping bounds (0..u64::MAX) that make it miss (frames show as
//!    `[sluice]`). We set the flags on every mapping: all of them were
//!    symbolized in-process.
//!
//! Written by hand on the protobuf wire format because these are small
//! edits: a repeated field (`string_table`) may be continued anywhere, a
//! scalar is set by appending it, and a nested message (a mapping) is
//! extended by appending fields and rewriting its length. Decoding and
//! re-encoding with `prost` would need the full message types (private in
//! `pprof_util`) and would drop any field they do not know.

use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

/// Frames of jemalloc, its Rust wrapper and `alloc`'s raw allocation layer.
/// pprof anchors the expression (`^(...)$`) and matches function names.
pub const ALLOCATOR_FRAMES: &str = concat!(
    r"prof_.*|_rjem_.*|je_.*|imalloc.*|irallocx?_prof|do_rallocx|",
    r"malloc|calloc|realloc|mallocx|rallocx|posix_memalign|aligned_alloc|",
    r"<?tikv_jemallocator::.*|__rustc::__rust_.*|__rust_(alloc|alloc_zeroed|realloc)|",
    r"<?alloc::alloc::.*|<?alloc::raw_vec::.*",
);

// Field numbers of `perftools.profiles.Profile` and `Mapping`.
const MAPPING: u64 = 3;
const STRING_TABLE: u64 = 6;
const DROP_FRAMES: u64 = 7;
/// `has_functions` (7), `has_filenames` (8), `has_line_numbers` (9),
/// `has_inline_frames` (10), each as a varint `true`.
const MAPPING_SYMBOLIZED: [u8; 8] = [7 << 3, 1, 8 << 3, 1, 9 << 3, 1, 10 << 3, 1];

/// Apply both fixes to a gzipped pprof profile, with `drop_frames` set to
/// `drop_pattern`.
pub fn fix(gzipped: &[u8], drop_pattern: &str) -> std::io::Result<Vec<u8>> {
    let invalid = || std::io::Error::other("the heap profile is not a valid protobuf");
    let mut message = Vec::with_capacity(gzipped.len() * 4);
    GzDecoder::new(gzipped).read_to_end(&mut message)?;

    let mut out = Vec::with_capacity(message.len() + drop_pattern.len() + 64);
    let mut strings = 0u64;
    let mut at = 0;
    while at < message.len() {
        let start = at;
        let key = read_varint(&message, &mut at).ok_or_else(invalid)?;
        match key & 7 {
            0 => {
                read_varint(&message, &mut at).ok_or_else(invalid)?;
            }
            1 => at = at.checked_add(8).ok_or_else(invalid)?,
            2 => {
                let len = read_varint(&message, &mut at).ok_or_else(invalid)?;
                let len = usize::try_from(len).map_err(|_| invalid())?;
                let body_start = at;
                at = at.checked_add(len).ok_or_else(invalid)?;
                let body = message.get(body_start..at).ok_or_else(invalid)?;
                match key >> 3 {
                    STRING_TABLE => strings += 1,
                    MAPPING => {
                        write_varint(&mut out, key);
                        write_varint(&mut out, (body.len() + MAPPING_SYMBOLIZED.len()) as u64);
                        out.extend_from_slice(body);
                        out.extend_from_slice(&MAPPING_SYMBOLIZED);
                        continue;
                    }
                    _ => {}
                }
            }
            5 => at = at.checked_add(4).ok_or_else(invalid)?,
            _ => return Err(invalid()),
        }
        out.extend_from_slice(message.get(start..at).ok_or_else(invalid)?);
    }
    // A new string at index `strings`, then drop_frames pointing at it.
    write_varint(&mut out, (STRING_TABLE << 3) | 2);
    write_varint(&mut out, drop_pattern.len() as u64);
    out.extend_from_slice(drop_pattern.as_bytes());
    write_varint(&mut out, DROP_FRAMES << 3);
    write_varint(&mut out, strings);

    let mut gz = GzEncoder::new(
        Vec::with_capacity(gzipped.len() + 256),
        Compression::default(),
    );
    gz.write_all(&out)?;
    gz.finish()
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(b).unwrap();
        gz.finish().unwrap()
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(b).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn sets_drop_frames_and_marks_mappings_symbolized() {
        let mut msg = Vec::new();
        msg.extend_from_slice(&[0x32, 0x00, 0x32, 0x01, b'x']); // string_table "", "x"
        msg.extend_from_slice(&[0x1a, 0x02, 0x08, 0x01]); // mapping { id: 1 }
        msg.extend_from_slice(&[0x48, 0xac, 0x02]); // time_nanos = 300
        msg.extend_from_slice(&[0x69, 1, 2, 3, 4, 5, 6, 7, 8]); // a fixed64 field
        let out = gunzip(&fix(&gzip(&msg), "je_.*").unwrap());
        let mut expected = Vec::new();
        expected.extend_from_slice(&[0x32, 0x00, 0x32, 0x01, b'x']);
        expected.extend_from_slice(&[0x1a, 10, 0x08, 0x01]);
        expected.extend_from_slice(&MAPPING_SYMBOLIZED);
        expected.extend_from_slice(&[0x48, 0xac, 0x02]);
        expected.extend_from_slice(&[0x69, 1, 2, 3, 4, 5, 6, 7, 8]);
        // string 2 = the pattern, drop_frames = 2
        expected.extend_from_slice(&[0x32, 5, b'j', b'e', b'_', b'.', b'*', 0x38, 2]);
        assert_eq!(out, expected);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(fix(&gzip(&[0x32, 0x05, b'a']), "x").is_err());
        assert!(fix(&gzip(&[0x0f]), "x").is_err());
        assert!(fix(&gzip(&[0x08]), "x").is_err());
        assert!(fix(b"not gzip", "x").is_err());
    }
}
