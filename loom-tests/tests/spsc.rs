#![cfg(loom)]
//! The SPSC byte ring under loom: order, content, wrap-around with a PAD record, the
//! zero-copy paths, and disconnection.
//!
//! The data region under loom carries one loom `UnsafeCell` per 8-byte word, touched
//! around every payload write and read, so loom also reports a payload read that is not
//! ordered after its write (the Release store of the record header paired with the
//! consumer's Acquire load) and a producer that writes bytes the consumer has not
//! released or whose reads are not ordered before the write (the Release store of
//! `head` paired with the producer's Acquire load).
//!
//! A note on that last pairing: the consumer issues a SeqCst fence (in the event count's
//! `notify`) right after every store of `head`, and that fence makes its *next* store of
//! `head` a release of everything read before it, even if the store itself were
//! Relaxed. So a Relaxed `head` store is only visible to loom when the producer
//! overwrites a word of the record read just before the `head` value it acts on. The
//! layouts here never do (each rewrite lands on a record released one store earlier);
//! the first model of `fragments.rs` does (the zeroed word after fragment 2 is the
//! first payload word of fragment 1), and catches it.
//!
//! # The layout of the 64-byte ring in these models
//!
//! Capacity 64: the largest record is 32 bytes, so the largest single-record payload is
//! 24 bytes. A record is an 8-byte header plus its payload rounded up to 8, and the
//! producer claims `padding + record + 8` bytes (the 8 being the word after the
//! record, which it zeroes when it publishes). With payloads of 16, 24, 16, 24 and 16
//! bytes:
//!
//! | record | payload | size | position          | claim needs               |
//! |--------|---------|------|-------------------|---------------------------|
//! | 1      | 16      | 24   | 0..24             | 0 + 32 - head <= 64       |
//! | 2      | 24      | 32   | 24..56            | 24 + 40 - head <= 64      |
//! | PAD    | -       | 8    | 56..64            |                           |
//! | 3      | 16      | 24   | 64..88 (0..24)    | 56 + 8 + 32 - head <= 64  |
//! | 4      | 24      | 32   | 88..120 (24..56)  | 88 + 40 - head <= 64      |
//! | PAD    | -       | 8    | 120..128 (56..64) |                           |
//! | 5      | 16      | 24   | 128..152 (0..24)  | 120 + 8 + 32 - head <= 64 |
//!
//! Message 3 does not fit in the 8 bytes left before the end (index 56 + 24 > 64), so
//! the producer writes a PAD record over 56..64 and places message 3 at position 64,
//! index 0: the ring wraps. Message 5 wraps the same way one lap later. `head` moves
//! by whole records (0, 24, 56, 64, 88, 120, 128, ...), so message 3 waits until the
//! consumer has released messages 1 and 2 (`head >= 32` means 56), message 4 until it
//! has released message 3 (`head >= 64` means 88), message 5 until it has released
//! message 4 (`head >= 96` means 120). The consumer publishes `head` every
//! `capacity / 4 = 16` bytes and whenever it finds the ring empty, so it does.
//!
//! Delivery is the only thing the models can observe: if the PAD were not written or
//! not skipped, message 3 would straddle the end or be read at the wrong position,
//! and the content or order checks (or the frame decoder's tag check) would fail.

use loom::thread;
use shmlane::{spsc, RecvError, RingOptions, TryRecvError, Wait};

/// Message `seq` of `len` bytes, each byte different from the same byte of the others.
fn message(seq: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seq.wrapping_mul(41).wrapping_add(i as u8))
        .collect()
}

/// Payload sizes that make the 64-byte ring wrap twice, each time with a PAD record
/// (see the table above).
const SIZES: [usize; 5] = [16, 24, 16, 24, 16];

fn ring() -> (spsc::Producer, spsc::Consumer) {
    let (mut tx, mut rx) = spsc::channel(&RingOptions::new(64)).unwrap();
    tx.set_wait(Wait::Spin);
    rx.set_wait(Wait::Spin);
    assert_eq!(tx.max_record_payload(), 24);
    (tx, rx)
}

/// `send` on one side, `recv` and `try_recv` (alternately) on the other: every message
/// arrives whole and in order, across both wraps, then `Disconnected`.
#[test]
fn send_recv_wraps_with_pad() {
    loom::model(|| {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || {
            for (seq, &len) in SIZES.iter().enumerate() {
                tx.send(&message(seq as u8, len)).unwrap();
            }
            // Dropping the producer detaches it (Release) after its last record.
        });
        let mut buf = Vec::new();
        for (seq, &len) in SIZES.iter().enumerate() {
            let n = if seq % 2 == 0 {
                rx.recv(&mut buf).unwrap()
            } else {
                // The non-blocking path: poll until the message is there.
                loop {
                    match rx.try_recv(&mut buf) {
                        Ok(n) => break n,
                        Err(TryRecvError::Empty) => thread::yield_now(),
                        Err(e) => panic!("message {seq}: {e:?}"),
                    }
                }
            };
            assert_eq!(n, len, "message {seq}");
            assert_eq!(buf, message(seq as u8, len), "message {seq}");
        }
        // Every message was read, and the producer leaves (or has left): no more.
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected));
        producer.join().unwrap();
    });
}

/// The zero-copy paths: `reserve` + `commit` / `commit_len` on one side, `recv_ref` on
/// the other, across the first wrap of the table. The third grant reserves 24 bytes
/// (a 32-byte record: a PAD over 56..64, then 0..32, which needs
/// `56 + 8 + 40 - head <= 64`, i.e. `head == 56`) and commits only 16 of them, so the
/// record published there is 24 bytes, as message 3 of the table.
#[test]
fn reserve_commit_recv_ref_wraps_with_pad() {
    loom::model(|| {
        let (mut tx, mut rx) = ring();
        let producer = thread::spawn(move || {
            let mut grant = tx.reserve(16).unwrap();
            grant.copy_from_slice(&message(0, 16));
            grant.commit();
            let mut grant = tx.reserve(24).unwrap();
            grant.copy_from_slice(&message(1, 24));
            grant.commit();
            let mut grant = tx.reserve(24).unwrap();
            grant[..16].copy_from_slice(&message(2, 16));
            grant.commit_len(16).unwrap();
        });
        for (seq, &len) in SIZES[..3].iter().enumerate() {
            let grant = rx.recv_ref().unwrap();
            assert_eq!(&*grant, &message(seq as u8, len)[..], "message {seq}");
            // Dropping the grant releases its bytes to the producer.
        }
        assert!(matches!(rx.recv_ref(), Err(RecvError::Disconnected)));
        producer.join().unwrap();
    });
}

/// A consumer that leaves is seen by a producer waiting for room: the 24-byte message
/// fills the ring so that a second one cannot be placed until the consumer reads the
/// first, which it never does. The second `send` must return `Disconnected`, not hang.
#[test]
fn producer_sees_consumer_leave() {
    loom::model(|| {
        let (mut tx, rx) = ring();
        let consumer = thread::spawn(move || drop(rx));
        let first = tx.send(&message(0, 24));
        let second = tx.send(&message(1, 24));
        assert_eq!(second, Err(shmlane::SendError::Disconnected));
        // The first may go through or find the consumer already gone.
        assert!(matches!(
            first,
            Ok(()) | Err(shmlane::SendError::Disconnected)
        ));
        consumer.join().unwrap();
    });
}
