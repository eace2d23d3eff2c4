//! The SPSC protocol over the private heap backing, two threads: the same code paths
//! as between processes, small enough for Miri.

use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

use shmlane::{spsc, RecvError, RingOptions, TryRecvError, TrySendError, Wait};

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
fn producer_sees_consumer_gone() {
    let (mut tx, rx) = spsc::channel(&opts(256)).unwrap();
    drop(rx);
    assert_eq!(tx.try_send(b"x"), Err(TrySendError::Disconnected));
    assert_eq!(tx.send(b"x"), Err(shmlane::SendError::Disconnected));
    assert!(tx.send_timeout(b"x", Duration::from_millis(1)).is_err());
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
fn grants_commit_len_and_abort() {
    let (mut tx, mut rx) = spsc::channel(&opts(1024)).unwrap();
    {
        let mut g = tx.reserve(100).unwrap();
        g[..3].copy_from_slice(b"abc");
        // Dropped uncommitted: publishes nothing.
    }
    let mut g = tx.reserve(100).unwrap();
    g[..3].copy_from_slice(b"xyz");
    assert!(g.commit_len(101).is_err());
    let mut g = tx.reserve(100).unwrap();
    g[..3].copy_from_slice(b"xyz");
    g.commit_len(3).unwrap();
    assert!(matches!(
        tx.reserve(600),
        Err(shmlane::SendError::TooLarge { .. })
    ));
    assert_eq!(&*rx.recv_ref().unwrap(), b"xyz");
    assert!(matches!(rx.try_recv_ref(), Err(TryRecvError::Empty)));
}

#[test]
fn recv_ref_refuses_fragments_and_recv_takes_them() {
    let (mut tx, mut rx) = spsc::channel(&opts(1024)).unwrap();
    let big = message(7, 900);
    let t = thread::spawn(move || {
        tx.send(&big).unwrap();
        tx
    });
    match rx.recv_ref() {
        Err(RecvError::Fragmented { len }) => assert_eq!(len, 900),
        other => panic!("{other:?}"),
    }
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 900);
    assert_eq!(buf, message(7, 900));
    drop(t.join().unwrap());
}

#[test]
fn max_message_refuses_without_consuming() {
    let (mut tx, mut rx) = spsc::channel(&opts(4096).max_message(1000)).unwrap();
    let t = thread::spawn(move || {
        tx.send(&message(1, 5000)).unwrap();
        tx.send(&message(2, 10)).unwrap();
        tx
    });
    let mut buf = Vec::new();
    assert_eq!(
        rx.recv(&mut buf),
        Err(RecvError::TooLarge {
            len: 5000,
            max: 1000
        })
    );
    assert_eq!(buf.capacity(), 0, "nothing allocated for a refused message");
    let mut r = rx.recv_stream().unwrap();
    assert_eq!(r.len(), 5000);
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    drop(r);
    assert_eq!(all, message(1, 5000));
    assert_eq!(rx.recv(&mut buf).unwrap(), 10);
    drop(t.join().unwrap());
}

#[test]
fn stream_writer_and_reader() {
    let (mut tx, mut rx) = spsc::channel(&opts(512)).unwrap();
    let total = 50_000u64;
    let t = thread::spawn(move || {
        let mut w = tx.stream(total).unwrap();
        let data = message(3, total as usize);
        for chunk in data.chunks(333) {
            w.write_all(chunk).unwrap();
        }
        assert!(
            w.write(b"x").is_err(),
            "writing past the declared length fails"
        );
        w.finish().unwrap();
        // A writer finished early abandons its message.
        let mut w = tx.stream(10_000).unwrap();
        w.write_all(&[9; 5000]).unwrap();
        assert!(w.finish().is_err());
        tx.send(b"after").unwrap();
        tx.stream(0).unwrap().finish().unwrap();
        tx
    });
    let mut r = rx.recv_stream().unwrap();
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    drop(r);
    assert_eq!(all, message(3, total as usize));
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf), Err(RecvError::Truncated));
    assert_eq!(rx.recv(&mut buf).unwrap(), 5);
    assert_eq!(buf, b"after");
    assert_eq!(rx.recv(&mut buf).unwrap(), 0);
    drop(t.join().unwrap());
}

#[test]
fn pod_round_trip_and_mismatch() {
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Quote {
        price: f64,
        qty: u32,
        venue: u32,
    }
    let (mut tx, mut rx) = spsc::channel(&opts(256)).unwrap();
    let q = Quote {
        price: 1.5,
        qty: 7,
        venue: 3,
    };
    tx.send_pod(&q).unwrap();
    assert_eq!(rx.recv_pod::<Quote>().unwrap(), q);
    tx.send(b"short").unwrap();
    assert_eq!(
        rx.recv_pod::<Quote>(),
        Err(RecvError::SizeMismatch {
            expected: 16,
            found: 5
        })
    );
}

#[test]
fn bad_options_are_errors() {
    for cap in [0, 3, 100, 32] {
        assert!(matches!(
            spsc::channel(&opts(cap)),
            Err(shmlane::Error::InvalidOptions { .. })
        ));
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

#[test]
fn recv_timeout_keeps_a_partial_message() {
    let (mut tx, mut rx) = spsc::channel(&opts(1024)).unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let t = thread::spawn(move || {
        use std::io::Write as _;
        let msg = message(5, 2000);
        let mut w = tx.stream(2000).unwrap();
        // The first fragment (496 bytes in a 1 KiB ring) is published; the rest waits.
        w.write_all(&msg[..600]).unwrap();
        go_rx.recv().unwrap();
        w.write_all(&msg[600..]).unwrap();
        w.finish().unwrap();
        tx
    });
    let mut buf = Vec::new();
    // Only the first fragment is out: not a whole message yet.
    assert_eq!(
        rx.recv_timeout(&mut buf, Duration::from_millis(20)),
        Err(shmlane::RecvTimeoutError::Timeout)
    );
    assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
    go_tx.send(()).unwrap();
    assert_eq!(rx.recv(&mut buf), Ok(2000));
    assert_eq!(buf, message(5, 2000));
    drop(t.join().unwrap());
}
