//! Pass-through against a real HTTP origin on loopback: streaming, memory,
//! headers, Range/304, and every failure mode of the origin and the client.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{client, is_pattern, Sluice, TestOrigin};
use futures_util::StreamExt;

fn sluice_for(origin: &TestOrigin, extra: &[&str]) -> Sluice {
    let url = origin.url();
    let mut args = vec!["--origin", url.as_str()];
    args.extend_from_slice(extra);
    Sluice::start(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_body_streams_through_in_bounded_memory() {
    let origin = TestOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    const N: u64 = 1 << 30;
    let resp = client()
        .get(sluice.url(&format!("/bytes/{N}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], N.to_string().as_str());
    let mut stream = resp.bytes_stream();
    let mut seen = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("body chunk");
        // Spot-check the content at every chunk boundary.
        assert!(
            is_pattern(seen, &chunk[..chunk.len().min(64)]),
            "corrupt at {seen}"
        );
        seen += chunk.len() as u64;
    }
    assert_eq!(seen, N);
    let peak = sluice.peak_rss();
    assert!(
        peak < 32 << 20,
        "peak RSS {} MiB while proxying 1 GiB",
        peak >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_and_conditional_requests_pass_through() {
    let origin = TestOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let c = client();

    let r = c
        .get(sluice.url("/bytes/1000"))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 100-199/1000");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 100);
    assert!(is_pattern(100, &body));

    // If-Range with a stale validator gets the whole body.
    let r = c
        .get(sluice.url("/bytes/1000"))
        .header("range", "bytes=100-199")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 1000);

    let r = c
        .get(sluice.url("/bytes/1000"))
        .header("if-none-match", "\"b1000\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], "\"b1000\"");
    assert!(r.bytes().await.unwrap().is_empty());

    let sent = origin.headers_of("/bytes/1000").unwrap();
    assert_eq!(sent["if-none-match"], "\"b1000\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_headers_pass_and_hop_by_hop_headers_do_not() {
    let origin = TestOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let r = client()
        .get(sluice.url("/bytes/10"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("connection", "keep-alive, x-drop-me")
        .header("x-drop-me", "secret")
        .header("te", "trailers")
        .header("accept-encoding", "gzip")
        .header("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT")
        .header("x-request-id", "test-req-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for h in [
        "etag",
        "last-modified",
        "cache-control",
        "content-length",
        "content-type",
    ] {
        assert!(r.headers().contains_key(h), "missing {h}");
    }
    assert_eq!(r.headers()["via"], "1.1 sluice");
    assert_eq!(r.headers()["x-request-id"], "test-req-1");

    let sent = origin.headers_of("/bytes/10").unwrap();
    assert_eq!(sent["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(sent["via"], "1.1 sluice");
    assert_eq!(sent["accept-encoding"], "gzip");
    assert_eq!(sent["if-modified-since"], "Tue, 14 Nov 2023 22:13:20 GMT");
    assert_eq!(sent["host"], origin.addr.to_string().as_str());
    assert!(!sent.contains_key("x-drop-me"));
    assert!(!sent.contains_key("te"));
    assert!(!sent.contains_key("connection") || sent["connection"] == "keep-alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_keeps_the_length_and_sends_no_body() {
    let origin = TestOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let r = client()
        .head(sluice.url("/bytes/5000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "5000");
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_errors_pass_through_with_their_status() {
    let origin = TestOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    for code in [404u16, 403, 500, 503] {
        let r = client()
            .get(sluice.url(&format!("/status/{code}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code);
        assert_eq!(r.text().await.unwrap(), "origin says no");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_origin_is_502_and_a_silent_one_is_504() {
    // Nothing listens on this port once the listener is dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    let sluice = Sluice::start(&["--origin", &dead]);
    let r = client().get(sluice.url("/a.jpg")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("could not connect"));

    let origin = TestOrigin::start().await;
    let sluice = sluice_for(&origin, &["--first-byte-timeout", "300ms"]);
    let started = Instant::now();
    let r = client()
        .get(sluice.url("/stall-headers"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert!(r.text().await.unwrap().contains("no response headers"));
    assert!(started.elapsed() < Duration::from_secs(10));
    // The log line for a failed request carries its request id (the
    // harness reads stdout on its own thread, so give it a moment).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sluice
        .logs()
        .iter()
        .any(|l| l.contains("request failed") && l.contains("request_id"))
    {
        assert!(Instant::now() < deadline, "{:?}", sluice.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_reset_mid_body_aborts_the_client_transfer() {
    let origin = TestOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let r = client()
        .get(sluice.url("/reset/300000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let result = r.bytes().await;
    assert!(result.is_err(), "a short body must not end cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_origin_body_hits_the_idle_timeout_and_aborts() {
    let origin = TestOrigin::start().await;
    let sluice = sluice_for(&origin, &["--idle-timeout", "300ms"]);
    let r = client()
        .get(sluice.url("/stall-body/1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let result = tokio::time::timeout(Duration::from_secs(10), r.bytes()).await;
    assert!(matches!(result, Ok(Err(_))), "expected an aborted transfer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_cancels_the_origin_transfer_at_once() {
    let origin = TestOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let r = client()
        .get(sluice.url("/slow/100000000?delay_ms=5&chunk=16384"))
        .send()
        .await
        .unwrap();
    let mut stream = r.bytes_stream();
    let _ = stream.next().await.unwrap().unwrap();
    let left = Instant::now();
    drop(stream);
    let deadline = left + Duration::from_secs(1);
    while origin.bodies_dropped().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dropped = origin.bodies_dropped();
    assert_eq!(
        dropped.len(),
        1,
        "origin body still streaming 1 s after the client left"
    );
    assert!(dropped[0] - left < Duration::from_secs(1));
    // ...and the origin connection is gone too, not parked half-read.
    while origin.open_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(origin.open_connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_slows_the_origin_instead_of_growing_memory() {
    let origin = TestOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let r = client()
        .get(sluice.url("/bytes/1073741824"))
        .send()
        .await
        .unwrap();
    let mut stream = r.bytes_stream();
    let mut read = 0u64;
    while read < 1 << 20 {
        read += stream.next().await.unwrap().unwrap().len() as u64;
    }
    // Stop reading; let every buffer on the way fill up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = origin.bytes_sent();
    let rss = sluice.peak_rss();
    // Loopback socket buffers (both hops, both directions) hold a few MiB
    // each; anything near the body size would mean sluice kept reading.
    assert!(
        sent < read + (64 << 20),
        "origin sent {} MiB while the client read {} MiB",
        sent >> 20,
        read >> 20
    );
    assert!(rss < 32 << 20, "peak RSS {} MiB", rss >> 20);
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_origin_is_verified_against_the_given_ca() {
    let dir = std::env::temp_dir().join(format!("sluice-pki-{}", std::process::id()));
    let (ca, leaf, key) = common::make_test_pki(&dir);
    let origin = TestOrigin::start_tls(&leaf, &key).await;
    let url = format!("https://localhost:{}", origin.addr.port());

    let trusted = Sluice::start(&["--origin", &url, "--origin-ca-file", ca.to_str().unwrap()]);
    let r = client()
        .get(trusted.url("/bytes/100000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert!(body.len() == 100_000 && is_pattern(0, &body));

    // Without the CA the origin's certificate is not trusted: 502, not data.
    let untrusted = Sluice::start(&["--origin", &url]);
    let r = client()
        .get(untrusted.url("/bytes/100"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
}

/// Read a whole body and check every byte against the origin's pattern.
async fn assert_whole_pattern(resp: reqwest::Response, n: u64) {
    let mut stream = resp.bytes_stream();
    let mut seen = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("body chunk");
        assert!(is_pattern(seen, &chunk), "corrupt within {seen}..");
        seen += chunk.len() as u64;
    }
    assert_eq!(seen, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_bodies_are_spliced_byte_for_byte_and_http2_ones_streamed() {
    let origin = TestOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    const N: u64 = (48 << 20) + 12_345;
    // HTTP/1.1, twice on one client connection: the second response reuses
    // the pipe and the pooled origin connection.
    let keepalive = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..2 {
        let before = common::spliced_bytes(&sluice).await;
        let resp = keepalive
            .get(sluice.url(&format!("/bytes/{N}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), reqwest::Version::HTTP_11);
        assert_whole_pattern(resp, N).await;
        let spliced = common::spliced_bytes(&sluice).await - before;
        // All but the bytes that arrived with the origin's head.
        assert!(
            spliced > N - (64 << 10) && spliced <= N,
            "{spliced} of {N} bytes spliced"
        );
    }
    // A Range answer is spliced the same way.
    let resp = keepalive
        .get(sluice.url(&format!("/bytes/{N}")))
        .header("range", "bytes=1000000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len() as u64, N - 1_000_000);
    assert!(is_pattern(1_000_000, &body));

    // HTTP/2 frames its own data: never spliced, still exact.
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let before = common::spliced_bytes(&sluice).await;
    let resp = h2
        .get(sluice.url(&format!("/bytes/{N}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_whole_pattern(resp, N).await;
    assert_eq!(common::spliced_bytes(&sluice).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splice_false_streams_every_body_through_user_space() {
    let origin = TestOrigin::start().await;
    let sluice = sluice_for(&origin, &["--splice", "false"]);
    const N: u64 = (8 << 20) + 7;
    let resp = client()
        .get(sluice.url(&format!("/bytes/{N}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_whole_pattern(resp, N).await;
    assert_eq!(common::spliced_bytes(&sluice).await, 0);
}

/// Pipes among a process's open file descriptors.
fn open_pipes(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("pipe:"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_connections_are_reused_and_idle_client_connections_hold_no_pipe() {
    let origin = TestOrigin::start().await;
    let sluice = sluice_for(&origin, &[]);
    let pipes_at_start = open_pipes(sluice.pid());
    let keepalive = reqwest::Client::builder().no_proxy().build().unwrap();
    // Small bodies arrive whole with the head, 304s and HEADs have none, and
    // large ones are spliced: after each, the origin connection is reused.
    for i in 0..5 {
        let small = keepalive
            .get(sluice.url("/bytes/100"))
            .send()
            .await
            .unwrap();
        assert_eq!(small.bytes().await.unwrap().len(), 100);
        let not_modified = keepalive
            .get(sluice.url("/bytes/100"))
            .header("if-none-match", "\"b100\"")
            .send()
            .await
            .unwrap();
        assert_eq!(not_modified.status(), 304);
        let large = keepalive
            .get(sluice.url("/bytes/3000000"))
            .send()
            .await
            .unwrap();
        assert_whole_pattern(large, 3_000_000).await;
        assert!(open_pipes(sluice.pid()) <= pipes_at_start + 2, "round {i}");
    }
    assert_eq!(origin.connections_accepted(), 1);
    // Three more client connections, each left open and idle after a
    // spliced response: they hold no pipe. The one pipe (two ends) that
    // moved between them waits on sluice's bounded spare list.
    let mut idle_clients = Vec::new();
    for _ in 0..3 {
        let c = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = c.get(sluice.url("/bytes/3000000")).send().await.unwrap();
        assert_whole_pattern(r, 3_000_000).await;
        idle_clients.push(c);
    }
    assert_eq!(open_pipes(sluice.pid()), pipes_at_start + 2);
}

/// An origin that answers each connection's first request with the canned
/// bytes for its path, then closes. For framings hyper's test server
/// cannot be made to send.
async fn canned_origin(answers: Vec<(&'static str, Vec<u8>)>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answers = std::sync::Arc::new(answers);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head).to_string();
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                if let Some((_, answer)) = answers.iter().find(|(p, _)| *p == path) {
                    let _ = s.write_all(answer).await;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_client_reads_every_framing_and_refuses_bad_heads() {
    let big = common::pattern_bytes(0, 300_000);
    let with_head = |head: &str, body: &[u8]| [head.as_bytes(), body].concat();
    let url = canned_origin(vec![
        (
            "/interim-chunked",
            b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n\
              HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\
              transfer-encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n"
                .to_vec(),
        ),
        (
            "/until-close",
            with_head(
                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\r\n",
                &big,
            ),
        ),
        (
            "/length",
            with_head(
                "HTTP/1.1 200 OK\r\ncontent-type: image/jpeg\r\ncontent-length: 300000\r\n\r\n",
                &big,
            ),
        ),
        (
            "/short",
            with_head(
                "HTTP/1.1 200 OK\r\ncontent-type: image/jpeg\r\ncontent-length: 400000\r\n\r\n",
                &big,
            ),
        ),
        (
            "/conflicting-length",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\nhello".to_vec(),
        ),
        ("/not-http", b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec()),
        (
            "/plus-length",
            b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello".to_vec(),
        ),
        (
            "/sizeless-chunk",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n;x\r\n\r\n"
                .to_vec(),
        ),
        (
            "/bad-chunk",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
        ),
    ])
    .await;
    let sluice = Sluice::start(&["--origin", url.as_str()]);
    let get = |path: &str| client().get(sluice.url(path)).send();

    let r = get("/interim-chunked").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), "hello world");

    let r = get("/until-close").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), big);

    let r = get("/length").await.unwrap();
    assert_eq!(r.headers()["content-length"], "300000");
    assert_eq!(r.bytes().await.unwrap(), big);

    let r = get("/short").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.is_err(),
        "a short body must not end cleanly"
    );

    for path in ["/conflicting-length", "/not-http", "/plus-length"] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), 502, "{path}");
        assert!(!r.text().await.unwrap().is_empty(), "{path}: a reason");
    }
    // A corrupt chunked body aborts the transfer; hyper may not even have
    // sent the head yet when the first chunk fails.
    for path in ["/bad-chunk", "/sizeless-chunk"] {
        if let Ok(r) = get(path).await {
            assert!(
                r.bytes().await.is_err(),
                "{path}: a corrupt chunked body aborts"
            );
        }
    }
}
