//! What the shared-memory backings have in common:
//!
//! - [`Mapping`]: a shared mapping made by `mmap` (POSIX, memfd) or `shmat` (SysV),
//!   unmade the same way, with the one `unsafe` view of its header and data region;
//! - sizing a new segment ([`object_len`]), including huge pages, and the last steps of
//!   every create ([`init_segment`]: lock the memory if asked, write the header, publish
//!   READY);
//! - the permission check of every open ([`check_permissions`]): owner and mode,
//!   before anything is mapped, and of a SysV segment its creator too
//!   ([`check_creator`]);
//! - the open discipline ([`open_object`]): size the object before mapping anything,
//!   map the header, wait (bounded) for READY, validate every field, check the size
//!   again, then map the whole segment.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::sys::os::{self, fstat, Errno};
use crate::sys::{mmap, sysv};

use super::backing::MemoryOptions;
use crate::header::{Header, HeaderFault, RingParams, HEADER_SIZE, STATE_POISONED};
use crate::options::OpenOptions;
use crate::region::DataRegion;
use crate::Error;

/// How long `open` waits for a creator that is still initialising the segment.
pub(crate) const READY_WAIT: Duration = Duration::from_secs(2);

/// The base page size; every mapping is a whole number of pages.
const PAGE: usize = 4096;

pub(crate) fn io_err(op: &'static str, name: &str, e: Errno) -> Error {
    Error::Io {
        op,
        name: name.to_string(),
        source: std::io::Error::from(e),
    }
}

/// An `Io` error whose message says what to do, not only the errno.
fn explained(op: &'static str, name: &str, e: Errno, what_to_do: String) -> Error {
    Error::Io {
        op,
        name: name.to_string(),
        source: std::io::Error::new(std::io::Error::from(e).kind(), format!("{e}: {what_to_do}")),
    }
}

// ---------------------------------------------------------------------------------
// Huge pages
// ---------------------------------------------------------------------------------

use crate::sys::procfs::meminfo;

/// The default huge page size, or an error saying the kernel has none.
pub(crate) fn huge_page_size(name: &str) -> Result<usize, Error> {
    match meminfo("Hugepagesize") {
        Some(size) if size.is_power_of_two() && size as usize >= PAGE => Ok(size as usize),
        _ => Err(Error::Io {
            op: "huge pages",
            name: name.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "this kernel has no huge pages (no Hugepagesize in /proc/meminfo)",
            ),
        }),
    }
}

/// An error of a huge-page allocation (`mmap` of a hugetlb file, `shmget(SHM_HUGETLB)`),
/// with what to do about it.
pub(crate) fn huge_err(op: &'static str, name: &str, e: Errno, huge: usize) -> Error {
    match e {
        Errno::ENOMEM | Errno::ENOSPC => {
            let count = |key| meminfo(key).map_or("?".to_string(), |n| n.to_string());
            explained(
                op,
                name,
                e,
                format!(
                    "not enough free huge pages of {} KiB for the ring (HugePages_Free {} of \
                     HugePages_Total {} in /proc/meminfo): reserve more with vm.nr_hugepages, \
                     or create the ring without huge_pages",
                    huge / 1024,
                    count("HugePages_Free"),
                    count("HugePages_Total"),
                ),
            )
        }
        Errno::EPERM => explained(
            op,
            name,
            e,
            "this process may not use huge pages for shared memory (it needs CAP_IPC_LOCK \
             or to be in the group vm.hugetlb_shm_group)"
                .to_string(),
        ),
        _ => io_err(op, name, e),
    }
}

/// `e`, with what to do about it if it is the failure of a huge-page allocation
/// (`huge` is the huge page size of a segment that asked for them).
pub(crate) fn on_huge_pages(e: Error, huge: Option<usize>) -> Error {
    match (huge, e) {
        (Some(huge), Error::Io { op, name, source }) => match source.raw_os_error() {
            Some(errno) => huge_err(op, &name, Errno::from_raw(errno), huge),
            None => Error::Io { op, name, source },
        },
        (_, e) => e,
    }
}

/// The length of a new segment's object: header + capacity, rounded up to whole huge
/// pages if it is to be backed by them (the header then has a huge page to itself
/// minus the capacity's share: a huge-page ring of capacity C takes C + one huge page).
/// Returns the length and the huge page size.
pub(crate) fn object_len(
    params: &RingParams,
    mem: &MemoryOptions,
    name: &str,
) -> Result<(usize, Option<usize>), Error> {
    let len = params.segment_len();
    if !mem.huge_pages {
        return Ok((len, None));
    }
    let huge = huge_page_size(name)?;
    if params.capacity % huge != 0 {
        return Err(Error::InvalidOptions {
            reason: format!(
                "huge_pages(true) needs a capacity that is a multiple of the huge page size \
                 ({huge} bytes); {} is not",
                params.capacity
            ),
        });
    }
    Ok((len.next_multiple_of(huge), Some(huge)))
}

/// The last steps of every create, once the object is sized and mapped: lock the
/// memory if asked, then write the header and publish READY.
pub(crate) fn init_segment(
    map: &Mapping,
    params: &RingParams,
    mem: &MemoryOptions,
    name: &str,
) -> Result<(), Error> {
    if mem.lock_memory {
        map.lock(name)?;
    }
    map.header().init(
        params,
        params.segment_len() as u64,
        (params.cells() > 0).then(|| map.cell_table(params)),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------
// Reserving the memory of a new segment
// ---------------------------------------------------------------------------------
//
// A shared-memory file gets its pages when they are first touched. On a tmpfs with a
// size limit (/dev/shm: half the RAM by default, 64 MiB in Docker) a page that does
// not fit raises SIGBUS at the write that touches it, in the middle of a transfer. So
// every create reserves the whole segment first, and running out is `Error::NoSpace`
// at creation, naming where the memory comes from, the size asked and the space free:
//
// - a POSIX object (/dev/shm) or hugetlbfs file: `fallocate(2)` over the whole length.
//   tmpfs allocates (and on failure gives back) the pages; hugetlbfs reserves the huge
//   pages (its mmap reserves them too, so that is twice safe). A filesystem without
//   fallocate (EOPNOTSUPP) is populated through the mapping instead:
//   `MADV_POPULATE_WRITE` fails with EFAULT where a touch would raise SIGBUS.
// - a memfd and a SysV segment live in the kernel's internal shm mount, which has no
//   size limit: their pages never SIGBUS for want of space, but come from memory. A
//   ring larger than the memory available (MemAvailable) is refused, so that the
//   reservation cannot run the machine into the OOM killer; then the memfd is
//   fallocated and the SysV segment populated (`MADV_POPULATE_WRITE`; kernels before
//   5.14 have no such advice: there the SysV segment stays lazy, accounted at `shmget`
//   as the kernel does without SHM_NORESERVE). A memory cgroup that runs out while
//   they are reserved may OOM-kill the creator instead of failing the call: at
//   creation either way, never mid-transfer.
// - huge pages of a memfd (MFD_HUGETLB) and of SysV (SHM_HUGETLB) are reserved by the
//   kernel when they are mapped or made (`huge_err` explains a failure).

/// Where the memory of a memfd or SysV segment comes from, for `Error::NoSpace`.
pub(crate) const MEMFD_MEMORY: &str = "memfd (kernel shm mount)";
/// See [`MEMFD_MEMORY`].
pub(crate) const SYSV_MEMORY: &str = "SysV shared memory";

/// `Error::NoSpace` for the segment `name` of `len` bytes in `filesystem`.
fn no_space(name: &str, filesystem: &str, len: usize, free: Option<u64>, e: Errno) -> Error {
    Error::NoSpace {
        name: name.to_string(),
        filesystem: filesystem.to_string(),
        asked: len as u64,
        free,
        source: std::io::Error::from(e),
    }
}

/// Bytes free for an unprivileged writer on the filesystem of `fd`; `None` if it has no
/// size limit (the kernel's internal shm mount reports no blocks at all).
fn free_space(fd: BorrowedFd<'_>) -> Option<u64> {
    let st = os::fstatvfs(fd).ok()?;
    if st.blocks() == 0 {
        return None;
    }
    Some((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

/// Refuses a segment of `len` bytes whose memory comes from no size-limited filesystem
/// (memfd, SysV) if it is larger than the memory available now (`MemAvailable`).
pub(crate) fn check_memory(name: &str, memory: &str, len: usize) -> Result<(), Error> {
    match meminfo("MemAvailable") {
        Some(available) if len as u64 > available => {
            Err(no_space(name, memory, len, Some(available), Errno::ENOMEM))
        }
        _ => Ok(()),
    }
}

/// Reserves the first `len` bytes of the new object `fd` (sized already) in `filesystem`
/// (the mount it lives in, for the error), retrying when a signal interrupts it.
/// Returns `false` if the filesystem has no `fallocate`: then call
/// [`Mapping::reserve`] once it is mapped.
pub(crate) fn reserve_file(
    fd: BorrowedFd<'_>,
    len: usize,
    name: &str,
    filesystem: &str,
    huge: Option<usize>,
) -> Result<bool, Error> {
    use os::{fallocate, FallocateFlags};
    let Ok(length) = os::off_t::try_from(len) else {
        return Err(no_space(
            name,
            filesystem,
            len,
            free_space(fd),
            Errno::EFBIG,
        ));
    };
    loop {
        match fallocate(fd, FallocateFlags::empty(), 0, length) {
            Ok(()) => return Ok(true),
            Err(Errno::EINTR) => continue,
            // No fallocate on this filesystem (EINVAL: some say so that way).
            Err(Errno::EOPNOTSUPP | Errno::ENOSYS | Errno::EINVAL) => return Ok(false),
            Err(e @ (Errno::ENOSPC | Errno::ENOMEM)) => {
                return Err(match huge {
                    Some(huge) => huge_err("fallocate", name, e, huge),
                    None => no_space(name, filesystem, len, free_space(fd), e),
                })
            }
            Err(e) => return Err(io_err("fallocate", name, e)),
        }
    }
}

// ---------------------------------------------------------------------------------
// Copies of a header
// ---------------------------------------------------------------------------------

/// A private, aligned copy of a segment header.
#[repr(C, align(64))]
pub(crate) struct HeaderCopy(pub(crate) [u8; HEADER_SIZE]);

static_assertions::const_assert!(
    std::mem::size_of::<HeaderCopy>() == std::mem::size_of::<Header>()
        && std::mem::align_of::<HeaderCopy>() >= std::mem::align_of::<Header>()
);

impl HeaderCopy {
    pub(crate) fn zeroed() -> Box<HeaderCopy> {
        Box::new(HeaderCopy([0; HEADER_SIZE]))
    }

    /// The copy read as a header.
    pub(crate) fn header(&mut self) -> &Header {
        let ptr: *mut HeaderCopy = self;
        // SAFETY: the copy has the size and at least the alignment of `Header`
        // (asserted above); `Header` is atomics, padding bytes and an `UnsafeCell` of
        // integers, valid for any bit pattern; the pointer comes from a unique borrow of
        // memory we own, which the returned reference borrows for its whole life, so
        // nothing else reads or writes it meanwhile.
        unsafe { &*ptr.cast::<Header>() }
    }
}

/// Copies the header of the POSIX object `file` into private memory with `pread`: a
/// file truncated under us makes the copy short (an error), never a SIGBUS as a
/// mapping would.
pub(crate) fn pread_header(file: &File, name: &str) -> Result<Box<HeaderCopy>, Error> {
    let mut copy = HeaderCopy::zeroed();
    let mut filled = 0;
    while filled < HEADER_SIZE {
        match file.read_at(&mut copy.0[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Io {
                    op: "pread",
                    name: name.to_string(),
                    source,
                })
            }
        }
    }
    if filled < HEADER_SIZE {
        // Zero bytes: a creator between shm_open and ftruncate.
        if filled == 0 {
            return Err(Error::NotReady {
                name: name.to_string(),
                state: 0,
                waited: std::time::Duration::ZERO,
            });
        }
        return Err(Error::Corrupt {
            name: name.to_string(),
            field: "segment size",
            value: filled as u64,
            reason: "smaller than the 4096-byte header: not a shmlane segment",
        });
    }
    Ok(copy)
}

// ---------------------------------------------------------------------------------
// Mappings
// ---------------------------------------------------------------------------------

/// How a mapping was made, so that it is unmade the same way.
/// Who made a [`Mapping`], and unmakes it when it drops.
#[derive(Debug)]
enum Made {
    /// memmap2 (`mmap`/`munmap`) of a POSIX object or a memfd.
    Mmap(memmap2::MmapRaw),
    /// `shmat`/`shmdt` of a SysV segment.
    Shmat(sysv::Attachment),
}

/// A shared mapping of a segment, or of its header while it is validated.
#[derive(Debug)]
pub(crate) struct Mapping {
    /// Start of the mapping: page aligned (huge-page aligned on hugetlb memory).
    ptr: NonNull<u8>,
    /// Bytes mapped; at least `HEADER_SIZE`. Whoever made it checked that the object
    /// holds every byte it will reach: the header, then header + capacity.
    len: usize,
    /// Owns the mapping: `ptr` and `len` stay valid as long as it lives.
    made: Made,
}

// SAFETY: a Mapping is an address range of shared memory, owned (unmapped) by one
// value; the memory is reached only through atomics or the ring protocol, from any
// thread as from any process.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` hands out only `&Header` (atomics) and `DataRegion`s.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `fd` shared, read-write; with `MAP_POPULATE` if
    /// `populate`. `len` must be at least `HEADER_SIZE` and, rounded up to the object's
    /// page size, no more than the object's size. The length is a multiple of the
    /// object's page size (huge pages too: see `FdObject::map`), so the whole mapping
    /// goes when it drops.
    pub(crate) fn mmap(
        fd: BorrowedFd<'_>,
        len: usize,
        populate: bool,
        name: &str,
    ) -> Result<Mapping, Error> {
        assert!(len >= HEADER_SIZE, "a mapping holds at least the header");
        let map = mmap::map_shared(fd, len, populate).map_err(|e| io_err("mmap", name, e))?;
        let ptr =
            NonNull::new(map.as_mut_ptr()).ok_or_else(|| io_err("mmap", name, Errno::EFAULT))?;
        Ok(Mapping {
            ptr,
            len,
            made: Made::Mmap(map),
        })
    }

    /// Attaches the whole SysV segment `shmid`, read-write, and checks its size with
    /// `shmctl(IPC_STAT)` after attaching (the size of an attached segment cannot
    /// change). Fails unless it is at least `min_len` bytes long.
    pub(crate) fn shmat(shmid: i32, min_len: usize, name: &str) -> Result<Mapping, Error> {
        // From here on, dropping `attached` detaches.
        let attached = sysv::Attachment::new(shmid, false).map_err(|e| io_err("shmat", name, e))?;
        let len = shm_size(shmid, name)?;
        if len < min_len || len < HEADER_SIZE {
            return Err(Error::Corrupt {
                name: name.to_string(),
                field: "segment size",
                value: len as u64,
                reason: "the segment is smaller than its header says",
            });
        }
        Ok(Mapping {
            ptr: NonNull::new(attached.as_ptr()).expect("shmat returned a non-null address"),
            len,
            made: Made::Shmat(attached),
        })
    }

    /// Bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The header at the start of the mapping.
    pub(crate) fn header(&self) -> &Header {
        debug_assert!(self.len >= HEADER_SIZE);
        // SAFETY: the mapping is page aligned, at least HEADER_SIZE bytes long, of an
        // object at least that long (both checked before it was made); it lives as long
        // as `self`, and `Header` is all atomics and padding, valid for any bit pattern.
        unsafe { &*self.ptr.as_ptr().cast::<Header>() }
    }

    /// The `capacity` bytes after the header. Panics if the mapping is shorter.
    pub(crate) fn data(&self, capacity: usize) -> DataRegion {
        assert!(
            capacity.is_power_of_two() && HEADER_SIZE + capacity <= self.len,
            "the data region is inside the mapping"
        );
        // SAFETY: the region is the `capacity` bytes after the header, inside the
        // mapping (asserted), page aligned, alive as long as `self`; capacity is a
        // power of two.
        unsafe { DataRegion::new(self.ptr.as_ptr().add(HEADER_SIZE), capacity) }
    }

    /// The MPMC cell table after the data region. Panics if the mapping is shorter.
    pub(crate) fn cell_table(
        &self,
        params: &crate::header::RingParams,
    ) -> crate::region::CellTable {
        let cells = params.cells();
        assert!(
            cells.is_power_of_two() && params.segment_len() <= self.len,
            "the cell table is inside the mapping"
        );
        // SAFETY: the table is the `cells * 16` bytes after the data region, inside the
        // mapping (asserted), 8-aligned (capacity is a power of two >= 64), alive as
        // long as `self`, and reached only through atomics.
        unsafe {
            crate::region::CellTable::new(
                self.ptr.as_ptr().add(HEADER_SIZE + params.capacity),
                cells,
            )
        }
    }

    /// `mlock`s the mapping: its pages stay in memory while it is mapped.
    pub(crate) fn lock(&self, name: &str) -> Result<(), Error> {
        let locked = match &self.made {
            Made::Mmap(map) => mmap::lock(map),
            Made::Shmat(attached) => attached.lock(self.len),
        };
        match locked {
            Ok(()) => Ok(()),
            Err(e @ (Errno::ENOMEM | Errno::EPERM | Errno::EAGAIN)) => {
                let limit = memlock_limit().map_or("?".to_string(), |n| n.to_string());
                Err(explained(
                    "mlock",
                    name,
                    e,
                    format!(
                        "cannot lock {} bytes (RLIMIT_MEMLOCK is {limit} bytes): raise it \
                         (ulimit -l) or give the process CAP_IPC_LOCK, or create the ring \
                         without lock_memory",
                        self.len
                    ),
                ))
            }
            Err(e) => Err(io_err("mlock", name, e)),
        }
    }

    /// `madvise(MADV_POPULATE_WRITE)` of the whole mapping.
    fn populate_write(&self) -> Result<(), Errno> {
        match &self.made {
            Made::Mmap(map) => mmap::populate_write(map),
            Made::Shmat(attached) => attached.populate_write(self.len),
        }
    }

    /// Pre-faults the mapping for writing (`madvise(MADV_POPULATE_WRITE)`, Linux 5.14):
    /// the `MAP_POPULATE` of a mapping that `shmat` made.
    pub(crate) fn populate(&self, name: &str) -> Result<(), Error> {
        self.populate_write()
            .map_err(|e| io_err("madvise(MADV_POPULATE_WRITE)", name, e))
    }

    /// Reserves the memory of the mapping by populating it for writing
    /// (`MADV_POPULATE_WRITE`), where the object it maps could not be reserved
    /// otherwise: a page that does not fit fails the call (EFAULT where a touch would
    /// have raised SIGBUS, ENOMEM) instead of killing a writer later. `free` is the
    /// space the object's filesystem has, for the error. On a kernel without the
    /// advice (before 5.14: EINVAL) the pages stay lazy, as they were.
    pub(crate) fn reserve(
        &self,
        name: &str,
        filesystem: &str,
        free: Option<u64>,
    ) -> Result<(), Error> {
        loop {
            return match self.populate_write() {
                Ok(()) | Err(Errno::EINVAL) => Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e @ (Errno::EFAULT | Errno::ENOMEM | Errno::ENOSPC)) => {
                    Err(no_space(name, filesystem, self.len, free, e))
                }
                Err(e) => Err(io_err("madvise(MADV_POPULATE_WRITE)", name, e)),
            };
        }
    }

    /// [`reserve`](Self::reserve) for a mapping of the file `fd`: the error reports the
    /// space free on its filesystem.
    pub(crate) fn reserve_file(
        &self,
        fd: BorrowedFd<'_>,
        name: &str,
        filesystem: &str,
    ) -> Result<(), Error> {
        self.reserve(name, filesystem, free_space(fd))
    }
}

/// The soft RLIMIT_MEMLOCK of this process, in bytes.
fn memlock_limit() -> Option<u64> {
    os::memlock_limit()
}

/// The SysV segment `shmid`'s `shmctl(IPC_STAT)`: size, owner, mode, attachments.
pub(crate) fn shm_stat(shmid: i32, name: &str) -> Result<sysv::Stat, Error> {
    sysv::stat(shmid).map_err(|e| io_err("shmctl(IPC_STAT)", name, e))
}

/// The size of the SysV segment `shmid` (`shmctl(IPC_STAT)`).
pub(crate) fn shm_size(shmid: i32, name: &str) -> Result<usize, Error> {
    Ok(shm_stat(shmid, name)?.shm_segsz)
}

// ---------------------------------------------------------------------------------
// Permissions
// ---------------------------------------------------------------------------------

/// Checks an existing segment's owner and permission bits (`st_uid`/`st_mode`, or
/// `shm_perm.uid`/`mode`) against what the opener accepts, before anything is mapped:
/// the owner must be this process's effective user (root included) unless
/// `foreign_owner`, and no permission bit may lie outside `accept.mode`.
pub(crate) fn check_permissions(
    name: &str,
    owner: u32,
    mode: u32,
    accept: &OpenOptions,
) -> Result<(), Error> {
    let mode = mode & 0o777;
    let refuse = |reason: String| Err(permission_error(name, owner, mode, reason));
    let euid = crate::sys::user::euid();
    if owner != euid && !accept.foreign_owner {
        return refuse(format!(
            "its owner uid {owner} is not this process's effective uid {euid}; accept a \
             segment of another user with OpenOptions::foreign_owner(true)"
        ));
    }
    let extra = mode & !accept.mode;
    if extra != 0 {
        let who = match (extra & 0o070 != 0, extra & 0o007 != 0) {
            (_, true) => "every user",
            (true, false) => "its group",
            (false, false) => "its owner",
        };
        let option = if mode & !0o660 == 0 && extra & !0o060 == 0 {
            "OpenOptions::group_access(true) (RingOptions::group_access for create_or_open)"
                .to_string()
        } else {
            format!("OpenOptions::accept_mode({mode:#o})")
        };
        return refuse(format!(
            "its mode grants {who} more than the {:04o} accepted (bits {extra:04o}); \
             accept it with {option}",
            accept.mode
        ));
    }
    Ok(())
}

/// The refusal of segment `name` (owned by `owner`, permission bits `mode`).
fn permission_error(name: &str, owner: u32, mode: u32, reason: String) -> Error {
    Error::Permissions {
        name: name.to_string(),
        owner,
        mode,
        reason,
    }
}

/// Who created a SysV segment (`shm_perm.cuid`, `shm_perm.cgid`): the creator keeps
/// the owner's rights (`IPC_SET`, `IPC_RMID`, the owner permission bits) whoever owns
/// the segment now, and its group gets the group bits beside the owner's group.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Creator {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Checks a SysV segment's creator, once [`check_permissions`] has accepted its owner
/// and mode, before anything is mapped: unless `accept.foreign_owner`, the creator
/// must be this process's effective user (its creator could otherwise hand it over
/// with `shmctl(IPC_SET)` and keep reading and writing it), and, when the mode grants
/// its group access, the creator group must be one this process is in (the effective
/// group or a supplementary one): that group's members can read and write the ring.
pub(crate) fn check_creator(
    name: &str,
    owner: u32,
    mode: u32,
    creator: Creator,
    accept: &OpenOptions,
) -> Result<(), Error> {
    if accept.foreign_owner {
        return Ok(());
    }
    let mode = mode & 0o777;
    let refuse = |reason: String| Err(permission_error(name, owner, mode, reason));
    let euid = crate::sys::user::euid();
    if creator.uid != euid {
        return refuse(format!(
            "its creator uid {} (shm_perm.cuid) is not this process's effective uid {euid}, \
             though its owner uid {owner} (shm_perm.uid) is: a creator can hand its \
             segment over with shmctl(IPC_SET) and keeps full access to it; accept a \
             segment created by another user with OpenOptions::foreign_owner(true)",
            creator.uid
        ));
    }
    if mode & 0o070 != 0 && !in_group(creator.gid) {
        return refuse(format!(
            "its mode grants its creator group access, and its creator gid {} \
             (shm_perm.cgid) is neither this process's effective gid {} nor one of its \
             supplementary groups; accept a segment shared with another group with \
             OpenOptions::foreign_owner(true)",
            creator.gid,
            crate::sys::user::egid()
        ));
    }
    Ok(())
}

use crate::sys::user::in_group;

// ---------------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------------

/// A backing object being opened: what the open discipline needs of it.
pub(crate) trait Object {
    /// Its size in bytes now (`fstat`, `shmctl(IPC_STAT)`).
    fn size(&self) -> Result<u64, Error>;
    /// Maps at least its first `len` bytes (`HEADER_SIZE <= len <= size`).
    fn map(&self, len: usize) -> Result<Mapping, Error>;
    /// Whether a size of 0 may still grow: a POSIX object between its creator's
    /// `shm_open` and `ftruncate`. A sealed memfd and a SysV segment have their
    /// size from the start.
    fn may_grow(&self) -> bool;
    /// Whether the creator of a segment that is not ready yet is known to have died
    /// (its init lock is free: POSIX only). `false` where that cannot be told.
    fn creator_gone(&self) -> bool {
        false
    }
}

/// How long a segment must stay unready with its creator's init lock free before it
/// counts as abandoned: a creator takes the lock right after `shm_open`, and an
/// opener may look in between.
const ABANDON_GRACE: Duration = Duration::from_millis(100);

/// Tracks how long a segment has been unready with its creator gone.
#[derive(Default)]
struct Abandonment(Option<Instant>);

impl Abandonment {
    /// Whether `obj` (unready now) counts as abandoned.
    fn abandoned(&mut self, obj: &impl Object) -> bool {
        if !obj.creator_gone() {
            self.0 = None;
            return false;
        }
        self.0.get_or_insert_with(Instant::now).elapsed() >= ABANDON_GRACE
    }
}

/// A file descriptor's object: a POSIX shared-memory object, a hugetlbfs file, a memfd.
pub(crate) struct FdObject<'a> {
    pub(crate) fd: BorrowedFd<'a>,
    pub(crate) name: &'a str,
    pub(crate) may_grow: bool,
}

impl Object for FdObject<'_> {
    fn size(&self) -> Result<u64, Error> {
        let st = fstat(self.fd).map_err(|e| io_err("fstat", self.name, e))?;
        Ok(st.st_size.max(0) as u64)
    }

    fn map(&self, len: usize) -> Result<Mapping, Error> {
        // A hugetlb file (hugetlbfs, MFD_HUGETLB) is mapped and unmapped in whole huge
        // pages: its st_blksize is the huge page size (tmpfs says 4096).
        let st = fstat(self.fd).map_err(|e| io_err("fstat", self.name, e))?;
        let blksize = st.st_blksize.max(0) as usize;
        let granule = if blksize.is_power_of_two() && (PAGE..=1 << 30).contains(&blksize) {
            blksize
        } else {
            PAGE
        };
        Mapping::mmap(
            self.fd.as_fd(),
            len.next_multiple_of(granule),
            false,
            self.name,
        )
    }

    fn may_grow(&self) -> bool {
        self.may_grow
    }

    fn creator_gone(&self) -> bool {
        self.may_grow
            && matches!(
                crate::sys::ofd::held(self.fd, crate::liveness::init_lock_byte()),
                Ok(false)
            )
    }
}

/// Opens the segment in `obj` as a ring of kind `expected_kind`: sizes it before
/// mapping anything (a segment smaller than its header claims must be an error, not a
/// SIGBUS), waits up to `ready_wait` for a creator that is still initialising it,
/// validates every header field, and maps the whole segment.
pub(crate) fn open_object(
    obj: &impl Object,
    name: &str,
    expected_kind: u32,
    ready_wait: Duration,
) -> Result<(Mapping, RingParams), Error> {
    let start = Instant::now();
    let mut backoff = Duration::from_micros(50);
    let mut abandonment = Abandonment::default();
    // Between a POSIX creator's shm_open and its ftruncate the object is empty: wait.
    // The ftruncate sets the whole length at once, so any other size under a header is
    // final.
    loop {
        let size = obj.size()?;
        if size >= HEADER_SIZE as u64 {
            break;
        }
        if !obj.may_grow() || size > 0 {
            return Err(Error::Corrupt {
                name: name.to_string(),
                field: "segment size",
                value: size,
                reason: "smaller than the 4096-byte header: not a shmlane segment",
            });
        }
        if abandonment.abandoned(obj) {
            return Err(Error::Abandoned {
                name: name.to_string(),
                state: 0,
            });
        }
        if start.elapsed() >= ready_wait {
            return Err(Error::NotReady {
                name: name.to_string(),
                state: 0,
                waited: start.elapsed(),
            });
        }
        nap(&mut backoff);
    }
    let probe = obj.map(HEADER_SIZE)?;
    let params = loop {
        let size = obj.size()?;
        match probe.header().validate(expected_kind, size) {
            Ok(params) => break params,
            Err(HeaderFault::NotReady { state })
                if state != STATE_POISONED && abandonment.abandoned(obj) =>
            {
                // A creator writes the magic right after sizing its file, before it
                // lets go of the init lock: zeros with the lock free are not one's.
                let magic = probe.header().magic.load(crate::sync::Ordering::Relaxed);
                return Err(if magic == crate::header::MAGIC {
                    Error::Abandoned {
                        name: name.to_string(),
                        state,
                    }
                } else {
                    Error::NotARing {
                        name: name.to_string(),
                        found: magic,
                    }
                });
            }
            Err(HeaderFault::NotReady { state })
                if state != STATE_POISONED && start.elapsed() < ready_wait =>
            {
                nap(&mut backoff)
            }
            Err(fault) => return Err(fault_to_error(name, fault, start.elapsed())),
        }
    };
    let segment_len = params.segment_len();
    // Size it once more right before the full mapping: `validate` checked the length,
    // and only a process with write access to the object can shrink it (a sealed memfd
    // and a SysV segment cannot shrink at all).
    if obj.size()? < segment_len as u64 {
        return Err(Error::Corrupt {
            name: name.to_string(),
            field: "capacity",
            value: params.capacity as u64,
            reason: "the segment file is smaller than header + capacity",
        });
    }
    // A SysV probe is the whole segment already.
    let map = if probe.len() >= segment_len {
        probe
    } else {
        obj.map(segment_len)?
    };
    Ok((map, params))
}

/// Sleeps `backoff`, then doubles it (up to 20 ms).
fn nap(backoff: &mut Duration) {
    std::thread::sleep(*backoff);
    *backoff = (*backoff * 2).min(Duration::from_millis(20));
}

pub(crate) fn fault_to_error(name: &str, fault: HeaderFault, waited: Duration) -> Error {
    let name = name.to_string();
    match fault {
        HeaderFault::Incompatible {
            field,
            found,
            expected,
        } => Error::Incompatible {
            name,
            field,
            found,
            expected,
        },
        HeaderFault::Corrupt {
            field,
            value,
            reason,
        } => Error::Corrupt {
            name,
            field,
            value,
            reason,
        },
        HeaderFault::NotARing { found } => Error::NotARing { name, found },
        HeaderFault::NotReady { state } => Error::NotReady {
            name,
            state,
            waited,
        },
    }
}
