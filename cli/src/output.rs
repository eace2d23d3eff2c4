//! What the commands write on stdout: text, and JSON from the types that derive
//! `serde::Serialize`, both ending the process quietly when the reader has gone.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, PrettyFormatter};

use crate::exit::Failure;

/// Writes `text` on stdout. A reader that has gone (`shmlane ls | head -0`) ends the
/// process as it ends other Unix tools, by SIGPIPE, with nothing on stderr: it has
/// had all of the output it wanted.
pub fn print(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            die_on_broken_pipe();
            // SAFETY: raise has no memory-safety preconditions; SIGPIPE's default
            // action, just restored, ends the process.
            unsafe { libc::raise(libc::SIGPIPE) };
            Ok(())
        }
        Err(e) => Err(Failure::io(format!("writing stdout: {e}"))),
    }
}

/// Restores SIGPIPE's default action (Rust's runtime ignores it): a write to a closed
/// pipe then ends the process quietly instead of failing with EPIPE, which `print!`
/// turns into a panic. Only for what forks nothing and has nothing to clean up when
/// its reader goes (not send, recv or bench).
pub fn die_on_broken_pipe() {
    // SAFETY: signal with SIG_DFL installs no handler; called from the main thread
    // before (or instead of) anything else that sets SIGPIPE's disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// `value` as indented JSON (two spaces), with a final newline.
///
/// Every control character in a string is escaped, not only those JSON requires
/// (below U+0020): DEL and the C1 controls (U+009B is a CSI) would otherwise reach a
/// terminal raw, and ring names are whatever another user put in /dev/shm.
pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, Controls(PrettyFormatter::new()));
    value
        .serialize(&mut ser)
        .expect("serializing to memory cannot fail: no map has non-string keys");
    out.push(b'\n');
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// serde_json's pretty printer, escaping the control characters it passes through.
struct Controls(PrettyFormatter<'static>);

impl Formatter for Controls {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(at) = rest.find(char::is_control) {
            writer.write_all(&rest.as_bytes()[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(writer, "\\u{:04x}", c as u32)?;
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        self.0.write_char_escape(writer, escape)
    }

    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_array(writer)
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object(writer)
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(writer, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object_value(writer)
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_value(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_json() {
        #[derive(Serialize)]
        struct Row {
            name: &'static str,
            n: u64,
            f: f64,
            nan: f64,
            none: Option<u64>,
            list: Vec<u64>,
            empty: Vec<u64>,
            t: bool,
        }
        let row = Row {
            name: "/a \"b\"\n",
            n: u64::MAX,
            f: 0.5,
            nan: f64::NAN,
            none: None,
            list: vec![1, 2],
            empty: vec![],
            t: true,
        };
        assert_eq!(
            json(&row),
            "{\n  \"name\": \"/a \\\"b\\\"\\n\",\n  \"n\": 18446744073709551615,\n  \
             \"f\": 0.5,\n  \"nan\": null,\n  \"none\": null,\n  \"list\": [\n    1,\n    2\n  ],\n  \
             \"empty\": [],\n  \"t\": true\n}\n"
        );
        assert_eq!(json("\u{1}\u{7f}x\u{9b}é"), "\"\\u0001\\u007fx\\u009bé\"\n");
    }
}
