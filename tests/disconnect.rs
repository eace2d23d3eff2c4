//! The ring's contract between real processes: non-blocking and timed calls,
//! disconnection in both directions, wake-ups across processes, creation and opening
//! (existing names, races, corrupted or truncated segments, invalid names, a second
//! endpoint of a role).
//!
//! Every call that may block runs in a forked child; the parent makes only
//! non-blocking calls and supervises with a deadline.

// Real processes and POSIX shared memory: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use common::{
    check_message, message, offsets, peek_u32, peek_u64, poke, read_segment, seg_name, shm_path,
    Gate, Outcome, Procs, SegGuard,
};
use shmlane::{
    spsc, Error, RecvError, RecvTimeoutError, RingOptions, SendError, SendTimeoutError,
    TryRecvError, TrySendError, Wait,
};

const DEADLINE: Duration = Duration::from_secs(30);
/// How long a gate may take to open (the peer's process must start and set up).
const GATE: Duration = Duration::from_secs(20);
/// How late a timed call may return on a loaded machine.
const SLACK: Duration = Duration::from_secs(3);
const WAITS: [Wait; 4] = [Wait::Spin, Wait::Yield, Wait::Park, Wait::Adaptive];

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

/// A consumer blocked in `recv` (parked, or in the adaptive wait) returns
/// `Disconnected` when the producer's process exits without sending; a consumer
/// blocked in the middle of a message gets `Truncated`, then `Disconnected`.
#[test]
fn blocked_receiver_is_released_when_producer_exits() {
    for (i, wait) in [Wait::Park, Wait::Adaptive].into_iter().enumerate() {
        for mid_message in [false, true] {
            let test = format!("sem-rx-released-{i}-{}", mid_message as u8);
            let name = seg_name(&test);
            let _seg = SegGuard::new(&name);
            let (created, waiting) = (Gate::new(), Gate::new());
            let mut procs = Procs::new(&test, DEADLINE);
            procs.spawn("consumer", || {
                let mut rx = spsc::Consumer::create(&name, &opts(4096).wait(wait))
                    .map_err(|e| e.to_string())?;
                created.open();
                waiting.open();
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
                waiting.expect(GATE, "consumer waiting")?;
                // Let the consumer get deep into its wait (parked).
                std::thread::sleep(Duration::from_millis(200));
                if mid_message {
                    use std::io::Write;
                    let mut w = tx.stream(10_000).map_err(|e| e.to_string())?;
                    w.write_all(&message(0, 3000)).map_err(|e| e.to_string())?;
                    // Exit with the message unfinished: the writer and the producer
                    // are dropped, then the process ends.
                    drop(w);
                }
                drop(tx);
                Ok(String::new())
            });
            let reports = procs.wait_all_ok();
            println!("{}", reports[0]);
        }
    }
}

/// A producer blocked in `send` on a full ring returns `Disconnected` when the
/// consumer's process exits without reading.
#[test]
fn blocked_sender_is_released_when_consumer_exits() {
    for (i, wait) in [Wait::Park, Wait::Adaptive].into_iter().enumerate() {
        let test = format!("sem-tx-released-{i}");
        let name = seg_name(&test);
        let _seg = SegGuard::new(&name);
        let (created, attached, full) = (Gate::new(), Gate::new(), Gate::new());
        let mut procs = Procs::new(&test, DEADLINE);
        procs.spawn("producer", || {
            let mut tx =
                spsc::Producer::create(&name, &opts(4096).wait(wait)).map_err(|e| e.to_string())?;
            created.open();
            attached.expect(GATE, "consumer attached")?;
            let mut sent = 0;
            while tx.try_send(&[7; 100]).is_ok() {
                sent += 1;
            }
            full.open();
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
            full.expect(GATE, "ring full")?;
            std::thread::sleep(Duration::from_millis(200));
            drop(rx);
            Ok(String::new())
        });
        let reports = procs.wait_all_ok();
        println!("{}", reports[0]);
    }
}

// ---------------------------------------------------------------------------------
// Non-blocking and timed calls
// ---------------------------------------------------------------------------------

/// On an empty ring whose producer (the parent) is alive: `Empty` from the try calls,
/// `Timeout` from the timed ones, after the timeout, with every wait strategy.
#[test]
fn try_and_timeout_on_empty_ring() {
    let test = "sem-empty";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    // The parent is the producer: attached, never sending.
    let tx = spsc::Producer::create(&name, &opts(4096)).unwrap();
    let mut procs = Procs::new(test, DEADLINE);
    let c = procs.spawn("consumer", || {
        let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let timeout = Duration::from_millis(30);
        for wait in WAITS {
            rx.set_wait(wait);
            assert_eq!(rx.wait_strategy(), wait);
            assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
            assert!(matches!(rx.try_recv_ref(), Err(TryRecvError::Empty)));
            let t0 = Instant::now();
            assert_eq!(
                rx.recv_timeout(&mut buf, timeout),
                Err(RecvTimeoutError::Timeout)
            );
            took(&format!("{wait:?} recv_timeout"), t0, timeout)?;
            let t0 = Instant::now();
            assert!(matches!(
                rx.recv_ref_timeout(timeout),
                Err(RecvTimeoutError::Timeout)
            ));
            took(&format!("{wait:?} recv_ref_timeout"), t0, timeout)?;
            let t0 = Instant::now();
            assert!(matches!(
                rx.recv_stream_timeout(timeout),
                Err(RecvTimeoutError::Timeout)
            ));
            took(&format!("{wait:?} recv_stream_timeout"), t0, timeout)?;
            assert!(!rx.is_disconnected());
        }
        Ok(String::new())
    });
    procs.wait_ok(c);
    drop(tx);
}

/// On a full ring whose consumer (the parent) is alive but not reading: `Full` from
/// the try calls, `Timeout` from the timed ones, with every wait strategy; nothing
/// of the timed-out messages reaches the consumer.
#[test]
fn try_and_timeout_on_full_ring() {
    let test = "sem-full";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    // The parent is the consumer: attached, not reading until the producer is done.
    let mut rx = spsc::Consumer::create(&name, &opts(4096)).unwrap();
    let mut procs = Procs::new(test, DEADLINE);
    let p = procs.spawn("producer", || {
        let mut tx = spsc::Producer::open(&name).map_err(|e| e.to_string())?;
        let mut sent = 0u64;
        loop {
            match tx.try_send(&message(sent, 100)) {
                Ok(()) => sent += 1,
                Err(TrySendError::Full) => break,
                Err(e) => return Err(format!("try_send {sent}: {e:?}")),
            }
        }
        let timeout = Duration::from_millis(30);
        for wait in WAITS {
            tx.set_wait(wait);
            assert_eq!(tx.try_send(&[1; 100]), Err(TrySendError::Full));
            assert!(matches!(tx.try_reserve(100), Err(TrySendError::Full)));
            let t0 = Instant::now();
            assert_eq!(
                tx.send_timeout(&[1; 100], timeout),
                Err(SendTimeoutError::Timeout)
            );
            took(&format!("{wait:?} send_timeout"), t0, timeout)?;
            let t0 = Instant::now();
            assert!(matches!(
                tx.reserve_timeout(100, timeout),
                Err(SendTimeoutError::Timeout)
            ));
            took(&format!("{wait:?} reserve_timeout"), t0, timeout)?;
            // A message that would travel in fragments.
            let t0 = Instant::now();
            assert_eq!(
                tx.send_timeout(&[1; 10_000], timeout),
                Err(SendTimeoutError::Timeout)
            );
            took(&format!("{wait:?} send_timeout (fragments)"), t0, timeout)?;
            assert!(!tx.is_disconnected());
        }
        Ok(sent.to_string())
    });
    let sent: u64 = procs.wait_ok(p).parse().unwrap();
    assert!(
        sent > 30,
        "only {sent} messages of 100 bytes in a 4 KiB ring"
    );
    let mut buf = Vec::new();
    for seq in 0..sent {
        assert_eq!(rx.try_recv(&mut buf), Ok(100), "message {seq}");
        check_message(&buf, seq, 100).unwrap();
    }
    assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected));
}

// ---------------------------------------------------------------------------------
// Wake-ups across processes
// ---------------------------------------------------------------------------------

/// A consumer parked on the futex in one process is woken by sends from another:
/// the sender makes the wake system call (shared futex, not process-private).
#[test]
fn parked_consumer_is_woken_by_another_process() {
    const N: u64 = 5;
    let test = "sem-wake-rx";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let (created, done) = (Gate::new(), Gate::new());
    let mut procs = Procs::new(test, DEADLINE);
    procs.spawn("consumer", || {
        let mut rx = spsc::Consumer::create(&name, &opts(4096).wait(Wait::Park))
            .map_err(|e| e.to_string())?;
        created.open();
        let mut buf = Vec::new();
        for seq in 0..N {
            rx.recv(&mut buf).map_err(|e| format!("recv {seq}: {e}"))?;
            check_message(&buf, seq, 64)?;
        }
        let (wakes, waits) = shmlane::wait::futex_calls();
        done.open();
        assert!(waits >= 1, "a parked consumer made no futex wait");
        Ok(format!("consumer futex calls: {wakes} wake, {waits} wait"))
    });
    procs.spawn("producer", || {
        created.expect(GATE, "ring created")?;
        let mut tx = spsc::Producer::open(&name).map_err(|e| e.to_string())?;
        for seq in 0..N {
            // Long enough for the consumer to be parked in the kernel.
            std::thread::sleep(Duration::from_millis(50));
            tx.send(&message(seq, 64))
                .map_err(|e| format!("send {seq}: {e}"))?;
        }
        let (wakes, waits) = shmlane::wait::futex_calls();
        done.expect(GATE, "consumer done")?;
        assert!(wakes >= 1, "the producer never woke the parked consumer");
        Ok(format!("producer futex calls: {wakes} wake, {waits} wait"))
    });
    let r = procs.wait_all_ok();
    println!("{}\n{}", r[0], r[1]);
}

/// A producer parked on a full ring is woken by the consumer's process reading.
#[test]
fn parked_producer_is_woken_by_another_process() {
    let test = "sem-wake-tx";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let (created, full) = (Gate::new(), Gate::new());
    let total = 200u64;
    let mut procs = Procs::new(test, DEADLINE);
    procs.spawn("producer", || {
        let mut tx = spsc::Producer::create(&name, &opts(4096).wait(Wait::Park))
            .map_err(|e| e.to_string())?;
        created.open();
        let mut seq = 0;
        while tx.try_send(&message(seq, 100)).is_ok() {
            seq += 1;
        }
        full.open();
        while seq < total {
            tx.send(&message(seq, 100))
                .map_err(|e| format!("send {seq}: {e}"))?;
            seq += 1;
        }
        let (wakes, waits) = shmlane::wait::futex_calls();
        assert!(
            waits >= 1,
            "a producer parked on a full ring made no futex wait"
        );
        Ok(format!("producer futex calls: {wakes} wake, {waits} wait"))
    });
    procs.spawn("consumer", || {
        created.expect(GATE, "ring created")?;
        let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
        full.expect(GATE, "ring full")?;
        std::thread::sleep(Duration::from_millis(100));
        let mut buf = Vec::new();
        for seq in 0..total {
            rx.recv(&mut buf).map_err(|e| format!("recv {seq}: {e}"))?;
            check_message(&buf, seq, 100)?;
        }
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        let (wakes, waits) = shmlane::wait::futex_calls();
        assert!(wakes >= 1, "the consumer never woke the parked producer");
        Ok(format!("consumer futex calls: {wakes} wake, {waits} wait"))
    });
    let r = procs.wait_all_ok();
    println!("{}\n{}", r[0], r[1]);
}

// ---------------------------------------------------------------------------------
// Abandoned and partly read messages, replaced endpoints
// ---------------------------------------------------------------------------------

/// A message in fragments whose `send_timeout` expires partway is abandoned: the
/// consumer process gets `Truncated` for it, then the next message intact.
#[test]
fn message_abandoned_by_send_timeout_is_truncated() {
    let test = "sem-abandon";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    // The parent is the consumer, not reading until the producer has timed out.
    let mut rx = spsc::Consumer::create(&name, &opts(4096)).unwrap();
    let timed_out = Gate::new();
    let mut procs = Procs::new(test, DEADLINE);
    let p = procs.spawn("producer", || {
        let mut tx = spsc::Producer::open(&name).map_err(|e| e.to_string())?;
        // 10,000 bytes: more fragments than the ring holds at once.
        match tx.send_timeout(&message(0, 10_000), Duration::from_millis(50)) {
            Err(SendTimeoutError::Timeout) => {}
            other => return Err(format!("send_timeout: {other:?}")),
        }
        timed_out.open();
        // Waits for room for the ABORT record, then for this message.
        tx.send(&message(1, 3000))
            .map_err(|e| format!("send: {e}"))?;
        tx.send(&message(2, 10)).map_err(|e| format!("send: {e}"))?;
        Ok(String::new())
    });
    assert!(timed_out.wait(GATE), "the producer did not time out");
    let mut buf = Vec::new();
    let next = |rx: &mut spsc::Consumer, buf: &mut Vec<u8>| {
        let t0 = Instant::now();
        loop {
            match rx.recv_timeout(buf, Duration::from_millis(100)) {
                Err(RecvTimeoutError::Timeout) if t0.elapsed() < GATE => {}
                other => return other,
            }
        }
    };
    assert_eq!(next(&mut rx, &mut buf), Err(RecvTimeoutError::Truncated));
    assert_eq!(next(&mut rx, &mut buf), Ok(3000));
    check_message(&buf, 1, 3000).unwrap();
    assert_eq!(next(&mut rx, &mut buf), Ok(10));
    check_message(&buf, 2, 10).unwrap();
    procs.wait_ok(p);
    assert_eq!(next(&mut rx, &mut buf), Err(RecvTimeoutError::Disconnected));
}

/// A reader dropped partway through a message discards the rest of it; the next
/// receive gets the next message.
#[test]
fn reader_dropped_midway_discards_the_rest() {
    use std::io::Read;
    let test = "sem-reader-drop";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let created = Gate::new();
    let mut procs = Procs::new(test, DEADLINE);
    procs.spawn("producer", || {
        let mut tx = spsc::Producer::create(&name, &opts(4096)).map_err(|e| e.to_string())?;
        created.open();
        for seq in 0..50u64 {
            let len = if seq % 2 == 0 { 20_000 } else { 100 };
            tx.send(&message(seq, len))
                .map_err(|e| format!("send {seq}: {e}"))?;
        }
        Ok(String::new())
    });
    procs.spawn("consumer", || {
        created.expect(GATE, "ring created")?;
        let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        for seq in (0..50u64).step_by(2) {
            {
                let mut r = rx.recv_stream().map_err(|e| format!("recv_stream: {e}"))?;
                assert_eq!(r.len(), 20_000);
                // Read a part (0 to 6,000 bytes), then drop the reader.
                let mut part = vec![0u8; (seq as usize * 250) % 6001];
                r.read_exact(&mut part)
                    .map_err(|e| format!("read {seq}: {e}"))?;
                if part.len() >= 8 {
                    assert_eq!(part[..8], seq.to_le_bytes());
                }
            }
            assert_eq!(rx.recv(&mut buf), Ok(100), "after message {seq}");
            check_message(&buf, seq + 1, 100)?;
        }
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        Ok(String::new())
    });
    procs.wait_all_ok();
}

/// The consumer's process exits midway and a new consumer process takes over: every
/// message is received once, in order, by one of them. The producer sees
/// `Disconnected` while no consumer is attached and resends when one is.
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

// ---------------------------------------------------------------------------------
// Creating and opening
// ---------------------------------------------------------------------------------

/// `create` over an existing name fails with `AlreadyExists` and leaves the segment
/// exactly as it was; the ring is still usable.
#[test]
fn create_over_existing_name_fails_and_changes_nothing() {
    let test = "sem-exists";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let mut tx = spsc::Producer::create(&name, &opts(4096)).unwrap();
    tx.send(&message(0, 300)).unwrap();
    let before = read_segment(&name);
    assert_eq!(before.len(), 4096 + 4096);
    let mut procs = Procs::new(test, DEADLINE);
    let c = procs.spawn("creator", || {
        for cap in [4096, 8192, 1 << 20] {
            for (role, r) in [
                ("producer", spsc::Producer::create(&name, &opts(cap)).err()),
                ("consumer", spsc::Consumer::create(&name, &opts(cap)).err()),
            ] {
                match r {
                    Some(Error::AlreadyExists { name: n }) if n == name => {}
                    other => return Err(format!("{role} create ({cap}): {other:?}")),
                }
            }
        }
        Ok(String::new())
    });
    procs.wait_ok(c);
    let after = read_segment(&name);
    assert_eq!(after.len(), before.len(), "the segment was resized");
    assert!(after == before, "the segment's bytes changed");
    let c = procs.spawn("consumer", || {
        let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
        assert_eq!(rx.capacity(), 4096);
        let mut buf = Vec::new();
        assert_eq!(rx.try_recv(&mut buf), Ok(300));
        check_message(&buf, 0, 300)?;
        Ok(String::new())
    });
    procs.wait_ok(c);
    drop(tx);
}

/// Several processes race `create_or_open` on one name: exactly one creates (the
/// header's creator pid is its pid, and only it sees its own pid there), all map the
/// same object, and a message from each racer reaches the one consumer.
#[test]
fn create_or_open_race_elects_one_creator() {
    const ROUNDS: usize = 8;
    const PRODUCERS: usize = 4;
    for round in 0..ROUNDS {
        let test = format!("sem-race-{round}");
        let name = seg_name(&test);
        let _seg = SegGuard::new(&name);
        let go = Gate::new();
        let mut procs = Procs::new(&test, DEADLINE);
        // Each role reports "pid inode creator_pid_seen".
        let stat = |name: &str| -> Result<String, String> {
            let ino = std::fs::metadata(shm_path(name))
                .map_err(|e| format!("stat: {e}"))?
                .ino();
            let creator = peek_u32(name, offsets::CREATOR_PID);
            Ok(format!("{} {ino} {creator}", std::process::id()))
        };
        let consumer = procs.spawn("consumer", || {
            go.expect(GATE, "go")?;
            let mut rx = spsc::Consumer::create_or_open(&name, &opts(4096))
                .map_err(|e| format!("consumer create_or_open: {e}"))?;
            let me = stat(&name)?;
            let mut buf = Vec::new();
            let mut from = Vec::new();
            let t0 = Instant::now();
            // Producers come one after another; between two, the ring may read as
            // disconnected.
            while from.len() < PRODUCERS {
                match rx.recv_timeout(&mut buf, Duration::from_millis(20)) {
                    Ok(_) => from.push(String::from_utf8(buf.clone()).unwrap()),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => return Err(format!("recv: {e}")),
                }
                if t0.elapsed() > GATE {
                    return Err(format!("only {} messages: {from:?}", from.len()));
                }
            }
            Ok(format!("{me}|{}", from.join(",")))
        });
        let producers: Vec<usize> = (0..PRODUCERS)
            .map(|_| {
                procs.spawn("producer", || {
                    go.expect(GATE, "go")?;
                    let t0 = Instant::now();
                    // Only one producer at a time: retry while another is attached.
                    let mut tx = loop {
                        match spsc::Producer::create_or_open(&name, &opts(4096)) {
                            Ok(tx) => break tx,
                            Err(Error::Busy {
                                endpoint: "producer",
                                ..
                            }) => {
                                if t0.elapsed() > GATE {
                                    return Err("still busy".into());
                                }
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            Err(e) => return Err(format!("producer create_or_open: {e}")),
                        }
                    };
                    assert_eq!(tx.capacity(), 4096);
                    let me = stat(&name)?;
                    tx.send(std::process::id().to_string().as_bytes())
                        .map_err(|e| format!("send: {e}"))?;
                    Ok(me)
                })
            })
            .collect();
        go.open();
        let reports = procs.wait_all_ok();
        let parse = |r: &str| -> (u32, u64, u32) {
            let r = r.split('|').next().unwrap();
            let v: Vec<&str> = r.split(' ').collect();
            (
                v[0].parse().unwrap(),
                v[1].parse().unwrap(),
                v[2].parse().unwrap(),
            )
        };
        let all: Vec<(u32, u64, u32)> = reports.iter().map(|r| parse(r)).collect();
        let creator = peek_u32(&name, offsets::CREATOR_PID);
        let ino = std::fs::metadata(shm_path(&name)).unwrap().ino();
        let pids: Vec<u32> = all.iter().map(|a| a.0).collect();
        assert!(
            pids.contains(&creator),
            "round {round}: creator pid {creator} is none of the racers {pids:?}"
        );
        let claims = all.iter().filter(|a| a.0 == a.2).count();
        assert_eq!(
            claims, 1,
            "round {round}: racers that see themselves as creator: {all:?}"
        );
        for a in &all {
            assert_eq!(
                a.1, ino,
                "round {round}: a racer mapped another object: {all:?}"
            );
            assert_eq!(
                a.2, creator,
                "round {round}: racers disagree on the creator: {all:?}"
            );
        }
        let mut got: Vec<u32> = reports[consumer]
            .split('|')
            .nth(1)
            .unwrap()
            .split(',')
            .map(|p| p.parse().unwrap())
            .collect();
        got.sort_unstable();
        let mut want: Vec<u32> = producers
            .iter()
            .map(|&i| procs.pid(i).as_raw() as u32)
            .collect();
        want.sort_unstable();
        assert_eq!(
            got, want,
            "round {round}: the consumer did not get one message from each producer"
        );
    }
}

/// How an open of a corrupted segment must fail.
#[derive(Clone, Copy, Debug)]
enum Want {
    Corrupt(&'static [&'static str]),
    Incompatible(&'static str),
    NotReady,
    /// Any error (but not success, a panic or a signal).
    AnyError,
}

impl Want {
    fn check(self, e: &Error) -> bool {
        match (self, e) {
            (Want::Corrupt(fields), Error::Corrupt { field, .. }) => fields.contains(field),
            (Want::Incompatible(f), Error::Incompatible { field, .. }) => field.starts_with(f),
            // A segment whose creator is gone (no init lock) is said abandoned at once.
            (Want::NotReady, Error::NotReady { .. } | Error::Abandoned { .. }) => true,
            (Want::AnyError, _) => true,
            _ => false,
        }
    }
}

/// Which endpoints to open.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Open {
    Both,
    Producer,
    Consumer,
}

/// One corruption: bytes written at an offset of a fresh 4 KiB ring (whose producer
/// has detached), and what opening it must give.
struct Case {
    what: &'static str,
    writes: Vec<(u64, Vec<u8>)>,
    open: Open,
    want: Want,
}

fn case(what: &'static str, offset: u64, bytes: &[u8], want: Want) -> Case {
    Case {
        what,
        writes: vec![(offset, bytes.to_vec())],
        open: Open::Both,
        want,
    }
}

/// Runs each case on its own segment, each open in its own child (concurrently).
fn run_cases(test: &str, cases: Vec<Case>) {
    let mut guards = Vec::new();
    let mut procs = Procs::new(test, DEADLINE);
    for (i, c) in cases.iter().enumerate() {
        let name = seg_name(&format!("{test}-{i}"));
        guards.push(SegGuard::new(&name));
        drop(spsc::Producer::create(&name, &opts(4096)).unwrap());
        for (offset, bytes) in &c.writes {
            poke(&name, *offset, bytes);
        }
        let (what, open, want) = (c.what, c.open, c.want);
        procs.spawn(what, move || {
            let mut results = Vec::new();
            if open != Open::Consumer {
                results.push(("Producer::open", spsc::Producer::open(&name).err()));
            }
            if open != Open::Producer {
                results.push(("Consumer::open", spsc::Consumer::open(&name).err()));
            }
            let mut out = String::new();
            for (call, r) in results {
                match r {
                    Some(e) if want.check(&e) => out += &format!("{call}: {e}; "),
                    Some(e) => return Err(format!("{what}: {call} gave {e:?}, expected {want:?}")),
                    None => return Err(format!("{what}: {call} succeeded, expected {want:?}")),
                }
            }
            Ok(out)
        });
    }
    let reports = procs.wait_all_ok();
    for (c, r) in cases.iter().zip(reports) {
        println!("{:>32}: {r}", c.what);
    }
}

/// A segment whose header field was overwritten fails to open with the variant and
/// the field name that name it.
#[test]
fn corrupted_header_fields_are_named() {
    use offsets::*;
    let hash = {
        let name = seg_name("sem-hdr-probe");
        let _g = SegGuard::new(&name);
        drop(spsc::Producer::create(&name, &opts(4096)).unwrap());
        peek_u64(&name, LAYOUT_HASH)
    };
    let u32b = |v: u32| v.to_le_bytes().to_vec();
    let u64b = |v: u64| v.to_le_bytes().to_vec();
    let mut cases = vec![
        case("magic", MAGIC, b"NOTSHMLN", Want::Corrupt(&["magic"])),
        case("magic (zero)", MAGIC, &u64b(0), Want::Corrupt(&["magic"])),
        case(
            "version 99",
            VERSION,
            &u32b(99),
            Want::Incompatible("version"),
        ),
        case(
            "version 0",
            VERSION,
            &u32b(0),
            Want::Incompatible("version"),
        ),
        case(
            "header_size",
            HEADER_SIZE,
            &u32b(8192),
            Want::Incompatible("header_size"),
        ),
        case(
            "layout_hash",
            LAYOUT_HASH,
            &u64b(hash ^ 1),
            Want::Incompatible("layout_hash"),
        ),
        case("abi", ABI, &u32b(4), Want::Incompatible("abi")),
        case("kind mpmc", KIND, &u32b(2), Want::Incompatible("kind")),
        case("kind unknown", KIND, &u32b(99), Want::Corrupt(&["kind"])),
        case(
            "capacity 4097",
            CAPACITY,
            &u64b(4097),
            Want::Corrupt(&["capacity"]),
        ),
        case(
            "capacity 0",
            CAPACITY,
            &u64b(0),
            Want::Corrupt(&["capacity"]),
        ),
        case(
            "capacity 32",
            CAPACITY,
            &u64b(32),
            Want::Corrupt(&["capacity"]),
        ),
        case(
            "capacity 2^41",
            CAPACITY,
            &u64b(1 << 41),
            Want::Corrupt(&["capacity"]),
        ),
        // Another power of two: inconsistent with segment_len (either may be named).
        case(
            "capacity 2048",
            CAPACITY,
            &u64b(2048),
            Want::Corrupt(&["capacity", "segment_len"]),
        ),
        case(
            "capacity 8192",
            CAPACITY,
            &u64b(8192),
            Want::Corrupt(&["capacity", "segment_len"]),
        ),
        case(
            "cell_size",
            CELL_SIZE,
            &u64b(64),
            Want::Corrupt(&["cell_size"]),
        ),
        case(
            "max_record 4096",
            MAX_RECORD,
            &u64b(4096),
            Want::Corrupt(&["max_record"]),
        ),
        case(
            "max_record 0",
            MAX_RECORD,
            &u64b(0),
            Want::Corrupt(&["max_record"]),
        ),
        case(
            "max_record 1024",
            MAX_RECORD,
            &u64b(1024),
            Want::Corrupt(&["max_record"]),
        ),
        case("flags", FLAGS, &u64b(1 << 9), Want::Incompatible("flags")),
        case(
            "flags: notifier kind",
            FLAGS,
            &u64b(7),
            Want::Incompatible("flags"),
        ),
        case(
            "data_offset",
            DATA_OFFSET,
            &u64b(8192),
            Want::Corrupt(&["data_offset"]),
        ),
        case(
            "segment_len",
            SEGMENT_LEN,
            &u64b(1 << 40),
            Want::Corrupt(&["segment_len"]),
        ),
        case("state poisoned", STATE, &u32b(3), Want::NotReady),
        // Waits READY_WAIT (2 s) for a creator that never finishes.
        case("state uninit", STATE, &u32b(0), Want::NotReady),
        case("state garbage", STATE, &u32b(0xdead), Want::AnyError),
    ];
    // A header that claims more than the file holds: consistent capacity and length.
    cases.push(Case {
        what: "capacity past the file end",
        writes: vec![
            (CAPACITY, u64b(1 << 20)),
            (SEGMENT_LEN, u64b(4096 + (1 << 20))),
        ],
        open: Open::Both,
        want: Want::Corrupt(&["capacity"]),
    });
    cases.push(Case {
        what: "capacity and max_record past the file end",
        writes: vec![
            (CAPACITY, u64b(1 << 20)),
            (SEGMENT_LEN, u64b(4096 + (1 << 20))),
            (MAX_RECORD, u64b(1 << 19)),
        ],
        open: Open::Both,
        want: Want::Corrupt(&["capacity"]),
    });
    run_cases("sem-hdr", cases);
}

/// Corrupted cursors, endpoint states and record headers give errors, on open or on
/// the first receive, never a panic or an out-of-bounds access.
#[test]
fn corrupted_cursors_and_records_are_errors() {
    use offsets::*;
    let u32b = |v: u32| v.to_le_bytes().to_vec();
    let u64b = |v: u64| v.to_le_bytes().to_vec();
    let cases = vec![
        case("head misaligned", HEAD, &u64b(3), Want::Corrupt(&["head"])),
        case("tail misaligned", TAIL, &u64b(13), Want::Corrupt(&["tail"])),
        case(
            "tail past head + capacity",
            TAIL,
            &u64b(3 * 4096),
            Want::Corrupt(&["tail"]),
        ),
        Case {
            what: "head past tail",
            writes: vec![(HEAD, u64b(64)), (TAIL, u64b(8))],
            open: Open::Both,
            want: Want::Corrupt(&["tail"]),
        },
        Case {
            what: "producer endpoint state",
            writes: vec![(ENDPOINTS, u32b(77))],
            open: Open::Producer,
            want: Want::Corrupt(&["endpoint state"]),
        },
        Case {
            what: "consumer endpoint state",
            writes: vec![(ENDPOINTS + ENDPOINT_SLOT_SIZE, u32b(77))],
            open: Open::Consumer,
            want: Want::Corrupt(&["endpoint state"]),
        },
        Case {
            what: "record header at tail",
            writes: vec![(DATA, u64b(0xffff_ffff_ffff_ffff))],
            open: Open::Producer,
            want: Want::Corrupt(&["record header at tail"]),
        },
    ];
    run_cases("sem-cur", cases);

    // Record headers the consumer reads: garbage, a length past the ring, a header
    // tagged for another position. The first message is intact; the second is not.
    let test = "sem-rec";
    let mut procs = Procs::new(test, DEADLINE);
    let mut guards = Vec::new();
    let bad_headers: [(&str, u64); 4] = [
        ("garbage", 0x1234_5678_9abc_def0),
        (
            "length past the ring",
            (0x83u64 << 32) | 0xffff_ff00 | ((64 / 8) << 40),
        ),
        ("wrong position tag", (0x83u64 << 32) | 16 | (12345 << 40)),
        ("unknown flag bits", (0xa3u64 << 32) | 16 | ((64 / 8) << 40)),
    ];
    for (i, (what, word)) in bad_headers.into_iter().enumerate() {
        let name = seg_name(&format!("{test}-{i}"));
        guards.push(SegGuard::new(&name));
        let mut tx = spsc::Producer::create(&name, &opts(4096)).unwrap();
        tx.send(&message(0, 56)).unwrap(); // record of 64 bytes at position 0
        tx.send(&message(1, 56)).unwrap(); // at position 64
        drop(tx);
        poke(&name, DATA + 64, &word.to_le_bytes());
        procs.spawn(what, move || {
            let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            assert_eq!(rx.try_recv(&mut buf), Ok(56));
            check_message(&buf, 0, 56)?;
            for _ in 0..2 {
                match rx.try_recv(&mut buf) {
                    Err(TryRecvError::Corrupt(c)) => assert_eq!(c.position, 64, "{c}"),
                    other => return Err(format!("{what}: try_recv gave {other:?}")),
                }
            }
            match rx.recv_timeout(&mut buf, Duration::from_millis(10)) {
                Err(RecvTimeoutError::Corrupt(_)) => {}
                other => return Err(format!("{what}: recv_timeout gave {other:?}")),
            }
            match rx.recv(&mut buf) {
                Err(RecvError::Corrupt(c)) => Ok(format!("{c}")),
                other => Err(format!("{what}: recv gave {other:?}")),
            }
        });
    }
    for r in procs.wait_all_ok() {
        println!("{r}");
    }
}

/// A segment file cut shorter than its header says gives an error on open, not a
/// SIGBUS (the child would die of it and the test report the signal).
#[test]
fn truncated_segment_is_an_error_not_sigbus() {
    let test = "sem-trunc";
    let mut procs = Procs::new(test, DEADLINE);
    let mut guards = Vec::new();
    let lens: [u64; 6] = [4096 + 4096 - 8, 4096 + 100, 4096, 4095, 100, 0];
    for (i, len) in lens.into_iter().enumerate() {
        let name = seg_name(&format!("{test}-{i}"));
        guards.push(SegGuard::new(&name));
        drop(spsc::Producer::create(&name, &opts(4096)).unwrap());
        std::fs::OpenOptions::new()
            .write(true)
            .open(shm_path(&name))
            .unwrap()
            .set_len(len)
            .unwrap();
        procs.spawn(&format!("truncated to {len}"), move || {
            let mut out = String::new();
            for (call, r) in [
                ("Producer::open", spsc::Producer::open(&name).err()),
                ("Consumer::open", spsc::Consumer::open(&name).err()),
                (
                    "Consumer::create_or_open",
                    spsc::Consumer::create_or_open(&name, &opts(4096)).err(),
                ),
            ] {
                match r {
                    Some(Error::Corrupt {
                        field: "capacity", ..
                    }) if len >= 4096 => {}
                    // Empty: maybe a creator between shm_open and ftruncate, so the
                    // open waits; any other size under a header is final.
                    Some(Error::NotReady { .. } | Error::Abandoned { .. }) if len == 0 => {}
                    Some(Error::Corrupt {
                        field: "segment size",
                        ..
                    }) if len < 4096 => {}
                    Some(e) => return Err(format!("{call}: unexpected error {e:?}")),
                    // An empty segment nobody is making (no creator holds its init
                    // lock) is abandoned: create_or_open takes it over.
                    None if len == 0 && call == "Consumer::create_or_open" => {
                        out = "taken over by create_or_open".to_string();
                        continue;
                    }
                    None => return Err(format!("{call} succeeded on a truncated segment")),
                }
                out = format!("{:?}", r.unwrap());
            }
            Ok(out)
        });
    }
    for (len, r) in lens.iter().zip(procs.wait_all_ok()) {
        println!("truncated to {len}: {r}");
    }
}

/// Names that are not `/name` are refused by every call that takes one.
#[test]
fn invalid_names_are_refused() {
    let long = format!("/{}", "a".repeat(256));
    let bad = [
        "", "x", "no-slash", "/", "//", "/a/b", "/a/", "/.", "/..", "/a\0b", &long,
    ];
    for name in bad {
        let o = opts(4096);
        let results = [
            ("validate_name", shmlane::validate_name(name).err()),
            ("Producer::create", spsc::Producer::create(name, &o).err()),
            ("Producer::open", spsc::Producer::open(name).err()),
            (
                "Producer::create_or_open",
                spsc::Producer::create_or_open(name, &o).err(),
            ),
            ("Consumer::create", spsc::Consumer::create(name, &o).err()),
            ("Consumer::open", spsc::Consumer::open(name).err()),
            (
                "Consumer::create_or_open",
                spsc::Consumer::create_or_open(name, &o).err(),
            ),
            ("remove", shmlane::remove(name).err()),
        ];
        for (call, r) in results {
            match r {
                Some(Error::InvalidName { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{call}({name:?}): {other:?}, expected InvalidName"),
            }
        }
    }
    // The longest valid name: 255 bytes after the slash.
    let prefix = format!("/shmlane-test-sem-long-{}-", std::process::id());
    let longest = format!("{prefix}{}", "n".repeat(256 - prefix.len()));
    assert_eq!(longest.len(), 256);
    let _seg = SegGuard::new(&longest);
    shmlane::validate_name(&longest).unwrap();
    let tx = spsc::Producer::create(&longest, &opts(4096))
        .unwrap_or_else(|e| panic!("a 255-byte name: {e}"));
    drop(tx);
    shmlane::remove(&longest).unwrap();
}

/// A second producer (or consumer) attaching while the first is attached gets `Busy`,
/// from any process; once the first detaches, another can attach.
#[test]
fn second_endpoint_of_a_role_is_busy() {
    let test = "sem-busy";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let tx = spsc::Producer::create(&name, &opts(4096)).unwrap();
    let (has_consumer, checked) = (Gate::new(), Gate::new());
    let busy = |r: Result<(), Error>, role: &str| -> Result<(), String> {
        match r {
            Err(Error::Busy { endpoint, name: n }) if endpoint == role && n == name => Ok(()),
            other => Err(format!(
                "expected Busy {{ endpoint: {role:?} }}, got {other:?}"
            )),
        }
    };
    let mut procs = Procs::new(test, DEADLINE);
    let b = procs.spawn("second producer, first consumer", || {
        busy(spsc::Producer::open(&name).map(drop), "producer")?;
        busy(
            spsc::Producer::create_or_open(&name, &opts(4096)).map(drop),
            "producer",
        )?;
        let rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
        busy(spsc::Consumer::open(&name).map(drop), "consumer")?;
        has_consumer.open();
        checked.expect(GATE, "third process checked")?;
        drop(rx);
        Ok(String::new())
    });
    let c = procs.spawn("third process", || {
        has_consumer.expect(GATE, "consumer attached")?;
        busy(spsc::Consumer::open(&name).map(drop), "consumer")?;
        busy(spsc::Producer::open(&name).map(drop), "producer")?;
        checked.open();
        Ok(String::new())
    });
    procs.wait_ok(c);
    procs.wait_ok(b);
    drop(tx);
    // Both roles are free again: a new process takes both, and the ring works.
    let d = procs.spawn("re-attach", || {
        let mut tx = spsc::Producer::open(&name).map_err(|e| e.to_string())?;
        let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
        tx.send(b"again").map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        assert_eq!(rx.try_recv(&mut buf), Ok(5));
        assert_eq!(buf, b"again");
        Ok(String::new())
    });
    procs.wait_ok(d);
}

// ---------------------------------------------------------------------------------
// Peers that die without detaching
// ---------------------------------------------------------------------------------

/// A producer process killed (SIGKILL) while attached: the consumer should get its
/// messages, then `Disconnected`, within a bounded time (DESIGN §6, §8).
#[test]
fn killed_producer_is_detected() {
    let test = "sem-killed-prod";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let sent = Gate::new();
    let mut procs = Procs::new(test, DEADLINE);
    let p = procs.spawn("producer", || {
        let mut tx = spsc::Producer::create(&name, &opts(4096)).map_err(|e| e.to_string())?;
        tx.send(&message(0, 64)).map_err(|e| e.to_string())?;
        sent.open();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    assert!(sent.wait(GATE), "producer did not start");
    assert_eq!(
        procs.kill(p).outcome,
        Outcome::Signaled(nix::sys::signal::SIGKILL)
    );
    let c = procs.spawn("consumer", || {
        let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf), Ok(64));
        match rx.recv_timeout(&mut buf, Duration::from_secs(3)) {
            Err(RecvTimeoutError::Disconnected) => Ok(String::new()),
            other => Err(format!("after the producer was killed: {other:?}")),
        }
    });
    procs.wait_ok(c);
}

/// A consumer process killed (SIGKILL) while attached: the producer should get
/// `Disconnected`, and a new consumer should be able to attach.
#[test]
fn killed_consumer_is_detected() {
    let test = "sem-killed-cons";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let attached = Gate::new();
    let mut tx = spsc::Producer::create(&name, &opts(4096)).unwrap();
    let mut procs = Procs::new(test, DEADLINE);
    let c = procs.spawn("consumer", || {
        let _rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
        attached.open();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    assert!(attached.wait(GATE), "consumer did not start");
    assert_eq!(
        procs.kill(c).outcome,
        Outcome::Signaled(nix::sys::signal::SIGKILL)
    );
    while tx.try_send(&[0; 100]).is_ok() {}
    assert_eq!(
        tx.send_timeout(&[0; 100], Duration::from_secs(3)),
        Err(SendTimeoutError::Disconnected)
    );
    let c = procs.spawn("new consumer", || {
        spsc::Consumer::open(&name)
            .map(drop)
            .map_err(|e| format!("a new consumer after the first was killed: {e:?}"))?;
        Ok(String::new())
    });
    procs.wait_ok(c);
}
