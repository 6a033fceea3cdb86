//! The jemalloc arena the image workers allocate from.
//!
//! An image job allocates and frees tens of MiB. jemalloc keeps freed pages
//! resident for its decay time (10 s by default) so that later allocations
//! can reuse them; under load (32 clients, the memory budget full) that
//! kept 60-90 MiB resident beyond the live bytes, and peak RSS went over
//! the budget + 48 MiB target. So the image workers share one arena of
//! their own whose freed pages go back to the system at once: their RSS
//! follows what the budget counts. The proxy path keeps the default arenas,
//! where reusing its 128 KiB chunks warm matters. libjpeg's and libwebp's
//! allocations on a worker thread land in the same arena (jemalloc also
//! serves C's malloc). The controls themselves are `sluice_ffi::jemalloc`.

/// Create the workers' arena; `None` without jemalloc or if it refuses.
pub fn create() -> Option<u32> {
    match sluice_ffi::jemalloc::create() {
        Ok(arena) => Some(arena),
        Err(why) => {
            tracing::info!(%why, "image workers use the default jemalloc arenas");
            None
        }
    }
}

/// Make the calling thread allocate from `arena`.
pub fn use_on_this_thread(arena: u32) {
    if let Err(why) = sluice_ffi::jemalloc::use_on_this_thread(arena) {
        tracing::warn!(%why, "image worker stays on its default arena");
    }
}
