//! TLS on the client listener: handshakes that failed (by reason) and
//! certificate reloads (by outcome). Recorded by `server::tls`.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

struct TlsMetrics {
    handshake_failures: Family<ReasonLabel, Counter>,
    reloads: Family<OutcomeLabel, Counter>,
}

static M: LazyLock<TlsMetrics> = LazyLock::new(|| TlsMetrics {
    handshake_failures: Family::default(),
    reloads: Family::default(),
});

pub(super) fn register(r: &mut Registry) {
    r.register(
        "tls_handshake_failures",
        "TLS handshakes on the client listener that failed: reason=timeout, plain_http, protocol, io",
        M.handshake_failures.clone(),
    );
    r.register(
        "tls_certificate_reloads",
        "Certificate reloads (SIGHUP or changed files): outcome=loaded or refused (the old certificate stays)",
        M.reloads.clone(),
    );
}

/// A handshake failed for `reason`.
pub fn handshake_failed(reason: &'static str) {
    M.handshake_failures
        .get_or_create(&ReasonLabel { reason })
        .inc();
}

/// A reload was attempted: `loaded` or `refused`.
pub fn reloaded(outcome: &'static str) {
    M.reloads.get_or_create(&OutcomeLabel { outcome }).inc();
}
