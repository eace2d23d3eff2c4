//! Where the bytes live. A segment is one header page followed by the data region.
//!
//! - [`posix`]: a POSIX shared-memory object (`shm_open`), the default;
//! - [`sysv`]: a System V shared-memory segment (`shmget`), found by a key;
//! - [`memfd`]: a sealed anonymous file (`memfd_create`), handed over as a descriptor;
//! - [`heap`]: private heap memory, for threads in one process, tests, Miri and loom.
//!
//! The shared ones create and open through the same steps ([`shared`]). The protocol
//! code never sees which one it runs on: it gets a [`Header`] reference and a
//! [`DataRegion`].

pub(crate) mod backing;
pub(crate) mod heap;
#[cfg(not(loom))]
pub(crate) mod memfd;
#[cfg(not(loom))]
pub(crate) mod posix;
#[cfg(not(loom))]
pub(crate) mod shared;
#[cfg(not(loom))]
pub(crate) mod sysv;

use crate::header::Header;
use crate::region::DataRegion;

/// One mapped segment, shared (through an `Arc`) by the endpoints of this process
/// that use it.
#[derive(Debug)]
pub(crate) enum Segment {
    #[cfg(not(loom))]
    Posix(posix::PosixSegment),
    #[cfg(not(loom))]
    SysV(sysv::SysVSegment),
    #[cfg(not(loom))]
    Memfd(memfd::MemfdSegment),
    Heap(heap::HeapSegment),
}

impl Segment {
    /// The header at the start of the segment.
    pub(crate) fn header(&self) -> &Header {
        match self {
            #[cfg(not(loom))]
            Segment::Posix(s) => s.header(),
            #[cfg(not(loom))]
            Segment::SysV(s) => s.header(),
            #[cfg(not(loom))]
            Segment::Memfd(s) => s.header(),
            Segment::Heap(s) => s.header(),
        }
    }

    /// The data region after the header.
    pub(crate) fn data(&self) -> DataRegion {
        match self {
            #[cfg(not(loom))]
            Segment::Posix(s) => s.data(),
            #[cfg(not(loom))]
            Segment::SysV(s) => s.data(),
            #[cfg(not(loom))]
            Segment::Memfd(s) => s.data(),
            Segment::Heap(s) => s.data(),
        }
    }

    /// The MPMC cell table after the data region (`params` are the segment's own).
    pub(crate) fn cell_table(
        &self,
        params: &crate::header::RingParams,
    ) -> crate::region::CellTable {
        match self {
            #[cfg(not(loom))]
            Segment::Posix(s) => s.cell_table(params),
            #[cfg(not(loom))]
            Segment::SysV(s) => s.cell_table(params),
            #[cfg(not(loom))]
            Segment::Memfd(s) => s.cell_table(params),
            Segment::Heap(s) => s.cell_table(params),
        }
    }

    /// The segment's name: the POSIX name, `sysv:0x<key>`, `memfd:<label>`, or
    /// `"(heap)"` for a private ring.
    pub(crate) fn name(&self) -> &str {
        match self {
            #[cfg(not(loom))]
            Segment::Posix(s) => s.name(),
            #[cfg(not(loom))]
            Segment::SysV(s) => s.name(),
            #[cfg(not(loom))]
            Segment::Memfd(s) => s.name(),
            Segment::Heap(_) => "(heap)",
        }
    }

    /// The descriptor of the file behind the segment (POSIX, memfd), on which
    /// endpoints take their liveness locks; `None` for SysV and heap segments.
    #[cfg(not(loom))]
    pub(crate) fn file_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        match self {
            Segment::Posix(s) => Some(s.file().as_fd()),
            Segment::Memfd(s) => Some(s.fd()),
            _ => None,
        }
    }

    /// The memfd of a memfd segment.
    #[cfg(not(loom))]
    pub(crate) fn memfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match self {
            Segment::Memfd(s) => Some(s.fd()),
            _ => None,
        }
    }
}

/// Where an existing segment is, for opening it.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) enum Location<'a> {
    /// A POSIX shared-memory name.
    Posix(&'a str),
    /// A SysV key.
    SysV(i32),
    /// A memfd's descriptor.
    Fd(std::os::fd::OwnedFd),
}

/// Creates a segment for `params` as `mem.backing` says: for POSIX named `name`; for
/// SysV with its key (`name` unused); for memfd labelled `name`; with permission bits
/// `mode` (0600 or 0660). `remove_on_drop`: the segment's name or key is removed when
/// it is dropped (POSIX and SysV).
#[cfg(not(loom))]
pub(crate) fn create(
    name: &str,
    params: &crate::header::RingParams,
    mem: &backing::MemoryOptions,
    mode: u32,
    remove_on_drop: bool,
) -> Result<Segment, crate::Error> {
    Ok(match mem.backing {
        backing::Backing::Posix => {
            Segment::Posix(posix::create(name, params, mem, mode, remove_on_drop)?)
        }
        backing::Backing::SysV { key } => {
            Segment::SysV(sysv::create(key, params, mem, mode, remove_on_drop)?)
        }
        backing::Backing::Memfd => Segment::Memfd(memfd::create(name, params, mem, mode)?),
    })
}

/// Opens the segment at `location` as a ring of kind `expected_kind`, if `accept`
/// allows its owner and mode.
#[cfg(not(loom))]
pub(crate) fn open(
    location: Location<'_>,
    expected_kind: u32,
    accept: &crate::OpenOptions,
) -> Result<(Segment, crate::header::RingParams), crate::Error> {
    let wait = shared::READY_WAIT;
    Ok(match location {
        Location::Posix(name) => {
            let (s, p) = posix::open(name, expected_kind, accept, wait)?;
            (Segment::Posix(s), p)
        }
        Location::SysV(key) => {
            let (s, p) = sysv::open(key, expected_kind, accept, wait)?;
            (Segment::SysV(s), p)
        }
        Location::Fd(fd) => {
            let (s, p) = memfd::open(fd, expected_kind, accept, wait)?;
            (Segment::Memfd(s), p)
        }
    })
}
