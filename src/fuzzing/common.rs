//! What the SPSC and MPMC harnesses share, written once: reading the input, the flags
//! and contents of the rings they build, the public calls of either flavour's
//! endpoints (one trait per role, so that one function makes them on both), the reads
//! of a ring whose producers are gone, the checks made once the peers have left, the
//! header-field plumbing of `header_open`, and the peer's writes into event counts
//! and payload bytes.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::header::{RingParams, FLAG_ASYMMETRIC_FENCES, NOTIFIER_MASK, NOTIFIER_SEMAPHORE};
use crate::message::{RecordConsumer, RecordProducer};
use crate::segment::heap::HeapSegment;
use crate::segment::Segment;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::{EventWord, Wait};
use crate::{MessageReader, MessageWriter, ReadGrant, WriteGrant};

/// Ring capacities the operation targets pick from: the smallest ring, rings whose
/// fragments are half the ring, and rings (4096 and up) whose fragments are a quarter.
pub(super) const CAPACITIES: [usize; 8] = [64, 128, 256, 512, 1024, 2048, 4096, 16384];

/// Largest data region `header_open` maps (the simulated file is clamped to it).
pub(super) const MAX_OPEN_CAPACITY: usize = 1 << 14;

/// Upper bound on `max_message` where the input picks it, so that a hostile total
/// length never makes a reassembly buffer of gigabytes (a libFuzzer OOM report).
pub(super) const MAX_FUZZ_MESSAGE: u64 = 1 << 20;

/// Prints what the harness does when `SHMLANE_FUZZ_TRACE` is set: to see why an input
/// fails (`SHMLANE_FUZZ_TRACE=1 cargo fuzz run <target> <input>`).
macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::fuzzing::common::tracing() {
            eprintln!($($arg)*);
        }
    };
}
pub(super) use trace;

pub(super) fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| !cfg!(miri) && std::env::var_os("SHMLANE_FUZZ_TRACE").is_some())
}

// ---------------------------------------------------------------------------------
// Reading the input
// ---------------------------------------------------------------------------------

/// The fuzz input as a stream of little-endian numbers; zeros once it runs out.
pub(super) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next `n` bytes (fewer at the end of the input).
    pub(super) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    pub(super) fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0; N];
        let t = self.take(N);
        b[..t.len()].copy_from_slice(t);
        b
    }

    pub(super) fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    pub(super) fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub(super) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub(super) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// A number in `0..n` (n > 0).
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.u32() as usize) % n
    }

    /// The length of the segment's file (as `fstat` would report it) from a selector:
    /// what the header claims, a little less, or anything; at most `limit`.
    pub(super) fn file_len(&mut self, file_sel: u8, claimed: u64, limit: u64) -> u64 {
        match file_sel % 4 {
            0 | 1 => claimed,
            2 => claimed.wrapping_sub(u64::from(self.u16())),
            _ => self.u64(),
        }
        .min(limit)
    }
}

// ---------------------------------------------------------------------------------
// Rings and messages
// ---------------------------------------------------------------------------------

/// The wait strategy an input picks (only zero timeouts ever reach it).
pub(super) fn wait_strategy(sel: u8) -> Wait {
    [Wait::Spin, Wait::Yield, Wait::Park, Wait::Adaptive][usize::from(sel % 4)]
}

/// Header flags for asymmetric fences and the semaphore notifier, as asked for.
/// Miri has no membarrier system call and no POSIX semaphores: its rings use
/// symmetric fences and the futex notifier.
pub(super) fn ring_flags(asymmetric: bool, semaphores: bool) -> u64 {
    let mut flags = 0;
    if asymmetric && !cfg!(miri) && crate::wait::membarrier::register() {
        flags |= FLAG_ASYMMETRIC_FENCES;
    }
    if semaphores && !cfg!(miri) {
        flags |= NOTIFIER_SEMAPHORE;
    }
    flags
}

/// Under Miri, clears from a header's flags what Miri cannot do (see [`ring_flags`]);
/// whether it changed them.
pub(super) fn clear_flags_miri_lacks(flags: &AtomicU64) -> bool {
    if !cfg!(miri) {
        return false;
    }
    let mask = !(FLAG_ASYMMETRIC_FENCES | NOTIFIER_MASK);
    flags.store(flags.load(Ordering::Relaxed) & mask, Ordering::Relaxed);
    true
}

/// A heap segment laid out like a shared one for `params`, with no endpoint attached.
pub(super) fn heap_segment(params: &RingParams) -> Arc<Segment> {
    let seg = HeapSegment::new(params).expect("a small heap segment");
    Arc::new(Segment::Heap(seg))
}

/// The content of message `id`, `len` bytes: distinct for every message and offset.
pub(super) fn content(id: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    let mut i = 0u64;
    while v.len() < len {
        v.extend_from_slice(&splitmix64(id.wrapping_mul(0x1_0000_0001) ^ i).to_le_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A `try_` receive error in the form of the timed one: `Timeout` stands for "would
/// block" (`Empty`).
pub(super) fn from_try(e: TryRecvError) -> RecvTimeoutError {
    match e {
        TryRecvError::Empty => RecvTimeoutError::Timeout,
        TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
        TryRecvError::TooLarge { len, max } => RecvTimeoutError::TooLarge { len, max },
        TryRecvError::Fragmented { len } => RecvTimeoutError::Fragmented { len },
        TryRecvError::Truncated => RecvTimeoutError::Truncated,
        TryRecvError::SizeMismatch { expected, found } => {
            RecvTimeoutError::SizeMismatch { expected, found }
        }
        TryRecvError::Corrupt(c) => RecvTimeoutError::Corrupt(c),
    }
}

/// A zero-timeout send error in the form of the `try_` one: `Timeout` is `Full`.
pub(super) fn timeout_as_full(e: SendTimeoutError) -> TrySendError {
    match e {
        SendTimeoutError::Timeout => TrySendError::Full,
        SendTimeoutError::Disconnected => TrySendError::Disconnected,
        SendTimeoutError::TooLarge { len, max } => TrySendError::TooLarge { len, max },
        SendTimeoutError::Corrupt(c) => TrySendError::Corrupt(c),
    }
}

/// What the operations of `ring_ops`, `hostile_peer` and `header_open` need besides
/// the endpoints and the model.
pub(super) struct Env {
    pub(super) seg: Arc<Segment>,
    pub(super) params: RingParams,
    pub(super) wait: Wait,
    /// Peer writes are among the operations.
    pub(super) hostile: bool,
}

// ---------------------------------------------------------------------------------
// The endpoints of either flavour
// ---------------------------------------------------------------------------------

/// The public calls of a consumer that the shared checks make, on either flavour
/// (both get them from `consumer_methods!`).
pub(super) trait Receiver: RecordConsumer + Sized {
    fn try_recv(&mut self, buf: &mut Vec<u8>) -> Result<usize, TryRecvError>;
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize, RecvError>;
    fn recv_timeout(&mut self, buf: &mut Vec<u8>, t: Duration) -> Result<usize, RecvTimeoutError>;
    fn try_recv_ref(&mut self) -> Result<ReadGrant<'_, Self>, TryRecvError>;
    fn recv_ref(&mut self) -> Result<ReadGrant<'_, Self>, RecvError>;
    fn recv_ref_timeout(&mut self, t: Duration) -> Result<ReadGrant<'_, Self>, RecvTimeoutError>;
    fn recv_stream(&mut self) -> Result<MessageReader<'_, Self>, RecvError>;
    fn recv_stream_timeout(
        &mut self,
        t: Duration,
    ) -> Result<MessageReader<'_, Self>, RecvTimeoutError>;
    fn recv_pod<T: bytemuck::Pod>(&mut self) -> Result<T, RecvError>;
    fn max_message(&self) -> u64;
    fn is_disconnected(&self) -> bool;
}

/// The public calls of a producer that the shared checks make, on either flavour
/// (both get them from `producer_methods!`).
pub(super) trait Sender: RecordProducer + Sized {
    fn try_send(&mut self, msg: &[u8]) -> Result<(), TrySendError>;
    fn try_reserve(&mut self, len: usize) -> Result<WriteGrant<'_, Self>, TrySendError>;
    fn stream(&mut self, total_len: u64) -> Result<MessageWriter<'_, Self>, SendError>;
    fn is_disconnected(&self) -> bool;
}

/// Implements [`Receiver`] and [`Sender`] for a flavour by calling its own methods.
macro_rules! endpoints {
    ($c:ty, $p:ty) => {
        impl Receiver for $c {
            fn try_recv(&mut self, buf: &mut Vec<u8>) -> Result<usize, TryRecvError> {
                <$c>::try_recv(self, buf)
            }
            fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize, RecvError> {
                <$c>::recv(self, buf)
            }
            fn recv_timeout(
                &mut self,
                buf: &mut Vec<u8>,
                t: Duration,
            ) -> Result<usize, RecvTimeoutError> {
                <$c>::recv_timeout(self, buf, t)
            }
            fn try_recv_ref(&mut self) -> Result<ReadGrant<'_, Self>, TryRecvError> {
                <$c>::try_recv_ref(self)
            }
            fn recv_ref(&mut self) -> Result<ReadGrant<'_, Self>, RecvError> {
                <$c>::recv_ref(self)
            }
            fn recv_ref_timeout(
                &mut self,
                t: Duration,
            ) -> Result<ReadGrant<'_, Self>, RecvTimeoutError> {
                <$c>::recv_ref_timeout(self, t)
            }
            fn recv_stream(&mut self) -> Result<MessageReader<'_, Self>, RecvError> {
                <$c>::recv_stream(self)
            }
            fn recv_stream_timeout(
                &mut self,
                t: Duration,
            ) -> Result<MessageReader<'_, Self>, RecvTimeoutError> {
                <$c>::recv_stream_timeout(self, t)
            }
            fn recv_pod<T: bytemuck::Pod>(&mut self) -> Result<T, RecvError> {
                <$c>::recv_pod(self)
            }
            fn max_message(&self) -> u64 {
                <$c>::max_message(self)
            }
            fn is_disconnected(&self) -> bool {
                <$c>::is_disconnected(self)
            }
        }

        impl Sender for $p {
            fn try_send(&mut self, msg: &[u8]) -> Result<(), TrySendError> {
                <$p>::try_send(self, msg)
            }
            fn try_reserve(&mut self, len: usize) -> Result<WriteGrant<'_, Self>, TrySendError> {
                <$p>::try_reserve(self, len)
            }
            fn stream(&mut self, total_len: u64) -> Result<MessageWriter<'_, Self>, SendError> {
                <$p>::stream(self, total_len)
            }
            fn is_disconnected(&self) -> bool {
                <$p>::is_disconnected(self)
            }
        }
    };
}

endpoints!(crate::spsc::Consumer, crate::spsc::Producer);
endpoints!(crate::mpmc::Consumer, crate::mpmc::Producer);

/// Commits a prefix of a grant of `len` bytes, of a length drawn from the input (up to
/// `len + 1`): the length committed, or `None` for a length past the grant, which
/// must be refused with both lengths named (and publishes nothing).
pub(super) fn commit_prefix<P: RecordProducer>(
    g: WriteGrant<'_, P>,
    len: usize,
    input: &mut Input<'_>,
) -> Option<usize> {
    let k = usize::from(input.u16()) % (len + 2);
    match g.commit_len(k) {
        Ok(()) => {
            assert!(k <= len, "a commit of {k} bytes of a grant of {len}");
            Some(k)
        }
        Err(e) => {
            assert!(k > len && e.len == k && e.granted == len, "{e:?}");
            None
        }
    }
}

/// Writes `msg` through a stream writer made for its length, in pieces of a size
/// `op` picks, and finishes it: on a ring where every write must go through (`what`
/// says why, for the panic message).
pub(super) fn write_whole<P: RecordProducer>(
    mut w: MessageWriter<'_, P>,
    msg: &[u8],
    op: u8,
    what: &str,
) {
    let chunk = 1 + usize::from(op >> 6) * 97;
    for c in msg.chunks(chunk) {
        if let Err(e) = w.write_all(c) {
            panic!("a stream write {what}: {e}");
        }
    }
    assert_eq!(w.remaining(), 0);
    if let Err(e) = w.finish() {
        panic!("finish a stream {what}: {e}");
    }
}

/// A producer whose consumers have all left: every send says so.
pub(super) fn assert_consumers_gone<P: Sender>(tx: &mut P) {
    assert_eq!(tx.try_send(b"late"), Err(TrySendError::Disconnected));
    assert!(matches!(tx.try_reserve(1), Err(TrySendError::Disconnected)));
    assert!(matches!(tx.stream(1), Err(SendError::Disconnected)));
    assert!(tx.is_disconnected());
}

/// A consumer that has taken every message its departed producers left: every
/// receive says they are gone.
pub(super) fn assert_drained<C: Receiver>(rx: &mut C) {
    assert_eq!(
        rx.try_recv(&mut Vec::new()),
        Err(TryRecvError::Disconnected)
    );
    assert!(matches!(rx.try_recv_ref(), Err(TryRecvError::Disconnected)));
    assert!(matches!(rx.recv_stream(), Err(RecvError::Disconnected)));
    assert!(rx.is_disconnected());
}

// ---------------------------------------------------------------------------------
// Reads of a ring whose producers are gone (frame_decode, cell_decode)
// ---------------------------------------------------------------------------------

/// Reads every byte of a grant (so that a sanitizer sees the accesses); its length.
pub(super) fn touch(bytes: &[u8]) -> usize {
    let sum = bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    std::hint::black_box(sum);
    bytes.len()
}

/// Reads a message to its end, `chunk` bytes at a time: the length read. The reader
/// must stop at its declared length; a message that ends early is an error.
pub(super) fn read_all<C: RecordConsumer>(mut r: MessageReader<'_, C>, chunk: usize) -> usize {
    let total = r.len();
    let mut buf = vec![0; chunk.max(1)];
    let mut got = 0u64;
    // Each read returns at least one byte or ends; bound it anyway.
    for _ in 0..=total.saturating_add(2) {
        match r.read(&mut buf) {
            Ok(0) => {
                assert_eq!(got, total, "a message reader ended early");
                return got as usize;
            }
            Ok(n) => {
                got += n as u64;
                assert!(got <= total, "a message reader read past its length");
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return got as usize,
        }
    }
    panic!("a message reader of {total} bytes kept returning data");
}

/// Reads up to `n` bytes of a message, then drops the reader (the rest is skipped).
pub(super) fn read_some<C: RecordConsumer>(mut r: MessageReader<'_, C>, n: usize) -> usize {
    let mut buf = vec![0; n];
    match r.read(&mut buf) {
        Ok(k) => {
            assert!(k <= n && k as u64 <= r.len());
            k
        }
        Err(_) => 0,
    }
}

/// The outcome of one read of a consumer whose producers are gone.
enum Progress {
    /// Took at least one record.
    Read,
    /// Took nothing (an error that leaves the record in place, or a held slot).
    Stuck,
    /// The ring is empty and the producers gone.
    End,
}

/// A consumer whose producers are gone reads, in the ways `ops` cycles through, until
/// the ring reads as empty or nine reads in a row take nothing. Every read returns a
/// message or an error, and the reads end: at most `limit` take a record (`ring`
/// names the ring in the message if they do not).
///
/// `may_block`: a blocking call returns (nothing else holds the reader-stream slot),
/// so blocking calls are made too and no read may say it would wait.
/// `max_payload`: the most a record holds (what a grant may be).
pub(super) fn read_until_end<C: Receiver>(
    rx: &mut C,
    ops: &[u8],
    may_block: bool,
    max_payload: usize,
    limit: usize,
    ring: &str,
) {
    let (mut reads, mut idle, mut step) = (0usize, 0usize, 0usize);
    loop {
        let op = if ops.is_empty() {
            0
        } else {
            ops[step % ops.len()]
        };
        step += 1;
        match read_once(rx, op, may_block, max_payload) {
            Progress::Read => {
                reads += 1;
                idle = 0;
                assert!(
                    reads <= limit,
                    "{reads} reads from {ring}: they should have ended"
                );
            }
            Progress::Stuck => {
                idle += 1;
                if idle > 8 {
                    break;
                }
            }
            Progress::End => break,
        }
    }
}

/// One read of a consumer whose producers are gone, of the kind `op` says (the
/// blocking kinds only if `may_block`).
fn read_once<C: Receiver>(rx: &mut C, op: u8, may_block: bool, max_payload: usize) -> Progress {
    let mut buf = vec![0xa5; usize::from(op >> 5)];
    let zero = Duration::ZERO;
    let kind = if may_block { op % 11 } else { op % 5 };
    let got: Result<usize, RecvTimeoutError> = match kind {
        0 => rx.try_recv(&mut buf).map_err(from_try),
        1 => rx.recv_timeout(&mut buf, zero),
        2 => rx.try_recv_ref().map(|g| touch(&g)).map_err(from_try),
        3 => rx.recv_ref_timeout(zero).map(|g| touch(&g)),
        4 => rx.recv_stream_timeout(zero).map(|r| {
            if may_block {
                read_all(r, 1 + usize::from(op >> 3))
            } else {
                // A further fragment would be waited for if the slot is not ours.
                r.len() as usize
            }
        }),
        5 => rx.recv(&mut buf).map_err(Into::into),
        6 => rx.recv_ref().map(|g| touch(&g)).map_err(Into::into),
        7 => rx
            .recv_stream()
            .map(|r| read_all(r, 1 + usize::from(op >> 4)))
            .map_err(Into::into),
        8 => rx
            .recv_stream()
            .map(|r| read_some(r, usize::from(op >> 4)))
            .map_err(Into::into),
        9 => rx.recv_pod::<u64>().map(|_| 8).map_err(Into::into),
        _ => rx.recv_pod::<[u64; 12]>().map(|_| 96).map_err(Into::into),
    };
    match got {
        Ok(n) => {
            if matches!(kind, 0 | 1 | 5) {
                assert_eq!(n, buf.len());
                assert!(n as u64 <= Receiver::max_message(rx));
            }
            if matches!(kind, 2 | 3 | 6) {
                assert!(n <= max_payload);
            }
            Progress::Read
        }
        Err(RecvTimeoutError::Timeout) => {
            // With the producers gone, an empty ring reads as Disconnected; only a
            // reader-stream slot held by another consumer (MPMC: a value of the
            // input) makes a consumer wait.
            assert!(!may_block, "a consumer whose producers are gone would wait");
            Progress::Stuck
        }
        Err(RecvTimeoutError::Disconnected) => Progress::End,
        Err(RecvTimeoutError::Truncated | RecvTimeoutError::SizeMismatch { .. }) => Progress::Read,
        Err(RecvTimeoutError::TooLarge { len, max }) => {
            assert!(len > max);
            Progress::Stuck
        }
        Err(RecvTimeoutError::Fragmented { .. } | RecvTimeoutError::Corrupt(_)) => Progress::Stuck,
    }
}

/// The check of a receive into `buf` on a ring whose contents are unknown: the length
/// is the buffer's, and no more than the largest `max_message` the consumer has had.
pub(super) fn check_len(got: Result<usize, RecvTimeoutError>, buf: &[u8], ceiling: u64) {
    if let Ok(n) = got {
        assert_eq!(n, buf.len());
        assert!(n as u64 <= ceiling, "{n} bytes past max_message {ceiling}");
    }
}

// ---------------------------------------------------------------------------------
// Header fields (header_open)
// ---------------------------------------------------------------------------------

/// A header field of 4 or 8 bytes, read and written as a `u64`.
pub(super) enum HField<'a> {
    U32(&'a AtomicU32),
    U64(&'a AtomicU64),
}

impl HField<'_> {
    pub(super) fn load(&self) -> u64 {
        match self {
            HField::U32(a) => u64::from(a.load(Ordering::Relaxed)),
            HField::U64(a) => a.load(Ordering::Relaxed),
        }
    }

    /// Stores `v` (truncated to the field's width).
    pub(super) fn store(&self, v: u64) {
        match self {
            HField::U32(a) => a.store(v as u32, Ordering::Relaxed),
            HField::U64(a) => a.store(v, Ordering::Relaxed),
        }
    }

    /// Bytes in the field.
    pub(super) fn width(&self) -> usize {
        match self {
            HField::U32(_) => 4,
            HField::U64(_) => 8,
        }
    }
}

/// What `validate` must guarantee of the parameters it accepts from a file of
/// `file_len` bytes, for a ring of kind `kind`.
pub(super) fn check_validated(params: &RingParams, kind: u32, file_len: u64) {
    assert_eq!(params.kind, kind);
    assert!(params.capacity.is_power_of_two());
    assert!((crate::MIN_CAPACITY..=crate::MAX_CAPACITY).contains(&params.capacity));
    assert!(
        params.segment_len() as u64 <= file_len,
        "larger than the file"
    );
    assert_eq!(params.max_record, (params.capacity / 2).min(1 << 31));
}

// ---------------------------------------------------------------------------------
// The peer's writes (hostile_peer)
// ---------------------------------------------------------------------------------

/// A peer's write into an event count: its waiter and token counts (the low half of
/// the state, keeping the epoch) or its futex word; small values or raw ones.
pub(super) fn scribble_event_word(word: &EventWord, input: &mut Input<'_>) {
    let v = match input.u8() % 2 {
        0 => u32::from(input.u8() % 4),
        _ => input.u32(),
    };
    if input.u8() & 1 == 0 {
        let e = word.state.load(Ordering::Relaxed);
        word.state
            .store(e & !0xffff_ffff | u64::from(v), Ordering::Release);
    } else {
        word.futex.store(v, Ordering::Release);
    }
}

/// A peer's write of up to 16 payload bytes at `index` of the data region.
pub(super) fn scribble_payload(
    seg: &Segment,
    capacity: usize,
    index: usize,
    input: &mut Input<'_>,
) {
    let bytes = input.take(16);
    let n = bytes.len().min(capacity - index);
    // SAFETY: in bounds (`index + n <= capacity`, the region's size); the endpoints
    // run in this thread and hold no slice over the region between their calls.
    unsafe { seg.data().write(index, &bytes[..n]) };
}
