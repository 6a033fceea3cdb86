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

use tokio::io::AsyncWriteExt;
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
        tokio::spawn(async move {
            let mut stream = stream;
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                let _ = stream.write_all(REFUSAL).await;
                let _ = stream.shutdown().await;
            })
            .await;
        });
    }
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
    fn refusal_lines_are_rate_limited() {
        let log = RefusalLog::default();
        assert_eq!(log.may_log(), Some(0));
        assert_eq!(log.may_log(), None);
        assert_eq!(log.may_log(), None);
        *log.last.lock().unwrap() = Some(Instant::now() - Duration::from_secs(2));
        assert_eq!(log.may_log(), Some(2));
    }
}
