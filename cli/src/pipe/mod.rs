//! What `shmlane send` and `shmlane recv` share: the wire format, the options, the
//! rules for removing the ring, the watch over the peer, and the progress bar.
//!
//! # Wire format
//!
//! A transfer is a sequence of messages on one SPSC ring:
//!
//! ```text
//! transfer = hello, body
//! hello    = one 16-byte message: the 8 bytes "SHMLPIP1", then `length` (u64, little-endian)
//! body     = if length != 2^64 - 1: one message of exactly `length` bytes
//!            if length == 2^64 - 1: zero or more non-empty chunk messages, then one
//!                                   empty message (the end marker)
//! ```
//!
//! When the sender knows the length (a regular file, or stdin redirected from one), the
//! body is one message, streamed with `Producer::stream` and read with
//! `Consumer::recv_stream`: it travels in fragments of a quarter of the ring, and the
//! library, which knows the length, tells an abandoned message from a finished one. Of
//! anything else (a pipe, a terminal, a socket) the sender sends what each `read`
//! returns as one chunk, read straight into the ring (`Producer::reserve`) and written
//! out straight from it (`Consumer::recv_ref`), and closes with the empty message. A
//! chunk is at most a quarter of the ring (so the two ends work on different chunks at
//! once) and never more than one record, so it is never fragmented. The last character
//! of the magic is the format's version.
//!
//! # Who removes the ring
//!
//! Either end may start first: both use `create_or_open`, and the ring is made with
//! the options of whichever comes first. The name must then go when the transfer is
//! over, and the data must survive until the receiver has read it, also when the
//! receiver starts after the sender has finished (a transfer that fits in the ring
//! leaves the sender nothing to wait for). So:
//!
//! - the receiver removes the name once it has read the whole transfer: it is the last
//!   to need it, since the sender has nothing left to send by then;
//! - a sender that has sent everything leaves the name alone, and exits: the ring holds
//!   the data until a receiver comes (`shmlane inspect NAME` shows it waiting, and
//!   `shmlane rm NAME` removes it if nobody ever does, and `shmlane rm --stale` keeps
//!   it: `RingInfo::holds_undelivered`);
//! - an end that fails removes the name unless its peer is attached and alive: then
//!   the peer sees it gone, fails in turn and removes it, being the last. A peer that
//!   died without detaching counts as gone.
//!
//! A sender finding an earlier transfer still unread in the ring refuses to add its
//! own after it (exit status 2). One transfer per name at a time: two senders on one
//! name get `Busy`.
//!
//! # Waiting for the peer
//!
//! An end waits for its peer inside the library (for data, or for room). A watch
//! thread ([`watch`]) looks at the ring from outside every 100 ms, with
//! `shmlane::inspect`, and ends the transfer when the peer process has died without
//! detaching (status 3), which the library cannot see yet, or when `--timeout` has
//! passed in one wait (status 4).

pub mod progress;
pub mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use shmlane::inspect::{EndpointInfo, EndpointRole, EndpointState, Probe, RingInfo};

use shmlane::{OpenOptions, RingOptions};

use crate::args::{parse_duration, parse_size, RingName};
use crate::exit::Failure;
use progress::Progress;
use watch::{peer_of, Config, Watch};

/// The magic at the start of the hello message; its last byte is the format version.
pub const MAGIC: [u8; 8] = *b"SHMLPIP1";
/// Length of the hello message.
pub const HELLO_LEN: usize = 16;
/// `length` of a transfer of unknown length, sent in chunks.
pub const UNKNOWN_LENGTH: u64 = u64::MAX;

/// Ring size when `--ring-size` is not given: 1 MiB.
///
/// - It is rarely the bottleneck: `shmlane bench` streams 50 GB/s through a 1 MiB
///   ring. A 4 GiB file from the page cache to /dev/null went through `send`/`recv`
///   at 7-10 GB/s with a 1 MiB ring (3x `cat | cat`) and at 9-10 GB/s with a 4 MiB
///   one: the same on an idle 2-vCPU VM, up to a quarter faster for 4 MiB when a third
///   process competed for the CPUs (a bigger ring rides out longer descheduling).
///   Writing the output to a disk file, the file system set the pace (1.5-2 GB/s).
/// - It stays in the CPU's caches, and it absorbs about 1 ms of stall of either end at
///   1 GB/s.
/// - It is small where /dev/shm is small: a container's is 64 MiB by default, room for
///   sixty 1 MiB transfers at once but only fifteen of 4 MiB.
pub const DEFAULT_RING: usize = 1 << 20;

/// The hello message for a transfer of `length` bytes (or [`UNKNOWN_LENGTH`]).
pub fn hello(length: u64) -> [u8; HELLO_LEN] {
    let mut m = [0u8; HELLO_LEN];
    m[..8].copy_from_slice(&MAGIC);
    m[8..].copy_from_slice(&length.to_le_bytes());
    m
}

/// The `length` of a hello message, or `None` if `msg` is not one.
pub fn parse_hello(msg: &[u8]) -> Option<u64> {
    if msg.len() != HELLO_LEN || msg[..8] != MAGIC {
        return None;
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&msg[8..]);
    Some(u64::from_le_bytes(len))
}

/// The longest chunk of a transfer of unknown length through a ring of `capacity`
/// bytes whose records hold at most `max_record_payload` bytes.
pub fn chunk_len(capacity: usize, max_record_payload: usize) -> usize {
    // A quarter of the ring minus the record header, so four chunks are in flight.
    (capacity / 4)
        .saturating_sub(8)
        .clamp(1, max_record_payload.max(1))
}

/// The options `send` and `recv` share.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct Options {
    /// The ring: /dev/shm/NAME (with or without its leading slash), or sysv:KEY for a
    /// System V segment
    #[arg(value_name = "NAME", value_parser = RingName::parse)]
    pub name: RingName,
    /// The file to read (send) or write (recv); `None` for stdin / stdout.
    #[arg(
        value_name = "FILE",
        help = "The file to read (send) or write (recv); default, and '-': stdin (send), \
                stdout (recv)"
    )]
    pub file: Option<String>,
    /// Data region of the ring if this end creates it: a power of two from 64 to 1T,
    /// with K/M/G suffixes (default 1M; an existing ring keeps its size)
    #[arg(
        short = 's',
        long,
        value_name = "SIZE",
        value_parser = parse_ring_size,
        default_value_t = DEFAULT_RING,
        hide_default_value = true
    )]
    pub ring_size: usize,
    /// Give up (status 4) when the peer has not come, or has not moved, for this long
    /// in one wait: 30, 1.5s, 500ms, 2m (default: wait as long as it takes; a peer
    /// that dies is noticed within a second either way)
    #[arg(short = 't', long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// No progress bar (it is shown only when stderr is a terminal)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Use a ring owned (or, System V, created) by another user: that user can
    /// rewrite or resize it at any time, so only one you trust
    #[arg(long)]
    pub foreign_owner: bool,
    /// Share the ring with this user's group: create it with mode 0660 (not 0600),
    /// and accept an existing ring that grants its group access
    #[arg(long)]
    pub group_access: bool,
}

impl Options {
    /// The options as parsed, with `-` for FILE meaning stdin / stdout.
    pub fn finish(mut self) -> Options {
        self.file = self.file.filter(|f| f != "-");
        self
    }

    /// What `create_or_open` is to make, or to accept of a ring that exists (the
    /// backing is the ring name's: `create_or_open` or `create_or_open_sysv`).
    pub fn ring_options(&self) -> RingOptions {
        RingOptions::new(self.ring_size)
            .group_access(self.group_access)
            .open_options(OpenOptions::new().foreign_owner(self.foreign_owner))
    }
}

/// Parses `--ring-size`: a size (`1M`) that the library can make a ring of.
fn parse_ring_size(s: &str) -> Result<usize, String> {
    let size = parse_size(s)?;
    if !size.is_power_of_two()
        || size < shmlane::MIN_CAPACITY as u64
        || size > shmlane::MAX_CAPACITY as u64
    {
        return Err(format!(
            "{size} bytes is not a power of two from {} to {} bytes",
            shmlane::MIN_CAPACITY,
            shmlane::MAX_CAPACITY
        ));
    }
    usize::try_from(size).map_err(|_| format!("{size} bytes is too large for this platform"))
}

/// How long an end that failed waits for its live peer to leave before it decides
/// whether to remove the ring.
const LEAVE_WAIT: Duration = Duration::from_secs(2);

/// One end of a transfer once its endpoint is attached: the probe that watches the
/// ring, the watch thread, and the progress line.
#[derive(Debug)]
pub struct Session {
    pub name: RingName,
    pub me: EndpointRole,
    /// `None` if the ring could not be inspected as ours (then the peer is not watched
    /// and a failing end leaves the ring in place).
    probe: Option<Arc<Probe>>,
    pub watch: Watch,
    pub progress: Progress,
}

/// Opens a probe on `name` and checks that it sees our own endpoint, attached: the
/// ring we are attached to, not one that replaced its name meanwhile.
pub(crate) fn open_probe(name: &RingName, me: EndpointRole) -> Option<Probe> {
    let probe = Probe::open(&name.to_string()).ok()?;
    let info = probe.read().ok()?;
    let mine = info.endpoint(me)?;
    (mine.state == EndpointState::Attached && mine.pid == std::process::id()).then_some(probe)
}

impl Session {
    /// Starts watching the ring our endpoint (of role `me`) has just attached to.
    pub fn start(opts: &Options, me: EndpointRole, command: &'static str) -> Session {
        let probe = open_probe(&opts.name, me).map(Arc::new);
        let progress = Progress::new(opts.quiet);
        let watch = Watch::start(
            probe.clone(),
            Config {
                command,
                me,
                name: opts.name.clone(),
                timeout: opts.timeout,
                newline_first: progress.is_on(),
            },
        );
        Session {
            name: opts.name.clone(),
            me,
            probe,
            watch,
            progress,
        }
    }

    /// Runs `f`, a call that may wait on the ring, under the watch.
    pub fn wait<T>(&self, f: impl FnOnce() -> T) -> T {
        self.watch.wait(f)
    }

    /// The ring's header now, if it can be read.
    pub fn read(&self) -> Option<RingInfo> {
        self.probe.as_ref().and_then(|p| p.read().ok())
    }

    /// The peer's endpoint slot now.
    pub fn peer(&self) -> Option<EndpointInfo> {
        self.read()
            .and_then(|i| i.endpoint(peer_of(self.me)).copied())
    }

    /// Ends a failed transfer: stops the watch, drops our `endpoint` (so the peer sees
    /// us gone), and removes the name unless the peer is attached and alive (it then
    /// fails in turn and removes it). A peer that is leaving too is given
    /// [`LEAVE_WAIT`] to go; a ring we cannot inspect is left in place.
    pub fn fail<E>(&mut self, endpoint: E, failure: Failure) -> Failure {
        self.watch.finish();
        self.progress.interrupt();
        drop(endpoint);
        if self.probe.is_none() {
            return failure;
        }
        let deadline = Instant::now() + LEAVE_WAIT;
        loop {
            let peer_stays = self
                .peer()
                .is_some_and(|p| p.state == EndpointState::Attached && p.alive);
            if !peer_stays {
                let _ = self.name.remove();
                return failure;
            }
            if Instant::now() >= deadline {
                return failure;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends a failed transfer on a ring that is not ours to remove (another program's
    /// ring, or an earlier transfer's): stops the watch and drops the endpoint.
    pub fn fail_keep<E>(&mut self, endpoint: E, failure: Failure) -> Failure {
        self.watch.finish();
        self.progress.interrupt();
        drop(endpoint);
        failure
    }
}

/// The failure of `create_or_open` on `name`. The library says when a segment is no
/// ring at all (`NotARing`: no shmlane magic); one it finds corrupt for its size or
/// type, or not ready, may not be a ring either: inspection tells, and the message
/// says so.
pub fn open_failure(name: &RingName, e: shmlane::Error) -> Failure {
    use shmlane::Error as E;
    if let E::NotARing { .. } = e {
        return Failure::bad_use(format!(
            "{name} is not a shmlane segment, so not a ring send or recv can use ({e})"
        ));
    }
    if let E::Corrupt { .. } | E::Incompatible { .. } | E::NotReady { .. } = e {
        if let Err(
            E::NotARing { .. }
            | E::Corrupt {
                field: "segment size" | "file type",
                ..
            },
        ) = shmlane::inspect::inspect(&name.to_string())
        {
            return Failure::bad_use(format!(
                "{name} is not a shmlane segment, so not a ring send or recv can use ({e})"
            ));
        }
    }
    Failure::setup(&e)
}

/// Removes the ring `name` if what it holds is what an interrupted transfer left: a
/// ring nobody uses any more that holds nothing undelivered
/// (`shmlane::inspect::RingInfo::is_stale`: no endpoint attached and alive, no live
/// creator, and not a finished transfer waiting for its receiver), so that this
/// transfer starts on a new ring instead of being refused (an unread remainder), or
/// reading the middle of another transfer.
///
/// Only a ring proven unused is removed: `remove_if_stale` reads it again and
/// removes it holding every lock of its header, so an end of a new transfer that
/// attached meanwhile (the peer of ours, starting at the same moment) keeps it. A
/// ring a live sender or receiver holds is never touched: ours then gets `Busy`.
/// Anything that stops the look (no ring, not a ring, no permission) is left for
/// `create_or_open` to report.
pub fn take_over_stale(name: &RingName, command: &str) {
    if let Ok(true) = shmlane::inspect::remove_if_stale(&name.to_string()) {
        eprintln!(
            "shmlane {command}: note: removed ring {name}, which an interrupted transfer \
             left (its processes are gone)"
        );
    }
}

/// Reads into `buf`, retrying when interrupted by a signal.
pub fn read_retry(input: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip() {
        assert_eq!(parse_hello(&hello(0)), Some(0));
        assert_eq!(parse_hello(&hello(UNKNOWN_LENGTH)), Some(UNKNOWN_LENGTH));
        assert_eq!(parse_hello(&hello(4 << 30)), Some(4 << 30));
        assert_eq!(parse_hello(b"SHMLPIP1"), None);
        let mut other = hello(1);
        other[7] = b'2';
        assert_eq!(parse_hello(&other), None);
    }

    #[test]
    fn chunks_fit_a_record() {
        assert_eq!(chunk_len(1 << 20, (1 << 19) - 8), (1 << 18) - 8);
        assert_eq!(chunk_len(64, 24), 8);
        assert_eq!(chunk_len(64 << 30, (1 << 31) - 8), (1 << 31) - 8);
    }
}
