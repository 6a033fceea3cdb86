//! The fault-injection suite: misbehaving origins (a hyper origin that
//! resets, stalls and errs on request, and a raw one that breaks HTTP at
//! the byte level) and misbehaving clients (slow, silent, vanishing,
//! smuggling, hostile manifests), against the real binary.
//!
//! After every scenario the same invariants are checked (`Harness::check`):
//! - the server still answers;
//! - the in-flight gauges (requests, origin streams, connections, budget
//!   bytes, budget waiters) are back at their baseline;
//! - no file descriptor leaked: client sockets and other descriptors are
//!   back at the baseline, pipes within the spare list's bound (64 pipes),
//!   origin connections within the pools' bound;
//! - peak RSS stays within the budget plus [`HEADROOM`].
//!
//! Each scenario also checks its own outcome: completed downloads are
//! byte-exact (pattern bodies, zips judged by Python's zipfile), failed
//! ones visibly failed (an error status, or a transfer that aborts).
#![allow(clippy::unwrap_used)]

mod common;
mod zip_readers;

use std::time::{Duration, Instant};

use common::{
    client, eventually, is_pattern, metric, raw_exchange, raw_status, FdCensus, RawOrigin, Sluice,
    TestOrigin,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BUDGET: u64 = 64 << 20;
/// RSS allowed beyond the budget: the binary, the runtime and its threads'
/// stacks, hyper's per-connection buffers (1000 idle connections below),
/// allocator slack. Measured peaks under this suite were well inside it.
const HEADROOM: u64 = 96 << 20;

/// Gauges that must return to where they were after every scenario.
const GAUGES: [&str; 5] = [
    "sluice_http_requests_in_flight",
    "sluice_upstream_streams_in_flight",
    "sluice_connections_open",
    "sluice_memory_budget_in_use_bytes",
    "sluice_memory_budget_waiters",
];

struct Harness {
    sluice: Sluice,
    ports: [u16; 2],
    gauges: Vec<f64>,
    fds: FdCensus,
}

impl Harness {
    async fn start(origin: &str) -> Harness {
        let sluice = Sluice::start(&[
            "--origin",
            origin,
            "--memory-budget",
            "64MiB",
            "--first-byte-timeout",
            "1s",
            "--idle-timeout",
            "1s",
            "--header-timeout",
            "2s",
            "--keepalive-timeout",
            "5s",
            "--body-timeout",
            "3s",
            "--processing-timeout",
            "5s",
        ]);
        let ports = [sluice.addr.port(), sluice.admin.port()];
        let mut h = Harness {
            sluice,
            ports,
            gauges: Vec::new(),
            fds: FdCensus::default(),
        };
        h.gauges = h.read_gauges().await;
        h.fds = FdCensus::of(h.sluice.pid(), &h.ports);
        h
    }

    async fn read_gauges(&self) -> Vec<f64> {
        let mut out = Vec::new();
        for g in GAUGES {
            out.push(metric(&self.sluice, g, "").await);
        }
        out
    }

    /// The invariants every scenario must leave true.
    async fn check(&self, scenario: &str) {
        let r = client().get(self.sluice.url("/healthz")).send().await;
        assert!(
            r.is_ok_and(|r| r.status() == 200),
            "{scenario}: the server does not answer"
        );
        let settled = eventually(Duration::from_secs(8), || async {
            self.read_gauges().await == self.gauges
        })
        .await;
        assert!(
            settled,
            "{scenario}: gauges {:?} are {:?}, were {:?}",
            GAUGES,
            self.read_gauges().await,
            self.gauges
        );
        let base = self.fds;
        let fds_ok = eventually(Duration::from_secs(8), || async {
            let now = FdCensus::of(self.sluice.pid(), &self.ports);
            now.served <= base.served
                && now.other <= base.other
                && now.pipes <= 128
                && now.outgoing <= 512 + base.outgoing
        })
        .await;
        assert!(
            fds_ok,
            "{scenario}: descriptors {:?}, baseline {base:?}",
            FdCensus::of(self.sluice.pid(), &self.ports)
        );
        let peak = self.sluice.peak_rss();
        assert!(
            peak <= BUDGET + HEADROOM,
            "{scenario}: peak RSS {} MiB over budget + headroom",
            peak >> 20
        );
    }
}

/// Read a response body to its end: `Ok` with the bytes, or `Err` when the
/// transfer failed (what a client sees of an aborted response).
async fn body_of(r: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut r = r;
    let mut out = Vec::new();
    loop {
        match r.chunk().await {
            Ok(Some(c)) => out.extend_from_slice(&c),
            Ok(None) => return Ok(out),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn raw_get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_from_an_http_origin_and_hostile_clients() {
    raise_fd_limit();
    let origin = TestOrigin::start().await;
    let h = Harness::start(&origin.url()).await;
    let s = &h.sluice;
    let c = client();

    // --- origin faults
    let r = c.get(s.url("/reset/200000")).send().await.unwrap();
    assert!(body_of(r).await.is_err(), "a reset body must abort");
    h.check("origin reset mid-body").await;

    let t = Instant::now();
    let r = c.get(s.url("/stall-headers")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert!(t.elapsed() < Duration::from_secs(5));
    h.check("origin stalls before headers").await;

    let r = c.get(s.url("/stall-body/100000")).send().await.unwrap();
    assert!(body_of(r).await.is_err(), "a stalled body must abort");
    h.check("origin stalls mid-body").await;

    for code in [500, 503, 404] {
        let r = c
            .get(s.url(&format!("/status/{code}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code);
    }
    h.check("origin 5xx and 4xx").await;

    let r = c
        .get(s.url("/img/_/w:50/plain/status/500"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let r = c
        .get(s.url("/img/_/w:50/plain/reset/5000"))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_server_error() || r.status() == 422,
        "{}",
        r.status()
    );
    h.check("image source fails").await;

    let zip = c
        .post(s.url("/zip"))
        .body(r#"{"entries": [{"source": "bytes/5000"}, {"source": "stall-headers"}, {"source": "status/503"}, {"source": "bytes/7"}]}"#)
        .send()
        .await
        .unwrap();
    let zip = body_of(zip).await.expect("a skipping archive completes");
    let path = zip_readers::temp_file("faults-skip", &zip);
    let names: Vec<String> = zip_readers::python_list(&path)
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["5000", "7", "sluice-errors.txt"], "{names:?}");
    assert!(is_pattern(0, &zip_readers::python_read(&path, "5000")));
    assert_eq!(zip_readers::python_read(&path, "5000").len(), 5000);
    let r = c
        .post(s.url("/zip"))
        .body(r#"{"on_error": "abort", "entries": [{"source": "bytes/5000"}, {"source": "reset/70000"}]}"#)
        .send()
        .await
        .unwrap();
    assert!(body_of(r).await.is_err(), "an aborting archive must abort");
    h.check("zip entries fail").await;

    // --- slow readers
    let mut r = c.get(s.url("/bytes/33554432")).send().await.unwrap();
    let mut got = 0usize;
    while got < 2 << 20 {
        got += r.chunk().await.unwrap().unwrap().len();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(r);
    h.check("a slow reader goes away").await;

    // --- 1000 idle keep-alive connections
    let mut idle = Vec::new();
    for _ in 0..1000 {
        let mut conn = TcpStream::connect(s.addr).await.unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        idle.push(conn);
    }
    for conn in &mut idle {
        let mut buf = [0u8; 256];
        let n = conn.read(&mut buf).await.unwrap();
        assert_eq!(raw_status(&buf[..n]), 200);
    }
    let r = c.get(s.url("/bytes/1000")).send().await.unwrap();
    assert!(is_pattern(0, &body_of(r).await.unwrap()));
    drop(idle);
    h.check("1000 idle keep-alive connections").await;

    // --- abrupt disconnects in every route
    let mut r = c.get(s.url("/bytes/50000000")).send().await.unwrap();
    let _ = r.chunk().await;
    drop(r);
    let mut r = c
        .get(s.url("/text/3000000"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    let _ = r.chunk().await;
    drop(r);
    let img = tokio::spawn({
        let url = s.url("/img/_/w:300/cb:1/plain/slow/200000?delay_ms=20&chunk=4000");
        async move { c_get(&url).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    img.abort();
    let mut r = c
        .post(s.url("/zip"))
        .body(r#"{"entries": [{"source": "bytes/20000000"}, {"source": "bytes/20000000"}]}"#)
        .send()
        .await
        .unwrap();
    let _ = r.chunk().await;
    drop(r);
    h.check("clients vanish mid-response").await;

    // --- request smuggling forms
    for smuggle in [
        "POST /zip HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /bytes/31 HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /zip HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nGET /bytes/32 HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /zip HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /bytes/33 HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /bytes/34 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ] {
        let (out, closed) =
            raw_exchange(s.addr, smuggle.as_bytes(), Duration::from_secs(3)).await;
        let status = raw_status(&out);
        assert!(
            (400..500).contains(&status) || status == 501,
            "{smuggle:?}: {}",
            String::from_utf8_lossy(&out)
        );
        assert!(closed, "{smuggle:?}: the connection stayed open");
    }
    for hidden in ["/bytes/31", "/bytes/32", "/bytes/33", "/bytes/34"] {
        assert!(
            origin.headers_of(hidden).is_none(),
            "a smuggled request reached the origin: {hidden}"
        );
    }
    h.check("request smuggling").await;

    // --- traversal
    for target in [
        "/%2e%2e/bytes/1",
        "/..%2fbytes/1",
        "/a/../../bytes/1",
        "/..%5cbytes/1",
    ] {
        let (out, _) = raw_exchange(s.addr, &raw_get(target), Duration::from_secs(3)).await;
        assert_eq!(raw_status(&out), 403, "{target}");
    }
    h.check("traversal").await;

    // --- zip-slip names
    let zip = c
        .post(s.url("/zip"))
        .body(
            r#"{"entries": [
            {"source": "bytes/10", "name": "../../evil.txt"},
            {"source": "bytes/11", "name": "/etc/passwd"},
            {"source": "bytes/12", "name": "C:\\Windows\\evil.dll"},
            {"source": "bytes/13", "name": "a/../../b/./c.txt"},
            {"source": "bytes/14", "name": "CON"}
        ]}"#,
        )
        .send()
        .await
        .unwrap();
    let zip = body_of(zip).await.unwrap();
    let path = zip_readers::temp_file("faults-slip", &zip);
    let listed = zip_readers::check_all(&path);
    let names: Vec<&str> = listed.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "evil.txt",
            "etc/passwd",
            "Windows/evil.dll",
            "a/b/c.txt",
            "_CON"
        ]
    );
    for (entry, len) in listed.iter().zip(10..) {
        let data = zip_readers::python_read(&path, &entry.name);
        assert_eq!(data.len(), len);
        assert!(is_pattern(0, &data), "{}", entry.name);
    }
    h.check("zip-slip names").await;

    // --- numeric manifest bombs
    for bomb in [
        r#"{"entries": [{"source": "bytes/1", "size": 18446744073709551615, "crc32": "00000000"}]}"#,
        r#"{"entries": [{"source": "bytes/1", "size": 1, "crc32": 99999999999}]}"#,
        r#"{"entries": [{"source": "bytes/1", "size": -1}]}"#,
        r#"{"entries": [{"source": "bytes/1", "mtime": 1e300}]}"#,
    ] {
        let r = c.post(s.url("/zip")).body(bomb).send().await.unwrap();
        assert_eq!(r.status(), 422, "{bomb}");
    }
    let r = c
        .post(s.url("/zip"))
        .header("range", "bytes=18446744073709551614-")
        .body(r#"{"entries": [{"source": "bytes/1", "name": "a.jpg", "size": 1, "crc32": "00000000"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let r = c
        .post(s.url("/zip"))
        .body(r#"{"entries": [{"source": "bytes/1", "mtime": 9223372036854775807}]}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status() == 200 || r.status() == 422, "{}", r.status());
    let _ = body_of(r).await;
    h.check("numeric manifest bombs").await;

    // --- the defects of issue 12, in the same harness
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(s.addr).await.unwrap());
    }
    let mut upload = TcpStream::connect(s.addr).await.unwrap();
    upload
        .write_all(b"POST /zip HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"entries\": [   \r\n")
        .await
        .unwrap();
    let long = format!("/{}.jpg", "n".repeat(300));
    let (out, _) = raw_exchange(s.addr, &raw_get(&long), Duration::from_secs(3)).await;
    assert_eq!(raw_status(&out), 404);
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), upload.read_to_end(&mut out)).await;
    assert_eq!(raw_status(&out), 408);
    for conn in &mut silent {
        let mut b = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut b)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "a silent connection stayed open"
        );
    }
    drop(silent);
    h.check("silent connections, a stalled upload, an overlong name")
        .await;
}

async fn c_get(url: &str) -> Option<u16> {
    let r = client().get(url).send().await.ok()?;
    Some(r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_of_an_origin_that_breaks_http() {
    let raw = RawOrigin::start().await;
    let h = Harness::start(&raw.url()).await;
    let s = &h.sluice;
    let c = client();

    for (path, expected) in [("/conflict", 502), ("/huge-head", 502), ("/garbage", 502)] {
        let t = Instant::now();
        let r = c.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), expected, "{path}");
        assert!(t.elapsed() < Duration::from_secs(5), "{path}");
    }
    h.check("broken heads").await;

    let no_follow = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow.get(s.url("/redirect")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/elsewhere");
    h.check("a redirect passes through").await;

    // More bytes than Content-Length: the client gets exactly the length.
    let r = c.get(s.url("/long")).send().await.unwrap();
    assert_eq!(body_of(r).await.unwrap(), b"0123456789");
    // A clean close before the length, a broken chunk after good ones:
    // the transfer aborts (before or after the head reached the client).
    for path in ["/fin-early", "/bad-chunk"] {
        let aborted = match c.get(s.url(path)).send().await {
            Err(_) => true,
            Ok(r) => body_of(r).await.is_err(),
        };
        assert!(aborted, "{path}: a broken body must abort the transfer");
    }
    // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3).
    let r = c.get(s.url("/te-and-cl")).send().await.unwrap();
    assert_eq!(body_of(r).await.unwrap(), b"hello");
    h.check("broken bodies").await;

    // The same faults as zip entries and image sources.
    let zip = c
        .post(s.url("/zip"))
        .body(r#"{"entries": [{"source": "conflict"}, {"source": "garbage"}, {"source": "long", "name": "long.bin"}]}"#)
        .send()
        .await
        .unwrap();
    let zip = body_of(zip).await.unwrap();
    let path = zip_readers::temp_file("faults-raw", &zip);
    let listed = zip_readers::python_list(&path);
    let names: Vec<&str> = listed.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["long.bin", "sluice-errors.txt"]);
    assert_eq!(zip_readers::python_read(&path, "long.bin"), b"0123456789");
    let r = c
        .post(s.url("/zip"))
        .body(r#"{"entries": [{"source": "long"}, {"source": "fin-early"}]}"#)
        .send()
        .await
        .unwrap();
    assert!(
        body_of(r).await.is_err(),
        "an entry cut short must abort the archive"
    );
    for path in ["/img/_/w:10/plain/garbage", "/img/_/w:10/plain/huge-head"] {
        let r = c.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 502, "{path}");
    }
    h.check("broken origins behind zips and images").await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            raw.open.load(std::sync::atomic::Ordering::SeqCst) <= 1
        })
        .await,
        "connections to the broken origin stay open"
    );
}

/// 1000 connections need more than the common soft limit of 1024
/// descriptors in the test process.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}
