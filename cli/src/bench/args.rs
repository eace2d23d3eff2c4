//! The command line of `shmlane bench`: its options, its help (generated from the
//! mechanism table, so that it says what every row measures), and its entry point.

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

/// The arguments of `shmlane bench`, as clap parses them (into [`Options`]).
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct Args {
    /// One round, shorter timed parts (under 30 s)
    #[arg(long)]
    quick: bool,
    /// Print every figure as JSON on stdout instead of the table
    #[arg(long)]
    json: bool,
    /// Also draw the round-trip latency curves (one panel per size, percentiles on a
    /// log axis) and throughput by message size (log axes) into FILE.svg
    #[arg(long, value_name = "FILE.svg", value_parser = parse_plot)]
    plot: Option<PathBuf>,
    /// Measure only these rows (the ratios need raw-cache-line and pipe)
    #[arg(long, value_name = "ID[,ID...]", value_parser = parse_only)]
    only: Option<Only>,
}

/// The rows `--only` names, each once, in the order given.
#[derive(Clone, Debug)]
pub(crate) struct Only(Vec<&'static MechSpec>);

impl From<Args> for Options {
    fn from(a: Args) -> Options {
        Options {
            quick: a.quick,
            json: a.json,
            plot: a.plot,
            only: a.only.map(|o| o.0),
        }
    }
}

fn parse_plot(path: &str) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("--plot needs a file name".into());
    }
    Ok(PathBuf::from(path))
}

fn parse_only(list: &str) -> Result<Only, String> {
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
    Ok(Only(out))
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

/// The description in `shmlane bench --help`: what every row measures, with the
/// run's timings.
pub(crate) fn description() -> String {
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
    pipe); throughput to a pipe (this/pipe) and, in messages/s, to the
    minimal SPSC ring of the same message size (this/min). Then the targets
    shmlane is held to.

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
figure's median (a few minutes); --quick runs it once (under 30 s).",
        rounds = full.rounds
    );
    o
}

/// The exit statuses in `shmlane bench --help`.
pub(crate) const EXIT_STATUS: &str = "\
Exit status: 0 when the run completed (whether or not targets were met),
1 when a measurement failed or FILE.svg could not be written, 2 for a usage
error, 128+N on signal N.";

/// `shmlane bench` with these options: runs, and returns the exit code.
pub(crate) fn main(opts: Options) -> ExitCode {
    match super::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmlane bench: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `shmlane bench` alone, for its arguments.
    #[derive(Debug, Parser)]
    struct Bench {
        #[command(flatten)]
        args: Args,
    }

    fn p(args: &[&str]) -> Result<Options, String> {
        Bench::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .map(|b| b.args.into())
            .map_err(|e| e.to_string())
    }

    fn opts(args: &[&str]) -> Options {
        match p(args) {
            Ok(o) => o,
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
        assert!(p(&["--help"]).unwrap_err().contains("--quick"));
        assert!(p(&["--quick", "-h"]).unwrap_err().contains("--quick"));
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
    fn description_names_every_row() {
        let u = description();
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
