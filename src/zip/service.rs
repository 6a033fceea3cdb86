//! HTTP side of bulk download: `POST /zip` with a JSON manifest, and the
//! mod_zip hand-off from pass-through (an origin response carrying
//! `X-Archive-Files: zip`). Both read a bounded manifest, check the limits
//! before the first byte, choose the response shape (chunked, or
//! Content-Length with Range/If-Range when the archive's length is known)
//! and start a [`Download`].

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};

use super::archive::{self, ArchiveConfig, Download, Shape};
use super::manifest::{self, ArchivePlan, ManifestLimits};
use super::probe;
use super::scheduler::SchedulerConfig;
use super::writer::DosDateTime;
use crate::body::{self, Body};
use crate::budget::{Growing, MemoryBudget, Reservation};
use crate::conditional::{self, Decision, Validators};
use crate::context::RequestContext;
use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::headers::content_disposition;
use crate::image::http::options::Presets;
use crate::image::run::Processor;
use crate::origin::{Origin, OriginResponse};
use crate::service::{ClientRequest, Service};
use crate::upload::{self, Pace, ThenNeeds, UploadLimits, Uploaded};

pub const X_ARCHIVE_FILES: HeaderName = HeaderName::from_static("x-archive-files");

/// Everything bulk download is built from (`--zip-*`, and the upload pace).
#[derive(Debug, Clone, Copy)]
pub struct ZipSettings {
    /// Entries fetched at once per download, counting the one being written.
    pub prefetch: usize,
    /// Bytes buffered per prefetched entry.
    pub entry_buffer: u64,
    pub max_entries: usize,
    pub max_manifest_bytes: u64,
    pub max_archive_bytes: u64,
    /// How slowly a `POST /zip` manifest may arrive.
    pub upload: Pace,
}

/// Bulk download, built once at start-up. Cheap to clone.
#[derive(Clone)]
pub struct ZipService {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ZipSettings,
    origin: Origin,
    budget: MemoryBudget,
    /// Makes processed entries (manifest `options`/`variants`).
    processor: Arc<Processor>,
    presets: Presets,
    /// One large manifest is planned at a time; see [`LARGE_MANIFEST`].
    large_plans: tokio::sync::Semaphore,
}

/// Manifests above this many bytes are planned one at a time. Their plans
/// grow in the budget without waiting (waiting while holding would be
/// hold-and-wait), so several large plans growing at once could each
/// take part of the room and all fail; one at a time, the first gets the
/// room and the others find what it gave back. The manifest is already
/// read whole here, so a slow uploader never holds this gate. Small
/// manifests (planned in microseconds) do not queue behind a large one.
const LARGE_MANIFEST: usize = 1 << 20;

impl ZipService {
    pub fn new(
        settings: ZipSettings,
        origin: Origin,
        budget: MemoryBudget,
        processor: Arc<Processor>,
        presets: Presets,
    ) -> Self {
        ZipService {
            inner: Arc::new(Inner {
                settings,
                origin,
                budget,
                processor,
                presets,
                large_plans: tokio::sync::Semaphore::new(1),
            }),
        }
    }
}

/// `POST /zip`.
impl Service for ZipService {
    async fn serve(&self, req: ClientRequest, _ctx: &mut RequestContext) -> Result<Response<Body>> {
        if req.method() != Method::POST {
            return Err(Error::new(
                ErrorKind::MethodNotAllowed,
                "POST a JSON manifest to /zip",
            ));
        }
        let z = &self.inner;
        let max = z.settings.max_manifest_bytes;
        let (parts, body) = req.into_parts();
        let limits = UploadLimits {
            max_bytes: max,
            pace: Some(z.settings.upload),
            then_needs: self.plan_allowance(),
        };
        let uploaded = upload::read(
            body,
            content_length(&parts.headers),
            limits,
            &z.budget,
            || manifest_too_large(max),
            upload::client_body_error,
        )
        .await?;
        let manifest_limits = self.limits();
        let presets = z.presets.clone();
        let mut planned = plan_off_the_reactor(
            z,
            self.archive_config().scheduler,
            uploaded,
            move |bytes, meter| manifest::parse_json(bytes, manifest_limits, &presets, meter),
        )
        .await?;
        if planned.plan.sizes == manifest::SizesFrom::Probe && planned.known_length.is_none() {
            let outcome = probe::learn_sizes(&z.origin, &mut planned.plan).await;
            tracing::debug!(?outcome, "zip size probe");
            planned.known_length = archive::known_length(&planned.plan);
        }
        self.answer_post(planned, &parts.headers).await
    }
}

impl ZipService {
    /// What a manifest is expected to become (its plan and its download's
    /// working set), reserved with the manifest itself in one wait,
    /// holding nothing: the parse and the download then grow without
    /// waiting only past it, so a busy budget makes a download wait its
    /// turn instead of answering 503, and no download waits while holding.
    fn plan_allowance(&self) -> ThenNeeds {
        let floor = archive::working_set_floor(self.archive_config().scheduler);
        ThenNeeds {
            per_byte: WORKING_BYTES_PER_MANIFEST_BYTE,
            // A small plan's vector and name tree have a floor of their own.
            at_least: floor + 64 * 1024,
            at_most: self.limits().max_entries as u64 * WORKING_BYTES_PER_ENTRY + floor,
        }
    }

    async fn answer_post(
        &self,
        planned: Planned,
        request_headers: &HeaderMap,
    ) -> Result<Response<Body>> {
        let file_name = planned
            .plan
            .file_name
            .clone()
            .unwrap_or_else(|| "download.zip".into());
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_DISPOSITION,
            content_disposition("attachment", &file_name),
        );
        // Range applies to GET; sluice honours it on POST /zip too so that a
        // client can resume a known-size archive. Caching validators do not.
        let mut conditionals = conditional_headers(request_headers);
        conditionals.remove(IF_NONE_MATCH);
        conditionals.remove(IF_MODIFIED_SINCE);
        self.respond(planned, &conditionals, headers).await
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok())
}

/// A parsed plan, with what it holds counted, and the facts about it that
/// take a pass over every entry.
struct Planned {
    plan: ArchivePlan,
    known_length: Option<u64>,
    /// The ETag of a known-size archive.
    etag: Option<String>,
    /// What If-Range also accepts: a mod_zip manifest response's `ETag`
    /// and `Last-Modified` (see `conditional::Validators`).
    manifest_etag: Option<String>,
    manifest_modified: Option<SystemTime>,
    held: Reservation,
}

/// Parse a manifest and plan the archive on tokio's blocking pool: a
/// 100,000-entry manifest is CPU work that must not stall the async
/// threads (other requests, `/healthz`). The plan is counted in the budget
/// as it grows, without waiting (the manifest's bytes are held meanwhile),
/// and the manifest's own bytes are released as soon as it is parsed.
async fn plan_off_the_reactor(
    z: &Inner,
    scheduler: SchedulerConfig,
    manifest: Uploaded,
    parse: impl FnOnce(&[u8], manifest::PlanMeter<'_>) -> Result<ArchivePlan> + Send + 'static,
) -> Result<Planned> {
    let budget = z.budget.clone();
    let Uploaded {
        bytes,
        held: manifest_held,
        then: allowance,
    } = manifest;
    let _turn = if bytes.len() > LARGE_MANIFEST {
        Some(
            z.large_plans
                .acquire()
                .await
                .map_err(|e| Error::internal("manifest planning gate closed").with_cause(e))?,
        )
    } else {
        None
    };
    tokio::task::spawn_blocking(move || {
        let mut held = Growing::new(&budget, allowance);
        let mut meter = |bytes: u64| held.grow_to(bytes, 1 << 20);
        let plan = parse(&bytes, &mut meter);
        drop(bytes);
        drop(manifest_held);
        let plan = plan?;
        let known_length = archive::known_length(&plan);
        let etag = known_length.map(|len| archive_etag(&plan, len));
        // The plan and the download's working set stay held: reserved
        // with the manifest (one wait, holding nothing), grown here without
        // waiting if the allowance fell short, the rest given back.
        let mut held = held;
        let heap: u64 = plan.entries.iter().map(|e| e.heap_bytes()).sum();
        let plan_bytes =
            (plan.entries.capacity() * std::mem::size_of::<manifest::PlannedEntry>()) as u64 + heap;
        let total = plan_bytes + archive::working_set_bytes(&plan, scheduler);
        held.grow_to(total, 0)?;
        held.shrink_to(total);
        Ok(Planned {
            plan,
            known_length,
            etag,
            manifest_etag: None,
            manifest_modified: None,
            held: held.into_reservation(),
        })
    })
    .await
    .map_err(|e| Error::internal("manifest planning failed").with_cause(e))?
}

/// What a manifest becomes, per byte at most: the densest manifests (JSON
/// `{"source": "p/00001.jpg"}` entries, mod_zip lines of short names)
/// become a plan and a central directory of ~14x their bytes (~370 bytes
/// per entry); see the test below.
const WORKING_BYTES_PER_MANIFEST_BYTE: u64 = 16;

/// The same per entry, which with `--zip-max-entries` caps what any
/// manifest's plan and archive take.
const WORKING_BYTES_PER_ENTRY: u64 = 400;

/// The request headers a known-size archive evaluates (kept before the
/// request's headers move on to the origin).
pub fn conditional_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for h in [RANGE, IF_RANGE, IF_NONE_MATCH, IF_MODIFIED_SINCE] {
        if let Some(v) = headers.get(&h) {
            out.insert(h, v.clone());
        }
    }
    out
}

/// Does a pass-through origin response ask for an archive (nginx mod_zip's
/// `X-Archive-Files: zip`)?
pub fn wants_archive(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::OK && names_a_manifest(headers)
}

/// The origin response header naming client headers to pass on.
const X_ARCHIVE_PASS_HEADERS: &str = "x-archive-pass-headers";

/// mod_zip's `X-Archive-Pass-Headers: Cookie:X-Auth-Token`: the client
/// request headers so named go along with every entry's request (an origin
/// that authorises each file by cookie or token). Names that frame or
/// route a request (Host, Content-Length, Range, …) are never passed: the
/// entry requests set those themselves.
fn pass_headers(upstream: &HeaderMap, client: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    let listed = upstream
        .get_all(X_ARCHIVE_PASS_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([':', ',']))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok());
    for name in listed {
        let framing = [
            http::header::HOST,
            CONTENT_LENGTH,
            http::header::TRANSFER_ENCODING,
            http::header::CONNECTION,
            http::header::TE,
            http::header::UPGRADE,
            http::header::EXPECT,
            RANGE,
            IF_RANGE,
        ];
        if framing.contains(&name) || out.contains_key(&name) {
            continue;
        }
        for value in client.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Do these headers say the body is a mod_zip manifest, whatever the status?
pub fn names_a_manifest(headers: &HeaderMap) -> bool {
    headers
        .get(X_ARCHIVE_FILES)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"zip"))
}

impl ZipService {
    /// Answer a GET whose origin response is a mod_zip manifest with the zip it
    /// describes. The origin's other headers (Content-Disposition, caching,
    /// cookies) are kept.
    pub async fn serve_mod_zip(
        &self,
        upstream: OriginResponse,
        request_headers: &HeaderMap,
        client_headers: &HeaderMap,
    ) -> Result<Response<Body>> {
        let z = &self.inner;
        let max = z.settings.max_manifest_bytes;
        let limits = UploadLimits {
            max_bytes: max,
            pace: None,
            then_needs: self.plan_allowance(),
        };
        let uploaded = upload::read(
            upstream.body,
            content_length(&upstream.headers),
            limits,
            &z.budget,
            || manifest_too_large(max).from_side(ErrorSource::Upstream),
            |e| e,
        )
        .await?;
        let manifest_limits = self.limits();
        let charset = manifest::NameCharset::from_headers(&upstream.headers);
        let mut planned = plan_off_the_reactor(
            z,
            self.archive_config().scheduler,
            uploaded,
            move |bytes, meter| {
                manifest::parse_mod_zip(bytes, manifest_limits, &charset, meter)
                    .map_err(|e| e.from_side(ErrorSource::Upstream))
            },
        )
        .await?;
        planned.plan.pass_headers = pass_headers(&upstream.headers, client_headers);
        planned.manifest_modified = upstream
            .headers
            .get(LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| httpdate::parse_http_date(s).ok());
        planned.manifest_etag = upstream
            .headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        planned.plan.modified = planned.manifest_modified.map(DosDateTime::from_system_time);
        if let Some(len) = planned.known_length {
            planned.etag = Some(archive_etag(&planned.plan, len));
        }
        let headers = mod_zip_response_headers(upstream.headers);
        self.respond(planned, request_headers, headers).await
    }

    fn limits(&self) -> ManifestLimits {
        ManifestLimits {
            max_entries: self.inner.settings.max_entries,
        }
    }

    fn archive_config(&self) -> ArchiveConfig {
        let s = &self.inner.settings;
        ArchiveConfig {
            scheduler: SchedulerConfig {
                prefetch: s.prefetch.max(1),
                buffer_bytes: s.entry_buffer.max(1),
                max_resumes: 3,
            },
            max_archive_bytes: s.max_archive_bytes,
        }
    }

    async fn respond(
        &self,
        planned: Planned,
        request_headers: &HeaderMap,
        mut headers: HeaderMap,
    ) -> Result<Response<Body>> {
        let config = self.archive_config();
        let too_large = || {
            Error::new(
                ErrorKind::Unprocessable,
                format!(
                    "archive would be larger than {} bytes (--zip-max-archive-bytes)",
                    config.max_archive_bytes
                ),
            )
        };
        let Planned {
            plan,
            known_length,
            etag,
            manifest_etag,
            manifest_modified,
            held: plan_reservation,
        } = planned;
        if plan.declared_bytes() > config.max_archive_bytes {
            return Err(too_large());
        }

        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/zip"));
        let mut status = StatusCode::OK;
        let mut shape = Shape::Whole;
        if let Some(len) = known_length {
            if len > config.max_archive_bytes {
                return Err(too_large());
            }
            // A length without every CRC: Content-Length (a browser shows
            // progress), but no ranges (a part's data descriptor needs the
            // CRC of the entry's bytes before it), as mod_zip does.
            let mut body_len = len;
            if let (true, Some(etag)) = (plan.is_rangeable(), etag) {
                headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                if let Ok(v) = HeaderValue::from_str(&etag) {
                    headers.insert(ETAG, v);
                }
                let validators = Validators {
                    etag,
                    last_modified: None,
                    if_range_etag: manifest_etag,
                    if_range_modified: manifest_modified,
                };
                match conditional::evaluate_multi(request_headers, &validators, len, MAX_RANGES) {
                    Decision::Full => {}
                    Decision::Partial { start, end } => {
                        status = StatusCode::PARTIAL_CONTENT;
                        shape = Shape::Range(start, end);
                        insert(
                            &mut headers,
                            CONTENT_RANGE,
                            format!("bytes {start}-{end}/{len}"),
                        );
                        body_len = end - start + 1;
                    }
                    Decision::Multipart(ranges) => {
                        status = StatusCode::PARTIAL_CONTENT;
                        let boundary = multipart_boundary();
                        body_len = ranges
                            .iter()
                            .map(|&r| {
                                archive::multipart_head(&boundary, r, len).len() as u64 + r.1 - r.0
                                    + 1
                            })
                            .sum::<u64>()
                            + archive::multipart_tail(&boundary).len() as u64;
                        insert(
                            &mut headers,
                            CONTENT_TYPE,
                            format!("multipart/byteranges; boundary={boundary}"),
                        );
                        shape = Shape::Multipart {
                            ranges,
                            boundary,
                            archive_len: len,
                        };
                    }
                    Decision::NotModified => {
                        headers.remove(CONTENT_TYPE);
                        return Ok(bodiless(StatusCode::NOT_MODIFIED, headers));
                    }
                    Decision::Unsatisfiable => {
                        insert(&mut headers, CONTENT_RANGE, format!("bytes */{len}"));
                        headers.remove(CONTENT_TYPE);
                        return Ok(bodiless(StatusCode::RANGE_NOT_SATISFIABLE, headers));
                    }
                }
            }
            insert(&mut headers, CONTENT_LENGTH, body_len.to_string());
        }
        let download = Download {
            origin: self.inner.origin.clone(),
            budget: self.inner.budget.clone(),
            processor: self.inner.processor.clone(),
            config,
            plan,
            shape,
            plan_reservation,
        };
        let mut response = Response::new(download.start().await?);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// Ranges answered as one `multipart/byteranges` response; a request for
/// more gets the whole archive (each part is planned and fetched on its own).
const MAX_RANGES: usize = 16;

/// A boundary that no archive byte sequence is likely to hold: 20 digits
/// that differ per response.
fn multipart_boundary() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = nanos
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{n:020}")
}

/// The response head of an archive made from a mod_zip manifest response:
/// as mod_zip, the origin's own headers stay (Content-Disposition, cookies,
/// `Last-Modified`, which is also every entry's time), the manifest's
/// framing and its directives to the archiver go, and `Cache-Control:
/// max-age=0` is added (when the origin set no Cache-Control of its own:
/// mod_zip replaces it, which would turn an origin's `private` or
/// `no-store` into something a shared cache may store).
/// `X-Archive-Files` goes too, where mod_zip keeps it: a proxy in front
/// that also reads it (another sluice, nginx with mod_zip) would take the
/// archive for a manifest.
fn mod_zip_response_headers(upstream: HeaderMap) -> HeaderMap {
    let mut headers = crate::headers::to_client(upstream, http::Version::HTTP_11);
    for h in [
        CONTENT_LENGTH,
        CONTENT_TYPE,
        http::header::CONTENT_ENCODING,
        CONTENT_RANGE,
        ACCEPT_RANGES,
        ETAG,
        X_ARCHIVE_FILES,
        HeaderName::from_static("x-archive-charset"),
        HeaderName::from_static("x-archive-name-sep"),
        HeaderName::from_static(X_ARCHIVE_PASS_HEADERS),
    ] {
        headers.remove(h);
    }
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=0"));
    }
    if !headers.contains_key(CONTENT_DISPOSITION) {
        headers.insert(
            CONTENT_DISPOSITION,
            content_disposition("attachment", "download.zip"),
        );
    }
    headers
}

fn manifest_too_large(max: u64) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("manifest larger than {max} bytes (--zip-max-manifest-bytes)"),
    )
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(name, v);
    }
}

fn bodiless(status: StatusCode, headers: HeaderMap) -> Response<Body> {
    let mut r = Response::new(body::empty());
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// A strong validator of a known-size archive: every byte of it follows
/// from names, sizes, CRCs and times, so a hash of those identifies it.
fn archive_etag(plan: &ArchivePlan, len: u64) -> String {
    let mut h = crc32fast::Hasher::new();
    let mut h2 = crc32fast::Hasher::new_with_initial(0x5bd1_e995);
    for e in &plan.entries {
        let (size, crc) = match e.declared {
            super::writer::Sizes::Known { size, crc32 } => (size, crc32),
            other => (other.length().unwrap_or(0), 0),
        };
        let t = e.modified.or(plan.modified).unwrap_or(DosDateTime::EPOCH);
        for hasher in [&mut h, &mut h2] {
            hasher.update(e.name.as_bytes());
            hasher.update(&[0]);
            hasher.update(&size.to_le_bytes());
            hasher.update(&crc.to_le_bytes());
            hasher.update(&t.date.to_le_bytes());
            hasher.update(&t.time.to_le_bytes());
        }
    }
    format!("\"z{:08x}{:08x}-{len:x}\"", h.finalize(), h2.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mod_zip_responses_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(!wants_archive(StatusCode::OK, &h));
        h.insert(X_ARCHIVE_FILES, HeaderValue::from_static("ZIP"));
        assert!(wants_archive(StatusCode::OK, &h));
        assert!(!wants_archive(StatusCode::NOT_FOUND, &h));
    }
}

#[cfg(test)]
mod plan_allowance_tests {
    use super::*;

    /// The densest manifests' plans and central directories fit the
    /// allowance reserved with them, by bytes and by entries (a parse
    /// rarely has to grow without waiting).
    #[test]
    fn dense_manifests_plan_within_their_allowance() {
        let limits = manifest::ManifestLimits {
            max_entries: 100_000,
        };
        for n in [100u64, 10_000] {
            let entries: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"source": "p/{i:05}.jpg"}}"#))
                .collect();
            let json = format!(r#"{{"entries": [{}]}}"#, entries.join(","));
            let modzip: String = (0..n)
                .map(|i| format!("- 1234 /p/{i:05}.jpg {i:05}.jpg\n"))
                .collect();
            let mut plans = Vec::new();
            let mut peak = 0;
            let presets = Presets::default();
            let plan = manifest::parse_json(json.as_bytes(), limits, &presets, &mut |b| {
                peak = peak.max(b);
                Ok(())
            })
            .unwrap();
            plans.push((json.len() as u64, peak, plan));
            let mut peak = 0;
            let utf8 = manifest::NameCharset::Utf8;
            let plan = manifest::parse_mod_zip(modzip.as_bytes(), limits, &utf8, &mut |b| {
                peak = peak.max(b);
                Ok(())
            })
            .unwrap();
            plans.push((modzip.len() as u64, peak, plan));
            for (manifest_len, plan_bytes, plan) in plans {
                // What grows with the entries: the plan and the central
                // directory (the fixed part is the allowance's floor).
                let names: usize = plan.entries.iter().map(|e| e.name.len()).sum();
                let central =
                    crate::zip::writer::central_directory_bytes(plan.entries.len(), names);
                let grows = plan_bytes + central;
                assert!(plan_bytes > 0);
                assert!(
                    grows <= manifest_len * WORKING_BYTES_PER_MANIFEST_BYTE,
                    "{grows} for {manifest_len} bytes"
                );
                assert!(
                    grows <= n * WORKING_BYTES_PER_ENTRY,
                    "{grows} for {n} entries"
                );
            }
        }
    }
}
