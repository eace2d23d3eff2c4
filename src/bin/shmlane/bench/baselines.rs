//! The mechanisms shmlane is measured against: a pipe (also with a 1 MiB buffer), a
//! UNIX stream socket pair, and the floor: two processes spinning on a shared cache
//! line.
//!
//! Everything here is made in the parent before `fork`; the children inherit the
//! descriptors and the mapping.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use super::process::{now_ns, SharedMap};
use super::workload::{Duplex, Rx, Tx};
use super::BenchError;

// ---------------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------------

fn os_error(what: &str) -> BenchError {
    BenchError::Failed(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// Two descriptors from a `[c_int; 2]` the kernel just filled.
fn own_pair(fds: [libc::c_int; 2]) -> (File, File) {
    // SAFETY: both descriptors were just returned by the kernel and are owned by no one
    // else; each is wrapped exactly once.
    unsafe {
        (
            File::from(OwnedFd::from_raw_fd(fds[0])),
            File::from(OwnedFd::from_raw_fd(fds[1])),
        )
    }
}

/// A pipe: `(read end, write end)`. With `buffer`, its capacity is set with
/// `F_SETPIPE_SZ`; refused (above `/proc/sys/fs/pipe-max-size` without privilege),
/// the row is unavailable.
pub(crate) fn pipe(buffer: Option<usize>) -> Result<(File, File), BenchError> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_error("pipe2"));
    }
    let (rx, tx) = own_pair(fds);
    if let Some(size) = buffer {
        use std::os::fd::AsRawFd;
        // SAFETY: F_SETPIPE_SZ takes an int argument; the descriptor is ours and open.
        let r = unsafe { libc::fcntl(tx.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) };
        if r < 0 || (r as usize) < size {
            return Err(BenchError::Unavailable(format!(
                "F_SETPIPE_SZ {size}: {}",
                if r < 0 {
                    std::io::Error::last_os_error().to_string()
                } else {
                    format!("got {r} bytes")
                }
            )));
        }
    }
    Ok((rx, tx))
}

/// A connected pair of UNIX stream sockets.
pub(crate) fn socket_pair() -> Result<(File, File), BenchError> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(os_error("socketpair"));
    }
    Ok(own_pair(fds))
}

/// Reads exactly `len` bytes into `buf` (its length becomes `len`).
#[inline]
fn read_message(f: &mut File, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
    if buf.len() != len {
        buf.resize(len, 0);
    }
    f.read_exact(buf).map_err(|e| format!("read: {e}"))
}

/// One side of a round trip over descriptors: a pipe pair (two pipes) or a socket.
#[derive(Debug)]
pub(crate) struct FdDuplex {
    tx: File,
    rx: File,
}

impl Duplex for FdDuplex {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.tx.write_all(msg).map_err(|e| format!("write: {e}"))
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        read_message(&mut self.rx, buf, len)
    }
}

/// Two pipes, one per direction: `(pinger's side, ponger's side)`.
pub(crate) fn pipe_pair() -> Result<(FdDuplex, FdDuplex), BenchError> {
    let (ping_rx, ping_tx) = pipe(None)?;
    let (pong_rx, pong_tx) = pipe(None)?;
    Ok((
        FdDuplex {
            tx: ping_tx,
            rx: pong_rx,
        },
        FdDuplex {
            tx: pong_tx,
            rx: ping_rx,
        },
    ))
}

/// A UNIX stream socket pair: `(pinger's side, ponger's side)`.
pub(crate) fn socket_duplex() -> Result<(FdDuplex, FdDuplex), BenchError> {
    let (a, b) = socket_pair()?;
    let dup = |f: &File| {
        f.try_clone()
            .map_err(|e| BenchError::Failed(format!("dup: {e}")))
    };
    Ok((
        FdDuplex {
            tx: dup(&a)?,
            rx: a,
        },
        FdDuplex {
            tx: dup(&b)?,
            rx: b,
        },
    ))
}

/// The sending end of a pipe or socket.
#[derive(Debug)]
pub(crate) struct FdTx(pub(crate) File);

/// The receiving end of a pipe or socket.
#[derive(Debug)]
pub(crate) struct FdRx(pub(crate) File);

impl Tx for FdTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.0.write_all(msg).map_err(|e| format!("write: {e}"))
    }

    fn stream(
        &mut self,
        _total: u64,
        body: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), String> {
        body(&mut self.0)
    }
}

impl Rx for FdRx {
    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        read_message(&mut self.0, buf, len)
    }

    fn stream(
        &mut self,
        _total: u64,
        body: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
    ) -> Result<(), String> {
        body(&mut self.0)
    }
}

// ---------------------------------------------------------------------------------
// The raw shared cache line
// ---------------------------------------------------------------------------------

/// Two regions in a shared page, one per direction. A region is a sequence word
/// followed by the payload: an 8-byte payload shares the word's cache line; a 1 KiB
/// one spans 17 lines. The regions are a page apart, so they never share a line.
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
        let map = SharedMap::new(2 * stride).map_err(BenchError::Failed)?;
        Ok(RawLines { map, stride, len })
    }

    /// `(pinger's side, ponger's side)`. Each gives up with an error when a wait
    /// passes `deadline_ns`.
    pub(crate) fn ends(&self, deadline_ns: u64) -> (RawEnd, RawEnd) {
        let a = self.map.ptr();
        // SAFETY: the mapping is `2 * stride` bytes long.
        let b = unsafe { a.add(self.stride) };
        let end = |out, inp| RawEnd {
            out,
            inp,
            len: self.len,
            sent: 0,
            received: 0,
            deadline_ns,
        };
        (end(a, b), end(b, a))
    }
}

/// One side of the raw floor: writes the payload into its own region and then the
/// sequence word (Release); spins on the peer's sequence word (Acquire), then copies
/// the payload out.
#[derive(Debug)]
pub(crate) struct RawEnd {
    /// Our region: sequence word, then `len` payload bytes. Valid while the
    /// [`RawLines`] that made it is (in a child: for the child's life).
    out: *mut u8,
    /// The peer's region.
    inp: *const u8,
    len: usize,
    /// Messages sent and received so far; message `k` carries sequence word `k + 1`,
    /// so the initial zero means "nothing yet".
    sent: u64,
    received: u64,
    deadline_ns: u64,
}

impl RawEnd {
    fn word(p: *const u8) -> &'static AtomicU64 {
        // SAFETY: `p` is the page-aligned start of a region of a shared mapping that
        // stays mapped for the rest of the process; the word is accessed only
        // atomically (by both processes).
        unsafe { AtomicU64::from_ptr(p.cast_mut().cast()) }
    }
}

impl Duplex for RawEnd {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        assert_eq!(msg.len(), self.len);
        // SAFETY: the payload area is `len` bytes after the word, inside the mapping.
        // The peer reads it only after it sees the word below (Acquire), and we write
        // it again only after its reply, which it sends after copying this payload.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.out.add(8), self.len) };
        self.sent += 1;
        // Release: pairs with the Acquire load in the peer's `recv`; the payload is
        // visible to a peer that sees this sequence number.
        Self::word(self.out).store(self.sent, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        debug_assert_eq!(len, self.len);
        self.received += 1;
        let want = self.received;
        let word = Self::word(self.inp);
        let mut spins = 0u32;
        // Acquire: pairs with the peer's Release store in `send`.
        while word.load(Ordering::Acquire) != want {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % (1 << 16) == 0 && now_ns() > self.deadline_ns {
                return Err(format!("timed out waiting for message {want}"));
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

/// The capacity of the pipe `f` (F_GETPIPE_SZ), if the kernel says.
pub(crate) fn pipe_buffer(f: &File) -> Option<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETPIPE_SZ takes no argument; the descriptor is ours and open.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETPIPE_SZ) };
    (r > 0).then_some(r as usize)
}
