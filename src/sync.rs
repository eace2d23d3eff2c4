//! The one place that names atomics, `UnsafeCell`-like tracking and spin hints.
//!
//! Normal builds use `std`; under `cfg(loom)` the same names come from loom, so the
//! protocol code in `spsc`, `frame` and `wait` is model-checked unchanged. Nothing
//! else in the crate names `std::sync::atomic` (`.ci/run` checks it with a grep:
//! clippy's `disallowed-types` cannot tell the shim's re-export from the original).

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{compiler_fence, fence, AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// A process-local statistic (futex call counts): always std's atomic, also under
/// loom, because it is no part of any protocol between endpoints. Only the tests'
/// counters (features `test-hooks`, `fuzz-harness`) use it.
#[cfg(any(feature = "test-hooks", feature = "fuzz-harness", fuzzing))]
pub(crate) type ProcessCounter = std::sync::atomic::AtomicU64;

/// Relaxed increment of a [`ProcessCounter`].
#[cfg(any(feature = "test-hooks", feature = "fuzz-harness", fuzzing))]
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn count(counter: &ProcessCounter) -> u64 {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Relaxed read of a [`ProcessCounter`].
#[cfg(any(feature = "test-hooks", feature = "fuzz-harness", fuzzing))]
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn read_count(counter: &ProcessCounter) -> u64 {
    counter.load(std::sync::atomic::Ordering::Relaxed)
}

/// A process-local flag (the membarrier registration state): std's atomic also under
/// loom, for the same reason as [`ProcessCounter`].
pub(crate) type ProcessFlag = std::sync::atomic::AtomicU8;

/// Reads a [`ProcessFlag`] (Acquire: pairs with `set_flag`).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn read_flag(flag: &ProcessFlag) -> u8 {
    flag.load(std::sync::atomic::Ordering::Acquire)
}

/// Sets a [`ProcessFlag`] (Release: what was done before is visible to its readers).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn set_flag(flag: &ProcessFlag, value: u8) {
    flag.store(value, std::sync::atomic::Ordering::Release);
}

/// A process-local table entry (the descriptors `liveness.rs` closes in forked
/// children): std's atomic also under loom, for the same reason as
/// [`ProcessCounter`], and because a fork handler reads it.
pub(crate) type ProcessFd = std::sync::atomic::AtomicI32;

/// Empty [`ProcessFd`] entry.
pub(crate) const NO_FD: i32 = -1;

/// Takes what a [`ProcessFd`] holds, leaving it empty.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn take_fd(entry: &ProcessFd) -> i32 {
    entry.swap(NO_FD, std::sync::atomic::Ordering::Relaxed)
}

/// Replaces `current` by `new` in a [`ProcessFd`]; whether it did.
pub(crate) fn replace_fd(entry: &ProcessFd, current: i32, new: i32) -> bool {
    entry
        .compare_exchange(
            current,
            new,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        )
        .is_ok()
}

/// Asks the CPU to start fetching the cache line at `p` for reading. A hint: no
/// memory is accessed, so any address is fine; a no-op under loom and Miri and off
/// x86-64.
#[inline(always)]
pub(crate) fn prefetch_read(p: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    // SAFETY: PREFETCHT0 is a hint that never faults and accesses no memory.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    let _ = p;
}

/// Asks the CPU to start fetching the cache line at `p`, which we are about to write.
/// A hint, as [`prefetch_read`]. `_MM_HINT_ET0` compiles to PREFETCHW only with the
/// `prfchw` target feature, which the x86-64 baseline lacks; without it, it is
/// PREFETCHT0, a read prefetch, and the store still has to take ownership of the line.
/// A real PREFETCHW (inline assembly) was measured no better: MPMC 1P1C 64 B
/// 37.9 M msg/s against 41.6-42.6 M with this, in one `bench --quick` A/B.
#[inline(always)]
pub(crate) fn prefetch_write(p: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    // SAFETY: PREFETCHW is a hint that never faults and accesses no memory.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_ET0 }>(p.cast())
    };
    let _ = p;
}

/// A hint to the CPU that we are in a spin loop; under loom, a yield so the model
/// checker can schedule the thread we wait for.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Gives up the CPU to another runnable thread or process.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Views an 8-byte-aligned word of a shared mapping as an `AtomicU64`.
///
/// # Safety
///
/// - `ptr` is non-null, 8-byte aligned and valid for reads and writes of 8 bytes
///   for the whole lifetime `'a` (the mapping outlives every reference handed out);
/// - every access to those 8 bytes that may race with this one is atomic; plain
///   (non-atomic) accesses happen only where the ring protocol orders them with a
///   Release/Acquire pair.
#[cfg(not(loom))]
#[inline]
pub(crate) unsafe fn atomic_u64_at<'a>(ptr: *mut u64) -> &'a AtomicU64 {
    debug_assert!(!ptr.is_null() && ptr as usize % 8 == 0);
    // SAFETY: the caller guarantees alignment, validity for 'a and the absence of
    // racing non-atomic accesses, which is what `from_ptr` requires.
    unsafe { AtomicU64::from_ptr(ptr) }
}

/// Reads an 8-byte-aligned word of a mapping that may be read-only (a SysV segment
/// attached with `SHM_RDONLY`, for inspection), with a Relaxed atomic load: the one
/// atomic access the standard library allows on read-only memory.
///
/// # Safety
///
/// - `ptr` is non-null, 8-byte aligned and valid for reads of 8 bytes during the call;
/// - every access to those 8 bytes that may race with this one is atomic.
#[cfg(not(loom))]
#[inline]
pub(crate) unsafe fn load_relaxed_u64(ptr: *const u64) -> u64 {
    debug_assert!(!ptr.is_null() && ptr as usize % 8 == 0);
    // SAFETY: the caller guarantees alignment and validity for reads and that racing
    // accesses are atomic; a Relaxed load of a register-sized atomic is allowed on
    // read-only memory ("Atomic accesses to read-only memory", `std::sync::atomic`),
    // and `load` never writes through the reference.
    unsafe { AtomicU64::from_ptr(ptr.cast_mut()) }.load(Ordering::Relaxed)
}
