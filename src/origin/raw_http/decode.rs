//! Body framing, sans I/O: given the bytes read so far, the next piece of
//! body, "need more", or the end (RFC 9112 §6 and §7.1: Content-Length,
//! chunked with extensions and trailers, or until close). Kept apart from
//! the socket so that the fuzzer drives exactly the code the origin's
//! bytes reach.

use bytes::{Buf, Bytes, BytesMut};

use super::head::Framing;
use crate::error::Error;

/// A chunk-size line or a trailer line longer than this is refused.
pub const MAX_LINE: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data,
    DataEnd,
    Trailers,
    Done,
}

/// What the buffer gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Data(Bytes),
    End,
    Need,
}

#[derive(Debug)]
pub struct BodyDecoder {
    framing: Framing,
    chunk: Chunk,
    /// Bytes left of the body (Content-Length) or of the current chunk.
    remaining: u64,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> Self {
        let remaining = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        BodyDecoder {
            framing,
            chunk: Chunk::Size,
            remaining,
        }
    }

    /// The body ends when the connection does.
    pub fn until_close(&self) -> bool {
        self.framing == Framing::UntilClose
    }

    /// Every byte of a delimited body was decoded.
    pub fn at_end(&self) -> bool {
        match self.framing {
            Framing::Empty => true,
            Framing::Length(_) => self.remaining == 0,
            Framing::Chunked => self.chunk == Chunk::Done,
            Framing::UntilClose => false,
        }
    }

    /// The exact number of body bytes still to come, when known.
    pub fn exact_remaining(&self) -> Option<u64> {
        match self.framing {
            Framing::Empty => Some(0),
            Framing::Length(_) => Some(self.remaining),
            _ => None,
        }
    }

    /// The next piece of body that `buf` can give, consuming it from `buf`.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, Error> {
        let broken = Error::body_broken;
        loop {
            match self.framing {
                Framing::Empty => return Ok(Step::End),
                Framing::UntilClose if buf.is_empty() => return Ok(Step::Need),
                Framing::UntilClose => return Ok(Step::Data(buf.split().freeze())),
                Framing::Length(_) => return Ok(self.take_counted(buf)),
                Framing::Chunked => {}
            }
            match self.chunk {
                // httparse reads a size line without digits as 0, which
                // would end a broken body early as if it were complete.
                Chunk::Size if buf.first().is_some_and(|b| !b.is_ascii_hexdigit()) => {
                    return Err(broken("origin sent a chunk-size line without a size"))
                }
                Chunk::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        self.remaining = size;
                        self.chunk = if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() > MAX_LINE => {
                        return Err(broken("origin sent an overlong chunk-size line"))
                    }
                    Ok(httparse::Status::Partial) => return Ok(Step::Need),
                    Err(_) => return Err(broken("origin sent an invalid chunk size")),
                },
                Chunk::Data => {
                    let step = self.take_counted(buf);
                    if self.remaining == 0 {
                        self.chunk = Chunk::DataEnd;
                    }
                    if let Step::End = step {
                        continue;
                    }
                    return Ok(step);
                }
                Chunk::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::Need);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(broken("origin sent a chunk longer than its size"));
                    }
                    buf.advance(2);
                    self.chunk = Chunk::Size;
                }
                Chunk::Trailers => {
                    // Trailers are dropped: hyper's server sends none we set.
                    match buf.windows(2).position(|w| w == b"\r\n") {
                        Some(0) => {
                            buf.advance(2);
                            self.chunk = Chunk::Done;
                        }
                        Some(end) => buf.advance(end + 2),
                        None if buf.len() > MAX_LINE => {
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
    fn take_counted(&mut self, buf: &mut BytesMut) -> Step {
        if self.remaining == 0 {
            return Step::End;
        }
        if buf.is_empty() {
            return Step::Need;
        }
        let n = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        self.remaining -= n as u64;
        Step::Data(buf.split_to(n).freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode `wire` fed in pieces of `piece` bytes.
    fn decode(framing: Framing, wire: &[u8], piece: usize) -> Result<Vec<u8>, Error> {
        let mut d = BodyDecoder::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match d.step(&mut buf)? {
                Step::Data(b) => out.extend_from_slice(&b),
                Step::End => return Ok(out),
                Step::Need if fed >= wire.len() => return Err(Error::body_broken("eof")),
                Step::Need => {
                    let end = (fed + piece).min(wire.len());
                    buf.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_split() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for piece in [1, 2, 3, 7, 100] {
            assert_eq!(
                decode(Framing::Chunked, wire, piece).unwrap(),
                b"hello world"
            );
        }
        assert!(decode(Framing::Chunked, b"5\r\nhello\r\nzz\r\n", 4).is_err());
        assert!(decode(Framing::Chunked, b"\r\n", 4).is_err());
        assert!(decode(Framing::Chunked, b"3\r\nhello\r\n0\r\n\r\n", 4).is_err());
        assert_eq!(decode(Framing::Length(3), b"abcdef", 2).unwrap(), b"abc");
    }
}
