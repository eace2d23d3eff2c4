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
           pipes, UNIX and TCP sockets, message queues and the raw floors
  help     Print this help, or a command's help: shmlane help bench

Options:
  -h, --help       Print this help
  -V, --version    Print the version
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
    /// `shmlane bench` with these arguments (parsed by the bench module).
    Bench(Vec<OsString>),
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
            Some("bench") => Ok(Command::Bench(vec!["--help".into()])),
            Some("help") => Ok(Command::Print(USAGE)),
            Some(other) => match help_of(other) {
                Some(help) => Ok(Command::Print(help)),
                None => Err(usage_error(format!("unknown command '{other}'"), USAGE)),
            },
        },
        "bench" => Ok(Command::Bench(args.collect())),
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
        Command::Bench(args) => bench::main(args),
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
        let bench = |c: Result<Command, UsageError>| match c {
            Ok(Command::Bench(args)) => args,
            other => panic!("{other:?}"),
        };
        assert!(bench(p(&["bench"])).is_empty());
        assert_eq!(bench(p(&["bench", "--json", "--quick"])).len(), 2);
        assert_eq!(bench(p(&["help", "bench"])), [OsString::from("--help")]);
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
    }
}
