//! Looking at rings from the outside, without attaching to them: [`inspect`] one ring,
//! [`list`] the rings on this host, [`remove_stale`] the ones nobody uses any more.
//!
//! ```no_run
//! // What is in the ring "/frames", and who uses it?
//! let info = shmlane::inspect::inspect("/frames")?;
//! println!(
//!     "{} ring, {} bytes, {} in use, producer alive: {}",
//!     info.kind,
//!     info.capacity,
//!     info.used.unwrap_or(0),
//!     info.endpoints.iter().any(|e| e.role == shmlane::inspect::EndpointRole::Producer && e.alive),
//! );
//! for problem in &info.problems {
//!     eprintln!("header problem: {problem}");
//! }
//!
//! // Every ring on this host, and the removal of those whose processes are gone
//! // (a ring holding messages its producer left for a consumer to come is kept).
//! for ring in shmlane::inspect::list()? {
//!     println!("{} {} stale: {}", ring.name, ring.capacity, ring.is_stale());
//! }
//! let removed = shmlane::inspect::remove_stale()?;
//! # Ok::<(), shmlane::Error>(())
//! ```
//!
//! # How a ring is read
//!
//! Nothing here attaches as an endpoint, takes a lock or writes a byte of the segment.
//! The 4096-byte header is copied into private memory first (`pread` on the POSIX
//! object's file; for SysV, by the kernel, through a pipe, from a read-only
//! attachment: no Rust load of mixed widths over its atomics), and read from that copy through the header's own fields, with the same
//! [validation](crate::Error::Corrupt) endpoints run when they open a ring. So a peer
//! that truncates the file while we look can make the copy fail, never raise SIGBUS;
//! and a copy taken while endpoints run is a snapshot whose fields may be from slightly
//! different moments (each 8-byte field is whole).
//!
//! A header that does not validate is still described: [`RingInfo::problems`] says
//! what is wrong with it, field by field. Only a segment that is not a shmlane ring at
//! all (wrong magic, shorter than a header) is an error.
//!
//! # Liveness
//!
//! An endpoint is alive if its slot says attached and the process whose pid the slot
//! records is still running (not a zombie; with the same start time, where the slot
//! records one). Pids are those of the writer's PID namespace: from another namespace
//! (a container that shares `/dev/shm` but not its pids), liveness is unreliable.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::sys::os::{shm_open, Errno, Mode, OFlag};
use crate::sys::sysv;

use crate::header::{
    layout_hash, word_pid, word_state, Header, HeaderFault, ABI, ENDPOINT_ATTACHED,
    ENDPOINT_ATTACHING, ENDPOINT_DEAD, ENDPOINT_DETACHED, ENDPOINT_RECOVERING, ENDPOINT_VACANT,
    FLAG_ASYMMETRIC_FENCES, HEADER_SIZE, KIND_MPMC, KIND_SPSC, LAYOUT_VERSION, MAGIC,
    NOTIFIER_MASK, NOTIFIER_SEMAPHORE, ROLE_CONSUMER, ROLE_PRODUCER, STATE_INIT, STATE_POISONED,
    STATE_READY,
};
use crate::segment::shared::{io_err, pread_header, HeaderCopy};
use crate::segment::sysv::segment_name;
use crate::sync::Ordering;
use crate::{Backing, Error, Notifier};

/// Where POSIX shared-memory objects live on Linux.
pub const SHM_DIR: &str = "/dev/shm";

/// What a ring's header says, in words: parameters, state, cursors, endpoints.
///
/// Made by [`inspect`], [`list`] and [`Probe::read`] from one copy of the header.
/// Values are as found: where [`problems`](Self::problems) is not empty, some of them
/// are wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingInfo {
    /// The ring's name: `/name` for a POSIX ring, `sysv:0x<key>` for a SysV one.
    pub name: String,
    /// The kind of shared memory it lives in (never [`Backing::Memfd`]: a memfd has no
    /// name to find it by).
    pub backing: Backing,
    /// The file behind a POSIX ring (`/dev/shm/name`); `None` for SysV.
    pub path: Option<PathBuf>,
    /// Size of the segment (`fstat`, or `shmctl(IPC_STAT)` for SysV), in bytes.
    pub segment_size: u64,
    /// Owner of the segment (file owner, or SysV `shm_perm.uid`).
    pub owner_uid: u32,
    /// Permission bits of the segment (e.g. `0o600`).
    pub mode: u32,
    /// SysV only: how many processes have the segment attached (`shm_nattch`), so 0
    /// means nobody uses it whatever the endpoint table says. `None` for POSIX.
    pub attachments: Option<u64>,
    /// Where the creator is in publishing the header.
    pub state: SegmentState,
    /// SPSC byte ring or MPMC cell ring.
    pub kind: RingKind,
    /// Header layout version the creator wrote.
    pub version: u32,
    /// Whether the layout (version, header size, layout hash, word size, endianness)
    /// is the one this build of shmlane reads and writes. If not, the other fields are
    /// read with this build's layout and may mean nothing.
    pub layout_matches: bool,
    /// Size of the data region in bytes (a power of two in a valid header).
    pub capacity: u64,
    /// Cell size of an MPMC ring; 0 for SPSC.
    pub cell_size: u64,
    /// How many endpoints may be attached at once: 2 for SPSC, up to 32 for MPMC.
    pub max_endpoints: u32,
    /// Largest record (header, payload and padding) in bytes.
    pub max_record: u64,
    /// Default cap on a message a consumer reassembles in memory.
    pub max_message: u64,
    /// Raw creation flags.
    pub flags: u64,
    /// What sleeping endpoints sleep on; `None` for a notifier kind this build does not
    /// know.
    pub notifier: Option<Notifier>,
    /// Whether notifiers issue no fence and sleepers pay with `membarrier` instead.
    pub asymmetric_fences: bool,
    /// Process id of the creator (0 if not written yet).
    pub creator_pid: u32,
    /// User id of the creator.
    pub creator_uid: u32,
    /// Creator's start time, in clock ticks since boot (`/proc/PID/stat` field 22);
    /// 0 if unknown.
    pub creator_start_time: u64,
    /// Whether the creator process is still running (same pid and start time).
    pub creator_alive: Liveness,
    /// The consumers' position. SPSC: bytes released since creation, published
    /// lazily (every quarter ring, when the consumer catches up, and on detach), so it
    /// can trail the consumer's real position by up to a quarter of the capacity.
    /// MPMC: cells claimed by consumers since creation.
    pub head: u64,
    /// The producers' position: bytes (SPSC) or cells (MPMC) written or claimed since
    /// creation.
    pub tail: u64,
    /// Bytes in the ring that no consumer has taken yet (`tail - head`, in bytes): the
    /// fill level and the consumers' lag. `None` if the cursors are inconsistent (see
    /// [`problems`](Self::problems)).
    pub used: Option<u64>,
    /// MPMC: the endpoint slot of the producer writing a message in fragments, which
    /// holds the other producers up until it ends (the writer-stream slot).
    pub writer_stream: Option<usize>,
    /// MPMC: the endpoint slot of the consumer reading a message in fragments (the
    /// reader-stream slot).
    pub reader_stream: Option<usize>,
    /// MPMC: producers attached now, and attaches ever (`None` for SPSC).
    pub producers: Option<RoleCount>,
    /// MPMC: consumers attached now, and attaches ever (`None` for SPSC).
    pub consumers: Option<RoleCount>,
    /// The "data available" event count (consumers sleep on it).
    pub data_ready: EventCountInfo,
    /// The "space available" event count (producers sleep on it).
    pub space_ready: EventCountInfo,
    /// The endpoint table: every slot that is or was in use (for an SPSC ring, the
    /// producer and consumer slots always).
    pub endpoints: Vec<EndpointInfo>,
    /// What is wrong with the header, one sentence per fault; empty when it
    /// validates.
    pub problems: Vec<String>,
}

/// Where the creator is in publishing the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SegmentState {
    /// Nothing written yet.
    Uninitialised,
    /// The creator is filling the header (or died doing so).
    Initialising,
    /// Published: endpoints may use it.
    Ready,
    /// Marked unusable.
    Poisoned,
    /// A state word no shmlane writes.
    Unknown(u32),
}

/// The kind of ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RingKind {
    /// One producer, one consumer, a byte ring.
    Spsc,
    /// Many producers and consumers, a cell ring.
    Mpmc,
    /// A kind word no shmlane writes.
    Unknown(u32),
}

/// What an endpoint slot is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndpointRole {
    /// It writes messages.
    Producer,
    /// It reads messages.
    Consumer,
    /// A slot whose role this build cannot tell.
    Unknown,
}

/// The state word of an endpoint slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndpointState {
    /// Never used.
    Vacant,
    /// An endpoint attached and has not detached (it may have died without detaching:
    /// see [`EndpointInfo::alive`]).
    Attached,
    /// The endpoint that was attached detached cleanly.
    Detached,
    /// An endpoint is attaching (it has taken the slot and is writing its fields).
    Attaching,
    /// The endpoint died; another is recovering what it left (the slot's pid is the
    /// recoverer's).
    Recovering,
    /// The endpoint is proven dead and what it left is not wholly recovered yet (a
    /// recovery found it undecidable for now): the next endpoint to look finishes it.
    Dead,
    /// A state word no shmlane writes.
    Unknown(u32),
}

/// Whether a process is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Liveness {
    /// It is running.
    Alive,
    /// It has exited (or another process has its pid now).
    Dead,
    /// No pid recorded.
    Unknown,
}

/// One entry of the endpoint table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointInfo {
    /// Index in the table.
    pub slot: usize,
    /// Producer or consumer.
    pub role: EndpointRole,
    /// The slot's state word.
    pub state: EndpointState,
    /// Pid of the process that attached last (0 if none ever did).
    pub pid: u32,
    /// Its start time in clock ticks since boot (0 if not recorded): with the pid it
    /// names one process life.
    pub start_time: u64,
    /// How many times an endpoint attached to this slot.
    pub generation: u64,
    /// Attached, and its process still runs.
    pub alive: bool,
}

/// The attach counter of one role of an MPMC ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RoleCount {
    /// Endpoints of the role attached now.
    pub attached: u32,
    /// Endpoints of the role that ever attached (wraps at 2^32).
    pub ever: u32,
}

/// One event count: waiters register, notifiers take them one at a time (they become
/// "woken" until they leave) or all at once (a new epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EventCountInfo {
    /// How many times every sleeper was woken at once (wraps at 2^32).
    pub epoch: u32,
    /// Endpoints registered as sleeping (or about to sleep) now, not yet woken.
    pub waiters: u32,
    /// Endpoints woken one at a time that have not yet left the event count.
    pub woken: u32,
}

impl RingInfo {
    /// Whether the header validated: no [`problems`](Self::problems).
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    /// How many endpoints are attached and alive.
    pub fn live_endpoints(&self) -> usize {
        self.endpoints.iter().filter(|e| e.alive).count()
    }

    /// The slot of the first endpoint with `role`, if the table has one.
    pub fn endpoint(&self, role: EndpointRole) -> Option<&EndpointInfo> {
        self.endpoints.iter().find(|e| e.role == role)
    }

    /// Whether the ring holds messages left on purpose for a consumer that has not come
    /// yet: data is waiting in it ([`used`](Self::used) above 0), the header
    /// validates, and every endpoint that ever attached has detached cleanly (each
    /// slot vacant or detached: none is attached, alive or dead, and none died and
    /// was left to recover).
    ///
    /// A producer that sends and exits without waiting for its consumer leaves this
    /// (`echo hello | shmlane send x` before any `shmlane recv x`); a consumer that
    /// attaches later reads it. Data that an endpoint which died left behind is not
    /// counted: a producer that died may have left a message half-written, a
    /// consumer that died took part of the exchange with it, and what is left is the
    /// remains of an interrupted exchange, not a delivery to keep.
    ///
    /// ```
    /// # let name = format!("/shmlane-doc-undelivered-{}", std::process::id());
    /// let mut tx = shmlane::spsc::Producer::create(&name, &shmlane::RingOptions::new(4096))?;
    /// tx.send(b"hello")?;
    /// drop(tx); // detached cleanly, "hello" still in the ring
    /// let info = shmlane::inspect::inspect(&name)?;
    /// assert!(info.holds_undelivered() && !info.is_stale());
    /// # shmlane::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn holds_undelivered(&self) -> bool {
        self.used.is_some_and(|u| u > 0)
            && self.is_valid()
            && self
                .endpoints
                .iter()
                .all(|e| matches!(e.state, EndpointState::Vacant | EndpointState::Detached))
    }

    /// Whether nobody can be using the ring any more, so removing it takes nothing
    /// from anyone: it holds no undelivered messages
    /// ([`holds_undelivered`](Self::holds_undelivered): those wait for a consumer,
    /// and only removing the ring by name drops them), no endpoint is attached and
    /// alive, no process has a SysV segment attached, and its creator is not still
    /// initialising it (or, once it is ready, still running: a process that made a
    /// ring with [`spsc::create_ring`](crate::spsc::create_ring) and waits for its
    /// endpoints keeps it).
    ///
    /// So a ring whose endpoints all died (killed, crashed) is stale whatever it
    /// holds, and so is an empty one whose endpoints all left.
    pub fn is_stale(&self) -> bool {
        if self.holds_undelivered() {
            return false;
        }
        if self.attachments == Some(0) {
            return true;
        }
        if self.live_endpoints() > 0 {
            return false;
        }
        match self.state {
            // A creator between shm_open and the end of `init`: unless it is known to
            // be dead, it is about to use the ring.
            SegmentState::Uninitialised | SegmentState::Initialising => {
                self.creator_alive == Liveness::Dead
            }
            _ => self.creator_alive != Liveness::Alive,
        }
    }
}

macro_rules! display_as_str {
    ($t:ty { $($pat:pat => $s:expr,)* }) => {
        impl $t {
            /// The name used in `shmlane inspect` and its JSON.
            pub fn as_str(&self) -> &'static str {
                match self { $($pat => $s,)* }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

display_as_str!(SegmentState {
    SegmentState::Uninitialised => "uninitialised",
    SegmentState::Initialising => "initialising",
    SegmentState::Ready => "ready",
    SegmentState::Poisoned => "poisoned",
    SegmentState::Unknown(_) => "unknown",
});
display_as_str!(RingKind {
    RingKind::Spsc => "spsc",
    RingKind::Mpmc => "mpmc",
    RingKind::Unknown(_) => "unknown",
});
display_as_str!(EndpointRole {
    EndpointRole::Producer => "producer",
    EndpointRole::Consumer => "consumer",
    EndpointRole::Unknown => "unknown",
});
display_as_str!(EndpointState {
    EndpointState::Vacant => "vacant",
    EndpointState::Attached => "attached",
    EndpointState::Detached => "detached",
    EndpointState::Attaching => "attaching",
    EndpointState::Recovering => "recovering",
    EndpointState::Dead => "dead",
    EndpointState::Unknown(_) => "unknown",
});
display_as_str!(Liveness {
    Liveness::Alive => "alive",
    Liveness::Dead => "dead",
    Liveness::Unknown => "unknown",
});

// ---------------------------------------------------------------------------------
// Liveness
// ---------------------------------------------------------------------------------

/// Whether the process `pid` runs (not a zombie), and, if `start_time` is given,
/// started at that time (clock ticks since boot), so that a pid reused by a new
/// process does not count. Read from `/proc/PID/stat`; where that cannot be read
/// (hidden by `hidepid`, no `/proc`), `kill(pid, 0)` (which cannot tell a zombie or a
/// reused pid).
pub(crate) fn process_alive(pid: u32, start_time: Option<u64>) -> bool {
    // A pid no process can have is no process; any other is alive unless proven gone,
    // by the same test the endpoints use on each other (`liveness.rs`).
    i32::try_from(pid).is_ok_and(|p| p > 0)
        && !crate::sys::procfs::process_gone(pid, start_time.unwrap_or(0))
}

// ---------------------------------------------------------------------------------
// Reading a header
// ---------------------------------------------------------------------------------

/// The facts about a segment that do not come from its header.
struct Meta {
    name: String,
    backing: Backing,
    path: Option<PathBuf>,
    size: u64,
    uid: u32,
    mode: u32,
    attachments: Option<u64>,
    /// Per endpoint slot, whether its OFD lock is held (by someone other than us),
    /// where the segment is a file we could ask; `None`: judge by pid.
    locks: Option<Vec<Option<bool>>>,
}

fn not_shmlane(name: &str, field: &'static str, value: u64, reason: &'static str) -> Error {
    Error::Corrupt {
        name: name.to_string(),
        field,
        value,
        reason,
    }
}

/// Describes the header `h` (a private copy) of the segment `meta`.
fn describe(meta: Meta, h: &Header) -> Result<RingInfo, Error> {
    let r = Ordering::Relaxed;
    let magic = h.magic.load(r);
    let state_word = h.state.load(Ordering::Acquire);
    if magic != MAGIC {
        // A creator between ftruncate and writing the magic leaves zeros.
        if magic == 0 && state_word <= STATE_INIT {
            return Err(Error::NotReady {
                name: meta.name,
                state: state_word,
                waited: std::time::Duration::ZERO,
            });
        }
        return Err(Error::NotARing {
            name: meta.name,
            found: magic,
        });
    }
    let state = match state_word {
        0 => SegmentState::Uninitialised,
        STATE_INIT => SegmentState::Initialising,
        STATE_READY => SegmentState::Ready,
        STATE_POISONED => SegmentState::Poisoned,
        other => SegmentState::Unknown(other),
    };
    let kind_word = h.kind.load(r);
    let kind = match kind_word {
        KIND_SPSC => RingKind::Spsc,
        KIND_MPMC => RingKind::Mpmc,
        other => RingKind::Unknown(other),
    };
    let version = h.version.load(r);
    let layout_matches = version == LAYOUT_VERSION
        && h.header_size.load(r) as usize == HEADER_SIZE
        && h.layout_hash.load(r) == layout_hash()
        && h.abi.load(r) == ABI;
    let capacity = h.capacity.load(r);
    let flags = h.flags.load(r);
    let notifier = match flags & NOTIFIER_MASK {
        0 => Some(Notifier::Futex),
        NOTIFIER_SEMAPHORE => Some(Notifier::Semaphore),
        _ => None,
    };
    let creator_pid = h.creator_pid.load(r);
    let creator_start_time = h.creator_start_time.load(r);
    let creator_alive = if creator_pid == 0 {
        Liveness::Unknown
    } else if process_alive(
        creator_pid,
        (creator_start_time != 0).then_some(creator_start_time),
    ) {
        Liveness::Alive
    } else {
        Liveness::Dead
    };

    let mut problems = Vec::new();
    // The validation endpoints run on open; it stops at the first fault.
    let expected_kind = if kind_word == KIND_MPMC {
        KIND_MPMC
    } else {
        KIND_SPSC
    };
    match h.validate(expected_kind, meta.size) {
        // (The magic was checked above.)
        Ok(_) | Err(HeaderFault::NotReady { .. } | HeaderFault::NotARing { .. }) => {}
        Err(HeaderFault::Incompatible {
            field,
            found,
            expected,
        }) => problems.push(format!(
            "{field} is {found:#x}, where this build expects {expected}"
        )),
        Err(HeaderFault::Corrupt {
            field,
            value,
            reason,
        }) => problems.push(format!("{field} = {value:#x}: {reason}")),
    }

    let cell_size = h.cell_size.load(r);
    let max_endpoints = h.max_endpoints.load(r);
    // The cursors, which validation leaves to the endpoints.
    let (head_word, tail_word) = (h.head.load(r), h.tail.load(r));
    let mut used = None;
    let (mut writer_stream, mut reader_stream) = (None, None);
    let (head, tail);
    if kind == RingKind::Mpmc {
        // Cell positions, with the stream slots (holder's slot + 1) in the top bits.
        let pos_bits = 64 - crate::mpmc::CURSOR_FLAG_BITS;
        let pos_mask = (1u64 << pos_bits) - 1;
        (head, tail) = (head_word & pos_mask, tail_word & pos_mask);
        let holder = |word: u64| match (word >> pos_bits) as usize {
            0 => None,
            h => Some(h - 1),
        };
        (writer_stream, reader_stream) = (holder(tail_word), holder(head_word));
        for (what, slot) in [("writer", writer_stream), ("reader", reader_stream)] {
            if let Some(slot) = slot.filter(|s| *s >= max_endpoints as usize) {
                problems.push(format!(
                    "{what}-stream slot held by slot {slot}: beyond max_endpoints ({max_endpoints})"
                ));
            }
        }
        let cells = capacity.checked_div(cell_size).unwrap_or(0);
        if head > tail {
            problems.push(format!(
                "head = {head}: ahead of tail ({tail}), consumers took cells never claimed"
            ));
        } else if cells > 0 && tail - head > cells {
            problems.push(format!(
                "tail = {tail}: more than the ring's {cells} cells ahead of head ({head})"
            ));
        } else if cells > 0 {
            used = Some((tail - head) * cell_size);
        }
    } else {
        (head, tail) = (head_word, tail_word);
        if head % 8 != 0 {
            problems.push(format!("head = {head:#x}: not 8-byte aligned"));
        } else if tail % 8 != 0 {
            problems.push(format!("tail = {tail:#x}: not 8-byte aligned"));
        } else if head > tail && head - tail > capacity / 2 {
            problems.push(format!(
                "head = {head}: ahead of tail ({tail}), the consumer released bytes never written"
            ));
        } else if head > tail {
            // A producer that died between publishing a record and storing `tail`
            // leaves `tail` one record behind, and the consumer may have read it: the
            // next producer walks over it. Nothing is in the ring.
            used = Some(0);
        } else if capacity.is_power_of_two() && tail - head > capacity {
            problems.push(format!(
                "tail = {tail}: more than capacity ({capacity}) ahead of head ({head})"
            ));
        } else {
            used = Some(tail - head);
        }
    }

    // Slots an endpoint may use: the first `max_endpoints` (all, if that is wrong).
    let usable = if (2..=h.endpoints.len() as u32).contains(&max_endpoints) {
        max_endpoints as usize
    } else {
        h.endpoints.len()
    };
    let mut endpoints = Vec::new();
    for (slot, s) in h.endpoints.iter().enumerate() {
        let word = s.word.load(Ordering::Acquire);
        let (state_word, pid) = (word_state(word), word_pid(word));
        let generation = s.generation.load(r);
        let start_time = s.start_time.load(r);
        let role = match (s.role.load(r), kind, slot) {
            (ROLE_PRODUCER, ..) => EndpointRole::Producer,
            (ROLE_CONSUMER, ..) => EndpointRole::Consumer,
            // SPSC: slot 0 is the producer's, slot 1 the consumer's, even while vacant.
            (0, RingKind::Spsc, 0) => EndpointRole::Producer,
            (0, RingKind::Spsc, 1) => EndpointRole::Consumer,
            (0, ..) => EndpointRole::Unknown,
            (other, ..) => {
                problems.push(format!(
                    "endpoint slot {slot}: role = {other:#x}: neither producer nor consumer"
                ));
                EndpointRole::Unknown
            }
        };
        let state = match state_word {
            ENDPOINT_VACANT => EndpointState::Vacant,
            ENDPOINT_ATTACHED => EndpointState::Attached,
            ENDPOINT_DETACHED => EndpointState::Detached,
            ENDPOINT_ATTACHING => EndpointState::Attaching,
            ENDPOINT_RECOVERING => EndpointState::Recovering,
            ENDPOINT_DEAD => EndpointState::Dead,
            other => {
                problems.push(format!(
                    "endpoint slot {slot}: state = {other:#x}: not vacant, attaching, \
                     attached, detached, recovering or dead"
                ));
                EndpointState::Unknown(other)
            }
        };
        let in_use = state != EndpointState::Vacant || pid != 0 || generation != 0;
        if !in_use && (kind != RingKind::Spsc || slot > 1) {
            continue;
        }
        if slot >= usable && state != EndpointState::Vacant {
            problems.push(format!(
                "endpoint slot {slot}: {state}, but the ring lets endpoints use slots below \
                 {usable} only"
            ));
        }
        if state == EndpointState::Attached && pid == 0 {
            problems.push(format!("endpoint slot {slot}: attached with pid 0"));
        }
        // Judged the way the slot word says (`liveness.rs`): by its OFD lock, held
        // while it lives whatever its pid; or by its pid, pid namespace and start time;
        // anything that cannot be judged is alive.
        let lock = meta
            .locks
            .as_ref()
            .and_then(|l| l.get(slot).copied().flatten());
        let alive = crate::liveness::slot_alive(h, s, lock);
        endpoints.push(EndpointInfo {
            slot,
            role,
            state,
            pid,
            start_time,
            generation,
            alive,
        });
    }

    let role_count = |word: u64| RoleCount {
        attached: word as u32,
        ever: (word >> 32) as u32,
    };
    let (producers, consumers) = match kind {
        RingKind::Mpmc => (
            Some(role_count(h.producers.load(r))),
            Some(role_count(h.consumers.load(r))),
        ),
        _ => (None, None),
    };
    let event_count = |word: &crate::wait::EventWord| {
        let (waiters, woken, epoch) = word.counts(r);
        EventCountInfo {
            epoch,
            waiters,
            woken,
        }
    };
    Ok(RingInfo {
        name: meta.name,
        backing: meta.backing,
        path: meta.path,
        segment_size: meta.size,
        owner_uid: meta.uid,
        mode: meta.mode,
        attachments: meta.attachments,
        state,
        kind,
        version,
        layout_matches,
        capacity,
        cell_size,
        max_endpoints,
        max_record: h.max_record.load(r),
        max_message: h.max_message.load(r),
        flags,
        notifier,
        asymmetric_fences: flags & FLAG_ASYMMETRIC_FENCES != 0,
        creator_pid,
        creator_uid: h.creator_uid.load(r),
        creator_start_time,
        creator_alive,
        head,
        tail,
        used,
        writer_stream,
        reader_stream,
        producers,
        consumers,
        data_ready: event_count(&h.data_ready),
        space_ready: event_count(&h.space_ready),
        endpoints,
        problems,
    })
}

// ---------------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------------

/// Where a probe reads from.
#[derive(Debug)]
enum Source {
    /// The POSIX object's file, opened read-only.
    Posix { file: File, path: PathBuf },
    /// A SysV segment, by id (which stays valid after `IPC_RMID` until the segment is
    /// freed).
    SysV { key: i32, shmid: i32 },
}

/// A ring opened for inspection, to read its header as often as wanted: a process
/// that watches a ring (`shmlane send` watches its peer) opens it once, so it keeps
/// seeing the same segment even after its name is removed.
///
/// ```
/// # let name = format!("/shmlane-doc-probe-{}", std::process::id());
/// use shmlane::inspect::{EndpointRole, Probe};
/// let tx = shmlane::spsc::Producer::create(&name, &shmlane::RingOptions::new(4096))?;
/// let probe = Probe::open(&name)?;
/// shmlane::remove(&name)?;
/// let info = probe.read()?; // still the same segment
/// let producer = info.endpoint(EndpointRole::Producer).unwrap();
/// assert!(producer.alive);
/// assert_eq!(producer.pid, std::process::id());
/// # drop(tx);
/// # Ok::<(), shmlane::Error>(())
/// ```
#[derive(Debug)]
pub struct Probe {
    name: String,
    source: Source,
}

/// Parses `sysv:0x1234abcd` (or `sysv:` and a decimal key) into a key.
fn sysv_key(name: &str) -> Option<Result<i32, Error>> {
    let rest = name.strip_prefix("sysv:")?;
    let parsed = match rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).map(|k| k as i32).ok(),
        None => rest.parse::<i32>().ok(),
    };
    Some(match parsed {
        Some(0) | None => Err(Error::InvalidName {
            name: name.to_string(),
            reason: "a SysV ring is named sysv: and its non-zero key, e.g. sysv:0x5348ab01",
        }),
        Some(key) => Ok(key),
    })
}

impl Probe {
    /// Opens the ring `name` for inspection: a POSIX name (`/frames`) or a SysV key
    /// written `sysv:0x5348ab01`. Fails with [`Error::NotFound`] if there is none,
    /// [`Error::InvalidName`] if the name cannot be one.
    pub fn open(name: &str) -> Result<Probe, Error> {
        if let Some(key) = sysv_key(name) {
            let key = key?;
            let name = segment_name(key);
            // Size 0 and no flags only look it up.
            let shmid = match sysv::lookup(key) {
                Ok(shmid) => shmid,
                Err(Errno::ENOENT) => return Err(Error::NotFound { name }),
                Err(e) => return Err(io_err("shmget", &name, e)),
            };
            return Ok(Probe {
                name,
                source: Source::SysV { key, shmid },
            });
        }
        let name = &*crate::segment::posix::canonical_name(name)?;
        let fd: OwnedFd = match shm_open(
            name,
            // O_NONBLOCK: a FIFO put in /dev/shm must not block us (no effect on files).
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                return Err(Error::NotFound {
                    name: name.to_string(),
                })
            }
            Err(e) => return Err(io_err("shm_open", name, e)),
        };
        Ok(Probe {
            name: name.to_string(),
            source: Source::Posix {
                file: File::from(fd),
                path: Path::new(SHM_DIR).join(&name[1..]),
            },
        })
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Copies the header and describes it.
    ///
    /// Fails with [`Error::NotARing`] if the segment has no shmlane magic (other bytes,
    /// or zeros that no creator is writing a header into), with [`Error::Corrupt`] if
    /// it cannot be a shmlane segment for another reason (shorter than a header, or not
    /// a regular file: `field` is `"segment size"` or `"file type"`), with
    /// [`Error::NotReady`] if its creator has not written the header yet, with
    /// [`Error::Abandoned`] if a POSIX segment has the magic but is not ready and no
    /// creator is writing it (its creator died first), and with [`Error::NotFound`]
    /// if a SysV segment is gone.
    pub fn read(&self) -> Result<RingInfo, Error> {
        match &self.source {
            Source::Posix { file, path } => self.read_posix(file, path),
            Source::SysV { key, shmid } => read_sysv(&self.name, *key, *shmid),
        }
    }

    fn read_posix(&self, file: &File, path: &Path) -> Result<RingInfo, Error> {
        let name = &self.name;
        let io = |op, source| Error::Io {
            op,
            name: name.clone(),
            source,
        };
        let st = file.metadata().map_err(|e| io("fstat", e))?;
        if !st.file_type().is_file() {
            return Err(not_shmlane(
                name,
                "file type",
                st.mode().into(),
                "not a regular file: not a shmlane segment",
            ));
        }
        // The slot locks are read before and after the header: an endpoint counts as
        // alive if its lock was held at either time, so one that attaches or detaches
        // while we read is not taken for dead.
        let before = slot_locks(file);
        let mut copy = pread_header(file, name)?;
        let meta = Meta {
            name: name.clone(),
            backing: Backing::Posix,
            path: Some(path.to_path_buf()),
            size: st.size(),
            uid: st.uid(),
            mode: st.mode() & 0o7777,
            attachments: None,
            locks: Some(
                before
                    .into_iter()
                    .zip(slot_locks(file))
                    .map(|(a, b)| match (a, b) {
                        (Some(a), Some(b)) => Some(a || b),
                        _ => None,
                    })
                    .collect(),
            ),
        };
        // A creator holds its init lock until its ring is ready. With the lock free
        // nobody is making a ring in the segment, if the bytes are still what we read
        // once we know that.
        let described = describe(meta, copy.header());
        let creator_gone = || {
            crate::sys::ofd::held(
                std::os::fd::AsFd::as_fd(file),
                crate::liveness::init_lock_byte(),
            ) == Ok(false)
                && pread_header(file, name).is_ok_and(|again| again.0 == copy.0)
        };
        match described {
            // Zeros where the magic goes, and a whole header's worth of bytes: a
            // creator between sizing its file and writing the magic, or, with no
            // creator, a file of another program's (a creator writes the magic before
            // anything else, see `segment::posix::create`).
            Err(Error::NotReady { .. }) if creator_gone() => Err(Error::NotARing {
                name: name.clone(),
                found: 0,
            }),
            // The magic and not ready: a creation whose creator died.
            Ok(info)
                if matches!(
                    info.state,
                    SegmentState::Uninitialised | SegmentState::Initialising
                ) && creator_gone() =>
            {
                Err(Error::Abandoned {
                    name: name.clone(),
                    state: if info.state == SegmentState::Initialising {
                        STATE_INIT
                    } else {
                        0
                    },
                })
            }
            other => other,
        }
    }
}

/// For each endpoint slot, whether another open file description holds its lock
/// (`None` where that could not be asked).
fn slot_locks(file: &File) -> Vec<Option<bool>> {
    (0..crate::header::ENDPOINT_SLOTS)
        .map(|i| {
            crate::sys::ofd::held(
                std::os::fd::AsFd::as_fd(file),
                crate::liveness::lock_byte(i),
            )
            .ok()
        })
        .collect()
}

/// Copies `out.len()` (at most `PIPE_BUF`) bytes at `src` into `out` by having the
/// kernel copy them (`crate::sys::os::kernel_copy`: written into a pipe from `src`,
/// read back into `out`).
///
/// The header is words of different widths (32- and 64-bit atomics, `sem_t`s that
/// glibc updates with its own atomics), written by live endpoints while we copy: no
/// one width of Rust load reads all of it without a mixed-size access, which the
/// memory model leaves undefined (see `wait.rs`), and a slice over it would be a
/// data race. The kernel's copy is no Rust access at all, as `pread` of a POSIX
/// object is not: each field comes whole or torn like any snapshot of a live header,
/// and `describe` validates what it reads. A write of at most `PIPE_BUF` bytes into an
/// empty pipe is whole.
///
/// # Safety
///
/// `src` is valid for reads of `out.len()` bytes for the whole call.
unsafe fn kernel_copy(src: *const u8, out: &mut [u8]) -> Result<(), Errno> {
    // SAFETY: the caller's guarantee is the wrapper's.
    unsafe { crate::sys::os::kernel_copy(src, out) }
}

/// Copies the header of the SysV segment `shmid` through a read-only attachment.
fn read_sysv(name: &str, key: i32, shmid: i32) -> Result<RingInfo, Error> {
    let ds = sysv::stat(shmid).map_err(|e| match e {
        Errno::EINVAL | Errno::EIDRM => Error::NotFound {
            name: name.to_string(),
        },
        e => io_err("shmctl(IPC_STAT)", name, e),
    })?;
    let size = ds.shm_segsz as u64;
    if size < HEADER_SIZE as u64 {
        return Err(not_shmlane(
            name,
            "segment size",
            size,
            "smaller than the 4096-byte header: not a shmlane segment",
        ));
    }
    // SHM_RDONLY: attached read-only, so nothing we do can write it.
    let attached =
        sysv::Attachment::new(shmid, true).map_err(|e| io_err("shmat(SHM_RDONLY)", name, e))?;
    let mut copy = HeaderCopy::zeroed();
    // SAFETY: the attachment is at least HEADER_SIZE bytes long (a SysV segment
    // cannot shrink) and stays until it is dropped below.
    let copied = unsafe { kernel_copy(attached.as_ptr(), &mut copy.0) };
    drop(attached);
    copied.map_err(|e| io_err("copy of the header (pipe)", name, e))?;
    // shmatt_t is a c_ulong: 32 bits on some targets.
    #[allow(clippy::unnecessary_cast)]
    let nattch = ds.shm_nattch as u64;
    let meta = Meta {
        name: name.to_string(),
        backing: Backing::SysV { key },
        path: None,
        size,
        uid: ds.shm_perm.uid,
        mode: u32::from(ds.shm_perm.mode) & 0o777,
        attachments: Some(nattch),
        locks: None,
    };
    describe(meta, copy.header())
}

// ---------------------------------------------------------------------------------
// The public functions
// ---------------------------------------------------------------------------------

/// Describes the ring `name` (a POSIX name such as `/frames`, or `sysv:0x<key>`)
/// without attaching to it: [`Probe::open`] then [`Probe::read`].
///
/// ```
/// # let name = format!("/shmlane-doc-inspect-{}", std::process::id());
/// use shmlane::inspect::{inspect, EndpointRole, RingKind, SegmentState};
/// let mut tx = shmlane::spsc::Producer::create(&name, &shmlane::RingOptions::new(4096))?;
/// tx.send(b"hello")?;
/// let info = inspect(&name)?;
/// assert_eq!((info.kind, info.state, info.capacity), (RingKind::Spsc, SegmentState::Ready, 4096));
/// assert_eq!(info.used, Some(16)); // one record: 8-byte header + 5 bytes, padded
/// assert!(info.endpoint(EndpointRole::Producer).unwrap().alive);
/// assert!(!info.endpoint(EndpointRole::Consumer).unwrap().alive);
/// assert!(info.is_valid() && !info.is_stale());
/// # shmlane::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect(name: &str) -> Result<RingInfo, Error> {
    Probe::open(name)?.read()
}

/// Every shmlane ring on this host that this process may read: the POSIX objects in
/// `/dev/shm` whose header has shmlane's magic (other files are skipped, as are
/// segments whose creator has not written the magic yet), then the SysV segments of
/// `/proc/sysvipc/shm` that are shmlane rings (each attached read-only for the moment
/// it takes to copy its header). Sorted by name within each.
///
/// Fails only if `/dev/shm` cannot be listed; a segment that vanishes or cannot be
/// read while we look is left out.
pub fn list() -> Result<Vec<RingInfo>, Error> {
    let dir = std::fs::read_dir(SHM_DIR).map_err(|source| Error::Io {
        op: "readdir",
        name: SHM_DIR.to_string(),
        source,
    })?;
    let mut rings = Vec::new();
    for entry in dir.flatten() {
        let Ok(file_name) = entry.file_name().into_string() else {
            continue; // not a name shmlane can make
        };
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let name = format!("/{file_name}");
        if let Ok(info) = Probe::open(&name).and_then(|p| p.read()) {
            rings.push(info);
        }
    }
    rings.sort_by(|a, b| a.name.cmp(&b.name));
    let mut sysv = list_sysv();
    sysv.sort_by(|a, b| a.name.cmp(&b.name));
    rings.extend(sysv);
    Ok(rings)
}

/// The shmlane rings among the SysV segments in `/proc/sysvipc/shm`.
fn list_sysv() -> Vec<RingInfo> {
    crate::sys::procfs::sysv_segments()
        .into_iter()
        // Key 0: IPC_PRIVATE or removed, not a ring anyone can open by key.
        .filter(|&(key, _)| key != 0)
        .filter_map(|(key, shmid)| read_sysv(&segment_name(key), key, shmid).ok())
        .collect()
}

/// Whether two reads of a ring show the same endpoint lives: no slot changed state,
/// and no new endpoint attached between them.
fn same_endpoints(a: &RingInfo, b: &RingInfo) -> bool {
    a.endpoints.len() == b.endpoints.len()
        && a.endpoints.iter().zip(&b.endpoints).all(|(x, y)| {
            (x.slot, x.state, x.pid, x.generation) == (y.slot, y.state, y.pid, y.generation)
        })
}

/// Removes the ring `name` if it is stale ([`RingInfo::is_stale`]), reading it twice,
/// as [`remove_stale`] does. Returns whether it removed it; `Ok(false)` also if there
/// is no such ring any more.
///
/// ```
/// # let name = format!("/shmlane-doc-remove-if-stale-{}", std::process::id());
/// let tx = shmlane::spsc::Producer::create(&name, &shmlane::RingOptions::new(4096))?;
/// // Our producer is alive: the ring stays.
/// assert!(!shmlane::inspect::remove_if_stale(&name)?);
/// # drop(tx);
/// # shmlane::remove(&name)?;
/// # Ok::<(), shmlane::Error>(())
/// ```
pub fn remove_if_stale(name: &str) -> Result<bool, Error> {
    match inspect(name) {
        Ok(info) => remove_stale_ring(&info),
        Err(Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the ring `info` describes if it is still stale when read again now.
/// Returns whether it removed it.
fn remove_stale_ring(info: &RingInfo) -> Result<bool, Error> {
    if !info.is_stale() {
        return Ok(false);
    }
    // Read it again right before removing, so an endpoint that attached since the
    // listing keeps its ring.
    let probe = match Probe::open(&info.name) {
        Ok(p) => p,
        Err(Error::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    let now = match probe.read() {
        Ok(now) => now,
        Err(Error::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    if !now.is_stale() || !same_endpoints(info, &now) {
        return Ok(false);
    }
    let removed = match &probe.source {
        // Removed only while we hold every lock of its header: no endpoint can attach
        // meanwhile (one that opened it and attaches after finds it unlinked), and one
        // that holds its slot keeps the ring.
        Source::Posix { .. } => {
            let creator = (info.creator_pid, info.creator_start_time);
            return crate::segment::posix::remove_if_unused(&info.name, |h| {
                let r = Ordering::Relaxed;
                (h.creator_pid.load(r), h.creator_start_time.load(r)) == creator
            });
        }
        Source::SysV { shmid, .. } => {
            // By id, not by key: the key may name a newer segment by now.
            sysv::remove(*shmid).map_err(|e| match e {
                Errno::EINVAL | Errno::EIDRM => Error::NotFound {
                    name: info.name.clone(),
                },
                e => io_err("shmctl(IPC_RMID)", &info.name, e),
            })
        }
    };
    match removed {
        Ok(()) => Ok(true),
        Err(Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// What [`remove_stale`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct StaleSweep {
    /// The names of the rings it removed.
    pub removed: Vec<String>,
    /// The stale rings it could not read again or remove (one another user owns, a
    /// file planted where it may not be opened for writing, one truncated while it
    /// looked), each with why. The sweep went on past them.
    pub skipped: Vec<(String, Error)>,
}

/// Removes every stale ring ([`RingInfo::is_stale`]: one that holds undelivered
/// messages is not) that [`list`] finds: POSIX
/// names from `/dev/shm`, SysV segments by id. Each is read again right before it is
/// removed, and kept if anything attached meanwhile. Returns the names removed, and
/// those skipped because they could not be removed, with why: one ring that cannot
/// be removed (permissions, a file planted by another user) does not stop the sweep.
///
/// Fails only if `/dev/shm` cannot be listed.
pub fn remove_stale() -> Result<StaleSweep, Error> {
    let mut sweep = StaleSweep::default();
    for info in list()? {
        match remove_stale_ring(&info) {
            Ok(true) => sweep.removed.push(info.name),
            Ok(false) => {}
            Err(e) => sweep.skipped.push((info.name, e)),
        }
    }
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::STATE_READY;

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc and files: Miri isolates the OS")]
    fn liveness_of_this_process_and_of_nobody() {
        let me = std::process::id();
        assert!(process_alive(me, None));
        let start = crate::sys::procfs::own_start_time().expect("/proc/self/stat");
        assert!(process_alive(me, Some(start)));
        assert!(
            !process_alive(me, Some(start + 1)),
            "another life of the pid"
        );
        assert!(!process_alive(0, None));
        assert!(!process_alive(u32::MAX, None));
        // Above the kernel's pid_max (at most 2^22).
        assert!(!process_alive(1 << 23, None));
    }

    /// Field 3 (the state) and field 22 (the start time) of /proc/PID/stat.
    fn state_and_start(pid: u32) -> (char, u64) {
        let stat = crate::sys::procfs::stat(Some(pid)).expect("stat");
        (stat.state, stat.start_time)
    }

    /// A child alive (asleep, reading its stdin) is alive, with and without its start
    /// time; once it has exited and is not reaped (a zombie: the test sees `Z` itself)
    /// it is dead, with and without its start time.
    #[test]
    #[cfg_attr(miri, ignore = "reads /proc and files: Miri isolates the OS")]
    fn zombies_are_dead() {
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn cat");
        let pid = child.id();
        let (_, start) = state_and_start(pid);
        assert!(process_alive(pid, None), "a running child is dead");
        assert!(process_alive(pid, Some(start)), "a running child is dead");
        // Wait until it sleeps on its stdin, and check it then: asleep is alive.
        let deadline = Instant::now() + Duration::from_secs(10);
        while state_and_start(pid).0 != 'S' {
            assert!(
                Instant::now() < deadline,
                "`cat` did not wait for its stdin"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(process_alive(pid, Some(start)), "a sleeping child is dead");
        // End of input: it exits, and stays a zombie until we reap it.
        drop(child.stdin.take());
        while state_and_start(pid).0 != 'Z' {
            assert!(Instant::now() < deadline, "`cat` did not exit");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!process_alive(pid, None), "a zombie is alive");
        assert!(!process_alive(pid, Some(start)), "a zombie is alive");
        child.wait().expect("reap");
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc and files: Miri isolates the OS")]
    fn sysv_names() {
        assert_eq!(sysv_key("/x").map(|r| r.is_ok()), None);
        assert_eq!(sysv_key("sysv:0x10").unwrap().unwrap(), 16);
        assert_eq!(sysv_key("sysv:0xffffffff").unwrap().unwrap(), -1);
        assert_eq!(sysv_key("sysv:42").unwrap().unwrap(), 42);
        assert!(sysv_key("sysv:0").unwrap().is_err());
        assert!(sysv_key("sysv:zz").unwrap().is_err());
    }

    fn meta() -> Meta {
        Meta {
            name: "/t".into(),
            backing: Backing::Posix,
            path: None,
            size: (HEADER_SIZE + 4096) as u64,
            uid: 0,
            mode: 0o600,
            attachments: None,
            locks: None,
        }
    }

    /// A valid header of a 4096-byte SPSC ring, in a private copy.
    fn valid_copy() -> Box<HeaderCopy> {
        let mut copy = HeaderCopy::zeroed();
        let params = crate::header::RingParams::new(KIND_SPSC, 4096, 1 << 20, 0).unwrap();
        copy.header()
            .init(&params, (HEADER_SIZE + 4096) as u64, None);
        copy
    }

    /// A valid header of a 4096-byte MPMC ring of 64-byte cells, in a private copy.
    fn valid_mpmc_copy() -> Box<HeaderCopy> {
        let mut copy = HeaderCopy::zeroed();
        let params = crate::header::RingParams::new_mpmc(4096, 64, 8, 1 << 20, 0).unwrap();
        copy.header()
            .init(&params, params.segment_len() as u64, None);
        copy
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc and files: Miri isolates the OS")]
    fn an_mpmc_header_in_words() {
        let mut copy = valid_mpmc_copy();
        {
            let h = copy.header();
            // Ten cells claimed by producers (slot 2 writing a stream), four by consumers.
            h.tail.store(10 | 3 << 56, Ordering::Relaxed);
            h.head.store(4, Ordering::Relaxed);
        }
        let mut m = meta();
        m.size = (HEADER_SIZE + 4096 + 64 * 16) as u64;
        let info = describe(m, copy.header()).unwrap();
        assert!(info.is_valid(), "{:?}", info.problems);
        assert_eq!(
            (info.kind, info.cell_size, info.max_endpoints),
            (RingKind::Mpmc, 64, 8)
        );
        assert_eq!((info.head, info.tail, info.used), (4, 10, Some(6 * 64)));
        assert_eq!((info.writer_stream, info.reader_stream), (Some(2), None));
        assert_eq!(info.producers, Some(RoleCount::default()));
        assert!(info.endpoints.is_empty(), "no slot was ever used");
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc and files: Miri isolates the OS")]
    fn a_valid_header_in_words() {
        let mut copy = valid_copy();
        let info = describe(meta(), copy.header()).unwrap();
        assert!(info.is_valid(), "{:?}", info.problems);
        assert_eq!(info.state, SegmentState::Ready);
        assert_eq!(info.kind, RingKind::Spsc);
        assert_eq!(info.capacity, 4096);
        assert_eq!(info.max_record, 2048);
        assert_eq!(info.notifier, Some(Notifier::Futex));
        assert!(info.layout_matches);
        assert_eq!(info.creator_pid, std::process::id());
        assert_eq!(info.creator_alive, Liveness::Alive);
        assert_eq!(info.used, Some(0));
        assert_eq!(info.endpoints.len(), 2);
        assert_eq!(info.endpoints[0].role, EndpointRole::Producer);
        assert_eq!(info.endpoints[1].state, EndpointState::Vacant);
        // Nobody attached, but the creator (us) runs.
        assert!(!info.is_stale());
    }

    /// Data that every endpoint left cleanly waits for a consumer and is not stale;
    /// the same data beside an endpoint that died is, and so is an empty ring.
    #[test]
    #[cfg_attr(miri, ignore = "reads /proc and files: Miri isolates the OS")]
    fn undelivered_data_is_not_stale() {
        use crate::header::{holder_word, HOLDER_LOCK};
        // A creator that is gone: pid 0 is nobody.
        let gone = |copy: &mut HeaderCopy| copy.header().creator_pid.store(0, Ordering::Relaxed);
        let detached = holder_word(ENDPOINT_DETACHED, HOLDER_LOCK, 0, 1, 4242);
        let attached = holder_word(ENDPOINT_ATTACHED, HOLDER_LOCK, 0, 1, 4242);
        // The producer (slot 0) sent one 16-byte record and detached.
        let mut copy = valid_copy();
        gone(&mut copy);
        {
            let h = copy.header();
            h.tail.store(16, Ordering::Relaxed);
            h.endpoints[0].word.store(detached, Ordering::Relaxed);
            h.endpoints[0].generation.store(1, Ordering::Relaxed);
        }
        let info = describe(meta(), copy.header()).unwrap();
        assert_eq!(info.used, Some(16));
        assert!(info.holds_undelivered());
        assert!(!info.is_stale(), "a message waiting for its consumer");
        // The same, with no slot lock held: the producer died attached.
        copy.header().endpoints[0]
            .word
            .store(attached, Ordering::Relaxed);
        let mut m = meta();
        m.locks = Some(vec![Some(false); crate::header::ENDPOINT_SLOTS]);
        let info = describe(m, copy.header()).unwrap();
        assert!(!info.endpoints[0].alive);
        assert!(!info.holds_undelivered());
        assert!(info.is_stale(), "what a dead producer left");
        // Detached again, but the consumer (slot 1) died attached after reading some.
        copy.header().endpoints[0]
            .word
            .store(detached, Ordering::Relaxed);
        copy.header().endpoints[1]
            .word
            .store(attached, Ordering::Relaxed);
        let mut m = meta();
        m.locks = Some(vec![Some(false); crate::header::ENDPOINT_SLOTS]);
        let info = describe(m, copy.header()).unwrap();
        assert!(!info.holds_undelivered() && info.is_stale());
        // Nothing in the ring, everyone detached: stale as before.
        let mut copy = valid_copy();
        gone(&mut copy);
        copy.header().endpoints[0]
            .word
            .store(detached, Ordering::Relaxed);
        let info = describe(meta(), copy.header()).unwrap();
        assert!(!info.holds_undelivered() && info.is_stale());
        // A header with problems is never kept for its data.
        let mut copy = valid_copy();
        gone(&mut copy);
        copy.header().tail.store(16, Ordering::Relaxed);
        copy.header().capacity.store(1000, Ordering::Relaxed);
        let info = describe(meta(), copy.header()).unwrap();
        assert!(!info.is_valid() && !info.holds_undelivered());
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc and files: Miri isolates the OS")]
    fn a_corrupt_header_is_described_not_refused() {
        let mut copy = valid_copy();
        {
            let h = copy.header();
            h.capacity.store(1000, Ordering::Relaxed);
            // More than one record ahead of tail (one is what a dead producer leaves).
            h.head.store(4096, Ordering::Relaxed);
            h.tail.store(8, Ordering::Relaxed);
            h.endpoints[0].word.store(7, Ordering::Relaxed);
            h.endpoints[5]
                .word
                .store(u64::from(ENDPOINT_ATTACHED), Ordering::Relaxed);
            h.data_ready
                .state
                .store(3 << 32 | 2 << 16 | 1, Ordering::Relaxed);
        }
        let info = describe(meta(), copy.header()).unwrap();
        let all = info.problems.join("\n");
        assert!(all.contains("capacity = 0x3e8"), "{all}");
        assert!(all.contains("head = 4096"), "{all}");
        assert!(all.contains("slot 0: state = 0x7"), "{all}");
        assert!(all.contains("slot 5: attached"), "{all}");
        assert_eq!(info.used, None);
        assert_eq!(info.endpoints[0].state, EndpointState::Unknown(7));
        assert_eq!(
            info.data_ready,
            EventCountInfo {
                epoch: 3,
                waiters: 1,
                woken: 2
            }
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc and files: Miri isolates the OS")]
    fn not_a_ring() {
        let mut copy = HeaderCopy::zeroed();
        copy.0[..8].copy_from_slice(b"GARBAGE!");
        assert!(matches!(
            describe(meta(), copy.header()),
            Err(Error::NotARing { found, .. }) if found.to_le_bytes() == *b"GARBAGE!"
        ));
        let mut zero = HeaderCopy::zeroed();
        assert!(matches!(
            describe(meta(), zero.header()),
            Err(Error::NotReady { state: 0, .. })
        ));
        // Any bytes at all: an answer, never a panic. Valid SPSC and MPMC headers with
        // a few bytes changed, and headers of random bytes behind the magic.
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..6000 {
            let mut copy = match round % 3 {
                0 => valid_copy(),
                1 => valid_mpmc_copy(),
                _ => {
                    let mut c = HeaderCopy::zeroed();
                    for chunk in c.0.chunks_exact_mut(8) {
                        chunk.copy_from_slice(&next().to_le_bytes());
                    }
                    c.0[..8].copy_from_slice(&MAGIC.to_le_bytes());
                    c
                }
            };
            for _ in 0..(1 + round % 16) {
                let r = next();
                copy.0[(r as usize >> 8) % HEADER_SIZE] = r as u8;
            }
            let _ = describe(meta(), copy.header());
        }
        let mut copy = valid_copy();
        copy.header()
            .state
            .store(STATE_READY + 9, Ordering::Relaxed);
        let info = describe(meta(), copy.header()).unwrap();
        assert_eq!(info.state, SegmentState::Unknown(STATE_READY + 9));
        assert!(!info.is_valid());
    }
}
