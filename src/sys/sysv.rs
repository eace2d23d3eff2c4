//! System V shared memory: `shmget`, `shmctl`, `ftok`, and attachments (`shmat` /
//! `shmdt`) that detach when dropped. nix has no SysV shared memory: these are libc's.

use std::ffi::{c_void, CStr};
use std::ptr::NonNull;

use nix::errno::Errno;

/// `shmctl(IPC_STAT)`'s record: size, owner, mode, attachments.
pub(crate) use libc::shmid_ds as Stat;

/// Key 0: `shmget` makes a new segment that nobody can find by key.
pub(crate) const IPC_PRIVATE: i32 = libc::IPC_PRIVATE;

/// Makes a new segment of `len` bytes for `key` with permission bits `mode`, on huge
/// pages if `huge`; `EEXIST` if the key has one.
pub(crate) fn create(key: i32, len: usize, mode: u32, huge: bool) -> Result<i32, Errno> {
    let mut flags = libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as libc::c_int;
    if huge {
        flags |= libc::SHM_HUGETLB;
    }
    // SAFETY: shmget takes no pointers.
    Errno::result(unsafe { libc::shmget(key, len, flags) })
}

/// The id of the existing segment with `key` (size 0 and no `IPC_CREAT`: find, never
/// make); `ENOENT` if there is none.
pub(crate) fn lookup(key: i32) -> Result<i32, Errno> {
    // SAFETY: shmget takes no pointers.
    Errno::result(unsafe { libc::shmget(key, 0, 0) })
}

/// Marks the segment `shmid` for removal (`IPC_RMID`): it goes with its last
/// attachment.
pub(crate) fn remove(shmid: i32) -> Result<(), Errno> {
    // SAFETY: IPC_RMID takes no buffer.
    Errno::result(unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) }).map(drop)
}

/// `shmctl(IPC_STAT)` of the segment `shmid`.
pub(crate) fn stat(shmid: i32) -> Result<Stat, Errno> {
    let mut ds = std::mem::MaybeUninit::<Stat>::zeroed();
    // SAFETY: `ds` is a writable shmid_ds for IPC_STAT to fill.
    Errno::result(unsafe { libc::shmctl(shmid, libc::IPC_STAT, ds.as_mut_ptr()) })?;
    // SAFETY: IPC_STAT succeeded and filled it (and zeroed is a valid shmid_ds anyway).
    Ok(unsafe { ds.assume_init() })
}

/// `ftok(3)`: the key of file `path` and project `id`.
pub(crate) fn ftok(path: &CStr, id: u8) -> Result<i32, Errno> {
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    Errno::result(unsafe { libc::ftok(path.as_ptr(), id.into()) })
}

/// An attachment of a SysV segment (`shmat`), detached (`shmdt`) when dropped.
#[derive(Debug)]
pub(crate) struct Attachment {
    /// The address `shmat` returned: page aligned, the whole segment behind it.
    ptr: NonNull<u8>,
}

// SAFETY: an attachment is an address range of shared memory, detached by its one
// owner; nothing here reads or writes through it.
unsafe impl Send for Attachment {}
// SAFETY: as above; `&Attachment` gives only the address.
unsafe impl Sync for Attachment {}

impl Attachment {
    /// Attaches the whole segment `shmid` where the kernel chooses, read-write, or
    /// read-only if `read_only` (`SHM_RDONLY`).
    pub(crate) fn new(shmid: i32, read_only: bool) -> Result<Attachment, Errno> {
        let flags = if read_only { libc::SHM_RDONLY } else { 0 };
        // SAFETY: shmat with a null address lets the kernel choose where; the new
        // mapping aliases no Rust object.
        let ptr = unsafe { libc::shmat(shmid, std::ptr::null(), flags) };
        if ptr as usize == usize::MAX {
            return Err(Errno::last());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::EFAULT)?;
        Ok(Attachment { ptr })
    }

    /// Where it is attached.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// `mlock`s its first `len` bytes (the segment's size, or less).
    pub(crate) fn lock(&self, len: usize) -> Result<(), Errno> {
        // SAFETY: the range is inside this live attachment (the caller's `len`).
        unsafe { nix::sys::mman::mlock(self.ptr.cast::<c_void>(), len) }
    }

    /// Pre-faults its first `len` bytes for writing (`MADV_POPULATE_WRITE`, Linux
    /// 5.14; EINVAL before).
    pub(crate) fn populate_write(&self, len: usize) -> Result<(), Errno> {
        // SAFETY: the range is inside this live attachment; populating changes no byte.
        unsafe {
            nix::sys::mman::madvise(
                self.ptr.cast::<c_void>(),
                len,
                nix::sys::mman::MmapAdvise::MADV_POPULATE_WRITE,
            )
        }
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: the address shmat returned; nothing refers to the attachment any more
        // (every view of it borrows its owner).
        unsafe { libc::shmdt(self.ptr.as_ptr().cast::<c_void>()) };
    }
}
