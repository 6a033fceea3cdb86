//! The admin listener's own features: `GET /metrics` ([`MetricsService`])
//! and the token-protected heap profiler under `/debug/`
//! ([`profiling`]). Health checks are served on both listeners by the
//! health feature.

pub mod profiling;

use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Response};

use crate::body::{self, Body};
use crate::budget::MemoryBudget;
use crate::context::RequestContext;
use crate::error::{Error, ErrorKind, Result};
use crate::metrics;
use crate::metrics::memory::BudgetState;
use crate::service::{ClientRequest, Service};

pub use profiling::ProfilingService;

/// `GET /metrics`: the gauges read at scrape time are refreshed, then the
/// registry is encoded: OpenMetrics when the scraper asks for it
/// (Prometheus does), the classic text format (0.0.4) otherwise.
pub struct MetricsService {
    budget: MemoryBudget,
}

impl MetricsService {
    pub fn new(budget: MemoryBudget) -> Self {
        MetricsService { budget }
    }
}

impl Service for MetricsService {
    async fn serve(&self, req: ClientRequest, _ctx: &mut RequestContext) -> Result<Response<Body>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Err(Error::new(
                ErrorKind::MethodNotAllowed,
                "use GET for /metrics",
            ));
        }
        metrics::memory::refresh(
            BudgetState {
                capacity_bytes: self.budget.capacity_bytes(),
                in_use_bytes: self.budget.in_use_bytes(),
                waiters: self.budget.waiters() as u64,
            },
            profiling::heap::is_active(),
        );
        let openmetrics = req
            .headers()
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/openmetrics-text"));
        let (text, content_type) = metrics::render(openmetrics)
            .map_err(|e| Error::internal("could not encode metrics").with_cause(e))?;
        let mut response = Response::new(body::full(text));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }
}
