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
mod tls;

use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};

pub use dir::DirOrigin;
pub use http_origin::HttpOrigin;

use crate::body::Body;
use crate::config::OriginSpec;
use crate::error::Result;

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

/// Timeouts towards the origin.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
}

/// The configured origin.
#[derive(Clone)]
pub enum Origin {
    Http(Box<HttpOrigin>),
    Dir(DirOrigin),
}

impl Origin {
    /// `extra_ca` is a PEM bundle of CAs to trust besides the system's.
    pub fn new(
        spec: &OriginSpec,
        timeouts: Timeouts,
        extra_ca: Option<&std::path::Path>,
    ) -> std::result::Result<Self, String> {
        Ok(match spec {
            OriginSpec::Http(uri) => Origin::Http(Box::new(HttpOrigin::new(
                uri.clone(),
                timeouts,
                tls::client_config(extra_ca)?,
            )?)),
            OriginSpec::Dir(path) => Origin::Dir(DirOrigin::new(path)?),
        })
    }

    /// Fetch one resource. Errors before the response headers are returned
    /// here; errors while streaming surface as body errors.
    pub async fn fetch(&self, req: OriginRequest) -> Result<OriginResponse> {
        let asked = std::time::Instant::now();
        let fetched = match self {
            Origin::Http(o) => o.fetch(req).await,
            Origin::Dir(o) => o.fetch(req).await,
        };
        crate::metrics::upstream::observe_fetch(asked, fetched)
    }

    /// A short description for logs (`http://host:port/base` or `dir:/srv`).
    pub fn describe(&self) -> String {
        match self {
            Origin::Http(o) => o.describe(),
            Origin::Dir(o) => o.describe(),
        }
    }
}
