//! The entry scheduler: fetches the next `--zip-prefetch` entries of an
//! archive concurrently, each into a bounded buffer whose bytes are reserved
//! from the one [`MemoryBudget`] before the fetch starts.
//!
//! The archive takes entries strictly in order ([`EntryScheduler::next`]);
//! while it writes one, the following ones are already connected and fill
//! their buffers, so slow origins overlap. A full buffer stops reading from
//! that origin (backpressure), so memory stays at most prefetch × buffer per
//! download. A body that fails mid-way is resumed with `Range` + `If-Range`
//! where the origin allows it; the consumer never notices, its running CRC
//! simply continues. Dropping the scheduler aborts every fetch at once.
//!
//! A processed job ([`FetchJob::Processed`], manifest `options`/`variants`)
//! is one fetch and one decode that yields several entries: it takes one
//! queue place per variant, runs through [`Processor::variants`] (whole
//! source bounded by `--max-src-bytes`, its peak reserved from the budget,
//! CPU on the worker pool, waiting for a pool slot rather than failing),
//! and each variant's encoded bytes arrive on its entry's channel, counted
//! in the budget until the archive has written and dropped that entry. A
//! failure of the source fails each of its entries.

use std::collections::VecDeque;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{
    CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use std::sync::Arc;

use super::manifest::{EntrySource, PlannedEntry};
use crate::body::{Body, CHUNK_SIZE};
use crate::budget::{MemoryBudget, Reservation};
use crate::error::{Error, ErrorKind, Result};
use crate::image::run::variants::VariantSpec;
use crate::image::run::Processor;
use crate::origin::{Origin, OriginRequest};

/// One fetch the archive needs, in archive order.
#[derive(Debug, Clone)]
pub enum FetchJob {
    /// The bytes of `path_and_query`, one entry.
    Origin {
        path_and_query: String,
        /// Only these bytes of the source (inclusive), for a ranged archive.
        range: Option<(u64, u64)>,
    },
    /// Processed images of one source, one entry per variant, in order.
    Processed {
        path_and_query: String,
        variants: Vec<VariantSpec>,
    },
    /// An entry with no bytes and nothing to fetch (a directory).
    Empty,
}

impl FetchJob {
    /// The jobs for whole entries, in order: consecutive processed entries
    /// of one group become one job.
    pub fn for_entries(entries: &[PlannedEntry]) -> Vec<FetchJob> {
        let mut jobs: Vec<FetchJob> = Vec::with_capacity(entries.len());
        let mut last_group = None;
        for e in entries {
            match &e.source {
                EntrySource::Directory => {
                    last_group = None;
                    jobs.push(FetchJob::Empty);
                }
                EntrySource::Origin { path_and_query } => {
                    last_group = None;
                    jobs.push(FetchJob::Origin {
                        path_and_query: path_and_query.clone(),
                        range: None,
                    });
                }
                EntrySource::Processed {
                    path_and_query,
                    group,
                    variant,
                } => {
                    if last_group == Some(*group) {
                        if let Some(FetchJob::Processed { variants, .. }) = jobs.last_mut() {
                            variants.push(VariantSpec::clone(variant));
                            continue;
                        }
                    }
                    last_group = Some(*group);
                    jobs.push(FetchJob::Processed {
                        path_and_query: path_and_query.clone(),
                        variants: vec![VariantSpec::clone(variant)],
                    });
                }
            }
        }
        jobs
    }
}

/// What the origin said about an entry before its body.
#[derive(Debug, Clone, Default)]
pub struct EntryMeta {
    /// Length of the bytes that will be delivered (after any range).
    pub length: Option<u64>,
    pub last_modified: Option<SystemTime>,
    pub content_type: Option<String>,
}

/// An entry whose origin answered; its bytes arrive on `chunks`, at most
/// [`CHUNK_SIZE`] each. The buffer's reservation is released on drop.
pub struct OpenedEntry {
    pub meta: EntryMeta,
    pub chunks: mpsc::Receiver<Result<Bytes>>,
    _reservation: Reservation,
}

#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// Entries fetched at once, counting the one being written.
    pub prefetch: usize,
    /// Bytes buffered per entry (rounded up to whole chunks).
    pub buffer_bytes: u64,
    /// Resumptions allowed per entry after a mid-body failure.
    pub max_resumes: u32,
}

impl SchedulerConfig {
    fn slots(&self) -> usize {
        (self.buffer_bytes as usize).div_ceil(CHUNK_SIZE).max(1)
    }

    /// What one entry's fetch reserves from the budget: its slots, each a
    /// piece of at most one read of [`CHUNK_SIZE`], and the buffer the next
    /// read goes into (a piece keeps its read's buffer alive).
    pub fn reserved_per_entry(&self) -> u64 {
        ((self.slots() + 1) * CHUNK_SIZE) as u64
    }
}

pub struct EntryScheduler {
    origin: Origin,
    budget: MemoryBudget,
    processor: Arc<Processor>,
    config: SchedulerConfig,
    /// Client headers every origin entry request carries (mod_zip's
    /// `X-Archive-Pass-Headers`).
    pass_headers: Arc<HeaderMap>,
    jobs: std::vec::IntoIter<FetchJob>,
    queue: VecDeque<oneshot::Receiver<Result<OpenedEntry>>>,
    /// Fires when the last processed job started holds its memory (or ended).
    gate: Option<oneshot::Receiver<()>>,
    tasks: JoinSet<()>,
}

impl EntryScheduler {
    pub fn new(
        origin: Origin,
        budget: MemoryBudget,
        processor: Arc<Processor>,
        config: SchedulerConfig,
        jobs: Vec<FetchJob>,
        pass_headers: Arc<HeaderMap>,
    ) -> Self {
        EntryScheduler {
            origin,
            budget,
            processor,
            config,
            pass_headers,
            jobs: jobs.into_iter(),
            queue: VecDeque::new(),
            gate: None,
            tasks: JoinSet::new(),
        }
    }

    /// The next entry in order, once its origin has answered. `None` when
    /// all jobs were handed out.
    pub async fn next(&mut self) -> Option<Result<OpenedEntry>> {
        while self.tasks.try_join_next().is_some() {}
        let prefetch = self.config.prefetch.max(1);
        self.fill(prefetch);
        let mut head = self.queue.pop_front()?;
        let ended = |_| Err(Error::internal("entry fetch task ended"));
        loop {
            let Some(gate) = self.gate.as_mut() else {
                return Some(head.await.unwrap_or_else(ended));
            };
            // While the head is awaited, a processed job that gets its
            // memory lets prefetching go on behind it.
            tokio::select! {
                opened = &mut head => return Some(opened.unwrap_or_else(ended)),
                _ = gate => {
                    self.gate = None;
                    self.fill(prefetch - 1);
                }
            }
        }
    }

    /// Start jobs until `limit` entries are queued, but none past a
    /// processed job that does not hold its memory yet. That job may wait
    /// for budget; the entries it waits with are then only those ahead of
    /// it, which drain whatever happens to it, never prefetch buffers of
    /// its own download held behind it (hold-and-wait across downloads).
    fn fill(&mut self, limit: usize) {
        while self.queue.len() < limit {
            if let Some(gate) = self.gate.as_mut() {
                match gate.try_recv() {
                    Err(oneshot::error::TryRecvError::Empty) => return,
                    _ => self.gate = None,
                }
            }
            let Some(job) = self.jobs.next() else { return };
            match job {
                FetchJob::Empty => {
                    let (tx, rx) = oneshot::channel();
                    self.queue.push_back(rx);
                    let (_, chunks) = mpsc::channel(1);
                    let _ = tx.send(Ok(OpenedEntry {
                        meta: EntryMeta {
                            length: Some(0),
                            ..EntryMeta::default()
                        },
                        chunks,
                        _reservation: Reservation::empty(),
                    }));
                }
                FetchJob::Origin {
                    path_and_query,
                    range,
                } => {
                    let (tx, rx) = oneshot::channel();
                    self.queue.push_back(rx);
                    let fetch = Fetch {
                        origin: self.origin.clone(),
                        budget: self.budget.clone(),
                        config: self.config,
                        pass_headers: self.pass_headers.clone(),
                    };
                    self.tasks.spawn(fetch.run(path_and_query, range, tx));
                }
                FetchJob::Processed {
                    path_and_query,
                    variants,
                } => {
                    let mut senders = Vec::with_capacity(variants.len());
                    for _ in &variants {
                        let (tx, rx) = oneshot::channel();
                        self.queue.push_back(rx);
                        senders.push(tx);
                    }
                    let (reserved, gate) = oneshot::channel();
                    self.gate = Some(gate);
                    self.tasks.spawn(process(
                        self.processor.clone(),
                        self.origin.clone(),
                        path_and_query,
                        variants,
                        senders,
                        reserved,
                    ));
                }
            }
        }
    }
}

/// A processed job: one fetch and decode, one opened entry per variant.
async fn process(
    processor: Arc<Processor>,
    origin: Origin,
    path: String,
    variants: Vec<VariantSpec>,
    opened: Vec<oneshot::Sender<Result<OpenedEntry>>>,
    reserved: oneshot::Sender<()>,
) {
    let outputs = match processor
        .variants(&origin, &path, &variants, reserved)
        .await
    {
        Ok(o) => o,
        Err(e) => {
            for tx in opened {
                let _ = tx.send(Err(e.clone()));
            }
            return;
        }
    };
    for (tx, output) in opened.into_iter().zip(outputs) {
        let entry = output.map(|out| {
            let length = out.bytes.len() as u64;
            let (chunks_tx, chunks) = mpsc::channel(out.bytes.len().div_ceil(CHUNK_SIZE).max(1));
            let mut rest = out.bytes;
            while !rest.is_empty() {
                let piece = rest.split_to(rest.len().min(CHUNK_SIZE));
                // Cannot fail: the channel has room for every piece.
                let _ = chunks_tx.try_send(Ok(piece));
            }
            OpenedEntry {
                meta: EntryMeta {
                    length: Some(length),
                    last_modified: out.last_modified,
                    content_type: Some(out.format.mime().to_string()),
                },
                chunks,
                _reservation: out.held,
            }
        });
        let _ = tx.send(entry);
    }
}

struct Fetch {
    origin: Origin,
    budget: MemoryBudget,
    config: SchedulerConfig,
    pass_headers: Arc<HeaderMap>,
}

/// How to resume a body that failed after `received` bytes.
struct Resumable {
    validator: HeaderValue,
}

impl Fetch {
    async fn run(
        self,
        path: String,
        range: Option<(u64, u64)>,
        opened: oneshot::Sender<Result<OpenedEntry>>,
    ) {
        let reservation = match self.budget.reserve(self.config.reserved_per_entry()).await {
            Ok(r) => r,
            Err(e) => {
                let _ = opened.send(Err(e));
                return;
            }
        };
        let (start, end) = match range {
            Some((a, b)) => (a, Some(b)),
            None => (0, None),
        };
        let response = match self.request(&path, start, end, None).await {
            Ok(r) => r,
            Err(e) => {
                let _ = opened.send(Err(e));
                return;
            }
        };
        let (status, headers, mut body) = response;
        // A 200 to a ranged request: cut the range out ourselves.
        let mut skip = if range.is_some() && status == StatusCode::OK {
            start
        } else {
            0
        };
        let wanted = end.map(|e| e + 1 - start);
        let meta = EntryMeta {
            length: wanted.or_else(|| content_length(&headers)),
            last_modified: headers
                .get(LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| httpdate::parse_http_date(s).ok()),
            content_type: headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        };
        let resumable = resumable(&headers);
        let (tx, rx) = mpsc::channel(self.config.slots());
        let entry = OpenedEntry {
            meta,
            chunks: rx,
            _reservation: reservation,
        };
        if opened.send(Ok(entry)).is_err() {
            return;
        }

        let mut delivered = 0u64;
        let mut resumes = 0;
        loop {
            // A free slot first, then a read: no piece is ever held here
            // waiting for room, so what this entry holds is the slots plus
            // the buffer being read into (`reserved_per_entry`).
            let Ok(permit) = tx.reserve().await else {
                return; // the archive stopped wanting this entry
            };
            match body.frame().await {
                None => return,
                Some(Ok(frame)) => {
                    let Ok(mut data) = frame.into_data() else {
                        continue;
                    };
                    if skip > 0 {
                        let n = skip.min(data.len() as u64);
                        let _ = data.split_to(n as usize);
                        skip -= n;
                    }
                    if let Some(w) = wanted {
                        let left = w.saturating_sub(delivered);
                        if (data.len() as u64) > left {
                            data.truncate(left as usize);
                        }
                    }
                    let mut permit = Some(permit);
                    while !data.is_empty() {
                        // Origin frames are at most one read of CHUNK_SIZE
                        // (HttpOrigin, DirOrigin); a larger one is cut.
                        let piece = data.split_to(data.len().min(CHUNK_SIZE));
                        delivered += piece.len() as u64;
                        let sent = match permit.take() {
                            Some(p) => {
                                p.send(Ok(piece));
                                true
                            }
                            None => tx.send(Ok(piece)).await.is_ok(),
                        };
                        if !sent {
                            return; // the archive stopped wanting this entry
                        }
                    }
                    if wanted.is_some_and(|w| delivered >= w) {
                        return;
                    }
                }
                Some(Err(e)) => {
                    drop(permit);
                    // The error's own retry decision first (a broken or
                    // stalled body may be resumed; a refusal may not).
                    let can_resume = e.may_retry(false)
                        && delivered > 0
                        && skip == 0
                        && resumes < self.config.max_resumes;
                    let Some(how) = resumable.as_ref().filter(|_| can_resume) else {
                        let _ = tx.send(Err(e)).await;
                        return;
                    };
                    resumes += 1;
                    tracing::info!(source = %path, delivered, error = %e, "resuming entry with Range");
                    match self
                        .request(&path, start + delivered, end, Some(how.validator.clone()))
                        .await
                    {
                        Ok((StatusCode::PARTIAL_CONTENT, _, rest)) => body = rest,
                        Ok((status, _, _)) => {
                            let _ = tx
                                .send(Err(Error::body_broken(format!(
                                    "{path}: failed after {delivered} bytes and could not be resumed (origin answered {status} to Range)"
                                ))))
                                .await;
                            return;
                        }
                        Err(e2) => {
                            let _ = tx.send(Err(e2)).await;
                            return;
                        }
                    }
                }
            }
        }
    }

    /// GET `path`, optionally bytes `start..=end` (`end` open when `None`);
    /// `if_range` makes it a resumption. Returns only a usable response.
    async fn request(
        &self,
        path: &str,
        start: u64,
        end: Option<u64>,
        if_range: Option<HeaderValue>,
    ) -> Result<(StatusCode, HeaderMap, Body)> {
        let mut req = OriginRequest::get(path);
        for (name, value) in self.pass_headers.iter() {
            req.headers.append(name, value.clone());
        }
        let ranged = start > 0 || end.is_some();
        if ranged {
            let spec = match end {
                Some(e) => format!("bytes={start}-{e}"),
                None => format!("bytes={start}-"),
            };
            if let Ok(v) = HeaderValue::from_str(&spec) {
                req.headers.insert(RANGE, v);
            }
        }
        if let Some(v) = if_range {
            req.headers.insert(IF_RANGE, v);
        }
        let response = self.origin.fetch(req).await?;
        let status = response.status;
        if status == StatusCode::PARTIAL_CONTENT {
            let first = response
                .headers
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.strip_prefix("bytes "))
                .and_then(|s| s.split('-').next())
                .and_then(|s| s.parse::<u64>().ok());
            if !ranged || first != Some(start) {
                return Err(Error::body_broken(format!(
                    "{path}: origin sent a range that was not asked for"
                )));
            }
        } else if status != StatusCode::OK {
            let reason = status.canonical_reason().unwrap_or("");
            return Err(Error::new(
                ErrorKind::EntryRefused(status.as_u16()),
                format!("origin answered {} {reason}", status.as_u16()),
            ));
        }
        Ok((status, response.headers, response.body))
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

/// A body can be resumed when the origin gave a strong ETag or a
/// Last-Modified date to put in `If-Range` (so a changed file is never
/// spliced), and did not refuse ranges.
fn resumable(headers: &HeaderMap) -> Option<Resumable> {
    if headers
        .get(http::header::ACCEPT_RANGES)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"none"))
    {
        return None;
    }
    if let Some(etag) = headers.get(ETAG) {
        if !etag.as_bytes().starts_with(b"W/") {
            return Some(Resumable {
                validator: etag.clone(),
            });
        }
    }
    headers.get(LAST_MODIFIED).map(|lm| Resumable {
        validator: lm.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumable_needs_a_strong_validator() {
        let mut h = HeaderMap::new();
        assert!(resumable(&h).is_none());
        h.insert(ETAG, HeaderValue::from_static("W/\"x\""));
        assert!(resumable(&h).is_none());
        h.insert(
            LAST_MODIFIED,
            HeaderValue::from_static("Tue, 14 Nov 2023 22:13:20 GMT"),
        );
        assert!(resumable(&h).is_some());
        h.insert(ETAG, HeaderValue::from_static("\"x\""));
        assert_eq!(resumable(&h).unwrap().validator, "\"x\"");
        h.insert(
            http::header::ACCEPT_RANGES,
            HeaderValue::from_static("none"),
        );
        assert!(resumable(&h).is_none());
    }

    #[test]
    fn buffers_are_whole_chunks() {
        let c = SchedulerConfig {
            prefetch: 4,
            buffer_bytes: 100_000,
            max_resumes: 3,
        };
        assert_eq!(c.slots(), 2);
        assert_eq!(c.reserved_per_entry(), 3 * CHUNK_SIZE as u64);
    }
}
