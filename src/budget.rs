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

use crate::error::{Error, ErrorKind};

/// Reservations are counted in KiB so that one `u32` acquisition can cover
/// up to 4 TiB and a budget fits the semaphore's permit range.
const UNIT: u64 = 1024;

/// What a reservation of `bytes` takes of the budget: whole units.
pub fn taken_by(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT) * UNIT
}

#[derive(Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    semaphore: Arc<Semaphore>,
    capacity_units: u64,
    waiters: AtomicUsize,
    /// A carved budget's bytes, held in its parent for as long as it lives.
    _carved_from: Option<Reservation>,
}

/// Bytes held against the budget; released on drop.
#[derive(Debug)]
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
    bytes: u64,
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Take `other`'s bytes into this one. Both must come from the same
    /// budget (tokio panics on permits of two semaphores).
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
        Self::with_parent(capacity_bytes, None)
    }

    /// Set `bytes` of this budget aside, for good, as a budget of their
    /// own: they count as in use here, and whoever takes from the carved
    /// budget never competes with holders of this one. Used so that one
    /// class of small, always-first reservations (image headers) cannot be
    /// starved by, or starve, the large ones that follow them.
    pub fn carve(&self, bytes: u64) -> Result<MemoryBudget, Error> {
        let held = self.try_reserve(bytes)?.ok_or_else(|| {
            Error::internal(format!(
                "cannot set {bytes} bytes aside: the memory budget has no room"
            ))
        })?;
        Ok(Self::with_parent(bytes, Some(held)))
    }

    /// A budget of exactly the bytes `held` (one download's working set):
    /// its takers wait only for each other, never for holders elsewhere.
    pub fn from_reservation(held: Reservation) -> MemoryBudget {
        Self::with_parent(held.bytes(), Some(held))
    }

    fn with_parent(capacity_bytes: u64, carved_from: Option<Reservation>) -> Self {
        let capacity_units = capacity_bytes.div_ceil(UNIT).max(1);
        let permits = usize::try_from(capacity_units)
            .unwrap_or(Semaphore::MAX_PERMITS)
            .min(Semaphore::MAX_PERMITS);
        MemoryBudget {
            inner: Arc::new(Inner {
                semaphore: Arc::new(Semaphore::new(permits)),
                capacity_units: permits as u64,
                waiters: AtomicUsize::new(0),
                _carved_from: carved_from,
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
                ErrorKind::TooLarge,
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
        // Counted by a guard, so a wait that is cancelled (its request
        // timed out or went away) is uncounted too.
        let waiting = Waiting::new(&self.inner.waiters);
        let permit = self.inner.semaphore.clone().acquire_many_owned(units).await;
        drop(waiting);
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

/// A reservation that grows as a buffer or a plan grows, *without
/// waiting*: whoever already holds budget must not wait for more, or
/// holders waiting for each other could stall the whole budget
/// (hold-and-wait). When the bytes are not free now, growing fails with
/// 503, and the request can be retried.
pub struct Growing {
    budget: MemoryBudget,
    held: Reservation,
}

impl Growing {
    /// Start from `held` (possibly empty).
    pub fn new(budget: &MemoryBudget, held: Reservation) -> Self {
        Growing {
            budget: budget.clone(),
            held,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.held.bytes()
    }

    /// Hold at least `total` bytes, in steps of at least `step`.
    pub fn grow_to(&mut self, total: u64, step: u64) -> Result<(), Error> {
        if total <= self.held.bytes() {
            return Ok(());
        }
        let need = total - self.held.bytes();
        // Whole steps keep the number of grows small; near the top of the
        // budget, just what is needed.
        let room = self
            .budget
            .capacity_bytes()
            .saturating_sub(self.held.bytes());
        let want = if need.max(step) > room {
            need
        } else {
            need.max(step)
        };
        match self.budget.try_reserve(want)? {
            Some(more) => {
                self.held.merge(more);
                Ok(())
            }
            None => {
                tracing::debug!(
                    total,
                    held = self.held.bytes(),
                    "a growing reservation found the budget full"
                );
                Err(budget_full())
            }
        }
    }

    /// Give back what is held beyond `total`.
    pub fn shrink_to(&mut self, total: u64) {
        if let Some(keep) = self.held.split_off(total) {
            self.held = keep;
        }
    }

    pub fn into_reservation(self) -> Reservation {
        self.held
    }
}

/// The budget has no room now for a holder that may not wait.
pub fn budget_full() -> Error {
    Error::new(
        ErrorKind::BudgetFull,
        "the memory budget is full (--memory-budget); retry later",
    )
}

impl Reservation {
    /// A reservation of nothing.
    pub fn empty() -> Reservation {
        Reservation {
            _permit: None,
            bytes: 0,
        }
    }
}

/// One caller waiting for bytes, counted while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(waiters: &'a AtomicUsize) -> Self {
        waiters.fetch_add(1, Ordering::Relaxed);
        Waiting(waiters)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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
    async fn a_carved_budget_is_held_by_its_parent_while_it_lives() {
        let parent = MemoryBudget::new(10 << 20);
        let child = parent.carve(2 << 20).unwrap();
        assert_eq!(parent.in_use_bytes(), 2 << 20);
        assert_eq!(child.capacity_bytes(), 2 << 20);
        let _a = child.reserve(2 << 20).await.unwrap();
        assert!(child.try_reserve(1).unwrap().is_none());
        assert!(parent.try_reserve(8 << 20).unwrap().is_some());
        drop(_a);
        drop(child);
        assert_eq!(parent.in_use_bytes(), 0);
        assert!(parent.carve(11 << 20).is_err());
    }

    #[tokio::test]
    async fn a_reservation_over_capacity_is_refused_not_queued() {
        let budget = MemoryBudget::new(1024 * 1024);
        let err = budget.reserve(2 * 1024 * 1024).await.err().unwrap();
        assert_eq!(err.kind, ErrorKind::TooLarge);
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
        assert_eq!(budget.waiters(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_wait_is_no_longer_counted() {
        let budget = MemoryBudget::new(1024 * 1024);
        let _held = budget.reserve(1024 * 1024).await.unwrap();
        let wait = budget.reserve(1024);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), wait)
                .await
                .is_err()
        );
        assert_eq!(budget.waiters(), 0);
    }
}
