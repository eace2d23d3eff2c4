//! `shmlane recv NAME [FILE]`: receives what `shmlane send NAME` sends, to stdout or a
//! file, and removes the ring once it has all of it.
//!
//! ```text
//! $ shmlane recv frames copy.iso &
//! $ shmlane send frames big.iso
//! $ shmlane recv backup | tar x
//! ```
//!
//! The wire format and who removes the ring are in [`crate::pipe`].

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;

use shmlane::inspect::EndpointRole;
use shmlane::{spsc, RecvError};

use crate::args::{human_bytes, RingName};
use crate::exit::Failure;
use crate::pipe::{self, Session, HELLO_LEN, UNKNOWN_LENGTH};

/// The description in `shmlane recv --help`.
pub const ABOUT: &str = "\
Receives what 'shmlane send NAME' sends through the shared-memory ring NAME and
writes it to FILE (created or truncated; default: stdout, as is '-'). Either
end may start first; the first creates the ring. Once everything is received,
recv removes the ring.

  shmlane recv frames copy.iso
  shmlane recv backup | tar x";

/// What `recv` needs: the options it shares with `send`.
pub type Options = pipe::Options;

/// Bytes read from a streamed message at a time (a quarter of the default ring).
const READ_BUF: usize = 256 << 10;

/// Where the bytes go.
struct Output {
    file: File,
    label: String,
}

fn open_output(path: Option<&str>) -> Result<Output, Failure> {
    Ok(match path {
        Some(p) => Output {
            file: File::create(p).map_err(|e| Failure::io(format!("cannot create {p}: {e}")))?,
            label: p.to_string(),
        },
        // A duplicate of fd 1, written unbuffered: what we have written is out even if
        // the watch ends the process.
        None => Output {
            file: io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map(File::from)
                .map_err(|e| Failure::io(format!("cannot use stdout: {e}")))?,
            label: "stdout".to_string(),
        },
    })
}

impl Output {
    fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.file
            .write_all(bytes)
            .map_err(|e| Failure::io(format!("writing {}: {e}", self.label)))
    }
}

/// Why a message could not be taken from the ring, `got` bytes into the body.
fn recv_error(e: RecvError, got: u64) -> Failure {
    match e {
        RecvError::Disconnected | RecvError::Truncated if got == 0 => {
            Failure::peer_gone("the sender left before sending everything (nothing received)")
        }
        RecvError::Disconnected | RecvError::Truncated => Failure::peer_gone(format!(
            "the sender left or died before the end: {} ({got} bytes) received",
            human_bytes(got)
        )),
        other => Failure::io(format!("cannot receive: {other}")),
    }
}

/// A ring that carries something other than `shmlane send`'s format.
fn foreign(name: &impl std::fmt::Display, what: &str) -> Failure {
    Failure::bad_use(format!(
        "ring {name} does not carry a 'shmlane send' transfer ({what})"
    ))
}

/// Receives a body of known length, one streamed message.
fn recv_known(
    s: &mut Session,
    rx: &mut spsc::Consumer,
    out: &mut Output,
    len: u64,
) -> Result<(), Failure> {
    let mut reader = s.wait(|| rx.recv_stream()).map_err(|e| recv_error(e, 0))?;
    if reader.len() != len {
        return Err(Failure::io(format!(
            "the sender announced {len} bytes and sent a message of {}",
            reader.len()
        )));
    }
    let mut buf = vec![0u8; READ_BUF];
    let mut got = 0u64;
    loop {
        let n = match s.wait(|| reader.read(&mut buf)) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(recv_error(RecvError::Truncated, got))
            }
            Err(e) => return Err(Failure::io(format!("cannot receive: {e}"))),
        };
        out.write(&buf[..n])?;
        got += n as u64;
        s.progress.add(n as u64);
    }
    if got != len {
        return Err(recv_error(RecvError::Truncated, got));
    }
    Ok(())
}

/// Receives a body of unknown length: chunks, written out straight from the ring, up
/// to the empty end marker.
fn recv_chunks(s: &mut Session, rx: &mut spsc::Consumer, out: &mut Output) -> Result<(), Failure> {
    let mut got = 0u64;
    loop {
        let chunk = s.wait(|| rx.recv_ref()).map_err(|e| match e {
            RecvError::Fragmented { len } => Failure::io(format!(
                "the sender sent a chunk of {len} bytes, larger than one record"
            )),
            e => recv_error(e, got),
        })?;
        if chunk.is_empty() {
            return Ok(());
        }
        out.write(&chunk)?;
        got += chunk.len() as u64;
        s.progress.add(chunk.len() as u64);
    }
}

pub fn run(opts: &Options) -> Result<(), Failure> {
    let mut out = open_output(opts.file.as_deref())?;
    let ring_opts = opts.ring_options();
    pipe::take_over_stale(&opts.name, "recv");
    let mut rx = match &opts.name {
        RingName::Posix(name) => spsc::Consumer::create_or_open(name, &ring_opts),
        RingName::SysV(key) => spsc::Consumer::create_or_open_sysv(*key, &ring_opts),
    }
    .map_err(|e| pipe::open_failure(&opts.name, e))?;
    let mut s = Session::start(opts, EndpointRole::Consumer, "recv");

    // The hello: refuse (and leave in the ring) anything longer.
    let max_message = rx.max_message();
    rx.set_max_message(HELLO_LEN as u64);
    let mut hello = Vec::new();
    let len = match s.wait(|| rx.recv(&mut hello)) {
        Ok(_) => match pipe::parse_hello(&hello) {
            Some(len) => len,
            None => {
                let f = foreign(
                    &opts.name,
                    &format!(
                        "its first message is {} bytes that are not a transfer header",
                        hello.len()
                    ),
                );
                return Err(s.fail_keep(rx, f));
            }
        },
        Err(RecvError::TooLarge { len, .. }) => {
            let f = foreign(
                &opts.name,
                &format!("its first message is {len} bytes long"),
            );
            return Err(s.fail_keep(rx, f));
        }
        Err(e) => return Err(s.fail(rx, recv_error(e, 0))),
    };
    rx.set_max_message(max_message);
    let known = (len != UNKNOWN_LENGTH).then_some(len);
    s.progress.set_total(known);

    let result = match known {
        Some(len) => recv_known(&mut s, &mut rx, &mut out, len),
        None => recv_chunks(&mut s, &mut rx, &mut out),
    };
    if let Err(f) = result {
        return Err(s.fail(rx, f));
    }
    // All of it is here: the ring has served its purpose.
    s.watch.finish();
    let _ = opts.name.remove();
    drop(rx);
    s.progress.finish();
    Ok(())
}
