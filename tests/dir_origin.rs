//! The directory origin: HTTP semantics on local files, and no way out of
//! the root (`..`, percent-encoded forms, symlinks).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::{client, Sluice};

/// A fresh origin directory with a few files and hostile symlinks.
fn origin_dir(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("sluice-dir-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("sub dir")).unwrap();
    std::fs::write(root.join("a.jpg"), vec![0xFFu8; 10_000]).unwrap();
    std::fs::write(root.join("sub dir/b.json"), b"{\"x\": 1}").unwrap();
    std::fs::write(root.join("plain.txt"), b"hello").unwrap();
    // Outside the root: must never be served.
    let outside = root.with_extension("secret");
    std::fs::write(&outside, b"top secret").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
    // Inside the root: fine to follow.
    std::os::unix::fs::symlink(root.join("plain.txt"), root.join("alias.txt")).unwrap();
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_served_with_http_semantics() {
    let root = origin_dir("semantics");
    let sluice = Sluice::start(&["--origin", root.to_str().unwrap()]);
    let c = client();

    let r = c.get(sluice.url("/a.jpg")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(r.headers()["content-length"], "10000");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let last_modified = r.headers()["last-modified"].to_str().unwrap().to_string();
    assert_eq!(r.bytes().await.unwrap().len(), 10_000);

    let r = c.get(sluice.url("/sub%20dir/b.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");

    let r = c
        .get(sluice.url("/a.jpg"))
        .header("range", "bytes=9990-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 9990-9999/10000");
    assert_eq!(r.bytes().await.unwrap().len(), 10);

    let r = c
        .get(sluice.url("/a.jpg"))
        .header("range", "bytes=20000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */10000");

    let r = c
        .get(sluice.url("/a.jpg"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    let r = c
        .get(sluice.url("/a.jpg"))
        .header("if-modified-since", &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    let r = c
        .get(sluice.url("/a.jpg"))
        .header("range", "bytes=0-0")
        .header("if-range", "\"not-it\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = c.head(sluice.url("/a.jpg")).send().await.unwrap();
    assert_eq!(r.headers()["content-length"], "10000");
    assert!(r.bytes().await.unwrap().is_empty());

    let r = c.get(sluice.url("/missing.jpg")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = c.get(sluice.url("/sub%20dir")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = c.get(sluice.url("/alias.txt")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "hello");

    let r = c.post(sluice.url("/a.jpg")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
}

/// Send a raw request line, so no client normalises the path for us.
async fn raw_get(addr: std::net::SocketAddr, target: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_reaches_outside_the_root() {
    let root = origin_dir("escape");
    let sluice = Sluice::start(&["--origin", root.to_str().unwrap()]);
    for target in [
        "/../sluice-dir-escape.secret",
        "/%2e%2e/sluice-dir-escape.secret",
        "/%2E%2E%2Fsluice-dir-escape.secret",
        "/sub%20dir/..%2f..%2fetc/passwd",
        "/..%5c..%5cetc/passwd",
        "/escape.txt",
        "/etc/passwd",
        "/etc/hostname",
        "//etc/passwd",
        "/a.jpg%00.txt",
    ] {
        let (status, text) = raw_get(sluice.addr, target).await;
        assert!(
            matches!(status, 400 | 403 | 404),
            "{target} answered {status}"
        );
        assert!(!text.contains("top secret"), "{target} leaked a file");
        assert!(!text.contains("root:"), "{target} leaked /etc/passwd");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_origin_the_bundled_samples_are_served() {
    let sluice = Sluice::start(&[]);
    let r = client()
        .get(sluice.url("/sunset.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let body = r.bytes().await.unwrap();
    let on_disk =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/sunset.jpg")).unwrap();
    assert_eq!(body.to_vec(), on_disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_spliced_byte_for_byte_cold_and_cached() {
    let root = origin_dir("splice");
    const N: usize = (24 << 20) + 4321;
    let data = common::pattern_bytes(0, N);
    let big = root.join("big.bin");
    std::fs::write(&big, &data).unwrap();
    let sluice = Sluice::start(&["--origin", root.to_str().unwrap()]);
    let keepalive = reqwest::Client::builder().no_proxy().build().unwrap();
    for round in 0..2 {
        if round == 0 {
            // Cold: out of the page cache, so chunks take the blocking pool.
            let evicted = std::process::Command::new("python3")
                .args([
                    "-c",
                    "import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); \
                     os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)",
                ])
                .arg(&big)
                .status()
                .unwrap();
            assert!(evicted.success());
        }
        let before = common::spliced_bytes(&sluice).await;
        let r = keepalive.get(sluice.url("/big.bin")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.version(), reqwest::Version::HTTP_11);
        assert!(r.bytes().await.unwrap() == data[..], "whole file");
        assert_eq!(common::spliced_bytes(&sluice).await - before, N as u64);
    }
    let r = keepalive
        .get(sluice.url("/big.bin"))
        .header("range", "bytes=5000000-5999999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert!(
        r.bytes().await.unwrap() == data[5_000_000..6_000_000],
        "range"
    );
    // HTTP/2 is streamed, and still exact.
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let before = common::spliced_bytes(&sluice).await;
    let r = h2.get(sluice.url("/big.bin")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert!(
        r.bytes().await.unwrap() == data[..],
        "whole file over HTTP/2"
    );
    assert_eq!(common::spliced_bytes(&sluice).await, before);
    let _ = std::fs::remove_dir_all(&root);
}
