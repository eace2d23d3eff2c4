//! The SPSC byte ring: one [`Producer`], one [`Consumer`].
//!
//! # Protocol
//!
//! Positions are u64 byte counts since the ring was created; index = position mod
//! capacity. The producer owns `tail` (where the next record goes), the consumer owns
//! `head` (the next record to read). Each keeps the real value privately and publishes
//! it in the header:
//!
//! - The **record header is the commit word**. The producer copies the payload, stores 0
//!   into the word right after the record (where the next header will go), then stores
//!   the header with Release. The consumer polls the header word at its own position
//!   with Acquire: 0 means nothing yet (see `frame.rs`). One cache line
//!   carries both the signal and a small payload.
//! - `head` is published lazily: every `capacity / 4` bytes, whenever the consumer
//!   finds the ring empty (before it waits), and on drop. The producer re-reads it
//!   (Acquire) only when its cached copy says the ring is full.
//! - The producer claims `record + 8` bytes of free space, so it always owns the word
//!   after the record it publishes; that is why it can zero it.
//! - A record never straddles the end of the region: when it would, the producer
//!   writes a PAD record to the end and goes on at index 0. So every payload is one
//!   contiguous slice. The largest record is `capacity / 2`, which always fits once
//!   the ring has drained.
//! - `tail` is published (Release) after every record, for re-attaching producers and
//!   for inspection; the consumer never reads it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{
    Corruption, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use crate::frame::{self, DataRecord, Record, FLAGS_ABORTED, FLAGS_WHOLE, RECORD_HEADER};
use crate::header::{
    Header, RingParams, ENDPOINT_ATTACHED, ENDPOINT_DETACHED, ENDPOINT_VACANT,
    FLAG_ASYMMETRIC_FENCES, KIND_SPSC, NOTIFIER_SEMAPHORE,
};
use crate::options::RingOptions;
use crate::region::DataRegion;
#[cfg(not(loom))]
use crate::segment::Location;
use crate::segment::Segment;
use crate::stream::{MessageReader, MessageWriter};
use crate::sync::Ordering;
use crate::wait::{block_on, membarrier, EventCount, Spinner, Wait};
#[cfg(not(loom))]
use crate::Backing;
use crate::Error;
#[cfg(not(loom))]
use std::os::fd::{BorrowedFd, OwnedFd};

/// Endpoint-table slot of the producer.
const PRODUCER_SLOT: usize = 0;
/// Endpoint-table slot of the consumer.
const CONSUMER_SLOT: usize = 1;

/// Whether an operation may wait, and until when.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// Do not wait: report "would block" at once.
    Try,
    /// Wait, until the deadline if there is one.
    Block(Option<Instant>),
}

impl Mode {
    fn timeout(timeout: Duration) -> Self {
        // A timeout too large to add to now() is as good as none.
        Mode::Block(Instant::now().checked_add(timeout))
    }
}

/// Creates a ring in private heap memory: a producer and a consumer for two threads of
/// one process, with the same protocol as a shared segment.
///
/// ```
/// let (mut tx, mut rx) = shmlane::spsc::channel(&shmlane::RingOptions::new(4096))?;
/// tx.send(b"hello")?;
/// let mut buf = Vec::new();
/// assert_eq!(rx.recv(&mut buf)?, 5);
/// assert_eq!(buf, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn channel(opts: &RingOptions) -> Result<(Producer, Consumer), Error> {
    let params = params_for(opts)?;
    let seg = Arc::new(Segment::Heap(crate::segment::heap::HeapSegment::new(
        &params,
    )?));
    let producer = Producer::attach(seg.clone(), params, opts.wait)?;
    let consumer = Consumer::attach(seg, params, opts.wait)?;
    Ok((producer, consumer))
}

fn params_for(opts: &RingOptions) -> Result<RingParams, Error> {
    let flags = if opts.asymmetric_fences && membarrier::register() {
        FLAG_ASYMMETRIC_FENCES
    } else {
        0
    };
    // Under loom there is no semaphore: the models run the futex event count.
    let notifier = match opts.notifier {
        crate::Notifier::Semaphore if !cfg!(loom) => NOTIFIER_SEMAPHORE,
        _ => 0,
    };
    RingParams::new(KIND_SPSC, opts.capacity, opts.max_message, flags | notifier)
        .map_err(|reason| Error::InvalidOptions { reason })
}

/// An endpoint of a ring with asymmetric fences must be registered for membarrier
/// before it can notify (see `wait::membarrier`).
fn check_fences(params: &RingParams, name: &str) -> Result<(), Error> {
    if params.asymmetric_fences() && !membarrier::register() {
        return Err(Error::Incompatible {
            name: name.to_string(),
            field: "flags",
            found: params.flags,
            expected: "membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) to work in this process \
                       (it does not: create the ring with asymmetric_fences(false))"
                .to_string(),
        });
    }
    Ok(())
}

/// Creates the segment `opts.backing` says (see [`crate::segment::create`]).
#[cfg(not(loom))]
fn create_segment(name: &str, opts: &RingOptions) -> Result<(Arc<Segment>, RingParams), Error> {
    let params = params_for(opts)?;
    let seg = crate::segment::create(name, &params, &opts.memory, opts.unlink_on_drop)?;
    Ok((Arc::new(seg), params))
}

/// Creates a memfd segment labelled `shmlane`; returns it with a duplicate of its memfd.
#[cfg(not(loom))]
fn create_memfd_segment(opts: &RingOptions) -> Result<(Arc<Segment>, RingParams, OwnedFd), Error> {
    let (seg, params) = create_segment("shmlane", &opts.clone().backing(Backing::Memfd))?;
    let fd = seg
        .memfd()
        .expect("a memfd segment")
        .try_clone_to_owned()
        .map_err(|source| Error::Io {
            op: "fcntl(F_DUPFD_CLOEXEC)",
            name: seg.name().to_string(),
            source,
        })?;
    Ok((seg, params, fd))
}

/// Creates the ring `name` without attaching an endpoint: both the producer and the
/// consumer then `open` it, in any order. (A ring whose creating endpoint was dropped
/// is different: its peer sees that endpoint as gone, `Disconnected`, until a new one
/// attaches.) `opts.unlink_on_drop` does not apply: remove the ring with
/// [`remove`](crate::remove).
///
/// With [`Backing::SysV`] the ring is made with that key (`name` is not used; see
/// [`create_ring_sysv`]) and removed with [`remove_sysv`](crate::remove_sysv). A memfd
/// ring made here would be closed at once: use [`create_ring_memfd`]. Nobody has the
/// segment mapped when this returns, so `lock_memory` has no lasting effect here.
///
/// ```
/// # let name = format!("/shmlane-doc-create-ring-{}", std::process::id());
/// use shmlane::{spsc, RingOptions};
/// spsc::create_ring(&name, &RingOptions::new(4096))?;
/// let mut rx = spsc::Consumer::open(&name)?;
/// assert_eq!(rx.try_recv(&mut Vec::new()), Err(shmlane::TryRecvError::Empty));
/// let mut tx = spsc::Producer::open(&name)?;
/// tx.send(b"hi")?;
/// # shmlane::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(not(loom))]
pub fn create_ring(name: &str, opts: &RingOptions) -> Result<(), Error> {
    if opts.memory.backing == Backing::Memfd {
        return Err(Error::InvalidOptions {
            reason: "create_ring with Backing::Memfd would close the memfd at once: use \
                     create_ring_memfd, which returns it"
                .to_string(),
        });
    }
    let opts = opts.clone().unlink_on_drop(false);
    create_segment(name, &opts).map(drop)
}

/// Creates a SysV ring with `key` without attaching an endpoint: [`create_ring`] with
/// `opts.backing(Backing::SysV { key })`. Both ends then `open_sysv(key)`; remove it
/// with [`remove_sysv`](crate::remove_sysv).
///
/// ```
/// # let key = 0x5200_0000 | (std::process::id() as i32 & 0xff_ffff);
/// use shmlane::{spsc, RingOptions};
/// spsc::create_ring_sysv(key, &RingOptions::new(4096))?;
/// let mut rx = spsc::Consumer::open_sysv(key)?;
/// let mut tx = spsc::Producer::open_sysv(key)?;
/// # shmlane::remove_sysv(key)?;
/// tx.send(b"hi")?;
/// assert_eq!(rx.recv(&mut Vec::new())?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(not(loom))]
pub fn create_ring_sysv(key: i32, opts: &RingOptions) -> Result<(), Error> {
    create_ring("", &opts.clone().backing(Backing::SysV { key }))
}

/// Creates a ring in a sealed memfd without attaching an endpoint, and returns the
/// memfd: hand it (or duplicates of it: [`OwnedFd::try_clone`]) to the producer and the
/// consumer, by `fork` or with [`send_fd`](crate::send_fd), and each opens it with
/// `open_fd`, in any order. The memory is freed when the last descriptor and the last
/// endpoint are gone.
///
/// ```
/// use shmlane::{spsc, RingOptions};
/// let fd = spsc::create_ring_memfd(&RingOptions::new(4096))?;
/// let mut rx = spsc::Consumer::open_fd(fd.try_clone()?)?;
/// let mut tx = spsc::Producer::open_fd(fd)?;
/// tx.send(b"hi")?;
/// assert_eq!(rx.recv(&mut Vec::new())?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(not(loom))]
pub fn create_ring_memfd(opts: &RingOptions) -> Result<OwnedFd, Error> {
    create_memfd_segment(opts).map(|(_, _, fd)| fd)
}

#[cfg(not(loom))]
fn open_segment(location: Location<'_>) -> Result<(Arc<Segment>, RingParams), Error> {
    let (seg, params) = crate::segment::open(location, KIND_SPSC)?;
    Ok((Arc::new(seg), params))
}

#[cfg(not(loom))]
fn create_or_open_segment(
    name: &str,
    opts: &RingOptions,
) -> Result<(Arc<Segment>, RingParams), Error> {
    let location = || match opts.memory.backing {
        Backing::Posix => Ok(Location::Posix(name)),
        Backing::SysV { key } => Ok(Location::SysV(key)),
        Backing::Memfd => Err(Error::InvalidOptions {
            reason: "create_or_open with Backing::Memfd: a memfd has no name to open; \
                     use create_memfd and hand the descriptor over"
                .to_string(),
        }),
    };
    location()?;
    // One creator is elected by O_EXCL (IPC_EXCL for SysV). If the segment vanishes
    // between our failed create and our open (its creator removed it), try again.
    let mut last = None;
    for _ in 0..8 {
        match create_segment(name, opts) {
            Err(Error::AlreadyExists { .. }) => {}
            other => return other,
        }
        match open_segment(location()?) {
            Err(e @ Error::NotFound { .. }) => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| Error::NotFound {
        name: name.to_string(),
    }))
}

/// One endpoint's hold on a ring: the mapping (kept alive), views into it, the
/// validated parameters, and its attachment to an endpoint-table slot. Dropping it
/// detaches the slot and wakes the peer, so that the peer sees us gone.
struct RingView {
    /// Keeps the mapping alive; `header` and `data` point into it.
    seg: Arc<Segment>,
    header: *const Header,
    data: DataRegion,
    params: RingParams,
    /// `PRODUCER_SLOT` or `CONSUMER_SLOT`; attached while this view lives.
    slot: usize,
}

impl RingView {
    /// Attaches to endpoint slot `slot`: vacant or detached becomes attached.
    fn attach(seg: Arc<Segment>, params: RingParams, slot: usize) -> Result<Self, Error> {
        let role = if slot == PRODUCER_SLOT {
            "producer"
        } else {
            "consumer"
        };
        check_fences(&params, seg.name())?;
        let s = &seg.header().endpoints[slot];
        let mut cur = s.state.load(Ordering::Acquire);
        loop {
            match cur {
                ENDPOINT_VACANT | ENDPOINT_DETACHED => {}
                ENDPOINT_ATTACHED => {
                    return Err(Error::Busy {
                        name: seg.name().to_string(),
                        endpoint: role,
                    })
                }
                other => {
                    return Err(Error::Corrupt {
                        name: seg.name().to_string(),
                        field: "endpoint state",
                        value: other.into(),
                        reason: "not vacant, attached or detached",
                    })
                }
            }
            // Acquire pairs with the Release of a previous endpoint's detach, so we see
            // the cursors it published.
            match s.state.compare_exchange(
                cur,
                ENDPOINT_ATTACHED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        s.pid.store(std::process::id(), Ordering::Relaxed);
        s.generation.fetch_add(1, Ordering::Relaxed);
        Ok(RingView {
            header: seg.header(),
            data: seg.data(),
            params,
            slot,
            seg,
        })
    }

    #[inline]
    fn header<'h>(&self) -> &'h Header {
        // SAFETY: `self.seg` keeps the segment mapped for as long as `self` lives, and
        // callers use the reference only within a method of the endpoint holding `self`.
        unsafe { &*self.header }
    }

    /// The "data available" event count (the consumer sleeps on it), with the ring's
    /// fence mode and notifier kind.
    #[inline]
    fn data_ready<'h>(&self) -> EventCount<'h> {
        let h = self.header();
        let sem = self.params.semaphores().then_some(&h.sem_data_ready);
        EventCount::new(&h.data_ready, self.params.asymmetric_fences(), sem)
    }

    /// The "space available" event count (the producer sleeps on it).
    #[inline]
    fn space_ready<'h>(&self) -> EventCount<'h> {
        let h = self.header();
        let sem = self.params.semaphores().then_some(&h.sem_space_ready);
        EventCount::new(&h.space_ready, self.params.asymmetric_fences(), sem)
    }

    /// Whether the endpoint in `slot` has detached.
    #[inline]
    fn detached(&self, slot: usize) -> bool {
        self.header().endpoints[slot].state.load(Ordering::Acquire) == ENDPOINT_DETACHED
    }

    fn corrupt(&self, field: &'static str, value: u64, reason: &'static str) -> Error {
        Error::Corrupt {
            name: self.seg.name().to_string(),
            field,
            value,
            reason,
        }
    }

    /// Reads and checks the published cursors: `head <= tail <= head + capacity`, both
    /// 8-byte aligned.
    fn published_cursors(&self) -> Result<(u64, u64), Error> {
        // Acquire: pairs with the Release stores of the cursors by earlier endpoints.
        let head = self.header().head.load(Ordering::Acquire);
        let tail = self.header().tail.load(Ordering::Acquire);
        if head % 8 != 0 {
            return Err(self.corrupt("head", head, "not 8-byte aligned"));
        }
        if tail % 8 != 0 {
            return Err(self.corrupt("tail", tail, "not 8-byte aligned"));
        }
        if head > tail || tail - head > self.params.capacity as u64 {
            return Err(self.corrupt("tail", tail, "not within head..=head + capacity"));
        }
        // Positions count bytes from 0: at 100 GB/s they pass 2^63 after ~3 years. A
        // cursor beyond is corruption, and the position arithmetic would overflow.
        if tail > 1 << 63 {
            return Err(self.corrupt("tail", tail, "beyond 2^63, where no ring gets"));
        }
        Ok((head, tail))
    }
}

impl Drop for RingView {
    fn drop(&mut self) {
        let header = self.header();
        // SYNC POINT: Release pairs with the peer's Acquire load of our state, so
        // everything we published before is visible to a peer that sees us gone.
        header.endpoints[self.slot]
            .state
            .store(ENDPOINT_DETACHED, Ordering::Release);
        // Wake the peer if it sleeps waiting for us: a consumer on "data available", a
        // producer on "space available".
        let peer_waits_on = if self.slot == PRODUCER_SLOT {
            self.data_ready()
        } else {
            self.space_ready()
        };
        peer_waits_on.notify();
    }
}

// ---------------------------------------------------------------------------------
// Producer
// ---------------------------------------------------------------------------------

/// The writing end of an SPSC ring.
///
/// ```no_run
/// use shmlane::{spsc, RingOptions};
///
/// let mut tx = spsc::Producer::create("/demo-ring", &RingOptions::new(1 << 16))?;
/// tx.send(b"frame 1")?;
/// let mut grant = tx.reserve(5)?;       // zero-copy: write in place
/// grant.copy_from_slice(b"hello");
/// grant.commit();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Producer {
    ring: RingView,
    /// Next write position. Invariant: `cached_head <= tail <= cached_head + capacity`,
    /// a multiple of 8, and the word at `tail` holds 0.
    tail: u64,
    /// Last value of the shared `head` we read; never more than the real one.
    cached_head: u64,
    /// Record size of a fragment of a large message.
    fragment_record: usize,
    wait: Wait,
    spinner: Spinner,
    /// A message in fragments was begun and not closed: the next message first
    /// publishes an ABORT record for it.
    pub(crate) open_message: bool,
}

// SAFETY: the raw pointers in `ring` point into the segment it keeps alive, and the
// producer's private state moves with it; shared state is reached through atomics.
unsafe impl Send for Producer {}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("name", &self.ring.seg.name())
            .field("capacity", &self.ring.params.capacity)
            .field("tail", &self.tail)
            .field("cached_head", &self.cached_head)
            .field("wait", &self.wait)
            .finish()
    }
}

impl Producer {
    /// Creates the ring `name` (a POSIX shared-memory name such as `"/my-ring"`) and
    /// attaches as its producer. Fails with [`Error::AlreadyExists`] if the name is
    /// taken: an existing segment is never truncated or reused.
    ///
    /// The ring is made in the memory [`RingOptions::backing`] says: with
    /// [`Backing::SysV`] it gets that key, and `name` is not used (prefer
    /// [`create_sysv`](Self::create_sysv)); with [`Backing::Memfd`] `name` is the
    /// memfd's label (prefer [`create_memfd`](Self::create_memfd), which also returns the
    /// descriptor).
    #[cfg(not(loom))]
    pub fn create(name: &str, opts: &RingOptions) -> Result<Self, Error> {
        let (seg, params) = create_segment(name, opts)?;
        Producer::attach(seg, params, opts.wait)
    }

    /// Opens the existing ring `name` (POSIX) and attaches as its producer. Waits up to
    /// 2 s for a creator that is still initialising it; validates every header field.
    #[cfg(not(loom))]
    pub fn open(name: &str) -> Result<Self, Error> {
        let (seg, params) = open_segment(Location::Posix(name))?;
        Producer::attach(seg, params, Wait::default())
    }

    /// Creates the ring if it does not exist, else opens it (`opts` then only sets the
    /// wait strategy). Of several processes racing, exactly one creates. Works with
    /// [`Backing::Posix`] and [`Backing::SysV`] (then by key, `name` unused); a memfd
    /// has nothing to open by ([`Error::InvalidOptions`]).
    #[cfg(not(loom))]
    pub fn create_or_open(name: &str, opts: &RingOptions) -> Result<Self, Error> {
        let (seg, params) = create_or_open_segment(name, opts)?;
        Producer::attach(seg, params, opts.wait)
    }

    /// Creates a System V ring with `key` (`shmget`, permissions 0600) and attaches as
    /// its producer: [`create`](Self::create) with `opts.backing(Backing::SysV { key })`.
    /// Fails with [`Error::AlreadyExists`] if a segment has the key. The segment stays
    /// until [`remove_sysv`](crate::remove_sysv) (or `unlink_on_drop`) and the last
    /// detach.
    ///
    /// ```
    /// # let key = 0x5300_0000 | (std::process::id() as i32 & 0xff_ffff);
    /// use shmlane::{spsc, RingOptions};
    /// let opts = RingOptions::new(4096).unlink_on_drop(true);
    /// let mut tx = spsc::Producer::create_sysv(key, &opts)?;
    /// let mut rx = spsc::Consumer::open_sysv(key)?; // in another process
    /// tx.send(b"hi")?;
    /// assert_eq!(rx.recv(&mut Vec::new())?, 2);
    /// assert_eq!(tx.name(), format!("sysv:{key:#010x}"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub fn create_sysv(key: i32, opts: &RingOptions) -> Result<Self, Error> {
        Producer::create("", &opts.clone().backing(Backing::SysV { key }))
    }

    /// Opens the existing System V ring with `key` and attaches as its producer. Checks
    /// the segment's size (`shmctl(IPC_STAT)`) before attaching, waits up to 2 s for a
    /// creator that is still initialising it, and validates every header field.
    #[cfg(not(loom))]
    pub fn open_sysv(key: i32) -> Result<Self, Error> {
        let (seg, params) = open_segment(Location::SysV(key))?;
        Producer::attach(seg, params, Wait::default())
    }

    /// Creates the System V ring with `key` if there is none, else opens it. Of several
    /// processes racing, exactly one creates (`IPC_EXCL`).
    #[cfg(not(loom))]
    pub fn create_or_open_sysv(key: i32, opts: &RingOptions) -> Result<Self, Error> {
        Producer::create_or_open("", &opts.clone().backing(Backing::SysV { key }))
    }

    /// Creates a ring in a new sealed memfd and attaches as its producer. Returns the
    /// producer and a descriptor of the memfd to hand to the consumer's process (by
    /// `fork`, or over a UNIX socket with [`send_fd`](crate::send_fd)), which opens it
    /// with [`Consumer::open_fd`]. The memfd has no name: the memory is freed when the
    /// last descriptor and mapping are gone.
    ///
    /// ```
    /// use shmlane::{spsc, RingOptions};
    /// let (mut tx, fd) = spsc::Producer::create_memfd(&RingOptions::new(4096))?;
    /// let mut rx = spsc::Consumer::open_fd(fd)?; // in another process
    /// tx.send(b"hi")?;
    /// assert_eq!(rx.recv(&mut Vec::new())?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub fn create_memfd(opts: &RingOptions) -> Result<(Self, OwnedFd), Error> {
        let (seg, params, fd) = create_memfd_segment(opts)?;
        Ok((Producer::attach(seg, params, opts.wait)?, fd))
    }

    /// Opens the ring in the memfd `fd` and attaches as its producer. The memfd must
    /// carry the seals shmlane puts on it (`F_SEAL_SHRINK | F_SEAL_GROW |
    /// F_SEAL_SEAL`), so that nobody can truncate it under us; a descriptor without them
    /// is refused with [`Error::Incompatible`] (field `"seals"`). Validates every header
    /// field, as [`open`](Self::open) does.
    #[cfg(not(loom))]
    pub fn open_fd(fd: OwnedFd) -> Result<Self, Error> {
        let (seg, params) = open_segment(Location::Fd(fd))?;
        Producer::attach(seg, params, Wait::default())
    }

    /// The memfd of a memfd ring (`None` for POSIX and SysV rings), to hand to more
    /// processes.
    #[cfg(not(loom))]
    pub fn memfd(&self) -> Option<BorrowedFd<'_>> {
        self.ring.seg.memfd()
    }

    pub(crate) fn attach(seg: Arc<Segment>, params: RingParams, wait: Wait) -> Result<Self, Error> {
        // On an error below, dropping `ring` detaches again.
        let ring = RingView::attach(seg, params, PRODUCER_SLOT)?;
        let (head, mut tail) = ring.published_cursors()?;
        // A producer that stopped between publishing a record and storing `tail`
        // leaves published records past `tail`: walk over them, so we never write over
        // a record the consumer may be reading.
        let data = ring.data;
        loop {
            let word = data.word(data.index(tail)).load(Ordering::Acquire);
            match frame::decode(word, tail, params.capacity, params.max_record) {
                Ok(None) => break,
                Ok(Some(Record::Pad { size })) => tail += size as u64,
                Ok(Some(Record::Data(d))) => tail += d.size() as u64,
                Err(c) => {
                    return Err(ring.corrupt(
                        "record header at tail",
                        c.value,
                        "neither 0 nor a record written for this position",
                    ))
                }
            }
            if tail - head > params.capacity as u64 {
                return Err(ring.corrupt(
                    "tail",
                    tail,
                    "published records run past head + capacity",
                ));
            }
        }
        let fragment_record = if params.capacity >= 4096 {
            (params.capacity / 4).min(params.max_record)
        } else {
            params.max_record
        };
        Ok(Producer {
            ring,
            tail,
            cached_head: head,
            fragment_record,
            wait,
            spinner: Spinner::default(),
            open_message: false,
        })
    }

    /// The ring's data-region size in bytes.
    pub fn capacity(&self) -> usize {
        self.ring.params.capacity
    }

    /// The largest message that travels in one record (and so the largest
    /// [`reserve`](Self::reserve)): `capacity / 2 - 8`.
    pub fn max_record_payload(&self) -> usize {
        self.ring.params.max_record - RECORD_HEADER
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        self.ring.seg.name()
    }

    /// The wait strategy of this endpoint.
    pub fn wait_strategy(&self) -> Wait {
        self.wait
    }

    /// Sets the wait strategy of this endpoint.
    pub fn set_wait(&mut self, wait: Wait) {
        self.wait = wait;
    }

    /// Whether the consumer has detached (it has dropped its endpoint).
    pub fn is_disconnected(&self) -> bool {
        self.ring.detached(CONSUMER_SLOT)
    }

    // --- claiming space -----------------------------------------------------------

    /// Re-reads the consumer's `head`, checking that it moved only forward and not
    /// past `tail`.
    fn refresh_head(&mut self) -> Result<(), Corruption> {
        // SYNC POINT: Acquire pairs with the consumer's Release store of `head`: its
        // reads of the bytes it released happen before we overwrite them.
        let head = self.ring.header().head.load(Ordering::Acquire);
        if head < self.cached_head || head > self.tail || head % 8 != 0 {
            return Err(Corruption {
                what: "head cursor",
                value: head,
                position: self.tail,
            });
        }
        self.cached_head = head;
        Ok(())
    }

    /// Tries to claim room for a record of `size` bytes (8-aligned, at most
    /// `max_record`) without waiting. Writes a PAD record first if the record would
    /// straddle the end. Returns the record's position.
    #[inline]
    fn try_claim(&mut self, size: usize) -> Result<Option<u64>, Corruption> {
        debug_assert!(size % 8 == 0 && size <= self.ring.params.max_record);
        let cap = self.ring.params.capacity as u64;
        let index = self.tail & (cap - 1);
        let pad = if index + size as u64 > cap {
            cap - index
        } else {
            0
        };
        // The record, the padding before it, and the word after it (zeroed at publish).
        let need = pad + size as u64 + 8;
        if self.tail + need - self.cached_head > cap {
            self.refresh_head()?;
            if self.tail + need - self.cached_head > cap {
                return Ok(None);
            }
        }
        if pad > 0 {
            self.publish_raw(self.tail, (pad - 8) as u32, frame::FLAG_PAD, pad as usize);
        }
        Ok(Some(self.tail))
    }

    /// Claims room for a record of `size` bytes, waiting as `mode` allows.
    /// `Ok(None)`: full (Try) or timed out.
    pub(crate) fn claim(&mut self, size: usize, mode: Mode) -> Result<Option<u64>, SendError> {
        if let Some(pos) = self.try_claim(size)? {
            return Ok(Some(pos));
        }
        let Mode::Block(deadline) = mode else {
            return Ok(None);
        };
        let mut spinner = self.spinner;
        let result = block_on(
            self.wait,
            &mut spinner,
            deadline,
            self.ring.space_ready(),
            || {
                if self.ring.detached(CONSUMER_SLOT) {
                    return Err(SendError::Disconnected);
                }
                Ok(self.try_claim(size)?)
            },
        );
        self.spinner = spinner;
        result
    }

    /// Publishes the record at `pos` (claimed by `try_claim`) with Release, after
    /// zeroing the word after it. `size` is the record's size in the ring.
    #[inline]
    fn publish_raw(&mut self, pos: u64, len: u32, flags: u8, size: usize) {
        debug_assert_eq!(pos, self.tail);
        let end = pos + size as u64;
        let index = self.ring.data.index(pos);
        let next = self.ring.data.index(end);
        self.ring.data.track_write(next, 8);
        // The next header slot must read 0 until we publish a record there: a consumer
        // that has read this record (Acquire) sees this store or a later one.
        self.ring.data.word(next).store(0, Ordering::Relaxed);
        self.ring.data.track_write(index, 8);
        // SYNC POINT: Release pairs with the consumer's Acquire load of this header word
        // in `Consumer::peek`: the payload and the zeroed next word are visible to a
        // consumer that sees this header. Relaxed would let it see the header first.
        self.ring
            .data
            .word(index)
            .store(frame::encode(pos, len, flags), Ordering::Release);
        self.tail = end;
        // For re-attaching producers and inspection only; the consumer never reads it.
        self.ring.header().tail.store(end, Ordering::Release);
    }

    /// Publishes a data record and wakes a sleeping consumer (no system call if none).
    #[inline]
    pub(crate) fn publish(&mut self, pos: u64, len: usize, flags: u8) {
        self.publish_raw(pos, len as u32, flags, frame::record_size(len));
        self.ring.data_ready().notify();
    }

    /// Index of the payload of the record at `pos`.
    #[inline]
    pub(crate) fn payload_index(&self, pos: u64) -> usize {
        self.ring.data.index(pos) + RECORD_HEADER
    }

    #[inline]
    pub(crate) fn data(&self) -> DataRegion {
        self.ring.data
    }

    /// Record size of the fragments of a large message.
    pub(crate) fn fragment_record(&self) -> usize {
        self.fragment_record
    }

    /// If a message in fragments was left open, closes it with an ABORT record so the
    /// consumer discards it.
    pub(crate) fn close_open_message(&mut self, mode: Mode) -> Result<bool, SendError> {
        if !self.open_message {
            return Ok(true);
        }
        match self.claim(8, mode)? {
            Some(pos) => {
                self.publish(pos, 0, FLAGS_ABORTED);
                self.open_message = false;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn check_connected(&self) -> Result<(), SendError> {
        if self.ring.detached(CONSUMER_SLOT) {
            return Err(SendError::Disconnected);
        }
        Ok(())
    }

    // --- sending ------------------------------------------------------------------

    #[inline]
    fn send_with(&mut self, msg: &[u8], mode: Mode) -> Result<Option<()>, SendError> {
        self.check_connected()?;
        if self.open_message && !self.close_open_message(mode)? {
            return Ok(None);
        }
        if msg.len() <= self.max_record_payload() {
            let Some(pos) = self.claim(frame::record_size(msg.len()), mode)? else {
                return Ok(None);
            };
            // SAFETY: `claim` gave us the record at `pos`: its payload bytes are inside
            // the region and ours alone until we publish.
            unsafe { self.ring.data.write(self.payload_index(pos), msg) };
            self.publish(pos, msg.len(), FLAGS_WHOLE);
            return Ok(Some(()));
        }
        let mode = match mode {
            Mode::Block(d) => Mode::Block(d),
            Mode::Try => {
                // All or nothing: send only if every fragment fits now.
                let need = self.fragmented_size(msg.len() as u64);
                let cap = self.ring.params.capacity as u64;
                let max = self.max_try_send_len();
                if need + self.fragment_record as u64 + 8 > cap {
                    return Err(SendError::TooLarge {
                        len: msg.len() as u64,
                        max,
                    });
                }
                self.refresh_head()?;
                if self.tail + need + self.fragment_record as u64 + 8 - self.cached_head > cap {
                    return Ok(None);
                }
                // Every claim below finds room at once: only we consume free space.
                Mode::Block(None)
            }
        };
        let mut writer = MessageWriter::new(self, msg.len() as u64, mode);
        let mut rest = msg;
        while !rest.is_empty() {
            // A short write means the deadline passed after some fragments went out;
            // the next call reports the timeout. Dropping the writer abandons the message.
            match writer.write_content(rest) {
                Ok(n) => rest = &rest[n..],
                Err(SendTimeoutError::Timeout) => return Ok(None),
                Err(e) => return Err(into_send_error(e)),
            }
        }
        match writer.finish_content() {
            Ok(()) => Ok(Some(())),
            Err(SendTimeoutError::Timeout) => Ok(None),
            Err(e) => Err(into_send_error(e)),
        }
    }

    /// Bytes in the ring taken by a message of `len` bytes sent in fragments.
    fn fragmented_size(&self, len: u64) -> u64 {
        let first = (self.fragment_record - RECORD_HEADER - frame::BEGIN_PREFIX) as u64;
        let rest = (self.fragment_record - RECORD_HEADER) as u64;
        let after = len.saturating_sub(first);
        let full = after / rest;
        let last = after % rest;
        self.fragment_record as u64 * (1 + full)
            + if last > 0 {
                frame::record_size(last as usize) as u64
            } else {
                0
            }
    }

    /// The longest message `try_send` accepts.
    fn max_try_send_len(&self) -> u64 {
        let cap = self.ring.params.capacity as u64;
        let budget = cap - self.fragment_record as u64 - 8;
        // fragmented_size is monotonic: binary search the largest len within budget.
        let (mut lo, mut hi) = (self.max_record_payload() as u64, cap);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.fragmented_size(mid) <= budget {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// Sends one message of any length, waiting for room as the wait strategy says.
    ///
    /// A message longer than [`max_record_payload`](Self::max_record_payload) travels
    /// in fragments, so the consumer can read the first while later ones are written;
    /// the ring, not the message, bounds the memory in flight.
    ///
    /// ```
    /// let (mut tx, mut rx) = shmlane::spsc::channel(&shmlane::RingOptions::new(4096))?;
    /// let big = vec![7u8; 3 * 4096];
    /// let t = std::thread::spawn(move || tx.send(&big).map(|_| tx));
    /// let mut buf = Vec::new();
    /// assert_eq!(rx.recv(&mut buf)?, 3 * 4096);
    /// t.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.send_with(msg, Mode::Block(None))
            .map(|r| debug_assert!(r.is_some()))
    }

    /// Sends one message if it fits in the ring now; never waits.
    ///
    /// A message in fragments is sent only if all of it fits now; one that can never
    /// fit at once gives [`TrySendError::TooLarge`] (use `send` or `stream`).
    ///
    /// ```
    /// use shmlane::TrySendError;
    /// let (mut tx, _rx) = shmlane::spsc::channel(&shmlane::RingOptions::new(64))?;
    /// tx.try_send(&[1; 24])?;
    /// assert_eq!(tx.try_send(&[2; 24]), Err(TrySendError::Full));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), TrySendError> {
        match self.send_with(msg, Mode::Try) {
            Ok(Some(())) => Ok(()),
            Ok(None) => Err(TrySendError::Full),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends one message, waiting at most `timeout` for room. If the deadline passes
    /// while a message in fragments is partly sent, the message is abandoned and the
    /// consumer gets [`RecvError::Truncated`] for it.
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), SendTimeoutError> {
        match self.send_with(msg, Mode::timeout(timeout)) {
            Ok(Some(())) => Ok(()),
            Ok(None) => Err(SendTimeoutError::Timeout),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends a plain-old-data value as one message of `size_of::<T>()` bytes.
    ///
    /// ```
    /// let (mut tx, mut rx) = shmlane::spsc::channel(&shmlane::RingOptions::new(4096))?;
    /// tx.send_pod(&[1.5f32, 2.5])?;
    /// assert_eq!(rx.recv_pod::<[f32; 2]>()?, [1.5, 2.5]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_pod<T: bytemuck::Pod>(&mut self, value: &T) -> Result<(), SendError> {
        self.send(bytemuck::bytes_of(value))
    }

    #[inline(always)]
    fn reserve_with(
        &mut self,
        len: usize,
        mode: Mode,
    ) -> Result<Option<WriteGrant<'_>>, SendError> {
        self.check_connected()?;
        if len > self.max_record_payload() {
            return Err(SendError::TooLarge {
                len: len as u64,
                max: self.max_record_payload() as u64,
            });
        }
        if self.open_message && !self.close_open_message(mode)? {
            return Ok(None);
        }
        let Some(pos) = self.claim(frame::record_size(len), mode)? else {
            return Ok(None);
        };
        let index = self.payload_index(pos);
        self.ring.data.track_write(index, len);
        Ok(Some(WriteGrant {
            producer: self,
            pos,
            index,
            len,
        }))
    }

    /// Reserves `len` bytes for one message, written in place (zero-copy), waiting for
    /// room as the wait strategy says. `len` is at most
    /// [`max_record_payload`](Self::max_record_payload).
    ///
    /// ```
    /// let (mut tx, mut rx) = shmlane::spsc::channel(&shmlane::RingOptions::new(4096))?;
    /// let mut grant = tx.reserve(16)?;
    /// grant[..5].copy_from_slice(b"hello");
    /// grant.commit_len(5)?;            // publish only the first 5 bytes
    /// assert_eq!(&*rx.recv_ref()?, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn reserve(&mut self, len: usize) -> Result<WriteGrant<'_>, SendError> {
        // `Block(None)` never reports "would block".
        self.reserve_with(len, Mode::Block(None))
            .map(|g| g.expect("a blocking reserve returns a grant"))
    }

    /// Like [`reserve`](Self::reserve), without waiting.
    #[inline]
    pub fn try_reserve(&mut self, len: usize) -> Result<WriteGrant<'_>, TrySendError> {
        match self.reserve_with(len, Mode::Try) {
            Ok(Some(g)) => Ok(g),
            Ok(None) => Err(TrySendError::Full),
            Err(e) => Err(e.into()),
        }
    }

    /// Like [`reserve`](Self::reserve), waiting at most `timeout`.
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<WriteGrant<'_>, SendTimeoutError> {
        match self.reserve_with(len, Mode::timeout(timeout)) {
            Ok(Some(g)) => Ok(g),
            Ok(None) => Err(SendTimeoutError::Timeout),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a message of exactly `total_len` bytes, written through [`std::io::Write`]
    /// and closed with [`MessageWriter::finish`]. Fragments are published as they fill,
    /// so a message of any size streams through a small ring.
    ///
    /// ```
    /// use std::io::Write;
    /// let (mut tx, mut rx) = shmlane::spsc::channel(&shmlane::RingOptions::new(4096))?;
    /// let mut w = tx.stream(11)?;
    /// w.write_all(b"hello ")?;
    /// w.write_all(b"world")?;
    /// w.finish()?;
    /// let mut buf = Vec::new();
    /// rx.recv(&mut buf)?;
    /// assert_eq!(buf, b"hello world");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream(&mut self, total_len: u64) -> Result<MessageWriter<'_>, SendError> {
        self.check_connected()?;
        self.close_open_message(Mode::Block(None))?;
        Ok(MessageWriter::new(self, total_len, Mode::Block(None)))
    }
}

pub(crate) fn into_send_error(e: SendTimeoutError) -> SendError {
    match e {
        SendTimeoutError::Disconnected => SendError::Disconnected,
        SendTimeoutError::TooLarge { len, max } => SendError::TooLarge { len, max },
        SendTimeoutError::Corrupt(c) => SendError::Corrupt(c),
        // Only blocking calls without a deadline use this; they never time out.
        SendTimeoutError::Timeout => SendError::Disconnected,
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Then `ring` drops: it detaches and wakes the consumer.
        let _ = self.close_open_message(Mode::Try);
    }
}

/// Room for one message in the ring, written in place. Derefs to `[u8]` of the
/// reserved length (holding whatever bytes were there before).
///
/// [`commit`](Self::commit) publishes it; dropped without a commit it publishes
/// nothing and its room is reused by the next message.
pub struct WriteGrant<'a> {
    producer: &'a mut Producer,
    pos: u64,
    /// Index of the first payload byte; `index + len <= capacity`.
    index: usize,
    len: usize,
}

impl std::fmt::Debug for WriteGrant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGrant")
            .field("pos", &self.pos)
            .field("len", &self.len)
            .finish()
    }
}

impl WriteGrant<'_> {
    /// Publishes the whole grant as one message.
    #[inline]
    pub fn commit(self) {
        let len = self.len;
        self.publish(len);
    }

    /// Publishes the first `len` bytes of the grant as one message. Fails, publishing
    /// nothing, if `len` is longer than the grant.
    #[inline]
    pub fn commit_len(self, len: usize) -> Result<(), crate::CommitError> {
        if len > self.len {
            return Err(crate::CommitError {
                len,
                granted: self.len,
            });
        }
        self.publish(len);
        Ok(())
    }

    #[inline(always)]
    fn publish(self, len: usize) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; we move the `&mut` out.
        let producer = unsafe { std::ptr::read(&this.producer) };
        producer.publish(this.pos, len, FLAGS_WHOLE);
    }
}

impl std::ops::Deref for WriteGrant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the grant's bytes are inside the region (claimed by `try_claim`) and
        // belong to this producer alone until it publishes them; the grant borrows the
        // producer mutably, so nothing else writes them meanwhile.
        unsafe { std::slice::from_raw_parts(self.producer.ring.data.ptr(self.index), self.len) }
    }
}

impl std::ops::DerefMut for WriteGrant<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only slice over them.
        unsafe { std::slice::from_raw_parts_mut(self.producer.ring.data.ptr(self.index), self.len) }
    }
}

// ---------------------------------------------------------------------------------
// Consumer
// ---------------------------------------------------------------------------------

/// The reading end of an SPSC ring.
///
/// ```no_run
/// use shmlane::spsc;
///
/// let mut rx = spsc::Consumer::open("/demo-ring")?;
/// let mut buf = Vec::new();
/// let len = rx.recv(&mut buf)?;            // one whole message, copied
/// let grant = rx.recv_ref()?;              // or read in place
/// println!("{len} bytes, then {} in place", grant.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Consumer {
    ring: RingView,
    /// Next read position; a multiple of 8; `published_head <= head`.
    head: u64,
    /// Last value stored to the shared `head`.
    published_head: u64,
    /// Publish `head` once this many bytes are unpublished.
    publish_every: u64,
    wait: Wait,
    spinner: Spinner,
    max_message: u64,
    /// A message being reassembled by `recv` across calls (after a timeout or Empty).
    pub(crate) partial: Option<Partial>,
}

/// A message `recv` has partly reassembled.
#[derive(Debug)]
pub(crate) struct Partial {
    pub(crate) total: u64,
    /// The content so far; `buf.len()` bytes of `total`.
    pub(crate) buf: Vec<u8>,
}

// SAFETY: as for `Producer`.
unsafe impl Send for Consumer {}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.ring.seg.name())
            .field("capacity", &self.ring.params.capacity)
            .field("head", &self.head)
            .field("published_head", &self.published_head)
            .field("wait", &self.wait)
            .field("max_message", &self.max_message)
            .finish()
    }
}

impl Consumer {
    /// Creates the ring `name` and attaches as its consumer. See [`Producer::create`].
    #[cfg(not(loom))]
    pub fn create(name: &str, opts: &RingOptions) -> Result<Self, Error> {
        let (seg, params) = create_segment(name, opts)?;
        Consumer::attach(seg, params, opts.wait)
    }

    /// Opens the existing ring `name` and attaches as its consumer. See
    /// [`Producer::open`].
    #[cfg(not(loom))]
    pub fn open(name: &str) -> Result<Self, Error> {
        let (seg, params) = open_segment(Location::Posix(name))?;
        Consumer::attach(seg, params, Wait::default())
    }

    /// Creates the ring if it does not exist, else opens it. See
    /// [`Producer::create_or_open`].
    #[cfg(not(loom))]
    pub fn create_or_open(name: &str, opts: &RingOptions) -> Result<Self, Error> {
        let (seg, params) = create_or_open_segment(name, opts)?;
        Consumer::attach(seg, params, opts.wait)
    }

    /// Creates a System V ring with `key` and attaches as its consumer. See
    /// [`Producer::create_sysv`].
    #[cfg(not(loom))]
    pub fn create_sysv(key: i32, opts: &RingOptions) -> Result<Self, Error> {
        Consumer::create("", &opts.clone().backing(Backing::SysV { key }))
    }

    /// Opens the existing System V ring with `key` and attaches as its consumer. See
    /// [`Producer::open_sysv`].
    #[cfg(not(loom))]
    pub fn open_sysv(key: i32) -> Result<Self, Error> {
        let (seg, params) = open_segment(Location::SysV(key))?;
        Consumer::attach(seg, params, Wait::default())
    }

    /// Creates the System V ring with `key` if there is none, else opens it. See
    /// [`Producer::create_or_open_sysv`].
    #[cfg(not(loom))]
    pub fn create_or_open_sysv(key: i32, opts: &RingOptions) -> Result<Self, Error> {
        Consumer::create_or_open("", &opts.clone().backing(Backing::SysV { key }))
    }

    /// Creates a ring in a new sealed memfd and attaches as its consumer; returns a
    /// descriptor of the memfd for the producer. See [`Producer::create_memfd`].
    #[cfg(not(loom))]
    pub fn create_memfd(opts: &RingOptions) -> Result<(Self, OwnedFd), Error> {
        let (seg, params, fd) = create_memfd_segment(opts)?;
        Ok((Consumer::attach(seg, params, opts.wait)?, fd))
    }

    /// Opens the ring in the memfd `fd` and attaches as its consumer. See
    /// [`Producer::open_fd`].
    #[cfg(not(loom))]
    pub fn open_fd(fd: OwnedFd) -> Result<Self, Error> {
        let (seg, params) = open_segment(Location::Fd(fd))?;
        Consumer::attach(seg, params, Wait::default())
    }

    /// The memfd of a memfd ring (`None` for POSIX and SysV rings).
    #[cfg(not(loom))]
    pub fn memfd(&self) -> Option<BorrowedFd<'_>> {
        self.ring.seg.memfd()
    }

    pub(crate) fn attach(seg: Arc<Segment>, params: RingParams, wait: Wait) -> Result<Self, Error> {
        // On an error below, dropping `ring` detaches again.
        let ring = RingView::attach(seg, params, CONSUMER_SLOT)?;
        let (head, _tail) = ring.published_cursors()?;
        Ok(Consumer {
            ring,
            head,
            published_head: head,
            publish_every: (params.capacity / 4) as u64,
            wait,
            spinner: Spinner::default(),
            max_message: params.max_message,
            partial: None,
        })
    }

    /// The ring's data-region size in bytes.
    pub fn capacity(&self) -> usize {
        self.ring.params.capacity
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        self.ring.seg.name()
    }

    /// The wait strategy of this endpoint.
    pub fn wait_strategy(&self) -> Wait {
        self.wait
    }

    /// Sets the wait strategy of this endpoint.
    pub fn set_wait(&mut self, wait: Wait) {
        self.wait = wait;
    }

    /// The largest message [`recv`](Self::recv) reassembles (from the ring's options
    /// unless changed with [`set_max_message`](Self::set_max_message)).
    pub fn max_message(&self) -> u64 {
        self.max_message
    }

    /// Sets the largest message [`recv`](Self::recv) reassembles.
    pub fn set_max_message(&mut self, bytes: u64) {
        self.max_message = bytes;
    }

    /// Whether the producer has detached. Messages it sent may still be in the ring.
    pub fn is_disconnected(&self) -> bool {
        self.ring.detached(PRODUCER_SLOT)
    }

    // --- reading records ----------------------------------------------------------

    /// The record at `head`, if one is published, skipping a PAD.
    #[inline(always)]
    fn peek(&mut self) -> Result<Option<DataRecord>, Corruption> {
        loop {
            let index = self.ring.data.index(self.head);
            // SYNC POINT: Acquire pairs with the producer's Release store of this header
            // in `Producer::publish_raw`: the payload is visible once we see the header.
            let word = self.ring.data.word(index).load(Ordering::Acquire);
            match frame::decode(
                word,
                self.head,
                self.ring.params.capacity,
                self.ring.params.max_record,
            )? {
                None => return Ok(None),
                // A PAD never starts at index 0 (decode checks), so this loops at most once.
                Some(Record::Pad { size }) => self.release(size),
                Some(Record::Data(d)) => return Ok(Some(d)),
            }
        }
    }

    /// Releases the `size`-byte record at `head`.
    #[inline]
    pub(crate) fn release(&mut self, size: usize) {
        self.head += size as u64;
        if self.head - self.published_head >= self.publish_every {
            self.publish_head();
        }
    }

    /// Publishes `head` and wakes a producer waiting for room.
    fn publish_head(&mut self) {
        // SYNC POINT: Release pairs with the producer's Acquire load in `refresh_head`:
        // our reads of the released bytes happen before it overwrites them.
        self.ring.header().head.store(self.head, Ordering::Release);
        self.published_head = self.head;
        self.ring.space_ready().notify();
    }

    /// The next record, or `None` if the ring is empty; `Disconnected` if it is empty
    /// and the producer has detached. Publishes `head` when the ring is empty, so a
    /// producer waiting for room sees everything we have read before we wait.
    #[inline(always)]
    fn poll_record(&mut self) -> Result<Option<DataRecord>, RecvError> {
        if let Some(r) = self.peek()? {
            return Ok(Some(r));
        }
        if self.head != self.published_head {
            self.publish_head();
        }
        // Acquire load of the producer's state first, then look again: a producer that
        // published and then detached (Release) has its last record visible to us here.
        if self.ring.detached(PRODUCER_SLOT) {
            if let Some(r) = self.peek()? {
                return Ok(Some(r));
            }
            return Err(RecvError::Disconnected);
        }
        Ok(None)
    }

    /// Waits for the next record as `mode` allows. `Err(Timeout)`: none arrived (at
    /// once, for `Mode::Try`).
    #[inline]
    pub(crate) fn next_record(&mut self, mode: Mode) -> Result<DataRecord, RecvTimeoutError> {
        if let Some(r) = self.poll_record()? {
            return Ok(r);
        }
        let Mode::Block(deadline) = mode else {
            return Err(RecvTimeoutError::Timeout);
        };
        let mut spinner = self.spinner;
        let result = block_on(
            self.wait,
            &mut spinner,
            deadline,
            self.ring.data_ready(),
            || self.poll_record(),
        );
        self.spinner = spinner;
        result?.ok_or(RecvTimeoutError::Timeout)
    }

    /// Index of the first content byte of `rec` (at `head`).
    #[inline]
    pub(crate) fn content_index(&self, rec: &DataRecord) -> usize {
        self.ring.data.index(self.head) + rec.content_offset()
    }

    #[inline]
    pub(crate) fn data(&self) -> DataRegion {
        self.ring.data
    }

    /// Reads and checks the total length of the BEGIN-only fragment `rec` at `head`.
    pub(crate) fn message_total(&self, rec: &DataRecord) -> Result<u64, Corruption> {
        debug_assert!(rec.is_begin() && !rec.is_end());
        // SAFETY: the prefix is the first 8 payload bytes of a published record we have
        // not released (decode checked that the record is at least that long).
        let total = unsafe {
            self.ring
                .data
                .read_u64(self.ring.data.index(self.head) + RECORD_HEADER)
        };
        if total <= rec.content_len() as u64 {
            return Err(Corruption {
                what: "message total length",
                value: total,
                position: self.head,
            });
        }
        Ok(total)
    }

    /// Appends the content of `rec` (at `head`) to `buf` and releases the record.
    fn take_into(&mut self, rec: &DataRecord, buf: &mut Vec<u8>) {
        let n = rec.content_len();
        let index = self.content_index(rec);
        buf.reserve(n);
        let spare = &mut buf.spare_capacity_mut()[..n];
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; the bytes are published to
        // us (Acquire on the header) and inside the region (decode checked the length).
        unsafe {
            self.ring.data.read(
                index,
                std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<u8>(), n),
            );
            buf.set_len(buf.len() + n);
        }
        self.release(rec.size());
    }

    // --- receiving messages --------------------------------------------------------

    fn recv_with(&mut self, buf: &mut Vec<u8>, mode: Mode) -> Result<usize, RecvTimeoutError> {
        let mut total = match self.partial.take() {
            Some(p) => {
                *buf = p.buf;
                Some(p.total)
            }
            None => {
                buf.clear();
                None
            }
        };
        loop {
            let rec = match self.next_record(mode) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(total) = total {
                        self.partial = Some(Partial {
                            total,
                            buf: std::mem::take(buf),
                        });
                    }
                    return Err(RecvTimeoutError::Timeout);
                }
                // The producer left in the middle of a message.
                Err(RecvTimeoutError::Disconnected) if total.is_some() => {
                    return Err(RecvTimeoutError::Truncated)
                }
                Err(e) => return Err(e),
            };
            let Some(expected) = total else {
                if !rec.is_begin() {
                    // The rest of a message whose start we never saw (we attached, or a
                    // reader was dropped, in its middle), or a stray ABORT: skip it.
                    self.release(rec.size());
                    continue;
                }
                if rec.is_whole() {
                    if rec.len() as u64 > self.max_message {
                        return Err(RecvTimeoutError::TooLarge {
                            len: rec.len() as u64,
                            max: self.max_message,
                        });
                    }
                    self.take_into(&rec, buf);
                    return Ok(rec.len());
                }
                let t = self.message_total(&rec)?;
                if t > self.max_message || usize::try_from(t).is_err() {
                    return Err(RecvTimeoutError::TooLarge {
                        len: t,
                        max: self.max_message,
                    });
                }
                if buf.try_reserve_exact(t as usize).is_err() {
                    return Err(RecvTimeoutError::TooLarge {
                        len: t,
                        max: self.max_message,
                    });
                }
                self.take_into(&rec, buf);
                total = Some(t);
                continue;
            };
            if rec.is_begin() {
                // A new message began before this one ended: leave it for the next call.
                return Err(RecvTimeoutError::Truncated);
            }
            if rec.is_abort() {
                self.release(rec.size());
                return Err(RecvTimeoutError::Truncated);
            }
            let received = buf.len() as u64 + rec.content_len() as u64;
            if received > expected || (received == expected) != rec.is_end() {
                return Err(RecvTimeoutError::Corrupt(Corruption {
                    what: "fragment length (does not add up to the message total)",
                    value: rec.len() as u64,
                    position: self.head,
                }));
            }
            self.take_into(&rec, buf);
            if rec.is_end() {
                return Ok(buf.len());
            }
        }
    }

    /// Receives one whole message into `buf` (replacing its contents), waiting as the
    /// wait strategy says. Returns its length.
    ///
    /// A message longer than [`max_message`](Self::max_message) is refused with
    /// [`RecvError::TooLarge`] before anything is allocated, and left in the ring for
    /// [`recv_stream`](Self::recv_stream). On an error, `buf`'s contents are unspecified.
    #[inline]
    pub fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize, RecvError> {
        self.recv_with(buf, Mode::Block(None))
            .map_err(into_recv_error)
    }

    /// Receives one whole message if one is there now; never waits for the producer.
    ///
    /// If a message in fragments has begun but not all of it has arrived, the part
    /// received is kept and `Empty` returned; the next receive goes on with it.
    ///
    /// ```
    /// use shmlane::TryRecvError;
    /// let (mut tx, mut rx) = shmlane::spsc::channel(&shmlane::RingOptions::new(4096))?;
    /// let mut buf = Vec::new();
    /// assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
    /// tx.send(b"x")?;
    /// assert_eq!(rx.try_recv(&mut buf), Ok(1));
    /// drop(tx);
    /// assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_recv(&mut self, buf: &mut Vec<u8>) -> Result<usize, TryRecvError> {
        self.recv_with(buf, Mode::Try).map_err(into_try_recv_error)
    }

    /// Receives one whole message, waiting at most `timeout`.
    pub fn recv_timeout(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_with(buf, Mode::timeout(timeout))
    }

    #[inline]
    fn recv_ref_with(&mut self, mode: Mode) -> Result<ReadGrant<'_>, RecvTimeoutError> {
        if let Some(p) = &self.partial {
            return Err(RecvTimeoutError::Fragmented { len: p.total });
        }
        loop {
            let rec = self.next_record(mode)?;
            if !rec.is_begin() {
                self.release(rec.size());
                continue;
            }
            if !rec.is_whole() {
                return Err(RecvTimeoutError::Fragmented {
                    len: self.message_total(&rec)?,
                });
            }
            let index = self.content_index(&rec);
            self.ring.data.track_read(index, rec.len());
            return Ok(ReadGrant {
                consumer: self,
                index,
                len: rec.len(),
                size: rec.size(),
            });
        }
    }

    /// Receives one message in place (zero-copy): the grant derefs to its bytes in the
    /// ring, and releases them when dropped.
    ///
    /// A message that travels in fragments is not one slice: it gives
    /// [`RecvError::Fragmented`] and stays in the ring for [`recv`](Self::recv) or
    /// [`recv_stream`](Self::recv_stream). Messages up to
    /// [`Producer::max_record_payload`] never do.
    #[inline]
    pub fn recv_ref(&mut self) -> Result<ReadGrant<'_>, RecvError> {
        self.recv_ref_with(Mode::Block(None))
            .map_err(into_recv_error)
    }

    /// Like [`recv_ref`](Self::recv_ref), without waiting.
    #[inline]
    pub fn try_recv_ref(&mut self) -> Result<ReadGrant<'_>, TryRecvError> {
        self.recv_ref_with(Mode::Try).map_err(into_try_recv_error)
    }

    /// Like [`recv_ref`](Self::recv_ref), waiting at most `timeout`.
    pub fn recv_ref_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<ReadGrant<'_>, RecvTimeoutError> {
        self.recv_ref_with(Mode::timeout(timeout))
    }

    /// Receives one message as a plain-old-data value. A message of another length is
    /// consumed and reported as [`RecvError::SizeMismatch`].
    pub fn recv_pod<T: bytemuck::Pod>(&mut self) -> Result<T, RecvError> {
        let size = std::mem::size_of::<T>();
        let mismatch = |found: usize| RecvError::SizeMismatch {
            expected: size as u64,
            found: found as u64,
        };
        if size <= self.ring.params.max_record - RECORD_HEADER {
            let grant = self.recv_ref()?;
            if grant.len() != size {
                return Err(mismatch(grant.len()));
            }
            return Ok(bytemuck::pod_read_unaligned(&grant));
        }
        let mut buf = Vec::new();
        let len = self.recv(&mut buf)?;
        if len != size {
            return Err(mismatch(len));
        }
        Ok(bytemuck::pod_read_unaligned(&buf))
    }

    /// Receives one message of any length as an [`std::io::Read`], waiting for its first
    /// fragment as the wait strategy says. Memory is bounded by the ring, not the
    /// message: a message of many GiB streams through a small ring.
    ///
    /// Dropping the reader before the end discards the rest of the message.
    ///
    /// ```
    /// use std::io::Read;
    /// let (mut tx, mut rx) = shmlane::spsc::channel(&shmlane::RingOptions::new(4096))?;
    /// let t = std::thread::spawn(move || tx.send(&vec![1u8; 100_000]).map(|_| tx));
    /// let mut reader = rx.recv_stream()?;
    /// assert_eq!(reader.len(), 100_000);
    /// let mut sum = 0u64;
    /// let mut chunk = [0u8; 8192];
    /// loop {
    ///     let n = reader.read(&mut chunk)?;
    ///     if n == 0 { break; }
    ///     sum += chunk[..n].iter().map(|&b| b as u64).sum::<u64>();
    /// }
    /// assert_eq!(sum, 100_000);
    /// # drop(reader);
    /// # t.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_stream(&mut self) -> Result<MessageReader<'_>, RecvError> {
        MessageReader::new(self, Mode::Block(None)).map_err(into_recv_error)
    }

    /// Like [`recv_stream`](Self::recv_stream), waiting at most `timeout` for the
    /// message to begin.
    pub fn recv_stream_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<MessageReader<'_>, RecvTimeoutError> {
        MessageReader::new(self, Mode::timeout(timeout))
    }
}

pub(crate) fn into_recv_error(e: RecvTimeoutError) -> RecvError {
    match e {
        RecvTimeoutError::Disconnected => RecvError::Disconnected,
        RecvTimeoutError::TooLarge { len, max } => RecvError::TooLarge { len, max },
        RecvTimeoutError::Fragmented { len } => RecvError::Fragmented { len },
        RecvTimeoutError::Truncated => RecvError::Truncated,
        RecvTimeoutError::SizeMismatch { expected, found } => {
            RecvError::SizeMismatch { expected, found }
        }
        RecvTimeoutError::Corrupt(c) => RecvError::Corrupt(c),
        // Only blocking calls without a deadline use this; they never time out.
        RecvTimeoutError::Timeout => RecvError::Disconnected,
    }
}

fn into_try_recv_error(e: RecvTimeoutError) -> TryRecvError {
    match e {
        RecvTimeoutError::Timeout => TryRecvError::Empty,
        other => into_recv_error(other).into(),
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Publish everything we read, so a consumer that attaches next starts after it.
        // SYNC POINT: Release pairs with the Acquire loads of `head` by the producer and
        // by a consumer that attaches next. Then `ring` drops: it detaches and wakes the
        // producer.
        self.ring.header().head.store(self.head, Ordering::Release);
    }
}

/// One message read in place. Derefs to its bytes in the ring; dropping it releases
/// them to the producer.
///
/// The slice is valid while the grant lives: the producer does not write those bytes
/// until they are released (a producer that breaks the protocol is outside this
/// guarantee; see the crate's trust model).
pub struct ReadGrant<'a> {
    consumer: &'a mut Consumer,
    /// Index of the first byte; `index + len <= capacity` (checked by decode).
    index: usize,
    len: usize,
    /// The record's size in the ring.
    size: usize,
}

impl std::fmt::Debug for ReadGrant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadGrant").field("len", &self.len).finish()
    }
}

impl std::ops::Deref for ReadGrant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the bytes are inside the region (decode checked the record against
        // the capacity), were published to us (Acquire on the header), and are not
        // released (so not rewritten by the producer) until this grant drops.
        unsafe { std::slice::from_raw_parts(self.consumer.ring.data.ptr(self.index), self.len) }
    }
}

impl Drop for ReadGrant<'_> {
    fn drop(&mut self) {
        self.consumer.ring.data.track_read(self.index, self.len);
        self.consumer.release(self.size);
    }
}
