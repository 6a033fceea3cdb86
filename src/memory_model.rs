//! What sluice holds outside the memory budget, named in one place.
//!
//! The budget (`--memory-budget`, [`crate::budget`]) counts every buffer
//! whose size a request or its data decides: zip working sets (entry
//! buffers, the queue towards the client, the central directory, deflate
//! state), manifests and plans, image sources, pixels and results, codec
//! state. What it does not count is a fixed cost per thing that exists, and
//! each such cost is bounded by a constant here:
//!
//! ```text
//! allocated ≤ BASELINE + budget in use
//!             + connections      × PER_CONNECTION
//!             + requests         × PER_REQUEST
//!             + upstream streams × PER_UPSTREAM_STREAM
//!             + archives         × PER_ARCHIVE
//! ```
//!
//! The counts are the gauges `sluice_connections_open`,
//! `sluice_http_requests_in_flight`, `sluice_upstream_streams_in_flight` and
//! `sluice_zip_archives_in_flight`; `allocated` is jemalloc's
//! (`sluice_allocator_allocated_bytes`). `tests/memory_invariant.rs` drives
//! pass-through, zip, image and idle-connection load against the binary and
//! checks this inequality at every sample; a buffer that nobody counts and
//! that grows with the load by more than the bounds' slack (they are worst
//! cases) breaks it. RSS adds the binary's own pages and what jemalloc has freed
//! but not yet returned (given back within seconds, see docs/operations.md).
//!
//! The constants are for plain-http and directory origins and cleartext
//! HTTP/1.1 clients, as tested. A TLS client connection adds
//! [`TLS_PER_CONNECTION`]; an HTTP/2 connection may hold up to
//! [`H2_RECEIVE_WINDOW`] of a request body not yet read; an https origin
//! stream costs [`HTTPS_UPSTREAM_STREAM`] instead of
//! [`PER_UPSTREAM_STREAM`].

use crate::body::CHUNK_SIZE;
use crate::origin::raw_http::{MAX_LINE, PASSTHROUGH_READ_SIZE};

const KIB: u64 = 1024;

/// An idle process that has served each kind of request once: runtime and
/// worker threads' caches, the metrics registry, pools, lazily built
/// tables. Measured 1–6 MiB here.
pub const BASELINE: u64 = 8 << 20;

/// An open client connection between requests: hyper's dispatcher, its
/// 8 KiB head buffer and its response-head buffer, sluice's connection
/// clock and I/O wrapper, the task. Measured 37 KiB per connection with
/// 1000 idle keep-alive connections. A connection that once sent a head
/// over 8 KiB keeps a head buffer of up to the head limit
/// (`--max-header-bytes` plus the request line) instead.
pub const PER_CONNECTION: u64 = 48 * KIB;

/// A request in flight, besides its connection: its head, context and
/// log span ([`REQUEST_STATE`]); hyper's queue of body pieces not yet
/// written to the client ([`WRITE_QUEUE`]); and the one origin read buffer
/// a pass-through or image request reads through ([`READ_BUFFER`]).
pub const PER_REQUEST: u64 = REQUEST_STATE + WRITE_QUEUE + READ_BUFFER;

/// A request's parsed head, the origin request built from it, its context
/// and span.
pub const REQUEST_STATE: u64 = 32 * KIB;

/// hyper takes another body piece while less than its buffer limit (one
/// [`CHUNK_SIZE`] with the default head limits, `server::serve_listener`)
/// is queued, so it holds at most that plus one piece, and a piece is at
/// most one origin read (which it keeps alive whole).
pub const WRITE_QUEUE: u64 = CHUNK_SIZE as u64 + READ_BUFFER;

/// One read from an origin socket for a streamed body.
pub const READ_BUFFER: u64 = (PASSTHROUGH_READ_SIZE + MAX_LINE) as u64;

/// An origin fetch's connection and body decoder. A plain-http fetch
/// reads only when polled, into the buffer its consumer counted (a zip
/// entry's working set, a pass-through request's [`READ_BUFFER`]); a
/// pooled idle connection holds no buffer.
pub const PER_UPSTREAM_STREAM: u64 = 16 * KIB;

/// A zip download's scheduler, writer and tasks; everything that grows
/// with the archive is in its working set, reserved when it starts
/// (`zip::archive::download_bytes`).
pub const PER_ARCHIVE: u64 = 32 * KIB;

/// An https origin stream instead of [`PER_UPSTREAM_STREAM`]: hyper reads
/// ahead of its consumer into its own buffer (128 KiB reads, up to three
/// in flight) and rustls keeps its record buffers (~34 KiB). An idle
/// pooled https connection keeps one read buffer and the TLS state.
pub const HTTPS_UPSTREAM_STREAM: u64 = 3 * 128 * KIB + 48 * KIB;

/// What a client connection adds when the listener speaks TLS
/// (`--tls-cert`): rustls's session and record buffers, up to 64 KiB of
/// encrypted bytes not yet written (its default buffer limit) and one
/// 16 KiB record being read. Measured idle: 43 KiB per TLS connection
/// against 37 KiB in cleartext (500 idle connections).
pub const TLS_PER_CONNECTION: u64 = 96 * KIB;

/// What an HTTP/2 client may have sent on a connection that sluice has not
/// read yet: its connection flow-control window (`server::H2_CONNECTION_WINDOW`).
/// Only request bodies (zip manifests) use it.
pub const H2_RECEIVE_WINDOW: u64 = crate::server::H2_CONNECTION_WINDOW as u64;

/// How many of each thing exist now (from `/metrics`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    pub connections: u64,
    pub requests: u64,
    pub upstream_streams: u64,
    pub archives: u64,
    /// The client listener speaks TLS: every connection adds
    /// [`TLS_PER_CONNECTION`].
    pub tls: bool,
}

/// The most the allocator may hold beyond the budget in use, by the
/// formula above.
pub fn uncounted_bound(live: Live) -> u64 {
    let per_connection = PER_CONNECTION + if live.tls { TLS_PER_CONNECTION } else { 0 };
    BASELINE
        + live.connections * per_connection
        + live.requests * PER_REQUEST
        + live.upstream_streams * PER_UPSTREAM_STREAM
        + live.archives * PER_ARCHIVE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_adds_each_thing_once() {
        assert_eq!(uncounted_bound(Live::default()), BASELINE);
        let one = Live {
            connections: 1,
            requests: 1,
            upstream_streams: 1,
            archives: 1,
            tls: false,
        };
        assert_eq!(
            uncounted_bound(one),
            BASELINE + PER_CONNECTION + PER_REQUEST + PER_UPSTREAM_STREAM + PER_ARCHIVE
        );
        let tls = Live { tls: true, ..one };
        assert_eq!(
            uncounted_bound(tls),
            uncounted_bound(one) + TLS_PER_CONNECTION
        );
        // A streamed pass-through request: two reads and the queue limit.
        assert_eq!(PER_REQUEST, 32 * KIB + 64 * KIB + 2 * (128 + 8) * KIB);
    }
}
