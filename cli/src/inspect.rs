//! `shmlane inspect NAME [--json]`: a ring's header in words, through
//! `shmlane::inspect` (which reads a copy of the header and never attaches).

use std::fmt::Write;

use shmlane::inspect::{EndpointState, RingInfo, RingKind};
use shmlane::Notifier;

use crate::args::{human_bytes, Arg, Args, RingName};
use crate::exit::Failure;
use crate::json::Value;
use crate::UsageError;

pub const SHORT: &str = "\
Usage: shmlane inspect [--json] NAME
Run 'shmlane inspect --help' for details.
";

pub const USAGE: &str = "\
Usage: shmlane inspect [--json] NAME

Describes the ring NAME (/dev/shm/NAME, or sysv:KEY for a System V segment)
without attaching to it and without writing to it: kind, state, capacity,
record and message limits, notifier and fences, creator, cursors, fill level
and the consumer's lag, the waiters on each event count, the endpoint table
with whether each endpoint's process is alive, and whatever is wrong with the
header (a corrupt header is described, not refused).

Options:
  --json       Print it as one JSON object
  -h, --help   Print this help

A file in /dev/shm with no shmlane header (another program's) is said to be
not a shmlane ring; a ring whose header has bad fields is described as corrupt.

Exit status: 0 when the ring was described (even with problems listed),
1 on an I/O error, 2 for a usage error, an invalid name, no such ring, or a
segment that is not a shmlane ring.
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub name: RingName,
    pub json: bool,
}

pub fn parse(mut args: Args) -> Result<Options, UsageError> {
    let mut name = None;
    let mut json = false;
    while let Some(arg) = args.next()? {
        match arg {
            Arg::Opt(o) if o == "--json" => json = true,
            Arg::Opt(_) => return Err(args.unknown()),
            Arg::Operand(v) if name.is_none() => {
                name = Some(RingName::parse(&v).map_err(|e| args.error(e))?)
            }
            Arg::Operand(v) => return Err(args.extra(&v)),
        }
    }
    match name {
        Some(name) => Ok(Options { name, json }),
        None => Err(args.error("no ring name given".into())),
    }
}

pub fn run(opts: &Options) -> Result<(), Failure> {
    let info = shmlane::inspect::inspect(&opts.name.to_string()).map_err(|e| {
        match not_a_ring(&opts.name, &e) {
            Some(why) => Failure::bad_use(why),
            None => Failure::setup(&e),
        }
    })?;
    if opts.json {
        print!("{}", ring_json(&info).pretty());
    } else {
        print!("{}", words(&info));
    }
    Ok(())
}

/// What to say of `name` when inspecting it failed with `e`, if `e` says it is not a
/// shmlane ring at all: no shmlane header (another magic, shorter than a header, not
/// a regular file, or zeros with no creator writing a header). Other programs keep
/// their files in /dev/shm too; such a file is not a corrupt ring. A segment with
/// the magic and wrong fields is a ring, described with its problems.
pub fn not_a_ring(name: &RingName, e: &shmlane::Error) -> Option<String> {
    use shmlane::Error as E;
    let why = match e {
        E::Corrupt {
            field: "magic",
            value,
            ..
        } => {
            let bytes: Vec<String> = value
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
        E::Abandoned { .. } => "no shmlane header: no magic, and no process is writing one; \
             a ring whose creator died before writing it looks the same"
            .to_string(),
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

/// The ring as a JSON object (also one element of `ls --json`).
pub fn ring_json(info: &RingInfo) -> Value {
    let endpoints = info
        .endpoints
        .iter()
        .map(|e| {
            Value::Object(vec![
                ("slot", e.slot.into()),
                ("role", e.role.as_str().into()),
                ("state", e.state.as_str().into()),
                ("pid", e.pid.into()),
                ("start_time", e.start_time.into()),
                ("generation", e.generation.into()),
                ("alive", e.alive.into()),
            ])
        })
        .collect();
    let role_count = |c: Option<shmlane::inspect::RoleCount>| match c {
        Some(c) => Value::Object(vec![
            ("attached", c.attached.into()),
            ("ever", c.ever.into()),
        ]),
        None => Value::Null,
    };
    let event_count = |e: shmlane::inspect::EventCountInfo| {
        Value::Object(vec![
            ("waiters", e.waiters.into()),
            ("woken", e.woken.into()),
            ("epoch", e.epoch.into()),
        ])
    };
    Value::Object(vec![
        ("name", info.name.clone().into()),
        ("backing", backing_name(info).into()),
        (
            "path",
            info.path.as_ref().map(|p| p.display().to_string()).into(),
        ),
        ("segment_size", info.segment_size.into()),
        ("owner_uid", info.owner_uid.into()),
        ("mode", format!("{:04o}", info.mode).into()),
        ("attachments", info.attachments.into()),
        ("state", info.state.as_str().into()),
        ("kind", info.kind.as_str().into()),
        ("version", info.version.into()),
        ("layout_matches", info.layout_matches.into()),
        ("capacity", info.capacity.into()),
        ("cell_size", info.cell_size.into()),
        ("max_endpoints", info.max_endpoints.into()),
        ("max_record", info.max_record.into()),
        ("max_message", info.max_message.into()),
        ("flags", info.flags.into()),
        ("notifier", notifier_name(info.notifier).into()),
        ("asymmetric_fences", info.asymmetric_fences.into()),
        (
            "creator",
            Value::Object(vec![
                ("pid", info.creator_pid.into()),
                ("uid", info.creator_uid.into()),
                ("start_time", info.creator_start_time.into()),
                ("alive", info.creator_alive.as_str().into()),
            ]),
        ),
        ("head", info.head.into()),
        ("tail", info.tail.into()),
        ("used", info.used.into()),
        (
            "fill",
            info.used
                .filter(|_| info.capacity > 0)
                .map(|u| u as f64 / info.capacity as f64)
                .into(),
        ),
        ("writer_stream", info.writer_stream.into()),
        ("reader_stream", info.reader_stream.into()),
        ("producers", role_count(info.producers)),
        ("consumers", role_count(info.consumers)),
        ("data_ready", event_count(info.data_ready)),
        ("space_ready", event_count(info.space_ready)),
        ("endpoints", Value::Array(endpoints)),
        ("live_endpoints", info.live_endpoints().into()),
        ("stale", info.is_stale().into()),
        ("problems", info.problems.clone().into()),
    ])
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
