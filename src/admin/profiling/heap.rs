//! Heap profiles from jemalloc, as gzipped pprof protobuf.
//!
//! The binary links jemalloc with profiling compiled in and sets
//! `prof:true,prof_active:false` (see `src/main.rs`): the profiling
//! machinery exists but samples nothing until [`activate`]. While active,
//! jemalloc records a stack trace for one allocation per 512 KiB allocated
//! on average (`lg_prof_sample:19`); [`dump`] writes the live samples and
//! `jemalloc_pprof` turns them into a pprof profile, symbolized in-process
//! from the binary's own debug info, so `go tool pprof` shows function
//! names without needing the binary. [`deactivate`] stops sampling and
//! drops what was collected.
//!
//! Without the `heap-profiling` cargo feature, or when jemalloc was started
//! with `prof:false`, every call answers [`HeapError::Unavailable`].

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;

/// Why a heap profiling request could not be carried out. (Without the
/// `heap-profiling` feature only `Unavailable` is ever made.)
#[derive(Debug)]
#[cfg_attr(not(feature = "heap-profiling"), allow(dead_code))]
pub enum HeapError {
    /// This process cannot profile its heap (feature off, or `prof:false`).
    Unavailable(&'static str),
    /// A profile was asked for while profiling is switched off.
    Inactive,
    /// jemalloc or the conversion to pprof failed.
    Failed(Error),
}

/// Whether profiling is switched on, mirrored here so that `/metrics` can
/// read it without waiting for a dump in progress.
static ACTIVE: AtomicBool = AtomicBool::new(false);

pub fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Whether this process can take heap profiles at all, for the start-up log.
pub fn availability() -> Result<(), &'static str> {
    imp::availability()
}

#[cfg(feature = "heap-profiling")]
mod imp {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use jemalloc_pprof::{JemallocProfCtl, PROF_CTL};
    use tokio::sync::Mutex;

    use super::{HeapError, ACTIVE};
    use crate::admin::profiling::pprof_fixup;
    use crate::error::Error;

    fn ctl() -> Result<&'static Arc<Mutex<JemallocProfCtl>>, HeapError> {
        PROF_CTL.as_ref().ok_or(HeapError::Unavailable(
            "jemalloc runs with profiling off (opt.prof is false; is prof:false set in MALLOC_CONF?)",
        ))
    }

    pub fn availability() -> Result<(), &'static str> {
        match ctl() {
            Ok(_) => Ok(()),
            Err(HeapError::Unavailable(why)) => Err(why),
            Err(_) => Ok(()),
        }
    }

    pub async fn activate() -> Result<(), HeapError> {
        let mut ctl = ctl()?.lock().await;
        ctl.activate().map_err(|e| {
            HeapError::Failed(Error::internal("could not activate heap profiling").with_cause(e))
        })?;
        ACTIVE.store(true, Ordering::Relaxed);
        Ok(())
    }

    pub async fn deactivate() -> Result<(), HeapError> {
        let mut ctl = ctl()?.lock().await;
        ctl.deactivate().map_err(|e| {
            HeapError::Failed(Error::internal("could not deactivate heap profiling").with_cause(e))
        })?;
        ACTIVE.store(false, Ordering::Relaxed);
        Ok(())
    }

    pub async fn dump() -> Result<Vec<u8>, HeapError> {
        let mut ctl = ctl()?.clone().lock_owned().await;
        if !ctl.activated() {
            return Err(HeapError::Inactive);
        }
        // Writing the dump to a temporary file, parsing it and symbolizing
        // the stacks is blocking work that can take a while the first time
        // (debug info is loaded): keep it off the async workers.
        type Cause = Box<dyn std::error::Error + Send + Sync>;
        let dumped = tokio::task::spawn_blocking(move || {
            let pprof = ctl.dump_pprof().map_err(Cause::from)?;
            drop(ctl);
            pprof_fixup::fix(&pprof, pprof_fixup::ALLOCATOR_FRAMES).map_err(Cause::from)
        });
        match dumped.await {
            Ok(Ok(pprof)) => Ok(pprof),
            Ok(Err(e)) => Err(HeapError::Failed(
                Error::internal("could not write the heap profile").with_cause(e),
            )),
            Err(e) => Err(HeapError::Failed(
                Error::internal("the heap profile task failed").with_cause(e),
            )),
        }
    }
}

#[cfg(not(feature = "heap-profiling"))]
mod imp {
    use super::HeapError;

    const NOT_BUILT: HeapError =
        HeapError::Unavailable("sluice was built without the heap-profiling cargo feature");

    pub fn availability() -> Result<(), &'static str> {
        Err("sluice was built without the heap-profiling cargo feature")
    }

    pub async fn activate() -> Result<(), HeapError> {
        Err(NOT_BUILT)
    }

    pub async fn deactivate() -> Result<(), HeapError> {
        Err(NOT_BUILT)
    }

    pub async fn dump() -> Result<Vec<u8>, HeapError> {
        Err(NOT_BUILT)
    }
}

/// Start sampling allocations.
pub use imp::activate;
/// Stop sampling and discard the samples collected so far.
pub use imp::deactivate;
/// The live heap samples as a gzipped pprof profile; [`HeapError::Inactive`]
/// when profiling is switched off (there would be nothing in it).
pub use imp::dump;
