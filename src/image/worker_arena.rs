//! The jemalloc arena the image workers allocate from.
//!
//! An image job allocates and frees tens of MiB. jemalloc keeps freed pages
//! resident for its decay time (10 s by default) so that later allocations
//! can reuse them; under load (32 clients, the memory budget full) that
//! kept 60-90 MiB resident beyond the live bytes, and peak RSS went over
//! the budget + 48 MiB target. So the image workers share one arena of
//! their own whose freed pages go back to the system at once
//! (`dirty_decay_ms` and `muzzy_decay_ms` 0): their RSS follows what the
//! budget counts. The proxy path keeps the default arenas, where reusing
//! its 128 KiB chunks warm matters. libjpeg's and libwebp's allocations on
//! a worker thread land in the same arena (jemalloc also serves C's malloc).
//!
//! Why `unsafe`: jemalloc's controls are read and written through
//! `mallctl`, which tikv-jemalloc-ctl exposes as `unsafe fn`s, since the
//! value's type must match the control's C type. Each call below names
//! the control's type from jemalloc's manual.
#![allow(unsafe_code)]

/// Create the workers' arena; None without jemalloc or if it refuses.
#[cfg(feature = "jemalloc")]
pub fn create() -> Option<u32> {
    use tikv_jemalloc_ctl::raw;
    // SAFETY: "arenas.create" is an `unsigned` (u32) read-only control.
    let arena = unsafe { raw::read::<u32>(b"arenas.create\0") }.ok()?;
    for control in ["dirty_decay_ms", "muzzy_decay_ms"] {
        let name = format!("arena.{arena}.{control}\0");
        // SAFETY: both controls are `ssize_t` (isize); 0 purges at once.
        if let Err(e) = unsafe { raw::write::<isize>(name.as_bytes(), 0) } {
            tracing::warn!(error = %e, control, "cannot tune the image workers' arena");
        }
    }
    Some(arena)
}

#[cfg(not(feature = "jemalloc"))]
pub fn create() -> Option<u32> {
    None
}

/// Make the calling thread allocate from `arena`.
#[cfg(feature = "jemalloc")]
pub fn use_on_this_thread(arena: u32) {
    // SAFETY: "thread.arena" is an `unsigned` (u32) read-write control.
    if let Err(e) = unsafe { tikv_jemalloc_ctl::raw::write::<u32>(b"thread.arena\0", arena) } {
        tracing::warn!(error = %e, "image worker stays on its default arena");
    }
}

#[cfg(not(feature = "jemalloc"))]
pub fn use_on_this_thread(_arena: u32) {}

/// The arena the calling thread allocates from (for tests and debugging).
#[cfg(feature = "jemalloc")]
pub fn current() -> Option<u32> {
    // SAFETY: "thread.arena" is an `unsigned` (u32) read-write control.
    unsafe { tikv_jemalloc_ctl::raw::read::<u32>(b"thread.arena\0") }.ok()
}

#[cfg(all(test, feature = "jemalloc"))]
mod tests {
    #[test]
    fn a_thread_moves_to_the_created_arena() {
        let arena = super::create().expect("jemalloc creates arenas");
        let seen = std::thread::spawn(move || {
            super::use_on_this_thread(arena);
            super::current()
        })
        .join()
        .unwrap();
        assert_eq!(seen, Some(arena));
        assert_ne!(super::current(), Some(arena), "other threads stay");
    }
}
