//! What the children do, the same for every mechanism: ping-pong, a one-way stream
//! of fixed-size messages, and one long message in chunks. Every receiver copies
//! each message into its own buffer and checks it: the sequence number in the first
//! 8 bytes and a tag byte at the end.
//!
//! The loops are generic over the endpoint traits, so each mechanism gets its own
//! monomorphised copy (no virtual call per message).

use std::io::{Read, Write};

use super::process::{now_ns, Control, ControlMap};

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

/// The byte at the end of message `seq`.
#[inline]
fn tag(seq: u64) -> u8 {
    (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8 | 1
}

/// A message of `len` bytes (at least 8) with a fixed filler pattern.
pub(crate) fn message(len: usize) -> Vec<u8> {
    assert!(len >= 8, "messages carry an 8-byte sequence number");
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

/// Makes `msg` message number `seq`.
#[inline]
pub(crate) fn stamp(msg: &mut [u8], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    if msg.len() > 8 {
        let last = msg.len() - 1;
        msg[last] = tag(seq);
    }
}

/// Checks that `msg` is message number `seq` of `len` bytes.
#[inline]
pub(crate) fn check(msg: &[u8], len: usize, seq: u64) -> Result<(), String> {
    if msg.len() != len {
        return Err(format!(
            "message {seq}: {} bytes, expected {len}",
            msg.len()
        ));
    }
    let got = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
    if got != seq {
        return Err(format!("message {seq}: carries sequence number {got}"));
    }
    if len > 8 && msg[len - 1] != tag(seq) {
        return Err(format!(
            "message {seq}: last byte {:#04x}, expected {:#04x}",
            msg[len - 1],
            tag(seq)
        ));
    }
    Ok(())
}

/// The pinger: `warm` round trips, then `n` timed ones; returns the `n` times in ns.
pub(crate) fn ping<D: Duplex>(
    d: &mut D,
    len: usize,
    warm: usize,
    n: usize,
) -> Result<Vec<u64>, String> {
    let mut msg = message(len);
    let mut buf = Vec::with_capacity(len);
    // Filled with non-zero values, so every page is touched before timing starts.
    let mut samples = vec![u64::MAX; n];
    for i in 0..warm + n {
        let seq = i as u64;
        stamp(&mut msg, seq);
        let t0 = now_ns();
        d.send(&msg)?;
        d.recv(&mut buf, len)?;
        let t1 = now_ns();
        check(&buf, len, seq)?;
        if i >= warm {
            samples[i - warm] = t1 - t0;
        }
    }
    Ok(samples)
}

/// The ponger: receives, checks and echoes `total` messages.
pub(crate) fn pong<D: Duplex>(d: &mut D, len: usize, total: usize) -> Result<(), String> {
    let mut buf = Vec::with_capacity(len);
    for i in 0..total {
        d.recv(&mut buf, len)?;
        check(&buf, len, i as u64)?;
        d.send(&buf)?;
    }
    Ok(())
}

/// The producer of fixed-size messages: `warm` messages, a wait until the consumer
/// has taken them, then `n` timed ones.
pub(crate) fn produce<T: Tx>(
    t: &mut T,
    ctl: &Control,
    len: usize,
    warm: u64,
    n: u64,
    deadline_ns: u64,
) -> Result<(), String> {
    let mut msg = message(len);
    for seq in 0..warm {
        stamp(&mut msg, seq);
        t.send(&msg)?;
    }
    ctl.wait_warm_done(deadline_ns)?;
    ctl.t_start
        .store(now_ns(), std::sync::atomic::Ordering::Relaxed);
    for seq in warm..warm + n {
        stamp(&mut msg, seq);
        t.send(&msg)?;
    }
    Ok(())
}

/// The consumer of fixed-size messages (see [`produce`]); stamps the end time.
pub(crate) fn consume<R: Rx>(
    r: &mut R,
    ctl: &Control,
    len: usize,
    warm: u64,
    n: u64,
) -> Result<(), String> {
    let mut buf = Vec::with_capacity(len);
    for seq in 0..warm {
        r.recv(&mut buf, len)?;
        check(&buf, len, seq)?;
    }
    ctl.set_warm_done();
    for seq in warm..warm + n {
        r.recv(&mut buf, len)?;
        check(&buf, len, seq)?;
    }
    ctl.t_end
        .store(now_ns(), std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Writes one message of `total` bytes in [`STREAM_CHUNK`]s, chunk `i` stamped `i`.
fn write_chunks<T: Tx>(t: &mut T, total: u64) -> Result<(), String> {
    let mut chunk = message(STREAM_CHUNK);
    t.stream(total, &mut |w| {
        for i in 0..total / STREAM_CHUNK as u64 {
            stamp(&mut chunk, i);
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
    ctl.t_start
        .store(now_ns(), std::sync::atomic::Ordering::Relaxed);
    write_chunks(t, total)
}

/// The consumer of [`produce_stream`]; stamps the end time.
pub(crate) fn consume_stream<R: Rx>(
    r: &mut R,
    ctl: &Control,
    warm: u64,
    total: u64,
) -> Result<(), String> {
    read_chunks(r, warm)?;
    ctl.set_warm_done();
    read_chunks(r, total)?;
    ctl.t_end
        .store(now_ns(), std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The pinger's side of a latency measurement: open, meet the ponger, ping, and
/// store the samples.
pub(crate) fn pinger<D: Duplex>(
    d: &mut D,
    map: &ControlMap,
    len: usize,
    warm: usize,
    n: usize,
) -> Result<(), String> {
    let samples = ping(d, len, warm, n)?;
    map.write_samples(&samples)
}
