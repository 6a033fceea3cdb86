//! Pass-through: `GET`/`HEAD /{path}` streamed from the origin to the client.
//!
//! The request's headers go to the origin less hop-by-hop ones (so Range,
//! If-Range, If-None-Match, If-Modified-Since and Accept-Encoding are
//! forwarded), the origin's status and headers come back the same way, and
//! the body is handed to hyper chunk by chunk: hyper only polls for the next
//! chunk once the previous one was written, so a slow client slows the
//! origin read instead of growing memory. Content coding is the only
//! transformation ([`crate::encoding`]).

use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response};

use crate::access_log::RequestContext;
use crate::body::Body;
use crate::encoding::{self, AcceptEncoding};
use crate::error::{Error, Kind, Result};
use crate::headers;
use crate::origin::OriginRequest;
use crate::router::AppState;
use crate::splice::ConnPipe;
use crate::zip;

pub async fn serve<B>(
    state: &Arc<AppState>,
    req: Request<B>,
    ctx: &mut RequestContext,
) -> Result<Response<Body>> {
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        return Err(Error::new(
            Kind::MethodNotAllowed,
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
    let archive_conditionals = zip::route::conditional_headers(&parts.headers);
    let origin_request = OriginRequest {
        method: method.clone(),
        path_and_query,
        headers: headers::to_origin(parts.headers, parts.version, ctx.client_ip, &ctx.request_id),
    };

    let asked = Instant::now();
    let fetched = state
        .origin
        .fetch_passthrough(origin_request, pipe.is_some())
        .await;
    ctx.upstream = Some(asked.elapsed());
    let upstream = fetched?;
    // nginx mod_zip compatibility: the body is a manifest; answer with the zip.
    if method == Method::GET && zip::route::wants_archive(upstream.status, &upstream.headers) {
        return zip::route::serve_mod_zip(
            state,
            upstream.into_origin_response(),
            &archive_conditionals,
        )
        .await;
    }

    let mut headers = headers::to_client(upstream.headers, parts.version);
    let recode = encoding::negotiate(
        upstream.status,
        &accept,
        &mut headers,
        method == Method::HEAD,
        &state.budget,
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
