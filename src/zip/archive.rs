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
//! - known size: every entry stored with its size declared, so the length
//!   is known (Content-Length: browsers show progress). With every CRC
//!   declared too, a byte range of the archive (or several, as
//!   `multipart/byteranges`) can be produced, fetching only the entries (or
//!   parts of entries) inside it; entries without a CRC are followed by a
//!   data descriptor, and such an archive is only sent whole, as mod_zip
//!   does. Any entry failure aborts, since the length was promised; a
//!   failure of the first entry fetched comes before the response head,
//!   so the client gets a 5xx instead of a cut transfer.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::{mpsc, oneshot};

use super::manifest::{ArchivePlan, EntrySource, OnError, PlannedEntry};
use super::scheduler::{EntryScheduler, FetchJob, OpenedEntry, SchedulerConfig};
use super::writer::{
    self, DosDateTime, EntryLayout, EntrySpec, LegacyName, Method, Sizes, ZipWriter,
};
use crate::body::{Body, CHUNK_SIZE};
use crate::budget::{MemoryBudget, Reservation};
use crate::error::{Error, ErrorKind, Result};
use crate::image::run::Processor;
use crate::metrics;
use crate::origin::Origin;

/// Name of the entry that lists skipped entries.
pub const ERRORS_ENTRY: &str = "sluice-errors.txt";

/// Chunks queued between the producer and the client socket.
const BODY_QUEUE: usize = 4;

/// Skipped entries whose reasons the error report lists one by one; beyond
/// them it counts (so that its memory is bounded, [`download_bytes`]).
const REPORTED_SKIPS: usize = 1000;

/// Bytes one reported skip holds at most (its index and reason).
const REPORTED_SKIP_BYTES: usize = 320;

/// What a download holds besides its plan: entry buffers and
/// [`download_bytes`]. It is reserved with the manifest, before the plan is
/// made (the zip service), so that no download waits while holding.
pub fn working_set_bytes(plan: &ArchivePlan, scheduler: SchedulerConfig) -> u64 {
    entry_buffers_bytes(scheduler) + download_bytes(plan)
}

/// The most a download's working set takes whatever its entries: what a
/// small manifest reserves up front.
pub fn working_set_floor(scheduler: SchedulerConfig) -> u64 {
    entry_buffers_bytes(scheduler)
        + ((BODY_QUEUE + 1) * CHUNK_SIZE) as u64
        + crate::encoding::Coding::Deflate.encoder_bytes()
        + (REPORTED_SKIPS * REPORTED_SKIP_BYTES) as u64
}

/// What a download's entry buffers take: `prefetch` entries at once.
pub fn entry_buffers_bytes(scheduler: SchedulerConfig) -> u64 {
    scheduler.reserved_per_entry() * scheduler.prefetch.max(1) as u64
}

/// What one download holds beyond its plan and its entry buffers: the
/// chunks queued towards the client and the one the producer holds (each
/// at most a [`CHUNK_SIZE`] read); the central directory it builds; the
/// reasons of skipped entries; and one deflate stream's state when an
/// entry may be deflated (entries are written one at a time).
pub fn download_bytes(plan: &ArchivePlan) -> u64 {
    let queue = ((BODY_QUEUE + 1) * CHUNK_SIZE) as u64;
    let names: usize = plan
        .entries
        .iter()
        .map(|e| e.name.len() + e.legacy_name.as_ref().map_or(0, |l| l.bytes.len()))
        .sum();
    let central = writer::central_directory_bytes(plan.entries.len(), names);
    let skips = (plan.entries.len().min(REPORTED_SKIPS) * REPORTED_SKIP_BYTES) as u64;
    let deflate = if plan.entries.iter().any(|e| e.method.may_deflate()) {
        crate::encoding::Coding::Deflate.encoder_bytes()
    } else {
        0
    };
    queue + central + skips + deflate
}

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
    /// What part of the archive the response carries.
    pub shape: Shape,
    /// Held while the download runs: the plan and the download's working
    /// set ([`working_set_bytes`]).
    pub plan_reservation: Reservation,
}

/// What part of the archive a response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Whole,
    /// Bytes `first..=last` (known-size mode with every CRC only).
    Range(u64, u64),
    /// Several ranges as `multipart/byteranges`, each part headed by its
    /// own `Content-Range` (see [`multipart_head`]).
    Multipart {
        ranges: Vec<(u64, u64)>,
        boundary: String,
        archive_len: u64,
    },
}

/// The head of one part of a `multipart/byteranges` body (RFC 9110 §14.6),
/// laid out as nginx lays it out: each part starts on a new line.
pub fn multipart_head(boundary: &str, (first, last): (u64, u64), archive_len: u64) -> String {
    format!(
        "\r\n--{boundary}\r\nContent-Type: application/zip\r\nContent-Range: bytes {first}-{last}/{archive_len}\r\n\r\n"
    )
}

/// The end of a `multipart/byteranges` body.
pub fn multipart_tail(boundary: &str) -> String {
    format!("\r\n--{boundary}--\r\n")
}

/// How each entry's records are laid out in a known-size archive.
fn layout(e: &PlannedEntry) -> EntryLayout {
    let legacy = e.legacy_name.as_deref();
    EntryLayout {
        name_len: LegacyName::header_name(legacy, &e.name).len(),
        unicode_path_len: LegacyName::unicode_path(legacy, &e.name).map(str::len),
        size: e.declared.length().unwrap_or(0),
        crc_known: matches!(e.declared, Sizes::Known { .. }),
    }
}

/// The exact length of a known-size archive.
pub fn known_length(plan: &ArchivePlan) -> Option<u64> {
    if !plan.is_known_size() {
        return None;
    }
    Some(writer::known_archive_len(plan.entries.iter().map(layout)))
}

/// Tells the response whether the archive got going: `Ok` once its first
/// byte can be sent, the error if it failed before that.
type Started = Option<oneshot::Sender<Result<()>>>;

impl Download {
    /// Start producing, and answer once the archive got going: the body
    /// streams it, or the error that stopped it before its first byte
    /// becomes the response (a known-size archive whose first entry the
    /// origin refuses gets a 5xx, not a 200 cut short).
    pub async fn start(mut self) -> Result<Body> {
        // The entry buffers are a budget of their own, carved out of what
        // the download holds (its working set, reserved with the manifest
        // in one wait): its entries wait only for its own earlier entries,
        // never for other holders, so downloads cannot deadlock each other.
        let entry_bytes = entry_buffers_bytes(self.config.scheduler);
        let entry_buffers = self
            .plan_reservation
            .split_off(entry_bytes)
            .ok_or_else(|| Error::internal("the download holds less than its entry buffers"))?;
        self.budget = MemoryBudget::from_reservation(entry_buffers);
        let (tx, rx) = mpsc::channel::<Result<Bytes>>(BODY_QUEUE);
        let (started_tx, started_rx) = oneshot::channel();
        tokio::spawn(async move {
            // Dropped unfinished (the client left) counts as client_gone.
            let archive = metrics::zip::Archive::start();
            let mut started: Started = Some(started_tx);
            let outcome = tokio::select! {
                r = self.produce(&tx, &mut started) => r,
                // The client went away: dropping `produce` drops the
                // scheduler, which aborts every origin fetch.
                _ = tx.closed() => return,
            };
            match outcome {
                Ok(()) => {
                    archive.finish();
                    signal(&mut started, Ok(()));
                }
                Err(e) => {
                    archive.fail(e.kind.as_str());
                    if let Some(before_first_byte) = started.take() {
                        let _ = before_first_byte.send(Err(e));
                    } else if e.kind != ErrorKind::ClientGone {
                        let _ = tx.send(Err(e)).await;
                    }
                }
            }
        });
        match started_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Error::internal("archive producer ended before it started")),
        }
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            let item = rx.recv().await?;
            if item.is_err() {
                // hyper drops what it has buffered (the head, the first
                // bytes) when a body fails at once; one Pending first lets
                // it flush them, so the client sees a 200 cut short (as
                // mod_zip's clients do), not a connection closed before
                // any response.
                tokio::task::yield_now().await;
            }
            Some((item.map(Frame::data), rx))
        });
        Ok(StreamBody::new(stream).boxed_unsync())
    }

    async fn produce(self, tx: &mpsc::Sender<Result<Bytes>>, started: &mut Started) -> Result<()> {
        let Download {
            origin,
            budget,
            processor,
            config,
            plan,
            shape,
            plan_reservation,
        } = self;
        let parts = Parts {
            origin,
            budget,
            processor,
            config,
        };
        let mut sink = Sink {
            tx,
            position: 0,
            range: None,
            max: config.max_archive_bytes,
            started,
        };
        let result = match shape {
            _ if !plan.is_known_size() => parts.streaming(&plan, &mut sink).await,
            Shape::Whole => known_size(&parts, &plan, &mut sink).await,
            Shape::Range(first, last) => {
                sink.range = Some((first, last));
                known_size(&parts, &plan, &mut sink).await
            }
            Shape::Multipart {
                ranges,
                boundary,
                archive_len,
            } => {
                // Each part is made on its own, fetching what it covers.
                for range in ranges {
                    sink.raw(Bytes::from(multipart_head(&boundary, range, archive_len)))
                        .await?;
                    sink.position = 0;
                    sink.range = Some(range);
                    known_size(&parts, &plan, &mut sink).await?;
                }
                sink.raw(Bytes::from(multipart_tail(&boundary))).await
            }
        };
        drop(plan_reservation);
        result
    }
}

/// What every part of a download is made with.
struct Parts {
    origin: Origin,
    budget: MemoryBudget,
    processor: Arc<Processor>,
    config: ArchiveConfig,
}

fn signal(started: &mut Started, result: Result<()>) {
    if let Some(tx) = started.take() {
        let _ = tx.send(result);
    }
}

/// Where archive bytes go: the client's body, cut to a range if asked.
struct Sink<'a> {
    tx: &'a mpsc::Sender<Result<Bytes>>,
    position: u64,
    range: Option<(u64, u64)>,
    max: u64,
    started: &'a mut Started,
}

impl Sink<'_> {
    /// The archive got going: the response head can go out.
    fn started(&mut self) {
        signal(self.started, Ok(()));
    }

    /// Bytes outside the archive (multipart heads). They do not start the
    /// response: a part's first entry is opened first, so that its refusal
    /// is still the answer (the queued head is then dropped).
    async fn raw(&mut self, bytes: Bytes) -> Result<()> {
        self.tx
            .send(Ok(bytes))
            .await
            .map_err(|_| Error::new(ErrorKind::ClientGone, "client went away"))
    }

    async fn emit(&mut self, bytes: Bytes) -> Result<()> {
        self.started();
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

impl Parts {
    fn scheduler(&self, plan: &ArchivePlan, jobs: Vec<FetchJob>) -> EntryScheduler {
        EntryScheduler::new(
            self.origin.clone(),
            self.budget.clone(),
            self.processor.clone(),
            self.config.scheduler,
            jobs,
            Arc::new(plan.pass_headers.clone()),
        )
    }

    async fn streaming(&self, plan: &ArchivePlan, sink: &mut Sink<'_>) -> Result<()> {
        streaming(
            self.scheduler(plan, FetchJob::for_entries(&plan.entries)),
            plan,
            sink,
        )
        .await
    }
}

async fn streaming(
    mut scheduler: EntryScheduler,
    plan: &ArchivePlan,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let mut writer = ZipWriter::with_capacity(plan.entries.len());
    let mut skipped: Vec<(usize, String)> = Vec::new();
    let mut unreported = 0usize;

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
                if skipped.len() < REPORTED_SKIPS {
                    let mut reason = e.reason.into_owned();
                    truncate_at_char(&mut reason, REPORTED_SKIP_BYTES / 2);
                    reason.shrink_to_fit();
                    skipped.push((i, reason));
                } else {
                    unreported += 1;
                }
            }
        }
    }
    drop(scheduler);

    if !skipped.is_empty() {
        write_report(&mut writer, sink, plan, &skipped, unreported).await?;
    }
    for chunk in writer.finish() {
        sink.emit(chunk).await?;
    }
    Ok(())
}

/// The `sluice-errors.txt` entry: one line per skipped entry (the first
/// [`REPORTED_SKIPS`]; a count of the rest). Stored, and written a chunk
/// at a time, so that it needs no deflate state and no whole copy.
async fn write_report(
    writer: &mut ZipWriter,
    sink: &mut Sink<'_>,
    plan: &ArchivePlan,
    skipped: &[(usize, String)],
    unreported: usize,
) -> Result<()> {
    let heading = format!(
        "sluice could not add {} of {} entries to this archive:\n\n",
        skipped.len() + unreported,
        plan.entries.len()
    );
    let tail = (unreported > 0).then(|| format!("... and {unreported} more\n"));
    let lines = || {
        let listed = skipped.iter().map(|(i, reason)| {
            let e = &plan.entries[*i];
            format!("{}\t{}\t{}\n", e.name, e.source.describe(), reason)
        });
        std::iter::once(heading.clone())
            .chain(listed)
            .chain(tail.clone())
    };
    let len: usize = lines().map(|l| l.len()).sum();
    let spec = EntrySpec {
        name: unused_name(plan, ERRORS_ENTRY),
        legacy_name: None,
        method: Method::Store,
        modified: DosDateTime::from_system_time(SystemTime::now()),
        sizes: Sizes::Length(len as u64),
    };
    let (header, mut entry) = writer.begin_entry(spec)?;
    sink.emit(header).await?;
    let mut text = String::with_capacity(CHUNK_SIZE);
    for line in lines() {
        text.push_str(&line);
        if text.len() >= CHUNK_SIZE / 2 {
            let chunk = Bytes::from(std::mem::replace(
                &mut text,
                String::with_capacity(CHUNK_SIZE),
            ));
            sink.emit(entry.write(chunk)?).await?;
        }
    }
    if !text.is_empty() {
        sink.emit(entry.write(Bytes::from(text))?).await?;
    }
    sink.emit(writer.finish_entry(entry)?).await
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
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
        legacy_name: entry.legacy_name.as_deref().cloned(),
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

async fn known_size(parts: &Parts, plan: &ArchivePlan, sink: &mut Sink<'_>) -> Result<()> {
    // Where each entry's data lies in the archive, and which part of it the
    // range needs (entry-relative, inclusive).
    let mut offset = 0u64;
    let mut needed: Vec<Option<(u64, u64)>> = Vec::with_capacity(plan.entries.len());
    let mut jobs = Vec::new();
    let mut first_fetched = None;
    for (i, e) in plan.entries.iter().enumerate() {
        let layout = layout(e);
        let size = layout.size;
        let data = offset + layout.local_header_len();
        offset = data + size + layout.descriptor_len();
        let part = match sink.range {
            _ if size == 0 || matches!(e.source, EntrySource::Directory) => None,
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
            first_fetched.get_or_insert(i);
        }
        needed.push(part);
    }
    let mut scheduler = parts.scheduler(plan, jobs);
    // The first entry fetched is opened before the first byte goes out, so
    // that its failure (a 404, a refused connection) is the response.
    let mut first_opened = match first_fetched {
        Some(i) => match scheduler.next().await {
            Some(Ok(o)) => Some(o),
            Some(Err(e)) => return Err(entry_error(&plan.entries[i], &e)),
            None => return Err(Error::internal("scheduler ran out of entries")),
        },
        None => None,
    };
    sink.started();
    let mut writer = ZipWriter::with_capacity(plan.entries.len());

    for (entry, part) in plan.entries.iter().zip(needed) {
        let size = entry.declared.length().unwrap_or(0);
        let spec = EntrySpec {
            name: entry.name.clone(),
            legacy_name: entry.legacy_name.as_deref().cloned(),
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
                let mut opened = match first_opened.take() {
                    Some(o) => o,
                    None => match scheduler.next().await {
                        Some(Ok(o)) => o,
                        Some(Err(e)) => return Err(entry_error(entry, &e)),
                        None => return Err(Error::internal("scheduler ran out of entries")),
                    },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::http::options::Presets;
    use crate::zip::manifest::{parse_json, ManifestLimits};

    fn plan(entries: &str) -> ArchivePlan {
        let limits = ManifestLimits {
            max_entries: 10_000,
        };
        let body = format!(r#"{{"entries": [{entries}]}}"#);
        parse_json(
            body.as_bytes(),
            limits,
            &Presets::default(),
            &mut |_| Ok(()),
        )
        .unwrap()
    }

    /// What a download holds grows with its entries (the central
    /// directory, the report), and includes a deflate state only when an
    /// entry may be deflated.
    #[test]
    fn a_downloads_own_memory_is_what_it_will_hold() {
        let photos = |n: usize| {
            (0..n)
                .map(|i| format!(r#"{{"source": "p/{i}.jpg"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        };
        let stored = download_bytes(&plan(&photos(10)));
        let queue = ((BODY_QUEUE + 1) * CHUNK_SIZE) as u64;
        assert!(stored > queue, "{stored}");
        assert!(download_bytes(&plan(&photos(1000))) > stored + 1000 * 100);
        let with_text = plan(&format!(r#"{},{{"source": "notes.txt"}}"#, photos(10)));
        let deflate = crate::encoding::Coding::Deflate.encoder_bytes();
        assert!(download_bytes(&with_text) >= stored + deflate);
        // The floor covers any manifest's fixed part.
        let config = SchedulerConfig {
            prefetch: 4,
            buffer_bytes: 128 * 1024,
            max_resumes: 1,
        };
        assert!(working_set_floor(config) >= entry_buffers_bytes(config) + queue + deflate);
    }
}
