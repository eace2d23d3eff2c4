//! Asymmetric fences through `membarrier(2)`.
//!
//! The store-load order that an event count needs on both sides ("publish, then look
//! for waiters" against "register, then look at the ring") is usually bought with a
//! full fence on each side. The notifier runs once per message, the waiter once per
//! sleep, so shmlane moves the whole cost to the waiter: notifiers keep only a
//! compiler fence, and a waiter, after registering, calls
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, which runs a full memory barrier on
//! every CPU that is running a thread of a registered process (and a context switch
//! is one for those that are not). In the order of the notifier's own instructions,
//! that barrier falls either before its load of the waiter count (which then sees our
//! registration, made before the call) or after its publishing store (which is then
//! visible to our re-check, made after the call). Either way no wake-up is lost. This
//! is the pattern of folly's `asymmetricHeavyBarrier` and of liburcu.
//!
//! For it to hold, every endpoint process must be registered
//! (`MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`) before it notifies; endpoints refuse
//! to attach to an asymmetric ring otherwise. Under Miri there is no membarrier (Miri
//! fails an unknown system call instead of returning ENOSYS) and rings are always
//! symmetric. Under loom rings follow their options, as on a kernel with membarrier
//! (asymmetric by default), with loom's fences standing for what membarrier provides:
//! see [`light_barrier`] for the model and what it proves.

#[cfg(not(any(loom, miri)))]
const CMD_QUERY: libc::c_int = 0;
#[cfg(not(any(loom, miri)))]
const CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
#[cfg(not(any(loom, miri)))]
const CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

#[cfg(not(any(loom, miri)))]
fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes no pointers; an unknown command fails with EINVAL.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    }
}

/// Registers this process for expedited global membarriers (once per process) and
/// checks that the barrier itself works. `false` if the kernel or a seccomp
/// filter does not allow it.
pub(crate) fn register() -> bool {
    #[cfg(not(any(loom, miri)))]
    {
        // No lock (a OnceLock would leave a child forked while another thread held
        // it blocked for ever): the steps are idempotent, so threads that race
        // here all do them, and agree. 0 = not yet known, 1 = yes, 2 = no.
        static REGISTERED: crate::sync::ProcessFlag = crate::sync::ProcessFlag::new(0);
        match crate::sync::read_flag(&REGISTERED) {
            1 => return true,
            2 => return false,
            _ => {}
        }
        let supported = membarrier(CMD_QUERY);
        let needed = (CMD_GLOBAL_EXPEDITED | CMD_REGISTER_GLOBAL_EXPEDITED) as libc::c_long;
        let ok = supported >= 0
            && supported & needed == needed
            && membarrier(CMD_REGISTER_GLOBAL_EXPEDITED) == 0
            && membarrier(CMD_GLOBAL_EXPEDITED) == 0;
        crate::sync::set_flag(&REGISTERED, if ok { 1 } else { 2 });
        ok
    }
    #[cfg(loom)]
    {
        // The model's process is registered: rings follow their options.
        true
    }
    #[cfg(all(miri, not(loom)))]
    {
        false
    }
}

/// The notifier's half of an asymmetric fence, between its publishing store and its
/// load of the waiter count: a compiler fence only (the order of the two in the
/// program is all a waiter's membarrier needs, see the module docs).
///
/// # Under loom
///
/// Loom executes each thread in program order, so a compiler fence means nothing
/// there, and loom cannot place a barrier in another thread's instruction stream as
/// `membarrier` does. The model instead puts a SeqCst fence here, standing for the
/// barrier that the waiter's membarrier runs on this CPU, and another SeqCst fence in
/// [`heavy_barrier`]. Why that is faithful: membarrier's barrier on the notifier's
/// CPU falls somewhere in its instruction stream, between the start and the end of
/// the waiter's call, so (i) before the notifier's store: then its load comes after
/// a barrier that follows the waiter's registration, and sees it; (ii) after its
/// load: then its store precedes a barrier that precedes the waiter's re-check,
/// which sees it; (iii) between the two, as modelled: the two SeqCst fences are in
/// one total order, and whichever comes first, the notifier sees the registration
/// or the waiter sees the store. In each case the guarantee is the disjunction
/// "the notifier sees the waiter, or the waiter sees the published value", and case
/// (iii) gives exactly that and nothing more between a notifier and a waiter. So the
/// models prove that the asymmetric path places its barriers where the argument
/// needs them (the light one between every publish and the look for waiters, the
/// heavy one between every registration and its re-check) and that, given
/// membarrier's guarantee, no wake-up is lost. They do not prove the kernel's
/// guarantee, nor that the compiler fence keeps the CPU's order (that is the
/// hardware's program order, which membarrier relies on). One over-approximation:
/// the model's fence also orders two notifiers against each other, which
/// membarrier does not; the protocol pairs a notifier only with a waiter (and with
/// earlier notifiers through the state word's Release/Acquire, never through a
/// fence), so nothing it relies on comes from that.
#[inline(always)]
pub(crate) fn light_barrier() {
    #[cfg(not(loom))]
    crate::sync::compiler_fence(crate::sync::Ordering::SeqCst);
    #[cfg(loom)]
    crate::sync::fence(crate::sync::Ordering::SeqCst);
}

/// A full memory barrier on every CPU running a registered process.
pub(crate) fn heavy_barrier() {
    #[cfg(loom)]
    {
        // See `light_barrier`: this fence and the notifiers' stand for membarrier.
        crate::sync::fence(crate::sync::Ordering::SeqCst);
    }
    #[cfg(not(any(loom, miri)))]
    {
        let r = membarrier(CMD_GLOBAL_EXPEDITED);
        if r != 0 {
            // `register` succeeded in this process, so this cannot fail short of the
            // kernel revoking the command. Stay correct for the notifiers that are
            // registered... there is no weaker fallback, so make it loud.
            panic!(
                "membarrier(GLOBAL_EXPEDITED) failed after registration: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(all(miri, not(loom)))]
    unreachable!("rings are symmetric under Miri");
}
