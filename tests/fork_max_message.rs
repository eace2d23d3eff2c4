//! The creator of a ring does not decide how much an opener's `recv` allocates: the
//! `max_message` stored in the segment only lowers the opener's own limit
//! ([`shmlane::DEFAULT_MAX_MESSAGE`] for `open`, the options' `max_message` for
//! `create_or_open`), never raises it.

// Real processes and POSIX shared memory: Linux only, and not under Miri (no fork).
#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::io::Write;
use std::time::Duration;

use common::{seg_name, Gate, Procs, SegGuard};
use shmlane::{spsc, RecvTimeoutError, RingOptions, DEFAULT_MAX_MESSAGE};

const DEADLINE: Duration = Duration::from_secs(30);
const GATE: Duration = Duration::from_secs(20);

/// A creator that asks for no cap at all, and a message just over the opener's: the
/// opener's `recv` refuses it from its BEGIN header, without allocating.
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
