//! Another user's ring, and a ring shared with the group, from the command line: send
//! and recv refuse them by default, the message names the flag that accepts them
//! (`--foreign-owner`, `--group-access`), and with the flag the transfer goes through.

mod cli_util;

use std::io::Write;
use std::os::unix::fs::{chown, PermissionsExt};
use std::process::Stdio;

use cli_util::{run, shmlane, Proc, Ring, DEADLINE};

/// `echo hello | shmlane send ARGS...`: the ring keeps the transfer for a receiver.
fn send_hello(args: &[&str]) {
    let mut cmd = shmlane(args);
    cmd.stdin(Stdio::piped());
    let mut p = Proc::spawn_held(cmd);
    let mut stdin = p.child.stdin.take().expect("stdin piped");
    stdin.write_all(b"hello\n").expect("write stdin");
    drop(stdin);
    let done = p.wait(DEADLINE);
    assert_eq!(done.code(), Some(0), "send {args:?}: {}", done.stderr);
}

#[test]
#[cfg_attr(miri, ignore)] // runs the binary
fn another_users_ring_needs_foreign_owner() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: only root can give a ring to another user");
        return;
    }
    let ring = Ring::new("foreign-owner");
    send_hello(&["send", ring.name()]);
    chown(ring.path(), Some(65534), Some(65534)).expect("chown to nobody");

    let done = run(&["recv", ring.name()]);
    assert_eq!(done.code(), Some(2), "{}", done.stderr);
    assert!(
        done.stderr.contains("--foreign-owner") && !done.stderr.contains("OpenOptions"),
        "the refusal does not name the flag: {}",
        done.stderr
    );
    assert!(ring.exists(), "a refused recv removed the ring");

    let done = run(&["recv", "--foreign-owner", ring.name()]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    assert_eq!(done.stdout, b"hello\n");
    assert!(!ring.exists(), "recv leaves the ring behind");
}

#[test]
#[cfg_attr(miri, ignore)] // runs the binary
fn a_ring_shared_with_the_group_needs_group_access() {
    let ring = Ring::new("group-access");
    send_hello(&["send", "--group-access", ring.name()]);
    let mode = std::fs::metadata(ring.path())
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o660,
        "send --group-access made mode {mode:o}"
    );

    let done = run(&["recv", ring.name()]);
    assert_eq!(done.code(), Some(2), "{}", done.stderr);
    assert!(
        done.stderr.contains("--group-access") && !done.stderr.contains("OpenOptions"),
        "the refusal does not name the flag: {}",
        done.stderr
    );
    assert!(ring.exists(), "a refused recv removed the ring");

    let done = run(&["recv", "--group-access", ring.name()]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    assert_eq!(done.stdout, b"hello\n");
}
