//! Client-facing HTTP metrics: requests by route and status, how long they
//! took until the last byte, bytes sent, responses that did not complete,
//! and requests in flight. Recorded by the request context when a
//! response body ends, so the numbers match the access log line.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Which handler answered a request (the `route` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /{path}` streamed from the origin.
    Passthrough,
    /// Image recompression (`/img/...`).
    Image,
    /// Bulk zip download (`POST /zip`).
    Zip,
    /// `/healthz`, `/readyz`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// `/debug/pprof/...`.
    Debug,
    /// Anything no route matched (404 on the admin listener).
    Unmatched,
    /// The cleartext listener's redirect to https (`--https-redirect-listen`).
    HttpsRedirect,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Passthrough => "passthrough",
            Route::Image => "image",
            Route::Zip => "zip",
            Route::Health => "health",
            Route::Metrics => "metrics",
            Route::Debug => "debug",
            Route::Unmatched => "unmatched",
            Route::HttpsRedirect => "https_redirect",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteStatus {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteOutcome {
    route: &'static str,
    outcome: &'static str,
}

struct HttpMetrics {
    requests: Family<RouteStatus, Counter>,
    duration: Family<RouteLabel, Histogram>,
    sent_bytes: Family<RouteLabel, Counter>,
    incomplete: Family<RouteOutcome, Counter>,
    in_flight: Gauge,
}

static M: LazyLock<HttpMetrics> = LazyLock::new(|| HttpMetrics {
    requests: Family::default(),
    duration: Family::new_with_constructor(|| Histogram::new(super::duration_buckets())),
    sent_bytes: Family::default(),
    incomplete: Family::default(),
    in_flight: Gauge::default(),
});

pub(super) fn register(r: &mut Registry) {
    r.register(
        "http_requests",
        "Client requests answered, by route and HTTP status",
        M.requests.clone(),
    );
    r.register_with_unit(
        "http_request_duration",
        "Time from request start until the response body ended (or was abandoned), by route",
        Unit::Seconds,
        M.duration.clone(),
    );
    r.register_with_unit(
        "http_response_sent",
        "Response body bytes handed to client connections, by route",
        Unit::Bytes,
        M.sent_bytes.clone(),
    );
    r.register(
        "http_responses_incomplete",
        "Responses that did not end normally: outcome=aborted (sluice cut the transfer after an error) or client_gone",
        M.incomplete.clone(),
    );
    r.register(
        "http_requests_in_flight",
        "Requests whose response has not ended yet",
        M.in_flight.clone(),
    );
}

/// Counts a request as in flight until dropped.
#[must_use = "the request counts as in flight until this is dropped"]
pub struct InFlight(());

impl Drop for InFlight {
    fn drop(&mut self) {
        M.in_flight.dec();
    }
}

/// A request arrived; it stays in flight until the guard is dropped.
pub fn request_started() -> InFlight {
    M.in_flight.inc();
    InFlight(())
}

/// A response ended: `bytes` body bytes were sent in `duration`;
/// `incomplete` says how it ended if not normally (`aborted`: sluice cut
/// the transfer after an error, `client_gone`).
pub fn request_finished(
    route: Route,
    status: u16,
    bytes: u64,
    duration: Duration,
    incomplete: Option<&'static str>,
) {
    let route = route.as_str();
    M.requests
        .get_or_create(&RouteStatus { route, status })
        .inc();
    let label = RouteLabel { route };
    M.duration
        .get_or_create(&label)
        .observe(duration.as_secs_f64());
    M.sent_bytes.get_or_create(&label).inc_by(bytes);
    let Some(outcome) = incomplete else {
        return;
    };
    M.incomplete
        .get_or_create(&RouteOutcome { route, outcome })
        .inc();
}
