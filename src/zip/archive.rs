//! The archive producer: drives the [`EntryScheduler`] and the
//! [`ZipWriter`] and hands archive bytes to the client's body.
//!
//! It runs as one task per download, writing into a channel of a few chunks
//! that the response body reads; when the client goes away the channel
//! closes, the task is dropped, and with it the scheduler and every origin
//! fetch. A failure that cannot be skipped is sent down the body as an
//! error, which makes hyper abort the connection: the client sees a failed
//! transfer, never a clean end with a corrupt entry.
//!
//! Two modes (see LIFECYCLE.md):
//! - streaming: entries are written as they arrive, CRC and sizes go in data
//!   descriptors, failed entries are skipped and listed in
//!   `sluice-errors.txt` (or abort, with `"on_error": "abort"`); processed
//!   entries (manifest `options`/`variants`) are always written this way,
//!   stored, each variant of a failed source listed on its own;
//! - known size: every entry stored with declared size and CRC, so the
//!   length is known and a byte range of the archive can be produced,
//!   fetching only the entries (or parts of entries) inside the range. Any
//!   entry failure aborts, since the length was promised.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;

use super::manifest::{ArchivePlan, OnError, PlannedEntry};
use super::scheduler::{EntryScheduler, FetchJob, OpenedEntry, SchedulerConfig};
use super::writer::{self, DosDateTime, EntrySpec, Method, Sizes, ZipWriter};
use crate::body::Body;
use crate::budget::{MemoryBudget, Reservation};
use crate::error::{Error, ErrorKind, Result};
use crate::image::run::Processor;
use crate::metrics;
use crate::origin::Origin;

/// Name of the entry that lists skipped entries.
pub const ERRORS_ENTRY: &str = "sluice-errors.txt";

/// Chunks queued between the producer and the client socket.
const BODY_QUEUE: usize = 4;

#[derive(Debug, Clone, Copy)]
pub struct ArchiveConfig {
    pub scheduler: SchedulerConfig,
    pub max_archive_bytes: u64,
}

/// Everything one download needs.
pub struct Download {
    pub origin: Origin,
    pub budget: MemoryBudget,
    /// Makes the processed entries (manifest `options`/`variants`).
    pub processor: Arc<Processor>,
    pub config: ArchiveConfig,
    pub plan: ArchivePlan,
    /// Bytes of the archive to send (inclusive), known-size mode only.
    pub range: Option<(u64, u64)>,
    /// Held while the download runs (the plan's own memory).
    pub plan_reservation: Reservation,
}

/// The exact length of a known-size archive.
pub fn known_length(plan: &ArchivePlan) -> Option<u64> {
    if !plan.is_known_size() {
        return None;
    }
    Some(writer::known_archive_len(
        plan.entries
            .iter()
            .map(|e| (e.name.len(), e.declared.length().unwrap_or(0))),
    ))
}

impl Download {
    /// Start producing; the returned body streams the archive.
    pub fn into_body(self) -> Body {
        let (tx, rx) = mpsc::channel::<Result<Bytes>>(BODY_QUEUE);
        tokio::spawn(async move {
            // Dropped unfinished (the client left) counts as client_gone.
            let archive = metrics::zip::Archive::start();
            let outcome = tokio::select! {
                r = self.produce(&tx) => r,
                // The client went away: dropping `produce` drops the
                // scheduler, which aborts every origin fetch.
                _ = tx.closed() => return,
            };
            match outcome {
                Ok(()) => archive.finish(),
                Err(e) => {
                    archive.fail(e.kind.as_str());
                    if e.kind != ErrorKind::ClientGone {
                        let _ = tx.send(Err(e)).await;
                    }
                }
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item.map(Frame::data), rx))
        });
        StreamBody::new(stream).boxed_unsync()
    }

    async fn produce(self, tx: &mpsc::Sender<Result<Bytes>>) -> Result<()> {
        let Download {
            origin,
            budget,
            processor,
            config,
            plan,
            range,
            plan_reservation,
        } = self;
        let mut sink = Sink {
            tx,
            position: 0,
            range,
            max: config.max_archive_bytes,
        };
        let result = if plan.is_known_size() {
            known_size(origin, budget, processor, config, &plan, &mut sink).await
        } else {
            streaming(origin, budget, processor, config, &plan, &mut sink).await
        };
        drop(plan_reservation);
        result
    }
}

/// Where archive bytes go: the client's body, cut to a range if asked.
struct Sink<'a> {
    tx: &'a mpsc::Sender<Result<Bytes>>,
    position: u64,
    range: Option<(u64, u64)>,
    max: u64,
}

impl Sink<'_> {
    async fn emit(&mut self, bytes: Bytes) -> Result<()> {
        let start = self.position;
        let len = bytes.len() as u64;
        self.position += len;
        if self.position > self.max {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "archive passed {} bytes (--zip-max-archive-bytes)",
                    self.max
                ),
            ));
        }
        let out = match self.range {
            None => bytes,
            Some((first, last)) => {
                let from = first.max(start);
                let to = (last + 1).min(start + len);
                if from >= to {
                    return Ok(());
                }
                bytes.slice((from - start) as usize..(to - start) as usize)
            }
        };
        if out.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Ok(out))
            .await
            .map_err(|_| Error::new(ErrorKind::ClientGone, "client went away"))
    }

    /// Account for `n` bytes that lie outside the range.
    fn skip(&mut self, n: u64) {
        self.position += n;
    }

    fn past_range(&self) -> bool {
        self.range.is_some_and(|(_, last)| self.position > last)
    }
}

fn entry_error(entry: &PlannedEntry, e: &Error) -> Error {
    Error::new(e.kind, format!("{}: {}", entry.name, e.reason))
}

// ------------------------------------------------------------ streaming

async fn streaming(
    origin: Origin,
    budget: MemoryBudget,
    processor: Arc<Processor>,
    config: ArchiveConfig,
    plan: &ArchivePlan,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let jobs = FetchJob::for_entries(&plan.entries);
    let mut scheduler = EntryScheduler::new(
        origin,
        budget,
        processor,
        config.scheduler,
        jobs,
        Arc::new(plan.pass_headers.clone()),
    );
    let mut writer = ZipWriter::new();
    let mut skipped: Vec<(usize, String)> = Vec::new();

    for (i, entry) in plan.entries.iter().enumerate() {
        let opened = match scheduler.next().await {
            Some(r) => r,
            None => return Err(Error::internal("scheduler ran out of entries")),
        };
        match write_streamed(&mut writer, sink, entry, opened).await? {
            Written::Done => {}
            Written::Skipped(e) => {
                if plan.on_error == OnError::Abort {
                    return Err(entry_error(entry, &e));
                }
                tracing::info!(entry = %entry.name, error = %e, "zip entry skipped");
                metrics::zip::entry_failed(e.kind.as_str());
                skipped.push((i, e.reason.into_owned()));
            }
        }
    }
    drop(scheduler);

    if !skipped.is_empty() {
        let mut report = format!(
            "sluice could not add {} of {} entries to this archive:\n\n",
            skipped.len(),
            plan.entries.len()
        );
        for (i, reason) in &skipped {
            let e = &plan.entries[*i];
            report.push_str(&format!(
                "{}\t{}\t{}\n",
                e.name,
                e.source.describe(),
                reason
            ));
        }
        let name = unused_name(plan, ERRORS_ENTRY);
        let spec = EntrySpec {
            name,
            method: Method::Deflate,
            modified: DosDateTime::from_system_time(SystemTime::now()),
            sizes: Sizes::Length(report.len() as u64),
        };
        let (header, mut entry) = writer.begin_entry(spec)?;
        sink.emit(header).await?;
        sink.emit(entry.write(Bytes::from(report))?).await?;
        sink.emit(writer.finish_entry(entry)?).await?;
    }
    for chunk in writer.finish() {
        sink.emit(chunk).await?;
    }
    Ok(())
}

/// The error report's name, numbered if an entry already uses it.
fn unused_name(plan: &ArchivePlan, wanted: &str) -> String {
    let taken = |n: &str| plan.entries.iter().any(|e| e.name.eq_ignore_ascii_case(n));
    if !taken(wanted) {
        return wanted.to_string();
    }
    let (stem, ext) = wanted.rsplit_once('.').unwrap_or((wanted, ""));
    (1..)
        .map(|n| format!("{stem} ({n}).{ext}"))
        .find(|n| !taken(n))
        .unwrap_or_else(|| wanted.to_string())
}

enum Written {
    Done,
    /// Failed before its first byte: nothing of it was written.
    Skipped(Error),
}

async fn write_streamed(
    writer: &mut ZipWriter,
    sink: &mut Sink<'_>,
    entry: &PlannedEntry,
    opened: Result<OpenedEntry>,
) -> Result<Written> {
    let mut opened = match opened {
        Ok(o) => o,
        Err(e) => return Ok(Written::Skipped(e)),
    };
    if let (Some(declared), Some(actual)) = (entry.declared.length(), opened.meta.length) {
        if declared != actual {
            return Ok(Written::Skipped(Error::body_broken(format!(
                "origin has {actual} bytes, the manifest declared {declared}"
            ))));
        }
    }
    // The local header is written only once the first byte (or the end)
    // arrived, so an entry that fails before it can still be left out.
    let first = match opened.chunks.recv().await {
        Some(Err(e)) => return Ok(Written::Skipped(e)),
        Some(Ok(chunk)) => Some(chunk),
        None => None,
    };
    let sizes = match entry.declared {
        Sizes::Unknown => opened.meta.length.map_or(Sizes::Unknown, Sizes::Length),
        declared => declared,
    };
    let modified = entry
        .modified
        .or_else(|| opened.meta.last_modified.map(DosDateTime::from_system_time))
        .unwrap_or_else(|| DosDateTime::from_system_time(SystemTime::now()));
    let spec = EntrySpec {
        name: entry.name.clone(),
        method: entry.method.resolve(opened.meta.content_type.as_deref()),
        modified,
        sizes,
    };
    let (header, mut out) = writer.begin_entry(spec)?;
    sink.emit(header).await?;
    let mut uncompressed = 0u64;
    if let Some(chunk) = first {
        uncompressed += chunk.len() as u64;
        let bytes = out.write(chunk).map_err(|e| entry_error(entry, &e))?;
        sink.emit(bytes).await?;
        while let Some(chunk) = opened.chunks.recv().await {
            let chunk = chunk.map_err(|e| entry_error(entry, &e))?;
            uncompressed += chunk.len() as u64;
            let bytes = out.write(chunk).map_err(|e| entry_error(entry, &e))?;
            if !bytes.is_empty() {
                sink.emit(bytes).await?;
            }
        }
    }
    drop(opened);
    let tail = writer
        .finish_entry(out)
        .map_err(|e| entry_error(entry, &e))?;
    sink.emit(tail).await?;
    metrics::zip::entry_written(uncompressed);
    Ok(Written::Done)
}

// ----------------------------------------------------------- known size

async fn known_size(
    origin: Origin,
    budget: MemoryBudget,
    processor: Arc<Processor>,
    config: ArchiveConfig,
    plan: &ArchivePlan,
    sink: &mut Sink<'_>,
) -> Result<()> {
    // Where each entry's data lies in the archive, and which part of it the
    // range needs (entry-relative, inclusive).
    let mut offset = 0u64;
    let mut needed: Vec<Option<(u64, u64)>> = Vec::with_capacity(plan.entries.len());
    let mut jobs = Vec::new();
    for e in &plan.entries {
        let size = e.declared.length().unwrap_or(0);
        let data = offset + writer::local_header_len(e.name.len(), size >= u64::from(u32::MAX));
        offset = data + size;
        let part = match sink.range {
            _ if size == 0 => None,
            None => Some((0, size - 1)),
            Some((first, last)) => {
                let from = first.max(data);
                let to = last.min(data + size - 1);
                (from <= to).then(|| (from - data, to - data))
            }
        };
        if let Some((a, b)) = part {
            let whole = a == 0 && b == size - 1;
            // Processed entries have no declared size, so never get here.
            jobs.push(FetchJob::Origin {
                path_and_query: e.source.describe().to_string(),
                range: (!whole).then_some((a, b)),
            });
        }
        needed.push(part);
    }
    let mut scheduler = EntryScheduler::new(
        origin,
        budget,
        processor,
        config.scheduler,
        jobs,
        Arc::new(plan.pass_headers.clone()),
    );
    let mut writer = ZipWriter::new();

    for (entry, part) in plan.entries.iter().zip(needed) {
        let size = entry.declared.length().unwrap_or(0);
        let spec = EntrySpec {
            name: entry.name.clone(),
            method: Method::Store,
            // The length and every byte must not depend on the origin's
            // answers (ranges of the same archive must fit together), so
            // times come from the manifest only.
            modified: entry
                .modified
                .or(plan.modified)
                .unwrap_or(DosDateTime::EPOCH),
            sizes: entry.declared,
        };
        let (header, mut out) = writer.begin_entry(spec)?;
        sink.emit(header).await?;
        match part {
            None => {
                out.assume_declared()?;
                sink.skip(size);
            }
            Some((a, b)) => {
                let mut opened = match scheduler.next().await {
                    Some(Ok(o)) => o,
                    Some(Err(e)) => return Err(entry_error(entry, &e)),
                    None => return Err(Error::internal("scheduler ran out of entries")),
                };
                let whole = a == 0 && b == size - 1;
                if whole {
                    while let Some(chunk) = opened.chunks.recv().await {
                        let chunk = chunk.map_err(|e| entry_error(entry, &e))?;
                        let bytes = out.write(chunk).map_err(|e| entry_error(entry, &e))?;
                        sink.emit(bytes).await?;
                    }
                } else {
                    // Part of an entry: sent raw; its length is checked, its
                    // CRC cannot be.
                    sink.skip(a);
                    let mut got = 0u64;
                    while let Some(chunk) = opened.chunks.recv().await {
                        let chunk = chunk.map_err(|e| entry_error(entry, &e))?;
                        got += chunk.len() as u64;
                        sink.emit(chunk).await?;
                    }
                    if got != b - a + 1 {
                        return Err(entry_error(
                            entry,
                            &Error::body_broken(format!(
                                "origin sent {got} bytes of range {a}-{b}"
                            )),
                        ));
                    }
                    sink.skip(size - 1 - b);
                    out.assume_declared()?;
                }
            }
        }
        sink.emit(
            writer
                .finish_entry(out)
                .map_err(|e| entry_error(entry, &e))?,
        )
        .await?;
        if let Some((a, b)) = part {
            metrics::zip::entry_written(b - a + 1);
        }
        if sink.past_range() {
            return Ok(());
        }
    }
    drop(scheduler);
    for chunk in writer.finish() {
        sink.emit(chunk).await?;
    }
    Ok(())
}
