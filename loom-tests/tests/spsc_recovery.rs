#![cfg(loom)]
//! SPSC recovery under loom: a producer or a consumer killed at a point of its work,
//! its slot recovered by a survivor, and a new endpoint attached in its place.
//!
//! # How an endpoint dies here
//!
//! `loom_internals::spsc_die_*` ends an endpoint as a killed process: none of its
//! `Drop` code runs (no ABORT record for a message it left open, no `head` published,
//! its read-to note left, no detach, no wake-up), and its slot stays attached. A grant
//! or a stream writer it held is forgotten first (a killed process runs no destructor).
//! Under loom nobody is ever proven dead, so the model hands the ring to a survivor
//! after the dead thread's join (as the kernel's lock, taken by the recoverer after the
//! process died, orders it), and `SpscRing::recover_*` runs what `liveness.rs` runs once
//! the death is proven: the take-over of the slot, the SPSC `recover` (a dead
//! consumer's read-to note becomes `head`), the detach. Then a new endpoint attaches to
//! the slot.
//!
//! The live peer runs all along, and meets the dead endpoint, its recovery and its
//! successor in every order loom explores: while the slot is detached it is told
//! `Disconnected`, and tries again until the successor comes (a peer that waits for the
//! next endpoint).
//!
//! Every message carries its length and a checksum (see [`message`]): a message cut
//! short, torn or delivered twice fails the model; so does one lost that the dead
//! endpoint did not hold.

use std::io::Write;

use loom::thread;
use shmlane::loom_internals::{spsc_die_consumer, spsc_die_producer};
use shmlane::{spsc, RecvError, RingOptions, SendError, TryRecvError, Wait};

/// Message `seq`, `4 <= len < 256` bytes: a mark, seq, its length, derived bytes, and
/// last a checksum of the bytes before it.
fn message(seq: u8, len: usize) -> Vec<u8> {
    assert!((4..256).contains(&len), "a model message of {len} bytes");
    let mut m: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(5).wrapping_add(seq.wrapping_mul(77)))
        .collect();
    m[0] = 0xa5;
    m[1] = seq;
    m[2] = len as u8;
    m[len - 1] = checksum(&m[..len - 1]);
    m
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0x5a, |a: u8, &b| a.rotate_left(3) ^ b)
}

/// Checks a received message against what it carries; returns its seq.
fn check(buf: &[u8]) -> u8 {
    assert!(buf.len() >= 4, "a message of {} bytes: {buf:?}", buf.len());
    let (seq, len) = (buf[1], buf[2] as usize);
    assert_eq!(
        buf.len(),
        len,
        "message {seq} of {len} bytes arrived with {}",
        buf.len()
    );
    assert_eq!(buf[len - 1], checksum(&buf[..len - 1]), "checksum of {seq}");
    assert_eq!(buf, message(seq, len), "content of {seq}");
    seq
}

/// A 64-byte ring (largest record 32 bytes), both ends polling: a survivor must not
/// sleep on a peer that died, since nobody would wake it (a real one wakes every
/// park slice to look; loom's parks have no slice).
fn ring() -> (spsc::Producer, spsc::Consumer) {
    let (mut tx, mut rx) = spsc::channel(&RingOptions::new(64)).unwrap();
    tx.set_wait(Wait::Spin);
    rx.set_wait(Wait::Spin);
    (tx, rx)
}

fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut b = loom::model::Builder::new();
    b.max_branches = 100_000;
    b.check(f);
}

// ---------------------------------------------------------------------------------
// A consumer dies
// ---------------------------------------------------------------------------------

/// Sends `m`, trying again while the consumer's slot is detached (its successor is
/// coming).
fn send_to_whoever_comes(tx: &mut spsc::Producer, m: &[u8]) {
    loop {
        match tx.send(m) {
            Ok(()) => return,
            Err(SendError::Disconnected) => thread::yield_now(),
            Err(e) => panic!("sending {}: {e:?}", m[1]),
        }
    }
}

/// The producer sends messages 0, 1, 2 (8 bytes each: 16-byte records, all fit at
/// once). Consumer A runs `k` steps, then dies:
/// 0. nothing;
/// 1. `recv` message 0;
/// 2. `recv` message 0, then `recv_ref` message 1, and dies holding it (the grant
///    forgotten: never released);
/// 3. `recv` message 0, `recv_ref` message 1 and drops the grant (released).
///
/// The main thread then recovers A's slot and attaches consumer B, which receives
/// until the last message (or `Disconnected`), and then finds nothing more. At most once: B never gets what A was handed (message 1 in
/// step 2 is lost with A, as a message a killed process held); and nothing else is
/// lost: B gets every message after the last one A was handed, whole, in order.
fn consumer_dies_after(k: u32) {
    model(move || {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || {
            for seq in 0..3 {
                send_to_whoever_comes(&mut tx, &message(seq, 8));
            }
        });
        let a = thread::spawn(move || {
            let mut handed = Vec::new();
            let mut buf = Vec::new();
            if k >= 1 {
                rx.recv(&mut buf).unwrap();
                handed.push(check(&buf));
            }
            if k >= 2 {
                let grant = rx.recv_ref().unwrap();
                handed.push(check(&grant[..]));
                if k == 2 {
                    std::mem::forget(grant); // dies holding it
                }
            }
            (handed, spsc_die_consumer(rx))
        });
        let (handed, ring) = a.join().unwrap();
        assert!(
            ring.recover_consumer(),
            "consumer A's slot was not recovered"
        );
        let mut b = ring.attach_consumer(Wait::Spin).unwrap();
        let mut got = Vec::new();
        let mut buf = Vec::new();
        // Until the last message: a producer that left before B attached is not B's,
        // so B would wait for the next rather than hear `Disconnected`.
        while got.last() != Some(&2) {
            match b.recv(&mut buf) {
                Ok(_) => got.push(check(&buf)),
                Err(RecvError::Disconnected) => break,
                Err(e) => panic!("consumer B after {got:?}: {e:?}"),
            }
        }
        producer.join().unwrap();
        // Nothing after the last message.
        assert!(
            matches!(
                b.try_recv(&mut buf),
                Err(TryRecvError::Empty | TryRecvError::Disconnected)
            ),
            "consumer B got more after {got:?}"
        );
        let after = handed.last().map_or(0, |&s| s + 1);
        assert_eq!(
            got,
            (after..3).collect::<Vec<u8>>(),
            "consumer A died after step {k}, handed {handed:?}"
        );
    });
}

#[test]
fn consumer_dies_before_receiving() {
    consumer_dies_after(0);
}

#[test]
fn consumer_dies_after_a_message() {
    consumer_dies_after(1);
}

#[test]
fn consumer_dies_holding_a_message() {
    consumer_dies_after(2);
}

#[test]
fn consumer_dies_after_releasing_a_message() {
    consumer_dies_after(3);
}

// ---------------------------------------------------------------------------------
// A producer dies
// ---------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Seen {
    Message(u8),
    Truncated,
}

/// Producer A runs `k` steps, then dies:
/// 0. nothing;
/// 1. `send` message 0 (8 bytes);
/// 2. message 0, then `reserve(16)` filled and never committed (the grant forgotten);
/// 3. message 0, then `stream(60)` with 16 bytes written: its BEGIN fragment is
///    published, the message left open (no ABORT: a killed process writes none).
///
/// The consumer receives all along, told `Disconnected` while the producer's slot is
/// detached, until it has message 9. The main thread recovers A's slot, attaches
/// producer B, which walks over what A published, sends message 9 and leaves. The
/// consumer sees what A published, whole, a message A left open as `Truncated`
/// exactly once, then message 9.
fn producer_dies_after(k: u32) {
    model(move || {
        let (mut tx, mut rx) = ring();
        let consumer = thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = Vec::new();
            while seen.last() != Some(&Seen::Message(9)) {
                match rx.try_recv(&mut buf) {
                    Ok(_) => seen.push(Seen::Message(check(&buf))),
                    Err(TryRecvError::Truncated) => seen.push(Seen::Truncated),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => thread::yield_now(),
                    Err(e) => panic!("after {seen:?}: {e:?}"),
                }
            }
            seen
        });
        let a = thread::spawn(move || {
            if k >= 1 {
                tx.send(&message(0, 8)).unwrap();
            }
            if k == 2 {
                let mut grant = tx.reserve(16).unwrap();
                grant.fill(0xee);
                std::mem::forget(grant);
            }
            if k == 3 {
                let mut w = tx.stream(60).unwrap();
                w.write_all(&message(1, 60)[..16]).unwrap();
                std::mem::forget(w); // dies with the message open
            }
            spsc_die_producer(tx)
        });
        let ring = a.join().unwrap();
        assert!(
            ring.recover_producer(),
            "producer A's slot was not recovered"
        );
        let mut b = ring.attach_producer(Wait::Spin).unwrap();
        b.send(&message(9, 8)).unwrap();
        drop(b);
        let seen = consumer.join().unwrap();
        let mut want = Vec::new();
        if k >= 1 {
            want.push(Seen::Message(0));
        }
        if k == 3 {
            want.push(Seen::Truncated);
        }
        want.push(Seen::Message(9));
        assert_eq!(seen, want, "producer A died after step {k}");
    });
}

#[test]
fn producer_dies_before_sending() {
    producer_dies_after(0);
}

#[test]
fn producer_dies_after_a_message() {
    producer_dies_after(1);
}

#[test]
fn producer_dies_holding_a_grant() {
    producer_dies_after(2);
}

#[test]
fn producer_dies_mid_message() {
    producer_dies_after(3);
}
