//! Claim: **messages of any size, in bounded memory, with the receiver's own limit**: a
//! message larger than half the ring travels in fragments and streams (`stream` /
//! `recv_stream`) in memory bounded by the ring, not the message; `recv_ref` refuses a
//! message in fragments (`Fragmented`) and leaves it for `recv`; `recv` refuses a
//! message longer than the receiver's `max_message` before allocating, and leaves it in
//! the ring for `recv_stream`; that limit is the opener's own, never raised by what the
//! creator stored; and a reader dropped partway discards the rest of its message.
//!
//! - top level: 1 GiB through a 64 KiB ring between two processes, produced chunk by
//!   chunk with `stream` + `io::Write`, consumed with `recv_stream` into one fixed
//!   64 KiB buffer. Every byte is checked at its position in the consumer, and both
//!   sides' checksums are compared by the parent. The peak resident memory of both
//!   processes (VmHWM, reset at the start through `/proc/self/clear_refs`, and the reset
//!   checked: a peak raised on purpose must drop) must stay within [`BOUND`]: the ring
//!   and its header, which each process maps, and [`SLACK`] for what the kernel's
//!   counters and the stack add, far below one message;
//! - [`opener_cap`], [`dropped_reader`]: between processes;
//! - [`spsc_threads`]: over the heap backing, small enough for Miri.

// The tests that fork are ignored under Miri (no fork); those over the heap backing run
// there (`scripts/check-nightly.sh`).

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{check_stream, fill_stream, rss_and_peak, seg_name, Gate, Procs, Rng, SegGuard};
use shmlane::{spsc, RecvError, RingOptions};

const RING: usize = 64 << 10;
const CHUNK: usize = 64 << 10;
/// The header before the data region.
const HEADER: u64 = 4096;
/// What a process's resident size may grow by besides the ring: the kernel counts
/// resident pages per CPU in batches (up to 64 pages a CPU before the total sees them),
/// and the stack and the allocator may take a few pages.
const SLACK: u64 = 1 << 20;
/// "Memory bounded by the ring": how much a process's peak resident size may grow
/// while a message of any size streams through a ring of [`RING`] bytes.
const BOUND: u64 = RING as u64 + HEADER + SLACK;

/// A checksum of a byte stream that does not depend on how the stream is cut into
/// chunks: bytes are gathered into the little-endian words at their absolute offsets.
#[derive(Debug, Default)]
struct StreamHash {
    h: u64,
    /// Bytes of the word being gathered, and how many.
    pending: [u8; 8],
    npending: usize,
}

impl StreamHash {
    fn word(&mut self, w: u64) {
        self.h = (self.h.rotate_left(23) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn update(&mut self, mut bytes: &[u8]) {
        while self.npending != 0 && !bytes.is_empty() {
            self.pending[self.npending] = bytes[0];
            self.npending += 1;
            bytes = &bytes[1..];
            if self.npending == 8 {
                self.word(u64::from_le_bytes(self.pending));
                self.npending = 0;
            }
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        for &b in words.remainder() {
            self.pending[self.npending] = b;
            self.npending += 1;
        }
    }

    fn finish(mut self, len: u64) -> u64 {
        if self.npending > 0 {
            self.pending[self.npending..].fill(0);
            self.word(u64::from_le_bytes(self.pending));
        }
        self.word(len);
        common::splitmix64(self.h)
    }
}

/// Whether the peak resident size (VmHWM) was reset, so that it measures what comes
/// after.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Peak {
    /// Reset, and the reset seen to work.
    Reset,
    /// This kernel has no way to reset it (no `/proc/self/clear_refs`, or one that does
    /// not know `5`, before Linux 4.0): only the current size can be checked.
    Unsupported(String),
}

/// Resets this process's peak resident size to its current size, and proves that it
/// did: first it raises the peak on purpose (16 MiB mapped, touched and unmapped),
/// then resets it, and the peak must have come down to the current size. An error if
/// the kernel accepts the reset and the peak stays up; [`Peak::Unsupported`] only
/// where the kernel lacks the reset.
fn reset_peak() -> Result<Peak, String> {
    const RAISE: usize = 16 << 20;
    let (rss0, _) = rss_and_peak();
    // SAFETY: a private anonymous mapping at an address the kernel chooses; written
    // only inside its RAISE bytes, and unmapped before anything else can see it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            RAISE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        for page in (0..RAISE).step_by(4096) {
            p.cast::<u8>().add(page).write_volatile(1);
        }
        libc::munmap(p, RAISE);
    }
    let (rss1, raised) = rss_and_peak();
    if raised < rss0 + RAISE as u64 / 2 {
        return Err(format!(
            "touching {RAISE} bytes did not raise VmHWM (VmRSS {rss0}, then VmRSS {rss1}, VmHWM {raised})"
        ));
    }
    if let Err(e) = std::fs::write("/proc/self/clear_refs", b"5") {
        return match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::EINVAL) => Ok(Peak::Unsupported(format!(
                "this kernel cannot reset the peak resident size (write of 5 to \
                 /proc/self/clear_refs: {e})"
            ))),
            _ => Err(format!("write of 5 to /proc/self/clear_refs: {e}")),
        };
    }
    let (rss, hwm) = rss_and_peak();
    if hwm >= raised || hwm > rss + SLACK {
        return Err(format!(
            "the kernel accepted the reset of the peak, but VmHWM is {hwm} (raised to {raised} \
             on purpose before it; VmRSS {rss})"
        ));
    }
    Ok(Peak::Reset)
}

/// Memory growth of this process since `rss0`: the larger of the peak (if it was reset
/// at the start) and the current resident size.
fn growth(rss0: u64, peak: &Peak) -> (u64, u64, u64) {
    let (rss, hwm) = rss_and_peak();
    let top = if *peak == Peak::Reset {
        rss.max(hwm)
    } else {
        rss
    };
    (rss, hwm, top.saturating_sub(rss0))
}

/// `peak_reset=yes`, or `peak_reset=no` and why, for a child's report.
fn peak_field(peak: &Peak) -> String {
    match peak {
        Peak::Reset => "peak_reset=yes".into(),
        Peak::Unsupported(why) => format!("peak_reset=no why: {why}"),
    }
}

/// `key=value` from a child's report.
fn field<'a>(report: &'a str, key: &str) -> &'a str {
    report
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in report {report:?}"))
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn stream_producer(name: &str, total: u64, created: &Gate) -> Result<String, String> {
    let mut tx = spsc::Producer::create(name, &RingOptions::new(RING))
        .map_err(|e| format!("create: {e}"))?;
    let mut chunk = vec![0u8; CHUNK];
    fill_stream(&mut chunk, 0); // touch every page before measuring
    created.open();
    let mut sizes = Rng::new(0x57_4ea3);
    let mut hash = StreamHash::default();
    let peak = reset_peak()?;
    let (rss0, _) = rss_and_peak();
    let t0 = Instant::now();
    let mut w = tx.stream(total).map_err(|e| format!("stream: {e}"))?;
    let mut off = 0u64;
    while off < total {
        // Chunks of random sizes, so writes start and end anywhere in a fragment.
        let k = sizes.range(1, CHUNK).min((total - off) as usize);
        fill_stream(&mut chunk[..k], off);
        hash.update(&chunk[..k]);
        w.write_all(&chunk[..k])
            .map_err(|e| format!("write at {off}: {e}"))?;
        off += k as u64;
    }
    w.finish().map_err(|e| format!("finish: {e}"))?;
    let secs = t0.elapsed().as_secs_f64();
    let (rss, hwm, grew) = growth(rss0, &peak);
    if grew > BOUND {
        return Err(format!(
            "producer memory grew by {grew} bytes, more than the ring bounds it to ({BOUND}): \
             VmRSS {rss0} -> {rss}, VmHWM {hwm}, {}",
            peak_field(&peak)
        ));
    }
    Ok(format!(
        "hash={:#x} secs={secs:.3} rss0={rss0} rss={rss} hwm={hwm} growth={grew} {}",
        hash.finish(total),
        peak_field(&peak)
    ))
}

fn stream_consumer(name: &str, total: u64, created: &Gate) -> Result<String, String> {
    created.expect(Duration::from_secs(30), "ring created")?;
    let mut rx = spsc::Consumer::open(name).map_err(|e| format!("open: {e}"))?;
    let mut buf = vec![0u8; CHUNK];
    fill_stream(&mut buf, 0); // touch every page before measuring
    let mut hash = StreamHash::default();
    let peak = reset_peak()?;
    let (rss0, _) = rss_and_peak();
    let mut r = rx.recv_stream().map_err(|e| format!("recv_stream: {e}"))?;
    if r.len() != total {
        return Err(format!(
            "recv_stream: len() = {}, expected {total}",
            r.len()
        ));
    }
    let t0 = Instant::now();
    let mut off = 0u64;
    let mut reads = 0u64;
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| format!("read at {off}: {e}"))?;
        if n == 0 {
            break;
        }
        reads += 1;
        if let Err(bad) = check_stream(&buf[..n], off) {
            return Err(format!(
                "wrong byte at stream offset {bad} (read of {n} at {off})"
            ));
        }
        hash.update(&buf[..n]);
        off += n as u64;
        if off > total {
            return Err(format!("read {off} bytes of a {total}-byte message"));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    drop(r);
    if off != total {
        return Err(format!("message ended after {off} of {total} bytes"));
    }
    let (rss, hwm, grew) = growth(rss0, &peak);
    if grew > BOUND {
        return Err(format!(
            "consumer memory grew by {grew} bytes, more than the ring bounds it to ({BOUND}): \
             VmRSS {rss0} -> {rss}, VmHWM {hwm}, {}",
            peak_field(&peak)
        ));
    }
    let mut tail = Vec::new();
    match rx.recv(&mut tail) {
        Err(RecvError::Disconnected) => {}
        other => return Err(format!("after the message: {other:?}")),
    }
    Ok(format!(
        "hash={:#x} secs={secs:.3} reads={reads} rss0={rss0} rss={rss} hwm={hwm} growth={grew} {}",
        hash.finish(total),
        peak_field(&peak)
    ))
}

#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn one_gib_through_64k_ring_in_bounded_memory() {
    const TOTAL: u64 = 1 << 30;
    let _serial = common::heavy();
    let test = "stream-1g";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let created = Gate::new();
    let mut procs = Procs::new(test, Duration::from_secs(90));
    procs.spawn("producer", || stream_producer(&name, TOTAL, &created));
    procs.spawn("consumer", || stream_consumer(&name, TOTAL, &created));
    let reports = procs.wait_all_ok();
    let (p, c) = (&reports[0], &reports[1]);
    println!("producer: {p}");
    println!("consumer: {c}");
    assert_eq!(
        field(p, "hash"),
        field(c, "hash"),
        "the consumer's checksum differs from the producer's"
    );
    let secs: f64 = field(c, "secs").parse().unwrap();
    println!(
        "1 GiB through a 64 KiB ring: {:.2} s, {:.3} GB/s ({:.2} GiB/s); RSS growth: consumer {:.2} MiB, producer {:.2} MiB",
        secs,
        TOTAL as f64 / secs / 1e9,
        TOTAL as f64 / secs / (1u64 << 30) as f64,
        mib(field(c, "growth").parse().unwrap()),
        mib(field(p, "growth").parse().unwrap()),
    );
    for r in [p, c] {
        let grew: u64 = field(r, "growth").parse().unwrap();
        assert!(grew <= BOUND, "memory grew by {grew} bytes: {r}");
        if field(r, "peak_reset") != "yes" {
            // Past the test harness's capture: a skipped part must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "one_gib_through_64k_ring_in_bounded_memory: the PEAK was NOT checked, only \
                 the resident size at the end: {r}"
            );
        }
    }
}

/// A message longer than the consumer's `max_message` is refused by `recv` before
/// anything is allocated, stays in the ring, and then streams out with `recv_stream`.
#[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
#[test]
fn recv_refuses_oversized_message_without_allocating() {
    const TOTAL: u64 = 64 << 20;
    const LIMIT: u64 = 1 << 20;
    let test = "stream-cap";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let created = Gate::new();
    let mut procs = Procs::new(test, Duration::from_secs(60));
    procs.spawn("producer", || {
        let mut tx = spsc::Producer::create(&name, &RingOptions::new(RING).max_message(LIMIT))
            .map_err(|e| format!("create: {e}"))?;
        created.open();
        let mut chunk = vec![0u8; CHUNK];
        let mut w = tx.stream(TOTAL).map_err(|e| format!("stream: {e}"))?;
        let mut off = 0;
        while off < TOTAL {
            fill_stream(&mut chunk, off);
            w.write_all(&chunk).map_err(|e| format!("write: {e}"))?;
            off += CHUNK as u64;
        }
        w.finish().map_err(|e| format!("finish: {e}"))?;
        tx.send(b"next").map_err(|e| format!("send: {e}"))?;
        Ok(String::new())
    });
    procs.spawn("consumer", || {
        created.expect(Duration::from_secs(30), "ring created")?;
        let mut rx = spsc::Consumer::open(&name).map_err(|e| format!("open: {e}"))?;
        assert_eq!(
            rx.max_message(),
            LIMIT,
            "max_message comes from the segment"
        );
        let peak = reset_peak()?;
        let (rss0, _) = rss_and_peak();
        let mut buf = Vec::new();
        for _ in 0..3 {
            match rx.recv(&mut buf) {
                Err(RecvError::TooLarge { len, max }) if len == TOTAL && max == LIMIT => {}
                other => return Err(format!("recv of the oversized message: {other:?}")),
            }
            assert_eq!(buf.capacity(), 0, "nothing allocated for a refused message");
        }
        let mut r = rx.recv_stream().map_err(|e| format!("recv_stream: {e}"))?;
        assert_eq!(r.len(), TOTAL);
        let mut chunk = vec![0u8; 4096 + 3];
        let mut off = 0;
        loop {
            let n = r.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                break;
            }
            check_stream(&chunk[..n], off).map_err(|at| format!("wrong byte at {at}"))?;
            off += n as u64;
        }
        drop(r);
        assert_eq!(off, TOTAL);
        let (_, _, grew) = growth(rss0, &peak);
        assert!(
            grew <= BOUND,
            "consumer memory grew by {grew} bytes, {}",
            peak_field(&peak)
        );
        assert_eq!(rx.recv(&mut buf), Ok(4));
        assert_eq!(buf, b"next");
        Ok(format!("growth={grew} {}", peak_field(&peak)))
    });
    let reports = procs.wait_all_ok();
    println!("consumer: {}", reports[1]);
    if field(&reports[1], "peak_reset") != "yes" {
        // Past the test harness's capture: a skipped part must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "recv_refuses_oversized_message_without_allocating: the PEAK was NOT checked, \
             only the resident size at the end: {}",
            reports[1]
        );
    }
}

mod opener_cap {
    //! The creator of a ring does not decide how much an opener's `recv` allocates: the
    //! `max_message` stored in the segment only lowers the opener's own limit
    //! ([`shmlane::DEFAULT_MAX_MESSAGE`] for `open`, the options' `max_message` for
    //! `create_or_open`), never raises it.

    use crate::common::{seg_name, Gate, Procs, SegGuard};
    use shmlane::{spsc, RecvTimeoutError, RingOptions, DEFAULT_MAX_MESSAGE};
    use std::io::Write;
    use std::time::Duration;

    const DEADLINE: Duration = Duration::from_secs(30);

    const GATE: Duration = Duration::from_secs(20);

    /// A creator that asks for no cap at all, and a message just over the opener's: the
    /// opener's `recv` refuses it from its BEGIN header, without allocating.
    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
    #[test]
    fn opener_keeps_its_own_cap_whatever_the_creator_stored() {
        let test = "maxmsg-open";
        let name = seg_name(test);
        let _seg = SegGuard::new(&name);
        let (created, received) = (Gate::new(), Gate::new());
        let mut procs = Procs::new(test, DEADLINE);
        let producer = procs.spawn("producer", || {
            let opts = RingOptions::new(1 << 16).max_message(u64::MAX);
            let mut tx = spsc::Producer::create(&name, &opts).map_err(|e| e.to_string())?;
            created.open();
            // Declares DEFAULT_MAX_MESSAGE + 1 bytes; the first fragment (with that total
            // in its BEGIN header) is published once full.
            let mut w = tx
                .stream(DEFAULT_MAX_MESSAGE + 1)
                .map_err(|e| e.to_string())?;
            w.write_all(&[7u8; 1 << 15]).map_err(|e| e.to_string())?;
            received.expect(GATE, "the consumer's answer")?;
            Ok(String::new())
        });
        let consumer = procs.spawn("consumer", || {
            created.expect(GATE, "ring created")?;
            let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
            let cap = rx.max_message();
            if cap != DEFAULT_MAX_MESSAGE {
                return Err(format!("the opener's cap is {cap}, the creator's choice"));
            }
            let mut buf = Vec::new();
            let got = rx.recv_timeout(&mut buf, Duration::from_secs(5));
            received.open();
            if got
                != Err(RecvTimeoutError::TooLarge {
                    len: DEFAULT_MAX_MESSAGE + 1,
                    max: DEFAULT_MAX_MESSAGE,
                })
            {
                return Err(format!("recv of an over-cap message: {got:?}"));
            }
            if buf.capacity() as u64 > DEFAULT_MAX_MESSAGE {
                return Err(format!("recv allocated {} bytes", buf.capacity()));
            }
            Ok(String::new())
        });
        procs.wait_ok(consumer);
        procs.wait_ok(producer);
    }

    /// `create_or_open` that opens takes the smaller of the ring's cap and its own
    /// options' `max_message`.
    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
    #[test]
    fn create_or_open_keeps_its_own_cap() {
        let test = "maxmsg-coo";
        let name = seg_name(test);
        let _seg = SegGuard::new(&name);
        let created = Gate::new();
        let mut procs = Procs::new(test, DEADLINE);
        let producer = procs.spawn("producer", || {
            let opts = RingOptions::new(4096).max_message(1 << 20);
            let _tx = spsc::Producer::create(&name, &opts).map_err(|e| e.to_string())?;
            created.open();
            std::thread::sleep(Duration::from_secs(1));
            Ok(String::new())
        });
        let consumer = procs.spawn("consumer", || {
            created.expect(GATE, "ring created")?;
            let lower = RingOptions::new(4096).max_message(1000);
            let rx = spsc::Consumer::create_or_open(&name, &lower).map_err(|e| e.to_string())?;
            if rx.max_message() != 1000 {
                return Err(format!("cap {} after asking for 1000", rx.max_message()));
            }
            Ok(String::new())
        });
        procs.wait_ok(consumer);
        procs.wait_ok(producer);
    }
}

mod dropped_reader {
    //! A reader dropped partway, between real processes.

    use crate::common::{check_message, message, seg_name, Gate, Procs, SegGuard};
    use shmlane::{spsc, RecvError, RingOptions};
    use std::time::Duration;

    const DEADLINE: Duration = Duration::from_secs(30);

    /// How long a gate may take to open (the peer's process must start and set up).
    const GATE: Duration = Duration::from_secs(20);

    fn opts(capacity: usize) -> RingOptions {
        RingOptions::new(capacity)
    }

    /// A reader dropped partway through a message discards the rest of it; the next
    /// receive gets the next message.
    #[cfg_attr(miri, ignore = "forks processes: Miri has no fork")]
    #[test]
    fn reader_dropped_midway_discards_the_rest() {
        use std::io::Read;
        let test = "sem-reader-drop";
        let name = seg_name(test);
        let _seg = SegGuard::new(&name);
        let created = Gate::new();
        let mut procs = Procs::new(test, DEADLINE);
        procs.spawn("producer", || {
            let mut tx = spsc::Producer::create(&name, &opts(4096)).map_err(|e| e.to_string())?;
            created.open();
            for seq in 0..50u64 {
                let len = if seq % 2 == 0 { 20_000 } else { 100 };
                tx.send(&message(seq, len))
                    .map_err(|e| format!("send {seq}: {e}"))?;
            }
            Ok(String::new())
        });
        procs.spawn("consumer", || {
            created.expect(GATE, "ring created")?;
            let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            for seq in (0..50u64).step_by(2) {
                {
                    let mut r = rx.recv_stream().map_err(|e| format!("recv_stream: {e}"))?;
                    assert_eq!(r.len(), 20_000);
                    // Read a part (0 to 6,000 bytes), then drop the reader.
                    let mut part = vec![0u8; (seq as usize * 250) % 6001];
                    r.read_exact(&mut part)
                        .map_err(|e| format!("read {seq}: {e}"))?;
                    if part.len() >= 8 {
                        assert_eq!(part[..8], seq.to_le_bytes());
                    }
                }
                assert_eq!(rx.recv(&mut buf), Ok(100), "after message {seq}");
                check_message(&buf, seq + 1, 100)?;
            }
            assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
            Ok(String::new())
        });
        procs.wait_all_ok();
    }
}

mod spsc_threads {
    //! Fragments, `max_message` and streams over the private heap backing, two threads: small
    //! enough for Miri.

    use shmlane::{spsc, RecvError, RingOptions};
    use std::io::{Read, Write};
    use std::thread;

    /// Options for a ring of `capacity` bytes. Under Miri: symmetric fences (Miri has no
    /// `membarrier` system call); endpoints park on the futex as they do outside Miri.
    fn opts(capacity: usize) -> RingOptions {
        RingOptions::new(capacity).asymmetric_fences(!cfg!(miri))
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
}
