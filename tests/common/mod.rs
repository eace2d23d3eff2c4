//! Helpers shared by the tests that fork real processes.
//!
//! - [`Procs`]: forks children that run one role each inside `catch_unwind` and end
//!   with `_exit`; the parent waits for them with a deadline, and SIGKILLs every child
//!   still alive when the deadline passes, when a sibling fails, or when the test
//!   panics, so a bug never hangs CI.
//! - [`SegGuard`]: removes a segment name when dropped, even when the test fails.
//! - [`Gate`]: a one-shot, broadcast signal between processes over a pipe.
//! - [`Rng`], [`fill_message`], [`check_message`]: deterministic messages that carry a
//!   sequence number and a checksum.
//! - [`backings`]: one test over every backing (POSIX, SysV, memfd).
//!
//! Children report back through a pipe: the string a role returns (`Ok`), its error
//! (`Err`, exit status 1) or its panic message and location (exit status 2). The
//! parent puts these in its own assertion messages, because what a child prints is
//! lost (the test harness captures output per thread, in the parent).

#![allow(dead_code)]

pub mod backings;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

// ---------------------------------------------------------------------------------
// Names and segments
// ---------------------------------------------------------------------------------

/// A segment name unique to this test and this process: `/shmlane-test-{test}-{pid}`.
pub fn seg_name(test: &str) -> String {
    format!("/shmlane-test-{test}-{}", std::process::id())
}

/// The file behind a POSIX shared-memory name on Linux.
pub fn shm_path(name: &str) -> String {
    format!("/dev/shm/{}", name.trim_start_matches('/'))
}

/// Removes the segment `name` when dropped (and once when made, in case a killed
/// earlier run with the same pid left it behind).
#[derive(Debug)]
pub struct SegGuard(pub String);

impl SegGuard {
    pub fn new(name: &str) -> SegGuard {
        let _ = shmlane::remove(name);
        SegGuard(name.to_string())
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for SegGuard {
    fn drop(&mut self) {
        let _ = shmlane::remove(&self.0);
    }
}

/// Reads the whole segment file.
pub fn read_segment(name: &str) -> Vec<u8> {
    std::fs::read(shm_path(name)).unwrap_or_else(|e| panic!("read {}: {e}", shm_path(name)))
}

/// Overwrites bytes of the segment file at `offset`.
pub fn poke(name: &str, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(name))
        .unwrap_or_else(|e| panic!("open {}: {e}", shm_path(name)));
    f.write_all_at(bytes, offset)
        .unwrap_or_else(|e| panic!("write {}: {e}", shm_path(name)));
}

/// Reads a little-endian u32 of the segment file at `offset`.
pub fn peek_u32(name: &str, offset: u64) -> u32 {
    let f = File::open(shm_path(name)).unwrap_or_else(|e| panic!("open {name}: {e}"));
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, offset)
        .unwrap_or_else(|e| panic!("read {name}: {e}"));
    u32::from_le_bytes(b)
}

/// Reads a little-endian u64 of the segment file at `offset`.
pub fn peek_u64(name: &str, offset: u64) -> u64 {
    let f = File::open(shm_path(name)).unwrap_or_else(|e| panic!("open {name}: {e}"));
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, offset)
        .unwrap_or_else(|e| panic!("read {name}: {e}"));
    u64::from_le_bytes(b)
}

/// Header field offsets (pinned by the const asserts in `src/header.rs`).
pub mod offsets {
    pub const MAGIC: u64 = 0;
    pub const VERSION: u64 = 8;
    pub const HEADER_SIZE: u64 = 12;
    pub const LAYOUT_HASH: u64 = 16;
    pub const ABI: u64 = 24;
    pub const KIND: u64 = 28;
    pub const CAPACITY: u64 = 32;
    pub const CELL_SIZE: u64 = 40;
    pub const MAX_RECORD: u64 = 48;
    pub const MAX_MESSAGE: u64 = 56;
    pub const FLAGS: u64 = 64;
    pub const CREATOR_PID: u64 = 72;
    pub const DATA_OFFSET: u64 = 88;
    pub const SEGMENT_LEN: u64 = 96;
    pub const MAX_ENDPOINTS: u64 = 104;
    pub const PRODUCERS: u64 = 112;
    pub const CONSUMERS: u64 = 120;
    pub const STATE: u64 = 128;
    pub const DATA_READY: u64 = 1024;
    pub const SPACE_READY: u64 = 1152;
    pub const TAIL: u64 = 1280;
    pub const HEAD: u64 = 1408;
    /// Endpoint slot `i` is at `ENDPOINTS + ENDPOINT_SLOT_SIZE * i`; its state is the
    /// first u32, the pid of its holder the second; its claim note is at +32.
    pub const ENDPOINTS: u64 = 2048;
    /// Size of one endpoint slot.
    pub const ENDPOINT_SLOT_SIZE: u64 = 64;
    /// The data region starts after the 4096-byte header.
    pub const DATA: u64 = 4096;
}

// ---------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------

static HEAVY: Mutex<()> = Mutex::new(());

/// Serialises the throughput-heavy tests of one test binary: the machine may have two
/// cores, and two pairs of busy processes on them slow each other down many times
/// over (each waits for a peer that is not running). Hold the guard for the test.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signaled(Signal),
}

/// A child's end and what it reported.
#[derive(Clone, Debug)]
pub struct ChildResult {
    pub role: String,
    pub pid: Pid,
    pub outcome: Outcome,
    pub report: String,
}

impl ChildResult {
    pub fn ok(&self) -> bool {
        self.outcome == Outcome::Exited(0)
    }
}

impl std::fmt::Display for ChildResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.outcome {
            Outcome::Exited(0) => "exited 0".to_string(),
            Outcome::Exited(1) => "exited 1 (returned an error)".to_string(),
            Outcome::Exited(2) => "exited 2 (panicked)".to_string(),
            Outcome::Exited(c) => format!("exited {c}"),
            Outcome::Signaled(s) => format!("killed by {s:?}"),
        };
        write!(f, "[{} pid {}] {how}: {}", self.role, self.pid, self.report)
    }
}

struct Child {
    role: String,
    pid: Pid,
    /// Read end of the report pipe, non-blocking.
    pipe: File,
    result: Option<ChildResult>,
}

/// The children of one test, with the test's deadline. Dropping it SIGKILLs and reaps
/// every child still running.
pub struct Procs {
    test: String,
    deadline: Instant,
    children: Vec<Child>,
}

/// Exit status of a child whose role returned `Err`.
pub const EXIT_ERR: i32 = 1;
/// Exit status of a child whose role panicked.
pub const EXIT_PANIC: i32 = 2;
/// Longest report a child sends (it must fit the pipe's buffer: the parent reads it
/// only once the child has exited).
const MAX_REPORT: usize = 8192;

static PANIC_MESSAGE: Mutex<String> = Mutex::new(String::new());

/// Creates a pipe with O_CLOEXEC; returns (read, write).
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 succeeded, so both are fresh descriptors that we own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn write_all_fd(fd: &OwnedFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid buffer of `bytes.len()` bytes; `fd` is open.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Runs `role` in the (forked) child and ends the process: it never returns into the
/// test harness.
fn run_child(report: OwnedFd, role: impl FnOnce() -> Result<String, String>) -> ! {
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut m) = PANIC_MESSAGE.lock() {
            *m = info.to_string();
        }
    }));
    let (code, mut text) = match catch_unwind(AssertUnwindSafe(role)) {
        Ok(Ok(s)) => (0, s),
        Ok(Err(e)) => (EXIT_ERR, e),
        Err(payload) => {
            let hooked = PANIC_MESSAGE.lock().map(|m| m.clone()).unwrap_or_default();
            let text = if !hooked.is_empty() {
                hooked
            } else if let Some(s) = payload.downcast_ref::<&str>() {
                s.to_string()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "panic with a non-string payload".to_string()
            };
            (EXIT_PANIC, text)
        }
    };
    if text.len() > MAX_REPORT {
        let mut cut = MAX_REPORT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" [...]");
    }
    write_all_fd(&report, text.as_bytes());
    // SAFETY: _exit ends the process at once, without running the parent's atexit
    // handlers or unwinding into the test harness.
    unsafe { libc::_exit(code) }
}

impl Procs {
    /// A test named `test` whose children must all be done within `timeout`.
    pub fn new(test: &str, timeout: Duration) -> Procs {
        Procs {
            test: test.to_string(),
            deadline: Instant::now() + timeout,
            children: Vec::new(),
        }
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Forks a child that runs `role` and exits 0 if it returns `Ok` (sending the
    /// string as its report), 1 if it returns `Err`, 2 if it panics. Returns the
    /// child's index.
    pub fn spawn(&mut self, role: &str, f: impl FnOnce() -> Result<String, String>) -> usize {
        let (r, w) = pipe();
        // The child uses the allocator (fork-safe in glibc) and no lock another parent
        // thread may hold, other than those of a panic (then the test fails anyway,
        // bounded by the deadline).
        // SAFETY: the child runs only `run_child`, which ends in `_exit`.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                drop(r);
                run_child(w, f)
            }
            Ok(ForkResult::Parent { child }) => {
                drop(w);
                // SAFETY: `r` is an open descriptor we own.
                unsafe {
                    let fl = libc::fcntl(r.as_raw_fd(), libc::F_GETFL);
                    libc::fcntl(r.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
                }
                self.children.push(Child {
                    role: role.to_string(),
                    pid: child,
                    pipe: File::from(r),
                    result: None,
                });
                self.children.len() - 1
            }
            Err(e) => panic!("{}: fork failed: {e}", self.test),
        }
    }

    pub fn pid(&self, idx: usize) -> Pid {
        self.children[idx].pid
    }

    /// SIGKILLs child `idx` (the test's doing: a peer that dies at any instruction)
    /// and reaps it.
    pub fn kill(&mut self, idx: usize) -> ChildResult {
        if !self.try_reap(idx) {
            let _ = kill(self.children[idx].pid, Signal::SIGKILL);
        }
        self.wait(idx)
    }

    /// Reaps child `idx` if it has ended. Returns whether it has.
    fn try_reap(&mut self, idx: usize) -> bool {
        let c = &mut self.children[idx];
        if c.result.is_some() {
            return true;
        }
        let outcome = match waitpid(c.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Outcome::Exited(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => Outcome::Signaled(sig),
            Ok(_) => return false,
            Err(nix::errno::Errno::EINTR) => return false,
            Err(e) => panic!("{}: waitpid({}): {e}", self.test, c.pid),
        };
        let mut report = Vec::new();
        // Non-blocking: everything the child wrote is in the pipe by now. (Another
        // test's child forked meanwhile may hold a copy of the write end, so we do not
        // wait for end-of-file.)
        let _ = c.pipe.read_to_end(&mut report);
        c.result = Some(ChildResult {
            role: c.role.clone(),
            pid: c.pid,
            outcome,
            report: String::from_utf8_lossy(&report).into_owned(),
        });
        true
    }

    /// Child `idx`'s result if it has ended, without waiting (and without the test's
    /// deadline: for callers that keep a deadline per child, such as the corruption
    /// sweep, and [`kill`](Self::kill) the ones that overrun it).
    pub fn try_wait(&mut self, idx: usize) -> Option<ChildResult> {
        if self.try_reap(idx) {
            self.children[idx].result.clone()
        } else {
            None
        }
    }

    /// SIGKILLs every child still running and reaps it.
    pub fn kill_all(&mut self) {
        for i in 0..self.children.len() {
            if self.children[i].result.is_some() || self.try_reap(i) {
                continue;
            }
            let pid = self.children[i].pid;
            let _ = kill(pid, Signal::SIGKILL);
            // A SIGKILLed process ends promptly; this wait is bounded in practice.
            let outcome = match waitpid(pid, None) {
                Ok(WaitStatus::Signaled(_, sig, _)) => Outcome::Signaled(sig),
                Ok(WaitStatus::Exited(_, code)) => Outcome::Exited(code),
                _ => Outcome::Signaled(Signal::SIGKILL),
            };
            let c = &mut self.children[i];
            c.result = Some(ChildResult {
                role: c.role.clone(),
                pid,
                outcome,
                report: "(killed by the test: deadline passed or a sibling failed)".into(),
            });
        }
    }

    fn summary(&self) -> String {
        self.children
            .iter()
            .map(|c| match &c.result {
                Some(r) => format!("  {r}"),
                None => format!("  [{} pid {}] still running", c.role, c.pid),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn timed_out(&mut self, waiting_for: &str) -> ! {
        self.kill_all();
        panic!(
            "{}: deadline passed while waiting for {waiting_for}; children:\n{}",
            self.test,
            self.summary()
        )
    }

    /// Waits (until the deadline) for child `idx` to end, whatever the outcome.
    pub fn wait(&mut self, idx: usize) -> ChildResult {
        let mut nap = Duration::from_micros(200);
        loop {
            if self.try_reap(idx) {
                return self.children[idx].result.clone().expect("reaped");
            }
            if Instant::now() >= self.deadline {
                let role = self.children[idx].role.clone();
                self.timed_out(&role);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }

    /// Waits for child `idx` and panics (after killing the others) unless it exited 0.
    /// Returns its report.
    pub fn wait_ok(&mut self, idx: usize) -> String {
        let r = self.wait(idx);
        if !r.ok() {
            self.kill_all();
            panic!("{}: a child failed:\n{}", self.test, self.summary());
        }
        r.report
    }

    /// Waits for every child; as soon as one fails, kills the others and panics with
    /// every child's report. Returns the reports, in spawn order.
    pub fn wait_all_ok(&mut self) -> Vec<String> {
        let mut nap = Duration::from_micros(200);
        loop {
            let mut all_done = true;
            for i in 0..self.children.len() {
                if self.try_reap(i) {
                    if !self.children[i].result.as_ref().expect("reaped").ok() {
                        self.kill_all();
                        panic!("{}: a child failed:\n{}", self.test, self.summary());
                    }
                } else {
                    all_done = false;
                }
            }
            if all_done {
                return self
                    .children
                    .iter()
                    .map(|c| c.result.as_ref().expect("reaped").report.clone())
                    .collect();
            }
            if Instant::now() >= self.deadline {
                self.timed_out("all children");
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// A one-shot signal between processes: [`open`](Gate::open) writes a byte that is
/// never read, so every process waiting in [`wait`](Gate::wait) sees it, now or later.
/// Make it before forking.
#[derive(Debug)]
pub struct Gate {
    r: OwnedFd,
    w: OwnedFd,
}

impl Gate {
    pub fn new() -> Gate {
        let (r, w) = pipe();
        Gate { r, w }
    }

    pub fn open(&self) {
        write_all_fd(&self.w, b"!");
    }

    /// Whether the gate is open within `timeout`.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.r.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
            // SAFETY: `pfd` is one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n > 0 {
                return true;
            }
            if n == 0 && Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// [`wait`](Gate::wait), as a role's error.
    pub fn expect(&self, timeout: Duration, what: &str) -> Result<(), String> {
        if self.wait(timeout) {
            Ok(())
        } else {
            Err(format!("gate '{what}' did not open within {timeout:?}"))
        }
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

// ---------------------------------------------------------------------------------
// Memory of the calling process
// ---------------------------------------------------------------------------------

/// `(VmRSS, VmHWM)` of the calling process, in bytes, from /proc/self/status.
pub fn rss_and_peak() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let field = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("no {key} in /proc/self/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets VmHWM to the current VmRSS (`echo 5 > /proc/self/clear_refs`). Returns
/// whether the kernel accepted it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

// ---------------------------------------------------------------------------------
// Deterministic data
// ---------------------------------------------------------------------------------

/// xorshift64: deterministic, so the producer and the consumer derive the same
/// sequence of sizes from the same seed, and failures replay.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(splitmix64(seed) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo + 1) as u64) as usize
    }
}

/// A good 64-bit mix (splitmix64's finaliser of `x + golden`).
#[inline]
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Bytes of a message before its body: the sequence number, then the checksum.
pub const MSG_HEADER: usize = 16;

/// Order-sensitive 64-bit checksum of `body`, keyed by the message's seq and length.
pub fn checksum(seq: u64, len: usize, body: &[u8]) -> u64 {
    let mut h = splitmix64(seq ^ ((len as u64) << 40));
    let mut words = body.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h.rotate_left(23) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(last)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    splitmix64(h)
}

/// Fills `buf` (the whole message) for sequence number `seq`.
///
/// A message of at least [`MSG_HEADER`] bytes is `seq`, a checksum of the body, then
/// the body (bytes derived from `seq`). A shorter one holds the first bytes of `seq`
/// and of a value derived from it, and is checked by comparing bytes.
pub fn fill_message(buf: &mut [u8], seq: u64) {
    let len = buf.len();
    if len < MSG_HEADER {
        let mut short = [0u8; MSG_HEADER];
        short[..8].copy_from_slice(&seq.to_le_bytes());
        short[8..].copy_from_slice(&splitmix64(seq).to_le_bytes());
        buf.copy_from_slice(&short[..len]);
        return;
    }
    let key = splitmix64(seq.wrapping_mul(0x2545_f491_4f6c_dd1d));
    for (j, chunk) in buf[MSG_HEADER..].chunks_mut(8).enumerate() {
        let w = splitmix64(key.wrapping_add(j as u64)).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
    let sum = checksum(seq, len, &buf[MSG_HEADER..]);
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..MSG_HEADER].copy_from_slice(&sum.to_le_bytes());
}

/// A new message of `len` bytes for `seq`.
pub fn message(seq: u64, len: usize) -> Vec<u8> {
    let mut m = vec![0; len];
    fill_message(&mut m, seq);
    m
}

/// Checks that `msg` is message `seq` of `len` bytes: its length, its sequence number
/// and its checksum (or, under 16 bytes, every byte).
pub fn check_message(msg: &[u8], seq: u64, len: usize) -> Result<(), String> {
    if msg.len() != len {
        return Err(format!(
            "message {seq}: length {} instead of {len}",
            msg.len()
        ));
    }
    if len < MSG_HEADER {
        let mut want = [0u8; MSG_HEADER];
        fill_message(&mut want[..len], seq);
        if msg != &want[..len] {
            return Err(format!(
                "message {seq} ({len} bytes): {msg:02x?} instead of {:02x?}",
                &want[..len]
            ));
        }
        return Ok(());
    }
    let got_seq = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
    if got_seq != seq {
        return Err(format!(
            "expected message {seq} ({len} bytes), got sequence number {got_seq}"
        ));
    }
    let got_sum = u64::from_le_bytes(msg[8..MSG_HEADER].try_into().expect("8 bytes"));
    let sum = checksum(seq, len, &msg[MSG_HEADER..]);
    if got_sum != sum {
        return Err(format!(
            "message {seq} ({len} bytes): checksum {got_sum:#x}, computed {sum:#x}"
        ));
    }
    Ok(())
}

/// A message length for a ring of `capacity` bytes: mostly small, some up to one
/// record, some in fragments (up to 3 × capacity), and the boundary sizes.
pub fn message_len(rng: &mut Rng, capacity: usize) -> usize {
    let max_payload = capacity / 2 - 8;
    match rng.below(100) {
        0..=54 => rng.range(0, 64),
        55..=79 => rng.range(0, 1024.min(max_payload)),
        80..=91 => rng.range(0, max_payload),
        92..=96 => rng.range(max_payload + 1, 3 * capacity),
        _ => {
            let edges = [
                0,
                1,
                7,
                8,
                15,
                16,
                17,
                max_payload - 8,
                max_payload - 1,
                max_payload,
                max_payload + 1,
                max_payload + 8,
                capacity - 8,
                capacity,
                capacity + 1,
                2 * capacity,
                3 * capacity - 1,
                3 * capacity,
            ];
            edges[rng.below(edges.len() as u64) as usize]
        }
    }
}

/// The `i`-th 8-byte word of the stream used by the large-message tests.
#[inline]
pub fn stream_word(i: u64) -> u64 {
    splitmix64(i ^ 0x5eed_5eed_5eed_5eed)
}

/// Fills `buf` with the stream's bytes from byte offset `offset` on.
pub fn fill_stream(buf: &mut [u8], offset: u64) {
    let mut o = offset;
    let mut i = 0;
    // Unaligned head, byte by byte.
    while i < buf.len() && o % 8 != 0 {
        buf[i] = stream_word(o / 8).to_le_bytes()[(o % 8) as usize];
        i += 1;
        o += 1;
    }
    let mut words = buf[i..].chunks_exact_mut(8);
    for w in &mut words {
        w.copy_from_slice(&stream_word(o / 8).to_le_bytes());
        o += 8;
    }
    let rest = words.into_remainder();
    let last = stream_word(o / 8).to_le_bytes();
    let n = rest.len();
    rest.copy_from_slice(&last[..n]);
}

/// Checks that `buf` holds the stream's bytes from byte offset `offset` on. Returns
/// the offset of the first wrong byte.
pub fn check_stream(buf: &[u8], offset: u64) -> Result<(), u64> {
    let mut o = offset;
    let mut i = 0;
    while i < buf.len() && o % 8 != 0 {
        if buf[i] != stream_word(o / 8).to_le_bytes()[(o % 8) as usize] {
            return Err(o);
        }
        i += 1;
        o += 1;
    }
    let mut words = buf[i..].chunks_exact(8);
    for w in &mut words {
        if u64::from_le_bytes(w.try_into().expect("8 bytes")) != stream_word(o / 8) {
            return Err(o);
        }
        o += 8;
    }
    let rest = words.remainder();
    let last = stream_word(o / 8).to_le_bytes();
    for (k, &b) in rest.iter().enumerate() {
        if b != last[k] {
            return Err(o + k as u64);
        }
    }
    Ok(())
}
