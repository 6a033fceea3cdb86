//! On-the-fly content coding of pass-through responses, decoded by the real
//! decoders of a client (async-compression's, the same family browsers use).
#![allow(clippy::unwrap_used)]

mod common;

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
use common::{client, Sluice, TestOrigin};
use tokio::io::AsyncReadExt;

async fn decode(encoding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "br" => BrotliDecoder::new(data).read_to_end(&mut out).await,
        "zstd" => ZstdDecoder::new(data).read_to_end(&mut out).await,
        "gzip" => GzipDecoder::new(data).read_to_end(&mut out).await,
        other => panic!("unexpected encoding {other}"),
    }
    .expect("valid encoded stream");
    out
}

fn expected_text(n: usize) -> Vec<u8> {
    let line = b"{\"sluice\": \"streams bodies in bounded chunks\", \"n\": 12345}\n";
    line.iter().copied().cycle().take(n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressible_types_are_compressed_to_the_best_accepted_coding() {
    let origin = TestOrigin::start().await;
    let sluice = Sluice::start(&["--origin", &origin.url()]);
    let c = client();
    for (accept, want) in [
        ("gzip, deflate, br, zstd", "br"),
        ("gzip;q=0.5, zstd", "zstd"),
        ("gzip", "gzip"),
        ("br;q=0.1, gzip;q=0.9", "gzip"),
    ] {
        let r = c
            .get(sluice.url("/text/300000"))
            .header("accept-encoding", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers().clone();
        assert_eq!(h["content-encoding"], want, "for {accept}");
        assert_eq!(h["vary"], "Accept-Encoding");
        assert_eq!(h["etag"], "W/\"t1\"");
        assert!(!h.contains_key("content-length"));
        let body = r.bytes().await.unwrap();
        assert!(body.len() < 300000 / 10, "{want} barely compressed");
        assert_eq!(decode(want, &body).await, expected_text(300000));
    }

    // No Accept-Encoding: identity, but the response still varies.
    let r = c.get(sluice.url("/text/300000")).send().await.unwrap();
    assert!(!r.headers().contains_key("content-encoding"));
    assert_eq!(r.headers()["content-length"], "300000");
    assert_eq!(r.headers()["vary"], "Accept-Encoding");
    assert_eq!(r.bytes().await.unwrap().len(), 300000);

    // SVG is compressible; JPEG is not.
    let r = c
        .get(sluice.url("/text/5000?ct=image%2Fsvg+xml"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let r = c
        .get(sluice.url("/text/5000?ct=image%2Fjpeg"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("content-encoding"));
    assert_eq!(r.headers()["content-length"], "5000");
    assert!(!r.headers().contains_key("vary"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoding_the_client_refuses_is_decoded_or_transcoded() {
    let origin = TestOrigin::start().await;
    let sluice = Sluice::start(&["--origin", &origin.url()]);
    let c = client();

    // The origin sends gzip; the client takes only identity.
    let r = c
        .get(sluice.url("/text/200000?encoding=gzip"))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("content-encoding"));
    assert_eq!(r.headers()["etag"], "W/\"t1\"");
    assert_eq!(r.bytes().await.unwrap().to_vec(), expected_text(200000));

    // The origin sends gzip; the client takes only br: transcoded.
    let r = c
        .get(sluice.url("/text/200000?encoding=gzip"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "br");
    let body = r.bytes().await.unwrap();
    assert_eq!(decode("br", &body).await, expected_text(200000));

    // The client takes gzip: passed through untouched, length kept.
    let r = c
        .get(sluice.url("/text/200000?encoding=gzip"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["etag"], "\"t1\"");
    assert!(r.headers().contains_key("content-length"));
    let body = r.bytes().await.unwrap();
    assert_eq!(decode("gzip", &body).await, expected_text(200000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_memory_comes_from_the_budget() {
    let origin = TestOrigin::start().await;
    let c = client();
    // 1 MiB: room for a gzip encoder (512 KiB), none for brotli (8 MiB).
    let small = Sluice::start(&["--origin", &origin.url(), "--memory-budget", "1MiB"]);
    let r = c
        .get(small.url("/text/300000"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("content-encoding"));
    assert_eq!(r.bytes().await.unwrap().to_vec(), expected_text(300000));
    let r = c
        .get(small.url("/text/300000"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let body = r.bytes().await.unwrap();
    assert_eq!(decode("gzip", &body).await, expected_text(300000));

    // 128 KiB: no room even to decode gzip for a client that refuses it.
    let tiny = Sluice::start(&["--origin", &origin.url(), "--memory-budget", "128KiB"]);
    let r = c
        .get(tiny.url("/text/200000?encoding=gzip"))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("no memory free"));
}
