//! The SPSC fuzz targets (see the parent module).
//!
//! Each entry point takes arbitrary bytes, builds a ring in private heap memory (the
//! same header, data region and protocol code as a shared segment) and panics only
//! when shmlane misbehaves:
//!
//! - [`frame_decode`]: arbitrary bytes as the data region, arbitrary cursors, and a
//!   consumer whose producer is gone reads until the region runs out. Every read
//!   returns a message or an error, never panics, and the reads end: a record header
//!   is valid at one position in 2^27 bytes only (its tag), and every lap starts at
//!   index 0, so one region yields at most two laps of records.
//! - [`ring_ops`]: an arbitrary sequence of producer and consumer operations in one
//!   thread (send, reserve / commit / abort, streams written and read in pieces,
//!   receives of every kind, endpoints re-attaching), checked against a model: a
//!   `VecDeque` of the messages that must come out, and how much of each is published.
//! - [`header_open`]: arbitrary header fields. Validation refuses them, or gives
//!   parameters that fit the segment; then attaching fails cleanly or gives a ring
//!   that works (checked against the model when the cursors say the ring is empty).
//! - [`hostile_peer`]: `ring_ops` plus a fuzzer-driven peer that writes arbitrary
//!   values into the cursors, endpoint states, event counts, record headers and
//!   payload bytes between the endpoints' steps. From its first write on, results are
//!   checked for sanity only: no panic, no out-of-bounds access, no hang.
//!
//! Nothing here waits on an empty or full ring: the endpoints use their `try_` and
//! zero-timeout calls, and blocking calls only where the model says they return at
//! once, or, on a ring whose contents are unknown, while the producer's endpoint slot
//! reads "detached", so that the consumer stops at the end of what is there.
//!
//! The seeds of each target are in [`TARGETS`](super::TARGETS).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use super::common::{
    assert_consumers_gone, assert_drained, check_len, check_validated, commit_prefix, content,
    from_try, heap_segment, read_all, read_until_end, ring_flags, scribble_event_word,
    scribble_payload, timeout_as_full, touch, trace, wait_strategy, write_whole, Env, HField,
    Input, CAPACITIES, MAX_FUZZ_MESSAGE, MAX_OPEN_CAPACITY,
};
use crate::error::{RecvError, RecvTimeoutError, TrySendError};
use crate::frame::{self, Record, RECORD_HEADER};
use crate::header::{
    holder_word, word_seq, Header, RingParams, ENDPOINT_ATTACHED, ENDPOINT_DETACHED,
    ENDPOINT_VACANT, HEADER_SIZE, KIND_SPSC,
};
use crate::message::Mode;
use crate::segment::Segment;
use crate::spsc::{Consumer, Producer};
use crate::stream::MessageWriter;
use crate::sync::Ordering;
use crate::wait::Wait;

/// Endpoint-table slot of the producer, as in `spsc.rs`.
const PRODUCER_SLOT: usize = 0;

/// Whether the hostile peer writes into the header's semaphores: yes, unless
/// `SHMLANE_FUZZ_NO_SEMAPHORE_WRITES` is set. (They were off until the semaphore
/// notifier checked the `sem_t` word libc passes to the futex call: glibc aborted the
/// process when a peer had scribbled it; `fuzz/seeds/hostile_peer/crash-semaphore-abort`.)
fn semaphore_writes() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("SHMLANE_FUZZ_NO_SEMAPHORE_WRITES").is_none())
}

// ---------------------------------------------------------------------------------
// Rings and messages
// ---------------------------------------------------------------------------------

/// A heap segment laid out like a shared one, with no endpoint attached: asymmetric
/// fences or not, the futex or the semaphore notifier.
fn heap_ring(
    capacity: usize,
    max_message: u64,
    asymmetric: bool,
    semaphores: bool,
) -> (Arc<Segment>, RingParams) {
    let flags = ring_flags(asymmetric, semaphores);
    let params =
        RingParams::new(KIND_SPSC, capacity, max_message, flags).expect("a valid capacity");
    (heap_segment(&params), params)
}

/// A receive result in one form: `Timeout` stands for "would block" (`Empty`).
type Got = Result<usize, RecvTimeoutError>;

/// Runs `f` while the producer's endpoint slot reads "detached" by a producer that came
/// after the consumer (its holder sequence differs from `then`, the word the consumer
/// saw when it attached), as a peer may write it: a
/// consumer call that would wait for more then stops at the end of what is in the ring
/// (`Disconnected` or `Truncated`). Used on rings whose contents are unknown.
fn producer_away<T>(seg: &Segment, then: u64, f: impl FnOnce() -> T) -> T {
    let state = &seg.header().endpoints[PRODUCER_SLOT].word;
    // Another holder sequence than the word the consumer saw when it attached (`then`),
    // whatever a peer wrote since: a producer that came after it.
    let away = holder_word(ENDPOINT_DETACHED, 0, 0, word_seq(then).wrapping_add(1), 0);
    let saved = state.swap(away, Ordering::AcqRel);
    let r = f();
    state.store(saved, Ordering::Release);
    r
}

// ---------------------------------------------------------------------------------
// frame_decode
// ---------------------------------------------------------------------------------

/// Arbitrary bytes as the data region of a ring with arbitrary cursors, read by a
/// consumer whose producer is gone. See the module docs.
///
/// Input: a selector byte (capacity, how the cursors are drawn), the cursors, the
/// cap on message length, up to 31 operation bytes, then the region's bytes, laid
/// from the consumer's start index on (wrapping; the rest of the region is zero).
pub fn frame_decode(data: &[u8]) {
    let mut input = Input::new(data);
    let sel = input.u8();
    let capacity = 64usize << (sel % 11); // 64 B ..= 64 KiB
    let cap = capacity as u64;
    let head = if sel & 0x80 != 0 {
        input.u64()
    } else {
        u64::from(input.u32()) << 3
    };
    let tail = if sel & 0x40 != 0 {
        input.u64()
    } else {
        head.wrapping_add(u64::from(input.u16()) << 3)
    };
    let max_message = match input.u8() % 4 {
        0 => MAX_FUZZ_MESSAGE,
        1 => u64::from(input.u16()),
        2 => u64::from(input.u32()) % (MAX_FUZZ_MESSAGE + 1),
        _ => 0,
    };
    let n_ops = usize::from(input.u8() % 32);
    let ops = input.take(n_ops);
    let bytes = input.take(capacity);

    let (seg, params) = heap_ring(capacity, max_message, false, false);
    let header = seg.header();
    header.head.store(head, Ordering::Relaxed);
    header.tail.store(tail, Ordering::Relaxed);
    let region = seg.data();
    let start = (head & (cap - 1) & !7) as usize;
    let first = bytes.len().min(capacity - start);
    // SAFETY: no endpoint is attached yet, so nothing else reads or writes the region;
    // both ranges are inside it (`first <= capacity - start`, `rest <= start`).
    unsafe {
        region.write(start, &bytes[..first]);
        region.write(0, &bytes[first..]);
    }

    // Every word decoded at its position in the consumer's lap and in the next one.
    let lap = head & !(cap - 1);
    for index in (0..capacity).step_by(8) {
        let word = region.word(index).load(Ordering::Relaxed);
        let pos = lap.wrapping_add(index as u64);
        check_decode(word, pos, capacity, params.max_record);
        check_decode(word, pos.wrapping_add(cap), capacity, params.max_record);
    }

    let Ok(mut rx) = Consumer::attach(seg.clone(), params, Wait::Spin) else {
        // Cursors that are misaligned, out of order or too far apart.
        return;
    };
    // The producer has gone since the consumer came: it reads to the end of what is
    // there, then `Disconnected` (a producer gone before it attached would not be its
    // own, and it would wait for the next).
    header.endpoints[PRODUCER_SLOT].word.store(
        holder_word(ENDPOINT_DETACHED, 0, 0, 1, 0),
        Ordering::Release,
    );
    // Each read that makes progress consumes at least one record, and the region holds
    // at most two laps of records that decode (see the module docs).
    let ring = format!("a {capacity}-byte region");
    let max_payload = params.max_record - RECORD_HEADER;
    read_until_end(&mut rx, ops, true, max_payload, capacity / 4 + 8, &ring);
}

/// What `decode` must guarantee for any word at any position.
fn check_decode(word: u64, pos: u64, capacity: usize, max_record: usize) {
    let index = (pos & (capacity as u64 - 1)) as usize;
    match frame::decode(word, pos, capacity, max_record) {
        Ok(None) => assert_eq!(word, 0),
        Ok(Some(Record::Pad { size })) => {
            assert!(
                index != 0 && index + size == capacity,
                "pad at {index}: {size}"
            );
        }
        Ok(Some(Record::Data(d))) => {
            assert!(d.size() <= max_record && index + d.size() <= capacity);
            assert_eq!(d.size() % 8, 0);
            assert!(d.content_offset() + d.content_len() <= d.size());
            assert!(d.is_end() || d.is_begin() || !d.is_abort());
            // A header written for one lap never reads as new one lap later.
            let next = pos.wrapping_add(capacity as u64);
            assert!(frame::decode(word, next, capacity, max_record).is_err());
        }
        Err(c) => assert_eq!((c.value, c.position), (word, pos)),
    }
}

// ---------------------------------------------------------------------------------
// The model of ring_ops
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MsgState {
    /// Every record published.
    Complete,
    /// A stream writer is filling it; `published` bytes are out.
    Open,
    /// Its writer was dropped after publishing `published` bytes; `closed` once its
    /// ABORT record is out.
    Abandoned { closed: bool },
}

#[derive(Debug)]
struct Msg {
    /// The whole content (also for a message not yet complete).
    content: Vec<u8>,
    /// Content bytes in published records.
    published: usize,
    state: MsgState,
    /// Sent as one record (`len <= max_record_payload`), so `recv_ref` takes it.
    single: bool,
}

/// Where the message of the live stream writer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriterMsg {
    /// No writer, or nothing of its message published yet.
    None,
    /// The last message of the model.
    InModel,
    /// The consumer took it (a reader dropped early): its later records are skipped.
    Gone,
}

/// What the consumer must see next.
#[derive(Debug)]
enum Expect {
    /// The front message.
    Message,
    /// Nothing now (`Empty`, `Timeout`).
    Empty,
    Disconnected,
    TooLarge(u64),
    Fragmented(u64),
    Truncated,
}

/// The messages in the ring, in order, and what the consumer has taken of the first.
struct Model {
    msgs: VecDeque<Msg>,
    /// The consumer holds a partly reassembled first message (after a `recv` that
    /// returned Empty).
    partial: bool,
    writer: WriterMsg,
    /// Content bytes the live writer has published.
    writer_bytes: usize,
    max_message: u64,
    /// The largest `max_message` the consumer has had.
    max_message_ever: u64,
    max_payload: usize,
    fragment_record: usize,
    capacity: usize,
    producer_gone: bool,
    /// The last message is abandoned and its producer has not yet published its ABORT
    /// (no room): it does so before its next message. A new producer does not.
    abort_pending: bool,
    /// The consumer found the ring empty (and so published `head`) and nothing was
    /// published since: the producer has the whole ring.
    drained: bool,
    /// A peer wrote into the segment, or the segment was never known: results are
    /// checked for sanity only.
    corrupted: bool,
    seq: u64,
}

impl Model {
    fn new(params: &RingParams, fragment_record: usize, corrupted: bool) -> Self {
        Model {
            msgs: VecDeque::new(),
            partial: false,
            writer: WriterMsg::None,
            writer_bytes: 0,
            max_message: params.max_message,
            max_message_ever: params.max_message,
            max_payload: params.max_record - RECORD_HEADER,
            fragment_record,
            capacity: params.capacity,
            producer_gone: false,
            abort_pending: false,
            drained: false,
            corrupted,
            seq: 0,
        }
    }

    fn next_content(&mut self, len: usize) -> Vec<u8> {
        self.seq += 1;
        content(self.seq, len)
    }

    /// A message length: mostly small, some up to one record, some in fragments (up
    /// to 4 × capacity), and the boundaries.
    fn pick_len(&self, input: &mut Input<'_>) -> usize {
        let (max, cap) = (self.max_payload, self.capacity);
        match input.u8() % 8 {
            0..=2 => usize::from(input.u8() % 65),
            3 => input.below(max + 1),
            4 => (max + usize::from(input.u8() % 33)).saturating_sub(16),
            5 => input.below(4 * cap + 1),
            6 => (cap + usize::from(input.u8() % 33)).saturating_sub(16),
            _ => {
                let edges = [
                    0,
                    1,
                    7,
                    8,
                    9,
                    16,
                    max - 8,
                    max,
                    max + 1,
                    cap / 2,
                    2 * cap + 3,
                ];
                edges[input.below(edges.len())]
            }
        }
    }

    /// Bytes in the ring of a message of `len` bytes sent in fragments (as in spsc.rs).
    fn fragmented_size(&self, len: usize) -> usize {
        let first = self.fragment_record - RECORD_HEADER - frame::BEGIN_PREFIX;
        let rest = self.fragment_record - RECORD_HEADER;
        let after = len.saturating_sub(first);
        let last = after % rest;
        self.fragment_record * (1 + after / rest)
            + if last > 0 {
                frame::record_size(last)
            } else {
                0
            }
    }

    /// Whether a message of `len` bytes can travel with `try_send` (all fragments at
    /// once; the slack is for one padding record).
    fn try_sendable(&self, len: usize) -> bool {
        len <= self.max_payload
            || self.fragmented_size(len) + self.fragment_record + 8 <= self.capacity
    }

    /// Content bytes published once a writer of a `total`-byte message has written
    /// `written` (fragments are published as they fill).
    fn stream_published(&self, total: usize, written: usize) -> usize {
        if written == total {
            return total;
        }
        if total <= self.max_payload {
            return 0;
        }
        let first = self.fragment_record - RECORD_HEADER - frame::BEGIN_PREFIX;
        let rest = self.fragment_record - RECORD_HEADER;
        if written < first {
            0
        } else {
            first + (written - first) / rest * rest
        }
    }

    /// Records that a message was published whole.
    fn push_complete(&mut self, content: Vec<u8>) {
        self.drained = false;
        let len = content.len();
        self.msgs.push_back(Msg {
            content,
            published: len,
            state: MsgState::Complete,
            single: len <= self.max_payload,
        });
    }

    /// The consumer took the first message.
    fn pop(&mut self) -> Msg {
        let m = self.msgs.pop_front().expect("a message to pop");
        self.partial = false;
        if self.msgs.is_empty() && self.writer == WriterMsg::InModel {
            self.writer = WriterMsg::Gone;
        }
        m
    }

    /// After a producer call, from its `open_message` before and after: when it went
    /// from true to false, a record went out (an END or an ABORT), and a pending ABORT
    /// closed the last message.
    fn producer_state(&mut self, was_open: bool, open_message: bool) {
        if was_open && !open_message {
            self.drained = false;
            if std::mem::take(&mut self.abort_pending) {
                if let Some(Msg {
                    state: MsgState::Abandoned { closed },
                    ..
                }) = self.msgs.back_mut()
                {
                    *closed = true;
                }
            }
        }
    }

    /// Whether the consumer sees the end of abandoned message `i`: its ABORT, the next
    /// message's BEGIN, or the producer gone.
    fn ends(&self, i: usize) -> bool {
        match self.msgs[i].state {
            MsgState::Abandoned { closed } => {
                closed || i + 1 < self.msgs.len() || self.producer_gone
            }
            _ => false,
        }
    }

    /// What `recv` must return now.
    fn expect_recv(&self) -> Expect {
        let Some(f) = self.msgs.front() else {
            return self.nothing();
        };
        if !self.partial && f.content.len() as u64 > self.max_message {
            return Expect::TooLarge(f.content.len() as u64);
        }
        match f.state {
            MsgState::Complete => Expect::Message,
            MsgState::Open => Expect::Empty,
            MsgState::Abandoned { .. } if self.ends(0) => Expect::Truncated,
            MsgState::Abandoned { .. } => Expect::Empty,
        }
    }

    /// What `recv_ref` must return now.
    fn expect_ref(&self) -> Expect {
        let Some(f) = self.msgs.front() else {
            return self.nothing();
        };
        if self.partial || !f.single {
            return Expect::Fragmented(f.content.len() as u64);
        }
        debug_assert_eq!(f.state, MsgState::Complete);
        Expect::Message
    }

    fn nothing(&self) -> Expect {
        if self.producer_gone {
            Expect::Disconnected
        } else {
            Expect::Empty
        }
    }

    /// Checks a `recv` result (`buf` holds the message) and updates the model.
    fn check_recv(&mut self, want: Expect, got: Got, buf: &[u8]) {
        trace!("  recv: want {want:?}, got {got:?}");
        match (&want, &got) {
            (Expect::Message, Ok(n)) => {
                let m = self.pop();
                assert_eq!(*n, m.content.len(), "recv: length of message {m:?}");
                assert!(buf == m.content, "recv: content");
            }
            (Expect::Empty, Err(RecvTimeoutError::Timeout)) => self.empty(),
            (Expect::Disconnected, Err(RecvTimeoutError::Disconnected)) => {}
            (Expect::TooLarge(len), Err(RecvTimeoutError::TooLarge { len: l, max })) => {
                assert_eq!((len, max), (l, &self.max_message));
            }
            (Expect::Truncated, Err(RecvTimeoutError::Truncated)) => {
                self.pop();
            }
            _ => panic!("recv: the model expects {want:?}, got {got:?}"),
        }
    }

    /// The consumer found nothing more now: it holds a partial first message, if
    /// there is one, and has published its `head`.
    fn empty(&mut self) {
        if self.msgs.is_empty() {
            self.drained = true;
        } else {
            self.partial = true;
        }
    }

    /// Checks a `recv_ref` result (`bytes`: the grant's) and updates the model.
    fn check_ref(&mut self, want: Expect, got: Result<&[u8], RecvTimeoutError>) {
        trace!("  recv_ref: want {want:?}, got {:?}", got.map(<[u8]>::len));
        match (&want, &got) {
            (Expect::Message, Ok(bytes)) => {
                let m = self.pop();
                assert!(*bytes == &m.content[..], "recv_ref: content of {m:?}");
            }
            (Expect::Empty, Err(RecvTimeoutError::Timeout)) => {
                if self.msgs.is_empty() {
                    self.drained = true;
                }
            }
            (Expect::Disconnected, Err(RecvTimeoutError::Disconnected)) => {}
            (Expect::Fragmented(len), Err(RecvTimeoutError::Fragmented { len: l })) => {
                assert_eq!(len, l);
            }
            _ => panic!("recv_ref: the model expects {want:?}, got {got:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------
// ring_ops and hostile_peer
// ---------------------------------------------------------------------------------

/// The ring, its endpoints (either may be missing after a failed re-attach), the model.
struct Harness {
    env: Env,
    tx: Option<Producer>,
    rx: Option<Consumer>,
    m: Model,
}

/// An arbitrary sequence of operations of a producer and a consumer in one thread,
/// checked against a model of the messages in the ring. See the module docs.
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
    let sel = input.u8();
    let capacity = CAPACITIES[usize::from(sel % 8)];
    let max_message = match sel & 0x10 {
        0 => MAX_FUZZ_MESSAGE,
        _ => u64::from(input.u16()),
    };
    let (seg, params) = heap_ring(capacity, max_message, sel & 0x20 != 0, sel & 0x08 != 0);
    // Start the positions at an arbitrary lap and index, not at 0 (record tags and
    // padding depend on them).
    if sel & 0x40 != 0 {
        let start = u64::from(input.u32()) << 3;
        seg.header().head.store(start, Ordering::Relaxed);
        seg.header().tail.store(start, Ordering::Relaxed);
    }
    let wait = wait_strategy(sel >> 6);
    let tx = Producer::attach(seg.clone(), params, wait).expect("attach to a new ring");
    let rx = Consumer::attach(seg.clone(), params, wait).expect("attach to a new ring");
    let m = Model::new(&params, tx.fragment_record(), false);
    let mut h = Harness {
        env: Env {
            seg,
            params,
            wait,
            hostile,
        },
        tx: Some(tx),
        rx: Some(rx),
        m,
    };
    h.run(&mut input);
}

impl Harness {
    /// Runs operations until the input runs out, then ends both endpoints.
    fn run(&mut self, input: &mut Input<'_>) {
        while !input.is_empty() && (self.tx.is_some() || self.rx.is_some()) {
            let op = input.u8();
            match op % 16 {
                0..=2 => self.send(input, op),
                3 => self.send_blocking(input, op),
                4 | 5 => self.reserve(input, op),
                6 | 7 => self.stream(input),
                8 => self.reattach_producer(),
                14 | 15 if self.env.hostile => peer_op(&self.env, &mut self.m, input),
                _ => consumer_op(&mut self.rx, &mut self.m, &self.env, op >> 4, input),
            }
        }
        self.finish(input);
    }

    /// `try_send` (or `send_timeout` with a zero timeout, for one record).
    fn send(&mut self, input: &mut Input<'_>, op: u8) {
        let Some(tx) = self.tx.as_mut() else { return };
        let m = &mut self.m;
        let len = m.pick_len(input);
        let msg = m.next_content(len);
        let was_open = tx.open_message;
        let drained = m.drained && !was_open && !m.corrupted;
        let got = if op & 0x10 != 0 && len <= m.max_payload {
            tx.send_timeout(&msg, Duration::ZERO)
                .map_err(timeout_as_full)
        } else {
            tx.try_send(&msg)
        };
        let open = tx.open_message;
        trace!("send {len} (op {op:#x}): {got:?}, open {was_open} -> {open}");
        if let Err(TrySendError::TooLarge { len: l, .. }) = got {
            assert!(l == len as u64 && !m.try_sendable(len), "try_send: {got:?}");
        }
        if m.corrupted {
            return;
        }
        m.producer_state(was_open, open);
        match got {
            Ok(()) => m.push_complete(msg),
            Err(TrySendError::Full) => assert!(!drained, "try_send of {len} bytes: Full"),
            Err(TrySendError::TooLarge { .. }) => {}
            Err(e) => panic!("try_send of {len} bytes: {e:?}"),
        }
    }

    /// `send`, `send_pod` or `stream` (blocking), when the ring is drained and the
    /// message fits, so that they return at once.
    fn send_blocking(&mut self, input: &mut Input<'_>, op: u8) {
        let Some(tx) = self.tx.as_mut() else { return };
        let m = &mut self.m;
        let len = m.pick_len(input);
        if m.corrupted || !m.drained || tx.open_message || !m.try_sendable(len) {
            return;
        }
        let msg = m.next_content(len);
        trace!("send_blocking {len} (op {op:#x})");
        match (op >> 4) % 3 {
            0 => tx.send(&msg).expect("send on a drained ring"),
            1 => {
                let w = tx.stream(len as u64).expect("stream on a drained ring");
                write_whole(w, &msg, op, "on a drained ring");
            }
            _ => {
                let value: [u8; 16] = std::array::from_fn(|i| msg.get(i).copied().unwrap_or(0));
                tx.send_pod(&value).expect("send_pod on a drained ring");
                m.push_complete(value.to_vec());
                return;
            }
        }
        m.push_complete(msg);
    }

    /// `try_reserve`, then fill and commit, commit a prefix, over-commit, or drop.
    fn reserve(&mut self, input: &mut Input<'_>, op: u8) {
        let Some(tx) = self.tx.as_mut() else { return };
        let m = &mut self.m;
        let len = m.pick_len(input);
        let action = input.u8();
        let msg = m.next_content(len);
        let was_open = tx.open_message;
        let drained = m.drained && !was_open && !m.corrupted;
        let published = {
            let got = if op & 0x10 != 0 {
                tx.reserve_timeout(len, Duration::ZERO)
                    .map_err(timeout_as_full)
            } else {
                tx.try_reserve(len)
            };
            trace!(
                "reserve {len} (op {op:#x}, action {action}): {:?}",
                got.as_ref().map(|g| g.len())
            );
            match got {
                Ok(mut g) => {
                    // The claim may have published a PAD record to the end of the region,
                    // which stays even if the grant is dropped.
                    m.drained = false;
                    assert_eq!(g.len(), len);
                    g.copy_from_slice(&msg);
                    match action % 4 {
                        0 | 1 => {
                            g.commit();
                            Some(msg)
                        }
                        2 => commit_prefix(g, len, input).map(|k| msg[..k].to_vec()),
                        _ => None, // dropped: publishes nothing
                    }
                }
                Err(TrySendError::TooLarge { len: l, max }) => {
                    assert!(l == len as u64 && l > max && len > m.max_payload);
                    None
                }
                Err(TrySendError::Disconnected) if m.corrupted => None,
                Err(TrySendError::Full | TrySendError::Corrupt(_)) if m.corrupted => None,
                Err(TrySendError::Full) => {
                    assert!(
                        !drained,
                        "try_reserve of {len} bytes: Full on a drained ring"
                    );
                    assert!(len <= m.max_payload);
                    None
                }
                Err(e) => panic!("try_reserve of {len} bytes: {e:?}"),
            }
        };
        let open = tx.open_message;
        if m.corrupted {
            return;
        }
        m.producer_state(was_open, open);
        if let Some(msg) = published {
            m.push_complete(msg);
        }
    }

    /// A message written through a stream writer in pieces, with consumer steps (and
    /// peer writes) between them; finished, finished early, or dropped.
    fn stream(&mut self, input: &mut Input<'_>) {
        let env = &self.env;
        let (Some(tx), rx, m) = (self.tx.as_mut(), &mut self.rx, &mut self.m) else {
            return;
        };
        let total = m.pick_len(input);
        let msg = m.next_content(total);
        let was_open = tx.open_message;
        match tx.close_open_message(Mode::Try) {
            Ok(true) => {}
            Ok(false) => return, // no room for the pending ABORT
            Err(e) => {
                assert!(m.corrupted, "close_open_message: {e:?}");
                return;
            }
        }
        if !m.corrupted {
            m.producer_state(was_open, tx.open_message);
        }
        trace!("stream {total} (fragments of {})", m.fragment_record);
        m.writer_bytes = 0;
        let mut w = MessageWriter::new(tx, total as u64, Mode::Try);
        let mut written = 0usize;
        let finish = loop {
            if input.is_empty() {
                break false;
            }
            let op = input.u8();
            match op % 8 {
                0..=2 => {
                    // Sometimes more than what is left: the writer takes only that.
                    let n = usize::from(input.u16()) % (2 * m.fragment_record + 1);
                    let end = (written + n).min(total);
                    let r = if written == total && op & 0x80 != 0 {
                        w.write(b"x")
                    } else {
                        w.write(&msg[written..end])
                    };
                    trace!("  write {} at {written}: {r:?}", end - written);
                    match r {
                        Ok(k) => {
                            assert!(k <= end - written, "wrote {k} of {}", end - written);
                            assert!(k > 0 || end == written);
                            if k > 0 {
                                // A fragment was claimed, maybe after a PAD record.
                                m.drained = false;
                            }
                            written += k;
                        }
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                            assert_eq!(written, total, "{e}");
                        }
                        Err(e) => assert!(m.corrupted, "stream write: {e}"),
                    }
                    assert_eq!(w.remaining(), (total - written) as u64);
                    if !m.corrupted {
                        let published = m.stream_published(total, written);
                        m.writer_published(&msg, published, false);
                    }
                }
                3 | 4 => consumer_op(rx, m, env, op >> 3, input),
                5 if env.hostile => peer_op(env, m, input),
                5 => consumer_op(rx, m, env, op >> 3, input),
                6 => break true,
                _ => break false,
            }
        };
        // Whether the writer has published its BEGIN and not its END.
        let writer_open =
            total > m.max_payload && m.stream_published(total, written) > 0 && written < total;
        let finished = if finish {
            Some(w.finish())
        } else {
            drop(w);
            None
        };
        trace!("  finish: {finished:?} after {written} of {total}");
        let complete = match finished {
            Some(Ok(())) => {
                assert_eq!(written, total);
                true
            }
            Some(Err(e)) => {
                assert!(
                    written < total
                        || (total == 0 && e.kind() == io::ErrorKind::TimedOut)
                        || m.corrupted,
                    "finish after {written} of {total}: {e}"
                );
                false
            }
            None => written == total && total > 0,
        };
        let open = tx.open_message;
        if m.corrupted {
            m.writer = WriterMsg::None;
            return;
        }
        if complete {
            m.writer_published(&msg, total, true);
        } else if m.writer == WriterMsg::InModel {
            let last = m.msgs.back_mut().expect("the writer's message");
            assert_eq!(last.state, MsgState::Open);
            // The writer's drop publishes the ABORT if there is room.
            last.state = MsgState::Abandoned { closed: !open };
            m.abort_pending = open;
        }
        m.writer = WriterMsg::None;
        m.producer_state(writer_open, open);
    }

    /// Drops the producer and attaches a new one (it walks from the published `tail`).
    fn reattach_producer(&mut self) {
        trace!("re-attach the producer");
        let Some(mut tx) = self.tx.take() else { return };
        // Close a pending ABORT now, so that we know whether it went out (dropping the
        // producer would try the same, with the same outcome).
        let was_open = tx.open_message;
        let closed = tx.close_open_message(Mode::Try);
        let open = tx.open_message;
        drop(tx);
        if !self.m.corrupted {
            assert!(closed.is_ok());
            self.m.producer_state(was_open, open);
            // The dropped producer could not publish the ABORT either; the new one
            // knows nothing of it: only the next message's BEGIN ends that message.
            self.m.abort_pending = false;
        }
        match Producer::attach(self.env.seg.clone(), self.env.params, self.env.wait) {
            Ok(tx) => {
                if !self.m.corrupted {
                    assert!(!tx.open_message);
                }
                self.tx = Some(tx);
            }
            Err(e) => assert!(self.m.corrupted, "re-attaching the producer: {e}"),
        }
    }

    /// Ends both endpoints, in an order the input picks, and checks that the survivor
    /// sees its peer gone (the consumer after every message still in the ring).
    fn finish(&mut self, input: &mut Input<'_>) {
        if self.m.corrupted {
            if input.u8() & 1 == 0 {
                self.tx = None;
            }
            return;
        }
        if input.u8() & 1 == 0 {
            // The consumer leaves first.
            self.rx = None;
            if let Some(tx) = self.tx.as_mut() {
                assert_consumers_gone(tx);
            }
            return;
        }
        if let Some(mut tx) = self.tx.take() {
            let was_open = tx.open_message;
            let _ = tx.close_open_message(Mode::Try);
            let open = tx.open_message;
            drop(tx);
            self.m.producer_state(was_open, open);
        }
        self.m.producer_gone = true;
        let Some(rx) = self.rx.as_mut() else { return };
        assert!(rx.is_disconnected());
        rx.set_max_message(u64::MAX);
        self.m.max_message = u64::MAX;
        let mut buf = Vec::new();
        for _ in 0..self.m.msgs.len() + 1 {
            let want = self.m.expect_recv();
            let got = rx.try_recv(&mut buf).map_err(from_try);
            self.m.check_recv(want, got, &buf);
        }
        assert!(self.m.msgs.is_empty());
        assert_drained(rx);
    }
}

impl Model {
    /// The live writer has `published` bytes of `msg` in published records (`finished`:
    /// and its last record, which for an empty message holds no byte).
    fn writer_published(&mut self, msg: &[u8], published: usize, finished: bool) {
        if published > self.writer_bytes || finished {
            // Records went out, also those of a message the consumer gave up on.
            self.drained = false;
        }
        self.writer_bytes = published;
        let single = msg.len() <= self.max_payload;
        let state = if published == msg.len() {
            MsgState::Complete
        } else {
            MsgState::Open
        };
        match self.writer {
            WriterMsg::Gone => {}
            WriterMsg::InModel => {
                let last = self.msgs.back_mut().expect("the writer's message");
                if published != last.published {
                    self.drained = false;
                }
                last.published = published;
                last.state = state;
            }
            WriterMsg::None if published > 0 || finished => {
                self.drained = false;
                self.msgs.push_back(Msg {
                    content: msg.to_vec(),
                    published,
                    state,
                    single,
                });
                self.writer = WriterMsg::InModel;
            }
            WriterMsg::None => {}
        }
    }
}

/// One consumer operation, chosen by `op`, checked against the model (or, on a
/// corrupted ring, for sanity).
fn consumer_op(
    slot: &mut Option<Consumer>,
    m: &mut Model,
    env: &Env,
    op: u8,
    input: &mut Input<'_>,
) {
    if op % 10 == 9 {
        reattach_consumer(slot, m, env);
        return;
    }
    let Some(rx) = slot.as_mut() else { return };
    trace!(
        "consumer op {} (partial {}, {} messages)",
        op % 10,
        m.partial,
        m.msgs.len()
    );
    if m.corrupted {
        unchecked_consumer_op(rx, m, env, op, input);
        return;
    }
    // A buffer with stale contents: recv replaces them.
    let mut buf = vec![0x5a; usize::from(op)];
    let zero = Duration::ZERO;
    match op % 10 {
        0 | 1 => {
            let want = m.expect_recv();
            let got = rx.try_recv(&mut buf).map_err(from_try);
            m.check_recv(want, got, &buf);
        }
        2 => {
            let want = m.expect_recv();
            let got = if matches!(want, Expect::Empty) {
                rx.recv_timeout(&mut buf, zero)
            } else {
                rx.recv(&mut buf).map_err(Into::into)
            };
            m.check_recv(want, got, &buf);
        }
        3 => {
            let want = m.expect_ref();
            match rx.try_recv_ref() {
                Ok(g) => m.check_ref(want, Ok(&g)),
                Err(e) => m.check_ref(want, Err(from_try(e))),
            }
        }
        4 => {
            let want = m.expect_ref();
            let r = if matches!(want, Expect::Empty) {
                rx.recv_ref_timeout(zero)
            } else {
                rx.recv_ref().map_err(Into::into)
            };
            match r {
                Ok(g) => m.check_ref(want, Ok(&g)),
                Err(e) => m.check_ref(want, Err(e)),
            }
        }
        5 | 6 => read_stream_checked(rx, m, input),
        7 => {
            // recv_pod of 16 bytes goes through recv_ref (every ring's records hold 16).
            let want = m.expect_ref();
            if matches!(want, Expect::Empty) {
                return;
            }
            let got = rx.recv_pod::<[u8; 16]>();
            match (want, got) {
                (Expect::Message, got) => {
                    let msg = m.pop();
                    match got {
                        Ok(v) => assert!(msg.content == v),
                        Err(e) => assert_eq!(
                            e,
                            RecvError::SizeMismatch {
                                expected: 16,
                                found: msg.content.len() as u64
                            }
                        ),
                    }
                }
                (Expect::Fragmented(len), got) => {
                    assert_eq!(got, Err(RecvError::Fragmented { len }));
                }
                (Expect::Disconnected, got) => assert_eq!(got, Err(RecvError::Disconnected)),
                (want, got) => panic!("recv_pod: the model expects {want:?}, got {got:?}"),
            }
        }
        _ => {
            let max = match input.u8() % 3 {
                0 => MAX_FUZZ_MESSAGE,
                _ => u64::from(input.u16()),
            };
            rx.set_max_message(max);
            m.max_message = max;
            m.max_message_ever = m.max_message_ever.max(max);
        }
    }
}

/// `recv_stream`, then reads of arbitrary sizes up to what is published (reading
/// further would wait for the writer), maybe to the end; checked against the model.
fn read_stream_checked(rx: &mut Consumer, m: &mut Model, input: &mut Input<'_>) {
    let Some(f) = m.msgs.front() else {
        return; // recv_stream would wait for a message
    };
    let total = f.content.len();
    let available = match f.state {
        MsgState::Complete => total,
        _ => f.published,
    };
    let complete = f.state == MsgState::Complete;
    let truncated = m.ends(0);
    let want = match input.u8() % 3 {
        0 => input.below(available + 1),
        _ => available,
    };
    let chunk = 1 + input.below(2 * m.fragment_record);
    trace!(
        "  read_stream {want} of {available} (total {total}, {:?})",
        f.state
    );
    let mut r = rx
        .recv_stream()
        .expect("recv_stream with a message in the ring");
    assert_eq!(r.len(), total as u64);
    let mut got = Vec::new();
    let mut buf = vec![0; chunk];
    while got.len() < want {
        let n = chunk.min(want - got.len());
        match r.read(&mut buf[..n]) {
            Ok(k) => {
                assert!(
                    k > 0,
                    "read returned 0 after {} of {total} bytes",
                    got.len()
                );
                got.extend_from_slice(&buf[..k]);
            }
            Err(e) => panic!("read after {} of {total} bytes: {e}", got.len()),
        }
    }
    assert!(got == m.msgs[0].content[..want], "recv_stream: content");
    if want == available && (complete || truncated) {
        match r.read(&mut buf) {
            Ok(0) => assert!(complete, "a truncated message read to its end"),
            Err(e) => {
                assert!(truncated && e.kind() == io::ErrorKind::UnexpectedEof, "{e}");
            }
            Ok(k) => panic!("read {k} bytes past the end"),
        }
    }
    drop(r);
    m.pop();
}

/// A consumer operation on a ring whose contents are unknown: any result will do, as
/// long as it is sane and the call returns.
fn unchecked_consumer_op(
    rx: &mut Consumer,
    m: &mut Model,
    env: &Env,
    op: u8,
    input: &mut Input<'_>,
) {
    let max_payload = env.params.max_record - RECORD_HEADER;
    let ceiling = m.max_message_ever;
    let mut buf = Vec::new();
    match op % 10 {
        0 | 1 => check_len(rx.try_recv(&mut buf).map_err(from_try), &buf, ceiling),
        2 => {
            let got = producer_away(&env.seg, rx.peer_at_attach(), || rx.recv(&mut buf));
            check_len(got.map_err(Into::into), &buf, ceiling);
        }
        3 => check_len(rx.recv_timeout(&mut buf, Duration::ZERO), &buf, ceiling),
        4 => {
            if let Ok(g) = rx.try_recv_ref() {
                assert!(touch(&g) <= max_payload);
            }
        }
        5 => producer_away(&env.seg, rx.peer_at_attach(), || {
            if let Ok(g) = rx.recv_ref() {
                assert!(touch(&g) <= max_payload);
            }
        }),
        6 => {
            let chunk = 1 + input.below(256);
            producer_away(&env.seg, rx.peer_at_attach(), || {
                if let Ok(r) = rx.recv_stream() {
                    read_all(r, chunk);
                }
            });
        }
        7 => {
            let _ = producer_away(&env.seg, rx.peer_at_attach(), || rx.recv_pod::<[u8; 16]>());
        }
        _ => {
            let max = u64::from(input.u16());
            rx.set_max_message(max);
            m.max_message_ever = m.max_message_ever.max(max);
        }
    }
}

/// Drops the consumer and attaches a new one, which starts at the published `head`.
fn reattach_consumer(slot: &mut Option<Consumer>, m: &mut Model, env: &Env) {
    trace!("re-attach the consumer (partial {})", m.partial);
    if slot.take().is_none() {
        return;
    }
    if !m.corrupted && m.partial {
        // The new consumer skips the rest of the message the old one had begun.
        m.pop();
    }
    match Consumer::attach(env.seg.clone(), env.params, env.wait) {
        Ok(rx) => {
            m.max_message = rx.max_message();
            *slot = Some(rx);
        }
        Err(e) => assert!(m.corrupted, "re-attaching the consumer: {e}"),
    }
}

/// A peer's write into the segment: a cursor, an endpoint state, an event count, a
/// record header (arbitrary, or well-formed for a position near a cursor), payload
/// bytes. From now on the model no longer holds.
fn peer_op(env: &Env, m: &mut Model, input: &mut Input<'_>) {
    trace!("peer write");
    m.corrupted = true;
    let header = env.seg.header();
    let region = env.seg.data();
    let cap = env.params.capacity as u64;
    let anchor = match input.u8() % 4 {
        0 => header.head.load(Ordering::Relaxed),
        1 => header.tail.load(Ordering::Relaxed),
        2 => 0,
        _ => input.u64(),
    };
    // A position near the anchor, in records.
    let pos = anchor.wrapping_add((i64::from(input.u8() as i8) * 8) as u64) & !7;
    let index = (pos & (cap - 1)) as usize;
    let raw = |input: &mut Input<'_>| match input.u8() % 3 {
        0 => pos,
        1 => pos.wrapping_add(u64::from(input.u16()) << 3),
        _ => input.u64(),
    };
    let kind = input.u8() % 10;
    trace!("  peer write of kind {kind} near position {pos:#x}");
    match kind {
        0 => header.head.store(raw(input), Ordering::Release),
        1 => header.tail.store(raw(input), Ordering::Release),
        2 => {
            let slot = usize::from(input.u8() & 1);
            let v = match input.u8() % 4 {
                0 => ENDPOINT_VACANT,
                1 => ENDPOINT_ATTACHED,
                2 => ENDPOINT_DETACHED,
                _ => input.u32(),
            };
            header.endpoints[slot]
                .word
                .store(u64::from(v), Ordering::Release);
        }
        3 => {
            let word = if input.u8() & 1 == 0 {
                &header.data_ready
            } else {
                &header.space_ready
            };
            scribble_event_word(word, input);
        }
        4 | 5 => {
            // A header that carries the right tag for `pos`: length and flags arbitrary.
            let len = match input.u8() % 3 {
                0 => u64::from(input.u8()),
                1 => u64::from(input.u16()),
                _ => u64::from(input.u32()),
            };
            let flags = u64::from(input.u8() | frame::FLAG_VALID);
            let word = len | (flags << 32) | (frame::tag(pos) << 40);
            region.word(index).store(word, Ordering::Release);
        }
        6 => region.word(index).store(input.u64(), Ordering::Release),
        7 => region.word(index).store(0, Ordering::Release),
        8 => {
            // Bytes of a semaphore (used on rings with the semaphore notifier).
            let slot = if input.u8() & 1 == 0 {
                &header.sem_data_ready
            } else {
                &header.sem_space_ready
            };
            let at = usize::from(input.u8() % 57);
            let bytes = input.take(8);
            if !semaphore_writes() {
                return;
            }
            // SAFETY: the slot is 64 bytes and `at + 8 <= 64`; libc touches it only in
            // the endpoints' notify and wait calls, which run on this thread.
            unsafe {
                let dst = slot.sem_ptr().cast::<u8>().add(at);
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
            }
        }
        _ => scribble_payload(&env.seg, env.params.capacity, index, input),
    }
}

// ---------------------------------------------------------------------------------
// header_open
// ---------------------------------------------------------------------------------

/// The header fields that `header_open` draws from its input, in layout order: every
/// field shmlane reads (reserved and padding bytes are left out, and the semaphores,
/// which only libc reads).
fn header_fields(h: &Header) -> Vec<HField<'_>> {
    let mut v = vec![
        HField::U64(&h.magic),
        HField::U32(&h.version),
        HField::U32(&h.header_size),
        HField::U64(&h.layout_hash),
        HField::U32(&h.abi),
        HField::U32(&h.kind),
        HField::U64(&h.capacity),
        HField::U64(&h.cell_size),
        HField::U64(&h.max_record),
        HField::U64(&h.max_message),
        HField::U64(&h.flags),
        HField::U32(&h.creator_pid),
        HField::U32(&h.creator_uid),
        HField::U64(&h.creator_start_time),
        HField::U64(&h.data_offset),
        HField::U64(&h.segment_len),
        HField::U32(&h.state),
    ];
    for slot in &h.endpoints[..2] {
        v.push(HField::U64(&slot.word));
        v.push(HField::U64(&slot.generation));
    }
    v.extend([
        HField::U64(&h.data_ready.state),
        HField::U32(&h.data_ready.futex),
        HField::U64(&h.space_ready.state),
        HField::U32(&h.space_ready.futex),
        HField::U64(&h.tail),
        HField::U64(&h.head),
    ]);
    v
}

/// Bytes of the header image `header_open` reads.
fn header_image_len(h: &Header) -> usize {
    header_fields(h).iter().map(HField::width).sum()
}

/// Stores the image read from `input` (zero-padded) into the header's fields.
fn write_header(h: &Header, input: &mut Input<'_>) {
    for f in header_fields(h) {
        let v = match f.width() {
            4 => u64::from(input.u32()),
            _ => input.u64(),
        };
        f.store(v);
    }
}

/// Reads the header's fields as the image `header_open` takes.
fn read_header(h: &Header) -> Vec<u8> {
    let mut v = Vec::new();
    for f in header_fields(h) {
        v.extend_from_slice(&f.load().to_le_bytes()[..f.width()]);
    }
    v
}

/// Arbitrary header fields, then opening: validation refuses them or gives
/// parameters that fit the segment; attaching fails cleanly or gives a ring that works.
///
/// Input: the header image (every field shmlane reads, in layout order, little
/// endian; the semaphores are as the creator initialised them), a byte choosing the
/// segment's file length (as `fstat` would report it), then operations as for
/// [`ring_ops`].
pub fn header_open(data: &[u8]) {
    // A scratch segment to validate against, as `open` validates the first page before
    // it maps the rest.
    let (scratch, _) = heap_ring(64, 0, false, false);
    let mut input = Input::new(data);
    let image = input.take(header_image_len(scratch.header()));
    let file_sel = input.u8();
    write_header(scratch.header(), &mut Input::new(image));
    super::common::clear_flags_miri_lacks(&scratch.header().flags);
    let claimed = scratch.header().segment_len.load(Ordering::Relaxed);
    let limit = (HEADER_SIZE + MAX_OPEN_CAPACITY) as u64;
    let file_len = input.file_len(file_sel, claimed, limit);
    let Ok(params) = scratch.header().validate(KIND_SPSC, file_len) else {
        return;
    };
    check_validated(&params, KIND_SPSC, file_len);

    // Map it: a segment of the validated size holding the same header.
    let seg = heap_segment(&params);
    let image = read_header(scratch.header());
    write_header(seg.header(), &mut Input::new(&image));
    assert_eq!(seg.header().validate(KIND_SPSC, file_len), Ok(params));
    let (head, tail) = (
        seg.header().head.load(Ordering::Relaxed),
        seg.header().tail.load(Ordering::Relaxed),
    );

    let wait = wait_strategy(file_sel >> 2);
    let Ok(tx) = Producer::attach(seg.clone(), params, wait) else {
        return;
    };
    let Ok(rx) = Consumer::attach(seg.clone(), params, wait) else {
        return;
    };
    // The ring works: checked against the model when the cursors say it is empty.
    // Sanity checks only otherwise: with `head < tail` the consumer waits for records
    // that the (zeroed) region does not hold, which it cannot tell from records not yet
    // written; and a ring that starts near 2^63 passes it, past which a re-attaching
    // endpoint rightly reports the cursors as corrupt.
    let checked = head == tail && tail < 1 << 62;
    let m = Model::new(&params, tx.fragment_record(), !checked);
    let mut h = Harness {
        env: Env {
            seg,
            params,
            wait,
            hostile: false,
        },
        tx: Some(tx),
        rx: Some(rx),
        m,
    };
    h.run(&mut input);
}

// ---------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------

/// Seeds of [`frame_decode`]: regions written by a real producer (whole messages,
/// fragments, an abandoned message, padding), at position 0 and at other laps.
pub fn frame_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (shift, start) in [(0u8, 0u64), (2, 0), (4, 1 << 20), (6, 4096 * 3 + 512)] {
        let capacity = 64usize << shift;
        let (seg, params) = heap_ring(capacity, MAX_FUZZ_MESSAGE, false, false);
        seg.header().head.store(start, Ordering::Relaxed);
        seg.header().tail.store(start, Ordering::Relaxed);
        let mut tx = Producer::attach(seg.clone(), params, Wait::Spin).expect("attach");
        for (seq, len) in [0usize, 5, 8, 13, 40, 3, 100, 17, 250, 9, 600, 2, 1500]
            .into_iter()
            .enumerate()
        {
            if tx.try_send(&content(seq as u64, len)).is_err() {
                break;
            }
        }
        {
            // A message abandoned after its first fragment: an ABORT closes it.
            let mut w = MessageWriter::new(&mut tx, 4 * capacity as u64, Mode::Try);
            let _ = w.write(&content(99, capacity / 2));
        }
        drop(tx);
        let mut v = vec![shift];
        v.extend_from_slice(&((start >> 3) as u32).to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes()); // tail = head
        v.push(0); // max_message: MAX_FUZZ_MESSAGE
        let ops = [0u8, 1, 3, 6, 7, 9, 2, 4, 8, 5, 10];
        v.push(ops.len() as u8);
        v.extend_from_slice(&ops);
        let region = seg.data();
        let mut bytes = vec![0; capacity];
        let s = (start & (capacity as u64 - 1)) as usize;
        // SAFETY: no endpoint is attached; both ranges are inside the region.
        unsafe {
            region.read(s, &mut bytes[..capacity - s]);
            region.read(0, &mut bytes[capacity - s..]);
        }
        let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        v.extend_from_slice(&bytes[..used]);
        out.push(v);
    }
    out
}

/// Encodes operations for [`ring_ops`] (see `Harness::run` for the codes).
#[derive(Default)]
struct Program(Vec<u8>);

impl Program {
    /// A length of class 3 (`below(max_payload + 1)`) or 5 (`below(4 * cap + 1)`).
    fn len(&mut self, class: u8, len: u32) {
        self.0.push(class);
        self.0.extend_from_slice(&len.to_le_bytes());
    }
    fn try_send(&mut self, class: u8, len: u32) {
        self.0.push(0);
        self.len(class, len);
    }
    fn send_blocking(&mut self, how: u8, len: u8) {
        self.0.extend_from_slice(&[3 | (how << 4), 0, len]);
    }
    fn reserve(&mut self, len: u8, action: u8) {
        self.0.extend_from_slice(&[4, 0, len, action]);
    }
    /// Consumer operation `k` (see `consumer_op`), with its argument bytes.
    fn consumer(&mut self, k: u8, args: &[u8]) {
        self.0.push(9 | (k << 4));
        self.0.extend_from_slice(args);
    }
    /// A stream of `len` bytes written in pieces of `piece`, a receive between pieces.
    fn stream(&mut self, len: u32, piece: u16, finish: bool) {
        self.0.push(6);
        self.len(5, len);
        for _ in 0..len / u32::from(piece.max(1)) + 1 {
            self.0.push(0);
            self.0.extend_from_slice(&piece.to_le_bytes());
            self.0.push(3); // try_recv
        }
        self.0.push(if finish { 6 } else { 7 });
    }
    fn peer(&mut self, bytes: &[u8]) {
        self.0.push(14);
        self.0.extend_from_slice(bytes);
    }
}

/// Seeds of [`ring_ops`]: see `op_seeds`.
pub fn ring_ops_seeds() -> Vec<Vec<u8>> {
    op_seeds(false)
}

/// Seeds of [`hostile_peer`]: see `op_seeds`.
pub fn hostile_peer_seeds() -> Vec<Vec<u8>> {
    op_seeds(true)
}

/// Operation sequences: sends of every size class, grants, streams, receives of every
/// kind, re-attaching endpoints; for `hostile_peer`, peer writes at the end.
fn op_seeds(hostile: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for sel in [0u8, 2, 5, 6, 7, 0x0a, 0x41, 0x66] {
        let mut p = Program(vec![sel]);
        if sel & 0x40 != 0 {
            p.0.extend_from_slice(&0x0fff_fff0u32.to_le_bytes()); // start position
        }
        for (class, len) in [(3u8, 10u32), (3, 200), (5, 999), (3, 7), (5, 77)] {
            p.try_send(class, len);
            p.consumer(0, &[]);
        }
        p.reserve(30, 0);
        p.reserve(30, 2);
        p.0.extend_from_slice(&[5, 0]);
        p.reserve(12, 3);
        p.consumer(3, &[]); // try_recv_ref
        p.consumer(4, &[]); // recv_ref
        p.stream(3000, 200, true);
        p.consumer(5, &[1, 9, 0, 0, 0]); // read a stream to its end
        p.stream(2000, 300, false); // abandoned
        p.consumer(0, &[]);
        p.consumer(9, &[]); // re-attach the consumer
        p.0.push(8); // re-attach the producer
        p.send_blocking(0, 50);
        p.consumer(0, &[]);
        p.send_blocking(1, 60);
        p.consumer(2, &[]);
        p.send_blocking(2, 16);
        p.consumer(7, &[]); // recv_pod
        p.consumer(8, &[1, 100, 0]); // max_message 100
        p.try_send(5, 5000);
        p.consumer(1, &[]);
        if hostile {
            p.peer(&[0, 0, 4, 4, 0x10, 0x03]); // a header at head
            p.consumer(0, &[]);
            p.peer(&[1, 0, 0, 1]); // head := tail
            p.try_send(3, 20);
            p.peer(&[3, 0, 8, 0xff]); // payload bytes
        }
        p.0.push(1); // the producer leaves first
        out.push(p.0);
    }
    out
}

/// Seeds of [`header_open`]: valid headers of rings of several sizes (file as sized
/// by the creator), with operations after them.
pub fn header_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (capacity, asymmetric, start) in [
        (64usize, false, 0u64),
        (4096, true, 8 << 20),
        (1 << 16, false, 4096),
    ] {
        let (seg, _) = heap_ring(capacity, 1 << 20, asymmetric, capacity == 64);
        seg.header().head.store(start, Ordering::Relaxed);
        seg.header().tail.store(start, Ordering::Relaxed);
        let mut v = read_header(seg.header());
        v.push(0); // the file length as the creator sized it; Wait::Spin
        let mut p = Program::default();
        p.try_send(3, 20);
        p.try_send(5, 3 * capacity as u32 / 4);
        p.consumer(0, &[]);
        p.consumer(0, &[]);
        p.stream(2 * capacity as u32, 100, true);
        p.consumer(5, &[1, 0, 1, 0, 0]);
        v.extend_from_slice(&p.0);
        out.push(v);
    }
    out
}
