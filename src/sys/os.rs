//! The plain system calls the segments and `inspect` use as nix has them (files,
//! permission bits, seals, `fallocate`, `statvfs`), re-exported so that the crate's
//! whole OS surface is named in `sys`; the C types and constants they take; and two
//! small wrappers of our own (`memlock_limit`, `kernel_copy`).

pub(crate) use libc::{mode_t, off_t, O_NOFOLLOW};
pub(crate) use nix::errno::Errno;
pub(crate) use nix::fcntl::{fallocate, fcntl, FallocateFlags, FcntlArg, OFlag, SealFlag};
pub(crate) use nix::sys::memfd::{memfd_create, MFdFlags};
pub(crate) use nix::sys::mman::{shm_open, shm_unlink};
pub(crate) use nix::sys::stat::{fchmod, fstat, stat, Mode};
pub(crate) use nix::sys::statvfs::fstatvfs;
pub(crate) use nix::unistd::ftruncate;

use std::os::fd::AsRawFd;

/// The soft `RLIMIT_MEMLOCK` of this process, in bytes.
pub(crate) fn memlock_limit() -> Option<u64> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a writable rlimit for getrlimit to fill.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut rl) };
    (r == 0).then_some(rl.rlim_cur)
}

/// The most bytes [`kernel_copy`] copies: a pipe write of at most `PIPE_BUF` bytes is
/// whole.
pub(crate) const KERNEL_COPY_MAX: usize = libc::PIPE_BUF;

/// Copies `out.len()` (at most [`KERNEL_COPY_MAX`]) bytes at `src` into `out` by
/// having the kernel copy them: written into a pipe from `src`, read back into `out`.
/// No Rust access reads `src` (see `inspect.rs` for why that matters); a fault is an
/// EFAULT, not a signal.
///
/// # Safety
///
/// `src` is valid for reads of `out.len()` bytes for the whole call.
pub(crate) unsafe fn kernel_copy(src: *const u8, out: &mut [u8]) -> Result<(), Errno> {
    debug_assert!(out.len() <= KERNEL_COPY_MAX);
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    loop {
        // SAFETY: the caller guarantees `src` readable for `out.len()` bytes; the
        // kernel reads them (EFAULT, not a fault, if it could not), we do not.
        let n = unsafe { libc::write(w.as_raw_fd(), src.cast(), out.len()) };
        match Errno::result(n) {
            Ok(n) if n as usize == out.len() => break,
            Ok(_) => return Err(Errno::EIO),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    let mut filled = 0;
    while filled < out.len() {
        match nix::unistd::read(&r, &mut out[filled..]) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => filled += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
