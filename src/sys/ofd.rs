//! Open file description locks (`fcntl(F_OFD_SETLK / F_OFD_GETLK)`, through nix's
//! `FcntlArg::F_OFD_*`), on single bytes or ranges of a segment file, and the fork
//! handler that keeps a forked child from holding its parent's locks.
//!
//! An OFD lock belongs to the open file description, not to the process: two
//! descriptions of one file in one process exclude each other, and the kernel drops the
//! lock when the last descriptor of its description closes, however its process dies.
//! (nix 0.31 has the commands but no type for the lock record: the `flock` record is
//! libc's, which nix's `FcntlArg` takes.)
//!
//! Nothing here is swapped out under loom or Miri: no segment there is a file, so
//! nothing calls these (the choice is made where the segment is chosen).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};

use crate::sync::{replace_fd, take_fd, ProcessFd, NO_FD};

/// A lock record for `len` bytes from `start`, of kind `kind` (`F_WRLCK`, `F_UNLCK`).
fn flock(kind: libc::c_int, start: i64, len: i64) -> libc::flock {
    // SAFETY: flock is plain data; all-zero is a valid value (l_pid must be 0 for OFD
    // locks).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    fl
}

/// Takes the write lock on `byte` without waiting. `Ok(false)`: another open file
/// description holds it.
pub(crate) fn try_lock(fd: BorrowedFd<'_>, byte: i64) -> Result<bool, Errno> {
    try_lock_range(fd, byte, 1)
}

/// Lets the lock on `byte` go.
pub(crate) fn unlock(fd: BorrowedFd<'_>, byte: i64) {
    unlock_range(fd, byte, 1);
}

/// Takes the write lock on `len` bytes from `start` without waiting (all or none).
/// `Ok(false)`: another open file description holds one of them.
pub(crate) fn try_lock_range(fd: BorrowedFd<'_>, start: i64, len: i64) -> Result<bool, Errno> {
    let fl = flock(libc::F_WRLCK, start, len);
    loop {
        match fcntl(fd, FcntlArg::F_OFD_SETLK(&fl)) {
            Ok(_) => return Ok(true),
            Err(Errno::EAGAIN | Errno::EACCES) => return Ok(false),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Lets the lock on `len` bytes from `start` go.
pub(crate) fn unlock_range(fd: BorrowedFd<'_>, start: i64, len: i64) {
    let fl = flock(libc::F_UNLCK, start, len);
    // Unlocking cannot fail on a valid descriptor, short of a seccomp filter that makes
    // fcntl fail (the tests install one): nothing to do about it then (the lock goes
    // with the description), so the result is not asserted.
    let _ = fcntl(fd, FcntlArg::F_OFD_SETLK(&fl));
}

/// Whether an open file description other than the one of `fd` holds a lock on `byte`
/// (`F_OFD_GETLK`). `fd` may be read-only.
pub(crate) fn held(fd: BorrowedFd<'_>, byte: i64) -> Result<bool, Errno> {
    let mut fl = flock(libc::F_WRLCK, byte, 1);
    fcntl(fd, FcntlArg::F_OFD_GETLK(&mut fl))?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// A new open file description of the file of `fd`, for an endpoint's locks:
/// `/proc/self/fd/N` opened again (a `dup` would share the description, and the locks
/// of two endpoints of this process would not exclude each other).
pub(crate) fn reopen(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

// ---------------------------------------------------------------------------------
// Letting go of lock descriptors in forked children
// ---------------------------------------------------------------------------------

/// The lock descriptors of this process's endpoints, for the fork handler: -1 where
/// free. Lock-free, because the handler runs in the child of a fork that may have
/// happened while another thread was registering.
static LOCK_FDS: [ProcessFd; 256] = [const { ProcessFd::new(NO_FD) }; 256];

/// Runs in the child of every `fork()`: makes the child's copies of the lock
/// descriptors refer to `/dev/null` (`dup2` over them), so that the locks stay only
/// as long as the parent holds them. Not `close`: the child still has the endpoints'
/// `OwnedFd`s, and one dropped later would close whatever reused the number. Only
/// `open`, `dup3` and `close`, which are async-signal-safe.
extern "C" fn close_locks_in_child() {
    // SAFETY: a NUL-terminated path; the flags ask for nothing unusual.
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    for entry in &LOCK_FDS {
        let fd = take_fd(entry);
        if fd < 0 {
            continue;
        }
        if null >= 0 {
            // SAFETY: `fd` was open in the parent at the fork (entries are removed
            // before their descriptor closes), so it is this child's copy; dup2 over it
            // drops the child's reference to the locked description atomically (dup3:
            // keeping close-on-exec).
            unsafe { libc::dup3(null, fd, libc::O_CLOEXEC) };
        } else {
            // SAFETY: as above; without /dev/null, closing is the fallback.
            unsafe { libc::close(fd) };
        }
    }
    if null >= 0 {
        // SAFETY: the descriptor we opened above.
        unsafe { libc::close(null) };
    }
}

/// Makes forked children let go of `fd` (see [`close_locks_in_child`]); `false` if
/// the table is full (the locks then also live as long as a forked child keeps the
/// copy: a documented limit). Call [`keep_in_forked_children`] before `fd` closes.
pub(crate) fn drop_in_forked_children(fd: BorrowedFd<'_>) -> bool {
    static HANDLER: std::sync::Once = std::sync::Once::new();
    HANDLER.call_once(|| {
        // SAFETY: registers a handler with no captured state; it only calls
        // async-signal-safe functions.
        unsafe { libc::pthread_atfork(None, None, Some(close_locks_in_child)) };
    });
    LOCK_FDS
        .iter()
        .any(|entry| replace_fd(entry, NO_FD, fd.as_raw_fd()))
}

/// Undoes [`drop_in_forked_children`] for `fd` (before it is closed).
pub(crate) fn keep_in_forked_children(fd: BorrowedFd<'_>) {
    for entry in &LOCK_FDS {
        if replace_fd(entry, fd.as_raw_fd(), NO_FD) {
            return;
        }
    }
}
