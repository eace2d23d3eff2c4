//! The `shmlane` command.
//!
//! `shmlane bench` measures shmlane's round-trip latency and one-way throughput beside
//! a pipe, a UNIX stream socket and the raw shared-cache-line floor, with real forked
//! processes, in one run. Arguments are parsed by hand (the crate takes no
//! command-line dependency).

#![warn(
    clippy::undocumented_unsafe_blocks,
    missing_debug_implementations,
    rust_2018_idioms
)]

mod bench;

use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "\
Usage: shmlane <command> [options]

Commands:
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
        "help" => match args.next().map(utf8).transpose()?.as_deref() {
            None => Ok(Command::Print(USAGE)),
            Some("bench") => Ok(Command::Print(BENCH_USAGE)),
            Some("help") => Ok(Command::Print(USAGE)),
            Some(other) => Err(usage_error(format!("unknown command '{other}'"), USAGE)),
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

fn main() -> ExitCode {
    let command = match parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shmlane: {}\n\n{}", e.message, e.usage);
            return ExitCode::from(2);
        }
    };
    match command {
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
