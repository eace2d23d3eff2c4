//! `shmlane send` / `shmlane recv`: byte-identical transfers of every size class, from a
//! file and from a pipe, either end first; and the exit statuses of a peer killed
//! mid-message, a bad name, a busy ring and a timeout. Every ring is removed at the end.

mod cli_util;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cli_util::{fnv, random_bytes, run, shmlane, wait_until, Done, Proc, Ring, Scratch, DEADLINE};

/// Starts `shmlane recv NAME OUT` (extra args first).
fn recv_to(ring: &Ring, out: &str, extra: &[&str]) -> Proc {
    let mut args = extra.to_vec();
    args.extend([ring.name(), out]);
    let mut cmd = shmlane(&["recv"]);
    cmd.args(&args).stdin(Stdio::null());
    Proc::spawn(cmd)
}

/// Starts `shmlane send NAME FILE` (extra args first).
fn send_file(ring: &Ring, file: &str, extra: &[&str]) -> Proc {
    let mut cmd = shmlane(&["send"]);
    cmd.args(extra)
        .args([ring.name(), file])
        .stdin(Stdio::null());
    Proc::spawn(cmd)
}

/// Starts `shmlane send NAME` reading a pipe from the test.
fn send_stdin(ring: &Ring, extra: &[&str]) -> Proc {
    let mut cmd = shmlane(&["send"]);
    cmd.args(extra).arg(ring.name()).stdin(Stdio::piped());
    Proc::spawn(cmd)
}

fn ok(done: &Done, what: &str) {
    assert_eq!(done.code(), Some(0), "{what} failed: {}", done.stderr);
    assert!(done.stderr.is_empty(), "{what} printed: {}", done.stderr);
}

/// Moves `data` from a file through a ring of `ring_size` (or the default), with the
/// receiver first or the sender first, and checks the output is byte-identical.
fn round_trip_file(tag: &str, data: &[u8], ring_size: Option<&str>, recv_first: bool) {
    let ring = Ring::new(tag);
    let dir = Scratch::new(tag);
    let input = dir.write("in", data);
    let output = dir.file("out").display().to_string();
    let extra: Vec<&str> = ring_size
        .map(|s| vec!["--ring-size", s])
        .unwrap_or_default();
    let (send, recv) = if recv_first {
        let r = recv_to(&ring, &output, &extra);
        wait_until(DEADLINE, "the receiver's ring", || ring.exists());
        (send_file(&ring, &input, &extra), r)
    } else {
        let s = send_file(&ring, &input, &extra);
        wait_until(DEADLINE, "the sender's ring", || ring.exists());
        (s, recv_to(&ring, &output, &extra))
    };
    ok(&send.wait(DEADLINE), "send");
    ok(&recv.wait(DEADLINE), "recv");
    let got = std::fs::read(&output).expect("read output");
    assert_eq!(got.len(), data.len(), "{tag}: length");
    assert_eq!(fnv(&got), fnv(data), "{tag}: checksum");
    assert!(got == data, "{tag}: bytes differ");
    assert!(!ring.exists(), "{tag}: the ring was left in /dev/shm");
}

#[test]
fn files_of_every_size_class_either_end_first() {
    const RING: usize = 64 << 10;
    let sizes = [
        0,
        1,
        7,
        RING / 2 - 9, // the largest whole record minus one
        RING - 1,
        RING,
        RING + 1,
        3 * RING + 12_345,
        (5 << 20) + 3,
    ];
    for (i, &n) in sizes.iter().enumerate() {
        let data = random_bytes(n, 0x5eed + i as u64);
        round_trip_file(&format!("file{i}"), &data, Some("64K"), i % 2 == 0);
    }
    // The default ring (1 MiB), one byte each side of it.
    for (i, n) in [(1 << 20) - 1, (1 << 20) + 1].into_iter().enumerate() {
        let data = random_bytes(n, 0xd1ce + i as u64);
        round_trip_file(&format!("default{i}"), &data, None, i % 2 == 1);
    }
}

/// Sends `data` through a pipe into `shmlane send` (unknown length: chunks), to stdout.
fn round_trip_pipe(tag: &str, data: &[u8], recv_first: bool) {
    let ring = Ring::new(tag);
    let recv_cmd = || {
        let mut c = shmlane(&["recv", "--ring-size", "64K", ring.name()]);
        c.stdin(Stdio::null());
        Proc::spawn(c)
    };
    let recv = recv_first.then(recv_cmd);
    if recv_first {
        wait_until(DEADLINE, "the receiver's ring", || ring.exists());
    }
    let mut send = send_stdin(&ring, &["--ring-size", "64K"]);
    let mut stdin = send.child.stdin.take().expect("stdin piped");
    let recv = recv.unwrap_or_else(recv_cmd);
    // Write in uneven pieces, so chunks have all sorts of lengths. (If send stalls, the
    // deadline below kills it, and the writer's next write fails.)
    let writer = {
        let data = data.to_vec();
        std::thread::spawn(move || {
            let mut rest = &data[..];
            let mut step = 1;
            while !rest.is_empty() {
                let n = step.min(rest.len());
                if stdin.write_all(&rest[..n]).is_err() {
                    return;
                }
                rest = &rest[n..];
                step = step * 3 % 100_003 + 1;
            }
            // Dropping stdin is the end of the input.
        })
    };
    ok(&send.wait(DEADLINE), "send");
    writer.join().expect("writer");
    let done = recv.wait(DEADLINE);
    ok(&done, "recv");
    assert_eq!(done.stdout.len(), data.len(), "{tag}: length");
    assert_eq!(fnv(&done.stdout), fnv(data), "{tag}: checksum");
    assert!(done.stdout == data, "{tag}: bytes differ");
    assert!(!ring.exists(), "{tag}: the ring was left in /dev/shm");
}

#[test]
fn pipes_of_unknown_length_either_end_first() {
    let sizes = [0, 1, (64 << 10) - 1, (64 << 10) + 1, (3 << 20) + 77];
    for (i, &n) in sizes.iter().enumerate() {
        let data = random_bytes(n, 0xfeed + i as u64);
        round_trip_pipe(&format!("pipe{i}"), &data, i % 2 == 1);
    }
}

#[test]
fn stdin_redirected_from_a_file_streams_with_its_length() {
    let ring = Ring::new("stdinfile");
    let dir = Scratch::new("stdinfile");
    let data = random_bytes((2 << 20) + 5, 77);
    let input = dir.write("in", &data);
    let mut cmd = shmlane(&["send", ring.name()]);
    cmd.stdin(std::fs::File::open(&input).expect("open input"));
    let send = Proc::spawn(cmd);
    let recv = recv_to(&ring, "-", &[]);
    ok(&send.wait(DEADLINE), "send");
    let done = recv.wait(DEADLINE);
    ok(&done, "recv");
    assert!(done.stdout == data, "bytes differ");
    assert!(!ring.exists());
}

#[test]
fn a_transfer_waits_in_the_ring_for_a_receiver_that_comes_later() {
    let ring = Ring::new("later");
    let dir = Scratch::new("later");
    let data = random_bytes(10_000, 3);
    let input = dir.write("in", &data);
    // The sender finishes alone: everything fits in the ring.
    ok(&send_file(&ring, &input, &[]).wait(DEADLINE), "send");
    assert!(
        ring.exists(),
        "the ring must hold the data for the receiver"
    );
    let done = recv_to(&ring, "-", &[]).wait(DEADLINE);
    ok(&done, "recv");
    assert!(done.stdout == data);
    assert!(!ring.exists(), "the receiver removes the ring");
    // A second sender on a ring with an unread transfer is refused.
    ok(&send_file(&ring, &input, &[]).wait(DEADLINE), "send");
    let second = send_file(&ring, &input, &[]).wait(DEADLINE);
    assert_eq!(second.code(), Some(2), "{}", second.stderr);
    assert!(
        second.stderr.contains("earlier transfer"),
        "{}",
        second.stderr
    );
    let done = recv_to(&ring, "-", &[]).wait(DEADLINE);
    assert!(done.stdout == data, "the first transfer is intact");
}

/// SIGKILLs a sender of unknown length mid-transfer: the receiver exits 3, having
/// written what it got, and removes the ring.
#[test]
fn a_sender_killed_mid_transfer_is_status_3_for_the_receiver() {
    let ring = Ring::new("killsend");
    let recv = recv_to(&ring, "-", &["--ring-size", "64K"]);
    wait_until(DEADLINE, "the receiver's ring", || ring.exists());
    let mut send = send_stdin(&ring, &[]);
    let mut stdin = send.child.stdin.take().expect("stdin piped");
    let part = random_bytes(200_000, 9);
    // Less than what a pipe holds: the write never blocks.
    stdin.write_all(&part[..50_000]).expect("write");
    stdin.flush().expect("flush");
    // Let the receiver have some of it, then kill the sender with its pipe still open.
    std::thread::sleep(Duration::from_millis(300));
    send.kill();
    let started = Instant::now();
    let done = recv.wait(DEADLINE);
    assert_eq!(done.code(), Some(3), "recv: {}", done.stderr);
    assert!(done.stderr.contains("died"), "{}", done.stderr);
    assert!(started.elapsed() < Duration::from_secs(10), "noticed late");
    assert!(done.stdout.len() <= 50_000);
    assert!(
        done.stdout == part[..done.stdout.len()],
        "what arrived is a prefix"
    );
    drop(stdin);
    wait_until(DEADLINE, "the ring's removal", || !ring.exists());
}

/// SIGKILLs a sender in the middle of one streamed message (a file larger than the
/// ring, held up by a receiver whose stdout nobody reads yet).
#[test]
fn a_sender_killed_mid_message_is_status_3_for_the_receiver() {
    let ring = Ring::new("killstream");
    let dir = Scratch::new("killstream");
    let data = random_bytes(16 << 20, 11);
    let input = dir.write("in", &data);
    let mut recv_cmd = shmlane(&["recv", "--ring-size", "64K", ring.name()]);
    recv_cmd.stdin(Stdio::null());
    let recv = Proc::spawn_held(recv_cmd);
    wait_until(DEADLINE, "the receiver's ring", || ring.exists());
    let mut send = send_file(&ring, &input, &[]);
    // The receiver blocks on its full stdout pipe, the ring fills, the sender waits.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        send.running(),
        "the sender should be held up by the full ring"
    );
    send.kill();
    // Reading recv's stdout lets it drain the ring and find the sender dead.
    let done = recv.wait(DEADLINE);
    assert_eq!(done.code(), Some(3), "recv: {}", done.stderr);
    assert!(done.stdout.len() < data.len());
    assert!(
        done.stdout == data[..done.stdout.len()],
        "what arrived is a prefix"
    );
    wait_until(DEADLINE, "the ring's removal", || !ring.exists());
}

/// SIGKILLs the receiver while the sender waits for room: the sender exits 3.
#[test]
fn a_receiver_killed_mid_transfer_is_status_3_for_the_sender() {
    let ring = Ring::new("killrecv");
    let dir = Scratch::new("killrecv");
    let input = dir.write("in", &random_bytes(8 << 20, 12));
    let mut recv_cmd = shmlane(&["recv", "--ring-size", "64K", ring.name()]);
    recv_cmd.stdin(Stdio::null());
    // Its stdout is not read: it blocks writing, and the ring fills.
    let mut recv = Proc::spawn_held(recv_cmd);
    wait_until(DEADLINE, "the receiver's ring", || ring.exists());
    let send = send_file(&ring, &input, &[]);
    std::thread::sleep(Duration::from_millis(300));
    recv.kill();
    let done = send.wait(DEADLINE);
    assert_eq!(done.code(), Some(3), "send: {}", done.stderr);
    assert!(done.stderr.contains("receiver"), "{}", done.stderr);
    wait_until(DEADLINE, "the ring's removal", || !ring.exists());
}

#[test]
fn bad_names_and_options_are_status_2() {
    for args in [
        &["send", "a/b"][..],
        &["recv", "/"],
        &["recv", "sysv:0"],
        &["send", "--ring-size", "100", "x"],
    ] {
        let done = run(args);
        assert_eq!(done.code(), Some(2), "{args:?}: {}", done.stderr);
    }
    // A file in /dev/shm that is not a ring.
    let junk = Ring::new("junk");
    std::fs::write(junk.path(), vec![0x5a; 8192]).expect("write junk");
    // Mode 0600, as a ring would have: else the mode check refuses it first.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(junk.path(), std::fs::Permissions::from_mode(0o600))
            .expect("chmod junk");
    }
    for cmd in ["send", "recv"] {
        let done = run(&[cmd, "--timeout", "5", junk.name()]);
        assert_eq!(done.code(), Some(2), "{cmd}: {}", done.stderr);
        assert!(
            done.stderr.contains("not a shmlane segment"),
            "{}",
            done.stderr
        );
    }
    assert!(junk.exists(), "a file that is not a ring is never removed");
    // An input that does not exist is an I/O error.
    let ring = Ring::new("noinput");
    let done = run(&["send", ring.name(), "/nonexistent/shmlane-test-input"]);
    assert_eq!(done.code(), Some(1), "{}", done.stderr);
    assert!(!ring.exists());
}

#[test]
fn a_second_receiver_is_refused_while_the_first_is_attached() {
    let ring = Ring::new("busy");
    let first = recv_to(&ring, "-", &[]);
    wait_until(DEADLINE, "the receiver's ring", || ring.exists());
    let second = run(&["recv", ring.name()]);
    assert_eq!(second.code(), Some(2), "{}", second.stderr);
    assert!(
        second.stderr.contains("already has a consumer"),
        "{}",
        second.stderr
    );
    // The first still works.
    let mut send = send_stdin(&ring, &[]);
    let mut stdin = send.child.stdin.take().expect("stdin");
    stdin.write_all(b"still mine").expect("write");
    drop(stdin);
    ok(&send.wait(DEADLINE), "send");
    let done = first.wait(DEADLINE);
    ok(&done, "recv");
    assert_eq!(done.stdout, b"still mine");
}

#[test]
fn timeouts_are_status_4_and_remove_the_ring() {
    // Nobody sends.
    let ring = Ring::new("timeout-recv");
    let started = Instant::now();
    let done = run(&["recv", "--timeout", "300ms", ring.name()]);
    assert_eq!(done.code(), Some(4), "{}", done.stderr);
    assert!(done.stderr.contains("no sender came"), "{}", done.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!ring.exists());
    // Nobody receives a file larger than the ring.
    let ring = Ring::new("timeout-send");
    let dir = Scratch::new("timeout-send");
    let input = dir.write("in", &random_bytes(1 << 20, 5));
    let done = send_file(&ring, &input, &["--ring-size", "64K", "--timeout", "0.3"]).wait(DEADLINE);
    assert_eq!(done.code(), Some(4), "{}", done.stderr);
    assert!(done.stderr.contains("no receiver came"), "{}", done.stderr);
    assert!(!ring.exists());
}
