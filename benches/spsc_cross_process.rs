//! Cross-process benchmarks of the SPSC ring, each beside a pipe measured the same way.
//!
//! - `round_trip/{8 B, 1 KiB}`: the bench process pings a forked child that echoes
//!   every message (shmlane: two rings, one per direction, default wait; pipe: two
//!   pipes). One child per benchmark; `iter_custom` times `iters` round trips.
//! - `throughput/{64 B, 64 KiB}`: the bench process sends `iters` messages to a forked
//!   child, which copies each out, checks it, and acknowledges the batch through a
//!   control pipe; the time runs from the first send to the acknowledgement.
//!   `Throughput::Bytes` gives bytes per second.
//!
//! The bench process is pinned to the first allowed CPU and the child to the second.
//! Every message carries its sequence number, checked by the receiver. An alarm
//! bounds each benchmark, so a lost peer ends the run instead of hanging it.
//!
//! `shmlane bench` (the command) covers more mechanisms and sizes; this file is for
//! tracking changes with criterion's statistics.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmlane::spsc::{Consumer, Producer};
use shmlane::{RecvError, RingOptions};

/// Seconds after which a benchmark that has not finished kills the bench process.
const WATCHDOG_SECS: u32 = 120;

// ---------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------

/// The first two CPUs this process may use, if there are two.
fn cpus() -> Option<[usize; 2]> {
    // SAFETY: `cpu_set_t` is plain data; zeroed is the empty set, filled by the call.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid and writable for the size passed.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } != 0 {
        return None;
    }
    let mut it = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c < CPU_SETSIZE`.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) });
    Some([it.next()?, it.next()?])
}

fn pin(cpu: usize) {
    // SAFETY: as in `cpus`; `cpu < CPU_SETSIZE` and `set` is valid for the size passed.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
}

/// A forked child; dropped, it is given 5 s to exit and then killed.
struct Child(libc::pid_t);

/// Forks a child that pins itself to `cpu`, closes `close` (the parent's ends of
/// pipes, so that it sees end-of-file when the parent closes them), runs `body` and
/// exits with its status (101 on a panic).
fn fork_child(cpu: Option<usize>, close: &[RawFd], body: impl FnOnce() -> i32) -> Child {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: the bench process runs no other thread while it forks (criterion measures
    // on the calling thread), and the child leaves only through `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        for &fd in close {
            // SAFETY: `fd` is a descriptor inherited from the parent that this child
            // never uses; the objects that own it are never dropped here.
            unsafe { libc::close(fd) };
        }
        if let Some(cpu) = cpu {
            pin(cpu);
        }
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(101);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) }
    }
    Child(pid)
}

impl Drop for Child {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut status = 0;
        loop {
            // SAFETY: `self.0` is our unreaped child.
            let r = unsafe { libc::waitpid(self.0, &mut status, libc::WNOHANG) };
            if r == self.0 {
                let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
                if !ok && !std::thread::panicking() {
                    panic!("child {} failed (wait status {status:#x})", self.0);
                }
                return;
            }
            if r < 0 || Instant::now() >= deadline {
                // SAFETY: as above; kill it and reap it.
                unsafe {
                    libc::kill(self.0, libc::SIGKILL);
                    libc::waitpid(self.0, &mut status, 0);
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Arms the watchdog for one benchmark; dropped, disarms it.
struct Watchdog;

impl Watchdog {
    fn arm() -> Self {
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

fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    unsafe {
        (
            File::from(OwnedFd::from_raw_fd(fds[0])),
            File::from(OwnedFd::from_raw_fd(fds[1])),
        )
    }
}

/// A ring name no other process uses; removed when dropped.
struct Ring(String);

impl Ring {
    fn new(what: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Ring(format!(
            "/shmlane-criterion-{}-{n}-{what}",
            std::process::id()
        ))
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = shmlane::remove(&self.0);
    }
}

// ---------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------

fn message(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

#[inline]
fn stamp(msg: &mut [u8], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_le_bytes());
}

#[inline]
fn check(msg: &[u8], len: usize, seq: u64) {
    assert_eq!(msg.len(), len, "message {seq}: wrong length");
    let got = u64::from_le_bytes(msg[..8].try_into().unwrap());
    assert_eq!(got, seq, "message {seq}: wrong sequence number");
}

/// Reads exactly `len` bytes into `buf`, replacing its contents; `false` at end-of-file.
fn read_message(f: &mut File, buf: &mut Vec<u8>, len: usize) -> bool {
    buf.resize(len, 0);
    match f.read_exact(buf) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
        Err(e) => panic!("read: {e}"),
    }
}

// ---------------------------------------------------------------------------------
// Round trip
// ---------------------------------------------------------------------------------

fn round_trip(c: &mut Criterion) {
    let cpus = cpus();
    if let Some(c) = cpus {
        pin(c[0]);
    }
    let mut group = c.benchmark_group("round_trip");
    for len in [8usize, 1024] {
        let label = if len >= 1024 {
            format!("{} KiB", len / 1024)
        } else {
            format!("{len} B")
        };

        // shmlane: the parent creates both rings and keeps its ends; the child opens
        // the other ends. A vacant slot is not "disconnected", so the order is free.
        {
            let _dog = Watchdog::arm();
            let (ab, ba) = (Ring::new("ping"), Ring::new("pong"));
            let opts = RingOptions::new(64 << 10);
            let mut tx = Producer::create(&ab.0, &opts).expect("create ping ring");
            let mut rx = Consumer::create(&ba.0, &opts).expect("create pong ring");
            let child = fork_child(cpus.map(|c| c[1]), &[], || {
                let mut rx = Consumer::open(&ab.0).expect("open ping ring");
                let mut tx = Producer::open(&ba.0).expect("open pong ring");
                let mut buf = Vec::with_capacity(len);
                loop {
                    match rx.recv(&mut buf) {
                        Ok(_) => tx.send(&buf).expect("pong send"),
                        Err(RecvError::Disconnected) => return 0,
                        Err(e) => panic!("pong recv: {e}"),
                    }
                }
            });
            let mut msg = message(len);
            let mut buf = Vec::with_capacity(len);
            let mut seq = 0u64;
            group.bench_function(BenchmarkId::new("shmlane", &label), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        stamp(&mut msg, seq);
                        tx.send(&msg).expect("ping send");
                        rx.recv(&mut buf).expect("ping recv");
                        check(&buf, len, seq);
                        seq += 1;
                    }
                    start.elapsed()
                })
            });
            drop((tx, rx));
            drop(child);
        }

        // Two pipes.
        {
            let _dog = Watchdog::arm();
            let (ping_rx, mut ping_tx) = pipe();
            let (mut pong_rx, pong_tx) = pipe();
            let parent_ends = [ping_tx.as_raw_fd(), pong_rx.as_raw_fd()];
            let child = fork_child(cpus.map(|c| c[1]), &parent_ends, move || {
                let (mut rx, mut tx) = (ping_rx, pong_tx);
                let mut buf = Vec::with_capacity(len);
                while read_message(&mut rx, &mut buf, len) {
                    tx.write_all(&buf).expect("pong write");
                }
                0
            });
            let mut msg = message(len);
            let mut buf = Vec::with_capacity(len);
            let mut seq = 0u64;
            group.bench_function(BenchmarkId::new("pipe", &label), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        stamp(&mut msg, seq);
                        ping_tx.write_all(&msg).expect("ping write");
                        assert!(read_message(&mut pong_rx, &mut buf, len), "pong gone");
                        check(&buf, len, seq);
                        seq += 1;
                    }
                    start.elapsed()
                })
            });
            drop(ping_tx);
            drop(child);
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------------
// Throughput
// ---------------------------------------------------------------------------------

/// The consumer child's loop: read a batch size from `ctl_rx`, take that many
/// messages with `take`, acknowledge on `ack_tx`; until `ctl_rx` is closed.
fn batches(
    mut ctl_rx: File,
    mut ack_tx: File,
    mut take: impl FnMut(u64) -> Result<(), String>,
) -> i32 {
    let mut seq = 0u64;
    loop {
        let mut count = [0u8; 8];
        if ctl_rx.read_exact(&mut count).is_err() {
            return 0;
        }
        for _ in 0..u64::from_le_bytes(count) {
            if let Err(e) = take(seq) {
                eprintln!("consumer: {e}");
                return 1;
            }
            seq += 1;
        }
        ack_tx.write_all(&[1]).expect("ack");
    }
}

/// Times one batch of `iters` messages sent by `send`.
fn timed_batch(
    iters: u64,
    ctl_tx: &mut File,
    ack_rx: &mut File,
    mut send: impl FnMut(u64),
    seq: &mut u64,
) -> Duration {
    let start = Instant::now();
    ctl_tx
        .write_all(&iters.to_le_bytes())
        .expect("control write");
    for _ in 0..iters {
        send(*seq);
        *seq += 1;
    }
    let mut ack = [0u8; 1];
    ack_rx.read_exact(&mut ack).expect("consumer gone");
    start.elapsed()
}

fn throughput(c: &mut Criterion) {
    let cpus = cpus();
    if let Some(c) = cpus {
        pin(c[0]);
    }
    for len in [64usize, 64 << 10] {
        let label = if len >= 1024 {
            format!("{} KiB", len / 1024)
        } else {
            format!("{len} B")
        };
        let mut group = c.benchmark_group(format!("throughput/{label}"));
        group.throughput(Throughput::Bytes(len as u64));

        // shmlane: a 1 MiB ring, default wait.
        {
            let _dog = Watchdog::arm();
            let ring = Ring::new("oneway");
            let mut tx = Producer::create(&ring.0, &RingOptions::new(1 << 20)).expect("create");
            let (ctl_rx, mut ctl_tx) = pipe();
            let (mut ack_rx, ack_tx) = pipe();
            let parent_ends = [ctl_tx.as_raw_fd(), ack_rx.as_raw_fd()];
            let child = fork_child(cpus.map(|c| c[1]), &parent_ends, || {
                let mut rx = Consumer::open(&ring.0).expect("open");
                let mut buf = Vec::with_capacity(len);
                batches(ctl_rx, ack_tx, |seq| {
                    rx.recv(&mut buf).map_err(|e| format!("recv: {e}"))?;
                    check(&buf, len, seq);
                    Ok(())
                })
            });
            let mut msg = message(len);
            let mut seq = 0u64;
            group.bench_function("shmlane", |b| {
                b.iter_custom(|iters| {
                    let send = |s| {
                        stamp(&mut msg, s);
                        tx.send(&msg).expect("send");
                    };
                    timed_batch(iters, &mut ctl_tx, &mut ack_rx, send, &mut seq)
                })
            });
            drop(ctl_tx);
            drop(child);
        }

        // A pipe with its default buffer.
        {
            let _dog = Watchdog::arm();
            let (data_rx, mut data_tx) = pipe();
            let (ctl_rx, mut ctl_tx) = pipe();
            let (mut ack_rx, ack_tx) = pipe();
            let parent_ends = [data_tx.as_raw_fd(), ctl_tx.as_raw_fd(), ack_rx.as_raw_fd()];
            let child = fork_child(cpus.map(|c| c[1]), &parent_ends, move || {
                let mut rx = data_rx;
                let mut buf = Vec::with_capacity(len);
                batches(ctl_rx, ack_tx, |seq| {
                    if !read_message(&mut rx, &mut buf, len) {
                        return Err("producer gone".into());
                    }
                    check(&buf, len, seq);
                    Ok(())
                })
            });
            let mut msg = message(len);
            let mut seq = 0u64;
            group.bench_function("pipe", |b| {
                b.iter_custom(|iters| {
                    let send = |s| {
                        stamp(&mut msg, s);
                        data_tx.write_all(&msg).expect("write");
                    };
                    timed_batch(iters, &mut ctl_tx, &mut ack_rx, send, &mut seq)
                })
            });
            drop(ctl_tx);
            drop(child);
        }
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = round_trip, throughput
}
criterion_main!(benches);
