//! Bulk zip download metrics. The zip route calls these:
//!
//! ```ignore
//! let archive = metrics::zip::Archive::start();   // archives in flight +1
//! metrics::zip::entry_written(entry_bytes);       // per entry added
//! metrics::zip::entry_failed(error.kind.as_str()); // per entry that could not be added
//! archive.finish();                               // or archive.fail(error.kind.as_str())
//! // dropping `archive` unfinished counts it as outcome="client_gone"
//! ```

use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabel {
    scope: &'static str,
    kind: &'static str,
}

struct ZipMetrics {
    archives: Family<OutcomeLabel, Counter>,
    archives_in_flight: Gauge,
    archive_duration: Histogram,
    entries: Family<OutcomeLabel, Counter>,
    entry_bytes: Counter,
    errors: Family<ErrorLabel, Counter>,
}

static M: LazyLock<ZipMetrics> = LazyLock::new(|| ZipMetrics {
    archives: Family::default(),
    archives_in_flight: Gauge::default(),
    archive_duration: Histogram::new(super::duration_buckets()),
    entries: Family::default(),
    entry_bytes: Counter::default(),
    errors: Family::default(),
});

pub(super) fn register(r: &mut Registry) {
    r.register(
        "zip_archives",
        "Zip archives that ended, by outcome (complete, aborted, client_gone)",
        M.archives.clone(),
    );
    r.register(
        "zip_archives_in_flight",
        "Zip archives being streamed right now",
        M.archives_in_flight.clone(),
    );
    r.register_with_unit(
        "zip_archive_duration",
        "Time from the start of a zip archive until it ended",
        Unit::Seconds,
        M.archive_duration.clone(),
    );
    r.register(
        "zip_entries",
        "Zip entries, by outcome (written, failed)",
        M.entries.clone(),
    );
    r.register_with_unit(
        "zip_entry",
        "Uncompressed entry bytes written into zip archives",
        Unit::Bytes,
        M.entry_bytes.clone(),
    );
    r.register(
        "zip_errors",
        "Zip failures by scope (entry, archive) and error kind",
        M.errors.clone(),
    );
}

/// One zip archive being streamed; counted in flight until finished or dropped.
#[must_use = "an archive is counted as client_gone unless finished"]
pub struct Archive {
    started: Instant,
    ended: bool,
}

impl Archive {
    pub fn start() -> Self {
        M.archives_in_flight.inc();
        Archive {
            started: Instant::now(),
            ended: false,
        }
    }

    /// The archive was written to its end (central directory and all).
    pub fn finish(mut self) {
        self.end("complete");
    }

    /// The archive was aborted because of an error of kind `kind`.
    pub fn fail(mut self, kind: &'static str) {
        count_error("archive", kind);
        self.end("aborted");
    }

    fn end(&mut self, outcome: &'static str) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        M.archives_in_flight.dec();
        M.archive_duration
            .observe(self.started.elapsed().as_secs_f64());
        M.archives.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}

impl Drop for Archive {
    fn drop(&mut self) {
        self.end("client_gone");
    }
}

/// One entry was written completely: `bytes` of (uncompressed) data.
pub fn entry_written(bytes: u64) {
    M.entries
        .get_or_create(&OutcomeLabel { outcome: "written" })
        .inc();
    M.entry_bytes.inc_by(bytes);
}

/// One entry could not be added because of an error of kind `kind`.
pub fn entry_failed(kind: &'static str) {
    M.entries
        .get_or_create(&OutcomeLabel { outcome: "failed" })
        .inc();
    count_error("entry", kind);
}

fn count_error(scope: &'static str, kind: &'static str) {
    M.errors.get_or_create(&ErrorLabel { scope, kind }).inc();
}
