//! sluice: a streaming reverse proxy for image origins.
//!
//! Data flows one way: an [`origin`] produces a response whose body is a
//! stream, a transform ([`encoding`]) may rewrite it chunk by chunk, and a
//! sink (the client connection in [`server`]) consumes it. No route holds a
//! whole body in memory.
//!
//! Errors: there is one error type, [`error::Error`]. It records which side
//! a failure came from (upstream, downstream, internal) and what kind it is,
//! which is what a proxy needs to choose between 502, 504 and a 4xx, or to
//! abort a response that has already started. `anyhow` is not used; the
//! binary only prints start-up errors.
// No unsafe code, except the one module that calls libwebp's C API
// (`image::webp_lossy`), which allows it for itself.
#![deny(unsafe_code)]

pub mod access_log;
pub mod body;
pub mod budget;
pub mod conditional;
pub mod config;
pub mod encoding;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod headers;
pub mod health;
pub mod health_probe;
pub mod image;
pub mod logging;
pub mod metrics;
pub mod origin;
pub mod passthrough;
pub mod profiling;
pub mod router;
pub mod server;
pub mod shutdown;
pub mod splice;
pub mod upload;
pub mod zip;

pub use config::{Cli, Config};
pub use error::{Error, Result};

/// Run the server with `config` until SIGTERM/SIGINT, then drain.
pub async fn run(config: Config) -> std::result::Result<(), String> {
    let shutdown = shutdown::Shutdown::new();
    let server = server::Server::bind(&config, shutdown.clone()).await?;
    match profiling::heap::availability() {
        Ok(()) if config.debug_token.is_some() => {
            tracing::info!("heap profiling available, inactive (POST /debug/pprof/heap/activate)")
        }
        Ok(()) => tracing::info!("heap profiling available; set --debug-token to reach it"),
        Err(why) => tracing::info!(why, "heap profiling not available"),
    }
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown::wait_for_signal().await;
        tracing::info!("signal received; draining");
        trigger.trigger();
    });
    server.run().await;
    Ok(())
}
