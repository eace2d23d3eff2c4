//! The MPMC fuzz targets, `mpmc_*` in `fuzz/` (see the parent module).
//!
//! Each entry point takes arbitrary bytes and panics only when shmlane misbehaves:
//!
//! - [`cell_decode`]: arbitrary record words against `decode_cell`, then arbitrary
//!   stamps, record words and cursors in the cell table of a ring whose producers are
//!   gone, read by a consumer until it stops. Every read returns a message or an
//!   error, never panics, and the reads end: a released cell's stamp is its position
//!   plus N, which never reads as published for the next lap, so one table yields at
//!   most N records.
//! - [`ring_ops`]: an arbitrary sequence of operations of several producers and
//!   consumers (`try_clone`, dropped, re-attached) on one heap ring, in one thread:
//!   sends, grants committed or dropped, stream writers fed and finished or dropped,
//!   receives of every kind, stream readers read in part and dropped. Grants, writers
//!   and readers stay open while other endpoints run (nested up to `MAX_DEPTH`), so
//!   claims interleave as they do between processes. Checked against a model that
//!   simulates the ring record by record (`Sim`: cursors, stream slots, who holds
//!   which record, endpoint table and attach counters) and predicts every result;
//!   after every step the segment's cursors, holders, counters, endpoint states,
//!   stamps and record words are compared with it. On top, whatever the model says:
//!   every message delivered is intact and delivered once, each consumer sees each
//!   producer's messages in order, and at the end every complete message was taken
//!   exactly once and the consumers drain to `Disconnected`.
//! - [`hostile_peer`]: `ring_ops` with a fuzzer-driven peer that writes arbitrary
//!   values into the cursors (holder bits included), stamps, record words, attach
//!   counters, endpoint states, event counts and payload bytes between the steps.
//!   From its first write on, results are checked for sanity only: no panic, no
//!   out-of-bounds access, no hang (only calls that cannot wait are made).
//! - [`header_open`]: a valid MPMC header with arbitrary fields (or bytes) written over
//!   it, in a memfd or a POSIX shared-memory object of an arbitrary length, opened
//!   as the library opens a segment: an error, or parameters that fit the file and a
//!   ring that works (checked against the model when the header describes a clean,
//!   empty ring).
//!
//! Nothing here waits: endpoints use `try_` and zero-timeout calls, and blocking calls
//! only where the model says they return at once.
//!
//! On a corrupted ring, blocking receives are made with every producer away
//! (`producers_away`) and the reader-stream slot freed if an endpoint holds it
//! (that endpoint would rightly be waited for); a mark of a slot that holds no
//! endpoint is left for the library to get past. Two library bugs these targets found
//! (`try_send` in fragments waiting for consumers' releases; a blocking receive
//! waiting for ever behind a reader-slot mark of no endpoint) are fixed; their
//! reproducers are the tests of `found_bugs` below and the `crash-*` inputs of
//! `fuzz/seeds/`.
//!
//! The seeds of each target are in [`TARGETS`](super::TARGETS).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use super::common::{
    assert_consumers_gone, assert_drained, check_len, check_validated, clear_flags_miri_lacks,
    commit_prefix, content, from_try, heap_segment, read_all, read_until_end, ring_flags,
    scribble_event_word, scribble_payload, timeout_as_full, touch, trace, wait_strategy,
    write_whole, Env, HField, Input, CAPACITIES, MAX_FUZZ_MESSAGE, MAX_OPEN_CAPACITY,
};
use crate::error::{RecvError, RecvTimeoutError, SendError, SendTimeoutError, TrySendError};
use crate::frame::{
    cells_for, decode_cell, encode_cell, CellRecord, BEGIN_PREFIX, FLAGS_ABORTED, FLAGS_WHOLE,
    FLAG_ABORT, FLAG_BEGIN, FLAG_END, FLAG_PAD,
};
use crate::header::{
    holder_word, slot_word, word_pid, word_state, Header, RingParams, ENDPOINT_ATTACHED,
    ENDPOINT_DEAD, ENDPOINT_DETACHED, ENDPOINT_RECOVERING, ENDPOINT_SLOTS, ENDPOINT_VACANT,
    HEADER_SIZE, KIND_MPMC, ROLE_PRODUCER, SLOT_COUNTED,
};
use crate::message::{close_open_message, Mode};
use crate::mpmc::{Consumer, Producer};
#[cfg(miri)]
use crate::segment::heap::HeapSegment;
use crate::segment::Segment;
use crate::stream::MessageWriter;
use crate::sync::Ordering;
use crate::wait::Wait;
use crate::Error;

/// Producer and consumer handles the operation targets juggle.
const MAXP: usize = 4;
const MAXC: usize = 4;
/// How deep grants, writers and readers nest (each holds its endpoint while the
/// steps inside it run).
const MAX_DEPTH: u32 = 4;
/// Bits of `tail` / `head` below the stream slot (as in `mpmc.rs`).
const POS_BITS: u32 = 64 - crate::mpmc::CURSOR_FLAG_BITS;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
/// Start positions stay below this, far from the 2^55 at which the library calls a
/// cursor corrupt.
const MAX_START: u64 = 1 << 54;
/// The attach counter of a role of which one endpoint came and left.
const ALL_GONE: u64 = 1 << 32;

// ---------------------------------------------------------------------------------
// Rings
// ---------------------------------------------------------------------------------

/// The parameters of a ring an input asks for.
#[derive(Clone, Copy, Debug)]
struct Spec {
    capacity: usize,
    cell_size: usize,
    max_endpoints: usize,
    max_message: u64,
    flags: u64,
    /// Position of `head` and `tail` (an arbitrary lap and cell), before anyone
    /// attaches.
    start: u64,
    wait: Wait,
}

impl Spec {
    /// Input: a selector byte (capacity, notifier, max_message, fences, start), the
    /// cell size, the endpoint limit, the wait strategy, then the fields the selector
    /// asks for.
    fn read(input: &mut Input<'_>, capacities: &[usize]) -> Spec {
        let sel = input.u8();
        let capacity = capacities[usize::from(sel) % capacities.len()];
        // Cells of 8 << k bytes, at most capacity / 2.
        let k = u32::from(input.u8()) % ((capacity / 16).trailing_zeros() + 1);
        let max_endpoints = [2usize, 3, 4, 5, 6, 8, 16, 32][usize::from(input.u8() % 8)];
        let wait = wait_strategy(input.u8());
        let max_message = if sel & 0x10 != 0 {
            u64::from(input.u16())
        } else {
            MAX_FUZZ_MESSAGE
        };
        let flags = ring_flags(sel & 0x20 != 0, sel & 0x08 != 0);
        let start = if sel & 0x40 != 0 {
            input.u64() % MAX_START
        } else {
            0
        };
        Spec {
            capacity,
            cell_size: 8 << k,
            max_endpoints,
            max_message,
            flags,
            start,
            wait,
        }
    }

    fn params(&self) -> RingParams {
        RingParams::new_mpmc(
            self.capacity,
            self.cell_size,
            self.max_endpoints,
            self.max_message,
            self.flags,
        )
        .expect("valid MPMC parameters")
    }
}

/// A heap MPMC ring for `spec` with no endpoint attached, as `mpmc::channel` makes it,
/// its cursors and stamps moved to `spec.start`.
fn heap_ring(spec: &Spec) -> (Arc<Segment>, RingParams) {
    let params = spec.params();
    let seg = heap_segment(&params);
    if spec.start != 0 {
        set_start(&seg, &params, spec.start);
    }
    (seg, params)
}

/// Moves an empty ring nobody is attached to to position `start`: cursors there, and
/// every cell free for its position in `start..start + N`, as `Header::init` leaves
/// them for position 0.
fn set_start(seg: &Segment, params: &RingParams, start: u64) {
    let h = seg.header();
    h.tail.store(start, Ordering::Relaxed);
    h.head.store(start, Ordering::Relaxed);
    let table = seg.cell_table(params);
    for q in start..start + params.cells() as u64 {
        table.stamp(q).store(q, Ordering::Relaxed);
    }
}

/// The fragment payload of a producer of a ring (as `mpmc::Producer::attach`).
fn fragment_payload(params: &RingParams) -> usize {
    (params.capacity / 4)
        .max(params.cell_size)
        .max(2 * BEGIN_PREFIX)
        .min(params.max_record)
}

/// A receive result in one form: `Timeout` stands for "would block" (`Empty`).
type Got = Result<Vec<u8>, RecvTimeoutError>;

/// What a send-like call did, in one form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    Ok,
    Full,
    Disconnected,
    /// `TooLarge { max }` (the length is the message's).
    TooLarge(u64),
    Timeout,
    /// The model says the call would wait (the harness does not make it).
    Hang,
    Corrupt,
}

/// A `try_` send's result as [`Sent`] (a `TooLarge` must name `len`).
fn sent_try(r: Result<(), TrySendError>, len: usize) -> Sent {
    match r {
        Ok(()) => Sent::Ok,
        Err(TrySendError::Full) => Sent::Full,
        Err(TrySendError::Disconnected) => Sent::Disconnected,
        Err(TrySendError::TooLarge { len: l, max }) => {
            assert_eq!(l, len as u64, "TooLarge names the message length");
            Sent::TooLarge(max)
        }
        Err(TrySendError::Corrupt(_)) => Sent::Corrupt,
    }
}

/// A timed send's result as [`Sent`]: `Timeout`, or as [`sent_try`].
fn sent_timeout(r: Result<(), SendTimeoutError>, len: usize) -> Sent {
    match r {
        Err(SendTimeoutError::Timeout) => Sent::Timeout,
        r => sent_try(r.map_err(timeout_as_full), len),
    }
}

/// A blocking send's result as [`Sent`] (it has no `Full` or `Timeout`).
fn sent_blocking(r: Result<(), SendError>, len: usize) -> Sent {
    sent_try(r.map_err(TrySendError::from), len)
}

// ---------------------------------------------------------------------------------
// cell_decode
// ---------------------------------------------------------------------------------

/// What `decode_cell` must guarantee for any word at any index of any table.
fn check_decode_cell(word: u64, index: u64, n: u64, shift: u32, max_payload: usize) {
    let len = (word & 0xffff_ffff) as usize;
    match decode_cell(word, index, n, shift, max_payload) {
        Ok(CellRecord::Pad { cells }) => {
            assert!(
                cells >= 1 && index + cells <= n,
                "pad of {cells} at {index}/{n}"
            );
            assert_eq!(cells, len as u64);
            assert_eq!(word >> 32, u64::from(crate::frame::FLAG_VALID | FLAG_PAD));
        }
        Ok(CellRecord::Data { rec, cells }) => {
            assert_eq!(word >> 40, 0);
            assert_eq!(rec.len(), len);
            assert!(len <= max_payload, "{len} > {max_payload}");
            assert_eq!(cells, cells_for(len, shift));
            assert!(
                cells >= 1 && index + cells <= n,
                "{cells} cells at {index}/{n}"
            );
            assert!(rec.content_len() + rec.prefix_len() == len);
            let flags = rec.flags();
            assert!(
                matches!(flags, 0 | FLAG_END | FLAGS_WHOLE)
                    || (flags == FLAG_BEGIN && len >= BEGIN_PREFIX)
                    || (flags == FLAGS_ABORTED && len == 0),
                "flags {flags:#x} with length {len}"
            );
        }
        Err(c) => assert_eq!(c.value, word),
    }
}

/// Arbitrary record words against `decode_cell`, then arbitrary stamps, record words
/// and cursors in the cell table of a ring whose producers are gone, read by a
/// consumer until it stops. See the module docs.
///
/// Input: a count of raw `(word, index, table shape)` triples for `decode_cell`; the
/// ring's `Spec`; the `head` cursor (structured or raw); the producers' attach
/// counter (gone, or raw); up to 31 read-kind bytes; then, cell by cell from `head`
/// on, a stamp and a record word, each structured or raw (cells the input does not
/// reach stay free).
pub fn cell_decode(data: &[u8]) {
    let mut input = Input::new(data);
    for _ in 0..input.u8() % 8 {
        let word = input.u64();
        let shift = 3 + u32::from(input.u8()) % 18;
        let n = 2u64 << (input.u8() % 31);
        let index = input.u64() % n;
        let max_payload = input.below(1 << 31);
        check_decode_cell(word, index, n, shift, max_payload);
    }
    let spec = Spec::read(&mut input, &[64, 128, 256, 512, 1024, 4096, 1 << 16]);
    let (seg, params) = heap_ring(&Spec { start: 0, ..spec });
    let n = params.cells() as u64;
    let shift = params.cell_size.trailing_zeros();
    let sel = input.u8();
    let head = match sel % 4 {
        // A clean position (the consumer attaches in slot 0: holder 1 is its own).
        0 | 1 => spec.start | u64::from(input.u8() % 3) << POS_BITS,
        2 => spec.start | u64::from(input.u8()) << POS_BITS,
        _ => input.u64(),
    };
    let producers = if sel & 0x10 != 0 {
        input.u64()
    } else {
        ALL_GONE
    };
    let n_ops = usize::from(input.u8() % 32);
    let ops = input.take(n_ops);
    let h = seg.header();
    let pos = head & POS_MASK;
    h.head.store(head, Ordering::Relaxed);
    h.tail.store(pos.wrapping_add(n), Ordering::Relaxed);
    h.producers.store(producers, Ordering::Relaxed);
    let table = seg.cell_table(&params);
    for q in pos..pos.saturating_add(n) {
        table.stamp(q).store(q, Ordering::Relaxed);
    }
    // The table, cell by cell from `head` on.
    let mut q = pos;
    while !input.is_empty() && q < pos.saturating_add(n) {
        let sel = input.u8();
        let stamp = match sel % 8 {
            0..=2 => q + 1,
            3 => q,
            4 => q.wrapping_add(n),
            5 => q.wrapping_sub(n),
            6 => q.wrapping_add(1).wrapping_sub(n),
            _ => input.u64(),
        };
        let word = match (sel >> 3) % 4 {
            0 | 1 => {
                let flags = [
                    FLAGS_WHOLE,
                    FLAG_BEGIN,
                    0,
                    FLAG_END,
                    FLAGS_ABORTED,
                    FLAG_PAD,
                ][usize::from(input.u8() % 6)];
                let len = match input.u8() % 4 {
                    0 => u32::from(input.u8()),
                    1 => u32::from(input.u16()) % (params.max_record as u32 + 2),
                    2 => (input.u32() % (n as u32 + 1)).max(1),
                    _ => input.u32(),
                };
                encode_cell(len, flags)
            }
            2 => input.u64() & 0xff_ffff_ffff,
            _ => input.u64(),
        };
        table.stamp(q).store(stamp, Ordering::Relaxed);
        table.record(q).store(word, Ordering::Relaxed);
        check_decode_cell(word, q & (n - 1), n, shift, params.max_record);
        // A few payload bytes: the BEGIN prefix (the total length) of this cell.
        if sel & 0x80 != 0 {
            let total = match input.u8() % 3 {
                0 => u64::from(input.u16()),
                1 => u64::from(input.u32()),
                _ => input.u64(),
            };
            let index = ((q & (n - 1)) << shift) as usize;
            // SAFETY: no endpoint is attached: nothing else reads or writes the
            // region; `index + 8 <= capacity` (cells are at least 8 bytes).
            unsafe { seg.data().write(index, &total.to_le_bytes()) };
        }
        q += 1;
    }

    let Ok(mut rx) = Consumer::attach(seg.clone(), params, spec.wait) else {
        // Cursors beyond 2^55 or holders beyond the endpoint limit.
        return;
    };
    // Blocking calls end only if nobody else holds the reader-stream slot and every
    // producer of the consumer's is gone: then an empty ring reads as Disconnected.
    // So the one producer the counter says there was leaves again now, after the
    // consumer came (one that left before it attached is not its own).
    let may_block = head >> POS_BITS <= 1 && producers == ALL_GONE;
    if may_block {
        h.producers.store(2 << 32, Ordering::Release);
    }
    // Each read that makes progress takes at least one record, and the table holds at
    // most N that read as published (see the module docs).
    let ring = format!("a table of {n} cells");
    read_until_end(
        &mut rx,
        ops,
        may_block,
        params.max_record,
        n as usize + 8,
        &ring,
    );
}

// ---------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------

/// Attach-counter index of a role.
const P: usize = 0;
const C: usize = 1;

/// A record of the ring, from its claim to its release.
#[derive(Clone, Copy, Debug)]
struct Rec {
    cells: u64,
    kind: Kind,
    st: St,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Padding (also the placeholder of a claimed record).
    Pad,
    /// `len` payload bytes with `flags`: content bytes `offset..` of message `msg`
    /// (an ABORT names no message: `usize::MAX`).
    Data {
        flags: u8,
        len: usize,
        msg: usize,
        offset: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    /// Claimed by a producer, not published.
    Claimed,
    Published,
    /// Taken by the consumer of this key, not released.
    Taken(usize),
}

/// A producer the model knows.
#[derive(Clone, Debug)]
struct PModel {
    key: usize,
    /// A message in fragments was begun and not closed (`open_message`).
    open: bool,
}

/// A consumer the model knows.
#[derive(Clone, Debug)]
struct CModel {
    key: usize,
    /// Position of the record in hand.
    in_hand: Option<u64>,
    partial: Option<MPartial>,
    max_message: u64,
    /// Per producer key, the sequence number of the last message delivered to it.
    last_seq: Vec<(usize, u64)>,
}

/// A message `recv` has partly reassembled.
#[derive(Clone, Debug)]
struct MPartial {
    msg: usize,
    total: u64,
    buf: Vec<u8>,
}

/// A message sent (or begun): who sent it, and its content.
#[derive(Debug)]
struct Msg {
    producer: usize,
    seq: u64,
    content: Vec<u8>,
}

/// What `next_record` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Ready(u64),
    /// Nothing now (empty, or the reader-stream slot is another's).
    Wait,
    Disconnected,
    /// We hold the reader-stream slot, nothing is claimed after `head`, and no producer
    /// holds the writer slot: the message we read can never go on (its producer was
    /// dropped without room for its ABORT). The reader slot is given up.
    Truncated,
}

/// What a claim found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claimed {
    Ready(u64),
    Full,
    Corrupt,
}

/// A stream writer, as the model sees it (see `stream.rs`).
#[derive(Clone, Debug)]
struct WModel {
    msg: usize,
    total: usize,
    written: usize,
    /// The fragment claimed and being filled: position, content room, content bytes
    /// filled, prefix, flags, content offset of its first byte.
    cur: Option<OFrag>,
    began: bool,
}

#[derive(Clone, Copy, Debug)]
struct OFrag {
    pos: u64,
    room: usize,
    filled: usize,
    prefix: usize,
    flags: u8,
    offset: usize,
}

/// A stream reader, as the model sees it.
#[derive(Clone, Debug)]
struct RModel {
    msg: usize,
    total: u64,
    received: u64,
    prefix: Vec<u8>,
    prefix_read: usize,
    cur: Option<RFrag>,
    done: bool,
}

#[derive(Clone, Copy, Debug)]
struct RFrag {
    pos: u64,
    msg: usize,
    offset: usize,
    len: usize,
    read: usize,
    flags: u8,
}

/// What one read of a stream reader gives.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ReadOut {
    Bytes(Vec<u8>),
    /// `Ok(0)`: the end of the message.
    End,
    /// An error of this kind.
    Err(io::ErrorKind),
    /// The read would wait for a record (the harness does not make it).
    Wait,
}

/// The ring, simulated record by record: what the library must do, written without
/// stamps, masks or wrapping. Cloned to predict a call before it is made.
#[derive(Clone, Debug)]
struct Sim {
    n: u64,
    shift: u32,
    max_payload: usize,
    frag: usize,
    tail: u64,
    head: u64,
    /// Key of the producer holding the writer-stream slot.
    writer: Option<usize>,
    /// Key of the consumer holding the reader-stream slot.
    reader: Option<usize>,
    /// Every record claimed and not released, by position.
    recs: BTreeMap<u64, Rec>,
    /// The endpoint table's states (the first `max_endpoints` entries).
    table: Vec<u32>,
    /// The attach counters of producers and consumers, as words.
    counts: [u64; 2],
    /// Per endpoint key, the other role's count when it attached (`all_gone`).
    peers_then: Vec<u64>,
    prods: Vec<Option<PModel>>,
    cons: Vec<Option<CModel>>,
    /// Endpoint-table slot of every key.
    slot_of: Vec<usize>,
    /// Per message: complete (every record published), times its first record was
    /// taken by a consumer, times it was delivered whole.
    complete: Vec<bool>,
    taken: Vec<u32>,
    delivered: Vec<u32>,
    /// Next sequence number per producer key.
    seq: Vec<u64>,
}

impl Sim {
    /// The model of a ring nobody is attached to, as the header says (cursors,
    /// counters and endpoint states read from it; the ring must be empty).
    fn new(seg: &Segment, params: &RingParams) -> Sim {
        let h = seg.header();
        let tail = h.tail.load(Ordering::Relaxed);
        let head = h.head.load(Ordering::Relaxed);
        assert_eq!(tail, head, "the model starts on an empty ring");
        Sim {
            n: params.cells() as u64,
            shift: params.cell_size.trailing_zeros(),
            max_payload: params.max_record,
            frag: fragment_payload(params),
            tail: tail & POS_MASK,
            head: head & POS_MASK,
            writer: None,
            reader: None,
            recs: BTreeMap::new(),
            table: h.endpoints[..params.max_endpoints as usize]
                .iter()
                .map(|s| s.state())
                .collect(),
            counts: [
                h.producers.load(Ordering::Relaxed),
                h.consumers.load(Ordering::Relaxed),
            ],
            prods: vec![None; MAXP],
            cons: vec![None; MAXC],
            peers_then: Vec::new(),
            slot_of: Vec::new(),
            complete: Vec::new(),
            taken: Vec::new(),
            delivered: Vec::new(),
            seq: Vec::new(),
        }
    }

    fn cells(&self, len: usize) -> u64 {
        cells_for(len, self.shift)
    }

    /// The record covering position `q`.
    fn covering(&self, q: u64) -> Option<(u64, &Rec)> {
        let (&p, r) = self.recs.range(..=q).next_back()?;
        (q < p + r.cells).then_some((p, r))
    }

    /// Whether every peer of role `role` of the endpoint `key` has gone: one was there
    /// at some moment since it attached (counted when it attached, or attached after:
    /// the count of attaches moved on), and none is now.
    fn all_gone(&self, key: usize, role: usize) -> bool {
        let v = self.counts[role];
        let then = self.peers_then[key];
        let came = then & 0xffff_ffff != 0 || v >> 32 != then >> 32;
        came && v & 0xffff_ffff == 0
    }

    fn pkey(&self, p: usize) -> usize {
        self.prods[p].as_ref().expect("a producer").key
    }

    fn ckey(&self, c: usize) -> usize {
        self.cons[c].as_ref().expect("a consumer").key
    }

    fn cm(&mut self, c: usize) -> &mut CModel {
        self.cons[c].as_mut().expect("a consumer")
    }

    fn add_msg(&mut self) {
        self.complete.push(false);
        self.taken.push(0);
        self.delivered.push(0);
    }

    // --- endpoints ---

    /// Attaches an endpoint of `role`: the first vacant or detached slot of the
    /// table. Its key, or the error `View::attach` returns.
    fn attach(&mut self, role: usize) -> Result<usize, &'static str> {
        let mut found = None;
        for (i, s) in self.table.iter().enumerate() {
            match *s {
                ENDPOINT_VACANT | ENDPOINT_DETACHED => {
                    found = Some(i);
                    break;
                }
                ENDPOINT_ATTACHED => {}
                _ => return Err("corrupt"),
            }
        }
        let Some(slot) = found else {
            return Err("busy");
        };
        self.table[slot] = ENDPOINT_ATTACHED;
        // The peers' count as the endpoint reads it, before it counts itself.
        self.peers_then.push(self.counts[1 - role]);
        self.counts[role] = self.counts[role].wrapping_add(1 | 1 << 32);
        let key = self.slot_of.len();
        self.slot_of.push(slot);
        self.seq.push(0);
        Ok(key)
    }

    fn detach(&mut self, role: usize, key: usize) {
        if self.counts[role] & 0xffff_ffff != 0 {
            self.counts[role] -= 1;
        }
        self.table[self.slot_of[key]] = ENDPOINT_DETACHED;
    }

    fn add_producer(&mut self, p: usize) -> Result<(), &'static str> {
        let key = self.attach(P)?;
        self.prods[p] = Some(PModel { key, open: false });
        Ok(())
    }

    fn add_consumer(&mut self, c: usize, max_message: u64) -> Result<(), &'static str> {
        let key = self.attach(C)?;
        self.cons[c] = Some(CModel {
            key,
            in_hand: None,
            partial: None,
            max_message,
            last_seq: Vec::new(),
        });
        Ok(())
    }

    /// `Producer::drop`: close an open message if there is room, give the writer slot
    /// up, detach.
    fn drop_producer(&mut self, p: usize) {
        self.close_open(p);
        let key = self.pkey(p);
        if self.writer == Some(key) {
            self.writer = None;
        }
        self.detach(P, key);
        self.prods[p] = None;
    }

    /// `Consumer::drop`: release the record in hand, give the reader slot up, detach.
    fn drop_consumer(&mut self, c: usize) {
        if self.cm(c).in_hand.is_some() {
            self.release(c);
        }
        let key = self.ckey(c);
        if self.reader == Some(key) {
            self.reader = None;
        }
        self.detach(C, key);
        self.cons[c] = None;
    }

    // --- producer side ---

    /// `try_claim`: `k` cells for a record with `flags`.
    fn try_claim(&mut self, key: usize, k: u64, flags: u8) -> Claimed {
        let new_writer = match flags {
            FLAGS_WHOLE | FLAG_BEGIN if self.writer.is_some() => return Claimed::Full,
            FLAGS_WHOLE => None,
            FLAG_BEGIN => Some(key),
            _ if self.writer != Some(key) => return Claimed::Corrupt,
            _ => Some(key),
        };
        let index = self.tail & (self.n - 1);
        let pad = if index + k > self.n {
            self.n - index
        } else {
            0
        };
        // Each cell must have been released in the previous lap.
        let busy = (self.tail..self.tail + pad + k).any(|q| {
            q.checked_sub(self.n)
                .is_some_and(|o| self.covering(o).is_some())
        });
        if busy {
            return Claimed::Full;
        }
        let at = self.tail;
        if pad > 0 {
            self.recs.insert(
                at,
                Rec {
                    cells: pad,
                    kind: Kind::Pad,
                    st: St::Published,
                },
            );
        }
        let pos = at + pad;
        self.recs.insert(
            pos,
            Rec {
                cells: k,
                kind: Kind::Pad,
                st: St::Claimed,
            },
        );
        self.tail = pos + k;
        self.writer = new_writer;
        Claimed::Ready(pos)
    }

    /// `publish`: the claimed record at `pos` becomes `len` bytes with `flags` (the
    /// cells it does not use become padding); an END frees the writer slot.
    fn publish(&mut self, key: usize, pos: u64, len: usize, flags: u8, msg: usize, offset: usize) {
        let used = self.cells(len);
        let rec = self.recs.get_mut(&pos).expect("a claimed record");
        assert_eq!(
            rec.st,
            St::Claimed,
            "model: publishing a record not claimed"
        );
        let cells = rec.cells;
        assert!(used <= cells);
        *rec = Rec {
            cells: used,
            kind: Kind::Data {
                flags,
                len,
                msg,
                offset,
            },
            st: St::Published,
        };
        if used < cells {
            self.recs.insert(
                pos + used,
                Rec {
                    cells: cells - used,
                    kind: Kind::Pad,
                    st: St::Published,
                },
            );
        }
        if flags & FLAG_END != 0 && flags & FLAG_BEGIN == 0 && self.writer == Some(key) {
            self.writer = None;
        }
        if flags & FLAG_END != 0 && msg != usize::MAX {
            self.complete[msg] = true;
        }
    }

    /// `abandon`: a grant becomes padding; a fragment an ABORT, closing the message.
    fn abandon(&mut self, p: usize, pos: u64, flags: u8) {
        if flags == FLAGS_WHOLE {
            let rec = self.recs.get_mut(&pos).expect("a claimed record");
            assert_eq!(rec.st, St::Claimed);
            rec.st = St::Published;
        } else {
            let key = self.pkey(p);
            self.publish(key, pos, 0, FLAGS_ABORTED, usize::MAX, 0);
            self.prods[p].as_mut().expect("a producer").open = false;
        }
    }

    /// `close_open_message(Try)`: `false` if an open message could not be closed.
    fn close_open(&mut self, p: usize) -> bool {
        let pm = self.prods[p].as_ref().expect("a producer");
        if !pm.open {
            return true;
        }
        let key = pm.key;
        match self.try_claim(key, 1, FLAGS_ABORTED) {
            Claimed::Ready(pos) => {
                self.publish(key, pos, 0, FLAGS_ABORTED, usize::MAX, 0);
                self.prods[p].as_mut().expect("a producer").open = false;
                true
            }
            Claimed::Full => false,
            Claimed::Corrupt => panic!("model: an open message without the writer slot"),
        }
    }

    /// Cells of a `len`-byte message in fragments (as `Producer::fragmented_cells`).
    fn fragmented_cells(&self, len: u64) -> u64 {
        let fp = self.frag as u64;
        let first = fp - BEGIN_PREFIX as u64;
        let after = len.saturating_sub(first);
        let last = after % fp;
        self.cells(self.frag) * (1 + after / fp)
            + if last > 0 {
                self.cells(last as usize)
            } else {
                0
            }
    }

    /// Where the records of a `len`-byte message in fragments claimed from `from` end
    /// (as `room_for_fragmented` places them).
    fn fragmented_end(&self, from: u64, len: u64) -> u64 {
        let fp = self.frag as u64;
        let after = len.saturating_sub(fp - BEGIN_PREFIX as u64);
        let full = self.cells(self.frag);
        let last = after % fp;
        let mut records = vec![full; 1 + (after / fp) as usize];
        if last > 0 {
            records.push(self.cells(last as usize));
        }
        let mut end = from;
        for k in records {
            let index = end & (self.n - 1);
            if index + k > self.n {
                end += self.n - index;
            }
            end += k;
        }
        end
    }

    /// Whether cells `from..to` are all free for their positions: released in the
    /// previous lap.
    fn cells_free(&self, from: u64, to: u64) -> bool {
        (from..to).all(|q| {
            !q.checked_sub(self.n)
                .is_some_and(|o| self.covering(o).is_some())
        })
    }

    /// The largest message `try_send` can ever send whole, as `room_for_fragmented`
    /// reports it.
    fn try_send_max(&self, len: u64) -> u64 {
        let slack = self.cells(self.frag);
        let (mut lo, mut hi) = (self.max_payload as u64, len);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if self.fragmented_cells(mid) + slack <= self.n {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// A stream writer's next fragment: content room, prefix, flags.
    fn next_fragment(&self, w: &WModel) -> (usize, usize, u8) {
        let remaining = w.total - w.written;
        if !w.began && w.total <= self.max_payload {
            (w.total, 0, FLAGS_WHOLE)
        } else if !w.began {
            (self.frag - BEGIN_PREFIX, BEGIN_PREFIX, FLAG_BEGIN)
        } else {
            let room = self.frag.min(remaining);
            (room, 0, if room == remaining { FLAG_END } else { 0 })
        }
    }

    /// `MessageWriter::write_content` of `n` bytes, claiming without waiting: the
    /// bytes taken, or `Err(())` (would block, nothing taken).
    fn w_write(&mut self, p: usize, w: &mut WModel, n: usize) -> Result<usize, ()> {
        assert!(n <= w.total - w.written);
        let key = self.pkey(p);
        let mut done = 0;
        while done < n {
            if w.cur.is_none() {
                let (room, prefix, flags) = self.next_fragment(w);
                match self.try_claim(key, self.cells(room + prefix), flags) {
                    Claimed::Ready(pos) => {
                        w.cur = Some(OFrag {
                            pos,
                            room,
                            filled: 0,
                            prefix,
                            flags,
                            offset: w.written,
                        })
                    }
                    Claimed::Full if done > 0 => return Ok(done),
                    Claimed::Full => return Err(()),
                    Claimed::Corrupt => panic!("model: a stream without the writer slot"),
                }
            }
            let f = w.cur.as_mut().expect("claimed above");
            let k = (f.room - f.filled).min(n - done);
            f.filled += k;
            w.written += k;
            done += k;
            self.publish_if_full(p, w);
        }
        Ok(done)
    }

    fn publish_if_full(&mut self, p: usize, w: &mut WModel) {
        if let Some(f) = w.cur {
            if f.filled == f.room {
                w.cur = None;
                let key = self.pkey(p);
                self.publish(key, f.pos, f.room + f.prefix, f.flags, w.msg, f.offset);
                w.began = true;
                self.prods[p].as_mut().expect("a producer").open =
                    f.flags == FLAG_BEGIN || f.flags == 0;
            }
        }
    }

    /// `MessageWriter::finish` (Try mode): `Err(kind)` as the io error it returns.
    fn w_finish(&mut self, p: usize, w: &mut WModel) -> Result<(), io::ErrorKind> {
        if w.written != w.total {
            return Err(io::ErrorKind::InvalidInput);
        }
        if !w.began && w.cur.is_none() {
            // An empty message: its one record.
            let (room, prefix, flags) = self.next_fragment(w);
            let key = self.pkey(p);
            match self.try_claim(key, self.cells(room + prefix), flags) {
                Claimed::Ready(pos) => {
                    w.cur = Some(OFrag {
                        pos,
                        room,
                        filled: 0,
                        prefix,
                        flags,
                        offset: 0,
                    })
                }
                Claimed::Full => return Err(io::ErrorKind::TimedOut),
                Claimed::Corrupt => panic!("model: a stream without the writer slot"),
            }
        }
        self.publish_if_full(p, w);
        Ok(())
    }

    /// `MessageWriter::drop`.
    fn w_drop(&mut self, p: usize, w: &mut WModel) {
        if let Some(f) = w.cur.take() {
            self.abandon(p, f.pos, f.flags);
        }
        if self.prods[p].as_ref().expect("a producer").open {
            self.close_open(p);
        }
    }

    /// A whole message sent with every claim made at once (`Block` mode calls whose
    /// claims all succeed, or `Try`): `Hang` if a claim would wait (`blocking`), else
    /// the message is abandoned where a claim fails (`Timeout`).
    fn send_all(&mut self, p: usize, msg: usize, len: usize, blocking: bool) -> Sent {
        let mut w = WModel {
            msg,
            total: len,
            written: 0,
            cur: None,
            began: false,
        };
        let r = if len == 0 {
            self.w_finish(p, &mut w).map_err(|_| ())
        } else {
            match self.w_write(p, &mut w, len) {
                Ok(k) if k == len => Ok(()),
                _ => Err(()),
            }
        };
        if r.is_err() && blocking {
            return Sent::Hang;
        }
        self.w_drop(p, &mut w);
        match r {
            Ok(()) => Sent::Ok,
            Err(()) => Sent::Timeout,
        }
    }

    /// `try_send` (`timeout`: `send_timeout` with a zero timeout; `blocking`: `send`).
    fn send(&mut self, p: usize, msg: usize, len: usize, how: SendHow) -> Sent {
        if self.all_gone(self.pkey(p), C) {
            return Sent::Disconnected;
        }
        if self.prods[p].as_ref().expect("a producer").open && !self.close_open(p) {
            return match how {
                SendHow::Try => Sent::Full,
                SendHow::Timeout => Sent::Timeout,
                SendHow::Blocking => Sent::Hang,
            };
        }
        if len <= self.max_payload {
            return match self.send_all(p, msg, len, how == SendHow::Blocking) {
                Sent::Timeout if how == SendHow::Try => Sent::Full,
                other => other,
            };
        }
        if how == SendHow::Try {
            // All or nothing (`room_for_fragmented`): the writer slot free, and every
            // cell the fragments will take (padding included) free for this lap; then
            // the claims all succeed.
            let need = self.fragmented_cells(len as u64);
            let slack = self.cells(self.frag);
            if need + slack > self.n {
                return Sent::TooLarge(self.try_send_max(len as u64));
            }
            let used = self.tail - self.head;
            if self.writer.is_some() || used > self.n || need + slack > self.n - used {
                return Sent::Full;
            }
            if !self.cells_free(self.tail, self.fragmented_end(self.tail, len as u64)) {
                return Sent::Full;
            }
            let sent = self.send_all(p, msg, len, true);
            assert_eq!(sent, Sent::Ok, "model: a fragment of a checked try_send");
            return sent;
        }
        self.send_all(p, msg, len, how == SendHow::Blocking)
    }

    /// `try_reserve` (and `reserve_timeout(0)`): the claim's position.
    fn reserve(&mut self, p: usize, len: usize) -> Result<u64, Sent> {
        if self.all_gone(self.pkey(p), C) {
            return Err(Sent::Disconnected);
        }
        if len > self.max_payload {
            return Err(Sent::TooLarge(self.max_payload as u64));
        }
        if self.prods[p].as_ref().expect("a producer").open && !self.close_open(p) {
            return Err(Sent::Full);
        }
        let key = self.pkey(p);
        match self.try_claim(key, self.cells(len), FLAGS_WHOLE) {
            Claimed::Ready(pos) => Ok(pos),
            Claimed::Full => Err(Sent::Full),
            Claimed::Corrupt => Err(Sent::Corrupt),
        }
    }

    // --- consumer side ---

    /// `try_take`.
    fn try_take(&mut self, c: usize) -> (Next, bool) {
        let key = self.ckey(c);
        if let Some(pos) = self.cm(c).in_hand {
            return (Next::Ready(pos), false);
        }
        loop {
            if self.reader.is_some_and(|h| h != key) {
                return (Next::Wait, true);
            }
            if self.head == self.tail {
                return (Next::Wait, false);
            }
            let pos = self.head;
            let rec = *self.recs.get(&pos).expect("model: a record at head");
            match rec.st {
                St::Claimed => return (Next::Wait, false),
                St::Taken(_) => panic!("model: a taken record at head"),
                St::Published => {}
            }
            match rec.kind {
                Kind::Pad => {
                    self.head += rec.cells;
                    self.recs.remove(&pos);
                }
                Kind::Data { flags, msg, .. } => {
                    self.reader = if flags == FLAG_BEGIN {
                        Some(key)
                    } else if flags & FLAG_END != 0 {
                        None
                    } else {
                        self.reader
                    };
                    self.head += rec.cells;
                    self.recs.get_mut(&pos).expect("at head").st = St::Taken(key);
                    if flags & FLAG_BEGIN != 0 {
                        self.taken[msg] += 1;
                    }
                    self.cm(c).in_hand = Some(pos);
                    return (Next::Ready(pos), false);
                }
            }
        }
    }

    /// `poll_record` / `next_record` without waiting.
    fn next(&mut self, c: usize) -> Next {
        let (first, held) = self.try_take(c);
        if first != Next::Wait {
            return first;
        }
        let key = self.ckey(c);
        if self.reader == Some(key) && self.writer.is_none() && self.tail == self.head {
            self.reader = None;
            return Next::Truncated;
        }
        if held || !self.all_gone(key, P) {
            return first;
        }
        let (again, _) = self.try_take(c);
        if again != Next::Wait {
            return again;
        }
        if self.reader == Some(key) {
            self.reader = None;
        }
        Next::Disconnected
    }

    /// Whether `next` (with nothing in hand) would return without waiting.
    fn next_ready(&self, c: usize) -> bool {
        let key = self.cons[c].as_ref().expect("a consumer").key;
        if self.reader.is_some_and(|h| h != key) {
            return false;
        }
        let mut pos = self.head;
        while pos != self.tail {
            let rec = self.recs.get(&pos).expect("model: a record at head");
            match (rec.st, rec.kind) {
                (St::Published, Kind::Pad) => pos += rec.cells,
                (St::Published, _) => return true,
                _ => break,
            }
        }
        // An orphaned stream (`Next::Truncated`) ends the wait too.
        (pos == self.tail && self.reader == Some(key) && self.writer.is_none())
            || self.all_gone(key, P)
    }

    /// `release_record`: the record in hand goes back to the producers.
    fn release(&mut self, c: usize) {
        let key = self.ckey(c);
        let pos = self.cm(c).in_hand.take().expect("a record in hand");
        let rec = self.recs.remove(&pos).expect("the record in hand");
        assert_eq!(rec.st, St::Taken(key));
    }

    fn data_at(&self, pos: u64) -> (u8, usize, usize, usize) {
        match self.recs[&pos].kind {
            Kind::Data {
                flags,
                len,
                msg,
                offset,
            } => (flags, len, msg, offset),
            Kind::Pad => panic!("model: a pad in hand"),
        }
    }

    /// Marks message `m` delivered to consumer `c`, checking once-only and order.
    fn deliver(&mut self, c: usize, m: usize, msgs: &[Msg]) {
        self.delivered[m] += 1;
        assert_eq!(self.delivered[m], 1, "message {m} delivered twice");
        assert!(
            self.complete[m],
            "message {m} delivered before it was complete"
        );
        let (producer, seq) = (msgs[m].producer, msgs[m].seq);
        let cm = self.cm(c);
        match cm.last_seq.iter_mut().find(|(p, _)| *p == producer) {
            Some((_, last)) => {
                assert!(
                    seq > *last,
                    "producer {producer}: message {seq} after {last} at one consumer"
                );
                *last = seq;
            }
            None => cm.last_seq.push((producer, seq)),
        }
    }

    /// `recv_with` without waiting: the message and its id, or the error.
    fn recv(&mut self, c: usize, msgs: &[Msg]) -> (Got, Option<usize>) {
        let max = self.cm(c).max_message;
        let (mut total, mut buf, mut msg) = match self.cm(c).partial.take() {
            Some(p) => (Some(p.total), p.buf, p.msg),
            None => (None, Vec::new(), usize::MAX),
        };
        loop {
            let pos = match self.next(c) {
                Next::Ready(pos) => pos,
                Next::Wait => {
                    if let Some(total) = total {
                        self.cm(c).partial = Some(MPartial { msg, total, buf });
                    }
                    return (Err(RecvTimeoutError::Timeout), None);
                }
                Next::Disconnected if total.is_some() => {
                    return (Err(RecvTimeoutError::Truncated), None)
                }
                Next::Disconnected => return (Err(RecvTimeoutError::Disconnected), None),
                Next::Truncated => return (Err(RecvTimeoutError::Truncated), None),
            };
            let (flags, len, m, offset) = self.data_at(pos);
            let Some(expected) = total else {
                if flags & FLAG_BEGIN == 0 {
                    self.release(c);
                    continue;
                }
                if flags == FLAGS_WHOLE {
                    if len as u64 > max {
                        return (
                            Err(RecvTimeoutError::TooLarge {
                                len: len as u64,
                                max,
                            }),
                            None,
                        );
                    }
                    let bytes = msgs[m].content[offset..offset + len].to_vec();
                    self.release(c);
                    return (Ok(bytes), Some(m));
                }
                let t = msgs[m].content.len() as u64;
                if t > max {
                    return (Err(RecvTimeoutError::TooLarge { len: t, max }), None);
                }
                buf.extend_from_slice(&msgs[m].content[offset..offset + len - BEGIN_PREFIX]);
                self.release(c);
                total = Some(t);
                msg = m;
                continue;
            };
            if flags & FLAG_BEGIN != 0 {
                return (Err(RecvTimeoutError::Truncated), None);
            }
            if flags & FLAG_ABORT != 0 {
                self.release(c);
                return (Err(RecvTimeoutError::Truncated), None);
            }
            assert_eq!(m, msg, "model: a fragment of another message");
            let received = buf.len() + len;
            assert!(
                received as u64 <= expected
                    && (received as u64 == expected) == (flags & FLAG_END != 0),
                "model: fragments do not add up"
            );
            buf.extend_from_slice(&msgs[m].content[offset..offset + len]);
            self.release(c);
            if flags & FLAG_END != 0 {
                return (Ok(buf), Some(msg));
            }
        }
    }

    /// `recv_ref_with` without waiting: the message's bytes and id (its record stays
    /// in hand until the grant is dropped).
    fn recv_ref(&mut self, c: usize, msgs: &[Msg]) -> (Got, Option<usize>) {
        if let Some(p) = &self.cm(c).partial {
            return (Err(RecvTimeoutError::Fragmented { len: p.total }), None);
        }
        loop {
            let pos = match self.next(c) {
                Next::Ready(pos) => pos,
                Next::Wait => return (Err(RecvTimeoutError::Timeout), None),
                Next::Disconnected => return (Err(RecvTimeoutError::Disconnected), None),
                Next::Truncated => return (Err(RecvTimeoutError::Truncated), None),
            };
            let (flags, len, m, offset) = self.data_at(pos);
            if flags & FLAG_BEGIN == 0 {
                self.release(c);
                continue;
            }
            if flags != FLAGS_WHOLE {
                let len = msgs[m].content.len() as u64;
                return (Err(RecvTimeoutError::Fragmented { len }), None);
            }
            return (Ok(msgs[m].content[offset..offset + len].to_vec()), Some(m));
        }
    }

    /// `MessageReader::new` without waiting.
    fn reader_new(&mut self, c: usize, msgs: &[Msg]) -> Result<RModel, RecvTimeoutError> {
        if let Some(p) = self.cm(c).partial.take() {
            return Ok(RModel {
                msg: p.msg,
                total: p.total,
                received: p.buf.len() as u64,
                prefix: p.buf,
                prefix_read: 0,
                cur: None,
                done: false,
            });
        }
        loop {
            let pos = match self.next(c) {
                Next::Ready(pos) => pos,
                Next::Wait => return Err(RecvTimeoutError::Timeout),
                Next::Disconnected => return Err(RecvTimeoutError::Disconnected),
                Next::Truncated => return Err(RecvTimeoutError::Truncated),
            };
            let (flags, len, m, offset) = self.data_at(pos);
            if flags & FLAG_BEGIN == 0 {
                self.release(c);
                continue;
            }
            let (total, clen) = if flags == FLAGS_WHOLE {
                (len as u64, len)
            } else {
                (msgs[m].content.len() as u64, len - BEGIN_PREFIX)
            };
            return Ok(RModel {
                msg: m,
                total,
                received: clen as u64,
                prefix: Vec::new(),
                prefix_read: 0,
                cur: Some(RFrag {
                    pos,
                    msg: m,
                    offset,
                    len: clen,
                    read: 0,
                    flags,
                }),
                done: false,
            });
        }
    }

    /// One `read` of `n >= 1` bytes from a stream reader.
    fn reader_read(&mut self, c: usize, r: &mut RModel, n: usize, msgs: &[Msg]) -> ReadOut {
        if r.prefix_read < r.prefix.len() {
            let k = (r.prefix.len() - r.prefix_read).min(n);
            let out = r.prefix[r.prefix_read..r.prefix_read + k].to_vec();
            r.prefix_read += k;
            return ReadOut::Bytes(out);
        }
        // Whether this read needs the next fragment, which `read` waits for.
        let needs_next = !r.done
            && match r.cur {
                Some(f) => f.read >= f.len && f.flags & FLAG_END == 0,
                None => true,
            };
        if needs_next && !self.next_ready(c) {
            return ReadOut::Wait;
        }
        loop {
            if let Some(f) = &mut r.cur {
                if f.read < f.len {
                    let k = (f.len - f.read).min(n);
                    let at = f.offset + f.read;
                    f.read += k;
                    return ReadOut::Bytes(msgs[f.msg].content[at..at + k].to_vec());
                }
                let flags = f.flags;
                r.cur = None;
                self.release(c);
                if flags & FLAG_END != 0 {
                    r.done = true;
                }
            }
            if r.done {
                return ReadOut::End;
            }
            let pos = match self.next(c) {
                Next::Ready(pos) => pos,
                // (The reader is not done after a `Truncated`: a further read takes
                // the next record, which begins a message, and ends it.)
                Next::Disconnected | Next::Truncated => {
                    return ReadOut::Err(io::ErrorKind::UnexpectedEof)
                }
                Next::Wait => panic!("model: a read waits after next_ready"),
            };
            let (flags, len, m, offset) = self.data_at(pos);
            if flags & FLAG_BEGIN != 0 {
                r.done = true;
                return ReadOut::Err(io::ErrorKind::UnexpectedEof);
            }
            if flags & FLAG_ABORT != 0 {
                self.release(c);
                r.done = true;
                return ReadOut::Err(io::ErrorKind::UnexpectedEof);
            }
            assert_eq!(m, r.msg, "model: a fragment of another message");
            let received = r.received + len as u64;
            assert!(
                received <= r.total && (received == r.total) == (flags & FLAG_END != 0),
                "model: fragments do not add up"
            );
            r.received = received;
            r.cur = Some(RFrag {
                pos,
                msg: m,
                offset,
                len,
                read: 0,
                flags,
            });
        }
    }

    fn reader_drop(&mut self, c: usize, r: &mut RModel) {
        if let Some(f) = r.cur.take() {
            assert_eq!(
                self.cm(c).in_hand,
                Some(f.pos),
                "model: the reader's record"
            );
            self.release(c);
        }
    }

    // --- the segment ---

    /// Compares the segment with the model: cursors, slots, counters, endpoint states,
    /// and the stamps and record words of the cells (all of them on rings of up to 256
    /// cells, else those around `head` and `tail`).
    fn check_segment(&self, env: &Env) {
        let h = env.seg.header();
        let t = h.tail.load(Ordering::Relaxed);
        let hd = h.head.load(Ordering::Relaxed);
        let mark = |k: Option<usize>| k.map_or(0, |k| self.slot_of[k] as u64 + 1);
        assert_eq!(t & POS_MASK, self.tail, "tail position");
        assert_eq!(hd & POS_MASK, self.head, "head position");
        assert_eq!(t >> POS_BITS, mark(self.writer), "writer-stream slot");
        assert_eq!(hd >> POS_BITS, mark(self.reader), "reader-stream slot");
        assert_eq!(h.producers.load(Ordering::Relaxed), self.counts[P]);
        assert_eq!(h.consumers.load(Ordering::Relaxed), self.counts[C]);
        for (i, s) in self.table.iter().enumerate() {
            assert_eq!(h.endpoints[i].state(), *s, "slot {i}");
        }
        let table = env.seg.cell_table(&env.params);
        let n = self.n;
        let base = self.tail.wrapping_sub(n);
        let mut check = |j: u64| {
            // The position in `tail - N .. tail` of cell `j`.
            let q = base.wrapping_add(j.wrapping_sub(base) & (n - 1));
            let want = match self.covering(q) {
                Some((p, r)) if p == q && r.st != St::Claimed => q + 1,
                Some(_) => q,
                None => q.wrapping_add(n),
            };
            let stamp = table.stamp(q).load(Ordering::Relaxed);
            assert_eq!(stamp, want, "stamp of position {q:#x} (cell {j})");
        };
        if n <= 256 {
            (0..n).for_each(&mut check);
        } else {
            for c in [self.head, self.tail] {
                (0..64).for_each(|d| check(c.wrapping_sub(32).wrapping_add(d) & (n - 1)));
            }
        }
        for (&p, r) in &self.recs {
            let word = match (r.st, r.kind) {
                (St::Claimed, _) => continue,
                (_, Kind::Pad) => encode_cell(r.cells as u32, FLAG_PAD),
                (_, Kind::Data { flags, len, .. }) => encode_cell(len as u32, flags),
            };
            let got = table.record(p).load(Ordering::Relaxed);
            assert_eq!(got, word, "record word at position {p:#x}");
        }
    }
}

/// How `Sim::send` sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SendHow {
    Try,
    Timeout,
    Blocking,
}

// ---------------------------------------------------------------------------------
// ring_ops and hostile_peer
// ---------------------------------------------------------------------------------

/// The ring, its endpoints, the model (`None` once a peer wrote into the segment or
/// if the segment was never known), the messages.
struct Harness {
    env: Env,
    prods: Vec<Option<Producer>>,
    cons: Vec<Option<Consumer>>,
    /// Handles lent to a grant, writer or reader that is open.
    busy_p: [bool; MAXP],
    busy_c: [bool; MAXC],
    sim: Option<Sim>,
    msgs: Vec<Msg>,
    depth: u32,
    /// The largest `max_message` any consumer has had.
    max_message_ever: u64,
    frag: usize,
}

/// An arbitrary sequence of operations of several producers and consumers in one
/// thread, checked against a model of the ring. See the module docs.
pub fn ring_ops(data: &[u8]) {
    run_ops(data, false)
}

/// [`ring_ops`] with a peer that writes arbitrary values into the segment between the
/// endpoints' steps. See the module docs.
pub fn hostile_peer(data: &[u8]) {
    run_ops(data, true)
}

fn run_ops(data: &[u8], hostile: bool) {
    let mut input = Input::new(data);
    let spec = Spec::read(&mut input, &CAPACITIES);
    let (seg, params) = heap_ring(&spec);
    let env = Env {
        seg,
        params,
        wait: spec.wait,
        hostile,
    };
    let Some(mut h) = Harness::new(env, true) else {
        panic!("attaching to a new ring failed");
    };
    h.run(&mut input);
}

impl Harness {
    /// Attaches one producer and one consumer (as `mpmc::channel` does); `None` if
    /// either fails. `checked`: the segment is a clean ring the model can follow.
    fn new(env: Env, checked: bool) -> Option<Harness> {
        let mut sim = checked.then(|| Sim::new(&env.seg, &env.params));
        let tx = Producer::attach(env.seg.clone(), env.params, env.wait);
        if let Err(Error::Incompatible { .. }) = tx {
            // Asymmetric fences where membarrier does not work.
            return None;
        }
        if let Some(sim) = &mut sim {
            assert_eq!(tx.is_ok(), sim.add_producer(0).is_ok(), "attach: {tx:?}");
        }
        let rx = Consumer::attach(env.seg.clone(), env.params, env.wait);
        if let Some(sim) = &mut sim {
            assert_eq!(
                rx.is_ok(),
                sim.add_consumer(0, env.params.max_message).is_ok(),
                "attach: {rx:?}"
            );
        }
        let (tx, rx) = (tx.ok()?, rx.ok()?);
        let frag = fragment_payload(&env.params);
        let mut h = Harness {
            max_message_ever: env.params.max_message,
            env,
            prods: (0..MAXP).map(|_| None).collect(),
            cons: (0..MAXC).map(|_| None).collect(),
            busy_p: [false; MAXP],
            busy_c: [false; MAXC],
            sim,
            msgs: Vec::new(),
            depth: 0,
            frag,
        };
        h.prods[0] = Some(tx);
        h.cons[0] = Some(rx);
        Some(h)
    }

    /// Runs operations until the input runs out, then ends every endpoint.
    fn run(&mut self, input: &mut Input<'_>) {
        while !input.is_empty() {
            self.step(input);
        }
        self.finish(input);
    }

    /// One operation, checked against the model.
    fn step(&mut self, input: &mut Input<'_>) {
        let op = input.u8();
        match op % 16 {
            0 | 1 => self.send(input, op),
            2 => self.send_blocking(input, op),
            3 | 4 => self.reserve(input, op),
            5 | 6 => self.stream(input),
            7 => self.producer_life(input),
            8..=10 => self.consumer_op(input),
            11 | 12 => self.read_stream(input),
            13 => self.consumer_life(input),
            _ if self.env.hostile => self.peer(input),
            _ => self.consumer_op(input),
        }
        if let Some(sim) = &self.sim {
            sim.check_segment(&self.env);
        }
    }

    /// Runs steps inside an open grant, writer or reader, until a byte without the top
    /// bit (returned: what to do with it) or the end of the input.
    fn nested(&mut self, input: &mut Input<'_>) -> u8 {
        loop {
            if input.is_empty() {
                return 0;
            }
            let b = input.u8();
            if b & 0x80 == 0 || self.depth >= MAX_DEPTH {
                return b;
            }
            self.depth += 1;
            self.step(input);
            self.depth -= 1;
        }
    }

    fn corrupted(&self) -> bool {
        self.sim.is_none()
    }

    /// A new message of `len` bytes from the producer in handle `p`.
    fn new_msg(&mut self, p: usize, len: usize) -> usize {
        let id = self.msgs.len();
        let (producer, seq) = match &mut self.sim {
            Some(sim) => {
                let key = sim.pkey(p);
                sim.seq[key] += 1;
                sim.add_msg();
                (key, sim.seq[key])
            }
            None => (usize::MAX, 0),
        };
        self.msgs.push(Msg {
            producer,
            seq,
            content: content(id as u64, len),
        });
        id
    }

    /// A message length: small, around the cell size, one record, a fragment, the
    /// capacity, and beyond.
    fn pick_len(&self, input: &mut Input<'_>) -> usize {
        let p = &self.env.params;
        let (cell, max, frag, cap) = (p.cell_size, p.max_record, self.frag, p.capacity);
        let d = |input: &mut Input<'_>| usize::from(input.u8() % 5);
        match input.u8() % 10 {
            0..=2 => usize::from(input.u8() % 65),
            3 => (cell * usize::from(input.u8() % 8) + d(input)).saturating_sub(2),
            4 => input.below(max + 1),
            5 => (max + d(input)).saturating_sub(2),
            6 => (frag * usize::from(1 + input.u8() % 4) + d(input)).saturating_sub(2),
            7 => input.below(4 * cap + 1),
            8 => (cap + d(input)).saturating_sub(2),
            _ => {
                let edges = [
                    0,
                    1,
                    7,
                    8,
                    9,
                    16,
                    cell,
                    cell + 1,
                    max - 8,
                    max,
                    max + 1,
                    frag - 8,
                    frag - 7,
                    2 * cap + 3,
                    5 * cap,
                ];
                edges[input.below(edges.len())]
            }
        }
    }

    // --- producers ---

    /// `try_send` or `send_timeout(0)`.
    fn send(&mut self, input: &mut Input<'_>, op: u8) {
        let p = usize::from(input.u8()) % MAXP;
        let len = self.pick_len(input);
        let Some(mut tx) = self.prods[p].take() else {
            return;
        };
        let m = self.new_msg(p, len);
        let timeout = op & 0x10 != 0;
        let msg = &self.msgs[m].content;
        match &mut self.sim {
            Some(sim) => {
                let mut next = sim.clone();
                let how = if timeout {
                    SendHow::Timeout
                } else {
                    SendHow::Try
                };
                let want = next.send(p, m, len, how);
                trace!("send {len} from {p} ({how:?}): want {want:?}");
                let got = if timeout {
                    sent_timeout(tx.send_timeout(msg, Duration::ZERO), len)
                } else {
                    sent_try(tx.try_send(msg), len)
                };
                assert_eq!(got, want, "send of {len} bytes from producer {p}");
                *sim = next;
            }
            None => {
                let got = if timeout {
                    sent_timeout(tx.send_timeout(msg, Duration::ZERO), len)
                } else {
                    sent_try(tx.try_send(msg), len)
                };
                trace!("send {len} from {p}: {got:?}");
            }
        }
        self.prods[p] = Some(tx);
    }

    /// `send`, `send_pod`, `stream` or `reserve` (blocking), where the model says
    /// they return at once.
    fn send_blocking(&mut self, input: &mut Input<'_>, op: u8) {
        let p = usize::from(input.u8()) % MAXP;
        let mut len = self.pick_len(input);
        let kind = (op >> 4) % 4;
        if kind == 1 {
            len = 16;
        }
        if kind == 3 {
            len = len.min(self.env.params.max_record);
        }
        let Some(sim) = &self.sim else { return };
        if sim.prods[p].is_none() || self.prods[p].is_none() {
            return;
        }
        let m = self.new_msg(p, len);
        let sim = self.sim.as_mut().expect("checked above");
        let mut next = sim.clone();
        let want = if kind == 3 {
            match next.reserve(p, len) {
                Ok(pos) => {
                    let key = next.pkey(p);
                    next.publish(key, pos, len, FLAGS_WHOLE, m, 0);
                    Sent::Ok
                }
                Err(Sent::Full) => Sent::Hang,
                Err(e) => e,
            }
        } else {
            next.send(p, m, len, SendHow::Blocking)
        };
        trace!("blocking send {len} from {p} (kind {kind}): want {want:?}");
        if want == Sent::Hang {
            return;
        }
        let mut tx = self.prods[p].take().expect("checked above");
        let msg = &self.msgs[m].content;
        let got = match kind {
            0 => sent_blocking(tx.send(msg), len),
            1 => {
                let value: [u8; 16] = msg[..].try_into().expect("16 bytes");
                sent_blocking(tx.send_pod(&value), len)
            }
            2 => match tx.stream(len as u64) {
                Ok(w) => {
                    write_whole(w, msg, op, "the model lets through");
                    Sent::Ok
                }
                Err(e) => sent_blocking(Err(e), len),
            },
            _ => match tx.reserve(len) {
                Ok(mut g) => {
                    g.copy_from_slice(msg);
                    g.commit();
                    Sent::Ok
                }
                Err(e) => sent_blocking(Err(e), len),
            },
        };
        assert_eq!(got, want, "blocking send of {len} bytes from producer {p}");
        *sim = next;
        self.prods[p] = Some(tx);
    }

    /// `try_reserve` (or `reserve_timeout(0)`), steps while the grant is open, then
    /// commit, commit a prefix, over-commit, or drop.
    fn reserve(&mut self, input: &mut Input<'_>, op: u8) {
        let p = usize::from(input.u8()) % MAXP;
        let len = self.pick_len(input);
        let Some(mut tx) = self.prods[p].take() else {
            return;
        };
        let m = self.new_msg(p, len);
        let want = self.sim.as_ref().map(|sim| {
            let mut next = sim.clone();
            (next.reserve(p, len), next)
        });
        {
            let got = if op & 0x10 != 0 {
                tx.reserve_timeout(len, Duration::ZERO)
                    .map_err(|e| match e {
                        SendTimeoutError::Timeout => Sent::Full,
                        e => sent_timeout(Err(e), len),
                    })
            } else {
                tx.try_reserve(len).map_err(|e| sent_try(Err(e), len))
            };
            trace!(
                "reserve {len} from {p}: {:?}, want {:?}",
                got.as_ref().map(|g| g.len()),
                want.as_ref().map(|w| &w.0)
            );
            let claim = match (want, &self.sim) {
                (Some((want, next)), Some(_)) => {
                    assert_eq!(
                        got.as_ref().map(|_| ()).map_err(|e| *e),
                        want.map(|_| ()),
                        "reserve of {len} bytes from producer {p}"
                    );
                    self.sim = Some(next);
                    want.ok()
                }
                _ => None,
            };
            if let Ok(mut g) = got {
                assert_eq!(g.len(), len);
                g.copy_from_slice(&self.msgs[m].content);
                self.busy_p[p] = true;
                let action = self.nested(input);
                self.busy_p[p] = false;
                let key = self.sim.as_ref().map(|s| s.pkey(p));
                match action % 4 {
                    0 | 1 => {
                        g.commit();
                        if let (Some(sim), Some(pos), Some(key)) = (&mut self.sim, claim, key) {
                            sim.publish(key, pos, len, FLAGS_WHOLE, m, 0);
                        }
                    }
                    2 => {
                        if let Some(k) = commit_prefix(g, len, input) {
                            self.msgs[m].content.truncate(k);
                            if let (Some(sim), Some(pos), Some(key)) = (&mut self.sim, claim, key) {
                                sim.publish(key, pos, k, FLAGS_WHOLE, m, 0);
                            }
                        } else if let (Some(sim), Some(pos)) = (&mut self.sim, claim) {
                            sim.abandon(p, pos, FLAGS_WHOLE);
                        }
                    }
                    _ => {
                        drop(g);
                        if let (Some(sim), Some(pos)) = (&mut self.sim, claim) {
                            sim.abandon(p, pos, FLAGS_WHOLE);
                        }
                    }
                }
            }
        }
        self.prods[p] = Some(tx);
    }

    /// A message written through a stream writer (claiming without waiting) in pieces,
    /// with steps between them; finished, finished early, or dropped.
    fn stream(&mut self, input: &mut Input<'_>) {
        let p = usize::from(input.u8()) % MAXP;
        let total = self.pick_len(input);
        let Some(mut tx) = self.prods[p].take() else {
            return;
        };
        let m = self.new_msg(p, total);
        // `stream` closes a message left open first (here without waiting).
        let closed = close_open_message(&mut tx, Mode::Try);
        if let Some(sim) = &mut self.sim {
            let want = sim.close_open(p);
            // A claim that finds no room looks for dead endpoints now and then (every
            // `LIVENESS_EVERY`, and at an endpoint's first miss): then, with every
            // consumer gone, it says `Disconnected` rather than "no room".
            let gone =
                !want && sim.all_gone(sim.pkey(p), C) && closed == Err(SendError::Disconnected);
            assert!(
                closed == Ok(want) || gone,
                "closing an open message: {closed:?}"
            );
        }
        if closed != Ok(true) {
            self.prods[p] = Some(tx);
            return;
        }
        trace!("stream {total} from {p}");
        let mut wm = WModel {
            msg: m,
            total,
            written: 0,
            cur: None,
            began: false,
        };
        let mut w = MessageWriter::new(&mut tx, total as u64, Mode::Try);
        self.busy_p[p] = true;
        let finish = loop {
            let b = if input.is_empty() { 7 } else { input.u8() };
            match b % 8 {
                0..=2 => {
                    // Sometimes more than what is left: the writer takes only that.
                    let n = usize::from(input.u16()) % (2 * self.frag + 1);
                    let end = (wm.written + n).min(total);
                    let msg = &self.msgs[m].content;
                    let r = if wm.written == total && b & 0x80 != 0 {
                        w.write(b"x")
                    } else {
                        w.write(&msg[wm.written..end])
                    };
                    trace!("  write {} at {}: {r:?}", end - wm.written, wm.written);
                    match &mut self.sim {
                        Some(sim) => {
                            let want = if wm.written == total && b & 0x80 != 0 {
                                Err(io::ErrorKind::InvalidInput)
                            } else if end == wm.written {
                                Ok(0)
                            } else {
                                let k = end - wm.written;
                                sim.w_write(p, &mut wm, k)
                                    .map_err(|()| io::ErrorKind::TimedOut)
                            };
                            let r = r.map_err(|e| e.kind());
                            // No room, every consumer gone: `Disconnected` now and then
                            // (see `closing an open message` above).
                            let gone = want == Err(io::ErrorKind::TimedOut)
                                && sim.all_gone(sim.pkey(p), C)
                                && r == Err(io::ErrorKind::BrokenPipe);
                            assert!(r == want || gone, "stream write: {r:?}, want {want:?}");
                        }
                        None => {
                            if let Ok(k) = r {
                                assert!(k <= end - wm.written);
                                wm.written += k;
                            }
                        }
                    }
                    assert_eq!(w.remaining(), (total - wm.written) as u64);
                }
                3..=5 => {
                    if self.depth < MAX_DEPTH {
                        self.depth += 1;
                        self.step(input);
                        self.depth -= 1;
                    }
                }
                6 => break true,
                _ => break false,
            }
        };
        self.busy_p[p] = false;
        if finish {
            let r = w.finish().map_err(|e| e.kind());
            trace!("  finish after {} of {total}: {r:?}", wm.written);
            if let Some(sim) = &mut self.sim {
                let want = sim.w_finish(p, &mut wm);
                let gone = want == Err(io::ErrorKind::TimedOut)
                    && sim.all_gone(sim.pkey(p), C)
                    && r == Err(io::ErrorKind::BrokenPipe);
                assert!(r == want || gone, "finish: {r:?}, want {want:?}");
                sim.w_drop(p, &mut wm);
            }
        } else {
            drop(w);
            trace!("  dropped after {} of {total}", wm.written);
            if let Some(sim) = &mut self.sim {
                sim.w_drop(p, &mut wm);
            }
        }
        self.prods[p] = Some(tx);
    }

    /// Clones a producer into a free handle, drops one, or attaches a new one.
    fn producer_life(&mut self, input: &mut Input<'_>) {
        let sel = input.u8();
        let p = usize::from(sel >> 2) % MAXP;
        if self.busy_p[p] {
            return;
        }
        match (sel % 4, self.prods[p].is_some()) {
            (0 | 1, true) => {
                trace!("drop producer {p}");
                self.prods[p] = None;
                if let Some(sim) = &mut self.sim {
                    sim.drop_producer(p);
                }
            }
            (0, false) => {
                // A clone of another producer, else a fresh attach.
                let from = (0..MAXP).find(|&i| self.prods[i].is_some());
                let r = match from {
                    Some(i) => self.prods[i].as_ref().expect("found").try_clone(),
                    None => Producer::attach(self.env.seg.clone(), self.env.params, self.env.wait),
                };
                trace!("clone a producer into {p}: {:?}", r.as_ref().map(|_| ()));
                self.attached(P, p, r.map(Endpoint::P), 0);
            }
            (_, false) => {
                let r = Producer::attach(self.env.seg.clone(), self.env.params, self.env.wait);
                trace!("attach a producer as {p}: {:?}", r.as_ref().map(|_| ()));
                self.attached(P, p, r.map(Endpoint::P), 0);
            }
            (_, true) => {
                // The producer's view of the ring and of the consumers.
                let tx = self.prods[p].as_ref().expect("checked");
                let params = &self.env.params;
                assert_eq!(tx.capacity(), params.capacity);
                assert_eq!(tx.cell_size(), params.cell_size);
                assert_eq!(tx.max_endpoints(), params.max_endpoints as usize);
                assert_eq!(tx.max_record_payload(), params.max_record);
                if let Some(sim) = &self.sim {
                    assert_eq!(
                        tx.is_disconnected(),
                        sim.all_gone(sim.pkey(p), C),
                        "is_disconnected"
                    );
                }
            }
        }
    }

    /// Clones a consumer into a free handle, drops one, or attaches a new one.
    fn consumer_life(&mut self, input: &mut Input<'_>) {
        let sel = input.u8();
        let c = usize::from(sel >> 2) % MAXC;
        if self.busy_c[c] {
            return;
        }
        match (sel % 4, self.cons[c].is_some()) {
            (0 | 1, true) => {
                trace!("drop consumer {c}");
                self.cons[c] = None;
                if let Some(sim) = &mut self.sim {
                    sim.drop_consumer(c);
                }
            }
            (0, false) => {
                let from = (0..MAXC).find(|&i| self.cons[i].is_some());
                // A clone keeps its source's max_message.
                let (r, max) = match from {
                    Some(i) => {
                        let src = self.cons[i].as_ref().expect("found");
                        (src.try_clone(), src.max_message())
                    }
                    None => (
                        Consumer::attach(self.env.seg.clone(), self.env.params, self.env.wait),
                        self.env.params.max_message,
                    ),
                };
                if let (Some(sim), Some(i)) = (&self.sim, from) {
                    assert_eq!(sim.cons[i].as_ref().map(|m| m.max_message), Some(max));
                }
                trace!("clone a consumer into {c}: {:?}", r.as_ref().map(|_| ()));
                self.attached(C, c, r.map(Endpoint::C), max);
            }
            (_, false) => {
                let r = Consumer::attach(self.env.seg.clone(), self.env.params, self.env.wait);
                trace!("attach a consumer as {c}: {:?}", r.as_ref().map(|_| ()));
                self.attached(C, c, r.map(Endpoint::C), self.env.params.max_message);
            }
            _ => {}
        }
    }

    /// Records an attach in handle `i` of `role`, checked against the model.
    fn attached(&mut self, role: usize, i: usize, r: Result<Endpoint, Error>, max: u64) {
        if let Some(sim) = &mut self.sim {
            let want = match role {
                P => sim.add_producer(i),
                _ => sim.add_consumer(i, max),
            };
            match (&r, want) {
                (Ok(_), Ok(())) => {}
                (Err(Error::Busy { .. }), Err("busy")) => {}
                (got, want) => panic!("attach: the model says {want:?}, got {got:?}"),
            }
        }
        match r {
            Ok(Endpoint::P(tx)) => self.prods[i] = Some(tx),
            Ok(Endpoint::C(rx)) => self.cons[i] = Some(rx),
            Err(e) => {
                assert!(
                    matches!(e, Error::Busy { .. }) || self.corrupted(),
                    "attach: {e}"
                );
            }
        }
    }

    // --- consumers ---

    /// One receive of a consumer (of the kind the input says), or a new
    /// `max_message`.
    fn consumer_op(&mut self, input: &mut Input<'_>) {
        let sel = input.u8();
        let c = usize::from(sel >> 4) % MAXC;
        let Some(mut rx) = self.cons[c].take() else {
            return;
        };
        let kind = (sel & 0x0f) % 10;
        if self.corrupted() {
            self.unchecked_consumer_op(&mut rx, kind, input);
            self.cons[c] = Some(rx);
            return;
        }
        let mut next = self.sim.clone().expect("checked");
        let mut buf = vec![0x5a; usize::from(sel)];
        let zero = Duration::ZERO;
        match kind {
            0..=2 => {
                let (want, m) = next.recv(c, &self.msgs);
                let blocking = kind == 2 && want != Err(RecvTimeoutError::Timeout);
                let got = match kind {
                    0 => rx.try_recv(&mut buf).map_err(from_try),
                    1 => rx.recv_timeout(&mut buf, zero),
                    _ if blocking => rx.recv(&mut buf).map_err(RecvTimeoutError::from),
                    _ => rx.try_recv(&mut buf).map_err(from_try),
                };
                trace!(
                    "recv at {c} (kind {kind}): {got:?}, want {:?}",
                    want.as_ref().map(Vec::len)
                );
                check_recv(got, &buf, &want);
                if let Some(m) = m {
                    next.deliver(c, m, &self.msgs);
                }
                self.sim = Some(next);
            }
            3..=5 => {
                // A grant, held while other endpoints run (kind 5), then dropped.
                let (want, m) = next.recv_ref(c, &self.msgs);
                let got = match kind {
                    3 => rx.try_recv_ref().map_err(from_try),
                    4 if want != Err(RecvTimeoutError::Timeout) => {
                        rx.recv_ref().map_err(RecvTimeoutError::from)
                    }
                    _ => rx.recv_ref_timeout(zero),
                };
                trace!(
                    "recv_ref at {c}: {:?}, want {:?}",
                    got.as_ref().map(|g| g.len()),
                    want.as_ref().map(Vec::len)
                );
                match (got, &want) {
                    (Ok(g), Ok(bytes)) => {
                        assert!(*g == bytes[..], "recv_ref: content");
                        next.deliver(c, m.expect("a message"), &self.msgs);
                        self.sim = Some(next);
                        if kind == 5 {
                            self.busy_c[c] = true;
                            let _ = self.nested(input);
                            self.busy_c[c] = false;
                        }
                        drop(g);
                        if let Some(sim) = &mut self.sim {
                            sim.release(c);
                        }
                    }
                    (Err(e), want) => {
                        assert_eq!(&Err(e), want, "recv_ref");
                        self.sim = Some(next);
                    }
                    (Ok(g), want) => panic!("recv_ref: got {} bytes, want {want:?}", g.len()),
                }
            }
            6 => {
                // recv_pod of 16 bytes goes through recv_ref; it waits when empty.
                let (want, m) = next.recv_ref(c, &self.msgs);
                if want != Err(RecvTimeoutError::Timeout) {
                    let got = rx.recv_pod::<[u8; 16]>();
                    trace!(
                        "recv_pod at {c}: {got:?}, want {:?}",
                        want.as_ref().map(Vec::len)
                    );
                    match (got, want) {
                        (Ok(v), Ok(bytes)) => {
                            assert!(v[..] == bytes[..], "recv_pod: content");
                            next.deliver(c, m.expect("a message"), &self.msgs);
                            next.release(c);
                        }
                        (Err(RecvError::SizeMismatch { expected, found }), Ok(bytes)) => {
                            assert_eq!((expected, found), (16, bytes.len() as u64));
                            next.release(c);
                        }
                        (got, want) => {
                            assert_eq!(
                                got.map(|_| ()).map_err(RecvTimeoutError::from),
                                want.map(|_| ())
                            )
                        }
                    }
                    self.sim = Some(next);
                }
            }
            7 => {
                let max = match input.u8() % 4 {
                    0 => MAX_FUZZ_MESSAGE,
                    1 => u64::from(input.u8()),
                    _ => u64::from(input.u16()),
                };
                trace!("max_message of {c}: {max}");
                rx.set_max_message(max);
                next.cm(c).max_message = max;
                self.max_message_ever = self.max_message_ever.max(max);
                self.sim = Some(next);
            }
            _ => {
                // The consumer's view of the producers.
                assert_eq!(
                    rx.is_disconnected(),
                    next.all_gone(next.ckey(c), P),
                    "is_disconnected"
                );
            }
        }
        self.cons[c] = Some(rx);
    }

    /// A receive on a ring whose contents are unknown: any result will do, as long as
    /// it is sane and the call returns.
    fn unchecked_consumer_op(&mut self, rx: &mut Consumer, kind: u8, input: &mut Input<'_>) {
        let max_payload = self.env.params.max_record;
        let ceiling = self.max_message_ever;
        let mut buf = Vec::new();
        match kind {
            2 => {
                // A blocking receive while every producer is away: it ends at the end
                // of what is in the ring, unless an endpoint holds the reader slot.
                free_reader_slot_of_endpoint(&self.env.seg);
                let got = producers_away(&self.env.seg, rx.peers_at_attach(), || rx.recv(&mut buf));
                trace!("blocking recv, producers away: {got:?}");
                check_len(got.map_err(RecvTimeoutError::from), &buf, ceiling);
            }
            0 => check_len(rx.try_recv(&mut buf).map_err(from_try), &buf, ceiling),
            1 => check_len(rx.recv_timeout(&mut buf, Duration::ZERO), &buf, ceiling),
            3 | 5 => {
                if let Ok(g) = rx.try_recv_ref() {
                    assert!(touch(&g) <= max_payload);
                }
            }
            4 | 6 => {
                if let Ok(g) = rx.recv_ref_timeout(Duration::ZERO) {
                    assert!(touch(&g) <= max_payload);
                }
            }
            7 => {
                let max = u64::from(input.u16());
                rx.set_max_message(max);
                self.max_message_ever = self.max_message_ever.max(max);
            }
            _ => {
                let _ = rx.is_disconnected();
            }
        }
    }

    /// `recv_stream` (or its zero-timeout form), then reads of arbitrary sizes with
    /// steps between them, as far as the model says a read does not wait; dropped
    /// early or read to the end.
    fn read_stream(&mut self, input: &mut Input<'_>) {
        let sel = input.u8();
        let c = usize::from(sel >> 4) % MAXC;
        let Some(mut rx) = self.cons[c].take() else {
            return;
        };
        if self.corrupted() {
            self.unchecked_read_stream(&mut rx, sel);
        } else {
            self.checked_read_stream(c, &mut rx, sel, input);
        }
        self.cons[c] = Some(rx);
    }

    /// `read_stream` on a ring the model follows.
    fn checked_read_stream(&mut self, c: usize, rx: &mut Consumer, sel: u8, input: &mut Input<'_>) {
        let mut next = self.sim.clone().expect("checked");
        let want = next.reader_new(c, &self.msgs);
        let blocking = sel & 1 != 0 && !matches!(want, Err(RecvTimeoutError::Timeout));
        let got = if blocking {
            rx.recv_stream().map_err(RecvTimeoutError::from)
        } else {
            rx.recv_stream_timeout(Duration::ZERO)
        };
        trace!(
            "recv_stream at {c}: {:?}, want {:?}",
            got.as_ref().map(|r| r.len()),
            want.as_ref().map(|r| r.total)
        );
        let (mut r, mut rm) = match (got, want) {
            (Ok(r), Ok(rm)) => {
                assert_eq!(r.len(), rm.total, "recv_stream: the message length");
                (r, rm)
            }
            (Err(e), want) => {
                assert_eq!(Err(e), want.map(|_| ()), "recv_stream");
                self.sim = Some(next);
                return;
            }
            (Ok(r), Err(e)) => panic!("recv_stream: got {} bytes, want {e:?}", r.len()),
        };
        self.sim = Some(next);
        self.busy_c[c] = true;
        let mut got = Vec::new();
        // Delivered (read to `Ok(0)`), or cut short (an error).
        let mut ended = false;
        loop {
            let b = if input.is_empty() { 3 } else { input.u8() };
            match b % 4 {
                0 | 1 => {
                    let n = 1 + input.below(2 * self.frag);
                    let Some(sim) = &mut self.sim else { break };
                    let mut trial = sim.clone();
                    let mut trial_rm = rm.clone();
                    let want = trial.reader_read(c, &mut trial_rm, n, &self.msgs);
                    if want == ReadOut::Wait {
                        continue;
                    }
                    let mut buf = vec![0; n];
                    let out = match r.read(&mut buf) {
                        Ok(0) => ReadOut::End,
                        Ok(k) => ReadOut::Bytes(buf[..k].to_vec()),
                        Err(e) => ReadOut::Err(e.kind()),
                    };
                    trace!("  read {n} at {c}: {out:?}");
                    assert_eq!(out, want, "a read of {n} bytes");
                    *sim = trial;
                    rm = trial_rm;
                    match out {
                        ReadOut::Bytes(b) => got.extend_from_slice(&b),
                        ReadOut::End if !ended => {
                            assert!(got == self.msgs[rm.msg].content, "recv_stream: content");
                            sim.deliver(c, rm.msg, &self.msgs);
                            ended = true;
                        }
                        ReadOut::Err(_) => {
                            let whole = &self.msgs[rm.msg].content;
                            assert!(whole.starts_with(&got), "recv_stream: content");
                            ended = true;
                        }
                        _ => {}
                    }
                }
                2 => {
                    if self.depth < MAX_DEPTH {
                        self.depth += 1;
                        self.step(input);
                        self.depth -= 1;
                    }
                }
                _ => break,
            }
        }
        self.busy_c[c] = false;
        drop(r);
        if let Some(sim) = &mut self.sim {
            sim.reader_drop(c, &mut rm);
        }
    }

    /// `recv_stream_timeout(0)` on a ring whose contents are unknown, read to its end
    /// at once, while the attach counter says every producer is gone and the reader
    /// slot is free (as a peer may write them), so that no read waits.
    fn unchecked_read_stream(&mut self, rx: &mut Consumer, sel: u8) {
        let seg = self.env.seg.clone();
        producers_away(&seg, rx.peers_at_attach(), || {
            if let Ok(r) = rx.recv_stream_timeout(Duration::ZERO) {
                // Another endpoint holding the reader slot would make a read wait.
                free_reader_slot_of_endpoint(&seg);
                read_all(r, 1 + usize::from(sel) * 7);
            }
        });
    }

    // --- the peer ---

    /// A peer's write into the segment; from now on the model no longer holds.
    fn peer(&mut self, input: &mut Input<'_>) {
        if self.sim.take().is_some() {
            trace!("peer write: the model is off");
        }
        let h = self.env.seg.header();
        let p = &self.env.params;
        let n = p.cells() as u64;
        let table = self.env.seg.cell_table(p);
        let anchor = match input.u8() % 4 {
            0 => h.head.load(Ordering::Relaxed) & POS_MASK,
            1 => h.tail.load(Ordering::Relaxed) & POS_MASK,
            2 => 0,
            _ => input.u64(),
        };
        let pos = anchor.wrapping_add(i64::from(input.u8() as i8) as u64);
        let cursor = |input: &mut Input<'_>| {
            let position = match input.u8() % 4 {
                0 => pos,
                1 => pos.wrapping_add(u64::from(input.u16())),
                2 => pos.wrapping_sub(u64::from(input.u16())),
                _ => input.u64(),
            };
            let holder = match input.u8() % 4 {
                0 => 0,
                1 => u64::from(input.u8()) % (u64::from(p.max_endpoints) + 2),
                _ => u64::from(input.u8()),
            };
            (position & POS_MASK) | holder << POS_BITS
        };
        let kind = input.u8() % 12;
        trace!("peer write of kind {kind} near position {pos:#x}");
        match kind {
            0 => h.head.store(cursor(input), Ordering::Release),
            1 => h.tail.store(cursor(input), Ordering::Release),
            2 | 3 => {
                let stamp = match input.u8() % 8 {
                    0 => pos,
                    1 => pos.wrapping_add(1),
                    2 => pos.wrapping_add(n),
                    3 => pos.wrapping_sub(n),
                    4 => pos.wrapping_add(1).wrapping_sub(n),
                    5 => pos.wrapping_add(2 * n),
                    _ => input.u64(),
                };
                table.stamp(pos).store(stamp, Ordering::Release);
            }
            4 | 5 => {
                let word = match input.u8() % 3 {
                    0 => {
                        let flags = input.u8() & crate::frame::FLAG_BITS;
                        let len = match input.u8() % 3 {
                            0 => u32::from(input.u8()),
                            1 => u32::from(input.u16()),
                            _ => input.u32(),
                        };
                        encode_cell(len, flags)
                    }
                    1 => encode_cell(input.u32() % (n as u32 + 1), FLAG_PAD),
                    _ => input.u64(),
                };
                table.record(pos).store(word, Ordering::Release);
            }
            6 => {
                let counter = if input.u8() & 1 == 0 {
                    &h.producers
                } else {
                    &h.consumers
                };
                let v = match input.u8() % 4 {
                    0 => ALL_GONE,
                    1 => counter.load(Ordering::Relaxed) ^ u64::from(input.u8()),
                    2 => u64::from(input.u32()),
                    _ => input.u64(),
                };
                counter.store(v, Ordering::Release);
            }
            7 => {
                let slot = &h.endpoints[usize::from(input.u8()) % ENDPOINT_SLOTS];
                // The state, with the pid the slot has (or another one).
                let pid = word_pid(slot.word.load(Ordering::Relaxed));
                let v = match input.u8() % 7 {
                    0 => slot_word(ENDPOINT_VACANT, pid),
                    1 => slot_word(ENDPOINT_ATTACHED, pid),
                    2 => slot_word(ENDPOINT_DETACHED, pid),
                    // Left dead and unrecovered (any endpoint takes it over without a
                    // proof), counted or not.
                    3 => {
                        holder_word(ENDPOINT_DEAD, 0, 0, input.u32(), 0)
                            | (u64::from(input.u8() & 1) * SLOT_COUNTED)
                    }
                    // Held by a recoverer or an endpoint of each kind of holder.
                    4 => holder_word(
                        ENDPOINT_RECOVERING,
                        u32::from(input.u8() % 4),
                        u32::from(input.u8()),
                        input.u32(),
                        pid,
                    ),
                    5 => holder_word(
                        ENDPOINT_ATTACHED,
                        u32::from(input.u8() % 4),
                        u32::from(input.u8()),
                        input.u32(),
                        pid,
                    ),
                    _ => input.u64(),
                };
                slot.word.store(v, Ordering::Release);
            }
            8 => {
                let word = match input.u8() % 4 {
                    0 => &h.data_ready,
                    1 => &h.space_ready,
                    2 => &h.writer_free,
                    _ => &h.reader_free,
                };
                scribble_event_word(word, input);
            }
            9 => {
                // Payload bytes (no grant holds a slice across steps).
                let index = ((pos & (n - 1)) as usize) * p.cell_size;
                scribble_payload(&self.env.seg, p.capacity, index, input);
            }
            10 => {
                // Only the holder bits of a cursor.
                let word = if input.u8() & 1 == 0 {
                    &h.head
                } else {
                    &h.tail
                };
                let holder = u64::from(input.u8()) % (u64::from(p.max_endpoints) + 2);
                let w = word.load(Ordering::Relaxed);
                word.store((w & POS_MASK) | holder << POS_BITS, Ordering::Release);
            }
            _ => {
                // The stamps of a window made free for their positions again (a peer
                // that "repairs" the ring), so that the ring goes on working.
                let from = h.tail.load(Ordering::Relaxed) & POS_MASK;
                for q in from..from + u64::from(input.u8()).min(n) {
                    table.stamp(q).store(q, Ordering::Release);
                }
            }
        }
    }

    // --- the end ---

    /// Ends every endpoint, in an order the input picks, and checks that the
    /// survivors see their peers gone: the consumers only after every message left
    /// in the ring, each taken once.
    fn finish(&mut self, input: &mut Input<'_>) {
        let consumers_first = input.u8() & 1 == 0;
        if self.corrupted() {
            for i in 0..MAXP.max(MAXC) {
                if consumers_first {
                    self.cons.get_mut(i).map(Option::take);
                }
                self.prods.get_mut(i).map(Option::take);
            }
            return;
        }
        if consumers_first {
            for c in 0..MAXC {
                if self.cons[c].take().is_some() {
                    self.sim.as_mut().expect("checked").drop_consumer(c);
                }
            }
            let sim = self.sim.as_ref().expect("checked");
            for (p, tx) in self.prods.iter_mut().enumerate() {
                let Some(tx) = tx else { continue };
                if sim.all_gone(sim.pkey(p), C) {
                    assert_consumers_gone(tx);
                }
            }
            return;
        }
        if self.cons.iter().all(Option::is_none) {
            // A consumer to drain the ring, attached while the producers are there, so
            // that they are its own and their leaving disconnects it.
            let env = &self.env;
            let sim = self.sim.as_mut().expect("checked");
            let r = Consumer::attach(env.seg.clone(), env.params, env.wait);
            let want = sim.add_consumer(0, env.params.max_message);
            assert_eq!(r.is_ok(), want.is_ok(), "attach: {r:?}");
            let Ok(rx) = r else { return };
            self.cons[0] = Some(rx);
        }
        for p in 0..MAXP {
            if self.prods[p].take().is_some() {
                self.sim.as_mut().expect("checked").drop_producer(p);
            }
        }
        let env = &self.env;
        let sim = self.sim.as_mut().expect("checked");
        sim.check_segment(env);
        let live: Vec<usize> = (0..MAXC).filter(|&c| self.cons[c].is_some()).collect();
        for &c in &live {
            self.cons[c]
                .as_mut()
                .expect("live")
                .set_max_message(u64::MAX);
            sim.cm(c).max_message = u64::MAX;
        }
        if sim.counts[P] & 0xffff_ffff != 0 {
            // Endpoints that never came (a header that counts phantoms): nothing more.
            return;
        }
        // Each consumer drains to `Disconnected`, or, if no producer of its own ever
        // came (they had all left before it attached), to an empty ring, where it
        // would wait for the next producer.
        let mut disconnected = [false; MAXC];
        let rounds = sim.recs.len() + 3;
        for _ in 0..rounds {
            for &c in &live {
                if disconnected[c] {
                    continue;
                }
                let rx = self.cons[c].as_mut().expect("live");
                let mut buf = Vec::new();
                let (want, m) = sim.recv(c, &self.msgs);
                let got = rx.try_recv(&mut buf).map_err(from_try);
                trace!(
                    "drain at {c}: {:?}, want {:?}",
                    got,
                    want.as_ref().map(Vec::len)
                );
                check_recv(got, &buf, &want);
                if let Some(m) = m {
                    sim.deliver(c, m, &self.msgs);
                }
                let waits_for_the_next = !sim.all_gone(sim.ckey(c), P)
                    && want == Err(RecvTimeoutError::Timeout)
                    && sim.recs.is_empty();
                if want == Err(RecvTimeoutError::Disconnected) || waits_for_the_next {
                    disconnected[c] = true;
                }
            }
            if live.iter().all(|&c| disconnected[c]) {
                break;
            }
        }
        assert!(
            live.iter().all(|&c| disconnected[c]),
            "the consumers did not drain to Disconnected (or to an empty ring): {:?}",
            sim.recs
        );
        sim.check_segment(env);
        assert!(
            sim.recs.is_empty() && sim.head == sim.tail,
            "records left in the ring"
        );
        for (m, msg) in self.msgs.iter().enumerate() {
            if sim.complete[m] {
                assert_eq!(
                    sim.taken[m],
                    1,
                    "message {m} ({} bytes) taken",
                    msg.content.len()
                );
            }
        }
        for &c in &live {
            assert_drained(self.cons[c].as_mut().expect("live"));
        }
    }
}

/// Runs `f` with every producer away, as a peer may write it: the attach counter says
/// all are gone, and every endpoint slot that holds a producer (alive or not) reads
/// detached, since a heap ring's endpoints count as alive while their slot says so.
/// A consumer call that would wait for more then stops at the end of what is in the
/// ring. Used on rings whose contents are unknown; everything is put back after.
fn producers_away<T>(seg: &Segment, then: u64, f: impl FnOnce() -> T) -> T {
    let h = seg.header();
    // Every producer gone, and one came since the consumer attached (a count of
    // attaches other than `then`, the counter it read when it attached, whatever a
    // peer wrote since): its wait then ends at the end of what is there.
    let away = ((then >> 32).wrapping_add(1) & 0xffff_ffff) << 32;
    let counter = h.producers.swap(away, Ordering::AcqRel);
    let mut saved = Vec::new();
    for (i, slot) in h.endpoints.iter().enumerate() {
        let word = slot.word.load(Ordering::Acquire);
        if crate::liveness::occupied(word_state(word))
            && slot.role.load(Ordering::Relaxed) == ROLE_PRODUCER
        {
            let detached = slot_word(ENDPOINT_DETACHED, word_pid(word));
            slot.word.store(detached, Ordering::Release);
            saved.push((i, word));
        }
    }
    let r = f();
    for (i, word) in saved {
        h.endpoints[i].word.store(word, Ordering::Release);
    }
    h.producers.store(counter, Ordering::Release);
    r
}

/// Frees the reader-stream slot if an endpoint holds it (as a peer may write it): a
/// blocking read would rightly wait for that endpoint. A mark of a slot that holds no
/// endpoint stays: the library must get past it.
fn free_reader_slot_of_endpoint(seg: &Segment) {
    let h = seg.header();
    let head = h.head.load(Ordering::Relaxed);
    let holder = head >> POS_BITS;
    let held = holder != 0
        && h.endpoints
            .get(holder as usize - 1)
            .is_some_and(|s| crate::liveness::occupied(s.state()));
    if held {
        h.head.store(head & POS_MASK, Ordering::Relaxed);
    }
}

/// An endpoint just attached.
#[derive(Debug)]
enum Endpoint {
    P(Producer),
    C(Consumer),
}

/// Checks a receive into `buf` against the model's expectation.
fn check_recv(got: Result<usize, RecvTimeoutError>, buf: &[u8], want: &Got) {
    match (got, want) {
        (Ok(n), Ok(bytes)) => {
            assert_eq!(n, bytes.len(), "recv: length");
            assert!(buf == &bytes[..], "recv: content");
        }
        (got, want) => assert_eq!(got.map(|_| ()), want.as_ref().map(|_| ()).map_err(|e| *e)),
    }
}

// ---------------------------------------------------------------------------------
// header_open
// ---------------------------------------------------------------------------------

/// A header field `header_open` can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum F {
    Magic,
    Version,
    HeaderSize,
    LayoutHash,
    Abi,
    Kind,
    Capacity,
    CellSize,
    MaxRecord,
    MaxMessage,
    Flags,
    CreatorPid,
    CreatorUid,
    CreatorStart,
    DataOffset,
    SegmentLen,
    MaxEndpoints,
    Producers,
    Consumers,
    State,
    Tail,
    Head,
    /// State word (state and pid), role and generation of an endpoint slot.
    EpState(usize),
    EpRole(usize),
    EpGeneration(usize),
    /// State word (epoch and waiters) and futex word of an event count (data, space,
    /// writer, reader).
    EcEpoch(usize),
    EcWaiters(usize),
}

impl F {
    const SIMPLE: [F; 22] = [
        F::Magic,
        F::Version,
        F::HeaderSize,
        F::LayoutHash,
        F::Abi,
        F::Kind,
        F::Capacity,
        F::CellSize,
        F::MaxRecord,
        F::MaxMessage,
        F::Flags,
        F::CreatorPid,
        F::CreatorUid,
        F::CreatorStart,
        F::DataOffset,
        F::SegmentLen,
        F::MaxEndpoints,
        F::Producers,
        F::Consumers,
        F::State,
        F::Tail,
        F::Head,
    ];

    fn pick(input: &mut Input<'_>) -> F {
        let k = usize::from(input.u8());
        let i = usize::from(input.u8()) % ENDPOINT_SLOTS;
        match k % 32 {
            k if k < F::SIMPLE.len() => F::SIMPLE[k],
            22..=24 => F::EpState(i % 8),
            25 => F::EpState(i),
            26 => F::EpRole(i),
            27 => F::EpGeneration(i),
            28 | 29 => F::EcEpoch(i % 4),
            _ => F::EcWaiters(i % 4),
        }
    }

    /// Whether `validate` reads it (a change may make the header invalid).
    fn validated(self) -> bool {
        matches!(
            self,
            F::Magic
                | F::Version
                | F::HeaderSize
                | F::LayoutHash
                | F::Abi
                | F::Kind
                | F::Capacity
                | F::CellSize
                | F::MaxRecord
                | F::Flags
                | F::DataOffset
                | F::SegmentLen
                | F::MaxEndpoints
                | F::State
        )
    }

    fn get(self, h: &Header) -> HField<'_> {
        let ec = |i: usize| match i {
            0 => &h.data_ready,
            1 => &h.space_ready,
            2 => &h.writer_free,
            _ => &h.reader_free,
        };
        match self {
            F::Magic => HField::U64(&h.magic),
            F::Version => HField::U32(&h.version),
            F::HeaderSize => HField::U32(&h.header_size),
            F::LayoutHash => HField::U64(&h.layout_hash),
            F::Abi => HField::U32(&h.abi),
            F::Kind => HField::U32(&h.kind),
            F::Capacity => HField::U64(&h.capacity),
            F::CellSize => HField::U64(&h.cell_size),
            F::MaxRecord => HField::U64(&h.max_record),
            F::MaxMessage => HField::U64(&h.max_message),
            F::Flags => HField::U64(&h.flags),
            F::CreatorPid => HField::U32(&h.creator_pid),
            F::CreatorUid => HField::U32(&h.creator_uid),
            F::CreatorStart => HField::U64(&h.creator_start_time),
            F::DataOffset => HField::U64(&h.data_offset),
            F::SegmentLen => HField::U64(&h.segment_len),
            F::MaxEndpoints => HField::U32(&h.max_endpoints),
            F::Producers => HField::U64(&h.producers),
            F::Consumers => HField::U64(&h.consumers),
            F::State => HField::U32(&h.state),
            F::Tail => HField::U64(&h.tail),
            F::Head => HField::U64(&h.head),
            F::EpState(i) => HField::U64(&h.endpoints[i].word),
            F::EpRole(i) => HField::U32(&h.endpoints[i].role),
            F::EpGeneration(i) => HField::U64(&h.endpoints[i].generation),
            F::EcEpoch(i) => HField::U64(&ec(i).state),
            F::EcWaiters(i) => HField::U32(&ec(i).futex),
        }
    }
}

/// A value for field `f` whose valid value is `valid`: near it, an edge, or raw.
fn field_value(input: &mut Input<'_>, f: F, valid: u64, n: u64) -> u64 {
    match input.u8() % 10 {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => valid.wrapping_add(1),
        4 => valid.wrapping_sub(1),
        5 => valid.wrapping_mul(2),
        6 => valid / 2,
        7 => match f {
            F::Tail | F::Head => valid.wrapping_add(n * u64::from(input.u8())),
            F::Producers | F::Consumers => u64::from(input.u8() % 3) | u64::from(input.u8()) << 32,
            F::EpState(_) => valid & !0xffff_ffff | u64::from(input.u8() % 5),
            _ => valid ^ 1 << (input.u8() % 64),
        },
        8 => u64::from(input.u32()),
        _ => input.u64(),
    }
}

/// The fields of `from` copied into `to` (the semaphores and reserved bytes stay).
#[cfg(miri)]
fn copy_fields(from: &Header, to: &Header) {
    let mut all: Vec<F> = F::SIMPLE.to_vec();
    for i in 0..ENDPOINT_SLOTS {
        all.extend([F::EpState(i), F::EpRole(i), F::EpGeneration(i)]);
    }
    for i in 0..4 {
        all.extend([F::EcEpoch(i), F::EcWaiters(i)]);
    }
    for f in all {
        f.get(to).store(f.get(from).load());
    }
}

/// A valid MPMC header with arbitrary fields written over it, in a file of arbitrary
/// length (a memfd, sealed or not, or a POSIX shared-memory object), opened as
/// `open_fd` / `open` open it: an error, or parameters that fit the file and a ring
/// that works. Under Miri, which has neither, the header is validated in a heap
/// segment.
///
/// Input: the valid ring's `Spec`; the backing and file-length selectors; up to 15
/// field writes (field, value); up to 3 raw 8-byte writes at any offset of the header
/// outside its semaphores; then operations as for [`ring_ops`].
pub fn header_open(data: &[u8]) {
    let mut input = Input::new(data);
    let spec = Spec::read(&mut input, &CAPACITIES[..7]);
    let backing = input.u8();
    let file_sel = input.u8();
    // The header a creator writes for `spec`, in a scratch segment.
    let (scratch, valid) = heap_ring(&spec);
    let (reference, _) = heap_ring(&spec);
    let h = scratch.header();
    let n = valid.cells() as u64;
    let mut validated_changed = false;
    for _ in 0..input.u8() % 16 {
        let f = F::pick(&mut input);
        let field = f.get(h);
        let v = field_value(&mut input, f, field.load(), n);
        field.store(v);
        validated_changed |= f.validated() && field.load() != f.get(reference.header()).load();
    }
    let mut raw = Vec::new();
    for _ in 0..input.u8() % 4 {
        let off = usize::from(input.u16()) % (HEADER_SIZE - 8);
        let bytes = input.array::<8>();
        // Not the semaphores (glibc aborts on a semaphore a peer scribbled over; see
        // `spsc.rs`).
        if !(256..512).contains(&(off + 8)) && !(256..512).contains(&off) {
            raw.push((off, bytes));
        }
    }
    validated_changed |= clear_flags_miri_lacks(&h.flags);
    let claimed = h.segment_len.load(Ordering::Relaxed);
    let limit = (HEADER_SIZE + 2 * MAX_OPEN_CAPACITY + MAX_OPEN_CAPACITY / 8 * 16) as u64;
    let file_len = input.file_len(file_sel, claimed, limit);
    // A clean header over a file long enough: opening must succeed.
    let must_open = !validated_changed
        && raw.is_empty()
        && file_len >= valid.segment_len() as u64
        && backing % 4 != 3;
    let opened = open_image(&scratch, &raw, file_len, backing);
    let (seg, params) = match opened {
        Ok(x) => x,
        Err(e) => {
            trace!("open: {e}");
            assert!(!must_open, "a valid header did not open: {e}");
            return;
        }
    };
    trace!("opened: {params:?}");
    check_validated(&params, KIND_MPMC, file_len);
    assert!(params.cell_size.is_power_of_two() && params.cell_size <= params.capacity / 2);
    assert!((2..=ENDPOINT_SLOTS as u32).contains(&params.max_endpoints));
    if must_open {
        assert_eq!(
            params,
            RingParams {
                max_message: params.max_message,
                ..valid
            }
        );
    }
    // The cell table, as the creator initialises it for the cursors' position.
    let hd = seg.header();
    let (tail, head) = (
        hd.tail.load(Ordering::Relaxed),
        hd.head.load(Ordering::Relaxed),
    );
    let table = seg.cell_table(&params);
    if file_sel & 0x80 == 0 {
        let start = head & POS_MASK;
        for q in start..start.saturating_add(params.cells() as u64) {
            table.stamp(q).store(q, Ordering::Relaxed);
        }
    }
    let counters_clean = [&hd.producers, &hd.consumers].iter().all(|c| {
        let v = c.load(Ordering::Relaxed);
        v & 0xffff_ffff == 0 && v >> 32 < 1 << 31
    });
    // An attached slot in a file nobody holds the lock of is a dead endpoint: the
    // first attach recovers it, which the model does not follow.
    let states_clean = hd.endpoints[..params.max_endpoints as usize]
        .iter()
        .all(|s| matches!(s.state(), ENDPOINT_VACANT | ENDPOINT_DETACHED));
    let checked = file_sel & 0x80 == 0
        && tail == head
        && tail < MAX_START
        && raw.is_empty()
        && counters_clean
        && states_clean;
    trace!("header_open: checked {checked}");
    let env = Env {
        seg,
        params,
        wait: spec.wait,
        hostile: false,
    };
    if let Some(mut h) = Harness::new(env, checked) {
        h.run(&mut input);
    }
}

/// Writes the header of `scratch` (and the `raw` writes over it) into a file of
/// `file_len` bytes of the backing `backing` selects, and opens it as an MPMC ring
/// without waiting for READY.
fn open_image(
    scratch: &Segment,
    raw: &[(usize, [u8; 8])],
    file_len: u64,
    backing: u8,
) -> Result<(Arc<Segment>, RingParams), Error> {
    #[cfg(miri)]
    {
        let _ = (raw, backing);
        let params = scratch
            .header()
            .validate(KIND_MPMC, file_len)
            .map_err(|f| crate::segment::shared::fault_to_error("(heap)", f, Duration::ZERO))?;
        let seg = HeapSegment::new(&params).expect("a segment of a validated size");
        copy_fields(scratch.header(), seg.header());
        Ok((Arc::new(Segment::Heap(seg)), params))
    }
    #[cfg(not(miri))]
    {
        let mut image = vec![0u8; HEADER_SIZE];
        // SAFETY: the scratch header is 4096 initialised bytes (a zeroed allocation that
        // `Header::init` wrote), and no other thread touches it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                std::ptr::from_ref(scratch.header()).cast::<u8>(),
                image.as_mut_ptr(),
                HEADER_SIZE,
            )
        };
        for (off, bytes) in raw {
            image[*off..*off + 8].copy_from_slice(bytes);
        }
        files::open(&image, file_len, backing)
    }
}

/// Header images in real files, opened as the library opens them.
#[cfg(not(miri))]
mod files {
    use std::os::fd::{AsFd, OwnedFd};
    use std::sync::Arc;
    use std::time::Duration;

    use nix::fcntl::{fcntl, FcntlArg, OFlag, SealFlag};
    use nix::sys::memfd::{memfd_create, MFdFlags};
    use nix::sys::mman::{shm_open, shm_unlink};
    use nix::sys::stat::{fchmod, Mode as Perm};
    use nix::sys::uio::pwrite;
    use nix::unistd::ftruncate;

    use crate::header::{RingParams, KIND_MPMC};
    use crate::options::OpenOptions;
    use crate::segment::Segment;
    use crate::Error;

    fn io(op: &'static str, e: nix::errno::Errno) -> Error {
        Error::Io {
            op,
            name: "(fuzz)".to_string(),
            source: e.into(),
        }
    }

    /// Sizes the file, writes the image's first bytes (no more than the file holds).
    fn fill(fd: &OwnedFd, image: &[u8], file_len: u64) -> Result<(), Error> {
        ftruncate(fd, file_len as i64).map_err(|e| io("ftruncate", e))?;
        let n = image.len().min(file_len as usize);
        let w = pwrite(fd.as_fd(), &image[..n], 0).map_err(|e| io("pwrite", e))?;
        assert_eq!(w, n);
        Ok(())
    }

    /// `backing % 4`: 0 and 1 a sealed memfd (`open_fd`), 2 a POSIX object (`open`),
    /// 3 a memfd without seals (refused).
    pub(super) fn open(
        image: &[u8],
        file_len: u64,
        backing: u8,
    ) -> Result<(Arc<Segment>, RingParams), Error> {
        if backing % 4 == 2 {
            static NEXT: crate::sync::ProcessCounter = crate::sync::ProcessCounter::new(0);
            let name = format!(
                "/shmlane-fuzz-{}-{}",
                std::process::id(),
                crate::sync::count(&NEXT)
            );
            let fd = shm_open(
                name.as_str(),
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
                Perm::S_IRUSR | Perm::S_IWUSR,
            )
            .map_err(|e| io("shm_open", e))?;
            let r = fill(&fd, image, file_len).and_then(|()| {
                crate::segment::posix::open(&name, KIND_MPMC, &OpenOptions::new(), Duration::ZERO)
            });
            let _ = shm_unlink(name.as_str());
            let (s, p) = r?;
            return Ok((Arc::new(Segment::Posix(s)), p));
        }
        let fd = memfd_create(
            "shmlane-fuzz",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(|e| io("memfd_create", e))?;
        // A memfd starts at mode 0777; `create` narrows it, and `open` refuses wider.
        fchmod(&fd, Perm::S_IRUSR | Perm::S_IWUSR).map_err(|e| io("fchmod", e))?;
        fill(&fd, image, file_len)?;
        if backing % 4 != 3 {
            let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
            fcntl(&fd, FcntlArg::F_ADD_SEALS(seals)).map_err(|e| io("F_ADD_SEALS", e))?;
        }
        let (s, p) =
            crate::segment::memfd::open(fd, KIND_MPMC, &OpenOptions::new(), Duration::ZERO)?;
        Ok((Arc::new(Segment::Memfd(s)), p))
    }
}

// ---------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------

/// Seeds of [`ring_ops`]: see `op_seeds`.
pub fn ring_ops_seeds() -> Vec<Vec<u8>> {
    op_seeds(false)
}

/// Seeds of [`hostile_peer`]: see `op_seeds`.
pub fn hostile_peer_seeds() -> Vec<Vec<u8>> {
    op_seeds(true)
}

/// Encodes operations for [`ring_ops`] (see `Harness::step` for the codes).
#[derive(Default)]
struct Program(Vec<u8>);

impl Program {
    fn spec(&mut self, sel: u8, cell: u8, endpoints: u8, wait: u8) {
        self.0.extend_from_slice(&[sel, cell, endpoints, wait]);
    }
    /// A length of class 4 (`below(max + 1)`) or 7 (`below(4 * cap + 1)`).
    fn len(&mut self, class: u8, len: u32) {
        self.0.push(class);
        self.0.extend_from_slice(&len.to_le_bytes());
    }
    fn try_send(&mut self, p: u8, class: u8, len: u32) {
        self.0.extend_from_slice(&[0, p]);
        self.len(class, len);
    }
    fn recv(&mut self, c: u8, kind: u8) {
        self.0.extend_from_slice(&[8, c << 4 | kind]);
    }
    fn producer_life(&mut self, p: u8, how: u8) {
        self.0.extend_from_slice(&[7, p << 2 | how]);
    }
    fn consumer_life(&mut self, c: u8, how: u8) {
        self.0.extend_from_slice(&[13, c << 2 | how]);
    }
    /// A grant of `len` bytes, with `inner` steps while it is open, then `action`.
    fn reserve(&mut self, p: u8, len: u32, inner: &[u8], action: u8) {
        self.0.extend_from_slice(&[3, p]);
        self.len(4, len);
        self.0.extend_from_slice(inner);
        self.0.push(action);
    }
    /// A stream of `len` bytes in pieces of `piece`, a receive of consumer `c`
    /// between pieces; finished or dropped.
    fn stream(&mut self, p: u8, len: u32, piece: u16, c: u8, finish: bool) {
        self.0.extend_from_slice(&[5, p]);
        self.len(7, len);
        for _ in 0..len / u32::from(piece.max(1)) + 1 {
            self.0.push(0);
            self.0.extend_from_slice(&piece.to_le_bytes());
            self.0.extend_from_slice(&[3, 8, c << 4]);
        }
        self.0.push(if finish { 6 } else { 7 });
    }
    /// A stream read by consumer `c` in reads of up to `chunk`, `reads` of them, then
    /// dropped.
    fn read_stream(&mut self, c: u8, reads: usize, chunk: u32) {
        self.0.extend_from_slice(&[11, c << 4]);
        for _ in 0..reads {
            self.0.push(0);
            self.0.extend_from_slice(&chunk.to_le_bytes());
        }
        self.0.push(3);
    }
    fn peer(&mut self, bytes: &[u8]) {
        self.0.push(14);
        self.0.extend_from_slice(bytes);
    }
}

/// Operation sequences: two producers and two consumers, sends of every size class,
/// grants held while others send and receive, streams, readers, endpoints dropped and
/// re-attached; for `hostile_peer`, peer writes near the end.
fn op_seeds(hostile: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (sel, cell) in [
        (0u8, 0u8),
        (2, 1),
        (5, 2),
        (6, 0),
        (7, 3),
        (0x0a, 1),
        (0x43, 2),
    ] {
        let mut p = Program::default();
        p.spec(sel, cell, 2, 0);
        if sel & 0x40 != 0 {
            p.0.extend_from_slice(&0x0fff_fff0_1234u64.to_le_bytes()); // start
        }
        p.producer_life(1, 0); // clone producer 0 into 1
        p.consumer_life(1, 0); // clone consumer 0 into 1
        for (i, (class, len)) in [(4u8, 10u32), (4, 200), (7, 999), (4, 7), (7, 77)]
            .into_iter()
            .enumerate()
        {
            p.try_send(i as u8 % 2, class, len);
            p.recv(i as u8 % 2, 0);
        }
        // A grant held while the other producer sends and a consumer receives.
        let mut inner = vec![0x80, 0, 1, 4, 30, 0, 0, 0, 0x80, 8, 0x10];
        inner.extend_from_slice(&[0x80, 8, 0]);
        p.reserve(0, 40, &inner, 0);
        p.reserve(1, 12, &[], 3); // dropped
        p.recv(0, 3); // try_recv_ref
        p.stream(0, 3000, 200, 1, true);
        p.read_stream(0, 8, 100);
        p.stream(1, 2000, 300, 0, false); // abandoned
        p.recv(1, 0);
        p.recv(0, 0);
        p.producer_life(0, 1); // drop producer 0
        p.producer_life(0, 2); // attach a new one
        p.consumer_life(1, 1); // drop consumer 1
        p.try_send(0, 7, 5000);
        p.recv(0, 2);
        if hostile {
            p.peer(&[0, 0, 2, 0, 1]); // a stamp at head
            p.recv(0, 0);
            p.peer(&[0, 0, 10, 0, 3]); // head holder
            p.try_send(1, 4, 20);
            p.peer(&[1, 0, 6, 0, 0]); // producers gone
            p.read_stream(0, 2, 50);
        }
        p.0.push(1); // finish: the producers leave first
        out.push(p.0);
    }
    out
}

/// Seeds of [`cell_decode`]: tables written by a real producer (whole messages,
/// fragments, an abandoned stream, padding) read back, and a few hand-made ones.
pub fn cell_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (sel, cell) in [(0u8, 0u8), (1, 1), (2, 0), (4, 2), (5, 3)] {
        let mut v = vec![0]; // no raw decode_cell words
        v.extend_from_slice(&[sel, cell, 0, 0]); // spec
        v.extend_from_slice(&[0, 0]); // head at 0 (no holder), producers gone
        let ops = [0u8, 2, 4, 5, 7, 9, 1, 3, 6, 8, 10];
        v.push(ops.len() as u8);
        v.extend_from_slice(&ops);
        // Cells: whole records of 1..3 cells, a BEGIN with its total, a middle, an END.
        for (i, flags_sel) in [0u8, 0, 1, 2, 3, 4, 5, 0].into_iter().enumerate() {
            v.push(if i == 3 { 0x80 } else { 0 }); // published, structured word
            v.push(flags_sel);
            v.push(0);
            v.push(8 * i as u8 + 1);
            if i == 3 {
                v.extend_from_slice(&[0, 200, 0]);
            }
        }
        out.push(v);
    }
    out
}

/// Seeds of [`header_open`]: valid headers of rings of several shapes, with a few
/// harmless field writes, on each backing, with operations after them.
pub fn header_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (sel, cell, backing) in [
        (0u8, 0u8, 0u8),
        (3, 1, 2),
        (0x46, 2, 1),
        (5, 0, 3),
        (2, 1, 0),
    ] {
        let mut p = Program::default();
        p.spec(sel, cell, 3, 0);
        if sel & 0x40 != 0 {
            p.0.extend_from_slice(&4096u64.to_le_bytes());
        }
        p.0.extend_from_slice(&[backing, 0]); // backing; file as the creator sized it
                                              // One field write: creator_pid (field 11) := a raw value.
        p.0.extend_from_slice(&[1, 11, 0, 9]);
        p.0.extend_from_slice(&0x4444u64.to_le_bytes());
        p.0.push(0); // no raw writes
        p.producer_life(1, 0);
        p.try_send(1, 4, 20);
        p.try_send(0, 7, 900);
        p.recv(0, 0);
        p.recv(0, 0);
        p.stream(1, 700, 100, 0, true);
        p.read_stream(0, 10, 64);
        p.0.push(1);
        out.push(p.0);
    }
    out
}

// ---------------------------------------------------------------------------------
// Library bugs the fuzz targets found
// ---------------------------------------------------------------------------------

/// Minimal reproducers of the library bugs the fuzz targets found (fixed): each failed
/// by waiting, which the test bounds.
#[cfg(test)]
mod found_bugs {
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    use super::*;
    use crate::RingOptions;

    /// Runs `f` on a thread; its result, or `None` if it has not returned within 2 s
    /// (the thread is then left waiting).
    fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (done, result) = mpsc::channel();
        thread::spawn(move || {
            let _ = done.send(f());
        });
        result.recv_timeout(Duration::from_secs(2)).ok()
    }

    /// `try_send` of a message in fragments decided "room for every fragment" from
    /// `tail - head` (`room_for_fragmented`), which counts cells a consumer has taken
    /// but not released as free, and then claimed the fragments with
    /// `Mode::Block(None)`: it waited until that consumer released them, here for ever
    /// (the consumer is this thread's grant).
    #[test]
    fn try_send_in_fragments_never_waits() {
        // 64 cells of 64 bytes; records of up to 2048 bytes; fragments of 1024.
        let opts = RingOptions::new(4096).cell_size(64);
        let (mut tx, mut rx) = crate::mpmc::channel(&opts).expect("a ring");
        let mut rx2 = rx.try_clone().expect("a second consumer");
        tx.try_send(&[1; 2048]).expect("cells 0..32");
        let grant = rx.try_recv_ref().expect("cells 0..32 taken, not released");
        tx.try_send(&[2; 2048]).expect("cells 32..64");
        assert_eq!(rx2.try_recv(&mut Vec::new()), Ok(2048));
        // tail = head = 64. 2100 bytes take 33 cells, + 16 of slack <= 64: "room";
        // the first fragment's cells 64..80 are cells 0..16, held by `grant`.
        let r = bounded(move || tx.try_send(&[3; 2100]));
        drop(grant);
        assert_eq!(
            r,
            Some(Err(TrySendError::Full)),
            "try_send waited for a consumer"
        );
    }

    /// A reader-stream slot marked with an endpoint slot that holds no endpoint
    /// (written by a buggy peer) made `try_take` report `SlotHeld` for ever, and
    /// `poll_record` returned that before it looked at the producers: a blocking
    /// receive waited for ever although every producer was gone and the ring empty.
    /// (Waiters now free such a mark: `free_orphaned_stream_slots`.)
    #[test]
    fn reader_slot_of_no_consumer_does_not_hang_recv() {
        let spec = Spec {
            capacity: 1024,
            cell_size: 64,
            max_endpoints: 4,
            max_message: MAX_FUZZ_MESSAGE,
            flags: 0,
            start: 0,
            wait: Wait::Adaptive,
        };
        let (seg, params) = heap_ring(&spec);
        let tx = Producer::attach(seg.clone(), params, spec.wait).expect("slot 0");
        let mut rx = Consumer::attach(seg.clone(), params, spec.wait).expect("slot 1");
        drop(tx);
        assert!(rx.is_disconnected());
        // Slot 2 (mark 3) has never been attached.
        seg.header().head.store(3 << POS_BITS, Ordering::Release);
        let r = bounded(move || rx.recv(&mut Vec::new()));
        assert!(
            matches!(
                r,
                Some(Err(RecvError::Disconnected | RecvError::Corrupt(_)))
            ),
            "recv waited behind a slot nobody holds: {r:?}"
        );
    }
}
