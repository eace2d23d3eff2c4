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

use crate::error::{Corruption, RecvError, RecvTimeoutError, SendError};
use crate::frame::{self, DataRecord, Record, RECORD_HEADER};
use crate::header::{
    Header, RingParams, CLAIM_POS_MASK, CLAIM_VALID, ENDPOINT_DETACHED, KIND_SPSC, ROLE_CONSUMER,
    ROLE_PRODUCER,
};
use crate::liveness::{Liveness, Recovered, Watch};
use crate::message::{
    consumer_methods, producer_methods, Claim, Mode, Partial, RecordConsumer, RecordProducer,
};
use crate::options::RingOptions;
use crate::region::DataRegion;
use crate::segment::Segment;
use crate::setup::endpoint_constructors;
use crate::sync::Ordering;
use crate::wait::{block_on, EventCount, Look, Spinner, Wait};
use crate::Error;
#[cfg(not(loom))]
use std::os::fd::OwnedFd;

/// Endpoint-table slot of the producer.
const PRODUCER_SLOT: usize = 0;
/// Endpoint-table slot of the consumer.
const CONSUMER_SLOT: usize = 1;

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
    let (seg, params) = crate::setup::heap_segment(KIND_SPSC, opts)?;
    let producer = Producer::attach(seg.clone(), params, opts.wait)?;
    let consumer = Consumer::attach(seg, params, opts.wait)?;
    Ok((producer, consumer))
}

/// Creates the ring `name` without attaching an endpoint: both the producer and the
/// consumer then `open` it, in any order. (A ring whose creating endpoint was dropped
/// is different: its peer sees that endpoint as gone, `Disconnected`, until a new one
/// attaches.) Remove the ring with [`remove`](crate::remove): `unlink_on_drop(true)`,
/// which has no endpoint to act on here, is [`Error::InvalidOptions`].
///
/// The ring is a POSIX one: options whose [`backing`](RingOptions::backing) chose
/// SysV or memfd conflict with the name ([`Error::InvalidOptions`]): use
/// [`create_ring_sysv`], or [`create_ring_memfd`], which returns the memfd. Nobody has the
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
    crate::setup::create_ring(
        KIND_SPSC,
        "create_ring",
        crate::setup::Place::Name,
        name,
        opts,
    )
}

/// Creates a SysV ring with `key` without attaching an endpoint, as [`create_ring`]
/// does by name (`opts.backing` left at its default, or `Backing::SysV` with this key). Both ends then `open_sysv(key)`; remove it
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
    crate::setup::create_ring(
        KIND_SPSC,
        "create_ring_sysv",
        crate::setup::Place::Key(key),
        "",
        opts,
    )
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
    crate::setup::create_memfd_segment(KIND_SPSC, "create_ring_memfd", opts).map(|(_, _, fd)| fd)
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
    /// Our hold on `slot`, and the test of the peer's life.
    liveness: Liveness,
    /// When a `try_*` call that found nothing should check the peer's life.
    watch: Watch,
    /// The peer's slot word as it was just before we attached: a peer that was there
    /// then, or one that came after (its word moved on), makes us disconnected when it
    /// goes; one that left before we came does not (see `peer_came`).
    peer_at_attach: u64,
    /// Wait for a new peer when ours goes, instead of saying `Disconnected`
    /// (`wait_for_producers` / `wait_for_consumers`).
    wait_across: bool,
}

impl RingView {
    /// Attaches to endpoint slot `slot`: vacant, detached, or held by an endpoint
    /// proven dead becomes ours.
    fn attach(seg: Arc<Segment>, params: RingParams, slot: usize) -> Result<Self, Error> {
        let role = if slot == PRODUCER_SLOT {
            "producer"
        } else {
            "consumer"
        };
        crate::setup::check_fences(&params, seg.name())?;
        let role_code = if slot == PRODUCER_SLOT {
            ROLE_PRODUCER
        } else {
            ROLE_CONSUMER
        };
        let liveness = Liveness::for_segment(&seg);
        let peer = if slot == PRODUCER_SLOT {
            CONSUMER_SLOT
        } else {
            PRODUCER_SLOT
        };
        // Acquire, as every read of a slot word: before our attach, so that a peer
        // attaching or leaving meanwhile is seen as having been there.
        let peer_at_attach = seg.header().endpoints[peer].word.load(Ordering::Acquire);
        let attached = liveness.attach(
            &seg.header().endpoints,
            slot..slot + 1,
            role_code,
            &mut |i, _| recover(seg.header(), &params, i),
        );
        match attached {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Error::Busy {
                    name: seg.name().to_string(),
                    endpoint: role,
                })
            }
            Err(e) => return Err(crate::setup::attach_error(&seg, e)),
        }
        Ok(RingView {
            header: seg.header(),
            data: seg.data(),
            params,
            slot,
            liveness,
            watch: Watch::default(),
            peer_at_attach,
            wait_across: false,
            seg,
        })
    }

    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: `self.header` points to the header at the start of the mapping that
        // `self.seg` keeps alive (and never replaces) for as long as `self` lives; the
        // reference borrows `self`, so it cannot outlive that. The header is reached
        // only through atomics and fields written before the ring was READY.
        unsafe { &*self.header }
    }

    /// The "data available" event count (the consumer sleeps on it), with the ring's
    /// fence mode and notifier kind.
    #[inline]
    fn data_ready(&self) -> EventCount<'_> {
        let h = self.header();
        EventCount::for_ring(&h.data_ready, &h.sem_data_ready, &self.params)
    }

    /// The "space available" event count (the producer sleeps on it).
    #[inline]
    fn space_ready(&self) -> EventCount<'_> {
        let h = self.header();
        EventCount::for_ring(&h.space_ready, &h.sem_space_ready, &self.params)
    }

    /// Whether the peer in `slot` has gone, for us: it detached, or (if `thorough`, a
    /// system call) died, which we then record in its slot; and it had been there
    /// since we attached ([`peer_came`](Self::peer_came)). `false` while none came.
    #[inline]
    fn gone(&self, slot: usize, thorough: bool) -> bool {
        let s = &self.header().endpoints[slot];
        let word = s.word.load(Ordering::Acquire);
        let state = crate::header::word_state(word);
        if state == ENDPOINT_DETACHED {
            return self.peer_came(word);
        }
        if !thorough || !crate::liveness::occupied(state) {
            return false;
        }
        // The SPSC recovery never fails (`recover` ignores a note it cannot use; the
        // ring itself is validated by the endpoints), so nothing is dropped here.
        let reaped = self
            .liveness
            .reap(slot, s, &mut |i, _| recover(self.header(), &self.params, i))
            .unwrap_or(false);
        // It was occupied just now, so it is a peer of ours unless it was already
        // there, dead, before we came: `peer_came` of the word we judged says so.
        reaped && self.peer_came(word)
    }

    /// Whether a peer whose slot word is now `word` was there at some moment since we
    /// attached: it was there when we attached, or the word moved on since (a peer came
    /// after us). A peer that had left before we came is not ours: we wait for the
    /// next, as for the first peer of a new ring. Never, while `wait_across`.
    #[inline]
    fn peer_came(&self, word: u64) -> bool {
        !self.wait_across
            && (crate::liveness::occupied(crate::header::word_state(self.peer_at_attach))
                || word != self.peer_at_attach)
    }

    fn corrupt(&self, field: &'static str, value: u64, reason: &'static str) -> Error {
        Error::Corrupt {
            name: self.seg.name().to_string(),
            field,
            value,
            reason,
        }
    }

    /// Reads and checks the published cursors: both 8-byte aligned, and
    /// `head - max_record <= tail <= head + capacity`. (`tail` may be one record behind
    /// `head`: a producer that died between publishing a record and storing `tail`
    /// leaves it so, and the consumer may have read that record. The next producer
    /// walks over it.)
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
        // Positions count bytes from 0: at 100 GB/s they pass 2^63 after ~3 years. A
        // cursor beyond is corruption, and the position arithmetic would overflow.
        if tail > 1 << 63 || head > 1 << 63 {
            return Err(self.corrupt("tail", tail, "beyond 2^63, where no ring gets"));
        }
        let behind = head.saturating_sub(tail);
        if behind > self.params.max_record as u64
            || tail - (head - behind) > self.params.capacity as u64
            || (behind > 0 && self.walk_published(tail, head)? < head)
        {
            return Err(self.corrupt(
                "tail",
                tail,
                "not within head..=head + capacity (nor one published record behind head)",
            ));
        }
        Ok((head, tail))
    }

    /// The end of the records published from `tail` on: walks over them until the
    /// word that reads 0 (a producer zeroes the word after each record it publishes).
    /// Checks each record is one written for its position, and that they end within
    /// `head + capacity`.
    fn walk_published(&self, mut tail: u64, head: u64) -> Result<u64, Error> {
        let (data, params) = (self.data, &self.params);
        loop {
            let word = data.word(data.index(tail)).load(Ordering::Acquire);
            match frame::decode(word, tail, params.capacity, params.max_record) {
                Ok(None) => return Ok(tail),
                Ok(Some(Record::Pad { size })) => tail += size as u64,
                Ok(Some(Record::Data(d))) => tail += d.size() as u64,
                Err(c) => {
                    return Err(self.corrupt(
                        "record header at tail",
                        c.value,
                        "neither 0 nor a record written for this position",
                    ))
                }
            }
            if tail > head + params.capacity as u64 {
                return Err(self.corrupt(
                    "tail",
                    tail,
                    "published records run past head + capacity",
                ));
            }
        }
    }
}

/// Recovers what the dead endpoint of slot `i` left. A producer leaves nothing: it
/// publishes a record only when it is whole, and the next producer walks over records
/// published past `tail`. A consumer leaves the position it had read up to (through
/// the last record it was handed, `Header::spsc_read_to`): it becomes `head`, so
/// nothing it received, or held, is read again.
fn recover(h: &Header, params: &RingParams, i: usize) -> Result<Recovered, Corruption> {
    if i != CONSUMER_SLOT {
        return Ok(Recovered::Done);
    }
    let note = h.spsc_read_to.load(Ordering::Acquire);
    if note & CLAIM_VALID == 0 {
        return Ok(Recovered::Done);
    }
    let read_to = note & CLAIM_POS_MASK;
    let head = h.head.load(Ordering::Acquire);
    // Not a position it could have read to: ignore it (the ring itself is checked by
    // the endpoints' own validation). (`tail` may be one record behind: a producer
    // stores it after the record.)
    if read_to % 8 != 0 || read_to < head || read_to - head > params.capacity as u64 {
        return Ok(Recovered::Done);
    }
    // SYNC POINT: Release, as the consumer's own publication of `head`.
    let _ = h
        .head
        .compare_exchange(head, read_to, Ordering::AcqRel, Ordering::Relaxed);
    Ok(Recovered::Done)
}

impl Drop for RingView {
    fn drop(&mut self) {
        if self.liveness.copied_by_fork() {
            // A copy made by `fork`: the slot, the cursors and the wake-ups are the
            // parent's endpoint's, which lives on.
            return;
        }
        // SYNC POINT: Release (in `detach`) pairs with the peer's Acquire load of our
        // state, so everything we published before is visible to a peer that sees us
        // gone.
        self.liveness
            .detach(self.slot, &self.header().endpoints[self.slot]);
        // Wake the peer if it sleeps waiting for us: a consumer on "data available", a
        // producer on "space available".
        let peer_waits_on = if self.slot == PRODUCER_SLOT {
            self.data_ready()
        } else {
            self.space_ready()
        };
        peer_waits_on.notify_all();
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
    endpoint_constructors!("spsc", KIND_SPSC, "producer", "consumer");

    pub(crate) fn attach(seg: Arc<Segment>, params: RingParams, wait: Wait) -> Result<Self, Error> {
        // On an error below, dropping `ring` detaches again.
        let ring = RingView::attach(seg, params, PRODUCER_SLOT)?;
        let (head, tail) = ring.published_cursors()?;
        // A producer that stopped between publishing a record and storing `tail`
        // leaves published records past `tail`: walk over them, so we never write over
        // a record the consumer may be reading.
        let tail = ring.walk_published(tail, head)?;
        if tail < head {
            return Err(ring.corrupt(
                "tail",
                tail,
                "behind head after the published records: the consumer released bytes \
                 never written",
            ));
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

    /// The largest message that travels in one record (and so the largest
    /// [`reserve`](Self::reserve)): `capacity / 2 - 8`.
    pub fn max_record_payload(&self) -> usize {
        self.ring.params.max_record - RECORD_HEADER
    }

    /// Whether our consumer has gone: it was attached at some moment since this
    /// producer attached, and it dropped its endpoint or died (checked now). See
    /// [`wait_for_consumers`](Self::wait_for_consumers).
    pub fn is_disconnected(&self) -> bool {
        self.ring.gone(CONSUMER_SLOT, true)
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
    #[inline]
    fn claim_bytes(&mut self, size: usize, mode: Mode) -> Result<Option<u64>, SendError> {
        if let Some(pos) = self.try_claim(size)? {
            return Ok(Some(pos));
        }
        let Mode::Block(deadline) = mode else {
            // Not waiting: look for a dead consumer now and then.
            if self.ring.watch.due() && self.ring.gone(CONSUMER_SLOT, true) {
                return Err(SendError::Disconnected);
            }
            return Ok(None);
        };
        let mut spinner = self.spinner;
        let result = block_on(
            self.wait,
            &mut spinner,
            deadline,
            self,
            |p| p.ring.space_ready(),
            |p, look| {
                if p.ring.gone(CONSUMER_SLOT, look == Look::Thorough) {
                    return Err(SendError::Disconnected);
                }
                Ok(p.try_claim(size)?)
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

    /// Record size of the fragments of a large message (for the fuzz model).
    #[cfg(all(any(fuzzing, feature = "fuzz-harness"), not(loom)))]
    pub(crate) fn fragment_record(&self) -> usize {
        self.fragment_record
    }

    /// Closes a message left open (for the fuzz model; see `message`).
    #[cfg(all(any(fuzzing, feature = "fuzz-harness"), not(loom)))]
    pub(crate) fn close_open_message(&mut self, mode: Mode) -> Result<bool, SendError> {
        crate::message::close_open_message(self, mode)
    }

    producer_methods!("spsc");
}

impl RecordProducer for Producer {
    #[inline]
    fn check_connected(&self) -> Result<(), SendError> {
        if self.ring.gone(CONSUMER_SLOT, false) {
            return Err(SendError::Disconnected);
        }
        Ok(())
    }

    #[inline]
    fn max_record_payload(&self) -> usize {
        self.ring.params.max_record - RECORD_HEADER
    }

    fn fragment_payload(&self) -> usize {
        self.fragment_record - RECORD_HEADER
    }

    #[inline(always)]
    fn claim(&mut self, payload: usize, flags: u8, mode: Mode) -> Result<Option<Claim>, SendError> {
        Ok(self
            .claim_bytes(frame::record_size(payload), mode)?
            .map(|pos| Claim {
                pos,
                index: self.ring.data.index(pos) + RECORD_HEADER,
                cells: 0,
                flags,
            }))
    }

    /// Publishes a data record and wakes a sleeping consumer (no system call if none).
    #[inline(always)]
    fn publish(&mut self, claim: Claim, len: usize, flags: u8) {
        self.publish_raw(claim.pos, len as u32, flags, frame::record_size(len));
        self.ring.data_ready().notify_all();
    }

    /// Nothing to do: `tail` did not move, so the room is reused by the next record.
    fn abandon(&mut self, _claim: Claim) {}

    #[inline(always)]
    fn data(&self) -> DataRegion {
        self.ring.data
    }

    #[inline(always)]
    fn open_message(&mut self) -> &mut bool {
        &mut self.open_message
    }

    fn room_for_fragmented(&mut self, len: u64) -> Result<bool, SendError> {
        let need = self.fragmented_size(len);
        let cap = self.ring.params.capacity as u64;
        if need + self.fragment_record as u64 + 8 > cap {
            return Err(SendError::TooLarge {
                len,
                max: self.max_try_send_len(),
            });
        }
        self.refresh_head()?;
        // Every claim after this finds room at once: only we consume free space.
        Ok(self.tail + need + self.fragment_record as u64 + 8 - self.cached_head <= cap)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if self.ring.liveness.copied_by_fork() {
            return; // the parent's producer's message is not ours to close
        }
        // Then `ring` drops: it detaches and wakes the consumer.
        let _ = crate::message::close_open_message(self, Mode::Try);
    }
}

/// Room for one message in an SPSC ring, written in place; see
/// [`shmlane::WriteGrant`](crate::WriteGrant).
pub type WriteGrant<'a> = crate::WriteGrant<'a, Producer>;

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
    /// Next read position; a multiple of 8; `published_head <= head`. Our endpoint
    /// slot notes the end of the last record handed out (see `next_record`).
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
    endpoint_constructors!("spsc", KIND_SPSC, "consumer", "producer");

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

    /// The fuzz harness only: the producer's slot word as this consumer saw it when it
    /// attached (a harness that plays a peer's leaving writes a word that differs).
    #[cfg(any(fuzzing, feature = "fuzz-harness"))]
    pub(crate) fn peer_at_attach(&self) -> u64 {
        self.ring.peer_at_attach
    }

    /// Whether our producer has gone: it was attached at some moment since this
    /// consumer attached, and it dropped its endpoint or died (checked now). Messages
    /// it sent may still be in the ring. See
    /// [`wait_for_producers`](Self::wait_for_producers).
    pub fn is_disconnected(&self) -> bool {
        self.ring.gone(PRODUCER_SLOT, true)
    }

    // --- reading records ----------------------------------------------------------

    /// Whether the header word at `head` is no longer 0: a record (or padding, or a
    /// corrupt word) to look at with [`peek`](Self::peek). One load.
    #[inline(always)]
    fn arrived(&self) -> bool {
        let index = self.ring.data.index(self.head);
        // Relaxed: only a hint; `peek` loads it again with Acquire.
        self.ring.data.word(index).load(Ordering::Relaxed) != 0
    }

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
    fn release(&mut self, size: usize) {
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
        self.ring.space_ready().notify_all();
    }

    /// The next record, or `None` if the ring is empty; `Disconnected` if it is empty
    /// and the producer has gone (detached, or died: looked for if `thorough`).
    /// Publishes `head` when the ring is empty, so a producer waiting for room sees
    /// everything we have read before we wait.
    #[inline(always)]
    fn poll_record(&mut self, thorough: bool) -> Result<Option<DataRecord>, RecvError> {
        if let Some(r) = self.peek()? {
            return Ok(Some(r));
        }
        if self.head != self.published_head {
            self.publish_head();
        }
        // Acquire load of the producer's state first, then look again: a producer that
        // published and then detached (Release) has its last record visible to us here.
        if self.ring.gone(PRODUCER_SLOT, thorough) {
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
    fn wait_record(&mut self, mode: Mode) -> Result<DataRecord, RecvTimeoutError> {
        if let Some(r) = self.poll_record(false)? {
            return Ok(r);
        }
        let Mode::Block(deadline) = mode else {
            // Not waiting: look for a dead producer now and then.
            if self.ring.watch.due() {
                if let Some(r) = self.poll_record(true)? {
                    return Ok(r);
                }
            }
            return Err(RecvTimeoutError::Timeout);
        };
        let mut spinner = self.spinner;
        let result = block_on(
            self.wait,
            &mut spinner,
            deadline,
            self,
            |c| c.ring.data_ready(),
            |c, look| {
                if look == Look::Quick && !c.arrived() {
                    return Ok(None);
                }
                c.poll_record(look == Look::Thorough)
            },
        );
        self.spinner = spinner;
        result?.ok_or(RecvTimeoutError::Timeout)
    }

    consumer_methods!("spsc");
}

/// `for msg in &mut rx`: [`Consumer::iter`].
impl<'a> IntoIterator for &'a mut Consumer {
    type Item = Result<Vec<u8>, crate::RecvError>;
    type IntoIter = crate::Iter<'a, Consumer>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl RecordConsumer for Consumer {
    #[inline(always)]
    fn next_record(&mut self, mode: Mode) -> Result<DataRecord, RecvTimeoutError> {
        let rec = self.wait_record(mode)?;
        // Noted as read (`Header::spsc_read_to`, a line nobody else reads while we
        // live) before anyone sees it: if we die holding it, or after `recv` returned
        // it, the recovery publishes this as `head`, and the next consumer does not
        // get the message again (at most once, as MPMC). The shared `head` itself is
        // published in batches, as the producer needs it.
        self.ring.header().spsc_read_to.store(
            (self.head + rec.size() as u64) | CLAIM_VALID,
            Ordering::Relaxed,
        );
        Ok(rec)
    }

    #[inline(always)]
    fn release_record(&mut self, rec: &DataRecord) {
        self.release(rec.size());
    }

    fn leave_record(&mut self, _rec: &DataRecord) {
        // Read up to `head` only: the record stays for a later call.
        self.ring
            .header()
            .spsc_read_to
            .store(self.head | CLAIM_VALID, Ordering::Relaxed);
    }

    /// Index of the first content byte of `rec` (at `head`).
    #[inline(always)]
    fn content_index(&self, rec: &DataRecord) -> usize {
        self.ring.data.index(self.head) + rec.content_offset()
    }

    #[inline(always)]
    fn payload_index(&self, _rec: &DataRecord) -> usize {
        self.ring.data.index(self.head) + RECORD_HEADER
    }

    fn record_position(&self) -> u64 {
        self.head
    }

    #[inline(always)]
    fn data(&self) -> DataRegion {
        self.ring.data
    }

    fn partial(&mut self) -> &mut Option<Partial> {
        &mut self.partial
    }

    #[inline(always)]
    fn max_message(&self) -> u64 {
        self.max_message
    }

    fn max_record_payload(&self) -> usize {
        self.ring.params.max_record - RECORD_HEADER
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.ring.liveness.copied_by_fork() {
            // A copy made by `fork`: `head` is the parent's consumer's, which lives on
            // (storing our older copy would hand it messages again).
            return;
        }
        // Publish everything we released, so a consumer that attaches next starts
        // after it. SYNC POINT: Release pairs with the Acquire loads of `head` by the
        // producer and by a consumer that attaches next.
        let h = self.ring.header();
        h.head.store(self.head, Ordering::Release);
        // Then the read-to note goes: it may stand past a record we were handed and
        // never released (an error left it in the ring), and it must not outlive us:
        // a recovery after the next consumer died would publish it as `head` and skip
        // messages nobody received. Then `ring` drops: it detaches and wakes the
        // producer.
        h.spsc_read_to.store(0, Ordering::Relaxed);
    }
}

/// One message read in place from an SPSC ring; see
/// [`shmlane::ReadGrant`](crate::ReadGrant).
pub type ReadGrant<'a> = crate::ReadGrant<'a, Consumer>;

// ---------------------------------------------------------------------------------
// Loom models only: endpoints that die, and their recovery (`loom_internals`)
// ---------------------------------------------------------------------------------

/// What a model keeps of an SPSC ring whose endpoint it killed: the segment and its
/// parameters, to recover the dead slot and attach a new endpoint.
#[cfg(loom)]
#[derive(Debug, Clone)]
pub(crate) struct LoomRing {
    pub(crate) seg: Arc<Segment>,
    pub(crate) params: RingParams,
}

#[cfg(loom)]
impl LoomRing {
    /// `reap` of the producer's (`producer`) or the consumer's slot as if its endpoint
    /// were proven dead: the take-over, `recover` and detach of `liveness.rs`, by a
    /// survivor with a liveness of its own. `true`: recovered now.
    pub(crate) fn recover(&self, producer: bool) -> bool {
        let i = if producer {
            PRODUCER_SLOT
        } else {
            CONSUMER_SLOT
        };
        let h = self.seg.header();
        Liveness::for_segment(&self.seg)
            .reap_declared_dead(i, &h.endpoints[i], &mut |i, _| recover(h, &self.params, i))
            .expect("the SPSC recovery never fails")
    }
}

#[cfg(loom)]
impl RingView {
    /// Ends this endpoint as a killed process: its `Drop`s touch nothing.
    fn die(&self) -> LoomRing {
        self.liveness.kill();
        LoomRing {
            seg: self.seg.clone(),
            params: self.params,
        }
    }
}

#[cfg(loom)]
impl Producer {
    pub(crate) fn loom_die(self) -> LoomRing {
        self.ring.die()
    }
}

#[cfg(loom)]
impl Consumer {
    pub(crate) fn loom_die(self) -> LoomRing {
        self.ring.die()
    }
}
