//! Origin-side metrics, recorded by the origin layer for every fetch
//! (pass-through, zip entries and image sources alike): responses by
//! status, failures by kind, time to headers and to the end of the body,
//! body bytes received, and bodies streaming right now.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

struct UpstreamMetrics {
    responses: Family<StatusLabel, Counter>,
    errors: Family<KindLabel, Counter>,
    header_duration: Histogram,
    duration: Histogram,
    received_bytes: Counter,
    spliced_bytes: Counter,
    streams_in_flight: Gauge,
}

static M: LazyLock<UpstreamMetrics> = LazyLock::new(|| UpstreamMetrics {
    responses: Family::default(),
    errors: Family::default(),
    header_duration: Histogram::new(super::duration_buckets()),
    duration: Histogram::new(super::duration_buckets()),
    received_bytes: Counter::default(),
    spliced_bytes: Counter::default(),
    streams_in_flight: Gauge::default(),
});

pub(super) fn register(r: &mut Registry) {
    r.register(
        "upstream_responses",
        "Origin responses received (headers arrived), by HTTP status",
        M.responses.clone(),
    );
    r.register(
        "upstream_errors",
        "Origin fetches that failed, before headers or mid-body, by kind",
        M.errors.clone(),
    );
    r.register_with_unit(
        "upstream_header_duration",
        "Time from asking the origin until its response headers arrived",
        Unit::Seconds,
        M.header_duration.clone(),
    );
    r.register_with_unit(
        "upstream_duration",
        "Time from asking the origin until its body ended, failed or was dropped",
        Unit::Seconds,
        M.duration.clone(),
    );
    r.register_with_unit(
        "upstream_received",
        "Origin body bytes received",
        Unit::Bytes,
        M.received_bytes.clone(),
    );
    r.register_with_unit(
        "upstream_spliced",
        "Origin body bytes spliced to clients without entering user space (part of upstream_received)",
        Unit::Bytes,
        M.spliced_bytes.clone(),
    );
    r.register(
        "upstream_streams_in_flight",
        "Origin bodies being streamed right now",
        M.streams_in_flight.clone(),
    );
}

/// Record how a fetch that started at `asked` got its response head
/// (`Ok(status)`), or failed before it (`Err(kind)`).
pub fn observe_head(asked: Instant, outcome: Result<u16, &'static str>) {
    M.header_duration.observe(asked.elapsed().as_secs_f64());
    match outcome {
        Ok(status) => {
            M.responses.get_or_create(&StatusLabel { status }).inc();
        }
        Err(kind) => {
            M.errors.get_or_create(&KindLabel { kind }).inc();
            M.duration.observe(asked.elapsed().as_secs_f64());
        }
    }
}

/// Count body bytes that were spliced (they are counted as received too).
pub fn count_spliced(n: usize) {
    M.spliced_bytes.inc_by(n as u64);
}

/// An origin body streaming now: counted in flight until dropped; its
/// bytes and its end (or failure) are told to it as they happen.
#[must_use = "the stream is counted in flight until this is dropped"]
pub struct Stream {
    asked: Instant,
    ended: bool,
}

impl Stream {
    /// A body of a fetch that started at `asked`.
    pub fn start(asked: Instant) -> Stream {
        M.streams_in_flight.inc();
        Stream {
            asked,
            ended: false,
        }
    }

    pub fn received(&self, bytes: usize) {
        M.received_bytes.inc_by(bytes as u64);
    }

    /// The body ended (`None`) or failed (`Some(kind)`).
    pub fn ended(&mut self, failure: Option<&'static str>) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        if let Some(kind) = failure {
            M.errors.get_or_create(&KindLabel { kind }).inc();
        }
        M.duration.observe(self.asked.elapsed().as_secs_f64());
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        M.streams_in_flight.dec();
        self.ended(None);
    }
}
