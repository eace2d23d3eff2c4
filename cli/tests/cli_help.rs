//! `shmlane` prints a help for every command, and usage errors exit with status 2.

mod cli_util;

use cli_util::run;

const COMMANDS: [&str; 6] = ["send", "recv", "inspect", "ls", "rm", "bench"];

#[test]
fn every_command_has_help() {
    for cmd in COMMANDS {
        for args in [vec![cmd, "--help"], vec![cmd, "-h"], vec!["help", cmd]] {
            let done = run(&args);
            assert_eq!(done.code(), Some(0), "{args:?}: {}", done.stderr);
            let out = done.stdout_str();
            assert!(
                out.starts_with(&format!("Usage: shmlane {cmd}")),
                "{args:?} printed:\n{out}"
            );
            assert!(out.contains("-h, --help"), "{args:?}: no options list");
            assert!(out.contains("Exit status"), "{args:?}: no exit status");
        }
    }
    let top = run(&["--help"]);
    assert_eq!(top.code(), Some(0));
    for cmd in COMMANDS {
        assert!(
            top.stdout_str().contains(&format!("\n  {cmd} ")),
            "{cmd} missing from the command list"
        );
    }
}

#[test]
fn the_top_level_help_lists_the_exit_statuses() {
    let out = run(&["--help"]).stdout_str();
    let at = out
        .find("Exit status")
        .unwrap_or_else(|| panic!("shmlane --help has no exit statuses:\n{out}"));
    let statuses = &out[at..];
    for line in [
        "  0  success",
        "  1  I/O error",
        "  2  bad name",
        "  3  send, recv: the peer went away",
        "  4  send, recv: --timeout",
        "  128+N  killed by signal N",
    ] {
        assert!(
            statuses.contains(line),
            "shmlane --help lacks {line:?}:\n{out}"
        );
    }
}

#[test]
fn send_and_recv_document_their_exit_statuses() {
    for cmd in ["send", "recv"] {
        let out = run(&[cmd, "--help"]).stdout_str();
        for line in [
            "  0  success",
            "  1  I/O error",
            "  2  bad name",
            "  3  the peer went away",
            "  4  --timeout",
        ] {
            assert!(out.contains(line), "shmlane {cmd} --help lacks {line:?}");
        }
        for opt in ["--ring-size", "--timeout", "--quiet"] {
            assert!(out.contains(opt), "shmlane {cmd} --help lacks {opt}");
        }
    }
}

#[test]
fn usage_errors_exit_2_with_the_short_usage() {
    for args in [
        &["send"][..],
        &["recv", "a", "b", "c"],
        &["send", "--ring-size", "1000", "x"],
        &["recv", "--timeout", "soon", "x"],
        &["inspect"],
        &["ls", "--long"],
        &["rm"],
        &["rm", "--dry-run", "x"],
        &["frobnicate"],
    ] {
        let done = run(args);
        assert_eq!(done.code(), Some(2), "{args:?}: {}", done.stderr);
        assert!(
            done.stderr.starts_with("shmlane: "),
            "{args:?}: {}",
            done.stderr
        );
        assert!(
            done.stderr.contains("Usage: shmlane"),
            "{args:?}: {}",
            done.stderr
        );
        assert!(done.stdout.is_empty());
    }
    let v = run(&["--version"]);
    assert_eq!(v.code(), Some(0));
    assert!(v.stdout_str().starts_with("shmlane 0."));
}

#[test]
fn completions_cover_every_command_and_flag() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let done = run(&["completions", shell]);
        assert_eq!(done.code(), Some(0), "{shell}: {}", done.stderr);
        let script = done.stdout_str();
        for word in COMMANDS
            .iter()
            .chain(&["foreign-owner", "ring-size", "stale"])
        {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let done = run(&["completions", "tcsh"]);
    assert_eq!(done.code(), Some(2), "{}", done.stderr);
    assert!(done.stderr.contains("bash"), "{}", done.stderr);
}
