//! Recompression (issue 4) end to end: the real binary, real photos, real
//! HTTP clients. Output is judged by decoding it and comparing with libvips'
//! `vipsthumbnail` (PSNR); odd inputs come from tests/data/make-odd-images.sh.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{client, odd_dir, Sluice, TestOrigin};
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Decode a PNG, WebP or JPEG into 8-bit RGB (decoders independent of the
/// encoders: png, image-webp (the server encodes with libwebp) and
/// jpeg-decoder; alpha is composited on white, as vipsthumbnail's flatten).
fn rgb(data: &[u8]) -> (Vec<u8>, u32, u32) {
    if data.starts_with(b"RIFF") {
        let mut d = image_webp::WebPDecoder::new(std::io::Cursor::new(data)).expect("webp header");
        let (w, h) = d.dimensions();
        let mut buf = vec![0; d.output_buffer_size().expect("size")];
        d.read_image(&mut buf).expect("webp data");
        let ch = buf.len() / (w as usize * h as usize);
        let px = buf
            .chunks_exact(ch)
            .flat_map(|p| {
                let a = if ch == 4 { u32::from(p[3]) } else { 255 };
                [p[0], p[1], p[2]].map(|v| ((u32::from(v) * a + 255 * (255 - a)) / 255) as u8)
            })
            .collect();
        (px, w, h)
    } else if data.starts_with(b"\x89PNG") {
        let mut d = png::Decoder::new(std::io::Cursor::new(data));
        d.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut r = d.read_info().expect("png header");
        let mut buf = vec![0; r.output_buffer_size().expect("size")];
        let info = r.next_frame(&mut buf).expect("png data");
        let ch = info.color_type.samples();
        let px = buf[..info.buffer_size()]
            .chunks_exact(ch)
            .flat_map(|p| {
                let (c, a) = match ch {
                    1 => ([p[0]; 3], 255),
                    2 => ([p[0]; 3], p[1]),
                    3 => ([p[0], p[1], p[2]], 255),
                    _ => ([p[0], p[1], p[2]], p[3]),
                };
                c.map(|v| ((u32::from(v) * u32::from(a) + 255 * (255 - u32::from(a))) / 255) as u8)
            })
            .collect();
        (px, info.width, info.height)
    } else {
        let mut d = jpeg_decoder::Decoder::new(std::io::Cursor::new(data));
        let px = d.decode().expect("jpeg data");
        let info = d.info().expect("jpeg info");
        let px = match info.pixel_format {
            jpeg_decoder::PixelFormat::L8 => px.iter().flat_map(|&v| [v; 3]).collect(),
            jpeg_decoder::PixelFormat::RGB24 => px,
            other => panic!("unexpected {other:?}"),
        };
        (px, u32::from(info.width), u32::from(info.height))
    }
}

/// The chunk names of a RIFF (WebP) file, in order.
fn riff_chunks(data: &[u8]) -> Vec<[u8; 4]> {
    let mut out = Vec::new();
    let mut at = 12;
    while at + 8 <= data.len() {
        let name: [u8; 4] = data[at..at + 4].try_into().unwrap();
        let len = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push(name);
        at += 8 + len + len % 2;
    }
    out
}

/// PSNR over the common area (sizes may differ by a rounding pixel).
fn psnr(a: &(Vec<u8>, u32, u32), b: &(Vec<u8>, u32, u32)) -> f64 {
    let (w, h) = (a.1.min(b.1) as usize, a.2.min(b.2) as usize);
    let mut se = 0f64;
    for y in 0..h {
        for x in 0..w * 3 {
            let d =
                f64::from(a.0[y * a.1 as usize * 3 + x]) - f64::from(b.0[y * b.1 as usize * 3 + x]);
            se += d * d;
        }
    }
    let mse = se / (w * h * 3) as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

fn vipsthumbnail(file: &Path, width: u32) -> (Vec<u8>, u32, u32) {
    let out = std::env::temp_dir().join(format!(
        "sluice-vips-{}-{}.png",
        std::process::id(),
        file.file_name().unwrap().to_string_lossy()
    ));
    let status = Command::new("vipsthumbnail")
        .arg(file)
        .args(["--size", &format!("{width}x"), "-o"])
        .arg(&out)
        .status()
        .expect("vipsthumbnail (libvips-tools)");
    assert!(status.success());
    let data = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    rgb(&data)
}

async fn get(url: &str) -> (StatusCode, http::HeaderMap, Bytes) {
    let r = client().get(url).send().await.expect("request");
    let (s, h) = (r.status(), r.headers().clone());
    (s, h, r.bytes().await.expect("body"))
}

/// Jobs the server logged as processed, once its log reader caught up with
/// at least `expected` of them (or after 3 s).
async fn processed_count(s: &Sluice, expected: usize) -> usize {
    let count = || {
        s.logs()
            .iter()
            .filter(|l| l.contains("image processed"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while count() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give a line that should not exist a moment to show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    count()
}

#[tokio::test]
async fn real_photos_match_vipsthumbnail() {
    let samples = root().join("samples");
    let s = Sluice::start(&["--origin", samples.to_str().unwrap()]);
    let mut scores = Vec::new();
    for name in [
        "dandelions.jpg",
        "dogs-portrait.jpg",
        "grace_hopper.jpg",
        "picos-de-europa.jpg",
        "rocket.jpg",
        "sunset.jpg",
        "chelsea.png",
    ] {
        let (status, headers, body) =
            get(&s.url(&format!("/img/_/rs:fit:400:0/plain/{name}@png"))).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(headers["content-type"], "image/png");
        let ours = rgb(&body);
        let reference = vipsthumbnail(&samples.join(name), 400);
        assert_eq!(ours.1, 400, "{name}");
        assert!(
            ours.2.abs_diff(reference.2) <= 1,
            "{name}: {} vs {}",
            ours.2,
            reference.2
        );
        let db = psnr(&ours, &reference);
        eprintln!("{name}: {db:.1} dB");
        scores.push(db);
        // The JPEG the server would send by default is close too.
        let (status, headers, jpeg) =
            get(&s.url(&format!("/img/_/rs:fit:400:0/q:90/plain/{name}@jpg"))).await;
        assert_eq!(
            (status, &headers["content-type"]),
            (
                StatusCode::OK,
                &"image/jpeg".parse::<http::HeaderValue>().unwrap()
            )
        );
        assert!(psnr(&rgb(&jpeg), &reference) > 30.0, "{name} as JPEG");
        // So is lossy WebP, which f:auto picks when the client accepts it.
        let r = client()
            .get(s.url(&format!("/img/_/rs:fit:400:0/q:90/plain/{name}")))
            .header("accept", "image/avif,image/webp,*/*")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], "image/webp", "{name}");
        let webp = r.bytes().await.unwrap();
        let chunks = riff_chunks(&webp);
        assert!(
            chunks.contains(b"VP8 "),
            "{name}: lossy WebP expected, got {chunks:?}"
        );
        let ours_webp = rgb(&webp);
        assert_eq!(ours_webp.1, 400, "{name} as WebP");
        let db = psnr(&ours_webp, &reference);
        assert!(db > 30.0, "{name} as WebP: {db:.1} dB");
    }
    scores.sort_by(f64::total_cmp);
    let median = scores[scores.len() / 2];
    assert!(
        median >= 40.0 && scores[0] >= 33.0,
        "PSNR vs vipsthumbnail: {scores:?}"
    );
}

#[tokio::test]
async fn odd_inputs_get_an_image_or_a_clear_error_and_the_server_lives() {
    let dir = odd_dir();
    let s = Sluice::start(&["--origin", dir.to_str().unwrap()]);
    let index = std::fs::read_to_string(dir.join("INDEX.txt")).unwrap();
    for line in index.lines() {
        let mut f = line.split('\t');
        let (name, expect) = (f.next().unwrap(), f.next().unwrap());
        let started = Instant::now();
        let (status, headers, body) =
            get(&s.url(&format!("/img/_/rs:fit:200:200/plain/{name}@png"))).await;
        match expect {
            "decode" => {
                assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&body));
                let (_, w, h) = rgb(&body);
                assert!(w <= 200 && h <= 200 && w > 0 && h > 0, "{name}: {w}x{h}");
            }
            "reject" => {
                assert!(
                    status.is_client_error() || status.is_server_error(),
                    "{name}: {status}"
                );
                assert_eq!(
                    headers["content-type"], "text/plain; charset=utf-8",
                    "{name}"
                );
                assert!(!body.is_empty(), "{name}: a reason");
                eprintln!("{name}: {status} {}", String::from_utf8_lossy(&body).trim());
            }
            _ => assert!(
                status == 200 || status.is_client_error(),
                "{name}: {status}"
            ),
        }
        if name.starts_with("huge-dims") {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{name} took {:?}",
                started.elapsed()
            );
        }
    }
    // Every EXIF orientation comes out upright: like orientation 1.
    let (_, _, upright) = get(&s.url("/img/_/w:200/plain/orient-1.jpg@png")).await;
    let upright = rgb(&upright);
    assert_eq!((upright.1, upright.2), (200, 150));
    for o in 2..=8 {
        let (status, _, body) =
            get(&s.url(&format!("/img/_/w:200/plain/orient-{o}.jpg@png"))).await;
        assert_eq!(status, 200);
        let img = rgb(&body);
        assert_eq!((img.1, img.2), (200, 150), "orientation {o}");
        let db = psnr(&img, &upright);
        assert!(
            db > 30.0,
            "orientation {o}: {db:.1} dB against orientation 1"
        );
    }
    // CMYK (inverted, as Photoshop writes it) comes out in the right colours:
    // close to the RGB original it was made from.
    let (_, _, rgb_base) = get(&s.url("/img/_/w:200/plain/ycc-420.jpg@png")).await;
    let (_, _, cmyk) = get(&s.url("/img/_/w:200/plain/cmyk.jpg@png")).await;
    let db = psnr(&rgb(&cmyk), &rgb(&rgb_base));
    assert!(db > 30.0, "CMYK vs RGB original: {db:.1} dB");
    // libjpeg holds all coefficients of a non-interleaved sequential file
    // (cjpeg -scans), as of a progressive one: the probe must know.
    for (name, buffered) in [
        ("non-interleaved.jpg", true),
        ("progressive.jpg", true),
        ("ycc-420.jpg", false),
    ] {
        let data = std::fs::read(dir.join(name)).unwrap();
        let p = sluice::image_tools::probe(&data, true).unwrap().unwrap();
        assert_eq!(p.coefficients_buffered, buffered, "{name}");
    }
    // Arithmetic coding is the same picture as the Huffman-coded original.
    let (_, _, arithmetic) = get(&s.url("/img/_/w:200/plain/arithmetic.jpg@png")).await;
    let db = psnr(&rgb(&arithmetic), &rgb(&rgb_base));
    assert!(db > 35.0, "arithmetic vs Huffman-coded: {db:.1} dB");
    let (status, _, _) = get(&s.url("/healthz")).await;
    assert_eq!(status, 200);
    // A 65500x65500 header cost nothing: no pixel buffer for it.
    assert!(
        s.peak_rss() < 150 << 20,
        "peak RSS {} MiB",
        s.peak_rss() >> 20
    );
}

#[tokio::test]
async fn options_signature_and_sign_subcommand() {
    let samples = root().join("samples");
    let key = "736563726574";
    let salt = "68656C6C6F";
    let s = Sluice::start(&[
        "--origin",
        samples.to_str().unwrap(),
        "--key",
        key,
        "--salt",
        salt,
        "--img-prefix",
        "/thumbs",
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "sign",
            "--key",
            key,
            "--salt",
            salt,
            "/rs:fill:100:100/plain/rocket.jpg",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let signed = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (status, headers, body) = get(&s.url(&format!("/thumbs{signed}"))).await;
    assert_eq!(status, 200);
    assert_eq!(rgb(&body).1, 100);
    assert!(headers["etag"].to_str().unwrap().starts_with("\"sl-"));
    // Tampered path, insecure signature: 403.
    let tampered = signed.replace("100:100", "101:100");
    assert_eq!(get(&s.url(&format!("/thumbs{tampered}"))).await.0, 403);
    assert_eq!(
        get(&s.url("/thumbs/insecure/w:10/plain/rocket.jpg"))
            .await
            .0,
        403
    );
    // Unknown option: 400 naming it (signature checked first, so sign it).
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "sign",
            "--key",
            key,
            "--salt",
            salt,
            "/sharpen:2/plain/rocket.jpg",
        ])
        .output()
        .unwrap();
    let signed = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (status, _, body) = get(&s.url(&format!("/thumbs{signed}"))).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("sharpen"));
}

#[tokio::test]
async fn limits_refuse_early() {
    let samples = root().join("samples");
    let s = Sluice::start(&[
        "--origin",
        samples.to_str().unwrap(),
        "--max-src-bytes",
        "400KiB",
        "--max-src-pixels",
        "1000000",
    ]);
    // 487 KiB file: 413 from Content-Length.
    assert_eq!(
        get(&s.url("/img/_/w:100/plain/picos-de-europa.jpg"))
            .await
            .0,
        413
    );
    // 2048x1365 = 2.8 MP: 422 from the header.
    let (status, _, body) = get(&s.url("/img/_/w:100/plain/sunset.jpg")).await;
    assert_eq!(status, 422);
    assert!(String::from_utf8_lossy(&body).contains("2048x1365"));
    // Within both limits: fine.
    assert_eq!(get(&s.url("/img/_/w:100/plain/rocket.jpg")).await.0, 200);
}

#[tokio::test]
async fn full_queue_is_429_and_a_stalled_job_is_503() {
    let origin = TestOrigin::start().await;
    let allowed = format!("{}/", origin.url());
    let s = Sluice::start(&[
        "--allowed-source",
        &allowed,
        "--workers",
        "1",
        "--queue-size",
        "0",
        "--processing-timeout",
        "1500ms",
    ]);
    // The origin never answers: the first request holds the only slot.
    let stalled = s.url(&format!("/img/_/w:10/plain/{}stall-headers", allowed));
    let first = tokio::spawn(async move { get(&stalled).await.0 });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let started = Instant::now();
    let second = get(&s.url(&format!("/img/_/w:20/plain/{}stall-headers", allowed)))
        .await
        .0;
    assert_eq!(second, 429);
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(first.await.unwrap(), 503);
    // The slot is free again once the stalled job was abandoned.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _, _) = get(&s.url(&format!("/img/_/w:20/plain/{}status/404", allowed))).await;
    assert_eq!(status, 404);
    // Foreign URLs are refused.
    assert_eq!(
        get(&s.url("/img/_/w:20/plain/http://elsewhere.example/a.jpg"))
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn revalidation_is_answered_from_the_origin_304_without_processing() {
    let samples = root().join("samples");
    let s = Sluice::start(&["--origin", samples.to_str().unwrap(), "--ttl", "600s"]);
    let url = s.url("/img/_/rs:fit:300:300/plain/dandelions.jpg");
    let (status, headers, _) = get(&url).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "public, max-age=600");
    let etag = headers["etag"].clone();
    assert_eq!(processed_count(&s, 1).await, 1);
    let r = client()
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag);
    assert_eq!(processed_count(&s, 1).await, 1, "a 304 must not process");
    // Other options: the tag does not match, so it is processed.
    let other = s.url("/img/_/rs:fit:301:300/plain/dandelions.jpg");
    let r = client()
        .get(&other)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn format_follows_accept_with_vary() {
    let samples = root().join("samples");
    let s = Sluice::start(&["--origin", samples.to_str().unwrap()]);
    let url = s.url("/img/_/w:100/plain/chelsea.png");
    let r = client()
        .get(&url)
        .header("accept", "image/webp,*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/webp");
    assert_eq!(r.headers()["vary"], "Accept");
    let r = client()
        .get(&url)
        .header("accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/png");
    let r = client()
        .get(s.url("/img/_/w:100/f:jpg/fn:kitty/att:1/plain/chelsea.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert!(r.headers().get("vary").is_none());
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"kitty.jpg\""
    );
}

/// A file origin that serves `samples/` slowly and counts requests, so
/// identical concurrent requests overlap.
async fn slow_file_origin(dir: PathBuf, hits: Arc<AtomicUsize>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (dir, hits) = (dir.clone(), hits.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (dir, hits) = (dir.clone(), hits.clone());
                    async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let name = req.uri().path().trim_start_matches('/').to_string();
                        let data = std::fs::read(dir.join(&name)).unwrap_or_default();
                        let len = data.len();
                        let chunks: Vec<Bytes> =
                            data.chunks(16 * 1024).map(Bytes::copy_from_slice).collect();
                        let stream =
                            futures_util::stream::unfold(chunks.into_iter(), |mut it| async move {
                                tokio::time::sleep(Duration::from_millis(40)).await;
                                it.next().map(|c| {
                                    (Ok::<_, std::convert::Infallible>(Frame::data(c)), it)
                                })
                            });
                        let body: BoxBody<Bytes, std::convert::Infallible> = if len == 0 {
                            Full::new(Bytes::new()).boxed()
                        } else {
                            StreamBody::new(stream).boxed()
                        };
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .header("content-length", len)
                                .body(body)
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn identical_concurrent_requests_are_computed_once() {
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = slow_file_origin(root().join("samples"), hits.clone()).await;
    let s = Sluice::start(&["--origin", &format!("http://{addr}")]);
    let url = s.url("/img/_/rs:fill:120:120/plain/sunset.jpg");
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            tokio::spawn({
                let url = url.clone();
                async move { get(&url).await }
            })
        })
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        let (status, _, body) = t.await.unwrap();
        assert_eq!(status, 200);
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one origin fetch");
    assert_eq!(processed_count(&s, 1).await, 1, "one processing");

    // A cache buster (imgproxy's `cb`) makes each request its own result:
    // same picture, its own ETag, computed again.
    let busted: Vec<_> = ["cb:a", "cb:b"]
        .map(|cb| s.url(&format!("/img/_/rs:fill:120:120/{cb}/plain/sunset.jpg")))
        .map(|url| tokio::spawn(async move { get(&url).await }))
        .into_iter()
        .collect();
    let mut etags = Vec::new();
    for t in busted {
        let (status, headers, body) = t.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, bodies[0], "cb does not change the picture");
        etags.push(headers["etag"].clone());
    }
    assert_ne!(etags[0], etags[1]);
    assert_eq!(hits.load(Ordering::SeqCst), 3, "one fetch per cache buster");
    assert_eq!(
        processed_count(&s, 3).await,
        3,
        "one processing per cache buster"
    );
}

/// What exiftool prints with `args` for an image file holding `data`.
fn exiftool(data: &[u8], ext: &str, args: &[&str]) -> Vec<u8> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sluice-exiftool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("out-{n}.{ext}"));
    std::fs::write(&file, data).unwrap();
    let out = Command::new("exiftool")
        .args(args)
        .arg(&file)
        .output()
        .expect("exiftool (libimage-exiftool-perl)");
    assert!(out.status.success(), "exiftool: {out:?}");
    let _ = std::fs::remove_file(&file);
    out.stdout
}

/// Write tags into an image file in place with exiftool.
fn exiftool_write(path: &std::path::Path, tags: &[&str]) {
    let written = Command::new("exiftool")
        .args(["-q", "-overwrite_original"])
        .args(tags)
        .arg(path)
        .status()
        .expect("exiftool (libimage-exiftool-perl)");
    assert!(written.success(), "exiftool {tags:?}");
}

/// EXIF Orientation of an image file as exiftool reads it (JPEG APP1, PNG
/// eXIf, WebP EXIF chunk); "" when the file has no EXIF.
fn exif_orientation_of(data: &[u8], ext: &str) -> String {
    let out = exiftool(data, ext, &["-s3", "-n", "-Orientation"]);
    String::from_utf8_lossy(&out).trim().to_string()
}

/// The ICC profile of an image file as exiftool reads it; empty if none.
fn icc_profile_of(data: &[u8], ext: &str) -> Vec<u8> {
    exiftool(data, ext, &["-b", "-ICC_Profile"])
}

#[tokio::test]
async fn the_icc_profile_of_a_jpeg_source_is_kept_in_every_format() {
    let samples = root().join("samples");
    let source = std::fs::read(samples.join("rocket.jpg")).unwrap();
    let profile = icc_profile_of(&source, "jpg");
    assert!(profile.len() > 100, "rocket.jpg carries an ICC profile");
    let s = Sluice::start(&["--origin", samples.to_str().unwrap()]);
    for ext in ["jpg", "png", "webp"] {
        let (status, _, body) = get(&s.url(&format!("/img/_/w:120/plain/rocket.jpg@{ext}"))).await;
        assert_eq!(status, 200, "{ext}");
        assert!(
            icc_profile_of(&body, ext) == profile,
            "{ext}: profile differs or is missing"
        );
    }
}

#[tokio::test]
async fn exif_is_stripped_by_default_and_kept_upright_with_sm_0() {
    let odd = odd_dir();
    let s = Sluice::start(&["--origin", odd.to_str().unwrap()]);
    for ext in ["jpg", "png", "webp"] {
        // Default: metadata stripped.
        let (status, _, body) =
            get(&s.url(&format!("/img/_/w:100/plain/orient-6.jpg@{ext}"))).await;
        assert_eq!(status, 200);
        assert_eq!(
            exif_orientation_of(&body, ext),
            "",
            "{ext}: EXIF should be stripped"
        );
        // sm:0 keeps EXIF; the pixels were rotated, so Orientation says 1.
        let (status, _, body) =
            get(&s.url(&format!("/img/_/w:100/sm:0/plain/orient-6.jpg@{ext}"))).await;
        assert_eq!(status, 200);
        assert_eq!(exif_orientation_of(&body, ext), "1", "{ext}: kept, upright");
        // sm:0 with ar:0: pixels not rotated, so the original tag stays.
        let (status, _, body) =
            get(&s.url(&format!("/img/_/w:100/sm:0/ar:0/plain/orient-6.jpg@{ext}"))).await;
        assert_eq!(status, 200);
        assert_eq!(exif_orientation_of(&body, ext), "6", "{ext}: kept as is");
    }
}

#[tokio::test]
async fn xmp_is_stripped_by_default_and_kept_with_sm_0() {
    let dir = std::env::temp_dir().join(format!("sluice-xmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("xmp.jpg");
    std::fs::copy(odd_dir().join("ycc-420.jpg"), &source).unwrap();
    exiftool_write(&source, &["-XMP-dc:Title=sluice keeps this"]);
    let title = |data: &[u8], ext: &str| {
        let out = exiftool(data, ext, &["-s3", "-XMP-dc:Title"]);
        String::from_utf8_lossy(&out).trim().to_string()
    };
    assert_eq!(
        title(&std::fs::read(&source).unwrap(), "jpg"),
        "sluice keeps this"
    );
    let s = Sluice::start(&["--origin", dir.to_str().unwrap()]);
    for ext in ["jpg", "png", "webp"] {
        let (status, _, body) = get(&s.url(&format!("/img/_/w:100/plain/xmp.jpg@{ext}"))).await;
        assert_eq!(status, 200);
        assert_eq!(title(&body, ext), "", "{ext}: stripped by default");
        let (status, _, body) =
            get(&s.url(&format!("/img/_/w:100/sm:0/plain/xmp.jpg@{ext}"))).await;
        assert_eq!(status, 200);
        assert_eq!(
            title(&body, ext),
            "sluice keeps this",
            "{ext}: kept with sm:0"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `jpeg` with its scan number `scan` (0-based) repeated `copies` more
/// times before EOI: a "scan bomb", each copy one more pass over every
/// block (libjpeg warns "inconsistent progression" and decodes on).
fn with_repeated_scan(jpeg: &[u8], scan: usize, copies: usize) -> Vec<u8> {
    let sos: Vec<usize> = jpeg
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w == &[0xFF, 0xDA])
        .map(|(i, _)| i)
        .collect();
    let eoi = jpeg.len() - 2;
    assert_eq!(&jpeg[eoi..], [0xFF, 0xD9]);
    let end = sos.get(scan + 1).copied().unwrap_or(eoi);
    let mut out = jpeg[..eoi].to_vec();
    for _ in 0..copies {
        out.extend_from_slice(&jpeg[sos[scan]..end]);
    }
    out.extend_from_slice(&jpeg[eoi..]);
    out
}

#[tokio::test]
async fn a_scan_bomb_is_refused_and_a_long_decode_stops_at_the_timeout() {
    let dir = std::env::temp_dir().join(format!("sluice-scans-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Over the limit: 600 copies of the DC scan of a 400x300 file.
    let small = std::fs::read(odd_dir().join("progressive.jpg")).unwrap();
    std::fs::write(dir.join("bomb.jpg"), with_repeated_scan(&small, 0, 600)).unwrap();
    // Under the limit but slow: 11 MP progressive, its DC refinement scan
    // (all components, every block) 480 more times: seconds of decoding.
    let big = dir.join("big.jpg");
    let made = Command::new("convert")
        .arg(root().join("samples/sunset.jpg"))
        .args(["-resize", "200%", "-quality", "90", "-interlace", "JPEG"])
        .arg(&big)
        .status()
        .expect("ImageMagick's convert");
    assert!(made.success());
    let big_bytes = std::fs::read(&big).unwrap();
    std::fs::write(dir.join("slow.jpg"), with_repeated_scan(&big_bytes, 6, 480)).unwrap();
    std::fs::copy(root().join("samples/rocket.jpg"), dir.join("rocket.jpg")).unwrap();

    let s = Sluice::start(&[
        "--origin",
        dir.to_str().unwrap(),
        "--workers",
        "1",
        "--processing-timeout",
        "300ms",
    ]);
    let (status, _, body) = get(&s.url("/img/_/w:100/plain/bomb.jpg")).await;
    assert_eq!(status, 422);
    let reason = String::from_utf8_lossy(&body);
    assert!(reason.contains("more than 500 scans"), "{reason}");

    // The slow file times out (503): it takes djpeg -scale 1/8 about 1.5 s
    // here, five times the timeout (a 1 s timeout let a fast CI machine
    // finish it). Its decode must then stop at once: with one worker, the
    // next request only gets 200 within its own 300 ms if the worker is
    // free, not still decoding for a second more.
    let (status, _, _) = get(&s.url("/img/_/w:100/plain/slow.jpg")).await;
    assert_eq!(status, 503);
    let (status, _, body) = get(&s.url("/img/_/w:100/plain/rocket.jpg")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_full_size_reencode_of_a_16_mp_photo_fits_the_default_budget() {
    // Format conversion or recompression without resizing: the whole
    // bitmap goes through the encoder. Such requests used to be refused
    // (413, an estimate of ~4x the real need); the estimate must still
    // cover the real peak, so RSS stays within budget + 48 MiB.
    let dir = std::env::temp_dir().join(format!("sluice-fullsize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = Command::new("convert")
        .arg(root().join("samples/sunset.jpg"))
        .args(["-resize", "4900x", "-quality", "92"])
        .arg(dir.join("big.jpg"))
        .status()
        .expect("ImageMagick's convert");
    assert!(made.success());
    let s = Sluice::start(&["--origin", dir.to_str().unwrap(), "--workers", "1"]);
    for options in ["q:95/f:jpg", "f:png", "f:webp"] {
        let (status, _, body) = get(&s.url(&format!("/img/_/{options}/plain/big.jpg"))).await;
        assert_eq!(
            status,
            200,
            "{options}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
        let (_, w, h) = rgb(&body);
        assert_eq!((w, h), (4900, 3266), "{options}: full size");
    }
    let peak = s.peak_rss();
    assert!(peak < (256 + 48) << 20, "peak RSS {} MiB", peak >> 20);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn png_and_webp_sources_are_turned_upright_by_their_exif_orientation() {
    // Sources: orient-6.jpg's stored (sideways) pixels, enlarged, as PNG and
    // WebP, made by sluice itself with ar:0, then tagged Orientation=6 and an XMP
    // title by exiftool (PNG eXIf before the image data, WebP EXIF after it).
    let odd = Sluice::start(&["--origin", odd_dir().to_str().unwrap()]);
    let (_, _, upright) = get(&odd.url("/img/_/w:200/plain/orient-1.jpg@png")).await;
    let upright = rgb(&upright);
    let dir = std::env::temp_dir().join(format!("sluice-orient-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for ext in ["png", "webp"] {
        let (status, _, sideways) = get(&odd.url(&format!(
            "/img/_/ar:0/w:1200/el:1/q:90/plain/orient-6.jpg@{ext}"
        )))
        .await;
        assert_eq!(status, 200);
        // Larger than the directory origin's 64 KiB chunks, so the early probe
        // cannot have seen a WebP's EXIF.
        assert!(
            sideways.len() > 128 << 10,
            "{ext}: {} bytes",
            sideways.len()
        );
        let path = dir.join(format!("o6.{ext}"));
        std::fs::write(&path, &sideways).unwrap();
        exiftool_write(
            &path,
            &["-Orientation#=6", "-XMP-dc:Title=kept from the source"],
        );
        assert_eq!(
            exif_orientation_of(&std::fs::read(&path).unwrap(), ext),
            "6"
        );
    }
    let s = Sluice::start(&["--origin", dir.to_str().unwrap()]);
    for ext in ["png", "webp"] {
        let (status, _, body) = get(&s.url(&format!("/img/_/w:200/plain/o6.{ext}@png"))).await;
        assert_eq!(status, 200, "{ext}");
        let img = rgb(&body);
        assert_eq!((img.1, img.2), (200, 150), "{ext}: upright");
        let db = psnr(&img, &upright);
        assert!(db > 30.0, "{ext}: {db:.1} dB against the upright JPEG");
        // ar:0 leaves it sideways.
        let (_, _, body) = get(&s.url(&format!("/img/_/w:150/ar:0/plain/o6.{ext}@png"))).await;
        let img = rgb(&body);
        assert_eq!((img.1, img.2), (150, 200), "{ext}: ar:0");
        // sm:0 carries the EXIF (now saying 1) and the XMP over.
        let (_, _, body) = get(&s.url(&format!("/img/_/w:100/sm:0/plain/o6.{ext}@jpg"))).await;
        assert_eq!(exif_orientation_of(&body, "jpg"), "1", "{ext}: sm:0");
        let title = exiftool(&body, "jpg", &["-s3", "-XMP-dc:Title"]);
        assert_eq!(
            String::from_utf8_lossy(&title).trim(),
            "kept from the source",
            "{ext}: XMP with sm:0"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn iptc_is_stripped_by_default_and_kept_in_jpeg_output_with_sm_0() {
    let dir = std::env::temp_dir().join(format!("sluice-iptc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("iptc.jpg");
    std::fs::copy(odd_dir().join("ycc-420.jpg"), &source).unwrap();
    exiftool_write(
        &source,
        &[
            "-IPTC:By-line=A. Photographer",
            "-IPTC:CopyrightNotice=(c) sluice tests",
        ],
    );
    let byline = |data: &[u8], ext: &str| {
        let out = exiftool(data, ext, &["-s3", "-IPTC:By-line"]);
        String::from_utf8_lossy(&out).trim().to_string()
    };
    assert_eq!(
        byline(&std::fs::read(&source).unwrap(), "jpg"),
        "A. Photographer"
    );
    let s = Sluice::start(&["--origin", dir.to_str().unwrap()]);
    let (status, _, body) = get(&s.url("/img/_/w:100/plain/iptc.jpg@jpg")).await;
    assert_eq!(status, 200);
    assert_eq!(byline(&body, "jpg"), "", "stripped by default");
    let (status, _, body) = get(&s.url("/img/_/w:100/sm:0/plain/iptc.jpg@jpg")).await;
    assert_eq!(status, 200);
    assert_eq!(byline(&body, "jpg"), "A. Photographer", "kept with sm:0");
    let notice = exiftool(&body, "jpg", &["-s3", "-IPTC:CopyrightNotice"]);
    assert_eq!(String::from_utf8_lossy(&notice).trim(), "(c) sluice tests");
    let _ = std::fs::remove_dir_all(&dir);
}
