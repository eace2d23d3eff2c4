//! What the children do, the same for every mechanism: ping-pong, a one-way stream
//! of fixed-size messages, and one long message in chunks. Every receiver copies
//! each message into its own buffer and checks it: the sequence number in the first
//! 8 bytes and a tag byte at the end.
//!
//! Each phase (warm-up, timed part) lasts at least a number of messages and then
//! until its time is up; the sender marks the phase's last message with
//! [`LAST`](shmlane_support::stamp::LAST) in its sequence word, so the receiver knows
//! where the phase ends without knowing its length in advance. Slow mechanisms so get
//! fewer messages, fast ones more, and a run takes a predictable time.
//!
//! The loops are generic over the endpoint traits, so each mechanism gets its own
//! monomorphised copy (no virtual call per message).

use std::io::{Read, Write};
use std::sync::atomic::Ordering;

use super::process::{now_ns, Control, ControlMap};
pub(crate) use shmlane_support::stamp::{check, message, stamp};

/// One side of a round-trip pair.
pub(crate) trait Duplex {
    fn send(&mut self, msg: &[u8]) -> Result<(), String>;
    /// Receives one message of `len` bytes into `buf`, replacing its contents.
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String>;
}

/// The sending end of a one-way transfer.
pub(crate) trait Tx {
    fn send(&mut self, msg: &[u8]) -> Result<(), String>;
    /// Sends one message of `total` bytes, which `body` writes.
    fn stream(
        &mut self,
        total: u64,
        body: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), String>;
}

/// The receiving end of a one-way transfer.
pub(crate) trait Rx {
    /// Receives one message of `len` bytes into `buf`, replacing its contents.
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String>;
    /// Receives one message of `total` bytes, which `body` reads (all of it).
    fn stream(
        &mut self,
        total: u64,
        body: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
    ) -> Result<(), String>;
}

/// The chunk in which a long message is written and read (and checked).
pub(crate) const STREAM_CHUNK: usize = 1 << 20;

/// How long a phase lasts: at least `min` messages (or round trips), then until
/// `ns` nanoseconds have passed since it started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    pub(crate) min: u64,
    pub(crate) ns: u64,
}

/// A round-trip measurement: the warm-up, then the timed part, which also stops at
/// `max_samples` round trips.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LatencyPlan {
    pub(crate) warm: Span,
    pub(crate) timed: Span,
    pub(crate) max_samples: usize,
}

/// The pinger: the warm-up, then the timed round trips, whose times (ns) it stores
/// in `map` with their count.
pub(crate) fn pinger<D: Duplex>(
    d: &mut D,
    map: &ControlMap,
    len: usize,
    plan: &LatencyPlan,
) -> Result<(), String> {
    let mut msg = message(len);
    let mut buf = Vec::with_capacity(len);
    let max = plan.max_samples.max(1);
    // Filled with non-zero values, so every page is touched before timing starts.
    let mut samples = vec![u64::MAX; max];
    let mut seq = 0u64;
    let start = now_ns();
    loop {
        stamp(&mut msg, seq, false);
        d.send(&msg)?;
        d.recv(&mut buf, len)?;
        check(&buf, len, seq)?;
        seq += 1;
        if seq >= plan.warm.min && now_ns() - start >= plan.warm.ns {
            break;
        }
    }
    let end = now_ns() + plan.timed.ns;
    let mut n = 0usize;
    let mut t1 = 0;
    loop {
        // Decided on the previous sample's clock read: no extra read in the loop.
        let last = n + 1 >= max || (n as u64 + 1 >= plan.timed.min && t1 >= end);
        stamp(&mut msg, seq, last);
        let t0 = now_ns();
        d.send(&msg)?;
        d.recv(&mut buf, len)?;
        t1 = now_ns();
        check(&buf, len, seq)?;
        samples[n] = t1 - t0;
        n += 1;
        seq += 1;
        if last {
            break;
        }
    }
    map.write_samples(&samples[..n])
}

/// The ponger: receives, checks and echoes messages until it has echoed the one
/// marked [`LAST`](shmlane_support::stamp::LAST).
pub(crate) fn pong<D: Duplex>(d: &mut D, len: usize) -> Result<(), String> {
    let mut buf = Vec::with_capacity(len);
    let mut seq = 0u64;
    loop {
        d.recv(&mut buf, len)?;
        let last = check(&buf, len, seq)?;
        d.send(&buf)?;
        if last {
            return Ok(());
        }
        seq += 1;
    }
}

/// Messages between two clock reads: about 64 KiB of them, at most 1024.
fn clock_every(len: usize) -> u64 {
    ((64 << 10) / len.max(1)).clamp(1, 1024) as u64
}

/// Sends one phase: at least `span.min` messages, then until `span.ns` after
/// `start`; the last one marked. Returns how many were sent.
fn send_phase<T: Tx>(
    t: &mut T,
    msg: &mut [u8],
    seq: &mut u64,
    span: Span,
    start: u64,
) -> Result<u64, String> {
    let every = clock_every(msg.len());
    let until = start + span.ns;
    let mut sent = 0u64;
    loop {
        let last = sent + 1 >= span.min && (sent + 1) % every == 0 && now_ns() >= until;
        stamp(msg, *seq, last);
        t.send(msg)?;
        *seq += 1;
        sent += 1;
        if last {
            return Ok(sent);
        }
    }
}

/// Receives and checks one phase sent by [`send_phase`]; returns its length.
fn recv_phase<R: Rx>(
    r: &mut R,
    buf: &mut Vec<u8>,
    len: usize,
    seq: &mut u64,
) -> Result<u64, String> {
    let mut n = 0u64;
    loop {
        r.recv(buf, len)?;
        let last = check(buf, len, *seq)?;
        *seq += 1;
        n += 1;
        if last {
            return Ok(n);
        }
    }
}

/// The producer of fixed-size messages: the warm-up, a wait until the consumer has
/// taken it, then the timed part.
pub(crate) fn produce<T: Tx>(
    t: &mut T,
    ctl: &Control,
    len: usize,
    warm: Span,
    timed: Span,
    deadline_ns: u64,
) -> Result<(), String> {
    let mut msg = message(len);
    let mut seq = 0u64;
    send_phase(t, &mut msg, &mut seq, warm, now_ns())?;
    ctl.wait_warm_done(deadline_ns)?;
    let t0 = now_ns();
    ctl.t_start.store(t0, Ordering::Relaxed);
    send_phase(t, &mut msg, &mut seq, timed, t0)?;
    Ok(())
}

/// The consumer of fixed-size messages (see [`produce`]); stores the end time and
/// the number of timed messages.
pub(crate) fn consume<R: Rx>(r: &mut R, ctl: &Control, len: usize) -> Result<(), String> {
    let mut buf = Vec::with_capacity(len);
    let mut seq = 0u64;
    recv_phase(r, &mut buf, len, &mut seq)?;
    ctl.set_warm_done();
    let n = recv_phase(r, &mut buf, len, &mut seq)?;
    ctl.t_end.store(now_ns(), Ordering::Relaxed);
    ctl.count.store(n, Ordering::Relaxed);
    Ok(())
}

/// Writes one message of `total` bytes in [`STREAM_CHUNK`]s, chunk `i` stamped `i`.
fn write_chunks<T: Tx>(t: &mut T, total: u64) -> Result<(), String> {
    let mut chunk = message(STREAM_CHUNK);
    t.stream(total, &mut |w| {
        for i in 0..total / STREAM_CHUNK as u64 {
            stamp(&mut chunk, i, false);
            w.write_all(&chunk)
                .map_err(|e| format!("writing chunk {i}: {e}"))?;
        }
        Ok(())
    })
}

/// Reads and checks one message written by [`write_chunks`].
fn read_chunks<R: Rx>(r: &mut R, total: u64) -> Result<(), String> {
    let mut chunk = vec![0u8; STREAM_CHUNK];
    r.stream(total, &mut |rd| {
        for i in 0..total / STREAM_CHUNK as u64 {
            rd.read_exact(&mut chunk)
                .map_err(|e| format!("reading chunk {i}: {e}"))?;
            check(&chunk, STREAM_CHUNK, i)?;
        }
        Ok(())
    })
}

/// The producer of one long message: a warm-up message of `warm` bytes, then the
/// timed one of `total` bytes. Both are multiples of [`STREAM_CHUNK`].
pub(crate) fn produce_stream<T: Tx>(
    t: &mut T,
    ctl: &Control,
    warm: u64,
    total: u64,
    deadline_ns: u64,
) -> Result<(), String> {
    write_chunks(t, warm)?;
    ctl.wait_warm_done(deadline_ns)?;
    ctl.t_start.store(now_ns(), Ordering::Relaxed);
    write_chunks(t, total)
}

/// The consumer of [`produce_stream`]; stores the end time.
pub(crate) fn consume_stream<R: Rx>(
    r: &mut R,
    ctl: &Control,
    warm: u64,
    total: u64,
) -> Result<(), String> {
    read_chunks(r, warm)?;
    ctl.set_warm_done();
    read_chunks(r, total)?;
    ctl.t_end.store(now_ns(), Ordering::Relaxed);
    ctl.count.store(1, Ordering::Relaxed);
    Ok(())
}
