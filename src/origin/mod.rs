//! Origins: where bodies come from.
//!
//! An [`Origin`] answers an [`OriginRequest`] (method, path, headers) with an
//! [`OriginResponse`] whose body is a stream. Both kinds, an HTTP server and
//! a local directory, have the same semantics towards the rest of sluice:
//! status, validators, Range and 304. Every route (pass-through, zip,
//! recompression) fetches through this one interface, so data always flows
//! origin ▶ transform ▶ sink.

mod dir;
mod http_origin;
mod metered;
pub(crate) mod raw_http;
mod spec;
mod spliced_file;
pub mod target;
mod tls;

use std::time::Instant;

use http::{HeaderMap, Method, StatusCode};

pub use dir::{DirOrigin, FileBody};
pub use http_origin::HttpOrigin;
pub use spec::{OriginSettings, OriginSpec, Timeouts};

use crate::body::Body;
use crate::error::Result;
use crate::splice::ConnPipe;
use raw_http::RawBody;

/// A request to the origin. `path_and_query` is the raw, still
/// percent-encoded path (and query) as the client sent it, starting with `/`.
#[derive(Debug, Clone)]
pub struct OriginRequest {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
}

impl OriginRequest {
    /// A plain GET with no forwarded headers (zip entries, image sources).
    pub fn get(path_and_query: impl Into<String>) -> Self {
        OriginRequest {
            method: Method::GET,
            path_and_query: path_and_query.into(),
            headers: HeaderMap::new(),
        }
    }
}

/// The origin's answer. Its body streams; nothing has been buffered.
pub struct OriginResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Body,
}

/// A pass-through fetch's answer.
pub struct PassResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: PassBody,
}

impl PassResponse {
    /// As an ordinary streamed response (for the zip route).
    pub fn into_origin_response(self) -> OriginResponse {
        OriginResponse {
            status: self.status,
            headers: self.headers,
            body: self.body.into_body(None),
        }
    }
}

/// A pass-through body: already a stream, or still in the origin's socket
/// or file, where it may be spliced.
pub enum PassBody {
    Stream(Body),
    Socket { body: RawBody, asked: Instant },
    File { body: FileBody, asked: Instant },
}

impl PassBody {
    /// The body as a stream of chunks, spliced through the client
    /// connection's pipe when one is given and the body has a length (see
    /// [`crate::splice`]).
    pub fn into_body(self, pipe: Option<&ConnPipe>) -> Body {
        match self {
            PassBody::Stream(body) => body,
            PassBody::Socket { body, asked } => {
                let body = match pipe {
                    Some(pipe) => body.spliced_or_streamed(pipe),
                    None => body.streamed(raw_http::PASSTHROUGH_READ_SIZE),
                };
                metered::body(body, asked)
            }
            PassBody::File { body, asked } => {
                let body = match pipe {
                    Some(pipe) => body.spliced_or_streamed(pipe),
                    None => body.streamed(),
                };
                metered::body(body, asked)
            }
        }
    }
}

/// The configured origin.
#[derive(Clone)]
pub enum Origin {
    Http(Box<HttpOrigin>),
    Dir(DirOrigin),
}

impl Origin {
    /// The configured origin. Start-up errors are for a human.
    pub fn new(s: &OriginSettings) -> std::result::Result<Self, String> {
        Ok(match &s.spec {
            OriginSpec::Http(uri) => Origin::Http(Box::new(HttpOrigin::new(
                uri.clone(),
                s.timeouts,
                tls::client_config(s.extra_ca.as_deref())?,
            )?)),
            OriginSpec::Dir(path) => Origin::Dir(DirOrigin::new(path)?),
        })
    }

    /// Another HTTP(S) origin at `url`, reached like the configured one
    /// (same timeouts and CAs): an `--allowed-source` prefix.
    pub fn for_url(url: &str, s: &OriginSettings) -> std::result::Result<Self, String> {
        match OriginSpec::parse(url)? {
            spec @ OriginSpec::Http(_) => Origin::new(&OriginSettings { spec, ..s.clone() }),
            OriginSpec::Dir(_) => Err("must be an http(s):// URL prefix".into()),
        }
    }

    /// Fetch one resource. Errors before the response headers are returned
    /// here; errors while streaming surface as body errors.
    pub async fn fetch(&self, req: OriginRequest) -> Result<OriginResponse> {
        target::check(&req.path_and_query)?;
        let asked = std::time::Instant::now();
        let fetched = match self {
            Origin::Http(o) => o.fetch(req).await,
            Origin::Dir(o) => o.fetch(req).await,
        };
        metered::fetched(asked, fetched)
    }

    /// Fetch for pass-through. `may_splice` says the client connection can
    /// take a spliced body; then a GET to a plain-http origin goes through
    /// sluice's own client, and its body stays in the socket (or, from a
    /// directory, in the file) until [`PassBody::into_body`] decides.
    /// Otherwise this is [`Origin::fetch`].
    pub async fn fetch_passthrough(
        &self,
        req: OriginRequest,
        may_splice: bool,
    ) -> Result<PassResponse> {
        target::check(&req.path_and_query)?;
        if let (true, Origin::Http(origin)) = (may_splice && req.method == Method::GET, self) {
            if let Some(raw) = origin.raw() {
                let asked = Instant::now();
                let fetched = raw.fetch(req).await;
                metered::head(asked, fetched.as_ref().map(|r| r.status));
                let r = fetched?;
                return Ok(PassResponse {
                    status: r.status,
                    headers: r.headers,
                    body: PassBody::Socket {
                        body: r.body,
                        asked,
                    },
                });
            }
        }
        if let (true, Origin::Dir(origin)) = (may_splice && req.method == Method::GET, self) {
            let asked = Instant::now();
            let opened = origin.open(req).await;
            metered::head(asked, opened.as_ref().map(|a| a.status));
            let a = opened?;
            let body = match a.body {
                Some(body) => PassBody::File { body, asked },
                None => PassBody::Stream(metered::body(crate::body::empty(), asked)),
            };
            return Ok(PassResponse {
                status: a.status,
                headers: a.headers,
                body,
            });
        }
        let r = self.fetch(req).await?;
        Ok(PassResponse {
            status: r.status,
            headers: r.headers,
            body: PassBody::Stream(r.body),
        })
    }

    /// A short description for logs (`http://host:port/base` or `dir:/srv`).
    pub fn describe(&self) -> String {
        match self {
            Origin::Http(o) => o.describe(),
            Origin::Dir(o) => o.describe(),
        }
    }
}
