//! The one shape of every route. Each feature (pass-through, zip, image,
//! health, metrics, profiling) is a service built once at start-up from
//! its own settings, and answers a request through [`Service::serve`]; the
//! server's router only chooses which. A service returns an [`Error`] for
//! anything it refuses or fails before the response starts; the server
//! turns it into a short plain-text answer with the status for its kind.
//!
//! [`Error`]: crate::error::Error

use std::future::Future;

use http::Response;

use crate::body::Body;
use crate::context::RequestContext;
use crate::error::Result;

/// A request as the server hands it to a route.
pub type ClientRequest = http::Request<hyper::body::Incoming>;

pub trait Service: Send + Sync + 'static {
    /// Answer `req`; `ctx` is the request's context (and log line).
    fn serve(
        &self,
        req: ClientRequest,
        ctx: &mut RequestContext,
    ) -> impl Future<Output = Result<Response<Body>>> + Send;
}
