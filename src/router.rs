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
use crate::origin::Origin;
use crate::shutdown::Shutdown;
use crate::{health, passthrough};

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
        (_, "/healthz") => Ok(health::live()),
        (_, "/readyz") => Ok(health::ready(&state.shutdown)),
        (Listener::Client, p) if state.image.matches(p) => {
            let image = state.image.clone();
            image.serve(&state.origin, &state.budget, req, ctx).await
        }
        (Listener::Client, _) => passthrough::serve(&state.origin, req, ctx).await,
        (Listener::Admin, _) => Err(crate::error::Error::not_found("no such admin endpoint")),
    }
}
