//! Routes of the client listener and of the admin listener.
//!
//! Each route is its own module; this file only says which path goes where.
//! Every handler returns `Result<Response<Body>>`; [`crate::server`] turns an
//! `Err` into a short plain-text error response.

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::access_log::RequestContext;
use crate::body::Body;
use crate::budget::MemoryBudget;
use crate::config::Config;
use crate::error::Result;
use crate::metrics::http::Route;
use crate::origin::Origin;
use crate::shutdown::Shutdown;
use crate::{health, metrics, passthrough, profiling};

/// What every handler may use. Built once at start-up.
pub struct AppState {
    pub config: Config,
    pub origin: Origin,
    pub budget: MemoryBudget,
    pub shutdown: Shutdown,
    /// Recompression under `--img-prefix` (issue 4).
    pub image: Arc<crate::image::service::ImageService>,
}

/// Which listener a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Client,
    Admin,
}

pub async fn route(
    state: Arc<AppState>,
    listener: Listener,
    req: Request<Incoming>,
    ctx: &mut RequestContext,
) -> Result<Response<Body>> {
    match (listener, req.uri().path()) {
        (_, "/healthz") => {
            ctx.route = Route::Health;
            Ok(health::live())
        }
        (_, "/readyz") => {
            ctx.route = Route::Health;
            Ok(health::ready(&state.shutdown))
        }
        (Listener::Client, p) if state.image.matches(p) => {
            ctx.route = Route::Image;
            let image = state.image.clone();
            image.serve(&state.origin, req, ctx).await
        }
        (Listener::Client, "/zip") if req.method() == http::Method::POST => {
            ctx.route = Route::Zip;
            crate::zip::route::serve_post(&state, req).await
        }
        (Listener::Client, _) => {
            ctx.route = Route::Passthrough;
            passthrough::serve(&state, req, ctx).await
        }
        (Listener::Admin, "/metrics") => {
            ctx.route = Route::Metrics;
            metrics::serve(req.method(), req.headers(), &state.budget)
        }
        (Listener::Admin, path) if path == "/debug" || path.starts_with("/debug/") => {
            ctx.route = Route::Debug;
            profiling::serve(state.config.debug_token.as_ref(), req, ctx).await
        }
        (Listener::Admin, _) => Err(crate::error::Error::not_found("no such admin endpoint")),
    }
}
