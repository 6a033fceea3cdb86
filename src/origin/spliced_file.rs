//! A directory-origin body spliced from the page cache into the client
//! connection's pipe, as nginx's sendfile does: no copy through user space.
//! It yields placeholder chunks (see [`crate::splice`]).
//!
//! A file read may wait on the disk. A chunk whose pages are in the page
//! cache (checked with 1-byte `RWF_NOWAIT` reads at both ends) is spliced
//! at once on the async thread, as nginx's sendfile would; any other goes
//! to tokio's blocking pool, as tokio's own file reads do. The hand-off
//! costs two thread wake-ups per chunk: under the static bench it was ~30 %
//! of sluice's CPU when every chunk took it. The pipe side never blocks (it
//! is non-blocking, and a full pipe is waited for on the reactor).

use std::fs::File;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use rustix::io::{preadv2, ReadWriteFlags};
use rustix::pipe::{splice, SpliceFlags};
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::splice::{Pipe, MAX_SPLICE};

pub struct SplicedFile {
    file: Arc<File>,
    pipe: Arc<Pipe>,
    offset: u64,
    remaining: u64,
    /// The splice running on the blocking pool.
    running: Option<JoinHandle<io::Result<usize>>>,
    /// The last splice found the pipe full: wait for room before the next.
    pipe_full: bool,
}

impl SplicedFile {
    /// `remaining` > 0.
    pub fn new(file: File, offset: u64, remaining: u64, pipe: Arc<Pipe>) -> Self {
        SplicedFile {
            file: Arc::new(file),
            pipe,
            offset,
            remaining,
            running: None,
            pipe_full: false,
        }
    }

    fn poll_splice(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Error>> {
        let failed = |e: io::Error| Error::body_broken("file read failed").with_cause(e);
        loop {
            if self.pipe_full {
                ready!(self.pipe.poll_room(cx)).map_err(failed)?;
                self.pipe_full = false;
            }
            let want = usize::try_from(self.remaining)
                .unwrap_or(usize::MAX)
                .min(MAX_SPLICE);
            let spliced = if self.running.is_none() && cached(&self.file, self.offset, want) {
                splice_at(&self.file, self.offset, &self.pipe, want)
            } else {
                let running = self.running.get_or_insert_with(|| {
                    let (file, pipe, offset) = (self.file.clone(), self.pipe.clone(), self.offset);
                    tokio::task::spawn_blocking(move || splice_at(&file, offset, &pipe, want))
                });
                let joined = ready!(Pin::new(running).poll(cx));
                self.running = None;
                joined.map_err(|e| Error::internal("file splice task failed").with_cause(e))?
            };
            match spliced {
                Ok(0) => return Poll::Ready(Err(truncated())),
                Ok(n) => return Poll::Ready(Ok(n)),
                // The pipe side is non-blocking: it is full.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.pipe_full = true,
                Err(e) => return Poll::Ready(Err(failed(e))),
            }
        }
    }
}

/// Splice up to `want` bytes of `file` from `offset` into the pipe.
fn splice_at(file: &File, offset: u64, pipe: &Pipe, want: usize) -> io::Result<usize> {
    let mut offset = offset;
    let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    Ok(splice(
        file,
        Some(&mut offset),
        pipe.write_end(),
        None,
        want,
        flags,
    )?)
}

fn truncated() -> Error {
    Error::body_broken("file is shorter than its length (truncated while read)")
}

/// Whether the pages at both ends of `offset..offset + len` are in the page
/// cache: a 1-byte read at each that may not wait (`RWF_NOWAIT` answers
/// EAGAIN instead of going to the disk). Readahead fills the cache in runs,
/// so the pages between are there too in practice; where one is not, that
/// one splice waits for the disk on the async thread.
fn cached(file: &File, offset: u64, len: usize) -> bool {
    let mut byte = [0u8; 1];
    let last = offset + (len.max(1) as u64 - 1);
    [offset, last].into_iter().all(|at| {
        let mut bufs = [IoSliceMut::new(&mut byte)];
        matches!(preadv2(file, &mut bufs, at, ReadWriteFlags::NOWAIT), Ok(1))
    })
}

impl http_body::Body for SplicedFile {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let moved = match ready!(this.poll_splice(cx)) {
            Ok(n) => n,
            Err(e) => {
                this.remaining = 0;
                return Poll::Ready(Some(Err(e)));
            }
        };
        let chunk = this.pipe.filled(moved);
        this.offset += moved as u64;
        this.remaining -= moved as u64;
        if this.remaining == 0 {
            this.pipe.finish();
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
