//! The fixed 4096-byte header at the start of every segment.
//!
//! Construction follows "size it, place it, init it": [`SegmentLayout`] sizes the
//! segment from the options, the backing places zeroed memory, and
//! [`Header::init`] fills the fields and finally publishes `state = READY` with a
//! Release store. [`Header::validate`] is the mirror on open: every field is read once,
//! checked, and copied into a private [`RingParams`] that the protocol trusts from then
//! on, so a peer that scribbles over the header later cannot change what we index with.
//!
//! Every field is an atomic, so that a peer writing the header while we read it is an
//! ordinary (if wrong) race between atomics rather than undefined behaviour.

use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::EventWord;

/// `b"SHMLANE\0"` read as a little-endian u64.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMLANE\0");
/// Bumped whenever the meaning of any header field or record bit changes (3: the event
/// counts hold woken-one-at-a-time tokens beside the waiters, and sleep on a wake
/// sequence instead of the epoch; 4: an endpoint slot's word says how its holder's
/// life is told and counts its holders, the slot records the holder's pid namespace,
/// and a proven-dead endpoint waiting for its recovery has a state of its own; the
/// record tag mixes in position bits 27.. so that no earlier lap's header passes it;
/// 5: an MPMC record's inner cells were stamped `position | INNER` on publish; 6: they
/// are not any more (the stamps of version 4: they cost 7-23 % of the throughput of
/// multi-cell records), and the version moves on so that a version 5 endpoint, which
/// would take the unstamped inner cells of a version 6 one for a scribbled `head`, never
/// attaches to the same ring).
pub(crate) const LAYOUT_VERSION: u32 = 6;
/// Size of the header; the data region starts here (page aligned).
pub(crate) const HEADER_SIZE: usize = 4096;
/// Byte ring with one producer and one consumer.
pub(crate) const KIND_SPSC: u32 = 1;
/// Cell ring with many producers and consumers.
pub(crate) const KIND_MPMC: u32 = 2;
/// Smallest ring capacity: room for a few records of any header size.
pub const MIN_CAPACITY: usize = 64;
/// Largest ring capacity (1 TiB). Record lengths are 32-bit, and
/// `max_record` is capped at 2^31 below.
pub const MAX_CAPACITY: usize = 1 << 40;
/// How many endpoint slots the header has. SPSC uses 0 = producer, 1 = consumer; an
/// MPMC ring uses the first `max_endpoints` (chosen at creation, at most this).
pub(crate) const ENDPOINT_SLOTS: usize = 32;
/// Size of one endpoint slot: a cache line, so that the claim notes a producer or
/// consumer writes for every record (`EndpointSlot::claim`) share it with nobody.
pub(crate) const ENDPOINT_SLOT_SIZE: usize = 64;
/// MPMC cells: the smallest and largest cell size in bytes.
pub(crate) const MIN_CELL_SIZE: usize = 8;
/// See [`MIN_CELL_SIZE`].
pub(crate) const MAX_CELL_SIZE: usize = 1 << 20;
/// MPMC: the most cells a ring may have (a PAD record counts its cells in 32 bits).
pub(crate) const MAX_CELLS: usize = 1 << 31;
/// MPMC: bytes of the cell table per cell (a stamp and a record word).
pub(crate) const CELL_ENTRY_SIZE: usize = 16;
/// `EndpointSlot::role` of a producer.
pub(crate) const ROLE_PRODUCER: u32 = 1;
/// `EndpointSlot::role` of a consumer.
pub(crate) const ROLE_CONSUMER: u32 = 2;

// `state` 0: nothing written yet (a freshly truncated segment is all zero).
/// `state` while the creator fills the header.
pub(crate) const STATE_INIT: u32 = 1;
/// `state` once every field is written; stored with Release last.
pub(crate) const STATE_READY: u32 = 2;
/// `state` of a segment that must no longer be used.
pub(crate) const STATE_POISONED: u32 = 3;

/// `Header::flags`: notifiers issue no fence; waiters issue
/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` instead (see `wait.rs`). Every
/// endpoint of such a ring must be registered for expedited membarriers.
pub(crate) const FLAG_ASYMMETRIC_FENCES: u64 = 1 << 4;
/// `Header::flags` bits 0..4: the notifier kind.
pub(crate) const NOTIFIER_MASK: u64 = 0xf;
/// Notifier kind: process-shared POSIX semaphores in the header (`sem_init(pshared=1)`),
/// with the event counts' waiter counting in front of them. (Kind 0: futex event counts.)
pub(crate) const NOTIFIER_SEMAPHORE: u64 = 1;
/// Every flag this build understands (besides the notifier kind).
pub(crate) const KNOWN_FLAGS: u64 = FLAG_ASYMMETRIC_FENCES;

/// `EndpointSlot::state`: the slot has never been used.
pub(crate) const ENDPOINT_VACANT: u32 = 0;
/// `EndpointSlot::state`: an endpoint is attached.
pub(crate) const ENDPOINT_ATTACHED: u32 = 1;
/// `EndpointSlot::state`: the endpoint that was attached has detached cleanly, or died
/// and was recovered.
pub(crate) const ENDPOINT_DETACHED: u32 = 2;
/// `EndpointSlot::state`: an endpoint has taken the slot and is writing its start
/// time and role; `ENDPOINT_ATTACHED` follows. So an observer never sees an attached
/// slot with the previous owner's fields.
pub(crate) const ENDPOINT_ATTACHING: u32 = 3;
/// `EndpointSlot::state`: the endpoint died; the process in `pid` is recovering what
/// it left (`liveness.rs`). `role` and the claim notes are still the dead endpoint's.
pub(crate) const ENDPOINT_RECOVERING: u32 = 4;
/// `EndpointSlot::state`: the endpoint is proven dead and what it left is not (wholly)
/// recovered yet (a recovery found it undecidable for now, or the ring corrupt). No
/// process holds the slot: any endpoint may take it over and recover it, without
/// proving anything again.
pub(crate) const ENDPOINT_DEAD: u32 = 5;

/// How the life of a slot's holder is told (`holder` bits of the slot word; 0 while
/// no one holds it): by the OFD lock on the slot's byte of the segment file.
pub(crate) const HOLDER_LOCK: u32 = 1;
/// See [`HOLDER_LOCK`]: by the pid, pid namespace and start time in the slot (SysV
/// segments, and endpoints that cannot open a description of their own of the file).
pub(crate) const HOLDER_PID: u32 = 2;
/// See [`HOLDER_LOCK`]: a private heap ring, whose endpoints are all in this process.
pub(crate) const HOLDER_LOCAL: u32 = 3;

/// `EndpointSlot::claim`: the note is set (positions are below 2^56).
pub(crate) const CLAIM_VALID: u64 = 1 << 63;
/// `EndpointSlot::claim`: the compare-exchange of the cursor succeeded: the cells
/// are this endpoint's.
pub(crate) const CLAIM_CONFIRMED: u64 = 1 << 62;
/// `EndpointSlot::claim`: the position bits.
pub(crate) const CLAIM_POS_MASK: u64 = (1 << 56) - 1;

/// The state word of an endpoint slot, so that taking a slot and saying who took it,
/// and how to tell whether they live, is one compare-exchange:
///
/// | bits   | what                                                                  |
/// |--------|-----------------------------------------------------------------------|
/// | 0..4   | the state (`ENDPOINT_*`)                                              |
/// | 4..6   | how the holder's life is told (`HOLDER_*`; 0 with no holder)          |
/// | 6      | [`SLOT_COUNTED`]: the (dead) endpoint is counted in the ring's totals |
/// | 8..12  | the holder's pid namespace: 1 + its index in `Header::pid_namespaces` (0: unknown) |
/// | 12..32 | the holder sequence: bumped whenever the slot changes hands           |
/// | 32..64 | the holder's pid, as its own pid namespace sees it                    |
///
/// The sequence makes two lives of one pid in one slot differ (a scan that reads the
/// word before and after a look never takes a new life for the one it looked at).
/// The pid and its namespace are in the word itself, so a holder killed right after
/// it took a slot can still be judged by them.
#[inline]
#[cfg(any(fuzzing, feature = "fuzz-harness"))] // only the fuzz harness writes whole words
pub(crate) const fn slot_word(state: u32, pid: u32) -> u64 {
    holder_word(state, 0, 0, 0, pid)
}

/// [`slot_word`] with a holder kind, pid namespace index and sequence.
#[inline]
pub(crate) const fn holder_word(state: u32, holder: u32, ns: u32, seq: u32, pid: u32) -> u64 {
    (state as u64 & SLOT_STATE_MASK)
        | (holder as u64 & 0x3) << 4
        | (ns as u64 & SLOT_NS_MASK) << 8
        | (seq as u64 & SLOT_SEQ_MASK) << 12
        | (pid as u64) << 32
}

/// Bits of the slot word that hold the state.
pub(crate) const SLOT_STATE_MASK: u64 = 0xf;
/// Slot word bit: the endpoint this slot holds (or held, if it died) is counted in the
/// ring's totals of producers or consumers (MPMC), so its recovery must uncount it.
pub(crate) const SLOT_COUNTED: u64 = 1 << 6;
/// The pid namespace index's width in the slot word (4 bits: `PID_NAMESPACES` + 1).
const SLOT_NS_MASK: u64 = 0xf;
/// The holder sequence's width in the slot word (20 bits).
const SLOT_SEQ_MASK: u64 = 0xf_ffff;
/// How many pid namespaces `Header::pid_namespaces` can name.
pub(crate) const PID_NAMESPACES: usize = 15;

/// The state of a slot word.
#[inline]
pub(crate) const fn word_state(word: u64) -> u32 {
    (word & SLOT_STATE_MASK) as u32
}

/// How the life of the holder of a slot word is told (`HOLDER_*`, or 0).
#[inline]
pub(crate) const fn word_holder(word: u64) -> u32 {
    ((word >> 4) & 0x3) as u32
}

/// The pid namespace index of a slot word (0: unknown).
#[inline]
pub(crate) const fn word_ns(word: u64) -> u32 {
    ((word >> 8) & SLOT_NS_MASK) as u32
}

/// The holder sequence of a slot word.
#[inline]
pub(crate) const fn word_seq(word: u64) -> u32 {
    ((word >> 12) & SLOT_SEQ_MASK) as u32
}

/// The pid of a slot word.
#[inline]
pub(crate) const fn word_pid(word: u64) -> u32 {
    (word >> 32) as u32
}

/// What of a slot word names its holder (all but the state and the counted bit): the
/// value of [`EndpointSlot::holder_tag`] once the holder wrote its start time.
#[inline]
pub(crate) const fn holder_tag(word: u64) -> u64 {
    word & !(SLOT_STATE_MASK | SLOT_COUNTED)
}

/// `abi` field: pointer width in bytes in the low byte, bit 8 set on little-endian.
pub(crate) const ABI: u32 = (std::mem::size_of::<usize>() as u32)
    | if cfg!(target_endian = "little") {
        1 << 8
    } else {
        0
    };

pub(crate) use crate::sys::semaphore::SemSlot;

/// One entry of the endpoint table: a cache line.
///
/// Who may write it: the endpoint that owns it (which, where the segment is a file,
/// holds the OFD lock on the slot's first byte: see `liveness.rs`), or, once that
/// endpoint is proven dead, the one endpoint that took the slot over to recover it.
#[repr(C, align(64))]
pub(crate) struct EndpointSlot {
    /// [`holder_word`]`(state, holder, seq, pid)`: one of the `ENDPOINT_*` states, how
    /// the holder's life is told, the holder sequence, and the process that holds the
    /// slot in it (the endpoint's, or a recoverer's). The pid is never trusted alone:
    /// see `liveness.rs`.
    pub(crate) word: AtomicU64,
    /// Incremented on every attach, so an observer can tell two lives apart.
    pub(crate) generation: AtomicU64,
    /// Start time of the holder's process (clock ticks since boot, 0 if unknown): with
    /// the pid and pid namespace of the word, the test of its life where it holds no
    /// lock (`HOLDER_PID`), so that a reused pid is not taken for it. Valid while
    /// `holder_tag` matches the word (until the holder wrote it, the pid alone tells).
    pub(crate) start_time: AtomicU64,
    /// `ROLE_PRODUCER` or `ROLE_CONSUMER` (0 while vacant).
    pub(crate) role: AtomicU32,
    _reserved0: AtomicU32,
    /// MPMC claim note: the cursor position this endpoint is claiming at, with
    /// `CLAIM_VALID`, and `CLAIM_CONFIRMED` once its compare-exchange succeeded; 0 when
    /// it claims nothing. Read by whoever recovers the endpoint after it died, to find
    /// the cells it may have claimed and not published (or released).
    pub(crate) claim: AtomicU64,
    /// MPMC claim note: `padding_cells << 32 | record_cells` of the claim in `claim`
    /// (producers; written before `claim`).
    pub(crate) claim_cells: AtomicU64,
    _reserved1: AtomicU64,
    /// [`holder_tag`] of the word whose holder wrote `start_time`: the holder stores it
    /// (Release) after it, so a judge that finds it equal to the word's (Acquire) reads
    /// the holder's own, not a previous holder's. (The holder's pid namespace is in the
    /// word itself.)
    pub(crate) holder_tag: AtomicU64,
}

impl EndpointSlot {
    /// The slot's state (`ENDPOINT_*`).
    #[inline]
    pub(crate) fn state(&self) -> u32 {
        word_state(self.word.load(Ordering::Acquire))
    }
}

/// The segment header. `#[repr(C)]`, 4096 bytes; the layout is pinned by the
/// assertions below and summarised in [`layout_hash`].
#[repr(C)]
pub(crate) struct Header {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU32,
    pub(crate) header_size: AtomicU32,
    pub(crate) layout_hash: AtomicU64,
    pub(crate) abi: AtomicU32,
    pub(crate) kind: AtomicU32,
    /// Data region size in bytes; a power of two in `MIN_CAPACITY..=MAX_CAPACITY`.
    pub(crate) capacity: AtomicU64,
    /// Cell size for the MPMC ring; 0 for SPSC.
    pub(crate) cell_size: AtomicU64,
    /// Largest record (header + payload + padding) in bytes: `capacity / 2`, at most 2^31.
    pub(crate) max_record: AtomicU64,
    /// Default cap on a message the consumer reassembles in memory.
    pub(crate) max_message: AtomicU64,
    /// Creation flags: `FLAG_ASYMMETRIC_FENCES` or 0.
    pub(crate) flags: AtomicU64,
    pub(crate) creator_pid: AtomicU32,
    pub(crate) creator_uid: AtomicU32,
    /// Creator's start time in clock ticks since boot (`/proc/self/stat` field 22).
    pub(crate) creator_start_time: AtomicU64,
    /// Offset of the data region from the segment start (= `HEADER_SIZE`).
    pub(crate) data_offset: AtomicU64,
    /// Total segment length the creator sized: `data_offset + capacity` (SPSC), or
    /// `data_offset + capacity + cells * CELL_ENTRY_SIZE` (MPMC: cells, then the cell
    /// table).
    pub(crate) segment_len: AtomicU64,
    /// How many endpoints may attach at once: 2 for SPSC; 2..=`ENDPOINT_SLOTS` for MPMC.
    pub(crate) max_endpoints: AtomicU32,
    _reserved0a: AtomicU32,
    /// MPMC: producers attached (low 32 bits) and attaches ever (high 32 bits), so
    /// that "every producer has left" differs from "none has come yet".
    pub(crate) producers: AtomicU64,
    /// MPMC: consumers, as `producers`.
    pub(crate) consumers: AtomicU64,
    /// `STATE_*`; written last with Release by the creator.
    pub(crate) state: AtomicU32,
    _pad0: [u8; 124],
    /// The "data available" semaphore (notifier `NOTIFIER_SEMAPHORE` only).
    pub(crate) sem_data_ready: SemSlot,
    /// The "space available" semaphore (notifier `NOTIFIER_SEMAPHORE` only).
    pub(crate) sem_space_ready: SemSlot,
    /// The "writer-stream slot free" semaphore (MPMC, notifier `NOTIFIER_SEMAPHORE`).
    pub(crate) sem_writer_free: SemSlot,
    /// The "reader-stream slot free" semaphore (MPMC, notifier `NOTIFIER_SEMAPHORE`).
    pub(crate) sem_reader_free: SemSlot,
    /// MPMC: event count "writer-stream slot free" (producers waiting for it sleep here).
    pub(crate) writer_free: EventWord,
    _pad_wf: [u8; 112],
    /// MPMC: event count "reader-stream slot free" (consumers waiting for it sleep here).
    pub(crate) reader_free: EventWord,
    _pad_rf: [u8; 112],
    /// SPSC: the position the consumer has read up to, through the last record it
    /// was handed (noted at every record; `head` itself is published in batches). If
    /// the consumer dies, the recovery publishes it as `head`, so nothing it received
    /// is read again. On a line of its own: the producer reads the consumer's endpoint
    /// slot at every send, and must not find it written at every receive.
    pub(crate) spsc_read_to: AtomicU64,
    _reserved1: [AtomicU64; 15],
    /// The pid namespaces (inodes of `/proc/<pid>/ns/pid`) of the endpoints that have
    /// attached, in the order they first came; never cleared. A slot word names its
    /// holder's namespace by 1 + its index here, so that the pid and its namespace are
    /// installed in one compare-exchange. Entry 0 is a free entry.
    pub(crate) pid_namespaces: [AtomicU64; PID_NAMESPACES],
    _reserved1b: AtomicU64,
    /// Event count "data available": epoch (the futex word), then waiter count.
    pub(crate) data_ready: EventWord,
    _pad1: [u8; 112],
    /// Event count "space available".
    pub(crate) space_ready: EventWord,
    _pad2: [u8; 112],
    /// Producer's published position (bytes written since creation). Only grows.
    pub(crate) tail: AtomicU64,
    _pad3: [u8; 120],
    /// Consumer's published position (bytes released since creation). Only grows;
    /// `tail - head <= capacity`.
    pub(crate) head: AtomicU64,
    _pad4: [u8; 120],
    _reserved2: [u8; 512],
    pub(crate) endpoints: [EndpointSlot; ENDPOINT_SLOTS],
}

#[cfg(not(loom))]
mod layout_asserts {
    use super::*;
    use static_assertions::{const_assert, const_assert_eq};
    use std::mem::{align_of, offset_of, size_of};

    const_assert_eq!(size_of::<Header>(), HEADER_SIZE);
    const_assert!(align_of::<Header>() == 64);
    const_assert_eq!(size_of::<EndpointSlot>(), ENDPOINT_SLOT_SIZE);
    const_assert_eq!(ENDPOINT_SLOTS * ENDPOINT_SLOT_SIZE, HEADER_SIZE - 2048);
    const_assert_eq!(offset_of!(Header, magic), 0);
    const_assert_eq!(offset_of!(Header, version), 8);
    const_assert_eq!(offset_of!(Header, header_size), 12);
    const_assert_eq!(offset_of!(Header, layout_hash), 16);
    const_assert_eq!(offset_of!(Header, abi), 24);
    const_assert_eq!(offset_of!(Header, kind), 28);
    const_assert_eq!(offset_of!(Header, capacity), 32);
    const_assert_eq!(offset_of!(Header, cell_size), 40);
    const_assert_eq!(offset_of!(Header, max_record), 48);
    const_assert_eq!(offset_of!(Header, max_message), 56);
    const_assert_eq!(offset_of!(Header, flags), 64);
    const_assert_eq!(offset_of!(Header, creator_pid), 72);
    const_assert_eq!(offset_of!(Header, creator_uid), 76);
    const_assert_eq!(offset_of!(Header, creator_start_time), 80);
    const_assert_eq!(offset_of!(Header, data_offset), 88);
    const_assert_eq!(offset_of!(Header, segment_len), 96);
    const_assert_eq!(offset_of!(Header, max_endpoints), 104);
    const_assert_eq!(offset_of!(Header, producers), 112);
    const_assert_eq!(offset_of!(Header, consumers), 120);
    const_assert_eq!(offset_of!(Header, state), 128);
    const_assert_eq!(offset_of!(Header, sem_data_ready), 256);
    const_assert_eq!(offset_of!(Header, sem_space_ready), 320);
    const_assert_eq!(offset_of!(Header, sem_writer_free), 384);
    const_assert_eq!(offset_of!(Header, sem_reader_free), 448);
    const_assert_eq!(offset_of!(Header, writer_free), 512);
    const_assert_eq!(offset_of!(Header, reader_free), 640);
    const_assert_eq!(offset_of!(Header, spsc_read_to), 768);
    const_assert_eq!(offset_of!(Header, pid_namespaces), 896);
    const_assert_eq!(offset_of!(Header, data_ready), 1024);
    const_assert_eq!(offset_of!(Header, space_ready), 1152);
    const_assert_eq!(offset_of!(Header, tail), 1280);
    const_assert_eq!(offset_of!(Header, head), 1408);
    const_assert_eq!(offset_of!(Header, endpoints), 2048);
    const_assert_eq!(offset_of!(EndpointSlot, word), 0);
    const_assert_eq!(offset_of!(EndpointSlot, generation), 8);
    const_assert_eq!(offset_of!(EndpointSlot, start_time), 16);
    const_assert_eq!(offset_of!(EndpointSlot, role), 24);
    const_assert_eq!(offset_of!(EndpointSlot, claim), 32);
    const_assert_eq!(offset_of!(EndpointSlot, claim_cells), 40);

    const_assert_eq!(offset_of!(EndpointSlot, holder_tag), 56);
    // Each cursor and event count has a 128-byte line of its own (two 64-byte lines,
    // so that adjacent-line prefetch does not pair them either).
    const_assert_eq!(offset_of!(Header, data_ready) % 128, 0);
    const_assert_eq!(offset_of!(Header, tail) % 128, 0);
    const_assert_eq!(offset_of!(Header, head) % 128, 0);
}

/// FNV-1a over the offset and size of every header field, so that two builds that
/// disagree on the layout (a field added without a version bump) refuse each other.
pub(crate) const fn layout_hash() -> u64 {
    #[cfg(not(loom))]
    {
        use std::mem::offset_of;
        let fields: [(usize, usize); 42] = [
            (offset_of!(Header, magic), 8),
            (offset_of!(Header, version), 4),
            (offset_of!(Header, header_size), 4),
            (offset_of!(Header, layout_hash), 8),
            (offset_of!(Header, abi), 4),
            (offset_of!(Header, kind), 4),
            (offset_of!(Header, capacity), 8),
            (offset_of!(Header, cell_size), 8),
            (offset_of!(Header, max_record), 8),
            (offset_of!(Header, max_message), 8),
            (offset_of!(Header, flags), 8),
            (offset_of!(Header, creator_pid), 4),
            (offset_of!(Header, creator_uid), 4),
            (offset_of!(Header, creator_start_time), 8),
            (offset_of!(Header, data_offset), 8),
            (offset_of!(Header, segment_len), 8),
            (offset_of!(Header, max_endpoints), 4),
            (offset_of!(Header, producers), 8),
            (offset_of!(Header, consumers), 8),
            (offset_of!(Header, state), 4),
            (offset_of!(Header, sem_data_ready), 64),
            (offset_of!(Header, sem_space_ready), 64),
            (offset_of!(Header, sem_writer_free), 64),
            (offset_of!(Header, sem_reader_free), 64),
            (offset_of!(Header, writer_free), 16),
            (offset_of!(Header, reader_free), 16),
            (offset_of!(Header, spsc_read_to), 8),
            (offset_of!(Header, pid_namespaces), PID_NAMESPACES * 8),
            (
                offset_of!(Header, endpoints),
                std::mem::size_of::<EndpointSlot>(),
            ),
            (ENDPOINT_SLOTS, 0),
            (
                offset_of!(EndpointSlot, start_time),
                offset_of!(EndpointSlot, role),
            ),
            (
                offset_of!(EndpointSlot, claim),
                offset_of!(EndpointSlot, claim_cells),
            ),
            (offset_of!(EndpointSlot, holder_tag), 8),
            (CELL_ENTRY_SIZE, 0),
            (offset_of!(Header, data_ready), 16),
            (offset_of!(Header, space_ready), 16),
            (offset_of!(Header, tail), 8),
            (offset_of!(Header, head), 8),
            (HEADER_SIZE, 0),
            // The record format is part of the layout too.
            (crate::frame::RECORD_HEADER, crate::frame::BEGIN_PREFIX),
            (crate::frame::FLAG_BITS as usize, 0),
            (crate::mpmc::CURSOR_FLAG_BITS as usize, 0),
        ];
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut i = 0;
        while i < fields.len() {
            let mut v = ((fields[i].0 as u64) << 32) | fields[i].1 as u64;
            let mut b = 0;
            while b < 8 {
                h ^= v & 0xff;
                h = h.wrapping_mul(0x0100_0000_01b3);
                v >>= 8;
                b += 1;
            }
            i += 1;
        }
        h
    }
    #[cfg(loom)]
    {
        0x5348_4d4c_414e_4531
    }
}

/// The ring parameters, read once from a header and validated. The protocol indexes
/// only with these private copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RingParams {
    pub(crate) kind: u32,
    /// Power of two, `MIN_CAPACITY..=MAX_CAPACITY`.
    pub(crate) capacity: usize,
    /// `capacity / 2`, at most 2^31; a multiple of 8.
    pub(crate) max_record: usize,
    pub(crate) max_message: u64,
    /// `Header::flags`, validated against `KNOWN_FLAGS`.
    pub(crate) flags: u64,
    /// MPMC: bytes per cell, a power of two in `MIN_CELL_SIZE..=MAX_CELL_SIZE`, at most
    /// `capacity / 2`. 0 for SPSC.
    pub(crate) cell_size: usize,
    /// 2 for SPSC; 2..=`ENDPOINT_SLOTS` for MPMC.
    pub(crate) max_endpoints: u32,
}

impl RingParams {
    /// Checks options and derives the parameters of a new ring.
    pub(crate) fn new(
        kind: u32,
        capacity: usize,
        max_message: u64,
        flags: u64,
    ) -> Result<Self, String> {
        if !capacity.is_power_of_two() {
            return Err(format!("capacity {capacity} is not a power of two"));
        }
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(format!(
                "capacity {capacity} is outside {MIN_CAPACITY}..={MAX_CAPACITY}"
            ));
        }
        Ok(RingParams {
            kind,
            capacity,
            max_record: (capacity / 2).min(1 << 31),
            max_message,
            flags,
            cell_size: 0,
            max_endpoints: 2,
        })
    }

    /// Checks options and derives the parameters of a new MPMC ring: `capacity` bytes
    /// of cells of `cell_size` bytes, for at most `max_endpoints` endpoints at once.
    pub(crate) fn new_mpmc(
        capacity: usize,
        cell_size: usize,
        max_endpoints: usize,
        max_message: u64,
        flags: u64,
    ) -> Result<Self, String> {
        let mut p = RingParams::new(KIND_MPMC, capacity, max_message, flags)?;
        check_cells(capacity, cell_size)?;
        if !(2..=ENDPOINT_SLOTS).contains(&max_endpoints) {
            return Err(format!(
                "max_endpoints {max_endpoints} is outside 2..={ENDPOINT_SLOTS}"
            ));
        }
        p.cell_size = cell_size;
        p.max_endpoints = max_endpoints as u32;
        Ok(p)
    }

    /// MPMC: the number of cells (0 for SPSC).
    pub(crate) fn cells(&self) -> usize {
        self.capacity.checked_div(self.cell_size).unwrap_or(0)
    }

    /// Bytes after the header: the data region, then (MPMC) the cell table.
    pub(crate) fn region_len(&self) -> usize {
        self.capacity + self.cells() * CELL_ENTRY_SIZE
    }

    /// The length of the segment: header, data region, cell table.
    pub(crate) fn segment_len(&self) -> usize {
        HEADER_SIZE + self.region_len()
    }

    /// Whether the ring's event counts use asymmetric fences.
    pub(crate) fn asymmetric_fences(&self) -> bool {
        self.flags & FLAG_ASYMMETRIC_FENCES != 0
    }

    /// Whether the ring's sleepers use the header's semaphores instead of futexes.
    pub(crate) fn semaphores(&self) -> bool {
        self.flags & NOTIFIER_MASK == NOTIFIER_SEMAPHORE
    }
}

/// Checks an MPMC cell size against the capacity.
fn check_cells(capacity: usize, cell_size: usize) -> Result<(), String> {
    if !cell_size.is_power_of_two() || !(MIN_CELL_SIZE..=MAX_CELL_SIZE).contains(&cell_size) {
        return Err(format!(
            "cell size {cell_size} is not a power of two in {MIN_CELL_SIZE}..={MAX_CELL_SIZE}"
        ));
    }
    if cell_size > capacity / 2 {
        return Err(format!(
            "cell size {cell_size} is more than half the capacity {capacity} (a ring needs at \
             least two cells)"
        ));
    }
    if capacity / cell_size > MAX_CELLS {
        return Err(format!(
            "capacity {capacity} / cell size {cell_size} is more than {MAX_CELLS} cells"
        ));
    }
    Ok(())
}

/// Why a header did not validate: the field, the value, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderFault {
    Incompatible {
        field: &'static str,
        found: u64,
        expected: String,
    },
    Corrupt {
        field: &'static str,
        value: u64,
        reason: &'static str,
    },
    /// No shmlane magic (`found`: the word where it goes), and not a creator's zeros.
    NotARing {
        found: u64,
    },
    NotReady {
        state: u32,
    },
}

impl Header {
    /// Writes every field of a zeroed header and publishes it with `state = READY`.
    /// `table`: the cell table of an MPMC ring, whose stamps start at their positions
    /// (cell `i` free for the producer of position `i`).
    pub(crate) fn init(
        &self,
        params: &RingParams,
        segment_len: u64,
        table: Option<crate::region::CellTable>,
    ) {
        if let Some(table) = table {
            for i in 0..table.cells() as u64 {
                table.stamp(i).store(i, Ordering::Relaxed);
            }
        }
        // Relaxed stores: nobody may read them before the Release store of READY.
        self.state.store(STATE_INIT, Ordering::Relaxed);
        self.magic.store(MAGIC, Ordering::Relaxed);
        self.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        self.header_size
            .store(HEADER_SIZE as u32, Ordering::Relaxed);
        self.layout_hash.store(layout_hash(), Ordering::Relaxed);
        self.abi.store(ABI, Ordering::Relaxed);
        self.kind.store(params.kind, Ordering::Relaxed);
        self.capacity
            .store(params.capacity as u64, Ordering::Relaxed);
        self.cell_size
            .store(params.cell_size as u64, Ordering::Relaxed);
        self.max_endpoints
            .store(params.max_endpoints, Ordering::Relaxed);
        self.max_record
            .store(params.max_record as u64, Ordering::Relaxed);
        self.max_message
            .store(params.max_message, Ordering::Relaxed);
        self.flags.store(params.flags, Ordering::Relaxed);
        self.creator_pid
            .store(std::process::id(), Ordering::Relaxed);
        self.creator_uid
            .store(crate::sys::user::uid(), Ordering::Relaxed);
        self.creator_start_time.store(
            crate::sys::procfs::own_start_time().unwrap_or(0),
            Ordering::Relaxed,
        );
        self.data_offset
            .store(HEADER_SIZE as u64, Ordering::Relaxed);
        self.segment_len.store(segment_len, Ordering::Relaxed);
        self.tail.store(0, Ordering::Relaxed);
        self.head.store(0, Ordering::Relaxed);
        if params.semaphores() {
            for slot in [
                &self.sem_data_ready,
                &self.sem_space_ready,
                &self.sem_writer_free,
                &self.sem_reader_free,
            ] {
                // SAFETY: nobody uses the slot before READY is published (below).
                unsafe { slot.init() };
            }
        }
        // SYNC POINT: pairs with the Acquire load of `state` in `validate`; every field
        // above is visible to whoever sees READY.
        self.state.store(STATE_READY, Ordering::Release);
    }

    /// Reads `state` with Acquire (pairs with the Release store in `init`).
    pub(crate) fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }

    /// Validates a READY header against what this build and the caller expect.
    /// `file_len` is the size of the backing object from fstat.
    pub(crate) fn validate(
        &self,
        expected_kind: u32,
        file_len: u64,
    ) -> Result<RingParams, HeaderFault> {
        let state = self.state();
        // The magic first: a segment without it is no ring (whatever its other bytes
        // say), except the zeros a creator leaves between sizing its file and writing
        // the magic, which it does next (`segment::posix::create`), or, on
        // hugetlbfs, at `init`: the caller waits for it, or finds it gone.
        let magic = self.magic.load(Ordering::Relaxed);
        if magic != MAGIC {
            if magic == 0 && state <= STATE_INIT {
                return Err(HeaderFault::NotReady { state });
            }
            return Err(HeaderFault::NotARing { found: magic });
        }
        if state > STATE_POISONED {
            return Err(HeaderFault::Corrupt {
                field: "state",
                value: state.into(),
                reason: "not a known segment state",
            });
        }
        if state != STATE_READY {
            return Err(HeaderFault::NotReady { state });
        }
        let version = self.version.load(Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return Err(HeaderFault::Incompatible {
                field: "version",
                found: version.into(),
                expected: LAYOUT_VERSION.to_string(),
            });
        }
        let header_size = self.header_size.load(Ordering::Relaxed);
        if header_size as usize != HEADER_SIZE {
            return Err(HeaderFault::Incompatible {
                field: "header_size",
                found: header_size.into(),
                expected: HEADER_SIZE.to_string(),
            });
        }
        let hash = self.layout_hash.load(Ordering::Relaxed);
        if hash != layout_hash() {
            return Err(HeaderFault::Incompatible {
                field: "layout_hash",
                found: hash,
                expected: format!("{:#x}", layout_hash()),
            });
        }
        let abi = self.abi.load(Ordering::Relaxed);
        if abi != ABI {
            return Err(HeaderFault::Incompatible {
                field: "abi (word size and endianness)",
                found: abi.into(),
                expected: format!("{ABI:#x}"),
            });
        }
        let kind = self.kind.load(Ordering::Relaxed);
        if kind != expected_kind {
            return Err(match kind {
                KIND_SPSC | KIND_MPMC => HeaderFault::Incompatible {
                    field: "kind",
                    found: kind.into(),
                    expected: kind_name(expected_kind).to_string(),
                },
                _ => HeaderFault::Corrupt {
                    field: "kind",
                    value: kind.into(),
                    reason: "not a known ring kind",
                },
            });
        }
        let capacity = self.capacity.load(Ordering::Relaxed);
        if !capacity.is_power_of_two()
            || capacity < MIN_CAPACITY as u64
            || capacity > MAX_CAPACITY as u64
        {
            return Err(HeaderFault::Corrupt {
                field: "capacity",
                value: capacity,
                reason: "not a power of two within the supported range",
            });
        }
        let data_offset = self.data_offset.load(Ordering::Relaxed);
        if data_offset != HEADER_SIZE as u64 {
            return Err(HeaderFault::Corrupt {
                field: "data_offset",
                value: data_offset,
                reason: "the data region must start right after the 4096-byte header",
            });
        }
        let cell_size = self.cell_size.load(Ordering::Relaxed);
        let cells = match kind {
            KIND_SPSC if cell_size != 0 => {
                return Err(HeaderFault::Corrupt {
                    field: "cell_size",
                    value: cell_size,
                    reason: "an SPSC ring has no cells",
                })
            }
            KIND_SPSC => 0,
            _ => {
                if check_cells(capacity as usize, cell_size as usize).is_err() {
                    return Err(HeaderFault::Corrupt {
                        field: "cell_size",
                        value: cell_size,
                        reason: "not a power of two in 8..=2^20 and at most capacity / 2, \
                                 or more than 2^31 cells",
                    });
                }
                capacity / cell_size
            }
        };
        let max_endpoints = self.max_endpoints.load(Ordering::Relaxed);
        let endpoints_ok = match kind {
            KIND_SPSC => max_endpoints == 2,
            _ => (2..=ENDPOINT_SLOTS as u32).contains(&max_endpoints),
        };
        if !endpoints_ok {
            return Err(HeaderFault::Corrupt {
                field: "max_endpoints",
                value: max_endpoints.into(),
                reason: "must be 2 for SPSC, 2..=32 for MPMC",
            });
        }
        let region_len = capacity + cells * CELL_ENTRY_SIZE as u64;
        let segment_len = self.segment_len.load(Ordering::Relaxed);
        if segment_len != data_offset + region_len {
            // The creator sized the file to segment_len: if that still holds, the
            // capacity is what changed.
            return Err(if segment_len == file_len {
                HeaderFault::Corrupt {
                    field: "capacity",
                    value: capacity,
                    reason: "header size + capacity (+ cell table) does not equal the segment \
                             length",
                }
            } else {
                HeaderFault::Corrupt {
                    field: "segment_len",
                    value: segment_len,
                    reason: "does not equal header size + capacity (+ cell table)",
                }
            });
        }
        if file_len < segment_len {
            return Err(HeaderFault::Corrupt {
                field: "capacity",
                value: capacity,
                reason: "the segment file is smaller than header + capacity",
            });
        }
        let capacity = capacity as usize;
        let expected_max_record = (capacity / 2).min(1 << 31);
        let max_record = self.max_record.load(Ordering::Relaxed);
        if max_record != expected_max_record as u64 {
            return Err(HeaderFault::Corrupt {
                field: "max_record",
                value: max_record,
                reason: "must be capacity / 2 (at most 2^31)",
            });
        }
        let flags = self.flags.load(Ordering::Relaxed);
        if flags & !(KNOWN_FLAGS | NOTIFIER_MASK) != 0 || flags & NOTIFIER_MASK > NOTIFIER_SEMAPHORE
        {
            return Err(HeaderFault::Incompatible {
                field: "flags",
                found: flags,
                expected: format!(
                    "only bits of {KNOWN_FLAGS:#x}, and notifier kind 0 (futex) or 1 (semaphore)"
                ),
            });
        }
        let max_message = self.max_message.load(Ordering::Relaxed);
        Ok(RingParams {
            kind,
            capacity,
            max_record: expected_max_record,
            max_message,
            flags,
            cell_size: cell_size as usize,
            max_endpoints,
        })
    }
}

pub(crate) fn kind_name(kind: u32) -> &'static str {
    match kind {
        KIND_SPSC => "spsc",
        KIND_MPMC => "mpmc",
        _ => "unknown",
    }
}

#[cfg(loom)]
impl Header {
    /// A zeroed header on the heap, with loom's atomics.
    pub(crate) fn new_zeroed() -> Self {
        fn z64() -> AtomicU64 {
            AtomicU64::new(0)
        }
        fn z32() -> AtomicU32 {
            AtomicU32::new(0)
        }
        fn slot() -> EndpointSlot {
            EndpointSlot {
                word: z64(),
                generation: z64(),
                start_time: z64(),
                role: z32(),
                _reserved0: z32(),
                claim: z64(),
                claim_cells: z64(),
                _reserved1: z64(),
                holder_tag: z64(),
            }
        }
        Header {
            magic: z64(),
            version: z32(),
            header_size: z32(),
            layout_hash: z64(),
            abi: z32(),
            kind: z32(),
            capacity: z64(),
            cell_size: z64(),
            max_record: z64(),
            max_message: z64(),
            flags: z64(),
            creator_pid: z32(),
            creator_uid: z32(),
            creator_start_time: z64(),
            data_offset: z64(),
            segment_len: z64(),
            max_endpoints: z32(),
            _reserved0a: z32(),
            producers: z64(),
            consumers: z64(),
            state: z32(),
            _pad0: [0; 124],
            sem_data_ready: SemSlot::zeroed(),
            sem_space_ready: SemSlot::zeroed(),
            sem_writer_free: SemSlot::zeroed(),
            sem_reader_free: SemSlot::zeroed(),
            writer_free: EventWord::new(),
            _pad_wf: [0; 112],
            reader_free: EventWord::new(),
            _pad_rf: [0; 112],
            spsc_read_to: z64(),
            _reserved1: std::array::from_fn(|_| z64()),
            pid_namespaces: std::array::from_fn(|_| z64()),
            _reserved1b: z64(),
            endpoints: std::array::from_fn(|_| slot()),
            data_ready: EventWord::new(),
            _pad1: [0; 112],
            space_ready: EventWord::new(),
            _pad2: [0; 112],
            tail: z64(),
            _pad3: [0; 120],
            head: z64(),
            _pad4: [0; 120],
            _reserved2: [0; 512],
        }
    }
}
