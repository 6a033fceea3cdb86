//! Prometheus metrics: the one process-wide registry and `GET /metrics`.
//!
//! Every metric is named `sluice_<area>_<what>[_<unit>][_total]` in base
//! units (seconds, bytes). Each area has a small module of named functions
//! or guards that the code doing the work calls ([`http`], [`upstream`],
//! [`zip`], [`processing`]); gauges that mirror state owned elsewhere
//! (memory budget, allocator, process) are read at scrape time
//! ([`memory`]). Metrics are global, like a logger: a request handler
//! records an event without carrying a handle through every layer.
//!
//! Built on `prometheus-client` (the official Rust client): it is small
//! (no exporter server, no background thread), encodes both the classic
//! Prometheus text format and OpenMetrics, and its typed label sets keep
//! label names fixed at compile time.

pub mod conn;
pub mod http;
pub mod memory;
pub mod processing;
pub mod upstream;
pub mod zip;

use std::sync::LazyLock;

use ::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use ::http::{HeaderMap, HeaderValue, Method, Response};
use prometheus_client::encoding::{prometheus_text, text as openmetrics_text};
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Registry;

use crate::body::{self, Body};
use crate::budget::MemoryBudget;
use crate::error::{Error, Kind};

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("sluice");
    http::register(&mut registry);
    conn::register(&mut registry);
    upstream::register(&mut registry);
    zip::register(&mut registry);
    processing::register(&mut registry);
    memory::register(&mut registry);
    registry.register(
        "debug_auth_failures",
        "Requests to /debug/ endpoints refused for a missing or wrong bearer token",
        crate::profiling::AUTH_FAILURES.clone(),
    );
    registry
});

/// The `Content-Type` of the OpenMetrics text format, which Prometheus asks
/// for first in its `Accept` header.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`: refresh the gauges read at scrape time, then encode.
/// OpenMetrics when the scraper asks for it (Prometheus does), the classic
/// text format (version 0.0.4) otherwise (curl, older tools).
pub fn serve(
    method: &Method,
    request_headers: &HeaderMap,
    budget: &MemoryBudget,
) -> Result<Response<Body>, Error> {
    if method != Method::GET && method != Method::HEAD {
        return Err(Error::new(Kind::MethodNotAllowed, "use GET for /metrics"));
    }
    memory::refresh(budget);
    let openmetrics = request_headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (text, content_type) = render(openmetrics)?;
    let mut response = Response::new(body::full(text));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Encode every metric; returns the text and its content type.
pub fn render(openmetrics: bool) -> Result<(String, &'static str), Error> {
    let mut text = String::with_capacity(16 * 1024);
    let encoded = if openmetrics {
        openmetrics_text::encode(&mut text, &REGISTRY).map(|()| OPENMETRICS_CONTENT_TYPE)
    } else {
        prometheus_text::encode(&mut text, &REGISTRY).map(|()| prometheus_text::CONTENT_TYPE)
    };
    let content_type =
        encoded.map_err(|e| Error::internal("could not encode metrics").with_cause(e))?;
    Ok((text, content_type))
}

/// Buckets for durations from 1 ms to about 65 s, doubling.
fn duration_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 17)
}

/// A short, stable label value for an error kind (`kind="upstream_timeout"`).
pub fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::UpstreamUnavailable => "upstream_unavailable",
        Kind::UpstreamTimeout => "upstream_timeout",
        Kind::UpstreamBroken => "upstream_broken",
        Kind::UpstreamStatus(_) => "upstream_status",
        Kind::BadRequest => "bad_request",
        Kind::Forbidden => "forbidden",
        Kind::NotFound => "not_found",
        Kind::MethodNotAllowed => "method_not_allowed",
        Kind::RangeNotSatisfiable => "range_not_satisfiable",
        Kind::PayloadTooLarge => "payload_too_large",
        Kind::RequestTimeout => "request_timeout",
        Kind::UriTooLong => "uri_too_long",
        Kind::HeadersTooLarge => "headers_too_large",
        Kind::Unprocessable => "unprocessable",
        Kind::TooManyRequests => "too_many_requests",
        Kind::Unavailable => "unavailable",
        Kind::ClientGone => "client_gone",
        Kind::Internal => "internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_encode_with_the_sluice_prefix_and_base_units() {
        http::request_finished(
            http::Route::Passthrough,
            200,
            10,
            std::time::Duration::from_millis(3),
            crate::body::Outcome::Complete,
        );
        let (classic, ct) = render(false).unwrap();
        assert!(ct.starts_with("text/plain; version=0.0.4"));
        assert!(classic.contains("# TYPE sluice_http_requests_total counter"));
        assert!(classic.contains("sluice_http_request_duration_seconds_bucket{"));
        assert!(classic.contains("sluice_memory_budget_capacity_bytes"));
        let (open, ct) = render(true).unwrap();
        assert!(ct.starts_with("application/openmetrics-text"));
        assert!(open.ends_with("# EOF\n"));
        for line in classic.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                line.starts_with("sluice_"),
                "unprefixed metric line {line:?}"
            );
        }
    }
}
