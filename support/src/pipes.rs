//! The descriptors of the kernel baselines: pipes and UNIX socket pairs, with their
//! buffer sizes. Every descriptor is made `O_CLOEXEC` and comes back owned, as a
//! [`File`] (read and written with `Read`/`Write`).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::os_error;

/// Two descriptors from a `[c_int; 2]` the kernel just filled, owned.
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

/// A pipe: `(read end, write end)`.
pub fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_error("pipe2"));
    }
    Ok(own_pair(fds))
}

/// Sets the capacity of the pipe `f` (either end) to at least `bytes`
/// (`F_SETPIPE_SZ`). Refused above `/proc/sys/fs/pipe-max-size` without privilege.
pub fn set_pipe_buffer(f: &File, bytes: usize) -> io::Result<()> {
    let want = bytes.min(libc::c_int::MAX as usize) as libc::c_int;
    // SAFETY: F_SETPIPE_SZ takes an int argument; the descriptor is ours and open.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETPIPE_SZ, want) };
    if r < 0 {
        return Err(os_error(&format!("F_SETPIPE_SZ {bytes}")));
    }
    if (r as usize) < bytes {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("F_SETPIPE_SZ {bytes}: got {r} bytes"),
        ));
    }
    Ok(())
}

/// The capacity of the pipe `f` (`F_GETPIPE_SZ`), if the kernel says.
pub fn pipe_buffer(f: &File) -> Option<usize> {
    // SAFETY: F_GETPIPE_SZ takes no argument; the descriptor is ours and open.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETPIPE_SZ) };
    (r > 0).then_some(r as usize)
}

/// A connected pair of UNIX sockets of type `ty` (`libc::SOCK_STREAM`,
/// `libc::SOCK_SEQPACKET`).
pub fn socket_pair(ty: libc::c_int) -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let r =
        unsafe { libc::socketpair(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    if r != 0 {
        return Err(os_error("socketpair"));
    }
    Ok(own_pair(fds))
}

fn read_sysctl(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The socket buffer the throughput measurements ask for: 4 MiB (the largest shmlane
/// ring in the bench), or what `net.core.wmem_max` / `rmem_max` allow if less (the
/// most an unprivileged process gets). On the development VM, 4 MiB beat 1 MiB and
/// the defaults (with TCP's autotuning) for every socket at 64 KiB and larger, and
/// tied below: the sockets' best configuration.
pub fn socket_buffer_request() -> usize {
    let max = read_sysctl("/proc/sys/net/core/wmem_max")
        .unwrap_or(usize::MAX)
        .min(read_sysctl("/proc/sys/net/core/rmem_max").unwrap_or(usize::MAX));
    (4usize << 20).min(max)
}

/// Sets `SO_SNDBUF` and `SO_RCVBUF` of the socket `f` to `bytes` (the kernel doubles
/// the value for its bookkeeping and caps it at wmem_max / rmem_max).
pub fn set_socket_buffers(f: &File, bytes: usize) -> io::Result<()> {
    let v = bytes.min(libc::c_int::MAX as usize) as libc::c_int;
    for (opt, name) in [
        (libc::SO_SNDBUF, "SO_SNDBUF"),
        (libc::SO_RCVBUF, "SO_RCVBUF"),
    ] {
        // SAFETY: `v` is a valid int option value of the size passed.
        let r = unsafe {
            libc::setsockopt(
                f.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(os_error(&format!("setsockopt {name} {bytes}")));
        }
    }
    Ok(())
}

/// An int socket option of `f` at `SOL_SOCKET`, if the kernel gives a positive one.
fn getsockopt_int(f: &File, opt: libc::c_int) -> Option<usize> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writing an int option.
    let r = unsafe {
        libc::getsockopt(
            f.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (r == 0 && v > 0).then_some(v as usize)
}

/// The largest packet a seqpacket socket with this send buffer takes: a power of two,
/// since the kernel refuses packets over `SO_SNDBUF - 32` bytes with EMSGSIZE.
pub fn seqpacket_max(f: &File) -> usize {
    let sndbuf = getsockopt_int(f, libc::SO_SNDBUF).unwrap_or(64 << 10);
    let fit = sndbuf.saturating_sub(32).max(4096);
    1usize << (usize::BITS - 1 - fit.leading_zeros())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    #[test]
    fn pipe_carries_bytes_and_takes_a_larger_buffer() {
        let (mut r, mut w) = super::pipe().expect("pipe");
        w.write_all(b"hello").expect("write");
        let mut b = [0u8; 5];
        r.read_exact(&mut b).expect("read");
        assert_eq!(&b, b"hello");
        super::set_pipe_buffer(&w, 1 << 17).expect("F_SETPIPE_SZ 128 KiB");
        assert!(super::pipe_buffer(&w).expect("F_GETPIPE_SZ") >= 1 << 17);
    }

    #[test]
    fn socket_pairs_carry_bytes_and_take_buffers() {
        let (mut a, mut b) = super::socket_pair(libc::SOCK_STREAM).expect("socketpair");
        a.write_all(b"ping").expect("write");
        let mut got = [0u8; 4];
        b.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"ping");
        super::set_socket_buffers(&a, 1 << 16).expect("SO_SNDBUF");
        let (s, _t) = super::socket_pair(libc::SOCK_SEQPACKET).expect("seqpacket");
        let max = super::seqpacket_max(&s);
        assert!(max.is_power_of_two() && max >= 4096, "{max}");
        assert!(super::socket_buffer_request() > 0);
    }
}
