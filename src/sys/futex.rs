//! Shared futex wait and wake on a 32-bit word of a mapping (`futex(2)`).
//!
//! The words live in memory that several processes map, so the calls are the shared
//! ones: never `FUTEX_PRIVATE_FLAG` (which keys the wait on this process's address
//! space, and a wake-up from another process would reach nobody). After parking_lot's
//! Linux parker: a thin wrapper that `debug_assert!`s the errors it expects.
//!
//! Under loom the futex is a condition variable beside the word ([`Futex`] carries it):
//! a waiter sleeps (blocked, not spinning) while the word holds its value, and a waker
//! moves the word on before it takes the lock to notify, as FUTEX_WAIT checks the
//! value and sleeps atomically against FUTEX_WAKE. Waking one wakes one blocked
//! waiter, as FUTEX_WAKE with a count of 1 does: the others stay blocked although the
//! word moved. A lost wake-up is a waiter blocked for ever: loom reports the deadlock.
//! Sleeps have no timeout there, so a park slice cannot hide one.

use std::time::Duration;

use crate::sync::AtomicU32;

/// A futex word: an `AtomicU32` (it dereferences to one), 4 bytes, laid out as one in
/// shared memory. Under loom it also holds the condition variable that stands for the
/// kernel's wait queue.
#[derive(Debug)]
#[cfg_attr(not(loom), repr(transparent))]
pub(crate) struct Futex {
    word: AtomicU32,
    #[cfg(loom)]
    sleepers: loom::sync::Mutex<()>,
    #[cfg(loom)]
    woken: loom::sync::Condvar,
}

impl Futex {
    /// A futex word holding `value` (the state a fresh header has: 0).
    #[cfg(any(loom, miri))]
    pub(crate) fn new(value: u32) -> Futex {
        Futex {
            word: AtomicU32::new(value),
            #[cfg(loom)]
            sleepers: loom::sync::Mutex::new(()),
            #[cfg(loom)]
            woken: loom::sync::Condvar::new(),
        }
    }
}

impl std::ops::Deref for Futex {
    type Target = AtomicU32;

    #[inline(always)]
    fn deref(&self) -> &AtomicU32 {
        &self.word
    }
}

/// How many sleepers a [`wake`] reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    One,
    All,
}

/// Wakes one sleeper on `futex`, or every sleeper. Returns how many the kernel woke
/// (under loom: 0, not known).
#[cfg(not(loom))]
pub(crate) fn wake(futex: &Futex, how: Wake) -> usize {
    let n: i32 = match how {
        Wake::One => 1,
        Wake::All => i32::MAX,
    };
    // SAFETY: FUTEX_WAKE only uses the address as a key (no access through it); it is
    // the valid, 4-byte aligned address of a live AtomicU32. No FUTEX_PRIVATE_FLAG:
    // the word is shared between processes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            futex.word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    debug_assert!(
        r >= 0,
        "FUTEX_WAKE failed: {}",
        std::io::Error::last_os_error()
    );
    r.max(0) as usize
}

/// Sleeps while `futex` reads `expected`, for at most `timeout`. Returns `true` if the
/// wait ran out its timeout; `false` if it was woken, the word did not hold
/// `expected` (EAGAIN), or a signal came (EINTR): the caller re-checks either way.
#[cfg(not(loom))]
pub(crate) fn wait(futex: &Futex, expected: u32, timeout: Duration) -> bool {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the address is that of a live, aligned AtomicU32; the kernel reads it
    // atomically and compares it with `expected`. `ts` outlives the call. Shared
    // futex (no FUTEX_PRIVATE_FLAG), as for `wake`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            futex.word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if r != 0 {
        let errno = std::io::Error::last_os_error().raw_os_error();
        // EAGAIN: the word had already moved; ETIMEDOUT: time over; EINTR: a signal.
        debug_assert!(
            matches!(errno, Some(libc::EAGAIN | libc::ETIMEDOUT | libc::EINTR)),
            "unexpected FUTEX_WAIT error {errno:?}"
        );
        return errno == Some(libc::ETIMEDOUT);
    }
    false
}

/// Under loom: see the module docs.
#[cfg(loom)]
pub(crate) fn wake(futex: &Futex, how: Wake) -> usize {
    let _guard = futex.sleepers.lock().unwrap();
    match how {
        Wake::One => futex.woken.notify_one(),
        Wake::All => futex.woken.notify_all(),
    }
    0
}

/// Under loom: see the module docs. Never runs out (no timeouts in the models).
#[cfg(loom)]
pub(crate) fn wait(futex: &Futex, expected: u32, _timeout: Duration) -> bool {
    use crate::sync::Ordering;
    let mut guard = futex.sleepers.lock().unwrap();
    while futex.word.load(Ordering::Acquire) == expected {
        guard = futex.woken.wait(guard).unwrap();
    }
    false
}

#[cfg(all(test, not(loom), not(miri)))]
mod tests {
    use super::*;
    use crate::sync::Ordering;

    #[test]
    fn wait_returns_at_once_when_the_word_moved_and_runs_out_otherwise() {
        let f = Futex {
            word: AtomicU32::new(7),
        };
        // EAGAIN: the word does not hold 6.
        assert!(!wait(&f, 6, Duration::from_secs(5)));
        // Nobody wakes us: the wait runs out.
        assert!(wait(&f, 7, Duration::from_millis(1)));
        assert_eq!(wake(&f, Wake::All), 0, "nobody sleeps");
    }

    #[test]
    fn wake_reaches_a_sleeper() {
        let f = std::sync::Arc::new(Futex {
            word: AtomicU32::new(0),
        });
        let g = f.clone();
        let sleeper = std::thread::spawn(move || {
            while g.load(Ordering::Acquire) == 0 {
                wait(&g, 0, Duration::from_secs(10));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        f.store(1, Ordering::Release);
        wake(&f, Wake::One);
        sleeper.join().unwrap();
    }
}
