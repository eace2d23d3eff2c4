#![cfg(loom)]
//! A producer that stops after each step of a script: whatever it leaves behind, the
//! consumer receives every message it completed, whole and in order, learns of a
//! message it abandoned partway as `Truncated` (exactly once), and then gets
//! `Disconnected`. It never sees a torn message, never waits for ever, and never reads
//! a payload byte that is not ordered after its write (loom's per-word tracking).
//!
//! # The script, in a 64-byte ring (largest record 32 bytes)
//!
//! | step | what the producer does                               | ring afterwards               |
//! |------|------------------------------------------------------|-------------------------------|
//! | 1    | `send` a 16-byte message                             | whole record at 0..24         |
//! | 2    | `reserve(24)`, fill it, drop the grant uncommitted   | nothing published             |
//! | 3    | `stream(60)`, write 10 bytes (less than the first    | nothing published             |
//! |      | fragment holds), drop the writer                     |                               |
//! | 4    | `stream(60)`, write 16 bytes (the BEGIN fragment is  | BEGIN at 24..56, and an ABORT |
//! |      | full and published), drop the writer                 | at 56..64 if there is room    |
//! | 5    | `send` an 8-byte message                             | (ABORT,) whole record at 64.. |
//!
//! Steps 2 and 3 claim space at 24 and give it back: steps 4 and 5 reuse it. In step 4
//! the writer's drop publishes the 8-byte ABORT record only if it fits now (its claim
//! needs `56 + 16 - head <= 64`, i.e. the consumer has released the first message);
//! otherwise the producer closes the message before its next one (step 5, which waits
//! for room) or, if it stops here, leaves with the message open. Both branches are
//! explored, and both must end in `Truncated`.

use std::io::Read;

use loom::thread;
use shmlane::{spsc, RecvError, RingOptions, Wait};

/// Message `seq` of `len` bytes; bytes differ within and across messages.
fn message(seq: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(5).wrapping_add(seq.wrapping_mul(77)))
        .collect()
}

const FIRST: u8 = 1;
const ABANDONED: u8 = 2;
const LAST: u8 = 3;

/// Runs steps `1..=stop` of the script, then drops the producer.
fn producer_script(mut tx: spsc::Producer, stop: usize) {
    use std::io::Write;
    let step = |n: usize| n <= stop;
    if step(1) {
        tx.send(&message(FIRST, 16)).unwrap();
    }
    if step(2) {
        let mut grant = tx.reserve(24).unwrap();
        grant.fill(0xee);
        // Goes out of scope uncommitted (a grant has no drop code: it publishes nothing).
    }
    if step(3) {
        let mut writer = tx.stream(60).unwrap();
        writer.write_all(&message(ABANDONED, 10)).unwrap();
        drop(writer);
    }
    if step(4) {
        let mut writer = tx.stream(60).unwrap();
        writer.write_all(&message(ABANDONED, 16)).unwrap();
        drop(writer);
    }
    if step(5) {
        tx.send(&message(LAST, 8)).unwrap();
    }
}

/// What the consumer may see of a script stopped after `stop` steps.
#[derive(Debug, PartialEq)]
enum Seen {
    Message(Vec<u8>),
    Truncated,
}

fn expected(stop: usize) -> Vec<Seen> {
    let mut e = Vec::new();
    if stop >= 1 {
        e.push(Seen::Message(message(FIRST, 16)));
    }
    if stop >= 4 {
        e.push(Seen::Truncated);
    }
    if stop >= 5 {
        e.push(Seen::Message(message(LAST, 8)));
    }
    e
}

fn ring() -> (spsc::Producer, spsc::Consumer) {
    let (mut tx, mut rx) = spsc::channel(&RingOptions::new(64)).unwrap();
    tx.set_wait(Wait::Spin);
    rx.set_wait(Wait::Spin);
    (tx, rx)
}

/// The consumer receives with `recv` until `Disconnected`.
fn model_recv(stop: usize) {
    loom::model(move || {
        let (tx, mut rx) = ring();
        let producer = thread::spawn(move || producer_script(tx, stop));
        let mut seen = Vec::new();
        let mut buf = Vec::new();
        loop {
            match rx.recv(&mut buf) {
                Ok(n) => {
                    assert_eq!(n, buf.len());
                    seen.push(Seen::Message(buf.clone()));
                }
                Err(RecvError::Truncated) => seen.push(Seen::Truncated),
                Err(RecvError::Disconnected) => break,
                Err(e) => panic!("after {seen:?}: {e:?}"),
            }
        }
        assert_eq!(seen, expected(stop));
        producer.join().unwrap();
    });
}

#[test]
fn stops_before_anything() {
    model_recv(0);
}

#[test]
fn stops_after_one_message() {
    model_recv(1);
}

#[test]
fn stops_after_dropping_a_grant() {
    model_recv(2);
}

#[test]
fn stops_after_dropping_an_unpublished_fragment() {
    model_recv(3);
}

#[test]
fn stops_after_dropping_a_writer_after_one_fragment() {
    model_recv(4);
}

#[test]
fn goes_on_after_an_abandoned_message() {
    model_recv(5);
}

/// The abandoned message read through `recv_stream`: the reader returns the first
/// fragment's 16 bytes, intact, then fails with `UnexpectedEof`; the next receive gets
/// the message after it.
#[test]
fn abandoned_message_through_recv_stream() {
    loom::model(|| {
        let (tx, mut rx) = ring();
        let producer = thread::spawn(move || producer_script(tx, 5));
        assert_eq!(&*rx.recv_ref().unwrap(), &message(FIRST, 16)[..]);
        let mut reader = rx.recv_stream().unwrap();
        assert_eq!(reader.len(), 60);
        let mut got = Vec::new();
        let mut chunk = [0u8; 24];
        let err = loop {
            match reader.read(&mut chunk) {
                Ok(0) => panic!("an abandoned message read to its end"),
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) => break e,
            }
        };
        drop(reader);
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(got, message(ABANDONED, 16));
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf).unwrap(), 8);
        assert_eq!(buf, message(LAST, 8));
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        producer.join().unwrap();
    });
}
