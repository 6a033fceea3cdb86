//! A raw origin body read into bounded chunks: Content-Length, chunked
//! (decoded by [`super::decode`]) or until close. Used when the body is
//! transformed, has no length, or the client connection cannot splice.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Frame, SizeHint};

use super::decode::{BodyDecoder, Step, MAX_LINE};
use super::head::Framing;
use super::Conn;
use crate::error::Error;

pub struct StreamedBody {
    conn: Option<Conn>,
    buf: BytesMut,
    decoder: BodyDecoder,
    /// Bytes asked of the socket per read, and so the size of each buffer
    /// the frames are cut from (a frame keeps its buffer alive).
    read_size: usize,
}

impl StreamedBody {
    /// `buf` holds the bytes read after the head.
    pub(super) fn new(conn: Conn, buf: BytesMut, framing: Framing, read_size: usize) -> Self {
        let mut body = StreamedBody {
            conn: Some(conn),
            buf,
            decoder: BodyDecoder::new(framing),
            read_size: read_size.max(2 * MAX_LINE),
        };
        // hyper never polls a body that is empty from the start (204, 304,
        // Content-Length: 0), so its connection is released here.
        if body.at_end() {
            body.finish();
        }
        body
    }

    fn at_end(&self) -> bool {
        self.decoder.at_end() || (self.decoder.until_close() && self.conn.is_none())
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
            match this.decoder.step(&mut this.buf) {
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
                this.buf.reserve(this.read_size);
            }
            // At most `read_size` per read, whatever capacity `reserve`
            // left (it may keep a larger original capacity).
            let room = this.read_size.min(this.buf.capacity() - this.buf.len());
            let mut window = (&mut this.buf).limit(room);
            let read = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut conn.stream),
                cx,
                &mut window
            ));
            match read {
                Ok(0) if this.decoder.until_close() => {
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(Error::body_broken(
                        "origin closed the connection mid-body",
                    ))));
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(Error::body_broken(
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
        match self.decoder.exact_remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
