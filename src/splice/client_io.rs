//! The client connection's socket as hyper sees it: writes go to the socket
//! as usual, except placeholder slices, whose bytes come from the pipe.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustix::pipe::{splice, SpliceFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use super::pipe::{placeholder_len, ConnPipe};
use super::NotifyReads;

pub struct ClientIo {
    /// The socket; `on_read` is called after every read that returned
    /// bytes (see [`NotifyReads`]).
    stream: NotifyReads<TcpStream>,
    pipe: ConnPipe,
}

/// See [`ClientIo::new`].
pub type OnRead = Arc<dyn Fn() + Send + Sync>;

impl ClientIo {
    pub fn new(stream: TcpStream, on_read: OnRead) -> Self {
        ClientIo {
            stream: NotifyReads::new(stream, on_read),
            pipe: ConnPipe::default(),
        }
    }

    /// The pipe handle to put in each request's extensions.
    pub fn pipe(&self) -> ConnPipe {
        self.pipe.clone()
    }

    /// Splice up to `n` bytes from the pipe to the client.
    fn poll_splice_out(&self, cx: &mut Context<'_>, n: usize) -> Poll<io::Result<usize>> {
        let Some(pipe) = self.pipe.current() else {
            return Poll::Ready(Err(io::Error::other("placeholder chunk without a pipe")));
        };
        if pipe.held() < n {
            return Poll::Ready(Err(io::Error::other(
                "placeholder chunk larger than the bytes in the pipe",
            )));
        }
        let socket = self.stream.get_ref();
        loop {
            ready!(socket.poll_write_ready(cx))?;
            let spliced = socket.try_io(Interest::WRITABLE, || {
                let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
                Ok(splice(&pipe.read, None, socket, None, n, flags)?)
            });
            match spliced {
                Ok(k) => {
                    pipe.drained(k);
                    self.pipe.release_if_idle();
                    return Poll::Ready(Ok(k));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match placeholder_len(buf) {
            Some(n) => self.poll_splice_out(cx, n),
            None => Pin::new(&mut self.stream).poll_write(cx, buf),
        }
    }

    /// Writes the slices before the first placeholder in one writev, or
    /// splices for the placeholder when it comes first.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        if let Some(n) = placeholder_len(&bufs[first]) {
            return self.poll_splice_out(cx, n);
        }
        let end = bufs[first..]
            .iter()
            .position(|b| placeholder_len(b).is_some())
            .map_or(bufs.len(), |p| first + p);
        Pin::new(&mut self.stream).poll_write_vectored(cx, &bufs[first..end])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
