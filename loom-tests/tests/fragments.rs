#![cfg(loom)]
//! Messages larger than one record under loom: split into fragments by `send` (or a
//! `stream` writer), reassembled by `recv` or read through `recv_stream` (`io::Read`).
//!
//! # Fragments in a 64-byte ring
//!
//! The largest record is 32 bytes (capacity / 2) and, below 4096 bytes of capacity,
//! a fragment record is that large. The first fragment (BEGIN) carries an 8-byte total
//! length after its header, so it holds 32 - 8 - 8 = 16 content bytes; the others hold
//! up to 24 (the last, END, what is left). The producer claims `padding + record + 8`
//! bytes (the word after the record is zeroed when it publishes).
//!
//! A 16-byte whole message, then a 60-byte one (16 + 24 + 20):
//!
//! | record     | content | size | position        | claim needs                |
//! |------------|---------|------|-----------------|----------------------------|
//! | whole      | 16      | 24   | 0..24           | 0 + 32 - head <= 64        |
//! | 1 BEGIN    | 16      | 32   | 24..56          | 24 + 40 - head <= 64       |
//! | PAD        | -       | 8    | 56..64          |                            |
//! | 2          | 24      | 32   | 64..96 (0..32)  | 56 + 8 + 40 - head <= 64   |
//! | 3 END      | 20      | 32   | 96..128 (32..64)| 96 + 40 - head <= 64       |
//!
//! Fragment 2 does not fit before the end (56 + 32 > 64): a PAD record sits in the
//! middle of the fragmented message. `head` moves by whole records, so fragment 2
//! waits until the consumer has released everything before the PAD (`head == 56`) and
//! fragment 3 until it has released fragment 2 (`head == 96`): the endpoints take
//! turns, and the ring's words are rewritten a lap after the consumer read them, which
//! loom's per-word tracking checks against the consumer's reads. In particular, the
//! word the producer zeroes after fragment 2 (position 96, index 32) is fragment 1's
//! first payload word (its total-length prefix), read just before the consumer stored
//! the `head = 56` that let fragment 2 in: only the Release on that store orders the
//! read before the zeroing (see the note in `spsc.rs`), and loom reports a Relaxed one.
//!
//! A 100-byte message alone is 16 + 24 + 24 + 24 + 12, records of 32, 32, 32, 32 and
//! 24 bytes at positions 0, 32, 64, 96 and 128: no PAD, over two laps.

use std::io::{Read, Write};

use loom::thread;
use shmlane::{spsc, RecvError, RingOptions, Wait};

/// Message `seq` of `len` bytes; neighbouring bytes differ, and so do messages.
fn message(seq: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(7)
                .wrapping_add(seq.wrapping_mul(101))
        })
        .collect()
}

fn ring() -> (spsc::Producer, spsc::Consumer) {
    let (mut tx, mut rx) = spsc::channel(&RingOptions::new(64)).unwrap();
    tx.set_wait(Wait::Spin);
    rx.set_wait(Wait::Spin);
    assert_eq!(tx.max_record_payload(), 24);
    (tx, rx)
}

/// `send` splits, `recv` reassembles: a whole message, then a fragmented one with a
/// PAD record between its fragments, both intact and in order.
#[test]
fn send_fragments_recv_reassembles() {
    loom::model(|| {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || {
            tx.send(&message(0, 16)).unwrap();
            tx.send(&message(1, 60)).unwrap();
        });
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf).unwrap(), 16);
        assert_eq!(buf, message(0, 16));
        assert_eq!(rx.recv(&mut buf).unwrap(), 60);
        assert_eq!(buf, message(1, 60));
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        producer.join().unwrap();
    });
}

/// `send` splits a 100-byte message into five fragments over two laps; `recv_stream`
/// reads it in place through `io::Read`, with a buffer smaller than a fragment so that
/// reads also end inside fragments. The content is intact and the reader ends (0) at
/// the message's end.
#[test]
fn send_fragments_recv_stream_reads() {
    loom::model(|| {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || tx.send(&message(2, 100)).unwrap());
        let mut reader = rx.recv_stream().unwrap();
        assert_eq!(reader.len(), 100);
        let mut all = Vec::new();
        let mut chunk = [0u8; 20];
        loop {
            let n = reader.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            all.extend_from_slice(&chunk[..n]);
        }
        drop(reader);
        assert_eq!(all, message(2, 100));
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        producer.join().unwrap();
    });
}

/// A `stream` writer fed in pieces that do not line up with fragments (the 60-byte
/// message of the table, after the 16-byte one), reassembled by `recv`.
#[test]
fn stream_writer_recv_reassembles() {
    loom::model(|| {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || {
            tx.send(&message(0, 16)).unwrap();
            let msg = message(1, 60);
            let mut writer = tx.stream(60).unwrap();
            for piece in msg.chunks(25) {
                writer.write_all(piece).unwrap();
            }
            writer.finish().unwrap();
        });
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf).unwrap(), 16);
        assert_eq!(buf, message(0, 16));
        assert_eq!(rx.recv(&mut buf).unwrap(), 60);
        assert_eq!(buf, message(1, 60));
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        producer.join().unwrap();
    });
}
