//! Where the bytes live. A segment is one header page followed by the data region.
//!
//! - [`posix`]: a POSIX shared-memory object (`shm_open`), the default;
//! - [`heap`]: private heap memory, for threads in one process, tests, Miri and loom.
//!
//! The protocol code never sees which one it runs on: it gets a [`Header`] reference
//! and a [`DataRegion`].

pub(crate) mod heap;
#[cfg(not(loom))]
pub(crate) mod posix;

use crate::header::Header;
use crate::region::DataRegion;

/// One mapped segment, shared (through an `Arc`) by the endpoints of this process
/// that use it.
#[derive(Debug)]
pub(crate) enum Segment {
    #[cfg(not(loom))]
    Posix(posix::PosixSegment),
    Heap(heap::HeapSegment),
}

impl Segment {
    /// The header at the start of the segment.
    pub(crate) fn header(&self) -> &Header {
        match self {
            #[cfg(not(loom))]
            Segment::Posix(s) => s.header(),
            Segment::Heap(s) => s.header(),
        }
    }

    /// The data region after the header.
    pub(crate) fn data(&self) -> DataRegion {
        match self {
            #[cfg(not(loom))]
            Segment::Posix(s) => s.data(),
            Segment::Heap(s) => s.data(),
        }
    }

    /// The segment's name (`"(heap)"` for a private ring).
    pub(crate) fn name(&self) -> &str {
        match self {
            #[cfg(not(loom))]
            Segment::Posix(s) => s.name(),
            Segment::Heap(_) => "(heap)",
        }
    }
}
