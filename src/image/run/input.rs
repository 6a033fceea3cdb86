//! Reading a source from the origin into the one whole buffer this feature
//! holds, bounded by `--max-src-bytes` and counted in the memory budget.
//! The header is probed as soon as it has arrived, so an oversized image
//! (pixels) is refused before the rest is read.
//!
//! Admission takes budget so that jobs cannot stall each other
//! (hold-and-wait: 32 jobs that each held their input and waited for the
//! rest of their need once starved a 128 MiB budget until all timed out):
//!
//! 1. The header is read into a *probe window*, taken from a budget carved
//!    out for windows ([`InputBudget`]): one window per worker-pool slot,
//!    so a window is always free for a request that holds a slot, and
//!    taking one never competes with the reservations that follow.
//! 2. From the header, the job's whole need (its peak, [`crate::image::plan::estimate`],
//!    plus the rest of a Content-Length input) is reserved from the main
//!    budget in **one** acquisition, which may wait: the job holds no main
//!    budget yet.
//! 3. Anything a job must add while it holds main budget (a header that
//!    does not fit the window, a body without a Content-Length) grows
//!    without waiting ([`Growing`]): 503 when the budget has no room.

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;

use crate::body::Body;
use crate::budget::{budget_full, Growing, MemoryBudget, Reservation};
use crate::error::{Error, ErrorKind, Result};
use crate::image::codec::metadata::source_orientation;
use crate::image::codec::probe::probe;
use crate::image::codec::{Probe, SourceFormat};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_src_pixels: u64,
    pub max_src_bytes: u64,
}

/// A complete source with everything it holds reserved.
pub struct Input {
    pub data: Vec<u8>,
    pub probe: Probe,
    /// The main budget's reservations: the job's and the compressed
    /// bytes' beyond the window. They may be merged and split.
    pub held: Vec<Reservation>,
    /// The probe window's reservation, in its own (carved) budget.
    pub window: Reservation,
}

/// Largest probe window per slot: JPEG headers (EXIF is at most 64 KiB,
/// plus ICC, XMP and tables) fit in it.
pub const MAX_PROBE_WINDOW: u64 = 128 * 1024;
/// Smaller windows are not worth carving.
const MIN_PROBE_WINDOW: u64 = 16 * 1024;

/// Growth steps for bytes beyond what is reserved up front.
const STEP: u64 = 256 * 1024;

/// Where an input's bytes are counted.
#[derive(Clone)]
pub struct InputBudget {
    pub main: MemoryBudget,
    /// The carved budget of probe windows and the size of one.
    windows: Option<(MemoryBudget, u64)>,
}

impl InputBudget {
    /// Carve one probe window per slot out of `main`: [`MAX_PROBE_WINDOW`],
    /// or less so that all windows take at most an eighth of the budget;
    /// none when that leaves less than 16 KiB a window (then every
    /// reservation but a job's first is made without waiting).
    pub fn new(main: &MemoryBudget, slots: usize) -> Result<Self> {
        let slots = slots.max(1) as u64;
        let window = (main.capacity_bytes() / 8 / slots).min(MAX_PROBE_WINDOW) & !4095;
        let windows = if window >= MIN_PROBE_WINDOW {
            Some((main.carve(window * slots)?, window))
        } else {
            None
        };
        Ok(InputBudget {
            main: main.clone(),
            windows,
        })
    }

    /// The probe window of one slot, in bytes (0: none).
    pub fn window(&self) -> u64 {
        self.windows.as_ref().map_or(0, |(_, w)| *w)
    }
}

fn too_large(limits: &Limits) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!(
            "source is larger than {} bytes (--max-src-bytes)",
            limits.max_src_bytes
        ),
    )
}

/// Refuse a header over the pixel limit (422).
pub fn check_pixels(p: &Probe, limits: &Limits) -> Result<()> {
    if p.pixels() > limits.max_src_pixels {
        return Err(Error::new(
            ErrorKind::Unprocessable,
            format!(
                "source is {}x{} = {} pixels, more than {} (--max-src-pixels)",
                p.width,
                p.height,
                p.pixels(),
                limits.max_src_pixels
            ),
        ));
    }
    Ok(())
}

/// The compressed bytes as they arrive, with what they are counted in.
struct Buffer {
    data: Vec<u8>,
    /// Bytes counted for `data` up front (window, then Content-Length).
    counted: u64,
    /// Bytes counted beyond them, grown without waiting.
    extra: Growing,
    max: u64,
}

impl Buffer {
    fn push(&mut self, mut chunk: Bytes, limits: &Limits) -> Result<()> {
        let total = self.data.len() as u64 + chunk.remaining() as u64;
        if total > self.max {
            return Err(too_large(limits));
        }
        if total > self.counted + self.extra.bytes() {
            let beyond = total - self.counted;
            self.extra.grow_to(beyond, STEP.max(beyond / 4))?;
        }
        let room = (self.counted + self.extra.bytes()) as usize;
        if room > self.data.capacity() {
            // Capacity never exceeds what is counted.
            self.data.reserve_exact(room - self.data.len());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            self.data.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
        Ok(())
    }
}

async fn next_chunk(body: &mut Body) -> Result<Option<Bytes>> {
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// Read `body`. `job_bytes` turns the probed header into the bytes the job
/// will need (it may refuse the source).
pub async fn read(
    mut body: Body,
    content_length: Option<u64>,
    limits: &Limits,
    budget: &InputBudget,
    job_bytes: impl FnOnce(&Probe) -> Result<u64>,
) -> Result<Input> {
    if content_length.is_some_and(|n| n > limits.max_src_bytes) {
        return Err(too_large(limits));
    }
    let mut held = Vec::new();
    // 1. The header, into the probe window.
    let window = budget.window().min(content_length.unwrap_or(u64::MAX));
    let window_held = match (&budget.windows, window > 0) {
        (Some((windows, _)), true) => windows.reserve(window).await?,
        _ => Reservation::empty(),
    };
    let mut buf = Buffer {
        data: Vec::with_capacity(usize::try_from(window).unwrap_or(0)),
        counted: window,
        extra: Growing::new(&budget.main, Reservation::empty()),
        max: limits.max_src_bytes,
    };
    let mut probed = None;
    let mut ended = false;
    while probed.is_none() {
        let Some(chunk) = next_chunk(&mut body).await? else {
            ended = true;
            break;
        };
        buf.push(chunk, limits)?;
        probed = probe(&buf.data, false)?;
    }
    let probed = match probed {
        Some(p) => p,
        None => probe(&buf.data, true)?
            .ok_or_else(|| Error::new(ErrorKind::Unprocessable, "image header is truncated"))?,
    };
    check_pixels(&probed, limits)?;

    // 2. The job's whole need at once.
    let input_rest =
        content_length.map_or(0, |n| n.saturating_sub(buf.counted + buf.extra.bytes()));
    let need = job_bytes(&probed)? + input_rest;
    // Bytes beyond the window were taken from the main budget already.
    let holds_main = buf.extra.bytes() > 0;
    let whole = if holds_main {
        budget.main.try_reserve(need)?.ok_or_else(budget_full)?
    } else {
        budget.main.reserve(need).await?
    };
    held.push(whole);
    buf.counted += input_rest;

    // 3. The rest of the body.
    if !ended {
        while let Some(chunk) = next_chunk(&mut body).await? {
            buf.push(chunk, limits)?;
        }
    }
    let data = std::mem::take(&mut buf.data);
    held.push(buf.extra.into_reservation());
    if content_length.is_some_and(|n| n != data.len() as u64) {
        return Err(Error::body_broken(
            "source body is not as long as its Content-Length",
        ));
    }
    let mut probe = probed;
    if probe.format != SourceFormat::Jpeg {
        // The early probe saw only the first bytes; a WebP's EXIF comes last.
        probe.orientation = source_orientation(&data, probe.format);
    }
    Ok(Input {
        data,
        probe,
        held,
        window: window_held,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::StreamBody;

    fn chunked(parts: Vec<Vec<u8>>) -> Body {
        let stream = futures_util::stream::iter(
            parts
                .into_iter()
                .map(|p| Ok::<_, Error>(Frame::data(Bytes::from(p)))),
        );
        BodyExt::boxed_unsync(StreamBody::new(stream))
    }

    fn header(w: u16, h: u16) -> Vec<u8> {
        let mut d = vec![0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8];
        d.extend_from_slice(&h.to_be_bytes());
        d.extend_from_slice(&w.to_be_bytes());
        d.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        // SOS of all three components (the probe reads up to here).
        d.extend_from_slice(&[0xFF, 0xDA, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0]);
        d
    }

    const LIMITS: Limits = Limits {
        max_src_pixels: 50_000_000,
        max_src_bytes: 1 << 20,
    };

    #[tokio::test]
    async fn a_huge_header_is_refused_before_the_rest_is_read() {
        let budget = MemoryBudget::new(64 << 20);
        let inputs = InputBudget::new(&budget, 4).unwrap();
        let base = budget.in_use_bytes();
        // The body after the header never ends: only the header is read.
        let head = futures_util::stream::iter([Ok::<_, Error>(Frame::data(Bytes::from(header(
            65500, 65500,
        ))))]);
        let never = futures_util::stream::pending();
        use futures_util::StreamExt;
        let body = BodyExt::boxed_unsync(StreamBody::new(head.chain(never)));
        let err = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            read(body, None, &LIMITS, &inputs, |_| Ok(0)),
        )
        .await
        .expect("answered without waiting for the body")
        .err()
        .unwrap();
        assert_eq!(err.kind, ErrorKind::Unprocessable);
        assert!(err.reason.contains("65500x65500"), "{}", err.reason);
        assert_eq!(budget.in_use_bytes(), base);
    }

    #[tokio::test]
    async fn byte_limit_by_length_or_by_counting() {
        let budget = MemoryBudget::new(64 << 20);
        let inputs = InputBudget::new(&budget, 4).unwrap();
        let base = budget.in_use_bytes();
        let err = read(chunked(vec![]), Some(2 << 20), &LIMITS, &inputs, |_| Ok(0))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind, ErrorKind::TooLarge);
        let mut big = header(10, 10);
        big.resize(600 * 1024, 0);
        let err = read(
            chunked(vec![big.clone(), big]),
            None,
            &LIMITS,
            &inputs,
            |_| Ok(0),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(err.kind, ErrorKind::TooLarge);
        assert_eq!(budget.in_use_bytes(), base);
    }

    #[tokio::test]
    async fn input_and_job_bytes_are_held_until_dropped() {
        let budget = MemoryBudget::new(64 << 20);
        let inputs = InputBudget::new(&budget, 4).unwrap();
        let base = budget.in_use_bytes();
        let mut data = header(100, 100);
        data.resize(300 * 1024, 0);
        let parts: Vec<Vec<u8>> = data.chunks(1000).map(<[u8]>::to_vec).collect();
        let input = read(chunked(parts), None, &LIMITS, &inputs, |p| {
            assert_eq!(p.width, 100);
            Ok(5 << 20)
        })
        .await
        .unwrap();
        assert_eq!(input.data.len(), 300 * 1024);
        let held: u64 = input.held.iter().map(Reservation::bytes).sum();
        assert!(held + input.window.bytes() >= input.data.capacity() as u64 + (5 << 20));
        // The window is counted in the carved budget (in `base`), the rest
        // in the main one.
        assert!(budget.in_use_bytes() - base >= held);
        drop(input);
        assert_eq!(budget.in_use_bytes(), base);
    }

    #[tokio::test]
    async fn jobs_wait_for_their_whole_need_holding_only_a_window() {
        // Room for one job at a time: the second waits for the first to
        // end while holding nothing of the main budget (no hold-and-wait).
        let budget = MemoryBudget::new(16 << 20);
        let inputs = InputBudget::new(&budget, 2).unwrap();
        let base = budget.in_use_bytes();
        assert_eq!(inputs.window(), 128 * 1024);
        let source = || {
            let mut d = header(100, 100);
            d.resize(100 * 1024, 0);
            chunked(d.chunks(4096).map(<[u8]>::to_vec).collect())
        };
        let job = 10 << 20;
        let first = read(source(), Some(100 * 1024), &LIMITS, &inputs, |_| Ok(job))
            .await
            .unwrap();
        let second = read(source(), Some(100 * 1024), &LIMITS, &inputs, |_| Ok(job));
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), &mut second)
                .await
                .is_err()
        );
        drop(first);
        let second = second.await.unwrap();
        assert_eq!(second.data.len(), 100 * 1024);
        drop(second);
        assert_eq!(budget.in_use_bytes(), base);
    }

    #[tokio::test]
    async fn empty_and_truncated_sources_are_422() {
        let budget = MemoryBudget::new(64 << 20);
        let inputs = InputBudget::new(&budget, 4).unwrap();
        let err = read(chunked(vec![]), Some(0), &LIMITS, &inputs, |_| Ok(0))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind, ErrorKind::Unprocessable);
        let err = read(
            chunked(vec![vec![0xFF, 0xD8, 0xFF]]),
            None,
            &LIMITS,
            &inputs,
            |_| Ok(0),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(err.kind, ErrorKind::Unprocessable);
    }
}
