//! Learning entry sizes before the first byte (`"sizes": "probe"` in a
//! JSON manifest), so that an archive whose manifest gives no sizes still
//! has a `Content-Length`: a browser then shows a real progress bar and an
//! ETA, as it does for a mod_zip archive.
//!
//! Each origin entry without a declared size gets one `HEAD`; its
//! `Content-Length` becomes the entry's declared length (which the later
//! GET must match, or the transfer is aborted: the length was promised),
//! its `Content-Type` decides the method of a name without a known
//! extension, and its `Last-Modified` the entry's time. The probe is
//! bounded: at most [`PROBE_CONCURRENCY`] HEADs at once, [`PROBE_TIME`]
//! in all, and [`PROBE_MAX_ENTRIES`] entries (what it holds meanwhile is a
//! few words per entry, so this bounds it by a constant). Whatever it cannot learn in time (an origin
//! without `Content-Length` on HEAD, a failure, a deflated or processed
//! entry) leaves the archive as it would have been: chunked, without a
//! length. A probe never fails a download.

use std::time::Duration;

use futures_util::StreamExt;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, LAST_MODIFIED};
use http::{HeaderMap, Method, StatusCode};

use super::manifest::{ArchivePlan, EntrySource};
use super::media::MethodChoice;
use super::writer::{DosDateTime, Method as ZipMethod, Sizes};
use crate::origin::{Origin, OriginRequest};

/// HEAD requests in flight at once for one archive.
pub const PROBE_CONCURRENCY: usize = 8;
/// The longest a probe delays an archive's first byte.
pub const PROBE_TIME: Duration = Duration::from_secs(5);
/// More entries without a size than this are not probed (at 8 at once,
/// 4096 HEADs in 5 s already needs an origin answering in 10 ms).
pub const PROBE_MAX_ENTRIES: usize = 4096;

/// What a HEAD taught about one entry (no strings: a few words each).
struct Learned {
    index: usize,
    length: u64,
    /// From the Content-Type, for an entry whose name did not decide.
    method: ZipMethod,
    modified: Option<DosDateTime>,
}

/// What [`learn_sizes`] did, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Every entry's length is known now (or was already).
    Complete { probed: usize },
    /// Some entry cannot have a known length (deflated, processed), or
    /// too many need a HEAD; no request was made.
    Pointless,
    /// Some HEAD failed, gave no length, or the time ran out.
    Incomplete { probed: usize, learned: usize },
}

/// Fill in the declared lengths (and methods, times) of `plan`'s entries
/// from HEAD requests to `origin`.
pub async fn learn_sizes(origin: &Origin, plan: &mut ArchivePlan) -> ProbeOutcome {
    let mut wanted = Vec::new();
    for (index, e) in plan.entries.iter().enumerate() {
        match (&e.source, e.method) {
            (EntrySource::Processed { .. }, _) | (_, MethodChoice::Fixed(ZipMethod::Deflate)) => {
                return ProbeOutcome::Pointless
            }
            (EntrySource::Origin { .. }, method)
                if e.declared.length().is_none() || method == MethodChoice::ByContentType =>
            {
                if wanted.len() == PROBE_MAX_ENTRIES {
                    return ProbeOutcome::Pointless;
                }
                wanted.push(index);
            }
            _ => {}
        }
    }
    let probed = wanted.len();
    let (entries, pass_headers) = (&plan.entries, &plan.pass_headers);
    let heads = futures_util::stream::iter(wanted)
        .map(move |index| head(origin, index, &entries[index].source, pass_headers))
        .buffer_unordered(PROBE_CONCURRENCY);
    let mut learned = Vec::with_capacity(probed);
    let all = async {
        let mut heads = std::pin::pin!(heads);
        while let Some(one) = heads.next().await {
            match one {
                Some(l) => learned.push(l),
                // One entry without a length: the archive has none either.
                None => return,
            }
        }
    };
    let _ = tokio::time::timeout(PROBE_TIME, all).await;
    if learned.len() < probed {
        return ProbeOutcome::Incomplete {
            probed,
            learned: learned.len(),
        };
    }
    for l in learned {
        let entry = &mut plan.entries[l.index];
        if entry.method == MethodChoice::ByContentType {
            entry.method = MethodChoice::Fixed(l.method);
        }
        // A declared size stays: the GET is checked against it.
        if entry.declared.length().is_none() {
            entry.declared = Sizes::Length(l.length);
        }
        if entry.modified.is_none() {
            entry.modified = l.modified;
        }
    }
    ProbeOutcome::Complete { probed }
}

async fn head(
    origin: &Origin,
    index: usize,
    source: &EntrySource,
    pass_headers: &HeaderMap,
) -> Option<Learned> {
    let EntrySource::Origin { path_and_query } = source else {
        return None;
    };
    let mut req = OriginRequest::get(path_and_query.as_str());
    req.method = Method::HEAD;
    for (name, value) in pass_headers {
        req.headers.append(name, value.clone());
    }
    let response = origin.fetch(req).await.ok()?;
    let text = |headers: &HeaderMap, name| {
        headers
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    // A length of an encoded body is not the entry's length.
    if response.status != StatusCode::OK || response.headers.contains_key(CONTENT_ENCODING) {
        return None;
    }
    let length = text(&response.headers, CONTENT_LENGTH)?
        .trim()
        .parse()
        .ok()?;
    Some(Learned {
        index,
        length,
        method: MethodChoice::ByContentType
            .resolve(text(&response.headers, CONTENT_TYPE).as_deref()),
        modified: text(&response.headers, LAST_MODIFIED)
            .and_then(|s| httpdate::parse_http_date(&s).ok())
            .map(DosDateTime::from_system_time),
    })
}
