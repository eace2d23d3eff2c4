//! Passing a descriptor to another process over a UNIX socket (`SCM_RIGHTS`), with
//! nix's `sendmsg`/`recvmsg` and `ControlMessage::ScmRights`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Sends the descriptor `fd` over the UNIX stream socket `socket` (`SCM_RIGHTS`), with
/// one byte of data to carry it; [`recv_fd`] on the other end receives it. The
/// receiving process gets its own descriptor of the same open file (a memfd ring's
/// segment, say: see [`Backing::Memfd`](crate::Backing::Memfd)).
///
/// ```
/// use std::os::fd::AsFd;
/// use std::os::unix::net::UnixStream;
/// use shmlane::{spsc, RingOptions};
///
/// let (a, b) = UnixStream::pair()?;
/// let (mut tx, fd) = spsc::Producer::create_memfd(&RingOptions::new(4096))?;
/// shmlane::send_fd(&a, fd.as_fd())?;
/// // In the other process:
/// let mut rx = spsc::Consumer::open_fd(shmlane::recv_fd(&b)?)?;
/// tx.send(b"over SCM_RIGHTS")?;
/// let mut buf = Vec::new();
/// rx.recv(&mut buf)?;
/// assert_eq!(buf, b"over SCM_RIGHTS");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn send_fd(socket: &UnixStream, fd: BorrowedFd<'_>) -> std::io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(b"F")];
    loop {
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives a descriptor that [`send_fd`] sent over `socket`: reads exactly one byte
/// and the descriptor that came with it (opened close-on-exec). Fails with
/// `UnexpectedEof` if the peer closed the socket, and with `InvalidData` if the byte
/// came without exactly one descriptor (any others are closed, not leaked).
pub fn recv_fd(socket: &UnixStream) -> std::io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    // Room for more than one, so that a confused sender's extra descriptors are
    // received (and closed below) rather than truncated away.
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let msg = loop {
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => break msg,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds = Vec::new();
    let cmsgs = msg.cmsgs().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "recv_fd: more descriptors came than fit the buffer (the message was truncated)",
        )
    })?;
    for cmsg in cmsgs {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel just installed these descriptors in this process for
            // us; nothing else owns them.
            fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
        }
    }
    if msg.bytes == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    match fds.len() {
        1 => Ok(fds.pop().expect("one descriptor")),
        n => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("recv_fd: expected one descriptor with the byte, got {n}"),
        )),
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_descriptor_goes_round_and_names_the_same_file() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut file = tempfile_in_tmp();
        file.write_all(b"same file").unwrap();
        send_fd(&a, file.as_fd()).unwrap();
        let got = recv_fd(&b).unwrap();
        assert_ne!(got.as_raw_fd(), file.as_raw_fd(), "a descriptor of our own");
        let mut copy = std::fs::File::from(got);
        copy.rewind().unwrap();
        let mut text = String::new();
        copy.read_to_string(&mut text).unwrap();
        assert_eq!(text, "same file");
    }

    #[test]
    fn eof_and_a_byte_without_a_descriptor_are_errors() {
        let (a, b) = UnixStream::pair().unwrap();
        (&a).write_all(b"F").unwrap();
        let e = recv_fd(&b).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
        drop(a);
        let e = recv_fd(&b).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
    }

    /// A file in the temporary directory, removed at once (the descriptor keeps it).
    fn tempfile_in_tmp() -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "shmlane-fdpass-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }
}
