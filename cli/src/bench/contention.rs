//! The MPMC throughput section: P producers and C consumers on one channel, 64 B and
//! 4 KiB messages, 1P1C, 2P2C and 4P4C: shmlane's MPMC ring and a shared pipe
//! between processes, crossbeam's `ArrayQueue` between threads.
//!
//! Unlike the one-way rows, the parent times these rows itself. The producers and
//! consumers meet at the start barrier; producers send until the parent raises
//! `stop`; each consumer publishes how many messages it has checked so far in its own
//! cache line of a shared [`Board`]. The parent sleeps through the warm-up, reads the
//! consumers' total and the clock, sleeps through the timed part and reads them
//! again: the rate is the messages consumed between the two readings (the steady
//! state: neither the start nor the drain is inside). Then it raises `stop`; each
//! producer records how many messages it sent and leaves; the consumers drain until
//! the end of input (every producer gone, nothing left) and leave; and the parent
//! checks that the consumers took exactly as many messages as the producers sent.
//!
//! Every consumer checks every message: its length, the producer id (in range), the
//! producer's sequence number (above the last one this consumer saw from that
//! producer: each consumer sees each producer's messages in order), and the last
//! byte, a tag of both.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::Backoff;
use shmlane::mpmc::{Consumer, Producer};
use shmlane::{Notifier, RecvError, RingOptions, Wait};

use super::mechs::{Mech, RingKind, Shape, MECHANISMS};
use super::process::MAX_CHILDREN;
use super::process::{self, fork_child, now_ns, Child, Control, ControlMap, SharedMap};
use super::{baselines, report, shm, workload, BenchError, Buffer, Load, Runner, Setup, Transfer};

/// The message sizes of the section.
pub(crate) const SIZES: [usize; 2] = [64, 4 << 10];

/// Bytes at the start of a message: its sequence number, then its producer's id
/// (each a little-endian u64). The last byte is the tag.
const HEAD: usize = 16;

/// The longest write a pipe keeps whole between several writers and readers.
const PIPE_BUF: usize = libc::PIPE_BUF;

/// The name of producer or consumer `i` in error messages.
fn role(producer: bool, i: usize) -> &'static str {
    const PRODUCERS: [&str; 8] = [
        "producer 0",
        "producer 1",
        "producer 2",
        "producer 3",
        "producer 4",
        "producer 5",
        "producer 6",
        "producer 7",
    ];
    const CONSUMERS: [&str; 8] = [
        "consumer 0",
        "consumer 1",
        "consumer 2",
        "consumer 3",
        "consumer 4",
        "consumer 5",
        "consumer 6",
        "consumer 7",
    ];
    let names = if producer { &PRODUCERS } else { &CONSUMERS };
    names
        .get(i)
        .copied()
        .unwrap_or(if producer { "a producer" } else { "a consumer" })
}

// ---------------------------------------------------------------------------------
// The board: the shared counters of a row
// ---------------------------------------------------------------------------------

/// A counter alone on its 128 bytes (two cache lines: the adjacent-line prefetcher
/// pairs them), so that no two writers share a line.
#[repr(C, align(128))]
#[derive(Debug)]
struct Line(AtomicU64);

/// The counters of one row, in a shared anonymous mapping made before the fork.
#[repr(C)]
#[derive(Debug)]
struct Board {
    /// Endpoints that have arrived at the start barrier.
    ready: Line,
    /// Raised (non-zero) by the parent at the end of the timed part: producers stop.
    stop: Line,
    /// Messages consumer `c` has checked so far; written by that consumer alone.
    taken: [Line; MAX_CHILDREN],
    /// Messages producer `p` sent in all; written once, when it stops.
    sent: [Line; MAX_CHILDREN],
}

impl Board {
    /// The start barrier: counts us in, then waits (yielding, so that a peer not yet
    /// scheduled can run) until `parties` endpoints are in.
    fn barrier(&self, parties: usize, deadline_ns: u64) -> Result<(), String> {
        // AcqRel / Acquire: what each party did before arriving (opening its endpoint)
        // happens before the others leave the barrier.
        self.ready.0.fetch_add(1, Ordering::AcqRel);
        while self.arrived() < parties as u64 {
            if now_ns() > deadline_ns {
                return Err("timed out at the start barrier (a peer never arrived)".into());
            }
            std::thread::yield_now();
        }
        Ok(())
    }

    /// How many endpoints have arrived at the start barrier.
    fn arrived(&self) -> u64 {
        // Acquire: as in `barrier`.
        self.ready.0.load(Ordering::Acquire)
    }
}

/// The mapping that holds a [`Board`].
#[derive(Debug)]
struct BoardMap(SharedMap);

impl BoardMap {
    fn new() -> Result<Self, String> {
        SharedMap::new(std::mem::size_of::<Board>())
            .map(BoardMap)
            .map_err(|e| e.to_string())
    }

    fn board(&self) -> &Board {
        const _: () = assert!(std::mem::align_of::<Board>() <= 4096);
        // SAFETY: the mapping is page aligned (more than `Board`'s 128), at least
        // `size_of::<Board>()` long, lives as long as `self`, and all-zero bytes (as mmap
        // gives) are a valid `Board`: atomics only. Every process and thread touches it
        // through atomics only.
        unsafe { &*self.0.ptr().cast::<Board>() }
    }
}

/// `(ns, messages)`: the clock and the consumers' total, read together (the clock
/// is the middle of the reads).
fn sample(board: &Board, consumers: usize) -> (u64, u64) {
    let a = now_ns();
    // Relaxed: a count is monotonic and only sampled; no data is read through it.
    let n = board.taken[..consumers]
        .iter()
        .map(|l| l.0.load(Ordering::Relaxed))
        .sum();
    let b = now_ns();
    (a + (b - a) / 2, n)
}

// ---------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------

#[inline]
fn tag(producer: u64, seq: u64) -> u8 {
    ((seq ^ producer << 48).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8 | 1
}

#[inline]
fn word(msg: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&msg[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Makes `msg` (longer than [`HEAD`]) message `seq` of `producer`.
#[inline]
fn stamp(msg: &mut [u8], producer: u64, seq: u64) {
    debug_assert!(msg.len() > HEAD);
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    msg[8..HEAD].copy_from_slice(&producer.to_le_bytes());
    let last = msg.len() - 1;
    msg[last] = tag(producer, seq);
}

/// What one consumer knows of the messages it has seen.
struct Checker {
    len: usize,
    /// The lowest sequence number each producer's next message may carry here.
    next: Vec<u64>,
}

impl Checker {
    fn new(len: usize, producers: usize) -> Self {
        Checker {
            len,
            next: vec![0; producers],
        }
    }

    #[inline]
    fn check(&mut self, msg: &[u8]) -> Result<(), String> {
        if msg.len() != self.len {
            return Err(format!(
                "a message of {} bytes, expected {}",
                msg.len(),
                self.len
            ));
        }
        let seq = word(msg, 0);
        let producer = word(msg, 8);
        let producers = self.next.len();
        let next = usize::try_from(producer)
            .ok()
            .and_then(|p| self.next.get_mut(p))
            .ok_or_else(|| format!("producer id {producer}, not below {producers}"))?;
        if seq < *next {
            return Err(format!(
                "producer {producer}: message {seq} after message {}",
                *next - 1
            ));
        }
        let want = tag(producer, seq);
        if msg[self.len - 1] != want {
            return Err(format!(
                "producer {producer} message {seq}: last byte {:#04x}, expected {want:#04x}",
                msg[self.len - 1]
            ));
        }
        *next = seq + 1;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// The two loops, over any channel
// ---------------------------------------------------------------------------------

/// The sending side of one producer: a message buffer of its own, and a way to send it.
trait Sink {
    /// The message to send next, the full message length.
    fn buf(&mut self) -> &mut [u8];
    /// Sends [`buf`](Sink::buf). `Ok(false)`: gave up because `stop` was raised
    /// while it waited for room (the channels that wait inside the kernel or the ring
    /// always send; their consumers keep draining).
    fn put(&mut self, stop: &AtomicU64) -> Result<bool, String>;
}

/// The receiving side of one consumer.
trait Source {
    /// The next message, copied out into a buffer of the source's; `None` at the end
    /// of input (every producer gone and nothing left).
    fn take(&mut self) -> Result<Option<&[u8]>, String>;
}

/// Producer `p`: sends messages `0, 1, ...` until `stop`, then records how many.
fn produce<S: Sink>(sink: &mut S, board: &Board, p: usize) -> Result<(), String> {
    let mut seq = 0u64;
    // Relaxed: `stop` carries no data; seeing it a few messages late costs nothing.
    while board.stop.0.load(Ordering::Relaxed) == 0 {
        stamp(sink.buf(), p as u64, seq);
        if !sink.put(&board.stop.0)? {
            break;
        }
        seq += 1;
    }
    // Relaxed: the parent reads it after reaping this process, or after joining this
    // thread's process; both order it.
    board.sent[p].0.store(seq, Ordering::Relaxed);
    Ok(())
}

/// Consumer `c`: takes and checks every message until the end of input, publishing
/// its count after each.
fn consume<S: Source>(
    src: &mut S,
    board: &Board,
    c: usize,
    producers: usize,
    len: usize,
) -> Result<(), String> {
    let mut checker = Checker::new(len, producers);
    let mut n = 0u64;
    while let Some(msg) = src.take()? {
        checker.check(msg)?;
        n += 1;
        // Relaxed: only sampled (see `sample`); the final value is read after the
        // consumer exited.
        board.taken[c].0.store(n, Ordering::Relaxed);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// shmlane's MPMC ring
// ---------------------------------------------------------------------------------

struct MpmcSink {
    tx: Producer,
    msg: Vec<u8>,
}

impl Sink for MpmcSink {
    #[inline]
    fn buf(&mut self) -> &mut [u8] {
        &mut self.msg
    }

    #[inline]
    fn put(&mut self, _stop: &AtomicU64) -> Result<bool, String> {
        self.tx
            .send(&self.msg)
            .map(|()| true)
            .map_err(|e| format!("send: {e}"))
    }
}

struct MpmcSource {
    rx: Consumer,
    buf: Vec<u8>,
}

impl Source for MpmcSource {
    #[inline]
    fn take(&mut self) -> Result<Option<&[u8]>, String> {
        match self.rx.recv(&mut self.buf) {
            Ok(n) => Ok(Some(&self.buf[..n.min(self.buf.len())])),
            Err(RecvError::Disconnected) => Ok(None),
            Err(e) => Err(format!("recv: {e}")),
        }
    }
}

// ---------------------------------------------------------------------------------
// A pipe shared by every producer and consumer
// ---------------------------------------------------------------------------------

struct PipeSink {
    file: File,
    msg: Vec<u8>,
}

impl Sink for PipeSink {
    #[inline]
    fn buf(&mut self) -> &mut [u8] {
        &mut self.msg
    }

    #[inline]
    fn put(&mut self, _stop: &AtomicU64) -> Result<bool, String> {
        loop {
            match self.file.write(&self.msg) {
                Ok(n) if n == self.msg.len() => return Ok(true),
                Ok(n) => {
                    return Err(format!(
                        "write of {} bytes wrote {n} (not atomic)",
                        self.msg.len()
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
    }
}

/// A consumer's end of the shared pipe, read up to 64 KiB at a time.
struct PipeSource {
    file: File,
    len: usize,
    buf: Box<[u8]>,
    /// The unread part of `buf`: whole messages, `pos` and `end` multiples of `len`.
    pos: usize,
    end: usize,
    out: Vec<u8>,
}

impl PipeSource {
    fn new(file: File, len: usize) -> Self {
        PipeSource {
            file,
            len,
            buf: vec![0u8; baselines::READ_BUFFER / len * len].into_boxed_slice(),
            pos: 0,
            end: 0,
            out: Vec::with_capacity(len),
        }
    }
}

impl Source for PipeSource {
    #[inline]
    fn take(&mut self) -> Result<Option<&[u8]>, String> {
        if self.pos == self.end {
            let n = loop {
                match self.file.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("read: {e}")),
                }
            };
            if n == 0 {
                return Ok(None);
            }
            if n % self.len != 0 {
                return Err(format!(
                    "a read of {n} bytes: not whole {}-byte messages",
                    self.len
                ));
            }
            self.pos = 0;
            self.end = n;
        }
        debug_assert!(self.pos + self.len <= self.end);
        self.out.clear();
        self.out
            .extend_from_slice(&self.buf[self.pos..self.pos + self.len]);
        self.pos += self.len;
        Ok(Some(&self.out))
    }
}

/// Closes `fd`, a descriptor this (forked) process inherited and never uses.
fn close_inherited(fd: RawFd) {
    // SAFETY: `fd` is open here (inherited); the `File` that owns it belongs to the
    // parent's stack frame, which this child never unwinds or drops (it leaves through
    // `_exit`), so nothing closes or uses the number again.
    unsafe { libc::close(fd) };
}

// ---------------------------------------------------------------------------------
// crossbeam's ArrayQueue between threads
// ---------------------------------------------------------------------------------

/// One element of the queue: a message of up to `N` bytes.
#[derive(Clone, Copy)]
struct Element<const N: usize> {
    len: u32,
    bytes: [u8; N],
}

/// Whether there is an [`Element`] type for `len`-byte messages.
fn array_queue_fits(len: usize) -> bool {
    SIZES.contains(&len)
}

struct QueueSink<'a, const N: usize> {
    queue: &'a ArrayQueue<Element<N>>,
    /// The message, stamped in place; `push` copies it into the queue.
    element: Element<N>,
}

impl<const N: usize> Sink for QueueSink<'_, N> {
    #[inline]
    fn buf(&mut self) -> &mut [u8] {
        &mut self.element.bytes[..self.element.len as usize]
    }

    #[inline]
    fn put(&mut self, stop: &AtomicU64) -> Result<bool, String> {
        let backoff = Backoff::new();
        while self.queue.push(self.element).is_err() {
            if stop.load(Ordering::Relaxed) != 0 {
                return Ok(false);
            }
            backoff.snooze();
        }
        Ok(true)
    }
}

struct QueueSource<'a, const N: usize> {
    queue: &'a ArrayQueue<Element<N>>,
    /// Producer threads still running.
    live: &'a AtomicUsize,
    /// The message last popped (copied out of the queue).
    got: Option<Element<N>>,
}

impl<const N: usize> Source for QueueSource<'_, N> {
    #[inline]
    fn take(&mut self) -> Result<Option<&[u8]>, String> {
        let backoff = Backoff::new();
        loop {
            self.got = self.queue.pop();
            if self.got.is_some() {
                break;
            }
            // Acquire: pairs with the Release decrement of a producer thread that
            // leaves, after its last push; seeing 0, one more pop finds all that is left.
            if self.live.load(Ordering::Acquire) == 0 {
                self.got = self.queue.pop();
                if self.got.is_none() {
                    return Ok(None);
                }
                break;
            }
            backoff.snooze();
        }
        match &self.got {
            Some(e) => e
                .bytes
                .get(..e.len as usize)
                .map(Some)
                .ok_or_else(|| format!("an element claims {} bytes", e.len)),
            None => Ok(None),
        }
    }
}

/// Counts a producer thread out when it ends, however it ends.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        // Release: pairs with the Acquire load in `QueueSource::take`; the thread's
        // pushes happen before it.
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// What the threads of an ArrayQueue row need.
#[derive(Clone, Copy)]
struct QueueRow<'a> {
    board: &'a Board,
    shape: Shape,
    len: usize,
    slots: usize,
    cpus: Option<[usize; 2]>,
    deadline_ns: u64,
}

/// The body of the ArrayQueue row's process: the producer and consumer threads.
fn queue_threads<const N: usize>(row: QueueRow<'_>) -> Result<(), String> {
    let queue = ArrayQueue::<Element<N>>::new(row.slots.max(1));
    let live = AtomicUsize::new(row.shape.producers);
    let parties = row.shape.producers + row.shape.consumers;
    let (queue, live) = (&queue, &live);
    std::thread::scope(|s| {
        let mut threads = Vec::new();
        let mut spawned = Ok(());
        for p in 0..row.shape.producers {
            let t = std::thread::Builder::new().spawn_scoped(s, move || {
                let _leave = Leave(live);
                if let Some(cpus) = row.cpus {
                    process::pin_to(cpus[0])?;
                }
                let mut sink = QueueSink {
                    queue,
                    element: Element {
                        len: row.len as u32,
                        bytes: [0; N],
                    },
                };
                let filler = workload::message(row.len);
                sink.buf().copy_from_slice(&filler);
                row.board.barrier(parties, row.deadline_ns)?;
                produce(&mut sink, row.board, p)
            });
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // `live` counts this producer, which never ran.
                    live.fetch_sub(1, Ordering::Release);
                    spawned = Err(format!("spawning producer thread {p}: {e}"));
                }
            }
        }
        for c in 0..row.shape.consumers {
            let t = std::thread::Builder::new().spawn_scoped(s, move || {
                if let Some(cpus) = row.cpus {
                    process::pin_to(cpus[1])?;
                }
                let mut src = QueueSource {
                    queue,
                    live,
                    got: None,
                };
                row.board.barrier(parties, row.deadline_ns)?;
                consume(&mut src, row.board, c, row.shape.producers, row.len)
            });
            match t {
                Ok(t) => threads.push(t),
                Err(e) => spawned = Err(format!("spawning consumer thread {c}: {e}")),
            }
        }
        let mut result = spawned;
        for t in threads {
            let r =
                t.join()
                    .unwrap_or_else(|_| match shmlane_support::fork::last_panic_message() {
                        Some(m) => Err(format!("a thread {m}")),
                        None => Err("a thread panicked".into()),
                    });
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

// ---------------------------------------------------------------------------------
// A row
// ---------------------------------------------------------------------------------

/// The label of `mech` in the table.
pub(crate) fn label(mech: Mech) -> &'static str {
    MECHANISMS
        .iter()
        .find(|m| m.mech == mech)
        .map_or("?", |m| m.label)
}

impl Runner<'_> {
    /// One MPMC throughput row: `shape` over `mech`, `len`-byte messages.
    pub(super) fn contention(
        &mut self,
        mech: Mech,
        len: usize,
        shape: Shape,
    ) -> Result<(Transfer, Setup), BenchError> {
        let (np, nc) = (shape.producers, shape.consumers);
        let parties = np + nc;
        if np == 0 || nc == 0 || parties > MAX_CHILDREN {
            return Err(BenchError::Unavailable(format!(
                "{shape}: 1 to {MAX_CHILDREN} endpoints in all, at least one of each"
            )));
        }
        if len <= HEAD {
            return Err(BenchError::Unavailable(format!(
                "messages of {len} bytes: at least {} needed",
                HEAD + 1
            )));
        }
        let map = ControlMap::new(0)?;
        let ctl = map.control();
        let boards = BoardMap::new()?;
        let board = boards.board();
        let deadline = self.deadline_ns();
        let what = format!(
            "MPMC throughput, {}, {shape}, {}",
            label(mech),
            report::size(len)
        );
        let ring = super::ring_for(Load::Messages(len));
        let (mut children, buffer) = match mech {
            Mech::Ring(RingKind::Mpmc, wait, notifier) => {
                self.mpmc_crowd(board, ctl, len, shape, ring, wait, notifier, deadline)?
            }
            Mech::Pipe => {
                if len > PIPE_BUF {
                    return Err(BenchError::Unavailable(format!(
                        "{len}-byte writes are not atomic (PIPE_BUF is {PIPE_BUF})"
                    )));
                }
                self.pipe_crowd(board, ctl, len, shape, deadline)?
            }
            Mech::ArrayQueue => {
                if !array_queue_fits(len) {
                    return Err(BenchError::Unavailable(format!(
                        "no ArrayQueue element type for {len}-byte messages"
                    )));
                }
                let slots = ring / len;
                let row = QueueRow {
                    board,
                    shape,
                    len,
                    slots,
                    cpus: self.env.cpus,
                    deadline_ns: deadline,
                };
                // Not pinned itself: each thread pins itself.
                let child = fork_child("thread process", 0, None, ctl, move || match len {
                    64 => queue_threads::<64>(row),
                    4096 => queue_threads::<4096>(row),
                    _ => Err(format!("no element type for {len}-byte messages")),
                })?;
                let buffer = Buffer {
                    text: format!("{slots} x {}", report::size(len)),
                    bytes: (slots * len) as u64,
                };
                (vec![child], buffer)
            }
            _ => {
                return Err(BenchError::Unavailable(
                    "not an MPMC throughput mechanism".into(),
                ))
            }
        };

        let all_in = || board.arrived() >= parties as u64;
        let start_by = Instant::now() + self.config.timeout;
        if !process::watch(&mut children, ctl, start_by, &what, Some(&all_in))? {
            return Err(BenchError::Failed(format!(
                "{what}: the endpoints did not all reach the start barrier within {} s",
                self.config.timeout.as_secs()
            )));
        }
        let ns = Duration::from_nanos;
        process::watch(
            &mut children,
            ctl,
            Instant::now() + ns(self.config.contention_warm_ns),
            &what,
            None,
        )?;
        let (t0, n0) = sample(board, nc);
        process::watch(
            &mut children,
            ctl,
            Instant::now() + ns(self.config.contention_timed_ns),
            &what,
            None,
        )?;
        let (t1, n1) = sample(board, nc);
        // Relaxed: see `produce`.
        board.stop.0.store(1, Ordering::Relaxed);
        process::supervise(&mut children, ctl, self.config.timeout, &what)?;
        self.names.remove_all();

        // The children have exited: their counts are final.
        let total =
            |lines: &[Line]| -> u64 { lines.iter().map(|l| l.0.load(Ordering::Relaxed)).sum() };
        let (sent, taken) = (total(&board.sent[..np]), total(&board.taken[..nc]));
        if sent != taken {
            return Err(BenchError::Failed(format!(
                "{what}: the producers sent {sent} messages, the consumers took {taken}"
            )));
        }
        if n1 <= n0 || t1 <= t0 {
            return Err(BenchError::Failed(format!(
                "{what}: no message was consumed in the timed part ({n0} then {n1})"
            )));
        }
        let messages = n1 - n0;
        let transfer = Transfer {
            nanos: t1 - t0,
            bytes: messages * len as u64,
            messages,
        };
        let setup = Setup {
            buffer: Some(buffer),
            note: None,
        };
        Ok((transfer, setup))
    }

    /// Creates an MPMC ring for `shape` and forks its consumers and producers.
    #[allow(clippy::too_many_arguments)]
    fn mpmc_crowd(
        &mut self,
        board: &Board,
        ctl: &Control,
        len: usize,
        shape: Shape,
        ring: usize,
        wait: Wait,
        notifier: Notifier,
        deadline: u64,
    ) -> Result<(Vec<Child>, Buffer), BenchError> {
        let (np, nc) = (shape.producers, shape.consumers);
        let parties = np + nc;
        let name = self.name("mpmc");
        let cell = shm::cell_size(ring, len);
        let opts = RingOptions::new(ring)
            .cell_size(cell)
            .max_endpoints(np + nc)
            .notifier(notifier);
        let created = match shmlane::mpmc::create_ring(&name, &opts) {
            // Our names hold our pid, so an existing one was left by a dead process.
            Err(shmlane::Error::AlreadyExists { .. }) => {
                let _ = shmlane::remove(&name);
                shmlane::mpmc::create_ring(&name, &opts)
            }
            other => other,
        };
        created.map_err(|e| BenchError::Failed(format!("creating ring {name}: {e}")))?;
        self.names.add(name.clone());
        let mut children = Vec::with_capacity(np + nc);
        for c in 0..nc {
            let name = name.as_str();
            children.push(fork_child(
                role(false, c),
                np + c,
                self.cpu(1),
                ctl,
                move || {
                    let mut rx = Consumer::open(name)
                        .map_err(|e| format!("opening consumer {name}: {e}"))?;
                    rx.set_wait(wait);
                    let mut src = MpmcSource {
                        rx,
                        buf: Vec::with_capacity(len),
                    };
                    board.barrier(parties, deadline)?;
                    consume(&mut src, board, c, np, len)
                },
            )?);
        }
        for p in 0..np {
            let name = name.as_str();
            children.push(fork_child(role(true, p), p, self.cpu(0), ctl, move || {
                let mut tx =
                    Producer::open(name).map_err(|e| format!("opening producer {name}: {e}"))?;
                tx.set_wait(wait);
                let mut sink = MpmcSink {
                    tx,
                    msg: workload::message(len),
                };
                board.barrier(parties, deadline)?;
                produce(&mut sink, board, p)
            })?);
        }
        let buffer = Buffer {
            text: format!("{} / {}", report::size(ring), report::size(cell)),
            bytes: ring as u64,
        };
        Ok((children, buffer))
    }

    /// Makes one pipe and forks its consumers and producers.
    fn pipe_crowd(
        &mut self,
        board: &Board,
        ctl: &Control,
        len: usize,
        shape: Shape,
        deadline: u64,
    ) -> Result<(Vec<Child>, Buffer), BenchError> {
        let (np, nc) = (shape.producers, shape.consumers);
        let parties = np + nc;
        let (rx, tx) = baselines::pipe(None)?;
        let buffer = baselines::pipe_buffer(&tx).map_or_else(
            || Buffer {
                text: "?".into(),
                bytes: 0,
            },
            Buffer::bytes,
        );
        let (rfd, wfd) = (rx.as_raw_fd(), tx.as_raw_fd());
        let dup = |f: &File| {
            f.try_clone()
                .map_err(|e| BenchError::Failed(format!("dup of a pipe end: {e}")))
        };
        let mut children = Vec::with_capacity(np + nc);
        // Consumers first: each drops the write end it inherits, so that it sees the
        // end of input once every producer has exited.
        for c in 0..nc {
            let file = dup(&rx)?;
            children.push(fork_child(
                role(false, c),
                np + c,
                self.cpu(1),
                ctl,
                move || {
                    close_inherited(wfd);
                    let mut src = PipeSource::new(file, len);
                    board.barrier(parties, deadline)?;
                    consume(&mut src, board, c, np, len)
                },
            )?);
        }
        for p in 0..np {
            let file = dup(&tx)?;
            children.push(fork_child(role(true, p), p, self.cpu(0), ctl, move || {
                close_inherited(rfd);
                let mut sink = PipeSink {
                    file,
                    msg: workload::message(len),
                };
                board.barrier(parties, deadline)?;
                produce(&mut sink, board, p)
            })?);
        }
        // The parent's ends: the producers' copies are now the only write ends.
        drop((rx, tx));
        Ok((children, buffer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_takes_each_producer_in_order() {
        let mut ch = Checker::new(64, 2);
        let mut m = workload::message(64);
        for (p, seq) in [(0, 0), (1, 0), (0, 1), (1, 5), (0, 9)] {
            stamp(&mut m, p, seq);
            assert_eq!(ch.check(&m), Ok(()), "{p} {seq}");
        }
        stamp(&mut m, 1, 5);
        assert!(ch.check(&m).is_err(), "repeated");
        stamp(&mut m, 0, 3);
        assert!(ch.check(&m).is_err(), "out of order");
        stamp(&mut m, 2, 0);
        assert!(ch.check(&m).is_err(), "producer out of range");
        stamp(&mut m, 1, 6);
        m[63] ^= 0xff;
        assert!(ch.check(&m).is_err(), "tag");
        stamp(&mut m, 1, 6);
        assert!(ch.check(&m[..63]).is_err(), "length");
        assert_eq!(ch.check(&m), Ok(()));
    }

    #[test]
    fn pipe_source_splits_reads_and_refuses_torn_ones() {
        let (rx, mut tx) = baselines::pipe(None).expect("pipe");
        let mut m = workload::message(64);
        for seq in 0..3 {
            stamp(&mut m, 0, seq);
            tx.write_all(&m).expect("write");
        }
        let mut src = PipeSource::new(rx, 64);
        let mut ch = Checker::new(64, 1);
        for _ in 0..3 {
            let msg = src.take().expect("take").expect("a message");
            assert_eq!(ch.check(msg), Ok(()));
        }
        tx.write_all(&m[..10]).expect("write");
        assert!(src.take().is_err(), "a read that ends inside a message");
        drop(tx);
        let (rx, tx) = baselines::pipe(None).expect("pipe");
        drop(tx);
        assert_eq!(PipeSource::new(rx, 64).take(), Ok(None), "end of input");
    }

    #[test]
    fn queue_source_ends_when_the_producers_have_gone() {
        let q = ArrayQueue::<Element<64>>::new(4);
        let live = AtomicUsize::new(1);
        let mut sink = QueueSink {
            queue: &q,
            element: Element {
                len: 64,
                bytes: [0; 64],
            },
        };
        let stop = AtomicU64::new(0);
        for seq in 0..4 {
            stamp(sink.buf(), 0, seq);
            assert_eq!(sink.put(&stop), Ok(true));
        }
        stop.store(1, Ordering::Relaxed);
        assert_eq!(sink.put(&stop), Ok(false), "full and stopped");
        drop(Leave(&live));
        let mut src = QueueSource {
            queue: &q,
            live: &live,
            got: None,
        };
        let mut ch = Checker::new(64, 1);
        for _ in 0..4 {
            let msg = src.take().expect("take").expect("a message");
            assert_eq!(ch.check(msg), Ok(()));
        }
        assert_eq!(src.take(), Ok(None));
    }
}
