//! Zip readers nobody here wrote, as judges: Python's zipfile (testzip),
//! Info-ZIP `unzip -t`, `7z t`, and bsdtar (libarchive) reading from a pipe,
//! i.e. as a streaming reader that only sees local headers and descriptors.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// What Python's zipfile saw of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub size: u64,
    /// 0 stored, 8 deflated
    pub method: u32,
    pub flags: u32,
    pub date_time: Vec<u32>,
}

const PY: &str = r#"
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    bad = z.testzip()
    out = [{"name": i.filename, "size": i.file_size, "method": i.compress_type,
            "flags": i.flag_bits, "date_time": list(i.date_time)} for i in z.infolist()]
    print(json.dumps({"bad": bad, "entries": out}))
"#;

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .expect("reader is installed (see docs/development.md)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// What `cmd` prints, which must succeed (its stderr is the message).
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .expect("reader is installed (see docs/development.md)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Python zipfile: every CRC checks out; returns the listing.
pub fn python_list(path: &Path) -> Vec<Listed> {
    let (ok, text) = run(Command::new("python3").arg("-c").arg(PY).arg(path));
    assert!(ok, "python zipfile failed: {text}");
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("python printed JSON");
    assert!(
        v["bad"].is_null(),
        "python testzip found a bad entry: {}",
        v["bad"]
    );
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Listed {
            name: e["name"].as_str().unwrap().to_string(),
            size: e["size"].as_u64().unwrap(),
            method: e["method"].as_u64().unwrap() as u32,
            flags: e["flags"].as_u64().unwrap() as u32,
            date_time: e["date_time"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect(),
        })
        .collect()
}

/// Info-ZIP: `unzip -t` passes with no warning at all (no "extra bytes", no
/// "overlapped components"). An empty archive is the one exception Info-ZIP
/// always warns about ("zipfile is empty"), whoever wrote it.
pub fn unzip_test(path: &Path, entries: usize) {
    let (ok, text) = run(Command::new("unzip").arg("-t").arg(path));
    if entries == 0 {
        assert!(text.contains("zipfile is empty"), "unzip -t: {text}");
        assert_eq!(text.matches("warning").count(), 1, "unzip -t: {text}");
        return;
    }
    assert!(ok, "unzip -t failed: {text}");
    assert!(text.contains("No errors detected"), "unzip -t: {text}");
    let lower = text.to_lowercase();
    for bad in ["warning", "overlapped", "extra bytes", "error:", "bad crc"] {
        assert!(!lower.contains(bad), "unzip -t reported {bad:?}: {text}");
    }
}

/// 7-Zip: `7z t` says "Everything is Ok" and no warnings.
pub fn seven_zip_test(path: &Path) {
    let (ok, text) = run(Command::new("7z").arg("t").arg(path));
    assert!(ok, "7z t failed: {text}");
    assert!(text.contains("Everything is Ok"), "7z t: {text}");
    assert!(!text.contains("WARNING"), "7z t warned: {text}");
}

/// bsdtar reading the archive from a pipe (libarchive's streaming zip
/// reader): extracts every entry to stdout, checking CRCs; returns the
/// number of bytes extracted.
pub fn bsdtar_stream(path: &Path) -> u64 {
    let child = Command::new("sh")
        .arg("-c")
        .arg("cat \"$1\" | bsdtar -xOf - | wc -c")
        .arg("sh")
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bsdtar is installed");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.trim().is_empty(), "bsdtar complained: {err}");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The bytes of entry `name`, as Python's zipfile extracts them.
pub fn python_read(path: &Path, name: &str) -> Vec<u8> {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))")
        .arg(path)
        .arg(name)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python zipfile could not read {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// All four judges; returns Python's listing.
pub fn check_all(path: &Path) -> Vec<Listed> {
    let listed = python_list(path);
    unzip_test(path, listed.len());
    seven_zip_test(path);
    let extracted = bsdtar_stream(path);
    assert_eq!(extracted, listed.iter().map(|e| e.size).sum::<u64>());
    listed
}

/// Write `bytes` to a fresh temporary file and return its path.
pub fn temp_file(tag: &str, bytes: &[u8]) -> tempfile_path::TempPath {
    let p = tempfile_path::TempPath::new(tag);
    std::fs::File::create(&p.0)
        .and_then(|mut f| f.write_all(bytes))
        .unwrap();
    p
}

pub mod tempfile_path {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    static N: AtomicU32 = AtomicU32::new(0);

    /// A path under the system temp dir, removed on drop.
    pub struct TempPath(pub PathBuf);

    impl TempPath {
        pub fn new(tag: &str) -> Self {
            let n = N.fetch_add(1, Ordering::Relaxed);
            TempPath(
                std::env::temp_dir().join(format!("sluice-{tag}-{}-{n}.zip", std::process::id())),
            )
        }
    }

    impl std::ops::Deref for TempPath {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}
