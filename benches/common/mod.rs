//! What the cross-process criterion benches share: forking a pinned peer once per
//! benchmark, the endpoints of every mechanism behind two small traits, stamped and
//! checked messages, and the two timing loops (`round_trip`, `one_way`) that drive
//! criterion's `iter_custom`.
//!
//! The bench process is pinned to the first allowed CPU and the peer to the second.
//! Every message carries its sequence number (and a tag byte at the end), checked by
//! the receiver after it copied the message out. An alarm bounds each benchmark, so a
//! lost peer ends the run instead of hanging it. The bench process runs no other
//! thread, so `fork` is sound.
//!
//! `shmlane bench` (the command) measures more mechanisms and prints ratios; these
//! files are for tracking changes with criterion's statistics. Forking, pinning,
//! pipes, sockets, the futex calls and the message stamps come from the
//! `shmlane-support` package, which the command and the tests share; the endpoint
//! traits and the timing loops here are criterion's side.

// Each bench binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use shmlane::spsc::{Consumer, Producer};
use shmlane::{Notifier, RecvError, RingOptions, Wait};
use shmlane_support::futex::{futex_wait, futex_wake};
use shmlane_support::mem::SharedMap;
use shmlane_support::{cpu, pipes};

pub use shmlane_support::stamp::message;

/// Seconds after which a benchmark that has not finished kills the bench process.
const WATCHDOG_SECS: u32 = 120;

// ---------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------

/// The first two CPUs this process was allowed to use when first asked (before
/// `pin_bench_process` narrowed them), if there are two.
pub fn cpus() -> Option<[usize; 2]> {
    static CPUS: OnceLock<Option<[usize; 2]>> = OnceLock::new();
    *CPUS.get_or_init(|| {
        let mut it = cpu::allowed_cpus().ok()?.into_iter();
        Some([it.next()?, it.next()?])
    })
}

/// Pins the calling process to `cpu` (best effort: an error leaves it unpinned).
pub fn pin(cpu: usize) {
    let _ = cpu::pin_to(cpu);
}

/// Pins the bench process to the first allowed CPU; returns the peer's CPU.
pub fn pin_bench_process() -> Option<usize> {
    let c = cpus()?;
    pin(c[0]);
    Some(c[1])
}

/// A forked child; dropped, it is given 5 s to exit and then killed.
pub struct Child(shmlane_support::fork::Child);

/// Forks a child that pins itself to `cpu`, closes `close` (the parent's ends of
/// pipes and sockets, so that it sees end-of-file when the parent closes them), runs
/// `body` and exits with its status (`shmlane_support::fork::EXIT_PANIC` on a panic).
pub fn fork_child(cpu: Option<usize>, close: &[RawFd], body: impl FnOnce() -> i32) -> Child {
    // SAFETY: the bench process runs no other thread while it forks (criterion measures
    // on the calling thread); `close` are the parent's ends, unused by the child.
    let child = unsafe {
        shmlane_support::fork::fork(close, move || {
            if let Some(cpu) = cpu {
                pin(cpu);
            }
            body()
        })
    };
    Child(child.unwrap_or_else(|e| panic!("{e}")))
}

impl Drop for Child {
    fn drop(&mut self) {
        match self.0.wait_timeout(Duration::from_secs(5)) {
            Ok(Some(status)) => {
                if !status.success() && !std::thread::panicking() {
                    panic!("child {} failed: it {status}", self.0.pid());
                }
            }
            // Still running after 5 s, or not waitable: kill it and reap it.
            _ => {
                let _ = self.0.kill();
            }
        }
    }
}

/// Arms the watchdog for one benchmark; dropped, disarms it.
pub struct Watchdog;

impl Watchdog {
    pub fn arm() -> Self {
        // SAFETY: alarm has no memory effects; SIGALRM's default action ends the
        // process, which is what a hung benchmark needs.
        unsafe { libc::alarm(WATCHDOG_SECS) };
        Watchdog
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // SAFETY: as in `arm`.
        unsafe { libc::alarm(0) };
    }
}

/// A pipe: `(read end, write end)`, its buffer raised to `buffer` bytes if given.
pub fn pipe(buffer: Option<usize>) -> (File, File) {
    let (rx, tx) = pipes::pipe().unwrap_or_else(|e| panic!("{e}"));
    if let Some(size) = buffer {
        pipes::set_pipe_buffer(&tx, size).unwrap_or_else(|e| panic!("{e}"));
    }
    (rx, tx)
}

/// A connected pair of UNIX stream sockets.
pub fn socket_pair() -> (File, File) {
    pipes::socket_pair(libc::SOCK_STREAM).unwrap_or_else(|e| panic!("{e}"))
}

/// A connected pair of UNIX stream sockets with SO_SNDBUF and SO_RCVBUF raised to
/// 4 MiB, or to net.core.wmem_max / rmem_max if lower (as `shmlane bench` does for
/// throughput: the sockets' best configuration in our runs).
pub fn socket_pair_tuned() -> (File, File) {
    let bytes = pipes::socket_buffer_request();
    let (a, b) = socket_pair();
    for f in [&a, &b] {
        pipes::set_socket_buffers(f, bytes).unwrap_or_else(|e| panic!("{e}"));
    }
    (a, b)
}

/// A ring name no other process uses; removed when dropped.
pub struct RingName(pub String);

impl RingName {
    pub fn new(what: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        RingName(format!(
            "/shmlane-criterion-{}-{n}-{what}",
            std::process::id()
        ))
    }
}

impl Drop for RingName {
    fn drop(&mut self) {
        let _ = shmlane::remove(&self.0);
    }
}

// ---------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------

/// Makes `msg` message number `seq`.
#[inline]
pub fn stamp(msg: &mut [u8], seq: u64) {
    shmlane_support::stamp::stamp(msg, seq, false);
}

/// Checks that `msg` is message number `seq` of `len` bytes.
#[inline]
pub fn check(msg: &[u8], len: usize, seq: u64) {
    if let Err(e) = shmlane_support::stamp::check(msg, len, seq) {
        panic!("{e}");
    }
}

/// `8 B`, `1 KiB`, `16 MiB`.
pub fn size_label(len: usize) -> String {
    match len {
        l if l >= 1 << 20 && l % (1 << 20) == 0 => format!("{} MiB", l >> 20),
        l if l >= 1 << 10 && l % (1 << 10) == 0 => format!("{} KiB", l >> 10),
        l => format!("{l} B"),
    }
}

// ---------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------

/// Sends whole messages.
pub trait Tx {
    fn send(&mut self, msg: &[u8]);
    /// Tells the peer that no more messages come, where dropping the endpoint does
    /// not (an explicit call: a `Drop` with shared effects would also run in the
    /// parent when it drops the child's unused endpoints after `fork`).
    fn close(&mut self) {}
    /// Descriptors the peer process must close (so that it sees end-of-file).
    fn fds(&self) -> Vec<RawFd> {
        Vec::new()
    }
}

/// Receives whole messages.
pub trait Rx {
    /// Receives one message of `len` bytes into `buf` (replacing its contents);
    /// `false` when the peer has gone.
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> bool;
    fn fds(&self) -> Vec<RawFd> {
        Vec::new()
    }
}

impl Tx for Producer {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        Producer::send(self, msg).expect("shmlane send");
    }
}

impl Rx for Consumer {
    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> bool {
        match Consumer::recv(self, buf) {
            Ok(n) => {
                assert_eq!(n, len, "shmlane message length");
                true
            }
            Err(RecvError::Disconnected) => false,
            Err(e) => panic!("shmlane recv: {e}"),
        }
    }
}

impl Tx for shmlane_support::minimal_ring::MinimalTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        shmlane_support::minimal_ring::MinimalTx::send(self, msg).expect("minimal ring send");
    }
}

impl Rx for shmlane_support::minimal_ring::MinimalRx {
    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> bool {
        match shmlane_support::minimal_ring::MinimalRx::recv(self, buf) {
            Ok(n) => {
                assert_eq!(n, len, "minimal ring: a message of the wrong length");
                true
            }
            // Its only error is a wait past the deadline: the sender is gone.
            Err(_) => false,
        }
    }
}

impl Tx for shmlane::mpmc::Producer {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        shmlane::mpmc::Producer::send(self, msg).expect("shmlane mpmc send");
    }
}

impl Rx for shmlane::mpmc::Consumer {
    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> bool {
        match shmlane::mpmc::Consumer::recv(self, buf) {
            Ok(n) => {
                assert_eq!(n, len, "shmlane mpmc message length");
                true
            }
            Err(RecvError::Disconnected) => false,
            Err(e) => panic!("shmlane mpmc recv: {e}"),
        }
    }
}

/// A pipe end or a socket.
pub struct Fd(pub File);

impl Tx for Fd {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        self.0.write_all(msg).expect("write");
    }

    fn fds(&self) -> Vec<RawFd> {
        vec![self.0.as_raw_fd()]
    }
}

impl Rx for Fd {
    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> bool {
        if buf.len() != len {
            buf.resize(len, 0);
        }
        match self.0.read_exact(buf) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
            Err(e) => panic!("read: {e}"),
        }
    }

    fn fds(&self) -> Vec<RawFd> {
        vec![self.0.as_raw_fd()]
    }
}

/// The receiving end of a pipe or stream socket read through a 64 KiB buffer: one
/// `read` takes every message already queued, each then copied out of the buffer
/// (as any real consumer of small messages on a byte stream would read).
pub struct BufFd(pub std::io::BufReader<File>);

impl BufFd {
    pub fn new(f: File) -> Self {
        BufFd(std::io::BufReader::with_capacity(64 << 10, f))
    }
}

impl Rx for BufFd {
    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> bool {
        if buf.len() != len {
            buf.resize(len, 0);
        }
        match self.0.read_exact(buf) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
            Err(e) => panic!("read: {e}"),
        }
    }

    fn fds(&self) -> Vec<RawFd> {
        vec![self.0.get_ref().as_raw_fd()]
    }
}

/// A duplex endpoint: a sender and a receiver.
pub struct Duplex<T, R> {
    pub tx: T,
    pub rx: R,
}

impl<T: Tx, R: Rx> Duplex<T, R> {
    fn fds(&self) -> Vec<RawFd> {
        let mut v = self.tx.fds();
        v.extend(self.rx.fds());
        v
    }
}

/// Two shmlane rings, one per direction: the bench process's end (created) and a
/// function that opens the peer's end in the child. `wait` on all four endpoints.
pub fn shm_duplex(
    capacity: usize,
    wait: Wait,
    notifier: Notifier,
) -> (
    Duplex<Producer, Consumer>,
    impl FnOnce() -> Duplex<Producer, Consumer>,
    [RingName; 2],
) {
    let (ab, ba) = (RingName::new("ping"), RingName::new("pong"));
    let opts = RingOptions::new(capacity).wait(wait).notifier(notifier);
    // A vacant slot is not "disconnected", so the order of attaching is free.
    let tx = Producer::create(&ab.0, &opts).expect("create ping ring");
    let rx = Consumer::create(&ba.0, &opts).expect("create pong ring");
    let (a, b) = (ab.0.clone(), ba.0.clone());
    let open = move || {
        let mut rx = Consumer::open(&a).expect("open ping ring");
        let mut tx = Producer::open(&b).expect("open pong ring");
        rx.set_wait(wait);
        tx.set_wait(wait);
        Duplex { tx, rx }
    };
    (Duplex { tx, rx }, open, [ab, ba])
}

/// As [`shm_duplex`], with two `shmlane::mpmc` rings of cells of `cell` bytes: one
/// producer and one consumer on each (the MPMC protocol's uncontended cost).
pub fn mpmc_duplex(
    capacity: usize,
    cell: usize,
    wait: Wait,
) -> (
    Duplex<shmlane::mpmc::Producer, shmlane::mpmc::Consumer>,
    impl FnOnce() -> Duplex<shmlane::mpmc::Producer, shmlane::mpmc::Consumer>,
    [RingName; 2],
) {
    use shmlane::mpmc::{Consumer, Producer};
    let (ab, ba) = (RingName::new("mpmc-ping"), RingName::new("mpmc-pong"));
    let opts = RingOptions::new(capacity)
        .cell_size(cell)
        .max_endpoints(2)
        .wait(wait);
    let tx = Producer::create(&ab.0, &opts).expect("create ping ring");
    let rx = Consumer::create(&ba.0, &opts).expect("create pong ring");
    let (a, b) = (ab.0.clone(), ba.0.clone());
    let open = move || {
        let mut rx = Consumer::open(&a).expect("open ping ring");
        let mut tx = Producer::open(&b).expect("open pong ring");
        rx.set_wait(wait);
        tx.set_wait(wait);
        Duplex { tx, rx }
    };
    (Duplex { tx, rx }, open, [ab, ba])
}

/// Two pipes, one per direction: `(bench process's end, peer's end)`.
pub fn pipe_duplex() -> (Duplex<Fd, Fd>, Duplex<Fd, Fd>) {
    let (ping_rx, ping_tx) = pipe(None);
    let (pong_rx, pong_tx) = pipe(None);
    (
        Duplex {
            tx: Fd(ping_tx),
            rx: Fd(pong_rx),
        },
        Duplex {
            tx: Fd(pong_tx),
            rx: Fd(ping_rx),
        },
    )
}

/// A UNIX stream socket pair, each end as a duplex over two handles of its socket.
pub fn socket_duplex() -> (Duplex<Fd, Fd>, Duplex<Fd, Fd>) {
    let (a, b) = socket_pair();
    let dup = |f: &File| f.try_clone().expect("dup");
    (
        Duplex {
            tx: Fd(dup(&a)),
            rx: Fd(a),
        },
        Duplex {
            tx: Fd(dup(&b)),
            rx: Fd(b),
        },
    )
}

// ---------------------------------------------------------------------------------
// Timing loops
// ---------------------------------------------------------------------------------

/// Benchmarks round trips of `len`-byte messages: the bench process sends a message
/// through `ours` and waits for the echo from a child forked once for this
/// benchmark, which opens its end with `theirs`, receives, checks and echoes until
/// `ours` is dropped. One criterion iteration is one round trip.
pub fn round_trip<T, R, T2, R2>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    len: usize,
    ours: Duplex<T, R>,
    theirs: impl FnOnce() -> Duplex<T2, R2>,
) where
    T: Tx,
    R: Rx,
    T2: Tx,
    R2: Rx,
{
    let _dog = Watchdog::arm();
    let peer_cpu = cpus().map(|c| c[1]);
    let Duplex { mut tx, mut rx } = ours;
    let close = [tx.fds(), rx.fds()].concat();
    let child = fork_child(peer_cpu, &close, || {
        let mut d = theirs();
        let mut buf = Vec::with_capacity(len);
        let mut seq = 0u64;
        while d.rx.recv(&mut buf, len) {
            check(&buf, len, seq);
            d.tx.send(&buf);
            seq += 1;
        }
        0
    });
    let mut msg = message(len);
    let mut buf = Vec::with_capacity(len);
    let mut seq = 0u64;
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                stamp(&mut msg, seq);
                tx.send(&msg);
                assert!(rx.recv(&mut buf, len), "the echo process is gone");
                check(&buf, len, seq);
                seq += 1;
            }
            start.elapsed()
        })
    });
    // Closing our ends ends the child's loop (end-of-file, Disconnected, or the
    // doorbell's closed flag).
    tx.close();
    drop((tx, rx));
    drop(child);
}

/// Benchmarks one-way transfers of `len`-byte messages: the bench process sends
/// `iters` messages through `tx` to a child forked once for this benchmark, which
/// opens its end with `open_rx`, copies out and checks each message, and acknowledges
/// the batch on a control pipe; the time runs from the first send to the
/// acknowledgement. One criterion iteration is one message.
pub fn one_way<T: Tx, R: Rx>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    len: usize,
    mut tx: T,
    open_rx: impl FnOnce() -> R,
) {
    let _dog = Watchdog::arm();
    let peer_cpu = cpus().map(|c| c[1]);
    let (ctl_rx, mut ctl_tx) = pipe(None);
    let (mut ack_rx, ack_tx) = pipe(None);
    let close = [tx.fds(), vec![ctl_tx.as_raw_fd(), ack_rx.as_raw_fd()]].concat();
    let child = fork_child(peer_cpu, &close, move || {
        let mut rx = open_rx();
        let (mut ctl_rx, mut ack_tx) = (ctl_rx, ack_tx);
        let mut buf = Vec::with_capacity(len);
        let mut seq = 0u64;
        loop {
            let mut count = [0u8; 8];
            if ctl_rx.read_exact(&mut count).is_err() {
                return 0;
            }
            for _ in 0..u64::from_le_bytes(count) {
                assert!(rx.recv(&mut buf, len), "the sender is gone");
                check(&buf, len, seq);
                seq += 1;
            }
            ack_tx.write_all(&[1]).expect("ack");
        }
    });
    let mut msg = message(len);
    let mut seq = 0u64;
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            ctl_tx
                .write_all(&iters.to_le_bytes())
                .expect("control write");
            for _ in 0..iters {
                stamp(&mut msg, seq);
                tx.send(&msg);
                seq += 1;
            }
            let mut ack = [0u8; 1];
            ack_rx.read_exact(&mut ack).expect("the consumer is gone");
            start.elapsed()
        })
    });
    drop(ctl_tx);
    drop(tx);
    drop(child);
}

/// The criterion settings of these benches: short, since each benchmark forks.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

// ---------------------------------------------------------------------------------
// A futex doorbell: the floor of a round trip that wakes a sleeper on each hop
// ---------------------------------------------------------------------------------

/// Offset of the payload in a doorbell region (the words live in its first line).
const BELL_PAYLOAD: usize = 64;

/// One direction of a doorbell: a page of a shared anonymous mapping holding a
/// sequence word (the futex), a "closed" word, and the payload.
#[derive(Clone, Copy)]
struct Bell {
    /// Page aligned, `BELL_PAYLOAD + len` bytes, mapped for the rest of the process
    /// (the mapping is never unmapped: a few pages per benchmark).
    region: *mut u8,
    len: usize,
}

impl Bell {
    fn seq(&self) -> &AtomicU32 {
        // SAFETY: the region is page aligned and mapped for the rest of the process;
        // the word is only accessed atomically, by both processes.
        unsafe { AtomicU32::from_ptr(self.region.cast()) }
    }

    fn closed(&self) -> &AtomicU32 {
        // SAFETY: as in `seq`, 4 bytes further.
        unsafe { AtomicU32::from_ptr(self.region.add(4).cast()) }
    }
}

/// Sends through a doorbell: payload, then the sequence word (Release), then
/// FUTEX_WAKE, always. `close` marks the direction closed.
pub struct BellTx {
    bell: Bell,
    sent: u32,
}

/// Receives through a doorbell: sleeps in FUTEX_WAIT at once while there is nothing.
pub struct BellRx {
    bell: Bell,
    received: u32,
}

impl Tx for BellTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        assert_eq!(msg.len(), self.bell.len);
        // SAFETY: the payload area is inside the region; the peer reads it only after
        // it sees the sequence word below, and we rewrite it only after its reply.
        unsafe {
            std::ptr::copy_nonoverlapping(
                msg.as_ptr(),
                self.bell.region.add(BELL_PAYLOAD),
                msg.len(),
            )
        };
        self.sent = self.sent.wrapping_add(1);
        // Release: pairs with the Acquire load in `BellRx::recv`.
        self.bell.seq().store(self.sent, Ordering::Release);
        let _ = futex_wake(self.bell.seq(), 1);
    }

    fn close(&mut self) {
        // A receiver that checked `closed` just before this store sleeps until its
        // 10 ms timeout at most.
        self.bell.closed().store(1, Ordering::Release);
        let _ = futex_wake(self.bell.seq(), 1);
    }
}

impl Rx for BellRx {
    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> bool {
        let want = self.received.wrapping_add(1);
        loop {
            // Acquire: pairs with the Release store in `BellTx::send`.
            let v = self.bell.seq().load(Ordering::Acquire);
            if v == want {
                break;
            }
            if self.bell.closed().load(Ordering::Acquire) != 0 {
                return false;
            }
            let _ = futex_wait(self.bell.seq(), v, Some(Duration::from_millis(10)));
        }
        self.received = want;
        buf.resize(len, 0);
        // SAFETY: the peer published these bytes before its Release store we saw, and
        // rewrites them only after our reply.
        unsafe {
            std::ptr::copy_nonoverlapping(self.bell.region.add(BELL_PAYLOAD), buf.as_mut_ptr(), len)
        };
        true
    }
}

/// A doorbell pair for `len`-byte messages: `(bench process's end, peer's end)`.
pub fn doorbell_duplex(len: usize) -> (Duplex<BellTx, BellRx>, Duplex<BellTx, BellRx>) {
    let page = 4096;
    let stride = (BELL_PAYLOAD + len).next_multiple_of(page);
    let p = SharedMap::new(2 * stride)
        .unwrap_or_else(|e| panic!("{e}"))
        .leak();
    let a = Bell { region: p, len };
    let b = Bell {
        // SAFETY: the mapping is `2 * stride` bytes long.
        region: unsafe { p.add(stride) },
        len,
    };
    (
        Duplex {
            tx: BellTx { bell: a, sent: 0 },
            rx: BellRx {
                bell: b,
                received: 0,
            },
        },
        Duplex {
            tx: BellTx { bell: b, sent: 0 },
            rx: BellRx {
                bell: a,
                received: 0,
            },
        },
    )
}
