//! Regression tests for the defects a hostile-traffic run found (issue 12),
//! one or more per defect, each against the real binary and a real origin.
//! Each fails on the code before its fix.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{client, eventually, metric, raw_exchange, raw_status, Sluice, TestOrigin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn origin_saw(origin: &TestOrigin, path: &str) -> bool {
    origin
        .log
        .lock()
        .unwrap()
        .requests
        .iter()
        .any(|(p, _)| p == path)
}

// ------------------------------------------------ 1. allow-list escapes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_listed_sources_cannot_leave_their_prefix() {
    let origin = TestOrigin::start().await;
    let allowed = format!("{}/b/", origin.url());
    let sluice = Sluice::start(&["--allowed-source", &allowed]);
    let host = origin.url();
    let c = client();
    // A source under the prefix is fetched from it.
    let ok = format!("/img/insecure/rs:fit:50:0/plain/{host}/b/sample/rocket.jpg");
    let r = c.get(sluice.url(&ok)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(origin_saw(&origin, "/b/sample/rocket.jpg"));

    let escapes = [
        format!("{host}/b/../sample/rocket.jpg"),
        format!("{host}/b/%2e%2e/sample/rocket.jpg"),
        format!("{host}/b/..%2fsample/rocket.jpg"),
        format!("{host}/b/sub/../../sample/rocket.jpg"),
        format!("{host}/bx/sample/rocket.jpg"),
        format!("{host}/sample/rocket.jpg"),
    ];
    for source in &escapes {
        let plain = format!("/img/insecure/rs:fit:50:0/plain/{source}");
        let b64 = format!(
            "/img/insecure/rs:fit:50:0/{}",
            base64_url(source.as_bytes())
        );
        for path in [plain, b64] {
            let r = c.get(sluice.url(&path)).send().await.unwrap();
            assert_eq!(r.status(), 403, "{path}");
        }
    }
    assert!(
        !origin_saw(&origin, "/sample/rocket.jpg"),
        "an escaped source reached the origin"
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// ------------------------------------------------ 2. base-path escapes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_origins_base_path_cannot_be_escaped() {
    let origin = TestOrigin::start().await;
    let base = format!("{}/b", origin.url());
    // Spliced (sluice's own client) and streamed (hyper's client) paths.
    for splice in ["true", "false"] {
        let sluice = Sluice::start(&["--origin", &base, "--splice", splice]);
        let (control, _) = raw_exchange(
            sluice.addr,
            b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(raw_status(&control), 200);
        for target in [
            "/%2e%2e/bytes/10",
            "/../bytes/10",
            "/..%2fbytes/10",
            "/img.jpg/../../bytes/10",
            "/%2E%2e/bytes/10",
            "/..%5cbytes/10",
            "/%252e%252e/bytes/10",
            "/img/insecure/w:10/plain/%2e%2e/sample/rocket.jpg",
            "/img/insecure/w:10/plain/local:///../sample/rocket.jpg",
        ] {
            let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let (out, _) = raw_exchange(sluice.addr, req.as_bytes(), Duration::from_secs(5)).await;
            assert_eq!(
                raw_status(&out),
                403,
                "{target}: {}",
                String::from_utf8_lossy(&out)
            );
        }
        // mod_zip-style and JSON zip sources go through the same check.
        let r = client()
            .post(sluice.url("/zip"))
            .body(r#"{"entries": [{"source": "%2e%2e/bytes/10"}], "on_error": "abort"}"#)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.bytes().await;
        assert!(
            status == 200 && body.is_err() || status == 422 || status == 403,
            "{status}"
        );
    }
    let log = origin.log.lock().unwrap();
    assert!(
        log.requests.iter().all(|(p, _)| p.starts_with("/b/")),
        "a request left the base path: {:?}",
        log.requests.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
}

// ------------------------------------------------ 3. silent connections

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_and_do_not_lock_others_out() {
    // The default --header-timeout (10 s): the test runs on the code
    // before the fix too, where it hangs instead of getting a 503.
    let sluice = Sluice::start(&["--max-connections", "5"]);
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(sluice.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Over the limit: an answer at once (503), not a hang in the backlog.
    let (out, closed) = raw_exchange(
        sluice.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(raw_status(&out), 503, "{}", String::from_utf8_lossy(&out));
    assert!(String::from_utf8_lossy(&out).contains("retry-after: 1"));
    assert!(closed);
    // The silent ones are closed by the header deadline, counted and logged.
    for s in &mut silent {
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "still open: {read:?}"
        );
    }
    assert_eq!(
        metric(
            &sluice,
            "sluice_connections_closed_total",
            "reason=\"header_timeout\""
        )
        .await,
        5.0
    );
    assert_eq!(
        metric(
            &sluice,
            "sluice_connections_refused_total",
            "max_connections"
        )
        .await,
        1.0
    );
    assert!(sluice.logged(&["no complete request head in time"]));
    let r = client().get(sluice.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_head_and_an_idle_keep_alive_are_bounded() {
    let sluice = Sluice::start(&["--header-timeout", "1s", "--keepalive-timeout", "1s"]);
    // Slowloris: a byte every 200 ms never completes the head in time.
    let mut s = TcpStream::connect(sluice.addr).await.unwrap();
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut = false;
    for b in head {
        if s.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest)).await;
    assert!(cut || started.elapsed() < Duration::from_secs(5));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the trickled head held the connection for {:?}",
        started.elapsed()
    );
    // Keep-alive: a served connection that goes idle is closed.
    let mut s = TcpStream::connect(sluice.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(4), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the idle keep-alive connection stayed open");
    assert_eq!(raw_status(&out), 200);
    assert!(
        metric(
            &sluice,
            "sluice_connections_closed_total",
            "keepalive_timeout"
        )
        .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_a_per_ip_limit_are_refused() {
    let sluice = Sluice::start(&["--max-connections-per-ip", "2"]);
    let _a = TcpStream::connect(sluice.addr).await.unwrap();
    let _b = TcpStream::connect(sluice.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (out, _) = raw_exchange(
        sluice.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(raw_status(&out), 503);
    assert_eq!(
        metric(
            &sluice,
            "sluice_connections_refused_total",
            "max_connections_per_ip"
        )
        .await,
        1.0
    );
    assert!(sluice.logged(&["connection refused", "max_connections_per_ip"]));
}

// ------------------------------------------------ 4. uploads pinning the budget

/// A chunked POST /zip that sends `first` bytes of a manifest and stalls.
async fn stalled_upload(addr: std::net::SocketAddr, first: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = "POST /zip HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    let mut body = String::from("{\"entries\": [");
    while body.len() < first {
        body.push_str("{\"source\": \"bytes/1\"},");
    }
    s.write_all(format!("{:x}\r\n{body}\r\n", body.len()).as_bytes())
        .await
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_uploads_do_not_pin_the_budget() {
    let origin = TestOrigin::start().await;
    let sluice = Sluice::start(&[
        "--origin",
        &origin.url(),
        "--memory-budget",
        "16MiB",
        "--body-timeout",
        "2s",
    ]);
    let base = metric(&sluice, "sluice_memory_budget_in_use_bytes", "").await;
    let mut uploads = Vec::new();
    for _ in 0..16 {
        uploads.push(stalled_upload(sluice.addr, 100_000).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // They hold what they sent, not the 16 MiB manifest limit each: a new
    // archive is served meanwhile.
    let r = client()
        .post(sluice.url("/zip"))
        .body(r#"{"entries": [{"source": "bytes/1000"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let zip = r.bytes().await.unwrap();
    assert!(zip.starts_with(b"PK\x03\x04"));
    assert!(zip.windows(4).any(|w| w == b"PK\x05\x06"), "no end record");
    // At the body deadline each gets 408, and everything is given back.
    for s in &mut uploads {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        assert_eq!(raw_status(&out), 408, "{}", String::from_utf8_lossy(&out));
    }
    assert!(
        eventually(Duration::from_secs(3), || async {
            metric(&sluice, "sluice_memory_budget_in_use_bytes", "").await == base
                && metric(&sluice, "sluice_memory_budget_waiters", "").await == 0.0
        })
        .await
    );
    assert!(sluice.logged(&["request refused by a limit", "--body-timeout"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_upload_is_cut_by_the_minimum_rate() {
    let sluice = Sluice::start(&["--min-body-rate", "64KiB"]);
    let mut s = stalled_upload(sluice.addr, 1000).await;
    let started = Instant::now();
    let mut out = Vec::new();
    for _ in 0..40 {
        if s.write_all(b"1\r\n \r\n").await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(250), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    assert_eq!(raw_status(&out), 408, "{}", String::from_utf8_lossy(&out));
    assert!(String::from_utf8_lossy(&out).contains("--min-body-rate"));
    // The grace is 5 s; the default 60 s deadline was not what cut it.
    assert!(started.elapsed() < Duration::from_secs(10));
}

// ------------------------------------------------ 5. manifest costs

fn manifest(entries: usize, same_name: bool) -> String {
    let mut m = String::with_capacity(entries * 40 + 20);
    m.push_str("{\"entries\": [");
    for i in 0..entries {
        if i > 0 {
            m.push(',');
        }
        if same_name {
            m.push_str(&format!(
                "{{\"source\": \"bytes/{i}\", \"name\": \"same.jpg\"}}"
            ));
        } else {
            m.push_str(&format!("{{\"source\": \"d/{i:07}.jpg\"}}"));
        }
    }
    m.push_str("]}");
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_manifests_are_counted_planned_off_the_reactor_and_named_in_linear_time() {
    let origin = TestOrigin::start().await;
    let sluice = Sluice::start(&[
        "--origin",
        &origin.url(),
        "--memory-budget",
        "64MiB",
        "--zip-max-entries",
        "1000000",
    ]);
    let big = manifest(200_000, false);
    let same = manifest(20_000, true);
    let mut posts = Vec::new();
    for body in [big.clone(), big.clone(), big, same] {
        let url = sluice.url("/zip");
        posts.push(tokio::spawn(async move {
            let r = client().post(url).body(body).send().await.unwrap();
            // The head is enough: dropping the response ends the download.
            r.status().as_u16()
        }));
    }
    // While they are parsed and planned, other requests are answered.
    let mut slowest = Duration::ZERO;
    while !posts.iter().all(|p| p.is_finished()) {
        let t = Instant::now();
        let r = client().get(sluice.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        slowest = slowest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        slowest < Duration::from_secs(2),
        "/healthz took {slowest:?}"
    );
    let mut statuses = Vec::new();
    for p in posts {
        statuses.push(p.await.unwrap());
    }
    // The plans are counted: those that do not fit get 503, never more
    // memory than the budget allows.
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert_eq!(statuses[3], 200, "{statuses:?}");
    assert!(statuses[..3].contains(&200), "{statuses:?}");
    let peak = sluice.peak_rss();
    assert!(peak < (64 + 96) << 20, "peak RSS {} MiB", peak >> 20);
}

// ------------------------------------------------ 6. no deadlock at a small budget

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_size_reencodes_at_a_small_budget_degrade_instead_of_deadlocking() {
    let dir = std::env::temp_dir().join(format!("sluice-deadlock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = Command::new("convert")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/sunset.jpg"))
        .args(["-resize", "3500x2300!", "-quality", "90"])
        .arg(dir.join("big.jpg"))
        .status()
        .expect("ImageMagick's convert");
    assert!(made.success());
    let sluice = Sluice::start(&[
        "--origin",
        dir.to_str().unwrap(),
        "--memory-budget",
        "128MiB",
    ]);
    let mut requests = Vec::new();
    for n in 0..32 {
        let url = sluice.url(&format!("/img/_/rs:fit:0:0/q:95/cb:{n}/plain/big.jpg"));
        requests.push(tokio::spawn(async move {
            let r = client().get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            status
        }));
    }
    let mut statuses = Vec::new();
    for r in requests {
        statuses.push(r.await.unwrap());
    }
    let done = statuses.iter().filter(|s| **s == 200).count();
    // Before the fix, none of the 32 completed (all 503 after 20 s).
    assert!(done >= 8, "only {done} of 32 completed: {statuses:?}");
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 503 | 429)),
        "{statuses:?}"
    );
    let r = client()
        .get(sluice.url("/img/_/w:100/plain/big.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------ 7. HTTP/1.1 hygiene

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_headers_are_required_once() {
    let sluice = Sluice::start(&[]);
    let addr = sluice.addr;
    let ask = |req: &'static [u8]| async move {
        raw_status(&raw_exchange(addr, req, Duration::from_secs(3)).await.0)
    };
    assert_eq!(
        ask(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").await,
        400
    );
    assert_eq!(
        ask(b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n").await,
        400
    );
    assert_eq!(
        ask(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await,
        200
    );
    assert_eq!(ask(b"GET /healthz HTTP/1.0\r\n\r\n").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunked_upload_is_400_and_closes() {
    let sluice = Sluice::start(&[]);
    let (out, closed) = raw_exchange(
        sluice.addr,
        b"POST /zip HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    assert_eq!(raw_status(&out), 400, "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_path_segment_is_404_without_a_warning() {
    let sluice = Sluice::start(&[]);
    let target = format!("/{}.jpg", "a".repeat(300));
    let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let (out, _) = raw_exchange(sluice.addr, req.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(raw_status(&out), 404);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !sluice.logged(&["\"level\":\"WARN\""]),
        "{:?}",
        sluice.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_are_refused_with_a_log_line() {
    let sluice = Sluice::start(&[]);
    // Over --max-header-bytes (32 KiB) but within hyper's buffer: our 431.
    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: {}\r\nConnection: close\r\n\r\n",
        "c".repeat(40_000)
    );
    let (out, _) = raw_exchange(sluice.addr, req.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(raw_status(&out), 431);
    // A long request line: 414.
    let req = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "p".repeat(9000)
    );
    let (out, _) = raw_exchange(sluice.addr, req.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(raw_status(&out), 414);
    // Larger than hyper's buffer: hyper's own 431, logged and counted too.
    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
        "c".repeat(100_000)
    );
    let (out, _) = raw_exchange(sluice.addr, req.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(raw_status(&out), 431);
    assert!(
        eventually(Duration::from_secs(2), || async {
            sluice.logged(&["request refused by a limit", "431"])
                && sluice.logged(&["request refused by a limit", "414"])
                && sluice.logged(&["request head too large"])
        })
        .await,
        "{:?}",
        sluice.logs()
    );
    assert_eq!(
        metric(&sluice, "sluice_connections_closed_total", "head_too_large").await,
        1.0
    );
}
