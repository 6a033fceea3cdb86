//! Client connections: open now, accepted, refused at accept by a limit,
//! and closed by sluice for a reason of its own (a deadline, a head that
//! could not be read). Recorded by the server's accept loop and
//! connection tasks.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

struct ConnMetrics {
    open: Gauge,
    accepted: Counter,
    refused: Family<ReasonLabel, Counter>,
    closed: Family<ReasonLabel, Counter>,
}

static M: LazyLock<ConnMetrics> = LazyLock::new(|| ConnMetrics {
    open: Gauge::default(),
    accepted: Counter::default(),
    refused: Family::default(),
    closed: Family::default(),
});

pub(super) fn register(r: &mut Registry) {
    r.register(
        "connections_open",
        "Connections open now (client and admin listeners)",
        M.open.clone(),
    );
    r.register(
        "connections_accepted",
        "Connections accepted (client and admin listeners), refused ones included",
        M.accepted.clone(),
    );
    r.register(
        "connections_refused",
        "Client connections answered 503 and closed at accept: reason=max_connections or max_connections_per_ip",
        M.refused.clone(),
    );
    r.register(
        "connections_closed",
        "Client connections closed by sluice: reason=header_timeout, keepalive_timeout, head_too_large, malformed_head",
        M.closed.clone(),
    );
}

/// Counts a connection as open until dropped.
#[must_use = "the connection counts as open until this is dropped"]
pub struct Open(());

impl Drop for Open {
    fn drop(&mut self) {
        M.open.dec();
    }
}

/// A connection was accepted and will be served.
pub fn opened() -> Open {
    M.open.inc();
    M.accepted.inc();
    Open(())
}

/// A connection was accepted and refused by a limit.
pub fn refused(reason: &'static str) {
    M.accepted.inc();
    M.refused.get_or_create(&ReasonLabel { reason }).inc();
}

/// sluice closed a connection for `reason`.
pub fn closed(reason: &'static str) {
    M.closed.get_or_create(&ReasonLabel { reason }).inc();
}
