//! Reading a source from the origin into the one whole buffer this feature
//! holds, bounded by `--max-src-bytes` and counted in the memory budget as
//! it grows. The header is probed as soon as it has arrived, so an
//! oversized image (pixels) is refused before the rest is read, and the
//! job's own memory is reserved from the header before anything decodes.

use bytes::Buf;
use http_body_util::BodyExt;

use super::probe::{probe, source_orientation, Probe, SourceFormat};
use crate::body::Body;
use crate::budget::{MemoryBudget, Reservation};
use crate::error::{Error, Kind, Result};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_src_pixels: u64,
    pub max_src_bytes: u64,
}

/// A complete source with everything it holds reserved.
pub struct Input {
    pub data: Vec<u8>,
    pub probe: Probe,
    /// The compressed bytes' reservations plus the job's.
    pub held: Vec<Reservation>,
}

/// Reservation steps for a body of unknown length.
const STEP: usize = 256 * 1024;

fn too_large(limits: &Limits) -> Error {
    Error::new(
        Kind::PayloadTooLarge,
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
            Kind::Unprocessable,
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

/// Read `body`. `job_bytes` turns the probed header into the bytes the job
/// will need (it may refuse the source).
pub async fn read(
    mut body: Body,
    content_length: Option<u64>,
    limits: &Limits,
    budget: &MemoryBudget,
    job_bytes: impl FnOnce(&Probe) -> Result<u64>,
) -> Result<Input> {
    if content_length.is_some_and(|n| n > limits.max_src_bytes) {
        return Err(too_large(limits));
    }
    let max = usize::try_from(limits.max_src_bytes).unwrap_or(usize::MAX);
    let mut held = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    if let Some(n) = content_length {
        // Known length: reserve and allocate it once.
        let n = usize::try_from(n).map_err(|_| too_large(limits))?;
        held.push(budget.reserve(n as u64).await?);
        data.reserve_exact(n);
    }
    let mut probed: Option<Probe> = None;
    let mut job_bytes = Some(job_bytes);
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Ok(mut chunk) = frame.into_data() else {
            continue; // trailers
        };
        if data.len() + chunk.remaining() > max {
            return Err(too_large(limits));
        }
        if data.len() + chunk.remaining() > data.capacity() {
            // Grow by a counted step; capacity never exceeds what is reserved.
            let want = (data.len() + chunk.remaining())
                .max(data.capacity() + STEP.max(data.capacity() / 4));
            let want = want.min(max);
            let extra = want - data.capacity();
            held.push(budget.reserve(extra as u64).await?);
            data.reserve_exact(want - data.len());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            data.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
        if probed.is_none() {
            if let Some(p) = probe(&data, false)? {
                check_pixels(&p, limits)?;
                if let Some(f) = job_bytes.take() {
                    held.push(budget.reserve(f(&p)?).await?);
                }
                probed = Some(p);
            }
        }
    }
    let probe = match probed {
        Some(p) => p,
        None => {
            let p = probe(&data, true)?
                .ok_or_else(|| Error::new(Kind::Unprocessable, "image header is truncated"))?;
            check_pixels(&p, limits)?;
            if let Some(f) = job_bytes.take() {
                held.push(budget.reserve(f(&p)?).await?);
            }
            p
        }
    };
    if content_length.is_some_and(|n| n != data.len() as u64) {
        return Err(Error::upstream_broken(
            "source body is shorter than its Content-Length",
        ));
    }
    let mut probe = probe;
    if probe.format != SourceFormat::Jpeg {
        // The early probe saw only the first bytes; a WebP's EXIF comes last.
        probe.orientation = source_orientation(&data, probe.format);
    }
    Ok(Input { data, probe, held })
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
        // The body after the header never ends: only the header is read.
        let head = futures_util::stream::iter([Ok::<_, Error>(Frame::data(Bytes::from(header(
            65500, 65500,
        ))))]);
        let never = futures_util::stream::pending();
        use futures_util::StreamExt;
        let body = BodyExt::boxed_unsync(StreamBody::new(head.chain(never)));
        let err = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            read(body, None, &LIMITS, &budget, |_| Ok(0)),
        )
        .await
        .expect("answered without waiting for the body")
        .err()
        .unwrap();
        assert_eq!(err.status(), 422);
        assert!(err.reason.contains("65500x65500"), "{}", err.reason);
        assert_eq!(budget.in_use_bytes(), 0);
    }

    #[tokio::test]
    async fn byte_limit_by_length_or_by_counting() {
        let budget = MemoryBudget::new(64 << 20);
        let err = read(chunked(vec![]), Some(2 << 20), &LIMITS, &budget, |_| Ok(0))
            .await
            .err()
            .unwrap();
        assert_eq!(err.status(), 413);
        let mut big = header(10, 10);
        big.resize(600 * 1024, 0);
        let err = read(
            chunked(vec![big.clone(), big]),
            None,
            &LIMITS,
            &budget,
            |_| Ok(0),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(err.status(), 413);
        assert_eq!(budget.in_use_bytes(), 0);
    }

    #[tokio::test]
    async fn input_and_job_bytes_are_held_until_dropped() {
        let budget = MemoryBudget::new(64 << 20);
        let mut data = header(100, 100);
        data.resize(300 * 1024, 0);
        let parts: Vec<Vec<u8>> = data.chunks(1000).map(<[u8]>::to_vec).collect();
        let input = read(chunked(parts), None, &LIMITS, &budget, |p| {
            assert_eq!(p.width, 100);
            Ok(5 << 20)
        })
        .await
        .unwrap();
        assert_eq!(input.data.len(), 300 * 1024);
        let held: u64 = input.held.iter().map(Reservation::bytes).sum();
        assert!(held >= input.data.capacity() as u64 + (5 << 20));
        assert!(budget.in_use_bytes() >= held);
        drop(input);
        assert_eq!(budget.in_use_bytes(), 0);
    }

    #[tokio::test]
    async fn empty_and_truncated_sources_are_422() {
        let budget = MemoryBudget::new(64 << 20);
        let err = read(chunked(vec![]), Some(0), &LIMITS, &budget, |_| Ok(0))
            .await
            .err()
            .unwrap();
        assert_eq!(err.status(), 422);
        let err = read(
            chunked(vec![vec![0xFF, 0xD8, 0xFF]]),
            None,
            &LIMITS,
            &budget,
            |_| Ok(0),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(err.status(), 422);
    }
}
