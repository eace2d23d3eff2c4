//! Forking a role into a child process, and knowing how it ended.
//!
//! [`fork`] runs a closure in a child that leaves only through `_exit` (never back
//! into the caller's stack, the test harness or criterion) with the closure's exit
//! status, or [`EXIT_PANIC`] if it panicked. [`run_role`] runs a role that returns a
//! report or an error and catches its panic message, for a child to hand back to its
//! parent (over a pipe, or in shared memory). The parent holds a [`Child`]: it reaps
//! it without blocking ([`Child::try_wait`]), with a deadline
//! ([`Child::wait_timeout`]), or SIGKILLs it ([`Child::kill`]); dropped while still
//! running, a `Child` is SIGKILLed and reaped, so a failed test or bench leaves no
//! process behind.

use std::fmt;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

/// Exit status of a child whose role returned an error.
pub const EXIT_ERR: i32 = 1;
/// Exit status of a child whose role panicked.
pub const EXIT_PANIC: i32 = 2;

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It exited with this status.
    Exited(i32),
    /// A signal killed it.
    Signaled(Signal),
}

impl Status {
    /// Whether it exited with status 0.
    pub fn success(self) -> bool {
        self == Status::Exited(0)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Exited(c) => write!(f, "exited with status {c}"),
            Status::Signaled(s) => write!(f, "was killed by {s}"),
        }
    }
}

/// A forked child, reaped once. Dropped while still running, it is SIGKILLed and
/// reaped.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    /// How it ended, once reaped (its pid may then be reused: never signal it again).
    status: Option<Status>,
}

fn wait_error(pid: Pid, e: Errno) -> io::Error {
    io::Error::new(
        io::Error::from(e).kind(),
        format!("waitpid({pid}): {}", e.desc()),
    )
}

impl Child {
    /// Its process id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// How it ended, if it has been reaped.
    pub fn status(&self) -> Option<Status> {
        self.status
    }

    /// Reaps it if it has ended, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<Status>> {
        self.reap(Some(WaitPidFlag::WNOHANG))
    }

    /// Waits until it ends.
    pub fn wait(&mut self) -> io::Result<Status> {
        loop {
            if let Some(s) = self.reap(None)? {
                return Ok(s);
            }
        }
    }

    /// Waits at most `timeout` for it to end (polling, with naps from 200 µs to
    /// 10 ms). `Ok(None)`: still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<Status>> {
        let deadline = Instant::now() + timeout;
        let mut nap = Duration::from_micros(200);
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            std::thread::sleep(nap.min(left));
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }

    /// SIGKILLs it unless it has ended, and reaps it.
    pub fn kill(&mut self) -> io::Result<Status> {
        if let Some(s) = self.try_wait()? {
            return Ok(s);
        }
        // An unreaped child keeps its pid, so the signal cannot reach another process.
        // ESRCH cannot happen for an unreaped child; any error shows in the wait.
        let _ = kill(self.pid, Signal::SIGKILL);
        self.wait()
    }

    fn reap(&mut self, flags: Option<WaitPidFlag>) -> io::Result<Option<Status>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let status = match waitpid(self.pid, flags) {
            Ok(WaitStatus::Exited(_, code)) => Status::Exited(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => Status::Signaled(sig),
            // Still running (WNOHANG), or stopped or continued: not ended.
            Ok(_) | Err(Errno::EINTR) => return Ok(None),
            Err(e) => return Err(wait_error(self.pid, e)),
        };
        self.status = Some(status);
        Ok(Some(status))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Forks a child that closes `close` (descriptors it inherits and must not hold:
/// the parent's ends of pipes and sockets, so that it sees end-of-file when the
/// parent closes them), runs `body` and exits with the status `body` returns, or
/// [`EXIT_PANIC`] if it panics. In the parent, `body` is dropped unrun (closing
/// whatever it captured). Standard output and error are flushed first, so that
/// nothing buffered is written twice.
///
/// # Safety
///
/// - The child is a copy of the calling thread alone: if the process runs other
///   threads, `body` must not wait for a lock another thread may have held at the
///   fork (the allocator is fine: glibc's `fork` resets its locks), nor lock standard
///   output or error. A panic runs the panic hook, and the default hook takes the
///   backtrace lock: in a multi-threaded process, run the role through [`run_role`],
///   whose hook takes none.
/// - The descriptors in `close` are the child's to close: nothing in the child uses
///   them afterwards.
pub unsafe fn fork(close: &[RawFd], body: impl FnOnce() -> i32) -> io::Result<Child> {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: the caller vouches for what the child runs; the child never returns
    // from this function: it leaves through `_exit`.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            for &fd in close {
                // SAFETY: the caller hands these inherited descriptors to the child to
                // close; the objects that own them are never dropped here (the child
                // leaves through `_exit`).
                unsafe { libc::close(fd) };
            }
            let code = catch_unwind(AssertUnwindSafe(body)).unwrap_or(EXIT_PANIC);
            // SAFETY: `_exit` ends the child at once, without running the parent's
            // destructors, exit handlers or test harness, which are not the child's.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => Ok(Child {
            pid: child,
            status: None,
        }),
        Err(e) => Err(io::Error::new(
            io::Error::from(e).kind(),
            format!("fork: {}", e.desc()),
        )),
    }
}

/// The message of the last panic in this process, set by the hook [`run_role`]
/// installs.
static PANIC_MESSAGE: Mutex<String> = Mutex::new(String::new());

/// Runs `role` (in a forked child) and returns the exit status and the report for
/// its parent: `(0, its string)` if it returns `Ok`, `(EXIT_ERR, its error)` if it
/// returns `Err`, `(EXIT_PANIC, the panic message and location)` if it panics.
///
/// It replaces the panic hook by one that only keeps the message: what a child
/// prints is often lost (the test harness captures output per thread, in the
/// parent), and the default hook takes the process's backtrace lock, which another
/// thread of a multi-threaded parent may have held at the fork (the child would then
/// hang in its panic).
pub fn run_role(role: impl FnOnce() -> Result<String, String>) -> (i32, String) {
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut m) = PANIC_MESSAGE.lock() {
            *m = info.to_string();
        }
    }));
    match catch_unwind(AssertUnwindSafe(role)) {
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
    }
}

/// The message and location of the last panic that the hook of [`run_role`] caught
/// in this process (on any thread), if there was one: for a role that joins threads
/// of its own and reports how one of them panicked.
pub fn last_panic_message() -> Option<String> {
    let m = PANIC_MESSAGE.lock().ok()?;
    (!m.is_empty()).then(|| m.clone())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nix::sys::signal::Signal;

    use super::{fork, run_role, Status, EXIT_ERR, EXIT_PANIC};

    #[test]
    fn status_of_exit_panic_and_kill() {
        // SAFETY: the children only compute and exit (or sleep).
        unsafe {
            let mut ok = fork(&[], || 0).expect("fork");
            assert_eq!(ok.wait().expect("wait"), Status::Exited(0));
            assert!(ok.status().expect("reaped").success());
            // Through run_role: the default panic hook could hang a child of this
            // multi-threaded test process (see `fork`).
            let mut panics = fork(&[], || run_role(|| panic!("on purpose")).0).expect("fork");
            assert_eq!(panics.wait().expect("wait"), Status::Exited(EXIT_PANIC));
            let mut sleeper = fork(&[], || {
                std::thread::sleep(Duration::from_secs(60));
                0
            })
            .expect("fork");
            assert_eq!(sleeper.try_wait().expect("try_wait"), None);
            assert_eq!(
                sleeper
                    .wait_timeout(Duration::from_millis(20))
                    .expect("wait"),
                None
            );
            let killed = sleeper.kill().expect("kill");
            assert_eq!(killed, Status::Signaled(Signal::SIGKILL));
            assert_eq!(killed.to_string(), "was killed by SIGKILL");
        }
    }

    #[test]
    fn run_role_reports_ok_error_and_panic() {
        assert_eq!(run_role(|| Ok("fine".into())), (0, "fine".into()));
        assert_eq!(run_role(|| Err("bad".into())), (EXIT_ERR, "bad".into()));
        let (code, text) = run_role(|| panic!("boom {}", 7));
        assert_eq!(code, EXIT_PANIC);
        assert!(
            text.contains("boom 7") && text.contains("fork.rs"),
            "{text}"
        );
        assert_eq!(super::last_panic_message(), Some(text));
        // Give this test process its default hook back.
        drop(std::panic::take_hook());
    }
}
