//! Helpers for the tests that run the `shmlane` binary (`tests/cli_*.rs`).
//!
//! - [`Ring`]: a ring name unique to the test and this process, under
//!   `/shmlane-test-cli-...`, removed (with whatever is in /dev/shm under it) on drop;
//! - [`Proc`]: a child running the binary, waited for with a deadline and SIGKILLed
//!   when it passes or when the test panics, so no test hangs or leaks a process;
//! - [`Scratch`]: a temporary directory for input and output files;
//! - [`random_bytes`], [`fnv`]: deterministic payloads and their checksum.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_shmlane")
}

/// A command running the binary with `args`.
pub fn shmlane(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args);
    c
}

/// How long any one process may run.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A ring name for this test: `/shmlane-test-cli-{tag}-{pid}`, removed on drop.
#[derive(Debug)]
pub struct Ring(pub String);

impl Ring {
    pub fn new(tag: &str) -> Ring {
        let r = Ring(format!("/shmlane-test-cli-{tag}-{}", std::process::id()));
        r.remove();
        r
    }

    /// The name as the commands take it (with its slash).
    pub fn name(&self) -> &str {
        &self.0
    }

    /// The file in /dev/shm.
    pub fn path(&self) -> PathBuf {
        Path::new("/dev/shm").join(&self.0[1..])
    }

    pub fn exists(&self) -> bool {
        self.path().exists()
    }

    fn remove(&self) {
        let _ = std::fs::remove_file(self.path());
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A scratch directory, removed on drop.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("shmlane-test-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `bytes` to a new file `name` and returns its path as a string.
    pub fn write(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.file(name);
        std::fs::write(&p, bytes).expect("write scratch file");
        p.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `shmlane`, SIGKILLed on drop if still running.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    what: String,
    /// The threads reading its stdout and stderr, once started.
    readers: Option<Readers>,
}

type Readers = (
    std::thread::JoinHandle<Vec<u8>>,
    std::thread::JoinHandle<String>,
);

/// What a finished process left.
#[derive(Debug)]
pub struct Done {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Done {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl Proc {
    /// Starts `cmd` with stdout and stderr captured, and read as they come, so the
    /// process never blocks on them (stdin as the command says).
    pub fn spawn(cmd: Command) -> Proc {
        let mut p = Proc::spawn_held(cmd);
        p.drain();
        p
    }

    /// Starts `cmd` with stdout and stderr captured but not read until
    /// [`wait`](Self::wait): once the pipe is full, the process blocks writing.
    pub fn spawn_held(mut cmd: Command) -> Proc {
        let what = format!("{cmd:?}");
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Proc {
            child,
            what,
            readers: None,
        }
    }

    /// Starts reading stdout and stderr.
    fn drain(&mut self) {
        if self.readers.is_some() {
            return;
        }
        let mut out = self.child.stdout.take().expect("stdout piped");
        let mut err = self.child.stderr.take().expect("stderr piped");
        let out_reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        self.readers = Some((out_reader, err_reader));
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (without reaping it).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILLs it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits for it to exit, at most `limit`; SIGKILLs it and panics past that.
    /// Reads its output meanwhile (so a full pipe cannot block it).
    pub fn wait(mut self, limit: Duration) -> Done {
        self.drain();
        let (out_reader, err_reader) = self.readers.take().expect("drained");
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    self.kill();
                    let _ = self.child.wait();
                    let stderr = err_reader.join().unwrap_or_default();
                    panic!("{} ran longer than {limit:?}; stderr:\n{stderr}", self.what);
                }
                Err(e) => panic!("wait {}: {e}", self.what),
            }
        };
        Done {
            status,
            stdout: out_reader.join().unwrap_or_default(),
            stderr: err_reader.join().unwrap_or_default(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.running() {
            self.kill();
        }
        let _ = self.child.wait();
    }
}

/// Runs `shmlane args` to the end (stdin empty) and returns what it left.
pub fn run(args: &[&str]) -> Done {
    let mut cmd = shmlane(args);
    cmd.stdin(Stdio::null());
    Proc::spawn(cmd).wait(DEADLINE)
}

/// Waits until `cond` holds, at most `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `n` bytes from a xorshift generator seeded with `seed`.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// FNV-1a of `bytes`: the checksum the tests compare and print.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
