//! The `shmlane` command.
//!
//! - `shmlane send` / `shmlane recv` ([`send`], [`recv`]): a shared-memory pipe between
//!   two shell commands, over an SPSC ring (the wire format is in [`pipe`]);
//! - `shmlane inspect`, `ls`, `rm` ([`inspect`], [`ls`], [`rm`]): look at and remove
//!   rings, through the library's `shmlane::inspect`;
//! - `shmlane bench` ([`mod@bench`]) measures shmlane's round-trip latency and one-way
//!   throughput beside a pipe, a UNIX stream socket and the raw shared-cache-line
//!   floor, with real forked processes, in one run.
//!
//! Each command has its module, with its `--help` text and its parser. Arguments are
//! parsed by hand ([`args`]): the command takes no dependency beyond the library's, so
//! the `cli` feature costs embedders nothing even when it is on.

#![warn(
    clippy::undocumented_unsafe_blocks,
    missing_debug_implementations,
    rust_2018_idioms
)]

mod args;
mod bench;
mod exit;
mod inspect;
mod json;
mod ls;
mod pipe;
mod recv;
mod rm;
mod send;

use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "\
Usage: shmlane <command> [options]

Commands:
  send     Send stdin or a file through a shared-memory ring: shmlane send NAME [FILE]
  recv     Receive what 'shmlane send' sends, to stdout or a file
  inspect  Describe a ring: header, cursors, fill level, endpoints and their liveness
  ls       List the shmlane rings on this host
  rm       Remove rings by name, or every stale one (--stale)
  bench    Measure round-trip latency and one-way throughput of shmlane beside
           pipes, UNIX sockets and a raw shared cache line, in one run
  help     Print this help, or a command's help: shmlane help bench

Options:
  -h, --help       Print this help
  -V, --version    Print the version
";

/// Shown after a usage error in `shmlane bench`'s arguments.
const BENCH_SHORT: &str = "\
Usage: shmlane bench [--quick] [--json]
Run 'shmlane bench --help' for details.
";

const BENCH_USAGE: &str = "\
Usage: shmlane bench [--quick] [--json]

Measures, with real forked processes (producer or pinger pinned to the first
allowed CPU, consumer or ponger to the second), every message copied out and
checked by its receiver:

  round trip (ping-pong) p50 / p99 / p99.9 for 8 B and 1 KiB messages: shmlane
    (Wait::Spin and Wait::Adaptive), a pipe pair, a UNIX socket pair, and two
    processes spinning on a shared cache line (the floor);
  one-way throughput (GB/s and messages/s) for 64 B, 4 KiB, 64 KiB and 1 MiB
    messages and one 256 MiB message streamed: shmlane, a pipe, a pipe with a
    1 MiB buffer, a UNIX socket;

then the targets, as ratios within the run. A full run repeats everything three
times, interleaved, and reports medians (one to two minutes).

Options:
  --quick       One round, fewer round trips and bytes (well under 30 s)
  --json        Print every figure as JSON on stdout instead of the table
  -h, --help    Print this help

Exit status: 0 when the run completed (whether or not targets were met),
1 when a measurement failed, 2 for a usage error, 128+N on signal N.
";

/// What the command line asks for.
#[derive(Debug)]
enum Command {
    /// Print this text on stdout.
    Print(&'static str),
    Send(send::Options),
    Recv(recv::Options),
    Inspect(inspect::Options),
    Ls(ls::Options),
    Rm(rm::Options),
    Version,
    Bench(bench::Options),
}

/// A usage error: the message and the help to show after it.
#[derive(Debug)]
struct UsageError {
    message: String,
    usage: &'static str,
}

fn usage_error(message: String, usage: &'static str) -> UsageError {
    UsageError { message, usage }
}

fn utf8(arg: OsString) -> Result<String, UsageError> {
    arg.into_string()
        .map_err(|a| usage_error(format!("argument {a:?} is not valid UTF-8"), USAGE))
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        return Err(usage_error("no command given".into(), USAGE));
    };
    let first = utf8(first)?;
    match first.as_str() {
        "-h" | "--help" => Ok(Command::Print(USAGE)),
        "-V" | "--version" => Ok(Command::Version),
        "send" => sub(
            args,
            "send",
            send::SHORT,
            send::USAGE,
            send::parse,
            Command::Send,
        ),
        "recv" => sub(
            args,
            "recv",
            recv::SHORT,
            recv::USAGE,
            recv::parse,
            Command::Recv,
        ),
        "inspect" => sub(
            args,
            "inspect",
            inspect::SHORT,
            inspect::USAGE,
            inspect::parse,
            Command::Inspect,
        ),
        "ls" => sub(args, "ls", ls::SHORT, ls::USAGE, ls::parse, Command::Ls),
        "rm" => sub(args, "rm", rm::SHORT, rm::USAGE, rm::parse, Command::Rm),
        "help" => match args.next().map(utf8).transpose()?.as_deref() {
            None => Ok(Command::Print(USAGE)),
            Some("bench") => Ok(Command::Print(BENCH_USAGE)),
            Some("help") => Ok(Command::Print(USAGE)),
            Some(other) => match help_of(other) {
                Some(help) => Ok(Command::Print(help)),
                None => Err(usage_error(format!("unknown command '{other}'"), USAGE)),
            },
        },
        "bench" => {
            let mut opts = bench::Options::default();
            for arg in args {
                match utf8(arg)?.as_str() {
                    "--quick" => opts.quick = true,
                    "--json" => opts.json = true,
                    "-h" | "--help" => return Ok(Command::Print(BENCH_USAGE)),
                    other => {
                        return Err(usage_error(
                            format!("unknown argument '{other}' for 'shmlane bench'"),
                            BENCH_SHORT,
                        ))
                    }
                }
            }
            Ok(Command::Bench(opts))
        }
        other if other.starts_with('-') => {
            Err(usage_error(format!("unknown option '{other}'"), USAGE))
        }
        other => Err(usage_error(format!("unknown command '{other}'"), USAGE)),
    }
}

/// Parses the arguments of a command that has its own module: its full help for
/// `-h` / `--help` (anywhere before `--`), else what its `parse` makes of them.
fn sub<T>(
    args: impl IntoIterator<Item = OsString>,
    command: &'static str,
    short: &'static str,
    usage: &'static str,
    parse: fn(args::Args) -> Result<T, UsageError>,
    wrap: fn(T) -> Command,
) -> Result<Command, UsageError> {
    let args = args::Args::new(args, command, short)?;
    if args.wants_help() {
        return Ok(Command::Print(usage));
    }
    parse(args).map(wrap)
}

/// The full help of the commands other than bench and help.
fn help_of(command: &str) -> Option<&'static str> {
    match command {
        "send" => Some(send::USAGE),
        "recv" => Some(recv::USAGE),
        "inspect" => Some(inspect::USAGE),
        "ls" => Some(ls::USAGE),
        "rm" => Some(rm::USAGE),
        _ => None,
    }
}

fn main() -> ExitCode {
    let command = match parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shmlane: {}\n\n{}", e.message, e.usage);
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Send(opts) => exit::report("send", send::run(&opts)),
        Command::Recv(opts) => exit::report("recv", recv::run(&opts)),
        Command::Inspect(opts) => exit::report("inspect", inspect::run(&opts)),
        Command::Ls(opts) => exit::report("ls", ls::run(&opts)),
        Command::Rm(opts) => exit::report("rm", rm::run(&opts)),
        Command::Print(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("shmlane {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Bench(opts) => match bench::run(&opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("shmlane bench: {e}");
                ExitCode::from(e.exit_code())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn commands() {
        assert!(matches!(p(&["bench"]), Ok(Command::Bench(o)) if !o.quick && !o.json));
        assert!(
            matches!(p(&["bench", "--json", "--quick"]), Ok(Command::Bench(o)) if o.quick && o.json)
        );
        assert!(matches!(
            p(&["bench", "--help"]),
            Ok(Command::Print(BENCH_USAGE))
        ));
        assert!(matches!(
            p(&["help", "bench"]),
            Ok(Command::Print(BENCH_USAGE))
        ));
        assert!(matches!(p(&["help"]), Ok(Command::Print(USAGE))));
        assert!(matches!(p(&["--help"]), Ok(Command::Print(USAGE))));
        assert!(matches!(p(&["-V"]), Ok(Command::Version)));
    }

    #[test]
    fn data_and_admin_commands() {
        assert!(
            matches!(p(&["send", "ring", "f"]), Ok(Command::Send(o)) if o.file.as_deref() == Some("f"))
        );
        assert!(matches!(
            p(&["recv", "r", "--help"]),
            Ok(Command::Print(recv::USAGE))
        ));
        assert!(matches!(
            p(&["help", "send"]),
            Ok(Command::Print(send::USAGE))
        ));
        assert!(matches!(
            p(&["help", "inspect"]),
            Ok(Command::Print(inspect::USAGE))
        ));
        assert!(matches!(
            p(&["inspect", "-h"]),
            Ok(Command::Print(inspect::USAGE))
        ));
        assert!(matches!(p(&["ls", "--json"]), Ok(Command::Ls(o)) if o.json));
        assert!(matches!(p(&["rm", "--stale"]), Ok(Command::Rm(o)) if o.stale));
        assert!(matches!(p(&["rm", "a", "b"]), Ok(Command::Rm(o)) if o.names.len() == 2));
        for bad in [
            &["rm"][..],
            &["rm", "--dry-run", "x"],
            &["inspect"],
            &["inspect", "a", "b"],
            &["ls", "x"],
            &["send"],
            &["recv", "a/b"],
        ] {
            let e = p(bad).unwrap_err();
            assert!(e.usage.contains("Run 'shmlane"), "{bad:?}: {}", e.message);
        }
    }

    #[test]
    fn errors() {
        assert!(p(&[]).is_err());
        assert!(p(&["frobnicate"]).is_err());
        assert!(p(&["--quick"]).is_err());
        assert!(p(&["help", "nope"]).is_err());
        let e = p(&["bench", "--fast"]).unwrap_err();
        assert!(e.message.contains("--fast"));
        assert_eq!(e.usage, BENCH_SHORT);
    }
}
