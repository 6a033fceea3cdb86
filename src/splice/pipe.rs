//! The per-connection pipe and the placeholder chunks that stand for the
//! bytes in it.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Version};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::pipe::{fcntl_setpipe_size, pipe_with, PipeFlags};
use tokio::net::unix::pipe::Sender;

/// Largest single splice from the origin, and so the largest placeholder.
pub const MAX_SPLICE: usize = 128 * 1024;

/// Capacity asked for each pipe. The default (16 pages) splits a 128 KiB
/// chunk into several calls; 64 pages take it at once.
pub const PIPE_SIZE: usize = 256 * 1024;

/// The region placeholders point into. Zero-initialised, so it lives in
/// .bss and costs no memory: nothing ever reads it.
static PLACEHOLDER: [u8; MAX_SPLICE] = [0; MAX_SPLICE];

/// A chunk that stands for `n` bytes waiting in a [`Pipe`].
pub fn placeholder(n: usize) -> Bytes {
    Bytes::from_static(&PLACEHOLDER[..n.min(MAX_SPLICE)])
}

/// How many pipe bytes this slice stands for, if it is a placeholder.
pub(super) fn placeholder_len(slice: &[u8]) -> Option<usize> {
    let start = PLACEHOLDER.as_ptr() as usize;
    let at = slice.as_ptr() as usize;
    (!slice.is_empty() && at >= start && at < start + MAX_SPLICE).then_some(slice.len())
}

/// A non-blocking pipe and a count of the bytes in it.
pub struct Pipe {
    pub(super) read: OwnedFd,
    write: Sender,
    held: AtomicUsize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // Best effort: a pipe that stays at the default size still works.
        let _ = fcntl_setpipe_size(&write, PIPE_SIZE);
        Ok(Pipe {
            read,
            write: Sender::from_owned_fd_unchecked(write)?,
            held: AtomicUsize::new(0),
        })
    }

    /// The write end, for splicing into.
    pub fn write_end(&self) -> &Sender {
        &self.write
    }

    /// Bytes spliced in and not yet out.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    pub fn filled(&self, n: usize) {
        self.held.fetch_add(n, Ordering::AcqRel);
    }

    pub(super) fn drained(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::AcqRel);
    }

    /// Whether a write would find room now (poll(2) with no wait). The
    /// pipe counts pages, not bytes, so `held` cannot tell.
    pub fn has_room(&self) -> io::Result<bool> {
        let mut fds = [PollFd::new(&self.write, PollFlags::OUT)];
        let none = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&none))?;
        Ok(fds[0].revents().contains(PollFlags::OUT))
    }
}

/// One client connection's pipe, made on first use and shared between the
/// response bodies (which fill it) and [`super::ClientIo`] (which drains it).
#[derive(Clone, Default)]
pub struct ConnPipe(Arc<Mutex<Option<Arc<Pipe>>>>);

impl ConnPipe {
    /// The connection's pipe for a request that may splice: HTTP/1 only,
    /// since HTTP/2 frames its own data and would copy placeholders.
    pub fn for_request<B>(req: &Request<B>) -> Option<ConnPipe> {
        if req.version() > Version::HTTP_11 {
            return None;
        }
        req.extensions().get::<ConnPipe>().cloned()
    }

    /// The pipe, made now if this connection has none yet. `None` when the
    /// system refuses one (file descriptors exhausted): stream instead.
    pub fn open(&self) -> Option<Arc<Pipe>> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            match Pipe::new() {
                Ok(p) => *slot = Some(Arc::new(p)),
                Err(e) => {
                    tracing::debug!(error = %e, "no pipe for splicing; streaming instead");
                    return None;
                }
            }
        }
        slot.clone()
    }

    /// The pipe if one was made.
    pub(super) fn current(&self) -> Option<Arc<Pipe>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_placeholders_are_recognised() {
        let p = placeholder(1000);
        assert_eq!(placeholder_len(&p), Some(1000));
        assert_eq!(placeholder_len(&p[10..20]), Some(10));
        assert_eq!(placeholder_len(&[0u8; 16]), None);
        assert_eq!(placeholder_len(&vec![0u8; 1000]), None);
        assert_eq!(placeholder_len(&p[..0]), None);
    }
}
