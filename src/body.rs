//! Body types shared by every route.
//!
//! Everything sluice sends is a [`Body`]: a boxed stream of bounded `Bytes`
//! chunks whose errors are [`Error`]s. Nothing here collects a body; every
//! adapter passes chunks through one at a time, so the memory a stream holds
//! is one chunk plus whatever the sockets buffer.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body::{Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use tokio::io::AsyncRead;
use tokio::time::{Instant, Sleep};
use tokio_util::io::ReaderStream;

use crate::error::{Error, ErrorKind};

/// The body type of every response and origin fetch.
pub type Body = UnsyncBoxBody<Bytes, Error>;

/// Size of the chunks sluice reads from files and encoders.
pub const CHUNK_SIZE: usize = 64 * 1024;

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Stream any reader as a body in chunks of at most [`CHUNK_SIZE`].
/// `on_error` classifies I/O failures (upstream for files, internal for encoders).
pub fn from_reader<R>(reader: R, on_error: fn(std::io::Error) -> Error) -> Body
where
    R: AsyncRead + Send + 'static,
{
    let stream = ReaderStream::with_capacity(reader, CHUNK_SIZE)
        .map_ok(Frame::data)
        .map_err(on_error);
    BodyExt::boxed_unsync(StreamBody::new(stream))
}

pin_project_lite::pin_project! {
    /// Fails a body that makes no progress for `idle` (the origin stalled).
    pub struct IdleTimeout<B> {
        #[pin]
        inner: B,
        #[pin]
        timer: Sleep,
        idle: Duration,
    }
}

impl<B> IdleTimeout<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            timer: tokio::time::sleep(idle),
            idle,
        }
    }
}

impl<B> http_body::Body for IdleTimeout<B>
where
    B: http_body::Body<Data = Bytes, Error = Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                let idle = *this.idle;
                this.timer.as_mut().reset(Instant::now() + idle);
                Poll::Ready(frame)
            }
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::new(
                    ErrorKind::IdleTimeout,
                    format!("origin sent nothing for {:?}", this.idle),
                ))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// Counts the data bytes that pass and reports the total once, when the
    /// body ends, fails or is dropped (a client that went away).
    pub struct Counted<B: http_body::Body, F: FnOnce(u64, Outcome)> {
        #[pin]
        inner: B,
        bytes: u64,
        report: Option<F>,
    }

    impl<B: http_body::Body, F: FnOnce(u64, Outcome)> PinnedDrop for Counted<B, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(report) = this.report.take() {
                // hyper stops polling once Content-Length bytes are written,
                // so a body that has nothing left counts as complete.
                let rest = this.inner.size_hint();
                let done = this.inner.is_end_stream() || rest.upper() == Some(0);
                report(*this.bytes, if done { Outcome::Complete } else { Outcome::Dropped });
            }
        }
    }
}

/// How a counted body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every byte was handed over.
    Complete,
    /// The body yielded an error, so the transfer was aborted.
    Failed,
    /// The body was dropped before its end: the client went away.
    Dropped,
}

impl<B: http_body::Body, F: FnOnce(u64, Outcome)> Counted<B, F> {
    pub fn new(inner: B, report: F) -> Self {
        Counted {
            inner,
            bytes: 0,
            report: Some(report),
        }
    }
}

impl<B, F> http_body::Body for Counted<B, F>
where
    B: http_body::Body<Data = Bytes, Error = Error>,
    F: FnOnce(u64, Outcome),
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        let outcome = match &frame {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    *this.bytes += d.len() as u64;
                }
                None
            }
            Some(Err(_)) => Some(Outcome::Failed),
            None => Some(Outcome::Complete),
        };
        if let Some(outcome) = outcome {
            if let Some(report) = this.report.take() {
                report(*this.bytes, outcome);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn counted_reports_bytes_and_completion_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let body = Counted::new(full(vec![0u8; 1000]), move |n, o| {
            s.lock().unwrap().push((n, o))
        });
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected.len(), 1000);
        assert_eq!(*seen.lock().unwrap(), vec![(1000, Outcome::Complete)]);
    }

    #[tokio::test]
    async fn counted_reports_a_dropped_body() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        drop(Counted::new(full("abc"), move |n, o| {
            s.lock().unwrap().push((n, o))
        }));
        assert_eq!(*seen.lock().unwrap(), vec![(0, Outcome::Dropped)]);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_fails_a_stalled_body() {
        let stalled =
            StreamBody::new(futures_util::stream::pending::<Result<Frame<Bytes>, Error>>());
        let err = IdleTimeout::new(stalled, Duration::from_secs(2))
            .collect()
            .await
            .expect_err("a stalled body must fail");
        assert_eq!(err.kind, ErrorKind::IdleTimeout);
    }
}
