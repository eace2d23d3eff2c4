//! The MPMC protocol over the heap backing, with threads: the same code paths as
//! between processes, small enough for Miri. Producers tag each message with their id,
//! a sequence number and a checksum; the checks are exactly-once delivery, intact
//! payloads, and each producer's order as seen by each consumer.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

use shmlane::{mpmc, Error, RecvError, RingOptions, TryRecvError, TrySendError};

const PER_PRODUCER: u64 = if cfg!(miri) { 60 } else { 20_000 };

/// Options for a ring of `capacity` bytes (symmetric fences under Miri, which has no
/// `membarrier`).
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

/// FNV-1a, the checksum the messages carry.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Message `seq` of producer `id`, `len >= 24` bytes: id, seq, checksum of the rest,
/// then bytes derived from (id, seq).
fn message(id: u64, seq: u64, len: usize) -> Vec<u8> {
    let len = len.max(24);
    let mut m = vec![0u8; len];
    for (i, b) in m[24..].iter_mut().enumerate() {
        *b = (id * 131 + seq * 31 + i as u64 * 7) as u8;
    }
    m[..8].copy_from_slice(&id.to_le_bytes());
    m[8..16].copy_from_slice(&seq.to_le_bytes());
    let sum = fnv(&m[24..]);
    m[16..24].copy_from_slice(&sum.to_le_bytes());
    m
}

/// Checks a received message; returns (producer id, seq).
fn check(m: &[u8]) -> (u64, u64) {
    assert!(m.len() >= 24, "message of {} bytes", m.len());
    let id = u64::from_le_bytes(m[..8].try_into().unwrap());
    let seq = u64::from_le_bytes(m[8..16].try_into().unwrap());
    let sum = u64::from_le_bytes(m[16..24].try_into().unwrap());
    assert_eq!(sum, fnv(&m[24..]), "message {id}/{seq} corrupted");
    assert_eq!(m, message(id, seq, m.len()), "message {id}/{seq} differs");
    (id, seq)
}

/// `producers` × `consumers` threads over one ring: every message delivered exactly
/// once, intact, each producer's messages in order at each consumer.
fn run(capacity: usize, cell: usize, producers: u64, consumers: usize, max_len: u64) {
    let (tx, rx) = mpmc::channel(&opts(capacity).cell_size(cell)).unwrap();
    let mut txs = vec![tx];
    for _ in 1..producers {
        let t = txs[0].try_clone().unwrap();
        txs.push(t);
    }
    let mut rxs = vec![rx];
    for _ in 1..consumers {
        let r = rxs[0].try_clone().unwrap();
        rxs.push(r);
    }
    let senders: Vec<_> = txs
        .into_iter()
        .enumerate()
        .map(|(id, mut tx)| {
            let id = id as u64;
            thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1));
                for seq in 0..PER_PRODUCER {
                    let len = match rng.next() % 100 {
                        0 => (rng.next() % max_len) as usize,
                        1..=20 => (rng.next() % 512) as usize,
                        _ => (rng.next() % 64) as usize,
                    };
                    tx.send(&message(id, seq, len)).unwrap();
                }
            })
        })
        .collect();
    let receivers: Vec<_> = rxs
        .into_iter()
        .map(|mut rx| {
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = Vec::new();
                loop {
                    match rx.recv(&mut buf) {
                        Ok(_) => got.push(check(&buf)),
                        Err(RecvError::Disconnected) => return got,
                        Err(e) => panic!("recv: {e}"),
                    }
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let mut all = HashSet::new();
    for r in receivers {
        let got = r.join().unwrap();
        let mut last = vec![None; producers as usize];
        for &(id, seq) in &got {
            let prev = &mut last[id as usize];
            assert!(
                !prev.is_some_and(|p| p >= seq),
                "producer {id}: {seq} after {prev:?}"
            );
            *prev = Some(seq);
            assert!(all.insert((id, seq)), "{id}/{seq} delivered twice");
        }
    }
    assert_eq!(all.len() as u64, producers * PER_PRODUCER, "messages lost");
}

#[test]
fn two_producers_two_consumers() {
    run(4096, 64, 2, 2, 3 * 4096);
}

#[test]
fn four_by_four_small_cells() {
    run(2048, 16, 4, 4, 5000);
}

#[test]
fn one_by_three_large_cells() {
    run(1 << 14, 512, 1, 3, 40_000);
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

#[test]
fn endpoint_limit_is_busy() {
    let (tx, rx) = mpmc::channel(&opts(256).max_endpoints(3)).unwrap();
    let _third = tx.try_clone().unwrap();
    assert!(matches!(tx.try_clone(), Err(Error::Busy { .. })));
    assert!(matches!(rx.try_clone(), Err(Error::Busy { .. })));
    drop(_third);
    let _again = rx.try_clone().unwrap();
    assert!(matches!(
        mpmc::channel(&opts(256).max_endpoints(1)),
        Err(Error::InvalidOptions { .. })
    ));
    assert!(matches!(
        mpmc::channel(&opts(256).max_endpoints(65)),
        Err(Error::InvalidOptions { .. })
    ));
    assert!(matches!(
        mpmc::channel(&opts(256).cell_size(48)),
        Err(Error::InvalidOptions { .. })
    ));
    assert!(matches!(
        mpmc::channel(&opts(256).cell_size(256)),
        Err(Error::InvalidOptions { .. })
    ));
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
