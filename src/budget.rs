//! The one memory budget: every byte sluice holds beyond a streaming chunk
//! (zip prefetch buffers, image decode/resize/encode buffers, compressed
//! inputs) is reserved here first and released when the holder is dropped.
//!
//! It is a byte semaphore. A reservation larger than the whole budget is
//! refused at once (it could never be granted); otherwise the caller waits
//! in FIFO order until enough bytes are free, so memory stays bounded under
//! any load and the wait is visible (`waiters`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Kind};

/// Reservations are counted in KiB so that one `u32` acquisition can cover
/// up to 4 TiB and a budget fits the semaphore's permit range.
const UNIT: u64 = 1024;

#[derive(Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    semaphore: Arc<Semaphore>,
    capacity_units: u64,
    waiters: AtomicUsize,
}

/// Bytes held against the budget; released on drop.
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
    bytes: u64,
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Take `other`'s bytes into this one (both from the same budget).
    pub fn merge(&mut self, other: Reservation) {
        match (&mut self._permit, other._permit) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
        self.bytes += other.bytes;
    }

    /// Move `bytes` (rounded up to whole KiB) out of this reservation into
    /// a new one, without releasing them in between; `None` when it holds
    /// fewer. A job that reserved its whole peak up front hands its
    /// results their share this way and frees the rest.
    pub fn split_off(&mut self, bytes: u64) -> Option<Reservation> {
        let units = bytes.div_ceil(UNIT);
        if units == 0 {
            return Some(Reservation {
                _permit: None,
                bytes: 0,
            });
        }
        let taken = self._permit.as_mut()?.split(usize::try_from(units).ok()?)?;
        self.bytes = self.bytes.saturating_sub(units * UNIT);
        Some(Reservation {
            _permit: Some(taken),
            bytes,
        })
    }
}

impl MemoryBudget {
    pub fn new(capacity_bytes: u64) -> Self {
        let capacity_units = capacity_bytes.div_ceil(UNIT).max(1);
        let permits = usize::try_from(capacity_units)
            .unwrap_or(Semaphore::MAX_PERMITS)
            .min(Semaphore::MAX_PERMITS);
        MemoryBudget {
            inner: Arc::new(Inner {
                semaphore: Arc::new(Semaphore::new(permits)),
                capacity_units: permits as u64,
                waiters: AtomicUsize::new(0),
            }),
        }
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.inner.capacity_units * UNIT
    }

    pub fn in_use_bytes(&self) -> u64 {
        let free = self.inner.semaphore.available_permits() as u64;
        self.inner.capacity_units.saturating_sub(free) * UNIT
    }

    /// How many callers are waiting for bytes right now.
    pub fn waiters(&self) -> usize {
        self.inner.waiters.load(Ordering::Relaxed)
    }

    fn units(&self, bytes: u64) -> Result<u32, Error> {
        let units = bytes.div_ceil(UNIT);
        if units > self.inner.capacity_units {
            return Err(Error::new(
                Kind::PayloadTooLarge,
                format!(
                    "needs {} MiB of memory, more than the whole budget of {} MiB",
                    bytes.div_ceil(1 << 20),
                    self.capacity_bytes() >> 20
                ),
            ));
        }
        u32::try_from(units).map_err(|_| Error::internal("reservation too large"))
    }

    /// Wait until `bytes` are free, then hold them.
    pub async fn reserve(&self, bytes: u64) -> Result<Reservation, Error> {
        let units = self.units(bytes)?;
        if units == 0 {
            return Ok(Reservation {
                _permit: None,
                bytes: 0,
            });
        }
        self.inner.waiters.fetch_add(1, Ordering::Relaxed);
        let permit = self.inner.semaphore.clone().acquire_many_owned(units).await;
        self.inner.waiters.fetch_sub(1, Ordering::Relaxed);
        let permit = permit.map_err(|_| Error::internal("memory budget closed"))?;
        Ok(Reservation {
            _permit: Some(permit),
            bytes,
        })
    }

    /// Hold `bytes` only if they are free now.
    pub fn try_reserve(&self, bytes: u64) -> Result<Option<Reservation>, Error> {
        let units = self.units(bytes)?;
        if units == 0 {
            return Ok(Some(Reservation {
                _permit: None,
                bytes: 0,
            }));
        }
        match self.inner.semaphore.clone().try_acquire_many_owned(units) {
            Ok(permit) => Ok(Some(Reservation {
                _permit: Some(permit),
                bytes,
            })),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_are_released_on_drop() {
        let budget = MemoryBudget::new(10 * 1024 * 1024);
        let r = budget.reserve(4 * 1024 * 1024).await.unwrap();
        assert_eq!(budget.in_use_bytes(), 4 * 1024 * 1024);
        assert!(budget.try_reserve(7 * 1024 * 1024).unwrap().is_none());
        drop(r);
        assert_eq!(budget.in_use_bytes(), 0);
        assert!(budget.try_reserve(7 * 1024 * 1024).unwrap().is_some());
    }

    #[tokio::test]
    async fn reservations_merge_and_split_without_releasing() {
        let budget = MemoryBudget::new(10 << 20);
        let mut a = budget.reserve(3 << 20).await.unwrap();
        a.merge(budget.reserve(1 << 20).await.unwrap());
        assert_eq!(a.bytes(), 4 << 20);
        let part = a.split_off(1000).unwrap();
        assert_eq!(part.bytes(), 1000);
        assert_eq!(budget.in_use_bytes(), 4 << 20);
        assert!(a.split_off(5 << 20).is_none());
        drop(a);
        assert_eq!(budget.in_use_bytes(), 1024);
        drop(part);
        assert_eq!(budget.in_use_bytes(), 0);
    }

    #[tokio::test]
    async fn a_reservation_over_capacity_is_refused_not_queued() {
        let budget = MemoryBudget::new(1024 * 1024);
        let err = budget.reserve(2 * 1024 * 1024).await.err().unwrap();
        assert_eq!(err.status(), 413);
    }

    #[tokio::test]
    async fn waiters_are_counted_and_woken() {
        let budget = MemoryBudget::new(1024 * 1024);
        let held = budget.reserve(1024 * 1024).await.unwrap();
        let b = budget.clone();
        let waiter = tokio::spawn(async move { b.reserve(512 * 1024).await.map(|r| r.bytes()) });
        tokio::task::yield_now().await;
        while budget.waiters() == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert_eq!(waiter.await.unwrap().unwrap(), 512 * 1024);
    }
}
