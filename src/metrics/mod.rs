//! Prometheus metrics: the one process-wide registry, and the named
//! functions and guards that record into it. The `/metrics` endpoint that
//! renders it belongs to the admin listener (`crate::admin`).
//!
//! This module imports nothing of sluice: callers pass plain values
//! (statuses, `&'static str` labels such as an error kind's), so every
//! layer may record metrics and metrics depend on no layer.
//!
//! Every metric is named `sluice_<area>_<what>[_<unit>][_total]` in base
//! units (seconds, bytes). Each area has a small module of named functions
//! or guards that the code doing the work calls ([`http`], [`upstream`],
//! [`zip`], [`processing`]); gauges that mirror state owned elsewhere
//! (memory budget, allocator, process) are set at scrape time
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
pub mod tls;
pub mod upstream;
pub mod zip;

use std::sync::LazyLock;

use prometheus_client::encoding::{prometheus_text, text as openmetrics_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Registry;

/// Requests to `/debug/` endpoints refused for a missing or wrong token.
static DEBUG_AUTH_FAILURES: LazyLock<Counter> = LazyLock::new(Counter::default);

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("sluice");
    http::register(&mut registry);
    conn::register(&mut registry);
    upstream::register(&mut registry);
    zip::register(&mut registry);
    processing::register(&mut registry);
    tls::register(&mut registry);
    memory::register(&mut registry);
    registry.register(
        "debug_auth_failures",
        "Requests to /debug/ endpoints refused for a missing or wrong bearer token",
        DEBUG_AUTH_FAILURES.clone(),
    );
    registry
});

/// A request to a `/debug/` endpoint was refused.
pub fn debug_auth_failed() {
    DEBUG_AUTH_FAILURES.inc();
}

/// The `Content-Type` of the OpenMetrics text format, which Prometheus asks
/// for first in its `Accept` header.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encode every metric: OpenMetrics, or the classic Prometheus text
/// format (version 0.0.4). Returns the text and its content type.
pub fn render(openmetrics: bool) -> Result<(String, &'static str), std::fmt::Error> {
    let mut text = String::with_capacity(16 * 1024);
    if openmetrics {
        openmetrics_text::encode(&mut text, &REGISTRY)?;
        Ok((text, OPENMETRICS_CONTENT_TYPE))
    } else {
        prometheus_text::encode(&mut text, &REGISTRY)?;
        Ok((text, prometheus_text::CONTENT_TYPE))
    }
}

/// Buckets for durations from 1 ms to about 65 s, doubling.
fn duration_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 17)
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
            None,
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
