//! The bounded worker pool for CPU work (decode, resize, encode).
//!
//! `--workers` OS threads take jobs from one queue. A request first takes an
//! [`Admission`] slot (`--workers` + `--queue-size` slots in all; none free
//! means 429) and holds it until its job is done, so the number of image
//! requests in flight, and their input buffers, is bounded too. Jobs run
//! under `catch_unwind`: a decoder that panics fails its own request only.
//! The async side only awaits a oneshot; it never runs pixels.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, ErrorKind, Result};

type Task = Box<dyn FnOnce() + Send + 'static>;

#[derive(Clone)]
pub struct WorkerPool {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Mutex<mpsc::Sender<Task>>,
    slots: Arc<Semaphore>,
    workers: usize,
    queue_size: usize,
}

/// A slot in the pool: held from admission until the job finished.
pub struct Admission {
    pool: WorkerPool,
    permit: OwnedSemaphorePermit,
}

impl WorkerPool {
    /// Start `workers` threads (0 = number of cores) with room for
    /// `queue_size` waiting jobs.
    pub fn new(workers: usize, queue_size: usize) -> std::result::Result<Self, String> {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            workers
        };
        let (tx, rx) = mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        let arena = super::arena::create();
        for i in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("sluice-img-{i}"))
                .spawn(move || {
                    if let Some(arena) = arena {
                        super::arena::use_on_this_thread(arena);
                    }
                    loop {
                        // The lock is held only while taking a task, never
                        // while running one, so it cannot be poisoned by a job.
                        let task = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match task {
                            Ok(task) => task(),
                            Err(_) => return, // pool dropped
                        }
                    }
                })
                .map_err(|e| format!("cannot start image worker: {e}"))?;
        }
        Ok(WorkerPool {
            inner: Arc::new(Inner {
                queue: Mutex::new(tx),
                slots: Arc::new(Semaphore::new(workers + queue_size)),
                workers,
                queue_size,
            }),
        })
    }

    /// Admission slots in all (workers + queue).
    pub fn slots(&self) -> usize {
        self.inner.workers + self.inner.queue_size
    }

    /// Take a slot now, or 429.
    pub fn admit(&self) -> Result<Admission> {
        let permit = self.inner.slots.clone().try_acquire_owned().map_err(|_| {
            crate::metrics::processing::rejected();
            Error::new(
                ErrorKind::QueueFull,
                format!(
                    "image queue is full ({} workers, {} queued)",
                    self.inner.workers, self.inner.queue_size
                ),
            )
        })?;
        Ok(Admission {
            pool: self.clone(),
            permit,
        })
    }

    /// Wait for a slot instead of answering 429: for work that is part of
    /// a larger response already under way (zip variants), where a
    /// momentarily full queue must slow the download, not fail it. Waiters
    /// are served in FIFO order, and are not counted as rejections.
    pub async fn admit_waiting(&self) -> Result<Admission> {
        let permit = self
            .inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("image worker pool closed"))?;
        Ok(Admission {
            pool: self.clone(),
            permit,
        })
    }

    /// Slots in use (running + queued + fetching).
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.inner.workers + self.inner.queue_size - self.inner.slots.available_permits()
    }
}

impl Admission {
    /// Run `job` on a worker thread and await its result. The slot is
    /// released when the job has finished (not when the caller stops
    /// waiting), so an abandoned job still counts until it notices.
    pub async fn run<T, F>(self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let permit = self.permit;
        let queued = crate::metrics::processing::enqueued();
        let task: Task = Box::new(move || {
            let running = queued.started();
            let outcome = catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::warn!(panic = %what, "image job panicked; request failed, worker continues");
                Err(Error::new(
                    ErrorKind::Unprocessable,
                    "image could not be processed (decoder failed)",
                ))
            });
            match &outcome {
                Ok(_) => running.succeeded(),
                Err(e) => running.failed(e.kind.as_str()),
            }
            drop(permit);
            let _ = tx.send(outcome);
        });
        self.pool
            .inner
            .queue
            .lock()
            .map_err(|_| Error::internal("worker queue poisoned"))?
            .send(task)
            .map_err(|_| Error::internal("image workers stopped"))?;
        rx.await
            .map_err(|_| Error::internal("image worker vanished"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn jobs_run_off_the_reactor_and_return() {
        let pool = WorkerPool::new(2, 2).unwrap();
        let name = pool
            .admit()
            .unwrap()
            .run(|| Ok(std::thread::current().name().unwrap_or("").to_string()))
            .await
            .unwrap();
        assert!(name.starts_with("sluice-img-"), "{name}");
    }

    #[tokio::test]
    async fn a_full_queue_answers_429_and_frees_up() {
        let pool = WorkerPool::new(1, 1).unwrap();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let a = pool.admit().unwrap();
        let _b = pool.admit().unwrap();
        assert_eq!(pool.admit().err().unwrap().kind, ErrorKind::QueueFull);
        let running = tokio::spawn(a.run(move || {
            release_rx.recv_timeout(Duration::from_secs(5)).ok();
            Ok(1)
        }));
        release_tx.send(()).unwrap();
        assert_eq!(running.await.unwrap().unwrap(), 1);
        assert!(pool.admit().is_ok());
    }

    #[tokio::test]
    async fn a_waiting_admission_waits_for_a_slot_instead_of_429() {
        let pool = WorkerPool::new(1, 0).unwrap();
        let held = pool.admit().unwrap();
        assert_eq!(pool.admit().err().unwrap().kind, ErrorKind::QueueFull);
        let p = pool.clone();
        let waiter =
            tokio::spawn(async move { p.admit_waiting().await.unwrap().run(|| Ok(5)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "waits while the only slot is taken");
        drop(held);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("admitted once the slot was free");
        assert_eq!(got.unwrap().unwrap(), 5);
        assert_eq!(pool.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_panic_fails_only_its_own_job() {
        let pool = WorkerPool::new(1, 4).unwrap();
        let err = pool
            .admit()
            .unwrap()
            .run(|| -> Result<()> { panic!("decoder exploded") })
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unprocessable);
        // The single worker thread survived and serves the next job.
        assert_eq!(pool.admit().unwrap().run(|| Ok(7)).await.unwrap(), 7);
        assert_eq!(pool.in_flight(), 0);
    }
}
