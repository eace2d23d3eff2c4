//! Claim: **a peer that leaves is `Disconnected`, not a hang**. A consumer gets the
//! messages its producer sent before leaving, then `Disconnected` from every receive; a
//! producer gets `Disconnected` from every send once its consumer has left; a caller
//! blocked in `recv` or `send` is released when its peer's process exits; and a new
//! endpoint can take the place of one that left, with nothing lost or repeated. On every
//! backing, between processes, and (over the heap backing) between threads, where an
//! MPMC producer is disconnected only when the last consumer has gone.
//!
//! Every call that may block runs in a forked child; the parent makes only
//! non-blocking calls and supervises with a deadline.
//!
//! - top level: SPSC between processes over POSIX shared memory;
//! - [`every_backing`]: the same on POSIX, SysV and memfd rings;
//! - [`spsc_threads`], [`mpmc_threads`]: over the heap backing, small enough for Miri;
//! - [`history`]: `Disconnected` means one thing whatever the ring's history (a peer
//!   was there at some moment since this endpoint attached, and none is now): an
//!   endpoint that comes after its peers left waits for the next, as on a new ring; and
//!   with `wait_for_producers` / `wait_for_consumers` an endpoint waits across peers
//!   that come and go (a work queue whose workers start first).
//!
//! Peers that are killed rather than leaving are in `crash_recovery.rs`.

// The tests that fork are ignored under Miri (no fork); those over the heap backing run
// there (`scripts/check-nightly.sh`).

mod common;

use std::time::{Duration, Instant};

use common::{check_message, message, seg_name, Gate, Procs, SegGuard};
use shmlane::inspect::{EventCountInfo, RingInfo};
use shmlane::{
    spsc, RecvError, RecvTimeoutError, RingOptions, SendError, SendTimeoutError, TryRecvError,
    TrySendError, Wait,
};

const DEADLINE: Duration = Duration::from_secs(30);
/// How long a gate may take to open (the peer's process must start and set up).
const GATE: Duration = Duration::from_secs(20);
/// How late a timed call may return on a loaded machine.
const SLACK: Duration = Duration::from_secs(3);
/// Checks that a timed call that timed out took at least `timeout`, and not much more.
fn took(what: &str, t0: Instant, timeout: Duration) -> Result<(), String> {
    let t = t0.elapsed();
    if t < timeout || t > timeout + SLACK {
        return Err(format!(
            "{what}: timed out after {t:?}, timeout was {timeout:?}"
        ));
    }
    Ok(())
}

fn opts(capacity: usize) -> RingOptions {
    RingOptions::new(capacity)
}

// ---------------------------------------------------------------------------------
// Disconnection
// ---------------------------------------------------------------------------------

/// The consumer gets the messages the producer sent before its process exited, then
/// `Disconnected` from every receive; before that, `Empty` and `Timeout`.
#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn consumer_gets_disconnected_after_producer_process_exits() {
    let test = "sem-cons-disc";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let (created, producer_gone) = (Gate::new(), Gate::new());
    let sizes = [0usize, 100, 3000]; // the last one travels in fragments
    let mut procs = Procs::new(test, DEADLINE);
    let consumer = procs.spawn("consumer", || {
        let mut rx = spsc::Consumer::create(&name, &opts(4096)).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        // Nobody has attached as producer yet: empty, not disconnected.
        assert!(!rx.is_disconnected());
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
        let t0 = Instant::now();
        let timeout = Duration::from_millis(50);
        assert_eq!(
            rx.recv_timeout(&mut buf, timeout),
            Err(RecvTimeoutError::Timeout)
        );
        took("recv_timeout", t0, timeout)?;
        created.open();
        producer_gone.expect(GATE, "producer exited")?;
        assert!(rx.is_disconnected());
        // Everything sent before the exit is still there, in order.
        for (seq, &len) in sizes.iter().enumerate() {
            let n = rx
                .try_recv(&mut buf)
                .map_err(|e| format!("message {seq}: {e:?}"))?;
            assert_eq!(n, len);
            check_message(&buf, seq as u64, len)?;
        }
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected));
        let t0 = Instant::now();
        assert_eq!(
            rx.recv_timeout(&mut buf, Duration::from_secs(5)),
            Err(RecvTimeoutError::Disconnected)
        );
        assert!(
            t0.elapsed() < SLACK,
            "recv_timeout waited for a dead producer"
        );
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        assert!(matches!(rx.try_recv_ref(), Err(TryRecvError::Disconnected)));
        assert!(matches!(rx.recv_ref(), Err(RecvError::Disconnected)));
        assert!(matches!(rx.recv_stream(), Err(RecvError::Disconnected)));
        assert!(matches!(
            rx.recv_stream_timeout(Duration::from_secs(5)),
            Err(RecvTimeoutError::Disconnected)
        ));
        Ok(String::new())
    });
    let producer = procs.spawn("producer", || {
        created.expect(GATE, "ring created")?;
        let mut tx = spsc::Producer::open(&name).map_err(|e| e.to_string())?;
        assert!(!tx.is_disconnected());
        for (seq, &len) in sizes.iter().enumerate() {
            tx.send(&message(seq as u64, len))
                .map_err(|e| format!("send {seq}: {e}"))?;
        }
        Ok(String::new()) // drops `tx`, then the process exits
    });
    procs.wait_ok(producer);
    producer_gone.open();
    procs.wait_ok(consumer);
}

/// The producer gets `Disconnected` from every send once the consumer's process has
/// exited.
#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn producer_gets_disconnected_after_consumer_process_exits() {
    let test = "sem-prod-disc";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let (created, consumer_gone) = (Gate::new(), Gate::new());
    let mut procs = Procs::new(test, DEADLINE);
    let producer = procs.spawn("producer", || {
        let mut tx = spsc::Producer::create(&name, &opts(4096)).map_err(|e| e.to_string())?;
        tx.send(b"hello").map_err(|e| e.to_string())?;
        created.open();
        consumer_gone.expect(GATE, "consumer exited")?;
        assert!(tx.is_disconnected());
        assert_eq!(tx.try_send(b"x"), Err(TrySendError::Disconnected));
        assert_eq!(tx.send(b"x"), Err(SendError::Disconnected));
        let t0 = Instant::now();
        assert_eq!(
            tx.send_timeout(b"x", Duration::from_secs(5)),
            Err(SendTimeoutError::Disconnected)
        );
        assert!(
            t0.elapsed() < SLACK,
            "send_timeout waited for a dead consumer"
        );
        // A message that would travel in fragments, too.
        assert_eq!(tx.send(&message(1, 10_000)), Err(SendError::Disconnected));
        assert!(matches!(tx.try_reserve(8), Err(TrySendError::Disconnected)));
        assert!(matches!(tx.reserve(8), Err(SendError::Disconnected)));
        assert!(matches!(
            tx.reserve_timeout(8, Duration::from_secs(5)),
            Err(SendTimeoutError::Disconnected)
        ));
        assert!(matches!(tx.stream(100), Err(SendError::Disconnected)));
        Ok(String::new())
    });
    let consumer = procs.spawn("consumer", || {
        created.expect(GATE, "ring created")?;
        let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        rx.recv(&mut buf).map_err(|e| e.to_string())?;
        assert_eq!(buf, b"hello");
        Ok(String::new())
    });
    procs.wait_ok(consumer);
    consumer_gone.open();
    procs.wait_ok(producer);
}

/// The state of process `pid` (field 3 of /proc/PID/stat: `R` running, `S` asleep, ...),
/// if it can be read.
fn process_state(pid: nix::unistd::Pid) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything.
    stat.get(stat.rfind(')')? + 2..)?.chars().next()
}

/// Waits (at most `GATE`) until the process `pid`, an endpoint of the ring `name`,
/// is parked on the event count `ec` picks from what `inspect` reads: registered
/// there as a waiter, while the process sleeps (`S`), registered still after. A spin
/// or a yield is never asleep; a wait that ended is no longer registered. Panics,
/// saying what it last saw, if that does not happen.
fn wait_until_parked(name: &str, pid: nix::unistd::Pid, ec: fn(&RingInfo) -> EventCountInfo) {
    let t0 = Instant::now();
    let waiting = || {
        let info =
            shmlane::inspect::inspect(name).unwrap_or_else(|e| panic!("inspect {name}: {e}"));
        ec(&info)
    };
    loop {
        let before = waiting();
        let state = process_state(pid);
        let after = waiting();
        if before.waiters >= 1 && state == Some('S') && after.waiters >= 1 {
            return;
        }
        assert!(
            t0.elapsed() < GATE,
            "{name}: process {pid} did not park within {GATE:?}: last seen {before:?}, \
             state {state:?}, then {after:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A consumer blocked in `recv` (parked, or in the adaptive wait) returns
/// `Disconnected` when the producer's process exits without sending; a consumer
/// blocked in the middle of a message gets `Truncated`, then `Disconnected`. The
/// parent sees the consumer parked (a waiter on `data_ready`, asleep) before the
/// producer sends or leaves, and, mid-message, parked again after the first fragments.
#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn blocked_receiver_is_released_when_producer_exits() {
    for (i, wait) in [Wait::Park, Wait::Adaptive].into_iter().enumerate() {
        for mid_message in [false, true] {
            let test = format!("sem-rx-released-{i}-{}", mid_message as u8);
            let name = seg_name(&test);
            let _seg = SegGuard::new(&name);
            let (created, parked, written, parked_mid) =
                (Gate::new(), Gate::new(), Gate::new(), Gate::new());
            let mut procs = Procs::new(&test, DEADLINE);
            let consumer = procs.spawn("consumer", || {
                let mut rx = spsc::Consumer::create(&name, &opts(4096).wait(wait))
                    .map_err(|e| e.to_string())?;
                created.open();
                let mut buf = Vec::new();
                let t0 = Instant::now();
                let first = rx.recv(&mut buf);
                let second = rx.recv(&mut buf);
                let expected = if mid_message {
                    (Err(RecvError::Truncated), Err(RecvError::Disconnected))
                } else {
                    (Err(RecvError::Disconnected), Err(RecvError::Disconnected))
                };
                if (first, second) != expected {
                    return Err(format!(
                        "{wait:?}: got {first:?} then {second:?}, expected {expected:?}"
                    ));
                }
                Ok(format!("{wait:?}: released after {:?}", t0.elapsed()))
            });
            procs.spawn("producer", || {
                created.expect(GATE, "ring created")?;
                let mut tx = spsc::Producer::open(&name).map_err(|e| e.to_string())?;
                parked.expect(GATE, "consumer parked")?;
                if mid_message {
                    use std::io::Write;
                    let mut w = tx.stream(10_000).map_err(|e| e.to_string())?;
                    w.write_all(&message(0, 3000)).map_err(|e| e.to_string())?;
                    written.open();
                    parked_mid.expect(GATE, "consumer parked mid-message")?;
                    // Exit with the message unfinished: the writer and the producer
                    // are dropped, then the process ends.
                    drop(w);
                }
                drop(tx);
                Ok(String::new())
            });
            assert!(created.wait(GATE), "{test}: ring not created");
            wait_until_parked(&name, procs.pid(consumer), |r| r.data_ready);
            parked.open();
            if mid_message {
                assert!(written.wait(GATE), "{test}: first fragments not written");
                // Every record published so far woke the consumer and took its
                // registration: a waiter now waits for the rest of the message.
                wait_until_parked(&name, procs.pid(consumer), |r| r.data_ready);
                parked_mid.open();
            }
            let reports = procs.wait_all_ok();
            println!("{}", reports[0]);
        }
    }
}

/// A producer blocked in `send` on a full ring returns `Disconnected` when the
/// consumer's process exits without reading. The parent sees the producer parked (a
/// waiter on `space_ready`, asleep) before the consumer leaves.
#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn blocked_sender_is_released_when_consumer_exits() {
    for (i, wait) in [Wait::Park, Wait::Adaptive].into_iter().enumerate() {
        let test = format!("sem-tx-released-{i}");
        let name = seg_name(&test);
        let _seg = SegGuard::new(&name);
        let (created, attached, parked) = (Gate::new(), Gate::new(), Gate::new());
        let mut procs = Procs::new(&test, DEADLINE);
        let producer = procs.spawn("producer", || {
            let mut tx =
                spsc::Producer::create(&name, &opts(4096).wait(wait)).map_err(|e| e.to_string())?;
            created.open();
            attached.expect(GATE, "consumer attached")?;
            let mut sent = 0;
            while tx.try_send(&[7; 100]).is_ok() {
                sent += 1;
            }
            let t0 = Instant::now();
            match tx.send(&[7; 100]) {
                Err(SendError::Disconnected) => {}
                other => return Err(format!("{wait:?}: blocked send gave {other:?}")),
            }
            Ok(format!(
                "{wait:?}: {sent} messages filled the ring; released after {:?}",
                t0.elapsed()
            ))
        });
        procs.spawn("consumer", || {
            created.expect(GATE, "ring created")?;
            let rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
            attached.open();
            parked.expect(GATE, "producer parked")?;
            drop(rx);
            Ok(String::new())
        });
        assert!(attached.wait(GATE), "{test}: consumer not attached");
        wait_until_parked(&name, procs.pid(producer), |r| r.space_ready);
        parked.open();
        let reports = procs.wait_all_ok();
        println!("{}", reports[0]);
    }
}

// ---------------------------------------------------------------------------------
// Endpoints replaced by new processes
// ---------------------------------------------------------------------------------

/// The consumer's process exits midway and a new consumer process takes over: every
/// message is received once, in order, by one of them. The producer sees
/// `Disconnected` while no consumer is attached and resends when one is.
#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn consumer_replaced_midway() {
    const N: u64 = 20_000;
    const FIRST: u64 = 7_000;
    let test = "sem-cons-replaced";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let (created, first_gone) = (Gate::new(), Gate::new());
    let len = |seq: u64| 16 + (common::splitmix64(seq) % 200) as usize;
    let mut procs = Procs::new(test, DEADLINE);
    procs.spawn("producer", || {
        let mut tx = spsc::Producer::create(&name, &opts(4096)).map_err(|e| e.to_string())?;
        created.open();
        let mut disconnects = 0;
        let t0 = Instant::now();
        for seq in 0..N {
            let m = message(seq, len(seq));
            loop {
                match tx.send(&m) {
                    Ok(()) => break,
                    Err(SendError::Disconnected) => {
                        disconnects += 1;
                        if t0.elapsed() > GATE {
                            return Err(format!("no consumer came back (message {seq})"));
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => return Err(format!("send {seq}: {e}")),
                }
            }
        }
        Ok(format!("Disconnected {disconnects} times"))
    });
    let first = procs.spawn("first consumer", || {
        created.expect(GATE, "ring created")?;
        let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        for seq in 0..FIRST {
            rx.recv(&mut buf).map_err(|e| format!("recv {seq}: {e}"))?;
            check_message(&buf, seq, len(seq))?;
        }
        Ok(String::new())
    });
    let second = procs.spawn("second consumer", || {
        first_gone.expect(GATE, "first consumer gone")?;
        let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        for seq in FIRST..N {
            rx.recv(&mut buf).map_err(|e| format!("recv {seq}: {e}"))?;
            check_message(&buf, seq, len(seq))?;
        }
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        Ok(String::new())
    });
    procs.wait_ok(first);
    first_gone.open();
    procs.wait_ok(second);
    println!("producer: {}", procs.wait_all_ok()[0]);
}

/// The producer's process exits midway and a new producer process takes over: the
/// one consumer gets every message once, in order (small and in fragments).
#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn producer_replaced_midway() {
    const N: u64 = 6_000;
    const FIRST: u64 = 2_500;
    let test = "sem-prod-replaced";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let (created, first_gone) = (Gate::new(), Gate::new());
    let len = |seq: u64| {
        let r = common::splitmix64(seq);
        if r % 10 == 0 {
            (r >> 8) as usize % 12_000
        } else {
            (r >> 8) as usize % 300
        }
    };
    let send = |from: u64, to: u64| -> Result<String, String> {
        let mut tx = spsc::Producer::open(&name).map_err(|e| e.to_string())?;
        for seq in from..to {
            tx.send(&message(seq, len(seq)))
                .map_err(|e| format!("send {seq}: {e}"))?;
        }
        Ok(String::new())
    };
    let mut procs = Procs::new(test, DEADLINE);
    procs.spawn("consumer", || {
        let mut rx = spsc::Consumer::create(&name, &opts(4096)).map_err(|e| e.to_string())?;
        created.open();
        let mut buf = Vec::new();
        let mut seq = 0;
        let mut gaps = 0;
        let t0 = Instant::now();
        while seq < N {
            match rx.recv(&mut buf) {
                Ok(_) => {
                    check_message(&buf, seq, len(seq))?;
                    seq += 1;
                }
                // Between the two producers the ring may read as disconnected.
                Err(RecvError::Disconnected) if seq == FIRST && t0.elapsed() < GATE => {
                    gaps += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(format!("recv {seq}: {e}")),
            }
        }
        Ok(format!("{gaps} Disconnected between the producers"))
    });
    let first = procs.spawn("first producer", || {
        created.expect(GATE, "ring created")?;
        send(0, FIRST)
    });
    let second = procs.spawn("second producer", || {
        first_gone.expect(GATE, "first producer gone")?;
        send(FIRST, N)
    });
    procs.wait_ok(first);
    first_gone.open();
    procs.wait_ok(second);
    println!("consumer: {}", procs.wait_all_ok()[0]);
}

mod every_backing {
    //! Disconnection in both directions on every backing (POSIX, SysV, memfd), between real
    //! processes. Every SysV segment is removed by a guard; memfds go with their last
    //! descriptor.

    use crate::common::backings::{Kind, TestRing};
    use crate::common::{check_message, message, Gate, Procs};
    use shmlane::{RecvError, RingOptions, SendError, TryRecvError};
    use std::time::Duration;

    const DEADLINE: Duration = Duration::from_secs(30);

    /// How long a gate may take to open (the peer's process must start and set up).
    const GATE: Duration = Duration::from_secs(20);

    /// The consumer gets what the producer sent before its process exited, then
    /// `Disconnected`; the producer gets `Disconnected` once the consumer's process exited.
    /// Both rings are created by one child and opened by the other.
    fn disconnection(kind: Kind) {
        let test = format!("bk-disc-{}", kind.label());
        let sizes = [0usize, 100, 3000]; // the last one travels in fragments
        let opts = RingOptions::new(4096);

        // The producer leaves.
        let ring = TestRing::new(kind, &format!("{test}-p"));
        let producer_gone = Gate::new();
        let mut procs = Procs::new(&test, DEADLINE);
        let consumer = procs.spawn("consumer", || {
            let mut rx = ring.create_consumer(&opts)?;
            producer_gone.expect(GATE, "producer exited")?;
            let mut buf = Vec::new();
            for (seq, &len) in sizes.iter().enumerate() {
                rx.try_recv(&mut buf)
                    .map_err(|e| format!("message {seq}: {e:?}"))?;
                check_message(&buf, seq as u64, len)?;
            }
            assert!(rx.is_disconnected());
            assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected));
            assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
            Ok(rx.name().to_string())
        });
        let producer = procs.spawn("producer", || {
            let mut tx = ring.open_producer()?;
            for (seq, &len) in sizes.iter().enumerate() {
                tx.send(&message(seq as u64, len))
                    .map_err(|e| format!("send {seq}: {e}"))?;
            }
            Ok(tx.name().to_string())
        });
        let producer_name = procs.wait_ok(producer);
        producer_gone.open();
        let consumer_name = procs.wait_ok(consumer);
        assert_eq!(
            producer_name, consumer_name,
            "both ends name the same segment"
        );
        drop(procs);

        // The consumer leaves.
        let ring = TestRing::new(kind, &format!("{test}-c"));
        let consumer_gone = Gate::new();
        let mut procs = Procs::new(&test, DEADLINE);
        let producer = procs.spawn("producer", || {
            let mut tx = ring.create_producer(&opts)?;
            tx.send(b"hello").map_err(|e| e.to_string())?;
            consumer_gone.expect(GATE, "consumer exited")?;
            assert!(tx.is_disconnected());
            assert_eq!(tx.send(b"x"), Err(SendError::Disconnected));
            assert_eq!(tx.send(&message(1, 10_000)), Err(SendError::Disconnected));
            Ok(String::new())
        });
        let consumer = procs.spawn("consumer", || {
            let mut rx = ring.open_consumer()?;
            let mut buf = Vec::new();
            rx.recv(&mut buf).map_err(|e| e.to_string())?;
            assert_eq!(buf, b"hello");
            Ok(String::new())
        });
        procs.wait_ok(consumer);
        consumer_gone.open();
        procs.wait_ok(producer);
        println!("{test}: both directions; segment {consumer_name}");
    }

    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
    #[test]
    fn disconnection_posix() {
        disconnection(Kind::Posix);
    }

    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
    #[test]
    fn disconnection_sysv() {
        disconnection(Kind::SysV);
    }

    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
    #[test]
    fn disconnection_memfd() {
        disconnection(Kind::Memfd);
    }
}

mod spsc_threads {
    //! Over the private heap backing, two threads: small enough for Miri.

    use shmlane::{spsc, RingOptions, SendTimeoutError, TrySendError};
    use std::time::Duration;

    /// Options for a ring of `capacity` bytes. Under Miri: symmetric fences (Miri has no
    /// `membarrier` system call); endpoints park on the futex as they do outside Miri.
    fn opts(capacity: usize) -> RingOptions {
        RingOptions::new(capacity).asymmetric_fences(!cfg!(miri))
    }

    #[test]
    fn producer_sees_consumer_gone() {
        let (mut tx, rx) = spsc::channel(&opts(256)).unwrap();
        drop(rx);
        assert_eq!(tx.try_send(b"x"), Err(TrySendError::Disconnected));
        assert_eq!(tx.send(b"x"), Err(shmlane::SendError::Disconnected));
        // `Disconnected`, not `Timeout`: a gone consumer is said at once, whatever the
        // deadline.
        assert_eq!(
            tx.send_timeout(b"x", Duration::from_millis(1)),
            Err(SendTimeoutError::Disconnected)
        );
    }
}

mod mpmc_threads {
    //! MPMC over the heap backing, with threads: small enough for Miri.

    use shmlane::{mpmc, RingOptions, TrySendError};

    /// Options for a ring of `capacity` bytes (symmetric fences under Miri, which has no
    /// `membarrier`).
    fn opts(capacity: usize) -> RingOptions {
        RingOptions::new(capacity).asymmetric_fences(!cfg!(miri))
    }

    #[test]
    fn producer_sees_consumers_gone_only_when_all_left() {
        let (mut tx, rx) = mpmc::channel(&opts(256)).unwrap();
        let rx2 = rx.try_clone().unwrap();
        drop(rx);
        tx.send(b"still one consumer").unwrap();
        assert!(!tx.is_disconnected());
        drop(rx2);
        assert!(tx.is_disconnected());
        assert_eq!(tx.try_send(b"x"), Err(TrySendError::Disconnected));
        assert_eq!(tx.send(b"x"), Err(shmlane::SendError::Disconnected));
    }
}

mod history {
    //! One process, rings by name, every wait bounded by a timeout.

    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};

    use super::common::{seg_name, SegGuard};
    use shmlane::{
        mpmc, spsc, RecvError, RecvTimeoutError, RingOptions, SendError, TryRecvError, TrySendError,
    };

    const SHORT: Duration = Duration::from_millis(50);

    fn recv(rx: &mut spsc::Consumer) -> Vec<u8> {
        let mut buf = Vec::new();
        rx.recv_timeout(&mut buf, Duration::from_secs(10))
            .expect("a message");
        buf
    }

    /// An SPSC consumer that comes after its producer left takes what is there, then
    /// waits (a timeout, not `Disconnected`) for the next producer; once that one has
    /// come and gone, `Disconnected`.
    #[cfg_attr(miri, ignore = "shm_open: Miri has no shared memory")]
    #[test]
    fn spsc_consumer_after_its_producer_left_waits_for_the_next() {
        let guard = SegGuard::new(&seg_name("hist-spsc-consumer"));
        spsc::create_ring(guard.name(), &RingOptions::new(4096)).unwrap();
        {
            let mut tx = spsc::Producer::open(guard.name()).unwrap();
            tx.send(b"left behind").unwrap();
        }
        let mut rx = spsc::Consumer::open(guard.name()).unwrap();
        assert!(
            !rx.is_disconnected(),
            "a producer that left before us is not ours"
        );
        assert_eq!(recv(&mut rx), b"left behind");
        let mut buf = Vec::new();
        assert_eq!(
            rx.recv_timeout(&mut buf, SHORT),
            Err(RecvTimeoutError::Timeout)
        );
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
        {
            let mut tx = spsc::Producer::open(guard.name()).unwrap();
            tx.send(b"next").unwrap();
        }
        assert_eq!(recv(&mut rx), b"next");
        assert!(rx.is_disconnected());
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
    }

    /// An SPSC producer that comes after its consumer left sends into the ring until
    /// it is full (`Full`, not `Disconnected`); once a consumer has come and gone,
    /// `Disconnected`.
    #[cfg_attr(miri, ignore = "shm_open: Miri has no shared memory")]
    #[test]
    fn spsc_producer_after_its_consumer_left_waits_for_the_next() {
        let guard = SegGuard::new(&seg_name("hist-spsc-producer"));
        spsc::create_ring(guard.name(), &RingOptions::new(4096)).unwrap();
        drop(spsc::Consumer::open(guard.name()).unwrap());
        let mut tx = spsc::Producer::open(guard.name()).unwrap();
        assert!(!tx.is_disconnected());
        let mut sent = 0;
        loop {
            match tx.try_send(&[7; 100]) {
                Ok(()) => sent += 1,
                Err(TrySendError::Full) => break,
                Err(e) => panic!("after {sent} messages: {e:?}"),
            }
        }
        assert!(sent > 10, "{sent}");
        let mut rx = spsc::Consumer::open(guard.name()).unwrap();
        assert_eq!(recv(&mut rx).len(), 100);
        drop(rx);
        assert!(tx.is_disconnected());
        assert_eq!(tx.send(b"x"), Err(SendError::Disconnected));
    }

    /// The same for MPMC: consumers that come after the producers left wait for the
    /// next producer; the producers' disconnection comes once every one that came
    /// since has gone.
    #[cfg_attr(miri, ignore = "shm_open: Miri has no shared memory")]
    #[test]
    fn mpmc_consumer_after_its_producers_left_waits_for_the_next() {
        let guard = SegGuard::new(&seg_name("hist-mpmc"));
        mpmc::create_ring(guard.name(), &RingOptions::new(4096)).unwrap();
        {
            let mut a = mpmc::Producer::open(guard.name()).unwrap();
            let mut b = a.try_clone().unwrap();
            a.send(b"a").unwrap();
            b.send(b"b").unwrap();
        }
        let mut rx = mpmc::Consumer::open(guard.name()).unwrap();
        assert!(!rx.is_disconnected());
        let mut buf = Vec::new();
        for want in [&b"a"[..], b"b"] {
            rx.recv_timeout(&mut buf, Duration::from_secs(10)).unwrap();
            assert_eq!(buf, want);
        }
        assert_eq!(
            rx.recv_timeout(&mut buf, SHORT),
            Err(RecvTimeoutError::Timeout)
        );
        let mut c = mpmc::Producer::open(guard.name()).unwrap();
        let d = c.try_clone().unwrap();
        c.send(b"c").unwrap();
        drop(c);
        // One of ours is still there.
        rx.recv_timeout(&mut buf, Duration::from_secs(10)).unwrap();
        assert_eq!(buf, b"c");
        assert_eq!(
            rx.recv_timeout(&mut buf, SHORT),
            Err(RecvTimeoutError::Timeout)
        );
        drop(d);
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
    }

    /// `wait_for_producers`: an SPSC consumer waits across producers that come and go.
    #[cfg_attr(miri, ignore = "shm_open: Miri has no shared memory")]
    #[test]
    fn spsc_consumer_waits_across_producers() {
        let guard = SegGuard::new(&seg_name("hist-spsc-across"));
        spsc::create_ring(guard.name(), &RingOptions::new(4096)).unwrap();
        let mut rx = spsc::Consumer::open(guard.name()).unwrap();
        rx.wait_for_producers(true);
        let mut buf = Vec::new();
        for round in 0..3u8 {
            {
                let mut tx = spsc::Producer::open(guard.name()).unwrap();
                tx.send(&[round; 10]).unwrap();
            }
            assert_eq!(recv(&mut rx), [round; 10]);
            assert!(!rx.is_disconnected());
            assert_eq!(
                rx.recv_timeout(&mut buf, SHORT),
                Err(RecvTimeoutError::Timeout)
            );
        }
        rx.wait_for_producers(false);
        assert!(rx.is_disconnected());
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected));
    }

    /// A work queue without a keeper: two MPMC workers start first, waiting across
    /// producers; three producers come one after the other and leave; every job is
    /// taken exactly once, and the workers never see `Disconnected`.
    #[cfg_attr(miri, ignore = "shm_open: Miri has no shared memory")]
    #[test]
    fn mpmc_work_queue_whose_workers_start_first() {
        let guard = SegGuard::new(&seg_name("hist-mpmc-queue"));
        mpmc::create_ring(guard.name(), &RingOptions::new(1 << 14)).unwrap();
        const JOBS: u32 = 200;
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let mut rx = mpmc::Consumer::open(guard.name()).unwrap();
                rx.wait_for_producers(true);
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut buf = Vec::new();
                    // Until the queue has been quiet for a while after the producers'
                    // last job (the main thread sends a stop job per worker).
                    let end = Instant::now() + Duration::from_secs(30);
                    while Instant::now() < end {
                        match rx.recv_timeout(&mut buf, Duration::from_millis(100)) {
                            Ok(_) if buf == b"stop" => return got,
                            Ok(_) => got.push(u32::from_le_bytes(buf[..4].try_into().unwrap())),
                            Err(RecvTimeoutError::Timeout) => {}
                            Err(e) => panic!("a worker got {e:?}"),
                        }
                    }
                    panic!("no stop job within 30 s");
                })
            })
            .collect();
        for p in 0..3 {
            let mut tx = mpmc::Producer::open(guard.name()).unwrap();
            for j in (p * JOBS / 3)..((p + 1) * JOBS / 3) {
                tx.send(&j.to_le_bytes()).unwrap();
            }
            drop(tx);
            // Between two producers, none is attached: the workers wait.
            std::thread::sleep(Duration::from_millis(20));
        }
        // A last producer tells each worker to stop.
        let mut tx = mpmc::Producer::open(guard.name()).unwrap();
        tx.send(b"stop").unwrap();
        tx.send(b"stop").unwrap();
        drop(tx);
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.join().expect("a worker panicked"));
        }
        let set: BTreeSet<u32> = all.iter().copied().collect();
        assert_eq!(all.len(), JOBS as usize, "a job taken twice or lost");
        assert_eq!(set, (0..JOBS).collect());
    }
}
