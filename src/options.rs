//! Options for creating a ring.

use crate::wait::Wait;

/// Default cap on a message the consumer reassembles in memory: 1 GiB.
pub const DEFAULT_MAX_MESSAGE: u64 = 1 << 30;

/// How to create a ring: its capacity and the defaults of the endpoints that use it.
///
/// ```
/// use shmlane::{RingOptions, Wait};
///
/// let opts = RingOptions::new(1 << 20)   // 1 MiB data region
///     .max_message(64 << 20)             // recv reassembles at most 64 MiB
///     .wait(Wait::Adaptive)
///     .unlink_on_drop(true);
/// assert_eq!(opts.capacity_bytes(), 1 << 20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingOptions {
    pub(crate) capacity: usize,
    pub(crate) max_message: u64,
    pub(crate) wait: Wait,
    pub(crate) unlink_on_drop: bool,
    pub(crate) asymmetric_fences: bool,
    pub(crate) notifier: Notifier,
    /// Backing, huge pages, pre-faulting, locking.
    pub(crate) memory: crate::segment::backing::MemoryOptions,
    /// MPMC: bytes per cell (0: the default, `DEFAULT_CELL_SIZE` or `capacity / 2`).
    pub(crate) cell_size: usize,
    /// MPMC: how many endpoints may be attached at once.
    pub(crate) max_endpoints: usize,
}

/// MPMC: the default cell size in bytes. A message takes `ceil(len / cell)` cells (at
/// least one) plus 16 bytes of the cell table per cell.
pub const DEFAULT_CELL_SIZE: usize = 64;
/// MPMC: the default limit on endpoints attached at once.
pub const DEFAULT_MAX_ENDPOINTS: usize = 16;

/// What a sleeping endpoint sleeps on, chosen when the ring is created and recorded
/// in its header (a build that does not know the kind refuses the ring with
/// [`Error::Incompatible`](crate::Error::Incompatible)).
///
/// Either way a sender checks a waiter count first and makes no system call while
/// nobody sleeps; the choice only matters for the sleeps themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Notifier {
    /// A futex on a word of the header (Linux). The default: the cheapest wake-up.
    #[default]
    Futex,
    /// Process-shared POSIX semaphores (`sem_init(pshared = 1)`) in the header, for
    /// comparison, and for systems or sandboxes without futex. Sleeps are bounded with
    /// `sem_timedwait`.
    ///
    /// Trust: a `sem_t` cannot be validated, so its bytes are trusted. A peer that
    /// overwrites them can make glibc abort the process on the next wake-up ("The futex
    /// facility returned an unexpected error code"). Use it only with peers you trust
    /// not to scribble over the header; the futex notifier has no such exposure.
    Semaphore,
}

impl RingOptions {
    /// A ring whose data region is `capacity_bytes` long: a power of two from 64 bytes
    /// to 1 TiB (checked when the ring is created). A single record holds up to
    /// `capacity_bytes / 2 - 8` bytes; larger messages travel in fragments.
    pub fn new(capacity_bytes: usize) -> Self {
        RingOptions {
            capacity: capacity_bytes,
            max_message: DEFAULT_MAX_MESSAGE,
            wait: Wait::default(),
            unlink_on_drop: false,
            asymmetric_fences: true,
            notifier: Notifier::Futex,
            memory: Default::default(),
            cell_size: 0,
            max_endpoints: DEFAULT_MAX_ENDPOINTS,
        }
    }

    /// MPMC rings only: the cell size in bytes, a power of two from 8 to 1 MiB and at
    /// most half the capacity (default [`DEFAULT_CELL_SIZE`], or half the capacity if
    /// that is smaller). Every message takes whole cells, so small cells waste less
    /// room on small messages and large cells cost fewer stamp checks on large ones.
    /// The segment holds `capacity / cell_size * 16` bytes of cell table besides the
    /// cells.
    pub fn cell_size(mut self, bytes: usize) -> Self {
        self.cell_size = bytes;
        self
    }

    /// MPMC rings only: how many endpoints (producers and consumers together) may be
    /// attached at once, 2 to 64 (default [`DEFAULT_MAX_ENDPOINTS`]). Attaching past it
    /// fails with [`Error::Busy`](crate::Error::Busy).
    pub fn max_endpoints(mut self, n: usize) -> Self {
        self.max_endpoints = n;
        self
    }

    /// The cell size an MPMC ring made with these options gets.
    pub(crate) fn effective_cell_size(&self) -> usize {
        if self.cell_size == 0 {
            DEFAULT_CELL_SIZE.min(self.capacity / 2).max(8)
        } else {
            self.cell_size
        }
    }

    /// The largest message `recv` will reassemble into a `Vec` (default 1 GiB). A longer
    /// one gives [`RecvError::TooLarge`](crate::RecvError::TooLarge) without allocating;
    /// `recv_stream` reads messages of any length. Stored in the segment, so it is also
    /// the default of consumers that open the ring.
    pub fn max_message(mut self, bytes: u64) -> Self {
        self.max_message = bytes;
        self
    }

    /// How the creating endpoint waits (default [`Wait::Adaptive`]). Each endpoint can
    /// change its own with `set_wait`.
    pub fn wait(mut self, wait: Wait) -> Self {
        self.wait = wait;
        self
    }

    /// Whether the creating endpoint removes the segment's name when it is dropped
    /// (default `false`). Endpoints that have it open keep working; the memory is freed
    /// when the last one unmaps it.
    pub fn unlink_on_drop(mut self, unlink: bool) -> Self {
        self.unlink_on_drop = unlink;
        self
    }

    /// Whether wake-ups use asymmetric fences (default `true`, where the kernel has
    /// `membarrier`): a sender then checks for sleepers with no fence at all, and a
    /// receiver about to sleep pays instead, with one `membarrier` system call (a few
    /// microseconds, beside the tens a sleep costs). This is worth about half the
    /// throughput of small messages. Every process that opens such a ring must be able
    /// to use `membarrier` (a seccomp sandbox may forbid it; opening then fails with
    /// [`Error::Incompatible`](crate::Error::Incompatible)); `false` makes each send pay
    /// one full fence instead.
    pub fn asymmetric_fences(mut self, asymmetric: bool) -> Self {
        self.asymmetric_fences = asymmetric;
        self
    }

    /// What sleeping endpoints sleep on (default [`Notifier::Futex`]).
    pub fn notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// The kind of shared memory the ring is created in (default [`Backing::Posix`]).
    /// `create`, `create_or_open` and `spsc::create_ring` follow it; see [`Backing`]
    /// for how each kind is found and removed.
    ///
    /// [`Backing`]: crate::Backing
    /// [`Backing::Posix`]: crate::Backing::Posix
    pub fn backing(mut self, backing: crate::Backing) -> Self {
        self.memory.backing = backing;
        self
    }

    /// Whether the segment is backed by huge pages (default `false`): fewer TLB misses
    /// on large rings. POSIX rings then live in a hugetlbfs mount (found in
    /// /proc/mounts, of the default huge page size), SysV rings use `SHM_HUGETLB`, memfd
    /// rings `MFD_HUGETLB`. The capacity must be a multiple of the huge page size
    /// ([`Error::InvalidOptions`](crate::Error::InvalidOptions) otherwise), and the
    /// segment takes one more huge page for the header. Where the system has no huge
    /// pages to give (none reserved in `vm.nr_hugepages`, no hugetlbfs mount for a POSIX
    /// ring), creating fails with an [`Error::Io`](crate::Error::Io) that says so.
    /// Processes that open the ring map it with huge pages too, without asking.
    pub fn huge_pages(mut self, huge: bool) -> Self {
        self.memory.huge_pages = huge;
        self
    }

    /// Whether the creator pre-faults the whole segment when it maps it (default
    /// `false`): `MAP_POPULATE`, or `madvise(MADV_POPULATE_WRITE)` for SysV. The memory
    /// is allocated at creation rather than on first touch, for every process, since it
    /// is shared; processes that open the ring still take one minor fault per page the
    /// first time they touch it.
    pub fn populate(mut self, populate: bool) -> Self {
        self.memory.populate = populate;
        self
    }

    /// Whether the creator `mlock`s the segment (default `false`): its pages then stay
    /// in memory, never swapped, for as long as the creating endpoint has it mapped.
    /// Needs a large enough `RLIMIT_MEMLOCK` (`ulimit -l`) or `CAP_IPC_LOCK`; creating
    /// fails with an [`Error::Io`](crate::Error::Io) that says so otherwise.
    pub fn lock_memory(mut self, lock: bool) -> Self {
        self.memory.lock_memory = lock;
        self
    }

    /// The capacity asked for.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity
    }
}
