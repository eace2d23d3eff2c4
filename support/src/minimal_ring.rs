//! The minimal SPSC ring: the yardstick of one-way throughput for a byte ring in
//! shared memory, written the obvious way and fairly (issue 20).
//!
//! One shared anonymous mapping, inherited by forked children: a page of cursors
//! (`tail` and `head`, each on its own 128-byte pair of lines), then the data region,
//! a power of two. A record is a `u32` length and the payload, padded to 8 bytes; a
//! record that does not fit before the end of the region is preceded by a wrap mark
//! (length `u32::MAX`) and starts at the beginning. That is all: no header to
//! validate, no liveness, no sleeping, no fragments, no corruption checks.
//!
//! - The producer keeps its own `tail` and a cached `head`; it reads `head` (Acquire)
//!   only when the cached value says the record does not fit, writes the record, then
//!   publishes `tail` (Release) after each message.
//! - The consumer keeps its own `head` and a cached `tail`; when it has consumed every
//!   record up to the cached `tail`, it publishes `head` (Release) and reads `tail`
//!   (Acquire) again: it consumes every record already published before it looks
//!   again, and gives room back once per batch.
//!
//! Both spin (with a spin-loop hint) and give up with an error once `deadline_ns`
//! (CLOCK_MONOTONIC, [`crate::clock::now_ns`]) has passed, checked every 2^16 spins.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::now_ns;
use crate::mem::SharedMap;

/// Bytes before the data region: the two cursors, each on its own pair of lines.
const CURSORS: usize = 4096;
const TAIL_AT: usize = 0;
const HEAD_AT: usize = 128;
/// The length word that says "nothing more before the end: go on at the start".
const WRAP: u32 = u32::MAX;

/// The shared mapping of one minimal ring; [`MinimalRing::ends`] gives its two ends.
#[derive(Debug)]
pub struct MinimalRing {
    map: SharedMap,
    capacity: usize,
}

impl MinimalRing {
    /// A ring whose data region is `capacity` bytes: a power of two, at least 64.
    pub fn new(capacity: usize) -> io::Result<Self> {
        if !capacity.is_power_of_two() || capacity < 64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a minimal ring of {capacity} bytes: a power of two of 64 or more"),
            ));
        }
        let map = SharedMap::new(CURSORS + capacity)?;
        Ok(MinimalRing { map, capacity })
    }

    /// The data region's size in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The largest message a record holds: half the ring, less the length word.
    pub fn max_message(&self) -> usize {
        self.capacity / 2 - 4
    }

    /// `(producer, consumer)`. Each is valid while this ring is, or, in a forked
    /// child that inherited the mapping, for the child's life; use each in one process
    /// (or thread) only, and make one pair per ring. Their waits give up with an error
    /// once `deadline_ns` has passed.
    pub fn ends(&self, deadline_ns: u64) -> (MinimalTx, MinimalRx) {
        let base = self.map.ptr();
        let cursors = Cursors { base };
        // SAFETY: the mapping is `CURSORS + capacity` bytes long.
        let data = unsafe { base.add(CURSORS) };
        let tx = MinimalTx {
            cursors,
            data,
            capacity: self.capacity,
            tail: 0,
            head_seen: 0,
            deadline_ns,
        };
        let rx = MinimalRx {
            cursors,
            data,
            capacity: self.capacity,
            head: 0,
            tail_seen: 0,
            deadline_ns,
        };
        (tx, rx)
    }
}

/// The cursor page of a mapping.
#[derive(Clone, Copy, Debug)]
struct Cursors {
    /// Page-aligned start of the mapping, which outlives every end (see
    /// [`MinimalRing::ends`]).
    base: *mut u8,
}

impl Cursors {
    fn word(self, at: usize) -> &'static AtomicU64 {
        // SAFETY: `at` is TAIL_AT or HEAD_AT, 8-aligned offsets inside the cursor page
        // of a shared mapping that stays mapped while any end lives; the words are
        // accessed only atomically, by both processes.
        unsafe { AtomicU64::from_ptr(self.base.add(at).cast()) }
    }
    fn tail(self) -> &'static AtomicU64 {
        self.word(TAIL_AT)
    }
    fn head(self) -> &'static AtomicU64 {
        self.word(HEAD_AT)
    }
}

/// Spins once, and every 2^16 spins fails if `deadline_ns` has passed.
#[inline]
fn spin(spins: &mut u32, deadline_ns: u64, what: &str) -> io::Result<()> {
    std::hint::spin_loop();
    *spins = spins.wrapping_add(1);
    if *spins % (1 << 16) == 0 && now_ns() > deadline_ns {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("minimal ring: timed out {what}"),
        ));
    }
    Ok(())
}

/// The size in the ring of a record of `len` payload bytes.
#[inline]
fn record_size(len: usize) -> usize {
    (4 + len).next_multiple_of(8)
}

/// The producing end of a [`MinimalRing`].
#[derive(Debug)]
pub struct MinimalTx {
    cursors: Cursors,
    /// The data region, `capacity` bytes (8-aligned).
    data: *mut u8,
    capacity: usize,
    /// Bytes written since the start (ours; published after each message).
    tail: u64,
    /// The consumer's `head` as last read: `tail - head_seen <= capacity`.
    head_seen: u64,
    deadline_ns: u64,
}

// SAFETY: the end owns its position in a mapping shared between processes; moving it
// to another thread changes nothing (it is used by one thread at a time).
unsafe impl Send for MinimalTx {}

impl MinimalTx {
    /// Sends `msg` (at most [`MinimalRing::max_message`] bytes), spinning while the
    /// ring is full.
    #[inline]
    pub fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let size = record_size(msg.len());
        if size > self.capacity / 2 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {}-byte message in a {}-byte minimal ring",
                    msg.len(),
                    self.capacity
                ),
            ));
        }
        let mask = self.capacity as u64 - 1;
        let to_end = self.capacity - (self.tail & mask) as usize;
        // A record that would cross the end goes at the start, after a wrap mark.
        let skip = if size > to_end { to_end } else { 0 };
        let need = (skip + size) as u64;
        let mut spins = 0u32;
        while self.tail + need - self.head_seen > self.capacity as u64 {
            // Acquire: pairs with the consumer's Release store of `head`; its reads of
            // the records before it are done.
            self.head_seen = self.cursors.head().load(Ordering::Acquire);
            if self.tail + need - self.head_seen <= self.capacity as u64 {
                break;
            }
            spin(&mut spins, self.deadline_ns, "waiting for room")?;
        }
        if skip > 0 {
            // SAFETY: `tail & mask` is 8-aligned and at least 8 bytes before the end;
            // the consumer has released these bytes (`head_seen`).
            unsafe {
                self.data
                    .add((self.tail & mask) as usize)
                    .cast::<u32>()
                    .write(WRAP)
            };
            self.tail += skip as u64;
        }
        let at = (self.tail & mask) as usize;
        // SAFETY: the record's `size` bytes from `at` are inside the region (it fits
        // before the end) and released by the consumer; `at` is 8-aligned.
        unsafe {
            let p = self.data.add(at);
            p.cast::<u32>().write(msg.len() as u32);
            std::ptr::copy_nonoverlapping(msg.as_ptr(), p.add(4), msg.len());
        }
        self.tail += size as u64;
        // Release: pairs with the consumer's Acquire load of `tail`; the record is
        // written before it.
        self.cursors.tail().store(self.tail, Ordering::Release);
        Ok(())
    }
}

/// The consuming end of a [`MinimalRing`].
#[derive(Debug)]
pub struct MinimalRx {
    cursors: Cursors,
    data: *mut u8,
    capacity: usize,
    /// Bytes consumed since the start (ours; published once per batch).
    head: u64,
    /// The producer's `tail` as last read.
    tail_seen: u64,
    deadline_ns: u64,
}

// SAFETY: as for `MinimalTx`.
unsafe impl Send for MinimalRx {}

impl MinimalRx {
    /// Receives the next message into `buf` (replacing its contents) and returns its
    /// length, spinning while the ring is empty.
    #[inline]
    pub fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let mask = self.capacity as u64 - 1;
        let mut spins = 0u32;
        loop {
            if self.head == self.tail_seen {
                // Everything published so far is consumed: give the room back, then
                // look for more. Release pairs with the producer's Acquire load of
                // `head`: our reads of the records come before it.
                self.cursors.head().store(self.head, Ordering::Release);
                loop {
                    // Acquire: pairs with the producer's Release store of `tail`.
                    self.tail_seen = self.cursors.tail().load(Ordering::Acquire);
                    if self.tail_seen != self.head {
                        break;
                    }
                    spin(&mut spins, self.deadline_ns, "waiting for a message")?;
                }
                if self.tail_seen - self.head > self.capacity as u64 {
                    return Err(io::Error::other(format!(
                        "minimal ring: tail {} is more than a ring ahead of head {}",
                        self.tail_seen, self.head
                    )));
                }
            }
            let at = (self.head & mask) as usize;
            // SAFETY: `at` is 8-aligned inside the region, and the producer wrote the
            // record there before publishing a `tail` past it (Acquire above).
            let len = unsafe { self.data.add(at).cast::<u32>().read() };
            if len == WRAP {
                self.head += (self.capacity - at) as u64;
                continue;
            }
            let len = len as usize;
            let size = record_size(len);
            if size > self.capacity - at || self.head + size as u64 > self.tail_seen {
                return Err(io::Error::other(format!(
                    "minimal ring: a record of {len} bytes at {at} runs past what was \
                     published"
                )));
            }
            buf.clear();
            buf.reserve(len);
            // SAFETY: the payload's `len` bytes follow the length word inside the
            // published record; `buf` has room for `len` bytes, which we then mark
            // initialised.
            unsafe {
                std::ptr::copy_nonoverlapping(self.data.add(at + 4), buf.as_mut_ptr(), len);
                buf.set_len(len);
            }
            self.head += size as u64;
            return Ok(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_every_size_arrive_in_order_across_wraps() {
        let ring = MinimalRing::new(4096).expect("ring");
        let (mut tx, mut rx) = ring.ends(now_ns() + 10_000_000_000);
        let total = 5_000u32;
        let sender = std::thread::spawn(move || {
            for i in 0..total {
                let len = (i as usize * 37) % 2000;
                let msg: Vec<u8> = (0..len).map(|k| (k as u32 ^ i) as u8).collect();
                tx.send(&msg).expect("send");
            }
        });
        let mut buf = Vec::new();
        for i in 0..total {
            let len = rx.recv(&mut buf).expect("recv");
            assert_eq!(len, (i as usize * 37) % 2000, "length of message {i}");
            assert!(
                buf.iter()
                    .enumerate()
                    .all(|(k, &b)| b == (k as u32 ^ i) as u8),
                "content of message {i}"
            );
        }
        sender.join().expect("sender");
    }

    #[test]
    fn too_large_and_bad_sizes_are_errors() {
        assert!(MinimalRing::new(1000).is_err());
        let ring = MinimalRing::new(1024).expect("ring");
        assert_eq!(ring.max_message(), 508);
        let (mut tx, _rx) = ring.ends(now_ns() + 1_000_000_000);
        assert!(tx.send(&[0; 509]).is_err());
        assert!(tx.send(&[0; 508]).is_ok());
    }

    #[test]
    fn an_empty_ring_times_out() {
        let ring = MinimalRing::new(1024).expect("ring");
        let (_tx, mut rx) = ring.ends(now_ns() + 50_000_000);
        let e = rx.recv(&mut Vec::new()).expect_err("nothing was sent");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
