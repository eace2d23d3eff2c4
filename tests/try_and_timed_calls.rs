//! Claim: **non-blocking calls never wait and timed calls return near their deadline**:
//! `try_send` / `try_recv` return `Full` / `Empty` (or `TooLarge`, `Disconnected`) at
//! once; `send_timeout` / `recv_timeout` return `Timeout` after their timeout and not
//! much later, with every wait strategy, even while a peer keeps publishing records
//! that make no progress; and a timeout in the middle of a message has a defined
//! result: a send that times out partway abandons the message (the consumer gets
//! `Truncated`, then the next one), a receive that times out partway keeps what it has.
//!
//! - top level: timed receives while the producer process streams strays (the rest of
//!   a message whose reader was dropped, which every receive skips): the producer
//!   process streams one endless message; the consumer process reads its first bytes,
//!   drops the reader, and from then on every record is a stray. Each timed receive
//!   must return `Timeout` while the strays keep coming;
//! - [`between_processes`]: empty and full rings, every wait strategy, and a send that
//!   times out partway;
//! - [`partial_messages`]: receives that time out in the middle of a message;
//! - [`spsc_threads`], [`mpmc_threads`]: the same calls over the heap backing, small
//!   enough for Miri.

// The tests that fork are ignored under Miri (no fork); those over the heap backing run
// there (`scripts/check-nightly.sh`).

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{seg_name, Gate, Procs, SegGuard};
use shmlane::{spsc, RecvTimeoutError, RingOptions};

const DEADLINE: Duration = Duration::from_secs(40);
const GATE: Duration = Duration::from_secs(20);
/// How long the producer streams: far longer than any timed call may take.
const STREAM_FOR: Duration = Duration::from_secs(25);
const TIMEOUT: Duration = Duration::from_millis(50);
/// A bound no timed call of `TIMEOUT` comes near unless it ignores its deadline (it
/// then runs until the producer stops, `STREAM_FOR`).
const RETURNED_WITHIN: Duration = Duration::from_secs(10);

#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn timed_receives_return_while_a_peer_streams_strays() {
    let test = "deadline-strays";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let created = Gate::new();
    let mut procs = Procs::new(test, DEADLINE);
    let producer = procs.spawn("producer", || {
        let mut tx =
            spsc::Producer::create(&name, &RingOptions::new(4096)).map_err(|e| e.to_string())?;
        created.open();
        let mut w = tx.stream(u64::MAX / 2).map_err(|e| e.to_string())?;
        let chunk = [0x5au8; 256];
        let t0 = Instant::now();
        while t0.elapsed() < STREAM_FOR {
            // Fails once the consumer has left (the test is over).
            if w.write_all(&chunk).is_err() {
                break;
            }
        }
        Ok(String::new())
    });
    let consumer = procs.spawn("consumer", || {
        created.expect(GATE, "ring created")?;
        let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
        {
            let mut r = rx.recv_stream().map_err(|e| format!("recv_stream: {e}"))?;
            let mut first = [0u8; 16];
            r.read_exact(&mut first).map_err(|e| e.to_string())?;
        }
        // Every record from here on is a stray.
        let mut buf = Vec::new();
        for round in 0..3 {
            let t0 = Instant::now();
            let got = rx.recv_timeout(&mut buf, TIMEOUT);
            let took = t0.elapsed();
            if got != Err(RecvTimeoutError::Timeout) || took > RETURNED_WITHIN {
                return Err(format!("recv_timeout {round}: {got:?} after {took:?}"));
            }
            let t0 = Instant::now();
            let got = rx.recv_ref_timeout(TIMEOUT).map(|g| g.len());
            let took = t0.elapsed();
            if got != Err(RecvTimeoutError::Timeout) || took > RETURNED_WITHIN {
                return Err(format!("recv_ref_timeout {round}: {got:?} after {took:?}"));
            }
            let t0 = Instant::now();
            let got = rx.recv_stream_timeout(TIMEOUT).map(|r| r.len());
            let took = t0.elapsed();
            if got != Err(RecvTimeoutError::Timeout) || took > RETURNED_WITHIN {
                return Err(format!(
                    "recv_stream_timeout {round}: {got:?} after {took:?}"
                ));
            }
        }
        Ok(String::new())
    });
    procs.wait_ok(consumer);
    procs.kill(producer);
}

mod between_processes {
    //! Non-blocking and timed calls between real processes, with every wait strategy. Every
    //! call that may block runs in a forked child; the parent supervises with a deadline.

    use crate::common::{check_message, message, seg_name, Gate, Procs, SegGuard};
    use shmlane::{
        spsc, RecvTimeoutError, RingOptions, SendTimeoutError, TryRecvError, TrySendError, Wait,
    };
    use std::time::{Duration, Instant};

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

    /// On an empty ring whose producer (the parent) is alive: `Empty` from the try calls,
    /// `Timeout` from the timed ones, after the timeout, with every wait strategy.
    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
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
    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
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

    /// A message in fragments whose `send_timeout` expires partway is abandoned: the
    /// consumer process gets `Truncated` for it, then the next message intact.
    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
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
}

mod partial_messages {
    //! A receive that times out in the middle of a message keeps what it has, between two
    //! forked processes.

    use crate::common::{
        check_message, fill_message, message_len, seg_name, Gate, Procs, Rng, SegGuard,
    };
    use shmlane::{spsc, RecvError, RecvTimeoutError, RingOptions, TryRecvError};
    use shmlane_support::mem::SharedMap;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    const DEADLINE: Duration = Duration::from_secs(90);

    /// Receives that time out in the middle of a message keep what they have: the consumer
    /// calls `recv_timeout` with timeouts of a few microseconds while the producer streams
    /// messages in pieces with pauses, and goes on with `recv_timeout`, `try_recv`,
    /// `try_recv_ref` (which must say `Fragmented` while a message is half received) or
    /// `recv_stream` (which must return the part already received first).
    ///
    /// A timeout counts as mid-message when the producer had published the first
    /// fragment of the message before the call (it says so in memory the two processes
    /// share): the call took that fragment, so it timed out holding part of the message.
    /// At least one must happen, and after each the consumer still holds the message:
    /// `try_recv_ref` says `Fragmented` (never `Empty`), and the message arrives whole.
    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
    #[test]
    fn timeouts_mid_message_keep_the_partial_message() {
        const N: u64 = 20_000;
        const CAP: usize = 4096;
        // The largest payload of one record: longer messages travel in fragments.
        const MAX_WHOLE: usize = CAP / 2 - 8;
        let test = "rt-partial";
        let seed = 0x9a27;
        let name = seg_name(test);
        let _seg = SegGuard::new(&name);
        let shared = SharedMap::new(8).unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: the mapping is page aligned, at least 8 bytes long and zero-filled (a
        // valid AtomicU64), lives until the end of the test (after both children have
        // been waited for), and is only ever accessed through this atomic.
        let begun = unsafe { AtomicU64::from_ptr(shared.ptr().cast::<u64>()) };
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
                    if len > MAX_WHOLE && at < MAX_WHOLE && at + k >= MAX_WHOLE {
                        // The first fragment holds less than a record's payload: it
                        // has been published (message `seq` has begun).
                        begun.store(seq + 1, Ordering::Release);
                    }
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
                                        // Timeouts mid-message, and `try_recv_ref` calls after one.
            let (mut mid, mut refused_after_mid) = (0u64, 0u64);
            for seq in 0..N {
                let len = message_len(&mut sizes, CAP);
                let err = |e: &dyn std::fmt::Debug| format!("message {seq} ({len} bytes): {e:?}");
                // Whether a receive has timed out holding part of this message.
                let mut holding = false;
                loop {
                    let timeout = Duration::from_micros(choice.below(30));
                    // Acquire: pairs with the producer's Release store after its write.
                    let had_begun = len > MAX_WHOLE && begun.load(Ordering::Acquire) > seq;
                    match rx.recv_timeout(&mut buf, timeout) {
                        Ok(n) => {
                            if n != buf.len() {
                                return Err(err(&format!("recv_timeout returned {n}")));
                            }
                            check_message(&buf, seq, len)?;
                            break;
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            counts[0] += 1;
                            if had_begun {
                                mid += 1;
                                holding = true;
                            }
                        }
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
                            let got = rx.try_recv_ref();
                            if holding {
                                // The part kept is the consumer's: the message is not
                                // one slice, whatever the ring holds now.
                                if got.as_ref().err()
                                    != Some(&TryRecvError::Fragmented { len: len as u64 })
                                {
                                    return Err(err(&format!(
                                        "after a timeout mid-message, try_recv_ref gave {:?}",
                                        got.map(|g| g.len())
                                    )));
                                }
                                refused_after_mid += 1;
                            }
                            let done = match got {
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
            let report = format!(
                "{N} messages; {} timeouts, {mid} of them mid-message (then try_recv_ref \
                 {refused_after_mid} times); finished by try_recv {}, try_recv_ref {}, \
                 recv_stream {}; Fragmented {} times",
                counts[0], counts[1], counts[2], counts[3], counts[4]
            );
            // What the test is about must have happened: receives timed out holding part
            // of a message, and the part kept was seen held (each message then arrived
            // whole: checked above).
            if mid == 0 || refused_after_mid == 0 || counts[4] == 0 {
                return Err(format!("no timeout mid-message was tested: {report}"));
            }
            Ok(report)
        });
        let reports = procs.wait_all_ok();
        println!("{test}: consumer: {}", reports[1]);
    }
}

mod spsc_threads {
    //! The SPSC calls over the private heap backing, two threads: small enough for Miri.

    use shmlane::{spsc, RecvError, RingOptions, TryRecvError, TrySendError, Wait};
    use std::thread;
    use std::time::Duration;

    /// Options for a ring of `capacity` bytes. Under Miri: symmetric fences (Miri has no
    /// `membarrier` system call); endpoints park on the futex as they do outside Miri.
    fn opts(capacity: usize) -> RingOptions {
        RingOptions::new(capacity).asymmetric_fences(!cfg!(miri))
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
    fn try_semantics_and_disconnect() {
        let (mut tx, mut rx) = spsc::channel(&opts(256)).unwrap();
        let mut buf = Vec::new();
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
        // 256-byte ring: records of 8 + 56 = 64 bytes; the +8 guard word means 3 fit.
        let mut sent = 0;
        loop {
            match tx.try_send(&[sent as u8; 56]) {
                Ok(()) => sent += 1,
                Err(TrySendError::Full) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(sent, 3);
        assert!(matches!(
            tx.try_send(&[0; 1000]),
            Err(TrySendError::TooLarge { .. })
        ));
        for i in 0..sent {
            assert_eq!(rx.try_recv(&mut buf), Ok(56));
            assert_eq!(buf, [i as u8; 56]);
        }
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
        tx.send(b"last").unwrap();
        drop(tx);
        assert_eq!(rx.try_recv(&mut buf), Ok(4));
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
    }

    #[test]
    fn timeouts() {
        let (mut tx, mut rx) = spsc::channel(&opts(128)).unwrap();
        let mut buf = Vec::new();
        for wait in [Wait::Spin, Wait::Yield, Wait::Park, Wait::Adaptive] {
            rx.set_wait(wait);
            tx.set_wait(wait);
            assert_eq!(
                rx.recv_timeout(&mut buf, Duration::from_millis(5)),
                Err(shmlane::RecvTimeoutError::Timeout)
            );
            while tx.try_send(&[1; 40]).is_ok() {}
            assert_eq!(
                tx.send_timeout(&[1; 40], Duration::from_millis(5)),
                Err(shmlane::SendTimeoutError::Timeout)
            );
            while rx.try_recv(&mut buf).is_ok() {}
        }
    }

    #[test]
    fn send_timeout_mid_message_abandons_it() {
        let (mut tx, mut rx) = spsc::channel(&opts(1024)).unwrap();
        // 5000 bytes cannot fit in a 1 KiB ring: the consumer is not reading, so the
        // deadline passes after the first fragments.
        assert_eq!(
            tx.send_timeout(&message(1, 5000), Duration::from_millis(20)),
            Err(shmlane::SendTimeoutError::Timeout)
        );
        let mut buf = Vec::new();
        // The partial message is reported as truncated (the ABORT or the next BEGIN
        // closes it), then the next message arrives whole.
        let t = thread::spawn(move || {
            tx.send(&message(2, 3000)).unwrap();
            tx
        });
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Truncated));
        assert_eq!(rx.recv(&mut buf).unwrap(), 3000);
        assert_eq!(buf, message(2, 3000));
        drop(t.join().unwrap());
    }

    /// `recv_timeout` that finds the first fragment of a message and times out before
    /// the rest keeps the fragment: it has taken it out of the ring (the producer gets
    /// the room back), still holds it (`try_recv_ref` says `Fragmented`), and the next
    /// receive returns the whole message.
    #[test]
    fn recv_timeout_keeps_a_partial_message() {
        use std::sync::mpsc::channel;
        // How long a step of the other thread may take (Miri is slow; a loaded host too).
        const STEP: Duration = Duration::from_secs(if cfg!(miri) { 120 } else { 10 });
        let (mut tx, mut rx) = spsc::channel(&opts(1024)).unwrap();
        let (published_tx, published) = channel::<()>();
        let (taken_tx, taken) = channel::<()>();
        let (go_tx, go_rx) = channel::<()>();
        let t = thread::spawn(move || {
            use std::io::Write as _;
            let msg = message(5, 2000);
            let mut w = tx.stream(2000).unwrap();
            // In a 1 KiB ring a fragment is one 512-byte record, 496 bytes of content
            // after the message's length: these fill the first, which is published.
            w.write_all(&msg[..496]).unwrap();
            published_tx.send(()).unwrap();
            // The second fragment's record does not fit beside the first (512 + 512
            // bytes and the 8-byte word after them): this write returns only once the
            // consumer has taken the first out of the ring.
            w.write_all(&msg[496..600]).unwrap();
            taken_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            w.write_all(&msg[600..]).unwrap();
            w.finish().unwrap();
            tx
        });
        published
            .recv_timeout(STEP)
            .expect("the first fragment was not published");
        let mut buf = Vec::new();
        // The first fragment is in the ring, the rest is not: not a whole message yet.
        assert_eq!(
            rx.recv_timeout(&mut buf, Duration::from_millis(20)),
            Err(shmlane::RecvTimeoutError::Timeout)
        );
        // The timed-out receive took the fragment out of the ring...
        assert_eq!(
            taken.recv_timeout(STEP),
            Ok(()),
            "recv_timeout timed out without taking the published fragment from the ring"
        );
        // ...and kept it: the consumer holds a message in fragments, which `recv_ref`
        // refuses without touching the ring (its next fragment is not out yet).
        assert_eq!(
            rx.try_recv_ref().map(|g| g.len()),
            Err(TryRecvError::Fragmented { len: 2000 })
        );
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
        go_tx.send(()).unwrap();
        assert_eq!(rx.recv(&mut buf), Ok(2000));
        assert_eq!(buf, message(5, 2000));
        drop(t.join().unwrap());
    }
}

mod mpmc_threads {
    //! The MPMC calls over the heap backing, with threads: small enough for Miri.

    use shmlane::{mpmc, RecvError, RingOptions, TryRecvError, TrySendError};
    use std::thread;
    use std::time::Duration;

    /// Options for a ring of `capacity` bytes (symmetric fences under Miri, which has no
    /// `membarrier`).
    fn opts(capacity: usize) -> RingOptions {
        RingOptions::new(capacity).asymmetric_fences(!cfg!(miri))
    }

    #[test]
    fn try_semantics_grants_and_disconnect() {
        // 8 cells of 32 bytes; a record of up to 128 bytes.
        let (mut tx, mut rx) = mpmc::channel(&opts(256).cell_size(32)).unwrap();
        let mut buf = Vec::new();
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
        assert_eq!(tx.max_record_payload(), 128);
        let mut sent = 0u8;
        loop {
            match tx.try_send(&[sent; 40]) {
                Ok(()) => sent += 1,
                Err(TrySendError::Full) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(sent, 4, "2 cells each, 8 cells");
        assert!(matches!(
            tx.try_send(&[0; 1000]),
            Err(TrySendError::TooLarge { .. })
        ));
        for i in 0..sent {
            assert_eq!(rx.try_recv(&mut buf), Ok(40));
            assert_eq!(buf, [i; 40]);
        }
        // A grant committed short, one dropped, one committed whole.
        let mut g = tx.reserve(100).unwrap();
        g[..3].copy_from_slice(b"abc");
        g.commit_len(3).unwrap();
        let g = tx.reserve(50).unwrap();
        drop(g);
        let mut g = tx.reserve(5).unwrap();
        g.copy_from_slice(b"whole");
        g.commit();
        assert_eq!(&*rx.recv_ref().unwrap(), b"abc");
        assert_eq!(&*rx.recv_ref().unwrap(), b"whole");
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
        tx.send_pod(&0x1234_5678u32).unwrap();
        assert_eq!(rx.recv_pod::<u32>().unwrap(), 0x1234_5678);
        tx.send(b"last").unwrap();
        drop(tx);
        assert_eq!(rx.try_recv(&mut buf), Ok(4));
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
    }

    #[test]
    fn timeouts_and_fragmented_recv_ref() {
        let (mut tx, mut rx) = mpmc::channel(&opts(1024)).unwrap();
        let mut buf = Vec::new();
        assert_eq!(
            rx.recv_timeout(&mut buf, Duration::from_millis(5)),
            Err(shmlane::RecvTimeoutError::Timeout)
        );
        while tx.try_send(&[1; 100]).is_ok() {}
        assert_eq!(
            tx.send_timeout(&[2; 100], Duration::from_millis(5)),
            Err(shmlane::SendTimeoutError::Timeout)
        );
        while rx.try_recv(&mut buf).is_ok() {}
        let t = thread::spawn(move || {
            tx.send(&vec![3u8; 3000]).unwrap();
            tx
        });
        // recv_ref of a message in fragments points to recv; the message stays ours.
        match rx.recv_ref() {
            Err(RecvError::Fragmented { len }) => assert_eq!(len, 3000),
            other => panic!("{other:?}"),
        }
        assert_eq!(rx.recv(&mut buf).unwrap(), 3000);
        assert_eq!(buf, vec![3u8; 3000]);
        drop(t.join().unwrap());
    }
}
