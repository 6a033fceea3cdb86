//! A client connection's deadlines, which hyper does not keep for us: its
//! header-read timer starts only at a request's first byte, so a
//! connection that sends nothing was never closed, and a few hundred of
//! them locked everyone else out of `--max-connections`.
//!
//! Phases and deadlines (nginx's `client_header_timeout` and
//! `keepalive_timeout`):
//!
//! ```text
//! accept ──▶ AwaitingHead (accept + --header-timeout)
//!              │ a request's head is parsed (hyper calls the service)
//!              ▼
//!            Busy (n requests; no deadline here: bodies have their own)
//!              │ the last response body ended or was dropped
//!              ▼
//!            Idle (end + --keepalive-timeout)
//!              │ HTTP/1: a byte arrives (the next head has started)
//!              ▼
//!            AwaitingHead (that byte + --header-timeout)
//! ```
//!
//! When the deadline of the phase passes, [`ConnClock::expired`] resolves
//! and the server drops the connection. HTTP/2 connections skip the
//! Idle ▶ AwaitingHead step (a PING is not the start of a request), so an
//! idle HTTP/2 connection closes after the keep-alive timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Version;
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingHead(Instant),
    Busy(u32),
    Idle(Instant),
}

/// Why a connection's deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No complete request head within `--header-timeout`.
    HeaderTimeout,
    /// Idle between requests for `--keepalive-timeout`.
    KeepaliveTimeout,
}

impl Expiry {
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::HeaderTimeout => "header_timeout",
            Expiry::KeepaliveTimeout => "keepalive_timeout",
        }
    }
}

pub struct ConnClock {
    phase: watch::Sender<Phase>,
    header: Duration,
    keepalive: Duration,
    /// Fast path for [`ConnClock::bytes_read`]: the phase is Idle.
    idle: AtomicBool,
    http2: AtomicBool,
}

impl ConnClock {
    /// The clock of a connection accepted now.
    pub fn start(header: Duration, keepalive: Duration) -> Arc<ConnClock> {
        Arc::new(ConnClock {
            phase: watch::Sender::new(Phase::AwaitingHead(Instant::now() + header)),
            header,
            keepalive,
            idle: AtomicBool::new(false),
            http2: AtomicBool::new(false),
        })
    }

    /// A request's head was parsed. The returned guard ends the request
    /// when dropped (with its response body, or with the handler when the
    /// request is abandoned).
    pub fn request_started(self: &Arc<Self>, version: Version) -> InRequest {
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.idle.store(false, Ordering::Relaxed);
        self.phase.send_modify(|p| {
            *p = match *p {
                Phase::Busy(n) => Phase::Busy(n + 1),
                _ => Phase::Busy(1),
            }
        });
        InRequest(self.clone())
    }

    fn request_finished(&self) {
        let keepalive = self.keepalive;
        let mut now_idle = false;
        self.phase.send_modify(|p| {
            *p = match *p {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => {
                    now_idle = true;
                    Phase::Idle(Instant::now() + keepalive)
                }
            }
        });
        if now_idle {
            self.idle.store(true, Ordering::Relaxed);
        }
    }

    /// The connection read bytes from the client.
    pub fn bytes_read(&self) {
        if !self.idle.load(Ordering::Relaxed) || self.http2.load(Ordering::Relaxed) {
            return;
        }
        self.idle.store(false, Ordering::Relaxed);
        let header = self.header;
        self.phase.send_if_modified(|p| match *p {
            Phase::Idle(_) => {
                *p = Phase::AwaitingHead(Instant::now() + header);
                true
            }
            _ => false,
        });
    }

    /// Resolves when the current phase's deadline passes.
    pub async fn expired(&self) -> Expiry {
        let mut phase = self.phase.subscribe();
        loop {
            let current = *phase.borrow_and_update();
            let (deadline, why) = match current {
                Phase::AwaitingHead(d) => (d, Expiry::HeaderTimeout),
                Phase::Idle(d) => (d, Expiry::KeepaliveTimeout),
                Phase::Busy(_) => {
                    if phase.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    continue;
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    if *phase.borrow() == current {
                        return why;
                    }
                }
                changed = phase.changed() => {
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }
}

/// One request in progress on a connection; see [`ConnClock::request_started`].
pub struct InRequest(Arc<ConnClock>);

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_expires_from_accept() {
        let clock = ConnClock::start(HEAD, IDLE);
        let started = Instant::now();
        clock.bytes_read(); // not idle: a byte does not restart the clock
        assert_eq!(clock.expired().await, Expiry::HeaderTimeout);
        assert_eq!(started.elapsed(), HEAD);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_hold_the_clock_and_idle_time_then_a_new_head_are_bounded() {
        let clock = ConnClock::start(HEAD, IDLE);
        let a = clock.request_started(Version::HTTP_11);
        let b = clock.request_started(Version::HTTP_11);
        let waiting = tokio::time::timeout(Duration::from_secs(3600), clock.expired());
        drop(a);
        tokio::pin!(waiting);
        // Still busy with b: nothing expires.
        assert!(tokio::time::timeout(Duration::from_secs(600), &mut waiting)
            .await
            .is_err());
        let ended = Instant::now();
        drop(b);
        assert_eq!(waiting.await.unwrap(), Expiry::KeepaliveTimeout);
        assert_eq!(ended.elapsed(), IDLE);

        // A byte after an idle spell starts the head deadline.
        let clock = ConnClock::start(HEAD, IDLE);
        drop(clock.request_started(Version::HTTP_11));
        tokio::time::sleep(Duration::from_secs(30)).await;
        clock.bytes_read();
        let first_byte = Instant::now();
        assert_eq!(clock.expired().await, Expiry::HeaderTimeout);
        assert_eq!(first_byte.elapsed(), HEAD);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_bytes_do_not_end_idleness() {
        let clock = ConnClock::start(HEAD, IDLE);
        drop(clock.request_started(Version::HTTP_2));
        let ended = Instant::now();
        clock.bytes_read();
        assert_eq!(clock.expired().await, Expiry::KeepaliveTimeout);
        assert_eq!(ended.elapsed(), IDLE);
    }
}
