//! A Content-Length origin body spliced from the origin socket into the
//! client connection's pipe. It yields placeholder chunks (see
//! [`crate::splice`]); the bytes themselves never leave the kernel.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use rustix::io::Errno;
use rustix::pipe::{splice, SpliceFlags};
use tokio::io::Interest;
use tokio::time::{Instant, Sleep};

use super::Conn;
use crate::error::{Error, ErrorKind};
use crate::splice::{Pipe, MAX_SPLICE};

pub struct SplicedBody {
    conn: Option<Conn>,
    pipe: Arc<Pipe>,
    /// Body bytes that arrived with the head: sent as an ordinary chunk first.
    residual: Option<Bytes>,
    /// Bytes still to splice from the socket.
    remaining: u64,
    /// The last splice found the pipe full: wait for room before the next.
    pipe_full: bool,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    /// The idle timer runs for the current poll_frame request.
    timing: bool,
}

enum Spliced {
    Moved(usize),
    PipeFull,
}

impl SplicedBody {
    /// `remaining` > 0: bodies that arrived whole with the head are streamed.
    pub(super) fn new(
        conn: Conn,
        pipe: Arc<Pipe>,
        residual: Bytes,
        remaining: u64,
        idle: Duration,
    ) -> Self {
        SplicedBody {
            conn: Some(conn),
            pipe,
            residual: (!residual.is_empty()).then_some(residual),
            remaining,
            pipe_full: false,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            timing: false,
        }
    }

    fn restart_timer(&mut self) {
        let deadline = Instant::now() + self.idle;
        self.timer.as_mut().reset(deadline);
    }

    fn poll_splice(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Error>> {
        let broken =
            |e: io::Error| Error::body_broken("origin body failed mid-stream").with_cause(e);
        loop {
            if self.pipe_full {
                ready!(self.pipe.poll_room(cx))
                    .map_err(|e| Error::internal("pipe failed").with_cause(e))?;
                self.pipe_full = false;
                self.restart_timer();
            }
            let Some(conn) = self.conn.as_ref() else {
                return Poll::Ready(Err(Error::internal("spliced body polled after its end")));
            };
            match conn.stream.poll_read_ready(cx) {
                Poll::Ready(r) => r.map_err(broken)?,
                Poll::Pending => {
                    ready!(self.timer.as_mut().poll(cx));
                    return Poll::Ready(Err(Error::new(
                        ErrorKind::IdleTimeout,
                        format!("origin sent nothing for {:?}", self.idle),
                    )));
                }
            }
            let want = usize::try_from(self.remaining)
                .unwrap_or(usize::MAX)
                .min(MAX_SPLICE);
            let pipe = &self.pipe;
            let attempt = conn.stream.try_io(Interest::READABLE, || {
                let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
                match splice(&conn.stream, None, pipe.write_end(), None, want, flags) {
                    Ok(n) => Ok(Spliced::Moved(n)),
                    // EAGAIN: either the socket is empty (wait for it) or the
                    // pipe is full (wait for the client side to drain it).
                    Err(Errno::AGAIN) if !pipe.has_room()? => Ok(Spliced::PipeFull),
                    Err(e) => Err(e.into()),
                }
            });
            match attempt {
                Ok(Spliced::Moved(0)) => {
                    return Poll::Ready(Err(Error::body_broken(
                        "origin closed the connection mid-body",
                    )))
                }
                Ok(Spliced::Moved(n)) => return Poll::Ready(Ok(n)),
                Ok(Spliced::PipeFull) => self.pipe_full = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(broken(e))),
            }
        }
    }
}

impl http_body::Body for SplicedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if let Some(residual) = this.residual.take() {
            return Poll::Ready(Some(Ok(Frame::data(residual))));
        }
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        if !this.timing {
            this.restart_timer();
            this.timing = true;
        }
        let moved = match ready!(this.poll_splice(cx)) {
            Ok(n) => n,
            Err(e) => {
                this.conn = None;
                return Poll::Ready(Some(Err(e)));
            }
        };
        this.timing = false;
        let chunk = this.pipe.filled(moved);
        this.remaining -= moved as u64;
        if this.remaining == 0 {
            // Every byte is in the pipe: the origin connection is free, and
            // the pipe can go once the client side has drained it.
            this.pipe.finish();
            if let Some(conn) = this.conn.take() {
                conn.release();
            }
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.residual.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let residual = self.residual.as_ref().map_or(0, |r| r.len() as u64);
        SizeHint::with_exact(self.remaining + residual)
    }
}
