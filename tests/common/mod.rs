//! Helpers shared by the tests that fork real processes.
//!
//! - [`Procs`]: forks children that run one role each inside `catch_unwind` and end
//!   with `_exit`; the parent waits for them with a deadline, and SIGKILLs every child
//!   still alive when the deadline passes, when a sibling fails, or when the test
//!   panics, so a bug never hangs CI.
//! - [`SegGuard`]: removes a segment name when dropped, even when the test fails.
//! - [`Gate`]: a one-shot, broadcast signal between processes over a pipe.
//! - [`Rng`], [`fill_message`], [`check_message`]: deterministic messages that carry a
//!   sequence number and a checksum (from `shmlane_support::payload`).
//! - [`backings`]: one test over every backing (POSIX, SysV, memfd).
//!
//! The forking itself, the exit statuses ([`Outcome`]) and the pipes come from the
//! `shmlane-support` package, which the benches and `shmlane bench` share; what is
//! here is what only the tests need: deadlines that fail the test, reports in the
//! assertion messages, segment names and header offsets.
//!
//! Children report back through a pipe: the string a role returns (`Ok`), its error
//! (`Err`, exit status 1) or its panic message and location (exit status 2). The
//! parent puts these in its own assertion messages, because what a child prints is
//! lost (the test harness captures output per thread, in the parent).

#![allow(dead_code)]

pub mod backings;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmlane_support::fork::{fork, run_role};

/// How a child ended: `Exited(status)` or `Signaled(signal)`.
pub use shmlane_support::fork::Status as Outcome;
/// Exit statuses of a child whose role returned `Err` / panicked.
pub use shmlane_support::fork::{EXIT_ERR, EXIT_PANIC};
pub use shmlane_support::payload::*;

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
        self.outcome.success()
    }
}

impl std::fmt::Display for ChildResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.outcome {
            Outcome::Exited(0) => "exited 0".to_string(),
            Outcome::Exited(EXIT_ERR) => format!("exited {EXIT_ERR} (returned an error)"),
            Outcome::Exited(EXIT_PANIC) => format!("exited {EXIT_PANIC} (panicked)"),
            Outcome::Exited(c) => format!("exited {c}"),
            Outcome::Signaled(s) => format!("killed by {s:?}"),
        };
        write!(f, "[{} pid {}] {how}: {}", self.role, self.pid, self.report)
    }
}

struct Child {
    role: String,
    /// The process (SIGKILLed and reaped if dropped unreaped).
    proc: shmlane_support::fork::Child,
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

/// Longest report a child sends (it must fit the pipe's buffer: the parent reads it
/// only once the child has exited).
const MAX_REPORT: usize = 8192;

/// Creates a pipe with O_CLOEXEC; returns (read, write).
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = shmlane_support::pipes::pipe().unwrap_or_else(|e| panic!("{e}"));
    (r.into(), w.into())
}

/// Writes `text`, cut to [`MAX_REPORT`] bytes, to the report pipe `w` (best effort:
/// the parent says when a child's report is missing).
fn send_report(w: OwnedFd, mut text: String) {
    if text.len() > MAX_REPORT {
        let mut cut = MAX_REPORT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" [...]");
    }
    let _ = File::from(w).write_all(text.as_bytes());
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
        let r_fd = r.as_raw_fd();
        // SAFETY: the child runs the role through `run_role` (whose panic hook takes no
        // lock) and uses the allocator (fork-safe in glibc) and no lock another parent
        // thread may hold, other than those of a panic (then the test fails anyway,
        // bounded by the deadline); it closes its copy of the read end `r`, which it
        // never uses.
        let proc = unsafe {
            fork(&[r_fd], move || {
                let (code, text) = run_role(f);
                send_report(w, text);
                code
            })
        }
        .unwrap_or_else(|e| panic!("{}: {e}", self.test));
        // SAFETY: `r` is an open descriptor we own.
        unsafe {
            let fl = libc::fcntl(r.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(r.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        self.children.push(Child {
            role: role.to_string(),
            pid: proc.pid(),
            proc,
            pipe: File::from(r),
            result: None,
        });
        self.children.len() - 1
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
        let outcome = match c.proc.try_wait() {
            Ok(Some(outcome)) => outcome,
            Ok(None) => return false,
            Err(e) => panic!("{}: {e}", self.test),
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
            let c = &mut self.children[i];
            let pid = c.pid;
            // A SIGKILLed process ends promptly; this wait is bounded in practice.
            let outcome = c.proc.kill().unwrap_or(Outcome::Signaled(Signal::SIGKILL));
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
    r: File,
    w: File,
}

impl Gate {
    pub fn new() -> Gate {
        let (r, w) = shmlane_support::pipes::pipe().unwrap_or_else(|e| panic!("{e}"));
        Gate { r, w }
    }

    pub fn open(&self) {
        let _ = (&self.w).write_all(b"!");
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
