//! Every origin fetch is measured here, for `/metrics`: the time to its
//! response head (or its failure), and its body's bytes, end and failure
//! (`crate::metrics::upstream`, which takes plain values).

use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::Body;
use crate::error::{Error, Result};
use crate::metrics::upstream as m;

/// Record how a fetch that started at `asked` got its head, or failed.
pub fn head(asked: Instant, outcome: std::result::Result<StatusCode, &Error>) {
    m::observe_head(
        asked,
        outcome.map(|s| s.as_u16()).map_err(|e| e.kind.as_str()),
    );
}

/// Count an origin body's bytes and end (the fetch started at `asked`).
pub fn body(inner: Body, asked: Instant) -> Body {
    MeteredBody {
        inner,
        stream: m::Stream::start(asked),
    }
    .boxed_unsync()
}

/// A fetch's outcome, recorded, with its body counted.
pub fn fetched(
    asked: Instant,
    fetched: Result<super::OriginResponse>,
) -> Result<super::OriginResponse> {
    head(asked, fetched.as_ref().map(|r| r.status));
    let mut response = fetched?;
    let inner = std::mem::replace(&mut response.body, crate::body::empty());
    response.body = body(inner, asked);
    Ok(response)
}

pin_project_lite::pin_project! {
    struct MeteredBody {
        #[pin]
        inner: Body,
        stream: m::Stream,
    }
}

impl http_body::Body for MeteredBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    this.stream.received(data.len());
                }
            }
            Some(Err(e)) => this.stream.ended(Some(e.kind.as_str())),
            None => this.stream.ended(None),
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
