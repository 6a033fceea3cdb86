//! Request coalescing: identical concurrent requests (same source, options
//! and output format) are computed once and the result is shared, as an
//! origin shield does.
//!
//! The map holds only weak references. When every waiter of a computation
//! has gone (timed out, disconnected), the computation is dropped, which
//! cancels it; the next identical request starts afresh.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::{FutureExt, Shared, WeakShared};

type BoxedWork<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type SharedFuture<T> = Shared<BoxedWork<T>>;
/// Key ▶ (generation, weak handle on the computation).
type InflightMap<T> = HashMap<String, (u64, WeakShared<BoxedWork<T>>)>;

pub struct Coalescer<T: Clone> {
    inflight: Arc<Mutex<InflightMap<T>>>,
    next_id: AtomicU64,
}

impl<T: Clone + Send + Sync + 'static> Default for Coalescer<T> {
    fn default() -> Self {
        Coalescer {
            inflight: Arc::default(),
            next_id: AtomicU64::new(0),
        }
    }
}

/// Whether this caller started the computation or joined one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
}

impl<T: Clone + Send + Sync + 'static> Coalescer<T> {
    /// Join the computation for `key`, or start `make()` if there is none.
    pub fn join<F>(&self, key: &str, make: impl FnOnce() -> F) -> (SharedFuture<T>, Role)
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = map.get(key).and_then(|(_, weak)| weak.upgrade()) {
            return (shared, Role::Follower);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let inflight = self.inflight.clone();
        let owned_key = key.to_string();
        let work = make();
        let fut: BoxedWork<T> = Box::pin(async move {
            let out = work.await;
            // Done: later requests start a new computation (a new origin
            // fetch), so results are shared only between concurrent ones.
            let mut map = inflight.lock().unwrap_or_else(|p| p.into_inner());
            if map.get(&owned_key).is_some_and(|(i, _)| *i == id) {
                map.remove(&owned_key);
            }
            out
        });
        let shared = fut.shared();
        if let Some(weak) = shared.downgrade() {
            map.insert(key.to_string(), (id, weak));
        }
        // Forget keys whose computations were all abandoned.
        if map.len() > 64 {
            map.retain(|_, (_, weak)| weak.upgrade().is_some());
        }
        (shared, Role::Leader)
    }

    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.inflight.lock().map_or(0, |m| m.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_identical_requests_compute_once() {
        let c: Coalescer<u32> = Coalescer::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let make = |runs: Arc<AtomicUsize>| {
            move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                42
            }
        };
        let (a, ra) = c.join("k", make(runs.clone()));
        let (b, rb) = c.join("k", make(runs.clone()));
        let (other, _) = c.join("other", make(runs.clone()));
        assert_eq!((ra, rb), (Role::Leader, Role::Follower));
        assert_eq!((a.await, b.await, other.await), (42, 42, 42));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(c.in_flight(), 0);
        // Finished: the next request computes again.
        let (_, r) = c.join("k", make(runs.clone()));
        assert_eq!(r, Role::Leader);
    }

    #[tokio::test]
    async fn abandoned_computations_are_dropped() {
        struct SetOnDrop(Arc<AtomicUsize>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(1, Ordering::SeqCst);
            }
        }
        let c: Coalescer<u32> = Coalescer::default();
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        let (f, _) = c.join("k", move || async move {
            let _guard = SetOnDrop(d);
            std::future::pending::<()>().await;
            1
        });
        assert!(tokio::time::timeout(Duration::from_millis(20), f)
            .await
            .is_err());
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        let (_, r) = c.join("k", || async { 2 });
        assert_eq!(r, Role::Leader);
    }
}
