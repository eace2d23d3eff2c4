//! A ring holding a complete transfer that no receiver has read yet is not stale:
//! `ls` and `inspect` say it is undelivered, `rm --stale` keeps it, a later `recv`
//! gets it, and only removing it by name (`rm NAME`, `rm --force NAME`) drops it. A
//! ring with nothing in it whose endpoints are dead is still stale. Every ring is
//! removed at the end.

mod cli_util;

use std::io::Write;
use std::process::Stdio;

use cli_util::{run, shmlane, wait_until, Proc, Ring, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `echo hello | shmlane send NAME`: the sender finishes alone and exits 0.
fn send_hello(ring: &Ring) {
    let mut cmd = shmlane(&["send", ring.name()]);
    cmd.stdin(Stdio::piped());
    let mut p = Proc::spawn(cmd);
    let mut stdin = p.child.stdin.take().expect("stdin piped");
    stdin.write_all(b"hello\n").expect("write");
    drop(stdin);
    let done = p.wait(DEADLINE);
    assert_eq!(done.code(), Some(0), "send: {}", done.stderr);
    assert!(
        ring.exists(),
        "the ring holds the transfer for the receiver"
    );
}

/// The `ls` line of `ring`.
fn ls_line(ring: &Ring) -> String {
    let table = run(&["ls"]).stdout_str();
    table
        .lines()
        .find(|l| l.starts_with(ring.name()))
        .unwrap_or_else(|| panic!("{} not in:\n{table}", ring.name()))
        .to_string()
}

#[test]
fn an_undelivered_transfer_is_not_stale_and_waits_for_its_receiver() {
    let ring = Ring::new("undelivered");
    send_hello(&ring);

    let line = ls_line(&ring);
    assert!(!line.contains("stale"), "ls calls it stale: {line}");
    assert!(line.contains("undelivered"), "{line}");
    let v: serde_json::Value =
        serde_json::from_slice(&run(&["inspect", "--json", ring.name()]).stdout).expect("JSON");
    assert_eq!(v["stale"], false, "{v}");
    let words = run(&["inspect", ring.name()]).stdout_str();
    assert!(words.contains("undelivered"), "{words}");

    // Neither a sweep limited to its name nor a dry run over the host takes it.
    let done = run(&["rm", "--stale", ring.name()]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    assert!(done.stdout.is_empty(), "{}", done.stdout_str());
    assert!(ring.exists(), "rm --stale removed an undelivered transfer");
    let dry = run(&["rm", "--stale", "--dry-run"]).stdout_str();
    assert!(!dry.contains(ring.name()), "{dry}");

    // The receiver that comes later gets it, and removes the ring.
    let done = run(&["recv", ring.name()]);
    assert_eq!(done.code(), Some(0), "recv: {}", done.stderr);
    assert_eq!(done.stdout, b"hello\n");
    assert!(!ring.exists());
}

#[test]
fn an_undelivered_transfer_is_removed_by_name() {
    for args in [&["rm", "--force"][..], &["rm"][..]] {
        let ring = Ring::new("undelivered-rm");
        send_hello(&ring);
        let mut args = args.to_vec();
        args.push(ring.name());
        let done = run(&args);
        assert_eq!(done.code(), Some(0), "{args:?}: {}", done.stderr);
        assert!(!ring.exists(), "{args:?} kept it");
        assert!(done.stderr.contains("undelivered"), "{}", done.stderr);
    }
}

/// A receiver killed while it waits (its ring empty, its creator and only endpoint
/// dead) leaves a stale ring: `rm --stale` removes it.
#[test]
fn an_empty_ring_whose_endpoints_died_is_still_stale() {
    let ring = Ring::new("undelivered-empty");
    let mut cmd = shmlane(&["recv", ring.name()]);
    cmd.stdin(Stdio::null());
    let recv = Proc::spawn(cmd);
    wait_until(DEADLINE, "the receiver's attach", || {
        shmlane::inspect::inspect(ring.name()).is_ok_and(|i| i.live_endpoints() == 1)
    });
    kill(Pid::from_raw(recv.pid() as i32), Signal::SIGKILL).expect("kill");
    let _ = recv.wait(DEADLINE);
    wait_until(DEADLINE, "the receiver's death", || {
        shmlane::inspect::inspect(ring.name()).is_ok_and(|i| i.is_stale())
    });
    assert!(ls_line(&ring).contains("stale"));
    let done = run(&["rm", "--stale", ring.name()]);
    assert_eq!(done.code(), Some(0), "{}", done.stderr);
    assert_eq!(done.stdout_str(), format!("removed {}\n", ring.name()));
    assert!(!ring.exists());
}
