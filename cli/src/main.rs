//! The `shmlane` command.
//!
//! - `shmlane send` / `shmlane recv` ([`send`], [`recv`]): a shared-memory pipe between
//!   two shell commands, over an SPSC ring (the wire format is in [`pipe`]);
//! - `shmlane inspect`, `ls`, `rm` ([`inspect`], [`ls`], [`rm`]): look at and remove
//!   rings, through the library's `shmlane::inspect`;
//! - `shmlane bench` ([`mod@bench`]) measures shmlane's round-trip latency and one-way
//!   throughput beside a pipe, a UNIX stream socket and the raw shared-cache-line
//!   floor, with real forked processes, in one run;
//! - `shmlane completions SHELL`: the shell completion script, from clap_complete.
//!
//! Each command has its module, with its options as a `clap::Args` type whose doc
//! comments are its `--help`; the commands and their descriptions are [`Command`]
//! here. Every `--json` output is a type that derives `serde::Serialize`.

#![warn(
    clippy::undocumented_unsafe_blocks,
    missing_debug_implementations,
    rust_2018_idioms
)]

mod args;
mod bench;
mod exit;
mod inspect;
mod ls;
mod output;
mod pipe;
mod recv;
mod rm;
mod send;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Every help starts with the usage line, then says what the command does.
const HELP_TEMPLATE: &str = "\
{usage-heading} {usage}

{about-with-newline}
{all-args}{after-help}";

/// The widest help line, whatever the terminal.
const HELP_WIDTH: usize = 80;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "shmlane",
    version,
    about = "Pipes files and streams between processes on this host through shmlane's \
             shared-memory rings, lists, inspects and removes rings, and benchmarks \
             shmlane against pipes, sockets and other queues.",
    help_template = HELP_TEMPLATE,
    after_help = exit::ALL_EXIT_STATUSES,
    subcommand_required = true,
    arg_required_else_help = true,
    max_term_width = HELP_WIDTH
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What the command line asks for.
#[derive(Debug, Subcommand)]
enum Command {
    #[command(about = "Send stdin or a file through a shared-memory ring: shmlane send NAME [FILE]",
              long_about = send::ABOUT, help_template = HELP_TEMPLATE,
              after_help = exit::exit_status_help!())]
    Send(send::Options),
    /// Receive what 'shmlane send' sends, to stdout or a file
    #[command(long_about = recv::ABOUT, help_template = HELP_TEMPLATE,
              after_help = exit::exit_status_help!())]
    Recv(recv::Options),
    /// Describe a ring: header, cursors, fill level, endpoints and their liveness
    #[command(long_about = inspect::ABOUT, help_template = HELP_TEMPLATE,
              after_help = inspect::EXIT_STATUS)]
    Inspect(inspect::Options),
    /// List the shmlane rings on this host
    #[command(long_about = ls::ABOUT, help_template = HELP_TEMPLATE,
              after_help = ls::EXIT_STATUS)]
    Ls(ls::Options),
    /// Remove rings by name, or every stale one (--stale)
    #[command(long_about = rm::ABOUT, help_template = HELP_TEMPLATE,
              after_help = rm::EXIT_STATUS)]
    Rm(rm::Options),
    /// Measure round-trip latency and one-way throughput of shmlane beside pipes,
    /// UNIX and TCP sockets, message queues and the raw floors
    #[command(help_template = HELP_TEMPLATE, after_help = bench::EXIT_STATUS,
              override_usage = "shmlane bench [--quick] [--json] [--plot FILE.svg] [--only ID[,ID...]]")]
    Bench(bench::Args),
    /// Print a completion script for a shell: shmlane completions bash
    #[command(
        long_about = "Prints the completion script of SHELL on stdout. For example:\n\n  \
                      shmlane completions bash > /etc/bash_completion.d/shmlane\n  \
                      shmlane completions zsh > ~/.zfunc/_shmlane    # with fpath+=~/.zfunc\n  \
                      shmlane completions fish > ~/.config/fish/completions/shmlane.fish",
        help_template = HELP_TEMPLATE,
        after_help = "Exit status: 0 when the script was printed, 2 for a usage error."
    )]
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The command line's definition, with what only a run can compute (the bench's
/// description, made from its table of mechanisms).
fn cli_command() -> clap::Command {
    Cli::command().mut_subcommand("bench", |c| c.long_about(bench::description()))
}

/// Parses the command line: the command to run, or the exit status after the help,
/// the version or a usage error has been printed.
fn parse(args: Vec<OsString>) -> Result<Command, ExitCode> {
    let error = match cli_command()
        .try_get_matches_from(&args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => return Ok(cli.command),
        Err(e) => e,
    };
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            Err(match output::print(&error.render().to_string()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(f) => exit::report("help", Err(f)),
            })
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprint!("shmlane: no command given\n\n{}", error.render());
            Err(ExitCode::from(exit::BAD_USE))
        }
        _ => {
            eprint!("{}", usage_error(&error, &args));
            Err(ExitCode::from(exit::BAD_USE))
        }
    }
}

/// What a usage error prints: `shmlane: ` and what was wrong, then the usage of the
/// command it was given to (clap leaves the usage out of some errors, such as a
/// value that does not parse).
fn usage_error(error: &clap::Error, args: &[OsString]) -> String {
    let text = error.render().to_string();
    let mut text = text.strip_prefix("error: ").unwrap_or(&text).to_string();
    if !text.contains("Usage: ") {
        let mut cli = cli_command();
        cli.build();
        let command = args
            .iter()
            .skip(1)
            .find_map(|a| a.to_str().and_then(|a| cli.find_subcommand(a)))
            .unwrap_or(&cli);
        let usage = format!("{}\n\n", command.clone().render_usage());
        let at = text.find("For more information").unwrap_or(text.len());
        text.insert_str(at, &usage);
    }
    format!("shmlane: {text}")
}

fn main() -> ExitCode {
    let command = match parse(std::env::args_os().collect()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match command {
        Command::Send(opts) => exit::report("send", send::run(&opts.finish())),
        Command::Recv(opts) => exit::report("recv", recv::run(&opts.finish())),
        Command::Inspect(opts) => exit::report("inspect", inspect::run(&opts)),
        Command::Ls(opts) => exit::report("ls", ls::run(&opts)),
        Command::Rm(opts) => {
            output::die_on_broken_pipe();
            exit::report("rm", rm::run(&opts))
        }
        Command::Bench(args) => bench::main(args.into()),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli_command(), "shmlane", &mut script);
            exit::report(
                "completions",
                output::print(&String::from_utf8_lossy(&script)),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::args::RingName;

    fn p(args: &[&str]) -> Result<Command, clap::Error> {
        let args = std::iter::once("shmlane").chain(args.iter().copied());
        cli_command()
            .try_get_matches_from(args)
            .and_then(|m| Cli::from_arg_matches(&m))
            .map(|c| c.command)
    }

    fn help(args: &[&str]) -> String {
        match p(args) {
            Err(e) if e.kind() == ErrorKind::DisplayHelp => e.render().to_string(),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn send(args: &[&str]) -> Result<pipe::Options, clap::Error> {
        let args: Vec<&str> = std::iter::once("send")
            .chain(args.iter().copied())
            .collect();
        p(&args).map(|c| match c {
            Command::Send(o) => o.finish(),
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn the_definition_is_consistent() {
        cli_command().debug_assert();
    }

    #[test]
    fn commands() {
        assert!(matches!(p(&["bench"]), Ok(Command::Bench(_))));
        assert!(
            matches!(p(&["bench", "--json", "--quick"]), Ok(Command::Bench(b)) if {
                let o: bench::Options = b.clone().into();
                o.json && o.quick
            })
        );
        assert!(help(&["help", "bench"]).starts_with("Usage: shmlane bench"));
        assert!(help(&["help"]).starts_with("Usage: shmlane"));
        assert!(help(&["--help"]).contains("Exit status"));
        assert_eq!(p(&["-V"]).unwrap_err().kind(), ErrorKind::DisplayVersion);
        assert!(matches!(
            p(&["completions", "bash"]),
            Ok(Command::Completions {
                shell: clap_complete::Shell::Bash
            })
        ));
    }

    #[test]
    fn data_and_admin_commands() {
        assert!(
            matches!(p(&["send", "ring", "f"]), Ok(Command::Send(o)) if o.file.as_deref() == Some("f"))
        );
        assert!(help(&["recv", "r", "--help"]).starts_with("Usage: shmlane recv"));
        assert!(help(&["help", "send"]).starts_with("Usage: shmlane send"));
        assert!(help(&["help", "inspect"]).starts_with("Usage: shmlane inspect"));
        assert!(help(&["inspect", "-h"]).starts_with("Usage: shmlane inspect"));
        assert!(!help(&["inspect", "-h"]).contains("without attaching"));
        assert!(help(&["inspect", "--help"]).contains("without attaching"));
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
            let argv: Vec<OsString> = std::iter::once("shmlane")
                .chain(bad.iter().copied())
                .map(OsString::from)
                .collect();
            let text = usage_error(&e, &argv);
            assert!(
                text.starts_with("shmlane: ")
                    && text.contains(&format!("Usage: shmlane {}", bad[0])),
                "{bad:?}: {text}"
            );
        }
    }

    #[test]
    fn errors() {
        assert_eq!(
            p(&[]).unwrap_err().kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        assert!(p(&["frobnicate"]).is_err());
        assert!(p(&["--quick"]).is_err());
        assert!(p(&["help", "nope"]).is_err());
        assert!(p(&["completions", "tcsh"]).is_err());
    }

    #[test]
    fn options_values_and_operands() {
        let o = send(&["--ring-size", "1M", "--timeout=5", "name", "-"]).unwrap();
        assert_eq!(o.ring_size, 1 << 20);
        assert_eq!(o.timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.name, RingName::Posix("/name".into()));
        assert_eq!(o.file, None);
        let o = send(&["--", "name", "--x"]).unwrap();
        assert_eq!(o.file.as_deref(), Some("--x"));
    }

    #[test]
    fn option_errors() {
        let e = p(&["ls", "--json=yes"]).unwrap_err();
        assert!(e.to_string().contains("--json"), "{e}");
        let e = send(&["r", "--timeout"]).unwrap_err();
        assert!(e.to_string().contains("--timeout"), "{e}");
        let e = send(&["--ring-size", "lots", "r"]).unwrap_err();
        assert!(
            e.to_string().contains("--ring-size") && e.to_string().contains("lots"),
            "{e}"
        );
        assert_eq!(
            p(&["inspect", "x", "--help"]).unwrap_err().kind(),
            ErrorKind::DisplayHelp
        );
        assert!(
            matches!(p(&["rm", "--", "--help"]), Ok(Command::Rm(o)) if o.names == [RingName::Posix("/--help".into())])
        );
    }

    #[test]
    fn pipe_options() {
        let o = send(&["ring", "-"]).unwrap();
        assert_eq!(o.name, RingName::Posix("/ring".into()));
        assert_eq!(
            (o.file, o.ring_size, o.timeout, o.quiet),
            (None, 1 << 20, None, false)
        );
        assert!(!o.foreign_owner && !o.group_access);
        let o = send(&["-q", "--timeout", "2s", "-s", "64K", "/r", "out.bin"]).unwrap();
        assert_eq!(o.file.as_deref(), Some("out.bin"));
        assert_eq!((o.ring_size, o.quiet), (64 << 10, true));
        assert_eq!(o.timeout, Some(Duration::from_secs(2)));
        let o = send(&["--foreign-owner", "--group-access", "r"]).unwrap();
        assert!(o.foreign_owner && o.group_access);
        assert!(send(&[]).unwrap_err().to_string().contains("<NAME>"));
        assert!(send(&["r", "a", "b"])
            .unwrap_err()
            .to_string()
            .contains("'b'"));
        assert!(send(&["-s", "1000", "r"])
            .unwrap_err()
            .to_string()
            .contains("power of two"));
        assert!(send(&["-s", "32", "r"]).is_err());
        assert!(send(&["a/b"])
            .unwrap_err()
            .to_string()
            .contains("invalid ring name"));
        assert!(send(&["--fast", "r"])
            .unwrap_err()
            .to_string()
            .contains("--fast"));
    }

    #[test]
    fn help_fits_80_columns_and_lists_the_exit_codes() {
        let top = help(&["--help"]);
        for code in [
            "  0  success",
            "  1  I/O error",
            "  2  bad name",
            "  3  send, recv: the peer",
            "  4  send, recv: --timeout",
        ] {
            assert!(top.contains(code), "{code:?} missing from:\n{top}");
        }
        for cmd in [
            "send",
            "recv",
            "inspect",
            "ls",
            "rm",
            "bench",
            "completions",
        ] {
            let h = help(&[cmd, "--help"]);
            for line in h.lines().chain(top.lines()) {
                assert!(line.chars().count() <= HELP_WIDTH, "too long: {line}");
            }
        }
    }
}
