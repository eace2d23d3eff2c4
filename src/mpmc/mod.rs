//! The MPMC cell ring: any number of [`Producer`]s and [`Consumer`]s, in any number of
//! processes, up to the ring's endpoint limit.
//!
//! # Protocol
//!
//! Vyukov's bounded MPMC queue (per-cell stamps, as in crossbeam's `ArrayQueue`),
//! generalised to records that span several contiguous cells:
//!
//! - The data region is `N` cells of `S` bytes (both powers of two). After it, the
//!   **cell table** has, per cell, a stamp (u64) and a record word (length and flags
//!   of the record that starts there). A record of `len` bytes takes
//!   `k = max(1, ceil(len / S))` contiguous cells, and its payload starts at its first
//!   cell: one slice, aligned to the cell size, zero-copy on both sides.
//! - Positions count cells since creation (u64); a cell's stamp says the state of the
//!   cell for position `p`: `p` = free for the producer of position `p`; `p + 1` =
//!   the record starting at `p` is published; `p + N` = released by its consumer, free
//!   for the producer of `p + N`. Inner cells of a record go from `p` straight to
//!   `p + N`. Full positions make ABA impossible (2^56 cells is years at any rate).
//! - **Producer**: read `tail`; check the stamps of the `k` cells it needs (plus the
//!   cells up to the end of the array if the record would straddle it: those become a
//!   PAD record); CAS `tail` forward over them; write; store the record word, then the
//!   first cell's stamp `p + 1` with Release.
//! - **Consumer**: read `head`; Acquire-load the stamp at `head`; if it says published,
//!   read the record word (which gives `k`), CAS `head` forward by `k`, read the
//!   payload, then store `p + N` into each of the `k` stamps with Release.
//! - A producer stalled between its claim and its publish holds up consumers at its
//!   record only (other producers keep claiming and publishing behind it); a consumer
//!   stalled between its claim and its release holds up no other consumer, and
//!   producers only when they come round to its cells a lap later.
//!
//! # What the stamps cannot tell
//!
//! An inner cell keeps the stamp `q`, "free for `q`", from its release a lap before
//! until its record's release: the stamp a free cell has. So a `tail` moved back into
//! a record (published, taken, or being written) passes a producer's check, and the
//! producer writes over that record's payload; a consumer may then receive a message
//! with another's bytes in it. A `head` moved into a record reads "not published
//! yet" there, and consumers wait. A cursor moved forward over free cells is a state a
//! correct ring passes through too: a `tail` moved forward leaves a gap consumers wait
//! at (a call without a timeout until every producer has gone, then `Disconnected`),
//! and a `head` moved forward skips the records in between, whose cells are never
//! released (producers wait for room when they come round to them).
//!
//! Layout version 5 stamped each inner cell `q | INNER` on publish, which catches a
//! `tail` moved back into a published record. It cost a store per inner cell to a
//! table line the consumer then takes back for its release: 7-23 % of the one-way
//! throughput of 2-16 KiB messages in the default 64-byte cells (1 producer and 1
//! consumer, alternated A/B in one session), for a hole that stays open for records
//! still being written. Version 6 went back to the unstamped inner cells; the README's
//! trust model states the limit, and the corruption sweep lists the cases it lets
//! through (and fails if one of them starts being caught).
//!
//! # Streams (messages larger than one record)
//!
//! The top 8 bits of `tail` and of `head` are the **writer-stream** and
//! **reader-stream** slots: 0 when free, else the endpoint-table slot + 1 of the
//! holder. The producer that claims a BEGIN fragment sets the writer slot in the same
//! CAS; every producer's claim checks it, so while a message in fragments is being
//! written nobody else claims and its fragments are contiguous in ring order. The
//! producer clears it after publishing the END (or ABORT) record. Likewise the
//! consumer that claims a BEGIN sets the reader slot, and other consumers wait until
//! the holder claims the END: the fragments of one message never scatter across
//! consumers. So while a large message passes, the ring is in effect SPSC: it holds up
//! the other endpoints. Dropping a stream, or an endpoint, releases its slot.
//!
//! # Waking
//!
//! Producers sleep on "space available", consumers on "data available", the event
//! counts of `wait.rs` shared by all endpoints, and waiters for a stream slot on one
//! event count per slot. A notifier makes a system call only when someone is
//! registered to sleep and not yet woken, and wakes no more sleepers than what it
//! published can serve:
//!
//! - A whole message, or the first fragment of one, serves one consumer: its producer
//!   wakes one sleeper (`EventCount::notify_one`). The woken consumer may find the
//!   ring's head still being written by a slower producer (the message it was woken
//!   for published behind it); it sleeps again, and whoever takes the head record
//!   then wakes one more consumer if the next record is published already and anyone
//!   sleeps (`View::wake_next_consumer`). So no consumer sleeps while a message it
//!   could take waits, and a burst of messages wakes as many consumers as it has
//!   messages, no more.
//! - A later fragment serves only the stream's reader, who may be asleep beside
//!   consumers that registered before the stream began: all are woken (fragments are
//!   large, so this is rare), and the others then wait for the reader slot instead.
//! - Room in the ring may serve any number of producers, a free stream slot every
//!   waiter for it (all small messages may go on), and an endpoint's leaving or
//!   recovery everyone: those wake all (`EventCount::notify_all`).
//!
//! Woken waiters are taken off the count, so the notifiers that follow make no system
//! call for them, however long they take to run.

mod recovery;

use std::sync::Arc;

use crate::error::{Corruption, RecvError, RecvTimeoutError, SendError};
use crate::frame::{
    cells_for, decode_cell, encode_cell, CellRecord, DataRecord, BEGIN_PREFIX, FLAGS_ABORTED,
    FLAGS_WHOLE, FLAG_BEGIN, FLAG_END, FLAG_PAD,
};
use crate::header::{
    EndpointSlot, Header, RingParams, CLAIM_CONFIRMED, CLAIM_VALID, KIND_MPMC, ROLE_CONSUMER,
    ROLE_PRODUCER,
};
use crate::liveness::{Liveness, Watch};
use crate::message::{
    consumer_methods, producer_methods, Claim, Mode, Partial, RecordConsumer, RecordProducer,
};
use crate::options::RingOptions;
use crate::region::{CellTable, DataRegion};
use crate::segment::Segment;
use crate::setup::endpoint_constructors;
use crate::sync::{AtomicU64, Ordering};
use crate::wait::{block_on, EventCount, Look, Spinner, Wait};
use crate::Error;

/// What one attempt to claim found.
#[derive(Clone, Copy, Debug)]
enum Poll<T> {
    Ready(T),
    /// Nothing to take (consumer) or no room (producer): wait on data or space.
    Empty,
    /// Another endpoint holds the stream slot: wait on the slot's event count. That
    /// is a long wait (a whole message in fragments passes), so it parks at once, and
    /// the fragments' traffic does not wake it.
    SlotHeld,
}

/// Waits for `poll` to find something other than `Empty` (on `ready`, as `wait`
/// says) or other than `SlotHeld` (parked on `slot_free`), until `deadline`.
/// `Ok(None)`: timed out. `poll(Look::Thorough)` now and then: look for dead
/// endpoints too; `poll(Look::Quick)` may say `Empty` after one load (see
/// [`block_on`]).
fn wait_for<S: ?Sized, T, E>(
    wait: Wait,
    spinner: &mut Spinner,
    deadline: Option<std::time::Instant>,
    target: &mut S,
    ready: impl Fn(&S) -> EventCount<'_>,
    slot_free: impl Fn(&S) -> EventCount<'_>,
    mut poll: impl FnMut(&mut S, Look) -> Result<Poll<T>, E>,
) -> Result<Option<T>, E> {
    let mut last = poll(target, Look::Full)?;
    loop {
        let (strategy, waiting_for) = match last {
            Poll::Ready(v) => return Ok(Some(v)),
            Poll::Empty => (wait, 0),
            Poll::SlotHeld => (Wait::Park, 1),
        };
        let mut park_spinner = Spinner::default();
        let spinner = if waiting_for == 0 {
            &mut *spinner
        } else {
            &mut park_spinner
        };
        let next = block_on(
            strategy,
            spinner,
            deadline,
            target,
            |t| {
                if waiting_for == 0 {
                    ready(t)
                } else {
                    slot_free(t)
                }
            },
            |t, look| {
                Ok(match poll(t, look)? {
                    Poll::Empty if waiting_for == 0 => None,
                    Poll::SlotHeld if waiting_for == 1 => None,
                    other => Some(other),
                })
            },
        )?;
        match next {
            None => return Ok(None),
            Some(p) => last = p,
        }
    }
}

/// `View::slot` before the view holds one.
const NO_SLOT: usize = usize::MAX;

/// Bits of `tail` and `head` above the position: the stream slots.
pub(crate) const CURSOR_FLAG_BITS: u32 = 8;
const POS_BITS: u32 = 64 - CURSOR_FLAG_BITS;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
/// Positions beyond this are corruption (a ring gets there after 2^55 cells: more
/// than a year at a billion messages a second).
const MAX_POSITION: u64 = 1 << (POS_BITS - 1);

/// Whether `stamp` is a value the stamp of the cell of `pos` can ever hold: that
/// cell's positions are `pos + m·n`, and its stamp is one of them ("free for it") or
/// one of them + 1 ("published there").
#[inline]
fn stamp_fits(stamp: u64, pos: u64, n: u64) -> bool {
    stamp.wrapping_sub(pos) & (n - 1) <= 1
}

/// The latest value of `cursor` (a read-modify-write reads the last value in its
/// modification order, where a load may return an older one), given that `seen` was
/// read from it. Used before calling a value corruption: a plain load could still
/// return the stale value that made the stamp look wrong.
#[cold]
fn latest(cursor: &AtomicU64, seen: u64) -> u64 {
    match cursor.compare_exchange(seen, seen, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(v) | Err(v) => v,
    }
}

#[inline(always)]
fn pos_of(word: u64) -> u64 {
    word & POS_MASK
}

#[inline(always)]
fn holder_of(word: u64) -> u64 {
    word >> POS_BITS
}

#[inline(always)]
fn cursor(pos: u64, holder: u64) -> u64 {
    pos | holder << POS_BITS
}

/// Creates a ring in private heap memory with one producer and one consumer, for
/// threads of one process; more of each with [`Producer::try_clone`] and
/// [`Consumer::try_clone`].
///
/// ```
/// let (mut tx, mut rx) = shmlane::mpmc::channel(&shmlane::RingOptions::new(4096))?;
/// let mut tx2 = tx.try_clone()?;
/// tx.send(b"one")?;
/// tx2.send(b"two")?;
/// let mut buf = Vec::new();
/// rx.recv(&mut buf)?;
/// assert_eq!(buf, b"one");
/// rx.recv(&mut buf)?;
/// assert_eq!(buf, b"two");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn channel(opts: &RingOptions) -> Result<(Producer, Consumer), Error> {
    let (seg, params) = crate::setup::heap_segment(KIND_MPMC, opts)?;
    let producer = Producer::attach(seg.clone(), params, opts.wait)?;
    let consumer = Consumer::attach(seg, params, opts.wait)?;
    Ok((producer, consumer))
}

/// Creates the MPMC ring `name` without attaching an endpoint; see
/// [`spsc::create_ring`](crate::spsc::create_ring).
#[cfg(not(loom))]
pub fn create_ring(name: &str, opts: &RingOptions) -> Result<(), Error> {
    crate::setup::create_ring(
        KIND_MPMC,
        "create_ring",
        crate::setup::Place::Name,
        name,
        opts,
    )
}

/// Creates a SysV MPMC ring with `key` without attaching an endpoint; see
/// [`spsc::create_ring_sysv`](crate::spsc::create_ring_sysv).
#[cfg(not(loom))]
pub fn create_ring_sysv(key: i32, opts: &RingOptions) -> Result<(), Error> {
    crate::setup::create_ring(
        KIND_MPMC,
        "create_ring_sysv",
        crate::setup::Place::Key(key),
        "",
        opts,
    )
}

/// Creates an MPMC ring in a sealed memfd without attaching an endpoint, and returns
/// the memfd; see [`spsc::create_ring_memfd`](crate::spsc::create_ring_memfd).
#[cfg(not(loom))]
pub fn create_ring_memfd(opts: &RingOptions) -> Result<std::os::fd::OwnedFd, Error> {
    crate::setup::create_memfd_segment(KIND_MPMC, "create_ring_memfd", opts).map(|(_, _, fd)| fd)
}

/// One endpoint's hold on an MPMC ring: the mapping, views into it, the validated
/// parameters, and its endpoint-table slot. Dropping it detaches and wakes every
/// sleeper, so that they see it gone.
struct View {
    /// Keeps the mapping alive; `header`, `data` and `table` point into it.
    seg: Arc<Segment>,
    header: *const Header,
    data: DataRegion,
    table: CellTable,
    params: RingParams,
    /// Our endpoint-table slot; `slot + 1` marks the stream slots we hold.
    slot: usize,
    role: u32,
    /// Number of cells, a power of two.
    n: u64,
    /// log2 of the cell size.
    cell_shift: u32,
    /// Our hold on `slot`, and the test of the other endpoints' lives.
    liveness: Liveness,
    /// When a `try_*` call that found nothing should look for dead endpoints.
    watch: Watch,
    /// The other role's attach counter (`Header::producers` / `consumers`) just before
    /// we attached: peers that were there then, or came after (the count of attaches
    /// moved on), make us disconnected when they have all gone; those that left
    /// before we came do not (see `all_gone`).
    peers_at_attach: u64,
    /// Wait for new peers when ours have all gone, instead of saying `Disconnected`
    /// (`wait_for_producers` / `wait_for_consumers`).
    wait_across: bool,
    /// Loom models only: where this endpoint stops for ever.
    #[cfg(loom)]
    stop: StopBudget,
}

/// Loom models only: an endpoint that stops for ever after a given number of steps of
/// its protocol ([`View::step`]), as a process killed there would. The stop unwinds
/// (with [`Stopped`]) out to the model, which ends the endpoint with
/// `loom_internals::mpmc_die` (its `Drop` code, finding it stopped, does nothing);
/// while it unwinds, the drops of its grants and streams find it stopped and leave the
/// ring alone, so that after its last step the endpoint writes nothing more, as a dead
/// process.
#[cfg(loom)]
#[derive(Debug, Default)]
struct StopBudget {
    /// Steps left before it stops; `None`: it never does.
    left: std::cell::Cell<Option<u32>>,
    /// It has stopped.
    stopped: std::cell::Cell<bool>,
}

/// Loom models only: the payload of the unwind of an endpoint that stopped.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Stopped(pub(crate) &'static str);

impl View {
    fn attach(seg: Arc<Segment>, params: RingParams, role: u32) -> Result<Self, Error> {
        crate::setup::check_fences(&params, seg.name())?;
        let header = seg.header();
        for (what, word) in [("tail", &header.tail), ("head", &header.head)] {
            let w = word.load(Ordering::Acquire);
            if pos_of(w) > MAX_POSITION || holder_of(w) > u64::from(params.max_endpoints) {
                return Err(Error::Corrupt {
                    name: seg.name().to_string(),
                    field: what,
                    value: w,
                    reason: "position beyond 2^55 or stream holder beyond max_endpoints",
                });
            }
        }
        let mut view = View {
            header,
            data: seg.data(),
            table: seg.cell_table(&params),
            n: params.cells() as u64,
            cell_shift: params.cell_size.trailing_zeros(),
            params,
            slot: NO_SLOT,
            role,
            liveness: Liveness::for_segment(&seg),
            watch: Watch::default(),
            peers_at_attach: 0,
            wait_across: false,
            #[cfg(loom)]
            stop: StopBudget::default(),
            seg,
        };
        // Before our attach, so that peers attaching or leaving meanwhile are seen as
        // having been there. Acquire, as every read of the counters.
        let peer_role = if role == ROLE_PRODUCER {
            ROLE_CONSUMER
        } else {
            ROLE_PRODUCER
        };
        view.peers_at_attach = view.role_count(peer_role).load(Ordering::Acquire);
        let slots = &view.header().endpoints;
        let attached = view.liveness.attach(
            slots,
            0..params.max_endpoints as usize,
            role,
            &mut |i, was| recovery::recover(&view, i, was),
        );
        let slot = match attached {
            Ok(Some(slot)) => slot,
            Ok(None) => {
                return Err(Error::Busy {
                    name: view.seg.name().to_string(),
                    endpoint: "mpmc endpoint (every one of the ring's max_endpoints slots \
                               holds a live endpoint)",
                })
            }
            Err(e) => return Err(crate::setup::attach_error(&view.seg, e)),
        };
        view.slot = slot;
        // From here on, dropping `view` detaches again.
        view.role_count(role)
            .fetch_add(1 | 1 << 32, Ordering::AcqRel);
        // Counted: a recovery after our death uncounts us (and one before this line
        // does not, so the count never drops below the live endpoints).
        view.liveness.mark_counted(&view.header().endpoints[slot]);
        // Endpoints that died before we came may have left cells claimed: recover them
        // now rather than at our first wait.
        view.reap_dead()
            .map_err(|c| view.corrupt(c.what, c.value, "found recovering a dead endpoint"))?;
        Ok(view)
    }

    /// Recovers every other endpoint that is proven dead (`liveness.rs`), and frees a
    /// stream slot whose holder's endpoint slot holds no endpoint. Costs a system call
    /// per occupied slot: called when a wait has lasted `LIVENESS_EVERY`.
    ///
    /// A slot whose recovery finds the ring corrupt does not stop the others: every
    /// slot is tried, then the first corruption is returned (the slot is left
    /// `ENDPOINT_DEAD`, for a later try).
    fn reap_dead(&self) -> Result<(), Corruption> {
        let h = self.header();
        let mut first = None;
        for (i, slot) in h.endpoints[..self.params.max_endpoints as usize]
            .iter()
            .enumerate()
        {
            if i != self.slot {
                if let Err(c) = self
                    .liveness
                    .reap(i, slot, &mut |i, was| recovery::recover(self, i, was))
                {
                    first.get_or_insert(c);
                }
            }
        }
        recovery::free_orphaned_stream_slots(self);
        first.map_or(Ok(()), Err)
    }

    #[inline(always)]
    fn header(&self) -> &Header {
        // SAFETY: `self.header` points to the header at the start of the mapping that
        // `self.seg` keeps alive (and never replaces) for as long as `self` lives; the
        // reference borrows `self`, so it cannot outlive that. The header is reached
        // only through atomics and fields written before the ring was READY.
        unsafe { &*self.header }
    }

    /// The attach counter of `role` (see `Header::producers`).
    fn role_count(&self, role: u32) -> &AtomicU64 {
        if role == ROLE_PRODUCER {
            &self.header().producers
        } else {
            &self.header().consumers
        }
    }

    /// Whether every peer of ours of `role` has gone: some endpoint of `role` was
    /// there at some moment since we attached (attached then, counted in
    /// `peers_at_attach`, or attached after, which moved the count of attaches on),
    /// and none is now. False while none came (peers that left before we attached are
    /// not ours: we wait for the next, as on a new ring), and always while
    /// `wait_across`. Fast while one is attached; else, or if `thorough`, it scans the
    /// endpoint table (`reap_dead` has recovered the dead ones before a thorough call),
    /// which is the truth: the counter is only a hint, since an endpoint that died
    /// mid-attach may have been counted or not.
    #[inline]
    fn all_gone(&self, role: u32, thorough: bool) -> bool {
        if self.wait_across {
            return false;
        }
        // Acquire pairs with the Release in `Drop`: what a leaving endpoint published
        // is visible once we see it gone.
        let v = self.role_count(role).load(Ordering::Acquire);
        let then = self.peers_at_attach;
        let came = then & 0xffff_ffff != 0 || v >> 32 != then >> 32;
        if !came || (v & 0xffff_ffff != 0 && !thorough) {
            return false;
        }
        self.none_of(role)
    }

    /// Whether no endpoint slot holds an endpoint of `role`, alive or still to be
    /// recovered. Acquire loads: what a detached or recovered endpoint published is
    /// visible.
    #[cold]
    fn none_of(&self, role: u32) -> bool {
        self.header().endpoints[..self.params.max_endpoints as usize]
            .iter()
            .all(|s| {
                !crate::liveness::occupied(s.state()) || s.role.load(Ordering::Relaxed) != role
            })
    }

    /// The "data available" event count (consumers sleep on it).
    #[inline]
    fn data_ready(&self) -> EventCount<'_> {
        let h = self.header();
        EventCount::for_ring(&h.data_ready, &h.sem_data_ready, &self.params)
    }

    /// The "space available" event count (producers sleep on it).
    #[inline]
    fn space_ready(&self) -> EventCount<'_> {
        let h = self.header();
        EventCount::for_ring(&h.space_ready, &h.sem_space_ready, &self.params)
    }

    /// The "writer-stream slot free" event count (producers waiting for the slot).
    #[inline]
    fn writer_free(&self) -> EventCount<'_> {
        let h = self.header();
        EventCount::for_ring(&h.writer_free, &h.sem_writer_free, &self.params)
    }

    /// The "reader-stream slot free" event count (consumers waiting for the slot).
    #[inline]
    fn reader_free(&self) -> EventCount<'_> {
        let h = self.header();
        EventCount::for_ring(&h.reader_free, &h.sem_reader_free, &self.params)
    }

    /// Our endpoint slot, where our claim notes go.
    #[inline(always)]
    fn note(&self) -> &EndpointSlot {
        &self.header().endpoints[self.slot]
    }

    /// Says we claim nothing (Release: a recoverer that reads no note sees what we
    /// published before).
    #[inline(always)]
    fn clear_note(&self) {
        self.note().claim.store(0, Ordering::Release);
    }

    /// Our mark in a stream slot.
    #[inline(always)]
    fn me(&self) -> u64 {
        self.slot as u64 + 1
    }

    /// Index in the data region of the first byte of the cell of `pos`.
    #[inline(always)]
    fn index(&self, pos: u64) -> usize {
        ((pos & (self.n - 1)) << self.cell_shift) as usize
    }

    /// Publishes `cells` cells at `pos` as padding that consumers skip.
    #[inline]
    fn publish_pad(&self, pos: u64, cells: u64) {
        self.table
            .record(pos)
            .store(encode_cell(cells as u32, FLAG_PAD), Ordering::Relaxed);
        // SYNC POINT: Release pairs with the consumer's Acquire load of this stamp.
        self.table.stamp(pos).store(pos + 1, Ordering::Release);
    }

    /// After a consumer took a record: wakes one more consumer if one sleeps and the
    /// record at `next` is published already.
    ///
    /// Producers wake one consumer per message, and the one woken may find the ring's
    /// head still being written by a slower producer, the message it was woken for
    /// waiting behind it; it goes back to sleep. Whoever then takes the head record
    /// wakes the next consumer here, so that no consumer sleeps while a message it
    /// could take is published. The stamp is read only if someone sleeps: the fence and
    /// the Acquire load of [`EventCount::has_waiters`] pair with the waiter's
    /// registration (a waiter we do not see re-checks after our claim of `head`, and
    /// sees the record at `next`), and a waiter we do see registered after the
    /// notifier that woke it last took it, so that notifier's record is visible here.
    #[inline(always)]
    fn wake_next_consumer(&self, next: u64) {
        let ready = self.data_ready();
        if ready.has_waiters() && self.table.stamp(next).load(Ordering::Acquire) == next + 1 {
            ready.wake_one();
        }
    }

    /// Gives cells `pos..pos + cells` back to the producers of the next lap: the first
    /// cell last, so that while it still reads "published" (a recoverer looks at it)
    /// none of them is reused, and a release cut short can be done again.
    #[inline]
    fn release_cells(&self, pos: u64, cells: u64) {
        for p in (pos..pos + cells).rev() {
            // SYNC POINT: Release pairs with the producer's Acquire load of the stamp in
            // `try_claim`: our reads of the cell happen before it rewrites it.
            self.table.stamp(p).store(p + self.n, Ordering::Release);
            self.step("cell released");
        }
    }

    /// Clears the stream slot in `word` if we hold it; `true` if we did. Only the
    /// holder changes a held slot, and the position does not move while a producer
    /// holds the writer slot; a consumer holding the reader slot may see other
    /// consumers... no: they wait too. The loop covers spurious CAS failures.
    fn release_slot(&self, word: &AtomicU64) -> bool {
        let mut w = word.load(Ordering::Relaxed);
        while holder_of(w) == self.me() {
            match word.compare_exchange_weak(
                w,
                cursor(pos_of(w), 0),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => w = now,
            }
        }
        false
    }

    /// A step boundary of the protocol, right after `what`: where a loom model's
    /// endpoint may stop for ever (see [`StopBudget`]). Nothing outside loom.
    #[inline(always)]
    fn step(&self, what: &'static str) {
        let _ = what;
        #[cfg(loom)]
        if let Some(left) = self.stop.left.get() {
            if left <= 1 {
                self.stop.left.set(None);
                self.stop.stopped.set(true);
                std::panic::resume_unwind(Box::new(Stopped(what)));
            }
            self.stop.left.set(Some(left - 1));
        }
    }

    /// Whether this endpoint has stopped for ever (a loom model's; never outside loom):
    /// it then leaves the ring alone.
    #[inline(always)]
    fn stopped(&self) -> bool {
        #[cfg(loom)]
        {
            self.stop.stopped.get()
        }
        #[cfg(not(loom))]
        {
            false
        }
    }

    fn corrupt(&self, field: &'static str, value: u64, reason: &'static str) -> Error {
        Error::Corrupt {
            name: self.seg.name().to_string(),
            field,
            value,
            reason,
        }
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if self.slot == NO_SLOT || self.stopped() || self.liveness.copied_by_fork() {
            // Attaching failed: we hold no slot. Or (loom) we stopped for ever: our slot
            // stays as it was, for a recoverer. Or we are a copy made by `fork`: the
            // slot and the counts are the parent's endpoint's, which lives on.
            return;
        }
        // SYNC POINT: Release pairs with `all_gone`'s Acquire. Saturating at 0 in the
        // low half, so a scribbled counter cannot borrow from the attach count.
        let _ =
            self.role_count(self.role)
                .fetch_update(Ordering::Release, Ordering::Relaxed, |v| {
                    (v & 0xffff_ffff != 0).then(|| v - 1)
                });
        self.liveness
            .detach(self.slot, &self.header().endpoints[self.slot]);
        // Sleepers of both kinds re-check: peers for "all gone", our own kind for a
        // stream slot we may have held.
        self.data_ready().notify_all();
        self.space_ready().notify_all();
        self.writer_free().notify_all();
        self.reader_free().notify_all();
    }
}

// ---------------------------------------------------------------------------------
// Producer
// ---------------------------------------------------------------------------------

/// A writing end of an MPMC ring. Any number may be attached (up to the ring's
/// endpoint limit), in any processes; each is used by one thread at a time.
///
/// ```no_run
/// use shmlane::{mpmc, RingOptions};
///
/// let mut tx = mpmc::Producer::create_or_open("/jobs", &RingOptions::new(1 << 20))?;
/// tx.send(b"job 1")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Producer {
    ring: View,
    wait: Wait,
    spinner: Spinner,
    /// Payload bytes of a fragment of a large message.
    fragment_payload: usize,
    /// A message in fragments was begun and not closed.
    open_message: bool,
    /// The claim handed out last (to a `WriteGrant` or a `MessageWriter` fragment) and
    /// not yet published or abandoned. A grant borrows the producer mutably, so when a
    /// new claim starts this is `Some` only if the grant was leaked (`mem::forget`):
    /// its cells would then never be published, and since the new claim overwrites
    /// the claim note, not even recovery after our death would free them. `claim`
    /// abandons it first (padding, or an ABORT for a fragment). Private memory, so it
    /// is trusted, unlike the note in the segment.
    outstanding: Option<Claim>,
}

// SAFETY: the raw pointers in `ring` point into the segment it keeps alive, and the
// producer's private state moves with it; shared state is reached through atomics.
unsafe impl Send for Producer {}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("mpmc::Producer")
            .field("name", &self.ring.seg.name())
            .field("slot", &self.ring.slot)
            .field("cells", &self.ring.n)
            .field("cell_size", &self.ring.params.cell_size)
            .field("wait", &self.wait)
            .finish()
    }
}

impl Producer {
    endpoint_constructors!("mpmc", KIND_MPMC, "producer", "consumer");

    pub(crate) fn attach(seg: Arc<Segment>, params: RingParams, wait: Wait) -> Result<Self, Error> {
        let ring = View::attach(seg, params, ROLE_PRODUCER)?;
        let fragment_payload = (params.capacity / 4)
            .max(params.cell_size)
            .max(2 * BEGIN_PREFIX)
            .min(params.max_record);
        Ok(Producer {
            ring,
            wait,
            spinner: Spinner::default(),
            fragment_payload,
            open_message: false,
            outstanding: None,
        })
    }

    /// Attaches another producer to the same ring (in this process, sharing the
    /// mapping), with the same wait strategy. Fails with [`Error::Busy`] if the
    /// ring's endpoint limit is reached.
    pub fn try_clone(&self) -> Result<Producer, Error> {
        Producer::attach(self.ring.seg.clone(), self.ring.params, self.wait)
    }

    /// The cell size in bytes.
    pub fn cell_size(&self) -> usize {
        self.ring.params.cell_size
    }

    /// How many endpoints may be attached at once.
    pub fn max_endpoints(&self) -> usize {
        self.ring.params.max_endpoints as usize
    }

    /// The largest message that travels in one record (and so the largest
    /// [`reserve`](Self::reserve)): `capacity / 2`.
    pub fn max_record_payload(&self) -> usize {
        self.ring.params.max_record
    }

    /// Whether every consumer of ours has gone: one was attached at some moment since
    /// this producer attached, and none is now (detached, or died: checked now, and
    /// recovered). False while none has come. See
    /// [`wait_for_consumers`](Self::wait_for_consumers).
    pub fn is_disconnected(&self) -> bool {
        let _ = self.ring.reap_dead();
        self.ring.all_gone(ROLE_CONSUMER, true)
    }

    /// Checks for dead endpoints (recovering them) if `thorough`, then whether every
    /// consumer has gone.
    fn connected(&self, thorough: bool) -> Result<(), SendError> {
        if thorough {
            self.ring.reap_dead()?;
        }
        if self.ring.all_gone(ROLE_CONSUMER, thorough) {
            return Err(SendError::Disconnected);
        }
        Ok(())
    }

    /// Tries to claim `k` cells for a record with `flags`, without waiting. Leaves a
    /// confirmed claim note if it claimed, none if not.
    #[inline]
    fn try_claim(&mut self, k: u64, flags: u8) -> Result<Poll<Claim>, Corruption> {
        let r = self.claim_cells(k, flags);
        if !matches!(r, Ok(Poll::Ready(_))) {
            self.ring.clear_note();
        }
        r
    }

    #[inline(always)]
    fn claim_cells(&mut self, k: u64, flags: u8) -> Result<Poll<Claim>, Corruption> {
        let r = &self.ring;
        let n = r.n;
        let tail = &r.header().tail;
        let me = r.me();
        'retry: loop {
            let t = tail.load(Ordering::Relaxed);
            let (pos, holder) = (pos_of(t), holder_of(t));
            if pos > MAX_POSITION || holder > u64::from(r.params.max_endpoints) {
                return Err(Corruption {
                    what: "tail cursor",
                    value: t,
                    position: pos,
                });
            }
            // The writer-stream slot: a whole message or a first fragment needs it free;
            // the rest of a stream needs it ours.
            let new_holder = match flags {
                // Reserved for this message by `room_for_fragmented`.
                FLAG_BEGIN if holder == me => me,
                FLAGS_WHOLE | FLAG_BEGIN if holder != 0 => return Ok(Poll::SlotHeld),
                FLAGS_WHOLE => 0,
                FLAG_BEGIN => me,
                _ if holder != me => {
                    return Err(Corruption {
                        what: "writer-stream slot (taken from this producer mid-message)",
                        value: holder,
                        position: pos,
                    })
                }
                _ => me,
            };
            let index = pos & (n - 1);
            let pad = if index + k > n { n - index } else { 0 };
            // The payload's first line will be ours to write: start taking it now, in
            // parallel with the stamp loads and the CAS (which would hold it back).
            crate::sync::prefetch_write(r.data.ptr(r.index(pos + pad)));
            for p in pos..pos + pad + k {
                // SYNC POINT: Acquire pairs with the Release store of the consumer that
                // released this cell: its reads of the cell happen before our writes.
                let stamp = r.table.stamp(p).load(Ordering::Acquire);
                let d = stamp.wrapping_sub(p) as i64;
                if d == 0 {
                    continue;
                }
                if !stamp_fits(stamp, p, n) {
                    return Err(Corruption {
                        what: "cell stamp (written for no position of this cell)",
                        value: stamp,
                        position: p,
                    });
                }
                if d < 0 {
                    // Held from an earlier lap: published, or an inner cell, and not
                    // released yet. (Or a stale read: a load may return an older value
                    // of the stamp than the latest, and looking again will see it.)
                    return Ok(Poll::Empty);
                }
                // Ahead of us: another producer claimed it since we read `tail`, or the
                // stamp is corrupt if the latest `tail` still says otherwise.
                if latest(tail, t) != t {
                    continue 'retry;
                }
                return Err(Corruption {
                    what: "cell stamp (ahead of the producers' cursor)",
                    value: stamp,
                    position: p,
                });
            }
            // The claim note first (`recovery.rs`): should we die between the CAS and
            // the publish, it says which cells were ours.
            let note = r.note();
            note.claim_cells.store(pad << 32 | k, Ordering::Relaxed);
            note.claim.store(pos | CLAIM_VALID, Ordering::Relaxed);
            r.step("claim note written");
            let new = cursor(pos + pad + k, new_holder);
            // SYNC POINT: Release: a recoverer that reads `tail` past `pos` with an
            // Acquire read-modify-write sees the note (later claims' CASes continue the
            // release sequence).
            if tail
                .compare_exchange_weak(t, new, Ordering::Release, Ordering::Relaxed)
                .is_err()
            {
                r.step("claim CAS failed");
                continue;
            }
            r.step("claim CAS done");
            note.claim
                .store(pos | CLAIM_VALID | CLAIM_CONFIRMED, Ordering::Relaxed);
            r.step("claim note confirmed");
            if pad > 0 {
                r.publish_pad(pos, pad);
                r.step("wrap padding published");
            }
            let pos = pos + pad;
            return Ok(Poll::Ready(Claim {
                pos,
                index: r.index(pos),
                cells: k,
                flags,
            }));
        }
    }

    /// `claim` of the `RecordProducer`: tries, then waits as `mode` allows.
    #[inline(always)]
    fn claim_record(
        &mut self,
        payload: usize,
        flags: u8,
        mode: Mode,
    ) -> Result<Option<Claim>, SendError> {
        let k = cells_for(payload, self.ring.cell_shift);
        let first = self.try_claim(k, flags)?;
        if let Poll::Ready(c) = first {
            return Ok(Some(c));
        }
        let Mode::Block(deadline) = mode else {
            // Not waiting: look for dead endpoints now and then (a dead consumer may
            // hold the cells we need, or every consumer may be dead).
            if self.ring.watch.due() {
                self.connected(true)?;
                if let Poll::Ready(c) = self.try_claim(k, flags)? {
                    return Ok(Some(c));
                }
            }
            return Ok(None);
        };
        let mut spinner = self.spinner;
        let result = wait_for(
            self.wait,
            &mut spinner,
            deadline,
            self,
            |p| p.ring.space_ready(),
            |p| p.ring.writer_free(),
            |p, look| {
                p.connected(look == Look::Thorough)?;
                Ok(p.try_claim(k, flags)?)
            },
        );
        self.spinner = spinner;
        result
    }

    /// Cells of the ring taken by a `len`-byte message sent in fragments.
    fn fragmented_cells(&self, len: u64) -> u64 {
        let shift = self.ring.cell_shift;
        let fp = self.fragment_payload as u64;
        let first = fp - BEGIN_PREFIX as u64;
        let after = len.saturating_sub(first);
        let last = after % fp;
        cells_for(fp as usize, shift) * (1 + after / fp)
            + if last > 0 {
                cells_for(last as usize, shift)
            } else {
                0
            }
    }

    /// Gives up the cells of a claim whose grant was leaked (see `outstanding`): pads
    /// them, so that consumers skip them and producers reuse them next lap. A leaked
    /// first fragment also gives back the writer-stream slot it took; a leaked later
    /// fragment leaves the message open (`open_message`), and the next send closes it
    /// with an ABORT as after any abandoned stream, so its reader gets `Truncated`.
    /// [`pad_leaked`](Self::pad_leaked) of the claim in `outstanding`.
    #[cold]
    #[inline(never)]
    fn pad_outstanding(&mut self) {
        if let Some(leaked) = self.outstanding.take() {
            self.pad_leaked(leaked);
        }
    }

    #[cold]
    fn pad_leaked(&mut self, leaked: Claim) {
        let r = &self.ring;
        r.publish_pad(leaked.pos, leaked.cells);
        r.step("leaked claim padded");
        r.clear_note();
        if leaked.flags == FLAG_BEGIN {
            self.release_writer_slot();
        }
        // Records published behind the padding wait for a consumer to skip it.
        self.ring.data_ready().notify_one();
    }

    /// Clears the writer-stream slot if we hold it, and wakes producers waiting for it.
    fn release_writer_slot(&self) {
        if self.ring.release_slot(&self.ring.header().tail) {
            self.ring.writer_free().notify_all();
        }
    }

    producer_methods!("mpmc");
}

impl RecordProducer for Producer {
    #[inline]
    fn check_connected(&self) -> Result<(), SendError> {
        self.connected(false)
    }

    #[inline]
    fn max_record_payload(&self) -> usize {
        self.ring.params.max_record
    }

    fn fragment_payload(&self) -> usize {
        self.fragment_payload
    }

    #[inline]
    fn claim(&mut self, payload: usize, flags: u8, mode: Mode) -> Result<Option<Claim>, SendError> {
        if self.ring.stopped() {
            return Err(SendError::Disconnected);
        }
        if self.outstanding.is_some() {
            self.pad_outstanding();
        }
        let r = self.claim_record(payload, flags, mode);
        if flags == FLAG_BEGIN && !matches!(r, Ok(Some(_))) {
            // A first fragment that did not go out leaves the writer slot free, also
            // when `room_for_fragmented` had reserved it for us.
            self.release_writer_slot();
        }
        r
    }

    #[inline]
    fn lend(&mut self, claim: &Claim) {
        self.outstanding = Some(*claim);
    }

    #[inline]
    fn publish(&mut self, claim: Claim, len: usize, flags: u8) {
        // A load and a branch, not a store, on the path of `send` (which lends nothing).
        if self.outstanding.is_some() {
            self.outstanding = None;
        }
        let r = &self.ring;
        if r.stopped() {
            return;
        }
        r.step("payload written");
        let used = cells_for(len, r.cell_shift);
        debug_assert!(used <= claim.cells);
        if used < claim.cells {
            // A grant committed shorter than reserved: the rest is padding.
            r.publish_pad(claim.pos + used, claim.cells - used);
            r.step("commit padding published");
        }
        r.table
            .record(claim.pos)
            .store(encode_cell(len as u32, flags), Ordering::Relaxed);
        r.step("record word written");
        // SYNC POINT: Release pairs with the consumer's Acquire load of this stamp in
        // `try_take`: the payload and the record word are visible once it sees it.
        r.table
            .stamp(claim.pos)
            .store(claim.pos + 1, Ordering::Release);
        r.step("stamp published");
        r.clear_note();
        r.step("claim note cleared");
        if flags & FLAG_END != 0 && flags & FLAG_BEGIN == 0 {
            // The last fragment (or the ABORT) of our stream: free the writer slot.
            self.release_writer_slot();
            self.ring.step("writer slot released");
        }
        if flags & FLAG_BEGIN != 0 {
            // A whole message or the first fragment: any one consumer can take it, so
            // one is woken. (Should it find the ring's head still being written by a
            // slower producer, the consumer that takes that record wakes the next one:
            // `take_record`.)
            self.ring.data_ready().notify_one();
        } else {
            // A later fragment: only the stream's reader can take it, and a consumer
            // that registered before the stream began may be asleep beside it. Wake
            // all; the others find the reader slot held and wait for it instead.
            self.ring.data_ready().notify_all();
        }
    }

    fn abandon(&mut self, claim: Claim) {
        self.outstanding = None;
        if self.ring.stopped() {
            return;
        }
        if claim.flags == FLAGS_WHOLE {
            self.ring.publish_pad(claim.pos, claim.cells);
            self.ring.step("abandoned cells padded");
            self.ring.clear_note();
            self.ring.step("claim note cleared");
            // Padding needs no consumer, but records published behind it wait for one
            // to skip it: one woken consumer does, and takes them.
            self.ring.data_ready().notify_one();
        } else {
            // Part of a stream: close it here, which frees the writer slot.
            self.publish(claim, 0, FLAGS_ABORTED);
            self.open_message = false;
        }
    }

    #[inline(always)]
    fn data(&self) -> DataRegion {
        self.ring.data
    }

    #[inline(always)]
    fn open_message(&mut self) -> &mut bool {
        &mut self.open_message
    }

    /// Room for every fragment now. If so, the writer-stream slot is ours (reserved
    /// for the first fragment, which `claim_cells` lets through), so no other
    /// producer can claim until the message ends; and the cell of every record it
    /// needs (padding at the wrap included) reads free for that position, and nothing
    /// but this producer's claims changes that. So every claim of the message then
    /// succeeds at once: none waits for a consumer that holds cells it took (a grant,
    /// a stream reader) but has not released.
    fn room_for_fragmented(&mut self, len: u64) -> Result<bool, SendError> {
        let n = self.ring.n;
        let shift = self.ring.cell_shift;
        let slack = cells_for(self.fragment_payload, shift);
        let need = self.fragmented_cells(len);
        if need + slack > n {
            // fragmented_cells is monotonic: binary search the longest that fits.
            let (mut lo, mut hi) = (self.ring.params.max_record as u64, len);
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if self.fragmented_cells(mid) + slack <= n {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            return Err(SendError::TooLarge { len, max: lo });
        }
        let h = self.ring.header();
        let me = self.ring.me();
        let mut t = h.tail.load(Ordering::Acquire);
        let pos = loop {
            let hd = h.head.load(Ordering::Acquire);
            let used = pos_of(t).saturating_sub(pos_of(hd));
            if holder_of(t) != 0 || used > n || need + slack > n - used {
                return Ok(false);
            }
            // Take the writer slot without moving `tail`.
            match h.tail.compare_exchange_weak(
                t,
                cursor(pos_of(t), me),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => break pos_of(t),
                Err(now) => t = now,
            }
        };
        // The records of the message as `claim_cells` will place them: the first
        // fragment and the full ones after it, then the rest; each one that would
        // cross the end of the ring after padding to it.
        let fp = self.fragment_payload as u64;
        let after = len.saturating_sub(fp - BEGIN_PREFIX as u64);
        let full = cells_for(fp as usize, shift);
        let last = after % fp;
        let records = std::iter::repeat(full)
            .take(1 + (after / fp) as usize)
            .chain((last > 0).then(|| cells_for(last as usize, shift)));
        let mut end = pos;
        for k in records {
            let index = end & (n - 1);
            if index + k > n {
                end += n - index;
            }
            end += k;
        }
        debug_assert!(end - pos <= need + slack);
        // SYNC POINT: Acquire pairs with the Release store of the consumer that
        // released the cell, as in `claim_cells`.
        let free = (pos..end).all(|p| self.ring.table.stamp(p).load(Ordering::Acquire) == p);
        if !free {
            self.release_writer_slot();
        }
        Ok(free)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Close a message left open; if there is no room for its ABORT, give the writer
        // slot up anyway: the consumer reading it sees the next message begin and
        // reports the cut one as truncated. Then `ring` drops and detaches.
        if self.ring.stopped() || self.ring.liveness.copied_by_fork() {
            return;
        }
        // A grant leaked (`mem::forget`) since our last claim: its cells become
        // padding, or they would stay claimed for ever.
        if let Some(leaked) = self.outstanding.take() {
            self.pad_leaked(leaked);
        }
        let _ = crate::message::close_open_message(self, Mode::Try);
        self.release_writer_slot();
    }
}

/// Room for one message in an MPMC ring, written in place; see
/// [`shmlane::WriteGrant`](crate::WriteGrant).
pub type WriteGrant<'a> = crate::WriteGrant<'a, Producer>;

// ---------------------------------------------------------------------------------
// Consumer
// ---------------------------------------------------------------------------------

/// A reading end of an MPMC ring. Any number may be attached (up to the ring's
/// endpoint limit), in any processes; each message goes to exactly one of them.
///
/// ```no_run
/// use shmlane::mpmc;
///
/// let mut rx = mpmc::Consumer::open("/jobs")?;
/// let mut buf = Vec::new();
/// while rx.recv(&mut buf).is_ok() {
///     println!("job of {} bytes", buf.len());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Consumer {
    ring: View,
    wait: Wait,
    spinner: Spinner,
    max_message: u64,
    partial: Option<Partial>,
    /// The record this consumer has claimed and not released.
    in_hand: Option<InHand>,
    /// Where the last look found nothing: the head position and the stamp it read
    /// there. Until that stamp changes, nothing can be taken (see `arrived`).
    empty_at: Option<(u64, u64)>,
}

/// A claimed record: `cells` cells from `pos`.
#[derive(Clone, Copy, Debug)]
struct InHand {
    pos: u64,
    cells: u64,
    rec: DataRecord,
}

// SAFETY: as for `Producer`.
unsafe impl Send for Consumer {}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("mpmc::Consumer")
            .field("name", &self.ring.seg.name())
            .field("slot", &self.ring.slot)
            .field("cells", &self.ring.n)
            .field("cell_size", &self.ring.params.cell_size)
            .field("wait", &self.wait)
            .field("max_message", &self.max_message)
            .finish()
    }
}

impl Consumer {
    endpoint_constructors!("mpmc", KIND_MPMC, "consumer", "producer");

    pub(crate) fn attach(seg: Arc<Segment>, params: RingParams, wait: Wait) -> Result<Self, Error> {
        let ring = View::attach(seg, params, ROLE_CONSUMER)?;
        Ok(Consumer {
            ring,
            wait,
            spinner: Spinner::default(),
            max_message: params.max_message,
            partial: None,
            in_hand: None,
            empty_at: None,
        })
    }

    /// Attaches another consumer to the same ring (in this process, sharing the
    /// mapping), with the same wait strategy and message cap. Fails with
    /// [`Error::Busy`] if the ring's endpoint limit is reached.
    pub fn try_clone(&self) -> Result<Consumer, Error> {
        let mut c = Consumer::attach(self.ring.seg.clone(), self.ring.params, self.wait)?;
        c.max_message = self.max_message;
        Ok(c)
    }

    /// The cell size in bytes.
    pub fn cell_size(&self) -> usize {
        self.ring.params.cell_size
    }

    /// The fuzz harness only: the producers' attach counter as this consumer read it
    /// when it attached (a harness that plays the producers' leaving writes one whose
    /// count of attaches differs).
    #[cfg(any(fuzzing, feature = "fuzz-harness"))]
    pub(crate) fn peers_at_attach(&self) -> u64 {
        self.ring.peers_at_attach
    }

    /// Whether every producer of ours has gone: one was attached at some moment since
    /// this consumer attached, and none is now (detached, or died: checked now, and
    /// recovered). False while none has come. Messages they sent may still be in the
    /// ring. See [`wait_for_producers`](Self::wait_for_producers).
    pub fn is_disconnected(&self) -> bool {
        let _ = self.ring.reap_dead();
        self.ring.all_gone(ROLE_PRODUCER, true)
    }

    /// Whether something may have come since the last look found the ring empty: the
    /// stamp it read at the head changed (a record published there, or another
    /// consumer took it and the head moved). One load of a line the producers write;
    /// `head` itself, which every consumer's claim writes, is not read. A look that
    /// found the reader slot held, or the producers gone, is not made quick: those
    /// waits park or end.
    #[inline(always)]
    fn arrived(&self) -> bool {
        match self.empty_at {
            // Relaxed: only a hint; `take_record` loads it again with Acquire.
            Some((pos, stamp)) => self.ring.table.stamp(pos).load(Ordering::Relaxed) != stamp,
            None => true,
        }
    }

    /// Claims the next record, skipping padding, without waiting. Leaves a confirmed
    /// claim note on the record if it took one, none if not.
    #[inline]
    fn try_take(&mut self) -> Result<Poll<DataRecord>, Corruption> {
        if let Some(h) = &self.in_hand {
            return Ok(Poll::Ready(h.rec));
        }
        let r = self.take_record();
        if !matches!(r, Ok(Poll::Ready(_))) {
            self.ring.clear_note();
        }
        r
    }

    #[inline(always)]
    fn take_record(&mut self) -> Result<Poll<DataRecord>, Corruption> {
        let r = &self.ring;
        let n = r.n;
        let head = &r.header().head;
        let me = r.me();
        loop {
            let hw = head.load(Ordering::Relaxed);
            let (pos, holder) = (pos_of(hw), holder_of(hw));
            if pos > MAX_POSITION || holder > u64::from(r.params.max_endpoints) {
                return Err(Corruption {
                    what: "head cursor",
                    value: hw,
                    position: pos,
                });
            }
            if holder != 0 && holder != me {
                // Another consumer is reading a message in fragments.
                return Ok(Poll::SlotHeld);
            }
            // SYNC POINT: Acquire pairs with the producer's Release store of this stamp
            // in `publish`: the record word and payload are visible.
            let stamp = r.table.stamp(pos).load(Ordering::Acquire);
            let d = stamp.wrapping_sub(pos) as i64;
            if d != 1 {
                if !stamp_fits(stamp, pos, n) {
                    return Err(Corruption {
                        what: "cell stamp at head (written for no position of this cell)",
                        value: stamp,
                        position: pos,
                    });
                }
                if d <= 0 {
                    // Not published for this position yet: free, claimed and being
                    // written, or still held from the previous lap (or a stale read).
                    self.empty_at = Some((pos, stamp));
                    return Ok(Poll::Empty);
                }
                if latest(head, hw) != hw {
                    continue; // another consumer took it since we read `head`
                }
                return Err(Corruption {
                    what: "cell stamp at head (ahead of the consumers' cursor)",
                    value: stamp,
                    position: pos,
                });
            }
            // Published: fetch the payload's first line while we decode and claim (a
            // locked CAS would hold back a load issued after it).
            crate::sync::prefetch_read(r.data.ptr(r.index(pos)));
            let word = r.table.record(pos).load(Ordering::Relaxed);
            let max_payload = r.params.max_record;
            let record = match decode_cell(word, pos & (n - 1), n, r.cell_shift, max_payload) {
                Ok(rec) => rec,
                Err(mut c) => {
                    if latest(head, hw) != hw {
                        continue;
                    }
                    c.position = pos;
                    return Err(c);
                }
            };
            let (cells, new_holder, rec) = match record {
                CellRecord::Pad { cells } => (cells, holder, None),
                CellRecord::Data { rec, cells } => {
                    let new_holder = if rec.flags() == FLAG_BEGIN {
                        me // a message in fragments begins: it is ours
                    } else if rec.is_end() {
                        0 // END, ABORT, or a whole message: no stream goes on
                    } else {
                        holder // a middle fragment: ours, or a stray
                    };
                    (cells, new_holder, Some(rec))
                }
            };
            // The claim note first (`recovery.rs`): should we die holding the cells, it
            // says which to release.
            let note = r.note();
            note.claim.store(pos | CLAIM_VALID, Ordering::Relaxed);
            r.step("claim note written");
            // SYNC POINT: Release: a recoverer that reads `head` past `pos` with an
            // Acquire read-modify-write sees the note.
            if head
                .compare_exchange_weak(
                    hw,
                    cursor(pos + cells, new_holder),
                    Ordering::Release,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                r.step("claim CAS failed");
                continue;
            }
            r.step("claim CAS done");
            note.claim
                .store(pos | CLAIM_VALID | CLAIM_CONFIRMED, Ordering::Relaxed);
            r.step("claim note confirmed");
            if holder == me && new_holder == 0 {
                // Consumers waiting for the reader slot may go on.
                r.reader_free().notify_all();
            }
            if rec.is_some() {
                r.wake_next_consumer(pos + cells);
            }
            match rec {
                None => self.release_cells(pos, cells),
                Some(rec) => {
                    self.in_hand = Some(InHand { pos, cells, rec });
                    return Ok(Poll::Ready(rec));
                }
            }
        }
    }

    /// Gives cells `pos..pos + cells` back to the producers of the next lap, and
    /// clears our claim note.
    #[inline]
    fn release_cells(&self, pos: u64, cells: u64) {
        self.ring.release_cells(pos, cells);
        self.ring.clear_note();
        self.ring.step("claim note cleared");
        self.ring.space_ready().notify_all();
    }

    /// The next record; `Disconnected` if there is none and every producer has gone;
    /// `Truncated` if we are reading a message in fragments whose writer gave up the
    /// writer-stream slot before its end (it died). If `thorough`, first recovers dead
    /// endpoints.
    #[inline]
    fn poll_record(&mut self, thorough: bool) -> Result<Poll<DataRecord>, RecvError> {
        if thorough {
            self.ring.reap_dead()?;
        }
        let first = self.try_take()?;
        if !matches!(first, Poll::Empty) {
            return Ok(first);
        }
        let h = self.ring.header();
        let hw = h.head.load(Ordering::Relaxed);
        if holder_of(hw) == self.ring.me() && self.stream_orphaned(hw) {
            self.release_reader_slot();
            return Err(RecvError::Truncated);
        }
        if !self.ring.all_gone(ROLE_PRODUCER, thorough) {
            // Behind another reader, messages may wait: it frees the slot (and wakes
            // us) when it ends its message or leaves.
            return Ok(first);
        }
        // Look again: what a producer published before it left is visible now.
        let again = self.try_take()?;
        if !matches!(again, Poll::Empty) {
            return Ok(again);
        }
        // No message can be completed any more: let other consumers go on.
        self.release_reader_slot();
        Err(RecvError::Disconnected)
    }

    /// We hold the reader slot (`head` read `hw`) and found nothing: whether the
    /// message we read can never go on, because nothing is claimed after `head` and
    /// no producer holds the writer slot. A writer holds it from its BEGIN until it
    /// has published its END, and the END is claimed before `tail` moves on, so this
    /// happens only when the writer died (and was recovered) or was dropped without
    /// room for its ABORT.
    #[cold]
    fn stream_orphaned(&self, hw: u64) -> bool {
        let tail = &self.ring.header().tail;
        let t = latest(tail, tail.load(Ordering::Acquire));
        holder_of(t) == 0 && pos_of(t) == pos_of(latest(&self.ring.header().head, hw))
    }

    fn release_reader_slot(&self) {
        if self.ring.release_slot(&self.ring.header().head) {
            self.ring.reader_free().notify_all();
        }
    }

    consumer_methods!("mpmc");
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
    #[inline]
    fn next_record(&mut self, mode: Mode) -> Result<DataRecord, RecvTimeoutError> {
        if self.ring.stopped() {
            return Err(RecvTimeoutError::Disconnected);
        }
        let first = self.poll_record(false)?;
        if let Poll::Ready(r) = first {
            return Ok(r);
        }
        let Mode::Block(deadline) = mode else {
            // Not waiting: look for dead endpoints now and then.
            if self.ring.watch.due() {
                if let Poll::Ready(r) = self.poll_record(true)? {
                    return Ok(r);
                }
            }
            return Err(RecvTimeoutError::Timeout);
        };
        let mut spinner = self.spinner;
        let result = wait_for(
            self.wait,
            &mut spinner,
            deadline,
            self,
            |c| c.ring.data_ready(),
            |c| c.ring.reader_free(),
            |c, look| {
                if look == Look::Quick && !c.arrived() {
                    return Ok(Poll::Empty);
                }
                c.poll_record(look == Look::Thorough)
            },
        );
        self.spinner = spinner;
        result?.ok_or(RecvTimeoutError::Timeout)
    }

    #[inline]
    fn release_record(&mut self, _rec: &DataRecord) {
        if self.ring.stopped() {
            return;
        }
        self.ring.step("payload read");
        if let Some(h) = self.in_hand.take() {
            self.release_cells(h.pos, h.cells);
        }
    }

    #[inline]
    fn content_index(&self, rec: &DataRecord) -> usize {
        self.payload_index(rec) + rec.prefix_len()
    }

    #[inline]
    fn payload_index(&self, _rec: &DataRecord) -> usize {
        let h = self.in_hand.as_ref().expect("a record in hand");
        self.ring.index(h.pos)
    }

    fn record_position(&self) -> u64 {
        self.in_hand.as_ref().map_or(0, |h| h.pos)
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
        self.ring.params.max_record
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // A record in hand is released unread (it was claimed: no other consumer can
        // take it); the rest of a message in fragments we were reading is skipped by
        // the consumers after us. Then `ring` drops and detaches.
        if self.ring.stopped() || self.ring.liveness.copied_by_fork() {
            return;
        }
        if let Some(h) = self.in_hand.take() {
            self.release_cells(h.pos, h.cells);
        }
        self.release_reader_slot();
    }
}

/// One message read in place from an MPMC ring; see
/// [`shmlane::ReadGrant`](crate::ReadGrant).
pub type ReadGrant<'a> = crate::ReadGrant<'a, Consumer>;

// ---------------------------------------------------------------------------------
// Loom models only: endpoints that die, and their recovery (`loom_internals`)
// ---------------------------------------------------------------------------------

#[cfg(loom)]
impl View {
    /// Stops this endpoint for ever right after its `steps`-th step from now (`0`: at
    /// its next step).
    fn stop_after(&self, steps: u32) {
        self.stop.left.set(Some(steps.max(1)));
    }

    /// Ends this endpoint as a process killed now would: its slot stays as it is
    /// (attached, with its claim note and the stream slots it holds), and it touches
    /// the ring no more (its `Drop`s see it stopped and do nothing: the endpoint is
    /// dropped as if forgotten). Returns its slot.
    fn die(&self) -> usize {
        self.stop.stopped.set(true);
        self.slot
    }

    /// `reap` of slot `dead` (another endpoint's) as if it were proven dead: the real
    /// take-over, `recovery::recover` and release of `liveness.rs`. `Ok(None)`: the
    /// slot holds no endpoint (recovered already); `Ok(Some(true))`: recovered now;
    /// `Ok(Some(false))`: not yet (`Recovered::NotYet`, or another recoverer has it).
    fn recover_declared_dead(&self, dead: usize) -> Result<Option<bool>, Corruption> {
        assert_ne!(dead, self.slot, "an endpoint recovering itself");
        let slot = &self.header().endpoints[dead];
        if !crate::liveness::occupied(slot.state()) {
            return Ok(None);
        }
        self.liveness
            .reap_declared_dead(dead, slot, &mut |i, was| recovery::recover(self, i, was))
            .map(Some)
    }
}

#[cfg(loom)]
impl Producer {
    pub(crate) fn loom_stop_after(&self, steps: u32) {
        self.ring.stop_after(steps);
    }

    pub(crate) fn loom_die(self) -> usize {
        self.ring.die()
    }

    pub(crate) fn loom_recover(&self, dead: usize) -> Result<Option<bool>, Corruption> {
        self.ring.recover_declared_dead(dead)
    }
}

#[cfg(loom)]
impl Consumer {
    pub(crate) fn loom_stop_after(&self, steps: u32) {
        self.ring.stop_after(steps);
    }

    pub(crate) fn loom_die(self) -> usize {
        self.ring.die()
    }

    pub(crate) fn loom_recover(&self, dead: usize) -> Result<Option<bool>, Corruption> {
        self.ring.recover_declared_dead(dead)
    }
}
