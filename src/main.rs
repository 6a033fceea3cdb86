//! The `sluice` binary: parse flags, start logging, run. All logic lives in
//! the library so that tests and benchmarks drive exactly the same code.
//!
//! The binary also picks the allocator: jemalloc (cargo feature `jemalloc`,
//! on by default), whose counters `/metrics` reports and whose heap
//! profiler the admin listener can switch on (feature `heap-profiling`,
//! whose start-up options are `sluice_ffi::jemalloc::MALLOC_CONF`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use sluice::{Cli, Command};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    #[cfg(feature = "heap-profiling")]
    sluice_ffi::jemalloc::keep_malloc_conf();
    let cli = Cli::parse();
    let config = match cli.command {
        Some(Command::Serve(config)) => *config,
        Some(Command::Health(args)) => return sluice::health_probe::run(&args),
        Some(Command::Sign(args)) => return sluice::sign::run(&args),
        None => cli.config,
    };
    let settings = match config.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::from(2);
        }
    };
    sluice::init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sluice::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::from(2)
        }
    }
}
