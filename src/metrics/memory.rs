//! Memory gauges, read when `/metrics` is scraped: the one memory budget
//! (in use, capacity, waiters), the allocator's own counters from jemalloc
//! (allocated, active, resident, mapped), the process as the kernel sees it
//! (RSS, peak RSS, threads, open file descriptors), and whether heap
//! profiling is switched on.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

struct MemoryMetrics {
    budget_in_use: Gauge,
    budget_capacity: Gauge,
    budget_waiters: Gauge,
    allocator_allocated: Gauge,
    allocator_active: Gauge,
    allocator_resident: Gauge,
    allocator_mapped: Gauge,
    process_resident: Gauge,
    process_resident_max: Gauge,
    process_threads: Gauge,
    process_open_fds: Gauge,
    heap_profiling_active: Gauge,
    build_info: Family<VersionLabel, Gauge>,
}

static M: LazyLock<MemoryMetrics> = LazyLock::new(|| MemoryMetrics {
    budget_in_use: Gauge::default(),
    budget_capacity: Gauge::default(),
    budget_waiters: Gauge::default(),
    allocator_allocated: Gauge::default(),
    allocator_active: Gauge::default(),
    allocator_resident: Gauge::default(),
    allocator_mapped: Gauge::default(),
    process_resident: Gauge::default(),
    process_resident_max: Gauge::default(),
    process_threads: Gauge::default(),
    process_open_fds: Gauge::default(),
    heap_profiling_active: Gauge::default(),
    build_info: Family::default(),
});

pub(super) fn register(r: &mut Registry) {
    let bytes = |r: &mut Registry, name: &str, help: &str, g: &Gauge| {
        r.register_with_unit(name, help, Unit::Bytes, g.clone());
    };
    bytes(
        r,
        "memory_budget_in_use",
        "Bytes reserved from the memory budget (--memory-budget) right now",
        &M.budget_in_use,
    );
    bytes(
        r,
        "memory_budget_capacity",
        "Size of the memory budget (--memory-budget)",
        &M.budget_capacity,
    );
    r.register(
        "memory_budget_waiters",
        "Tasks waiting for memory budget to be released",
        M.budget_waiters.clone(),
    );
    if cfg!(feature = "jemalloc") {
        bytes(
            r,
            "allocator_allocated",
            "Bytes allocated by the application (jemalloc stats.allocated)",
            &M.allocator_allocated,
        );
        bytes(
            r,
            "allocator_active",
            "Bytes in pages the allocator has in use (jemalloc stats.active)",
            &M.allocator_active,
        );
        bytes(
            r,
            "allocator_resident",
            "Bytes in physically resident pages mapped by the allocator (jemalloc stats.resident)",
            &M.allocator_resident,
        );
        bytes(
            r,
            "allocator_mapped",
            "Bytes in chunks mapped by the allocator (jemalloc stats.mapped)",
            &M.allocator_mapped,
        );
    }
    bytes(
        r,
        "process_resident_memory",
        "Resident set size of the process (VmRSS)",
        &M.process_resident,
    );
    bytes(
        r,
        "process_resident_memory_max",
        "Peak resident set size of the process (VmHWM)",
        &M.process_resident_max,
    );
    r.register(
        "process_threads",
        "OS threads of the process",
        M.process_threads.clone(),
    );
    r.register(
        "process_open_fds",
        "Open file descriptors of the process",
        M.process_open_fds.clone(),
    );
    r.register(
        "heap_profiling_active",
        "1 while heap profiling is switched on (POST /debug/pprof/heap/activate)",
        M.heap_profiling_active.clone(),
    );
    r.register(
        "build",
        "Always 1; the label carries the sluice version",
        M.build_info.clone(),
    );
    M.build_info
        .get_or_create(&VersionLabel {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The memory budget's state at one moment.
#[derive(Debug, Clone, Copy)]
pub struct BudgetState {
    pub capacity_bytes: u64,
    pub in_use_bytes: u64,
    pub waiters: u64,
}

/// Set every gauge of this module: the budget's and the heap profiler's
/// from the caller, the allocator's and the process's read here.
pub fn refresh(budget: BudgetState, heap_profiling_active: bool) {
    M.budget_in_use.set(to_i64(budget.in_use_bytes));
    M.budget_capacity.set(to_i64(budget.capacity_bytes));
    M.budget_waiters.set(to_i64(budget.waiters));
    refresh_allocator();
    refresh_process();
    M.heap_profiling_active
        .set(i64::from(heap_profiling_active));
}

#[cfg(feature = "jemalloc")]
fn refresh_allocator() {
    use tikv_jemalloc_ctl::{epoch, stats};
    // jemalloc caches its statistics; advancing the epoch refreshes them.
    if epoch::advance().is_err() {
        return;
    }
    let set = |g: &Gauge, v: tikv_jemalloc_ctl::Result<usize>| {
        if let Ok(v) = v {
            g.set(to_i64(v as u64));
        }
    };
    set(&M.allocator_allocated, stats::allocated::read());
    set(&M.allocator_active, stats::active::read());
    set(&M.allocator_resident, stats::resident::read());
    set(&M.allocator_mapped, stats::mapped::read());
}

#[cfg(not(feature = "jemalloc"))]
fn refresh_allocator() {}

/// From `/proc/self/status` and `/proc/self/fd` (Linux); elsewhere the
/// gauges stay at 0.
fn refresh_process() {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let status = ProcStatus::parse(&status);
        if let Some(v) = status.rss_bytes {
            M.process_resident.set(to_i64(v));
        }
        if let Some(v) = status.hwm_bytes {
            M.process_resident_max.set(to_i64(v));
        }
        if let Some(v) = status.threads {
            M.process_threads.set(to_i64(v));
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        // The directory handle itself is one of the entries.
        M.process_open_fds
            .set(to_i64(fds.count().saturating_sub(1) as u64));
    }
}

/// This process's peak resident set size (VmHWM) in bytes, where /proc has
/// it (Linux). The measuring examples use it too.
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    ProcStatus::parse(&status).hwm_bytes
}

/// The few fields of `/proc/<pid>/status` that sluice reports.
#[derive(Debug, Default, PartialEq, Eq)]
struct ProcStatus {
    rss_bytes: Option<u64>,
    hwm_bytes: Option<u64>,
    threads: Option<u64>,
}

impl ProcStatus {
    fn parse(text: &str) -> Self {
        let mut s = ProcStatus::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let number = value
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok());
            match key {
                "VmRSS" => s.rss_bytes = number.map(|kib| kib * 1024),
                "VmHWM" => s.hwm_bytes = number.map(|kib| kib * 1024),
                "Threads" => s.threads = number,
                _ => {}
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_fields_are_read_in_bytes() {
        let text = "Name:\tsluice\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\nThreads:\t5\n";
        assert_eq!(
            ProcStatus::parse(text),
            ProcStatus {
                rss_bytes: Some(10 << 20),
                hwm_bytes: Some(20 << 20),
                threads: Some(5),
            }
        );
    }

    #[test]
    fn budget_gauges_follow_the_budget() {
        let state = |in_use| BudgetState {
            capacity_bytes: 8 << 20,
            in_use_bytes: in_use,
            waiters: 0,
        };
        refresh(state(3 << 20), false);
        assert_eq!(M.budget_in_use.get(), 3 << 20);
        assert_eq!(M.budget_capacity.get(), 8 << 20);
        refresh(state(0), false);
        assert_eq!(M.budget_in_use.get(), 0);
        assert!(
            M.process_resident.get() > 0,
            "VmRSS should be read on Linux"
        );
    }
}
