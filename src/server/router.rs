//! Which service answers which request, on each listener. Dispatch only:
//! every route is a [`Service`] with the same entry point, built once at
//! start-up; the router names the route in the request's context (for the
//! access log and metrics) and hands the request over.

use http::Response;

use crate::admin::{MetricsService, ProfilingService};
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::health::HealthService;
use crate::image::ImageService;
use crate::metrics::http::Route;
use crate::passthrough::PassthroughService;
use crate::service::{ClientRequest, Service};
use crate::zip::ZipService;

/// Which listener a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Client,
    Admin,
    /// `--https-redirect-listen`: every request gets a redirect to https
    /// (answered by the server itself, see `server::redirect`).
    HttpsRedirect,
}

/// Every route's service.
pub struct Router {
    pub health: HealthService,
    pub passthrough: PassthroughService,
    pub image: ImageService,
    pub zip: ZipService,
    pub metrics: MetricsService,
    pub profiling: ProfilingService,
}

impl Router {
    pub async fn route(
        &self,
        listener: Listener,
        req: ClientRequest,
        ctx: &mut RequestContext,
    ) -> Result<Response<Body>> {
        let path = req.uri().path();
        ctx.route = match (listener, path) {
            (_, "/healthz" | "/readyz") => Route::Health,
            (Listener::Client, p) if self.image.matches(p) => Route::Image,
            (Listener::Client, "/zip") if req.method() == http::Method::POST => Route::Zip,
            (Listener::Client, _) => Route::Passthrough,
            (Listener::Admin, "/metrics") => Route::Metrics,
            (Listener::Admin, p) if p == "/debug" || p.starts_with("/debug/") => Route::Debug,
            (Listener::Admin, _) => return Err(Error::not_found("no such admin endpoint")),
            (Listener::HttpsRedirect, _) => Route::Unmatched,
        };
        match ctx.route {
            Route::Health => self.health.serve(req, ctx).await,
            Route::Image => self.image.serve(req, ctx).await,
            Route::Zip => self.zip.serve(req, ctx).await,
            Route::Passthrough => self.passthrough.serve(req, ctx).await,
            Route::Metrics => self.metrics.serve(req, ctx).await,
            Route::Debug => self.profiling.serve(req, ctx).await,
            Route::Unmatched | Route::HttpsRedirect => Err(Error::not_found("no such endpoint")),
        }
    }
}
