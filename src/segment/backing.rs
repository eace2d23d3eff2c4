//! Where a new ring's memory comes from, and how it is mapped: the public [`Backing`]
//! choice and the memory options of [`RingOptions`](crate::RingOptions).

/// The kind of shared memory a ring is created in (see
/// [`RingOptions::backing`](crate::RingOptions::backing)).
///
/// Every backing holds the same header and data region and runs the same protocol;
/// they differ in how a peer finds the segment:
///
/// | backing | created by | a peer opens it with | removed |
/// |---|---|---|---|
/// | `Posix` | `create(name, ..)` | `open(name)` | [`remove`](crate::remove)`(name)` |
/// | `SysV { key }` | `create_sysv(key, ..)` | `open_sysv(key)` | [`remove_sysv`](crate::remove_sysv)`(key)` |
/// | `Memfd` | `create_memfd(..)` | `open_fd(fd)` | when the last descriptor and mapping go |
///
/// (`create`, `open`, ... are methods of [`spsc::Producer`](crate::spsc::Producer) and
/// [`spsc::Consumer`](crate::spsc::Consumer).)
///
/// ```
/// use shmlane::{Backing, RingOptions};
///
/// let key = 0x5348_4d4c; // agreed on by both programs, or from shmlane::ftok
/// let opts = RingOptions::new(1 << 16).backing(Backing::SysV { key });
/// assert_eq!(Backing::default(), Backing::Posix);
/// # drop(opts);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backing {
    /// A POSIX shared-memory object (`shm_open`; on Linux a file in `/dev/shm`), found
    /// by its name. The default.
    #[default]
    Posix,
    /// A System V shared-memory segment (`shmget`), found by its key: one the peers
    /// agree on, or one derived from a path with [`ftok`](crate::ftok). Created with
    /// permissions 0600 (0660 with
    /// [`group_access`](crate::RingOptions::group_access)). Key 0 (`IPC_PRIVATE`) is refused: a peer could not open it.
    SysV {
        /// The segment's key.
        key: i32,
    },
    /// An anonymous file (`memfd_create`) sealed against shrinking and growing
    /// (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`), so no process that holds it can
    /// truncate the ring under a reader. It has no name: peers get its descriptor by
    /// `fork` or over a UNIX socket ([`send_fd`](crate::send_fd) /
    /// [`recv_fd`](crate::recv_fd)).
    Memfd,
}

/// The memory options of a ring: its backing, and how the creator maps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct MemoryOptions {
    pub(crate) backing: Backing,
    /// Back the segment with huge pages (hugetlbfs, `SHM_HUGETLB`, `MFD_HUGETLB`).
    pub(crate) huge_pages: bool,
    /// Pre-fault the creator's mapping (`MAP_POPULATE`, or
    /// `madvise(MADV_POPULATE_WRITE)` for SysV).
    pub(crate) populate: bool,
    /// `mlock` the creator's mapping.
    pub(crate) lock_memory: bool,
}
