//! Several processed outputs from one source, for zip manifest entries
//! with `options` or `variants` (docs/zip.md, "Processed entries").
//!
//! One fetch ▶ one counted input (`--max-src-bytes`, `--max-src-pixels`
//! from the header, the job's whole peak reserved from the budget before
//! anything decodes; [`super::input`]) ▶ one job on the worker pool
//! ([`super::pipeline::run_variants`]: one decode at the shrink that serves
//! every variant, then resize ▶ orient ▶ flatten ▶ encode per variant) ▶
//! encoded outputs, each holding its own share of the job's reservation
//! until the archive has written it and drops it.
//!
//! As in `/img`, the pool slot is taken before the fetch and held until the
//! job ends (so slot-then-memory is the one lock order). Unlike `/img`, a
//! full pool queue is waited for (a zip already under way must not fail
//! because the queue is momentarily full). Once admitted, fetch, memory
//! wait and work are bounded by `--processing-timeout`; a dropped download
//! also stops its job at the next stage.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, LAST_MODIFIED};
use http::StatusCode;

use super::input;
use super::pipeline::{choose_format, effective_quality, run_variants};
use super::{CancelOnDrop, Processor};
use crate::budget::Reservation;
use crate::error::{origin_status, Result};
use crate::image::codec::OutputFormat;
use crate::image::plan::estimate::variants_job_bytes;
use crate::image::plan::geometry::plan;
use crate::image::plan::options::Options;
use crate::origin::{Origin, OriginRequest};

/// One output to make.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantSpec {
    pub options: Options,
    /// `None`: the source's natural format ([`choose_format`] without
    /// `Accept`), decided from its header.
    pub format: Option<OutputFormat>,
}

/// One encoded output; its bytes stay counted in the budget until dropped.
pub struct VariantOutput {
    pub bytes: Bytes,
    pub format: OutputFormat,
    /// The source's Last-Modified, if the origin sent one.
    pub last_modified: Option<std::time::SystemTime>,
    pub held: Reservation,
}

impl Processor {
    /// Fetch `path_and_query` from `origin` once and make every variant.
    /// The outer error fails all of them (fetch, limits, undecodable
    /// source); an inner one only its variant. `reserved` hears when the
    /// job holds its memory (it is dropped, unheard, if it fails first).
    pub async fn variants(
        &self,
        origin: &Origin,
        path_and_query: &str,
        specs: &[VariantSpec],
        reserved: tokio::sync::oneshot::Sender<()>,
    ) -> Result<Vec<Result<VariantOutput>>> {
        // The pool slot first, then memory, in the same order as `/img`:
        // a job never holds budget while it waits for a slot, so zips and
        // `/img` requests cannot wait on each other in a cycle.
        let admission = self.pool.admit_waiting().await?;
        // Once admitted, the fetch, the wait for memory and the work are
        // bounded by `--processing-timeout`, as in `/img`: a slow origin or
        // a long wait for memory fails the entry under `on_error` rather
        // than holding the archive up for ever.
        tokio::time::timeout(
            self.timeout,
            self.fetch_and_run(admission, origin, path_and_query, specs, reserved),
        )
        .await
        .unwrap_or_else(|_| Err(self.timed_out()))
    }

    async fn fetch_and_run(
        &self,
        admission: super::workers::Admission,
        origin: &Origin,
        path_and_query: &str,
        specs: &[VariantSpec],
        reserved: tokio::sync::oneshot::Sender<()>,
    ) -> Result<Vec<Result<VariantOutput>>> {
        let budget = &self.budget.main;
        let response = origin.fetch(OriginRequest::get(path_and_query)).await?;
        if response.status != StatusCode::OK {
            return Err(origin_status(response.status, ""));
        }
        let last_modified = response
            .headers
            .get(LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let content_length = response
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let input = input::read(
            response.body,
            content_length,
            &self.limits,
            &self.budget,
            |p| {
                let outputs: Vec<_> = specs
                    .iter()
                    .map(|s| {
                        let (format, _) = choose_format(s.format, None, p);
                        let quality = effective_quality(&s.options, self.defaults);
                        (
                            plan(p.width, p.height, p.orientation, &s.options),
                            format,
                            quality,
                        )
                    })
                    .collect();
                Ok(variants_job_bytes(p, &outputs))
            },
        )
        .await?;
        let _ = reserved.send(());
        let jobs: Vec<(Options, OutputFormat)> = specs
            .iter()
            .map(|s| {
                let (format, _) = choose_format(s.format, None, &input.probe);
                (s.options.clone(), format)
            })
            .collect();
        let cancel = CancelOnDrop::new();
        let cancelled = cancel.flag.clone();
        let defaults = self.defaults;
        let (outputs, held) = admission
            .run(move || {
                let input::Input {
                    data,
                    probe,
                    held,
                    window,
                } = input;
                let variants: Vec<(&Options, OutputFormat)> =
                    jobs.iter().map(|(o, f)| (o, *f)).collect();
                let outputs = run_variants(&data, &probe, &variants, defaults, &cancelled);
                drop(data);
                drop(window);
                // The reservations go back with the outputs (or are
                // dropped here with the error), so the results can take
                // their share without releasing it in between.
                Ok((outputs?, held))
            })
            .await?;
        cancel.disarm();
        let mut job = held.into_iter().reduce(|mut a, b| {
            a.merge(b);
            a
        });
        let mut out = Vec::with_capacity(outputs.len());
        for result in outputs {
            let image = match result {
                Ok(i) => i,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            let len = image.bytes.len() as u64;
            let held = match job.as_mut().and_then(|j| j.split_off(len)) {
                Some(h) => h,
                None => {
                    // Larger than the estimate left for it (not expected:
                    // encoded outputs are smaller than their bitmaps):
                    // free the rest of the job first, then wait for it.
                    tracing::warn!(
                        source = path_and_query,
                        bytes = len,
                        "zip variant larger than its memory estimate"
                    );
                    job = None;
                    budget.reserve(len).await?
                }
            };
            out.push(Ok(VariantOutput {
                bytes: Bytes::from(image.bytes),
                format: image.format,
                last_modified,
                held,
            }));
        }
        drop(job);
        Ok(out)
    }
}
