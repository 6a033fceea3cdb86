//! jemalloc controls: the arena the image workers allocate from, and the
//! start-up options of the heap profiler.
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
/// Create the workers' arena; None without jemalloc or if it refuses.
#[cfg(feature = "jemalloc")]
pub fn create() -> Result<u32, String> {
    use tikv_jemalloc_ctl::raw;
    // SAFETY: "arenas.create" is an `unsigned` (u32) read-only control.
    let arena = unsafe { raw::read::<u32>(b"arenas.create\0") }.map_err(|e| e.to_string())?;
    for control in ["dirty_decay_ms", "muzzy_decay_ms"] {
        let name = format!("arena.{arena}.{control}\0");
        // SAFETY: both controls are `ssize_t` (isize); 0 purges at once.
        unsafe { raw::write::<isize>(name.as_bytes(), 0) }
            .map_err(|e| format!("cannot set {control} of the new arena: {e}"))?;
    }
    Ok(arena)
}

#[cfg(not(feature = "jemalloc"))]
pub fn create() -> Result<u32, String> {
    Err("built without jemalloc".into())
}

/// Make the calling thread allocate from `arena`.
#[cfg(feature = "jemalloc")]
pub fn use_on_this_thread(arena: u32) -> Result<(), String> {
    // SAFETY: "thread.arena" is an `unsigned` (u32) read-write control.
    unsafe { tikv_jemalloc_ctl::raw::write::<u32>(b"thread.arena\0", arena) }
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "jemalloc"))]
pub fn use_on_this_thread(_arena: u32) -> Result<(), String> {
    Err("built without jemalloc".into())
}

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
            super::use_on_this_thread(arena).unwrap();
            super::current()
        })
        .join()
        .unwrap();
        assert_eq!(seen, Some(arena));
        assert_ne!(super::current(), Some(arena), "other threads stay");
    }
}

/// jemalloc reads its options from this symbol at start-up (then from
/// `MALLOC_CONF`, which can override them). `prof:true` builds the heap
/// profiler's data structures; `prof_active:false` keeps it from sampling
/// until `POST /debug/pprof/heap/activate`; `lg_prof_sample:19` samples one
/// allocation per 512 KiB allocated on average once active.
/// `dirty_decay_ms:1000` returns freed pages after ~1 s instead of ~10 s:
/// under image load (32 clients, budget full) the default kept freed
/// memory of the async threads (compressed inputs among it) resident, and
/// peak RSS reached 288-292 MiB against 244-255 MiB with it (the image
/// workers' own arena purges at once, see [`create`]).
/// `background_thread:true`: jemalloc purges only when something
/// allocates, so an idle process kept what a burst had touched (RSS 37 MiB
/// against a 14–16 MiB baseline, 30 s after 32 clients of zips and images
/// from an nginx origin); its purging threads give it back within ~2 s
/// (22–23 MiB), at a burst time within the runs' noise
/// (`bench/memory-return.sh`, `tests/memory_return.rs`). With the
/// `heap-profiling` feature jemalloc is built unprefixed, so the symbol is
/// `malloc_conf` (a prefixed build would read `_rjem_malloc_conf`). The
/// binary refers to it ([`keep_malloc_conf`]) so that the linker keeps it.
#[cfg(feature = "heap-profiling")]
#[export_name = "malloc_conf"]
pub static MALLOC_CONF: MallocConf = MallocConf(
    c"prof:true,prof_active:false,lg_prof_sample:19,dirty_decay_ms:1000,background_thread:true"
        .as_ptr(),
);

/// C's `const char *malloc_conf`.
#[cfg(feature = "heap-profiling")]
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a 'static, immutable, NUL-terminated string
// that nothing ever writes to, so sharing it between threads is sound.
#[cfg(feature = "heap-profiling")]
unsafe impl Sync for MallocConf {}

/// Make the binary refer to [`MALLOC_CONF`], so that the linker keeps the
/// object file that defines it (jemalloc looks it up before `main`).
#[cfg(feature = "heap-profiling")]
pub fn keep_malloc_conf() {
    std::hint::black_box(&MALLOC_CONF);
}
