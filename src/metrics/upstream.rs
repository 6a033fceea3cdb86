//! Origin-side metrics, recorded for every fetch through
//! [`crate::origin::Origin::fetch`] (pass-through, zip entries and image
//! sources alike): responses by status, failures by kind, time to headers
//! and to the end of the body, body bytes received, and bodies streaming
//! right now.

use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::body::Body;
use crate::error::{Error, Result};
use crate::origin::OriginResponse;

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

/// Record the outcome of one origin fetch that started at `asked`, and
/// wrap a successful response's body so that its bytes and end are counted.
pub fn observe_fetch(asked: Instant, fetched: Result<OriginResponse>) -> Result<OriginResponse> {
    observe_head(asked, fetched.as_ref().map(|r| r.status));
    let mut response = fetched?;
    let body = std::mem::replace(&mut response.body, crate::body::empty());
    response.body = count_body(body, asked);
    Ok(response)
}

/// Record how a fetch that started at `asked` got its response head, or failed.
pub fn observe_head(asked: Instant, outcome: std::result::Result<StatusCode, &Error>) {
    M.header_duration.observe(asked.elapsed().as_secs_f64());
    match outcome {
        Ok(status) => {
            M.responses
                .get_or_create(&StatusLabel {
                    status: status.as_u16(),
                })
                .inc();
        }
        Err(e) => {
            count_error(e);
            M.duration.observe(asked.elapsed().as_secs_f64());
        }
    }
}

/// Count body bytes that were spliced (they are counted as received too).
pub fn count_spliced(n: usize) {
    M.spliced_bytes.inc_by(n as u64);
}

/// Count an origin body's bytes and end (the fetch started at `asked`).
pub fn count_body(body: Body, asked: Instant) -> Body {
    UpstreamBody::new(body, asked).boxed_unsync()
}

fn count_error(e: &Error) {
    M.errors
        .get_or_create(&KindLabel {
            kind: super::kind_label(e.kind),
        })
        .inc();
}

pin_project_lite::pin_project! {
    /// An origin body that counts its bytes as they pass and is counted as
    /// a stream in flight until it ends or is dropped.
    struct UpstreamBody {
        #[pin]
        inner: Body,
        asked: Instant,
        ended: bool,
    }

    impl PinnedDrop for UpstreamBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            M.streams_in_flight.dec();
            if !*this.ended {
                M.duration.observe(this.asked.elapsed().as_secs_f64());
            }
        }
    }
}

impl UpstreamBody {
    fn new(inner: Body, asked: Instant) -> Self {
        M.streams_in_flight.inc();
        UpstreamBody {
            inner,
            asked,
            ended: false,
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    M.received_bytes.inc_by(data.len() as u64);
                }
            }
            Some(Err(e)) if !*this.ended => {
                *this.ended = true;
                count_error(e);
                M.duration.observe(this.asked.elapsed().as_secs_f64());
            }
            None if !*this.ended => {
                *this.ended = true;
                M.duration.observe(this.asked.elapsed().as_secs_f64());
            }
            _ => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
