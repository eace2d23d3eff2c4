//! An interrupted transfer does not block the next one on its name: `send` or `recv`
//! stopped by SIGINT (Ctrl-C) or SIGTERM removes the ring it leaves unless a live peer
//! is still attached (that peer then fails with status 3 and removes it); what SIGKILL
//! leaves (the ring, its endpoints dead) is taken over by the next `send` or `recv`.
//! A ring a live sender holds is never taken over: a second sender gets `Busy`.
//! Every ring is removed at the end.

mod cli_util;

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use cli_util::{random_bytes, run, shmlane, wait_until, Done, Proc, Ring, Scratch, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Starts `shmlane send NAME FILE`.
fn send_file(ring: &Ring, file: &str) -> Proc {
    let mut cmd = shmlane(&["send", ring.name(), file]);
    cmd.stdin(Stdio::null());
    Proc::spawn(cmd)
}

/// Starts `shmlane recv NAME OUT`; with `held`, its stdout (when OUT is `-`) is not
/// read until it is waited for, so it blocks writing and the ring fills.
fn recv_to(ring: &Ring, out: &str, held: bool) -> Proc {
    let mut cmd = shmlane(&["recv", ring.name(), out]);
    cmd.stdin(Stdio::null());
    if held {
        Proc::spawn_held(cmd)
    } else {
        Proc::spawn(cmd)
    }
}

fn ok(done: &Done, what: &str) {
    assert_eq!(done.code(), Some(0), "{what} failed: {}", done.stderr);
}

/// Waits until the ring's producer (sender) and, with `both`, its consumer are
/// attached and alive, and the sender has put more than a few records in: the
/// transfer is under way.
fn wait_mid_transfer(ring: &Ring, both: bool) {
    wait_until(DEADLINE, "a transfer under way", || {
        shmlane::inspect::inspect(ring.name())
            .is_ok_and(|i| i.live_endpoints() == if both { 2 } else { 1 } && i.tail > 64 << 10)
    });
}

/// Sends `signal` to `p` and waits for it to end; returns what it left.
fn interrupt(p: Proc, signal: Signal) -> Done {
    kill(Pid::from_raw(p.pid() as i32), signal).expect("kill");
    p.wait(DEADLINE)
}

/// A whole transfer of `data` on `ring`, sender first (which, on a ring left behind,
/// is the end that meets it first), byte-identical, and the ring gone after.
fn transfer_works(ring: &Ring, dir: &Scratch, data: &[u8], what: &str) {
    let input = dir.write("again", data);
    let send = send_file(ring, &input);
    let done = recv_to(ring, "-", false).wait(DEADLINE);
    ok(&done, &format!("recv after {what}"));
    ok(&send.wait(DEADLINE), &format!("send after {what}"));
    assert!(done.stdout == data, "after {what}: the bytes differ");
    assert!(!ring.exists(), "after {what}: the ring is left in /dev/shm");
}

/// A sender alone (no receiver yet), waiting for room in a full ring, stopped by
/// SIGINT or SIGTERM: it removes the ring, dies of the signal, and the next transfer
/// on the name works.
#[test]
fn an_interrupted_sender_alone_removes_its_ring() {
    let dir = Scratch::new("int-send");
    let data = random_bytes(8 << 20, 21);
    let input = dir.write("in", &data);
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let ring = Ring::new(&format!("int-send-{}", signal.as_str()));
        let send = send_file(&ring, &input);
        wait_mid_transfer(&ring, false);
        let done = interrupt(send, signal);
        assert_eq!(
            done.status.signal(),
            Some(signal as i32),
            "{signal}: the sender dies of the signal: {:?} {}",
            done.status,
            done.stderr
        );
        assert!(done.stderr.contains("interrupted"), "{}", done.stderr);
        assert!(
            !ring.exists(),
            "{signal}: the interrupted sender left its ring: {}",
            done.stderr
        );
        transfer_works(&ring, &dir, &data, signal.as_str());
    }
}

/// A receiver alone (no sender yet) stopped by SIGINT or SIGTERM removes its ring.
#[test]
fn an_interrupted_receiver_alone_removes_its_ring() {
    let dir = Scratch::new("int-recv");
    let data = random_bytes(3 << 20, 22);
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let ring = Ring::new(&format!("int-recv-{}", signal.as_str()));
        let recv = recv_to(&ring, "-", false);
        wait_until(DEADLINE, "the receiver's attach", || {
            shmlane::inspect::inspect(ring.name()).is_ok_and(|i| i.live_endpoints() == 1)
        });
        let done = interrupt(recv, signal);
        assert_eq!(done.status.signal(), Some(signal as i32), "{}", done.stderr);
        assert!(!ring.exists(), "{signal}: the receiver left its ring");
        transfer_works(&ring, &dir, &data, signal.as_str());
    }
}

/// Both ends attached, the receiver held up by its unread stdout: interrupting one
/// end leaves the ring to the live other, which fails with status 3 and removes it;
/// then the next transfer works.
#[test]
fn an_interrupted_end_with_a_live_peer_leaves_the_ring_to_it() {
    let dir = Scratch::new("int-both");
    let data = random_bytes(8 << 20, 23);
    let input = dir.write("in", &data);
    for (signal, stop_sender) in [(Signal::SIGINT, true), (Signal::SIGTERM, false)] {
        let ring = Ring::new(&format!("int-both-{}", signal.as_str()));
        let recv = recv_to(&ring, "-", true);
        wait_until(DEADLINE, "the receiver's ring", || ring.exists());
        let send = send_file(&ring, &input);
        wait_mid_transfer(&ring, true);
        let (stopped, peer) = if stop_sender {
            (interrupt(send, signal), recv.wait(DEADLINE))
        } else {
            (interrupt(recv, signal), send.wait(DEADLINE))
        };
        assert_eq!(
            stopped.status.signal(),
            Some(signal as i32),
            "{:?}: {}",
            stopped.status,
            stopped.stderr
        );
        assert_eq!(peer.code(), Some(3), "the peer: {}", peer.stderr);
        wait_until(DEADLINE, "the ring's removal", || !ring.exists());
        transfer_works(&ring, &dir, &data, signal.as_str());
    }
}

/// One Ctrl-C stopping both ends at once (a terminal that runs both): neither is
/// left to the other, and the ring goes.
#[test]
fn both_ends_interrupted_at_once_leave_no_ring() {
    let dir = Scratch::new("int-both-at-once");
    let data = random_bytes(8 << 20, 26);
    let input = dir.write("in", &data);
    let ring = Ring::new("int-both-at-once");
    let recv = recv_to(&ring, "-", true);
    wait_until(DEADLINE, "the receiver's ring", || ring.exists());
    let send = send_file(&ring, &input);
    wait_mid_transfer(&ring, true);
    for p in [&send, &recv] {
        kill(Pid::from_raw(p.pid() as i32), Signal::SIGINT).expect("kill");
    }
    for (p, what) in [(send, "send"), (recv, "recv")] {
        let done = p.wait(DEADLINE);
        assert_eq!(
            done.status.signal(),
            Some(libc::SIGINT),
            "{what}: {:?}: {}",
            done.status,
            done.stderr
        );
    }
    assert!(!ring.exists(), "both ends left the ring to each other");
    transfer_works(&ring, &dir, &data, "SIGINT to both");
}

/// SIGKILL leaves the ring (nothing runs to remove it), its endpoints dead: `ls` and
/// `inspect` call it stale, and the next `send` or `recv` takes it over.
#[test]
fn what_sigkill_leaves_is_taken_over_by_the_next_transfer() {
    let dir = Scratch::new("int-kill");
    let data = random_bytes(8 << 20, 24);
    let input = dir.write("in", &data);
    for recv_next in [false, true] {
        let ring = Ring::new(&format!("int-kill-{recv_next}"));
        let send = send_file(&ring, &input);
        wait_mid_transfer(&ring, false);
        let done = interrupt(send, Signal::SIGKILL);
        assert_eq!(done.status.signal(), Some(libc::SIGKILL));
        assert!(ring.exists(), "SIGKILL leaves the ring");
        wait_until(DEADLINE, "the sender's death", || {
            shmlane::inspect::inspect(ring.name()).is_ok_and(|i| i.is_stale())
        });
        let table = run(&["ls"]).stdout_str();
        let line = table
            .lines()
            .find(|l| l.starts_with(ring.name()))
            .unwrap_or_else(|| panic!("{} not in:\n{table}", ring.name()));
        assert!(line.contains("stale"), "{line}");
        if recv_next {
            // The receiver meets the ring first.
            let recv = recv_to(&ring, "-", false);
            wait_until(DEADLINE, "the new receiver's attach", || {
                shmlane::inspect::inspect(ring.name())
                    .is_ok_and(|i| i.live_endpoints() == 1 && i.used == Some(0))
            });
            let send = send_file(&ring, &input);
            let done = recv.wait(DEADLINE);
            ok(&done, "recv after SIGKILL");
            ok(&send.wait(DEADLINE), "send after SIGKILL");
            assert!(done.stdout == data, "the bytes differ");
            assert!(!ring.exists());
        } else {
            transfer_works(&ring, &dir, &data, "SIGKILL");
        }
    }
}

/// A live sender's ring is never taken over: a second sender is refused (`Busy`,
/// status 2) and the first one's transfer goes through whole.
#[test]
fn a_live_senders_ring_is_not_taken_over() {
    let ring = Ring::new("int-busy");
    let dir = Scratch::new("int-busy");
    let data = random_bytes(4 << 20, 25);
    let input = dir.write("in", &data);
    let send = send_file(&ring, &input);
    wait_mid_transfer(&ring, false);
    let second = run(&["send", ring.name(), &input]);
    assert_eq!(second.code(), Some(2), "{}", second.stderr);
    assert!(
        second.stderr.contains("already has a producer"),
        "{}",
        second.stderr
    );
    let done = recv_to(&ring, "-", false).wait(DEADLINE);
    ok(&done, "recv");
    ok(&send.wait(DEADLINE), "send");
    assert!(done.stdout == data, "the first transfer is intact");
    assert!(!ring.exists());
}
