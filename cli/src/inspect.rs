//! `shmlane inspect NAME [--json]`: a ring's header in words, through
//! `shmlane::inspect` (which reads a copy of the header and never attaches).

use std::fmt::Write;

use serde::Serialize;
use shmlane::inspect::{EndpointState, RingInfo, RingKind};
use shmlane::Notifier;

use crate::args::{human_bytes, RingName};
use crate::exit::Failure;
use crate::output;

/// The description in `shmlane inspect --help`.
pub const ABOUT: &str = "\
Describes the ring NAME (/dev/shm/NAME, or sysv:KEY for a System V segment)
without attaching to it and without writing to it: kind, state, capacity,
record and message limits, notifier and fences, creator, cursors, fill level
and the consumer's lag, the waiters on each event count, the endpoint table
with whether each endpoint's process is alive, and whatever is wrong with the
header (a corrupt header is described, not refused).

A file in /dev/shm with no shmlane header (another program's) is said to be
not a shmlane ring; a ring whose header has bad fields is described as corrupt.";

/// The exit statuses in `shmlane inspect --help`.
pub const EXIT_STATUS: &str = "\
Exit status: 0 when the ring was described (even with problems listed),
1 on an I/O error, 2 for a usage error, an invalid name, no such ring, or a
segment that is not a shmlane ring.";

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Options {
    /// The ring: /dev/shm/NAME, or sysv:KEY
    #[arg(value_name = "NAME", value_parser = RingName::parse)]
    pub name: RingName,
    /// Print it as one JSON object
    #[arg(long)]
    pub json: bool,
}

pub fn run(opts: &Options) -> Result<(), Failure> {
    let info = shmlane::inspect::inspect(&opts.name.to_string()).map_err(|e| {
        match not_a_ring(&opts.name, &e) {
            Some(why) => Failure::bad_use(why),
            None => Failure::setup(&e),
        }
    })?;
    if opts.json {
        output::print(&output::json(&RingJson::new(&info)))
    } else {
        output::print(&words(&info))
    }
}

/// What to say of `name` when inspecting it failed with `e`, if `e` says it is not a
/// shmlane ring at all: no shmlane header (the library's `NotARing`: another magic, or
/// zeros with no creator writing a header; or shorter than a header, or not a regular
/// file). Other programs keep their files in /dev/shm too; such a file is not a
/// corrupt ring. A segment with the magic and wrong fields is a ring, described with
/// its problems; one with the magic whose creator died first is `Abandoned`, a
/// half-made ring.
pub fn not_a_ring(name: &RingName, e: &shmlane::Error) -> Option<String> {
    use shmlane::Error as E;
    let why = match e {
        E::NotARing { found: 0, .. } => "no shmlane header: zeros where the magic goes, \
             and no process is writing one"
            .to_string(),
        E::NotARing { found, .. } => {
            let bytes: Vec<String> = found
                .to_le_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!(
                "no shmlane header: it starts with the bytes {}, not the magic \"SHMLANE\\0\"",
                bytes.join(" ")
            )
        }
        E::Corrupt {
            field: "segment size",
            value,
            ..
        } => format!("no shmlane header: it has {value} bytes, fewer than a 4096-byte header"),
        E::Corrupt {
            field: "file type", ..
        } => "no shmlane header: it is not a regular file".to_string(),
        _ => return None,
    };
    Some(format!("{name} is not a shmlane ring ({why})"))
}

fn notifier_name(n: Option<Notifier>) -> &'static str {
    match n {
        Some(Notifier::Futex) => "futex",
        Some(Notifier::Semaphore) => "semaphore",
        _ => "unknown",
    }
}

fn backing_name(info: &RingInfo) -> &'static str {
    match info.backing {
        shmlane::Backing::SysV { .. } => "sysv",
        _ => "posix",
    }
}

/// The ring as `inspect --json` prints it (also one element of `ls --json`).
#[derive(Debug, Serialize)]
pub struct RingJson<'a> {
    name: &'a str,
    backing: &'static str,
    path: Option<String>,
    segment_size: u64,
    owner_uid: u32,
    /// Octal, as `ls -l` and chmod take it: `"0600"`.
    mode: String,
    attachments: Option<u64>,
    state: &'static str,
    kind: &'static str,
    version: u32,
    layout_matches: bool,
    capacity: u64,
    cell_size: u64,
    max_endpoints: u32,
    max_record: u64,
    max_message: u64,
    flags: u64,
    notifier: &'static str,
    asymmetric_fences: bool,
    creator: CreatorJson,
    head: u64,
    tail: u64,
    used: Option<u64>,
    /// `used` over `capacity`, from 0 to 1.
    fill: Option<f64>,
    writer_stream: Option<usize>,
    reader_stream: Option<usize>,
    producers: Option<RoleCountJson>,
    consumers: Option<RoleCountJson>,
    data_ready: EventCountJson,
    space_ready: EventCountJson,
    endpoints: Vec<EndpointJson>,
    live_endpoints: usize,
    stale: bool,
    problems: &'a [String],
}

#[derive(Debug, Serialize)]
struct CreatorJson {
    pid: u32,
    uid: u32,
    start_time: u64,
    alive: &'static str,
}

#[derive(Debug, Serialize)]
struct RoleCountJson {
    attached: u32,
    ever: u32,
}

#[derive(Debug, Serialize)]
struct EventCountJson {
    waiters: u32,
    woken: u32,
    epoch: u32,
}

#[derive(Debug, Serialize)]
struct EndpointJson {
    slot: usize,
    role: &'static str,
    state: &'static str,
    pid: u32,
    start_time: u64,
    generation: u64,
    alive: bool,
}

impl<'a> RingJson<'a> {
    pub fn new(info: &'a RingInfo) -> RingJson<'a> {
        let role_count = |c: Option<shmlane::inspect::RoleCount>| {
            c.map(|c| RoleCountJson {
                attached: c.attached,
                ever: c.ever,
            })
        };
        let event_count = |e: shmlane::inspect::EventCountInfo| EventCountJson {
            waiters: e.waiters,
            woken: e.woken,
            epoch: e.epoch,
        };
        RingJson {
            name: &info.name,
            backing: backing_name(info),
            path: info.path.as_ref().map(|p| p.display().to_string()),
            segment_size: info.segment_size,
            owner_uid: info.owner_uid,
            mode: format!("{:04o}", info.mode),
            attachments: info.attachments,
            state: info.state.as_str(),
            kind: info.kind.as_str(),
            version: info.version,
            layout_matches: info.layout_matches,
            capacity: info.capacity,
            cell_size: info.cell_size,
            max_endpoints: info.max_endpoints,
            max_record: info.max_record,
            max_message: info.max_message,
            flags: info.flags,
            notifier: notifier_name(info.notifier),
            asymmetric_fences: info.asymmetric_fences,
            creator: CreatorJson {
                pid: info.creator_pid,
                uid: info.creator_uid,
                start_time: info.creator_start_time,
                alive: info.creator_alive.as_str(),
            },
            head: info.head,
            tail: info.tail,
            used: info.used,
            fill: info
                .used
                .filter(|_| info.capacity > 0)
                .map(|u| u as f64 / info.capacity as f64),
            writer_stream: info.writer_stream,
            reader_stream: info.reader_stream,
            producers: role_count(info.producers),
            consumers: role_count(info.consumers),
            data_ready: event_count(info.data_ready),
            space_ready: event_count(info.space_ready),
            endpoints: info
                .endpoints
                .iter()
                .map(|e| EndpointJson {
                    slot: e.slot,
                    role: e.role.as_str(),
                    state: e.state.as_str(),
                    pid: e.pid,
                    start_time: e.start_time,
                    generation: e.generation,
                    alive: e.alive,
                })
                .collect(),
            live_endpoints: info.live_endpoints(),
            stale: info.is_stale(),
            problems: &info.problems,
        }
    }
}

/// `1048576 bytes (1.00 MiB)`.
fn bytes(n: u64) -> String {
    if n < 1024 {
        format!("{n} bytes")
    } else {
        format!("{n} bytes ({})", human_bytes(n))
    }
}

/// The ring in words, one aspect per line.
pub fn words(info: &RingInfo) -> String {
    let mut o = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(o, "  {key:<12}{value}");
    };
    let kind = match info.kind {
        RingKind::Spsc => "spsc (byte ring: one producer, one consumer)".to_string(),
        RingKind::Mpmc => "mpmc (cell ring: many producers and consumers)".to_string(),
        RingKind::Unknown(k) => format!("unknown ({k:#x})"),
        other => other.as_str().to_string(),
    };
    line("kind", kind);
    let state = match info.state {
        shmlane::inspect::SegmentState::Unknown(w) => format!("unknown ({w:#x})"),
        s => s.as_str().to_string(),
    };
    line("state", state);
    line(
        "backing",
        match (&info.backing, &info.path) {
            (shmlane::Backing::SysV { key }, _) => format!(
                "System V shared memory, key {:#010x}, {} attached",
                *key as u32,
                info.attachments.unwrap_or(0)
            ),
            (_, Some(p)) => format!("POSIX shared memory, {}", p.display()),
            _ => "POSIX shared memory".to_string(),
        },
    );
    line(
        "segment",
        format!(
            "{}, owner uid {}, mode {:04o}",
            bytes(info.segment_size),
            info.owner_uid,
            info.mode
        ),
    );
    line(
        "layout",
        format!(
            "version {}, {}",
            info.version,
            if info.layout_matches {
                "this build's layout"
            } else {
                "NOT this build's layout: the values below may mean nothing"
            }
        ),
    );
    line("capacity", bytes(info.capacity));
    line(
        "records",
        format!(
            "at most {}; messages up to {} bytes travel in one record, longer ones in fragments",
            bytes(info.max_record),
            info.max_record.saturating_sub(8)
        ),
    );
    line(
        "max message",
        format!(
            "{} (the most a consumer reassembles in memory)",
            bytes(info.max_message)
        ),
    );
    if info.kind != RingKind::Spsc || info.cell_size != 0 {
        line("cell size", bytes(info.cell_size));
    }
    line(
        "notifier",
        format!(
            "{}, {}",
            notifier_name(info.notifier),
            if info.asymmetric_fences {
                "asymmetric fences (senders issue no fence; sleepers call membarrier)"
            } else {
                "symmetric fences (each notify issues a full fence)"
            }
        ),
    );
    line(
        "creator",
        format!(
            "pid {} ({}), uid {}",
            info.creator_pid, info.creator_alive, info.creator_uid
        ),
    );
    line(
        "cursors",
        format!(
            "head {} (consumer, published lazily), tail {} (producer)",
            info.head, info.tail
        ),
    );
    line(
        "fill",
        match info.used {
            Some(u) if info.capacity > 0 => format!(
                "{} in use of {} ({:.1}%): the consumer lags {} bytes behind the producer",
                human_bytes(u),
                human_bytes(info.capacity),
                u as f64 * 100.0 / info.capacity as f64,
                u
            ),
            _ => "unknown (the cursors are inconsistent)".to_string(),
        },
    );
    if info.kind == RingKind::Mpmc {
        let count = |c: Option<shmlane::inspect::RoleCount>| {
            c.map_or("?".to_string(), |c| {
                format!("{} attached ({} ever)", c.attached, c.ever)
            })
        };
        line(
            "roles",
            format!(
                "producers: {}; consumers: {}",
                count(info.producers),
                count(info.consumers)
            ),
        );
        let holder =
            |s: Option<usize>| s.map_or("free".to_string(), |s| format!("held by slot {s}"));
        line(
            "streams",
            format!(
                "writer {}, reader {} (a message in fragments holds the others up)",
                holder(info.writer_stream),
                holder(info.reader_stream)
            ),
        );
    }
    line(
        "waiters",
        format!(
            "data ready: {} ({} woken, epoch {}); space ready: {} ({} woken, epoch {})",
            info.data_ready.waiters,
            info.data_ready.woken,
            info.data_ready.epoch,
            info.space_ready.waiters,
            info.space_ready.woken,
            info.space_ready.epoch
        ),
    );
    let mut table = format!(
        "{} at most at once\n              {:<6}{:<10}{:<10}{:<10}{:<7}generation",
        info.max_endpoints, "slot", "role", "state", "pid", "alive"
    );
    for e in &info.endpoints {
        let pid = if e.pid == 0 {
            "-".to_string()
        } else {
            e.pid.to_string()
        };
        let alive = match (e.state, e.alive) {
            (EndpointState::Attached, true) => "yes",
            (EndpointState::Attached, false) => "DEAD",
            _ => "-",
        };
        let _ = write!(
            table,
            "\n              {:<6}{:<10}{:<10}{:<10}{:<7}{}",
            e.slot,
            e.role.as_str(),
            e.state.as_str(),
            pid,
            alive,
            e.generation
        );
    }
    line("endpoints", table);
    line(
        "stale",
        if info.holds_undelivered() {
            format!(
                "no: it holds {} undelivered, left for a receiver to come ('shmlane rm --stale' \
                 keeps it, 'shmlane rm {}' drops it)",
                human_bytes(info.used.unwrap_or(0)),
                info.name
            )
        } else if info.is_stale() {
            "yes: no live endpoint and no live creator ('shmlane rm --stale' removes it)"
                .to_string()
        } else {
            "no".to_string()
        },
    );
    if info.problems.is_empty() {
        line("problems", "none: the header validates".to_string());
    } else {
        line(
            "problems",
            format!(
                "the header is corrupt (or of another layout):\n              {}",
                info.problems.join("\n              ")
            ),
        );
    }
    format!("ring {}\n{o}", info.name)
}
