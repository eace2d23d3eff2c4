//! Contention on one queue shared by several producers and consumers: 64 B and 4 KiB
//! messages, 1P1C, 2P2C and 4P4C (and, at 64 B, 4P1C and 1P4C for the channels
//! between processes). Producers are pinned to the first allowed CPU and consumers to
//! the second, so messages always cross cores and the endpoints of one side contend
//! for their core as well as for the queue (4P4C is 8 endpoints on 2 cores).
//!
//! One criterion iteration is one message. For a batch of `iters` messages the bench
//! process tells each producer (through its control pipe) how many to send, then
//! sleeps on an acknowledgement pipe; every consumer copies out and checks each
//! message (length, producer id, per-producer increasing sequence number, tag byte)
//! and counts it in a shared counter (on the consumers' CPU, so the count costs no
//! line transfer between cores), and the consumer that counts the batch's last
//! message acknowledges. `Throughput::Bytes` gives bytes per second; divide by the
//! message size for messages per second. Producers and consumers are forked (or, for
//! ArrayQueue, spawned) once per benchmark.
//!
//! - `shmlane-adaptive`: one `shmlane::mpmc` ring of 1 MiB with cells of the message
//!   size (one message per cell), made with `create_ring`, every endpoint a process
//!   with the default `Wait::Adaptive` (spinning processes that outnumber the cores
//!   would starve each other). `shmlane-spin`: the same with `Wait::Spin`, 1P1C only.
//! - `array-queue`: `crossbeam_queue::ArrayQueue` between threads of the bench
//!   process, 1 MiB / message size elements of `{ len, bytes: [u8; N] }`: the producer
//!   stamps its element in place and `push` copies it in, `pop` copies it out and the
//!   consumer checks it there (one copy each way, as shmlane's `send(&[u8])` and
//!   `recv(&mut Vec<u8>)`). Threads wait with `crossbeam_utils::Backoff::snooze`.
//! - `pipe`: one pipe shared by all (each write is one message of at most PIPE_BUF,
//!   so atomic); each consumer reads up to 64 KiB at once (whole messages, since every
//!   write is one message of the same length: checked) and copies each out.
//! - `unix-seqpacket` (64 B): one UNIX seqpacket socket pair, producers sharing one
//!   end and consumers the other, one packet per message.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Instant;

use common::{
    config, cpus, fork_child, message, pin, pin_bench_process, pipe, size_label, Child, RingName,
    Watchdog,
};
use criterion::measurement::WallTime;
use criterion::Throughput;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::Backoff;
use shmlane::mpmc::{Consumer, Producer};
use shmlane::{RecvError, RingOptions, Wait};
use shmlane_support::mem::SharedMap;

/// Bytes at the start of a message: sequence number and producer id.
const HEAD: usize = 16;

/// The ring (and queue) size: the same as `shmlane bench`'s throughput rows.
const RING: usize = 1 << 20;

/// The batch counters, in a shared anonymous page made before the children fork.
struct Counters {
    /// Page aligned, mapped for the rest of the process (never unmapped: one page per
    /// benchmark).
    page: *mut u8,
}

// SAFETY: the page is only accessed through atomics, from any thread.
unsafe impl Sync for Counters {}

impl Counters {
    fn new() -> Self {
        let page = SharedMap::new(4096)
            .unwrap_or_else(|e| panic!("{e}"))
            .leak();
        Counters { page }
    }

    /// Messages taken by all consumers so far.
    fn taken(&self) -> &AtomicU64 {
        // SAFETY: the page is mapped for the rest of the process, page aligned, and
        // only accessed atomically.
        unsafe { AtomicU64::from_ptr(self.page.cast()) }
    }

    /// The value of `taken` at which the current batch is complete.
    fn target(&self) -> &AtomicU64 {
        // SAFETY: as in `taken`, on another cache line.
        unsafe { AtomicU64::from_ptr(self.page.add(128).cast()) }
    }
}

fn tag(producer: u64, seq: u64) -> u8 {
    ((seq ^ producer << 48).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8 | 1
}

fn word(msg: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(msg[at..at + 8].try_into().expect("8 bytes"))
}

/// The sending side of one producer: its message buffer, and a way to send it.
trait Sender {
    fn buf(&mut self) -> &mut [u8];
    fn send(&mut self);
}

/// The receiving side of one consumer.
trait Receiver {
    /// The next message, copied out; `None` once every producer is gone.
    fn recv(&mut self) -> Option<&[u8]>;
}

struct ShmTx {
    tx: Producer,
    msg: Vec<u8>,
}

impl Sender for ShmTx {
    fn buf(&mut self) -> &mut [u8] {
        &mut self.msg
    }

    fn send(&mut self) {
        self.tx.send(&self.msg).expect("mpmc send");
    }
}

struct ShmRx {
    rx: Consumer,
    buf: Vec<u8>,
}

impl Receiver for ShmRx {
    fn recv(&mut self) -> Option<&[u8]> {
        match self.rx.recv(&mut self.buf) {
            Ok(n) => Some(&self.buf[..n]),
            Err(RecvError::Disconnected) => None,
            Err(e) => panic!("mpmc recv: {e}"),
        }
    }
}

/// A pipe end or a seqpacket socket shared by several processes: every message is one
/// `write` (atomic for pipe writes up to PIPE_BUF, and for packets). A pipe consumer
/// reads up to 64 KiB at once and copies each message out; a packet consumer reads
/// one packet, asking for one byte more, so that a longer packet would show.
struct Shared {
    file: File,
    packets: bool,
    len: usize,
    msg: Vec<u8>,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

impl Shared {
    fn new(file: File, packets: bool, len: usize) -> Self {
        let room = if packets {
            len + 1
        } else {
            (64 << 10) / len * len
        };
        Shared {
            file,
            packets,
            len,
            msg: message(len),
            buf: vec![0; room],
            pos: 0,
            end: 0,
        }
    }
}

impl Sender for Shared {
    fn buf(&mut self) -> &mut [u8] {
        &mut self.msg
    }

    fn send(&mut self) {
        let n = self.file.write(&self.msg).expect("write");
        assert_eq!(n, self.len, "short write");
    }
}

impl Receiver for Shared {
    fn recv(&mut self) -> Option<&[u8]> {
        if self.pos == self.end {
            let n = self.file.read(&mut self.buf).expect("read");
            if n == 0 {
                return None;
            }
            if self.packets {
                assert_eq!(n, self.len, "a packet of {n} bytes");
            } else {
                assert_eq!(n % self.len, 0, "a read of {n} bytes: not whole messages");
            }
            self.pos = 0;
            self.end = n;
        }
        self.msg.clear();
        self.msg
            .extend_from_slice(&self.buf[self.pos..self.pos + self.len]);
        self.pos += self.len;
        Some(&self.msg)
    }
}

/// An element of the ArrayQueue: a message of up to `N` bytes.
#[derive(Clone, Copy)]
struct Element<const N: usize> {
    len: u32,
    bytes: [u8; N],
}

struct QueueTx<const N: usize> {
    queue: Arc<ArrayQueue<Element<N>>>,
    /// Producer threads still running; this one counts itself out when dropped.
    live: Arc<AtomicUsize>,
    element: Element<N>,
}

impl<const N: usize> Sender for QueueTx<N> {
    fn buf(&mut self) -> &mut [u8] {
        &mut self.element.bytes[..self.element.len as usize]
    }

    fn send(&mut self) {
        let backoff = Backoff::new();
        while self.queue.push(self.element).is_err() {
            backoff.snooze();
        }
    }
}

impl<const N: usize> Drop for QueueTx<N> {
    fn drop(&mut self) {
        // Release: pairs with the Acquire load in `QueueRx::recv`; our pushes happen
        // before it.
        self.live.fetch_sub(1, Ordering::Release);
    }
}

struct QueueRx<const N: usize> {
    queue: Arc<ArrayQueue<Element<N>>>,
    live: Arc<AtomicUsize>,
    got: Option<Element<N>>,
}

impl<const N: usize> Receiver for QueueRx<N> {
    fn recv(&mut self) -> Option<&[u8]> {
        let backoff = Backoff::new();
        loop {
            self.got = self.queue.pop();
            if self.got.is_some() {
                break;
            }
            // Acquire: see `QueueTx::drop`; seeing 0, one more pop finds all that is left.
            if self.live.load(Ordering::Acquire) == 0 {
                self.got = self.queue.pop();
                break;
            }
            backoff.snooze();
        }
        self.got.as_ref().map(|e| &e.bytes[..e.len as usize])
    }
}

/// A new descriptor of `fd`, which this process has open.
fn dup(fd: RawFd) -> File {
    // SAFETY: `fd` is open in this process; F_DUPFD_CLOEXEC makes a new descriptor
    // that we own.
    let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    assert!(d >= 0, "dup: {}", std::io::Error::last_os_error());
    // SAFETY: `d` is new and owned by nothing else.
    File::from(unsafe { OwnedFd::from_raw_fd(d) })
}

/// How the endpoints of a benchmark run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    /// Forked processes.
    Processes,
    /// Threads of the bench process (joined before the next benchmark forks).
    Threads,
}

/// A producer or consumer: a process or a thread.
enum Peer<'scope> {
    Process(Child),
    Thread(ScopedJoinHandle<'scope, i32>),
}

impl Peer<'_> {
    fn finish(self) {
        match self {
            // Dropping the child waits for it and checks its status.
            Peer::Process(child) => drop(child),
            Peer::Thread(t) => {
                let code = t.join().expect("an endpoint thread panicked");
                assert_eq!(code, 0, "an endpoint thread failed");
            }
        }
    }
}

/// Starts `body` as a process pinned to `cpu` (closing `close` there) or as a thread
/// pinned to it.
fn start<'scope, 'env>(
    run: Run,
    s: &'scope Scope<'scope, 'env>,
    cpu: Option<usize>,
    close: &[RawFd],
    body: impl FnOnce() -> i32 + Send + 'scope,
) -> Peer<'scope> {
    match run {
        Run::Processes => Peer::Process(fork_child(cpu, close, body)),
        Run::Threads => Peer::Thread(s.spawn(move || {
            if let Some(cpu) = cpu {
                pin(cpu);
            }
            body()
        })),
    }
}

/// The producers and consumers of one benchmark, and how to open their ends.
struct Crowd<OT, OR> {
    run: Run,
    producers: usize,
    consumers: usize,
    len: usize,
    open_tx: OT,
    open_rx: OR,
    /// The descriptors of each side, which the other side's processes close.
    tx_fds: Vec<RawFd>,
    rx_fds: Vec<RawFd>,
    /// The bench process's handles of them, closed once every child has forked (so
    /// that readers see end-of-file when the writers are done).
    parent_ends: Vec<File>,
}

/// Runs one benchmark.
fn contention<S, R, OT, OR>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    crowd: Crowd<OT, OR>,
) where
    S: Sender,
    R: Receiver,
    OT: Fn() -> S + Sync,
    OR: Fn() -> R + Sync,
{
    let _dog = Watchdog::arm();
    let cpus = cpus();
    let Crowd {
        run,
        producers,
        consumers,
        len,
        open_tx,
        open_rx,
        tx_fds,
        rx_fds,
        parent_ends,
    } = crowd;
    assert!(len > HEAD);
    let counters = Counters::new();
    let (mut ack_rx, ack_tx) = pipe(None);
    std::thread::scope(|s| {
        let mut ctl_txs: Vec<File> = Vec::new();
        let mut peers = Vec::new();
        for p in 0..producers {
            let (ctl_rx, ctl_tx) = pipe(None);
            let mut close: Vec<RawFd> = rx_fds.clone();
            close.extend(ctl_txs.iter().map(|f| f.as_raw_fd()));
            close.extend([ctl_tx.as_raw_fd(), ack_rx.as_raw_fd(), ack_tx.as_raw_fd()]);
            let open_tx = &open_tx;
            peers.push(start(run, s, cpus.map(|c| c[0]), &close, move || {
                let mut tx = open_tx();
                let mut ctl_rx = ctl_rx;
                let mut seq = 0u64;
                loop {
                    let mut count = [0u8; 8];
                    if ctl_rx.read_exact(&mut count).is_err() {
                        return 0;
                    }
                    for _ in 0..u64::from_le_bytes(count) {
                        let msg = tx.buf();
                        msg[..8].copy_from_slice(&seq.to_le_bytes());
                        msg[8..HEAD].copy_from_slice(&(p as u64).to_le_bytes());
                        let last = msg.len() - 1;
                        msg[last] = tag(p as u64, seq);
                        tx.send();
                        seq += 1;
                    }
                }
            }));
            // (A forked child's closure, and with it the parent's `ctl_rx`, was dropped
            // by `fork_child`.)
            ctl_txs.push(ctl_tx);
        }
        for _ in 0..consumers {
            let mut close: Vec<RawFd> = tx_fds.clone();
            close.extend(ctl_txs.iter().map(|f| f.as_raw_fd()));
            close.push(ack_rx.as_raw_fd());
            let (open_rx, counters) = (&open_rx, &counters);
            let ack = ack_tx.try_clone().expect("dup");
            peers.push(start(run, s, cpus.map(|c| c[1]), &close, move || {
                let mut rx = open_rx();
                let mut ack = ack;
                let mut next = vec![0u64; producers];
                while let Some(msg) = rx.recv() {
                    assert_eq!(msg.len(), len, "message length");
                    let (seq, p) = (word(msg, 0), word(msg, 8));
                    let slot = next.get_mut(p as usize).expect("producer id in range");
                    assert!(seq >= *slot, "producer {p}: message {seq} out of order");
                    assert_eq!(msg[len - 1], tag(p, seq), "producer {p} message {seq}: tag");
                    *slot = seq + 1;
                    // AcqRel: the consumer that completes the batch sees the target the
                    // bench process stored before it started the batch.
                    let n = counters.taken().fetch_add(1, Ordering::AcqRel) + 1;
                    if n == counters.target().load(Ordering::Acquire) {
                        ack.write_all(&[1]).expect("ack");
                    }
                }
                0
            }));
        }
        drop(ack_tx);
        drop(parent_ends);
        let mut taken = 0u64;
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                taken += iters;
                // Release: pairs with the consumers' Acquire load of the target.
                counters.target().store(taken, Ordering::Release);
                let start = Instant::now();
                let share = iters / producers as u64;
                for (i, ctl) in ctl_txs.iter_mut().enumerate() {
                    let n = if i == 0 {
                        iters - share * (producers as u64 - 1)
                    } else {
                        share
                    };
                    ctl.write_all(&n.to_le_bytes()).expect("control write");
                }
                let mut byte = [0u8; 1];
                ack_rx
                    .read_exact(&mut byte)
                    .expect("the consumers are gone");
                start.elapsed()
            })
        });
        // Producers leave at end-of-file on their control pipes; consumers when every
        // producer has gone.
        drop(ctl_txs);
        for peer in peers {
            peer.finish();
        }
    });
}

/// The shmlane rows of one size and shape.
fn shmlane_rows(
    group: &mut BenchmarkGroup<'_, WallTime>,
    len: usize,
    (producers, consumers): (usize, usize),
    wait: Wait,
) {
    let ring = RingName::new("mpmc");
    let opts = RingOptions::new(RING)
        .cell_size(len.next_power_of_two().max(64))
        .max_endpoints(producers + consumers);
    shmlane::mpmc::create_ring(&ring.0, &opts).expect("create ring");
    let name = ring.0.as_str();
    let id = if wait == Wait::Spin {
        "shmlane-spin"
    } else {
        "shmlane-adaptive"
    };
    contention(
        group,
        BenchmarkId::new(id, format!("{producers}p{consumers}c")),
        Crowd {
            run: Run::Processes,
            producers,
            consumers,
            len,
            open_tx: || {
                let mut tx = Producer::open(name).expect("open producer");
                tx.set_wait(wait);
                ShmTx {
                    tx,
                    msg: message(len),
                }
            },
            open_rx: || {
                let mut rx = Consumer::open(name).expect("open consumer");
                rx.set_wait(wait);
                ShmRx {
                    rx,
                    buf: Vec::with_capacity(len),
                }
            },
            tx_fds: Vec::new(),
            rx_fds: Vec::new(),
            parent_ends: Vec::new(),
        },
    );
}

/// The ArrayQueue row of one shape, `N`-byte messages.
fn array_queue_row<const N: usize>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    (producers, consumers): (usize, usize),
) {
    let queue = Arc::new(ArrayQueue::<Element<N>>::new(RING / N));
    let live = Arc::new(AtomicUsize::new(producers));
    contention(
        group,
        BenchmarkId::new("array-queue", format!("{producers}p{consumers}c")),
        Crowd {
            run: Run::Threads,
            producers,
            consumers,
            len: N,
            open_tx: || {
                let mut element = Element {
                    len: N as u32,
                    bytes: [0; N],
                };
                element.bytes.copy_from_slice(&message(N));
                QueueTx {
                    queue: queue.clone(),
                    live: live.clone(),
                    element,
                }
            },
            open_rx: || QueueRx {
                queue: queue.clone(),
                live: live.clone(),
                got: None,
            },
            tx_fds: Vec::new(),
            rx_fds: Vec::new(),
            parent_ends: Vec::new(),
        },
    );
}

/// The pipe row of one size and shape.
fn pipe_row(group: &mut BenchmarkGroup<'_, WallTime>, len: usize, shape: (usize, usize)) {
    assert!(
        len <= libc::PIPE_BUF,
        "pipe writes above PIPE_BUF are not atomic"
    );
    let (rx, tx) = pipe(None);
    let (rfd, wfd) = (rx.as_raw_fd(), tx.as_raw_fd());
    contention(
        group,
        BenchmarkId::new("pipe", format!("{}p{}c", shape.0, shape.1)),
        Crowd {
            run: Run::Processes,
            producers: shape.0,
            consumers: shape.1,
            len,
            open_tx: || Shared::new(dup(wfd), false, len),
            open_rx: || Shared::new(dup(rfd), false, len),
            tx_fds: vec![wfd],
            rx_fds: vec![rfd],
            parent_ends: vec![rx, tx],
        },
    );
}

/// The seqpacket row of one size and shape.
fn seqpacket_row(group: &mut BenchmarkGroup<'_, WallTime>, len: usize, shape: (usize, usize)) {
    let (a, b) =
        shmlane_support::pipes::socket_pair(libc::SOCK_SEQPACKET).unwrap_or_else(|e| panic!("{e}"));
    let (afd, bfd) = (a.as_raw_fd(), b.as_raw_fd());
    contention(
        group,
        BenchmarkId::new("unix-seqpacket", format!("{}p{}c", shape.0, shape.1)),
        Crowd {
            run: Run::Processes,
            producers: shape.0,
            consumers: shape.1,
            len,
            open_tx: || Shared::new(dup(afd), true, len),
            open_rx: || Shared::new(dup(bfd), true, len),
            tx_fds: vec![afd],
            rx_fds: vec![bfd],
            parent_ends: vec![a, b],
        },
    );
}

fn mpmc_contention(c: &mut Criterion) {
    let two_cpus = pin_bench_process().is_some();
    const SHAPES: [(usize, usize); 3] = [(1, 1), (2, 2), (4, 4)];
    const UNEVEN: [(usize, usize); 2] = [(4, 1), (1, 4)];
    for len in [64usize, 4 << 10] {
        let mut group = c.benchmark_group(format!("mpmc_contention/{}", size_label(len)));
        group.throughput(Throughput::Bytes(len as u64));
        let uneven: &[(usize, usize)] = if len == 64 { &UNEVEN } else { &[] };
        for &shape in SHAPES.iter().chain(uneven) {
            shmlane_rows(&mut group, len, shape, Wait::Adaptive);
            if shape == (1, 1) && two_cpus {
                shmlane_rows(&mut group, len, shape, Wait::Spin);
            }
            match (len, uneven.contains(&shape)) {
                (_, true) => {}
                (64, false) => array_queue_row::<64>(&mut group, shape),
                (4096, false) => array_queue_row::<4096>(&mut group, shape),
                _ => unreachable!("no ArrayQueue element for {len} bytes"),
            }
            pipe_row(&mut group, len, shape);
            if len == 64 {
                seqpacket_row(&mut group, len, shape);
            }
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = mpmc_contention
}
criterion_main!(benches);
