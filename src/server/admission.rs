//! Which accepted connections are served: at most `--max-connections` at
//! once, and at most `--max-connections-per-ip` from one address. A
//! connection over a limit is not left waiting in the accept backlog (where
//! clients only see a hang): it gets a short 503 with `Retry-After` and is
//! closed, and the refusal is counted and logged (at most once a second,
//! with the number of refusals since).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a refused connection reads before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
content-length: 21\r\n\
retry-after: 1\r\n\
cache-control: no-store\r\n\
connection: close\r\n\
\r\n\
too many connections\n";

/// Why a connection was refused (the metric's `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    MaxConnectionsPerIp,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxConnectionsPerIp => "max_connections_per_ip",
        }
    }
}

pub struct Admission {
    total: Arc<Semaphore>,
    max_total: usize,
    per_ip: Option<Arc<PerIp>>,
    refusals: RefusalLog,
}

struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A served connection's places; released on drop.
pub struct Admitted {
    _total: OwnedSemaphorePermit,
    ip: Option<(Arc<PerIp>, IpAddr)>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some((per_ip, ip)) = self.ip.take() {
            let mut open = per_ip.open.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = open.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

impl Admission {
    /// `max_per_ip` 0: no per-address limit.
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        let max_total = max_total.max(1);
        Admission {
            total: Arc::new(Semaphore::new(max_total)),
            max_total,
            per_ip: (max_per_ip > 0).then(|| {
                Arc::new(PerIp {
                    max: max_per_ip,
                    open: Mutex::new(HashMap::new()),
                })
            }),
            refusals: RefusalLog::default(),
        }
    }

    /// Take places for a connection from `ip`, or say which limit refuses it.
    pub fn admit(&self, ip: IpAddr) -> Result<Admitted, Refusal> {
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::MaxConnections)?;
        let ip = ip.to_canonical();
        let ip_slot = match &self.per_ip {
            None => None,
            Some(per_ip) => {
                let mut open = per_ip.open.lock().unwrap_or_else(|p| p.into_inner());
                let n = open.entry(ip).or_insert(0);
                if *n >= per_ip.max {
                    return Err(Refusal::MaxConnectionsPerIp);
                }
                *n += 1;
                Some((per_ip.clone(), ip))
            }
        };
        Ok(Admitted {
            _total: total,
            ip: ip_slot,
        })
    }

    /// Answer a refused connection with 503 and close it, off the accept loop.
    pub fn refuse(&self, stream: TcpStream, ip: IpAddr, why: Refusal) {
        crate::metrics::conn::refused(why.as_str());
        if let Some(suppressed) = self.refusals.may_log() {
            tracing::warn!(
                client = %ip,
                reason = why.as_str(),
                max_connections = self.max_total,
                refused_since_last_line = suppressed,
                "connection refused: 503 and close"
            );
        }
        tokio::spawn(answer_refused(stream));
    }
}

/// The refusal's exchange, at most [`REFUSAL_TIME`] in all. The client's
/// request head is read first (briefly): a client such as hyper's treats a
/// response that arrives before its request as a protocol error, not as
/// an answer. After the 503 and our FIN, the rest is read until the client
/// closes (a lingering close, as nginx does): closing with unread bytes
/// sends a reset, which can destroy the 503 in the client's receive queue.
async fn answer_refused(mut stream: TcpStream) {
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        let _ = tokio::time::timeout(HEAD_WAIT, async {
            let mut tail = [0u8; 4];
            loop {
                match stream.read(&mut buf).await {
                    Ok(n) if n > 0 => {
                        if ends_a_head(&mut tail, &buf[..n]) {
                            break;
                        }
                    }
                    _ => break,
                }
            }
        })
        .await;
        if stream.write_all(REFUSAL).await.is_err() {
            return;
        }
        let _ = stream.shutdown().await;
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// How long a refused connection is kept, and how long of that its
/// request head may take.
const REFUSAL_TIME: Duration = Duration::from_secs(2);
const HEAD_WAIT: Duration = Duration::from_millis(500);

/// Whether `read`, following the last four bytes seen (`tail`), completes
/// a request head (`\r\n\r\n`); keeps `tail` up to date.
fn ends_a_head(tail: &mut [u8; 4], read: &[u8]) -> bool {
    for &b in read {
        tail.rotate_left(1);
        tail[3] = b;
        if tail == b"\r\n\r\n" {
            return true;
        }
    }
    false
}

/// Lets one log line through per second, and counts the ones held back.
#[derive(Default)]
struct RefusalLog {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RefusalLog {
    /// `Some(n)`: log now, `n` refusals were not logged since the last line.
    fn may_log(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(Instant::now());
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_and_release() {
        let a = Admission::new(3, 2);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let first = a.admit(ip).unwrap();
        let _second = a.admit(ip).unwrap();
        assert_eq!(a.admit(ip).err(), Some(Refusal::MaxConnectionsPerIp));
        let _third = a.admit(other).unwrap();
        assert_eq!(a.admit(other).err(), Some(Refusal::MaxConnections));
        drop(first);
        assert!(a.admit(ip).is_ok());
        // An IPv4-mapped IPv6 address is the same client.
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().unwrap();
        let b = Admission::new(10, 1);
        let _m = b.admit(mapped).unwrap();
        assert!(b.admit("10.0.0.9".parse().unwrap()).is_err());
    }

    #[test]
    fn a_head_end_is_found_across_reads() {
        let mut tail = [0u8; 4];
        assert!(!ends_a_head(&mut tail, b"GET / HTTP/1.1\r\nHost: x\r"));
        assert!(!ends_a_head(&mut tail, b"\n"));
        assert!(ends_a_head(&mut tail, b"\r\n"));
        let mut tail = [0u8; 4];
        assert!(!ends_a_head(&mut tail, b"\r\n\n\r"));
    }

    #[test]
    fn refusal_lines_are_rate_limited() {
        let log = RefusalLog::default();
        assert_eq!(log.may_log(), Some(0));
        assert_eq!(log.may_log(), None);
        assert_eq!(log.may_log(), None);
        *log.last.lock().unwrap() = Some(Instant::now() - Duration::from_secs(2));
        assert_eq!(log.may_log(), Some(2));
    }
}
