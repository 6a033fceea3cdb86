//! The HTTP(S) origin: sluice's own client for plain http
//! ([`super::raw_http`]), one pooled hyper client (rustls) for https, with
//! connect, first-byte and idle timeouts. It maps transport failures to the
//! statuses a trusted proxy uses: refused or reset before headers is 502, a
//! timeout is 504; the origin's own statuses pass through untouched.

use std::sync::Arc;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::raw_http::RawHttp;
use super::{OriginRequest, OriginResponse, Timeouts};
use crate::body::{IdleTimeout, CHUNK_SIZE};
use crate::error::{Error, ErrorKind, Result};

#[derive(Clone)]
pub struct HttpOrigin {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    /// `scheme://authority`
    scheme_authority: String,
    /// The base path without a trailing slash ("" for the root).
    base_path: String,
    host: HeaderValue,
    timeouts: Timeouts,
    /// sluice's own client, for pass-through bodies that may be spliced
    /// (plain http only: TLS bytes cannot be spliced).
    raw: Option<Arc<RawHttp>>,
}

/// Size of each read from an origin connection, and so of the largest body
/// chunk in flight. A stream holds about two of these (one being written to
/// the client, one read ahead). Measured with `bench/proxy.sh`, 64 clients:
/// 64 KiB reads cost ~125 CPU ticks per GB proxied and 25 MiB peak RSS;
/// 128 KiB reads ~90 ticks/GB and 30 MiB; 256 KiB saves little more CPU
/// and breaks the 32 MiB budget (44 MiB). Fixed-size reads ("exact") hold
/// less than hyper's adaptive buffer capped at the same size (35 MiB).
const UPSTREAM_READ_SIZE: usize = 128 * 1024;

impl HttpOrigin {
    pub fn new(
        base: Uri,
        timeouts: Timeouts,
        tls: rustls::ClientConfig,
    ) -> std::result::Result<Self, String> {
        let scheme = base.scheme_str().unwrap_or("http").to_string();
        let authority = base
            .authority()
            .ok_or_else(|| format!("origin {base} has no host"))?
            .to_string();
        let host = HeaderValue::from_str(&authority).map_err(|e| e.to_string())?;
        let base_path = base.path().trim_end_matches('/').to_string();

        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(timeouts.connect));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            // hyper lets a connection's read buffer grow to ~400 KiB; at
            // hundreds of concurrent streams that is most of our memory.
            // Bodies are forwarded chunk by chunk, so read in fixed pieces.
            .http1_read_buf_exact_size(UPSTREAM_READ_SIZE)
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        let raw = (scheme == "http").then(|| {
            Arc::new(RawHttp::new(
                &authority,
                host.clone(),
                base_path.clone(),
                timeouts,
            ))
        });
        Ok(HttpOrigin {
            raw,
            client,
            scheme_authority: format!("{scheme}://{authority}"),
            base_path,
            host,
            timeouts,
        })
    }

    /// The client whose bodies can be spliced, for a plain-http origin.
    pub fn raw(&self) -> Option<&RawHttp> {
        self.raw.as_deref()
    }

    pub fn describe(&self) -> String {
        format!("{}{}", self.scheme_authority, self.base_path)
    }

    /// Fetch one resource. From a plain-http origin, through sluice's own
    /// client, its body read in pieces of at most [`CHUNK_SIZE`] only as
    /// the caller polls it (see [`super::raw_http`] for why).
    pub async fn fetch(&self, req: OriginRequest) -> Result<OriginResponse> {
        if let Some(raw) = &self.raw {
            let r = raw.fetch(req).await?;
            return Ok(OriginResponse {
                status: r.status,
                headers: r.headers,
                body: r.body.streamed(CHUNK_SIZE),
            });
        }
        let uri: Uri = format!(
            "{}{}{}",
            self.scheme_authority, self.base_path, req.path_and_query
        )
        .parse()
        .map_err(|e| Error::invalid_request("request path is not a valid URI").with_cause(e))?;
        let mut request = Request::builder()
            .method(req.method)
            .uri(uri)
            .body(Empty::new())
            .map_err(|e| Error::internal("could not build origin request").with_cause(e))?;
        *request.headers_mut() = req.headers;
        request.headers_mut().insert(HOST, self.host.clone());

        let response = match tokio::time::timeout(
            self.timeouts.first_byte,
            self.client.request(request),
        )
        .await
        {
            Err(_elapsed) => {
                return Err(Error::new(
                    ErrorKind::FirstByteTimeout,
                    format!(
                        "origin sent no response headers within {:?}",
                        self.timeouts.first_byte
                    ),
                ))
            }
            Ok(Err(e)) => return Err(classify_request_error(e, self.timeouts)),
            Ok(Ok(r)) => r,
        };
        let (parts, incoming) = response.into_parts();
        let body =
            incoming.map_err(|e| Error::body_broken("origin body failed mid-stream").with_cause(e));
        Ok(OriginResponse {
            status: parts.status,
            headers: parts.headers,
            body: IdleTimeout::new(body, self.timeouts.idle).boxed_unsync(),
        })
    }
}

fn classify_request_error(e: hyper_util::client::legacy::Error, t: Timeouts) -> Error {
    if e.is_connect() {
        if is_timeout(&e) {
            return Error::new(
                ErrorKind::ConnectTimeout,
                format!("could not connect to origin within {:?}", t.connect),
            )
            .with_cause(e);
        }
        return Error::connect_failed("could not connect to origin").with_cause(e);
    }
    Error::connect_failed("origin closed the connection before responding").with_cause(e)
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        if err.to_string().contains("timed out") {
            return true;
        }
        cur = err.source();
    }
    false
}
