//! Entry points for the fuzz targets in `fuzz/` and for the test that
//! replays their corpora (`tests/fuzz_corpora.rs`), so both drive exactly
//! the same code. Each takes arbitrary bytes; errors are fine, a panic or a
//! broken invariant (asserted here) is a finding.

use bytes::BytesMut;

use crate::image::codec::probe::probe;
use crate::image::http::options::{Options, Presets};
use crate::image::http::url;
use crate::image::run::pipeline::{process, Defaults};
use crate::origin::target;
use crate::zip::manifest::{self, ArchivePlan, ManifestLimits};
use crate::zip::names;

/// Processing URLs: split, resolve against an allow-list, parse options;
/// the normal form of options parses back to itself.
pub fn processing_url(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let allowed = [url::SourceUrl::parse("http://allowed.example/base/").expect("static prefix")];
    let Ok(p) = url::split(path) else {
        return;
    };
    if let Ok(resolved) = url::resolve(&p.source, &allowed) {
        assert!(target::check(&resolved.path).is_ok(), "{resolved:?}");
    }
    if let Ok(o) = Options::parse(p.options.iter().copied(), &Presets::default()) {
        let n = o.normalized();
        let again = Options::parse(n.split('/'), &Presets::default()).expect("normal form parses");
        assert_eq!(again.normalized(), n);
    }
}

const LIMITS: ManifestLimits = ManifestLimits {
    max_entries: 10_000,
};

/// What every plan promises the rest of sluice: names sanitised and
/// unique (ignoring case), sources that stay on the origin, and a meter
/// that heard at least what the plan holds.
fn check_plan(plan: &ArchivePlan, metered: u64) {
    let mut seen: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    let mut held = 0u64;
    for e in &plan.entries {
        assert!(names::is_safe(&e.name), "unsafe name {:?}", e.name);
        // What the header holds must be unique, and a legacy name as safe
        // as a UTF-8 one: relative, no `..`, no backslash, no control byte.
        let key = match &e.legacy_name {
            Some(legacy) => {
                let b = &legacy.bytes;
                let path = b.strip_suffix(b"/").unwrap_or(b);
                assert!(!path.is_empty() && !path.starts_with(b"/"), "{b:?}");
                assert!(
                    path.split(|&c| c == b'/')
                        .all(|c| !c.is_empty() && c != b".." && c != b"."),
                    "{b:?}"
                );
                assert!(
                    !b.iter().any(|&c| c < 0x20 || c == 0x7F || c == b'\\'),
                    "{b:?}"
                );
                b.to_ascii_lowercase()
            }
            None => e.name.to_lowercase().into_bytes(),
        };
        assert!(seen.insert(key), "duplicate {}", e.name);
        // Every source that is fetched stays on the origin (a directory
        // entry fetches nothing).
        if !matches!(e.source, manifest::EntrySource::Directory) {
            assert!(target::check(e.source.describe()).is_ok(), "{:?}", e.source);
        }
        held += e.heap_bytes();
    }
    assert!(metered >= held, "metered {metered} < {held}");
}

/// The JSON manifest of `POST /zip`.
pub fn json_manifest(data: &[u8]) {
    let mut metered = 0;
    let plan = manifest::parse_json(data, LIMITS, &Presets::default(), &mut |n| {
        metered = metered.max(n);
        Ok(())
    });
    if let Ok(plan) = plan {
        check_plan(&plan, metered);
    }
}

/// An nginx mod_zip manifest.
pub fn mod_zip_manifest(data: &[u8]) {
    let mut metered = 0;
    // The charset comes from the length, so that every corpus input
    // still means what it meant, and each charset gets a quarter of them.
    let charset = match data.len() % 4 {
        0 => manifest::NameCharset::Utf8,
        1 => manifest::NameCharset::Native,
        2 => manifest::NameCharset::Legacy(encoding_rs::IBM866),
        _ => manifest::NameCharset::Separated("/".into()),
    };
    let plan = manifest::parse_mod_zip(data, LIMITS, &charset, &mut |n| {
        metered = metered.max(n);
        Ok(())
    });
    if let Ok(plan) = plan {
        check_plan(&plan, metered);
    }
}

/// Probe and the whole pipeline (decode, resize, encode), with a small
/// pixel cap so the fuzzer explores parsers rather than allocating.
pub fn decode_and_resize(data: &[u8]) {
    let Ok(Some(p)) = probe(data, true) else {
        return;
    };
    if p.pixels() > 4_000_000 {
        return;
    }
    let options = Options::parse(["rs:fit:64:64"], &Presets::default()).expect("static options");
    let defaults = Defaults {
        quality: 80,
        jpeg_progressive: false,
    };
    let _ = process(data, &options, Some("image/webp"), defaults);
}

/// An origin's HTTP/1 response (sluice's own client, `origin::raw_http`):
/// the head, then the body as its framing says, fed in pieces whose sizes
/// the first input byte chooses.
pub fn origin_response(data: &[u8]) {
    let Some((&split, wire)) = data.split_first() else {
        return;
    };
    let piece = usize::from(split % 16) + 1;
    let Ok(Some((framing, head_len))) = crate::origin::raw_http::fuzz_head(wire) else {
        return;
    };
    assert!(head_len <= wire.len());
    let mut decoder = crate::origin::raw_http::BodyDecoder::new(framing);
    let mut buf = BytesMut::new();
    let mut rest = &wire[head_len..];
    let mut decoded = 0usize;
    loop {
        match decoder.step(&mut buf) {
            Err(_) => return,
            Ok(crate::origin::raw_http::Step::End) => break,
            Ok(crate::origin::raw_http::Step::Data(d)) => {
                assert!(!d.is_empty());
                decoded += d.len();
            }
            Ok(crate::origin::raw_http::Step::Need) if rest.is_empty() => break,
            Ok(crate::origin::raw_http::Step::Need) => {
                let (now, later) = rest.split_at(piece.min(rest.len()));
                buf.extend_from_slice(now);
                rest = later;
            }
        }
    }
    // Decoding never invents bytes.
    assert!(decoded <= wire.len() - head_len);
}
