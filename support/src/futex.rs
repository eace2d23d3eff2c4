//! Raw futex calls on a word in memory that two processes map: the kernel's sleeping
//! primitive, for the doorbell baselines that always sleep and always wake.
//!
//! These are *shared* futexes (no `FUTEX_PRIVATE_FLAG`): a private one keys the wait
//! queue by the address in one process, and would never meet a waker in another.

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// `FUTEX_WAIT`: sleeps while `word` holds `expected`, until a [`futex_wake`] on it,
/// a signal, or `timeout` (none: no limit).
///
/// `Ok(())` after a wake-up; the error `WouldBlock` (EAGAIN) at once when the word no
/// longer held `expected`, `TimedOut` (ETIMEDOUT), `Interrupted` (EINTR). Spurious
/// wake-ups happen: callers load the word again and decide.
#[inline]
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> io::Result<()> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call, and `ts_ptr`
    // is null or points to `ts`, alive until the call returns.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `FUTEX_WAKE`: wakes up to `waiters` processes sleeping on `word`; returns how
/// many it woke.
#[inline]
pub fn futex_wake(word: &AtomicU32, waiters: u32) -> io::Result<usize> {
    let n = waiters.min(i32::MAX as u32);
    // SAFETY: as in `futex_wait`; FUTEX_WAKE ignores the timeout and the second word.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0,
        )
    };
    if r >= 0 {
        Ok(r as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    use super::{futex_wait, futex_wake};

    #[test]
    fn wait_returns_at_once_on_a_changed_word_and_times_out_on_an_unchanged_one() {
        let w = AtomicU32::new(1);
        let e = futex_wait(&w, 0, None).expect_err("word is 1, not 0");
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        let t = Instant::now();
        let e = futex_wait(&w, 1, Some(Duration::from_millis(20))).expect_err("timeout");
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(15));
        assert_eq!(futex_wake(&w, 1).expect("wake"), 0);
    }

    #[test]
    fn wake_wakes_a_sleeper() {
        let w = std::sync::Arc::new(AtomicU32::new(0));
        let w2 = w.clone();
        let sleeper = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                let _ = futex_wait(&w2, 0, Some(Duration::from_secs(10)));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        let t = Instant::now();
        w.store(1, Ordering::Release);
        futex_wake(&w, 1).expect("wake");
        sleeper.join().expect("sleeper");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
