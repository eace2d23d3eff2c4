//! Round trips between two forked processes: messages of random sizes (0 to 3 × the
//! capacity: mostly small, some in fragments, and the boundary sizes), each with a
//! sequence number and a checksum, all received in order and intact.
//!
//! The producer and the consumer are both children; the parent only supervises, with
//! a deadline. Both sides use the default adaptive wait (the machine may have only two
//! cores, shared with other tests).
//!
//! Every backing (POSIX, SysV, memfd) with every notifier (futex, semaphore) runs a
//! round trip through a small ring and one of large messages; POSIX with the futex
//! runs the long ones. The memfd's creator hands the descriptor to its peer over a
//! UNIX socket, as two unrelated processes would.

// Real processes and POSIX shared memory: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::backings::{Kind, TestRing};
use common::{check_message, fill_message, message_len, seg_name, Gate, Procs, Rng, SegGuard};
use shmlane::{spsc, Notifier, RecvError, RecvTimeoutError, RingOptions, TryRecvError};

const DEADLINE: Duration = Duration::from_secs(90);

/// How the endpoints move the bytes.
#[derive(Clone, Copy, Debug)]
enum Api {
    /// `send` / `recv`: copies on both sides.
    Copy,
    /// `reserve` + `commit` / `recv_ref` for messages that fit one record, `stream` /
    /// `recv_stream` for the others.
    ZeroCopy,
}

fn rate(n: u64, bytes: u64, t: Duration) -> String {
    let s = t.as_secs_f64().max(1e-9);
    format!(
        "{n} messages, {:.1} MB in {:.2} s: {:.2} M msg/s, {:.3} GB/s",
        bytes as f64 / 1e6,
        s,
        n as f64 / s / 1e6,
        bytes as f64 / s / 1e9
    )
}

fn producer(
    ring: &TestRing,
    opts: &RingOptions,
    n: u64,
    seed: u64,
    api: Api,
) -> Result<String, String> {
    let capacity = opts.capacity_bytes();
    let mut tx = ring.create_producer(opts)?;
    let mrp = tx.max_record_payload();
    assert_eq!(mrp, capacity / 2 - 8);
    let mut sizes = Rng::new(seed);
    let mut chunks = Rng::new(seed ^ 0xc0ff_ee00);
    let mut buf = vec![0u8; 3 * capacity];
    let mut bytes = 0u64;
    let t0 = Instant::now();
    for seq in 0..n {
        let len = message_len(&mut sizes, capacity);
        bytes += len as u64;
        let err = |e: &dyn std::fmt::Display| format!("message {seq} ({len} bytes): {e}");
        match api {
            Api::Copy => {
                fill_message(&mut buf[..len], seq);
                tx.send(&buf[..len]).map_err(|e| err(&e))?;
            }
            Api::ZeroCopy if len <= mrp => {
                let mut grant = tx.reserve(len).map_err(|e| err(&e))?;
                assert_eq!(grant.len(), len);
                fill_message(&mut grant, seq);
                grant.commit();
            }
            Api::ZeroCopy => {
                fill_message(&mut buf[..len], seq);
                let mut w = tx.stream(len as u64).map_err(|e| err(&e))?;
                // Writes of random sizes, across fragment boundaries.
                let mut at = 0;
                while at < len {
                    let k = chunks.range(1, 5000).min(len - at);
                    w.write_all(&buf[at..at + k]).map_err(|e| err(&e))?;
                    at += k;
                }
                w.finish().map_err(|e| err(&e))?;
            }
        }
    }
    Ok(format!(
        "sent {}; futex calls (wake, wait) {:?}",
        rate(n, bytes, t0.elapsed()),
        shmlane::wait::futex_calls()
    ))
}

fn consumer(
    ring: &TestRing,
    capacity: usize,
    n: u64,
    seed: u64,
    api: Api,
) -> Result<String, String> {
    let mut rx = ring.open_consumer()?;
    assert_eq!(rx.capacity(), capacity);
    let mrp = capacity / 2 - 8;
    let mut sizes = Rng::new(seed);
    let mut chunks = Rng::new(seed ^ 0xdead_beef);
    let mut buf = Vec::new();
    let mut bytes = 0u64;
    let (mut in_place, mut streamed) = (0u64, 0u64);
    let t0 = Instant::now();
    for seq in 0..n {
        let len = message_len(&mut sizes, capacity);
        bytes += len as u64;
        let err = |e: &dyn std::fmt::Display| format!("message {seq} ({len} bytes): {e}");
        match api {
            Api::Copy => {
                let got = rx.recv(&mut buf).map_err(|e| err(&e))?;
                if got != buf.len() {
                    return Err(err(&format!(
                        "recv returned {got}, buffer has {}",
                        buf.len()
                    )));
                }
                check_message(&buf, seq, len)?;
            }
            Api::ZeroCopy => {
                let fragmented = match rx.recv_ref() {
                    Ok(grant) => {
                        if len > mrp {
                            return Err(err(&format!(
                                "recv_ref gave one slice of {} bytes for a message over {mrp}",
                                grant.len()
                            )));
                        }
                        check_message(&grant, seq, len)?;
                        in_place += 1;
                        None
                    }
                    Err(RecvError::Fragmented { len: total }) => Some(total),
                    Err(e) => return Err(err(&e)),
                };
                if let Some(total) = fragmented {
                    if total != len as u64 || len <= mrp {
                        return Err(err(&format!("recv_ref: Fragmented {{ len: {total} }}")));
                    }
                    let mut r = rx.recv_stream().map_err(|e| err(&e))?;
                    if r.len() != len as u64 {
                        return Err(err(&format!("recv_stream: len() = {}", r.len())));
                    }
                    buf.clear();
                    loop {
                        let k = chunks.range(1, 5000);
                        let at = buf.len();
                        buf.resize(at + k, 0);
                        let got = r.read(&mut buf[at..]).map_err(|e| err(&e))?;
                        buf.truncate(at + got);
                        if got == 0 {
                            break;
                        }
                    }
                    drop(r);
                    check_message(&buf, seq, len)?;
                    streamed += 1;
                }
            }
        }
    }
    let elapsed = t0.elapsed();
    // The producer sent nothing else; it detaches when its process is done.
    match api {
        Api::Copy => match rx.recv(&mut buf) {
            Err(RecvError::Disconnected) => {}
            other => return Err(format!("after the last message: {other:?}")),
        },
        Api::ZeroCopy => match rx.recv_ref() {
            Err(RecvError::Disconnected) => {}
            Ok(g) => return Err(format!("after the last message: {} more bytes", g.len())),
            Err(e) => return Err(format!("after the last message: {e:?}")),
        },
    }
    let detail = match api {
        Api::Copy => String::new(),
        Api::ZeroCopy => format!(" ({in_place} in place, {streamed} streamed)"),
    };
    Ok(format!(
        "received {}{detail}; futex calls (wake, wait) {:?}",
        rate(n, bytes, elapsed),
        shmlane::wait::futex_calls()
    ))
}

fn round_trip(test: &str, capacity: usize, n: u64, seed: u64, api: Api) {
    round_trip_on(Kind::Posix, Notifier::Futex, test, capacity, n, seed, api);
}

fn round_trip_on(
    kind: Kind,
    notifier: Notifier,
    test: &str,
    capacity: usize,
    n: u64,
    seed: u64,
    api: Api,
) {
    let _serial = common::heavy();
    let ring = TestRing::new(kind, test);
    let opts = RingOptions::new(capacity).notifier(notifier);
    let mut procs = Procs::new(test, DEADLINE);
    procs.spawn("producer", || producer(&ring, &opts, n, seed, api));
    procs.spawn("consumer", || consumer(&ring, capacity, n, seed, api));
    let reports = procs.wait_all_ok();
    println!("{test} ({kind:?}, {notifier:?}, capacity {capacity}, seed {seed:#x}, {api:?}):");
    println!("  producer: {}", reports[0]);
    println!("  consumer: {}", reports[1]);
}

#[test]
fn copy_million_messages_through_4k_ring() {
    round_trip("rt-copy-4k", 4096, 1_000_000, 0x4b1d, Api::Copy);
}

#[test]
fn copy_5000_messages_through_1m_ring() {
    round_trip("rt-copy-1m", 1 << 20, 5_000, 0x1e6a, Api::Copy);
}

#[test]
fn zero_copy_million_messages_through_4k_ring() {
    round_trip("rt-ref-4k", 4096, 1_000_000, 0x5eed, Api::ZeroCopy);
}

#[test]
fn zero_copy_5000_messages_through_1m_ring() {
    round_trip("rt-ref-1m", 1 << 20, 5_000, 0xfa11, Api::ZeroCopy);
}

/// The smallest ring (64 bytes: records of at most 32 bytes, fragments of 32), so
/// nearly every message wraps or travels in fragments.
#[test]
fn copy_through_smallest_ring() {
    round_trip("rt-copy-64", 64, 50_000, 0x64, Api::Copy);
}

/// One backing with one notifier: 200 000 messages through a 4 KiB ring (copies),
/// then 2000 through a 1 MiB ring (zero-copy; messages up to 3 MiB, in fragments).
fn backing_round_trips(kind: Kind, notifier: Notifier) {
    let tag = format!(
        "rt-{}-{}",
        kind.label(),
        format!("{notifier:?}").to_lowercase()
    );
    let (small, large) = (format!("{tag}-4k"), format!("{tag}-1m"));
    round_trip_on(kind, notifier, &small, 4096, 200_000, 0xb4c, Api::Copy);
    round_trip_on(kind, notifier, &large, 1 << 20, 2_000, 0xb1e, Api::ZeroCopy);
}

#[test]
fn posix_with_semaphores() {
    backing_round_trips(Kind::Posix, Notifier::Semaphore);
}

#[test]
fn sysv_with_futex() {
    backing_round_trips(Kind::SysV, Notifier::Futex);
}

#[test]
fn sysv_with_semaphores() {
    backing_round_trips(Kind::SysV, Notifier::Semaphore);
}

#[test]
fn memfd_with_futex() {
    backing_round_trips(Kind::Memfd, Notifier::Futex);
}

#[test]
fn memfd_with_semaphores() {
    backing_round_trips(Kind::Memfd, Notifier::Semaphore);
}

/// Receives that time out in the middle of a message keep what they have: the consumer
/// calls `recv_timeout` with timeouts of a few microseconds while the producer streams
/// messages in pieces with pauses, and goes on with `recv_timeout`, `try_recv`,
/// `try_recv_ref` (which must say `Fragmented` while a message is half received) or
/// `recv_stream` (which must return the part already received first).
#[test]
fn timeouts_mid_message_keep_the_partial_message() {
    const N: u64 = 20_000;
    const CAP: usize = 4096;
    let test = "rt-partial";
    let seed = 0x9a27;
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let created = Gate::new();
    let mut procs = Procs::new(test, DEADLINE);
    procs.spawn("producer", || {
        let mut tx = spsc::Producer::create(&name, &RingOptions::new(CAP))
            .map_err(|e| format!("create: {e}"))?;
        created.open();
        let mut sizes = Rng::new(seed);
        let mut pauses = Rng::new(seed ^ 1);
        let mut buf = vec![0u8; 3 * CAP];
        for seq in 0..N {
            let len = message_len(&mut sizes, CAP);
            fill_message(&mut buf[..len], seq);
            let mut w = tx
                .stream(len as u64)
                .map_err(|e| format!("stream {seq}: {e}"))?;
            let mut at = 0;
            while at < len {
                let k = pauses.range(1, 3000).min(len - at);
                w.write_all(&buf[at..at + k])
                    .map_err(|e| format!("write {seq}: {e}"))?;
                at += k;
                if pauses.below(4) == 0 {
                    std::thread::sleep(Duration::from_micros(pauses.below(100)));
                }
            }
            w.finish().map_err(|e| format!("finish {seq}: {e}"))?;
        }
        Ok(String::new())
    });
    procs.spawn("consumer", || {
        created.expect(Duration::from_secs(30), "ring created")?;
        let mut rx = spsc::Consumer::open(&name).map_err(|e| format!("open: {e}"))?;
        let mut sizes = Rng::new(seed);
        let mut choice = Rng::new(seed ^ 2);
        let mut buf = Vec::new();
        let mut counts = [0u64; 5]; // timeouts, try_recv, try_recv_ref, recv_stream, fragmented
        for seq in 0..N {
            let len = message_len(&mut sizes, CAP);
            let err = |e: &dyn std::fmt::Debug| format!("message {seq} ({len} bytes): {e:?}");
            loop {
                let timeout = Duration::from_micros(choice.below(30));
                match rx.recv_timeout(&mut buf, timeout) {
                    Ok(n) => {
                        if n != buf.len() {
                            return Err(err(&format!("recv_timeout returned {n}")));
                        }
                        check_message(&buf, seq, len)?;
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) => counts[0] += 1,
                    Err(e) => return Err(err(&e)),
                }
                match choice.below(8) {
                    0 => match rx.try_recv(&mut buf) {
                        Ok(_) => {
                            check_message(&buf, seq, len)?;
                            counts[1] += 1;
                            break;
                        }
                        Err(TryRecvError::Empty) => {}
                        Err(e) => return Err(err(&e)),
                    },
                    1 => {
                        let done = match rx.try_recv_ref() {
                            Ok(grant) => {
                                check_message(&grant, seq, len)?;
                                counts[2] += 1;
                                true
                            }
                            Err(TryRecvError::Fragmented { len: total }) => {
                                if total != len as u64 {
                                    return Err(err(&format!("Fragmented {{ len: {total} }}")));
                                }
                                counts[4] += 1;
                                false
                            }
                            Err(TryRecvError::Empty) => false,
                            Err(e) => return Err(err(&e)),
                        };
                        if done {
                            break;
                        }
                    }
                    2 => {
                        let mut r = rx.recv_stream().map_err(|e| err(&e))?;
                        if r.len() != len as u64 {
                            return Err(err(&format!("recv_stream: len() = {}", r.len())));
                        }
                        let mut all = Vec::new();
                        r.read_to_end(&mut all).map_err(|e| err(&e))?;
                        drop(r);
                        check_message(&all, seq, len)?;
                        counts[3] += 1;
                        break;
                    }
                    _ => {}
                }
            }
        }
        match rx.recv(&mut buf) {
            Err(RecvError::Disconnected) => {}
            other => return Err(format!("after the last message: {other:?}")),
        }
        Ok(format!(
            "{N} messages; {} timeouts; finished by try_recv {}, try_recv_ref {}, recv_stream {}; \
             Fragmented {} times",
            counts[0], counts[1], counts[2], counts[3], counts[4]
        ))
    });
    let reports = procs.wait_all_ok();
    println!("{test}: consumer: {}", reports[1]);
}
