//! Running jobs: a source is read into one counted buffer ([`input`]), a
//! slot of the bounded worker pool is held ([`workers`], allocating from
//! an arena that gives memory back at once, [`arena`]), and the stages run
//! there ([`pipeline`]): decode ▶ resize ▶ orient ▶ flatten ▶ encode.
//! [`coalesce`] shares one run between identical concurrent requests.
//!
//! The [`Processor`] is what the HTTP route (`image::http`) and the zip
//! feature (`zip`, for manifest `options`/`variants`, [`variants`]) both
//! use: it owns the pool, the memory budget with its probe windows, the
//! limits and the processing deadline.

pub mod arena;
pub mod coalesce;
pub mod input;
pub mod pipeline;
pub mod variants;
pub mod workers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use input::{InputBudget, Limits};
use pipeline::{choose_format, effective_quality, Defaults, ProcessedImage};
use workers::{Admission, WorkerPool};

use super::codec::{CodecError, OutputFormat};
use super::plan::estimate::job_bytes;
use super::plan::geometry::plan;
use super::plan::options::Options;
use crate::body::Body;
use crate::budget::{MemoryBudget, Reservation};
use crate::error::{Error, ErrorKind, Result};

impl From<CodecError> for Error {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Unprocessable(why) => Error::unprocessable(why),
            CodecError::Cancelled => {
                Error::new(ErrorKind::ProcessingTimeout, "processing timed out")
            }
            CodecError::Internal(why) => Error::internal(why),
        }
    }
}

/// How jobs run; from `--workers`, `--queue-size`, `--processing-timeout`,
/// `--max-src-*`, `--quality` and `--jpeg-progressive`.
#[derive(Debug, Clone, Copy)]
pub struct ProcessorSettings {
    pub workers: usize,
    pub queue_size: usize,
    pub timeout: Duration,
    pub limits: Limits,
    pub defaults: Defaults,
}

/// The shared machinery of every image job.
pub struct Processor {
    pool: WorkerPool,
    budget: InputBudget,
    limits: Limits,
    defaults: Defaults,
    timeout: Duration,
}

/// One encoded output, with its share of the job's reservation.
pub struct Made {
    pub image: ProcessedImage,
    /// Whether the format was chosen from `Accept` (`Vary: Accept`).
    pub vary_accept: bool,
    pub held: Reservation,
}

impl Processor {
    /// Start the worker threads and carve the probe windows out of `budget`.
    pub fn new(s: ProcessorSettings, budget: &MemoryBudget) -> std::result::Result<Self, String> {
        if !(1..=100).contains(&s.defaults.quality) {
            return Err("--quality must be 1..=100".into());
        }
        let pool = WorkerPool::new(s.workers, s.queue_size)?;
        let budget = InputBudget::new(budget, pool.slots()).map_err(|e| e.reason.to_string())?;
        Ok(Processor {
            pool,
            budget,
            limits: s.limits,
            defaults: s.defaults,
            timeout: s.timeout,
        })
    }

    pub fn pool(&self) -> &WorkerPool {
        &self.pool
    }

    /// `--processing-timeout`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn timed_out(&self) -> Error {
        Error::new(
            ErrorKind::ProcessingTimeout,
            format!("image processing took longer than {:?}", self.timeout),
        )
    }

    /// One output of a fetched source (`/img`): read `body` counted, with
    /// the job's peak reserved from its header, and run the pipeline under
    /// `admission`. The format is `requested`, or chosen from `accept`.
    pub async fn one(
        &self,
        admission: Admission,
        body: Body,
        content_length: Option<u64>,
        options: &Options,
        requested: Option<OutputFormat>,
        accept: Option<&str>,
    ) -> Result<Made> {
        let input = input::read(body, content_length, &self.limits, &self.budget, |p| {
            let (format, _) = choose_format(requested, accept, p);
            Ok(job_bytes(
                p,
                &plan(p.width, p.height, p.orientation, options),
                format,
                effective_quality(options, self.defaults),
            ))
        })
        .await?;
        let (format, vary_accept) = choose_format(requested, accept, &input.probe);
        let cancel = CancelOnDrop::new();
        let cancelled = cancel.flag.clone();
        let defaults = self.defaults;
        let options = options.clone();
        let (image, held) = admission
            .run(move || {
                let input::Input {
                    data,
                    probe,
                    held,
                    window,
                } = input;
                if cancelled.load(Ordering::Relaxed) {
                    return Err(CodecError::Cancelled.into());
                }
                let image = pipeline::run(&data, &probe, &options, format, defaults, &cancelled)?;
                drop(data);
                drop(window);
                // The job's reservation comes back, so the output takes its
                // share of it without releasing it in between.
                Ok((image, held))
            })
            .await?;
        cancel.disarm();
        let held = output_share(held, image.bytes.len() as u64, &self.budget.main).await?;
        Ok(Made {
            image,
            vary_accept,
            held,
        })
    }
}

/// The part of a job's reservations that its output of `len` bytes keeps.
/// The job's estimate covers its output, so this is a split; an output
/// larger than that (not expected: encoded images are smaller than their
/// bitmaps) frees the job's bytes first and then waits for its own.
async fn output_share(
    held: Vec<Reservation>,
    len: u64,
    budget: &MemoryBudget,
) -> Result<Reservation> {
    let mut job = held.into_iter().reduce(|mut a, b| {
        a.merge(b);
        a
    });
    if let Some(share) = job.as_mut().and_then(|j| j.split_off(len)) {
        return Ok(share);
    }
    tracing::warn!(bytes = len, "image output larger than its memory estimate");
    drop(job);
    budget.reserve(len).await
}

/// Sets a job's cancel flag when the waiting side is dropped (its deadline
/// passed, its client went away), so the worker stops at its next stage.
pub struct CancelOnDrop {
    pub flag: Arc<AtomicBool>,
    armed: bool,
}

impl CancelOnDrop {
    pub fn new() -> Self {
        CancelOnDrop {
            flag: Arc::new(AtomicBool::new(false)),
            armed: true,
        }
    }

    /// The job ended: nothing to cancel.
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Default for CancelOnDrop {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.flag.store(true, Ordering::Relaxed);
        }
    }
}
