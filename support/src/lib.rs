//! What shmlane's tests, criterion benches and the `shmlane bench` command share,
//! written once here; not published (`publish = false`).
//!
//! - [`fork`]: forking a role into a child process, reporting how it ended, reaping it
//!   (and SIGKILLing it when it is dropped still running);
//! - [`cpu`]: the CPUs this process may use, pinning to one;
//! - [`clock`]: `CLOCK_MONOTONIC` in nanoseconds, comparable between processes;
//! - [`mem`]: a shared anonymous mapping that forked children inherit;
//! - [`minimal_ring`]: the minimal SPSC ring in shared memory, the yardstick of
//!   one-way throughput that `shmlane bench` and the criterion bench measure beside
//!   shmlane;
//! - [`futex`]: raw shared (not private) `FUTEX_WAIT` / `FUTEX_WAKE`;
//! - [`pipes`]: the kernel baselines' descriptors: pipes, UNIX socket pairs, their
//!   buffer sizes;
//! - [`stamp`]: the messages of the benches (a sequence word and a tag byte, cheap
//!   enough to check on every message of a timed loop);
//! - [`payload`]: the messages of the tests (a sequence number and a checksum of a
//!   derived body), a deterministic [`payload::Rng`], and a checkable byte stream;
//! - `seccomp` (feature `seccomp`, for the library's tests): the seccomp filters of
//!   the system-call tests, built with seccompiler.
//!
//! Every function that can fail returns an [`std::io::Result`] whose error says what
//! was called and why it failed: the bench command passes it on, tests and benches
//! panic with it.

#![deny(unsafe_op_in_unsafe_fn, missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks, missing_debug_implementations)]

pub mod clock;
pub mod cpu;
pub mod fork;
pub mod futex;
pub mod mem;
pub mod minimal_ring;
pub mod payload;
pub mod pipes;
#[cfg(feature = "seccomp")]
pub mod seccomp;
pub mod stamp;

/// The error of the last failed system call, with `what` (the call and its
/// arguments) in front: `"pipe2: Too many open files"`.
pub(crate) fn os_error(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}
