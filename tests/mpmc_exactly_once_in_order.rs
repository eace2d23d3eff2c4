//! MPMC between processes: 4 producer and 4 consumer processes on one ring, messages
//! of random sizes (mostly small, about 1 in 100 larger than the ring), each carrying
//! its producer id and sequence number and a checksum of its body.
//!
//! Checked: every message delivered exactly once (the union of what the consumers got
//! is what was sent, with no duplicates), intact (checksum), and each producer's
//! messages in order at each consumer. The processes outnumber the cores, so the
//! default adaptive wait must park rather than burn them.
//!
//! `SHMLANE_MPMC_MESSAGES` sets the total (default 200,000; the long run is 1,000,000).

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

use common::{check_message, fill_message, seg_name, Procs, Rng, SegGuard, MSG_HEADER};
use shmlane::{mpmc, Error, RecvError, RingOptions};

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

#[test]
fn four_producers_four_consumers() {
    let _heavy = common::heavy();
    run("mpmc-4p4c", 4, 4, 64 << 10, total_messages());
}

#[test]
fn one_producer_one_consumer_small_ring() {
    let _heavy = common::heavy();
    run("mpmc-1p1c", 1, 1, 4096, total_messages() / 10);
}

/// Opening an MPMC ring as SPSC, or the reverse, is `Incompatible` (field `kind`).
#[test]
fn kinds_do_not_mix() {
    let name = seg_name("mpmc-kinds");
    let _guard = SegGuard::new(&name);
    let _rx = mpmc::Consumer::create(&name, &RingOptions::new(4096)).unwrap();
    match shmlane::spsc::Producer::open(&name) {
        Err(Error::Incompatible { field, .. }) => assert_eq!(field, "kind"),
        other => panic!("spsc open of an mpmc ring: {other:?}"),
    }
    let name2 = seg_name("mpmc-kinds-2");
    let _guard2 = SegGuard::new(&name2);
    let _tx = shmlane::spsc::Producer::create(&name2, &RingOptions::new(4096)).unwrap();
    match mpmc::Consumer::open(&name2) {
        Err(Error::Incompatible { field, .. }) => assert_eq!(field, "kind"),
        other => panic!("mpmc open of an spsc ring: {other:?}"),
    }
}
