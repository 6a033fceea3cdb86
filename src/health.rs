//! Liveness and readiness. `/healthz` answers 200 while the process serves
//! at all; `/readyz` answers 503 from the moment draining starts, so a load
//! balancer stops sending new traffic while in-flight responses finish.

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

use crate::body::{self, Body};
use crate::context::RequestContext;
use crate::error::Result;
use crate::service::{ClientRequest, Service};
use crate::shutdown::Shutdown;

/// `/healthz` and `/readyz`, on both listeners.
pub struct HealthService {
    shutdown: Shutdown,
}

impl HealthService {
    pub fn new(shutdown: Shutdown) -> Self {
        HealthService { shutdown }
    }
}

impl Service for HealthService {
    async fn serve(&self, req: ClientRequest, _ctx: &mut RequestContext) -> Result<Response<Body>> {
        Ok(match req.uri().path() {
            "/readyz" if self.shutdown.is_draining() => {
                plain(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            }
            "/readyz" => plain(StatusCode::OK, "ready\n"),
            _ => plain(StatusCode::OK, "ok\n"),
        })
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
