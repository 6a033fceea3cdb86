//! The debug endpoints of the admin listener, after Go's net/http/pprof:
//!
//! - `POST /debug/pprof/heap/activate`   start sampling allocations
//! - `POST /debug/pprof/heap/deactivate` stop, and drop the samples
//! - `GET  /debug/pprof/heap`            gzipped pprof protobuf of live samples
//!
//! They exist only when a token is configured (`--debug-token`, else 404)
//! and answer only requests with `Authorization: Bearer <token>` (else 401,
//! logged with the client address). See [`token`] and [`heap`].

pub mod heap;
#[cfg(feature = "heap-profiling")]
pub mod pprof_fixup;
pub mod token;

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Response, StatusCode};

use crate::body::{self, Body};
use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::service::{ClientRequest, Service};
use heap::HeapError;
pub use token::DebugToken;

/// `/debug/...` on the admin listener, built once at start-up.
pub struct ProfilingService {
    token: Option<DebugToken>,
}

impl ProfilingService {
    /// Without a token the endpoints do not exist (404).
    pub fn new(token: Option<DebugToken>) -> Self {
        ProfilingService { token }
    }
}

impl Service for ProfilingService {
    async fn serve(&self, req: ClientRequest, ctx: &mut RequestContext) -> Result<Response<Body>> {
        serve(self.token.as_ref(), req, ctx).await
    }
}

/// Serve a request under `/debug/`.
async fn serve(
    token: Option<&DebugToken>,
    req: ClientRequest,
    ctx: &RequestContext,
) -> Result<Response<Body>> {
    let Some(token) = token else {
        return Err(Error::not_found("no such admin endpoint"));
    };
    if let Err(refusal) = token.check(req.headers()) {
        crate::metrics::debug_auth_failed();
        tracing::warn!(
            request_id = ctx.request_id.to_str().unwrap_or("-"),
            client = %ctx.client_ip,
            method = %req.method(),
            path = %req.uri().path(),
            reason = refusal.as_str(),
            "debug endpoint refused"
        );
        let mut r = plain(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required\n",
        );
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sluice debug\""),
        );
        return Ok(r);
    }
    let method = req.method();
    match req.uri().path() {
        "/debug/pprof/heap/activate" if method == Method::POST => {
            Ok(match heap::activate().await {
                Ok(()) => {
                    tracing::info!(client = %ctx.client_ip, "heap profiling activated");
                    plain(StatusCode::OK, "heap profiling active\n")
                }
                Err(e) => heap_error(e)?,
            })
        }
        "/debug/pprof/heap/deactivate" if method == Method::POST => {
            Ok(match heap::deactivate().await {
                Ok(()) => {
                    tracing::info!(client = %ctx.client_ip, "heap profiling deactivated");
                    plain(StatusCode::OK, "heap profiling inactive; samples dropped\n")
                }
                Err(e) => heap_error(e)?,
            })
        }
        "/debug/pprof/heap" if method == Method::GET => Ok(match heap::dump().await {
            Ok(pprof) => profile_response(pprof, "heap.pb.gz"),
            Err(e) => heap_error(e)?,
        }),
        "/debug/pprof/heap/activate" | "/debug/pprof/heap/deactivate" => {
            Ok(method_not_allowed("POST"))
        }
        "/debug/pprof/heap" => Ok(method_not_allowed("GET")),
        _ => Err(Error::not_found("no such debug endpoint")),
    }
}

/// The answer for a heap request that could not be carried out; a failure
/// of jemalloc itself stays an `Err` (500, logged by the server).
fn heap_error(e: HeapError) -> Result<Response<Body>> {
    match e {
        HeapError::Unavailable(why) => Ok(plain(
            StatusCode::NOT_IMPLEMENTED,
            format!("heap profiling is not available: {why}\n"),
        )),
        HeapError::Inactive => Ok(plain(
            StatusCode::CONFLICT,
            "heap profiling is not active; POST /debug/pprof/heap/activate first\n",
        )),
        HeapError::Failed(e) => Err(e),
    }
}

fn profile_response(pprof: Vec<u8>, filename: &'static str) -> Response<Body> {
    let mut r = Response::new(body::full(pprof));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("use {allow} here\n"),
    );
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

fn plain(status: StatusCode, text: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut r = Response::new(body::full(text.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
