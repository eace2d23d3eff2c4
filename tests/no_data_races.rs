//! Claim: **the protocol has no data race**: the payload a consumer reads (in place or
//! copied) is ordered after the producer's writes by the record headers'
//! Release/Acquire, through every API, with fragments, SPSC and MPMC, so ThreadSanitizer
//! and AddressSanitizer find nothing while every message arrives intact.
//!
//! A threaded stress test for ThreadSanitizer and AddressSanitizer (and a plain test in
//! `cargo test`): two rings, each a POSIX segment mapped twice in this process (the
//! producer's `create` and the consumer's `open`), each endpoint on a thread of its
//! own; a million messages in all, of random sizes (fragments included), sent and
//! received through every API and checked byte for byte.
//!
//! A second test runs the same traffic over the heap backing, where both endpoints
//! share one mapping: ThreadSanitizer relates accesses by address, so that is where it
//! checks the payload's ordering against the record headers' Release/Acquire; with two
//! mappings it sees each side's accesses at different addresses.
//!
//! `SHMLANE_STRESS_MESSAGES` sets the number of messages (default 1,000,000 for the
//! POSIX rings, a fifth of it for the heap ring); `scripts/check-nightly.sh` runs this
//! under both sanitizers.

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use shmlane::{spsc, RecvError, RecvTimeoutError, RingOptions};

/// Each message waits at most this long (a hang fails the test instead of the run).
const PATIENCE: Duration = Duration::from_secs(300);

/// Ring capacity: records up to 2040 bytes, larger messages in fragments.
const CAPACITY: usize = 4096;

fn total_messages(default: u64) -> u64 {
    match std::env::var("SHMLANE_STRESS_MESSAGES") {
        Ok(v) => v.parse().expect("SHMLANE_STRESS_MESSAGES: a number"),
        Err(_) if cfg!(miri) => 200,
        Err(_) => default,
    }
}

/// splitmix64: message lengths and contents derive from (ring, seq), so both sides
/// agree without talking.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Length of message `seq` of ring `ring`: mostly small, some up to one record, 1% in
/// fragments (up to 3 × capacity), and the record-size boundaries.
fn message_len(ring: u64, seq: u64) -> usize {
    let r = mix(ring << 48 ^ seq);
    let max_payload = CAPACITY / 2 - 8;
    let pick = (r >> 32) as usize;
    match r % 100 {
        0..=69 => pick % 65,
        70..=94 => 65 + pick % 960,
        95..=97 => pick % (max_payload + 1),
        98 => [0, 7, 8, max_payload - 1, max_payload, max_payload + 1][pick % 6],
        _ => max_payload + 1 + pick % (3 * CAPACITY - max_payload),
    }
}

/// Fills `buf` with message `seq` of ring `ring`.
fn fill(buf: &mut Vec<u8>, ring: u64, seq: u64, len: usize) {
    buf.clear();
    let key = mix(ring ^ seq.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut i = 0;
    while buf.len() < len {
        buf.extend_from_slice(&mix(key ^ i).to_le_bytes());
        i += 1;
    }
    buf.truncate(len);
}

/// Sends messages `0..n` of ring `ring`, through `send`, `reserve`, `try_send` and
/// `stream` in turn.
fn produce(mut tx: spsc::Producer, ring: u64, n: u64) {
    let mut msg = Vec::new();
    for seq in 0..n {
        let len = message_len(ring, seq);
        fill(&mut msg, ring, seq, len);
        match seq % 8 {
            0 if len <= tx.max_record_payload() => {
                let mut g = tx.reserve_timeout(len, PATIENCE).expect("reserve");
                g.copy_from_slice(&msg);
                g.commit();
            }
            1 => {
                let started = Instant::now();
                loop {
                    match tx.try_send(&msg) {
                        Ok(()) => break,
                        Err(shmlane::TrySendError::Full) => {
                            assert!(started.elapsed() < PATIENCE, "try_send: full for long");
                            thread::yield_now();
                        }
                        // Too large to fit at once: send waits between fragments.
                        Err(shmlane::TrySendError::TooLarge { .. }) => {
                            tx.send_timeout(&msg, PATIENCE).expect("send_timeout");
                            break;
                        }
                        Err(e) => panic!("ring {ring}, message {seq}: try_send: {e}"),
                    }
                }
            }
            2 => {
                let mut w = tx.stream(len as u64).expect("stream");
                for chunk in msg.chunks(1 + (seq as usize % 3000)) {
                    w.write_all(chunk).expect("stream write");
                }
                w.finish().expect("stream finish");
            }
            _ => tx
                .send_timeout(&msg, PATIENCE)
                .unwrap_or_else(|e| panic!("ring {ring}, message {seq}: send: {e}")),
        }
    }
}

/// Receives messages `0..n` of ring `ring` through `recv`, `recv_ref` and
/// `recv_stream` in turn, checks each, then sees the producer gone. Returns the bytes
/// received.
fn consume(mut rx: spsc::Consumer, ring: u64, n: u64) -> u64 {
    let (mut want, mut buf) = (Vec::new(), Vec::new());
    let mut bytes = 0;
    for seq in 0..n {
        let len = message_len(ring, seq);
        bytes += len as u64;
        fill(&mut want, ring, seq, len);
        let check = |got: &[u8]| {
            assert!(
                got == &want[..],
                "ring {ring}, message {seq}: {} bytes received, {len} sent, or other bytes",
                got.len()
            );
        };
        match seq % 5 {
            0 => {
                let fragmented = match rx.recv_ref_timeout(PATIENCE) {
                    Ok(g) => {
                        check(&g);
                        None
                    }
                    Err(RecvTimeoutError::Fragmented { len }) => Some(len),
                    Err(e) => panic!("ring {ring}, message {seq}: recv_ref: {e}"),
                };
                if let Some(l) = fragmented {
                    // In fragments: not one slice in the ring; recv reassembles it.
                    assert_eq!(l, len as u64);
                    rx.recv_timeout(&mut buf, PATIENCE).expect("recv");
                    check(&buf);
                }
            }
            1 => {
                let mut r = rx.recv_stream_timeout(PATIENCE).expect("recv_stream");
                assert_eq!(r.len(), len as u64);
                buf.clear();
                r.read_to_end(&mut buf).expect("read a stream");
                drop(r);
                check(&buf);
            }
            _ => {
                let n = rx
                    .recv_timeout(&mut buf, PATIENCE)
                    .unwrap_or_else(|e| panic!("ring {ring}, message {seq}: recv: {e}"));
                assert_eq!(n, len);
                check(&buf);
            }
        }
    }
    // The producer has sent everything: it leaves, and we see it gone.
    let deadline = Instant::now() + PATIENCE;
    loop {
        match rx.recv_timeout(&mut buf, Duration::from_millis(100)) {
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            other => panic!("ring {ring}: after the last message: {other:?}"),
        }
    }
    assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
    bytes
}

/// Runs a producer and a consumer thread per ring, and waits for all of them.
fn run(rings: Vec<(spsc::Producer, spsc::Consumer)>, per_ring: u64, first_ring: u64) {
    let n_rings = rings.len();
    let started = Instant::now();
    let mut threads = Vec::new();
    for (i, (tx, rx)) in rings.into_iter().enumerate() {
        let ring = first_ring + i as u64;
        threads.push(thread::spawn(move || {
            produce(tx, ring, per_ring);
            0
        }));
        threads.push(thread::spawn(move || consume(rx, ring, per_ring)));
    }
    let mut bytes = 0;
    for t in threads {
        bytes += t.join().expect("a producer or consumer thread panicked");
    }
    println!(
        "{n_rings} ring(s) × {per_ring} messages ({:.1} MB), checked, in {:.2?}",
        bytes as f64 / 1e6,
        started.elapsed()
    );
}

/// Removes the segment names when dropped, also when the test fails.
struct Names(Vec<String>);

impl Drop for Names {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = shmlane::remove(n);
        }
    }
}

#[test]
#[cfg_attr(miri, ignore = "shm_open and mmap: Miri has no shared memory")]
fn two_mappings_per_ring_million_messages() {
    let total = total_messages(1_000_000);
    let names = Names(
        (0..2)
            .map(|i| format!("/shmlane-test-stress-{}-{i}", std::process::id()))
            .collect(),
    );
    let rings = names
        .0
        .iter()
        .map(|name| {
            let _ = shmlane::remove(name);
            let tx = spsc::Producer::create(name, &RingOptions::new(CAPACITY)).expect("create");
            // A second mapping of the same segment, as a consumer process would have.
            let rx = spsc::Consumer::open(name).expect("open");
            // Both are mapped: the name is no longer needed.
            shmlane::remove(name).expect("remove");
            (tx, rx)
        })
        .collect();
    run(rings, total / 2, 0);
}

#[test]
fn one_mapping_heap_ring() {
    let total = total_messages(200_000);
    // Under Miri: no membarrier system call, so symmetric fences.
    let opts = RingOptions::new(CAPACITY).asymmetric_fences(!cfg!(miri));
    let ring = spsc::channel(&opts).expect("a heap ring");
    run(vec![ring], total, 7);
}

/// MPMC over one heap mapping: 2 producer and 2 consumer threads, messages of the
/// same sizes (fragments included), each carrying its producer and sequence number and
/// a checksum of its body keyed by its length (`shmlane_support::payload`); every
/// message arrives once, at the length its producer and sequence number give, intact,
/// in its producer's order at each consumer.
#[test]
fn mpmc_two_by_two_heap_ring() {
    use shmlane_support::payload::{check_message, fill_message};
    // A message's key: its producer in the high half, its sequence number in the low.
    let key = |id: u64, seq: u64| id << 32 | seq;
    // Its length: at least the 16 bytes of key and checksum, so both are whole.
    let mpmc_len = |id: u64, seq: u64| message_len(id, seq).max(16);
    let total = total_messages(200_000);
    let opts = RingOptions::new(CAPACITY)
        .cell_size(32)
        .asymmetric_fences(!cfg!(miri));
    let (tx, rx) = shmlane::mpmc::channel(&opts).expect("a heap ring");
    let txs = vec![tx.try_clone().expect("a second producer"), tx];
    let rxs = vec![rx.try_clone().expect("a second consumer"), rx];
    let per = total / 2;
    let started = Instant::now();
    let producers: Vec<_> = txs
        .into_iter()
        .enumerate()
        .map(|(id, mut tx)| {
            thread::spawn(move || {
                let mut msg = Vec::new();
                for seq in 0..per {
                    msg.resize(mpmc_len(id as u64, seq), 0);
                    fill_message(&mut msg, key(id as u64, seq));
                    tx.send(&msg).expect("send");
                }
            })
        })
        .collect();
    let consumers: Vec<_> = rxs
        .into_iter()
        .map(|mut rx| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                let mut next = [0u64; 2];
                let mut got = Vec::new();
                loop {
                    match rx.recv_timeout(&mut buf, PATIENCE) {
                        Ok(len) => {
                            assert_eq!(len, buf.len(), "recv's length and the buffer's");
                            assert!(len >= 16, "a message of {len} bytes: none is under 16");
                            let k = u64::from_le_bytes(buf[..8].try_into().unwrap());
                            let (id, seq) = (k >> 32, k & 0xffff_ffff);
                            assert!(
                                id < 2 && seq < per && seq >= next[id as usize],
                                "{id}/{seq} out of order"
                            );
                            next[id as usize] = seq + 1;
                            // The length its key gives, and the checksum (keyed by that
                            // length) of its body: a message cut short or padded fails.
                            if let Err(e) = check_message(&buf, k, mpmc_len(id, seq)) {
                                panic!("message {id}/{seq}: {e}");
                            }
                            got.push((id, seq));
                        }
                        Err(RecvTimeoutError::Disconnected) => return got,
                        Err(e) => panic!("recv: {e}"),
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().expect("a producer thread panicked");
    }
    let mut all: Vec<(u64, u64)> = consumers
        .into_iter()
        .flat_map(|c| c.join().expect("a consumer thread panicked"))
        .collect();
    all.sort_unstable();
    let want: Vec<(u64, u64)> = (0..2)
        .flat_map(|id| (0..per).map(move |s| (id, s)))
        .collect();
    assert!(all == want, "messages lost or delivered twice");
    println!(
        "mpmc 2x2: {} messages, checked, in {:.2?}",
        all.len(),
        started.elapsed()
    );
}
