//! Claim: **whatever a buggy peer writes into a segment, using it gives an error or a
//! valid message, never a panic, a signal, an out-of-bounds access or a hang**; and the
//! error names what was wrong (the variant and the header field). ARCHITECTURE.md §8
//! (trust) and §9 (how it is checked).
//!
//! - [`named_fields`]: chosen corruptions of a POSIX segment's header, cursors,
//!   endpoint states and record headers, each opened in its own child: the error names
//!   the field, on open or on the first receive;
//! - [`sysv`]: the same for SysV segments, and SysV segments too short for a header or
//!   never initialised;
//! - top level, the sweep: for every header field and every cursor,
//!   the values 0, 1, MAX, capacity ± 1 and a few random ones, and for the data region
//!   impossible record lengths, flags, tags, stamps and message totals, written into a
//!   ring by a process other than the one that then uses it: opening the ring and
//!   receiving from it (or sending to it) returns an error or a valid message, never a
//!   panic, a signal or a hang.
//!
//! How one case of the sweep runs:
//!
//! 1. The parent builds a 4 KiB ring ([`build`]): a producer and a consumer exchange
//!    three warm-up messages (so the positions are a lap in and the next records
//!    wrap), the producer sends [`SENT`] (one of them in fragments), and both detach.
//!    The result is the same, byte for byte, every time.
//! 2. The parent, as "the second process", overwrites one field with one value
//!    through the segment's file in /dev/shm ([`common::poke`]).
//! 3. A forked child opens the ring as consumer and receives with timed and
//!    non-blocking calls ([`consumer_role`]); or, in another case, opens it as
//!    producer (and a consumer beside it), sends with `try_send` and `send_timeout`,
//!    then receives ([`producer_role`]). Every message received must be one that was
//!    sent, byte for byte; every timed call must return within its timeout plus
//!    slack.
//! 4. The parent reaps the child with a deadline ([`HANG_DEADLINE`]): a child that
//!    panicked, was killed by a signal, received a message nobody sent, overran a
//!    timeout or had to be killed is a failure. Cases run [`PARALLEL`] at a time.
//!
//! Where a written value is one a correct producer could have written there (a record
//! word or a stamp that is well formed for its position), the consumer cannot tell,
//! and the messages it then yields are not checked against the sent ones: payload
//! bytes and the lengths of well-formed records are the peer's business (ARCHITECTURE.md §8).
//! Such cases are marked `may_alter`, decided by [`spsc_word_legal`] and
//! [`mpmc_word_legal`], which restate the frame rules of `src/frame.rs`.
//!
//! The MPMC data cases also move `tail` and `head` into every record of more than one
//! cell ("cursors in records"). A producer that claims the inner cells of a published,
//! unread record writes over it: a limit the README states (`src/mpmc/mod.rs`, "What
//! the stamps cannot tell"), listed in [`KNOWN_FAILURES`] case by case, so that the
//! sweep notices both a new case of it and one that starts being caught.
//!
//! A failure the library does not fix yet may be listed in [`KNOWN_FAILURES`] with its
//! reason; the sweep then fails on any entry that matches no case or a case that
//! passed, so that the list never holds an exemption no longer needed.
//!
//! Every offset the sweep writes is in [`FIELDS`] (the header, the endpoint slots) or
//! computed in [`spsc_data_cases`] / [`mpmc_data_cases`] (the data region and the MPMC
//! cell table). When the endpoint table's layout changes, update [`ENDPOINT_TABLE`],
//! [`SLOT_SIZE`] and the `SLOT_*` offsets (and add rows for new slot fields).

// Real processes and POSIX shared memory: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{message, peek_u32, peek_u64, poke, seg_name, Outcome, Procs, Rng, SegGuard};
use shmlane::{mpmc, spsc, Notifier, RingOptions};

// ---------------------------------------------------------------------------------
// The layout: every offset the sweep writes into the header
// ---------------------------------------------------------------------------------

/// Start of the endpoint table in the header.
const ENDPOINT_TABLE: u64 = 2048;
/// Bytes per endpoint slot.
const SLOT_SIZE: u64 = 64;
/// Offsets of the fields of one endpoint slot, from the slot's start.
const SLOT_STATE: u64 = 0;
const SLOT_PID: u64 = 4;
const SLOT_GENERATION: u64 = 8;
const SLOT_START_TIME: u64 = 16;
const SLOT_ROLE: u64 = 24;
/// MPMC claim note: position with VALID/CONFIRMED bits, then padding and record cells.
const SLOT_CLAIM: u64 = 32;
const SLOT_CLAIM_CELLS: u64 = 40;

/// Offset of field `field` (a `SLOT_*`) of endpoint slot `slot`.
const fn ep(slot: u64, field: u64) -> u64 {
    ENDPOINT_TABLE + slot * SLOT_SIZE + field
}

/// The header, as (name, offset, width in bytes): every field the sweep writes.
/// Offsets are those pinned by the `const_assert`s of `src/header.rs`. Fields named
/// `sem_*` (glibc's `sem_t`: a u64 value word, then the u32 `private` flag) are swept
/// on rings made with the semaphore notifier, the only ones that use them.
const FIELDS: &[(&str, u64, u8)] = &[
    ("magic", 0, 8),
    ("version", 8, 4),
    ("header_size", 12, 4),
    ("layout_hash", 16, 8),
    ("abi", 24, 4),
    ("kind", 28, 4),
    ("capacity", 32, 8),
    ("cell_size", 40, 8),
    ("max_record", 48, 8),
    ("max_message", 56, 8),
    ("flags", 64, 8),
    ("creator_pid", 72, 4),
    ("creator_uid", 76, 4),
    ("creator_start_time", 80, 8),
    ("data_offset", 88, 8),
    ("segment_len", 96, 8),
    ("max_endpoints", 104, 4),
    ("reserved0a", 108, 4),
    ("producers", 112, 8),
    ("consumers", 120, 8),
    ("state", 128, 4),
    ("sem_data_ready.value", 256, 8),
    ("sem_data_ready.private", 264, 4),
    ("sem_space_ready.value", 320, 8),
    ("sem_space_ready.private", 328, 4),
    ("sem_writer_free.value", 384, 8),
    ("sem_writer_free.private", 392, 4),
    ("sem_reader_free.value", 448, 8),
    ("sem_reader_free.private", 456, 4),
    ("writer_free.state", 512, 8),
    ("writer_free.futex", 520, 4),
    ("reader_free.state", 640, 8),
    ("reader_free.futex", 648, 4),
    ("spsc_read_to", 768, 8),
    ("data_ready.state", 1024, 8),
    ("data_ready.futex", 1032, 4),
    ("space_ready.state", 1152, 8),
    ("space_ready.futex", 1160, 4),
    ("tail", 1280, 8),
    ("head", 1408, 8),
    // Slot 0 and 1: the SPSC producer and consumer (MPMC: the setup's producer and
    // consumer, detached); slot 2: vacant (MPMC attaches there when 0 and 1 are taken).
    ("ep0.state", ep(0, SLOT_STATE), 4),
    ("ep0.pid", ep(0, SLOT_PID), 4),
    ("ep0.generation", ep(0, SLOT_GENERATION), 8),
    ("ep0.start_time", ep(0, SLOT_START_TIME), 8),
    ("ep0.role", ep(0, SLOT_ROLE), 4),
    ("ep0.claim", ep(0, SLOT_CLAIM), 8),
    ("ep0.claim_cells", ep(0, SLOT_CLAIM_CELLS), 8),
    ("ep1.state", ep(1, SLOT_STATE), 4),
    ("ep1.pid", ep(1, SLOT_PID), 4),
    ("ep1.generation", ep(1, SLOT_GENERATION), 8),
    ("ep1.start_time", ep(1, SLOT_START_TIME), 8),
    ("ep1.role", ep(1, SLOT_ROLE), 4),
    ("ep1.claim", ep(1, SLOT_CLAIM), 8),
    ("ep1.claim_cells", ep(1, SLOT_CLAIM_CELLS), 8),
    ("ep2.state", ep(2, SLOT_STATE), 4),
    ("ep2.pid", ep(2, SLOT_PID), 4),
    ("ep2.generation", ep(2, SLOT_GENERATION), 8),
    ("ep2.start_time", ep(2, SLOT_START_TIME), 8),
    ("ep2.role", ep(2, SLOT_ROLE), 4),
    ("ep2.claim", ep(2, SLOT_CLAIM), 8),
    ("ep2.claim_cells", ep(2, SLOT_CLAIM_CELLS), 8),
];

/// The data region starts after the 4096-byte header; the MPMC cell table follows it.
const DATA: u64 = 4096;
/// Offsets of the cursors (also rows of [`FIELDS`]).
const TAIL: u64 = 1280;
const HEAD: u64 = 1408;

// ---------------------------------------------------------------------------------
// The ring and the messages
// ---------------------------------------------------------------------------------

const CAPACITY: u64 = 4096;
/// MPMC cell size (the default for a 4 KiB ring): 64 cells.
const CELL: u64 = 64;
/// `capacity / 2`: the largest record (SPSC, header included) or payload (MPMC).
const MAX_RECORD: u64 = CAPACITY / 2;

/// Record flags (`src/frame.rs`).
const VALID: u64 = 0x80;
const PAD: u64 = 0x40;
const BEGIN: u64 = 0x01;
const END: u64 = 0x02;
const ABORT: u64 = 0x04;
const KNOWN_FLAG_BITS: u64 = VALID | PAD | BEGIN | END | ABORT;

/// The warm-up messages (sequence number, length): sent and received before the case
/// messages, so that positions are not 0 and the case messages wrap.
const WARM_UP: [(u64, usize); 3] = [(100, 1000), (101, 1000), (102, 1000)];
/// The messages waiting in the ring when the field is overwritten; 2100 bytes (more
/// than the largest record, `capacity / 2`) travels in three fragments on both kinds,
/// with a wrap (a PAD record) between the first and the second. About 60% of the ring
/// is then in use (SPSC: 2456 bytes; MPMC: 55 of 64 cells), which leaves room for a
/// producer child's first two messages.
const SENT: [(u64, usize); 5] = [(1, 5), (2, 2100), (3, 0), (4, 64), (5, 200)];
/// What a producer child sends: with `try_send`, then `send_timeout` (the last one in
/// fragments, more than the room left: it times out after [`SHORT_TIMEOUT`], partly
/// sent, and is abandoned).
const CHILD_SENT: [(u64, usize); 3] = [(50, 100), (51, 300), (52, 2500)];

/// Timeout of the timed calls a child makes.
const OP_TIMEOUT: Duration = Duration::from_millis(200);
/// Timeout of the send that is expected to time out (most producer cases get there:
/// a short one keeps the sweep fast).
const SHORT_TIMEOUT: Duration = Duration::from_millis(20);
/// How late a timed call may return before it counts as a hang (a loaded machine).
const SLACK: Duration = Duration::from_millis(1500);
/// How long opening may take: it waits up to 2 s for a creator to finish (state 0 or
/// 1), then slack.
const OPEN_LIMIT: Duration = Duration::from_millis(3500);
/// A child still running after this is killed and counted as a hang. Its calls are
/// bounded: an open (up to 2 s when the state word says "initialising", and then no
/// more calls), at most two timed sends, and receives that stop at the second timeout.
const HANG_DEADLINE: Duration = Duration::from_secs(5);
/// Children running at once.
const PARALLEL: usize = 12;

/// One exemption from the sweep: the cases it covers, and why they fail.
#[derive(Clone, Copy, Debug)]
struct KnownFailure {
    kind: Kind,
    /// The child's role, or `None` for both.
    role: Option<Role>,
    /// The start of the case's field name ("tail" covers "tail inside record 2 ...").
    field: &'static str,
    /// The value written, or `None` for every value.
    value: Option<u64>,
    reason: &'static str,
}

/// Failures known and not fixed. A case that matches is still run, and reported in
/// the summary, but does not fail the test. Keep this list short, every entry as
/// narrow as its failure (name the role if only one fails) and every reason true: the
/// sweep fails if an entry matches no case, or matches a case that passed
/// ([`stale_exemptions`]), so an exemption goes as soon as it is no longer needed.
///
/// An MPMC `tail` moved back into the inner cells of a published record, where a
/// producer then claims: inner cells keep the stamp "free for their position" until
/// they are released (layout version 6; version 5 stamped them, at 7-23 % of the
/// throughput of multi-cell records: `src/mpmc/mod.rs`, "What the stamps cannot
/// tell"). The values are positions of the sweep's fixed set of records: 0x41 = 65 in
/// record 2 (cells 64..80, the first fragment; also the header case "tail" = n + 1),
/// 0x51 = 81 in record 3 (cells 80..96), 0x64 = 100 and 0x66 = 102 in record 7 (cells
/// 99..103; 0x66 is also the header case "tail" = tail - 1). The consumer role and
/// the last cells of records 2 and 3 are caught: there the producer's claim reaches
/// the next record's published first cell.
const KNOWN_FAILURES: &[KnownFailure] = &[
    tail_inside_a_record(0x41),
    tail_inside_a_record(0x51),
    tail_inside_a_record(0x64),
    tail_inside_a_record(0x66),
];

const fn tail_inside_a_record(value: u64) -> KnownFailure {
    KnownFailure {
        kind: Kind::Mpmc,
        role: Some(Role::Producer),
        field: "tail",
        value: Some(value),
        reason: "an MPMC tail moved into the inner cells of a published record passes the \
                 stamp check (they keep the stamp 'free for this position' until released), \
                 so a producer writes over that record's payload: a stated limit (README, \
                 trust model)",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Spsc,
    Mpmc,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Spsc => "spsc",
            Kind::Mpmc => "mpmc",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Consumer,
    Producer,
}

/// Every message a child may legitimately receive.
fn valid_messages() -> Vec<Vec<u8>> {
    WARM_UP
        .iter()
        .chain(SENT.iter())
        .chain(CHILD_SENT.iter())
        .map(|&(seq, len)| message(seq, len))
        .collect()
}

/// The endpoints of both ring kinds behind one interface; errors as their `Debug`.
trait Tx {
    fn try_send(&mut self, msg: &[u8]) -> Result<(), String>;
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), String>;
}

trait Rx {
    fn recv_timeout(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<usize, String>;
    fn try_recv(&mut self, buf: &mut Vec<u8>) -> Result<usize, String>;
    fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, String>;
}

macro_rules! endpoints {
    ($m:ident) => {
        impl Tx for $m::Producer {
            fn try_send(&mut self, msg: &[u8]) -> Result<(), String> {
                $m::Producer::try_send(self, msg).map_err(|e| format!("{e:?}"))
            }
            fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), String> {
                $m::Producer::send_timeout(self, msg, timeout).map_err(|e| format!("{e:?}"))
            }
        }

        impl Rx for $m::Consumer {
            fn recv_timeout(
                &mut self,
                buf: &mut Vec<u8>,
                timeout: Duration,
            ) -> Result<usize, String> {
                $m::Consumer::recv_timeout(self, buf, timeout).map_err(|e| format!("{e:?}"))
            }
            fn try_recv(&mut self, buf: &mut Vec<u8>) -> Result<usize, String> {
                $m::Consumer::try_recv(self, buf).map_err(|e| format!("{e:?}"))
            }
            fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, String> {
                $m::Consumer::recv_ref_timeout(self, timeout)
                    .map(|g| g.to_vec())
                    .map_err(|e| format!("{e:?}"))
            }
        }
    };
}
endpoints!(spsc);
endpoints!(mpmc);

fn open_producer(kind: Kind, name: &str) -> Result<Box<dyn Tx>, String> {
    let r: Result<Box<dyn Tx>, shmlane::Error> = match kind {
        Kind::Spsc => spsc::Producer::open(name).map(|p| Box::new(p) as _),
        Kind::Mpmc => mpmc::Producer::open(name).map(|p| Box::new(p) as _),
    };
    r.map_err(|e| format!("{e:?}"))
}

fn open_consumer(kind: Kind, name: &str) -> Result<Box<dyn Rx>, String> {
    let r: Result<Box<dyn Rx>, shmlane::Error> = match kind {
        Kind::Spsc => spsc::Consumer::open(name).map(|c| Box::new(c) as _),
        Kind::Mpmc => mpmc::Consumer::open(name).map(|c| Box::new(c) as _),
    };
    r.map_err(|e| format!("{e:?}"))
}

/// The variant name of an error's `Debug` ("Corrupt", "Timeout", ...).
fn variant(debug: &str) -> &str {
    let end = debug
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(debug.len());
    &debug[..end]
}

/// Builds the ring `name` of `kind` in the state every case starts from (see the
/// module docs). Deterministic: the same bytes every time (but for the creator's pid,
/// uid and start time, the same within one test process).
fn build(kind: Kind, name: &str, semaphores: bool) {
    let opts = RingOptions::new(CAPACITY as usize).notifier(if semaphores {
        Notifier::Semaphore
    } else {
        Notifier::Futex
    });
    let t = Duration::from_secs(5);
    let (mut tx, mut rx): (Box<dyn Tx>, Box<dyn Rx>) = match kind {
        Kind::Spsc => (
            Box::new(spsc::Producer::create(name, &opts).expect("create")),
            Box::new(spsc::Consumer::open(name).expect("open consumer")),
        ),
        Kind::Mpmc => (
            Box::new(mpmc::Producer::create(name, &opts).expect("create")),
            Box::new(mpmc::Consumer::open(name).expect("open consumer")),
        ),
    };
    let mut buf = Vec::new();
    for &(seq, len) in &WARM_UP {
        tx.send_timeout(&message(seq, len), t)
            .expect("warm-up send");
        rx.recv_timeout(&mut buf, t).expect("warm-up recv");
        assert_eq!(buf, message(seq, len), "warm-up message {seq}");
    }
    for &(seq, len) in &SENT {
        tx.send_timeout(&message(seq, len), t)
            .unwrap_or_else(|e| panic!("send {seq} ({len} bytes): {e}"));
    }
    // The consumer publishes its head and detaches; then the producer detaches.
    drop(rx);
    drop(tx);
}

fn peek(name: &str, offset: u64, width: u8) -> u64 {
    match width {
        8 => peek_u64(name, offset),
        4 => u64::from(peek_u32(name, offset)),
        _ => unreachable!("width {width}"),
    }
}

fn width_max(width: u8) -> u64 {
    if width == 8 {
        u64::MAX
    } else {
        u64::from(u32::MAX)
    }
}

// ---------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Case {
    /// "header", "endpoint slots", "cursors", "spsc records", ... (the summary's rows).
    group: &'static str,
    /// What is overwritten: a header field, or a word of the data region.
    field: String,
    offset: u64,
    width: u8,
    /// The value before (checked on every fresh ring: the build is deterministic).
    orig: u64,
    value: u64,
    role: Role,
    semaphores: bool,
    /// The value is well formed for its place: messages nobody sent are no failure.
    may_alter: bool,
}

/// The values every field gets: 0, 1, MAX, capacity ± 1 (and other sizes near it),
/// the original ± 1, one bit of the original flipped and two random values.
fn generic_values(rng: &mut Rng, width: u8, orig: u64) -> Vec<u64> {
    let max = width_max(width);
    let bit = rng.below(u64::from(width) * 8);
    vec![
        0,
        1,
        max,
        max - 1,
        CAPACITY - 1,
        CAPACITY,
        CAPACITY + 1,
        CAPACITY * 2,
        CAPACITY / 2,
        orig.wrapping_add(1) & max,
        orig.wrapping_sub(1) & max,
        orig ^ (1 << bit),
        rng.next_u64() & max,
        rng.next_u64() & 0xffff,
    ]
}

/// Values that mean something to one field in particular.
fn special_values(kind: Kind, field: &str, orig: u64, other_cursor: u64) -> Vec<u64> {
    let cells = CAPACITY / CELL;
    let n = match kind {
        Kind::Spsc => CAPACITY,
        Kind::Mpmc => cells,
    };
    let suffix = field.rsplit('.').next().unwrap_or(field);
    match field {
        "kind" => vec![2, 3],
        "state" => vec![3, 4],
        "flags" => vec![0x10, 0x11, 0x2, 0xf, 0x20, 0x1f],
        "cell_size" => vec![8, 32, 64, 128, 2048, 4096],
        "max_endpoints" => vec![2, 16, 64, 65],
        "segment_len" => vec![DATA + CAPACITY, DATA + CAPACITY + cells * 16, DATA],
        "producers" | "consumers" => vec![1 << 32, 1 | 1 << 32, 0xffff_ffff, 2 << 32 | 7],
        "tail" | "head" => {
            let pos = orig & ((1 << 56) - 1);
            vec![
                other_cursor,
                orig.wrapping_sub(8),
                orig + 8,
                orig + n,
                orig.wrapping_sub(n),
                orig + 2 * n,
                n - 1,
                n + 1,
                pos | 1 << 56,
                pos | 2 << 56,
                pos | 17 << 56,
                pos | 0xff << 56,
                (1 << 55) + 1,
                1 << 55,
                1 << 63,
                (1 << 63) + 8,
            ]
        }
        _ => match suffix {
            // endpoint slots
            "state" if field.starts_with("ep") => vec![2, 3, 4],
            "role" => vec![1, 2, 3],
            "pid" => vec![u64::from(std::process::id()), 1, 0x7fff_ffff],
            // event counts: many waiters, an epoch about to wrap
            "state" if !field.starts_with("sem") => {
                vec![0xffff_ffff, 5 << 32 | 1, 0xffff_ffff_0000_0001]
            }
            "futex" => vec![0x8000_0000, 0x7fff_ffff],
            // glibc's sem_t: `private` is 128 (FUTEX_SHARED) in a process-shared
            // semaphore, 0 (FUTEX_PRIVATE, among the generic values) in a private one;
            // the value word holds the count shifted left by one, and waiters above.
            "private" => vec![0x7fff_ffff],
            "value" => vec![0x7fff_ffff << 1, 0xffff_fffe, 1 << 32, 3 << 32 | 2],
            _ => vec![],
        },
    }
}

fn dedup(mut v: Vec<u64>, orig: u64) -> Vec<u64> {
    v.retain(|&x| x != orig);
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|x| seen.insert(*x));
    v
}

fn field_group(field: &str) -> &'static str {
    if field.starts_with("ep") {
        "endpoint slots"
    } else if field.starts_with("sem_") {
        "semaphores"
    } else if field == "tail" || field == "head" {
        "cursors"
    } else if field.ends_with(".state") || field.ends_with(".futex") {
        "event counts"
    } else {
        "header"
    }
}

/// The header cases of `kind`: every row of [`FIELDS`], both roles.
fn header_cases(kind: Kind) -> Vec<Case> {
    let mut probes = BTreeMap::new();
    for semaphores in [false, true] {
        let name = seg_name(&format!("sweep-{}-probe{}", kind.name(), semaphores as u8));
        let guard = SegGuard::new(&name);
        build(kind, &name, semaphores);
        let values: Vec<u64> = FIELDS
            .iter()
            .map(|&(_, off, w)| peek(&name, off, w))
            .collect();
        probes.insert(semaphores, values);
        drop(guard);
    }
    let mut cases = Vec::new();
    for (i, &(field, offset, width)) in FIELDS.iter().enumerate() {
        let semaphores = field.starts_with("sem_");
        let orig = probes[&semaphores][i];
        let other_cursor = match field {
            "tail" => peek_of(&probes[&semaphores], "head"),
            "head" => peek_of(&probes[&semaphores], "tail"),
            _ => 0,
        };
        let mut rng = Rng::new(offset ^ ((kind as u64) << 32));
        let mut values = generic_values(&mut rng, width, orig);
        values.extend(special_values(kind, field, orig, other_cursor));
        let values: Vec<u64> = values.into_iter().map(|v| v & width_max(width)).collect();
        for value in dedup(values, orig) {
            for role in [Role::Consumer, Role::Producer] {
                cases.push(Case {
                    group: field_group(field),
                    field: field.to_string(),
                    offset,
                    width,
                    orig,
                    value,
                    role,
                    semaphores,
                    may_alter: false,
                });
            }
        }
    }
    cases
}

fn peek_of(values: &[u64], field: &str) -> u64 {
    let i = FIELDS
        .iter()
        .position(|&(f, _, _)| f == field)
        .expect("a field of FIELDS");
    values[i]
}

/// `len` in bits 0..32, `flags` in 32..40, `tag` above: an SPSC record header word.
fn spsc_word(len: u64, flags: u64, tag: u64) -> u64 {
    (len & 0xffff_ffff) | (flags & 0xff) << 32 | tag << 40
}

/// The tag of an SPSC record header at `pos`.
fn spsc_tag(pos: u64) -> u64 {
    (pos >> 3) & 0xff_ffff
}

/// Whether `word` is a header a correct producer could have written at `pos` (the
/// rules of `frame::decode`): then the consumer cannot tell it from a real one.
fn spsc_word_legal(word: u64, pos: u64) -> bool {
    if word == 0 {
        return true; // "nothing published yet"
    }
    let len = word & 0xffff_ffff;
    let flags = (word >> 32) & 0xff;
    if flags & VALID == 0 || flags & !KNOWN_FLAG_BITS != 0 || word >> 40 != spsc_tag(pos) {
        return false;
    }
    let index = pos % CAPACITY;
    let flags = flags & !VALID;
    if flags & PAD != 0 {
        return flags == PAD && index != 0 && len == CAPACITY - index - 8;
    }
    let size = 8 + len.div_ceil(8) * 8;
    if size > MAX_RECORD || index + size > CAPACITY {
        return false;
    }
    match flags {
        0 | END => true,
        f if f == BEGIN | END => true,
        BEGIN => len >= 8,
        f if f == END | ABORT => len == 0,
        _ => false,
    }
}

/// The data-region cases of an SPSC ring: each record header word between head and
/// tail (and the zero word at tail) set to impossible lengths, flags and tags; and the
/// total-length prefix of the first fragment.
fn spsc_data_cases() -> Vec<Case> {
    let name = seg_name("sweep-spsc-walk");
    let guard = SegGuard::new(&name);
    build(Kind::Spsc, &name, false);
    let head = peek_u64(&name, HEAD);
    let tail = peek_u64(&name, TAIL);
    // Walk the records from head to tail: (position, header word).
    let mut records = Vec::new();
    let mut pos = head;
    while pos < tail {
        let word = peek_u64(&name, DATA + pos % CAPACITY);
        records.push((pos, word));
        let flags = (word >> 32) & 0xff;
        pos += if flags & PAD != 0 {
            CAPACITY - pos % CAPACITY
        } else {
            8 + (word & 0xffff_ffff).div_ceil(8) * 8
        };
    }
    assert_eq!(pos, tail, "the records run from head to tail");
    assert_eq!(
        peek_u64(&name, DATA + tail % CAPACITY),
        0,
        "zero word at tail"
    );
    records.push((tail, 0));
    let mut cases = Vec::new();
    let mut saw_pad = false;
    for (k, &(pos, word)) in records.iter().enumerate() {
        let index = pos % CAPACITY;
        let at_tail = pos == tail;
        let (len, flags, tag) = if at_tail {
            (16, VALID | BEGIN | END, spsc_tag(pos))
        } else {
            (word & 0xffff_ffff, (word >> 32) & 0xff, word >> 40)
        };
        saw_pad |= flags & PAD != 0;
        let what = if at_tail {
            "zero word at tail".to_string()
        } else {
            format!("record {k} (flags {flags:#x}, len {len})")
        };
        let mut values = vec![
            0,
            1,
            u64::MAX,
            spsc_word(0, flags, tag),
            spsc_word(CAPACITY, flags, tag),
            spsc_word(CAPACITY + 1, flags, tag),
            spsc_word(u64::from(u32::MAX), flags, tag),
            spsc_word(MAX_RECORD - 8, flags, tag),
            spsc_word(MAX_RECORD - 7, flags, tag),
            spsc_word(CAPACITY - index - 8, flags, tag),
            spsc_word(CAPACITY - index - 7, flags, tag),
            spsc_word(len + 1, flags, tag),
            spsc_word(len + 3, flags, tag),
            spsc_word(len + 8, flags, tag),
            spsc_word(len, 0, tag),
            spsc_word(len, flags & !VALID, tag),
            spsc_word(len, flags | 0x08, tag),
            spsc_word(len, flags | 0x10, tag),
            spsc_word(len, flags | 0x20, tag),
            spsc_word(len, 0xff, tag),
            spsc_word(len, VALID | PAD, tag),
            spsc_word(CAPACITY - index - 8, VALID | PAD, tag),
            spsc_word(CAPACITY - 8, VALID | PAD, tag),
            spsc_word(len, VALID | BEGIN, tag),
            spsc_word(4, VALID | BEGIN, tag),
            spsc_word(len, VALID | END, tag),
            spsc_word(len, VALID, tag),
            spsc_word(len, VALID | ABORT, tag),
            spsc_word(0, VALID | END | ABORT, tag),
            spsc_word(len, VALID | BEGIN | END | ABORT, tag),
            spsc_word(len, flags, (tag + 1) & 0xff_ffff),
            spsc_word(len, flags, spsc_tag(pos + CAPACITY)),
            spsc_word(len, flags, spsc_tag(pos.wrapping_sub(CAPACITY))),
            spsc_word(len, flags, 0xff_ffff),
        ];
        if index == 0 {
            // A PAD never starts at index 0 (it would skip the whole region).
            values.push(spsc_word(CAPACITY - 8, VALID | PAD, tag));
        }
        let roles: &[Role] = if at_tail {
            // The producer's attach walks the records from tail.
            &[Role::Consumer, Role::Producer]
        } else {
            &[Role::Consumer]
        };
        for value in dedup(values, word) {
            for &role in roles {
                cases.push(Case {
                    group: "spsc records",
                    field: format!("{what} @ data+{index}"),
                    offset: DATA + index,
                    width: 8,
                    orig: word,
                    value,
                    role,
                    semaphores: false,
                    may_alter: spsc_word_legal(value, pos),
                });
            }
        }
        // The first fragment's total length (8 bytes after its header).
        if !at_tail && flags & !VALID == BEGIN {
            let off = DATA + index + 8;
            let total = peek_u64(&name, off);
            let content = len - 8;
            let totals = vec![
                0,
                1,
                content,
                content + 1,
                total - 1,
                total + 1,
                total * 2,
                1 << 30,
                (1 << 30) + 1,
                1 << 40,
                u64::MAX,
            ];
            for value in dedup(totals, total) {
                cases.push(Case {
                    group: "message totals",
                    field: format!("total length of record {k} @ data+{}", index + 8),
                    offset: off,
                    width: 8,
                    orig: total,
                    value,
                    role: Role::Consumer,
                    semaphores: false,
                    may_alter: false,
                });
            }
        }
    }
    assert!(saw_pad, "the case messages wrap with a PAD record");
    drop(guard);
    cases
}

/// MPMC: the number of cells and the cell table's entry of cell `j`, as
/// `CellTable::word` in `src/region.rs` computes it: with `L = cells / 4` lines, cell
/// `j` has entry `(j mod L) * 4 + j / L` (tables of under 8 cells are not strided).
fn cell_entry_offset(j: u64) -> u64 {
    let cells = CAPACITY / CELL;
    let entry = if cells >= 8 {
        let lines = cells / 4;
        (j % lines) * 4 + j / lines
    } else {
        j
    };
    DATA + CAPACITY + entry * 16
}

fn stamp_offset(pos: u64) -> u64 {
    cell_entry_offset(pos % (CAPACITY / CELL))
}

fn record_offset(pos: u64) -> u64 {
    stamp_offset(pos) + 8
}

fn cells_for(len: u64) -> u64 {
    len.div_ceil(CELL).max(1)
}

/// Whether `word` is a record word a correct producer could have written for a record
/// at `pos` (the rules of `frame::decode_cell`).
fn mpmc_word_legal(word: u64, pos: u64) -> bool {
    let n = CAPACITY / CELL;
    let len = word & 0xffff_ffff;
    let flags = (word >> 32) & 0xff;
    if word >> 40 != 0 || flags & VALID == 0 || flags & !KNOWN_FLAG_BITS != 0 {
        return false;
    }
    let room = n - pos % n;
    let flags = flags & !VALID;
    if flags & PAD != 0 {
        return flags == PAD && len != 0 && len <= room;
    }
    if len > MAX_RECORD || cells_for(len) > room {
        return false;
    }
    match flags {
        0 | END => true,
        f if f == BEGIN | END => true,
        BEGIN => len >= 8,
        f if f == END | ABORT => len == 0,
        _ => false,
    }
}

/// The data-region cases of an MPMC ring: the record word of each record between head
/// and tail, the stamps of record cells, inner cells and free cells, and the total
/// length of the first fragment.
fn mpmc_data_cases() -> Vec<Case> {
    let n = CAPACITY / CELL;
    let name = seg_name("sweep-mpmc-walk");
    let guard = SegGuard::new(&name);
    build(Kind::Mpmc, &name, false);
    let pos_mask = (1u64 << 56) - 1;
    let head = peek_u64(&name, HEAD) & pos_mask;
    let tail = peek_u64(&name, TAIL) & pos_mask;
    // (position, stamp, record word, cells)
    let mut records = Vec::new();
    let mut pos = head;
    while pos < tail {
        let stamp = peek_u64(&name, stamp_offset(pos));
        assert_eq!(stamp, pos + 1, "published record at {pos}");
        let word = peek_u64(&name, record_offset(pos));
        let flags = (word >> 32) & 0xff;
        let cells = if flags & PAD != 0 {
            word & 0xffff_ffff
        } else {
            cells_for(word & 0xffff_ffff)
        };
        records.push((pos, stamp, word, cells));
        pos += cells;
    }
    assert_eq!(pos, tail, "the records run from head to tail");
    let mut cases = Vec::new();
    let case = |group: &'static str, field: String, offset, orig, value, role, may_alter| Case {
        group,
        field,
        offset,
        width: 8,
        orig,
        value,
        role,
        semaphores: false,
        may_alter,
    };
    // Record words.
    for (k, &(pos, _, word, _)) in records.iter().enumerate() {
        let len = word & 0xffff_ffff;
        let flags = (word >> 32) & 0xff;
        let room = n - pos % n;
        let mk = |len: u64, flags: u64| (len & 0xffff_ffff) | (flags & 0xff) << 32;
        let values = vec![
            0,
            1,
            u64::MAX,
            mk(0, flags),
            mk(CAPACITY, flags),
            mk(CAPACITY + 1, flags),
            mk(u64::from(u32::MAX), flags),
            mk(MAX_RECORD, flags),
            mk(MAX_RECORD + 1, flags),
            mk(len + 1, flags),
            mk(len + CELL, flags),
            mk(room * CELL, flags),
            mk(room * CELL + 1, flags),
            word | 1 << 40,
            word | 0xff << 56,
            mk(len, 0),
            mk(len, flags & !VALID),
            mk(len, flags | 0x08),
            mk(len, flags | 0x10),
            mk(len, flags | 0x20),
            mk(len, 0xff),
            mk(0, VALID | PAD),
            mk(1, VALID | PAD),
            mk(room, VALID | PAD),
            mk(room + 1, VALID | PAD),
            mk(u64::from(u32::MAX), VALID | PAD),
            mk(len, VALID | BEGIN),
            mk(4, VALID | BEGIN),
            mk(len, VALID | END),
            mk(len, VALID),
            mk(len, VALID | ABORT),
            mk(0, VALID | END | ABORT),
            mk(len, VALID | BEGIN | END | ABORT),
        ];
        for value in dedup(values, word) {
            cases.push(case(
                "mpmc record words",
                format!(
                    "record word of record {k} (flags {flags:#x}, len {len}, cell {})",
                    pos % n
                ),
                record_offset(pos),
                word,
                value,
                Role::Consumer,
                mpmc_word_legal(value, pos),
            ));
        }
        if flags & !VALID == BEGIN {
            let off = DATA + (pos % n) * CELL;
            let total = peek_u64(&name, off);
            let content = len - 8;
            let totals = vec![
                0,
                1,
                content,
                content + 1,
                total - 1,
                total + 1,
                total * 2,
                1 << 30,
                (1 << 30) + 1,
                1 << 40,
                u64::MAX,
            ];
            for value in dedup(totals, total) {
                cases.push(case(
                    "message totals",
                    format!("total length of record {k} @ cell {}", pos % n),
                    off,
                    total,
                    value,
                    Role::Consumer,
                    false,
                ));
            }
        }
    }
    // Cursors moved inside records: `tail` and `head` to the second and the last cell
    // of every record of more than one cell. A consumer finds a cell that reads "not
    // published yet" there and waits (its timed calls time out); a producer may write
    // over the record (the exemptions in KNOWN_FAILURES).
    let cursor_words =
        [("tail", TAIL), ("head", HEAD)].map(|(c, off)| (c, off, peek_u64(&name, off)));
    for (k, &(pos, _, _, cells)) in records.iter().enumerate() {
        if cells < 2 {
            continue;
        }
        for inner in dedup(vec![pos + 1, pos + cells - 1], u64::MAX) {
            for (cursor, offset, word) in cursor_words {
                for role in [Role::Consumer, Role::Producer] {
                    cases.push(case(
                        "cursors in records",
                        format!(
                            "{cursor} inside record {k} (position {inner}, cell {}, record \
                             {pos}..{})",
                            inner % n,
                            pos + cells
                        ),
                        offset,
                        word,
                        (word & !pos_mask) | inner,
                        role,
                        false,
                    ));
                }
            }
        }
    }
    // Stamps: the first record (at head), the first fragment, an inner cell of it,
    // the last record, the cell at tail (free) and the one after it.
    let begin = records
        .iter()
        .find(|r| (r.2 >> 32) & 0xff == VALID | BEGIN)
        .expect("a first fragment");
    let last = records.last().expect("records");
    let stamp_cells = [
        ("stamp at head", head),
        ("stamp of the first fragment", begin.0),
        ("stamp of an inner cell", begin.0 + 1),
        ("stamp of the last record", last.0),
        ("stamp at tail", tail),
        ("stamp after tail", tail + 1),
    ];
    for (what, pos) in stamp_cells {
        let orig = peek_u64(&name, stamp_offset(pos));
        let values = vec![
            0,
            1,
            u64::MAX,
            pos.wrapping_sub(1),
            pos,
            pos + 1,
            pos + 2,
            pos + n,
            pos + n + 1,
            pos + n - 1,
            pos.wrapping_sub(n),
            pos.wrapping_sub(n) + 1,
            pos + 2 * n,
            pos + (1 << 40),
            (1 << 63) | pos,
        ];
        for value in dedup(values, orig) {
            for role in [Role::Consumer, Role::Producer] {
                cases.push(case(
                    "mpmc stamps",
                    format!("{what} (position {pos}, cell {})", pos % n),
                    stamp_offset(pos),
                    orig,
                    value,
                    role,
                    // "Published for this position": what the record word then says is
                    // the peer's business (it may be a stale record of the last lap).
                    value == pos + 1,
                ));
            }
        }
    }
    drop(guard);
    cases
}

// ---------------------------------------------------------------------------------
// The child's side
// ---------------------------------------------------------------------------------

/// A timed call must return within its timeout and [`SLACK`].
fn check_time(what: &str, t0: Instant, limit: Duration) -> Result<(), String> {
    let t = t0.elapsed();
    if t > limit {
        return Err(format!(
            "HANG: {what} returned after {t:?} (limit {limit:?})"
        ));
    }
    Ok(())
}

/// Checks a received message; returns the token to log.
fn check_received(msg: &[u8], valid: &[Vec<u8>], may_alter: bool) -> Result<&'static str, String> {
    if valid.iter().any(|v| v.as_slice() == msg) {
        return Ok("ok");
    }
    if may_alter {
        return Ok("altered");
    }
    Err(format!(
        "INVALID MESSAGE: received {} bytes that nobody sent: {:02x?}",
        msg.len(),
        &msg[..msg.len().min(24)]
    ))
}

/// Receives until the second timeout or the same error three times in a row (at most
/// 12 calls): timed calls, one zero-copy call, non-blocking calls.
fn drain(rx: &mut dyn Rx, log: &mut Vec<String>, may_alter: bool) -> Result<(), String> {
    let valid = valid_messages();
    let mut buf = Vec::new();
    let mut timeouts = 0;
    let mut last_err = String::new();
    let mut repeats = 0;
    for i in 0..12 {
        let t0 = Instant::now();
        let (op, r) = match i {
            1 => ("recv_ref_timeout", rx.recv_ref_timeout(OP_TIMEOUT)),
            4 | 8 => ("try_recv", rx.try_recv(&mut buf).map(|_| buf.clone())),
            _ => (
                "recv_timeout",
                rx.recv_timeout(&mut buf, OP_TIMEOUT).map(|_| buf.clone()),
            ),
        };
        check_time(op, t0, OP_TIMEOUT + SLACK)?;
        match r {
            Ok(msg) => {
                log.push(format!("{op}:{}", check_received(&msg, &valid, may_alter)?));
                repeats = 0;
            }
            Err(e) => {
                let v = variant(&e).to_string();
                log.push(format!("{op}:{v}"));
                if v == "Timeout" {
                    timeouts += 1;
                }
                repeats = if v == last_err { repeats + 1 } else { 0 };
                if timeouts >= 2 || repeats >= 2 {
                    break;
                }
                last_err = v;
            }
        }
    }
    Ok(())
}

fn consumer_role(kind: Kind, name: &str, may_alter: bool) -> Result<String, String> {
    let mut log = Vec::new();
    let t0 = Instant::now();
    let rx = open_consumer(kind, name);
    check_time("Consumer::open", t0, OPEN_LIMIT)?;
    match rx {
        Err(e) => log.push(format!("open:{}", variant(&e))),
        Ok(mut rx) => {
            log.push("open:Ok".to_string());
            drain(&mut *rx, &mut log, may_alter)?;
        }
    }
    Ok(log.join(" "))
}

fn producer_role(kind: Kind, name: &str, may_alter: bool) -> Result<String, String> {
    let mut log = Vec::new();
    let t0 = Instant::now();
    let tx = open_producer(kind, name);
    check_time("Producer::open", t0, OPEN_LIMIT)?;
    let mut tx = match tx {
        Err(e) => {
            log.push(format!("open:{}", variant(&e)));
            return Ok(log.join(" "));
        }
        Ok(tx) => tx,
    };
    log.push("open:Ok".to_string());
    // A consumer beside it, so that the producer sees one attached and really sends.
    let t0 = Instant::now();
    let rx = open_consumer(kind, name);
    check_time("Consumer::open", t0, OPEN_LIMIT)?;
    let rx = match rx {
        Err(e) => {
            log.push(format!("open_consumer:{}", variant(&e)));
            None
        }
        Ok(rx) => {
            log.push("open_consumer:Ok".to_string());
            Some(rx)
        }
    };
    for (i, &(seq, len)) in CHILD_SENT.iter().enumerate() {
        let msg = message(seq, len);
        let t0 = Instant::now();
        let (op, r) = match i {
            0 => ("try_send", tx.try_send(&msg)),
            1 => ("send_timeout", tx.send_timeout(&msg, OP_TIMEOUT)),
            _ => ("send_timeout", tx.send_timeout(&msg, SHORT_TIMEOUT)),
        };
        check_time(op, t0, OP_TIMEOUT + SLACK)?;
        log.push(match r {
            Ok(()) => format!("{op}:ok"),
            Err(e) => format!("{op}:{}", variant(&e)),
        });
    }
    // Detach the producer, so that the consumer ends with Disconnected, not timeouts.
    drop(tx);
    if let Some(mut rx) = rx {
        drain(&mut *rx, &mut log, may_alter)?;
    }
    Ok(log.join(" "))
}

// ---------------------------------------------------------------------------------
// The parent's side
// ---------------------------------------------------------------------------------

/// How a case ended, as the parent saw it.
#[derive(Debug)]
struct Ended {
    case: Case,
    /// `None`: a clean end; `Some(what)`: a failure.
    failure: Option<String>,
    report: String,
    took: Duration,
}

fn run_cases(kind: Kind, cases: Vec<Case>) -> Vec<Ended> {
    let test = format!("sweep-{}", kind.name());
    let mut procs = Procs::new(&test, Duration::from_secs(600));
    let mut pending = cases.into_iter().enumerate();
    // (case, child index, started, segment)
    let mut running: Vec<(Case, usize, Instant, SegGuard)> = Vec::new();
    let mut ended = Vec::new();
    loop {
        while running.len() < PARALLEL {
            let Some((i, case)) = pending.next() else {
                break;
            };
            let name = seg_name(&format!("sw-{}-{i}", kind.name()));
            let guard = SegGuard::new(&name);
            build(kind, &name, case.semaphores);
            let before = peek(&name, case.offset, case.width);
            assert_eq!(
                before, case.orig,
                "{}: the ring is not what the probe saw",
                case.field
            );
            poke(
                &name,
                case.offset,
                &case.value.to_le_bytes()[..case.width as usize],
            );
            let (role, may_alter) = (case.role, case.may_alter);
            let label = format!("{} {} = {:#x}", kind.name(), case.field, case.value);
            // glibc prints a line before it aborts in the known semaphore failures: keep
            // it out of the test's output (the child reports through its pipe anyway).
            let quiet = case.semaphores;
            let child = procs.spawn(&label, move || {
                if quiet {
                    silence_stderr();
                }
                match role {
                    Role::Consumer => consumer_role(kind, &name, may_alter),
                    Role::Producer => producer_role(kind, &name, may_alter),
                }
            });
            running.push((case, child, Instant::now(), guard));
        }
        if running.is_empty() {
            break;
        }
        let mut j = 0;
        while j < running.len() {
            let (_, child, started, _) = &running[j];
            let (child, started) = (*child, *started);
            let result = match procs.try_wait(child) {
                Some(r) => Some((r, false)),
                None if started.elapsed() > HANG_DEADLINE => Some((procs.kill(child), true)),
                None => None,
            };
            let Some((r, killed)) = result else {
                j += 1;
                continue;
            };
            let (case, _, started, guard) = running.swap_remove(j);
            drop(guard);
            let failure = if killed {
                Some(format!("HANG: killed after {HANG_DEADLINE:?}"))
            } else {
                match r.outcome {
                    Outcome::Exited(0) => None,
                    Outcome::Exited(1) => Some(r.report.clone()),
                    Outcome::Exited(2) => Some(format!("PANIC: {}", r.report)),
                    Outcome::Exited(c) => Some(format!("exit status {c}: {}", r.report)),
                    Outcome::Signaled(s) => Some(format!("SIGNAL {s:?}: {}", r.report)),
                }
            };
            ended.push(Ended {
                case,
                failure,
                report: r.report,
                took: started.elapsed(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    ended
}

/// Points the calling process's stderr at /dev/null.
fn silence_stderr() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: both descriptors are open; dup2 only replaces descriptor 2.
        unsafe { libc::dup2(null.as_raw_fd(), 2) };
    }
}

/// Whether exemption `entry` covers `case` of a `kind` ring.
fn exempts(entry: &KnownFailure, kind: Kind, case: &Case) -> bool {
    entry.kind == kind
        && entry.role.map_or(true, |r| r == case.role)
        && case.field.starts_with(entry.field)
        && entry.value.map_or(true, |v| v == case.value)
}

fn known_failure(kind: Kind, case: &Case) -> Option<&'static str> {
    KNOWN_FAILURES
        .iter()
        .find(|e| exempts(e, kind, case))
        .map(|e| e.reason)
}

/// The entries of `list` for `kind` that are no longer needed: one that matches no case
/// of the sweep, or that matches a case which passed. Each is a line saying which and
/// why; the sweep fails on any.
fn stale_exemptions(list: &[KnownFailure], kind: Kind, ended: &[Ended]) -> Vec<String> {
    let mut stale = Vec::new();
    for entry in list.iter().filter(|e| e.kind == kind) {
        let value = entry
            .value
            .map_or("every value".to_string(), |v| format!("{v:#x}"));
        let role = entry
            .role
            .map_or("both roles".to_string(), |r| format!("{r:?}"));
        let what = format!(
            "KNOWN_FAILURES entry ({}, {role}, {:?}, {value})",
            kind.name(),
            entry.field
        );
        let reason = entry.reason;
        let hit: Vec<&Ended> = ended
            .iter()
            .filter(|e| exempts(entry, kind, &e.case))
            .collect();
        if hit.is_empty() {
            stale.push(format!(
                "{what} matches no case of the sweep: remove it ({reason})"
            ));
        }
        for e in hit.iter().filter(|e| e.failure.is_none()) {
            stale.push(format!(
                "{what} exempts {:?} {} = {:#x}, which passed ({}): the exemption is no longer \
                 needed, remove it",
                e.case.role, e.case.field, e.case.value, e.report
            ));
        }
    }
    stale
}

/// Prints the summary and fails with every failure not in [`KNOWN_FAILURES`].
fn summarise(kind: Kind, ended: &[Ended], elapsed: Duration) {
    // Per group: cases, opened (by the first open), failures.
    let mut groups: BTreeMap<&str, [usize; 6]> = BTreeMap::new();
    // Per operation and outcome: count.
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut known = Vec::new();
    for e in ended {
        let g = groups.entry(e.case.group).or_default();
        g[0] += 1;
        match &e.failure {
            None => {
                if e.report.starts_with("open:Ok") {
                    g[1] += 1;
                } else {
                    g[2] += 1;
                }
                if e.report.contains(":altered") {
                    g[3] += 1;
                }
                for token in e.report.split(' ') {
                    *outcomes.entry(token.to_string()).or_default() += 1;
                }
            }
            Some(what) => {
                let how = what.split(':').next().unwrap_or(what);
                *outcomes.entry(format!("FAILED:{how}")).or_default() += 1;
                let line = format!(
                    "{} {:?} {} (offset {}) = {:#x} (was {:#x}): {what} [after {:?}]",
                    kind.name(),
                    e.case.role,
                    e.case.field,
                    e.case.offset,
                    e.case.value,
                    e.case.orig,
                    e.took
                );
                match known_failure(kind, &e.case) {
                    Some(reason) => {
                        g[4] += 1;
                        known.push(format!("{line}\n    known: {reason}"));
                    }
                    None => {
                        g[5] += 1;
                        failures.push(line);
                    }
                }
            }
        }
    }
    let mut out = format!(
        "\ncorruption sweep, {} ring: {} cases in {elapsed:.1?}\n\
         {:<18} {:>6} {:>7} {:>9} {:>8} {:>6} {:>7}\n",
        kind.name(),
        ended.len(),
        "group",
        "cases",
        "opened",
        "open err",
        "altered",
        "known",
        "FAILED"
    );
    let mut total = [0; 6];
    for (g, c) in &groups {
        out += &format!(
            "{g:<18} {:>6} {:>7} {:>9} {:>8} {:>6} {:>7}\n",
            c[0], c[1], c[2], c[3], c[4], c[5]
        );
        for (t, x) in total.iter_mut().zip(c) {
            *t += x;
        }
    }
    out += &format!(
        "{:<18} {:>6} {:>7} {:>9} {:>8} {:>6} {:>7}\n",
        "total", total[0], total[1], total[2], total[3], total[4], total[5]
    );
    out += "(opened: the first open succeeded; altered: a well-formed record or stamp was \
            written, and a message nobody sent was received, as allowed)\n";
    out += "outcomes (operation:result over the cases that ended cleanly; FAILED:how over \
            the others, known or not):\n";
    for (token, count) in &outcomes {
        out += &format!("  {token:<32} {count}\n");
    }
    if !known.is_empty() {
        out += &format!(
            "KNOWN FAILURES ({}):\n  {}\n",
            known.len(),
            known.join("\n  ")
        );
    }
    eprintln!("{out}");
    assert!(
        failures.is_empty(),
        "{} FAILURES in the {} corruption sweep:\n{}",
        failures.len(),
        kind.name(),
        failures.join("\n")
    );
    let stale = stale_exemptions(KNOWN_FAILURES, kind, ended);
    assert!(
        stale.is_empty(),
        "{} STALE EXEMPTIONS in the {} corruption sweep:\n{}",
        stale.len(),
        kind.name(),
        stale.join("\n")
    );
}

fn sweep(kind: Kind) {
    let t0 = Instant::now();
    let mut cases = header_cases(kind);
    cases.extend(match kind {
        Kind::Spsc => spsc_data_cases(),
        Kind::Mpmc => mpmc_data_cases(),
    });
    let ended = run_cases(kind, cases);
    summarise(kind, &ended, t0.elapsed());
}

/// The check that keeps [`KNOWN_FAILURES`] from going stale, on a made-up list and
/// made-up results: an entry that matches only failed cases stays; one that matches a
/// case that passed, or no case, is reported; entries of the other ring kind are not
/// looked at.
#[test]
fn stale_exemptions_are_reported() {
    let ended = |role: Role, field: &str, value: u64, failed: bool| Ended {
        case: Case {
            group: "cursors",
            field: field.to_string(),
            offset: TAIL,
            width: 8,
            orig: 103,
            value,
            role,
            semaphores: false,
            may_alter: false,
        },
        failure: failed.then(|| "INVALID MESSAGE: received 100 bytes that nobody sent".into()),
        report: "open:Ok open_consumer:Ok try_send:ok".to_string(),
        took: Duration::ZERO,
    };
    use Role::{Consumer, Producer};
    let results = [
        ended(Producer, "tail", 0x41, true),
        ended(Consumer, "tail", 0x41, false),
        ended(Producer, "tail", 0x66, false),
        ended(Producer, "head", 1, true),
        ended(Consumer, "head", 2, true),
    ];
    let entry = |role, field, value, reason| KnownFailure {
        kind: Kind::Mpmc,
        role,
        field,
        value,
        reason,
    };
    let list = [
        entry(Some(Producer), "tail", Some(0x41), "still needed"),
        entry(Some(Producer), "tail", Some(0x66), "passes now"),
        entry(None, "tail", Some(0x99), "matches nothing"),
        entry(None, "head", None, "still needed, for every value and role"),
        entry(
            None,
            "tail",
            Some(0x41),
            "fails as producer, passes as consumer",
        ),
        KnownFailure {
            kind: Kind::Spsc,
            ..entry(None, "nothing", None, "another kind's")
        },
    ];
    let stale = stale_exemptions(&list, Kind::Mpmc, &results);
    assert_eq!(stale.len(), 3, "{stale:#?}");
    let expect = [
        ("Producer, \"tail\", 0x66)", "no longer needed"),
        ("both roles, \"tail\", 0x99)", "matches no case"),
        (
            "both roles, \"tail\", 0x41)",
            "exempts Consumer tail = 0x41, which passed",
        ),
    ];
    for (line, (entry, why)) in stale.iter().zip(expect) {
        assert!(line.contains(entry) && line.contains(why), "{line}");
    }
    assert!(stale_exemptions(&list[..1], Kind::Mpmc, &results).is_empty());
    assert!(stale_exemptions(&list[3..4], Kind::Mpmc, &results).is_empty());
}

#[test]
fn spsc_corruption_sweep() {
    sweep(Kind::Spsc);
}

#[test]
fn mpmc_corruption_sweep() {
    sweep(Kind::Mpmc);
}

mod named_fields {
    //! Chosen corruptions of a POSIX segment, each opened in its own child: the error names
    //! the variant and the field.

    use crate::common::{
        check_message, message, offsets, peek_u64, poke, seg_name, Procs, SegGuard,
    };
    use shmlane::{spsc, Error, RecvError, RecvTimeoutError, RingOptions, TryRecvError};
    use std::time::Duration;

    const DEADLINE: Duration = Duration::from_secs(30);

    fn opts(capacity: usize) -> RingOptions {
        RingOptions::new(capacity)
    }

    /// How an open of a corrupted segment must fail.
    #[derive(Clone, Copy, Debug)]
    enum Want {
        /// No shmlane magic: `Error::NotARing` (issue 19: before, `Corrupt { field: "magic" }`).
        NotARing,
        Corrupt(&'static [&'static str]),
        Incompatible(&'static str),
        NotReady,
        /// Any error (but not success, a panic or a signal).
        AnyError,
    }

    impl Want {
        fn check(self, e: &Error) -> bool {
            match (self, e) {
                (Want::NotARing, Error::NotARing { .. }) => true,
                (Want::Corrupt(fields), Error::Corrupt { field, .. }) => fields.contains(field),
                (Want::Incompatible(f), Error::Incompatible { field, .. }) => field.starts_with(f),
                // A segment whose creator is gone (no init lock) is said abandoned at once.
                (Want::NotReady, Error::NotReady { .. } | Error::Abandoned { .. }) => true,
                (Want::AnyError, _) => true,
                _ => false,
            }
        }
    }

    /// Which endpoints to open.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Open {
        Both,
        Producer,
        Consumer,
    }

    /// One corruption: bytes written at an offset of a fresh 4 KiB ring (whose producer
    /// has detached), and what opening it must give.
    struct Case {
        what: &'static str,
        writes: Vec<(u64, Vec<u8>)>,
        open: Open,
        want: Want,
    }

    fn case(what: &'static str, offset: u64, bytes: &[u8], want: Want) -> Case {
        Case {
            what,
            writes: vec![(offset, bytes.to_vec())],
            open: Open::Both,
            want,
        }
    }

    /// Runs each case on its own segment, each open in its own child (concurrently).
    fn run_cases(test: &str, cases: Vec<Case>) {
        let mut guards = Vec::new();
        let mut procs = Procs::new(test, DEADLINE);
        for (i, c) in cases.iter().enumerate() {
            let name = seg_name(&format!("{test}-{i}"));
            guards.push(SegGuard::new(&name));
            drop(spsc::Producer::create(&name, &opts(4096)).unwrap());
            for (offset, bytes) in &c.writes {
                poke(&name, *offset, bytes);
            }
            let (what, open, want) = (c.what, c.open, c.want);
            procs.spawn(what, move || {
                let mut results = Vec::new();
                if open != Open::Consumer {
                    results.push(("Producer::open", spsc::Producer::open(&name).err()));
                }
                if open != Open::Producer {
                    results.push(("Consumer::open", spsc::Consumer::open(&name).err()));
                }
                let mut out = String::new();
                for (call, r) in results {
                    match r {
                        Some(e) if want.check(&e) => out += &format!("{call}: {e}; "),
                        Some(e) => {
                            return Err(format!("{what}: {call} gave {e:?}, expected {want:?}"))
                        }
                        None => return Err(format!("{what}: {call} succeeded, expected {want:?}")),
                    }
                }
                Ok(out)
            });
        }
        let reports = procs.wait_all_ok();
        for (c, r) in cases.iter().zip(reports) {
            println!("{:>32}: {r}", c.what);
        }
    }

    /// A segment whose header field was overwritten fails to open with the variant and
    /// the field name that name it.
    #[test]
    fn corrupted_header_fields_are_named() {
        use offsets::*;
        let hash = {
            let name = seg_name("sem-hdr-probe");
            let _g = SegGuard::new(&name);
            drop(spsc::Producer::create(&name, &opts(4096)).unwrap());
            peek_u64(&name, LAYOUT_HASH)
        };
        let u32b = |v: u32| v.to_le_bytes().to_vec();
        let u64b = |v: u64| v.to_le_bytes().to_vec();
        let mut cases = vec![
            case("magic", MAGIC, b"NOTSHMLN", Want::NotARing),
            case("magic (zero)", MAGIC, &u64b(0), Want::NotARing),
            case(
                "version 99",
                VERSION,
                &u32b(99),
                Want::Incompatible("version"),
            ),
            case(
                "version 0",
                VERSION,
                &u32b(0),
                Want::Incompatible("version"),
            ),
            case(
                "header_size",
                HEADER_SIZE,
                &u32b(8192),
                Want::Incompatible("header_size"),
            ),
            case(
                "layout_hash",
                LAYOUT_HASH,
                &u64b(hash ^ 1),
                Want::Incompatible("layout_hash"),
            ),
            case("abi", ABI, &u32b(4), Want::Incompatible("abi")),
            case("kind mpmc", KIND, &u32b(2), Want::Incompatible("kind")),
            case("kind unknown", KIND, &u32b(99), Want::Corrupt(&["kind"])),
            case(
                "capacity 4097",
                CAPACITY,
                &u64b(4097),
                Want::Corrupt(&["capacity"]),
            ),
            case(
                "capacity 0",
                CAPACITY,
                &u64b(0),
                Want::Corrupt(&["capacity"]),
            ),
            case(
                "capacity 32",
                CAPACITY,
                &u64b(32),
                Want::Corrupt(&["capacity"]),
            ),
            case(
                "capacity 2^41",
                CAPACITY,
                &u64b(1 << 41),
                Want::Corrupt(&["capacity"]),
            ),
            // Another power of two: inconsistent with segment_len (either may be named).
            case(
                "capacity 2048",
                CAPACITY,
                &u64b(2048),
                Want::Corrupt(&["capacity", "segment_len"]),
            ),
            case(
                "capacity 8192",
                CAPACITY,
                &u64b(8192),
                Want::Corrupt(&["capacity", "segment_len"]),
            ),
            case(
                "cell_size",
                CELL_SIZE,
                &u64b(64),
                Want::Corrupt(&["cell_size"]),
            ),
            case(
                "max_record 4096",
                MAX_RECORD,
                &u64b(4096),
                Want::Corrupt(&["max_record"]),
            ),
            case(
                "max_record 0",
                MAX_RECORD,
                &u64b(0),
                Want::Corrupt(&["max_record"]),
            ),
            case(
                "max_record 1024",
                MAX_RECORD,
                &u64b(1024),
                Want::Corrupt(&["max_record"]),
            ),
            case("flags", FLAGS, &u64b(1 << 9), Want::Incompatible("flags")),
            case(
                "flags: notifier kind",
                FLAGS,
                &u64b(7),
                Want::Incompatible("flags"),
            ),
            case(
                "data_offset",
                DATA_OFFSET,
                &u64b(8192),
                Want::Corrupt(&["data_offset"]),
            ),
            case(
                "segment_len",
                SEGMENT_LEN,
                &u64b(1 << 40),
                Want::Corrupt(&["segment_len"]),
            ),
            case("state poisoned", STATE, &u32b(3), Want::NotReady),
            // Waits READY_WAIT (2 s) for a creator that never finishes.
            case("state uninit", STATE, &u32b(0), Want::NotReady),
            case("state garbage", STATE, &u32b(0xdead), Want::AnyError),
        ];
        // A header that claims more than the file holds: consistent capacity and length.
        cases.push(Case {
            what: "capacity past the file end",
            writes: vec![
                (CAPACITY, u64b(1 << 20)),
                (SEGMENT_LEN, u64b(4096 + (1 << 20))),
            ],
            open: Open::Both,
            want: Want::Corrupt(&["capacity"]),
        });
        cases.push(Case {
            what: "capacity and max_record past the file end",
            writes: vec![
                (CAPACITY, u64b(1 << 20)),
                (SEGMENT_LEN, u64b(4096 + (1 << 20))),
                (MAX_RECORD, u64b(1 << 19)),
            ],
            open: Open::Both,
            want: Want::Corrupt(&["capacity"]),
        });
        run_cases("sem-hdr", cases);
    }

    /// Corrupted cursors, endpoint states and record headers give errors, on open or on
    /// the first receive, never a panic or an out-of-bounds access.
    #[test]
    fn corrupted_cursors_and_records_are_errors() {
        use offsets::*;
        let u32b = |v: u32| v.to_le_bytes().to_vec();
        let u64b = |v: u64| v.to_le_bytes().to_vec();
        let cases = vec![
            case("head misaligned", HEAD, &u64b(3), Want::Corrupt(&["head"])),
            case("tail misaligned", TAIL, &u64b(13), Want::Corrupt(&["tail"])),
            case(
                "tail past head + capacity",
                TAIL,
                &u64b(3 * 4096),
                Want::Corrupt(&["tail"]),
            ),
            Case {
                what: "head past tail",
                writes: vec![(HEAD, u64b(64)), (TAIL, u64b(8))],
                open: Open::Both,
                want: Want::Corrupt(&["tail"]),
            },
            Case {
                what: "producer endpoint state",
                writes: vec![(ENDPOINTS, u32b(77))],
                open: Open::Producer,
                want: Want::Corrupt(&["endpoint state"]),
            },
            Case {
                what: "consumer endpoint state",
                writes: vec![(ENDPOINTS + ENDPOINT_SLOT_SIZE, u32b(77))],
                open: Open::Consumer,
                want: Want::Corrupt(&["endpoint state"]),
            },
            Case {
                what: "record header at tail",
                writes: vec![(DATA, u64b(0xffff_ffff_ffff_ffff))],
                open: Open::Producer,
                want: Want::Corrupt(&["record header at tail"]),
            },
        ];
        run_cases("sem-cur", cases);

        // Record headers the consumer reads: garbage, a length past the ring, a header
        // tagged for another position. The first message is intact; the second is not.
        let test = "sem-rec";
        let mut procs = Procs::new(test, DEADLINE);
        let mut guards = Vec::new();
        let bad_headers: [(&str, u64); 4] = [
            ("garbage", 0x1234_5678_9abc_def0),
            (
                "length past the ring",
                (0x83u64 << 32) | 0xffff_ff00 | ((64 / 8) << 40),
            ),
            ("wrong position tag", (0x83u64 << 32) | 16 | (12345 << 40)),
            ("unknown flag bits", (0xa3u64 << 32) | 16 | ((64 / 8) << 40)),
        ];
        for (i, (what, word)) in bad_headers.into_iter().enumerate() {
            let name = seg_name(&format!("{test}-{i}"));
            guards.push(SegGuard::new(&name));
            let mut tx = spsc::Producer::create(&name, &opts(4096)).unwrap();
            tx.send(&message(0, 56)).unwrap(); // record of 64 bytes at position 0
            tx.send(&message(1, 56)).unwrap(); // at position 64
            drop(tx);
            poke(&name, DATA + 64, &word.to_le_bytes());
            procs.spawn(what, move || {
                let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
                let mut buf = Vec::new();
                assert_eq!(rx.try_recv(&mut buf), Ok(56));
                check_message(&buf, 0, 56)?;
                for _ in 0..2 {
                    match rx.try_recv(&mut buf) {
                        Err(TryRecvError::Corrupt(c)) => assert_eq!(c.position, 64, "{c}"),
                        other => return Err(format!("{what}: try_recv gave {other:?}")),
                    }
                }
                match rx.recv_timeout(&mut buf, Duration::from_millis(10)) {
                    Err(RecvTimeoutError::Corrupt(_)) => {}
                    other => return Err(format!("{what}: recv_timeout gave {other:?}")),
                }
                match rx.recv(&mut buf) {
                    Err(RecvError::Corrupt(c)) => Ok(format!("{c}")),
                    other => Err(format!("{what}: recv gave {other:?}")),
                }
            });
        }
        for r in procs.wait_all_ok() {
            println!("{r}");
        }
    }
}

mod sysv {
    //! The same for SysV segments (written through an attachment of their own). Every SysV
    //! segment is removed by a guard.

    use crate::common::backings::{sysv_key, SysVGuard};
    use crate::common::{offsets, Procs};
    use shmlane::{spsc, Error, RingOptions};
    use std::time::Duration;

    const DEADLINE: Duration = Duration::from_secs(30);

    /// The id of the SysV segment with `key`, if there is one.
    fn shm_id(key: i32) -> Option<i32> {
        // SAFETY: shmget takes no pointers; size 0 and no IPC_CREAT only look it up.
        let id = unsafe { libc::shmget(key, 0, 0) };
        (id >= 0).then_some(id)
    }

    /// `shmctl(IPC_STAT)` of segment `id`: `(size, attachments, marked for removal)`, or
    /// `None` once the segment is gone.
    fn shm_stat(id: i32) -> Option<(usize, libc::shmatt_t, bool)> {
        let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::zeroed();
        // SAFETY: `ds` is a writable shmid_ds for IPC_STAT to fill.
        if unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: IPC_STAT filled it (and all-zero is a valid shmid_ds anyway).
        let ds = unsafe { ds.assume_init() };
        // SHM_DEST (<linux/shm.h>; libc does not define it): marked for removal.
        const SHM_DEST: u32 = 0o1000;
        let dest = u32::from(ds.shm_perm.mode) & SHM_DEST != 0;
        Some((ds.shm_segsz, ds.shm_nattch, dest))
    }

    /// Writes `bytes` at `offset` of the SysV segment with `key` (attach, copy, detach).
    fn sysv_poke(key: i32, offset: usize, bytes: &[u8]) {
        let id = shm_id(key).expect("segment exists");
        let (size, _, _) = shm_stat(id).expect("IPC_STAT");
        assert!(offset + bytes.len() <= size);
        // SAFETY: a fresh attachment at an address the kernel picks.
        let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        assert_ne!(
            p as usize,
            usize::MAX,
            "shmat: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `offset + len` is inside the segment (checked above); no endpoint of this
        // process has it mapped, and the test's children are not running yet.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>().add(offset), bytes.len());
            libc::shmdt(p);
        }
    }

    /// Makes a SysV segment of `len` zero bytes with `key`, as something other than shmlane.
    fn foreign_sysv(key: i32, len: usize) {
        // SAFETY: shmget takes no pointers.
        let id = unsafe { libc::shmget(key, len, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    }

    /// How an open of a broken segment must fail.
    #[derive(Clone, Copy, Debug)]
    enum Want {
        /// No shmlane magic: `Error::NotARing` (issue 19: before, `Corrupt { field: "magic" }`).
        NotARing,
        Corrupt(&'static str),
        Incompatible(&'static str),
        NotReady,
    }

    impl Want {
        fn check(self, e: &Error) -> bool {
            match (self, e) {
                (Want::NotARing, Error::NotARing { .. }) => true,
                (Want::Corrupt(f), Error::Corrupt { field, .. }) => *field == f,
                (Want::Incompatible(f), Error::Incompatible { field, .. }) => field.starts_with(f),
                (Want::NotReady, Error::NotReady { .. } | Error::Abandoned { .. }) => true,
                _ => false,
            }
        }
    }

    /// A SysV segment whose header a buggy peer overwrote (written through its own
    /// attachment) fails to open with the error that names the field; so do a SysV
    /// segment smaller than a header and one that shmlane never initialised. No SIGBUS,
    /// no panic. Each open runs in its own child, concurrently.
    #[test]
    fn sysv_corrupted_header_is_named() {
        use offsets::*;
        let u32b = |v: u32| v.to_le_bytes().to_vec();
        let u64b = |v: u64| v.to_le_bytes().to_vec();
        type Writes = Vec<(u64, Vec<u8>)>;
        let cases: Vec<(&str, Writes, Want)> = vec![
            ("magic", vec![(MAGIC, b"NOTSHMLN".to_vec())], Want::NotARing),
            (
                "version",
                vec![(VERSION, u32b(99))],
                Want::Incompatible("version"),
            ),
            ("kind", vec![(KIND, u32b(99))], Want::Corrupt("kind")),
            (
                "capacity",
                vec![(CAPACITY, u64b(1000))],
                Want::Corrupt("capacity"),
            ),
            (
                "max_record",
                vec![(MAX_RECORD, u64b(8))],
                Want::Corrupt("max_record"),
            ),
            (
                "segment_len",
                vec![(SEGMENT_LEN, u64b(1 << 40))],
                Want::Corrupt("segment_len"),
            ),
            ("state", vec![(STATE, u32b(0xdead))], Want::Corrupt("state")),
            ("state poisoned", vec![(STATE, u32b(3))], Want::NotReady),
            (
                "capacity past the segment end",
                vec![
                    (CAPACITY, u64b(1 << 20)),
                    (SEGMENT_LEN, u64b(4096 + (1 << 20))),
                ],
                Want::Corrupt("capacity"),
            ),
        ];
        let test = "bk-sysv-hdr";
        let mut guards = Vec::new();
        let mut procs = Procs::new(test, DEADLINE);
        let mut whats = Vec::new();
        let mut spawn = |procs: &mut Procs, what: String, key: i32, want: Want| {
            whats.push(what.clone());
            procs.spawn(&what.clone(), move || {
                let mut out = String::new();
                for (call, r) in [
                    ("Producer::open_sysv", spsc::Producer::open_sysv(key).err()),
                    ("Consumer::open_sysv", spsc::Consumer::open_sysv(key).err()),
                ] {
                    match r {
                        Some(e) if want.check(&e) => out += &format!("{call}: {e}; "),
                        Some(e) => {
                            return Err(format!("{what}: {call} gave {e:?}, expected {want:?}"))
                        }
                        None => return Err(format!("{what}: {call} succeeded, expected {want:?}")),
                    }
                }
                Ok(out)
            });
        };
        for (i, (what, writes, want)) in cases.into_iter().enumerate() {
            let key = sysv_key(&format!("{test}-{i}"));
            guards.push(SysVGuard::new(key));
            spsc::create_ring_sysv(key, &RingOptions::new(4096)).unwrap();
            for (offset, bytes) in writes {
                sysv_poke(key, offset as usize, &bytes);
            }
            spawn(&mut procs, what.to_string(), key, want);
        }
        // Not made by shmlane: smaller than a header, and a header's worth of zeros (never
        // READY: waits the 2 s READY_WAIT).
        for (what, len, want) in [
            ("a 100-byte segment", 100, Want::Corrupt("segment size")),
            ("an all-zero segment", 8192, Want::NotReady),
        ] {
            let key = sysv_key(&format!("{test}-{what}"));
            guards.push(SysVGuard::new(key));
            foreign_sysv(key, len);
            spawn(&mut procs, what.to_string(), key, want);
        }
        for (what, r) in whats.iter().zip(procs.wait_all_ok()) {
            println!("{what:>30}: {r}");
        }
    }
}
