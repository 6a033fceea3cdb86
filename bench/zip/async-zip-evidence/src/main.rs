//! Evidence for writing the zip format by hand (see src/zip/writer.rs):
//! async_zip 0.0.19's streaming writer, the crate the design started with,
//! produces archives that the readers sluice is judged by reject. Prints
//! each reader's verdict and exits 1 if any case was accepted by all four
//! (then the choice can be revisited).

use std::process::Command;

use async_zip::base::write::ZipFileWriter;
use async_zip::{Compression, ZipDateTimeBuilder, ZipEntryBuilder};
use futures_util::AsyncWriteExt;

fn temp_file(tag: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("{tag}-{}.zip", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

async fn streamed(force_no_zip64: bool) -> Vec<u8> {
    let mut writer = ZipFileWriter::with_tokio(Vec::new());
    if force_no_zip64 {
        writer = writer.force_no_zip64();
    }
    let date = ZipDateTimeBuilder::new()
        .year(2024)
        .month(5)
        .day(1)
        .hour(12)
        .minute(0)
        .second(0)
        .build();
    let entry = ZipEntryBuilder::new("notes.txt".to_string().into(), Compression::Deflate)
        .last_modification_date(date)
        .build();
    let mut w = writer.write_entry_stream(entry).await.unwrap();
    w.write_all(&b"compressible text, compressible text\n".repeat(2000))
        .await
        .unwrap();
    w.close().await.unwrap();
    writer.close().await.unwrap().into_inner()
}

fn reader_verdicts(zip: &[u8]) -> Vec<(&'static str, bool, String)> {
    let file = temp_file("async-zip", zip);
    let run = |name: &'static str, cmd: &mut Command| {
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let clean = out.status.success()
            && !text.to_lowercase().contains("warning")
            && !text.contains("overlapped");
        (name, clean, text)
    };
    vec![
        run(
            "python",
            Command::new("python3")
                .arg("-c")
                .arg("import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None")
                .arg(&file),
        ),
        run("unzip", Command::new("unzip").arg("-t").arg(&file)),
        run("7z", Command::new("7z").arg("t").arg(&file)),
        run(
            "bsdtar",
            Command::new("sh")
                .arg("-c")
                .arg("cat \"$1\" | bsdtar -xOf - >/dev/null")
                .arg("sh")
                .arg(&file),
        ),
    ]
}

/// `force_no_zip64()` swaps compressed and uncompressed sizes of a deflated
/// entry in the central directory.
async fn force_no_zip64_deflated_entry_is_rejected() {
    let verdicts = reader_verdicts(&streamed(true).await);
    let rejected: Vec<_> = verdicts.iter().filter(|v| !v.1).map(|v| v.0).collect();
    for (name, clean, text) in &verdicts {
        println!("{name}: {}\n{}", if *clean { "accepted" } else { "REJECTED" }, text.trim());
    }
    assert!(
        !rejected.is_empty(),
        "every reader accepted it: {verdicts:#?}"
    );
}

/// Default streaming: a ZIP64 extra on every entry although none needs it,
/// and a data descriptor whose 32-bit sizes are 0xFFFFFFFF.
async fn streamed_entry_uses_zip64_and_a_bogus_descriptor() {
    let zip = streamed(false).await;
    // The data descriptor (PK\x07\x08, crc, csize, usize) carries 0xFFFFFFFF.
    let at = zip
        .windows(4)
        .position(|w| w == [0x50, 0x4b, 0x07, 0x08])
        .expect("a data descriptor");
    assert_eq!(&zip[at + 8..at + 16], &[0xff; 8]);
    let verdicts = reader_verdicts(&zip);
    for (name, clean, text) in &verdicts {
        println!("{name}: {}\n{}", if *clean { "accepted" } else { "REJECTED" }, text.trim());
    }
    let rejected: Vec<_> = verdicts.iter().filter(|v| !v.1).map(|v| v.0).collect();
    assert!(
        !rejected.is_empty(),
        "every reader accepted it: {verdicts:#?}"
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!("== force_no_zip64(), one deflated streamed entry");
    force_no_zip64_deflated_entry_is_rejected().await;
    println!("== default (ZIP64) streamed entry");
    streamed_entry_uses_zip64_and_a_bogus_descriptor().await;
    println!("both cases rejected by at least one reader");
}
