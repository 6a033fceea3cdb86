//! Test harness shared by the integration tests: the real `sluice` binary on
//! ephemeral loopback ports, and a real HTTP origin on loopback whose
//! behaviour each test controls through the request path.
//!
//! Test origin paths (all bodies are generated on the fly, never held whole):
//! - `/bytes/{n}`: n bytes of [`pattern`], Content-Length set, ETag `"b{n}"`,
//!   honours `Range: bytes=a-b` / `If-Range` and `If-None-Match`.
//! - `/slow/{n}?delay_ms=D&chunk=C`: n bytes in chunks of C with D ms between.
//! - `/reset/{n}`: announces 2n bytes, sends n, then resets the connection.
//! - `/status/{code}`: that status with a short text body.
//! - `/stall-headers`: never answers.
//! - `/stall-body/{n}`: sends n bytes, then stalls forever.
//! - `/text/{n}?ct=TYPE&encoding=gzip`: compressible text (optionally gzipped).
//! - `/echo-headers`: the request headers, one `name: value` per line.
//! - `/sample/{file}`: a file of the bundled `samples/` (image/jpeg).
//! - `/b/...`: the same as `/...`, so `http://origin/b` works as a base path.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The byte at offset `i` of every generated body: a 251-periodic ramp, so
/// any slice can be checked and chunks are cheap to make.
pub fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

const PERIOD: usize = 251;
const MAX_CHUNK: usize = 256 * 1024;
static PATTERN: std::sync::LazyLock<Vec<u8>> =
    std::sync::LazyLock::new(|| (0..(MAX_CHUNK + PERIOD) as u64).map(pattern).collect());

pub fn pattern_bytes(start: u64, len: usize) -> Vec<u8> {
    (start..start + len as u64).map(pattern).collect()
}

/// `len` (≤ 256 KiB) pattern bytes from offset `start`, without a byte loop.
fn pattern_chunk(start: u64, len: usize) -> Bytes {
    let off = (start % PERIOD as u64) as usize;
    Bytes::copy_from_slice(&PATTERN[off..off + len.min(MAX_CHUNK)])
}

/// Check that `data` is the pattern from offset `start`.
pub fn is_pattern(start: u64, data: &[u8]) -> bool {
    data.iter()
        .enumerate()
        .all(|(i, b)| *b == pattern(start + i as u64))
}

// ---------------------------------------------------------------- sluice

/// A running `sluice` process. Killed on drop.
pub struct Sluice {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Sluice {
    /// Start the binary with `args` plus ephemeral listeners and JSON logs,
    /// and wait until it reports its addresses.
    pub fn start(args: &[&str]) -> Sluice {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Sluice {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn sluice");
        let stdout = child.stdout.take().expect("stdout");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("\"listening\"") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line.clone());
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "sluice did not report its listeners; logs: {:?}",
                    logs.lock().unwrap()
                );
            }
        };
        let addr = json_field(&line, "addr").parse().expect("addr");
        let admin = json_field(&line, "admin").parse().expect("admin");
        Sluice {
            child,
            addr,
            admin,
            logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size (VmHWM) in bytes.
    pub fn peak_rss(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:") * 1024
    }

    /// Current resident set size (VmRSS) in bytes.
    pub fn rss(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:") * 1024
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Send SIGTERM (the way Kubernetes stops a pod).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("field in /proc status")
}

/// A string field of a one-line JSON object (enough for our own log lines).
pub fn json_field(line: &str, key: &str) -> String {
    let needle = format!("\"{key}\":");
    let start = line
        .find(&needle)
        .unwrap_or_else(|| panic!("{key} in {line}"))
        + needle.len();
    let rest = line[start..].trim_start();
    if let Some(s) = rest.strip_prefix('"') {
        s[..s.find('"').expect("closing quote")].to_string()
    } else {
        rest[..rest.find([',', '}']).unwrap_or(rest.len())].to_string()
    }
}

// ---------------------------------------------------------------- origin

type OriginBody = BoxBody<Bytes, std::io::Error>;

/// What the test origin has seen.
#[derive(Default)]
pub struct OriginLog {
    /// Request headers, by request path.
    pub requests: Vec<(String, http::HeaderMap)>,
    /// When each response body was dropped before its end (connection closed).
    pub bodies_dropped: Vec<Instant>,
    /// Connections currently open.
    pub open_connections: usize,
    /// Connections accepted so far.
    pub connections_accepted: usize,
    /// Body bytes handed to hyper so far, over all responses.
    pub bytes_sent: u64,
}

pub struct TestOrigin {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<OriginLog>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestOrigin {
    /// Start on an ephemeral loopback port, inside the current tokio runtime.
    pub async fn start() -> TestOrigin {
        Self::start_with(None).await
    }

    /// The same origin behind TLS with the given certificate chain and key.
    pub async fn start_tls(cert_pem: &std::path::Path, key_pem: &std::path::Path) -> TestOrigin {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_pem)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(key_pem).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        Self::start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> TestOrigin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(OriginLog::default()));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let state = log.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(p) => p, Err(_) => continue },
                    _ = &mut rx => break,
                };
                let state = state.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve_origin_connection(stream, state).await,
                        Some(acceptor) => {
                            if let Ok(tls_stream) = acceptor.accept(stream).await {
                                serve_origin_connection(tls_stream, state).await
                            }
                        }
                    }
                });
            }
        });
        TestOrigin {
            addr,
            log,
            _shutdown: tx,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn open_connections(&self) -> usize {
        self.log.lock().unwrap().open_connections
    }

    pub fn connections_accepted(&self) -> usize {
        self.log.lock().unwrap().connections_accepted
    }

    pub fn bytes_sent(&self) -> u64 {
        self.log.lock().unwrap().bytes_sent
    }

    pub fn bodies_dropped(&self) -> Vec<Instant> {
        self.log.lock().unwrap().bodies_dropped.clone()
    }

    pub fn headers_of(&self, path: &str) -> Option<http::HeaderMap> {
        let log = self.log.lock().unwrap();
        log.requests
            .iter()
            .rev()
            .find(|(p, _)| p == path)
            .map(|(_, h)| h.clone())
    }
}

async fn serve_origin_connection<I>(io: I, state: Arc<Mutex<OriginLog>>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    {
        let mut log = state.lock().unwrap();
        log.open_connections += 1;
        log.connections_accepted += 1;
    }
    let svc_state = state.clone();
    let svc = service_fn(move |req| respond(svc_state.clone(), req));
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
    state.lock().unwrap().open_connections -= 1;
}

/// A throwaway CA and a certificate it signed for localhost/127.0.0.1,
/// made with the openssl command line. Returns (ca.pem, leaf.pem, leaf.key).
pub fn make_test_pki(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec[..],
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=sluice test CA",
            "-days",
            "2",
        ][..],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec[..],
        &[
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ][..],
    ]
    .concat());
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    )
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn respond(
    state: Arc<Mutex<OriginLog>>,
    req: Request<Incoming>,
) -> Result<Response<OriginBody>, Infallible> {
    let path = req.uri().path().to_string();
    state
        .lock()
        .unwrap()
        .requests
        .push((path.clone(), req.headers().clone()));
    let q = query(&req);
    // `/b/...` serves what `/...` serves: a base path for `--origin http://host/b`.
    let routed = path
        .strip_prefix("/b")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(&path);
    let segments: Vec<&str> = routed.trim_start_matches('/').split('/').collect();
    let num = |i: usize| {
        segments
            .get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let resp = match segments.first().copied().unwrap_or("") {
        "bytes" => bytes_response(&req, num(1), state),
        "slow" => {
            let delay = q.get("delay_ms").and_then(|v| v.parse().ok()).unwrap_or(10);
            let chunk = q
                .get("chunk")
                .and_then(|v| v.parse().ok())
                .unwrap_or(16 * 1024);
            let body = generated(0, num(1), chunk, Duration::from_millis(delay), None, state);
            with_len(Response::new(body), num(1))
        }
        "reset" => {
            let n = num(1);
            let body = generated(0, n, 64 * 1024, Duration::ZERO, Some(Fail::Reset), state);
            with_len(Response::new(body), 2 * n)
        }
        "stall-body" => {
            let n = num(1);
            let body = generated(0, n, 64 * 1024, Duration::ZERO, Some(Fail::Stall), state);
            with_len(Response::new(body), 2 * n.max(1))
        }
        "stall-headers" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            text(StatusCode::OK, "late")
        }
        "status" => {
            let code = StatusCode::from_u16(num(1) as u16).unwrap_or(StatusCode::IM_A_TEAPOT);
            text(code, "origin says no")
        }
        "text" => text_response(num(1) as usize, &q),
        "sample" => {
            let name = segments.get(1).copied().unwrap_or("");
            let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("samples")
                .join(name);
            match std::fs::read(&file) {
                Ok(data) if !name.contains("..") => {
                    let mut r = text(StatusCode::OK, "");
                    let len = data.len();
                    *r.body_mut() = Full::new(Bytes::from(data))
                        .map_err(|never| match never {})
                        .boxed();
                    r.headers_mut()
                        .insert("content-type", HeaderValue::from_static("image/jpeg"));
                    r.headers_mut()
                        .insert("content-length", HeaderValue::from(len));
                    r
                }
                _ => text(StatusCode::NOT_FOUND, "no such sample"),
            }
        }
        "echo-headers" => {
            let mut out = String::new();
            for (k, v) in req.headers() {
                out.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
            }
            text(StatusCode::OK, &out)
        }
        _ => text(StatusCode::NOT_FOUND, "no such test path"),
    };
    Ok(resp)
}

fn text(status: StatusCode, s: &str) -> Response<OriginBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(s.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    r
}

fn with_len(mut r: Response<OriginBody>, len: u64) -> Response<OriginBody> {
    r.headers_mut()
        .insert("content-length", HeaderValue::from(len));
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    r
}

fn bytes_response(
    req: &Request<Incoming>,
    n: u64,
    state: Arc<Mutex<OriginLog>>,
) -> Response<OriginBody> {
    let etag = format!("\"b{n}\"");
    let h = req.headers();
    if h.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        let mut r = text(StatusCode::NOT_MODIFIED, "");
        *r.body_mut() = http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed();
        r.headers_mut()
            .insert("etag", HeaderValue::from_str(&etag).unwrap());
        return r;
    }
    let (status, start, len) = served_range(h, &etag, n);
    let body = generated(start, len, 64 * 1024, Duration::ZERO, None, state);
    let mut r = with_len(Response::new(body), len);
    *r.status_mut() = status;
    r.headers_mut()
        .insert("etag", HeaderValue::from_str(&etag).unwrap());
    r.headers_mut()
        .insert("accept-ranges", HeaderValue::from_static("bytes"));
    r.headers_mut().insert(
        "last-modified",
        HeaderValue::from_static("Tue, 14 Nov 2023 22:13:20 GMT"),
    );
    r.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("public, max-age=60"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        r.headers_mut().insert(
            "content-range",
            HeaderValue::from_str(&format!("bytes {}-{}/{}", start, start + len - 1, n)).unwrap(),
        );
    }
    r
}

/// What a simple test origin serves for a body of `n` bytes with `etag`:
/// (status, first byte, length), honouring `Range: bytes=a-b` / `bytes=a-`
/// and `If-Range`.
pub fn served_range(h: &http::HeaderMap, etag: &str, n: u64) -> (StatusCode, u64, u64) {
    let if_range_ok = h
        .get("if-range")
        .is_none_or(|v| v.to_str().ok() == Some(etag));
    let range = h
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| {
            let a: u64 = a.parse().ok()?;
            let b: u64 = if b.is_empty() {
                n.checked_sub(1)?
            } else {
                b.parse().ok()?
            };
            (a <= b && b < n).then_some((a, b))
        });
    match range {
        Some((a, b)) if if_range_ok => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        _ => (StatusCode::OK, 0, n),
    }
}

fn text_response(n: usize, q: &HashMap<String, String>) -> Response<OriginBody> {
    let line = b"{\"sluice\": \"streams bodies in bounded chunks\", \"n\": 12345}\n";
    let body: Vec<u8> = line.iter().copied().cycle().take(n).collect();
    let ct = q
        .get("ct")
        .map(|c| c.replace("%2F", "/"))
        .unwrap_or_else(|| "application/json".into());
    let (body, encoding) = match q.get("encoding").map(String::as_str) {
        Some("gzip") => (gzip(&body), Some("gzip")),
        _ => (body, None),
    };
    let len = body.len();
    let mut r = text(StatusCode::OK, "");
    *r.body_mut() = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_str(&ct).unwrap());
    r.headers_mut()
        .insert("content-length", HeaderValue::from(len));
    r.headers_mut()
        .insert("etag", HeaderValue::from_static("\"t1\""));
    if let Some(e) = encoding {
        r.headers_mut()
            .insert("content-encoding", HeaderValue::from_static(e));
    }
    r
}

/// Gzip in memory (test bodies only), using the same codec crate as sluice
/// on a blocking runtime-free path.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use async_compression::tokio::bufread::GzipEncoder;
    use tokio::io::AsyncReadExt;
    futures_util::FutureExt::now_or_never(async {
        let mut out = Vec::new();
        GzipEncoder::new(data).read_to_end(&mut out).await.unwrap();
        out
    })
    .expect("in-memory gzip completes without waiting")
}

#[derive(Clone, Copy)]
enum Fail {
    Reset,
    Stall,
}

/// A generated body of `len` bytes starting at pattern offset `start`.
fn generated(
    start: u64,
    len: u64,
    chunk: usize,
    delay: Duration,
    fail: Option<Fail>,
    state: Arc<Mutex<OriginLog>>,
) -> OriginBody {
    struct Guard {
        state: Arc<Mutex<OriginLog>>,
        done: bool,
    }
    impl Drop for Guard {
        fn drop(&mut self) {
            if !self.done {
                self.state
                    .lock()
                    .unwrap()
                    .bodies_dropped
                    .push(Instant::now());
            }
        }
    }
    let guard = Guard { state, done: false };
    let stream = futures_util::stream::unfold(
        (start, start + len, guard, false),
        move |(pos, end, mut guard, finished)| async move {
            if finished {
                return None;
            }
            if pos >= end {
                match fail {
                    Some(Fail::Reset) => {
                        // Let hyper flush what it has, so the failure is
                        // really mid-body and not before the headers.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        return Some((
                            Err(std::io::Error::new(
                                std::io::ErrorKind::ConnectionReset,
                                "reset",
                            )),
                            (pos, end, guard, true),
                        ));
                    }
                    Some(Fail::Stall) => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return None;
                    }
                    None => {
                        guard.done = true;
                        drop(guard);
                        return None;
                    }
                }
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let n = (end - pos).min(chunk.min(MAX_CHUNK) as u64) as usize;
            let data = pattern_chunk(pos, n);
            guard.state.lock().unwrap().bytes_sent += n as u64;
            Some((Ok(Frame::data(data)), (pos + n as u64, end, guard, false)))
        },
    );
    StreamBody::new(stream).boxed()
}

/// A reqwest client that never decompresses, so tests see the wire.
/// The odd-case images (CMYK, EXIF orientations, truncated and corrupt
/// files), generated once per checkout by tests/data/make-odd-images.sh
/// (needs imagemagick, libvips-tools, libjpeg-turbo-progs; see
/// docs/development.md). Tests of one binary run in parallel: the lock
/// makes the first caller generate while the others wait.
pub fn odd_dir() -> std::path::PathBuf {
    static GENERATE: Mutex<()> = Mutex::new(());
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/data/odd");
    let _one_at_a_time = GENERATE.lock().unwrap_or_else(|e| e.into_inner());
    if !dir.join("INDEX.txt").exists() {
        let status = Command::new("bash")
            .arg(root.join("tests/data/make-odd-images.sh"))
            .arg(&dir)
            .status()
            .expect("run make-odd-images.sh");
        assert!(status.success(), "make-odd-images.sh failed");
    }
    dir
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Real photographs under `samples/` (a few hundred KB to a few MB each).
pub const SAMPLE_PHOTOS: [&str; 6] = [
    "sunset.jpg",
    "dandelions.jpg",
    "dogs-portrait.jpg",
    "grace_hopper.jpg",
    "picos-de-europa.jpg",
    "rocket.jpg",
];

/// The admin listener's `/metrics` text.
pub async fn metrics_text(sluice: &Sluice) -> String {
    client()
        .get(sluice.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `sluice_upstream_spliced_bytes_total` from the admin listener.
pub async fn spliced_bytes(sluice: &Sluice) -> u64 {
    let text = metrics_text(sluice).await;
    text.lines()
        .find_map(|l| l.strip_prefix("sluice_upstream_spliced_bytes_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("the spliced-bytes counter is exported") as u64
}

// ------------------------------------------------------------ probes

impl Sluice {
    /// File descriptors the process has open now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Whether some log line contains every one of `needles`.
    pub fn logged(&self, needles: &[&str]) -> bool {
        self.logs()
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
    }
}

/// The sum of every sample of `name` on `/metrics` whose labels contain
/// `labels` (e.g. `reason="header_timeout"`; "" for all).
pub async fn metric(sluice: &Sluice, name: &str, labels: &str) -> f64 {
    let text = metrics_text(sluice).await;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, label_set) = match series.split_once('{') {
                Some((m, rest)) => (m, rest),
                None => (series, ""),
            };
            (metric == name && label_set.contains(labels)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Poll `check` every 50 ms until it holds or `within` passes; returns
/// whether it held.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Write `request` as it is on a new connection and read until the server
/// closes it (or `within` passes). Returns what was read, and whether the
/// server closed the connection.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], within: Duration) -> (Vec<u8>, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (out, closed)
}

/// The status code of a raw HTTP/1 response (0 when there is none).
pub fn raw_status(response: &[u8]) -> u16 {
    String::from_utf8_lossy(response)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

// ------------------------------------------------------------ raw origin

/// An origin that misbehaves on purpose, at the byte level, which a hyper
/// server cannot: each path answers with a canned (often broken) response.
/// - `/conflict`: two different Content-Lengths.
/// - `/huge-head`: response header lines without end (up to 100 MB).
/// - `/long`: Content-Length 10, then 20 bytes.
/// - `/garbage`: not HTTP at all.
/// - `/redirect`: a 302 with a Location.
/// - `/fin-early`: Content-Length 100000, 1000 bytes, then a clean close.
/// - `/bad-chunk`: chunked, with a size line that is not hex.
/// - `/te-and-cl`: Transfer-Encoding: chunked and a Content-Length.
/// - anything else: 200 with `ok`.
pub struct RawOrigin {
    pub addr: SocketAddr,
    /// Connections open now.
    pub open: Arc<std::sync::atomic::AtomicUsize>,
}

impl RawOrigin {
    pub async fn start() -> RawOrigin {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = open.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let count = count.clone();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                count.fetch_sub(1, Ordering::SeqCst);
                                return;
                            }
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).to_string();
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let path = match path.strip_prefix("/b/") {
                        Some(rest) => format!("/{rest}"),
                        None => path,
                    };
                    let _ = match path.as_str() {
                        "/conflict" => s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!").await,
                        "/huge-head" => {
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
                            let line = format!("x-pad: {}\r\n", "a".repeat(1000));
                            let mut sent = 0usize;
                            while sent < 100 << 20 {
                                if s.write_all(line.as_bytes()).await.is_err() {
                                    break;
                                }
                                sent += line.len();
                            }
                            Ok(())
                        }
                        "/long" => {
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789ABCDEFGHIJ").await;
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            Ok(())
                        }
                        "/garbage" => s.write_all(b"NOT HTTP AT ALL\r\n\r\n").await,
                        "/redirect" => s.write_all(b"HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n").await,
                        "/fin-early" => {
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n").await;
                            let _ = s.write_all(&[7u8; 1000]).await;
                            s.shutdown().await
                        }
                        "/bad-chunk" => s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n").await,
                        "/te-and-cl" => s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n").await,
                        _ => s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await,
                    };
                    let _ = s.shutdown().await;
                    count.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        RawOrigin { addr, open }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

// ------------------------------------------------------------ fd census

/// What a process's file descriptors are, by kind, so a test can say
/// which kind leaked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FdCensus {
    /// TCP sockets whose local port is one of `ports` (client connections
    /// and the listeners themselves).
    pub served: usize,
    /// Other TCP sockets (connections to origins).
    pub outgoing: usize,
    pub pipes: usize,
    /// Files, eventfds, epoll, anything else.
    pub other: usize,
}

impl FdCensus {
    /// Count `pid`'s descriptors; `ports` are the process's listening ports.
    pub fn of(pid: u32, ports: &[u16]) -> FdCensus {
        let mut local_port = HashMap::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let Ok(text) = std::fs::read_to_string(table) else {
                continue;
            };
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 10 {
                    continue;
                }
                let port = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    .unwrap_or(0);
                local_port.insert(f[9].to_string(), port);
            }
        }
        let mut c = FdCensus::default();
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return c;
        };
        for entry in dir.flatten() {
            let target = std::fs::read_link(entry.path())
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or_default();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
            {
                match local_port.get(inode) {
                    Some(p) if ports.contains(p) => c.served += 1,
                    Some(_) => c.outgoing += 1,
                    None => c.other += 1,
                }
            } else if target.starts_with("pipe:") {
                c.pipes += 1;
            } else {
                c.other += 1;
            }
        }
        c
    }
}
