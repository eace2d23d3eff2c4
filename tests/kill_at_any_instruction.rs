//! Claim: **a peer may be `kill -9`ed at any instruction, and the others go on**: no
//! survivor blocks, every message delivered was sent, intact, none twice, each
//! producer's in order, and none lost but those a killed consumer held, on POSIX rings
//! (deaths told by locks) and SysV rings (told by pid), SPSC and MPMC at once.
//!
//! Crash injection ("Survive crashes"): endpoints SIGKILLed at any instruction while
//! messages flow, replaced at once, and what the survivors see checked message by
//! message.
//!
//! # The run
//!
//! The test process is the controller. It creates an MPMC ring (64 KiB, default cells,
//! 16 endpoints at most) and an SPSC ring (64 KiB), both POSIX (`crash_injection`:
//! endpoints tell each other's lives by OFD locks) or both SysV (`crash_injection_sysv`:
//! no file to lock, so by pid, pid namespace and start time; with 4 MPMC producers and 2
//! MPMC consumers, each dead MPMC endpoint has 5 survivors that may race to recover
//! it), and forks eight endpoint processes
//! into eight *slots*: 4 MPMC producers, 2 MPMC consumers, 1 SPSC producer and 1 SPSC
//! consumer. Then, every 2–5 ms (random), once both rings have delivered a message
//! since the previous kill (so kills land while messages flow; 2 s without one is a
//! failure), it SIGKILLs the process of a random slot, reaps it, and forks a new
//! *incarnation* of the same role into the slot. Victims are drawn among the processes
//! that have attached, so one stuck in `open` lives to report it; but one kill in 32
//! is followed, 0–1.5 ms later, by a kill of the replacement in its start-up (`open`
//! included). 500 kills by default (a few seconds); the long run is 10,000.
//!
//! At the end, the controller stops the producers (a shared flag: each finishes its
//! message and detaches), waits for them, tells the consumers, which drain the rings
//! until `Disconnected`, waits for them, removes both segments and checks the
//! deliveries. A deadline (`common::Procs`) kills every process left if the test
//! itself ever hangs.
//!
//! Environment:
//! - `SHMLANE_CRASH_KILLS`: the number of kills (default 500; the long run: 10000).
//! - `SHMLANE_CRASH_BACKING=posix` (or `sysv`): runs only that backing's test (the
//!   other one prints that it skipped). The long run of both, one after the other:
//!   `SHMLANE_CRASH_KILLS=10000 cargo test --release --test kill_at_any_instruction -- --nocapture`.
//! - `SHMLANE_CRASH_SEED`: replays a run's choices (the seed is printed).
//! - `SHMLANE_CRASH_RINGS=mpmc` (or `spsc`): kills only that ring's endpoints.
//! - `SHMLANE_CRASH_GENTLE=1`: a check of the harness itself, on a library without
//!   crash recovery: victims are asked to detach and exit between two messages
//!   instead of being killed, so every message sent must be delivered.
//!
//! # What the processes share
//!
//! - A `MAP_SHARED | MAP_ANONYMOUS` mapping made before the first fork (the [`Board`]):
//!   the stop flags, counters, the first failure's text, and one [`Incarnation`] entry
//!   per process ever started: its role; when it was forked and when it had attached;
//!   for a producer, how many of its sends have returned `Ok` (stored after each); for
//!   a consumer, the tag of the last message `recv` returned (stored at once). The
//!   controller reads a killed process's entry after reaping it.
//! - One log file, opened `O_APPEND` and unlinked before the first fork: a consumer
//!   appends one 16-byte record per message it received (its incarnation, the
//!   producer's incarnation, the sequence number, the length) with a single
//!   `write(2)`. Records are 16-byte aligned, so none straddles a page, and a SIGKILL
//!   leaves a record whole or absent. A consumer killed between `recv` and its record
//!   has its last message counted from its board entry.
//!
//! # Messages
//!
//! Each producer incarnation has an id from the controller (`u32`, never reused) and
//! numbers its messages 0, 1, 2, ...; a message starts with `id << 32 | seq` and a
//! checksum of its body (`common::fill_message`). Sizes are random (replayable from the
//! seed and the id), mostly small; about 1 in 100 is larger than the ring, so it
//! travels in fragments.
//!
//! Producers send with `send_timeout(1 s)`, consumers receive one message at a time
//! with `recv_timeout(1 s)`. A `Disconnected` before the end (every peer on the other
//! side was killed and no replacement has attached yet) is retried every millisecond,
//! the same message again; it is a failure once it has lasted 1 s while a process on
//! the other side had been attached for 1 s too (a replacement slow to start, on a
//! loaded host, is not the library's doing). `Truncated` is counted
//! (a producer died in the middle of a message).
//!
//! # Checks
//!
//! Failures found by a process are recorded on the board; the controller checks it
//! (and, with `waitid(WNOWAIT)`, that no endpoint ended on its own) before every kill,
//! and stops the run at the first one, with every slot's state and both rings'
//! `inspect` in the panic message.
//!
//! - No torn or corrupt message: length, tag and checksum at the consumer.
//! - No surviving endpoint blocked more than 1 s: a `Timeout` from `send_timeout` or
//!   `recv_timeout`, a `Disconnected` for more than 1 s before the end (with a peer
//!   attached for as long), or `Busy` for
//!   more than 1 s from `open` (the slots of dead endpoints must be reclaimed).
//! - No message delivered twice, across all consumers and incarnations.
//! - Each consumer incarnation sees each producer incarnation's messages in order.
//! - No message delivered that was never sent (a sequence number beyond the
//!   producer's count), and none whose `send` did not return `Ok`, from a producer
//!   that was not killed.
//! - Every message whose `send` returned `Ok` delivered, except those lost with a
//!   killed consumer: delivery is at most once, and a consumer killed while it holds
//!   a message (inside `recv`) loses that one. So each ring may miss at most as many
//!   messages as it had consumer kills. The message a killed producer was sending may
//!   or may not arrive.
//! - `Truncated` at most once per kill on that ring (plus once per `Disconnected`
//!   seen by a producer, which abandons a message in fragments).
//! - Both segments removed at the end, and no name of this run left in /dev/shm; a
//!   SysV segment gone for good (its id no longer names a segment of this process):
//!   every process that attached it is gone. Each name or key is also removed when
//!   the test fails.
//!
//! The figures are printed with `eprintln!` (`--no-capture` to see them): kills per
//! role, incarnations, messages sent and delivered per ring and per second, losses
//! (how many in fragments, and the first ones), a killed producer's last message
//! delivered or not, truncations, `Disconnected` runs, the longest send, receive and
//! `open`, waits over 50 ms, fork-to-attached latency, the processes not attached
//! 300 ms after their fork (with their kernel state), and the host's load average:
//! the 1 s limits assume a host not loaded by much else.

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use common::backings::{sysv_key, Kind, SysVGuard};
use common::{check_message, fill_message, seg_name, Outcome, Procs, Rng, SegGuard, MSG_HEADER};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use shmlane::{mpmc, spsc, Error, RecvTimeoutError, RingOptions, SendTimeoutError};
use shmlane_support::clock::now_ns;
use shmlane_support::mem::SharedMap;

/// Bytes of each ring's data region.
const RING_BYTES: usize = 64 << 10;
/// Endpoints the MPMC ring admits at once (6 live ones, and room for dead ones not
/// reclaimed yet).
const MAX_ENDPOINTS: usize = 16;
/// Longest a surviving endpoint may wait for anything.
const STALL: Duration = Duration::from_secs(1);
/// Kills of the default run.
const DEFAULT_KILLS: usize = 500;
/// Bytes kept of the first failure's text.
const FAILURE_TEXT: usize = 2048;
/// Longest the controller waits for a message on each ring between two kills.
const FLOW_WAIT: Duration = Duration::from_secs(2);
/// One kill in this many is followed by a kill of the replacement in its start-up.
const EARLY_KILL: u64 = 32;
/// A process not attached this long after its fork has its state noted.
const SLOW_START: Duration = Duration::from_millis(300);
/// A wait counted as slow in the figures.
const SLOW: Duration = Duration::from_millis(50);
/// Bytes of one log record.
const RECORD: usize = 16;

// ---------------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ring {
    Mpmc,
    Spsc,
}

impl Ring {
    const ALL: [Ring; 2] = [Ring::Mpmc, Ring::Spsc];

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    MpmcProducer,
    MpmcConsumer,
    SpscProducer,
    SpscConsumer,
}

impl Role {
    const ALL: [Role; 4] = [
        Role::MpmcProducer,
        Role::MpmcConsumer,
        Role::SpscProducer,
        Role::SpscConsumer,
    ];

    /// The roles of the eight slots.
    const SLOTS: [Role; 8] = [
        Role::MpmcProducer,
        Role::MpmcProducer,
        Role::MpmcProducer,
        Role::MpmcProducer,
        Role::SpscProducer,
        Role::MpmcConsumer,
        Role::MpmcConsumer,
        Role::SpscConsumer,
    ];

    fn ring(self) -> Ring {
        match self {
            Role::MpmcProducer | Role::MpmcConsumer => Ring::Mpmc,
            Role::SpscProducer | Role::SpscConsumer => Ring::Spsc,
        }
    }

    fn is_producer(self) -> bool {
        matches!(self, Role::MpmcProducer | Role::SpscProducer)
    }

    /// Its code on the board; 0 is "no incarnation".
    fn code(self) -> u32 {
        self as u32 + 1
    }

    fn from_code(code: u32) -> Option<Role> {
        Role::ALL.get((code as usize).checked_sub(1)?).copied()
    }

    fn name(self) -> &'static str {
        match self {
            Role::MpmcProducer => "MPMC producer",
            Role::MpmcConsumer => "MPMC consumer",
            Role::SpscProducer => "SPSC producer",
            Role::SpscConsumer => "SPSC consumer",
        }
    }
}

// ---------------------------------------------------------------------------------
// The board: memory shared by every process of the run
// ---------------------------------------------------------------------------------

/// Counters of one ring, written by its endpoints.
#[repr(C)]
struct RingStats {
    /// Messages received (and logged).
    delivered: AtomicU64,
    /// `Truncated` results at consumers.
    truncated: AtomicU64,
    /// Runs of `Disconnected` at a producer before the stop (retried).
    producer_disconnects: AtomicU64,
    /// Runs of `Disconnected` at a consumer before the stop (retried).
    consumer_disconnects: AtomicU64,
    /// Opens that got `Busy` at least once (retried for up to `STALL`).
    busy_opens: AtomicU64,
    /// Longest `send_timeout`, in nanoseconds.
    max_send_ns: AtomicU64,
    /// Longest `recv_timeout` before the stop, in nanoseconds.
    max_recv_ns: AtomicU64,
    /// Sends that took longer than `SLOW`.
    slow_sends: AtomicU64,
    /// Receives before the stop that took longer than `SLOW`.
    slow_recvs: AtomicU64,
    /// Longest `open`, in nanoseconds (the retries on `Busy` included).
    max_open_ns: AtomicU64,
}

/// The fixed part of the shared mapping. All zero at first, which is a valid value of
/// every field.
#[repr(C)]
struct Board {
    /// Set by the controller: producers stop after the message they are sending.
    stop: AtomicU32,
    /// Set by the controller once every producer has exited: `Disconnected` is final.
    producers_gone: AtomicU32,
    /// Failures recorded; the first one writes its text.
    failures: AtomicU32,
    /// Length of the first failure's text, once written.
    failure_len: AtomicU32,
    failure_text: [AtomicU8; FAILURE_TEXT],
    rings: [RingStats; 2],
    /// The incarnation id of each slot's current process (controller).
    current: [AtomicU32; 8],
}

/// One process ever started. Incarnation ids start at 1 (0 is never used).
#[repr(C)]
struct Incarnation {
    /// `Role::code`, written by the controller before the fork.
    role: AtomicU32,
    /// Set by the controller in the gentle mode: detach and exit (between messages).
    quit: AtomicU32,
    /// CLOCK_MONOTONIC at the fork, in nanoseconds (controller).
    spawned_ns: AtomicU64,
    /// CLOCK_MONOTONIC once attached, in nanoseconds; 0 until then.
    attached_ns: AtomicU64,
    /// Producer: how many sends have returned `Ok` (messages `0..done` are sent).
    /// Consumer: how many messages it has received.
    done: AtomicU64,
    /// Consumer: the tag of the last message it received, stored as soon as `recv`
    /// returns it, before its checks and its log record. So the controller knows
    /// what a consumer killed between the two had received.
    last: AtomicU64,
    /// CLOCK_MONOTONIC when it called `open`, in nanoseconds; 0 until then.
    opening_ns: AtomicU64,
}

/// The shared mapping: the board, then `incarnations` entries.
struct Shared {
    map: SharedMap,
    incarnations: usize,
}

impl Shared {
    fn new(incarnations: usize) -> Shared {
        let len = std::mem::size_of::<Board>() + incarnations * std::mem::size_of::<Incarnation>();
        let map = SharedMap::new(len).unwrap_or_else(|e| panic!("{e}"));
        Shared { map, incarnations }
    }

    fn board(&self) -> &Board {
        // SAFETY: the mapping is page-aligned, at least `size_of::<Board>()` long and
        // lives as long as `self`; it starts zeroed, a valid `Board`; every field is
        // an atomic (or padding), so shared access from several processes is sound.
        unsafe { &*self.map.ptr().cast::<Board>() }
    }

    fn ring(&self, ring: Ring) -> &RingStats {
        &self.board().rings[ring.index()]
    }

    /// Entry `id`, if there is one.
    fn get(&self, id: u32) -> Option<&Incarnation> {
        let i = id as usize;
        if i == 0 || i >= self.incarnations {
            return None;
        }
        // SAFETY: `i < incarnations`, so the entry is inside the mapping; the offset
        // of the entries (`size_of::<Board>()`) is a multiple of 8, their alignment;
        // zeroed memory is a valid `Incarnation` and every field is atomic.
        Some(unsafe {
            &*self
                .map
                .ptr()
                .add(std::mem::size_of::<Board>())
                .cast::<Incarnation>()
                .add(i)
        })
    }

    fn inc(&self, id: u32) -> &Incarnation {
        self.get(id)
            .unwrap_or_else(|| panic!("incarnation {id} out of range"))
    }

    /// Records a failure; the first one keeps its text.
    fn fail(&self, text: &str) {
        let b = self.board();
        if b.failures.fetch_add(1, Ordering::AcqRel) == 0 {
            let bytes = &text.as_bytes()[..text.len().min(FAILURE_TEXT)];
            for (slot, &byte) in b.failure_text.iter().zip(bytes) {
                slot.store(byte, Ordering::Relaxed);
            }
            // Release: pairs with the Acquire load in `failure`, so the reader sees
            // the text bytes.
            b.failure_len.store(bytes.len() as u32, Ordering::Release);
        }
    }

    /// The first failure, if any (its text, once written; the writer may have been
    /// killed before it finished).
    fn failure(&self) -> Option<String> {
        let b = self.board();
        let n = b.failures.load(Ordering::Acquire);
        if n == 0 {
            return None;
        }
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            let len = b.failure_len.load(Ordering::Acquire) as usize;
            if len > 0 {
                let bytes: Vec<u8> = b.failure_text[..len]
                    .iter()
                    .map(|x| x.load(Ordering::Relaxed))
                    .collect();
                let more = if n > 1 {
                    format!(" (and {} more failures)", n - 1)
                } else {
                    String::new()
                };
                return Some(format!("{}{more}", String::from_utf8_lossy(&bytes)));
            }
            if Instant::now() >= deadline {
                return Some(format!(
                    "{n} failure(s); the first one's text was not written (its process was killed)"
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The host's load averages (1, 5, 15 minutes): a loaded host starves the endpoints.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("({e})"))
}

// ---------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------

/// Where a ring lives: a POSIX name, or a SysV key.
#[derive(Clone, Debug)]
enum Place {
    Posix(String),
    SysV(i32),
}

impl Place {
    /// The controller's ring of `ring`'s kind on `backing`; the key or name is unique
    /// to this process.
    fn new(backing: Kind, ring: Ring) -> Place {
        let test = match ring {
            Ring::Mpmc => "crash-mpmc",
            Ring::Spsc => "crash-spsc",
        };
        match backing {
            Kind::Posix => Place::Posix(seg_name(test)),
            Kind::SysV => Place::SysV(sysv_key(test)),
            Kind::Memfd => panic!("the crash-injection test runs on POSIX and SysV rings"),
        }
    }

    /// Creates the ring, without an endpoint.
    fn create(&self, ring: Ring, opts: &RingOptions) -> Result<(), Error> {
        match (ring, self) {
            (Ring::Mpmc, Place::Posix(name)) => mpmc::create_ring(name, opts),
            (Ring::Mpmc, Place::SysV(key)) => mpmc::create_ring_sysv(*key, opts),
            (Ring::Spsc, Place::Posix(name)) => spsc::create_ring(name, opts),
            (Ring::Spsc, Place::SysV(key)) => spsc::create_ring_sysv(*key, opts),
        }
    }

    /// Removes the name or the key.
    fn remove(&self) -> Result<(), Error> {
        match self {
            Place::Posix(name) => shmlane::remove(name),
            Place::SysV(key) => shmlane::remove_sysv(*key),
        }
    }

    /// Its name for `shmlane::inspect`.
    fn inspect_name(&self) -> String {
        match self {
            Place::Posix(name) => name.clone(),
            Place::SysV(key) => format!("sysv:{:#010x}", *key as u32),
        }
    }
}

/// The id of the SysV segment of `key` (`shmget` without `IPC_CREAT`).
fn sysv_id(key: i32) -> i32 {
    // SAFETY: shmget only looks the key up (size 0, no IPC_CREAT).
    let id = unsafe { libc::shmget(key, 0, 0) };
    assert!(
        id >= 0,
        "shmget of key {key:#x}: {}",
        std::io::Error::last_os_error()
    );
    id
}

/// If SysV segment `id`, made by this process, still exists: its attachment count.
/// (`IPC_STAT` of a removed and destroyed segment fails; one removed while attached
/// lives on, keyless, until the last detach.)
fn sysv_left(id: i32) -> Option<u64> {
    // SAFETY: shmid_ds is plain data; all-zero is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes into `ds`, which lives across the call.
    let r = unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) };
    // An id reused since by a segment of another process is not ours.
    (r == 0 && ds.shm_cpid as u32 == std::process::id()).then_some(ds.shm_nattch as u64)
}

enum Tx {
    Mpmc(mpmc::Producer),
    Spsc(spsc::Producer),
}

impl Tx {
    fn open(ring: Ring, place: &Place) -> Result<Tx, Error> {
        Ok(match (ring, place) {
            (Ring::Mpmc, Place::Posix(name)) => Tx::Mpmc(mpmc::Producer::open(name)?),
            (Ring::Mpmc, Place::SysV(key)) => Tx::Mpmc(mpmc::Producer::open_sysv(*key)?),
            (Ring::Spsc, Place::Posix(name)) => Tx::Spsc(spsc::Producer::open(name)?),
            (Ring::Spsc, Place::SysV(key)) => Tx::Spsc(spsc::Producer::open_sysv(*key)?),
        })
    }

    fn max_record_payload(&self) -> usize {
        match self {
            Tx::Mpmc(p) => p.max_record_payload(),
            Tx::Spsc(p) => p.max_record_payload(),
        }
    }

    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), SendTimeoutError> {
        match self {
            Tx::Mpmc(p) => p.send_timeout(msg, timeout),
            Tx::Spsc(p) => p.send_timeout(msg, timeout),
        }
    }
}

enum Rx {
    Mpmc(mpmc::Consumer),
    Spsc(spsc::Consumer),
}

impl Rx {
    fn open(ring: Ring, place: &Place) -> Result<Rx, Error> {
        Ok(match (ring, place) {
            (Ring::Mpmc, Place::Posix(name)) => Rx::Mpmc(mpmc::Consumer::open(name)?),
            (Ring::Mpmc, Place::SysV(key)) => Rx::Mpmc(mpmc::Consumer::open_sysv(*key)?),
            (Ring::Spsc, Place::Posix(name)) => Rx::Spsc(spsc::Consumer::open(name)?),
            (Ring::Spsc, Place::SysV(key)) => Rx::Spsc(spsc::Consumer::open_sysv(*key)?),
        })
    }

    fn recv_timeout(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        match self {
            Rx::Mpmc(c) => c.recv_timeout(buf, timeout),
            Rx::Spsc(c) => c.recv_timeout(buf, timeout),
        }
    }
}

/// Opens an endpoint, retrying `Busy` (no free slot: a dead endpoint's slot not
/// reclaimed yet) for up to `STALL`.
fn open_retrying<T>(
    stats: &RingStats,
    mut open: impl FnMut() -> Result<T, Error>,
) -> Result<T, String> {
    let start = Instant::now();
    let mut busy = false;
    loop {
        match open() {
            Ok(x) => {
                stats
                    .max_open_ns
                    .fetch_max(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
                return Ok(x);
            }
            Err(Error::Busy { .. }) if start.elapsed() < STALL => {
                if !busy {
                    busy = true;
                    stats.busy_opens.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(format!("open (after {:.0?}): {e}", start.elapsed())),
        }
    }
}

/// Whether an endpoint that has seen `Disconnected` since `since` is stuck: that is
/// the case once it has lasted `STALL` while a process on the other side (producers
/// if `want_producers`) of `ring` had been attached for `STALL` too. (A replacement
/// that has not attached yet, on a loaded host, is the controller's to notice.)
/// Returns which process.
fn stuck_disconnected(
    sh: &Shared,
    ring: Ring,
    want_producers: bool,
    since: Instant,
) -> Option<String> {
    if since.elapsed() <= STALL {
        return None;
    }
    let now = now_ns();
    Role::SLOTS
        .iter()
        .zip(&sh.board().current)
        .filter(|(r, _)| r.ring() == ring && r.is_producer() == want_producers)
        .find_map(|(r, id)| {
            let id = id.load(Ordering::Acquire);
            let at = sh.get(id)?.attached_ns.load(Ordering::Acquire);
            let attached_for = Duration::from_nanos(now.saturating_sub(at));
            (at != 0 && attached_for > STALL).then(|| {
                format!(
                    "{} #{id} has been attached for {attached_for:.0?}",
                    r.name()
                )
            })
        })
}

/// A message length: mostly small, some up to a few KiB, about 1 in 100 larger than
/// the ring (in fragments). At least `MSG_HEADER`, for the tag and the checksum.
fn message_len(rng: &mut Rng) -> usize {
    let len = match rng.below(100) {
        0 => rng.range(RING_BYTES + 1, 2 * RING_BYTES),
        1..=4 => rng.range(0, 8 << 10),
        5..=24 => rng.range(0, 1024),
        _ => rng.range(0, 100),
    };
    len.max(MSG_HEADER)
}

/// A message's tag: its producer incarnation and sequence number.
fn tag(id: u32, seq: u32) -> u64 {
    u64::from(id) << 32 | u64::from(seq)
}

/// A producer incarnation: sends until the stop flag, counting the sends that
/// returned `Ok` on the board after each.
fn producer(sh: &Shared, ring: Ring, place: &Place, id: u32, seed: u64) -> Result<String, String> {
    let board = sh.board();
    let stats = sh.ring(ring);
    let me = sh.inc(id);
    // Acquire: pairs with the controller's Release store of the flag.
    let go = || board.stop.load(Ordering::Acquire) == 0 && me.quit.load(Ordering::Acquire) == 0;
    if !go() {
        return Ok("stopped before attaching".into());
    }
    me.opening_ns.store(now_ns(), Ordering::Release);
    let mut tx = open_retrying(stats, || Tx::open(ring, place))?;
    me.attached_ns.store(now_ns(), Ordering::Release);
    let mut rng = Rng::new(seed ^ u64::from(id));
    let mut buf = Vec::new();
    let mut seq: u32 = 0;
    'messages: while go() {
        let len = message_len(&mut rng);
        buf.resize(len, 0);
        fill_message(&mut buf, tag(id, seq));
        let mut disconnected_since: Option<Instant> = None;
        loop {
            let t0 = Instant::now();
            let r = tx.send_timeout(&buf, STALL);
            let took = t0.elapsed();
            stats
                .max_send_ns
                .fetch_max(took.as_nanos() as u64, Ordering::Relaxed);
            if took > SLOW {
                stats.slow_sends.fetch_add(1, Ordering::Relaxed);
            }
            match r {
                Ok(()) => break,
                Err(SendTimeoutError::Disconnected) => {
                    let since = *disconnected_since.get_or_insert_with(|| {
                        if board.stop.load(Ordering::Acquire) == 0 {
                            stats.producer_disconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        // From the first Disconnected: the call may have waited before.
                        Instant::now()
                    });
                    if !go() {
                        break 'messages;
                    }
                    if let Some(peer) = stuck_disconnected(sh, ring, false, since) {
                        return Err(format!(
                            "message {seq} ({len} bytes): Disconnected for {:.0?}, though \
                             {peer}",
                            since.elapsed()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(SendTimeoutError::Timeout) => {
                    return Err(format!(
                        "blocked more than {STALL:?} in send_timeout of message {seq} ({len} \
                         bytes)"
                    ))
                }
                Err(e) => return Err(format!("send_timeout of message {seq} ({len} bytes): {e}")),
            }
        }
        seq += 1;
        // Release: the controller reads it after reaping us (or after our exit).
        me.done.store(u64::from(seq), Ordering::Release);
    }
    drop(tx);
    Ok(format!("{seq} messages"))
}

/// A consumer incarnation: receives one message at a time, checks it, and logs it,
/// until `Disconnected` once the producers are gone.
fn consumer(sh: &Shared, ring: Ring, place: &Place, id: u32, log: &File) -> Result<String, String> {
    let board = sh.board();
    let stats = sh.ring(ring);
    let me = sh.inc(id);
    let producer_role = match ring {
        Ring::Mpmc => Role::MpmcProducer,
        Ring::Spsc => Role::SpscProducer,
    };
    me.opening_ns.store(now_ns(), Ordering::Release);
    let mut rx = open_retrying(stats, || Rx::open(ring, place))?;
    me.attached_ns.store(now_ns(), Ordering::Release);
    let mut buf = Vec::new();
    let mut received = 0u64;
    let mut disconnected_since: Option<Instant> = None;
    while me.quit.load(Ordering::Acquire) == 0 {
        let t0 = Instant::now();
        let r = rx.recv_timeout(&mut buf, STALL);
        let took = t0.elapsed();
        // While the producers run (the drain's wait for Disconnected is apart).
        if board.stop.load(Ordering::Acquire) == 0 {
            stats
                .max_recv_ns
                .fetch_max(took.as_nanos() as u64, Ordering::Relaxed);
            if took > SLOW {
                stats.slow_recvs.fetch_add(1, Ordering::Relaxed);
            }
        }
        match r {
            Ok(len) => {
                disconnected_since = None;
                if len != buf.len() {
                    return Err(format!(
                        "recv_timeout returned {len} with {} bytes",
                        buf.len()
                    ));
                }
                if len < MSG_HEADER {
                    return Err(format!(
                        "corrupt message: {len} bytes ({buf:02x?}), every message has at least \
                         {MSG_HEADER}"
                    ));
                }
                let t = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
                // At once, before the checks (a large message's checksum takes a while):
                // a kill from here on does not count as a loss. The controller checks the
                // tag again.
                me.last.store(t, Ordering::Release);
                check_message(&buf, t, len).map_err(|e| format!("torn or corrupt message: {e}"))?;
                let (from, seq) = ((t >> 32) as u32, t as u32);
                let role = sh.get(from).map(|p| p.role.load(Ordering::Acquire));
                if role != Some(producer_role.code()) {
                    return Err(format!(
                        "message {seq} of incarnation {from}, which is not a {} (role code \
                         {role:?})",
                        producer_role.name()
                    ));
                }
                let mut rec = [0u8; RECORD];
                rec[..4].copy_from_slice(&id.to_le_bytes());
                rec[4..8].copy_from_slice(&from.to_le_bytes());
                rec[8..12].copy_from_slice(&seq.to_le_bytes());
                rec[12..].copy_from_slice(&(len as u32).to_le_bytes());
                // One write(2) of 16 bytes in an O_APPEND file: whole or absent.
                (&*log)
                    .write_all(&rec)
                    .map_err(|e| format!("write the log: {e}"))?;
                received += 1;
                me.done.store(received, Ordering::Release);
                stats.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(RecvTimeoutError::Truncated) => {
                stats.truncated.fetch_add(1, Ordering::Relaxed);
            }
            Err(RecvTimeoutError::Disconnected) => {
                if board.producers_gone.load(Ordering::Acquire) != 0 {
                    break;
                }
                let since = *disconnected_since.get_or_insert_with(|| {
                    if board.stop.load(Ordering::Acquire) == 0 {
                        stats.consumer_disconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    // From the first Disconnected: the call may have waited before.
                    Instant::now()
                });
                if board.stop.load(Ordering::Acquire) == 0 {
                    if let Some(peer) = stuck_disconnected(sh, ring, true, since) {
                        return Err(format!(
                            "Disconnected for {:.0?} after {received} messages, though {peer}",
                            since.elapsed()
                        ));
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(RecvTimeoutError::Timeout) => {
                let when = if board.stop.load(Ordering::Acquire) != 0 {
                    "while draining (neither a message nor Disconnected)"
                } else {
                    "while the producers run"
                };
                return Err(format!(
                    "blocked more than {STALL:?} in recv_timeout {when}, after {received} \
                     messages"
                ));
            }
            Err(e) => return Err(format!("recv_timeout after {received} messages: {e}")),
        }
    }
    drop(rx);
    Ok(format!("{received} messages"))
}

/// Runs a role in a child: records its failure (error or panic) on the board.
fn guarded(
    sh: &Shared,
    what: &str,
    body: impl FnOnce() -> Result<String, String>,
) -> Result<String, String> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(e)) => {
            let e = format!("{what}: {e}");
            sh.fail(&e);
            Err(e)
        }
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".into());
            sh.fail(&format!("{what} panicked: {text}"));
            resume_unwind(payload)
        }
    }
}

// ---------------------------------------------------------------------------------
// The controller
// ---------------------------------------------------------------------------------

/// A number from the environment, decimal or `0x` hex (as the seed is printed); a
/// value that is not one fails the test rather than being ignored (a replay that is
/// not one would mislead).
fn env_u64(var: &str) -> Option<u64> {
    let v = std::env::var(var).ok().filter(|v| !v.is_empty())?;
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => v.replace('_', "").parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{var}={v}: not a number ({e})")))
}

/// Raises the soft limit of open files to `need` if it is lower (every child's report
/// pipe stays open in `Procs` until the end).
fn raise_fd_limit(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for the kernel to fill.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert_eq!(r, 0, "getrlimit: {}", std::io::Error::last_os_error());
    if lim.rlim_cur >= need {
        return;
    }
    assert!(
        lim.rlim_max >= need,
        "this run needs {need} open files (one per process started), the hard limit is {}",
        lim.rlim_max
    );
    lim.rlim_cur = need;
    // SAFETY: `lim` is a valid rlimit.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    assert_eq!(r, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

/// One slot's current process.
#[derive(Clone, Copy, Debug)]
struct Slot {
    role: Role,
    id: u32,
    child: usize,
}

struct Controller<'a> {
    sh: &'a Shared,
    log: &'a File,
    backing: Kind,
    places: [Place; 2],
    seed: u64,
    procs: Procs,
    slots: Vec<Slot>,
    next_id: u32,
    /// Per incarnation id: whether the controller killed it.
    killed: Vec<bool>,
    kills: [u64; 4],
    /// Kills of a process that had not attached yet.
    kills_before_attach: u64,
    /// Kills of a replacement 0-1.5 ms after its fork.
    early_kills: u64,
    /// Processes not attached `SLOW_START` after their fork: where they were then.
    slow_starts: Vec<String>,
    /// Per incarnation id: whether it is in `slow_starts`.
    seen_slow: Vec<bool>,
    start: Instant,
}

impl Controller<'_> {
    fn spawn(&mut self, role: Role) -> Slot {
        let id = self.next_id;
        self.next_id += 1;
        let inc = self.sh.inc(id);
        inc.role.store(role.code(), Ordering::Release);
        inc.spawned_ns.store(now_ns(), Ordering::Release);
        self.killed.push(false);
        self.seen_slow.push(false);
        let ring = role.ring();
        let (sh, log, seed) = (self.sh, self.log, self.seed);
        let place = self.places[ring.index()].clone();
        let what = format!("{} #{id}", role.name());
        let label = what.clone();
        let child = self.procs.spawn(&label, move || {
            guarded(sh, &what, || {
                if role.is_producer() {
                    producer(sh, ring, &place, id, seed)
                } else {
                    consumer(sh, ring, &place, id, log)
                }
            })
        });
        Slot { role, id, child }
    }

    /// Panics with the run's state and `what`.
    fn fail(&mut self, what: &str) -> ! {
        let failure = self
            .sh
            .failure()
            .unwrap_or_else(|| "(none recorded)".into());
        // Where each slot's process was, and the rings' state (before the kills).
        let now = now_ns();
        let slots: String = self
            .slots
            .iter()
            .map(|s| {
                let inc = self.sh.inc(s.id);
                let age = Duration::from_nanos(
                    now.saturating_sub(inc.spawned_ns.load(Ordering::Acquire)),
                );
                let attached = inc.attached_ns.load(Ordering::Acquire);
                let state = if attached == 0 {
                    format!("forked {age:.1?} ago, not attached")
                } else {
                    format!(
                        "forked {age:.1?} ago, attached {:.1?} ago",
                        Duration::from_nanos(now.saturating_sub(attached))
                    )
                };
                format!(
                    "\n  {} #{} pid {}: {state}, {} messages",
                    s.role.name(),
                    s.id,
                    self.procs.pid(s.child),
                    inc.done.load(Ordering::Acquire)
                )
            })
            .collect();
        let rings: String = self
            .places
            .iter()
            .map(|p| {
                let n = p.inspect_name();
                match shmlane::inspect::inspect(&n) {
                    Ok(info) => format!("\n{info:?}"),
                    Err(e) => format!("\ninspect {n}: {e}"),
                }
            })
            .collect();
        self.procs.kill_all();
        // The processes of the slots that ended on their own, with their reports.
        let ended: String = self
            .slots
            .clone()
            .iter()
            .map(|s| self.procs.wait(s.child))
            .filter(|r| matches!(r.outcome, Outcome::Exited(_)))
            .map(|r| format!("\n  {r}"))
            .collect();
        panic!(
            "crash injection on {} rings failed after {:.2?}, {} kills ({}), seed {:#x}, host \
             load average \
             {}: {what}\nfirst \
             failure recorded by an endpoint: {failure}\nendpoints that ended on their \
             own:{ended}\nslots:{slots}\n{}\nslow starts:{}\nrings:{rings}",
            self.backing.label(),
            self.start.elapsed(),
            self.kills.iter().sum::<u64>(),
            self.kills_text(),
            self.seed,
            loadavg(),
            self.counters_text(),
            self.slow_starts_text(),
        );
    }

    /// Notes, once, each process not attached `SLOW_START` after its fork: when it
    /// called `open`, and what the kernel says it is doing (wchan, system call, stack).
    fn watch_starts(&mut self) {
        let now = now_ns();
        for s in self.slots.clone() {
            let inc = self.sh.inc(s.id);
            let forked = inc.spawned_ns.load(Ordering::Acquire);
            if self.seen_slow[s.id as usize]
                || inc.attached_ns.load(Ordering::Acquire) != 0
                || now.saturating_sub(forked) < SLOW_START.as_nanos() as u64
            {
                continue;
            }
            self.seen_slow[s.id as usize] = true;
            let opening = inc.opening_ns.load(Ordering::Acquire);
            let open = if opening == 0 {
                "open not called yet".to_string()
            } else {
                format!(
                    "in open for {:.1?}",
                    Duration::from_nanos(now.saturating_sub(opening))
                )
            };
            let pid = self.procs.pid(s.child);
            let proc_file = |f: &str| {
                std::fs::read_to_string(format!("/proc/{pid}/{f}"))
                    .map(|t| t.trim().replace('\n', " | "))
                    .unwrap_or_else(|e| format!("({e})"))
            };
            self.slow_starts.push(format!(
                "{} #{} pid {pid}: not attached {:.1?} after its fork, {open}; wchan {}; \
                 syscall {}; stack {}",
                s.role.name(),
                s.id,
                Duration::from_nanos(now.saturating_sub(forked)),
                proc_file("wchan"),
                proc_file("syscall"),
                proc_file("stack"),
            ));
        }
    }

    fn slow_starts_text(&self) -> String {
        let mut t: String = self
            .slow_starts
            .iter()
            .take(5)
            .map(|x| format!("\n  {x}"))
            .collect();
        if self.slow_starts.len() > 5 {
            t += &format!("\n  ... {} in all", self.slow_starts.len());
        }
        t
    }

    /// Fails if an endpoint recorded a failure or ended on its own.
    fn check(&mut self) {
        if self.sh.board().failures.load(Ordering::Acquire) != 0 {
            // Let the failing process exit, for its report.
            std::thread::sleep(Duration::from_millis(20));
            self.fail("an endpoint failed");
        }
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::All, flags) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(status) => {
                let pid = status.pid();
                let slot = self
                    .slots
                    .iter()
                    .copied()
                    .find(|s| Some(self.procs.pid(s.child)) == pid);
                let what = match slot {
                    Some(s) => {
                        let r = self.procs.wait(s.child);
                        format!("an endpoint ended on its own: {r}")
                    }
                    None => format!("an unknown child ended: {status:?}"),
                };
                self.fail(&what);
            }
            Err(e) => self.fail(&format!("waitid: {e}")),
        }
    }

    fn kills_text(&self) -> String {
        Role::ALL
            .iter()
            .map(|r| format!("{} {}", r.name(), self.kills[*r as usize]))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn counters_text(&self) -> String {
        Ring::ALL
            .iter()
            .map(|&ring| {
                let s = self.sh.ring(ring);
                format!(
                    "{ring:?}: delivered {}, truncated {}, Disconnected runs at producers {} / \
                     consumers {}, opens that met Busy {}, longest send {:.1?}, longest recv \
                     {:.1?}",
                    s.delivered.load(Ordering::Relaxed),
                    s.truncated.load(Ordering::Relaxed),
                    s.producer_disconnects.load(Ordering::Relaxed),
                    s.consumer_disconnects.load(Ordering::Relaxed),
                    s.busy_opens.load(Ordering::Relaxed),
                    Duration::from_nanos(s.max_send_ns.load(Ordering::Relaxed)),
                    Duration::from_nanos(s.max_recv_ns.load(Ordering::Relaxed)),
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn total_kills(&self) -> u64 {
        self.kills.iter().sum()
    }

    /// Whether the process of slot `i` has attached.
    fn attached(&self, i: usize) -> bool {
        self.sh
            .inc(self.slots[i].id)
            .attached_ns
            .load(Ordering::Acquire)
            != 0
    }

    /// Kills the process of slot `i` (or, gentle, asks it to quit) and starts a new
    /// incarnation in its place.
    fn replace(&mut self, i: usize, gentle: bool) {
        let victim = self.slots[i];
        if !self.attached(i) {
            self.kills_before_attach += 1;
        }
        if gentle {
            self.sh.inc(victim.id).quit.store(1, Ordering::Release);
            let r = self.procs.wait(victim.child);
            if !r.ok() {
                self.fail(&format!("an endpoint asked to quit failed: {r}"));
            }
        } else {
            let r = self.procs.kill(victim.child);
            if r.outcome != Outcome::Signaled(Signal::SIGKILL) {
                self.fail(&format!("an endpoint ended before it was killed: {r}"));
            }
            self.killed[victim.id as usize] = true;
        }
        self.kills[victim.role as usize] += 1;
        self.slots[i] = self.spawn(victim.role);
        self.sh.board().current[i].store(self.slots[i].id, Ordering::Release);
    }

    fn delivered(&self, ring: Ring) -> u64 {
        self.sh.ring(ring).delivered.load(Ordering::Relaxed)
    }
}

/// What the log says about one ring.
#[derive(Default, Debug)]
struct Tally {
    producers: u64,
    consumers: u64,
    producer_kills: u64,
    consumer_kills: u64,
    /// Sends that returned `Ok`.
    sent: u64,
    /// Records in the log.
    delivered: u64,
    /// Sent but never delivered (lost with a killed consumer).
    missing: u64,
    /// Of which messages in fragments.
    missing_fragmented: u64,
    /// (incarnation, seq, length) of the first ones.
    missing_examples: Vec<(u32, u32, usize)>,
    /// The message a killed producer was sending: delivered or not.
    in_flight_delivered: u64,
    in_flight_lost: u64,
}

/// On POSIX rings: endpoints tell each other's lives by OFD locks.
#[test]
fn crash_injection() {
    run(Kind::Posix);
}

/// On SysV rings: no file to lock, so endpoints tell each other's lives by pid, pid
/// namespace and start time; with 4 MPMC producers and 2 consumers alive, several
/// survivors find each dead MPMC endpoint at once and race to recover it.
#[test]
fn crash_injection_sysv() {
    run(Kind::SysV);
}

/// One run on rings of `backing` (unless `SHMLANE_CRASH_BACKING` names the other).
fn run(backing: Kind) {
    let only_backing = std::env::var("SHMLANE_CRASH_BACKING").unwrap_or_default();
    match only_backing.as_str() {
        "" => {}
        "posix" | "sysv" if only_backing != backing.label() => {
            eprintln!(
                "crash_injection on {}: skipped, SHMLANE_CRASH_BACKING={only_backing}",
                backing.label()
            );
            return;
        }
        "posix" | "sysv" => {}
        other => panic!("SHMLANE_CRASH_BACKING={other}: posix or sysv"),
    }
    let _heavy = common::heavy();
    let kills = env_u64("SHMLANE_CRASH_KILLS").unwrap_or(DEFAULT_KILLS as u64) as usize;
    let seed = env_u64("SHMLANE_CRASH_SEED").unwrap_or_else(now_ns);
    let slots = Role::SLOTS.len();
    // The harness's own check, on a library without crash recovery: victims are asked
    // to detach and exit instead of being killed, so nothing may be lost.
    let gentle = std::env::var("SHMLANE_CRASH_GENTLE").is_ok_and(|v| !v.is_empty() && v != "0");
    // The slots whose processes are killed: every one, or one ring's.
    let only = std::env::var("SHMLANE_CRASH_RINGS").unwrap_or_default();
    let targets: Vec<usize> = (0..slots)
        .filter(|&i| match only.as_str() {
            "mpmc" => Role::SLOTS[i].ring() == Ring::Mpmc,
            "spsc" => Role::SLOTS[i].ring() == Ring::Spsc,
            "" | "both" => true,
            other => panic!("SHMLANE_CRASH_RINGS={other}: mpmc, spsc or both"),
        })
        .collect();
    raise_fd_limit((kills + slots) as u64 + 256);

    let places = Ring::ALL.map(|ring| Place::new(backing, ring));
    // Each removes its name or key when dropped, also when the test fails (after the
    // controller, declared later, has killed every process left).
    let posix_guards: Vec<SegGuard> = places
        .iter()
        .filter_map(|p| match p {
            Place::Posix(name) => Some(SegGuard::new(name)),
            Place::SysV(_) => None,
        })
        .collect();
    let sysv_guards: Vec<SysVGuard> = places
        .iter()
        .filter_map(|p| match p {
            Place::SysV(key) => Some(SysVGuard::new(*key)),
            Place::Posix(_) => None,
        })
        .collect();
    places[0]
        .create(
            Ring::Mpmc,
            &RingOptions::new(RING_BYTES).max_endpoints(MAX_ENDPOINTS),
        )
        .expect("create the MPMC ring");
    places[1]
        .create(Ring::Spsc, &RingOptions::new(RING_BYTES))
        .expect("create the SPSC ring");
    // The SysV segments' ids, to check at the end that they are gone.
    let sysv_ids: Vec<(i32, i32)> = sysv_guards.iter().map(|g| (g.0, sysv_id(g.0))).collect();

    // The largest message that travels as one record, per ring.
    let max_record = Ring::ALL.map(|ring| {
        Tx::open(ring, &places[ring.index()])
            .unwrap_or_else(|e| panic!("open the {ring:?} ring: {e}"))
            .max_record_payload()
    });
    let sh = Shared::new(kills + slots + 1);
    let log_path = std::env::temp_dir().join(format!(
        "shmlane-crash-{}-{}.log",
        backing.label(),
        std::process::id()
    ));
    let log = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .truncate(false)
        .open(&log_path)
        .expect("create the delivery log");
    log.set_len(0).expect("empty the delivery log");
    std::fs::remove_file(&log_path).expect("unlink the delivery log");

    let deadline = Duration::from_secs(90) + Duration::from_millis(30) * kills as u32;
    let mut c = Controller {
        sh: &sh,
        log: &log,
        backing,
        places: places.clone(),
        seed,
        procs: Procs::new("crash_injection", deadline),
        slots: Vec::new(),
        next_id: 1,
        killed: vec![false],
        kills: [0; 4],
        kills_before_attach: 0,
        early_kills: 0,
        slow_starts: Vec::new(),
        seen_slow: vec![false],
        start: Instant::now(),
    };
    eprintln!(
        "crash_injection on {} rings: {kills} {}, seed {seed:#x} (SHMLANE_CRASH_SEED to \
         replay)",
        backing.label(),
        if gentle {
            "gentle kills (detach and exit)"
        } else {
            "kills"
        }
    );

    // Start: every slot, then wait until each process has attached.
    for (i, role) in Role::SLOTS.into_iter().enumerate() {
        let s = c.spawn(role);
        sh.board().current[i].store(s.id, Ordering::Release);
        c.slots.push(s);
    }
    let attach_deadline = Instant::now() + Duration::from_secs(10);
    while c
        .slots
        .iter()
        .any(|s| sh.inc(s.id).attached_ns.load(Ordering::Acquire) == 0)
    {
        c.check();
        if Instant::now() >= attach_deadline {
            c.fail("the first endpoints did not attach within 10 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // `Disconnected` before every process had attached (here, or after the probe that
    // read `max_record` detached) is not counted.
    for ring in Ring::ALL {
        sh.ring(ring)
            .producer_disconnects
            .store(0, Ordering::Relaxed);
        sh.ring(ring)
            .consumer_disconnects
            .store(0, Ordering::Relaxed);
    }

    // The kill loop. Before each kill, both rings must have delivered a message since
    // the previous one (so kills land while messages flow); the victim is a random
    // slot among the attached ones, so that a process stuck in `open` lives long
    // enough to report it. One time in `EARLY_KILL`, the replacement is killed again
    // 0-1.5 ms after its fork: in its start-up, `open` included.
    let mut rng = Rng::new(seed);
    let mut last = [c.delivered(Ring::Mpmc), c.delivered(Ring::Spsc)];
    let mut flow_wait = Duration::ZERO;
    let mut longest_flow_wait = Duration::ZERO;
    c.start = Instant::now();
    while c.total_kills() < kills as u64 {
        std::thread::sleep(Duration::from_micros(rng.range(2000, 5000) as u64));
        let waiting = Instant::now();
        loop {
            c.check();
            c.watch_starts();
            let now = [c.delivered(Ring::Mpmc), c.delivered(Ring::Spsc)];
            if now[0] > last[0] && now[1] > last[1] {
                last = now;
                break;
            }
            if waiting.elapsed() > FLOW_WAIT {
                c.fail(&format!(
                    "no message delivered for {FLOW_WAIT:?} on {}",
                    match (now[0] > last[0], now[1] > last[1]) {
                        (false, false) => "either ring",
                        (false, true) => "the MPMC ring",
                        _ => "the SPSC ring",
                    }
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let waited = waiting.elapsed();
        flow_wait += waited;
        longest_flow_wait = longest_flow_wait.max(waited);
        let ready: Vec<usize> = targets.iter().copied().filter(|&j| c.attached(j)).collect();
        let from = if ready.is_empty() { &targets } else { &ready };
        let i = from[rng.below(from.len() as u64) as usize];
        c.replace(i, gentle);
        if rng.below(EARLY_KILL) == 0 && c.total_kills() < kills as u64 {
            std::thread::sleep(Duration::from_micros(rng.range(0, 1500) as u64));
            c.replace(i, gentle);
            c.early_kills += 1;
        }
    }
    let kill_phase = c.start.elapsed();
    c.check();

    // The end: producers stop and exit, then the consumers drain and exit.
    sh.board().stop.store(1, Ordering::Release);
    let stop_start = Instant::now();
    for s in c.slots.clone() {
        if s.role.is_producer() {
            let r = c.procs.wait(s.child);
            if !r.ok() {
                c.fail(&format!("a producer did not stop cleanly: {r}"));
            }
        }
    }
    sh.board().producers_gone.store(1, Ordering::Release);
    for s in c.slots.clone() {
        if !s.role.is_producer() {
            let r = c.procs.wait(s.child);
            if !r.ok() {
                c.fail(&format!("a consumer did not drain cleanly: {r}"));
            }
        }
    }
    let drain = stop_start.elapsed();
    let wall = c.start.elapsed();
    if let Some(f) = sh.failure() {
        c.fail(&format!("an endpoint failed: {f}"));
    }

    // No segment left.
    for place in &places {
        place
            .remove()
            .unwrap_or_else(|e| panic!("remove {}: {e}", place.inspect_name()));
    }
    drop(posix_guards);
    drop(sysv_guards);
    // Every process that attached is gone, so a removed SysV segment is destroyed.
    for &(key, id) in &sysv_ids {
        if let Some(attached) = sysv_left(id) {
            panic!(
                "the SysV segment of key {key:#x} (id {id}) is still there after its removal, \
                 attached {attached} times"
            );
        }
    }
    let suffix = format!("-{}", std::process::id());
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .expect("read /dev/shm")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("shmlane-test-crash-") && n.ends_with(&suffix))
        .collect();
    assert!(left.is_empty(), "segments left in /dev/shm: {left:?}");

    // The deliveries.
    let log_len = log.metadata().expect("stat the log").len();
    (&log).seek(SeekFrom::Start(0)).expect("seek the log");
    let mut reader = std::io::BufReader::with_capacity(1 << 20, &log);
    let ids = c.next_id as usize;
    let role_of = |id: u32| -> Option<Role> {
        sh.get(id)
            .and_then(|i| Role::from_code(i.role.load(Ordering::Acquire)))
    };
    let done: Vec<u64> = (0..ids as u32)
        .map(|id| sh.get(id).map_or(0, |i| i.done.load(Ordering::Acquire)))
        .collect();
    // Per producer incarnation, per message: the consumer that received it (0: none).
    let mut got: Vec<Vec<u32>> = (0..ids)
        .map(|id| match role_of(id as u32) {
            Some(r) if r.is_producer() => vec![0; done[id] as usize + 1],
            _ => Vec::new(),
        })
        .collect();
    let mut last_seen: HashMap<(u32, u32), u32> = HashMap::new();
    let mut tally = [Tally::default(), Tally::default()];
    let mut errors: Vec<String> = Vec::new();
    let mut error = |e: String| {
        if errors.len() < 20 {
            errors.push(e);
        }
    };
    if log_len % RECORD as u64 != 0 {
        error(format!("the log has {log_len} bytes, not whole records"));
    }
    // One delivery: message `seq` of producer `from` received by consumer `cons`. With
    // `unless_logged`, only if the log does not have it already (`false` if it does).
    let mut add = |cons: u32, from: u32, seq: u32, len: u32, unless_logged: bool| -> bool {
        if unless_logged && last_seen.get(&(cons, from)) == Some(&seq) {
            return false;
        }
        let (Some(cr), Some(pr)) = (role_of(cons), role_of(from)) else {
            error(format!(
                "log record of consumer {cons}, producer {from}: no such roles"
            ));
            return true;
        };
        if cr.is_producer() || !pr.is_producer() || cr.ring() != pr.ring() {
            error(format!(
                "log record {cons}/{from}: {} received from {}",
                cr.name(),
                pr.name()
            ));
            return true;
        }
        tally[pr.ring().index()].delivered += 1;
        let seen = &mut got[from as usize];
        let Some(first) = seen.get_mut(seq as usize) else {
            error(format!(
                "{} #{from} message {seq} ({len} bytes) delivered to #{cons}, but only {} of \
                 its sends returned",
                pr.name(),
                done[from as usize]
            ));
            return true;
        };
        if *first != 0 {
            error(format!(
                "{} #{from} message {seq} ({len} bytes) delivered twice: to #{} and to #{cons}",
                pr.name(),
                *first
            ));
        }
        *first = cons;
        if let Some(prev) = last_seen.insert((cons, from), seq) {
            if prev >= seq {
                error(format!(
                    "{} #{cons} received message {seq} of #{from} after its message {prev}",
                    cr.name()
                ));
            }
        }
        true
    };
    let mut rec = [0u8; RECORD];
    for _ in 0..log_len / RECORD as u64 {
        reader.read_exact(&mut rec).expect("read the log");
        let word = |i: usize| u32::from_le_bytes(rec[i..i + 4].try_into().expect("4 bytes"));
        add(word(0), word(4), word(8), word(12), false);
    }
    // A consumer killed after `recv` returned a message and before its log record was
    // written: its last message counts as delivered to it.
    let mut unlogged = [0u64; 2];
    for id in 1..ids as u32 {
        let Some(role) = role_of(id).filter(|r| !r.is_producer()) else {
            continue;
        };
        if !c.killed[id as usize] {
            continue;
        }
        let t = sh.inc(id).last.load(Ordering::Acquire);
        let (from, seq) = ((t >> 32) as u32, t as u32);
        if t != 0 && add(id, from, seq, 0, true) {
            unlogged[role.ring().index()] += 1;
        }
    }

    for id in 1..ids as u32 {
        let Some(role) = role_of(id) else { continue };
        let t = &mut tally[role.ring().index()];
        let killed = c.killed[id as usize];
        if !role.is_producer() {
            t.consumers += 1;
            t.consumer_kills += u64::from(killed);
            continue;
        }
        t.producers += 1;
        t.producer_kills += u64::from(killed);
        let n = done[id as usize];
        t.sent += n;
        let seen = &got[id as usize];
        if seen[..n as usize].contains(&0) {
            // The producer's sizes, replayed, tell whole records from fragments.
            let mut rng = Rng::new(seed ^ u64::from(id));
            for (seq, &by) in seen[..n as usize].iter().enumerate() {
                let len = message_len(&mut rng);
                if by == 0 {
                    t.missing += 1;
                    if len > max_record[role.ring().index()] {
                        t.missing_fragmented += 1;
                    }
                    if t.missing_examples.len() < 10 {
                        t.missing_examples.push((id, seq as u32, len));
                    }
                }
            }
        }
        let in_flight = seen[n as usize] != 0;
        if killed {
            if in_flight {
                t.in_flight_delivered += 1;
            } else {
                t.in_flight_lost += 1;
            }
        } else if in_flight {
            error(format!(
                "{} #{id} exited cleanly after {n} sends returned Ok, yet its message {n} was \
                 delivered",
                role.name()
            ));
        }
    }

    let total_kills: u64 = c.kills.iter().sum();
    let mut report = format!(
        "crash_injection on {} rings: {total_kills} kills in {kill_phase:.2?} ({:.0} kills/s; \
         {}; {} \
         of a replacement in its start-up, {} before the victim had attached), {} \
         incarnations, seed {seed:#x}; waiting for \
         messages to flow between kills {flow_wait:.2?} in all, {longest_flow_wait:.1?} at \
         most; stop and drain {drain:.2?}, wall {wall:.2?}; host load average {}; \
         processes not attached \
         {SLOW_START:?} after their fork: {}{}",
        backing.label(),
        total_kills as f64 / kill_phase.as_secs_f64(),
        c.kills_text(),
        c.early_kills,
        c.kills_before_attach,
        ids - 1,
        loadavg(),
        c.slow_starts.len(),
        c.slow_starts_text(),
    );
    for ring in Ring::ALL {
        let t = &tally[ring.index()];
        let s = sh.ring(ring);
        let attach: Vec<u64> = (1..ids as u32)
            .filter(|&id| role_of(id).map(Role::ring) == Some(ring))
            .filter_map(|id| {
                let i = sh.inc(id);
                let a = i.attached_ns.load(Ordering::Acquire);
                (a != 0).then(|| a.saturating_sub(i.spawned_ns.load(Ordering::Acquire)))
            })
            .collect();
        let mean_attach = attach.iter().sum::<u64>() / attach.len().max(1) as u64;
        let max_attach = attach.iter().copied().max().unwrap_or(0);
        report += &format!(
            "\n  {ring:?}: {} producer / {} consumer incarnations ({} / {} killed); {} messages \
             sent, {} delivered ({:.0} msg/s); lost with a killed consumer {} ({} of them \
             in fragments); a killed \
             producer's last message delivered {} / lost {}; truncated {}; Disconnected runs \
             at producers {} / consumers {}; opens that met Busy {}; longest send {:.1?}, \
             longest recv {:.1?}; over {SLOW:?}: {} sends, {} receives; longest open {:.1?}; \
             fork to attached {:.1?} mean, {:.1?} max; messages received by a \
             consumer killed before it logged them {}; first losses (incarnation, seq, length) {:?}",
            t.producers,
            t.consumers,
            t.producer_kills,
            t.consumer_kills,
            t.sent,
            t.delivered,
            t.delivered as f64 / wall.as_secs_f64(),
            t.missing,
            t.missing_fragmented,
            t.in_flight_delivered,
            t.in_flight_lost,
            s.truncated.load(Ordering::Relaxed),
            s.producer_disconnects.load(Ordering::Relaxed),
            s.consumer_disconnects.load(Ordering::Relaxed),
            s.busy_opens.load(Ordering::Relaxed),
            Duration::from_nanos(s.max_send_ns.load(Ordering::Relaxed)),
            Duration::from_nanos(s.max_recv_ns.load(Ordering::Relaxed)),
            s.slow_sends.load(Ordering::Relaxed),
            s.slow_recvs.load(Ordering::Relaxed),
            Duration::from_nanos(s.max_open_ns.load(Ordering::Relaxed)),
            Duration::from_nanos(mean_attach),
            Duration::from_nanos(max_attach),
            unlogged[ring.index()],
            t.missing_examples,
        );
        if t.missing > t.consumer_kills {
            error(format!(
                "{ring:?}: {} messages whose send returned Ok were never delivered, more than \
                 the {} consumer kills can lose; the first: {:?} (incarnation, seq, length)",
                t.missing, t.consumer_kills, t.missing_examples
            ));
        }
        let truncated = s.truncated.load(Ordering::Relaxed);
        let allowed =
            t.producer_kills + t.consumer_kills + s.producer_disconnects.load(Ordering::Relaxed);
        if truncated > allowed {
            error(format!(
                "{ring:?}: {truncated} truncated messages, more than the {allowed} that kills \
                 and Disconnected sends can explain"
            ));
        }
        if t.delivered < t.producer_kills + t.consumer_kills {
            error(format!(
                "{ring:?}: only {} messages delivered for {} kills: the kills did not land \
                 while messages flowed",
                t.delivered,
                t.producer_kills + t.consumer_kills
            ));
        }
    }
    eprintln!("{report}");
    assert!(
        errors.is_empty(),
        "crash injection: {} check(s) failed:\n  {}\n{report}",
        errors.len(),
        errors.join("\n  ")
    );
}
