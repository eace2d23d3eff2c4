//! Messages larger than one record: fragments, written through `io::Write` and read
//! through `io::Read`.
//!
//! A message of `total` bytes that fits one record goes as one record (BEGIN | END).
//! A longer one goes as fragments of `fragment_record` bytes (a quarter of the ring,
//! so producer and consumer work on different fragments at once): the first has
//! BEGIN and the total length, the last END. The writer publishes each fragment as it
//! fills; the reader releases each as it is read, so the memory in flight is bounded
//! by the ring, whatever the message's size.
//!
//! Both types are generic over the ring kind (`spsc` or `mpmc` endpoints); the
//! parameter defaults to SPSC.

#![allow(private_bounds)]

use std::io;

use crate::error::{RecvTimeoutError, SendTimeoutError};
use crate::frame::{DataRecord, BEGIN_PREFIX, FLAGS_WHOLE, FLAG_BEGIN, FLAG_END};
use crate::message::{
    close_open_message, message_total, Claim, Mode, RecordConsumer, RecordProducer,
};

/// A fragment claimed in the ring and being filled.
#[derive(Debug)]
struct OpenFragment {
    claim: Claim,
    /// Index of the first content byte.
    index: usize,
    /// Content bytes it holds when full.
    room: usize,
    /// Content bytes written so far.
    filled: usize,
    /// Payload length in the record header (content + prefix).
    prefix: usize,
    flags: u8,
}

/// Writes one message of a declared length through [`io::Write`]; made by
/// [`spsc::Producer::stream`](crate::spsc::Producer::stream) or
/// [`mpmc::Producer::stream`](crate::mpmc::Producer::stream).
///
/// Writing more than the declared length is an error; [`finish`](Self::finish) checks
/// that all of it was written. A writer dropped (or finished) early abandons the
/// message: the consumer gets [`RecvError::Truncated`](crate::RecvError::Truncated).
pub struct MessageWriter<'a, P: RecordProducer = crate::spsc::Producer> {
    producer: &'a mut P,
    total: u64,
    /// Content bytes written so far (published or in `current`).
    written: u64,
    current: Option<OpenFragment>,
    /// Whether the first record was published.
    began: bool,
    mode: Mode,
}

impl<P: RecordProducer> std::fmt::Debug for MessageWriter<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageWriter")
            .field("total", &self.total)
            .field("written", &self.written)
            .finish()
    }
}

impl<'a, P: RecordProducer> MessageWriter<'a, P> {
    pub(crate) fn new(producer: &'a mut P, total: u64, mode: Mode) -> Self {
        MessageWriter {
            producer,
            total,
            written: 0,
            current: None,
            began: false,
            mode,
        }
    }

    /// The declared length of the message.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether the message is empty (declared length 0).
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Bytes still to write.
    pub fn remaining(&self) -> u64 {
        self.total - self.written
    }

    /// Claims the next fragment.
    fn open_fragment(&mut self) -> Result<(), SendTimeoutError> {
        let p = &mut *self.producer;
        let remaining = self.total - self.written;
        let max_whole = (p.max_record_payload()) as u64;
        let frag = p.fragment_payload();
        let (room, prefix, flags) = if !self.began && self.total <= max_whole {
            (self.total as usize, 0, FLAGS_WHOLE)
        } else if !self.began {
            (frag - BEGIN_PREFIX, BEGIN_PREFIX, FLAG_BEGIN)
        } else {
            let room = (frag as u64).min(remaining) as usize;
            let flags = if room as u64 == remaining {
                FLAG_END
            } else {
                0
            };
            (room, 0, flags)
        };
        let claim = match p.claim(room + prefix, flags, self.mode)? {
            Some(c) => c,
            None => return Err(SendTimeoutError::Timeout),
        };
        p.lend(&claim);
        let index = claim.index;
        if prefix > 0 {
            // SAFETY: the prefix is the first 8 bytes of the record we just claimed.
            unsafe { p.data().write(index, &self.total.to_le_bytes()) };
        }
        self.current = Some(OpenFragment {
            claim,
            index: index + prefix,
            room,
            filled: 0,
            prefix,
            flags,
        });
        Ok(())
    }

    /// Publishes the current fragment if it is full.
    fn publish_if_full(&mut self) {
        if let Some(f) = &self.current {
            if f.filled == f.room {
                let f = self.current.take().expect("checked above");
                self.producer.publish(f.claim, f.room + f.prefix, f.flags);
                self.began = true;
                *self.producer.open_message() = f.flags == FLAG_BEGIN || f.flags == 0;
            }
        }
    }

    /// Writes message content; returns how much was written.
    pub(crate) fn write_content(&mut self, mut buf: &[u8]) -> Result<usize, SendTimeoutError> {
        if buf.len() as u64 > self.total - self.written {
            return Err(SendTimeoutError::TooLarge {
                len: self.written + buf.len() as u64,
                max: self.total,
            });
        }
        let mut done = 0;
        while !buf.is_empty() {
            if self.current.is_none() {
                match self.open_fragment() {
                    Ok(()) => {}
                    // Bytes already taken are reported; the error comes with the
                    // next call (io::Write: an error means nothing was written).
                    Err(_) if done > 0 => return Ok(done),
                    Err(e) => return Err(e),
                }
            }
            let f = self.current.as_mut().expect("opened above");
            let n = (f.room - f.filled).min(buf.len());
            // SAFETY: the fragment's bytes `index..index + room` were claimed by us and
            // are unpublished; `filled + n <= room`.
            unsafe { self.producer.data().write(f.index + f.filled, &buf[..n]) };
            f.filled += n;
            self.written += n as u64;
            buf = &buf[n..];
            done += n;
            self.publish_if_full();
        }
        Ok(done)
    }

    /// Publishes what is left (an empty message's only record).
    pub(crate) fn finish_content(&mut self) -> Result<(), SendTimeoutError> {
        if self.written != self.total {
            return Err(SendTimeoutError::TooLarge {
                len: self.written,
                max: self.total,
            });
        }
        if !self.began && self.current.is_none() {
            // total == 0: the message is one empty record.
            self.open_fragment()?;
        }
        self.publish_if_full();
        debug_assert!(self.current.is_none());
        Ok(())
    }

    /// Closes the message. Fails, abandoning the message, if fewer bytes were written
    /// than declared.
    pub fn finish(mut self) -> io::Result<()> {
        if self.written != self.total {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "message finished after {} of its {} declared bytes; abandoned",
                    self.written, self.total
                ),
            ));
        }
        self.finish_content().map_err(timeout_to_io)
    }
}

fn timeout_to_io(e: SendTimeoutError) -> io::Error {
    match e {
        SendTimeoutError::Timeout => io::Error::new(io::ErrorKind::TimedOut, e),
        SendTimeoutError::TooLarge { .. } => io::Error::new(io::ErrorKind::InvalidInput, e),
        SendTimeoutError::Disconnected => io::Error::new(io::ErrorKind::BrokenPipe, e),
        SendTimeoutError::Corrupt(_) => io::Error::new(io::ErrorKind::InvalidData, e),
    }
}

impl<P: RecordProducer> io::Write for MessageWriter<'_, P> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.written == self.total {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the message's {} declared bytes are all written",
                    self.total
                ),
            ));
        }
        let n = buf.len().min((self.total - self.written) as usize);
        self.write_content(&buf[..n]).map_err(timeout_to_io)
    }

    /// Publishing happens as fragments fill; there is nothing to flush.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<P: RecordProducer> Drop for MessageWriter<'_, P> {
    fn drop(&mut self) {
        // An unpublished fragment is given up (SPSC reuses its room; MPMC pads it). A
        // message whose first fragment is out is closed with an ABORT record, now if
        // there is room, else before the producer's next message.
        if let Some(f) = self.current.take() {
            self.producer.abandon(f.claim);
        }
        if *self.producer.open_message() {
            let _ = close_open_message(self.producer, Mode::Try);
        }
    }
}

/// The fragment being read.
#[derive(Debug)]
struct ReadFragment {
    /// Index of the first content byte.
    index: usize,
    len: usize,
    /// Content bytes already returned.
    read: usize,
    /// The record in hand, released when read.
    rec: DataRecord,
}

/// Reads one message of any length through [`io::Read`]; made by
/// [`spsc::Consumer::recv_stream`](crate::spsc::Consumer::recv_stream) or
/// [`mpmc::Consumer::recv_stream`](crate::mpmc::Consumer::recv_stream). `read`
/// returns 0 at the end of the message.
///
/// An abandoned message (the producer dropped its writer, or left) ends with an
/// [`io::ErrorKind::UnexpectedEof`] error.
pub struct MessageReader<'a, C: RecordConsumer = crate::spsc::Consumer> {
    consumer: &'a mut C,
    total: u64,
    /// Content bytes taken from the ring so far (the current fragment included).
    received: u64,
    /// Content already reassembled by an interrupted `recv`, returned first.
    prefix: Vec<u8>,
    prefix_read: usize,
    current: Option<ReadFragment>,
    done: bool,
}

impl<C: RecordConsumer> std::fmt::Debug for MessageReader<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageReader")
            .field("total", &self.total)
            .field("received", &self.received)
            .finish()
    }
}

impl<'a, C: RecordConsumer> MessageReader<'a, C> {
    pub(crate) fn new(consumer: &'a mut C, mode: Mode) -> Result<Self, RecvTimeoutError> {
        if let Some(p) = consumer.partial().take() {
            return Ok(MessageReader {
                total: p.total,
                received: p.buf.len() as u64,
                prefix: p.buf,
                prefix_read: 0,
                current: None,
                done: false,
                consumer,
            });
        }
        let mut skipped = 0;
        loop {
            let rec = consumer.next_record(mode)?;
            if !rec.is_begin() {
                // The rest of a message whose start we never saw: skip it, within the
                // deadline (a peer that keeps publishing strays must not keep a timed
                // call here).
                consumer.release_record(&rec);
                if mode.skipped_past_deadline(&mut skipped) {
                    return Err(RecvTimeoutError::Timeout);
                }
                continue;
            }
            let total = if rec.is_whole() {
                rec.len() as u64
            } else {
                message_total(&*consumer, &rec)?
            };
            let current = Self::fragment(consumer, &rec);
            return Ok(MessageReader {
                total,
                received: current.len as u64,
                prefix: Vec::new(),
                prefix_read: 0,
                current: Some(current),
                done: false,
                consumer,
            });
        }
    }

    fn fragment(consumer: &C, rec: &DataRecord) -> ReadFragment {
        let index = consumer.content_index(rec);
        consumer.data().track_read(index, rec.content_len());
        ReadFragment {
            index,
            len: rec.content_len(),
            read: 0,
            rec: *rec,
        }
    }

    /// The message's total length.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Takes the next fragment of this message from the ring, waiting for it.
    fn next_fragment(&mut self) -> io::Result<()> {
        let truncated =
            || io::Error::new(io::ErrorKind::UnexpectedEof, crate::RecvError::Truncated);
        let rec = match self.consumer.next_record(Mode::Block(None)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Disconnected) => return Err(truncated()),
            Err(e) => return Err(crate::message::into_recv_error(e).into()),
        };
        if rec.is_begin() {
            // A new message started before this one ended; leave it in the ring.
            self.done = true;
            return Err(truncated());
        }
        if rec.is_abort() {
            self.consumer.release_record(&rec);
            self.done = true;
            return Err(truncated());
        }
        let received = self.received + rec.content_len() as u64;
        if received > self.total || (received == self.total) != rec.is_end() {
            self.done = true;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                crate::Corruption {
                    what: "fragment length (does not add up to the message total)",
                    value: rec.len() as u64,
                    position: self.consumer.record_position(),
                },
            ));
        }
        self.received = received;
        self.current = Some(Self::fragment(self.consumer, &rec));
        Ok(())
    }
}

impl<C: RecordConsumer> io::Read for MessageReader<'_, C> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.prefix_read < self.prefix.len() {
            let n = (self.prefix.len() - self.prefix_read).min(out.len());
            out[..n].copy_from_slice(&self.prefix[self.prefix_read..self.prefix_read + n]);
            self.prefix_read += n;
            return Ok(n);
        }
        loop {
            if let Some(f) = &mut self.current {
                if f.read < f.len {
                    let n = (f.len - f.read).min(out.len());
                    // SAFETY: the fragment is published to us and not yet released;
                    // `read + n <= len` and decode checked it lies inside the region.
                    unsafe { self.consumer.data().read(f.index + f.read, &mut out[..n]) };
                    f.read += n;
                    return Ok(n);
                }
                let rec = f.rec;
                self.current = None;
                self.consumer.release_record(&rec);
                if rec.is_end() {
                    self.done = true;
                }
            }
            if self.done {
                return Ok(0);
            }
            self.next_fragment()?;
        }
    }
}

impl<C: RecordConsumer> Drop for MessageReader<'_, C> {
    fn drop(&mut self) {
        // Release the fragment in hand; fragments still to come are skipped by the
        // next receive (they have no BEGIN).
        if let Some(f) = self.current.take() {
            self.consumer.release_record(&f.rec);
        }
    }
}
