//! Shared, read-write mappings of a file (a POSIX shared-memory object or a memfd),
//! made and unmade by memmap2's `MmapRaw`: raw pointers only, never a Rust slice over
//! memory that another process writes. `MAP_POPULATE` through `MmapOptions::populate`.
//! Huge pages need no flag here: the file is on hugetlbfs (or a `MFD_HUGETLB` memfd),
//! which maps on huge pages by itself (memmap2's `huge` is for anonymous maps only).

use std::os::fd::{AsRawFd, BorrowedFd};

use memmap2::{Advice, MmapOptions, MmapRaw};
use nix::errno::Errno;

/// The errno of an I/O error from memmap2 (EIO if it has none).
fn errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Maps the first `len` bytes of `fd`, shared and read-write, at an address the
/// kernel chooses; pre-faulted if `populate`. `len` must not be 0.
pub(crate) fn map_shared(fd: BorrowedFd<'_>, len: usize, populate: bool) -> Result<MmapRaw, Errno> {
    let mut options = MmapOptions::new();
    options.len(len);
    if populate {
        options.populate();
    }
    options.map_raw(fd.as_raw_fd()).map_err(errno)
}

/// `mlock`s the whole mapping.
pub(crate) fn lock(map: &MmapRaw) -> Result<(), Errno> {
    map.lock().map_err(errno)
}

/// Pre-faults the whole mapping for writing (`MADV_POPULATE_WRITE`, Linux 5.14;
/// EINVAL before).
pub(crate) fn populate_write(map: &MmapRaw) -> Result<(), Errno> {
    map.advise(Advice::PopulateWrite).map_err(errno)
}
