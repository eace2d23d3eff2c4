//! Claim: **in MPMC, a stalled endpoint holds up only its own message, and a large
//! message holds the ring while it passes**: a producer stalled between its claim and
//! its publish holds up consumers only at its message; a consumer stalled between its
//! claim and its release holds up no other consumer; a message in fragments keeps its
//! reader-stream slot with one consumer while another waits its turn; a reader dropped
//! partway gives up the slot; `try_send` of a message in fragments does not wait for
//! cells consumers hold.
//!
//! Over the heap backing, with threads: the same code paths as between processes,
//! small enough for Miri.

use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

use shmlane::{mpmc, RecvError, RingOptions, TryRecvError, TrySendError};

/// Options for a ring of `capacity` bytes (symmetric fences under Miri, which has no
/// `membarrier`).
fn opts(capacity: usize) -> RingOptions {
    RingOptions::new(capacity).asymmetric_fences(!cfg!(miri))
}

/// A message in fragments streams through a small ring while another consumer waits
/// its turn; the reader-stream slot keeps the fragments with one consumer.
#[test]
fn streams_hold_their_slots() {
    let (mut tx, mut rx) = mpmc::channel(&opts(1024).cell_size(32)).unwrap();
    let mut rx2 = rx.try_clone().unwrap();
    let total = 20_000usize;
    let body: Vec<u8> = (0..total).map(|i| (i * 13) as u8).collect();
    let body2 = body.clone();
    let t = thread::spawn(move || {
        let mut w = tx.stream(total as u64).unwrap();
        for chunk in body2.chunks(777) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap();
        tx.send(b"after").unwrap();
        tx
    });
    let mut reader = rx.recv_stream().unwrap();
    assert_eq!(reader.len(), total as u64);
    // While the stream is ours, the other consumer finds nothing to take.
    assert_eq!(rx2.try_recv(&mut Vec::new()), Err(TryRecvError::Empty));
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    drop(reader);
    assert_eq!(got, body);
    let mut buf = Vec::new();
    rx2.recv(&mut buf).unwrap();
    assert_eq!(buf, b"after");
    let tx = t.join().unwrap();
    drop(tx);
    assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
}

/// A reader dropped in the middle of a message: the rest is skipped, and the slot is
/// given up when the consumer is dropped, so another consumer goes on.
#[test]
fn dropped_reader_and_consumer_free_the_slot() {
    let (mut tx, mut rx) = mpmc::channel(&opts(1024).cell_size(32)).unwrap();
    let mut rx2 = rx.try_clone().unwrap();
    let t = thread::spawn(move || {
        tx.send(&vec![9u8; 5000]).unwrap();
        tx.send(b"next").unwrap();
        tx.send(b"and next").unwrap();
        tx
    });
    let mut reader = rx.recv_stream().unwrap();
    let mut first = [0u8; 10];
    reader.read_exact(&mut first).unwrap();
    assert_eq!(first, [9u8; 10]);
    drop(reader);
    let mut buf = Vec::new();
    // The same consumer skips the rest and gets the next message.
    rx.recv(&mut buf).unwrap();
    assert_eq!(buf, b"next");
    let tx = t.join().unwrap();
    rx2.recv(&mut buf).unwrap();
    assert_eq!(buf, b"and next");
    drop((tx, rx));
    assert_eq!(rx2.recv(&mut buf), Err(RecvError::Disconnected));
}

/// A producer stalled between its claim and its publish (a reserved grant) holds up
/// the consumers at its own message only: other producers keep claiming and
/// publishing behind it, and everything arrives once it commits.
#[test]
fn stalled_producer_blocks_only_at_its_message() {
    let (mut a, mut rx) = mpmc::channel(&opts(4096)).unwrap();
    let mut b = a.try_clone().unwrap();
    let mut buf = Vec::new();
    let mut grant = a.reserve(10).unwrap();
    for i in 0..5u8 {
        b.try_send(&[i; 20])
            .expect("other producers go on claiming");
    }
    // The consumers wait at the stalled message.
    assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
    grant.copy_from_slice(b"stalled!!!");
    grant.commit();
    assert_eq!(rx.try_recv(&mut buf), Ok(10));
    assert_eq!(buf, b"stalled!!!");
    for i in 0..5u8 {
        assert_eq!(rx.try_recv(&mut buf), Ok(20));
        assert_eq!(buf, [i; 20]);
    }
}

/// A consumer stalled between its claim and its release (a held read grant) holds up
/// no other consumer. Producers claim cells in ring order, so they stop when they
/// come round to its cells (not before), and go on once it releases them.
#[test]
fn stalled_consumer_blocks_no_other_consumer() {
    // 8 cells of 32 bytes.
    let (mut tx, mut slow) = mpmc::channel(&opts(256).cell_size(32)).unwrap();
    let mut fast = slow.try_clone().unwrap();
    let mut buf = Vec::new();
    for i in 0..4u8 {
        tx.send(&[i; 30]).unwrap();
    }
    let held = slow.try_recv_ref().unwrap();
    assert_eq!(&*held, &[0; 30]);
    for i in 1..4u8 {
        assert_eq!(fast.try_recv(&mut buf), Ok(30));
        assert_eq!(buf, [i; 30]);
    }
    // Cells 4..8 are free; cell 0 (next in ring order) is held.
    let mut sent = 0;
    while tx.try_send(&[9; 30]).is_ok() {
        sent += 1;
    }
    assert_eq!(sent, 4);
    drop(held);
    for _ in 0..4 {
        tx.try_send(&[9; 30])
            .expect("the held cell and those after it are free again");
    }
    assert_eq!(tx.try_send(&[9; 30]), Err(TrySendError::Full));
}

/// Runs `f` on a thread: its result, or `None` if it has not returned within 2 s (the
/// thread is then left waiting).
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, result) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(f());
    });
    result.recv_timeout(Duration::from_secs(2)).ok()
}

/// `try_send` of a message in fragments counted `tail - head` as the room in use, not
/// the cells consumers had taken and not yet released, then claimed the fragments
/// waiting: held by a `ReadGrant` or a stream reader, those cells made it wait (here
/// for ever: this thread holds them). It must return `Full` at once, leave the writer
/// slot free, and send once they are released.
#[test]
fn try_send_in_fragments_does_not_wait_for_held_cells() {
    for reader in [false, true] {
        // 64 cells of 64 bytes; records of up to 2048 bytes, so 2100 go in fragments.
        let (mut tx, mut rx) = mpmc::channel(&opts(4096).cell_size(64)).unwrap();
        let mut rx2 = rx.try_clone().unwrap();
        let mut tx2 = tx.try_clone().unwrap();
        let mut buf = Vec::new();
        tx.try_send(&[1; 2048]).expect("cells 0..32");
        // Cells 0..32 taken by `rx`, not released.
        enum Hold<'a> {
            Grant(mpmc::ReadGrant<'a>),
            Stream(shmlane::MessageReader<'a, mpmc::Consumer>),
        }
        let hold = if reader {
            let mut r = rx.recv_stream().unwrap();
            let mut part = [0; 100];
            r.read_exact(&mut part).unwrap();
            assert_eq!(part, [1; 100]);
            Hold::Stream(r)
        } else {
            Hold::Grant(rx.try_recv_ref().unwrap())
        };
        tx.try_send(&[2; 2048]).expect("cells 32..64");
        assert_eq!(rx2.try_recv(&mut buf), Ok(2048));
        // tail = head = 64: by `tail - head` all is free, but the first fragment of
        // 2100 bytes needs cells 0..16.
        let r = bounded(move || (tx.try_send(&[3; 2100]), tx));
        let Some((r, mut tx)) = r else {
            panic!("try_send waited for a consumer (reader: {reader})");
        };
        assert_eq!(r, Err(TrySendError::Full), "reader: {reader}");
        // Nothing was claimed: the ring reads empty to the other consumer.
        assert_eq!(rx2.try_recv(&mut buf), Err(TryRecvError::Empty));
        match hold {
            Hold::Grant(g) => drop(g),
            Hold::Stream(mut r) => {
                let mut rest = Vec::new();
                r.read_to_end(&mut rest).unwrap();
                assert_eq!(rest.len(), 2048 - 100);
            }
        }
        // The writer slot is free for another producer, and the room is there now.
        tx2.try_send(&[3; 2100]).expect("cells 0..33 released");
        assert_eq!(rx2.try_recv(&mut buf), Ok(2100));
        assert_eq!(buf, [3; 2100]);
        tx.try_send(&[4; 2100]).expect("room again");
        assert_eq!(rx2.try_recv(&mut buf), Ok(2100));
        assert_eq!(buf, [4; 2100]);
    }
}
