//! Reading a bounded body into memory: a client's `POST /zip` manifest, or
//! a mod_zip manifest from the origin. The only bodies sluice holds whole,
//! so each is bounded three ways:
//!
//! - size: over `max_bytes` is 413, checked against a declared length
//!   before the first byte and against the bytes as they arrive;
//! - memory: a declared length is reserved from the budget at once (the
//!   reader holds nothing else yet, so it may wait); a body without one
//!   grows its reservation without waiting ([`Growing`]), and gets 503 when
//!   the budget has no room;
//! - time (client bodies): the whole body must arrive within `timeout`,
//!   and after `RATE_GRACE` at no less than `min_rate` bytes per second on
//!   average, else 408. An upload that stalls cannot pin its reservation
//!   for longer than that.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::budget::{taken_by, Growing, MemoryBudget, Reservation};
use crate::error::{Error, ErrorKind, Result};

/// Time before the minimum rate is enforced (a TCP slow start, a client
/// that sends its head first and its body a moment later).
pub const RATE_GRACE: Duration = Duration::from_secs(5);

/// Reservation steps for a body without a declared length.
const STEP: u64 = 64 * 1024;

/// How long a body may take, and how slowly it may arrive.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub timeout: Duration,
    /// Bytes per second, on average once [`RATE_GRACE`] has passed; 0: none.
    pub min_rate: u64,
}

/// The bounds of one body.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    pub max_bytes: u64,
    /// `None` for origin bodies, whose pauses the origin's idle timeout bounds.
    pub pace: Option<Pace>,
    /// For a declared length, bytes reserved with it in the same wait for
    /// what the caller builds from the body next (a manifest's plan): the
    /// caller then grows from there without waiting, and rarely has to.
    pub then_needs: ThenNeeds,
}

/// What the caller builds from a body of `n` bytes: `n × per_byte`, at
/// least `at_least` and at most `at_most`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThenNeeds {
    pub per_byte: u64,
    pub at_least: u64,
    pub at_most: u64,
}

impl ThenNeeds {
    pub fn of(self, n: u64) -> u64 {
        n.saturating_mul(self.per_byte)
            .max(self.at_least)
            .min(self.at_most)
    }
}

/// A body read whole, its bytes counted in `held`; `then` holds what
/// [`UploadLimits::then_needs`] asked for (empty without a declared length).
#[derive(Debug)]
pub struct Uploaded {
    pub bytes: Bytes,
    pub held: Reservation,
    pub then: Reservation,
}

/// Read `body` whole. `declared` is its Content-Length, if any; `too_large`
/// is the 413 to answer. The bytes stay counted until the reservation is
/// dropped.
pub async fn read<B>(
    mut body: B,
    declared: Option<u64>,
    limits: UploadLimits,
    budget: &MemoryBudget,
    too_large: impl Fn() -> Error,
    on_error: impl Fn(B::Error) -> Error,
) -> Result<Uploaded>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    if declared.is_some_and(|n| n > limits.max_bytes) {
        return Err(too_large());
    }
    let (initial, then) = match declared {
        Some(n) => {
            // At most a quarter of the budget: the allowance only spares
            // the caller waitless growth, and must not hold up the queue.
            let then = limits.then_needs.of(n).min(budget.capacity_bytes() / 4);
            // The body's part in whole units, so that `then` is exact.
            let mut then = budget.reserve(taken_by(n) + then).await?;
            let body = then.split_off(n).unwrap_or_else(Reservation::empty);
            (body, then)
        }
        None => (Reservation::empty(), Reservation::empty()),
    };
    let mut held = Growing::new(budget, initial);
    let capacity = usize::try_from(declared.unwrap_or(0)).map_err(|_| too_large())?;
    let mut data = BytesMut::with_capacity(capacity);
    let started = Instant::now();
    loop {
        let frame = match limits.pace {
            None => body.frame().await,
            Some(pace) => {
                let deadline = next_deadline(started, data.len() as u64, pace);
                match tokio::time::timeout_at(deadline, body.frame()).await {
                    Ok(frame) => frame,
                    Err(_) => return Err(too_slow(started, data.len() as u64, pace)),
                }
            }
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(&on_error)?;
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers
        };
        let total = (data.len() + chunk.len()) as u64;
        if total > limits.max_bytes {
            return Err(too_large());
        }
        held.grow_to(total, STEP.max(total / 4))?;
        data.extend_from_slice(&chunk);
    }
    if declared.is_some_and(|n| n != data.len() as u64) {
        return Err(Error::invalid_request(
            "request body is shorter than its Content-Length",
        ));
    }
    held.shrink_to(data.len() as u64);
    Ok(Uploaded {
        bytes: data.freeze(),
        held: held.into_reservation(),
        then,
    })
}

/// When the next frame must have arrived: the total deadline, or the moment
/// the average rate would fall below the minimum, whichever is first.
fn next_deadline(started: Instant, received: u64, pace: Pace) -> Instant {
    let total = started + pace.timeout;
    if pace.min_rate == 0 {
        return total;
    }
    let earned = Duration::from_secs_f64(received as f64 / pace.min_rate as f64);
    total.min(started + earned.max(RATE_GRACE))
}

fn too_slow(started: Instant, received: u64, pace: Pace) -> Error {
    let elapsed = started.elapsed();
    let reason = if elapsed + Duration::from_millis(5) >= pace.timeout {
        format!(
            "request body did not arrive within {:?} (--body-timeout)",
            pace.timeout
        )
    } else {
        format!(
            "request body arrived slower than {} bytes/s ({received} bytes in {:.1}s; --min-body-rate)",
            pace.min_rate,
            elapsed.as_secs_f64()
        )
    };
    Error::new(ErrorKind::BodyTimeout, reason)
}

/// A client's body failed: a malformed chunked encoding is the client's
/// error (400), anything else means it went away.
pub fn client_body_error(e: hyper::Error) -> Error {
    use std::error::Error as _;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            ) {
                return Error::invalid_request("malformed request body (chunked encoding)")
                    .with_cause(e);
            }
        }
        cause = c.source();
    }
    Error::new(ErrorKind::ClientGone, "could not read the request body").with_cause(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Frame;
    use http_body_util::StreamBody;

    type Chunks = StreamBody<
        futures_util::stream::BoxStream<'static, std::result::Result<Frame<Bytes>, Error>>,
    >;

    fn body(parts: Vec<&'static [u8]>, then_stall: bool) -> Chunks {
        use futures_util::StreamExt;
        let head = futures_util::stream::iter(
            parts
                .into_iter()
                .map(|p| Ok(Frame::data(Bytes::from_static(p)))),
        );
        let stream = if then_stall {
            head.chain(futures_util::stream::pending()).boxed()
        } else {
            head.boxed()
        };
        StreamBody::new(stream)
    }

    const LIMITS: UploadLimits = UploadLimits {
        max_bytes: 1 << 20,
        pace: Some(Pace {
            timeout: Duration::from_secs(60),
            min_rate: 1024,
        }),
        then_needs: ThenNeeds {
            per_byte: 0,
            at_least: 0,
            at_most: 0,
        },
    };

    fn big() -> Error {
        Error::new(ErrorKind::TooLarge, "big")
    }

    #[tokio::test]
    async fn a_body_is_read_and_counted_exactly() {
        let budget = MemoryBudget::new(8 << 20);
        let Uploaded { bytes, held, then } = read(
            body(vec![b"ab", b"cd"], false),
            None,
            LIMITS,
            &budget,
            big,
            |e| e,
        )
        .await
        .unwrap();
        assert_eq!(&bytes[..], b"abcd");
        assert_eq!(held.bytes(), 4);
        assert_eq!(then.bytes(), 0, "nothing more without a declared length");
        assert!(budget.in_use_bytes() >= 4);
        drop(held);
        assert_eq!(budget.in_use_bytes(), 0);
    }

    #[tokio::test]
    async fn a_declared_body_reserves_what_follows_it_in_the_same_wait() {
        let budget = MemoryBudget::new(8 << 20);
        let limits = UploadLimits {
            then_needs: ThenNeeds {
                per_byte: 1000,
                at_least: 0,
                at_most: 1 << 20,
            },
            ..LIMITS
        };
        let up = read(
            body(vec![b"ab", b"cd"], false),
            Some(4),
            limits,
            &budget,
            big,
            |e| e,
        )
        .await
        .unwrap();
        assert_eq!(up.held.bytes(), 4);
        assert_eq!(up.then.bytes(), 4000);
        assert!(budget.in_use_bytes() >= 4004);
        drop(up.held);
        assert!(
            budget.in_use_bytes() >= 4000,
            "kept until the caller is done"
        );
        drop(up.then);
        assert_eq!(budget.in_use_bytes(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_upload_is_cut_by_the_rate_then_the_deadline() {
        let budget = MemoryBudget::new(8 << 20);
        // 2 KiB earn 2 s at 1 KiB/s, less than the grace: cut at 5 s.
        let started = Instant::now();
        let err = read(
            body(vec![&[0u8; 2048]], true),
            None,
            LIMITS,
            &budget,
            big,
            |e| e,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::BodyTimeout);
        assert!(err.reason.contains("--min-body-rate"), "{}", err.reason);
        assert_eq!(started.elapsed().as_secs(), 5);
        assert_eq!(budget.in_use_bytes(), 0);
        // Without a rate, the total deadline.
        let slow = UploadLimits {
            pace: Some(Pace {
                timeout: Duration::from_secs(30),
                min_rate: 0,
            }),
            ..LIMITS
        };
        let err = read(body(vec![b"x"], true), None, slow, &budget, big, |e| e)
            .await
            .unwrap_err();
        assert!(err.reason.contains("--body-timeout"), "{}", err.reason);
    }

    #[tokio::test]
    async fn size_and_budget_limits() {
        let budget = MemoryBudget::new(8 << 20);
        let err = read(
            body(vec![], false),
            Some(2 << 20),
            LIMITS,
            &budget,
            big,
            |e| e,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooLarge);
        // No declared length and no room: 503 at once, not a wait.
        let tiny = MemoryBudget::new(64 * 1024);
        let _full = tiny.reserve(64 * 1024).await.unwrap();
        let err = read(body(vec![b"abc"], false), None, LIMITS, &tiny, big, |e| e)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::BudgetFull);
        let err = read(
            body(vec![b"abc"], false),
            Some(5),
            LIMITS,
            &budget,
            big,
            |e| e,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidRequest);
    }
}
