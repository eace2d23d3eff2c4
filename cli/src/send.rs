//! `shmlane send NAME [FILE]`: sends stdin or a file through the SPSC ring `NAME`, to a
//! `shmlane recv NAME` started before or after it.
//!
//! ```text
//! $ shmlane send frames big.iso &
//! $ shmlane recv frames copy.iso
//! $ tar c dir | shmlane send backup        # length unknown: sent in chunks
//! ```
//!
//! The wire format and who removes the ring are in [`crate::pipe`].

use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::fd::AsFd;

use shmlane::inspect::{EndpointRole, EndpointState};
use shmlane::{spsc, SendError};

use crate::args::{human_bytes, RingName};
use crate::exit::Failure;
use crate::pipe::{self, read_retry, Session, UNKNOWN_LENGTH};

/// The description in `shmlane send --help`.
pub const ABOUT: &str = "\
Sends FILE (default: stdin; '-' is stdin too) through the shared-memory ring
NAME to 'shmlane recv NAME', which may start before or after it. The first of
the two creates the ring (/dev/shm/NAME; 'sysv:KEY' names a System V segment
instead).

  shmlane send frames big.iso &   shmlane recv frames copy.iso
  tar c dir | shmlane send backup

A regular file goes as one message streamed through the ring; anything else
(a pipe, a terminal) goes in chunks, each sent as soon as it is read. Memory in
use is the ring, whatever the size. When everything is in the ring, send exits
and leaves the data there for the receiver, which removes the ring once it has
read it all ('shmlane rm NAME' removes it if no receiver ever comes; 'shmlane
rm --stale' keeps it). Interrupted (Ctrl-C, SIGTERM), send removes the ring unless
a live receiver is attached, which then fails and removes it.";

/// What `send` needs: the options it shares with `recv`.
pub type Options = pipe::Options;

/// The input and what we know of its length.
struct Input {
    file: File,
    /// What to call it in messages.
    label: String,
    /// Bytes left in it, if it is a regular file.
    len: Option<u64>,
}

fn open_input(path: Option<&str>) -> Result<Input, Failure> {
    let (file, label) = match path {
        Some(p) => (
            File::open(p).map_err(|e| Failure::io(format!("cannot open {p}: {e}")))?,
            p.to_string(),
        ),
        // A duplicate of fd 0: dropping it leaves stdin open, and it shares stdin's
        // offset, which the length below starts from.
        None => (
            io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map(File::from)
                .map_err(|e| Failure::io(format!("cannot use stdin: {e}")))?,
            "stdin".to_string(),
        ),
    };
    let meta = file
        .metadata()
        .map_err(|e| Failure::io(format!("cannot stat {label}: {e}")))?;
    let len = if meta.file_type().is_file() {
        let mut f = &file;
        let offset = f.stream_position().unwrap_or(0);
        // The kernel reads ahead harder for a sequential reader.
        let _ = nix::fcntl::posix_fadvise(
            &file,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL,
        );
        Some(meta.len().saturating_sub(offset))
    } else {
        None
    };
    Ok(Input { file, label, len })
}

/// Bytes read from the input at a time when its length is known. The writer cuts
/// them into fragments (a quarter of the ring) and waits for room between them; large
/// reads mean few system calls (measured: 1 MiB reads moved 4 GiB through a 1 MiB ring
/// ~5% faster than 256 KiB ones, 64 KiB about as fast as 1 MiB).
const READ_BUF: usize = 1 << 20;

fn send_error(e: SendError, sent: u64) -> Failure {
    match e {
        SendError::Disconnected => Failure::peer_gone(format!(
            "the receiver left after {} ({sent} bytes) had been sent",
            human_bytes(sent)
        )),
        other => Failure::io(format!("cannot send: {other}")),
    }
}

fn write_error(e: io::Error, sent: u64) -> Failure {
    match e.kind() {
        io::ErrorKind::BrokenPipe => send_error(SendError::Disconnected, sent),
        _ => Failure::io(format!("cannot send: {e}")),
    }
}

/// Sends a body of known length as one streamed message.
fn send_known(
    s: &mut Session,
    tx: &mut spsc::Producer,
    input: &mut Input,
    len: u64,
) -> Result<(), Failure> {
    let mut writer = s.wait(|| tx.stream(len)).map_err(|e| send_error(e, 0))?;
    let mut buf = vec![0u8; READ_BUF];
    let mut sent = 0u64;
    while sent < len {
        let want = buf.len().min((len - sent).try_into().unwrap_or(usize::MAX));
        let n = read_retry(&mut input.file, &mut buf[..want])
            .map_err(|e| Failure::io(format!("reading {}: {e}", input.label)))?;
        if n == 0 {
            // Dropping the writer abandons the message: the receiver gets Truncated.
            return Err(Failure::io(format!(
                "{} shrank while being sent: it ended after {sent} of its {len} bytes",
                input.label
            )));
        }
        s.wait(|| writer.write_all(&buf[..n]))
            .map_err(|e| write_error(e, sent))?;
        sent += n as u64;
        s.progress.add(n as u64);
    }
    s.wait(|| writer.finish()).map_err(|e| write_error(e, sent))
}

/// Sends a body of unknown length: each read as one chunk, read straight into the
/// ring, then the empty end marker.
fn send_chunks(s: &mut Session, tx: &mut spsc::Producer, input: &mut Input) -> Result<(), Failure> {
    let chunk = pipe::chunk_len(tx.capacity(), tx.max_record_payload());
    let mut sent = 0u64;
    loop {
        let mut grant = s
            .wait(|| tx.reserve(chunk))
            .map_err(|e| send_error(e, sent))?;
        let n = read_retry(&mut input.file, &mut grant)
            .map_err(|e| Failure::io(format!("reading {}: {e}", input.label)))?;
        if n == 0 {
            // Dropped without a commit, the grant publishes nothing.
            break;
        }
        grant
            .commit_len(n)
            .map_err(|e| Failure::io(format!("cannot send: {e}")))?;
        sent += n as u64;
        s.progress.add(n as u64);
    }
    s.wait(|| tx.send(&[])).map_err(|e| send_error(e, sent))
}

pub fn run(opts: &Options) -> Result<(), Failure> {
    let mut input = open_input(opts.file.as_deref())?;
    let ring_opts = opts.ring_options();
    pipe::take_over_stale(&opts.name, "send");
    let mut tx = match &opts.name {
        RingName::Posix(name) => spsc::Producer::create_or_open(name, &ring_opts),
        RingName::SysV(key) => spsc::Producer::create_or_open_sysv(*key, &ring_opts),
    }
    .map_err(|e| pipe::open_failure(&opts.name, e))?;
    let mut s = Session::start(opts, EndpointRole::Producer, "send");

    // Another sender's transfer still in the ring: ours would queue behind it, and its
    // receiver would remove the ring under ours.
    if let Some(info) = s.read() {
        let earlier = info
            .endpoint(EndpointRole::Producer)
            .is_some_and(|p| p.generation > 1);
        if earlier && info.used.is_some_and(|u| u > 0) {
            let msg = format!(
                "ring {} still holds {} of an earlier transfer that no receiver has read: \
                 receive it ('shmlane recv {}') or remove it ('shmlane rm {}')",
                opts.name,
                human_bytes(info.used.unwrap_or(0)),
                opts.name,
                opts.name
            );
            return Err(s.fail_keep(tx, Failure::bad_use(msg)));
        }
    }

    let len = input.len;
    s.progress.set_total(len);
    let result = s
        .wait(|| tx.send(&pipe::hello(len.unwrap_or(UNKNOWN_LENGTH))))
        .map_err(|e| send_error(e, 0))
        .and_then(|()| match len {
            Some(len) => send_known(&mut s, &mut tx, &mut input, len),
            None => send_chunks(&mut s, &mut tx, &mut input),
        });
    if let Err(f) = result {
        return Err(s.fail(tx, f));
    }

    // Everything is in the ring. Did the receiver take it, or will one still come?
    s.watch.finish();
    drop(tx);
    s.progress.finish();
    let Some(info) = s.read() else {
        return Ok(());
    };
    let sent = s.progress.done();
    match info.endpoint(EndpointRole::Consumer) {
        Some(c) if c.state == EndpointState::Attached && !c.alive => {
            let _ = opts.name.remove();
            Err(Failure::peer_gone(format!(
                "the receiver (pid {}) died before reading everything",
                c.pid
            )))
        }
        Some(c) if c.state == EndpointState::Detached && info.used.is_some_and(|u| u > 0) => {
            let _ = opts.name.remove();
            Err(Failure::peer_gone(format!(
                "the receiver left with {} of the {} sent unread",
                human_bytes(info.used.unwrap_or(0)),
                human_bytes(sent)
            )))
        }
        _ => Ok(()),
    }
}
