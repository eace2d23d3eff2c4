//! shmlane moves bytes between processes on one Linux host through lock-free rings in
//! shared memory.
//!
//! - **SPSC byte ring** ([`spsc`]): one producer process, one consumer process.
//!   Zero-copy on both sides ([`spsc::Producer::reserve`], [`spsc::Consumer::recv_ref`]),
//!   messages of any size (those larger than half the ring travel in fragments, and
//!   can be streamed with [`std::io::Write`] / [`std::io::Read`]).
//! - **MPMC cell ring** ([`mpmc`]): any number of producer and consumer processes on
//!   one ring (up to a limit chosen at creation), the same methods, each message to
//!   exactly one consumer, each producer's order kept.
//! - **Waiting without system calls** while nobody sleeps: the default
//!   [`Wait::Adaptive`] spins (no system call: a round trip between two awake
//!   processes makes none), then yields, then parks on a futex event count; a
//!   sender makes the wake-up system call only when the receiver really sleeps.
//! - **Untrusted memory**: every cursor, length and flag read from the segment is
//!   validated before use; an impossible value is an error ([`Corruption`]), never
//!   undefined behaviour.
//! - **Dead peers are errors, not hangs**: every endpoint holds an OFD lock on its
//!   slot of the header's endpoint table, which the kernel drops when its process
//!   dies (SysV rings, which have no file, and endpoints that cannot open a
//!   description of the file of their own, are told by pid, pid namespace and start
//!   time instead; each slot says which, and a pid that cannot be read, in another pid
//!   namespace or hidden by `hidepid`, is alive). A waiter checks its peers every 25 ms
//!   of waiting: a consumer whose
//!   producers are all dead gets `Disconnected` (after the messages they left), and so
//!   does a producer whose consumers are all dead. What a dead endpoint held (MPMC
//!   cells it claimed, a stream slot, the message it was reading or writing) is
//!   recovered by the survivors, and its slot is reused by the next to attach. A live
//!   endpoint, however slow or stopped, is never taken for dead. Delivery is at most
//!   once: a message a consumer held when it died is not delivered again.
//! - **Looking from outside** ([`inspect`]): describe a ring's header, cursors and
//!   endpoints without attaching to it, list the rings on the host, and remove those
//!   whose processes are gone (what `shmlane inspect`, `ls` and `rm --stale` print and
//!   do).
//!
//! # Two processes
//!
//! ```
//! use shmlane::{spsc, RingOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Process A: create the ring (64 KiB) and send. `unlink_on_drop` removes the name
//! // when `tx` is dropped, so the program can run again.
//! let opts = RingOptions::new(64 << 10).unlink_on_drop(true);
//! let mut tx = spsc::Producer::create("/quotes", &opts)?;
//! tx.send(b"EURUSD 1.0842")?;
//!
//! // Process B: open it and receive.
//! let mut rx = spsc::Consumer::open("/quotes")?;
//! let mut buf = Vec::new();
//! rx.recv(&mut buf)?;
//! assert_eq!(buf, b"EURUSD 1.0842");
//! # drop((tx, rx));
//! # assert!(!std::path::Path::new("/dev/shm/quotes").exists(), "the name outlived the ring");
//! # Ok(()) }
//! ```
//!
//! Either side may create the ring; [`spsc::Producer::create_or_open`] lets the first
//! one to arrive create it. Without `unlink_on_drop` the ring's name outlives its
//! endpoints (a transfer can wait there for a consumer that comes later) until
//! [`remove`] deletes it, and `create` on that name is [`Error::AlreadyExists`].
//!
//! # Backings
//!
//! The same ring, with the same API once open, lives in one of three kinds of shared
//! memory ([`Backing`]): a POSIX shared-memory object found by name (the default), a
//! System V segment found by a key ([`spsc::Producer::create_sysv`], [`ftok`],
//! [`remove_sysv`]), or a sealed memfd that has no name at all and is handed to the
//! peer as a file descriptor ([`spsc::Producer::create_memfd`],
//! [`spsc::Consumer::open_fd`], [`send_fd`] / [`recv_fd`]). [`RingOptions`] also asks
//! for huge pages, pre-faulting and locked memory.
//!
//! # Trust model
//!
//! Peers are cooperative but may be buggy or die at any instruction: whatever they
//! write into the segment makes our calls return an error, never panic, read out of
//! bounds or hang without a timeout. Payload bytes are the peer's business.
//!
//! An impossible value is an error ([`Corruption`]); a value a correct ring holds at
//! some moment, written where it is wrong, cannot be told from a right one. In an
//! MPMC ring: a `tail` moved back into a record (published, taken or still being
//! written) is not caught: producers write over that record, and a consumer may
//! receive a message with bytes of another in it; a `head` moved into a record, or a
//! `tail` moved forward over free cells, leaves consumers waiting until their timeout,
//! or without one until every producer has gone; a `head` moved forward skips the
//! messages in between, and producers then wait for room when they come round to
//! their cells. The [`mpmc`] module docs give the detail.
//!
//! **Who can be a peer.** Segments are created mode 0600, or 0660 with
//! [`RingOptions::group_access`]; the mode is set explicitly, whatever the umask. An
//! endpoint opens only a segment owned by its own effective user (root included) whose
//! mode grants nothing beyond 0600; anything else is refused with
//! [`Error::Permissions`] before it is mapped, unless the opener accepts it with
//! [`OpenOptions`] (`open_with`, `open_sysv_with`, `open_fd_with`, or
//! [`RingOptions::open_options`] for `create_or_open`). So by default only processes
//! of the same user can have written into a ring one opens. A SysV segment's creator
//! keeps full access to it whoever owns it after `shmctl(IPC_SET)`, so a SysV open
//! also refuses a segment whose creator (`shm_perm.cuid`, and `cgid` when the mode
//! grants group access) is not the opener, unless `foreign_owner(true)` accepts it.
//! What the creator wrote into the header does not become the opener's limit: the
//! largest message an opener's `recv` allocates is capped by its own options.
//! [`inspect`] makes no such check: it only reads, and describes foreign and wide
//! segments too.
//!
//! **Zero-copy grants** ([`ReadGrant`], [`WriteGrant`]) are slices over memory other
//! processes can write: sound while every process that can write the segment follows
//! the protocol (see [`ReadGrant`]). With peers you do not trust, read with `recv` and
//! write with `send`, which copy once, and validate the copy.
//!
//! **Short and shrinking segments.** Every open sizes the segment (`fstat`, or
//! `shmctl(IPC_STAT)` for SysV) before it maps anything, and again before it maps the
//! data region: a segment shorter than a header, or than the length its header claims,
//! is an error ([`Error::Corrupt`]), never a SIGBUS. What no check can prevent is a
//! shrink *after* the mapping is made: a process that can open a POSIX segment's file
//! for writing can `ftruncate` it smaller at any time, and every access of every
//! process to a page past the new end then raises SIGBUS, which kills the process
//! unless it handles the signal (growing the file back does not undo the damage to the
//! data, only the faults). How each backing stands:
//!
//! - POSIX (and huge-page hugetlbfs files): can be shrunk by anyone with write
//!   permission on the file, that is, by the owner (root aside), and by the group with
//!   `group_access` or anyone else the mode was widened to. The owner and mode checks
//!   keep the set of such processes to the users you accepted; they cannot take the
//!   power away from those users.
//! - memfd ([`Backing::Memfd`]): sealed with `F_SEAL_SHRINK | F_SEAL_GROW |
//!   F_SEAL_SEAL` before its descriptor leaves the creator, and an open refuses a memfd
//!   without those seals, so no process, of any user, can change its size: no SIGBUS.
//! - SysV ([`Backing::SysV`]): a segment's size is fixed by `shmget` and cannot change;
//!   removing it (`IPC_RMID`) leaves attached mappings whole. No SIGBUS.
//!
//! Where peers may not be trusted with the file, use a memfd ring.
//!
//! **Running out of memory.** A ring's memory is reserved when it is created
//! (`fallocate` on its file, or its pages populated where that does not exist): a
//! filesystem too small for it is [`Error::NoSpace`] at creation, not a SIGBUS in the
//! middle of a transfer.
//!
//! # Cargo features
//!
//! The library has no feature an embedder needs. Two exist for its own tests and are
//! **not an API** (their items are hidden from these docs and change without notice or
//! semver): `fuzz-harness` compiles the fuzz targets' harness, and `test-hooks` the
//! wait counters of [`wait`] (futex calls, park slices, lost wake-ups) with which the
//! tests prove the waiting promises by counts. Without `test-hooks` the counting code
//! is not compiled at all: nothing is counted on any path.
//!
//! # Layout
//!
//! A segment is a 4096-byte header (magic, version, layout hash, parameters, endpoint
//! table, event counts, cursors on their own 128-byte lines) followed by the data
//! region, a power of two in size. See `ARCHITECTURE.md` in the repository for how the
//! pieces fit.

#![deny(unsafe_op_in_unsafe_fn, missing_docs)]
#![warn(
    clippy::undocumented_unsafe_blocks,
    missing_debug_implementations,
    rust_2018_idioms
)]
// Under loom only the heap backing is built; the open/validate paths are unused.
#![cfg_attr(loom, allow(dead_code))]

mod error;
pub(crate) mod frame;
// The fuzz harness: not an API (see the `fuzz-harness` feature in Cargo.toml).
#[doc(hidden)]
#[cfg(all(any(fuzzing, feature = "fuzz-harness"), not(loom)))]
pub mod fuzzing;
pub(crate) mod header;
#[cfg(not(loom))]
pub mod inspect;
pub(crate) mod liveness;
mod message;
pub mod mpmc;
mod options;
pub(crate) mod region;
pub(crate) mod segment;
mod setup;
pub mod spsc;
pub(crate) mod stream;
pub(crate) mod sync;
pub(crate) mod sys;
pub mod wait;

pub use error::{
    CommitError, Corruption, Error, RecvError, RecvTimeoutError, SendError, SendTimeoutError,
    TryRecvError, TrySendError,
};
pub use header::{MAX_CAPACITY, MIN_CAPACITY};
pub use message::{Iter, ReadGrant, TryIter, WriteGrant};
pub use options::{
    Notifier, OpenOptions, RingOptions, DEFAULT_CELL_SIZE, DEFAULT_MAX_ENDPOINTS,
    DEFAULT_MAX_MESSAGE,
};
pub use segment::backing::Backing;
pub use stream::{MessageReader, MessageWriter};
pub use wait::Wait;

/// The `bytemuck` crate, whose `Pod` types `send_pod`, `recv_pod` and
/// [`ReadGrant::as_pod`] take, re-exported so that your types implement the very
/// traits this version of shmlane asks for, without a `bytemuck` dependency of your
/// own: derive through this path and name it in `#[bytemuck(crate = ...)]`.
///
/// ```
/// use shmlane::bytemuck::{Pod, Zeroable};
///
/// #[derive(Clone, Copy, Pod, Zeroable)]
/// #[bytemuck(crate = "shmlane::bytemuck")]
/// #[repr(C)]
/// struct Sample {
///     t: u64,
///     value: f32,
///     channel: u32,
/// }
///
/// let (mut tx, mut rx) = shmlane::spsc::channel(&shmlane::RingOptions::new(4096))?;
/// tx.send_pod(&Sample { t: 1, value: 0.5, channel: 3 })?;
/// assert_eq!(rx.recv_ref()?.as_pod::<Sample>()?.channel, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub use bytemuck;

#[cfg(not(loom))]
pub use segment::posix::{canonical_name, validate_name};
#[cfg(not(loom))]
pub use segment::sysv::ftok;
#[cfg(not(loom))]
pub use sys::fdpass::{recv_fd, send_fd};

/// Removes the ring `name` from the system. Endpoints that have it open keep working;
/// the memory is freed when the last of them is dropped. Fails with
/// [`Error::NotFound`] if there is no such name.
///
/// ```
/// # let name = format!("/shmlane-doc-remove-{}", std::process::id());
/// let tx = shmlane::spsc::Producer::create(&name, &shmlane::RingOptions::new(4096))?;
/// shmlane::remove(&name)?;
/// assert!(matches!(shmlane::remove(&name), Err(shmlane::Error::NotFound { .. })));
/// # drop(tx);
/// # Ok::<(), shmlane::Error>(())
/// ```
#[cfg(not(loom))]
pub fn remove(name: &str) -> Result<(), Error> {
    segment::posix::remove(name)
}

/// Removes the SysV ring with `key` (`shmctl(IPC_RMID)`). The key is free for a new
/// ring at once, and no process can open the removed one any more; but a removed
/// segment lives on, and endpoints that have it attached keep working, until the last
/// of them detaches (process exit included): only then is its memory freed. Fails with
/// [`Error::NotFound`] if no segment has that key.
///
/// Until it is removed, a SysV segment outlives every process that used it (`ipcs -m`
/// lists it): remove it when done, or create it with
/// [`RingOptions::unlink_on_drop`].
///
/// ```
/// # let key = 0x5100_0000 | (std::process::id() as i32 & 0xff_ffff);
/// use shmlane::{spsc, RingOptions};
/// let mut tx = spsc::Producer::create_sysv(key, &RingOptions::new(4096))?;
/// let mut rx = spsc::Consumer::open_sysv(key)?;
/// shmlane::remove_sysv(key)?;
/// // Gone for new openers, alive for the endpoints that have it.
/// assert!(matches!(spsc::Consumer::open_sysv(key), Err(shmlane::Error::NotFound { .. })));
/// tx.send(b"still here")?;
/// assert_eq!(rx.recv(&mut Vec::new())?, 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(not(loom))]
pub fn remove_sysv(key: i32) -> Result<(), Error> {
    segment::sysv::remove(key)
}

/// Internals exposed to the loom models in `loom-tests/` only; not an API.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_internals {
    use std::time::Duration;

    /// The shared word of an event count (epoch and waiter count), over loom atomics.
    #[derive(Debug)]
    pub struct EventWord(crate::wait::EventWord);

    impl EventWord {
        /// A zeroed word.
        #[allow(clippy::new_without_default)]
        pub fn new() -> Self {
            EventWord(crate::wait::EventWord::new())
        }
        /// The number of registered waiters not yet taken by a notifier.
        pub fn waiters(&self) -> u32 {
            self.0.counts(loom::sync::atomic::Ordering::Relaxed).0
        }
        /// The number of waiters woken one at a time that have not yet left.
        pub fn woken(&self) -> u32 {
            self.0.counts(loom::sync::atomic::Ordering::Relaxed).1
        }
    }

    /// The event count of [`crate::wait`], over a loom atomic.
    #[derive(Debug)]
    pub struct EventCount<'a>(crate::wait::EventCount<'a>);
    /// A waiter's registration.
    #[derive(Debug)]
    pub struct WaitKey(crate::wait::WaitKey);

    impl<'a> EventCount<'a> {
        /// Wraps `word`, with symmetric fences (a SeqCst fence on both sides).
        pub fn new(word: &'a EventWord) -> Self {
            EventCount(crate::wait::EventCount::new(&word.0, false, None))
        }
        /// Wraps `word`, with asymmetric fences (the default protocol: the notifier's
        /// light barrier, the waiter's membarrier; see `sys::membarrier::light_barrier`
        /// for how loom stands for them).
        pub fn asymmetric(word: &'a EventWord) -> Self {
            EventCount(crate::wait::EventCount::new(&word.0, true, None))
        }
        /// See `wait::EventCount::notify_all`.
        pub fn notify_all(&self) -> bool {
            self.0.notify_all()
        }
        /// See `wait::EventCount::notify_one`.
        pub fn notify_one(&self) -> bool {
            self.0.notify_one()
        }
        /// See `wait::EventCount::prepare_wait`.
        pub fn prepare_wait(&self) -> WaitKey {
            WaitKey(self.0.prepare_wait())
        }
        /// See `wait::EventCount::cancel_wait`.
        pub fn cancel_wait(&self, key: WaitKey) {
            self.0.cancel_wait(key.0)
        }
        /// Sleeps until notified (under loom, until the wake sequence moves).
        pub fn wait(&self, key: WaitKey) {
            self.0.wait(key.0, Duration::from_secs(1))
        }
    }

    /// Waits as the rings' endpoints do (`wait::block_on`, the library's own loop:
    /// spin, yield and park phases as `strategy` says, registration, re-check, sleep,
    /// leave) until `ready()` is true. No deadline.
    pub fn block_until(
        ec: &EventCount<'_>,
        strategy: crate::Wait,
        mut ready: impl FnMut() -> bool,
    ) {
        // The caller's first full poll, as every endpoint makes before `block_on`.
        if ready() {
            return;
        }
        let mut spinner = crate::wait::Spinner::default();
        let r: Result<Option<()>, std::convert::Infallible> = crate::wait::block_on(
            strategy,
            &mut spinner,
            None,
            &mut (ec.0, ready),
            |(ec, _)| *ec,
            |(_, ready), _look| Ok(ready().then_some(())),
        );
        assert!(
            matches!(r, Ok(Some(()))),
            "a wait without deadline ended empty"
        );
    }

    /// An SPSC ring whose endpoint a model killed (`spsc_die_*`): what a survivor needs
    /// to recover the dead endpoint's slot and attach a new endpoint in its place.
    #[derive(Debug, Clone)]
    pub struct SpscRing(crate::spsc::LoomRing);

    /// Ends `p` as a killed process would: no `Drop` code (no ABORT for an open
    /// message, no detach, no wake-up), its slot still attached.
    pub fn spsc_die_producer(p: crate::spsc::Producer) -> SpscRing {
        SpscRing(p.loom_die())
    }

    /// Ends `c` as a killed process would: no `Drop` code (`head` not published, its
    /// read-to note left, no detach, no wake-up), its slot still attached.
    pub fn spsc_die_consumer(c: crate::spsc::Consumer) -> SpscRing {
        SpscRing(c.loom_die())
    }

    impl SpscRing {
        /// What `liveness.rs` does once it has proven the producer dead (`reap` minus the
        /// proof: `Liveness::reap_declared_dead`): take the slot over, run the SPSC
        /// `recover`, detach the slot. `true`: recovered now.
        pub fn recover_producer(&self) -> bool {
            self.0.recover(true)
        }
        /// As [`recover_producer`](Self::recover_producer), for the consumer's slot.
        pub fn recover_consumer(&self) -> bool {
            self.0.recover(false)
        }
        /// A new producer in the (detached) producer slot, waiting as `wait` says.
        pub fn attach_producer(
            &self,
            wait: crate::Wait,
        ) -> Result<crate::spsc::Producer, crate::Error> {
            crate::spsc::Producer::attach(self.0.seg.clone(), self.0.params, wait)
        }
        /// A new consumer in the (detached) consumer slot, waiting as `wait` says.
        pub fn attach_consumer(
            &self,
            wait: crate::Wait,
        ) -> Result<crate::spsc::Consumer, crate::Error> {
            crate::spsc::Consumer::attach(self.0.seg.clone(), self.0.params, wait)
        }
    }

    // MPMC endpoints that die, and their recovery. A process can die after any step
    // of its protocol; under loom, `Liveness::for_segment` is `Liveness::Local`, for
    // which nobody is ever dead, so a model declares the death itself:
    //
    // - `mpmc_stop_after*(&endpoint, k)`: the endpoint stops for ever right after the
    //   k-th step of its protocol from now (the steps are the `View::step` calls in
    //   `mpmc/mod.rs`: each store or compare-exchange of a claim, publish or release).
    //   The stop unwinds out of the endpoint's call with a private payload, which
    //   `run_until_stop` catches; while it unwinds, the grants and streams it drops
    //   leave the ring alone (the endpoint is marked stopped);
    // - `mpmc_die*(endpoint)`: the endpoint ends as a killed process: dropped without
    //   its `Drop` code, so its slot stays attached with its claim note and the stream
    //   slots it held. Returns its slot;
    // - `mpmc_recover_by_*(&survivor, slot)`: what `liveness.rs` does once it has proven
    //   the endpoint of `slot` dead (`Liveness::reap_declared_dead`: `reap` without the
    //   proof): the take-over of the slot's state word, the real
    //   `mpmc::recovery::recover`, then the slot detached, or left for a later try on
    //   `Recovered::NotYet`.
    //
    // A model must hand the dead slot to the recoverer with a Release/Acquire pair (as
    // the kernel's lock does: the recoverer takes the lock after the process died).

    /// Stops `p` for ever right after its `steps`-th step of protocol from now.
    pub fn mpmc_stop_after_producer(p: &crate::mpmc::Producer, steps: u32) {
        p.loom_stop_after(steps);
    }

    /// Stops `c` for ever right after its `steps`-th step of protocol from now.
    pub fn mpmc_stop_after_consumer(c: &crate::mpmc::Consumer, steps: u32) {
        c.loom_stop_after(steps);
    }

    /// Runs `f`; `Err(step)` if an endpoint stopped in it, right after `step` (see
    /// `mpmc_stop_after_*`; the names are those of the `View::step` calls).
    pub fn run_until_stop<R>(f: impl FnOnce() -> R) -> Result<R, &'static str> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(r) => Ok(r),
            Err(payload) => match payload.downcast::<crate::mpmc::Stopped>() {
                Ok(stopped) => Err(stopped.0),
                Err(payload) => std::panic::resume_unwind(payload),
            },
        }
    }

    /// Ends `p` as a killed process would; returns its endpoint slot.
    pub fn mpmc_die(p: crate::mpmc::Producer) -> usize {
        p.loom_die()
    }

    /// Ends `c` as a killed process would; returns its endpoint slot.
    pub fn mpmc_die_consumer(c: crate::mpmc::Consumer) -> usize {
        c.loom_die()
    }

    /// Recovers the dead endpoint of `dead_slot` from `survivor`. `Ok(Some(true))`:
    /// done, the slot is detached; `Ok(Some(false))`: not yet (a live endpoint's
    /// unconfirmed claim note says the same position: try again later); `Ok(None)`:
    /// the slot holds no endpoint any more (recovered already).
    pub fn mpmc_recover_by_producer(
        survivor: &crate::mpmc::Producer,
        dead_slot: usize,
    ) -> Result<Option<bool>, crate::Corruption> {
        survivor.loom_recover(dead_slot)
    }

    /// As [`mpmc_recover_by_producer`], from a consumer.
    pub fn mpmc_recover_by_consumer(
        survivor: &crate::mpmc::Consumer,
        dead_slot: usize,
    ) -> Result<Option<bool>, crate::Corruption> {
        survivor.loom_recover(dead_slot)
    }
}

/// The README's code, compiled as doc tests so that it stays true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
