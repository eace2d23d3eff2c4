//! A segment in private heap memory: the same header and data region as a shared
//! segment, for two endpoints in one process (threads), tests and Miri. Under loom the
//! header is built with loom's atomics and the data region gets its loom shadow.

use crate::header::{Header, RingParams};
use crate::region::DataRegion;

/// Heap memory laid out like a shared segment.
pub(crate) struct HeapSegment {
    #[cfg(not(loom))]
    base: std::ptr::NonNull<u8>,
    #[cfg(not(loom))]
    layout: std::alloc::Layout,
    #[cfg(loom)]
    header: Box<Header>,
    #[cfg(loom)]
    bytes: Box<[std::cell::UnsafeCell<u64>]>,
    #[cfg(loom)]
    shadow: Box<crate::region::Shadow>,
    /// The MPMC cell table (2 words per cell; empty for SPSC).
    #[cfg(loom)]
    table: Box<[crate::sync::AtomicU64]>,
    capacity: usize,
}

impl std::fmt::Debug for HeapSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapSegment")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

// SAFETY: the segment owns its allocation; all shared access goes through atomics or
// through the ring protocol, exactly as for memory shared between processes.
unsafe impl Send for HeapSegment {}
// SAFETY: as above; `&HeapSegment` only hands out `&Header` (atomics) and a
// `DataRegion` whose payload accesses the protocol orders.
unsafe impl Sync for HeapSegment {}

impl HeapSegment {
    /// Sizes, places and initialises a heap segment for `params`. Memory that cannot
    /// be allocated is `Error::Io` (`OutOfMemory`), a size no layout can hold
    /// `Error::TooLarge`: never an abort.
    pub(crate) fn new(params: &RingParams) -> Result<Self, crate::Error> {
        let capacity = params.capacity;
        let segment_len = params.segment_len();
        #[cfg(not(loom))]
        let seg = {
            let layout = std::alloc::Layout::from_size_align(segment_len, 4096).map_err(|_| {
                crate::Error::TooLarge {
                    what: "heap segment",
                    value: segment_len as u64,
                    max: isize::MAX as u64,
                }
            })?;
            // SAFETY: the layout has a non-zero size (header + capacity >= 4096 + 64).
            // Zeroed memory is a valid header, region and cell table; `init` then sets
            // what must not be zero (the stamps of an MPMC ring).
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
            // Out of memory (or of address space) is an error of this create, not an
            // abort of the process: the size is the caller's, up to MAX_CAPACITY.
            let Some(base) = std::ptr::NonNull::new(ptr) else {
                return Err(crate::Error::Io {
                    op: "alloc (heap ring)",
                    name: "(heap)".to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::OutOfMemory,
                        format!(
                            "cannot allocate {segment_len} bytes for a heap ring of capacity \
                             {capacity}: ask for a smaller capacity"
                        ),
                    ),
                });
            };
            HeapSegment {
                base,
                layout,
                capacity,
            }
        };
        #[cfg(loom)]
        let seg = HeapSegment {
            header: Box::new(Header::new_zeroed()),
            bytes: (0..capacity / 8)
                .map(|_| std::cell::UnsafeCell::new(0))
                .collect(),
            shadow: Box::new(crate::region::Shadow::new(capacity)),
            table: (0..params.cells() * 2)
                .map(|_| crate::sync::AtomicU64::new(0))
                .collect(),
            capacity,
        };
        let table = (params.cells() > 0).then(|| seg.cell_table(params));
        seg.header().init(params, segment_len as u64, table);
        Ok(seg)
    }

    pub(crate) fn header(&self) -> &Header {
        #[cfg(not(loom))]
        {
            // SAFETY: the allocation is 4096-aligned, at least HEADER_SIZE bytes, zero
            // initialised (a valid `Header`: all atomics and padding bytes), and lives as
            // long as `self`.
            unsafe { &*self.base.as_ptr().cast::<Header>() }
        }
        #[cfg(loom)]
        {
            &self.header
        }
    }

    pub(crate) fn cell_table(&self, params: &RingParams) -> crate::region::CellTable {
        #[cfg(not(loom))]
        {
            assert!(params.segment_len() <= self.layout.size() && params.cells().is_power_of_two());
            // SAFETY: the table is the `cells * 16` bytes after the data region, inside
            // the allocation (asserted), 8-aligned, alive as long as `self`, and reached
            // only through atomics.
            unsafe {
                crate::region::CellTable::new(
                    self.base
                        .as_ptr()
                        .add(crate::header::HEADER_SIZE + params.capacity),
                    params.cells(),
                )
            }
        }
        #[cfg(loom)]
        {
            assert_eq!(self.table.len(), params.cells() * 2);
            // SAFETY: the table lives as long as `self`.
            unsafe { crate::region::CellTable::new(&*self.table as *const _, params.cells()) }
        }
    }

    pub(crate) fn data(&self) -> DataRegion {
        #[cfg(not(loom))]
        {
            // SAFETY: the data region is the `capacity` bytes after the header, inside the
            // allocation, page aligned, alive as long as `self`.
            unsafe {
                DataRegion::new(
                    self.base.as_ptr().add(crate::header::HEADER_SIZE),
                    self.capacity,
                )
            }
        }
        #[cfg(loom)]
        {
            // SAFETY: `bytes` is 8-aligned, `capacity` bytes long, alive as long as `self`,
            // and reached only through raw pointers (UnsafeCell).
            unsafe { DataRegion::new(self.bytes.as_ptr() as *mut u8, self.capacity, &*self.shadow) }
        }
    }
}

#[cfg(not(loom))]
impl Drop for HeapSegment {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}
