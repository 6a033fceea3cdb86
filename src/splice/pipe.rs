//! The per-connection pipe and the placeholder chunks that stand for the
//! bytes in it.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Version};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::pipe::{fcntl_getpipe_size, fcntl_setpipe_size, pipe_with, PipeFlags};
use tokio::net::unix::pipe::Sender;

/// Largest single splice from the origin, and so the largest placeholder.
pub const MAX_SPLICE: usize = 128 * 1024;

/// Capacity asked for each pipe. The default (16 pages) splits a 128 KiB
/// chunk into several calls; 64 pages take it at once.
pub const PIPE_SIZE: usize = 256 * 1024;

/// A pipe smaller than this is not used. Past `fs.pipe-user-pages-soft`
/// (16384 pages per user, so 256 of our pipes) Linux refuses to grow pipes
/// and makes new ones with 2 pages; splicing through those is slower than
/// streaming.
const MIN_PIPE_SIZE: usize = 64 * 1024;

/// Empty pipes kept for the next spliced body, so that a busy server does
/// not make and close a pipe (five syscalls and a reactor registration) per
/// response. Bounded: each counts against the per-user pipe quota.
static SPARE: Mutex<Vec<Arc<Pipe>>> = Mutex::new(Vec::new());
const MAX_SPARE: usize = 64;

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
    /// The body filling it has put in its last byte.
    finished: AtomicBool,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // Growing may be refused (the per-user quota); the size it has decides.
        let _ = fcntl_setpipe_size(&write, PIPE_SIZE);
        if fcntl_getpipe_size(&write)? < MIN_PIPE_SIZE {
            return Err(io::Error::other(
                "pipe quota exhausted (fs.pipe-user-pages-soft)",
            ));
        }
        Ok(Pipe {
            read,
            write: Sender::from_owned_fd_unchecked(write)?,
            held: AtomicUsize::new(0),
            finished: AtomicBool::new(false),
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

    /// A body spliced `n` more bytes in: count them, and hand back the
    /// placeholder that stands for them (the one place the two are paired).
    pub fn filled(&self, n: usize) -> Bytes {
        self.held.fetch_add(n, Ordering::AcqRel);
        crate::metrics::upstream::count_spliced(n);
        placeholder(n)
    }

    pub(super) fn drained(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::AcqRel);
    }

    /// The body has spliced in its last byte; once those are out, the
    /// connection lets the pipe go.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }

    /// Empty, and no body is filling it.
    pub(super) fn idle(&self) -> bool {
        self.finished.load(Ordering::Acquire) && self.held() == 0
    }

    /// Wait until the pipe has room (the client side drained some of it).
    pub fn poll_room(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.write.poll_write_ready(cx))?;
            let room = self.write.try_io(|| match self.has_room()? {
                true => Ok(()),
                false => Err(io::ErrorKind::WouldBlock.into()),
            });
            match room {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    /// Whether a write would find room now (poll(2) with no wait). The
    /// pipe counts pages, not bytes, so `held` cannot tell.
    pub fn has_room(&self) -> io::Result<bool> {
        let mut fds = [PollFd::new(&self.write, PollFlags::OUT)];
        let none = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        loop {
            match poll(&mut fds, Some(&none)) {
                Err(rustix::io::Errno::INTR) => continue,
                other => other?,
            };
            return Ok(fds[0].revents().contains(PollFlags::OUT));
        }
    }
}

/// One client connection's pipe, shared between the response body that
/// fills it and [`super::ClientIo`], which drains it. It exists only while a
/// spliced body is in flight: made when one starts, let go once its last
/// byte is out, so idle keep-alive connections hold no pipe.
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

    /// A pipe for the next spliced body. `None` when the system refuses one
    /// (file descriptors or the pipe quota exhausted): stream instead.
    pub fn open(&self) -> Option<Arc<Pipe>> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pipe) = slot.as_ref() {
            // Responses on a connection are sequential; a pipe still
            // draining the last one takes the next one's bytes behind them.
            pipe.finished.store(false, Ordering::Release);
        } else if let Some(spare) = SPARE.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            spare.finished.store(false, Ordering::Release);
            *slot = Some(spare);
        } else {
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

    /// The pipe of the body in flight, if any.
    pub(super) fn current(&self) -> Option<Arc<Pipe>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Let the pipe go if it is idle: to the spare list, or closed.
    pub fn release_if_idle(&self) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !slot.as_ref().is_some_and(|p| p.idle()) {
            return;
        }
        // The finished body may still hold a reference until hyper drops
        // it; it never touches the pipe again, so the pipe can move on.
        if let Some(pipe) = slot.take() {
            let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
            if spare.len() < MAX_SPARE {
                spare.push(pipe);
            }
        }
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
