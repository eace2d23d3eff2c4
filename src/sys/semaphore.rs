//! Process-shared POSIX semaphores (`sem_init(pshared = 1)`) in a slot of the header,
//! for the semaphore notifier.
//!
//! Waits are bounded: `sem_clockwait` on `CLOCK_MONOTONIC` (glibc 2.30 and later), so
//! that a step of the wall clock neither stretches nor cuts a park; `sem_timedwait`
//! (`CLOCK_REALTIME`) only where the C library has no `sem_clockwait`.
//!
//! Under loom there are no semaphores (the models use the futex notifier): `init`,
//! `post` do nothing and `timed_wait` returns at once.

use std::time::Duration;

/// Room for one process-shared POSIX semaphore (`sem_t`, 32 bytes on Linux), on a
/// cache line of its own. Only libc touches the bytes, through a raw pointer, and only
/// on rings whose notifier is `NOTIFIER_SEMAPHORE`.
#[repr(C, align(64))]
pub(crate) struct SemSlot(std::cell::UnsafeCell<[u64; 8]>);

// SAFETY: the bytes are only reached through `sem_ptr`, by the semaphore functions,
// which are safe to call concurrently from any thread or process (pshared = 1).
unsafe impl Sync for SemSlot {}

impl std::fmt::Debug for SemSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SemSlot")
    }
}

#[cfg(not(loom))]
static_assertions::const_assert!(
    std::mem::size_of::<libc::sem_t>() <= std::mem::size_of::<SemSlot>()
        && std::mem::align_of::<libc::sem_t>() <= std::mem::align_of::<SemSlot>()
);

impl SemSlot {
    /// A zeroed slot (as in a fresh header, or for a private reference semaphore).
    pub(crate) fn zeroed() -> SemSlot {
        SemSlot(std::cell::UnsafeCell::new([0; 8]))
    }

    /// The semaphore, for libc.
    #[cfg(not(loom))]
    pub(crate) fn sem_ptr(&self) -> *mut libc::sem_t {
        self.0.get().cast()
    }

    /// Initialises the semaphore in the slot, process-shared, at 0.
    ///
    /// # Safety
    ///
    /// Nobody else uses the slot until this returns (a header before READY is
    /// published); a semaphore that was initialised is not in use any more.
    pub(crate) unsafe fn init(&self) {
        #[cfg(not(loom))]
        {
            // SAFETY: the slot is 64 aligned bytes, big enough for a sem_t (asserted
            // above); the caller guarantees nobody uses it meanwhile.
            let r = unsafe { libc::sem_init(self.sem_ptr(), 1, 0) };
            // sem_init fails only for a value above SEM_VALUE_MAX or without pshared
            // support, which Linux has.
            debug_assert_eq!(r, 0, "sem_init: {}", std::io::Error::last_os_error());
        }
    }

    /// Whether the semaphore's flags word is what `sem_init` wrote (see
    /// [`shared_flags_word`]); `true` where that word is not known, and under loom.
    ///
    /// The check and the C library's call that follows are two steps: a peer that
    /// rewrites the word between them (a window of a few instructions, per call) gets
    /// past it. What that can do: make glibc's futex call fail with an error it does
    /// not expect (EINVAL, ENOSYS for an operation the flags turn into), which glibc
    /// answers by aborting this process; or turn the call into a private-futex one,
    /// whose wake-up reaches nobody (a lost wake-up, made up for by the sleepers'
    /// bounded park slices). What it cannot do: make glibc touch memory outside the
    /// 32-byte `sem_t` inside our mapping (the flags choose only the futex operation),
    /// hand this process anything but a spurious or missed wake-up, or corrupt a
    /// message. Why it is accepted: closing it means not handing shared bytes to
    /// glibc's `sem_t` code at all, that is, a semaphore of our own on the futex, which
    /// is the futex notifier (the default, which has no such window); the semaphore
    /// notifier exists for comparison and for policies that want libc's semaphores.
    /// Hitting the window takes a peer that writes the segment on purpose, in a race
    /// of a few instructions, and such a peer is already outside the trust model (it
    /// can stop the ring in many other ways). A peer that scribbles the word by
    /// mistake and leaves it is caught here on every later call.
    pub(crate) fn intact(&self) -> bool {
        #[cfg(all(not(loom), target_pointer_width = "64"))]
        {
            // SAFETY: the slot is 64 bytes, 64-aligned; word 1 is in it. Peers write it
            // only through libc's atomics (or scribble it): an atomic load.
            let w = unsafe { crate::sync::load_relaxed_u64(self.sem_ptr().cast::<u64>().add(1)) };
            w as u32 == shared_flags_word()
        }
        #[cfg(not(all(not(loom), target_pointer_width = "64")))]
        {
            true
        }
    }

    /// Tops the semaphore's tokens up to `tokens` (at least one), waking that many
    /// sleepers. Call only on an [`intact`](Self::intact) semaphore that was
    /// initialised (pshared) before the ring became READY.
    pub(crate) fn post_up_to(&self, tokens: u32) {
        #[cfg(not(loom))]
        {
            let mut value: libc::c_int = 0;
            // SAFETY: the slot holds a semaphore initialised (pshared) before the ring
            // became READY; `value` outlives the call.
            let r = unsafe { libc::sem_getvalue(self.sem_ptr(), &mut value) };
            let have = if r == 0 { value.max(0) as u32 } else { 0 };
            for _ in have..tokens.max(1) {
                // SAFETY: as above.
                let r = unsafe { libc::sem_post(self.sem_ptr()) };
                debug_assert_eq!(r, 0, "sem_post: {}", std::io::Error::last_os_error());
            }
        }
        #[cfg(loom)]
        let _ = tokens;
    }

    /// Takes a token, waiting at most `timeout` for one. Returns whether the wait ran
    /// out its timeout (`false`: a token, or a signal). Call only on an
    /// [`intact`](Self::intact), initialised semaphore.
    pub(crate) fn timed_wait(&self, timeout: Duration) -> bool {
        #[cfg(not(loom))]
        {
            let clockwait = sem_clockwait();
            let clock = if clockwait.is_some() {
                libc::CLOCK_MONOTONIC
            } else {
                libc::CLOCK_REALTIME
            };
            // Both calls take an absolute deadline on `clock`.
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `now` is a valid out-parameter.
            unsafe { libc::clock_gettime(clock, &mut now) };
            let nanos = now.tv_nsec as u64 + u64::from(timeout.subsec_nanos());
            let deadline = libc::timespec {
                tv_sec: now.tv_sec
                    + timeout.as_secs().min(i32::MAX as u64) as libc::time_t
                    + (nanos / 1_000_000_000) as libc::time_t,
                tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
            };
            // SAFETY: the slot holds an initialised process-shared semaphore;
            // `deadline` outlives the call; `clockwait` is glibc's `sem_clockwait`,
            // of the signature declared in `SemClockwait`.
            let r = unsafe {
                match clockwait {
                    Some(f) => f(self.sem_ptr(), clock, &deadline),
                    None => libc::sem_timedwait(self.sem_ptr(), &deadline),
                }
            };
            if r != 0 {
                let errno = std::io::Error::last_os_error().raw_os_error();
                debug_assert!(
                    matches!(errno, Some(libc::ETIMEDOUT | libc::EINTR)),
                    "unexpected sem_clockwait/sem_timedwait error {errno:?}"
                );
                return errno == Some(libc::ETIMEDOUT);
            }
            false
        }
        #[cfg(loom)]
        {
            let _ = timeout;
            false
        }
    }
}

/// The word of a `sem_t` that the C library passes to the futex system call as its
/// flags (glibc's and musl's `private`, bytes 8..12 on 64-bit targets), as
/// `sem_init(pshared = 1)` writes it here. A peer that scribbles another value there
/// would make the futex call fail in a way glibc treats as fatal (it aborts the
/// process), so the semaphore is not used while the word differs.
#[cfg(all(not(loom), target_pointer_width = "64"))]
fn shared_flags_word() -> u32 {
    static WORD: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *WORD.get_or_init(|| {
        let slot = SemSlot::zeroed();
        // SAFETY: a private, zeroed slot large enough for a sem_t (asserted above);
        // initialised, read, destroyed here, shared with nobody.
        unsafe {
            libc::sem_init(slot.sem_ptr(), 1, 0);
            let w = crate::sync::load_relaxed_u64(slot.sem_ptr().cast::<u64>().add(1)) as u32;
            libc::sem_destroy(slot.sem_ptr());
            w
        }
    })
}

/// `int sem_clockwait(sem_t *, clockid_t, const struct timespec *)` (glibc 2.30,
/// 2019; not in the `libc` crate).
#[cfg(not(loom))]
type SemClockwait =
    unsafe extern "C" fn(*mut libc::sem_t, libc::clockid_t, *const libc::timespec) -> libc::c_int;

/// The C library's `sem_clockwait`, looked up once at run time (as `std` looks up
/// newer glibc functions), so that the crate still links and runs against an older
/// glibc or musl, which then wait on `CLOCK_REALTIME` with `sem_timedwait`.
#[cfg(not(loom))]
fn sem_clockwait() -> Option<SemClockwait> {
    static FUNCTION: std::sync::OnceLock<Option<SemClockwait>> = std::sync::OnceLock::new();
    *FUNCTION.get_or_init(|| {
        // SAFETY: a NUL-terminated name; RTLD_DEFAULT searches the global scope.
        let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"sem_clockwait".as_ptr()) };
        // SAFETY: a non-null result is the address of glibc's `sem_clockwait`, whose C
        // signature is `SemClockwait`.
        (!f.is_null()).then(|| unsafe { std::mem::transmute::<*mut libc::c_void, SemClockwait>(f) })
    })
}

#[cfg(all(test, not(loom), not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn post_then_wait_takes_the_token_and_an_empty_wait_runs_out() {
        let slot = SemSlot::zeroed();
        // SAFETY: a private slot nobody else uses.
        unsafe { slot.init() };
        assert!(slot.intact());
        slot.post_up_to(1);
        assert!(
            !slot.timed_wait(Duration::from_secs(5)),
            "a token was there"
        );
        assert!(slot.timed_wait(Duration::from_millis(1)), "no token left");
        // SAFETY: initialised above, used by nobody now.
        unsafe { libc::sem_destroy(slot.sem_ptr()) };
    }
}
