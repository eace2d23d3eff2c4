//! The command line of `shmlane bench`: its options, its help (generated from the
//! mechanism table, so that it says what every row measures), and its entry point.

use std::ffi::OsString;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::mechs::{Loads, MechSpec, MECHANISMS};
use super::{Config, LATENCY_SIZES};

/// Command-line options of `shmlane bench`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    /// A short run (under 30 s): one round, shorter timed parts.
    pub(crate) quick: bool,
    /// Every figure as JSON on stdout instead of the table.
    pub(crate) json: bool,
    /// Where to draw the SVG plot, if anywhere.
    pub(crate) plot: Option<PathBuf>,
    /// The mechanisms to measure (all if `None`).
    pub(crate) only: Option<Vec<&'static MechSpec>>,
}

/// What the arguments ask for.
#[derive(Debug)]
pub(crate) enum Parsed {
    Help,
    Run(Options),
}

/// Shown after a usage error.
pub(crate) const SHORT_USAGE: &str = "\
Usage: shmlane bench [--quick] [--json] [--plot FILE.svg] [--only ID[,ID...]]
Run 'shmlane bench --help' for details.
";

fn utf8(arg: OsString) -> Result<String, String> {
    arg.into_string()
        .map_err(|a| format!("argument {a:?} is not valid UTF-8"))
}

fn parse_only(list: &str) -> Result<Vec<&'static MechSpec>, String> {
    let mut out: Vec<&'static MechSpec> = Vec::new();
    for id in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let spec = MECHANISMS.iter().find(|m| m.id == id).ok_or_else(|| {
            let ids: Vec<&str> = MECHANISMS.iter().map(|m| m.id).collect();
            format!(
                "unknown mechanism '{id}' for --only (one of: {})",
                ids.join(", ")
            )
        })?;
        if !out.iter().any(|m| m.id == spec.id) {
            out.push(spec);
        }
    }
    if out.is_empty() {
        return Err("--only needs at least one mechanism id".into());
    }
    Ok(out)
}

/// Parses the arguments after `bench`.
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, String> {
    let mut opts = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = utf8(arg)?;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => match args.next() {
                    Some(v) => utf8(v),
                    None => Err(format!("{name} needs a value")),
                },
            }
        };
        match flag.as_str() {
            "--quick" if inline.is_none() => opts.quick = true,
            "--json" if inline.is_none() => opts.json = true,
            "-h" | "--help" if inline.is_none() => return Ok(Parsed::Help),
            "--plot" => {
                let v = value("--plot")?;
                if v.is_empty() {
                    return Err("--plot needs a file name".into());
                }
                opts.plot = Some(PathBuf::from(v));
            }
            "--only" => opts.only = Some(parse_only(&value("--only")?)?),
            _ => return Err(format!("unknown argument '{arg}' for 'shmlane bench'")),
        }
    }
    Ok(Parsed::Run(opts))
}

/// Wraps `text` at `width` columns, every line after the first indented by `indent`.
pub(crate) fn wrap(text: &str, width: usize, indent: usize) -> String {
    let mut out = String::new();
    let mut col = indent;
    for word in text.split_whitespace() {
        if col > indent && col + 1 + word.len() > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = indent;
        } else if col > indent {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += word.len();
    }
    out
}

fn secs(ns: u64) -> String {
    let s = ns as f64 / 1e9;
    if s >= 1.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.0} ms", s * 1e3)
    }
}

/// The full help of `shmlane bench`.
pub(crate) fn usage() -> String {
    let quick = Config::new(true);
    let full = Config::new(false);
    let sizes: Vec<String> = LATENCY_SIZES
        .iter()
        .map(|&s| super::report::size(s))
        .collect();
    let mut o = String::new();
    let _ = write!(
        o,
        "\
Usage: shmlane bench [--quick] [--json] [--plot FILE.svg] [--only ID[,ID...]]

Measures shmlane beside the other ways two processes on this host can talk, with
real forked processes (producer or pinger pinned to the first allowed CPU,
consumer or ponger to the second, when two are allowed; fresh processes and a
fresh channel for every row). Every receiver copies each message out into its
own buffer and checks it (sequence number and last byte), as read() would.

  Round trip (ping-pong), {sizes} messages, p50 / p99 / p99.9 in ns:
    the pinger sends a message and waits for its echo; one sample is the
    time from before the send to after the receive (it includes one clock
    read). The ponger receives, checks and sends the message back. Each row
    is timed for {lat_full} after a warm-up ({lat_quick} with --quick), and for at most
    {max_full} round trips.
  One-way throughput, GB/s (10^9 B/s) and messages/s, for 64 B, 4 KiB, 64 KiB
    and 1 MiB messages, and one long message streamed in 1 MiB writes and
    reads: from the producer's first timed send to the consumer's check of
    the last byte, after a warm-up of at least two laps of the ring. Each row
    of messages is timed for {tp_full} ({tp_quick} with --quick), and the table
    gives the volume it moved; the streamed message is {stream_full} long
    ({stream_quick} with --quick).
  MPMC / SPSC: the MPMC rows above over the SPSC rows of the same wait and
    size (one producer and one consumer per ring): round-trip p50 and p99,
    one-way messages/s.
  MPMC throughput, messages/s, {contention_sizes} messages, 1P1C, 2P2C and 4P4C: P
    producers and C consumers on one channel, producers pinned to the first
    CPU and consumers to the second. Each producer sends until told to stop;
    each consumer copies out and checks every message (producer id, each
    producer's sequence in order, length, last byte); at the end the
    messages taken must equal those sent. The rate counts the messages
    consumed between two instants {c_full} apart after a {cw_full} warm-up
    ({c_quick} after {cw_quick} with --quick): the steady state. shmlane's
    endpoints use the default Wait::Adaptive there (4P4C is 8 processes: on
    2 CPUs, endpoints that spin take the CPU from the peers they wait for);
    Wait::Spin for 1P1C only. Ratios to crossbeam's ArrayQueue between
    threads (this/AQ) and to a shared pipe (this/pipe) of the same size and
    shape, and to the row's own 1P1C (/1P1C).
  Ratios, all within the run: round trips to the raw-cache-line floor
    (p50/floor, p99/floor) and to a pipe (pipe/this: times faster than a
    pipe); throughput to a pipe (this/pipe). Then the targets shmlane is held
    to.

Rows (ID for --only and the JSON, the name in the table):
",
        sizes = sizes.join(", "),
        lat_full = secs(full.latency.timed.ns),
        max_full = full.latency.max_samples,
        lat_quick = secs(quick.latency.timed.ns),
        stream_full = super::report::size_u64(full.stream_len),
        stream_quick = super::report::size_u64(quick.stream_len),
        tp_full = secs(full.timed_ns),
        tp_quick = secs(quick.timed_ns),
        contention_sizes = super::contention::SIZES
            .iter()
            .map(|&s| super::report::size(s))
            .collect::<Vec<_>>()
            .join(" and "),
        c_full = secs(full.contention_timed_ns),
        cw_full = secs(full.contention_warm_ns),
        c_quick = secs(quick.contention_timed_ns),
        cw_quick = secs(quick.contention_warm_ns),
    );
    for m in MECHANISMS {
        let mut parts: Vec<String> = Vec::new();
        if m.latency {
            parts.push("round trips".into());
        }
        if m.loads != Loads::None {
            parts.push("throughput".into());
        }
        if !m.contention.is_empty() {
            let shapes: Vec<String> = m.contention.iter().map(|s| s.to_string()).collect();
            parts.push(format!("MPMC throughput {}", shapes.join(" ")));
        }
        let which = parts.join(", ");
        let _ = writeln!(o, "  {}: {}", m.id, m.label);
        let _ = writeln!(o, "      {}", wrap(&format!("[{which}] {}", m.help), 80, 6));
    }
    let _ = write!(
        o,
        "
A full run repeats everything {rounds} times, interleaved, and reports each
figure's median (a few minutes); --quick runs it once (under 30 s).

Options:
  --quick            One round, shorter timed parts (under 30 s)
  --json             Print every figure as JSON on stdout instead of the table
  --plot FILE.svg    Also draw the round-trip latency curves (one panel per
                     size, percentiles on a log axis) and throughput by message
                     size (log axes) into FILE.svg
  --only ID[,ID...]  Measure only these rows (the ratios need raw-cache-line
                     and pipe)
  -h, --help         Print this help

Exit status: 0 when the run completed (whether or not targets were met),
1 when a measurement failed or FILE.svg could not be written, 2 for a usage
error, 128+N on signal N.
",
        rounds = full.rounds
    );
    o
}

/// `shmlane bench ARGS...`: parses the arguments, runs, and returns the exit code.
pub(crate) fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    match parse(args) {
        Ok(Parsed::Help) => {
            print!("{}", usage());
            ExitCode::SUCCESS
        }
        Ok(Parsed::Run(opts)) => match super::run(&opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("shmlane bench: {e}");
                ExitCode::from(e.exit_code())
            }
        },
        Err(message) => {
            eprintln!("shmlane: {message}\n\n{SHORT_USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, String> {
        parse(args.iter().map(OsString::from))
    }

    fn opts(args: &[&str]) -> Options {
        match p(args) {
            Ok(Parsed::Run(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn options() {
        let o = opts(&[]);
        assert!(!o.quick && !o.json && o.plot.is_none() && o.only.is_none());
        let o = opts(&["--json", "--quick", "--plot", "x.svg"]);
        assert!(o.quick && o.json);
        assert_eq!(o.plot.as_deref(), Some(std::path::Path::new("x.svg")));
        let o = opts(&["--plot=y.svg", "--only", "pipe,raw-cache-line,pipe"]);
        assert_eq!(o.plot.as_deref(), Some(std::path::Path::new("y.svg")));
        let ids: Vec<&str> = o.only.unwrap().iter().map(|m| m.id).collect();
        assert_eq!(ids, ["pipe", "raw-cache-line"]);
        assert!(matches!(p(&["--help"]), Ok(Parsed::Help)));
        assert!(matches!(p(&["--quick", "-h"]), Ok(Parsed::Help)));
    }

    #[test]
    fn errors() {
        for bad in [
            &["--fast"][..],
            &["--plot"],
            &["--plot="],
            &["--only"],
            &["--only", "nope"],
            &["--only", ","],
            &["--quick=1"],
            &["quick"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
        assert!(p(&["--fast"]).unwrap_err().contains("--fast"));
        assert!(p(&["--only", "nope"]).unwrap_err().contains("pipe"));
    }

    #[test]
    fn help_names_every_row() {
        let u = usage();
        for m in MECHANISMS {
            assert!(u.contains(m.id) && u.contains(m.label), "{}", m.id);
        }
        for line in u.lines() {
            assert!(line.chars().count() <= 80, "too long: {line}");
        }
    }

    #[test]
    fn wraps() {
        assert_eq!(wrap("a bb ccc", 8, 2), "a bb\n  ccc");
    }
}
