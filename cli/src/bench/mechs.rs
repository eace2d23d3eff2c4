//! The mechanisms `shmlane bench` measures: one table, one entry per row of the
//! output. The table decides the order of the rows, which measurements each
//! mechanism takes part in (round trips, one-way throughput, MPMC throughput with
//! several producers and consumers), its identifier in the JSON, its name in the
//! table and the help text that says what its rows measure.
//!
//! Adding a mechanism is one entry here plus, if it is a new kind of channel, its
//! set-up in `Runner::latency` / `Runner::throughput`; a row of one of shmlane's
//! rings with another wait strategy or notifier is one entry.

use shmlane::{Notifier, Wait};

/// Which of shmlane's rings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RingKind {
    /// `shmlane::spsc`: one producer, one consumer, a byte ring.
    Spsc,
    /// `shmlane::mpmc`: a cell ring for any number of producers and consumers, here
    /// with one of each (its uncontended cost beside SPSC).
    Mpmc,
}

/// A mechanism measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mech {
    /// Two processes spinning on a shared cache line: the floor of any shared-memory
    /// round trip.
    RawLine,
    /// The same page, with the receiver asleep in `FUTEX_WAIT` and the sender always
    /// calling `FUTEX_WAKE`: the floor of any round trip through a kernel wake-up.
    FutexDoorbell,
    /// The minimal SPSC ring of `shmlane_support::minimal_ring`: a byte ring in
    /// shared memory with a published `tail` and `head` and nothing else, both sides
    /// spinning: the yardstick of one-way throughput for a ring.
    MinimalRing,
    /// One of shmlane's rings, with this wait strategy on every endpoint and this
    /// notifier for their sleeps.
    Ring(RingKind, Wait, Notifier),
    /// A pipe with the default buffer (a pair of them for round trips).
    Pipe,
    /// A pipe whose buffer is raised to 1 MiB with `F_SETPIPE_SZ`.
    PipeBig,
    /// Pipes whose readers never sleep: `O_NONBLOCK` read ends polled in a loop.
    PipePolled,
    /// A UNIX stream socket pair.
    UnixStream,
    /// A UNIX seqpacket socket pair.
    UnixSeqpacket,
    /// A TCP connection over 127.0.0.1 with `TCP_NODELAY`.
    Tcp,
    /// A POSIX message queue (two for round trips).
    Mqueue,
    /// crossbeam's `ArrayQueue` between threads of one process (MPMC throughput
    /// only): what an in-process MPMC queue does on this machine.
    ArrayQueue,
}

impl Mech {
    /// Whether both sides busy-poll (hopeless on one CPU).
    pub(crate) fn spins(self) -> bool {
        matches!(
            self,
            Mech::RawLine | Mech::MinimalRing | Mech::Ring(_, Wait::Spin, _) | Mech::PipePolled
        )
    }
}

/// Which throughput rows a mechanism has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loads {
    /// None: a latency-only mechanism.
    None,
    /// Messages of up to 4 KiB only (the sleeping rows: there the consumer sleeps
    /// often; with large messages they measure the same as the default wait).
    Small,
    /// Every message size, but not the streamed message (a mechanism with no
    /// streams).
    Messages,
    /// Every message size and the streamed message.
    All,
}

/// The producers and consumers of an MPMC throughput row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) producers: usize,
    pub(crate) consumers: usize,
}

impl Shape {
    const fn new(producers: usize, consumers: usize) -> Self {
        Shape {
            producers,
            consumers,
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}P{}C", self.producers, self.consumers)
    }
}

/// The shapes of the MPMC throughput rows, in order.
pub(crate) const SHAPES: [Shape; 3] = [Shape::new(1, 1), Shape::new(2, 2), Shape::new(4, 4)];
/// One producer and one consumer only.
const ONE_ONE: &[Shape] = &[Shape::new(1, 1)];

/// One entry of [`MECHANISMS`].
#[derive(Debug)]
pub(crate) struct MechSpec {
    pub(crate) mech: Mech,
    /// Stable identifier, for JSON and `--only`.
    pub(crate) id: &'static str,
    /// The row's name in the table and the plot.
    pub(crate) label: &'static str,
    /// Whether it has round-trip rows.
    pub(crate) latency: bool,
    pub(crate) loads: Loads,
    /// The shapes of its MPMC throughput rows (none: not in that section).
    pub(crate) contention: &'static [Shape],
    /// What its rows measure and how it is configured, for `--help`.
    pub(crate) help: &'static str,
}

const fn spsc(wait: Wait, notifier: Notifier) -> Mech {
    Mech::Ring(RingKind::Spsc, wait, notifier)
}

const fn mpmc(wait: Wait, notifier: Notifier) -> Mech {
    Mech::Ring(RingKind::Mpmc, wait, notifier)
}

/// Every mechanism, in the order of the rows.
pub(crate) const MECHANISMS: &[MechSpec] = &[
    MechSpec {
        mech: Mech::RawLine,
        id: "raw-cache-line",
        label: "raw shared cache line (floor)",
        latency: true,
        loads: Loads::None,
        contention: &[],
        help: "Each side writes the payload and then a sequence word \
               into its own page of a shared mapping, and spins on the peer's word; the \
               payload shares the word's cache line up to 56 bytes. No ring, no \
               bookkeeping: the least any shared-memory round trip costs here. The \
               ratios p50/floor and p99/floor divide by this row.",
    },
    MechSpec {
        mech: Mech::FutexDoorbell,
        id: "futex-doorbell",
        label: "futex doorbell (sleeping floor)",
        latency: true,
        loads: Loads::None,
        contention: &[],
        help: "The same pages, but the receiver goes to sleep in \
               FUTEX_WAIT at once and the sender always calls FUTEX_WAKE (shared, not \
               private, futexes): the least any round trip costs that wakes a sleeper \
               on each hop. Compare the Park rows with it.",
    },
    MechSpec {
        mech: Mech::MinimalRing,
        id: "minimal-spsc-ring",
        label: "minimal SPSC ring (yardstick)",
        latency: true,
        loads: Loads::Messages,
        contention: &[],
        help: "A byte ring in a shared mapping written the obvious way, about a hundred \
               lines (shmlane_support::minimal_ring): records of a u32 length and the \
               payload; the producer publishes a tail cursor after each message and \
               reads the consumer's head only when the ring looks full; the consumer \
               reads tail, consumes every record up to it, then publishes head. No \
               header, validation, liveness, sleeping or fragments; both sides spin. \
               Rings as for shmlane SPSC (the same capacity per row), messages copied \
               in and out and checked as in every row: the practical limit of one-way \
               throughput for a byte ring. The throughput ratios this/min divide by \
               this row.",
    },
    MechSpec {
        mech: spsc(Wait::Spin, Notifier::Futex),
        id: "shmlane-spsc-spin",
        label: "shmlane SPSC, Wait::Spin",
        latency: true,
        loads: Loads::All,
        contention: &[],
        help: "shmlane::spsc, both endpoints busy-polling. Round trips: two 64 KiB rings, \
               one per direction. Throughput: one 1 MiB ring (4 MiB for 1 MiB messages, so \
               that each message is one record). send(&[u8]) and recv(&mut Vec<u8>): a \
               copy in and a copy out, as with read()/write(); the streamed message \
               through stream() / recv_stream() (io::Write / io::Read).",
    },
    MechSpec {
        mech: spsc(Wait::Adaptive, Notifier::Futex),
        id: "shmlane-spsc-adaptive",
        label: "shmlane SPSC, Wait::Adaptive",
        latency: true,
        loads: Loads::All,
        contention: &[],
        help: "The same rings with the default wait: spin up to 20 us, yield until \
               200 us, then sleep on the futex event count.",
    },
    MechSpec {
        mech: spsc(Wait::Park, Notifier::Futex),
        id: "shmlane-spsc-park-futex",
        label: "shmlane SPSC, Park, futex",
        latency: true,
        loads: Loads::Small,
        contention: &[],
        help: "The same rings, both endpoints sleeping at once whenever they would wait \
               (Wait::Park, Notifier::Futex): every round trip wakes two sleepers. \
               Throughput for 64 B and 4 KiB messages only.",
    },
    MechSpec {
        mech: spsc(Wait::Park, Notifier::Semaphore),
        id: "shmlane-spsc-park-semaphore",
        label: "shmlane SPSC, Park, semaphore",
        latency: true,
        loads: Loads::Small,
        contention: &[],
        help: "As the row above, sleeping on process-shared POSIX semaphores in the \
               header (Notifier::Semaphore).",
    },
    MechSpec {
        mech: mpmc(Wait::Spin, Notifier::Futex),
        id: "shmlane-mpmc-spin",
        label: "shmlane MPMC, Wait::Spin",
        latency: true,
        loads: Loads::All,
        contention: ONE_ONE,
        help: "shmlane::mpmc, every endpoint busy-polling. Round trips and one-way \
               throughput: one producer and one consumer per ring (the MPMC protocol's \
               own cost, uncontended, beside the SPSC rows), rings as for SPSC, cells \
               sized to the message (64 B to a quarter of the ring), so that each \
               message takes one cell. MPMC throughput: 1P1C only (spinning processes \
               that outnumber the cores starve each other).",
    },
    MechSpec {
        mech: mpmc(Wait::Adaptive, Notifier::Futex),
        id: "shmlane-mpmc-adaptive",
        label: "shmlane MPMC, Wait::Adaptive",
        latency: true,
        loads: Loads::All,
        contention: &SHAPES,
        help: "The same MPMC rings with the default wait (spin up to 20 us, yield \
               until 200 us, then sleep). MPMC throughput: P producer and C consumer \
               processes (1P1C, 2P2C, 4P4C) on one 1 MiB ring made with create_ring, \
               cells of the message size, max_endpoints = P + C; each producer \
               send(&[u8])s, each consumer recv(&mut Vec<u8>)s. The default wait \
               there because 4P4C is 8 processes on 2 cores: endpoints that spin \
               would take the CPU from the peers they wait for.",
    },
    MechSpec {
        mech: mpmc(Wait::Park, Notifier::Futex),
        id: "shmlane-mpmc-park-futex",
        label: "shmlane MPMC, Park, futex",
        latency: true,
        loads: Loads::Small,
        contention: &[],
        help: "The same MPMC rings, both endpoints sleeping at once whenever they wait. \
               Throughput for 64 B and 4 KiB messages only.",
    },
    MechSpec {
        mech: Mech::ArrayQueue,
        id: "crossbeam-arrayqueue",
        label: "crossbeam ArrayQueue",
        latency: false,
        loads: Loads::None,
        contention: &SHAPES,
        help: "crossbeam_queue::ArrayQueue between threads of one (forked) process: \
               P producer threads pinned as the producer processes are, C consumer \
               threads as the consumers. Its elements are { len: u32, bytes: [u8; N] } \
               with N the message size, and 1 MiB / N of them (the bytes of shmlane's \
               ring): a producer stamps the message in its own element and push() \
               copies it in, pop() copies it out and the consumer checks it there: \
               one copy in and one out per message, as send(&[u8]) and \
               recv(&mut Vec<u8>) do. Threads wait with crossbeam_utils::Backoff \
               (spin, then sched_yield); they never sleep.",
    },
    MechSpec {
        mech: Mech::Pipe,
        id: "pipe",
        label: "pipe",
        latency: true,
        loads: Loads::All,
        contention: &SHAPES,
        help: "pipe2(): two pipes for round trips, one for throughput, the default \
               buffer (64 KiB). The sender write()s each message whole; a round trip's \
               receiver read()s exactly one message, a throughput consumer reads through \
               a 64 KiB buffer (one read() takes every message already queued, up to \
               64 KiB) and copies each message out of it. The throughput ratios \
               (this/pipe) divide by this row. MPMC throughput: one pipe shared by \
               every producer and consumer process, blocking reads and writes; each \
               write() is one whole message of at most PIPE_BUF (4 KiB), so atomic, \
               and each consumer read()s up to 64 KiB and copies each message out \
               (a read always ends on a message boundary, since every write is one \
               message of the same length; checked).",
    },
    MechSpec {
        mech: Mech::PipePolled,
        id: "pipe-busy-poll",
        label: "pipe, busy-polled reads",
        latency: true,
        loads: Loads::None,
        contention: &[],
        help: "Two pipes whose read ends are O_NONBLOCK and read in a spinning loop: \
               no sleep and no wake-up, what a kernel channel costs when its receiver \
               burns a core as Wait::Spin does (two system calls per hop remain).",
    },
    MechSpec {
        mech: Mech::PipeBig,
        id: "pipe-1mib",
        label: "pipe, 1 MiB buffer",
        latency: false,
        loads: Loads::All,
        contention: &[],
        help: "As the pipe, its buffer raised to 1 MiB with F_SETPIPE_SZ \
               (the row is skipped when the kernel refuses it: pipe-max-size).",
    },
    MechSpec {
        mech: Mech::UnixStream,
        id: "unix-stream",
        label: "UNIX stream socket",
        latency: true,
        loads: Loads::All,
        contention: &[],
        help: "socketpair(AF_UNIX, SOCK_STREAM), read and written as the pipe. \
               Throughput rows with SO_SNDBUF and SO_RCVBUF raised to 4 MiB, or to \
               net.core.wmem_max / rmem_max if lower (what an unprivileged process \
               gets; 4 MiB beat 1 MiB and the defaults in our runs); round trips with \
               the defaults.",
    },
    MechSpec {
        mech: Mech::UnixSeqpacket,
        id: "unix-seqpacket",
        label: "UNIX seqpacket socket",
        latency: true,
        loads: Loads::All,
        contention: &[],
        help: "socketpair(AF_UNIX, SOCK_SEQPACKET), buffers as the stream socket: one \
               packet per message, the receiver checks each packet's length \
               (MSG_TRUNC). The kernel refuses a packet larger than the send buffer, so \
               a longer message goes as packets of the largest power of two that fits \
               (noted under the table when that happens).",
    },
    MechSpec {
        mech: Mech::Tcp,
        id: "tcp-loopback",
        label: "TCP loopback, NODELAY",
        latency: true,
        loads: Loads::All,
        contention: &[],
        help: "A TCP connection over 127.0.0.1, TCP_NODELAY on both ends (no Nagle \
               delay: each message leaves at once, as with every other row), buffers as \
               the stream socket (fixed buffers also beat TCP's autotuning here), read \
               and written as the pipe.",
    },
    MechSpec {
        mech: Mech::Mqueue,
        id: "posix-mqueue",
        label: "POSIX message queue",
        latency: true,
        loads: Loads::All,
        contention: &[],
        help: "mq_open/mq_send/mq_receive (two queues for round trips), each queue as \
               deep and its messages as large as an unprivileged user may make them \
               (/proc/sys/fs/mqueue/msg_max and msgsize_max, 10 and 8 KiB by default; the \
               limits are respected even when running as root); longer messages go as \
               several queue messages (noted under the table).",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_unique() {
        for (i, a) in MECHANISMS.iter().enumerate() {
            for b in &MECHANISMS[i + 1..] {
                assert_ne!(a.id, b.id);
                assert_ne!(a.mech, b.mech);
            }
        }
    }
}
