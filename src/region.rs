//! The data region: `capacity` bytes reached only through a base pointer.
//!
//! Record header words are accessed as atomics ([`DataRegion::word`]); payload bytes
//! are copied through raw pointers, and handed out as slices only inside a grant that
//! the protocol gives one endpoint alone. Under `cfg(loom)` the region is a heap
//! buffer plus a shadow: one loom `AtomicU64` per 8-byte word for header accesses and
//! one loom `UnsafeCell` per word whose accesses are registered around every payload
//! read and write, so that loom reports a payload access that races the write it
//! should follow.

use crate::sync::AtomicU64;

/// A view of the data region. Copyable; valid while the segment that made it is alive
/// (every holder also holds that segment).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DataRegion {
    /// Start of the region; page aligned.
    base: *mut u8,
    /// Power of two; the region is `capacity` bytes long.
    capacity: usize,
    #[cfg(loom)]
    shadow: *const Shadow,
}

/// Loom's view of the region's words (see the module docs).
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Shadow {
    words: Box<[AtomicU64]>,
    cells: Box<[loom::cell::UnsafeCell<()>]>,
}

#[cfg(loom)]
impl Shadow {
    pub(crate) fn new(capacity: usize) -> Self {
        Shadow {
            words: (0..capacity / 8).map(|_| AtomicU64::new(0)).collect(),
            cells: (0..capacity / 8)
                .map(|_| loom::cell::UnsafeCell::new(()))
                .collect(),
        }
    }
}

impl DataRegion {
    /// # Safety
    ///
    /// - `base` is 8-byte aligned and valid for reads and writes of `capacity` bytes
    ///   for as long as any copy of the returned value is used;
    /// - `capacity` is a power of two.
    pub(crate) unsafe fn new(
        base: *mut u8,
        capacity: usize,
        #[cfg(loom)] shadow: *const Shadow,
    ) -> Self {
        debug_assert!(capacity.is_power_of_two() && base as usize % 8 == 0);
        DataRegion {
            base,
            capacity,
            #[cfg(loom)]
            shadow,
        }
    }

    /// Index in the region of ring position `position`.
    #[inline]
    pub(crate) fn index(&self, position: u64) -> usize {
        (position & (self.capacity as u64 - 1)) as usize
    }

    /// The 8-byte word at `index` as an atomic. `index` must be a multiple of 8 below
    /// `capacity` (checked in debug builds; every caller derives it from a position
    /// with [`index`](Self::index) and the 8-byte record alignment).
    #[inline]
    pub(crate) fn word(&self, index: usize) -> &AtomicU64 {
        debug_assert!(index % 8 == 0 && index < self.capacity);
        let index = index & (self.capacity - 8);
        #[cfg(not(loom))]
        {
            // Plain accesses to this word (payload bytes of another lap) are ordered
            // against these atomic ones by the ring protocol.
            // SAFETY: `index` is masked to a multiple of 8 below `capacity`; the base
            // is 8-byte aligned and valid for the region's life (constructor contract).
            unsafe { crate::sync::atomic_u64_at(self.base.add(index).cast::<u64>()) }
        }
        #[cfg(loom)]
        {
            // SAFETY: the shadow lives as long as the segment (constructor contract).
            unsafe { &(*self.shadow).words[index / 8] }
        }
    }

    /// Pointer to byte `index`; `index + len <= capacity` is the caller's to keep.
    #[inline]
    pub(crate) fn ptr(&self, index: usize) -> *mut u8 {
        debug_assert!(index <= self.capacity);
        self.base.wrapping_add(index)
    }

    /// Copies `src` into the region at `index`.
    ///
    /// # Safety
    ///
    /// `index + src.len() <= capacity`, and the protocol gives this endpoint those
    /// bytes alone (the producer's claimed, unpublished space).
    #[inline]
    pub(crate) unsafe fn write(&self, index: usize, src: &[u8]) {
        debug_assert!(index + src.len() <= self.capacity);
        self.track_write(index, src.len());
        // SAFETY: in bounds and exclusively ours by the caller's contract; `src` is a
        // Rust slice, so it cannot overlap the raw shared region we write.
        unsafe { copy_small_or_not(src.as_ptr(), self.ptr(index), src.len()) }
    }

    /// Copies `dst.len()` bytes at `index` out of the region.
    ///
    /// # Safety
    ///
    /// `index + dst.len() <= capacity`, and the bytes were published to this endpoint
    /// (an Acquire load of the record header that covers them) and not yet released.
    #[inline]
    pub(crate) unsafe fn read(&self, index: usize, dst: &mut [u8]) {
        debug_assert!(index + dst.len() <= self.capacity);
        self.track_read(index, dst.len());
        // SAFETY: in bounds and published to us by the caller's contract.
        unsafe { copy_small_or_not(self.ptr(index), dst.as_mut_ptr(), dst.len()) }
    }

    /// Reads the little-endian u64 at `index` (the BEGIN prefix).
    ///
    /// # Safety
    ///
    /// As for [`read`](Self::read) with 8 bytes.
    #[inline]
    pub(crate) unsafe fn read_u64(&self, index: usize) -> u64 {
        let mut b = [0u8; 8];
        // SAFETY: forwarded contract.
        unsafe { self.read(index, &mut b) };
        u64::from_le_bytes(b)
    }

    /// Registers a write of `len` bytes at `index` with loom (no-op otherwise).
    #[inline]
    pub(crate) fn track_write(&self, index: usize, len: usize) {
        #[cfg(loom)]
        {
            // SAFETY: the shadow lives as long as the segment.
            let shadow = unsafe { &*self.shadow };
            for w in index / 8..(index + len).div_ceil(8) {
                shadow.cells[w].with_mut(|_| ());
            }
        }
        let _ = (index, len);
    }

    /// Registers a read of `len` bytes at `index` with loom (no-op otherwise).
    #[inline]
    pub(crate) fn track_read(&self, index: usize, len: usize) {
        #[cfg(loom)]
        {
            // SAFETY: the shadow lives as long as the segment.
            let shadow = unsafe { &*self.shadow };
            for w in index / 8..(index + len).div_ceil(8) {
                shadow.cells[w].with(|_| ());
            }
        }
        let _ = (index, len);
    }
}

/// The MPMC cell table: for each cell, a stamp (u64 position, see `mpmc.rs`) and a
/// record word (length and flags; meaningful in the first cell of a record), 16
/// bytes per cell. Every entry is reached only as an atomic.
///
/// Entries are strided across cache lines: with `L = cells / 4` lines, cell `j` has
/// entry `(j mod L) * 4 + j / L`, so consecutive cells sit on consecutive lines and
/// a consumer releasing cell `j` does not take the line a producer is publishing cell
/// `j + 1` in (four entries share a line only `L` cells apart).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CellTable {
    #[cfg(not(loom))]
    base: *mut u64,
    #[cfg(loom)]
    words: *const [AtomicU64],
    /// Power of two.
    cells: usize,
    /// log2 of the number of lines (`cells / 4`), or 0 for tables of under 8 cells,
    /// which are not strided.
    line_shift: u32,
}

impl CellTable {
    /// # Safety
    ///
    /// `base` is 8-byte aligned and valid for reads and writes of `cells * 16` bytes,
    /// accessed only atomically, for as long as any copy of the returned value is
    /// used; `cells` is a power of two.
    #[cfg(not(loom))]
    pub(crate) unsafe fn new(base: *mut u8, cells: usize) -> Self {
        debug_assert!(cells.is_power_of_two() && base as usize % 8 == 0);
        CellTable {
            base: base.cast(),
            cells,
            line_shift: Self::line_shift(cells),
        }
    }

    /// # Safety
    ///
    /// `words` (2 per cell) outlives every copy of the returned value.
    #[cfg(loom)]
    pub(crate) unsafe fn new(words: *const [AtomicU64], cells: usize) -> Self {
        CellTable {
            words,
            cells,
            line_shift: Self::line_shift(cells),
        }
    }

    fn line_shift(cells: usize) -> u32 {
        if cells >= 8 {
            (cells / 4).trailing_zeros()
        } else {
            0
        }
    }

    /// The number of cells.
    #[inline]
    pub(crate) fn cells(&self) -> usize {
        self.cells
    }

    #[inline]
    fn word(&self, position: u64, which: usize) -> &AtomicU64 {
        let j = (position & (self.cells as u64 - 1)) as usize;
        let entry = if self.line_shift == 0 {
            j
        } else {
            ((j & ((1 << self.line_shift) - 1)) << 2) | (j >> self.line_shift)
        };
        let i = entry * 2 + which;
        #[cfg(not(loom))]
        {
            // SAFETY: `i < 2 * cells` (masked), inside the table; the constructor's
            // contract gives alignment, validity and atomic-only access.
            unsafe { crate::sync::atomic_u64_at(self.base.add(i)) }
        }
        #[cfg(loom)]
        {
            // SAFETY: the words outlive `self` (constructor contract).
            unsafe { &(&*self.words)[i] }
        }
    }

    /// The stamp of the cell of `position`.
    #[inline]
    pub(crate) fn stamp(&self, position: u64) -> &AtomicU64 {
        self.word(position, 0)
    }

    /// The record word of the cell of `position`.
    #[inline]
    pub(crate) fn record(&self, position: u64) -> &AtomicU64 {
        self.word(position, 1)
    }
}

/// `copy_nonoverlapping`, with copies of 4 to 16 bytes done inline: for those a call
/// to `memcpy` and its size dispatch cost more than the copy, and small messages are
/// where a round trip is decided (measured: about 5 ns of a 140 ns round trip).
///
/// # Safety
///
/// As `std::ptr::copy_nonoverlapping(src, dst, n)`.
#[inline(always)]
unsafe fn copy_small_or_not(src: *const u8, dst: *mut u8, n: usize) {
    if (8..=16).contains(&n) {
        // SAFETY: the two 8-byte accesses (overlapping when n < 16) start at 0 and
        // n - 8, so they lie inside `src..src + n` and `dst..dst + n`, which the
        // caller guarantees valid and disjoint; unaligned, as neither end need be.
        unsafe {
            let a = src.cast::<u64>().read_unaligned();
            let b = src.add(n - 8).cast::<u64>().read_unaligned();
            dst.cast::<u64>().write_unaligned(a);
            dst.add(n - 8).cast::<u64>().write_unaligned(b);
        }
    } else if (4..8).contains(&n) {
        // SAFETY: as above, with 4-byte accesses at 0 and n - 4.
        unsafe {
            let a = src.cast::<u32>().read_unaligned();
            let b = src.add(n - 4).cast::<u32>().read_unaligned();
            dst.cast::<u32>().write_unaligned(a);
            dst.add(n - 4).cast::<u32>().write_unaligned(b);
        }
    } else {
        // SAFETY: the caller's contract is this function's.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, n) }
    }
}
