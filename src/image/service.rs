//! The `/img` route: URL ▶ signature ▶ options ▶ origin fetch (conditional
//! when the client revalidates) ▶ counted input ▶ worker pool ▶ response.
//!
//! Failure mapping: bad URL/options 400, bad signature or foreign source
//! 403, source too large 413, too many pixels or undecodable 422, queue
//! full 429, processing timeout 503, origin failures 502/504 (an origin
//! 404/403/410 passes through as such).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    VARY,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::coalesce::Coalescer;
use super::config::ImageConfig;
use super::estimate::job_bytes;
use super::etag::{self, OriginValidator};
use super::geometry::plan;
use super::input::{self, InputBudget, Limits};
use super::options::{Options, OutputFormat, Presets};
use super::pipeline::{self, choose_format, effective_quality, Defaults};
use super::signature::Signer;
use super::url;
use super::workers::WorkerPool;
use crate::access_log::RequestContext;
use crate::body::Body;
use crate::budget::{MemoryBudget, Reservation};
use crate::config::OriginSpec;
use crate::error::{Error, Kind, Result, Side};
use crate::origin::{Origin, OriginRequest, Timeouts};

/// Everything the route needs, built once at start-up.
pub struct ImageService {
    prefix: String,
    signer: Signer,
    pub(super) presets: Presets,
    allowed_prefixes: Vec<url::SourceUrl>,
    allowed_origins: Vec<Origin>,
    pub(super) pool: WorkerPool,
    coalescer: Coalescer<Shared>,
    pub(super) limits: Limits,
    /// The memory budget, with the probe windows of this pool's slots.
    pub(super) budget: InputBudget,
    pub(super) defaults: Defaults,
    pub(super) timeout: Duration,
    cache_control: HeaderValue,
}

/// A finished result, shared by coalesced requests. Its bytes stay counted
/// in the budget until the last response body holding it is dropped.
pub struct Output {
    bytes: Bytes,
    format: OutputFormat,
    etag: String,
    vary_accept: bool,
    _held: Reservation,
}

enum Outcome {
    NotModified(String),
    Processed(Arc<Output>),
}

/// The part of a job's reservations that its output of `len` bytes keeps.
/// The job's estimate covers its output, so this is a split; an output
/// larger than that (not expected: encoded images are smaller than their
/// bitmaps) frees the job's bytes first and then waits for its own.
pub(super) async fn output_share(
    held: Vec<Reservation>,
    len: u64,
    budget: &MemoryBudget,
) -> Result<Reservation> {
    let mut job = held.into_iter().reduce(|mut a, b| {
        a.merge(b);
        a
    });
    if let Some(share) = job.as_mut().and_then(|j| j.split_off(len)) {
        return Ok(share);
    }
    tracing::warn!(bytes = len, "image output larger than its memory estimate");
    drop(job);
    budget.reserve(len).await
}

/// A clonable error, so that coalesced waiters can share a failure.
#[derive(Clone)]
struct SharedError {
    kind: Kind,
    side: Side,
    reason: String,
}

impl From<Error> for SharedError {
    fn from(e: Error) -> Self {
        SharedError {
            kind: e.kind,
            side: e.side,
            reason: e.reason.into_owned(),
        }
    }
}

impl From<SharedError> for Error {
    fn from(e: SharedError) -> Self {
        Error::new(e.kind, e.reason).on(e.side)
    }
}

type Shared = std::result::Result<Arc<Output>, SharedError>;

impl ImageService {
    pub fn new(
        c: &ImageConfig,
        timeouts: Timeouts,
        extra_ca: Option<&std::path::Path>,
        budget: &MemoryBudget,
    ) -> std::result::Result<Self, String> {
        let prefix = c.img_prefix.trim_end_matches('/').to_string();
        if !prefix.starts_with('/') || prefix.len() < 2 {
            return Err(format!(
                "--img-prefix {:?} must start with / and name a path",
                c.img_prefix
            ));
        }
        let s = &c.signing;
        let allowed_origins = c
            .allowed_sources
            .iter()
            .map(|p| {
                let uri: http::Uri = p
                    .parse()
                    .map_err(|e| format!("--allowed-source {p:?}: {e}"))?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(format!(
                        "--allowed-source {p:?}: must be an http(s):// URL prefix"
                    ));
                }
                Origin::new(&OriginSpec::Http(uri), timeouts, extra_ca)
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        if !(1..=100).contains(&c.quality) {
            return Err("--quality must be 1..=100".into());
        }
        let ttl = c.ttl.as_secs();
        let pool = WorkerPool::new(c.workers, c.queue_size)?;
        let budget = InputBudget::new(budget, pool.slots()).map_err(|e| e.reason.to_string())?;
        Ok(ImageService {
            prefix,
            signer: Signer::new(&s.keys, &s.salts, s.signature_size)?,
            presets: Presets::parse(&c.presets)?,
            allowed_prefixes: c
                .allowed_sources
                .iter()
                .map(|p| {
                    url::SourceUrl::parse(p)
                        .map_err(|e| format!("--allowed-source {p:?}: {}", e.reason))
                })
                .collect::<std::result::Result<_, _>>()?,
            allowed_origins,
            pool,
            budget,
            coalescer: Coalescer::default(),
            limits: Limits {
                max_src_pixels: c.max_src_pixels,
                max_src_bytes: c.max_src_bytes,
            },
            defaults: Defaults {
                quality: c.quality,
                jpeg_progressive: c.jpeg_progressive,
            },
            timeout: c.processing_timeout,
            cache_control: HeaderValue::from_str(&format!("public, max-age={ttl}"))
                .map_err(|e| e.to_string())?,
        })
    }

    /// Whether `path` belongs to this route.
    pub fn matches(&self, path: &str) -> bool {
        path.strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
    }

    /// The `--preset` definitions (zip manifest options use them too).
    pub fn presets(&self) -> &Presets {
        &self.presets
    }

    pub fn pool(&self) -> &WorkerPool {
        &self.pool
    }

    pub async fn serve<B>(
        self: &Arc<Self>,
        origin: &Origin,
        req: Request<B>,
        _ctx: &mut RequestContext,
    ) -> Result<Response<Body>> {
        let method = req.method().clone();
        if method != Method::GET && method != Method::HEAD {
            return Err(Error::new(Kind::MethodNotAllowed, "only GET and HEAD"));
        }
        let full_path = req.uri().path().to_string();
        let path = full_path.strip_prefix(self.prefix.as_str()).unwrap_or("");
        let parts = url::split(path)?;
        self.signer.verify(parts.signature, parts.signed)?;
        let options = Options::parse(parts.options.iter().copied(), &self.presets)?;
        let requested = match parts.extension {
            Some(ext) => OutputFormat::from_extension(ext)?,
            None => options.format,
        };
        let source = url::resolve(&parts.source, &self.allowed_prefixes)?;
        let origin = match source.allowed_source {
            None => origin.clone(),
            Some(i) => self
                .allowed_origins
                .get(i)
                .cloned()
                .ok_or_else(|| Error::internal("allowed source index"))?,
        };
        let accept = req
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // The format part of the key: fixed, or which Accept class we saw.
        let format_key = match requested {
            Some(f) => f.extension().to_string(),
            None => {
                let probe_webp = choose_webp_hint(accept.as_deref());
                format!("auto:{probe_webp}")
            }
        };
        let key = etag::options_key(&options.normalized(), &format_key);
        let revalidation = etag::revalidation(req.headers().get(IF_NONE_MATCH), &key);
        let filename = options.filename.clone();
        let attachment = options.attachment;
        let job = Job {
            service: self.clone(),
            origin,
            path: source.path.clone(),
            options,
            requested,
            accept,
            key: key.clone(),
        };
        let timeout = self.timeout;
        let timed_out = || {
            Error::new(
                Kind::Unavailable,
                format!("image processing took longer than {timeout:?}"),
            )
        };
        let outcome = match revalidation {
            // Revalidations are cheap (the origin answers 304) and are not
            // coalesced.
            Some((matched, validator)) => {
                tokio::time::timeout(timeout, job.run(Some((matched, validator))))
                    .await
                    .map_err(|_| timed_out())??
            }
            None => {
                let coalesce_key = format!("{:?}|{}|{}", source.allowed_source, source.path, key);
                let (shared, _role) = self.coalescer.join(&coalesce_key, move || async move {
                    match job.run(None).await {
                        Ok(Outcome::Processed(out)) => Ok(out),
                        Ok(Outcome::NotModified(_)) => {
                            Err(SharedError::from(Error::internal("unexpected 304")))
                        }
                        Err(e) => Err(SharedError::from(e)),
                    }
                });
                let out = tokio::time::timeout(timeout, shared)
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(Error::from)?;
                Outcome::Processed(out)
            }
        };
        let download = Download {
            name: self_filename(&parts.source, filename.as_deref()),
            attachment,
        };
        Ok(self.respond(outcome, method == Method::HEAD, &download))
    }

    fn respond(&self, outcome: Outcome, head: bool, download: &Download) -> Response<Body> {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, self.cache_control.clone());
        match outcome {
            Outcome::NotModified(tag) => {
                if let Ok(v) = HeaderValue::from_str(&tag) {
                    headers.insert(ETAG, v);
                }
                let mut r = Response::new(crate::body::empty());
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                *r.headers_mut() = headers;
                r
            }
            Outcome::Processed(out) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(out.format.mime()));
                headers.insert(CONTENT_LENGTH, HeaderValue::from(out.bytes.len()));
                if let Ok(v) = HeaderValue::from_str(&out.etag) {
                    headers.insert(ETAG, v);
                }
                if out.vary_accept {
                    headers.insert(VARY, HeaderValue::from_static("Accept"));
                }
                if let Some(v) = download.header(out.format) {
                    headers.insert(CONTENT_DISPOSITION, v);
                }
                let body = if head {
                    crate::body::empty()
                } else {
                    held_body(out.clone())
                };
                let mut r = Response::new(body);
                *r.headers_mut() = headers;
                r
            }
        }
    }
}

/// The name offered for download: `fn:` or the source's file name, with
/// the output format's extension.
fn self_filename(source: &str, given: Option<&str>) -> String {
    if let Some(name) = given.filter(|n| !n.is_empty()) {
        return name.to_string();
    }
    let last = source.rsplit('/').next().unwrap_or("");
    let last = percent_encoding::percent_decode_str(last).decode_utf8_lossy();
    let stem = last.rsplit_once('.').map_or(&*last, |(s, _)| s);
    if stem.is_empty() {
        "image".into()
    } else {
        stem.to_string()
    }
}

struct Download {
    name: String,
    attachment: bool,
}

impl Download {
    /// `Content-Disposition`, ASCII-safe with an RFC 8187 `filename*` for
    /// names that are not.
    fn header(&self, format: OutputFormat) -> Option<HeaderValue> {
        let name = format!("{}.{}", self.name, format.extension());
        let kind = if self.attachment {
            "attachment"
        } else {
            "inline"
        };
        let ascii: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let value = if ascii == name {
            format!("{kind}; filename=\"{name}\"")
        } else {
            let encoded =
                percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC);
            format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
        };
        HeaderValue::from_str(&value).ok()
    }
}

/// Whether Accept lists image/webp (the only Accept fact that matters).
fn choose_webp_hint(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',')
            .any(|t| t.split(';').next().map(str::trim) == Some("image/webp") && !t.contains("q=0"))
    })
}

/// The response body: the shared bytes, and the Arc that keeps their
/// budget reservation alive until the body is gone.
fn held_body(out: Arc<Output>) -> Body {
    let bytes = out.bytes.clone();
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .map_frame(move |f| {
            let _keep = &out;
            f
        })
        .boxed_unsync()
}

/// One fetch-and-process, owned so it can run inside a coalesced future.
struct Job {
    service: Arc<ImageService>,
    origin: Origin,
    path: String,
    options: Options,
    requested: Option<OutputFormat>,
    accept: Option<String>,
    key: String,
}

/// Sets the job's cancel flag when the waiting side is dropped (timeout,
/// client gone), so the worker stops at its next stage.
pub(super) struct CancelOnDrop {
    pub(super) flag: Arc<AtomicBool>,
    pub(super) armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.flag.store(true, Ordering::Relaxed);
        }
    }
}

impl Job {
    async fn run(self, revalidate: Option<(String, OriginValidator)>) -> Result<Outcome> {
        let svc = &self.service;
        let admission = svc.pool.admit()?;
        let mut request = OriginRequest::get(self.path.clone());
        if let Some((_, v)) = &revalidate {
            v.apply(&mut request.headers);
        }
        let response = self.origin.fetch(request).await?;
        match response.status {
            StatusCode::OK => {}
            StatusCode::NOT_MODIFIED if revalidate.is_some() => {
                let tag = revalidate.map(|(t, _)| t).unwrap_or_default();
                return Ok(Outcome::NotModified(tag));
            }
            s @ (StatusCode::NOT_FOUND | StatusCode::FORBIDDEN | StatusCode::GONE) => {
                return Err(Error::new(
                    Kind::UpstreamStatus(s),
                    format!("source: origin answered {s}"),
                ));
            }
            s => {
                return Err(Error::upstream_broken(format!(
                    "source: origin answered {s}"
                )))
            }
        }
        let validator = OriginValidator::from_response(&response.headers);
        let content_length = response
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let options = self.options.clone();
        let input = input::read(
            response.body,
            content_length,
            &svc.limits,
            &svc.budget,
            |p| {
                let (format, _) = choose_format(self.requested, self.accept.as_deref(), p);
                Ok(job_bytes(
                    p,
                    &plan(p.width, p.height, p.orientation, &options),
                    format,
                    effective_quality(&options, svc.defaults),
                ))
            },
        )
        .await?;
        let (format, vary_accept) =
            choose_format(self.requested, self.accept.as_deref(), &input.probe);
        let cancelled = Arc::new(AtomicBool::new(false));
        let mut guard = CancelOnDrop {
            flag: cancelled.clone(),
            armed: true,
        };
        let defaults = svc.defaults;
        let (processed, held) = admission
            .run(move || {
                let input::Input {
                    data,
                    probe,
                    held,
                    window,
                } = input;
                if cancelled.load(Ordering::Relaxed) {
                    return Err(Error::new(Kind::Unavailable, "processing timed out"));
                }
                let processed =
                    pipeline::run(&data, &probe, &options, format, defaults, &cancelled)?;
                drop(data);
                drop(window);
                // The job's reservation comes back, so the output takes its
                // share of it without releasing it in between.
                Ok((processed, held))
            })
            .await?;
        guard.armed = false;
        tracing::info!(
            source = %self.path,
            format = format.extension(),
            width = processed.width,
            height = processed.height,
            bytes = processed.bytes.len(),
            "image processed"
        );
        let held = output_share(held, processed.bytes.len() as u64, &svc.budget.main).await?;
        Ok(Outcome::Processed(Arc::new(Output {
            bytes: Bytes::from(processed.bytes),
            format,
            etag: etag::etag(&self.key, validator.as_ref()),
            vary_accept,
            _held: held,
        })))
    }
}
