//! `POST /zip` and the mod_zip hand-off, end to end: the real binary, a real
//! origin on loopback, a real HTTP client, and archives judged by Python
//! zipfile, `unzip -t`, `7z t` and streaming bsdtar.
#![allow(clippy::unwrap_used)]

mod common;
mod zip_origin;
mod zip_readers;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{client, Sluice};
use futures_util::StreamExt;
use serde_json::json;
use zip_origin::{pattern_vec, text_vec, ZipOrigin};
use zip_readers::{check_all, python_list, temp_file, tempfile_path::TempPath};

fn sluice_for(origin: &ZipOrigin, extra: &[&str]) -> Sluice {
    let url = origin.url();
    let mut args = vec!["--origin", url.as_str()];
    args.extend_from_slice(extra);
    Sluice::start(&args)
}

struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Result<Vec<u8>, String>,
}

async fn post(sluice: &Sluice, manifest: &serde_json::Value, headers: &[(&str, &str)]) -> Got {
    let mut req = client()
        .post(sluice.url("/zip"))
        .header("content-type", "application/json")
        .body(manifest.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    collect(req.send().await.unwrap()).await
}

async fn collect(resp: reqwest::Response) -> Got {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    let mut err = None;
    while let Some(c) = stream.next().await {
        match c {
            Ok(c) => body.extend_from_slice(&c),
            Err(e) => {
                err = Some(format!("{e:?}"));
                break;
            }
        }
    }
    Got {
        status,
        headers,
        body: err.map_or(Ok(body), Err),
    }
}

fn unzip_entry(path: &std::path::Path, name: &str) -> Vec<u8> {
    let out = std::process::Command::new("unzip")
        .arg("-p")
        .arg(path)
        .arg(name)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_deflated_utf8_hostile_and_empty_entries() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let manifest = json!({
        "name": "Fotos März",
        "entries": [
            {"source": "bytes/300000", "name": "trip/a.jpg"},
            {"source": "text/200000", "name": "notes.txt"},
            {"source": "chunked/70000", "name": "no-length.jpg"},
            {"source": "chunked/5000", "name": "README"},
            {"source": "bytes/0", "name": "empty.jpg"},
            {"source": "text/0", "name": "empty.txt"},
            {"source": "bytes/10", "name": "../../escape.jpg"},
            {"source": "bytes/11", "name": "C:\\Windows\\x.jpg"},
            {"source": "bytes/12", "name": "фото/日本 🎉.jpg"},
            {"source": "bytes/13", "name": "a<b>:c|d?.jpg"},
            {"source": "bytes/14", "name": "trip/A.JPG"},
            {"source": "bytes/15/a.jpg", "name": "trip/a.jpg"},
            {"source": "bytes/16/plain.jpg"}
        ]
    });
    let got = post(&sluice, &manifest, &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-type"], "application/zip");
    assert_eq!(
        got.headers["content-disposition"],
        "attachment; filename=\"Fotos M_rz.zip\"; filename*=UTF-8''Fotos%20M%C3%A4rz.zip"
    );
    assert!(
        got.headers.get("content-length").is_none(),
        "streamed: chunked"
    );
    let zip = got.body.unwrap();
    let file = temp_file("http-mixed", &zip);
    let listed = check_all(&file);
    let names: Vec<&str> = listed.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "trip/a.jpg",
            "notes.txt",
            "no-length.jpg",
            "README",
            "empty.jpg",
            "empty.txt",
            "escape.jpg",
            "Windows/x.jpg",
            "фото/日本 🎉.jpg",
            "a_b__c_d_.jpg",
            "trip/A (1).JPG",
            "trip/a (2).jpg",
            "plain.jpg",
        ]
    );
    let methods: Vec<u32> = listed.iter().map(|l| l.method).collect();
    assert_eq!(methods, [0, 8, 0, 8, 0, 8, 0, 0, 0, 0, 0, 0, 0]);
    assert!(
        listed.iter().all(|l| l.flags & (1 << 11) != 0),
        "UTF-8 flag"
    );
    // Last-Modified of /bytes is Tue, 14 Nov 2023 22:13:20 GMT.
    assert_eq!(listed[0].date_time, [2023, 11, 14, 22, 13, 20]);
    assert_eq!(unzip_entry(&file, "trip/a.jpg"), pattern_vec(300_000));
    assert_eq!(unzip_entry(&file, "notes.txt"), text_vec(200_000));
    assert_eq!(unzip_entry(&file, "README"), pattern_vec(5000));
    // Deflate did its job on the text.
    assert!(zip.len() < 300_000 + 70_000 + 5000 + 200_000 / 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_with_no_entries() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let got = post(&sluice, &json!({"entries": []}), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-length"], "22");
    let file = temp_file("http-empty", &got.body.unwrap());
    assert!(check_all(&file).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_size_sends_content_length_and_honours_range() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let sizes = [200_000usize, 0, 70_000, 1, 150_000];
    let entries: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({"source": format!("bytes/{n}"), "name": format!("p{i}.jpg"), "size": n,
                   "crc32": format!("{:08x}", crc32fast::hash(&pattern_vec(*n)))})
        })
        .collect();
    let manifest = json!({"name": "known.zip", "entries": entries});
    let full = post(&sluice, &manifest, &[]).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.headers["accept-ranges"], "bytes");
    let zip = full.body.unwrap();
    let len: usize = full.headers["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(len, zip.len(), "Content-Length equals the bytes sent");
    let etag = full.headers["etag"].to_str().unwrap().to_string();
    let file = temp_file("http-known", &zip);
    assert_eq!(check_all(&file).len(), sizes.len());

    // Slices: inside one entry, across entries and headers, the tail
    // (central directory), a suffix range.
    for (range, a, b) in [
        ("bytes=100-5000", 100, 5000),
        ("bytes=199000-275000", 199_000, 275_000),
        (&format!("bytes={}-", len - 300) as &str, len - 300, len - 1),
        ("bytes=-1000", len - 1000, len - 1),
        ("bytes=0-0", 0, 0),
    ] {
        let got = post(&sluice, &manifest, &[("range", range), ("if-range", &etag)]).await;
        assert_eq!(got.status, 206, "{range}");
        assert_eq!(
            got.headers["content-range"],
            format!("bytes {a}-{b}/{len}").as_str()
        );
        assert_eq!(got.body.unwrap(), &zip[a..=b], "{range}");
    }
    // A range that misses the first entries does not fetch them.
    let before = origin.requests("/bytes/200000").len();
    let tail = post(&sluice, &manifest, &[("range", "bytes=-1000")]).await;
    assert_eq!(tail.status, 206);
    assert_eq!(origin.requests("/bytes/200000").len(), before);
    // Resuming in the middle of an entry asks the origin for that part only.
    let _ = post(&sluice, &manifest, &[("range", "bytes=1000-")]).await;
    let first = origin.requests("/bytes/200000");
    let (_, range, _) = first.last().unwrap();
    assert!(range.as_deref().unwrap().starts_with("bytes="), "{range:?}");
    // A stale validator gets the whole archive; an impossible range, 416.
    let stale = post(
        &sluice,
        &manifest,
        &[("range", "bytes=0-9"), ("if-range", "\"old\"")],
    )
    .await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body.unwrap(), zip);
    let past = post(&sluice, &manifest, &[("range", &format!("bytes={len}-"))]).await;
    assert_eq!(past.status, 416);
    assert_eq!(
        past.headers["content-range"],
        format!("bytes */{len}").as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_entries_are_skipped_and_listed() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let manifest = json!({"entries": [
        {"source": "bytes/1000", "name": "ok.jpg"},
        {"source": "status/404", "name": "missing.jpg"},
        {"source": "status/503", "name": "busy.jpg"},
        {"source": "bytes/500", "name": "wrong-size.jpg", "size": 400},
        {"source": "bytes/2000", "name": "ok2.jpg"},
        {"source": "bytes/1", "name": "sluice-errors.txt"}
    ]});
    let got = post(&sluice, &manifest, &[]).await;
    assert_eq!(got.status, 200);
    let file = temp_file("http-skip", &got.body.unwrap());
    let names: Vec<String> = check_all(&file).into_iter().map(|l| l.name).collect();
    assert_eq!(
        names,
        [
            "ok.jpg",
            "ok2.jpg",
            "sluice-errors.txt",
            "sluice-errors (1).txt"
        ]
    );
    let report = String::from_utf8(unzip_entry(&file, "sluice-errors (1).txt")).unwrap();
    assert!(report.contains("could not add 3 of 6"), "{report}");
    assert!(
        report.contains("missing.jpg\t/status/404\torigin answered 404 Not Found"),
        "{report}"
    );
    assert!(
        report.contains("busy.jpg\t/status/503\torigin answered 503"),
        "{report}"
    );
    assert!(
        report.contains(
            "wrong-size.jpg\t/bytes/500\torigin has 500 bytes, the manifest declared 400"
        ),
        "{report}"
    );
}

/// The report's memory is bounded: it lists the first 1000 skipped
/// entries and counts the rest, and is written stored, a chunk at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_of_many_skips_lists_a_thousand_and_counts_the_rest() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let mut entries: Vec<_> = (0..1005)
        .map(|i| json!({"source": "status/404", "name": format!("gone/{i}.jpg")}))
        .collect();
    entries.push(json!({"source": "bytes/10", "name": "ok.bin"}));
    let got = post(&sluice, &json!({"entries": entries}), &[]).await;
    assert_eq!(got.status, 200);
    let file = temp_file("http-many-skips", &got.body.unwrap());
    let names: Vec<String> = check_all(&file).into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["ok.bin", "sluice-errors.txt"]);
    let report = String::from_utf8(unzip_entry(&file, "sluice-errors.txt")).unwrap();
    assert!(
        report.starts_with("sluice could not add 1005 of 1006 entries"),
        "{report:.200}"
    );
    assert_eq!(report.matches("\t/status/404\t").count(), 1000);
    assert!(report.contains("gone/999.jpg\t"));
    assert!(!report.contains("gone/1000.jpg"));
    assert!(
        report.ends_with("... and 5 more\n"),
        "{}",
        &report[report.len() - 100..]
    );
    let listed = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; i = zipfile.ZipFile(sys.argv[1]).getinfo('sluice-errors.txt'); print(i.compress_type)",
        ])
        .arg(&file.0)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).trim(),
        "0",
        "stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_abort_fails_the_transfer() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let manifest = json!({"on_error": "abort", "entries": [
        {"source": "bytes/100000", "name": "ok.jpg"},
        {"source": "status/404", "name": "missing.jpg"}
    ]});
    let got = post(&sluice, &manifest, &[]).await;
    assert_eq!(got.status, 200, "headers went out before the failure");
    assert!(got.body.is_err(), "the client must see a failed transfer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_mid_entry_resumes_with_range_and_keeps_the_crc() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let n = 1_000_000;
    let manifest = json!({"entries": [
        {"source": format!("flaky/{n}/300000"), "name": "resumed.jpg"},
        {"source": format!("flaky/{n}/400000/b.txt"), "name": "resumed.txt"}
    ]});
    let got = post(&sluice, &manifest, &[]).await;
    assert_eq!(got.status, 200);
    let file = temp_file("http-resume", &got.body.unwrap());
    check_all(&file);
    assert_eq!(unzip_entry(&file, "resumed.jpg"), pattern_vec(n));
    assert_eq!(unzip_entry(&file, "resumed.txt"), pattern_vec(n));
    let seen = origin.requests(&format!("/flaky/{n}/300000"));
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (_, range, if_range) = &seen[1];
    assert!(range.as_deref().unwrap().starts_with("bytes="), "{range:?}");
    assert_ne!(range.as_deref(), Some("bytes=0-"));
    assert_eq!(if_range.as_deref(), Some(format!("\"v{n}\"").as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_mid_entry_that_cannot_resume_aborts_the_client() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let manifest = json!({"entries": [
        {"source": "bytes/1000", "name": "ok.jpg"},
        {"source": "flaky-plain/1000000/300000", "name": "broken.jpg"}
    ]});
    let got = post(&sluice, &manifest, &[]).await;
    assert_eq!(got.status, 200);
    assert!(got.body.is_err(), "never a clean end with a corrupt entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_longer_than_its_declared_size_aborts() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    // Chunked: no Content-Length to catch it early, so it is caught mid-way.
    let manifest =
        json!({"entries": [{"source": "chunked/50000", "name": "x.jpg", "size": 40000}]});
    let got = post(&sluice, &manifest, &[]).await;
    assert!(got.body.is_err());
    let manifest =
        json!({"entries": [{"source": "chunked/50000", "name": "x.jpg", "size": 60000}]});
    let got = post(&sluice, &manifest, &[]).await;
    assert!(got.body.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_stops_every_origin_fetch() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &["--zip-prefetch", "4"]);
    let entries: Vec<_> = (0..8)
        .map(|i| json!({"source": "slow/10000000", "name": format!("s{i}.jpg")}))
        .collect();
    let resp = client()
        .post(sluice.url("/zip"))
        .body(json!({"entries": entries}).to_string())
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let _ = stream.next().await.unwrap().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while origin.live() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(origin.live(), 4, "prefetch keeps 4 entries in flight");
    drop(stream);
    let gone = Instant::now();
    while origin.live() > 0 && gone.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(origin.live(), 0, "all origin bodies dropped");
    assert!(
        gone.elapsed() < Duration::from_secs(1),
        "{:?}",
        gone.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_refused_before_the_first_byte() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(
        &origin,
        &[
            "--zip-max-entries",
            "3",
            "--zip-max-manifest-bytes",
            "2KiB",
            "--zip-max-archive-bytes",
            "1MiB",
        ],
    );
    let many: Vec<_> = (0..4).map(|_| json!({"source": "bytes/1"})).collect();
    let got = post(&sluice, &json!({"entries": many}), &[]).await;
    assert_eq!(got.status, 422);
    assert!(String::from_utf8_lossy(&got.body.unwrap()).contains("--zip-max-entries"));
    let long = "x".repeat(3000);
    let got = post(&sluice, &json!({"entries": [{"source": long}]}), &[]).await;
    assert_eq!(got.status, 413);
    let got = post(
        &sluice,
        &json!({"entries": [{"source": "bytes/1", "size": 2_000_000}]}),
        &[],
    )
    .await;
    assert_eq!(got.status, 422);
    assert!(String::from_utf8_lossy(&got.body.unwrap()).contains("--zip-max-archive-bytes"));
    let got = post(
        &sluice,
        &json!({"entries": [{"source": "http://169.254.169.254/x"}]}),
        &[],
    )
    .await;
    assert_eq!(got.status, 422);
    let resp = client()
        .post(sluice.url("/zip"))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Streaming archives that outgrow the limit are cut off.
    let got = post(
        &sluice,
        &json!({"entries": [{"source": "bytes/2000000", "name": "big.jpg"}]}),
        &[],
    )
    .await;
    assert_eq!(got.status, 200);
    assert!(got.body.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mod_zip_manifests_from_the_origin_become_archives() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let crc = |n: usize| format!("{:08x}", crc32fast::hash(&pattern_vec(n)));
    origin.add_manifest(
        "album",
        &format!(
            "{} 100000 /bytes/100000 photos/one.jpg\r\n{} 5000 /bytes/5000?v=1 photos/two%.jpg\n{} 0 /bytes/0 empty.jpg\n",
            crc(100_000),
            crc(5000),
            crc(0)
        ),
    );
    origin.add_manifest("nocrc", "- 7000 /bytes/7000 a.jpg\n- 10 /bytes/10 b.jpg\n");
    origin.add_manifest(
        "nocrc-gone",
        "- 7000 /bytes/7000 a.jpg\n- 10 /status/404 gone.jpg\n",
    );
    let got = collect(
        client()
            .get(sluice.url("/manifest/album"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-type"], "application/zip");
    assert_eq!(
        got.headers["content-disposition"],
        "attachment; filename=\"album.zip\""
    );
    assert!(got.headers.get("x-archive-files").is_none());
    let zip = got.body.unwrap();
    assert_eq!(
        got.headers["content-length"],
        zip.len().to_string().as_str()
    );
    let file = temp_file("http-modzip", &zip);
    let listed = check_all(&file);
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[1].name, "photos/two%.jpg");
    // Times come from the manifest response's Last-Modified.
    assert_eq!(listed[0].date_time, [2023, 11, 14, 22, 13, 20]);
    let part = collect(
        client()
            .get(sluice.url("/manifest/album"))
            .header("range", "bytes=50000-104000")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body.unwrap(), &zip[50_000..=104_000]);

    // Without CRCs but with sizes: the length is still known (as mod_zip
    // sends it), the CRCs travel in data descriptors, and no range is
    // offered because a range could not be served without them.
    let got = collect(
        client()
            .get(sluice.url("/manifest/nocrc"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 200);
    let body = got.body.unwrap();
    assert_eq!(
        got.headers["content-length"],
        body.len().to_string().as_str()
    );
    assert!(got.headers.get("accept-ranges").is_none());
    let file = temp_file("http-modzip2", &body);
    let names: Vec<String> = python_list(&file).into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["a.jpg", "b.jpg"]);
    check_all(&file);
    assert_eq!(unzip_entry(&file, "b.jpg"), pattern_vec(10));

    // A length was promised, so an entry that fails after the first byte
    // cannot be listed in place: the transfer is visibly cut short.
    let got = collect(
        client()
            .get(sluice.url("/manifest/nocrc-gone"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 200);
    assert!(got.headers.get("content-length").is_some());
    assert!(got.body.is_err(), "a cut archive must not end cleanly");
}

/// Manifests written the way mod_zip's own test suite writes them
/// (t/nginx/html/zip-empty-dirs.txt and friends): runs of spaces, `0` as a
/// directory's CRC, `@directory` entries, upper-case CRCs, a location
/// without a leading `/`, CRLF and CR line ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mod_zip_manifests_as_mod_zip_writes_them() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let crc = |n: usize| format!("{:08X}", crc32fast::hash(&pattern_vec(n)));
    origin.add_manifest(
        "suite",
        &format!(
            "{}   24 /bytes/24 file1.txt\r\n0        0  @directory empty_dir1/\r\n\
             {} 25  bytes/25   file 2.txt\r0 0 @directory a/b/\n\n",
            crc(24),
            crc(25)
        ),
    );
    let got = collect(
        client()
            .get(sluice.url("/manifest/suite"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 200);
    let zip = got.body.unwrap();
    // Every size and CRC is known: a fixed length, as mod_zip sends.
    assert_eq!(
        got.headers["content-length"],
        zip.len().to_string().as_str()
    );
    let file = temp_file("http-modzip-suite", &zip);
    let listed = check_all(&file);
    let names: Vec<&str> = listed.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["file1.txt", "empty_dir1/", "file 2.txt", "a/b/"]);
    assert_eq!(listed[2].size, 25);
    // The directories are directories to a reader (mode and DOS bit), not
    // empty files.
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, zipfile\n\
             for i in zipfile.ZipFile(sys.argv[1]).infolist():\n\
             \x20   print(i.filename, i.is_dir(), oct(i.external_attr >> 16), i.external_attr & 0x10)",
        )
        .arg(&*file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("empty_dir1/ True 0o40755 16"), "{text}");
    assert!(text.contains("file1.txt False 0o100644 0"), "{text}");
    // A directory in the middle still lets a range be served.
    let part = collect(
        client()
            .get(sluice.url("/manifest/suite"))
            .header("range", "bytes=10-200")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body.unwrap(), &zip[10..=200]);
}

/// mod_zip's "Pass headers in sub-requests" cases (t/ziptest.pl): entries
/// that the origin authorises by the client's Cookie or X-Auth-Token are
/// fetched only when `X-Archive-Pass-Headers` names those headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_headers_go_to_the_entry_requests() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let crc = |n: usize| format!("{:08x}", crc32fast::hash(&pattern_vec(n)));
    origin.add_manifest(
        "mixed",
        &format!(
            "{} 24 /cookie/24 file1.txt\n{} 25 /token/25 file2.txt\n",
            crc(24),
            crc(25)
        ),
    );
    let get = |query: &'static str| {
        client()
            .get(sluice.url(&format!("/manifest/mixed{query}")))
            .header("cookie", "session=verified")
            .header("x-auth-token", "verified")
            .send()
    };
    // Without the header, the entries are refused by the origin: a
    // known-size archive cannot skip them, so the transfer fails.
    assert_failed(get("").await).await;
    // Only one of the two: still a failure.
    assert_failed(get("?pass_headers=Cookie").await).await;
    let got = collect(get("?pass_headers=Cookie:X-Auth-Token").await.unwrap()).await;
    assert_eq!(got.status, 200);
    assert!(got.headers.get("x-archive-pass-headers").is_none());
    let listed = check_all(&temp_file("pass-headers", &got.body.unwrap()));
    assert_eq!(listed.len(), 2);
    // The entry requests carried exactly the named headers.
    let seen = origin.seen.lock().unwrap();
    let (_, h) = seen
        .requests
        .iter()
        .rev()
        .find(|(p, _)| p == "/token/25")
        .unwrap();
    assert_eq!(h["x-auth-token"], "verified");
    assert_eq!(h["cookie"], "session=verified");
}

/// A manifest stored as a static file (nginx, S3) answers a client's Range
/// itself: 206 with a slice of the manifest, or 416 for an offset past its
/// few hundred bytes. The Range is for the archive, so sluice must fetch
/// the whole manifest and apply the Range to the zip; and If-Range may
/// carry the manifest's own validators (ETag, Last-Modified), as mod_zip
/// accepts them, as well as the archive's ETag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_an_archive_whose_manifest_is_a_static_file() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let crc = |n: usize| format!("{:08x}", crc32fast::hash(&pattern_vec(n)));
    origin.add_manifest(
        "static",
        &format!(
            "{} 300000 /bytes/300000 a.bin\n{} 200000 /bytes/200000 b.bin\n",
            crc(300_000),
            crc(200_000)
        ),
    );
    let url = sluice.url("/static-manifest/static");
    let whole = collect(client().get(&url).send().await.unwrap()).await;
    assert_eq!(whole.status, 200);
    let zip = whole.body.unwrap();
    let archive_etag = whole.headers["etag"].to_str().unwrap().to_string();
    check_all(&temp_file("static-manifest", &zip));
    // Past the manifest's end (416 from the origin) and inside it (206).
    for from in [400_000usize, 10] {
        let part = collect(
            client()
                .get(&url)
                .header("range", format!("bytes={from}-"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(part.status, 206, "from {from}");
        assert_eq!(part.body.unwrap(), &zip[from..], "from {from}");
    }
    // If-Range with the archive's ETag, the manifest's ETag or its
    // Last-Modified resumes; a stale validator gets the whole archive.
    for (validator, resumed) in [
        (archive_etag.as_str(), true),
        ("\"static-72\"", true),
        ("Tue, 14 Nov 2023 22:13:20 GMT", true),
        ("\"something-else\"", false),
    ] {
        let part = collect(
            client()
                .get(&url)
                .header("range", "bytes=250000-")
                .header("if-range", validator)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let (status, body) = (part.status, part.body.unwrap());
        if resumed {
            assert_eq!(status, 206, "{validator}");
            assert_eq!(body, &zip[250_000..], "{validator}");
        } else {
            assert_eq!(status, 200, "{validator}");
            assert_eq!(body, zip, "{validator}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_65535_entries() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &["--zip-prefetch", "16"]);
    let entries: Vec<_> = (0..66_000)
        .map(|i| json!({"source": "bytes/3", "name": format!("d{}/f{i}.jpg", i % 50)}))
        .collect();
    let got = post(&sluice, &json!({"entries": entries}), &[]).await;
    assert_eq!(got.status, 200);
    let file = temp_file("http-many", &got.body.unwrap());
    let listed = check_all(&file);
    assert_eq!(listed.len(), 66_000);
}

/// The one heavy test: a 4 GiB + 64 MiB archive (ZIP64 entry sizes, offsets
/// and end records) streamed from the server to a file, never held, then
/// judged by all four readers, and sluice's peak RSS checked on the way.
/// Zero bodies keep the origin and the CRCs cheap; ~10 s of readers on an idle
/// 2-core box.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_past_4_gib_streams_in_bounded_memory() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let big = (4u64 << 30) + (32 << 20);
    let manifest = json!({"entries": [
        {"source": "bytes/1000", "name": "before.jpg"},
        {"source": format!("zeros/{big}"), "name": "big.mp4"},
        {"source": "zeros/33554432", "name": "after.mp4"},
        {"source": "text/10000", "name": "after.txt"}
    ]});
    let resp = client()
        .post(sluice.url("/zip"))
        .body(manifest.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let file = TempPath::new("http-4gib");
    let mut out =
        std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&*file).unwrap());
    let mut stream = resp.bytes_stream();
    let mut total = 0u64;
    while let Some(c) = stream.next().await {
        let c = c.expect("archive streams to the end");
        total += c.len() as u64;
        out.write_all(&c).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    assert!(total > 4u64 << 30);
    let rss = sluice.peak_rss();
    assert!(rss < 48 << 20, "peak RSS {} MiB", rss >> 20);
    let listed = tokio::task::spawn_blocking(move || {
        let l = check_all(&file);
        drop(file);
        l
    })
    .await
    .unwrap();
    let sizes: Vec<u64> = listed.iter().map(|l| l.size).collect();
    assert_eq!(sizes, [1000, big, 32 << 20, 10_000]);
}

// ------------------------------------------------- processed entries

/// What libvips sees in an image: (loader, width, height).
fn vips_header(data: &[u8], tag: &str) -> (String, u32, u32) {
    let file = temp_file(tag, data);
    let out = std::process::Command::new("vipsheader")
        .arg(&file.0)
        .output()
        .expect("vipsheader (libvips-tools) is installed");
    assert!(out.status.success(), "vipsheader failed on {tag}");
    // "<file>: 1600x900 uchar, 3 bands, srgb, jpegload"
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let after = text.rsplit_once(": ").map(|(_, r)| r).unwrap_or(&text);
    let dims = after.split_whitespace().next().unwrap();
    let (w, h) = dims.split_once('x').unwrap();
    let loader = after.trim().rsplit(", ").next().unwrap().to_string();
    (loader, w.parse().unwrap(), h.parse().unwrap())
}

/// Every entry of `zip`, by name (Python zipfile's view).
fn entries_of(zip: &[u8], tag: &str) -> Vec<(String, u32, Vec<u8>)> {
    let file = temp_file(tag, zip);
    check_all(&file)
        .into_iter()
        .map(|l| {
            let data = unzip_entry(&file.0, &l.name.replace('[', "\\["));
            (l.name, l.method, data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_and_variants_make_processed_entries_from_one_fetch() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let manifest = json!({
        "entries": [
            {"source": "file/samples/dandelions.jpg", "variants": [
                {"name": "d/a_200.jpg", "options": "rs:fit:200:200"},
                {"name": "d/a_1200.jpg", "options": "rs:fit:1200:1200/q:85"},
                {"name": "d/a_300.webp", "options": "w:300"},
                {"name": "d/a_sq.png", "options": "rs:fill:100:100"}
            ]},
            {"source": "file/samples/sunset.jpg", "options": "rs:fit:400:400"},
            {"source": "file/samples/chelsea.png", "options": "w:100/f:jpg"},
            {"source": "file/samples/rocket.jpg", "name": "rocket-original.jpg"}
        ]
    });
    let got = post(&sluice, &manifest, &[]).await;
    assert_eq!(got.status, 200);
    assert!(
        got.headers.get("accept-ranges").is_none(),
        "processed: streamed"
    );
    assert!(got.headers.get("content-length").is_none());
    let zip = got.body.unwrap();
    // Processed entries carry their source's Last-Modified (Tue, 14 Nov
    // 2023 22:13:20 GMT at this origin), like pass-through entries.
    let listed = check_all(&temp_file("variants-times", &zip));
    assert!(
        listed
            .iter()
            .all(|l| l.date_time == [2023, 11, 14, 22, 13, 20]),
        "{:?}",
        listed.iter().map(|l| &l.date_time).collect::<Vec<_>>()
    );
    let entries = entries_of(&zip, "variants");
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "d/a_200.jpg",
            "d/a_1200.jpg",
            "d/a_300.webp",
            "d/a_sq.png",
            "sunset.jpg",
            "chelsea.jpg",
            "rocket-original.jpg"
        ]
    );
    // dandelions is 1600x900, sunset 2048x1365, chelsea 451x300.
    let expect = [
        ("jpegload", 200, 113),
        ("jpegload", 1200, 675),
        ("webpload", 300, 169),
        ("pngload", 100, 100),
        ("jpegload", 400, 267),
        ("jpegload", 100, 67),
    ];
    for ((name, method, data), (loader, w, h)) in entries.iter().zip(expect) {
        assert_eq!(*method, 0, "{name}: processed entries are stored");
        let (l, gw, gh) = vips_header(data, name.rsplit('/').next().unwrap());
        assert_eq!(l, loader, "{name}");
        assert!(
            gw.abs_diff(w) <= 1 && gh.abs_diff(h) <= 1,
            "{name}: {gw}x{gh}, wanted {w}x{h}"
        );
    }
    let original =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/rocket.jpg")).unwrap();
    assert_eq!(
        entries[6].2, original,
        "unprocessed entries stay byte for byte"
    );
    // One fetch per source, however many variants.
    assert_eq!(origin.requests("/file/samples/dandelions.jpg").len(), 1);
    assert_eq!(origin.requests("/file/samples/sunset.jpg").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_source_fails_each_of_its_variants() {
    common::odd_dir();
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let variants = json!([
        {"name": "bad_small.jpg", "options": "w:50"},
        {"name": "bad_large.jpg", "options": "w:200"}
    ]);
    let manifest = json!({
        "entries": [
            {"source": "file/tests/data/odd/not-an-image.jpg", "variants": variants},
            {"source": "file/tests/data/odd/corrupt-middle.jpg", "variants": [
                {"name": "mid_a.jpg", "options": "w:60"}, {"name": "mid_b.png", "options": "w:70"}]},
            {"source": "file/tests/data/odd/empty.jpg", "options": "w:10"},
            {"source": "file/samples/missing.jpg", "options": "w:10"},
            {"source": "file/samples/grace_hopper.jpg", "options": "w:64"}
        ]
    });
    let got = post(&sluice, &manifest, &[]).await;
    assert_eq!(got.status, 200);
    let entries = entries_of(&got.body.unwrap(), "corrupt-variants");
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert!(names.contains(&"grace_hopper.jpg"), "{names:?}");
    assert_eq!(names.last(), Some(&"sluice-errors.txt"), "{names:?}");
    let report = String::from_utf8(entries.last().unwrap().2.clone()).unwrap();
    for failed in ["bad_small.jpg", "bad_large.jpg", "empty.jpg", "missing.jpg"] {
        assert!(report.contains(failed), "{failed} listed: {report}");
        assert!(!names.contains(&failed), "{failed} not in the archive");
    }
    // A source corrupt in the middle either fails (listed) or decodes
    // leniently (then it is a real image of the asked size); never both,
    // never a broken entry.
    for mid in ["mid_a.jpg", "mid_b.png"] {
        match entries.iter().find(|e| e.0 == mid) {
            Some((name, _, data)) => {
                let (_, w, _) = vips_header(data, name);
                assert!(w == 60 || w == 70, "{name}: {w}");
                assert!(!report.contains(mid));
            }
            None => assert!(report.contains(mid), "{mid}: {report}"),
        }
    }
    let (_, w, _) = vips_header(
        &entries
            .iter()
            .find(|e| e.0 == "grace_hopper.jpg")
            .unwrap()
            .2,
        "gh",
    );
    assert_eq!(w, 64);

    // on_error abort: the download fails visibly.
    let manifest = json!({
        "on_error": "abort",
        "entries": [
            {"source": "file/samples/grace_hopper.jpg", "options": "w:64"},
            {"source": "file/tests/data/odd/not-an-image.jpg", "variants": variants}
        ]
    });
    assert_aborted(&sluice, &manifest).await;
}

/// A download that fails after its first byte is cut short: a 200 that
/// ends without its last chunk (its head always gets out, see
/// `an_abort_comes_after_the_head_and_the_bytes_before_it`).
async fn assert_aborted(sluice: &Sluice, manifest: &serde_json::Value) {
    let sent = client()
        .post(sluice.url("/zip"))
        .header("content-type", "application/json")
        .body(manifest.to_string())
        .send()
        .await;
    assert_cut(sent).await;
}

/// A response that failed: a 200 cut short (see [`assert_aborted`]), or
/// an error status.
async fn assert_failed(sent: reqwest::Result<reqwest::Response>) {
    match sent {
        Ok(resp) if resp.status() != 200 => {}
        other => assert_cut(other).await,
    }
}

async fn assert_cut(sent: reqwest::Result<reqwest::Response>) {
    let got = collect(sent.expect("the head got out")).await;
    assert_eq!(got.status, 200);
    assert!(got.body.is_err(), "aborted transfer, not a clean end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_processed_entries_are_refused_before_the_first_byte() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let cases = [
        (
            json!({"entries": [{"source": "a.jpg"}, {"source": "b.jpg", "options": "rs:fit:10/nope:3"}]}),
            vec!["entry 1", "nope"],
        ),
        (
            json!({"entries": [{"source": "b.jpg", "variants": [{"name": "x.jpg", "options": "w:1"}, {"name": "y.jpg", "options": "g:upside"}]}]}),
            vec!["entry 0 variant 1", "upside"],
        ),
        (
            json!({"entries": [{"source": "b.jpg", "options": "w:10", "size": 100, "crc32": "0000abcd"}]}),
            vec!["entry 0", "size/crc32"],
        ),
        (
            json!({"entries": [{"source": "b.jpg", "options": "w:10", "variants": [{"name": "x.jpg", "options": "w:1"}]}]}),
            vec!["entry 0", "not both"],
        ),
    ];
    for (manifest, words) in cases {
        let got = post(&sluice, &manifest, &[]).await;
        assert_eq!(got.status, 422, "{manifest}");
        let body = String::from_utf8(got.body.unwrap()).unwrap();
        for w in words {
            assert!(body.contains(w), "{w} in {body}");
        }
    }
    assert!(origin.requests("/").is_empty(), "nothing was fetched");
}

#[tokio::test]
async fn a_processed_entry_is_bounded_by_the_processing_timeout() {
    // A job that cannot finish in time (here: a source trickling in at
    // 320 KiB/s; the same bound ends a wait for memory that cannot come)
    // fails its entry under on_error instead of stalling the download.
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &["--processing-timeout", "500ms"]);
    let manifest = json!({
        "entries": [
            {"source": "file/samples/grace_hopper.jpg", "options": "w:64"},
            {"source": "slow-file/samples/sunset.jpg", "options": "w:64", "name": "slow.jpg"}
        ]
    });
    let got = post(&sluice, &manifest, &[]).await;
    assert_eq!(got.status, 200);
    let entries = entries_of(&got.body.unwrap(), "processing-timeout");
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["grace_hopper.jpg", "sluice-errors.txt"]);
    let report = String::from_utf8(entries[1].2.clone()).unwrap();
    assert!(
        report.contains("slow.jpg") && report.contains("took longer"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_variants_wait_for_memory_instead_of_failing() {
    let origin = ZipOrigin::start().await;
    // A budget that holds about one of these jobs at a time, one worker
    // and no pool queue: every job must wait for memory and for the pool.
    let sluice = sluice_for(
        &origin,
        &[
            "--memory-budget",
            "48MiB",
            "--workers",
            "1",
            "--queue-size",
            "0",
        ],
    );
    let mut entries = Vec::new();
    for i in 0..6 {
        let src = if i % 2 == 0 {
            "sunset.jpg"
        } else {
            "picos-de-europa.jpg"
        };
        entries.push(
            json!({"source": format!("file/samples/{src}"), "variants": [
                {"name": format!("{i}/large.png"), "options": "rs:fit:1200:1200"},
                {"name": format!("{i}/medium.jpg"), "options": "rs:fit:800:800"},
                {"name": format!("{i}/small.webp"), "options": "rs:fit:300:300"}
            ]}),
        );
    }
    let manifest = json!({"entries": entries});
    let (a, b) = tokio::join!(post(&sluice, &manifest, &[]), post(&sluice, &manifest, &[]));
    for (tag, got) in [("mem-a", a), ("mem-b", b)] {
        assert_eq!(got.status, 200);
        let listed = entries_of(&got.body.unwrap(), tag);
        assert_eq!(listed.len(), 18, "every variant, no error report");
        for (name, _, data) in &listed {
            let (_, w, h) = vips_header(data, tag);
            let want = if name.ends_with("large.png") {
                1200
            } else if name.ends_with("medium.jpg") {
                800
            } else {
                300
            };
            assert_eq!(w.max(h), want, "{name}");
        }
    }
    let peak = sluice.peak_rss();
    assert!(
        peak < 48 * 1024 * 1024 + 48 * 1024 * 1024,
        "VmHWM {} MiB",
        peak >> 20
    );
}

/// `"sizes": "probe"`: entries without sizes get a HEAD each before the
/// first byte, so the archive has a Content-Length (a browser's progress
/// bar); without it, or when a HEAD gives no length, it is chunked as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_probe_gives_an_archive_without_sizes_a_content_length() {
    let origin = ZipOrigin::start().await;
    let photo = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/sunset.jpg")).unwrap();
    origin.add_file(
        "/photo",
        zip_origin::StaticFile {
            body: bytes::Bytes::from(photo.clone()),
            headers: vec![("content-type", "image/jpeg")],
            needs_header: None,
            pass_headers_from_query: false,
        },
    );
    let sluice = sluice_for(&origin, &[]);
    let entries = json!([
        {"source": "file/samples/sunset.jpg", "name": "trip/sunset.jpg"},
        {"source": "bytes/300000", "name": "trip/pattern.jpg"},
        // No extension: the HEAD's Content-Type (image/jpeg) makes it stored.
        {"source": "photo", "name": "trip/photo"}
    ]);

    let got = post(&sluice, &json!({"sizes": "probe", "entries": entries}), &[]).await;
    assert_eq!(got.status, 200);
    let length: usize = got.headers["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        !got.headers.contains_key("accept-ranges"),
        "no CRCs: no ranges"
    );
    let body = got.body.unwrap();
    assert_eq!(body.len(), length);
    let mut heads = origin.heads();
    heads.sort();
    assert_eq!(
        heads,
        ["/bytes/300000", "/file/samples/sunset.jpg", "/photo"]
    );
    let file = temp_file("http-probe", &body);
    let listed = check_all(&file);
    assert!(
        listed.iter().all(|e| e.method == 0),
        "all stored: {listed:?}"
    );
    assert_eq!(unzip_entry(&file, "trip/photo"), photo);
    assert_eq!(unzip_entry(&file, "trip/pattern.jpg"), pattern_vec(300_000));

    // The same manifest without the probe: chunked, no HEAD.
    let got = post(&sluice, &json!({"entries": entries}), &[]).await;
    assert_eq!(got.status, 200);
    assert!(!got.headers.contains_key("content-length"));
    check_all(&temp_file("http-probe", &got.body.unwrap()));
    assert_eq!(origin.heads().len(), 3);

    // A HEAD without a length (a chunked origin): chunked, still sound.
    let chunked = json!({"sizes": "probe", "entries": [
        {"source": "bytes/1000", "name": "a.jpg"},
        {"source": "chunked/5000", "name": "b.jpg"}
    ]});
    let got = post(&sluice, &chunked, &[]).await;
    assert_eq!(got.status, 200);
    assert!(!got.headers.contains_key("content-length"));
    let file = temp_file("http-probe", &got.body.unwrap());
    check_all(&file);
    assert_eq!(unzip_entry(&file, "b.jpg"), pattern_vec(5000));

    // A deflated entry cannot have a known size: no HEAD is made.
    let before = origin.heads().len();
    let deflated = json!({"sizes": "probe", "entries": [
        {"source": "bytes/1000", "name": "a.jpg"},
        {"source": "text/1000", "name": "notes.txt"}
    ]});
    let got = post(&sluice, &deflated, &[]).await;
    assert_eq!(got.status, 200);
    assert!(!got.headers.contains_key("content-length"));
    check_all(&temp_file("http-probe", &got.body.unwrap()));
    assert_eq!(origin.heads().len(), before);

    // More entries without a size than the probe takes: none is asked.
    let many: Vec<_> = (0..4097)
        .map(|i| json!({"source": "bytes/10", "name": format!("{i}.jpg")}))
        .collect();
    let got = post(&sluice, &json!({"sizes": "probe", "entries": many}), &[]).await;
    assert_eq!(got.status, 200);
    assert!(!got.headers.contains_key("content-length"));
    assert_eq!(
        check_all(&temp_file("http-probe", &got.body.unwrap())).len(),
        4097
    );
    assert_eq!(origin.heads().len(), before);

    // Anything else in "sizes" is refused.
    let got = post(&sluice, &json!({"sizes": "guess", "entries": entries}), &[]).await;
    assert_eq!(got.status, 422);
}

/// An archive that fails a few bytes in still shows its head: the client
/// gets a 200 cut short, never a connection closed before any response.
/// hyper drops its buffered head when a body fails at once, which closed
/// 6 of 40 such downloads before the body yields once on its error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_comes_after_the_head_and_the_bytes_before_it() {
    let origin = ZipOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let manifest =
        json!({"entries": [{"source": "chunked/50000", "name": "x.jpg", "size": 40000}]});
    for _ in 0..40 {
        let got = post(&sluice, &manifest, &[]).await;
        assert_eq!(got.status, 200);
        assert!(got.body.is_err(), "aborted, not a clean end");
    }
}
