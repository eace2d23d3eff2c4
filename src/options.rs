//! Options for creating a ring ([`RingOptions`]) and for opening one ([`OpenOptions`]).

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
    /// Create the segment 0660 rather than 0600.
    pub(crate) group_access: bool,
    /// What `create_or_open` accepts of a segment it opens (widened by `group_access`).
    pub(crate) open: OpenOptions,
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
    /// `sem_clockwait` on `CLOCK_MONOTONIC` (glibc 2.30 and later; `sem_timedwait`, on
    /// the wall clock, elsewhere).
    ///
    /// Trust: a `sem_t` is libc's, and its bytes cannot all be validated. The word
    /// libc passes to the futex call as its flags (on 64-bit targets) is compared,
    /// before every post and wait, with what `sem_init` writes: a peer that scribbles
    /// it would otherwise make glibc abort the process ("The futex facility returned
    /// an unexpected error code"); a semaphore whose word differs is left alone, and
    /// sleepers fall back to their bounded park slices. Other garbage (a count) costs
    /// at most spurious or missed wake-ups, which those slices make up for. The check
    /// and libc's call are two steps: a peer that rewrites the word in between, on
    /// purpose, can still make glibc abort this process (never read or write outside
    /// the `sem_t`); use the futex notifier with peers that might.
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
            group_access: false,
            open: OpenOptions::new(),
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
    /// attached at once, 2 to 32 (default [`DEFAULT_MAX_ENDPOINTS`]). Attaching past it
    /// fails with [`Error::Busy`](crate::Error::Busy).
    ///
    /// ```
    /// use shmlane::{mpmc, Error, RingOptions};
    /// assert!(mpmc::channel(&RingOptions::new(4096).max_endpoints(32)).is_ok());
    /// let too_many = mpmc::channel(&RingOptions::new(4096).max_endpoints(33));
    /// assert!(matches!(too_many, Err(Error::InvalidOptions { .. })));
    /// ```
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
    /// the default of consumers that open the ring, up to their own limit: a consumer
    /// that opens takes the smaller of the ring's value and [`DEFAULT_MAX_MESSAGE`]
    /// (`create_or_open`: and the `max_message` of its own options), so that the
    /// creator never decides how much another process's `recv` allocates. Each
    /// consumer can change its own with `set_max_message`.
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
    /// when the last one unmaps it. A POSIX name is removed only while it still names
    /// this ring's file (same device and inode): if the ring was removed and another
    /// made under its name meanwhile, that one stays. A SysV segment is removed by its
    /// id, which names this segment alone.
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
    /// The constructor called says it too (`create` by name: POSIX; `create_sysv` by
    /// key; `create_memfd`), and the two must agree: a backing that contradicts the
    /// constructor (`create(name, ..)` with `Backing::SysV`, `create_sysv(7, ..)` with
    /// `SysV { key: 8 }` or `Memfd`, `create_memfd` with `SysV`, `channel` with
    /// anything but the default) is [`Error::InvalidOptions`](crate::Error::InvalidOptions)
    /// naming both choices. The default, `Posix`, is no choice for the SysV, memfd and
    /// heap constructors. See [`Backing`] for how each kind is found and removed.
    ///
    /// ```
    /// use shmlane::{spsc, Backing, Error, RingOptions};
    /// let sysv = RingOptions::new(4096).backing(Backing::SysV { key: 0x5348_0001 });
    /// let e = spsc::Producer::create("/mine", &sysv).unwrap_err();
    /// assert!(matches!(e, Error::InvalidOptions { .. }), "{e}");
    /// assert!(e.to_string().contains("Backing::SysV"), "{e}");
    /// ```
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

    /// Whether the segment is made readable and writable by its group too (default
    /// `false`): permissions 0660 instead of 0600, for peers that run as other users of
    /// the creator's group. The mode is set explicitly (`fchmod` for POSIX, hugetlbfs
    /// and memfd segments, the `shmget` flags for SysV), so the umask plays no part.
    ///
    /// `create_or_open` then also accepts group bits on a segment it opens rather than
    /// creates, as [`OpenOptions::group_access`] does: peers that share these options
    /// agree, whichever of them creates.
    ///
    /// The group is the creator's effective group (or the directory's, where the
    /// filesystem says so); change it with `chown`/`fchown` or `IPC_SET` if it is not
    /// the one the peers share.
    pub fn group_access(mut self, group: bool) -> Self {
        self.group_access = group;
        self
    }

    /// What `create_or_open` accepts of a segment it opens rather than creates: its
    /// owner and its permission bits (default [`OpenOptions::new`]: owned by this
    /// process's effective user, no permission bit beyond 0600 — or 0660 with
    /// [`group_access`](Self::group_access), which always widens what is accepted to
    /// the mode it creates with). See [`OpenOptions`].
    pub fn open_options(mut self, open: OpenOptions) -> Self {
        self.open = open;
        self
    }

    /// The permission bits a segment is created with.
    pub(crate) fn create_mode(&self) -> u32 {
        if self.group_access {
            0o660
        } else {
            0o600
        }
    }

    /// What `create_or_open` accepts of a segment it opens: `open`, widened to the mode
    /// it would create with.
    pub(crate) fn open_policy(&self) -> OpenOptions {
        let mut open = self.open;
        open.mode |= self.create_mode();
        open
    }

    /// The capacity asked for.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity
    }
}

/// What an endpoint accepts of an existing segment it opens: who may own it and which
/// permission bits it may have. Taken by `open_with`, `open_sysv_with` and
/// `open_fd_with` of every endpoint type, and by `create_or_open` through
/// [`RingOptions::open_options`].
///
/// By default ([`OpenOptions::new`]) a segment must be owned by the effective user of
/// the opening process and grant nothing beyond 0600 (read and write for its owner):
/// then no other user can have written into it, resized it, or read what it carries.
/// Anything else is refused with [`Error::Permissions`](crate::Error::Permissions),
/// which says what was found and which option accepts it. Root is held to the same
/// rule: opening a ring owned by another user needs [`foreign_owner`](Self::foreign_owner)
/// even for root.
///
/// The checks are made on the opened object (`fstat` of the descriptor, or
/// `shmctl(IPC_STAT)` of the SysV segment, whose creator is checked as its owner is:
/// see [`foreign_owner`](Self::foreign_owner)), before anything is mapped. Inspection
/// ([`inspect`](crate::inspect)) makes none: it only reads.
///
/// A separate type rather than [`RingOptions`]: those describe a ring to create and need
/// a capacity, which would mean nothing to an opener; an opener only says whom it trusts.
///
/// ```
/// # let name = format!("/shmlane-doc-open-with-{}", std::process::id());
/// use shmlane::{spsc, Error, OpenOptions, RingOptions};
///
/// // A ring its creator shares with its group (mode 0660).
/// let tx = spsc::Producer::create(&name, &RingOptions::new(4096).group_access(true))?;
/// // A plain open accepts 0600 only...
/// assert!(matches!(spsc::Consumer::open(&name), Err(Error::Permissions { .. })));
/// // ...an opener that agrees to share with the group opens it.
/// let rx = spsc::Consumer::open_with(&name, &OpenOptions::new().group_access(true))?;
/// # drop((tx, rx)); shmlane::remove(&name)?;
/// # Ok::<(), shmlane::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpenOptions {
    /// The permission bits a segment may have (a subset of 0o777): any other bit set on
    /// the segment refuses it.
    pub(crate) mode: u32,
    /// Accept a segment owned by another user.
    pub(crate) foreign_owner: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// The default checks: owned by this process's effective user, mode within 0600.
    pub fn new() -> Self {
        OpenOptions {
            mode: 0o600,
            foreign_owner: false,
        }
    }

    /// Whether group read and write bits are accepted (default `false`): sets the
    /// accepted mode to 0660 (`true`) or 0600 (`false`). The counterpart of
    /// [`RingOptions::group_access`].
    pub fn group_access(self, group: bool) -> Self {
        self.accept_mode(if group { 0o660 } else { 0o600 })
    }

    /// The widest permission bits accepted (default 0o600): a segment with any bit
    /// outside `mode` is refused. `accept_mode(0o666)` accepts a segment that every
    /// user may read and write (`chmod`ed so by hand, or made by another program): any
    /// local process can then corrupt the ring, read its messages, or truncate the
    /// segment (see the crate's trust model). Only the permission bits (0o777) count.
    pub fn accept_mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Whether a segment owned by another user is accepted (default `false`): that
    /// user can resize or rewrite it at any time, so accept it only from a user you
    /// trust. Applies to root too.
    ///
    /// For a SysV segment the creator counts as an owner: its creator keeps full access
    /// after giving it to another user with `shmctl(IPC_SET)`, so by default the
    /// creator (`shm_perm.cuid`) must be this process's effective user as well as the
    /// owner (`shm_perm.uid`), and, when the segment's mode grants group access, the
    /// creator group (`shm_perm.cgid`) must be one this process is in. `true` accepts
    /// a foreign creator and creator group too.
    pub fn foreign_owner(mut self, accept: bool) -> Self {
        self.foreign_owner = accept;
        self
    }
}
