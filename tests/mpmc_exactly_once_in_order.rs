//! Claim: **MPMC delivers each message to exactly one consumer, intact, and each
//! producer's messages in the order they were sent, at every consumer**.
//!
//! Between processes: 4 producer and 4 consumer processes on one ring, messages of
//! random sizes (mostly small, about 1 in 100 larger than the ring), each carrying its
//! producer id and sequence number and a checksum of its body. Checked: every message
//! delivered exactly once (the union of what the consumers got is what was sent, with
//! no duplicates), intact (checksum), and each producer's messages in order at each
//! consumer. The processes outnumber the cores, so the default adaptive wait must park
//! rather than burn them. [`threads`]: the same checks with threads over the heap
//! backing, with several cell sizes, small enough for Miri.
//!
//! `SHMLANE_MPMC_MESSAGES` sets the total (default 200,000; the long run is 1,000,000).

// The tests that fork are ignored under Miri (no fork); those over the heap backing run
// there (`scripts/check-nightly.sh`).

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

use common::{check_message, fill_message, seg_name, Procs, Rng, SegGuard, MSG_HEADER};
use shmlane::{mpmc, RecvError, RingOptions};

/// Bits of a message's sequence number that count within its producer.
const SEQ_BITS: u32 = 40;

/// Total messages of the run.
fn total_messages() -> u64 {
    std::env::var("SHMLANE_MPMC_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

/// A message length: mostly small, some up to one record, about 1 in 100 larger than
/// the whole ring (so it travels in fragments). At least `MSG_HEADER` bytes, so that
/// every message carries its sequence number and checksum.
fn message_len(rng: &mut Rng, capacity: usize) -> usize {
    let large = std::env::var_os("SHMLANE_MPMC_NO_LARGE").is_none();
    let len = match rng.below(100) {
        0 if large => rng.range(capacity + 1, 3 * capacity),
        1..=9 => rng.range(0, capacity / 2),
        10..=29 => rng.range(0, 1024),
        _ => rng.range(0, 100),
    };
    len.max(MSG_HEADER)
}

/// Where consumer `c` of the run writes what it received, in order: (producer, seq)
/// pairs, 8 bytes each.
fn log_path(name: &str, c: usize) -> String {
    format!("/tmp/{}-consumer-{c}.log", name.trim_start_matches('/'))
}

fn producer(name: &str, id: u64, count: u64, capacity: usize) -> Result<String, String> {
    let mut tx = mpmc::Producer::open(name).map_err(|e| format!("open: {e}"))?;
    let mut rng = Rng::new(0x51ed ^ id);
    let mut buf = Vec::new();
    let mut bytes = 0u64;
    for n in 0..count {
        let len = message_len(&mut rng, capacity);
        buf.resize(len, 0);
        fill_message(&mut buf, id << SEQ_BITS | n);
        tx.send(&buf).map_err(|e| format!("send {n}: {e}"))?;
        bytes += len as u64;
    }
    Ok(format!("producer {id}: {count} messages, {bytes} bytes"))
}

fn consumer(name: &str, c: usize, producers: usize) -> Result<String, String> {
    let mut rx = mpmc::Consumer::open(name).map_err(|e| format!("open: {e}"))?;
    let mut last: Vec<Option<u64>> = vec![None; producers];
    let mut log = Vec::new();
    let mut buf = Vec::new();
    loop {
        match rx.recv(&mut buf) {
            Ok(len) => {
                let seq = u64::from_le_bytes(buf[..8].try_into().expect("16+ bytes"));
                check_message(&buf, seq, len)?;
                let (id, n) = (seq >> SEQ_BITS, seq & ((1 << SEQ_BITS) - 1));
                let prev = last
                    .get_mut(id as usize)
                    .ok_or_else(|| format!("message from producer {id}"))?;
                if prev.is_some_and(|p| p >= n) {
                    return Err(format!("producer {id}: message {n} after {prev:?}"));
                }
                *prev = Some(n);
                log.extend_from_slice(&(id as u32).to_le_bytes());
                log.extend_from_slice(&(n as u32).to_le_bytes());
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
    std::fs::File::create(log_path(name, c))
        .and_then(|mut f| f.write_all(&log))
        .map_err(|e| format!("write the log: {e}"))?;
    Ok(format!("consumer {c}: {} messages", log.len() / 8))
}

fn run(test: &str, producers: usize, consumers: usize, capacity: usize, total: u64) {
    let name = seg_name(test);
    let _guard = SegGuard::new(&name);
    let opts = RingOptions::new(capacity).max_endpoints(producers + consumers + 1);
    mpmc::create_ring(&name, &opts).unwrap();
    // The test holds a producer until every producer process is done, so that the
    // consumers do not see "every producer has left" between one producer's exit and
    // the next one's start.
    let keeper = mpmc::Producer::open(&name).unwrap();
    let per = total / producers as u64;
    let start = Instant::now();
    let mut procs = Procs::new(test, Duration::from_secs(600));
    let consumer_idx: Vec<usize> = (0..consumers)
        .map(|c| {
            let name = name.clone();
            procs.spawn(&format!("consumer {c}"), move || {
                consumer(&name, c, producers)
            })
        })
        .collect();
    let producer_idx: Vec<usize> = (0..producers)
        .map(|p| {
            let name = name.clone();
            procs.spawn(&format!("producer {p}"), move || {
                producer(&name, p as u64, per, capacity)
            })
        })
        .collect();
    for i in producer_idx {
        procs.wait_ok(i);
    }
    drop(keeper);
    let mut reports = Vec::new();
    for i in consumer_idx {
        reports.push(procs.wait_ok(i));
    }
    let elapsed = start.elapsed();
    let mut seen = HashSet::new();
    for c in 0..consumers {
        let log = std::fs::read(log_path(&name, c)).unwrap();
        let _ = std::fs::remove_file(log_path(&name, c));
        for pair in log.chunks_exact(8) {
            let id = u32::from_le_bytes(pair[..4].try_into().unwrap());
            let n = u32::from_le_bytes(pair[4..].try_into().unwrap());
            assert!(seen.insert((id, n)), "{id}/{n} delivered twice");
        }
    }
    for id in 0..producers as u32 {
        for n in 0..per as u32 {
            assert!(seen.contains(&(id, n)), "{id}/{n} lost");
        }
    }
    assert_eq!(seen.len() as u64, per * producers as u64);
    eprintln!(
        "{test}: {} messages through {producers}P{consumers}C in {elapsed:.2?} ({:.0} msg/s); {}",
        seen.len(),
        seen.len() as f64 / elapsed.as_secs_f64(),
        reports.join("; ")
    );
}

#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn four_producers_four_consumers() {
    let _heavy = common::heavy();
    run("mpmc-4p4c", 4, 4, 64 << 10, total_messages());
}

#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn one_producer_one_consumer_small_ring() {
    let _heavy = common::heavy();
    run("mpmc-1p1c", 1, 1, 4096, total_messages() / 10);
}

mod threads {
    //! The same over the heap backing, with threads: small enough for Miri. Producers tag each
    //! message with their id, a sequence number and a checksum.

    use shmlane::{mpmc, RecvError, RingOptions};
    use std::collections::HashSet;
    use std::thread;

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

    /// `iter()` on MPMC consumers: two consumers iterate while two producers send;
    /// every message reaches exactly one of them, each producer's in order, and both
    /// loops end once the producers have gone and the ring is drained. `try_iter()`
    /// then ends at once.
    #[test]
    fn iter_delivers_each_message_once_and_ends_at_disconnect() {
        let per = PER_PRODUCER.min(20_000);
        let (tx, rx) = mpmc::channel(&opts(1 << 14).cell_size(64)).unwrap();
        let txs = vec![tx.try_clone().unwrap(), tx];
        let rxs = vec![rx.try_clone().unwrap(), rx];
        let senders: Vec<_> = txs
            .into_iter()
            .enumerate()
            .map(|(id, mut tx)| {
                thread::spawn(move || {
                    for seq in 0..per {
                        tx.send(&message(id as u64, seq, (seq % 200) as usize))
                            .unwrap();
                    }
                })
            })
            .collect();
        let receivers: Vec<_> = rxs
            .into_iter()
            .map(|mut rx| {
                thread::spawn(move || {
                    let got: Vec<(u64, u64)> =
                        (&mut rx).into_iter().map(|m| check(&m.unwrap())).collect();
                    assert_eq!(rx.try_iter().count(), 0);
                    got
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        let mut all = HashSet::new();
        for r in receivers {
            let mut last = [None; 2];
            for (id, seq) in r.join().unwrap() {
                let prev: &mut Option<u64> = &mut last[id as usize];
                assert!(
                    !prev.is_some_and(|p| p >= seq),
                    "producer {id}: {seq} after {prev:?}"
                );
                *prev = Some(seq);
                assert!(all.insert((id, seq)), "({id}, {seq}) delivered twice");
            }
        }
        assert_eq!(all.len() as u64, 2 * per, "messages lost");
    }
}
