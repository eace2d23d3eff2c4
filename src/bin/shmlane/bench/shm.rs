//! shmlane's endpoints for the workloads.
//!
//! The parent creates each ring (and drops its endpoint, which leaves the slot
//! detached); each child opens its endpoint by name, then meets its peer at the start
//! barrier, so neither sees the other as gone before it has attached.

use std::io::{Read, Write};

use shmlane::spsc::{Consumer, Producer};
use shmlane::{Notifier, RingOptions, Wait};

use super::process::ShmNames;
use super::workload::{Duplex, Rx, Tx};
use super::BenchError;

/// Creates the ring `name` of `capacity` bytes and records the name for removal.
pub(crate) fn create_ring(
    name: &str,
    capacity: usize,
    notifier: Notifier,
    names: &mut ShmNames,
) -> Result<(), BenchError> {
    let opts = RingOptions::new(capacity).notifier(notifier);
    let created = match Producer::create(name, &opts) {
        // Our names hold our pid, so an existing one was left by a dead process.
        Err(shmlane::Error::AlreadyExists { .. }) => {
            let _ = shmlane::remove(name);
            Producer::create(name, &opts)
        }
        other => other,
    };
    let producer = created.map_err(|e| BenchError::Failed(format!("creating ring {name}: {e}")))?;
    names.add(name.to_string());
    drop(producer);
    Ok(())
}

fn open_producer(name: &str, wait: Wait) -> Result<Producer, String> {
    let mut p = Producer::open(name).map_err(|e| format!("opening producer {name}: {e}"))?;
    p.set_wait(wait);
    Ok(p)
}

fn open_consumer(name: &str, wait: Wait) -> Result<Consumer, String> {
    let mut c = Consumer::open(name).map_err(|e| format!("opening consumer {name}: {e}"))?;
    c.set_wait(wait);
    Ok(c)
}

#[inline]
fn recv_message(c: &mut Consumer, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
    let n = c.recv(buf).map_err(|e| format!("recv: {e}"))?;
    if n != len {
        return Err(format!("received {n} bytes, expected {len}"));
    }
    Ok(())
}

/// One side of a round trip: a producer on one ring, a consumer on the other.
#[derive(Debug)]
pub(crate) struct ShmDuplex {
    tx: Producer,
    rx: Consumer,
}

impl ShmDuplex {
    pub(crate) fn open(tx: &str, rx: &str, wait: Wait) -> Result<Self, String> {
        Ok(ShmDuplex {
            tx: open_producer(tx, wait)?,
            rx: open_consumer(rx, wait)?,
        })
    }
}

impl Duplex for ShmDuplex {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.tx.send(msg).map_err(|e| format!("send: {e}"))
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        recv_message(&mut self.rx, buf, len)
    }
}

/// The producer of a one-way transfer.
#[derive(Debug)]
pub(crate) struct ShmTx(Producer);

impl ShmTx {
    pub(crate) fn open(name: &str, wait: Wait) -> Result<Self, String> {
        open_producer(name, wait).map(ShmTx)
    }
}

impl Tx for ShmTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.0.send(msg).map_err(|e| format!("send: {e}"))
    }

    fn stream(
        &mut self,
        total: u64,
        body: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut w = self.0.stream(total).map_err(|e| format!("stream: {e}"))?;
        body(&mut w)?;
        w.finish().map_err(|e| format!("finish: {e}"))
    }
}

/// The consumer of a one-way transfer.
#[derive(Debug)]
pub(crate) struct ShmRx(Consumer);

impl ShmRx {
    pub(crate) fn open(name: &str, wait: Wait) -> Result<Self, String> {
        open_consumer(name, wait).map(ShmRx)
    }
}

impl Rx for ShmRx {
    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        recv_message(&mut self.0, buf, len)
    }

    fn stream(
        &mut self,
        total: u64,
        body: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut r = self
            .0
            .recv_stream()
            .map_err(|e| format!("recv_stream: {e}"))?;
        if r.len() != total {
            return Err(format!("stream of {} bytes, expected {total}", r.len()));
        }
        body(&mut r)?;
        match r.read(&mut [0u8; 1]) {
            Ok(0) => Ok(()),
            Ok(_) => Err("the stream goes on past its declared length".into()),
            Err(e) => Err(format!("reading the end of the stream: {e}")),
        }
    }
}
