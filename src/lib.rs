//! sluice: a streaming reverse proxy for image origins.
//!
//! Data flows one way: an origin ([`origin`]) produces a response whose
//! body is a stream, a transform (content coding, an image job, a zip
//! writer) reshapes it chunk by chunk, and a sink (the client connection)
//! consumes it. No route holds a whole body in memory; every byte held
//! beyond a streaming chunk is counted in one memory budget ([`budget`]).
//!
//! The modules form layers; each imports only from its own layer or those
//! below it (`tests/layers.rs` checks this on every test run):
//!
//! 0. `metrics`: the registry; imports nothing of sluice.
//! 1. foundation: `error`, `body`, `budget`, `context`, `service`,
//!    `headers`, `conditional`, `upload`, `shutdown`.
//! 2. transport and transforms: `origin`, `splice`, `encoding`.
//! 3. features: `health`, `image`, `zip` (which uses `image`),
//!    `passthrough` (which hands mod_zip manifests to `zip`).
//! 4. serving: `admin` (metrics and profiling endpoints), `server`, and
//!    `memory_model` (what is held outside the budget, [`memory_model`]).
//! 5. configuration and the binary's commands: `config`, `commands`,
//!    `logging`, and [`run`] here.
//!
//! Errors: there is one error type, [`Error`]; see [`error`] for why it
//! records a cause, a side and a retry decision, and never a status.
//! `anyhow` is not used; the binary only prints start-up errors.
//!
//! Unsafe code: none in this crate. Every call into C and every jemalloc
//! control lives in the `sluice-ffi` crate (`ffi/`), behind safe functions.
#![forbid(unsafe_code)]

mod admin;
mod body;
mod budget;
mod commands;
mod conditional;
mod config;
mod context;
mod encoding;
mod error;
mod headers;
mod health;
mod image;
mod logging;
pub mod memory_model;
mod metrics;
mod origin;
mod passthrough;
mod server;
mod service;
mod shutdown;
mod splice;
mod upload;
mod zip;

#[doc(hidden)]
pub mod fuzzing;

pub use commands::{health_probe, sign};
pub use config::{Cli, Command, Config, LogFormat, Settings};
pub use error::{Error, ErrorKind, Result};
pub use logging::init as init_logging;
pub use metrics::memory::peak_resident_bytes;

/// The zip writer and entry naming, for the tests that judge archives with
/// readers nobody here wrote.
pub mod zip_format {
    pub use crate::zip::names::{is_safe, sanitize, Namer};
    pub use crate::zip::writer::{
        known_archive_len, DosDateTime, EntryLayout, EntrySpec, LegacyName, Method, Sizes,
        ZipWriter,
    };
}

/// The image codecs, planning and pipeline, for `examples/` and the fuzz
/// targets, which measure and exercise them outside the server.
pub mod image_tools {
    pub use crate::image::codec::probe::probe;
    pub use crate::image::codec::{CodecError, Probe};
    pub use crate::image::http::options::{Options, Presets};
    pub use crate::image::plan::estimate::job_bytes;
    pub use crate::image::plan::geometry::plan;
    pub use crate::image::plan::shrink::jpeg_shrink;
    pub use crate::image::run::pipeline::{choose_format, effective_quality, process, Defaults};
}

/// Build everything from `settings` and serve until SIGTERM/SIGINT, then
/// drain. Errors are start-up errors meant for a human.
pub async fn run(settings: Settings) -> std::result::Result<(), String> {
    // 1. The memory budget and the origin every feature fetches from.
    let budget = budget::MemoryBudget::new(settings.memory_budget);
    let origin = origin::Origin::new(&settings.origin)?;
    tracing::info!(origin = %origin.describe(), "origin configured");
    // 2. The features, each from its own settings; zip uses image's job
    //    machinery, pass-through hands mod_zip manifests to zip.
    let image =
        image::ImageService::new(&settings.image, origin.clone(), &settings.origin, &budget)?;
    let zip = zip::ZipService::new(
        settings.zip,
        origin.clone(),
        budget.clone(),
        image.processor(),
        image.presets().clone(),
    );
    let passthrough = passthrough::PassthroughService::new(origin, budget.clone(), zip.clone());
    let shutdown = shutdown::Shutdown::new();
    // 3. The admin endpoints.
    let profiling_ready = settings.debug_token.is_some();
    let router = server::Router {
        health: health::HealthService::new(shutdown.clone()),
        passthrough,
        image,
        zip,
        metrics: admin::MetricsService::new(budget),
        profiling: admin::ProfilingService::new(settings.debug_token),
    };
    // 4. The listeners.
    let server = server::Server::bind(
        settings.server,
        settings.tls.clone(),
        router,
        shutdown.clone(),
    )
    .await?;
    match admin::profiling::heap::availability() {
        Ok(()) if profiling_ready => {
            tracing::info!("heap profiling available, inactive (POST /debug/pprof/heap/activate)")
        }
        Ok(()) => tracing::info!("heap profiling available; set --debug-token to reach it"),
        Err(why) => tracing::info!(why, "heap profiling not available"),
    }
    // 5. Serve until a signal starts the drain (see `shutdown`).
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown::wait_for_signal().await;
        tracing::info!("signal received; draining");
        trigger.trigger();
    });
    server.run().await;
    Ok(())
}
