//! shmlane's endpoints for the workloads.
//!
//! The parent creates each ring (and drops its endpoint, which leaves the slot
//! detached); each child opens its endpoint by name, then meets its peer at the start
//! barrier, so neither sees the other as gone before it has attached.
//!
//! The endpoint types are generic over [`Ring`], implemented by `impl_ring!` for each
//! of shmlane's ring modules with the same API (`Producer::create/open`,
//! `Consumer::open`, `send`, `recv`, `stream`, `recv_stream`, `set_wait`).

use std::io::{Read, Write};

use shmlane::{Notifier, RingOptions, Wait};

use super::process::ShmNames;
use super::workload::{Duplex, Rx, Tx};
use super::BenchError;

/// One of shmlane's ring modules, seen through the calls the bench makes.
pub(crate) trait Ring {
    type Producer;
    type Consumer;
    /// Whether the ring is made of cells (whose size `create_ring` chooses).
    const CELLS: bool;
    /// Creates the ring and drops the creating endpoint.
    fn create(name: &str, opts: &RingOptions) -> Result<(), shmlane::Error>;
    fn open_producer(name: &str, wait: Wait) -> Result<Self::Producer, String>;
    fn open_consumer(name: &str, wait: Wait) -> Result<Self::Consumer, String>;
    fn send(p: &mut Self::Producer, msg: &[u8]) -> Result<(), String>;
    /// Receives one message into `buf`; returns its length.
    fn recv(c: &mut Self::Consumer, buf: &mut Vec<u8>) -> Result<usize, String>;
    /// Sends one message of `total` bytes that `body` writes.
    fn write_stream(
        p: &mut Self::Producer,
        total: u64,
        body: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), String>;
    /// Receives one message that `body` reads, checking that it is `total` bytes long.
    fn read_stream(
        c: &mut Self::Consumer,
        total: u64,
        body: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
    ) -> Result<(), String>;
}

/// Implements [`Ring`] for the unit struct `$ty` over `shmlane::$module`; `$cells`
/// says whether it is a cell ring.
macro_rules! impl_ring {
    ($ty:ident, $module:ident, $cells:expr) => {
        #[doc = concat!("`shmlane::", stringify!($module), "`.")]
        #[derive(Debug)]
        pub(crate) struct $ty;

        impl Ring for $ty {
            type Producer = shmlane::$module::Producer;
            type Consumer = shmlane::$module::Consumer;
            const CELLS: bool = $cells;

            fn create(name: &str, opts: &RingOptions) -> Result<(), shmlane::Error> {
                shmlane::$module::Producer::create(name, opts).map(drop)
            }

            fn open_producer(name: &str, wait: Wait) -> Result<Self::Producer, String> {
                let mut p = shmlane::$module::Producer::open(name)
                    .map_err(|e| format!("opening producer {name}: {e}"))?;
                p.set_wait(wait);
                Ok(p)
            }

            fn open_consumer(name: &str, wait: Wait) -> Result<Self::Consumer, String> {
                let mut c = shmlane::$module::Consumer::open(name)
                    .map_err(|e| format!("opening consumer {name}: {e}"))?;
                c.set_wait(wait);
                Ok(c)
            }

            #[inline]
            fn send(p: &mut Self::Producer, msg: &[u8]) -> Result<(), String> {
                p.send(msg).map_err(|e| format!("send: {e}"))
            }

            #[inline]
            fn recv(c: &mut Self::Consumer, buf: &mut Vec<u8>) -> Result<usize, String> {
                c.recv(buf).map_err(|e| format!("recv: {e}"))
            }

            fn write_stream(
                p: &mut Self::Producer,
                total: u64,
                body: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
            ) -> Result<(), String> {
                let mut w = p.stream(total).map_err(|e| format!("stream: {e}"))?;
                body(&mut w)?;
                w.finish().map_err(|e| format!("finish: {e}"))
            }

            fn read_stream(
                c: &mut Self::Consumer,
                total: u64,
                body: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
            ) -> Result<(), String> {
                let mut r = c.recv_stream().map_err(|e| format!("recv_stream: {e}"))?;
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
    };
}

impl_ring!(Spsc, spsc, false);
impl_ring!(Mpmc, mpmc, true);

/// Creates the ring `name` of `capacity` bytes for messages (or stream pieces) of
/// `unit` bytes, and records the name for removal. A cell ring gets cells of `unit`
/// bytes (a power of two, 64 B to a quarter of the ring), so that each message takes
/// one cell: the configuration a user would choose for that message size.
pub(crate) fn create_ring<R: Ring>(
    name: &str,
    capacity: usize,
    unit: usize,
    notifier: Notifier,
    names: &mut ShmNames,
) -> Result<(), BenchError> {
    let mut opts = RingOptions::new(capacity).notifier(notifier);
    if R::CELLS {
        opts = opts.cell_size(cell_size(capacity, unit));
    }
    let created = match R::create(name, &opts) {
        // Our names hold our pid, so an existing one was left by a dead process.
        Err(shmlane::Error::AlreadyExists { .. }) => {
            let _ = shmlane::remove(name);
            R::create(name, &opts)
        }
        other => other,
    };
    created.map_err(|e| BenchError::Failed(format!("creating ring {name}: {e}")))?;
    names.add(name.to_string());
    Ok(())
}

/// The cell size [`create_ring`] gives a cell ring.
pub(crate) fn cell_size(capacity: usize, unit: usize) -> usize {
    unit.next_power_of_two().clamp(64, (capacity / 4).max(64))
}

#[inline]
fn recv_message<R: Ring>(c: &mut R::Consumer, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
    let n = R::recv(c, buf)?;
    if n != len {
        return Err(format!("received {n} bytes, expected {len}"));
    }
    Ok(())
}

/// One side of a round trip: a producer on one ring, a consumer on the other.
pub(crate) struct ShmDuplex<R: Ring> {
    tx: R::Producer,
    rx: R::Consumer,
}

impl<R: Ring> ShmDuplex<R> {
    pub(crate) fn open(tx: &str, rx: &str, wait: Wait) -> Result<Self, String> {
        Ok(ShmDuplex {
            tx: R::open_producer(tx, wait)?,
            rx: R::open_consumer(rx, wait)?,
        })
    }
}

impl<R: Ring> Duplex for ShmDuplex<R> {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        R::send(&mut self.tx, msg)
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        recv_message::<R>(&mut self.rx, buf, len)
    }
}

/// The producer of a one-way transfer.
pub(crate) struct ShmTx<R: Ring>(R::Producer);

impl<R: Ring> ShmTx<R> {
    pub(crate) fn open(name: &str, wait: Wait) -> Result<Self, String> {
        R::open_producer(name, wait).map(ShmTx)
    }
}

impl<R: Ring> Tx for ShmTx<R> {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        R::send(&mut self.0, msg)
    }

    fn stream(
        &mut self,
        total: u64,
        body: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), String> {
        R::write_stream(&mut self.0, total, body)
    }
}

/// The consumer of a one-way transfer.
pub(crate) struct ShmRx<R: Ring>(R::Consumer);

impl<R: Ring> ShmRx<R> {
    pub(crate) fn open(name: &str, wait: Wait) -> Result<Self, String> {
        R::open_consumer(name, wait).map(ShmRx)
    }
}

impl<R: Ring> Rx for ShmRx<R> {
    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        recv_message::<R>(&mut self.0, buf, len)
    }

    fn stream(
        &mut self,
        total: u64,
        body: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
    ) -> Result<(), String> {
        R::read_stream(&mut self.0, total, body)
    }
}
