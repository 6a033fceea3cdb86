//! The `sluice` binary: parse flags, start logging, run. All logic lives in
//! the library so that tests and benchmarks drive exactly the same code.
//!
//! The binary also picks the allocator: jemalloc (cargo feature `jemalloc`,
//! on by default), whose counters `/metrics` reports and whose heap
//! profiler the admin listener can switch on (feature `heap-profiling`).

use std::process::ExitCode;

use clap::Parser;
use sluice::config::{Cli, Command};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its options from this symbol at start-up (then from
/// `MALLOC_CONF`, which can override them). `prof:true` builds the heap
/// profiler's data structures; `prof_active:false` keeps it from sampling
/// until `POST /debug/pprof/heap/activate`; `lg_prof_sample:19` samples one
/// allocation per 512 KiB allocated on average once active.
/// `dirty_decay_ms:1000` returns freed pages after ~1 s instead of ~10 s:
/// under image load (32 clients, budget full) the default kept freed memory
/// of the async threads (compressed inputs among it) resident, and peak RSS
/// reached 288-292 MiB against 244-255 MiB with it (the image workers' own arena purges at
/// once, see `image::worker_arena`). With the
/// `heap-profiling` feature jemalloc is built unprefixed, so the symbol is
/// `malloc_conf` (a prefixed build would read `_rjem_malloc_conf`).
#[cfg(feature = "heap-profiling")]
#[export_name = "malloc_conf"]
pub static MALLOC_CONF: MallocConf =
    MallocConf(c"prof:true,prof_active:false,lg_prof_sample:19,dirty_decay_ms:1000".as_ptr());

/// C's `const char *malloc_conf`.
#[cfg(feature = "heap-profiling")]
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a 'static, immutable, NUL-terminated string
// that nothing ever writes to, so sharing it between threads is sound.
#[cfg(feature = "heap-profiling")]
unsafe impl Sync for MallocConf {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.command {
        Some(Command::Serve(config)) => *config,
        Some(Command::Health(args)) => return sluice::health_probe::run(&args),
        Some(Command::Sign(args)) => return sluice::image::sign_command(&args),
        None => cli.config,
    };
    sluice::logging::init(config.log_format);
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
    match runtime.block_on(sluice::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::from(2)
        }
    }
}
