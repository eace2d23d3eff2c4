//! A reader that goes away (`shmlane ls | head -0`) ends the command quietly, as it
//! ends other Unix tools: by SIGPIPE, with nothing on stderr, never a panic.

mod cli_util;

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use cli_util::{bin, Ring};

/// Runs the binary with `args` and a stdout whose reader has already gone.
fn run_into_closed_pipe(args: &[&str]) -> (std::process::ExitStatus, String) {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    let out = std::process::Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .expect("run shmlane");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[cfg_attr(miri, ignore)] // runs the binary
fn a_closed_stdout_ends_the_command_quietly() {
    let ring = Ring::new("broken-pipe");
    let removed = Ring::new("broken-pipe-rm");
    let _tx = shmlane::spsc::Producer::create(ring.name(), &shmlane::RingOptions::new(4096))
        .expect("create");
    drop(
        shmlane::spsc::Producer::create(removed.name(), &shmlane::RingOptions::new(4096))
            .expect("create"),
    );
    for args in [
        &["ls"][..],
        &["ls", "--json"],
        &["inspect", ring.name()],
        &["inspect", "--json", ring.name()],
        &["rm", "-v", removed.name()],
        &["--help"],
        &["bench", "--help"],
        &["bench", "--quick", "--json", "--only", "raw-cache-line"],
    ] {
        let (status, stderr) = run_into_closed_pipe(args);
        assert!(
            !stderr.contains("panicked") && status.code() != Some(101),
            "{args:?} panicked on a closed stdout: {status:?}\n{stderr}"
        );
        assert_eq!(
            status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {status:?}\n{stderr}"
        );
        // The bench says on stderr what it measures as it goes; the rest say nothing.
        if args[0] != "bench" || args.len() == 2 {
            assert!(stderr.is_empty(), "{args:?} wrote on stderr:\n{stderr}");
        }
    }
}
