//! The zip writer, driven directly (no server), judged by Python zipfile,
//! `unzip -t`, `7z t` and streaming bsdtar.
#![allow(clippy::unwrap_used)]

mod zip_readers;

use bytes::Bytes;
use sluice::zip_format::{
    known_archive_len, sanitize, DosDateTime, EntryLayout, EntrySpec, Method, Namer, Sizes,
    ZipWriter,
};
use zip_readers::{check_all, temp_file};

/// A deterministic, poorly compressible byte stream (xorshift).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Input {
    name: String,
    method: Method,
    sizes: Sizes,
    data: Vec<u8>,
}

fn write(inputs: &[Input]) -> Vec<u8> {
    let mut w = ZipWriter::new();
    let mut out = Vec::new();
    for i in inputs {
        let (h, mut e) = w
            .begin_entry(EntrySpec {
                name: i.name.clone(),
                legacy_name: None,
                method: i.method,
                modified: DosDateTime::from_unix(1_700_000_000),
                sizes: i.sizes,
            })
            .unwrap();
        out.extend_from_slice(&h);
        for c in i.data.chunks(64 * 1024) {
            out.extend_from_slice(&e.write(Bytes::copy_from_slice(c)).unwrap());
        }
        out.extend_from_slice(&w.finish_entry(e).unwrap());
    }
    for c in w.finish() {
        out.extend_from_slice(&c);
    }
    out
}

#[test]
fn stored_and_deflated_entries_of_every_size_mode() {
    let photo = noise(300_000, 1);
    let text = "line of text\n".repeat(20_000).into_bytes();
    let inputs = vec![
        Input {
            name: "a.jpg".into(),
            method: Method::Store,
            sizes: Sizes::Unknown,
            data: photo.clone(),
        },
        Input {
            name: "b.txt".into(),
            method: Method::Deflate,
            sizes: Sizes::Unknown,
            data: text.clone(),
        },
        Input {
            name: "c.jpg".into(),
            method: Method::Store,
            sizes: Sizes::Length(photo.len() as u64),
            data: photo.clone(),
        },
        Input {
            name: "d.txt".into(),
            method: Method::Deflate,
            sizes: Sizes::Length(text.len() as u64),
            data: text.clone(),
        },
        Input {
            name: "e.jpg".into(),
            method: Method::Store,
            sizes: Sizes::Known {
                size: photo.len() as u64,
                crc32: crc32fast::hash(&photo),
            },
            data: photo.clone(),
        },
        Input {
            name: "empty.txt".into(),
            method: Method::Deflate,
            sizes: Sizes::Unknown,
            data: vec![],
        },
        Input {
            name: "empty.jpg".into(),
            method: Method::Store,
            sizes: Sizes::Unknown,
            data: vec![],
        },
        Input {
            name: "known-empty.jpg".into(),
            method: Method::Store,
            sizes: Sizes::Known { size: 0, crc32: 0 },
            data: vec![],
        },
        Input {
            name: "noise.bin".into(),
            method: Method::Deflate,
            sizes: Sizes::Unknown,
            data: noise(200_000, 9),
        },
    ];
    let zip = write(&inputs);
    let file = temp_file("mixed", &zip);
    let listed = check_all(&file);
    assert_eq!(listed.len(), inputs.len());
    for (l, i) in listed.iter().zip(&inputs) {
        assert_eq!(l.name, i.name);
        assert_eq!(l.size, i.data.len() as u64);
        assert_eq!(l.method, if i.method == Method::Store { 0 } else { 8 });
        assert_ne!(l.flags & (1 << 11), 0, "UTF-8 flag");
        assert_eq!(l.date_time, vec![2023, 11, 14, 22, 13, 20]);
    }
    // Deflate actually compressed the text.
    assert!(zip.len() < 4 * photo.len() + text.len());
}

#[test]
fn utf8_and_hostile_names_extract_inside_the_target_folder() {
    let requested = [
        "фото/日本 2024.jpg",
        "../../etc/passwd",
        "/abs/olute.txt",
        "C:\\Windows\\system.ini",
        "what?<is>:this|*.txt",
        "CON.txt",
        "dup.txt",
        "DUP.txt",
        "dup.txt",
        "emoji 🎉.txt",
    ];
    let mut namer = Namer::new();
    let inputs: Vec<Input> = requested
        .iter()
        .enumerate()
        .map(|(n, r)| Input {
            name: namer.unique(&sanitize(r).unwrap()),
            method: Method::Deflate,
            sizes: Sizes::Unknown,
            data: format!("entry {n}").into_bytes(),
        })
        .collect();
    let file = temp_file("names", &write(&inputs));
    let listed = check_all(&file);
    let names: Vec<&str> = listed.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "фото/日本 2024.jpg",
            "etc/passwd",
            "abs/olute.txt",
            "Windows/system.ini",
            "what__is__this__.txt",
            "_CON.txt",
            "dup.txt",
            "DUP (1).txt",
            "dup (2).txt",
            "emoji 🎉.txt",
        ]
    );
    // Extract for real and check nothing landed outside the folder.
    let dir = std::env::temp_dir().join(format!("sluice-names-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("inside")).unwrap();
    let out = std::process::Command::new("unzip")
        .arg("-q")
        .arg(&*file)
        .arg("-d")
        .arg(dir.join("inside"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, vec![std::ffi::OsString::from("inside")]);
    assert_eq!(
        std::fs::read_to_string(dir.join("inside/фото/日本 2024.jpg")).unwrap(),
        "entry 0"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_archive_with_no_entries() {
    let zip = write(&[]);
    assert_eq!(zip.len() as u64, known_archive_len([]));
    let file = temp_file("empty", &zip);
    assert!(check_all(&file).is_empty());
}

#[test]
fn more_than_65535_entries_use_zip64_end_records() {
    let inputs: Vec<Input> = (0..70_000)
        .map(|i| Input {
            name: format!("d{}/f{i}.jpg", i % 100),
            method: Method::Store,
            sizes: Sizes::Known {
                size: 1,
                crc32: crc32fast::hash(&[i as u8]),
            },
            data: vec![i as u8],
        })
        .collect();
    let zip = write(&inputs);
    let predicted = known_archive_len(inputs.iter().map(|i| EntryLayout::known(i.name.len(), 1)));
    assert_eq!(zip.len() as u64, predicted);
    // ZIP64 end of central directory record present.
    assert!(zip
        .windows(4)
        .rev()
        .take(200)
        .any(|w| w == [0x50, 0x4b, 0x06, 0x06]));
    let file = temp_file("many", &zip);
    let listed = check_all(&file);
    assert_eq!(listed.len(), 70_000);
    assert_eq!(listed[69_999].name, "d99/f69999.jpg");
}

#[test]
fn fewer_than_65535_entries_do_not_use_zip64() {
    let inputs: Vec<Input> = (0..3)
        .map(|i| Input {
            name: format!("f{i}.txt"),
            method: Method::Deflate,
            sizes: Sizes::Length(2),
            data: b"hi".to_vec(),
        })
        .collect();
    let zip = write(&inputs);
    // No ZIP64 extra field id (0x0001 + len) and no ZIP64 end record.
    assert!(!zip.windows(4).any(|w| w == [0x50, 0x4b, 0x06, 0x06]));
    let file = temp_file("small", &zip);
    check_all(&file);
}

/// ZIP64 for real: a stored entry of 4 GiB + 1 MiB with a declared length
/// (ZIP64 local extra, 24-byte descriptor), then entries whose offsets lie
/// past 4 GiB (ZIP64 offsets in the central directory) and ZIP64 end
/// records. Streamed to a file chunk by chunk. The same archive shape goes
/// through the server in tests/zip_http.rs, which is the one CI runs; this
/// one is for debugging the writer alone (`cargo test -- --ignored`).
#[test]
#[ignore = "writes 4 GiB; the end-to-end twin in tests/zip_http.rs runs in CI"]
fn archives_past_4_gib_use_zip64_exactly_where_needed() {
    use std::io::Write;
    let big = (4u64 << 30) + (1 << 20);
    let file = zip_readers::tempfile_path::TempPath::new("big");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&*file).unwrap());
    let zeros = Bytes::from(vec![0u8; 1 << 20]);
    let mut w = ZipWriter::new();
    let specs = [
        ("big.mp4", Method::Store, Sizes::Length(big)),
        ("after.txt", Method::Deflate, Sizes::Unknown),
        ("after.jpg", Method::Store, Sizes::Length(3)),
    ];
    for (name, method, sizes) in specs {
        let (h, mut e) = w
            .begin_entry(EntrySpec {
                name: name.into(),
                legacy_name: None,
                method,
                modified: DosDateTime::EPOCH,
                sizes,
            })
            .unwrap();
        f.write_all(&h).unwrap();
        let mut left = sizes.length().unwrap_or(1000);
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&e.write(zeros.slice(..n)).unwrap()).unwrap();
            left -= n as u64;
        }
        f.write_all(&w.finish_entry(e).unwrap()).unwrap();
    }
    for c in w.finish() {
        f.write_all(&c).unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let listed = check_all(&file);
    assert_eq!(
        listed.iter().map(|l| l.size).collect::<Vec<_>>(),
        [big, 1000, 3]
    );
}
