//! Liveness and readiness. `/healthz` answers 200 while the process serves
//! at all; `/readyz` answers 503 from the moment draining starts, so a load
//! balancer stops sending new traffic while in-flight responses finish.

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

use crate::body::{self, Body};
use crate::shutdown::Shutdown;

pub fn live() -> Response<Body> {
    plain(StatusCode::OK, "ok\n")
}

pub fn ready(shutdown: &Shutdown) -> Response<Body> {
    if shutdown.is_draining() {
        plain(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        plain(StatusCode::OK, "ready\n")
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(body::full(text));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
