//! Claim: **SPSC delivers every message once, in order and intact, whatever its size**
//! (0 bytes to several times the ring: one record up to `capacity / 2 - 8`, fragments
//! beyond), through every API (copy, zero-copy grants, streams), on every backing with
//! every notifier.
//!
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
//! UNIX socket, as two unrelated processes would. [`threads`] runs random sizes over
//! the heap backing, two threads, small enough for Miri.
//!
//! MPMC's delivery is in `mpmc_exactly_once_in_order.rs`.

// The tests that fork are ignored under Miri (no fork); those over the heap backing run
// there (`scripts/check-nightly.sh`).

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::backings::{Kind, TestRing};
use common::{check_message, fill_message, message_len, Procs, Rng};
use shmlane::{Notifier, RecvError, RingOptions};

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

#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn copy_million_messages_through_4k_ring() {
    round_trip("rt-copy-4k", 4096, 1_000_000, 0x4b1d, Api::Copy);
}

#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn copy_5000_messages_through_1m_ring() {
    round_trip("rt-copy-1m", 1 << 20, 5_000, 0x1e6a, Api::Copy);
}

#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn zero_copy_million_messages_through_4k_ring() {
    round_trip("rt-ref-4k", 4096, 1_000_000, 0x5eed, Api::ZeroCopy);
}

#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn zero_copy_5000_messages_through_1m_ring() {
    round_trip("rt-ref-1m", 1 << 20, 5_000, 0xfa11, Api::ZeroCopy);
}

/// The smallest ring (64 bytes: records of at most 32 bytes, fragments of 32), so
/// nearly every message wraps or travels in fragments.
#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
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

#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn posix_with_semaphores() {
    backing_round_trips(Kind::Posix, Notifier::Semaphore);
}

#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn sysv_with_futex() {
    backing_round_trips(Kind::SysV, Notifier::Futex);
}

#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn sysv_with_semaphores() {
    backing_round_trips(Kind::SysV, Notifier::Semaphore);
}

#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn memfd_with_futex() {
    backing_round_trips(Kind::Memfd, Notifier::Futex);
}

#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn memfd_with_semaphores() {
    backing_round_trips(Kind::Memfd, Notifier::Semaphore);
}

mod threads {
    //! The same over the private heap backing, two threads: small enough for Miri.

    use shmlane::{spsc, RecvError, RingOptions};
    use std::thread;

    const N: u64 = if cfg!(miri) { 300 } else { 200_000 };

    /// Options for a ring of `capacity` bytes. Under Miri: symmetric fences (Miri has no
    /// `membarrier` system call); endpoints park on the futex as they do outside Miri.
    fn opts(capacity: usize) -> RingOptions {
        RingOptions::new(capacity).asymmetric_fences(!cfg!(miri))
    }

    /// A deterministic xorshift generator, so failures replay.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Message `seq` of length `len`: the sequence number, then bytes derived from it.
    fn message(seq: u64, len: usize) -> Vec<u8> {
        let mut m: Vec<u8> = (0..len)
            .map(|i| (seq as usize * 31 + i * 7) as u8)
            .collect();
        if len >= 8 {
            m[..8].copy_from_slice(&seq.to_le_bytes());
        }
        m
    }

    #[test]
    fn random_sizes_in_order_and_intact() {
        let cap = 4096;
        let (mut tx, mut rx) = spsc::channel(&opts(cap)).unwrap();
        let sizes: Vec<usize> = {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            (0..N)
                .map(|_| match rng.next() % 10 {
                    0 => (rng.next() % (3 * cap as u64)) as usize,
                    1..=3 => (rng.next() % 2048) as usize,
                    _ => (rng.next() % 64) as usize,
                })
                .collect()
        };
        let sizes2 = sizes.clone();
        let t = thread::spawn(move || {
            for (seq, &len) in sizes2.iter().enumerate() {
                tx.send(&message(seq as u64, len)).unwrap();
            }
        });
        let mut buf = Vec::new();
        for (seq, &len) in sizes.iter().enumerate() {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(n, len, "message {seq}");
            assert_eq!(buf, message(seq as u64, len), "message {seq}");
        }
        t.join().unwrap();
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
    }

    /// `iter()` (and `for m in &mut rx`) yields every message, owned, in order and
    /// intact, of every size (fragmented ones too), and ends when the producer has
    /// gone and the ring is drained, as std's `Receiver::iter` ends at disconnection.
    #[test]
    fn iter_yields_every_message_in_order_then_ends_at_disconnect() {
        let cap = 4096;
        let n = N / 10;
        let (mut tx, mut rx) = spsc::channel(&opts(cap)).unwrap();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let sizes: Vec<usize> = (0..n)
            .map(|_| match rng.next() % 10 {
                0 => (rng.next() % (3 * cap as u64)) as usize,
                _ => (rng.next() % 64) as usize,
            })
            .collect();
        let sizes2 = sizes.clone();
        let t = thread::spawn(move || {
            for (seq, &len) in sizes2.iter().enumerate() {
                tx.send(&message(seq as u64, len)).unwrap();
            }
        });
        let mut seq = 0;
        for m in &mut rx {
            let m = m.unwrap();
            assert_eq!(m, message(seq as u64, sizes[seq]), "message {seq}");
            seq += 1;
        }
        assert_eq!(seq, sizes.len(), "the loop ended before the last message");
        t.join().unwrap();
        assert!(rx.iter().next().is_none(), "disconnected: ends at once");
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
    }

    /// `try_iter()` takes the messages there are now and never waits: it ends when the
    /// ring is empty (the producer still there) and when the producer has gone; it is
    /// not fused (a message that came since is taken by the next call).
    #[test]
    fn try_iter_takes_what_is_there_and_never_waits() {
        let (mut tx, mut rx) = spsc::channel(&opts(4096)).unwrap();
        assert_eq!(rx.try_iter().count(), 0);
        for i in 0..3u8 {
            tx.send(&[i; 5]).unwrap();
        }
        let now: Vec<Vec<u8>> = rx.try_iter().map(Result::unwrap).collect();
        assert_eq!(now, [[0u8; 5], [1; 5], [2; 5]]);
        let mut it = rx.try_iter();
        assert!(
            it.next().is_none(),
            "empty, producer attached: ends at once"
        );
        tx.send(b"later").unwrap();
        assert_eq!(
            it.next().map(Result::unwrap).as_deref(),
            Some(&b"later"[..])
        );
        drop(tx);
        assert_eq!(rx.try_iter().count(), 0, "disconnected and drained");
    }

    /// An abandoned message (`Truncated`) is yielded and the iteration goes on with
    /// the next; a message over `max_message` (`TooLarge`) is yielded once and ends
    /// the iteration, the message left in the ring for the caller (another receive
    /// would give the same error forever).
    #[test]
    fn iterators_yield_truncated_and_go_on_and_end_after_too_large() {
        let cap = 4096;
        let (mut tx, mut rx) = spsc::channel(&opts(cap)).unwrap();
        {
            let mut w = tx.stream(3 * cap as u64).unwrap();
            std::io::Write::write_all(&mut w, &[7u8; 2048]).unwrap();
            // The consumer takes the fragments there are: nothing whole yet.
            assert_eq!(rx.try_iter().count(), 0);
            // Dropped partway: the message is abandoned.
        }
        tx.send(b"after").unwrap();
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got, [Err(RecvError::Truncated), Ok(b"after".to_vec())]);
        tx.send(b"0123456789").unwrap();
        tx.send(b"x").unwrap();
        rx.set_max_message(4);
        for got in [rx.iter().collect::<Vec<_>>(), rx.try_iter().collect()] {
            assert_eq!(got, [Err(RecvError::TooLarge { len: 10, max: 4 })]);
        }
        rx.set_max_message(100);
        drop(tx);
        let rest: Vec<_> = rx.iter().collect();
        assert_eq!(rest, [Ok(b"0123456789".to_vec()), Ok(b"x".to_vec())]);
    }
}
