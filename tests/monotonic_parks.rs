//! The semaphore notifier parks on `CLOCK_MONOTONIC`, so a step of the wall clock
//! neither stretches nor cuts a bounded park.
//!
//! Stepping the real clock would disturb the whole machine, so the test looks at the
//! system call instead: a child installs a seccomp filter that kills it (SIGSYS) on
//! any `futex` call with `FUTEX_CLOCK_REALTIME` in its operation (which is how glibc's
//! `sem_timedwait` waits, and `sem_clockwait` on `CLOCK_REALTIME`), then parks on an
//! empty ring with the semaphore notifier. A control shows the filter does kill a
//! realtime wait, so the test cannot pass vacuously.

// seccomp filter for x86-64 system call numbers and glibc's sem_t; real processes.
#![cfg(all(
    target_os = "linux",
    target_arch = "x86_64",
    target_env = "gnu",
    not(miri)
))]

mod common;

use std::time::Duration;

use common::{seg_name, Outcome, Procs, SegGuard};
use nix::sys::signal::Signal;
use shmlane::{spsc, Notifier, RecvTimeoutError, RingOptions, Wait};

const DEADLINE: Duration = Duration::from_secs(30);

/// Makes every later `futex` call of this process whose operation carries
/// `FUTEX_CLOCK_REALTIME` kill it with SIGSYS. For a child process only.
fn forbid_realtime_futex() -> Result<(), String> {
    shmlane_support::seccomp::kill_on_realtime_futex().map_err(|e| e.to_string())
}

/// A consumer parked on the semaphore of an empty ring times out with no realtime
/// futex wait.
#[test]
fn semaphore_park_waits_on_the_monotonic_clock() {
    let test = "sem-clock";
    let name = seg_name(test);
    let _seg = SegGuard::new(&name);
    let mut procs = Procs::new(test, DEADLINE);
    let consumer = procs.spawn("consumer", || {
        let opts = RingOptions::new(4096)
            .notifier(Notifier::Semaphore)
            .wait(Wait::Park);
        let mut rx = spsc::Consumer::create(&name, &opts).map_err(|e| e.to_string())?;
        let _tx = spsc::Producer::open(&name).map_err(|e| e.to_string())?;
        forbid_realtime_futex()?;
        let before = shmlane::wait::futex_calls();
        let mut buf = Vec::new();
        for _ in 0..3 {
            let got = rx.recv_timeout(&mut buf, Duration::from_millis(30));
            if got != Err(RecvTimeoutError::Timeout) {
                return Err(format!("recv_timeout on an empty ring: {got:?}"));
            }
        }
        let after = shmlane::wait::futex_calls();
        // The park really went through the semaphore (its wait counts as a call).
        if after.1 == before.1 {
            return Err("no semaphore wait was made".into());
        }
        Ok(String::new())
    });
    procs.wait_ok(consumer);
}

/// Control: the filter kills a realtime futex wait (here glibc's own
/// `sem_timedwait`).
#[test]
fn filter_kills_a_realtime_semaphore_wait() {
    let test = "sem-clock-control";
    let mut procs = Procs::new(test, DEADLINE);
    let child = procs.spawn("sem_timedwait", || {
        forbid_realtime_futex()?;
        // SAFETY: a private, process-local semaphore, initialised before use and
        // destroyed after; `deadline` outlives the call.
        unsafe {
            let mut sem: libc::sem_t = std::mem::zeroed();
            libc::sem_init(&mut sem, 0, 0);
            let mut deadline: libc::timespec = std::mem::zeroed();
            libc::clock_gettime(libc::CLOCK_REALTIME, &mut deadline);
            deadline.tv_sec += 1;
            libc::sem_timedwait(&mut sem, &deadline);
            libc::sem_destroy(&mut sem);
        }
        Ok("sem_timedwait returned".into())
    });
    let r = procs.wait(child);
    assert_eq!(
        r.outcome,
        Outcome::Signaled(Signal::SIGSYS),
        "the filter let a realtime futex wait through: {r}"
    );
}
