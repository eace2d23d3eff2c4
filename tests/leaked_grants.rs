//! A leaked MPMC grant (`mem::forget`) does not wedge the ring: the producer's next
//! claim pads the leaked cells first. Without that, the next claim overwrote the claim
//! note, so not even the producer's death freed those cells, and every consumer waited
//! at them for good.
//!
//! Producer process 1 leaks a grant (whole message) and a `MessageWriter` mid-message,
//! each followed by a send, and is then SIGKILLed; producer process 2 then sends
//! enough to lap the ring several times. The consumer process gets every message sent
//! after the leaks, in order.

// Real processes and POSIX shared memory: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::io::Write;
use std::time::Duration;

use common::{seg_name, Gate, Procs, SegGuard};
use shmlane::{mpmc, RecvTimeoutError, RingOptions};

const DEADLINE: Duration = Duration::from_secs(60);
const GATE: Duration = Duration::from_secs(20);
/// How long the consumer waits for one message: far more than it takes unless the
/// ring is wedged.
const RECV: Duration = Duration::from_secs(10);
const CAPACITY: usize = 4096;
/// Messages of the second producer: 32 cells each way of a 64-cell ring, so several
/// laps over the leaked cells.
const LATER: u32 = 200;

fn msg(tag: &str, i: u32) -> Vec<u8> {
    let mut m = format!("{tag}-{i:05}-").into_bytes();
    m.resize(100, b'.');
    m
}

#[test]
fn leaked_grant_does_not_wedge_the_ring() {
    let test = "mpmc-leak";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let (created, leaked, p1_dead) = (Gate::new(), Gate::new(), Gate::new());
    let mut procs = Procs::new(test, DEADLINE);
    let consumer = procs.spawn("consumer", || {
        let opts = RingOptions::new(CAPACITY).cell_size(64);
        let mut rx = mpmc::Consumer::create(&name, &opts).map_err(|e| e.to_string())?;
        created.open();
        let mut buf = Vec::new();
        let mut next = |what: &str| -> Result<Vec<u8>, String> {
            match rx.recv_timeout(&mut buf, RECV) {
                Ok(_) => Ok(buf.clone()),
                Err(e) => Err(format!("{what}: {e:?} (the ring is wedged)")),
            }
        };
        if next("after the leaked grant")? != msg("p1", 0) {
            return Err("the first message is not p1's".into());
        }
        // The leaked writer's message is cut: its first fragment was published, so its
        // reader gets `Truncated` once, then the message sent after it.
        match rx.recv_timeout(&mut buf, RECV) {
            Err(RecvTimeoutError::Truncated) => {}
            other => return Err(format!("the leaked writer's message: {other:?}")),
        }
        let mut next = |what: &str| -> Result<Vec<u8>, String> {
            match rx.recv_timeout(&mut buf, RECV) {
                Ok(_) => Ok(buf.clone()),
                Err(e) => Err(format!("{what}: {e:?} (the ring is wedged)")),
            }
        };
        if next("after the leaked writer")? != msg("p1", 1) {
            return Err("the second message is not p1's".into());
        }
        for i in 0..LATER {
            let m = next(&format!("p2 message {i}"))?;
            if m != msg("p2", i) {
                return Err(format!("p2 message {i}: {:?}", String::from_utf8_lossy(&m)));
            }
        }
        match rx.recv_timeout(&mut buf, Duration::from_millis(100)) {
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            other => return Err(format!("after the last message: {other:?}")),
        }
        Ok(String::new())
    });
    created.expect(GATE, "ring created").unwrap();
    let p1 = procs.spawn("producer 1", || {
        let mut tx = mpmc::Producer::open(&name).map_err(|e| e.to_string())?;
        let mut g = tx.reserve(100).map_err(|e| e.to_string())?;
        g.fill(1);
        std::mem::forget(g);
        tx.send(&msg("p1", 0)).map_err(|e| e.to_string())?;
        // A writer leaked after its first fragment, then one whole message.
        let mut w = tx.stream(3 * CAPACITY as u64).map_err(|e| e.to_string())?;
        w.write_all(&[2u8; CAPACITY]).map_err(|e| e.to_string())?;
        std::mem::forget(w);
        tx.send(&msg("p1", 1)).map_err(|e| e.to_string())?;
        leaked.open();
        // Killed here by the test, holding whatever it holds.
        std::thread::sleep(DEADLINE);
        Ok(String::new())
    });
    leaked.expect(GATE, "producer 1 leaked and sent").unwrap();
    procs.kill(p1);
    p1_dead.open();
    procs.spawn("producer 2", || {
        p1_dead.expect(GATE, "producer 1 dead")?;
        let mut tx = mpmc::Producer::open(&name).map_err(|e| e.to_string())?;
        for i in 0..LATER {
            tx.send(&msg("p2", i))
                .map_err(|e| format!("send {i}: {e}"))?;
        }
        Ok(String::new())
    });
    procs.wait_ok(consumer);
}

/// A grant leaked and then its producer dropped (no claim in between): the drop pads
/// the leaked cells, so another producer laps the ring over them.
#[test]
fn leaked_grant_then_drop_does_not_wedge_the_ring() {
    let name = seg_name("mpmc-leak-drop");
    let _guard = SegGuard::new(&name);
    let opts = RingOptions::new(CAPACITY).cell_size(64).max_endpoints(4);
    let mut rx = mpmc::Consumer::create(&name, &opts).unwrap();
    let mut leaker = mpmc::Producer::open(&name).unwrap();
    leaker.send(&msg("before", 0)).unwrap();
    std::mem::forget(leaker.reserve(100).unwrap());
    drop(leaker);
    let mut tx = mpmc::Producer::open(&name).unwrap();
    let mut buf = Vec::new();
    rx.recv(&mut buf).unwrap();
    assert_eq!(buf, msg("before", 0));
    for i in 0..LATER {
        tx.send(&msg("later", i)).unwrap();
        match rx.recv_timeout(&mut buf, RECV) {
            Ok(_) => assert_eq!(buf, msg("later", i)),
            Err(RecvTimeoutError::Timeout) => panic!("wedged at message {i}"),
            Err(e) => panic!("message {i}: {e}"),
        }
    }
}
