//! Contention on one queue shared by several processes: P producer processes and C
//! consumer processes (1x1, 2x2, 4x1, 1x4), 64 B messages. Producers are pinned to
//! the first allowed CPU and consumers to the second, so messages always cross cores
//! and the processes of one side contend for their core as well as for the queue.
//!
//! One criterion iteration is one message. For a batch of `iters` messages the bench
//! process tells each producer (through its control pipe) how many to send, then
//! sleeps on an acknowledgement pipe; every consumer copies out and checks each
//! message (producer id, per-producer increasing sequence number, tag byte) and
//! counts it in a shared counter, and the consumer that counts the batch's last
//! message acknowledges. `Throughput::Bytes` gives bytes per second.
//!
//! - `shmlane`: one `shmlane::mpmc` ring of 1 MiB with 64 B cells (one message per
//!   cell), the default `Wait::Adaptive` on every endpoint.
//! - `pipe`: one pipe shared by all (writes of 64 B are atomic, so readers always
//!   take whole messages).
//! - `unix-seqpacket`: one UNIX seqpacket socket pair, producers sharing one end and
//!   consumers the other (one packet per message: a stream socket would let two
//!   readers split a message).

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use common::{config, cpus, fork_child, pin_bench_process, pipe, Child, RingName, Watchdog};
use criterion::measurement::WallTime;
use criterion::Throughput;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use shmlane::mpmc::{Consumer, Producer};
use shmlane::{RecvError, RingOptions};

const LEN: usize = 64;

/// The batch counters, in a shared anonymous page made before the children fork.
struct Counters {
    /// Page aligned, mapped for the rest of the process (never unmapped: one page per
    /// benchmark).
    page: *mut u8,
}

impl Counters {
    fn new() -> Self {
        // SAFETY: an anonymous shared mapping at an address the kernel picks.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        Counters { page: p.cast() }
    }

    /// Messages taken by all consumers so far.
    fn taken(&self) -> &AtomicU64 {
        // SAFETY: the page is mapped, aligned, and only accessed atomically.
        unsafe { AtomicU64::from_ptr(self.page.cast()) }
    }

    /// The value of `taken` at which the current batch is complete.
    fn target(&self) -> &AtomicU64 {
        // SAFETY: as in `taken`, on another cache line.
        unsafe { AtomicU64::from_ptr(self.page.add(128).cast()) }
    }
}

/// One side of the queue under test.
trait Sender {
    fn send(&mut self, msg: &[u8]);
}

trait Receiver {
    /// One message of `LEN` bytes into `buf`; `false` once every producer is gone.
    fn recv(&mut self, buf: &mut Vec<u8>) -> bool;
}

impl Sender for Producer {
    fn send(&mut self, msg: &[u8]) {
        Producer::send(self, msg).expect("mpmc send");
    }
}

impl Receiver for Consumer {
    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        match Consumer::recv(self, buf) {
            Ok(n) => {
                assert_eq!(n, LEN, "mpmc message length");
                true
            }
            Err(RecvError::Disconnected) => false,
            Err(e) => panic!("mpmc recv: {e}"),
        }
    }
}

/// A pipe end or a seqpacket socket shared by several processes: every message is
/// one `write` and one `read` (atomic for 64 B pipe writes and for packets). A pipe
/// read asks for exactly one message (the pipe holds whole ones only); a packet read
/// for one byte more, so that a longer packet would show.
struct Shared {
    file: File,
    packets: bool,
}

impl Sender for Shared {
    fn send(&mut self, msg: &[u8]) {
        let n = self.file.write(msg).expect("write");
        assert_eq!(n, msg.len(), "short write");
    }
}

impl Receiver for Shared {
    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        buf.resize(LEN + usize::from(self.packets), 0);
        let n = self.file.read(buf).expect("read");
        if n == 0 {
            return false;
        }
        assert_eq!(n, LEN, "read of a whole message");
        buf.truncate(n);
        true
    }
}

/// A new descriptor of `fd`, which this process has open (a child: inherited).
fn dup(fd: RawFd) -> File {
    // SAFETY: `fd` is open in this process; F_DUPFD_CLOEXEC makes a new descriptor
    // that we own.
    let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    assert!(d >= 0, "dup: {}", std::io::Error::last_os_error());
    // SAFETY: `d` is new and owned by nothing else.
    File::from(unsafe { OwnedFd::from_raw_fd(d) })
}

fn tag(producer: u64, seq: u64) -> u8 {
    ((seq ^ producer << 40).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8 | 1
}

/// Runs one benchmark: `producers` processes opening their end with `open_tx`,
/// `consumers` opening theirs with `open_rx`. `tx_fds` / `rx_fds`: the descriptors of
/// each side, which the other side's processes close, and `parent_ends` the bench
/// process's handles of them, closed once every child has forked (so that readers see
/// end-of-file when the writers are done).
#[allow(clippy::too_many_arguments)]
fn contention<S: Sender, R: Receiver>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    producers: usize,
    consumers: usize,
    open_tx: impl Fn() -> S,
    open_rx: impl Fn() -> R,
    tx_fds: &[RawFd],
    rx_fds: &[RawFd],
    parent_ends: Vec<File>,
) {
    let _dog = Watchdog::arm();
    let cpus = cpus();
    let counters = Counters::new();
    let (mut ack_rx, ack_tx) = pipe(None);
    let mut ctl_txs = Vec::new();
    let mut children: Vec<Child> = Vec::new();
    for p in 0..producers {
        let (ctl_rx, ctl_tx) = pipe(None);
        let mut close: Vec<RawFd> = rx_fds.to_vec();
        close.extend(ctl_txs.iter().map(|f: &File| f.as_raw_fd()));
        close.extend([ctl_tx.as_raw_fd(), ack_rx.as_raw_fd(), ack_tx.as_raw_fd()]);
        let open_tx = &open_tx;
        children.push(fork_child(cpus.map(|c| c[0]), &close, move || {
            let mut tx = open_tx();
            let mut ctl_rx = ctl_rx;
            let mut msg = vec![0u8; LEN];
            msg[8..16].copy_from_slice(&(p as u64).to_le_bytes());
            let mut seq = 0u64;
            loop {
                let mut count = [0u8; 8];
                if ctl_rx.read_exact(&mut count).is_err() {
                    return 0;
                }
                for _ in 0..u64::from_le_bytes(count) {
                    msg[..8].copy_from_slice(&seq.to_le_bytes());
                    msg[LEN - 1] = tag(p as u64, seq);
                    tx.send(&msg);
                    seq += 1;
                }
            }
        }));
        // (The closure, and with it the parent's `ctl_rx`, was dropped by `fork_child`.)
        ctl_txs.push(ctl_tx);
    }
    for _ in 0..consumers {
        let mut close: Vec<RawFd> = tx_fds.to_vec();
        close.extend(ctl_txs.iter().map(|f| f.as_raw_fd()));
        close.push(ack_rx.as_raw_fd());
        let (open_rx, counters) = (&open_rx, &counters);
        let ack = ack_tx.try_clone().expect("dup");
        children.push(fork_child(cpus.map(|c| c[1]), &close, move || {
            let mut rx = open_rx();
            let mut ack = ack;
            let mut buf = Vec::with_capacity(LEN + 1);
            let mut last = vec![None::<u64>; producers];
            while rx.recv(&mut buf) {
                let seq = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
                let p = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
                let slot = last.get_mut(p as usize).expect("producer id in range");
                assert!(slot.map_or(true, |l| seq > l), "producer {p}: order");
                assert_eq!(buf[LEN - 1], tag(p, seq), "producer {p} message {seq}: tag");
                *slot = Some(seq);
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
    drop(children);
}

fn mpmc_contention(c: &mut Criterion) {
    pin_bench_process();
    let mut group = c.benchmark_group("mpmc_contention");
    group.throughput(Throughput::Bytes(LEN as u64));
    for (producers, consumers) in [(1, 1), (2, 2), (4, 1), (1, 4)] {
        let shape = format!("{producers}p{consumers}c");

        let ring = RingName::new("mpmc");
        let opts = RingOptions::new(1 << 20).cell_size(64);
        shmlane::mpmc::create_ring(&ring.0, &opts).expect("create ring");
        let name = ring.0.clone();
        contention(
            &mut group,
            BenchmarkId::new("shmlane", &shape),
            producers,
            consumers,
            || Producer::open(&name).expect("open producer"),
            || Consumer::open(&name).expect("open consumer"),
            &[],
            &[],
            Vec::new(),
        );

        let (rx, tx) = pipe(None);
        let (rfd, wfd) = (rx.as_raw_fd(), tx.as_raw_fd());
        contention(
            &mut group,
            BenchmarkId::new("pipe", &shape),
            producers,
            consumers,
            || Shared {
                file: dup(wfd),
                packets: false,
            },
            || Shared {
                file: dup(rfd),
                packets: false,
            },
            &[wfd],
            &[rfd],
            vec![rx, tx],
        );

        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors socketpair writes.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors are new and owned by nothing else.
        let (a, b) = unsafe {
            (
                File::from(OwnedFd::from_raw_fd(fds[0])),
                File::from(OwnedFd::from_raw_fd(fds[1])),
            )
        };
        let (afd, bfd) = (a.as_raw_fd(), b.as_raw_fd());
        contention(
            &mut group,
            BenchmarkId::new("unix-seqpacket", &shape),
            producers,
            consumers,
            || Shared {
                file: dup(afd),
                packets: true,
            },
            || Shared {
                file: dup(bfd),
                packets: true,
            },
            &[afd],
            &[bfd],
            vec![a, b],
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = mpmc_contention
}
criterion_main!(benches);
