//! Two unrelated processes share a ring in a sealed memfd: it has no name anywhere,
//! so the first process hands its file descriptor to the second over a UNIX socket
//! (`SCM_RIGHTS`). The second process is a new program image (this example run again
//! with other arguments), not a fork: it holds nothing of the first but what it is
//! sent.
//!
//! ```text
//! cargo run --release --example memfd_handover [MESSAGES]
//! ```
//!
//! The first process listens on a socket in a private temporary directory, starts
//! the second with the socket's path, sends it the memfd, then sends the messages.
//! The seals (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`) mean neither process can
//! truncate the ring under the other; `open_fd` refuses a descriptor without them.

use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use shmlane::{spsc, RingOptions};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--receive") => receive(Path::new(&args[2])),
        count => send(count.map(str::parse).transpose()?.unwrap_or(100_000)),
    }
}

/// The message of sequence number `seq`: its length varies from 0 to ~200 KiB (the
/// larger ones travel in fragments), its bytes derive from `seq`.
fn message(seq: u64) -> Vec<u8> {
    let len = match seq % 1000 {
        999 => 200_000,
        n => (n * 37 % 3000) as usize,
    };
    (0..len).map(|i| (seq as usize + i * 31) as u8).collect()
}

/// Removes the temporary directory (and the socket in it) when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The first process: creates the ring, starts the second, hands the memfd over.
fn send(count: u64) -> Result<()> {
    let dir = TempDir(
        std::env::temp_dir().join(format!("shmlane-example-handover-{}", std::process::id())),
    );
    // 0700: only this user can connect and be handed the ring.
    std::fs::DirBuilder::new().mode(0o700).create(&dir.0)?;
    let socket_path = dir.0.join("handover.sock");
    let listener = UnixListener::bind(&socket_path)?;

    let (mut tx, memfd) = spsc::Producer::create_memfd(&RingOptions::new(1 << 20))?;
    println!(
        "[sender {}] created {} ({} bytes)",
        std::process::id(),
        tx.name(),
        tx.capacity()
    );

    let mut receiver = Command::new(std::env::current_exe()?)
        .arg("--receive")
        .arg(&socket_path)
        .spawn()?;
    let socket = accept(&listener, &mut receiver)?;
    shmlane::send_fd(&socket, memfd.as_fd())?;
    // The receiver has its own descriptor now; ours can go.
    drop(memfd);

    let t0 = Instant::now();
    let mut bytes = 0;
    for seq in 0..count {
        let msg = message(seq);
        bytes += msg.len();
        tx.send(&msg)?;
    }
    // The receiver sees Disconnected once it has read everything.
    drop(tx);
    let status = receiver.wait()?;
    println!(
        "[sender] sent {count} messages, {:.1} MB in {:.2?}; receiver {status}",
        bytes as f64 / 1e6,
        t0.elapsed()
    );
    if !status.success() {
        return Err("the receiver failed".into());
    }
    Ok(())
}

/// Waits for the receiver to connect, unless it exits first or takes over 10 s.
fn accept(listener: &UnixListener, receiver: &mut std::process::Child) -> Result<UnixStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match listener.accept() {
            Ok((socket, _)) => {
                socket.set_nonblocking(false)?;
                return Ok(socket);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(status) = receiver.try_wait()? {
            return Err(format!("the receiver exited before connecting: {status}").into());
        }
        if Instant::now() >= deadline {
            let _ = receiver.kill();
            return Err("the receiver did not connect within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The second process: receives the memfd, opens the ring, reads until the sender
/// leaves, and checks every message.
fn receive(socket_path: &Path) -> Result<()> {
    let socket = UnixStream::connect(socket_path)?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let memfd = shmlane::recv_fd(&socket)?;
    let mut rx = spsc::Consumer::open_fd(memfd)?;
    println!(
        "[receiver {}] opened {} from a descriptor received over {}",
        std::process::id(),
        rx.name(),
        socket_path.display()
    );
    let mut buf = Vec::new();
    let mut seq = 0;
    loop {
        match rx.recv(&mut buf) {
            Ok(_) => {
                if buf != message(seq) {
                    return Err(format!("message {seq} is not what was sent").into());
                }
                seq += 1;
            }
            Err(shmlane::RecvError::Disconnected) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("[receiver] {seq} messages, all intact");
    Ok(())
}
