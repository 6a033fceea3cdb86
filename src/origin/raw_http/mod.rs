//! sluice's own HTTP/1.1 client for plain-http origins: every fetch from
//! one goes through it (pass-through, zip entries, image sources, probes).
//!
//! Why by hand: hyper's client reads every body into its own buffers, and
//! splicing needs the body still in the socket once the head is parsed.
//! hyper's connection task also reads ahead of its consumer into a buffer
//! the memory budget cannot see (measured: 48 of 51 MB of live heap at 32
//! zip downloads, 128 origin connections). Here a body is read only when
//! polled, one read of a size the caller chose at a time, and an idle
//! pooled connection holds no buffer at all, so what a fetch holds is what
//! its caller counted ([`crate::memory_model`]).
//! This client does only what sluice needs: one GET or HEAD per pooled
//! keep-alive connection (no pipelining), heads parsed by httparse, bodies
//! framed by Content-Length (spliceable), chunked (decoded) or close.
//! https origins use the hyper client.
//!
//! Failures map as in [`super::HttpOrigin`]: refused, reset or a malformed
//! head before the response is 502, a connect or first-byte timeout is
//! 504, and a failure mid-body aborts the client's transfer. A pooled
//! connection that the origin closed while idle is retried once on a new
//! one, as hyper does.

mod decode;
mod head;
mod spliced;
mod streamed;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::header::{CONTENT_LENGTH, EXPECT};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{OriginRequest, Timeouts};
use crate::body::{Body, IdleTimeout};
use crate::error::{Error, ErrorKind, Result, RetryType};
use crate::splice::ConnPipe;
use head::{Framing, Parsed};

pub(crate) use decode::{BodyDecoder, Step, MAX_LINE};

/// The final head of `wire` (interim 1xx heads skipped), as the pooled
/// client reads it: its framing and how many bytes it took. For the fuzzer
/// ([`crate::fuzzing`]).
pub(crate) fn fuzz_head(mut wire: &[u8]) -> Result<Option<(Framing, usize)>> {
    let mut used = 0;
    loop {
        match head::parse(wire, &Method::GET)? {
            Parsed::Partial => return Ok(None),
            Parsed::Interim(n) => {
                used += n;
                wire = &wire[n..];
            }
            Parsed::Final(h, n) => return Ok(Some((h.framing, used + n))),
        }
    }
}

/// Bytes asked of the socket per read for a streamed pass-through body (as
/// the hyper client's reads for https, [`super::HttpOrigin`]).
pub const PASSTHROUGH_READ_SIZE: usize = 128 * 1024;

/// Idle connections kept per origin, and for how long.
const MAX_IDLE: usize = 256;
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A plain-http origin reached with sluice's own client.
pub struct RawHttp {
    /// `host:port` to connect to.
    address: String,
    host: HeaderValue,
    base_path: String,
    timeouts: Timeouts,
    pool: Arc<Pool>,
}

#[derive(Default)]
struct Pool {
    idle: Mutex<Vec<(TcpStream, Instant)>>,
}

impl Pool {
    /// The most recently used live idle connection.
    fn take(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // The oldest sit at the bottom, where LIFO takes never reach.
        idle.retain(|(_, since)| since.elapsed() <= IDLE_TIMEOUT);
        while let Some((stream, _)) = idle.pop() {
            // An idle connection has nothing to read: a readable one was
            // closed by the origin (or sent garbage) and is dropped.
            if let Err(e) = stream.try_read(&mut [0u8; 1]) {
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    return Some(stream);
                }
            }
        }
        None
    }

    fn put(&self, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((stream, Instant::now()));
        }
    }
}

/// A connection in use. Dropped, it closes; [`Conn::release`] pools it.
struct Conn {
    stream: TcpStream,
    pool: Arc<Pool>,
    keep_alive: bool,
}

impl Conn {
    /// The response was read to its end: the connection may serve another.
    fn release(self) {
        if self.keep_alive {
            self.pool.put(self.stream);
        }
    }
}

/// The origin's answer; the body is still in the socket.
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: RawBody,
}

pub struct RawBody {
    conn: Conn,
    /// Bytes read past the head.
    residual: BytesMut,
    framing: Framing,
    idle: Duration,
}

impl RawBody {
    /// Read the body through user space, at most `read_size` bytes per
    /// read; each frame is one read (or less).
    pub fn streamed(self, read_size: usize) -> Body {
        let body = streamed::StreamedBody::new(self.conn, self.residual, self.framing, read_size);
        IdleTimeout::new(body, self.idle).boxed_unsync()
    }

    /// Splice the body through the client connection's pipe when it has a
    /// length and more of it than arrived with the head; otherwise stream it.
    pub fn spliced_or_streamed(self, conn_pipe: &ConnPipe) -> Body {
        let Framing::Length(length) = self.framing else {
            return self.streamed(PASSTHROUGH_READ_SIZE);
        };
        if self.residual.len() as u64 >= length {
            return self.streamed(PASSTHROUGH_READ_SIZE);
        }
        let Some(pipe) = conn_pipe.open() else {
            return self.streamed(PASSTHROUGH_READ_SIZE);
        };
        let remaining = length - self.residual.len() as u64;
        let residual = self.residual.freeze();
        let body = spliced::SplicedBody::new(self.conn, pipe, residual, remaining, self.idle);
        body.boxed_unsync()
    }
}

impl RawHttp {
    /// `authority` as in the origin URL; port 80 when it names none.
    pub fn new(authority: &str, host: HeaderValue, base_path: String, timeouts: Timeouts) -> Self {
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            && !authority.ends_with(']');
        let address = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        RawHttp {
            address,
            host,
            base_path,
            timeouts,
            pool: Arc::default(),
        }
    }

    pub async fn fetch(&self, mut req: OriginRequest) -> Result<RawResponse> {
        // No request body is sent: a client's body headers must not make
        // the origin wait for one (or read the next request as one).
        req.headers.remove(CONTENT_LENGTH);
        req.headers.remove(EXPECT);
        let target = format!("{}{}", self.base_path, req.path_and_query);
        let head = head::request(&req.method, &target, &self.host, &req.headers);
        let limit = self.timeouts.first_byte;
        let exchange = async {
            if let Some(stream) = self.pool.take() {
                match self.exchange(stream, &head, &req.method).await {
                    // The error's retry decision (ReusedOnly: nothing came
                    // back, as from a stale pooled connection): try a new one.
                    Err(e) if e.may_retry(true) => {}
                    other => return other,
                }
            }
            let stream = self.connect().await?;
            self.exchange(stream, &head, &req.method).await
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::FirstByteTimeout,
                format!("origin sent no response headers within {limit:?}"),
            )),
        }
    }

    async fn connect(&self) -> Result<TcpStream> {
        let limit = self.timeouts.connect;
        let stream = match tokio::time::timeout(limit, TcpStream::connect(&self.address)).await {
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::ConnectTimeout,
                    format!("could not connect to origin within {limit:?}"),
                ))
            }
            Ok(Err(e)) => {
                return Err(Error::connect_failed("could not connect to origin").with_cause(e))
            }
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Send the request head and read the response head.
    async fn exchange(
        &self,
        mut stream: TcpStream,
        request: &[u8],
        method: &Method,
    ) -> Result<RawResponse> {
        // Closed before any byte of a response: what a pooled connection
        // the origin dropped while idle looks like, so a retry on a new
        // connection may help (ReusedOnly); after some bytes it may not.
        let closed = |e: std::io::Error, nothing_received: bool| {
            Error::connect_failed("origin closed the connection before responding")
                .with_cause(e)
                .retry(if nothing_received {
                    RetryType::ReusedOnly
                } else {
                    RetryType::Never
                })
        };
        stream
            .write_all(request)
            .await
            .map_err(|e| closed(e, true))?;
        let mut buf = BytesMut::with_capacity(8 * 1024);
        let mut interim = false;
        loop {
            match head::parse(&buf, method) {
                Err(error) => return Err(error.retry(RetryType::Never)),
                Ok(Parsed::Interim(len)) => {
                    buf.advance(len);
                    interim = true;
                    continue;
                }
                Ok(Parsed::Final(head, len)) => {
                    buf.advance(len);
                    return Ok(RawResponse {
                        status: head.status,
                        headers: head.headers,
                        body: RawBody {
                            conn: Conn {
                                stream,
                                pool: self.pool.clone(),
                                keep_alive: head.keep_alive,
                            },
                            residual: buf,
                            framing: head.framing,
                            idle: self.timeouts.idle,
                        },
                    });
                }
                Ok(Parsed::Partial) => {}
            }
            if buf.len() >= head::MAX_HEAD {
                return Err(Error::invalid_response(
                    "origin's response head exceeds 64 KiB",
                ));
            }
            buf.reserve(8 * 1024);
            let nothing = buf.is_empty() && !interim;
            match stream.read_buf(&mut buf).await {
                Ok(0) => {
                    let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                    return Err(closed(eof, nothing));
                }
                Ok(_) => {}
                Err(e) => return Err(closed(e, nothing)),
            }
        }
    }
}
