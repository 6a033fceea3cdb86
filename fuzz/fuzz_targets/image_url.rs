//! Processing-URL parser: split, resolve, parse options, normalize. Must
//! never panic; every input is Ok or a 4xx.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::image::options::{Options, Presets};
use sluice::image::url;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = url::split(path) {
        let _ = url::resolve(&p.source, &["http://allowed.example/".to_string()]);
        if let Ok(o) = Options::parse(p.options.iter().copied(), &Presets::default()) {
            let n = o.normalized();
            // Normalization is stable: parsing the normal form gives it back.
            let again = Options::parse(n.split('/'), &Presets::default()).expect("normal form parses");
            assert_eq!(again.normalized(), n);
        }
    }
});
