//! Image processing metrics: the bounded queue in front of the worker pool
//! and the jobs it runs. The image route calls these:
//!
//! ```ignore
//! let queued = metrics::processing::enqueued();   // queue length +1
//! // ... wait for a worker ...
//! let running = queued.started();                 // queue wait observed; in progress +1
//! // ... decode, resize, encode ...
//! running.succeeded();                            // or running.failed(error.kind.as_str())
//! metrics::processing::rejected();                // the queue was full (429)
//! // dropping a QueuedJob or RunningJob counts it as outcome="cancelled"
//! ```

use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

struct ProcessingMetrics {
    queue_length: Gauge,
    in_progress: Gauge,
    queue_wait: Histogram,
    duration: Histogram,
    jobs: Family<OutcomeLabel, Counter>,
    errors: Family<KindLabel, Counter>,
}

static M: LazyLock<ProcessingMetrics> = LazyLock::new(|| ProcessingMetrics {
    queue_length: Gauge::default(),
    in_progress: Gauge::default(),
    queue_wait: Histogram::new(super::duration_buckets()),
    duration: Histogram::new(super::duration_buckets()),
    jobs: Family::default(),
    errors: Family::default(),
});

pub(super) fn register(r: &mut Registry) {
    r.register(
        "processing_queue_length",
        "Image jobs waiting for a worker",
        M.queue_length.clone(),
    );
    r.register(
        "processing_in_progress",
        "Image jobs running on a worker",
        M.in_progress.clone(),
    );
    r.register_with_unit(
        "processing_queue_wait",
        "Time an image job waited in the queue before a worker took it",
        Unit::Seconds,
        M.queue_wait.clone(),
    );
    r.register_with_unit(
        "processing_duration",
        "Time a worker spent on an image job (decode, resize, encode)",
        Unit::Seconds,
        M.duration.clone(),
    );
    r.register(
        "processing_jobs",
        "Image jobs that ended, by outcome (ok, failed, rejected, cancelled)",
        M.jobs.clone(),
    );
    r.register(
        "processing_errors",
        "Image jobs that failed, by error kind",
        M.errors.clone(),
    );
}

fn count(outcome: &'static str) {
    M.jobs.get_or_create(&OutcomeLabel { outcome }).inc();
}

/// A job entered the queue.
pub fn enqueued() -> QueuedJob {
    M.queue_length.inc();
    QueuedJob {
        queued: Instant::now(),
        left: false,
    }
}

/// A job was refused because the queue was full.
pub fn rejected() {
    count("rejected");
}

/// A job waiting in the queue.
#[must_use = "a queued job is counted as cancelled unless started"]
pub struct QueuedJob {
    queued: Instant,
    left: bool,
}

impl QueuedJob {
    /// A worker took the job.
    pub fn started(mut self) -> RunningJob {
        self.left = true;
        M.queue_length.dec();
        M.queue_wait.observe(self.queued.elapsed().as_secs_f64());
        M.in_progress.inc();
        RunningJob {
            started: Instant::now(),
            ended: false,
        }
    }
}

impl Drop for QueuedJob {
    fn drop(&mut self) {
        if !self.left {
            M.queue_length.dec();
            count("cancelled");
        }
    }
}

/// A job running on a worker.
#[must_use = "a running job is counted as cancelled unless it succeeds or fails"]
pub struct RunningJob {
    started: Instant,
    ended: bool,
}

impl RunningJob {
    pub fn succeeded(mut self) {
        self.end("ok");
    }

    /// The job failed; `kind` is the error's kind label.
    pub fn failed(mut self, kind: &'static str) {
        M.errors.get_or_create(&KindLabel { kind }).inc();
        self.end("failed");
    }

    fn end(&mut self, outcome: &'static str) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        M.in_progress.dec();
        M.duration.observe(self.started.elapsed().as_secs_f64());
        count(outcome);
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        self.end("cancelled");
    }
}
