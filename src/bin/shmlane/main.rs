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
        "help" => match args.next().map(utf8).transpose()?.as_deref() {
            None => Ok(Command::Print(USAGE)),
            Some("bench") => Ok(Command::Bench(vec!["--help".into()])),
            Some("help") => Ok(Command::Print(USAGE)),
            Some(other) => Err(usage_error(format!("unknown command '{other}'"), USAGE)),
        },
        "bench" => Ok(Command::Bench(args.collect())),
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
    fn errors() {
        assert!(p(&[]).is_err());
        assert!(p(&["frobnicate"]).is_err());
        assert!(p(&["--quick"]).is_err());
        assert!(p(&["help", "nope"]).is_err());
    }
}
