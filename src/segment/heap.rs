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
    /// Sizes, places and initialises a heap segment for `params`.
    pub(crate) fn new(params: &RingParams) -> Result<Self, crate::Error> {
        let capacity = params.capacity;
        let segment_len = crate::header::HEADER_SIZE + capacity;
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
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
            let Some(base) = std::ptr::NonNull::new(ptr) else {
                std::alloc::handle_alloc_error(layout)
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
            capacity,
        };
        seg.header().init(params, segment_len as u64);
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
