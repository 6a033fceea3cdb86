//! The per-request context every route receives (`Service::serve`): the
//! request id, the client, the route, the time to the origin's head; and
//! the one structured access-log line it becomes when the response body
//! has ended (so it carries the bytes actually sent and how the transfer
//! ended). The same moment feeds the request metrics
//! ([`crate::metrics::http`]).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::body::Outcome;
use crate::headers::X_REQUEST_ID;
use crate::metrics::http::{self as http_metrics, InFlight, Route};

/// What one request's log line will say.
pub struct RequestContext {
    pub request_id: HeaderValue,
    pub client_ip: IpAddr,
    pub method: Method,
    pub path: String,
    pub started: Instant,
    /// Time until the origin's response headers arrived, if it was asked.
    pub upstream: Option<Duration>,
    /// Which handler answered; set by the router.
    pub route: Route,
    _in_flight: InFlight,
}

impl RequestContext {
    pub fn new(headers: &HeaderMap, method: Method, path: String, client_ip: IpAddr) -> Self {
        RequestContext {
            request_id: request_id(headers),
            client_ip,
            method,
            path,
            started: Instant::now(),
            upstream: None,
            route: Route::Unmatched,
            _in_flight: http_metrics::request_started(),
        }
    }

    /// Emit the access log line.
    pub fn finish(self, status: StatusCode, bytes: u64, outcome: Outcome) {
        let elapsed = self.started.elapsed();
        let incomplete = match outcome {
            Outcome::Complete => None,
            Outcome::Failed => Some("aborted"),
            Outcome::Dropped => Some("client_gone"),
        };
        http_metrics::request_finished(self.route, status.as_u16(), bytes, elapsed, incomplete);
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        let upstream_ms = self.upstream.map(|d| d.as_secs_f64() * 1000.0);
        let request_id = self.request_id.to_str().unwrap_or("-");
        let outcome = match outcome {
            Outcome::Complete => "complete",
            Outcome::Failed => "aborted",
            Outcome::Dropped => "client_gone",
        };
        tracing::info!(
            target: "sluice::access",
            request_id,
            method = %self.method,
            path = %self.path,
            status = status.as_u16(),
            route = self.route.as_str(),
            bytes,
            duration_ms,
            upstream_ms,
            client = %self.client_ip,
            outcome,
            "request"
        );
    }
}

/// Use the client's `X-Request-Id` when it is short and printable, else a
/// fresh id: 16 hex digits from the process start time and a counter.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (nanos ^ (u64::from(std::process::id()) << 32)) & 0xffff_ffff_0000_0000
    });
    let n = seed | (COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff);
    HeaderValue::from_str(&format!("{n:016x}")).unwrap_or(HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_client_ids_are_kept_when_sane() {
        let empty = HeaderMap::new();
        assert_ne!(request_id(&empty), request_id(&empty));
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("trace-42"));
        assert_eq!(request_id(&h), "trace-42");
        h.insert(X_REQUEST_ID, HeaderValue::from_static("has space"));
        assert_ne!(request_id(&h), "has space");
    }
}
