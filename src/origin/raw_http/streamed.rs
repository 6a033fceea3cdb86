//! A raw origin body read into bounded chunks: Content-Length, chunked
//! (decoded) or until close. Used when the body is transformed, has no
//! length, or the client connection cannot splice.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Frame, SizeHint};

use super::head::Framing;
use super::Conn;
use crate::error::Error;

/// Bytes asked of the socket per read (as in [`super::super::HttpOrigin`]).
const READ_SIZE: usize = 128 * 1024;
/// A chunk-size line or a trailer line longer than this is refused.
const MAX_LINE: usize = 8 * 1024;

enum Chunk {
    Size,
    Data,
    DataEnd,
    Trailers,
    Done,
}

enum Step {
    Data(Bytes),
    End,
    Need,
}

pub struct StreamedBody {
    conn: Option<Conn>,
    buf: BytesMut,
    framing: Framing,
    chunk: Chunk,
    remaining: u64,
}

impl StreamedBody {
    /// `buf` holds the bytes read after the head.
    pub(super) fn new(conn: Conn, buf: BytesMut, framing: Framing) -> Self {
        let remaining = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut body = StreamedBody {
            conn: Some(conn),
            buf,
            framing,
            chunk: Chunk::Size,
            remaining,
        };
        // hyper never polls a body that is empty from the start (204, 304,
        // Content-Length: 0), so its connection is released here.
        if body.at_end() {
            body.finish();
        }
        body
    }

    /// The next piece of body that the buffer can give, if any.
    fn step(&mut self) -> Result<Step, Error> {
        let broken = Error::upstream_broken;
        loop {
            match self.framing {
                Framing::Empty => return Ok(Step::End),
                Framing::UntilClose if self.buf.is_empty() => return Ok(Step::Need),
                Framing::UntilClose => return Ok(Step::Data(self.buf.split().freeze())),
                Framing::Length(_) => return Ok(self.take_counted()),
                Framing::Chunked => {}
            }
            match self.chunk {
                // httparse reads a size line without digits as 0, which
                // would end a broken body early as if it were complete.
                Chunk::Size if self.buf.first().is_some_and(|b| !b.is_ascii_hexdigit()) => {
                    return Err(broken("origin sent a chunk-size line without a size"))
                }
                Chunk::Size => match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.buf.advance(used);
                        self.remaining = size;
                        self.chunk = if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data
                        };
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() > MAX_LINE => {
                        return Err(broken("origin sent an overlong chunk-size line"))
                    }
                    Ok(httparse::Status::Partial) => return Ok(Step::Need),
                    Err(_) => return Err(broken("origin sent an invalid chunk size")),
                },
                Chunk::Data => {
                    let step = self.take_counted();
                    if self.remaining == 0 {
                        self.chunk = Chunk::DataEnd;
                    }
                    if let Step::End = step {
                        continue;
                    }
                    return Ok(step);
                }
                Chunk::DataEnd => {
                    if self.buf.len() < 2 {
                        return Ok(Step::Need);
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Err(broken("origin sent a chunk longer than its size"));
                    }
                    self.buf.advance(2);
                    self.chunk = Chunk::Size;
                }
                Chunk::Trailers => {
                    // Trailers are dropped: hyper's server sends none we set.
                    match self.buf.windows(2).position(|w| w == b"\r\n") {
                        Some(0) => {
                            self.buf.advance(2);
                            self.chunk = Chunk::Done;
                        }
                        Some(end) => self.buf.advance(end + 2),
                        None if self.buf.len() > MAX_LINE => {
                            return Err(broken("origin sent an overlong trailer"))
                        }
                        None => return Ok(Step::Need),
                    }
                }
                Chunk::Done => return Ok(Step::End),
            }
        }
    }

    /// Up to `remaining` bytes from the buffer (Content-Length and chunk data).
    fn take_counted(&mut self) -> Step {
        if self.remaining == 0 {
            return Step::End;
        }
        if self.buf.is_empty() {
            return Step::Need;
        }
        let n = self
            .buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        self.remaining -= n as u64;
        Step::Data(self.buf.split_to(n).freeze())
    }

    fn at_end(&self) -> bool {
        match self.framing {
            Framing::Empty => true,
            Framing::Length(_) => self.remaining == 0,
            Framing::Chunked => matches!(self.chunk, Chunk::Done),
            Framing::UntilClose => self.conn.is_none(),
        }
    }

    /// The body is complete: the connection goes back to the pool if nothing
    /// unexpected followed it.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.buf.is_empty() {
                conn.release();
            }
        }
    }
}

impl http_body::Body for StreamedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        loop {
            match this.step() {
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(Step::Data(data)) => {
                    if this.at_end() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Step::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::Need) => {}
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if this.buf.capacity() - this.buf.len() < MAX_LINE {
                this.buf.reserve(READ_SIZE);
            }
            let read = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut conn.stream),
                cx,
                &mut this.buf
            ));
            match read {
                Ok(0) if this.framing == Framing::UntilClose => {
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(Error::upstream_broken(
                        "origin closed the connection mid-body",
                    ))));
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(Error::upstream_broken(
                        "origin body failed mid-stream",
                    )
                    .with_cause(e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.at_end() && self.buf.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty => SizeHint::with_exact(0),
            Framing::Length(_) => SizeHint::with_exact(self.remaining),
            _ => SizeHint::default(),
        }
    }
}
