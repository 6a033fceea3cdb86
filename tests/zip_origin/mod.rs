//! A test origin for the zip tests, on loopback, generating every body on
//! the fly (nothing held whole). tests/common's origin covers pass-through;
//! this one adds what archives need: mod_zip manifests, bodies that fail
//! once mid-way and can then be resumed with Range, chunked bodies without
//! a length, and fast zero bodies for multi-GiB archives.
//!
//! Paths:
//! - `/bytes/{n}[/name]`: n bytes of `common::pattern`, Content-Length,
//!   strong ETag, Last-Modified, honours Range + If-Range.
//! - `/zeros/{n}[/name]`: n zero bytes, Content-Length.
//! - `/text/{n}[/name]`: n bytes of compressible text.
//! - `/chunked/{n}[/name]`: n pattern bytes with no Content-Length.
//! - `/flaky/{n}/{k}[/name]`: the first full GET sends k bytes of n, then
//!   resets; ETag set, so a Range + If-Range request resumes it.
//! - `/flaky-plain/{n}/{k}`: the same without validators (not resumable).
//! - `/slow/{n}`: 16 KiB every 50 ms.
//! - `/status/{code}`: that status.
//! - `/manifest/{key}[?pass_headers=A:B]`: a registered mod_zip manifest,
//!   `X-Archive-Files: zip` (and `X-Archive-Pass-Headers: A:B`).
//! - `/cookie/{n}`, `/token/{n}`: `/bytes/{n}` for a client with
//!   `Cookie: session=verified` or `X-Auth-Token: verified`, else 403
//!   (mod_zip's t/nginx.conf `with_auth` locations).
//! - `/static-manifest/{key}`: the same manifest as nginx serves a static
//!   file with `add_header X-Archive-Files zip`: it honours Range (206), a
//!   range past its end gets 416 *without* the header (add_header applies
//!   to 200 and 206 only), and it has an ETag and Last-Modified.
//! - `/file/{path}`: a file of this repository under `samples/` or
//!   `tests/data/` (real photos for processed entries), Content-Length set.
//! - `/slow-file/{path}`: the same, 16 KiB every 50 ms.
//! - any path registered with [`ZipOrigin::add_file`], looked up after
//!   percent-decoding (as nginx maps a URI to a file): that body as nginx
//!   serves a static file, with Range (416 past the end), and the
//!   registered headers as `add_header` adds them (not to a 416).
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

const PERIOD: usize = 251;
const CHUNK: usize = 64 * 1024;
static PATTERN: LazyLock<Vec<u8>> =
    LazyLock::new(|| (0..CHUNK + PERIOD).map(|i| (i % PERIOD) as u8).collect());
static ZEROS: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(vec![0u8; 1 << 20]));
const LAST_MODIFIED: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

pub fn pattern_vec(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % PERIOD) as u8).collect()
}

pub fn text_vec(len: usize) -> Vec<u8> {
    b"sluice zips bodies as they stream, in bounded chunks.\n"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

#[derive(Default)]
pub struct Seen {
    /// (path, request headers) in arrival order.
    pub requests: Vec<(String, HeaderMap)>,
    pub manifests: HashMap<String, String>,
    /// GETs without Range, by path.
    pub full_gets: HashMap<String, usize>,
    /// Static files by decoded path (see [`ZipOrigin::add_file`]).
    pub files: HashMap<String, StaticFile>,
    /// Paths asked with HEAD, in arrival order (not in `requests`).
    pub heads: Vec<String>,
}

/// A file served as nginx serves a static file.
#[derive(Clone)]
pub struct StaticFile {
    pub body: Bytes,
    /// Added to 200 and 206 answers, as `add_header` does.
    pub headers: Vec<(&'static str, &'static str)>,
    /// Refused with 403 unless the request has this header, non-empty
    /// (t/nginx.conf's `if ($http_cookie = "") { return 403; }`).
    pub needs_header: Option<&'static str>,
    /// Add `X-Archive-Pass-Headers` from the `pass_headers` query argument
    /// (`add_header X-Archive-Pass-Headers $arg_pass_headers`).
    pub pass_headers_from_query: bool,
}

pub struct ZipOrigin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
    /// Response bodies currently alive (not finished, not dropped).
    pub live_bodies: Arc<AtomicUsize>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ZipOrigin {
    pub async fn start() -> ZipOrigin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let live = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let (s, l) = (seen.clone(), live.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(p) => p, Err(_) => continue },
                    _ = &mut rx => break,
                };
                let (s, l) = (s.clone(), l.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| respond(s.clone(), l.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        ZipOrigin {
            addr,
            seen,
            live_bodies: live,
            _stop: tx,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_manifest(&self, key: &str, text: &str) {
        self.seen
            .lock()
            .unwrap()
            .manifests
            .insert(key.into(), text.into());
    }

    pub fn add_file(&self, path: &str, file: StaticFile) {
        self.seen.lock().unwrap().files.insert(path.into(), file);
    }

    /// Requests whose path starts with `prefix`, with their Range header.
    pub fn requests(&self, prefix: &str) -> Vec<(String, Option<String>, Option<String>)> {
        self.seen
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(p, h)| {
                let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
                (p.clone(), get("range"), get("if-range"))
            })
            .collect()
    }

    /// Paths asked with HEAD.
    pub fn heads(&self) -> Vec<String> {
        self.seen.lock().unwrap().heads.clone()
    }

    pub fn live(&self) -> usize {
        self.live_bodies.load(Ordering::SeqCst)
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

#[derive(Clone)]
enum Gen {
    Pattern,
    Zeros,
    /// The bytes of a file (for slow real images).
    File(Bytes),
}

async fn respond(
    seen: Arc<Mutex<Seen>>,
    live: Arc<AtomicUsize>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let pass = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("pass_headers="))
        .map(str::to_string);
    let headers = req.headers().clone();
    let prior_full_gets = {
        let mut s = seen.lock().unwrap();
        let n = if req.method() == http::Method::HEAD {
            s.heads.push(path.clone());
            0
        } else if headers.contains_key("range") {
            s.full_gets.get(&path).copied().unwrap_or(0)
        } else {
            let c = s.full_gets.entry(path.clone()).or_insert(0);
            *c += 1;
            *c - 1
        };
        if req.method() != http::Method::HEAD {
            s.requests.push((path.clone(), headers.clone()));
        }
        n
    };
    let decoded = percent_encoding::percent_decode_str(&path)
        .decode_utf8_lossy()
        .into_owned();
    let file = seen.lock().unwrap().files.get(&decoded).cloned();
    if let Some(file) = file {
        return Ok(serve_static(&headers, &file, pass.as_deref()));
    }
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let num = |i: usize| seg.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let r = match seg[0] {
        "bytes" => ranged(&headers, num(1), Gen::Pattern, true, None, live),
        "zeros" => ranged(&headers, num(1), Gen::Zeros, false, None, live),
        "flaky" | "flaky-plain" => {
            let fail_at = (prior_full_gets == 0).then_some(num(2));
            ranged(
                &headers,
                num(1),
                Gen::Pattern,
                seg[0] == "flaky",
                fail_at,
                live,
            )
        }
        "text" => {
            let body = text_vec(num(1) as usize);
            let len = body.len();
            let mut r = full(StatusCode::OK, body);
            r.headers_mut().insert("content-length", len.into());
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/plain"));
            r
        }
        "chunked" => {
            let body = stream(
                0,
                num(1),
                Gen::Pattern,
                None,
                Duration::ZERO,
                16 * 1024,
                live,
            );
            Response::new(body)
        }
        "slow" => {
            let body = stream(
                0,
                num(1),
                Gen::Pattern,
                None,
                Duration::from_millis(50),
                16 * 1024,
                live,
            );
            let mut r = Response::new(body);
            r.headers_mut().insert("content-length", num(1).into());
            r
        }
        "status" => {
            let code = StatusCode::from_u16(num(1) as u16).unwrap_or(StatusCode::IM_A_TEAPOT);
            full(code, b"origin says no".to_vec())
        }
        "manifest" => {
            let text = seen.lock().unwrap().manifests.get(seg[1]).cloned();
            match text {
                Some(t) => {
                    let mut r = full(StatusCode::OK, t.into_bytes());
                    let h = r.headers_mut();
                    h.insert("x-archive-files", HeaderValue::from_static("zip"));
                    h.insert("content-type", HeaderValue::from_static("text/plain"));
                    h.insert(
                        "content-disposition",
                        HeaderValue::from_static("attachment; filename=\"album.zip\""),
                    );
                    h.insert("last-modified", HeaderValue::from_static(LAST_MODIFIED));
                    if let Some(p) = &pass {
                        h.insert("x-archive-pass-headers", HeaderValue::from_str(p).unwrap());
                    }
                    r
                }
                None => full(StatusCode::NOT_FOUND, b"no manifest".to_vec()),
            }
        }
        "cookie" | "token" => {
            let (name, value) = if seg[0] == "cookie" {
                ("cookie", "session=verified")
            } else {
                ("x-auth-token", "verified")
            };
            if headers.get(name).is_some_and(|v| v == value) {
                ranged(&headers, num(1), Gen::Pattern, true, None, live)
            } else {
                full(StatusCode::FORBIDDEN, b"not authorised".to_vec())
            }
        }
        "static-manifest" => {
            let text = seen.lock().unwrap().manifests.get(seg[1]).cloned();
            match text {
                Some(t) => static_file(&headers, t.into_bytes()),
                None => full(StatusCode::NOT_FOUND, b"no manifest".to_vec()),
            }
        }
        "file" | "slow-file" => {
            let rel = seg[1..].join("/");
            let allowed = (rel.starts_with("samples/") || rel.starts_with("tests/data/"))
                && !rel.contains("..");
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(&rel);
            match std::fs::read(&path).ok().filter(|_| allowed) {
                Some(data) => {
                    let len = data.len();
                    let mut r = if seg[0] == "slow-file" {
                        let body = stream(
                            0,
                            len as u64,
                            Gen::File(Bytes::from(data)),
                            None,
                            Duration::from_millis(50),
                            16 * 1024,
                            live,
                        );
                        Response::new(body)
                    } else {
                        full(StatusCode::OK, data)
                    };
                    r.headers_mut().insert("content-length", len.into());
                    r.headers_mut()
                        .insert("last-modified", HeaderValue::from_static(LAST_MODIFIED));
                    r.headers_mut().insert(
                        "content-type",
                        HeaderValue::from_static("application/octet-stream"),
                    );
                    r
                }
                None => full(StatusCode::NOT_FOUND, b"no such file".to_vec()),
            }
        }
        _ => full(StatusCode::NOT_FOUND, b"no such path".to_vec()),
    };
    Ok(r)
}

fn serve_static(h: &HeaderMap, file: &StaticFile, pass: Option<&str>) -> Response<Body> {
    if let Some(name) = file.needs_header {
        if h.get(name).is_none_or(|v| v.is_empty()) {
            return full(StatusCode::FORBIDDEN, b"forbidden".to_vec());
        }
    }
    // nginx answers several ranges of a static file with multipart; these
    // files never get them: the whole file.
    let single = h
        .get("range")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.contains(','));
    let none = HeaderMap::new();
    let mut r = range_of(if single { h } else { &none }, &file.body);
    if r.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        return r;
    }
    let hm = r.headers_mut();
    hm.insert("content-type", HeaderValue::from_static("text/plain"));
    hm.insert("accept-ranges", HeaderValue::from_static("bytes"));
    for (k, v) in &file.headers {
        hm.insert(*k, HeaderValue::from_static(v));
    }
    if let Some(p) = pass.filter(|p| file.pass_headers_from_query && !p.is_empty()) {
        hm.insert("x-archive-pass-headers", HeaderValue::from_str(p).unwrap());
    }
    r
}

/// `body`, or the one byte range `h` asks for (206), or a 416.
fn range_of(h: &HeaderMap, body: &[u8]) -> Response<Body> {
    let len = body.len();
    let range = h
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok())));
    match range {
        Some((start, _)) if start >= len => {
            let mut r = full(StatusCode::RANGE_NOT_SATISFIABLE, Vec::new());
            r.headers_mut().insert(
                "content-range",
                HeaderValue::from_str(&format!("bytes */{len}")).unwrap(),
            );
            r
        }
        Some((start, end)) => {
            let end = end.unwrap_or(len - 1).min(len - 1);
            let mut r = full(StatusCode::PARTIAL_CONTENT, body[start..=end].to_vec());
            r.headers_mut().insert(
                "content-range",
                HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")).unwrap(),
            );
            r
        }
        None => full(StatusCode::OK, body.to_vec()),
    }
}

/// A static file as nginx serves it with `add_header X-Archive-Files zip`.
fn static_file(h: &HeaderMap, body: Vec<u8>) -> Response<Body> {
    let len = body.len();
    let etag = format!("\"static-{len}\"");
    let mut r = range_of(h, &body);
    if r.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        return r;
    }
    let hm = r.headers_mut();
    hm.insert("x-archive-files", HeaderValue::from_static("zip"));
    hm.insert("etag", HeaderValue::from_str(&etag).unwrap());
    hm.insert("last-modified", HeaderValue::from_static(LAST_MODIFIED));
    hm.insert("accept-ranges", HeaderValue::from_static("bytes"));
    r
}

fn full(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

fn ranged(
    h: &HeaderMap,
    n: u64,
    gen: Gen,
    validators: bool,
    fail_at: Option<u64>,
    live: Arc<AtomicUsize>,
) -> Response<Body> {
    let etag = format!("\"v{n}\"");
    let (status, start, len) = crate::common::served_range(h, &etag, n);
    let body = stream(start, len, gen, fail_at, Duration::ZERO, CHUNK, live);
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let hm = r.headers_mut();
    hm.insert("content-length", len.into());
    hm.insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    hm.insert("accept-ranges", HeaderValue::from_static("bytes"));
    if validators {
        hm.insert("etag", HeaderValue::from_str(&etag).unwrap());
        hm.insert("last-modified", HeaderValue::from_static(LAST_MODIFIED));
    }
    if status == StatusCode::PARTIAL_CONTENT {
        hm.insert(
            "content-range",
            HeaderValue::from_str(&format!("bytes {}-{}/{}", start, start + len - 1, n)).unwrap(),
        );
    }
    r
}

struct Live(Arc<AtomicUsize>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `len` generated bytes from offset `start`; with `fail_at`, an error
/// after that many bytes (hyper then resets the connection).
fn stream(
    start: u64,
    len: u64,
    gen: Gen,
    fail_at: Option<u64>,
    delay: Duration,
    chunk: usize,
    live: Arc<AtomicUsize>,
) -> Body {
    live.fetch_add(1, Ordering::SeqCst);
    let guard = Live(live);
    let end = start + len;
    let s = futures_util::stream::unfold((start, guard), move |(pos, guard)| {
        let gen = gen.clone();
        async move {
            if let Some(k) = fail_at {
                if pos >= start + k {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "reset",
                        )),
                        (end, guard),
                    ));
                }
            }
            if pos >= end {
                return None;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut n = (end - pos).min(chunk as u64) as usize;
            if let Some(k) = fail_at {
                n = n.min((start + k - pos) as usize).max(1);
            }
            let data = match gen {
                Gen::Pattern => {
                    let off = (pos % PERIOD as u64) as usize;
                    Bytes::copy_from_slice(&PATTERN[off..off + n.min(CHUNK)])
                }
                Gen::Zeros => ZEROS.slice(..n.min(ZEROS.len())),
                Gen::File(file) => file.slice(pos as usize..pos as usize + n),
            };
            let n = data.len() as u64;
            Some((Ok(Frame::data(data)), (pos + n, guard)))
        }
    });
    StreamBody::new(s).boxed()
}
