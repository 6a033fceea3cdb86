//! Pass-through: `GET`/`HEAD /{path}` streamed from the origin to the client.
//!
//! The request's headers go to the origin less hop-by-hop ones (so Range,
//! If-Range, If-None-Match, If-Modified-Since and Accept-Encoding are
//! forwarded), the origin's status and headers come back the same way, and
//! the body is handed to hyper chunk by chunk: hyper only polls for the next
//! chunk once the previous one was written, so a slow client slows the
//! origin read instead of growing memory. Content coding is the only
//! transformation ([`crate::encoding`]).

use std::time::Instant;

use http::header::{IF_RANGE, RANGE};
use http::{Method, Response, StatusCode};

use crate::body::Body;
use crate::budget::MemoryBudget;
use crate::context::RequestContext;
use crate::encoding::{self, AcceptEncoding};
use crate::error::{Error, ErrorKind, Result};
use crate::headers;
use crate::origin::{Origin, OriginRequest, PassResponse};
use crate::service::{ClientRequest, Service};
use crate::splice::ConnPipe;
use crate::zip::{self, ZipService};

/// Pass-through, built once at start-up.
pub struct PassthroughService {
    origin: Origin,
    /// Content-coding codecs reserve their memory here.
    budget: MemoryBudget,
    /// An origin response carrying a mod_zip manifest is handed here.
    zip: ZipService,
}

impl PassthroughService {
    pub fn new(origin: Origin, budget: MemoryBudget, zip: ZipService) -> Self {
        PassthroughService {
            origin,
            budget,
            zip,
        }
    }
}

impl Service for PassthroughService {
    async fn serve(&self, req: ClientRequest, ctx: &mut RequestContext) -> Result<Response<Body>> {
        let method = req.method().clone();
        if method != Method::GET && method != Method::HEAD {
            return Err(Error::new(
                ErrorKind::MethodNotAllowed,
                "only GET and HEAD are proxied",
            ));
        }
        let accept = AcceptEncoding::from_headers(req.headers());
        let pipe = ConnPipe::for_request(&req);
        let (parts, _no_body) = req.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let archive_conditionals = zip::conditional_headers(&parts.headers);
        // A manifest may name client headers for its entry requests, and a
        // client's Range may be meant for an archive (see `whole_manifest`):
        // the one copy of the client's headers serves both.
        let client_headers = (method == Method::GET).then(|| parts.headers.clone());
        let ranged = client_headers
            .as_ref()
            .is_some_and(|h| h.contains_key(RANGE));
        let refetch_path = ranged.then(|| path_and_query.clone());
        let origin_request = OriginRequest {
            method: method.clone(),
            path_and_query,
            headers: headers::to_origin(
                parts.headers,
                parts.version,
                ctx.client_ip,
                &ctx.request_id,
            ),
        };

        let asked = Instant::now();
        let fetched = self
            .origin
            .fetch_passthrough(origin_request, pipe.is_some())
            .await;
        let upstream = match (fetched, refetch_path, &client_headers) {
            (Ok(upstream), Some(path), Some(client)) => {
                // Only built when the manifest is fetched again.
                let unranged = || {
                    let mut h = client.clone();
                    h.remove(RANGE);
                    h.remove(IF_RANGE);
                    OriginRequest {
                        method: Method::GET,
                        path_and_query: path,
                        headers: headers::to_origin(
                            h,
                            parts.version,
                            ctx.client_ip,
                            &ctx.request_id,
                        ),
                    }
                };
                self.whole_manifest(upstream, unranged).await
            }
            (fetched, _, _) => fetched,
        };
        ctx.upstream = Some(asked.elapsed());
        let upstream = upstream?;
        // nginx mod_zip compatibility: the body is a manifest; answer with the zip.
        if method == Method::GET && zip::wants_archive(upstream.status, &upstream.headers) {
            return self
                .zip
                .serve_mod_zip(
                    upstream.into_origin_response(),
                    &archive_conditionals,
                    client_headers.as_ref().unwrap_or(&http::HeaderMap::new()),
                )
                .await;
        }

        let mut headers = headers::to_client(upstream.headers, parts.version);
        let recode = encoding::negotiate(
            upstream.status,
            &accept,
            &mut headers,
            method == Method::HEAD,
            &self.budget,
        )?;
        // A body that goes out unchanged may be spliced: it never enters user space.
        let body = if recode.is_unchanged() {
            upstream.body.into_body(pipe.as_ref())
        } else {
            recode.apply(upstream.body.into_body(None))
        };
        let mut response = Response::new(body);
        *response.status_mut() = upstream.status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

impl PassthroughService {
    /// A client's Range is for the archive, not for a mod_zip manifest. An
    /// application that makes manifests ignores it, but an origin that
    /// serves them as static files (nginx, S3) applies it to the manifest:
    /// it answers 206 with a slice (nginx's `add_header X-Archive-Files`
    /// still applies), or 416 for an offset past the manifest's few hundred
    /// bytes (where that header is gone). Then the whole manifest is fetched
    /// again without Range, and the Range goes to the archive. A 416 is
    /// first checked with a HEAD: only a manifest is fetched again, any
    /// other 416 goes to the client as it came.
    async fn whole_manifest(
        &self,
        upstream: PassResponse,
        unranged: impl FnOnce() -> OriginRequest,
    ) -> Result<PassResponse> {
        let sliced = upstream.status == StatusCode::PARTIAL_CONTENT
            && zip::names_a_manifest(&upstream.headers);
        if !sliced {
            if upstream.status != StatusCode::RANGE_NOT_SATISFIABLE {
                return Ok(upstream);
            }
            let plain = unranged();
            let head = OriginRequest {
                method: Method::HEAD,
                ..plain.clone()
            };
            let is_manifest = self
                .origin
                .fetch(head)
                .await
                .is_ok_and(|probe| zip::wants_archive(probe.status, &probe.headers));
            if !is_manifest {
                return Ok(upstream);
            }
            drop(upstream);
            return self.origin.fetch_passthrough(plain, false).await;
        }
        drop(upstream);
        self.origin.fetch_passthrough(unranged(), false).await
    }
}
