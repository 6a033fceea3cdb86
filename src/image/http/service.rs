//! The `/img` route: URL ▶ signature ▶ options ▶ origin fetch (conditional
//! when the client revalidates) ▶ the [`Processor`] (counted input, worker
//! pool) ▶ response. Identical concurrent requests share one run.
//!
//! Failures are causes (`ErrorKind`); the server maps them: bad URL or
//! options 400, bad signature or foreign source 403, source too large 413,
//! too many pixels or undecodable 422, queue full 429, processing timeout
//! 503, origin failures 502/504 (an origin 404/403/410 passes through).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;

use super::etag::{self, OriginValidator};
use super::options::{output_format, Options, OutputFormat, Presets};
use super::signature::Signer;
use super::url;
use crate::body::Body;
use crate::budget::{MemoryBudget, Reservation};
use crate::context::RequestContext;
use crate::error::{origin_status, Error, ErrorKind, Result};
use crate::headers::content_disposition;
use crate::image::run::coalesce::Coalescer;
use crate::image::run::Processor;
use crate::image::ImageSettings;
use crate::origin::{Origin, OriginRequest, OriginSettings};
use crate::service::{ClientRequest, Service};

/// The `/img` route, built once at start-up. Cheap to clone.
#[derive(Clone)]
pub struct ImageService {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    signer: Signer,
    presets: Presets,
    origin: Origin,
    /// `--allowed-source` prefixes and the origins they are fetched from.
    allowed: Vec<(url::SourceUrl, Origin)>,
    processor: Arc<Processor>,
    coalescer: Coalescer<Shared>,
    cache_control: HeaderValue,
}

/// A finished result, shared by coalesced requests. Its bytes stay counted
/// in the budget until the last response body holding it is dropped.
struct Output {
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

/// Errors are `Clone`, so coalesced waiters share one failure.
type Shared = Result<Arc<Output>>;

impl ImageService {
    /// `origin` serves local sources; `origins` says how the allow-listed
    /// ones are reached (timeouts, CA).
    pub fn new(
        s: &ImageSettings,
        origin: Origin,
        origins: &OriginSettings,
        budget: &MemoryBudget,
    ) -> std::result::Result<Self, String> {
        let prefix = s.prefix.trim_end_matches('/').to_string();
        if !prefix.starts_with('/') || prefix.len() < 2 {
            return Err(format!(
                "--img-prefix {:?} must start with / and name a path",
                s.prefix
            ));
        }
        let allowed = s
            .allowed_sources
            .iter()
            .map(|p| {
                let prefix = url::SourceUrl::parse(p)
                    .map_err(|e| format!("--allowed-source {p:?}: {}", e.reason))?;
                let origin = Origin::for_url(p, origins)
                    .map_err(|e| format!("--allowed-source {p:?}: {e}"))?;
                Ok((prefix, origin))
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        let ttl = s.ttl.as_secs();
        Ok(ImageService {
            inner: Arc::new(Inner {
                prefix,
                signer: Signer::new(&s.signing.keys, &s.signing.salts, s.signing.signature_size)?,
                presets: Presets::parse(&s.presets)?,
                origin,
                allowed,
                processor: Arc::new(Processor::new(s.processor, budget)?),
                coalescer: Coalescer::default(),
                cache_control: HeaderValue::from_str(&format!("public, max-age={ttl}"))
                    .map_err(|e| e.to_string())?,
            }),
        })
    }

    /// Whether `path` belongs to this route.
    pub fn matches(&self, path: &str) -> bool {
        path.strip_prefix(self.inner.prefix.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
    }

    /// The `--preset` definitions (zip manifest options use them too).
    pub fn presets(&self) -> &Presets {
        &self.inner.presets
    }

    /// The job machinery (zip manifests' processed entries use it too).
    pub fn processor(&self) -> Arc<Processor> {
        self.inner.processor.clone()
    }
}

impl Service for ImageService {
    async fn serve(&self, req: ClientRequest, _ctx: &mut RequestContext) -> Result<Response<Body>> {
        let svc = &self.inner;
        let method = req.method().clone();
        if method != Method::GET && method != Method::HEAD {
            return Err(Error::new(ErrorKind::MethodNotAllowed, "only GET and HEAD"));
        }
        let full_path = req.uri().path().to_string();
        let path = full_path.strip_prefix(svc.prefix.as_str()).unwrap_or("");
        let parts = url::split(path)?;
        svc.signer.verify(parts.signature, parts.signed)?;
        let options = Options::parse(parts.options.iter().copied(), &svc.presets)?;
        let requested = match parts.extension {
            Some(ext) => output_format(ext)?,
            None => options.format,
        };
        let allowed: Vec<url::SourceUrl> = svc.allowed.iter().map(|(p, _)| p.clone()).collect();
        let source = url::resolve(&parts.source, &allowed)?;
        let origin = match source.allowed_source {
            None => svc.origin.clone(),
            Some(i) => svc
                .allowed
                .get(i)
                .map(|(_, o)| o.clone())
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
            None => format!("auto:{}", accepts_webp(accept.as_deref())),
        };
        let key = etag::options_key(&options.normalized(), &format_key);
        let revalidation = etag::revalidation(req.headers().get(IF_NONE_MATCH), &key);
        let download = Download {
            name: download_name(&parts.source, options.filename.as_deref()),
            attachment: options.attachment,
        };
        let job = Job {
            service: self.clone(),
            origin,
            path: source.path.clone(),
            options,
            requested,
            accept,
            key: key.clone(),
        };
        let timeout = svc.processor.timeout();
        let outcome = match revalidation {
            // Revalidations are cheap (the origin answers 304) and are not
            // coalesced.
            Some(revalidate) => tokio::time::timeout(timeout, job.run(Some(revalidate)))
                .await
                .map_err(|_| svc.processor.timed_out())??,
            None => {
                let coalesce_key = format!("{:?}|{}|{}", source.allowed_source, source.path, key);
                let (shared, _role) = svc.coalescer.join(&coalesce_key, move || async move {
                    match job.run(None).await? {
                        Outcome::Processed(out) => Ok(out),
                        Outcome::NotModified(_) => Err(Error::internal("unexpected 304")),
                    }
                });
                let out = tokio::time::timeout(timeout, shared)
                    .await
                    .map_err(|_| svc.processor.timed_out())??;
                Outcome::Processed(out)
            }
        };
        Ok(self.respond(outcome, method == Method::HEAD, &download))
    }
}

impl ImageService {
    fn respond(&self, outcome: Outcome, head: bool, download: &Download) -> Response<Body> {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, self.inner.cache_control.clone());
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
                let kind = if download.attachment {
                    "attachment"
                } else {
                    "inline"
                };
                let name = format!("{}.{}", download.name, out.format.extension());
                headers.insert(CONTENT_DISPOSITION, content_disposition(kind, &name));
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
/// the output format's extension added later.
fn download_name(source: &str, given: Option<&str>) -> String {
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

/// Whether Accept lists image/webp (the only Accept fact that matters).
fn accepts_webp(accept: Option<&str>) -> bool {
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
    service: ImageService,
    origin: Origin,
    path: String,
    options: Options,
    requested: Option<OutputFormat>,
    accept: Option<String>,
    key: String,
}

impl Job {
    async fn run(self, revalidate: Option<(String, OriginValidator)>) -> Result<Outcome> {
        let processor = &self.service.inner.processor;
        let admission = processor.pool().admit()?;
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
            s => return Err(origin_status(s, "source: ")),
        }
        let validator = OriginValidator::from_response(&response.headers);
        let content_length = response
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let made = processor
            .one(
                admission,
                response.body,
                content_length,
                &self.options,
                self.requested,
                self.accept.as_deref(),
            )
            .await?;
        tracing::info!(
            source = %self.path,
            format = made.image.format.extension(),
            width = made.image.width,
            height = made.image.height,
            bytes = made.image.bytes.len(),
            "image processed"
        );
        Ok(Outcome::Processed(Arc::new(Output {
            bytes: Bytes::from(made.image.bytes),
            format: made.image.format,
            etag: etag::etag(&self.key, validator.as_ref()),
            vary_accept: made.vary_accept,
            _held: made.held,
        })))
    }
}
