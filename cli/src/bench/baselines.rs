//! The mechanisms shmlane is measured against: pipes, UNIX stream and seqpacket
//! sockets, TCP loopback, POSIX message queues, and the two floors (two processes
//! spinning on a shared cache line; a futex doorbell that always sleeps).
//!
//! Everything here is made in the parent before `fork`; the children inherit the
//! descriptors and the mapping. The descriptors themselves (pipes, socket pairs,
//! their buffers) and the futex calls are `shmlane_support`'s, shared with the
//! criterion benches; what is here is how the bench reads and writes them.
//!
//! Every kernel channel is a [`Channel`]: a byte stream (pipe, stream socket, TCP)
//! sends a message with `write` loops and receives it with `read` loops; a packet
//! channel (seqpacket socket, message queue) sends a message as one packet when it
//! fits the channel's largest packet, else as several, and checks the length of each
//! packet it receives.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use shmlane_support::futex::{futex_wait, futex_wake};
use shmlane_support::minimal_ring::{MinimalRing, MinimalRx, MinimalTx};
use shmlane_support::pipes;
pub(crate) use shmlane_support::pipes::{pipe_buffer, seqpacket_max, socket_buffer_request};

use super::process::{now_ns, SharedMap};
use super::workload::{Duplex, Rx, Tx};
use super::BenchError;

// ---------------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------------

fn os_error(what: &str) -> BenchError {
    BenchError::Failed(format!("{what}: {}", io::Error::last_os_error()))
}

/// A failed system call of the support package, as the row's failure.
fn failed(e: io::Error) -> BenchError {
    BenchError::Failed(e.to_string())
}

/// A pipe: `(read end, write end)`. With `buffer`, its capacity is set with
/// `F_SETPIPE_SZ`; refused (above `/proc/sys/fs/pipe-max-size` without privilege),
/// the row is unavailable.
pub(crate) fn pipe(buffer: Option<usize>) -> Result<(File, File), BenchError> {
    let (rx, tx) = pipes::pipe().map_err(failed)?;
    if let Some(size) = buffer {
        pipes::set_pipe_buffer(&tx, size).map_err(|e| BenchError::Unavailable(e.to_string()))?;
    }
    Ok((rx, tx))
}

/// A connected pair of UNIX sockets of type `ty` (`SOCK_STREAM`, `SOCK_SEQPACKET`).
pub(crate) fn socket_pair(ty: libc::c_int) -> Result<(File, File), BenchError> {
    pipes::socket_pair(ty).map_err(failed)
}

/// A TCP connection over 127.0.0.1 with `TCP_NODELAY` on both ends: `(client,
/// server)`. Unavailable where the loopback interface is missing.
pub(crate) fn tcp_pair() -> Result<(File, File), BenchError> {
    use std::net::{TcpListener, TcpStream};
    let unavailable = |what: &str, e: io::Error| BenchError::Unavailable(format!("{what}: {e}"));
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).map_err(|e| unavailable("bind 127.0.0.1", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| BenchError::Failed(format!("getsockname: {e}")))?;
    // The listen backlog completes the handshake: connect returns before accept.
    let client = TcpStream::connect(addr).map_err(|e| unavailable("connect", e))?;
    let (server, _) = listener
        .accept()
        .map_err(|e| BenchError::Failed(format!("accept: {e}")))?;
    for s in [&client, &server] {
        s.set_nodelay(true)
            .map_err(|e| BenchError::Failed(format!("TCP_NODELAY: {e}")))?;
    }
    Ok((
        File::from(OwnedFd::from(client)),
        File::from(OwnedFd::from(server)),
    ))
}

fn read_sysctl(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Sets `SO_SNDBUF` and `SO_RCVBUF` of `f` to `bytes` (the kernel doubles the value
/// for its bookkeeping and caps it at wmem_max / rmem_max).
pub(crate) fn set_socket_buffers(f: &File, bytes: usize) -> Result<(), BenchError> {
    pipes::set_socket_buffers(f, bytes).map_err(failed)
}

// ---------------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------------

/// One end of a kernel channel, sending and receiving whole messages.
pub(crate) trait Channel: Read + Write {
    fn send_msg(&mut self, msg: &[u8]) -> Result<(), String>;
    /// Receives one message of `len` bytes into `buf`, replacing its contents.
    fn recv_msg(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String>;
}

/// A byte stream: a pipe end, a stream socket, a TCP connection.
#[derive(Debug)]
pub(crate) struct ByteStream(pub(crate) File);

impl Read for ByteStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for ByteStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Channel for ByteStream {
    #[inline]
    fn send_msg(&mut self, msg: &[u8]) -> Result<(), String> {
        self.0.write_all(msg).map_err(|e| format!("write: {e}"))
    }

    #[inline]
    fn recv_msg(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        if buf.len() != len {
            buf.resize(len, 0);
        }
        self.0.read_exact(buf).map_err(|e| format!("read: {e}"))
    }
}

/// The receiving end of a byte stream read through a buffer of [`READ_BUFFER`]
/// bytes: one `read` takes every message already in the pipe or socket (up to the
/// buffer), and each message is then copied out of the buffer, so small messages do
/// not cost a system call each. Messages of at least the buffer's size are read
/// straight into the receiver's buffer.
#[derive(Debug)]
pub(crate) struct BufferedStream {
    file: File,
    buf: Box<[u8]>,
    /// The unread part of `buf`.
    pos: usize,
    end: usize,
}

/// The read buffer of [`BufferedStream`].
pub(crate) const READ_BUFFER: usize = 64 << 10;

impl BufferedStream {
    pub(crate) fn new(file: File) -> Self {
        BufferedStream {
            file,
            buf: vec![0u8; READ_BUFFER].into_boxed_slice(),
            pos: 0,
            end: 0,
        }
    }
}

impl Read for BufferedStream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.end {
            if out.len() >= self.buf.len() {
                return self.file.read(out);
            }
            self.end = self.file.read(&mut self.buf)?;
            self.pos = 0;
        }
        let n = out.len().min(self.end - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for BufferedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Channel for BufferedStream {
    #[inline]
    fn send_msg(&mut self, msg: &[u8]) -> Result<(), String> {
        self.file.write_all(msg).map_err(|e| format!("write: {e}"))
    }

    #[inline]
    fn recv_msg(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        if buf.len() != len {
            buf.resize(len, 0);
        }
        self.read_exact(buf).map_err(|e| format!("read: {e}"))
    }
}

/// A byte stream whose receiving end is `O_NONBLOCK` and polled in a loop: the
/// receiver never sleeps, so the sender never wakes it.
#[derive(Debug)]
pub(crate) struct PolledStream(pub(crate) File);

impl PolledStream {
    /// Wraps `f`, making its open file description non-blocking.
    pub(crate) fn new(f: File) -> Result<Self, BenchError> {
        // SAFETY: F_GETFL / F_SETFL on a descriptor we own; no memory is passed.
        let r = unsafe {
            let flags = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
            if flags < 0 {
                flags
            } else {
                libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK)
            }
        };
        if r < 0 {
            return Err(os_error("fcntl O_NONBLOCK"));
        }
        Ok(PolledStream(f))
    }
}

impl Read for PolledStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
                other => return other,
            }
        }
    }
}

impl Write for PolledStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Channel for PolledStream {
    #[inline]
    fn send_msg(&mut self, msg: &[u8]) -> Result<(), String> {
        self.0.write_all(msg).map_err(|e| format!("write: {e}"))
    }

    #[inline]
    fn recv_msg(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        if buf.len() != len {
            buf.resize(len, 0);
        }
        self.read_exact(buf).map_err(|e| format!("read: {e}"))
    }
}

/// Something that moves whole packets.
pub(crate) trait PacketIo {
    /// Sends `p` as one packet.
    fn send_packet(&mut self, p: &[u8]) -> io::Result<()>;
    /// Receives one packet into `buf`, which is at least as long as the largest packet
    /// the channel was made for; returns the packet's real length (larger than
    /// `buf.len()` if it was truncated).
    fn recv_packet(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

/// A packet channel: messages up to `max` bytes go as one packet, longer ones as
/// packets of `max` bytes and a last one of the rest.
#[derive(Debug)]
pub(crate) struct Packets<P> {
    io: P,
    /// The largest packet sent or expected; > 0.
    max: usize,
    /// Room for one packet, for reads shorter than `max`.
    scratch: Vec<u8>,
    /// The unread part of `scratch` (`Read` callers that read less than a packet).
    pending: std::ops::Range<usize>,
}

impl<P: PacketIo> Packets<P> {
    pub(crate) fn new(io: P, max: usize) -> Self {
        let max = max.max(1);
        Packets {
            io,
            max,
            scratch: Vec::new(),
            pending: 0..0,
        }
    }

    /// Receives one packet into `scratch` (made one packet long); returns its length.
    fn recv_scratch(&mut self) -> io::Result<usize> {
        if self.scratch.len() != self.max {
            self.scratch.resize(self.max, 0);
        }
        self.io.recv_packet(&mut self.scratch)
    }
}

impl<P: PacketIo> Read for Packets<P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            if buf.len() >= self.max {
                let n = self.io.recv_packet(buf)?;
                if n > buf.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "packet truncated",
                    ));
                }
                return Ok(n);
            }
            let n = self.recv_scratch()?;
            if n > self.max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "packet truncated",
                ));
            }
            self.pending = 0..n;
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.scratch[self.pending.start..self.pending.start + n]);
        self.pending.start += n;
        Ok(n)
    }
}

impl<P: PacketIo> Write for Packets<P> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.max);
        self.io.send_packet(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<P: PacketIo> Channel for Packets<P> {
    #[inline]
    fn send_msg(&mut self, msg: &[u8]) -> Result<(), String> {
        for p in msg.chunks(self.max) {
            self.io.send_packet(p).map_err(|e| format!("send: {e}"))?;
        }
        Ok(())
    }

    #[inline]
    fn recv_msg(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        if buf.len() != len {
            buf.resize(len, 0);
        }
        let mut off = 0;
        while off < len {
            let want = self.max.min(len - off);
            let n = if want == self.max {
                self.io.recv_packet(&mut buf[off..off + want])
            } else {
                let r = self.recv_scratch();
                if let Ok(n) = r {
                    let k = n.min(want);
                    buf[off..off + k].copy_from_slice(&self.scratch[..k]);
                }
                r
            }
            .map_err(|e| format!("receive: {e}"))?;
            if n != want {
                return Err(format!(
                    "packet of {n} bytes at offset {off}, expected {want}"
                ));
            }
            off += n;
        }
        Ok(())
    }
}

/// A seqpacket socket.
#[derive(Debug)]
pub(crate) struct SeqPacket(pub(crate) File);

impl PacketIo for SeqPacket {
    #[inline]
    fn send_packet(&mut self, p: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `p` is valid for reading `p.len()` bytes.
            let r = unsafe {
                libc::send(
                    self.0.as_raw_fd(),
                    p.as_ptr().cast(),
                    p.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if r >= 0 {
                // A seqpacket send is all or nothing.
                return if r as usize == p.len() {
                    Ok(())
                } else {
                    Err(io::Error::other(format!("sent {r} of {} bytes", p.len())))
                };
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    #[inline]
    fn recv_packet(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is valid for writing `buf.len()` bytes. MSG_TRUNC makes the
            // call return the packet's real length, so a truncation shows.
            let r = unsafe {
                libc::recv(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                )
            };
            if r > 0 {
                return Ok(r as usize);
            }
            if r == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed the socket",
                ));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// POSIX message queues
// ---------------------------------------------------------------------------------

/// The queue depth and message size an unprivileged process may ask for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MqLimits {
    pub(crate) msg_max: usize,
    pub(crate) msgsize_max: usize,
}

impl MqLimits {
    /// From /proc/sys/fs/mqueue (the kernel's defaults, 10 and 8192, if unreadable).
    pub(crate) fn read() -> Self {
        MqLimits {
            msg_max: read_sysctl("/proc/sys/fs/mqueue/msg_max")
                .unwrap_or(10)
                .max(1),
            msgsize_max: read_sysctl("/proc/sys/fs/mqueue/msgsize_max")
                .unwrap_or(8192)
                .max(128),
        }
    }

    /// `(depth, message size)` of the queue for messages of `len` bytes: as deep as
    /// allowed, messages as large as the message or the limit.
    pub(crate) fn queue_for(&self, len: usize) -> (usize, usize) {
        (self.msg_max, len.clamp(1, self.msgsize_max))
    }
}

/// An open POSIX message queue whose name is already removed (it lives while a
/// descriptor is open: in the parent until fork, then in the children).
#[derive(Debug)]
pub(crate) struct Mq {
    mqd: libc::mqd_t,
}

impl Mq {
    /// Creates the queue `name` with room for `depth` messages of `msgsize` bytes,
    /// opens it, and removes the name.
    pub(crate) fn create(name: &str, depth: usize, msgsize: usize) -> Result<Mq, BenchError> {
        let cname = CString::new(name)
            .map_err(|_| BenchError::Failed(format!("queue name {name:?} holds a NUL")))?;
        // SAFETY: `mq_attr` is plain data; zeroed is valid and the fields we need are set.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = depth as libc::c_long;
        attr.mq_msgsize = msgsize as libc::c_long;
        // SAFETY: a valid NUL-terminated name, flags, a mode and a valid attr pointer, as
        // mq_open's variadic form with O_CREAT takes them.
        let mqd = unsafe {
            libc::mq_open(
                cname.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
                &attr as *const libc::mq_attr,
            )
        };
        if mqd == -1 {
            let e = io::Error::last_os_error();
            let why = format!("mq_open({name}, {depth} x {msgsize} B): {e}");
            return Err(match e.raw_os_error() {
                Some(libc::ENOSYS | libc::EACCES | libc::EPERM | libc::EINVAL | libc::EMFILE) => {
                    BenchError::Unavailable(why)
                }
                _ => BenchError::Failed(why),
            });
        }
        // SAFETY: a valid NUL-terminated name. The open descriptor keeps the queue.
        unsafe { libc::mq_unlink(cname.as_ptr()) };
        Ok(Mq { mqd })
    }
}

impl Mq {
    /// A second descriptor of the same queue.
    pub(crate) fn try_dup(&self) -> Result<Mq, BenchError> {
        // SAFETY: `mqd` is an open queue descriptor, which on Linux is a file
        // descriptor; F_DUPFD_CLOEXEC makes a new one that we own.
        let d = unsafe { libc::fcntl(self.mqd, libc::F_DUPFD_CLOEXEC, 0) };
        if d < 0 {
            return Err(os_error("dup of a queue descriptor"));
        }
        Ok(Mq { mqd: d })
    }
}

impl Drop for Mq {
    fn drop(&mut self) {
        // SAFETY: `mqd` is our open queue descriptor, closed only here.
        unsafe { libc::mq_close(self.mqd) };
    }
}

impl PacketIo for Mq {
    #[inline]
    fn send_packet(&mut self, p: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `p` is valid for reading `p.len()` bytes.
            let r = unsafe { libc::mq_send(self.mqd, p.as_ptr().cast(), p.len(), 0) };
            if r == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    #[inline]
    fn recv_packet(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is valid for writing `buf.len()` bytes; the kernel refuses
            // (EMSGSIZE) a buffer shorter than the queue's message size.
            let r = unsafe {
                libc::mq_receive(
                    self.mqd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Endpoints over channels
// ---------------------------------------------------------------------------------

/// One side of a round trip: a channel out and a channel in (two pipes, two
/// queues, or two handles of one socket).
#[derive(Debug)]
pub(crate) struct ChanDuplex<C> {
    pub(crate) tx: C,
    pub(crate) rx: C,
}

impl<C: Channel> Duplex for ChanDuplex<C> {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.tx.send_msg(msg)
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        self.rx.recv_msg(buf, len)
    }
}

/// The sending end of a one-way transfer over a channel.
#[derive(Debug)]
pub(crate) struct ChanTx<C>(pub(crate) C);

/// The receiving end of a one-way transfer over a channel.
#[derive(Debug)]
pub(crate) struct ChanRx<C>(pub(crate) C);

impl<C: Channel> Tx for ChanTx<C> {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.0.send_msg(msg)
    }

    fn stream(
        &mut self,
        _total: u64,
        body: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), String> {
        body(&mut self.0)
    }
}

impl<C: Channel> Rx for ChanRx<C> {
    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        self.0.recv_msg(buf, len)
    }

    fn stream(
        &mut self,
        _total: u64,
        body: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
    ) -> Result<(), String> {
        body(&mut self.0)
    }
}

fn dup(f: &File) -> Result<File, BenchError> {
    f.try_clone()
        .map_err(|e| BenchError::Failed(format!("dup: {e}")))
}

/// Two pipes, one per direction: `(pinger's side, ponger's side)`.
pub(crate) fn pipe_duplex() -> Result<(ChanDuplex<ByteStream>, ChanDuplex<ByteStream>), BenchError>
{
    let (ping_rx, ping_tx) = pipe(None)?;
    let (pong_rx, pong_tx) = pipe(None)?;
    Ok((
        ChanDuplex {
            tx: ByteStream(ping_tx),
            rx: ByteStream(pong_rx),
        },
        ChanDuplex {
            tx: ByteStream(pong_tx),
            rx: ByteStream(ping_rx),
        },
    ))
}

/// Two pipes, one per direction, with busy-polled read ends: `(pinger's side,
/// ponger's side)`.
pub(crate) fn polled_pipe_duplex(
) -> Result<(ChanDuplex<PolledStream>, ChanDuplex<PolledStream>), BenchError> {
    let (ping_rx, ping_tx) = pipe(None)?;
    let (pong_rx, pong_tx) = pipe(None)?;
    Ok((
        ChanDuplex {
            tx: PolledStream(ping_tx),
            rx: PolledStream::new(pong_rx)?,
        },
        ChanDuplex {
            tx: PolledStream(pong_tx),
            rx: PolledStream::new(ping_rx)?,
        },
    ))
}

/// Both ends of a connected socket pair, each as a duplex over two handles of its
/// socket: `(pinger's side, ponger's side)`.
pub(crate) fn socket_duplex<C: Channel>(
    (a, b): (File, File),
    wrap: impl Fn(File) -> C,
) -> Result<(ChanDuplex<C>, ChanDuplex<C>), BenchError> {
    Ok((
        ChanDuplex {
            tx: wrap(dup(&a)?),
            rx: wrap(a),
        },
        ChanDuplex {
            tx: wrap(dup(&b)?),
            rx: wrap(b),
        },
    ))
}

/// One side of a round trip over two message queues.
pub(crate) type MqDuplex = ChanDuplex<Packets<Mq>>;

/// Two message queues, one per direction, for messages of `len` bytes:
/// `(pinger's side, ponger's side)`.
pub(crate) fn mq_duplex(
    names: [String; 2],
    len: usize,
) -> Result<(MqDuplex, MqDuplex), BenchError> {
    let (depth, msgsize) = MqLimits::read().queue_for(len);
    let [n0, n1] = names;
    let (ping, pong) = (
        Mq::create(&n0, depth, msgsize)?,
        Mq::create(&n1, depth, msgsize)?,
    );
    // Each queue is used by one side for sending and by the other for receiving; a
    // second descriptor of the same queue keeps each side's ownership simple.
    Ok((
        ChanDuplex {
            tx: Packets::new(ping.try_dup()?, msgsize),
            rx: Packets::new(pong.try_dup()?, msgsize),
        },
        ChanDuplex {
            tx: Packets::new(pong, msgsize),
            rx: Packets::new(ping, msgsize),
        },
    ))
}

// ---------------------------------------------------------------------------------
// The floors: a raw shared cache line, a futex doorbell
// ---------------------------------------------------------------------------------

/// Two regions in a shared mapping, one per direction. A region is a sequence word
/// followed (at offset 8) by the payload: a payload of up to 56 bytes shares the
/// word's cache line. The regions are a page apart, so they never share a line.
#[derive(Debug)]
pub(crate) struct RawLines {
    map: SharedMap,
    /// Distance between the two regions; a multiple of the page size.
    stride: usize,
    len: usize,
}

impl RawLines {
    pub(crate) fn new(len: usize) -> Result<Self, BenchError> {
        let stride = (8 + len).next_multiple_of(4096);
        let map = SharedMap::new(2 * stride).map_err(failed)?;
        Ok(RawLines { map, stride, len })
    }

    /// `(pinger's side, ponger's side)`. With `doorbell`, a receiver sleeps in
    /// FUTEX_WAIT instead of spinning, and a sender always calls FUTEX_WAKE. Each gives
    /// up with an error when a wait passes `deadline_ns`.
    pub(crate) fn ends(&self, doorbell: bool, deadline_ns: u64) -> (RawEnd, RawEnd) {
        let a = self.map.ptr();
        // SAFETY: the mapping is `2 * stride` bytes long.
        let b = unsafe { a.add(self.stride) };
        let end = |out, inp| RawEnd {
            out,
            inp,
            len: self.len,
            sent: 0,
            received: 0,
            doorbell,
            deadline_ns,
        };
        (end(a, b), end(b, a))
    }
}

/// One side of a floor: writes the payload into its own region and then the
/// sequence word (Release); waits for the peer's sequence word (Acquire), spinning or
/// asleep on the futex, then copies the payload out.
#[derive(Debug)]
pub(crate) struct RawEnd {
    /// Our region: sequence word, then `len` payload bytes at offset 8. Valid while
    /// the [`RawLines`] that made it is (in a child: for the child's life).
    out: *mut u8,
    /// The peer's region.
    inp: *const u8,
    len: usize,
    /// Messages sent and received so far (mod 2^32); message `k` carries sequence word
    /// `k + 1`, so the initial zero means "nothing yet".
    sent: u32,
    received: u32,
    doorbell: bool,
    deadline_ns: u64,
}

impl RawEnd {
    fn word(p: *const u8) -> &'static AtomicU32 {
        // SAFETY: `p` is the page-aligned start of a region of a shared mapping that
        // stays mapped for the rest of the process; the word is accessed only
        // atomically (by both processes).
        unsafe { AtomicU32::from_ptr(p.cast_mut().cast()) }
    }
}

impl Duplex for RawEnd {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        if msg.len() != self.len {
            return Err(format!(
                "{}-byte message on a {}-byte line",
                msg.len(),
                self.len
            ));
        }
        // SAFETY: the payload area is `len` bytes after offset 8, inside the mapping.
        // The peer reads it only after it sees the word below (Acquire), and we write
        // it again only after its reply, which it sends after copying this payload.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.out.add(8), self.len) };
        self.sent = self.sent.wrapping_add(1);
        let word = Self::word(self.out);
        // Release: pairs with the Acquire load in the peer's `recv`; the payload is
        // visible to a peer that sees this sequence number.
        word.store(self.sent, Ordering::Release);
        if self.doorbell {
            let _ = futex_wake(word, 1);
        }
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        if len != self.len {
            return Err(format!("{len}-byte receive on a {}-byte line", self.len));
        }
        self.received = self.received.wrapping_add(1);
        let want = self.received;
        let word = Self::word(self.inp);
        let mut spins = 0u32;
        loop {
            // Acquire: pairs with the peer's Release store in `send`.
            let v = word.load(Ordering::Acquire);
            if v == want {
                break;
            }
            if self.doorbell {
                // Returns at once if the word moved on since the load (no lost wake-up).
                let _ = futex_wait(word, v, Some(Duration::from_millis(10)));
                if now_ns() > self.deadline_ns {
                    return Err(format!("timed out waiting for message {want}"));
                }
            } else {
                std::hint::spin_loop();
                spins = spins.wrapping_add(1);
                if spins % (1 << 16) == 0 && now_ns() > self.deadline_ns {
                    return Err(format!("timed out waiting for message {want}"));
                }
            }
        }
        if buf.len() != len {
            buf.resize(len, 0);
        }
        // SAFETY: the peer published these `len` bytes before its Release store we
        // just saw, and does not rewrite them until we reply.
        unsafe { std::ptr::copy_nonoverlapping(self.inp.add(8), buf.as_mut_ptr(), len) };
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// The minimal SPSC ring (the yardstick of one-way throughput)
// ---------------------------------------------------------------------------------

/// A minimal ring of `capacity` bytes for messages of `len` bytes, or an error if
/// such a message is more than a record holds.
pub(crate) fn minimal_ring(capacity: usize, len: usize) -> Result<MinimalRing, BenchError> {
    let ring = MinimalRing::new(capacity).map_err(failed)?;
    if len > ring.max_message() {
        return Err(BenchError::Unavailable(format!(
            "a {len}-byte message is more than a {capacity}-byte minimal ring's record"
        )));
    }
    Ok(ring)
}

/// The sending end of a one-way transfer over a minimal ring.
#[derive(Debug)]
pub(crate) struct MinTx(pub(crate) MinimalTx);

/// The receiving end of a one-way transfer over a minimal ring.
#[derive(Debug)]
pub(crate) struct MinRx(pub(crate) MinimalRx);

/// One side of a round trip over two minimal rings, one per direction.
#[derive(Debug)]
pub(crate) struct MinDuplex {
    pub(crate) tx: MinimalTx,
    pub(crate) rx: MinimalRx,
}

fn min_recv(rx: &mut MinimalRx, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
    let n = rx.recv(buf).map_err(|e| e.to_string())?;
    if n != len {
        return Err(format!("received {n} bytes, expected {len}"));
    }
    Ok(())
}

impl Tx for MinTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.0.send(msg).map_err(|e| e.to_string())
    }

    fn stream(
        &mut self,
        _total: u64,
        _body: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), String> {
        Err("the minimal ring has no streams".into())
    }
}

impl Rx for MinRx {
    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        min_recv(&mut self.0, buf, len)
    }

    fn stream(
        &mut self,
        _total: u64,
        _body: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
    ) -> Result<(), String> {
        Err("the minimal ring has no streams".into())
    }
}

impl Duplex for MinDuplex {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.tx.send(msg).map_err(|e| e.to_string())
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        min_recv(&mut self.rx, buf, len)
    }
}
