//! Timed receives return near their deadline even while a peer process keeps
//! publishing records that make no progress: the rest of a message whose reader was
//! dropped (strays, which every receive skips).
//!
//! The producer process streams one endless message; the consumer process reads its
//! first bytes, drops the reader, and from then on every record is a stray. Each timed
//! receive must return `Timeout` while the strays keep coming.

// Real processes and POSIX shared memory: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{seg_name, Gate, Procs, SegGuard};
use shmlane::{spsc, RecvTimeoutError, RingOptions};

const DEADLINE: Duration = Duration::from_secs(40);
const GATE: Duration = Duration::from_secs(20);
/// How long the producer streams: far longer than any timed call may take.
const STREAM_FOR: Duration = Duration::from_secs(25);
const TIMEOUT: Duration = Duration::from_millis(50);
/// A bound no timed call of `TIMEOUT` comes near unless it ignores its deadline (it
/// then runs until the producer stops, `STREAM_FOR`).
const RETURNED_WITHIN: Duration = Duration::from_secs(10);

#[test]
fn timed_receives_return_while_a_peer_streams_strays() {
    let test = "deadline-strays";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let created = Gate::new();
    let mut procs = Procs::new(test, DEADLINE);
    let producer = procs.spawn("producer", || {
        let mut tx =
            spsc::Producer::create(&name, &RingOptions::new(4096)).map_err(|e| e.to_string())?;
        created.open();
        let mut w = tx.stream(u64::MAX / 2).map_err(|e| e.to_string())?;
        let chunk = [0x5au8; 256];
        let t0 = Instant::now();
        while t0.elapsed() < STREAM_FOR {
            // Fails once the consumer has left (the test is over).
            if w.write_all(&chunk).is_err() {
                break;
            }
        }
        Ok(String::new())
    });
    let consumer = procs.spawn("consumer", || {
        created.expect(GATE, "ring created")?;
        let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
        {
            let mut r = rx.recv_stream().map_err(|e| format!("recv_stream: {e}"))?;
            let mut first = [0u8; 16];
            r.read_exact(&mut first).map_err(|e| e.to_string())?;
        }
        // Every record from here on is a stray.
        let mut buf = Vec::new();
        for round in 0..3 {
            let t0 = Instant::now();
            let got = rx.recv_timeout(&mut buf, TIMEOUT);
            let took = t0.elapsed();
            if got != Err(RecvTimeoutError::Timeout) || took > RETURNED_WITHIN {
                return Err(format!("recv_timeout {round}: {got:?} after {took:?}"));
            }
            let t0 = Instant::now();
            let got = rx.recv_ref_timeout(TIMEOUT).map(|g| g.len());
            let took = t0.elapsed();
            if got != Err(RecvTimeoutError::Timeout) || took > RETURNED_WITHIN {
                return Err(format!("recv_ref_timeout {round}: {got:?} after {took:?}"));
            }
            let t0 = Instant::now();
            let got = rx.recv_stream_timeout(TIMEOUT).map(|r| r.len());
            let took = t0.elapsed();
            if got != Err(RecvTimeoutError::Timeout) || took > RETURNED_WITHIN {
                return Err(format!(
                    "recv_stream_timeout {round}: {got:?} after {took:?}"
                ));
            }
        }
        Ok(String::new())
    });
    procs.wait_ok(consumer);
    procs.kill(producer);
}
