//! Waiting and waking: spin → yield → park, with event counts on shared futex words.
//!
//! An event count (after folly's `EventCount`) is one `EventWord` per direction ("data
//! available", "space available", and for MPMC the two stream slots): a 64-bit state
//! and a separate 32-bit futex word, the **wake sequence**, that every notifier who
//! wakes anyone moves on. The state holds three fields:
//!
//! - `waiters` (bits 0..16): waiters registered and not yet woken;
//! - `tokens` (bits 16..32): waiters woken one at a time (by `EventCount::notify_one`)
//!   that have not yet left: a notifier turns one waiter into one token;
//! - `epoch` (bits 32..64): moved on by `EventCount::notify_all`, which takes every
//!   registered waiter at once (both counts back to 0).
//!
//! (A simpler design sleeps on the epoch half of the state word itself. A 32-bit futex wait
//! on half of a word that others update with 64-bit read-modify-writes is a
//! mixed-size race, which Rust's memory model leaves undefined and Miri reports; so
//! the futex word is a whole `AtomicU32` of its own.)
//!
//! - A waiter registers (`prepare_wait`: `waiters += 1`, an RMW that also returns the
//!   epoch), issues a SeqCst fence, reads the wake sequence, re-checks the ring, then
//!   futex-waits while the wake sequence is unchanged, unless a notifier has already
//!   taken a waiter since (a token, or a new epoch). Whatever ends the wait, it then
//!   *leaves* once, with one RMW: nothing if the epoch moved (a `notify_all` took it),
//!   else a token if there is one (it was woken, or stands in for one who was), else
//!   its registration. A waiter whose re-check found the condition true leaves the
//!   same way, but gives back its registration before it takes a token, which stays
//!   for the waiter the notifier woke.
//! - A notifier, after the Release store that publishes (a record or a cursor),
//!   issues a SeqCst fence and loads the state. Only when `waiters` is non-zero does
//!   it take waiters (one CAS), move the wake sequence on, and make the futex-wake
//!   system call: `notify_one` turns one waiter into a token and wakes one sleeper,
//!   `notify_all` moves to the next epoch with both counts at 0 and wakes every
//!   sleeper. So no system call while nobody sleeps, and at most one per
//!   registration (a parked wait registers before each sleep, and again before its
//!   first look after waking): the notifiers that follow find the waiters they would
//!   wake already taken, however long the woken take to run.
//!
//! Which to use: one published message needs one consumer, so an MPMC producer wakes
//! one (`EventCount::notify_one`), and a consumer that takes a message while the
//! next one is published already and others sleep wakes one more (so a wake-up spent
//! on a consumer that found the ring's head still being written is made up for).
//! Room in the ring, a free stream slot, or a peer's leaving may serve every
//! sleeper, so those wake all.
//!
//! No lost wake-up: the two fences order "publish, then look for waiters" against
//! "register, then look at the ring". In the single total order of SeqCst fences one
//! of them comes first: if the notifier's fence is first, the waiter's re-check sees
//! the published value (and does not sleep); if the waiter's is first, the notifier
//! sees a registered waiter and takes one. The waiter it took is asleep (the futex
//! wake reaches one sleeper, which finds the token and leaves with it) or not yet
//! asleep (it read the wake sequence before the notifier moved it, so its futex wait
//! returns at once, or after, so it sees the token or the new epoch and does not
//! sleep). Tokens are not tied to a waiter: whichever waiter leaves with one has been
//! woken, and re-checks the ring before it waits again.
//! `loom-tests/tests/event_count.rs` checks this, for one and for all.
//!
//! The futex calls are shared (never `FUTEX_PRIVATE_FLAG`): the words live in memory
//! mapped by several processes. Every park is bounded ([`PARK_SLICE`]) and the caller
//! re-checks the ring and the peer's liveness each time it wakes.

use std::time::{Duration, Instant};

use crate::header::SemSlot;
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};
use crate::sys::futex::Futex;

/// `state`: registered waiters not yet woken.
const WAITERS_MASK: u64 = 0xffff;
/// `state`: woken waiters not yet left.
const TOKENS_SHIFT: u32 = 16;
const TOKEN_ONE: u64 = 1 << TOKENS_SHIFT;
const TOKENS_MASK: u64 = 0xffff << TOKENS_SHIFT;
/// `state`: the epoch, moved on by `notify_all`.
const EPOCH_SHIFT: u32 = 32;
/// More tokens than waiters ever register at once (an endpoint waits on one event
/// count at a time; dead ones are recovered, and their recovery wakes all) means a
/// scribbled count: a waiter that finds so many drops them.
const MAX_TOKENS: u64 = 4 * crate::header::ENDPOINT_SLOTS as u64;

#[inline]
fn waiters_of(state: u64) -> u64 {
    state & WAITERS_MASK
}

#[inline]
fn tokens_of(state: u64) -> u64 {
    (state & TOKENS_MASK) >> TOKENS_SHIFT
}

#[inline]
fn epoch_of(state: u64) -> u32 {
    (state >> EPOCH_SHIFT) as u32
}

/// How an endpoint waits when the ring is full (producer) or empty (consumer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Wait {
    /// Busy-poll on the CPU. Lowest latency; burns a core; never sleeps.
    Spin,
    /// Poll, giving the CPU away (`sched_yield`) between polls. Never sleeps in the
    /// kernel's wait queue, so the peer never needs a wake-up system call.
    Yield,
    /// Sleep on the event count (futex) at once. Frees the CPU; every wake-up costs the
    /// peer a system call and the sleeper the kernel's wake-up latency (10–30 µs).
    Park,
    /// Spin (at most [`SPIN_FOR`], less when recent spins were in vain), then yield until
    /// [`YIELD_UNTIL`], then park. The default: round trips stay in the spinning phase
    /// while the peer keeps up, an endpoint sharing its core with the peer soon stops
    /// spinning, and an idle endpoint costs no CPU.
    #[default]
    Adaptive,
}

/// How long `Wait::Adaptive` spins before it starts to yield.
pub const SPIN_FOR: Duration = Duration::from_micros(20);
/// How long after the start of a wait `Wait::Adaptive` yields before it parks.
pub const YIELD_UNTIL: Duration = Duration::from_micros(200);
/// The longest single sleep: a parked endpoint wakes at least this often to check
/// that its peer is still attached.
pub const PARK_SLICE: Duration = Duration::from_millis(50);
/// How often a waiter checks that the peers it waits for are alive (OFD lock probes,
/// a system call each). With [`PARK_SLICE`], a parked waiter sees a peer's death
/// within `PARK_SLICE + LIVENESS_EVERY` at worst.
pub const LIVENESS_EVERY: Duration = Duration::from_millis(25);

/// The shared state of one event count: 16 bytes in the header.
///
/// Every field is untrusted (a peer may write anything): a wrong count costs at most
/// spurious wake-up calls, or a missed one that the bounded park slice makes up for;
/// a wrong epoch or wake sequence only makes a futex wait return early.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct EventWord {
    /// `epoch << 32 | tokens << 16 | waiters` (see the module docs).
    pub(crate) state: AtomicU64,
    /// The futex word: the wake sequence, moved on (wrapping) by every notifier that
    /// takes a waiter, after it has taken it and before it wakes. (Under loom the
    /// futex also carries the condition variable that stands for the kernel's.)
    pub(crate) futex: Futex,
    _reserved: AtomicU32,
}

impl EventWord {
    /// A zeroed event word (the state a fresh header has).
    #[cfg(any(loom, miri))]
    pub(crate) fn new() -> Self {
        EventWord {
            state: AtomicU64::new(0),
            futex: Futex::new(0),
            _reserved: AtomicU32::new(0),
        }
    }

    /// `(waiters, tokens, epoch)` as they are now, for inspection and tests.
    pub(crate) fn counts(&self, order: Ordering) -> (u32, u32, u32) {
        let s = self.state.load(order);
        (waiters_of(s) as u32, tokens_of(s) as u32, epoch_of(s))
    }
}

/// An event count over one shared [`EventWord`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct EventCount<'a> {
    word: &'a EventWord,
    /// Asymmetric fences: notifiers order their store and load with a compiler fence
    /// only, and `prepare_wait` pays with `membarrier` (see [`membarrier`]).
    asymmetric: bool,
    /// The sleeping primitive: `None` for the futex on the wake sequence of `word`, or
    /// a process-shared semaphore in the header (see [`semaphore`]).
    sem: Option<&'a SemSlot>,
}

/// A waiter's registration: the epoch it registered in and the wake sequence it saw
/// after registering.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub(crate) struct WaitKey {
    epoch: u32,
    sequence: u32,
}

/// How a [`EventCount::sleep`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slept {
    /// It did not sleep: a notifier had taken a waiter since the registration.
    NotAtAll,
    /// It slept and was woken (or the wake sequence had moved, or a signal).
    Woken,
    /// It slept until its timeout.
    RanOut,
}

/// How many waiters a notifier takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Take {
    One,
    All,
}

impl<'a> EventCount<'a> {
    /// An event count over `word`. `asymmetric` must be the ring's
    /// `FLAG_ASYMMETRIC_FENCES`, the same for every endpoint, and this process must be
    /// registered ([`membarrier::register`]) if it is set.
    /// `sem`: sleep on that semaphore instead of the futex (the ring's notifier kind).
    pub(crate) fn new(word: &'a EventWord, asymmetric: bool, sem: Option<&'a SemSlot>) -> Self {
        EventCount {
            word,
            asymmetric,
            sem,
        }
    }

    /// The event count over `word` of a ring with `params`: its fence mode, and `sem`
    /// if its notifier is the semaphore.
    #[inline]
    pub(crate) fn for_ring(
        word: &'a EventWord,
        sem: &'a SemSlot,
        params: &crate::header::RingParams,
    ) -> Self {
        EventCount::new(
            word,
            params.asymmetric_fences(),
            params.semaphores().then_some(sem),
        )
    }

    /// Whether a waiter is registered and not yet woken, after the caller's publishing
    /// store: the notifier's half of the no-lost-wake-up argument (the module docs).
    /// The load is Acquire, so a caller that sees a waiter also sees what the notifiers
    /// that took earlier waiters had published (see `mpmc::Consumer::take_record`).
    #[inline(always)]
    pub(crate) fn has_waiters(&self) -> bool {
        if self.asymmetric {
            // Only the compiler is kept from moving the load above our publishing store;
            // the CPU may still reorder them, and the waiter's membarrier makes up for it
            // (see `membarrier`; under loom, see `membarrier::light_barrier`).
            membarrier::light_barrier();
        } else {
            // SeqCst fence: orders our earlier publishing store before the load below (a
            // store-load order, which Release/Acquire cannot give). Pairs with the fence
            // in `prepare_wait`; see the module docs for why no wake-up is lost.
            fence(Ordering::SeqCst);
        }
        waiters_of(self.word.state.load(Ordering::Acquire)) != 0
    }

    /// Called after the Release store that publishes something every sleeper may
    /// want (room, a free stream slot, a peer's leaving): wakes every sleeper, with a
    /// system call only if someone is registered and not yet woken. Returns whether
    /// it woke anyone.
    #[inline]
    pub(crate) fn notify_all(&self) -> bool {
        self.has_waiters() && self.take(Take::All)
    }

    /// Called after the Release store that publishes something one sleeper can use
    /// (a message): wakes one sleeper, with a system call only if someone is
    /// registered and not yet woken. Returns whether it woke anyone.
    #[inline]
    pub(crate) fn notify_one(&self) -> bool {
        self.has_waiters() && self.take(Take::One)
    }

    /// [`notify_one`](Self::notify_one) without its fence and first look, for a
    /// caller that has just seen [`has_waiters`](Self::has_waiters).
    #[cold]
    pub(crate) fn wake_one(&self) -> bool {
        self.take(Take::One)
    }

    /// Takes one or all of the registered waiters (none if another notifier took
    /// them first), moves the wake sequence on and wakes that many sleepers.
    #[cold]
    #[inline(never)]
    fn take(&self, how: Take) -> bool {
        // The tests' comparison switch (`wake_all_on_every_notify`), read only here:
        // only when someone sleeps.
        #[cfg(feature = "test-hooks")]
        let how = if how == Take::One && crate::sync::read_flag(&WAKE_ALL) == 1 {
            Take::All
        } else {
            how
        };
        let mut s = self.word.state.load(Ordering::Relaxed);
        let (taken, tokens) = loop {
            let waiters = waiters_of(s);
            if waiters == 0 {
                return false; // another notifier took them
            }
            let (next, taken) = match how {
                // One waiter becomes a token (more tokens than can exist: scribbled,
                // leave them be).
                Take::One if tokens_of(s) < 0xffff => (s - 1 + TOKEN_ONE, 1),
                Take::One => (s - 1, 1),
                // The next epoch, both counts at 0: every waiter of this epoch is taken.
                Take::All => (
                    u64::from(epoch_of(s).wrapping_add(1)) << EPOCH_SHIFT,
                    waiters + tokens_of(s),
                ),
            };
            // Release: pairs with the Acquire of a waiter's later RMW on the state (it
            // then sees what we published before; see the module docs).
            match self.word.state.compare_exchange_weak(
                s,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break (taken, tokens_of(next)),
                Err(now) => s = now,
            }
        };
        // Release: a waiter that reads the new sequence sees the state we stored.
        self.word.futex.fetch_add(1, Ordering::Release);
        match self.sem {
            // Enough tokens in the semaphore for the waiters taken and not yet left,
            // capped at the endpoint table's size: the counts are untrusted.
            Some(sem) => {
                let want = match how {
                    Take::One => tokens,
                    Take::All => taken,
                };
                semaphore::post(
                    sem,
                    want.clamp(1, crate::header::ENDPOINT_SLOTS as u64) as u32,
                )
            }
            None => futex::wake(self.word, how == Take::One),
        }
        true
    }

    /// Registers as a waiter in the current epoch. The caller must re-check its
    /// condition after this and then call [`wait`](Self::wait) or
    /// [`cancel_wait`](Self::cancel_wait).
    pub(crate) fn prepare_wait(&self) -> WaitKey {
        // The RMW returns the epoch we registered in, atomically with the registration.
        // (A scribbled count at its maximum carries into the tokens: a spurious token.)
        let v = self.word.state.fetch_add(1, Ordering::SeqCst);
        #[cfg(feature = "test-hooks")]
        crate::sync::count(&REGISTRATIONS);
        if self.asymmetric {
            // A full barrier on every CPU that runs a registered process: a notifier
            // either published before it (we see its store below) or loads the waiter
            // count after it (it sees our registration).
            membarrier::heavy_barrier();
        } else {
            // SeqCst fence: orders the registration before the caller's re-check of the
            // ring (store-load). Pairs with the fence in `has_waiters`.
            fence(Ordering::SeqCst);
        }
        WaitKey {
            epoch: epoch_of(v),
            // Acquire: pairs with a notifier's Release increment; if we see it, we see
            // the state it stored, and do not sleep (`wait`).
            sequence: self.word.futex.load(Ordering::Acquire),
        }
    }

    /// Leaves without sleeping (the re-check found the condition true).
    pub(crate) fn cancel_wait(&self, key: WaitKey) {
        self.leave(key, false);
    }

    /// Sleeps until a notifier takes a waiter (it moves the wake sequence past `key`'s)
    /// or `timeout` passes (or a spurious wake-up), then leaves. Does not sleep if a
    /// notifier took one since `prepare_wait`.
    #[cfg_attr(not(loom), allow(dead_code))]
    pub(crate) fn wait(&self, key: WaitKey, timeout: Duration) {
        let _ = self.sleep(key, timeout);
        self.leave_woken(key);
    }

    /// The first half of [`wait`](Self::wait): sleeps as it does, but stays
    /// registered; the caller then leaves with [`leave_woken`](Self::leave_woken).
    /// Between the two it may look at the ring again, and ask
    /// [`taken_since`](Self::taken_since).
    pub(crate) fn sleep(&self, key: WaitKey, timeout: Duration) -> Slept {
        let s = self.word.state.load(Ordering::Acquire);
        if epoch_of(s) != key.epoch || tokens_of(s) != 0 {
            return Slept::NotAtAll;
        }
        #[cfg(feature = "test-hooks")]
        count_in_thread(|c| &c.park_slices);
        let ran_out = match self.sem {
            Some(sem) => semaphore::wait(sem, timeout),
            None => futex::wait(self.word, key.sequence, timeout),
        };
        if ran_out {
            Slept::RanOut
        } else {
            Slept::Woken
        }
    }

    /// The second half of [`wait`](Self::wait): leaves as a waiter that may have
    /// been woken.
    pub(crate) fn leave_woken(&self, key: WaitKey) {
        self.leave(key, true);
    }

    /// Whether a notifier has taken a waiter of this event count since `key`
    /// registered, for a caller between [`sleep`](Self::sleep) and
    /// [`leave_woken`](Self::leave_woken) whose sleep ran out: the epoch moved
    /// (`notify_all`), a token is out, or the wake sequence moved. (A sleep that ran
    /// out began with the epoch unmoved and no token out, and every notifier that
    /// takes a waiter moves the wake sequence after its compare-exchange: the state
    /// is read first, so a notifier between the two is seen by one or the other.)
    #[cfg(all(feature = "test-hooks", not(loom)))]
    pub(crate) fn taken_since(&self, key: WaitKey) -> bool {
        let s = self.word.state.load(Ordering::Acquire);
        epoch_of(s) != key.epoch
            || tokens_of(s) != 0
            || self.word.futex.load(Ordering::Acquire) != key.sequence
    }

    /// Leaves the event count, with one RMW: nothing if a `notify_all` took every
    /// waiter of our epoch; else a token (if `woken`, when there is one; if not, only
    /// when no registration is left to give back, ours having become a token); else
    /// our registration. Never below 0: a peer that scribbled over the counts must not
    /// make them wrap (every notify a system call).
    fn leave(&self, key: WaitKey, woken: bool) {
        let _ = self
            .word
            .state
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |s| {
                if epoch_of(s) != key.epoch {
                    return None;
                }
                let (waiters, tokens) = (waiters_of(s), tokens_of(s));
                if tokens > MAX_TOKENS {
                    // Scribbled: drop the tokens (and our registration).
                    return Some((s & !TOKENS_MASK) - u64::from(waiters > 0));
                }
                if tokens > 0 && (woken || waiters == 0) {
                    Some(s - TOKEN_ONE)
                } else if waiters > 0 {
                    Some(s - 1)
                } else {
                    None
                }
            });
    }
}

/// The semaphore notifier: process-shared POSIX semaphores (`sem_init(pshared = 1)`)
/// in the header, for platforms or policies without futex (the system calls are
/// `crate::sys::semaphore`'s).
///
/// The event count's waiter counting stays in front of them, so a sender still makes
/// no system call while nobody sleeps. A semaphore keeps its token, so no epoch check
/// is needed: a post that comes between the waiter's re-check and its `sem_wait` makes
/// that wait return at once. `post` adds a token only when the count is 0, so a waiter
/// that cancels (its re-check succeeded) leaves at most one stale token behind, which
/// costs its next wait one spurious wake-up and a re-check, never a lost one. Waits
/// are bounded (see `crate::sys::semaphore`).
pub(crate) mod semaphore {
    use super::*;

    /// Tops the tokens up to `waiters` (at least one), waking that many sleepers.
    /// Tokens left over by waiters that did not sleep after all only make a later wait
    /// return at once, and its caller re-checks.
    pub(super) fn post(sem: &SemSlot, waiters: u32) {
        if !sem.intact() {
            // A corrupt semaphore: no wake-up call (the sleepers' bounded park
            // slices see the ring instead), never an abort in libc.
            return;
        }
        #[cfg(feature = "test-hooks")]
        crate::sync::count(&futex::WAKE_CALLS);
        sem.post_up_to(waiters.max(1));
    }

    /// Takes a token, waiting at most `timeout` for one. Returns whether the wait ran
    /// out its timeout.
    pub(super) fn wait(sem: &SemSlot, timeout: Duration) -> bool {
        if !sem.intact() {
            // See `post`: sleep the slice instead.
            std::thread::sleep(timeout.min(PARK_SLICE));
            return false;
        }
        #[cfg(feature = "test-hooks")]
        crate::sync::count(&futex::WAIT_CALLS);
        let ran_out = sem.timed_wait(timeout);
        #[cfg(feature = "test-hooks")]
        if ran_out {
            crate::sync::count(&futex::WAIT_TIMEOUTS);
        }
        ran_out
    }
}

/// Asymmetric fences through `membarrier(2)`: the notifier's light barrier and the
/// waiter's heavy one (see `crate::sys::membarrier`, which also says how loom stands
/// for them).
pub(crate) use crate::sys::membarrier;

mod futex {
    //! The event count's futex, on the wake sequence of an [`EventWord`]: the calls
    //! are `crate::sys::futex`'s (which has the loom variant); here they are counted.
    use super::*;
    #[cfg(feature = "test-hooks")]
    use crate::sync::{count, ProcessCounter};

    /// Counts of futex system calls made by this process, for the tests
    /// (`futex_calls`, feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub(super) static WAKE_CALLS: ProcessCounter = ProcessCounter::new(0);
    #[cfg(feature = "test-hooks")]
    pub(super) static WAIT_CALLS: ProcessCounter = ProcessCounter::new(0);
    #[cfg(feature = "test-hooks")]
    pub(super) static WAIT_TIMEOUTS: ProcessCounter = ProcessCounter::new(0);

    /// Wakes one sleeper on the wake sequence of `word` (`one`), or every sleeper.
    pub(super) fn wake(word: &EventWord, one: bool) {
        #[cfg(feature = "test-hooks")]
        count(&WAKE_CALLS);
        let how = if one {
            crate::sys::futex::Wake::One
        } else {
            crate::sys::futex::Wake::All
        };
        crate::sys::futex::wake(&word.futex, how);
    }

    /// Sleeps while the wake sequence of `word` reads `sequence` (the value we read
    /// after registering: a notifier that takes a waiter moves it on before it wakes),
    /// for at most `timeout`.
    /// Returns whether the wait ran out its timeout.
    pub(super) fn wait(word: &EventWord, sequence: u32, timeout: Duration) -> bool {
        #[cfg(feature = "test-hooks")]
        count(&WAIT_CALLS);
        let ran_out = crate::sys::futex::wait(&word.futex, sequence, timeout);
        #[cfg(feature = "test-hooks")]
        if ran_out {
            count(&WAIT_TIMEOUTS);
        }
        ran_out
    }
}

/// How many wake-up system calls this process has made: `(wake, wait)`, futex or, on
/// rings with the semaphore notifier, `sem_post`/`sem_clockwait`. Each call site counts
/// itself, so a test can assert that a hot path made none.
#[doc(hidden)]
#[cfg(all(feature = "test-hooks", not(loom)))]
pub fn futex_calls() -> (u64, u64) {
    (
        crate::sync::read_count(&futex::WAKE_CALLS),
        crate::sync::read_count(&futex::WAIT_CALLS),
    )
}

/// What an endpoint's waits have learnt: how long `Wait::Adaptive` spins before it
/// yields. A wait that ends while spinning doubles the budget (up to [`SPIN_FOR`]);
/// one that spins in vain halves it (down to [`MIN_SPIN`]). So when producer and
/// consumer run on cores of their own the budget stays at its maximum, and when they
/// share a core (more processes than cores) spinning, which only delays the peer we
/// wait for, shrinks to almost nothing after a few waits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spinner {
    /// In `MIN_SPIN..=SPIN_FOR`.
    spin_for: Duration,
}

/// The least `Wait::Adaptive` spins before yielding.
pub const MIN_SPIN: Duration = Duration::from_micros(1);

impl Default for Spinner {
    fn default() -> Self {
        Spinner { spin_for: SPIN_FOR }
    }
}

impl Spinner {
    fn succeeded_spinning(&mut self) {
        self.spin_for = (self.spin_for * 2).min(SPIN_FOR);
    }
    fn spun_in_vain(&mut self) {
        self.spin_for = (self.spin_for / 2).max(MIN_SPIN);
    }
}

/// How many of this process's futex waits ended because their time slice ran out
/// rather than by a wake-up. A wait that times out with work pending would be a lost
/// wake-up; but so does a peer that is simply not running for a slice (a loaded
/// host): [`lost_wake_ups`] tells the two apart.
#[doc(hidden)]
#[cfg(all(feature = "test-hooks", not(loom)))]
pub fn futex_timeouts() -> u64 {
    crate::sync::read_count(&futex::WAIT_TIMEOUTS)
}

/// How many of this process's park slices ran out while what the waiter waited for
/// was already there and no notifier had taken a waiter since it registered: lost
/// wake-ups, told from a peer that was merely descheduled. After a slice runs out the
/// waiter looks at the ring again while still registered, then at the event count
/// ([`EventCount::taken_since`]). A peer that was not running has published nothing
/// (the look finds nothing: not counted), or published and took a waiter as it
/// should (the count moved: not counted). What is counted is a publication that its
/// notifier saw no registered waiter for, although the waiter was registered before
/// it re-checked the ring and stayed registered since: the event count's guarantee
/// broken. The one innocent case: a notifier stopped (preempted) in the few
/// instructions between its publishing store and its look for waiters, exactly when
/// the slice ran out. Counted only on the sleeping path: nothing per message.
#[doc(hidden)]
#[cfg(all(feature = "test-hooks", not(loom)))]
pub fn lost_wake_ups() -> u64 {
    crate::sync::read_count(&LOST_WAKE_UPS)
}

/// How many times this process has registered as a waiter on an event count (once
/// before each sleep, and before a last look that may find the wait over). A notifier
/// makes a wake-up call only when it takes a registered waiter off the count, and
/// each registration is taken at most once: so all the wake-up calls of the processes
/// of a ring stay within their registrations, however many messages they send. Counted
/// on the waiting path only.
#[doc(hidden)]
#[cfg(feature = "test-hooks")]
pub fn waiter_registrations() -> u64 {
    crate::sync::read_count(&REGISTRATIONS)
}

/// See [`waiter_registrations`].
#[cfg(feature = "test-hooks")]
static REGISTRATIONS: crate::sync::ProcessCounter = crate::sync::ProcessCounter::new(0);

/// See [`lost_wake_ups`].
#[cfg(all(feature = "test-hooks", not(loom)))]
static LOST_WAKE_UPS: crate::sync::ProcessCounter = crate::sync::ProcessCounter::new(0);

/// Set by [`wake_all_on_every_notify`]: 1 = on.
#[cfg(feature = "test-hooks")]
static WAKE_ALL: crate::sync::ProcessFlag = crate::sync::ProcessFlag::new(0);

/// For the tests' comparison only: while `on`, every notifier of this process that
/// would wake one sleeper wakes every sleeper instead (as if each message were
/// published with `notify_all`), so that a test can measure what waking one saves.
/// Read only when a notifier has found a sleeper to wake, never per message.
#[doc(hidden)]
#[cfg(feature = "test-hooks")]
pub fn wake_all_on_every_notify(on: bool) {
    crate::sync::set_flag(&WAKE_ALL, u8::from(on));
}

/// What the waits of one thread did, counted on the waiting path only (never per
/// message): for tests that prove the waiting promises by counts rather than by wall
/// time (see [`with_wait_counters`]).
#[doc(hidden)]
#[cfg(feature = "test-hooks")]
#[derive(Debug)]
pub struct WaitCounters {
    liveness_checks: crate::sync::ProcessCounter,
    park_slices: crate::sync::ProcessCounter,
    slices_ran_out: crate::sync::ProcessCounter,
}

#[cfg(feature = "test-hooks")]
impl WaitCounters {
    const fn new() -> Self {
        WaitCounters {
            liveness_checks: crate::sync::ProcessCounter::new(0),
            park_slices: crate::sync::ProcessCounter::new(0),
            slices_ran_out: crate::sync::ProcessCounter::new(0),
        }
    }

    /// Looks at the peers' liveness ([`Look::Thorough`] polls) made by waits, each
    /// counted as it starts.
    pub fn liveness_checks(&self) -> u64 {
        crate::sync::read_count(&self.liveness_checks)
    }

    /// Sleeps on an event count (futex or semaphore waits), each counted as it starts.
    pub fn park_slices(&self) -> u64 {
        crate::sync::read_count(&self.park_slices)
    }

    /// Sleeps that ran out their time (a [`PARK_SLICE`], or less before a deadline).
    pub fn slices_ran_out(&self) -> u64 {
        crate::sync::read_count(&self.slices_ran_out)
    }
}

#[cfg(feature = "test-hooks")]
thread_local! {
    static THREAD_COUNTERS: WaitCounters = const { WaitCounters::new() };
}

/// Calls `f` with the calling thread's [`WaitCounters`]; `f` may hand them to other
/// threads (scoped) to read while this one waits.
#[doc(hidden)]
#[cfg(feature = "test-hooks")]
pub fn with_wait_counters<R>(f: impl FnOnce(&WaitCounters) -> R) -> R {
    THREAD_COUNTERS.with(f)
}

/// Counts one event in this thread's [`WaitCounters`] (nothing while the thread
/// is being torn down).
#[cfg(feature = "test-hooks")]
fn count_in_thread(field: fn(&WaitCounters) -> &crate::sync::ProcessCounter) {
    let _ = THREAD_COUNTERS.try_with(|c| crate::sync::count(field(c)));
}

/// Polls of a spinning wait made before the first look at the clock: the spin loop
/// reads the clock every this many polls.
const POLLS_PER_CLOCK_READ: u32 = 16;

/// How closely a poll of [`block_on`] looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Look {
    /// Only if the cheapest sign says something came (one load of the word the peer
    /// writes): `Ok(None)` at once otherwise. A poll may treat it as `Full`.
    Quick,
    /// Everything that ends the wait: the ring, and the peer's attachment.
    Full,
    /// `Full`, and the peers' liveness too (system calls).
    Thorough,
}

/// Blocks until `poll` returns `Some`, an error, or `deadline` passes (`Ok(None)`),
/// waiting in the manner of `strategy` and parking on the event count `events` gives.
///
/// `poll(target, look)` must check everything that ends the wait (the ring, the
/// peer's liveness) and is called again after every wake-up; it may be called while
/// registered on the event count. The caller has just polled in full once and found
/// nothing. The wait holds `target` (the endpoint) and lends it to `poll` mutably and
/// to `events` shared, one at a time: so the event count, which borrows the
/// endpoint's mapping, lives only while it is used, and the compiler checks that the
/// mapping outlives it (no lifetime invented from a raw pointer).
///
/// The first polls of a spinning wait are inlined into the caller: a round trip's
/// waits end there, and a call per poll, with the bookkeeping of the rest of the wait,
/// would lengthen the time between a message landing and the poll that sees it. For
/// the same reason they are [`Look::Quick`]: a shorter spin loop notices the peer's
/// store sooner, and touches no other line (measured with a paired A/B of 8 B round
/// trips: 5-12% shorter than with a full poll each time, on the runs where the full
/// poll's reads of the header missed L1; the same on the others). Those first polls
/// span well under a microsecond; the full polls, with the peer's attachment, come
/// after. The rest of the wait is [`block_on_slow`], out of line.
#[inline(always)]
pub(crate) fn block_on<S: ?Sized, T, E>(
    strategy: Wait,
    spinner: &mut Spinner,
    deadline: Option<Instant>,
    target: &mut S,
    events: impl Fn(&S) -> EventCount<'_>,
    mut poll: impl FnMut(&mut S, Look) -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    // Not under loom: there every poll is a yield point, and these would multiply the
    // interleavings for nothing the slow path does not show.
    if !cfg!(loom) && matches!(strategy, Wait::Spin | Wait::Adaptive) {
        for _ in 1..POLLS_PER_CLOCK_READ {
            if let Some(v) = poll(target, Look::Quick)? {
                spinner.succeeded_spinning();
                return Ok(Some(v));
            }
            crate::sync::spin_hint();
        }
        return block_on_slow(
            strategy,
            spinner,
            deadline,
            target,
            events,
            POLLS_PER_CLOCK_READ - 1,
            |t, thorough| poll(t, if thorough { Look::Thorough } else { Look::Full }),
        );
    }
    block_on_slow(
        strategy,
        spinner,
        deadline,
        target,
        events,
        0,
        |t, thorough| poll(t, if thorough { Look::Thorough } else { Look::Full }),
    )
}

/// [`block_on`] after its first `polls` polls (each followed by a spin hint).
#[inline(never)]
fn block_on_slow<S: ?Sized, T, E>(
    strategy: Wait,
    spinner: &mut Spinner,
    deadline: Option<Instant>,
    target: &mut S,
    events: impl Fn(&S) -> EventCount<'_>,
    polls: u32,
    mut poll: impl FnMut(&mut S, bool) -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    // Every look at the peers' liveness is counted, for the tests (`WaitCounters`).
    #[cfg(feature = "test-hooks")]
    let mut poll = |target: &mut S, thorough: bool| {
        if thorough {
            count_in_thread(|c| &c.liveness_checks);
        }
        poll(target, thorough)
    };
    // The clock is read lazily (~20 ns a read): a wait that ends within the first
    // polls, as every wait of a round trip does, never reads it.
    let mut started: Option<Instant> = None;
    let mut elapsed = |t: Instant| t - *started.get_or_insert(t);
    let expired = |t: Instant| deadline.is_some_and(|d| t >= d);
    // `poll(true)` every LIVENESS_EVERY of waiting: the caller then also checks that
    // its peers are alive (a system call), which a dead peer cannot wake us to do.
    let mut next_check: Option<Instant> = None;
    let mut thorough = false;
    let mut check_due = |t: Instant, thorough: &mut bool| {
        let next = next_check.get_or_insert(t + LIVENESS_EVERY);
        if t >= *next {
            *next = t + LIVENESS_EVERY;
            *thorough = true;
        }
    };
    let mut polls = polls;
    // Spin phase (Spin for ever; Adaptive for the spinner's budget).
    if matches!(strategy, Wait::Spin | Wait::Adaptive) {
        loop {
            if let Some(v) = poll(target, std::mem::take(&mut thorough))? {
                spinner.succeeded_spinning();
                return Ok(Some(v));
            }
            polls = polls.wrapping_add(1);
            // One pause between polls: polling a line nobody wrote is an L1 hit, and a
            // longer backoff adds straight to the latency we spin to avoid (a PAUSE
            // takes ~25 ns on recent AMD cores). No pause at all is worse: the polls
            // then keep pulling the line away from the writer we wait for (measured:
            // 8 B round trip 150 ns with one pause, 170 with none, 210-230 with two).
            crate::sync::spin_hint();
            if polls % POLLS_PER_CLOCK_READ == 0 || cfg!(loom) {
                let t = now();
                if expired(t) {
                    return Ok(None);
                }
                check_due(t, &mut thorough);
                if strategy == Wait::Adaptive && (cfg!(loom) || elapsed(t) >= spinner.spin_for) {
                    spinner.spun_in_vain();
                    break;
                }
            }
        }
    }
    // Yield phase (Yield for ever; Adaptive until YIELD_UNTIL).
    if matches!(strategy, Wait::Yield | Wait::Adaptive) {
        loop {
            if let Some(v) = poll(target, std::mem::take(&mut thorough))? {
                return Ok(Some(v));
            }
            let t = now();
            if expired(t) {
                return Ok(None);
            }
            check_due(t, &mut thorough);
            if strategy == Wait::Adaptive && (cfg!(loom) || elapsed(t) >= YIELD_UNTIL) {
                break;
            }
            crate::sync::yield_now();
        }
    }
    // Park phase.
    loop {
        let key = events(target).prepare_wait();
        match poll(target, std::mem::take(&mut thorough)) {
            Ok(None) => {}
            other => {
                events(target).cancel_wait(key);
                return other;
            }
        }
        let t = now();
        // Starts the liveness period here for a wait that parks at once (`Wait::Park`,
        // or a wait for a stream slot), so that its first slice also ends with a check
        // (else the first check would come a slice late). Due before sleeping only in
        // rare cases (a slice that ended early): the next poll is then thorough.
        check_due(t, &mut thorough);
        let slice = match deadline {
            Some(d) => {
                if t >= d {
                    events(target).cancel_wait(key);
                    return Ok(None);
                }
                (d - t).min(PARK_SLICE)
            }
            None => PARK_SLICE,
        };
        let slept = events(target).sleep(key, slice);
        check_due(now(), &mut thorough);
        if slept == Slept::RanOut {
            #[cfg(feature = "test-hooks")]
            count_in_thread(|c| &c.slices_ran_out);
            // Look again while still registered, then at the event count: what we
            // waited for there already, with no waiter taken since we registered, is
            // a lost wake-up (see `lost_wake_ups`). At most once per park slice.
            match poll(target, std::mem::take(&mut thorough)) {
                Ok(None) => {}
                other => {
                    #[cfg(all(feature = "test-hooks", not(loom)))]
                    if matches!(other, Ok(Some(_))) && !events(target).taken_since(key) {
                        crate::sync::count(&LOST_WAKE_UPS);
                    }
                    events(target).leave_woken(key);
                    return other;
                }
            }
        }
        events(target).leave_woken(key);
    }
}

/// `Instant::now()`; under loom a fixed instant, so models stay deterministic (they
/// use no deadlines).
#[inline]
fn now() -> Instant {
    #[cfg(not(loom))]
    {
        Instant::now()
    }
    #[cfg(loom)]
    {
        thread_local!(static EPOCH: Instant = Instant::now());
        EPOCH.with(|e| *e)
    }
}
