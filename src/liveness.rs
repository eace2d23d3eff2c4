//! Who is alive: the endpoint table, who owns each slot, and taking over the slot of
//! an endpoint that died.
//!
//! # Ownership of a slot
//!
//! Where the segment is a file (POSIX shared memory, memfd), **the owner of endpoint
//! slot `i` is whoever holds the OFD write lock on the slot's first byte**
//! ([`lock_byte`]), taken with `fcntl(F_OFD_SETLK)` on a descriptor the endpoint
//! opened for itself (`/proc/self/fd/N` reopened: a new open file description, so
//! that two endpoints of one process exclude each other too). The kernel drops the
//! lock when the last descriptor of that description closes, so when its process
//! dies, however it dies, whatever its pid becomes. So:
//!
//! - an endpoint takes the lock *before* it marks the slot attaching, and keeps it
//!   until it has marked the slot detached;
//! - an attached (or attaching, or recovering) slot whose lock anyone else can take is
//!   proven dead, and the one who took the lock is the only one who may recover it;
//!   a live endpoint, however long it stalls, keeps its lock, so it is never taken
//!   for dead;
//! - the child of a `fork()` lets go of its copies of the lock descriptors (they are
//!   made to refer to `/dev/null` by a `pthread_atfork` handler, see [`register`]), so
//!   a forked child does not keep its parent's endpoints alive.
//!
//! Where there is no file (SysV), the fallback is the pid and process start time in
//! the slot; a recoverer then takes the slot with a compare-exchange of its state
//! word (state and pid in one word). On the heap, every endpoint is in this process:
//! none can die without us.
//!
//! # What recovery does
//!
//! The ring kinds say ([`Recover`]): an MPMC ring pads over cells a dead producer
//! claimed and never published, releases cells a dead consumer claimed and never
//! released, and frees the stream slots either held. Then the slot reads
//! `ENDPOINT_DETACHED`, as after a clean detach, or it goes straight to the endpoint
//! that is attaching and found it dead.

#[cfg(not(loom))]
use std::os::fd::BorrowedFd;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::Corruption;
use crate::header::{
    slot_word, word_pid, word_state, EndpointSlot, Header, ENDPOINT_ATTACHED, ENDPOINT_ATTACHING,
    ENDPOINT_DETACHED, ENDPOINT_RECOVERING, ENDPOINT_SLOT_SIZE, ENDPOINT_VACANT,
};
#[cfg(not(loom))]
use crate::sync::take_fd;
use crate::sync::{replace_fd, Ordering, ProcessFd, NO_FD};

/// Offset in the segment file of the byte whose lock owns endpoint slot `slot`: the
/// slot's first byte.
pub(crate) const fn lock_byte(slot: usize) -> i64 {
    (std::mem::offset_of!(Header, endpoints) + slot * ENDPOINT_SLOT_SIZE) as i64
}

/// Offset of the byte a creator holds locked while it initialises the header (the
/// `state` field): a segment still in INIT whose lock is free lost its creator.
pub(crate) const fn init_lock_byte() -> i64 {
    std::mem::offset_of!(Header, state) as i64
}

/// How the liveness of the endpoints of one segment is told, from one endpoint.
#[derive(Debug)]
pub(crate) enum Liveness {
    /// OFD locks, on this endpoint's own open file description of the segment.
    Ofd(OwnedFd),
    /// Pid and process start time (SysV, or where the file cannot be reopened).
    Pid,
    /// A private heap ring: every endpoint is in this process.
    Local,
}

/// Whether a slot state is one that an endpoint, alive or dead, is in.
#[inline]
pub(crate) fn occupied(state: u32) -> bool {
    matches!(
        state,
        ENDPOINT_ATTACHED | ENDPOINT_ATTACHING | ENDPOINT_RECOVERING
    )
}

/// What [`Recover`] made of a dead endpoint's leftovers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recovered {
    /// Everything it left is recovered: the slot may be reused.
    Done,
    /// Not decidable yet (a live endpoint's note says it may own the same cells): try
    /// again later; the slot is left as it was.
    NotYet,
}

/// The ring-specific part of recovering dead endpoint `slot` (whose role and claim
/// notes are still in the slot): called with the slot taken over, so by one
/// recoverer at a time.
/// It gets the slot's index and the state word the slot had (`ENDPOINT_ATTACHED`:
/// the endpoint had finished attaching).
pub(crate) type Recover<'a> = &'a mut dyn FnMut(usize, u64) -> Result<Recovered, Corruption>;

#[cfg(not(loom))]
mod ofd {
    use super::*;
    use nix::errno::Errno;

    fn flock(kind: libc::c_short, byte: i64) -> libc::flock {
        // SAFETY: flock is plain data; all-zero is a valid value (l_pid must be 0 for
        // OFD locks).
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = kind;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = byte as libc::off_t;
        fl.l_len = 1;
        fl
    }

    /// Takes the write lock on `byte` without waiting. `Ok(false)`: another open
    /// file description holds it.
    pub(crate) fn try_lock(fd: BorrowedFd<'_>, byte: i64) -> Result<bool, Errno> {
        try_lock_range(fd, byte, 1)
    }

    /// Lets the lock on `byte` go.
    pub(crate) fn unlock(fd: BorrowedFd<'_>, byte: i64) {
        unlock_range(fd, byte, 1);
    }

    /// Takes the write lock on `len` bytes from `start` without waiting (all or none).
    pub(crate) fn try_lock_range(fd: BorrowedFd<'_>, start: i64, len: i64) -> Result<bool, Errno> {
        let mut fl = flock(libc::F_WRLCK as libc::c_short, start);
        fl.l_len = len as libc::off_t;
        loop {
            // SAFETY: F_OFD_SETLK reads the flock we pass, which lives across the call.
            let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
            if r == 0 {
                return Ok(true);
            }
            match Errno::last() {
                Errno::EAGAIN | Errno::EACCES => return Ok(false),
                Errno::EINTR => continue,
                e => return Err(e),
            }
        }
    }

    /// Lets the lock on `len` bytes from `start` go.
    pub(crate) fn unlock_range(fd: BorrowedFd<'_>, start: i64, len: i64) {
        let mut fl = flock(libc::F_UNLCK as libc::c_short, start);
        fl.l_len = len as libc::off_t;
        // SAFETY: as in `try_lock_range`. Unlocking cannot fail on a valid descriptor.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    }

    /// Whether an open file description other than the one of `fd` holds a lock on
    /// `byte` (`F_OFD_GETLK`). `fd` may be read-only.
    pub(crate) fn held(fd: BorrowedFd<'_>, byte: i64) -> Result<bool, Errno> {
        let mut fl = flock(libc::F_WRLCK as libc::c_short, byte);
        // SAFETY: F_OFD_GETLK writes into the flock we pass, which lives across it.
        let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
        if r != 0 {
            return Err(Errno::last());
        }
        Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
    }

    /// A new open file description of the file of `fd`, for this endpoint's locks:
    /// `/proc/self/fd/N` opened again (a `dup` would share the description, and the
    /// locks of two endpoints of this process would not exclude each other).
    pub(crate) fn reopen(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
        use std::os::fd::FromRawFd;
        let path = format!("/proc/self/fd/{}\0", fd.as_raw_fd());
        // SAFETY: `path` is NUL-terminated and outlives the call.
        let r = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDWR | libc::O_CLOEXEC) };
        if r < 0 {
            return Err(Errno::last());
        }
        // SAFETY: `open` returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(r) })
    }
}

#[cfg(not(loom))]
pub(crate) use ofd::{
    held as ofd_held, try_lock as ofd_try_lock, try_lock_range as ofd_try_lock_range,
    unlock as ofd_unlock,
};

// ---------------------------------------------------------------------------------
// Closing lock descriptors in forked children
// ---------------------------------------------------------------------------------

/// The lock descriptors of this process's endpoints, for the fork handler: -1 where
/// free. Lock-free, because the handler runs in the child of a fork that may have
/// happened while another thread was registering.
static LOCK_FDS: [ProcessFd; 256] = [const { ProcessFd::new(NO_FD) }; 256];

/// Runs in the child of every `fork()`: makes the child's copies of the lock
/// descriptors refer to `/dev/null` (`dup2` over them), so that the locks stay only
/// as long as the parent holds them. Not `close`: the child still has the endpoints'
/// `OwnedFd`s, and one dropped later would close whatever reused the number. Only
/// `open`, `dup3` and `close`, which are async-signal-safe.
#[cfg(not(loom))]
extern "C" fn close_locks_in_child() {
    // SAFETY: a NUL-terminated path; the flags ask for nothing unusual.
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    for entry in &LOCK_FDS {
        let fd = take_fd(entry);
        if fd < 0 {
            continue;
        }
        if null >= 0 {
            // SAFETY: `fd` was open in the parent at the fork (entries are removed
            // before their descriptor closes), so it is this child's copy; dup2 over it
            // drops the child's reference to the locked description atomically (dup3:
            // keeping close-on-exec).
            unsafe { libc::dup3(null, fd, libc::O_CLOEXEC) };
        } else {
            // SAFETY: as above; without /dev/null, closing is the fallback.
            unsafe { libc::close(fd) };
        }
    }
    if null >= 0 {
        // SAFETY: the descriptor we opened above.
        unsafe { libc::close(null) };
    }
}

/// Registers `fd` to be closed in forked children; `false` if the table is full (the
/// locks then also live as long as a forked child keeps the copy: a documented limit).
#[cfg(not(loom))]
fn register(fd: i32) -> bool {
    static HANDLER: std::sync::Once = std::sync::Once::new();
    HANDLER.call_once(|| {
        // SAFETY: registers a handler with no captured state; it only calls close.
        unsafe { libc::pthread_atfork(None, None, Some(close_locks_in_child)) };
    });
    LOCK_FDS.iter().any(|entry| replace_fd(entry, NO_FD, fd))
}

/// Removes `fd` from the fork handler's table (before it is closed).
fn unregister(fd: i32) {
    for entry in &LOCK_FDS {
        if replace_fd(entry, fd, NO_FD) {
            return;
        }
    }
}

impl Drop for Liveness {
    fn drop(&mut self) {
        if let Liveness::Ofd(fd) = self {
            unregister(fd.as_raw_fd());
        }
    }
}

impl Liveness {
    /// The liveness test for a new endpoint of `seg`: OFD locks on a description of
    /// its own where the segment is a file, else the pid fallback (or none, on the
    /// heap).
    pub(crate) fn for_segment(seg: &crate::segment::Segment) -> Liveness {
        #[cfg(not(loom))]
        {
            if matches!(seg, crate::segment::Segment::Heap(_)) {
                return Liveness::Local;
            }
            match seg.file_fd().map(ofd::reopen) {
                Some(Ok(fd)) => {
                    register(fd.as_raw_fd());
                    Liveness::Ofd(fd)
                }
                // No /proc to reopen through, or no file: the pid and start time.
                _ => Liveness::Pid,
            }
        }
        #[cfg(loom)]
        {
            let _ = seg;
            Liveness::Local
        }
    }

    /// Takes ownership of slot `i` if no one holds it. Without locks, always `true`
    /// (the state word's compare-exchange decides).
    fn try_own(&self, i: usize) -> bool {
        #[cfg(loom)]
        let _ = i;
        match self {
            #[cfg(not(loom))]
            Liveness::Ofd(fd) => {
                ofd::try_lock(std::os::fd::AsFd::as_fd(fd), lock_byte(i)).unwrap_or(false)
            }
            #[cfg(loom)]
            Liveness::Ofd(_) => true,
            Liveness::Pid | Liveness::Local => true,
        }
    }

    /// Gives up ownership of slot `i` (no-op without locks).
    pub(crate) fn disown(&self, i: usize) {
        #[cfg(not(loom))]
        if let Liveness::Ofd(fd) = self {
            ofd::unlock(std::os::fd::AsFd::as_fd(fd), lock_byte(i));
        }
        let _ = i;
    }

    /// Whether the endpoint in `slot` (whose state word read `word`) is dead, given
    /// that `try_own` of its slot succeeded.
    fn owner_dead(&self, slot: &EndpointSlot, word: u64) -> bool {
        match self {
            // We hold its lock: it has let go of it, and it never does while alive.
            Liveness::Ofd(_) => true,
            Liveness::Pid => {
                // An attaching endpoint has not written its start time yet.
                let start = (word_state(word) != ENDPOINT_ATTACHING)
                    .then(|| slot.start_time.load(Ordering::Relaxed))
                    .filter(|&t| t != 0);
                !pid_alive(word_pid(word), start)
            }
            Liveness::Local => false,
        }
    }

    /// Whether slot `i` holds an endpoint proven dead, without taking anything: for
    /// scans. `false` if it may be alive, and also if the slot holds no endpoint (any
    /// more): the state word is read before and after the lock is asked, so an
    /// endpoint that detaches while a scan looks at it is never taken for a dead one.
    pub(crate) fn proven_dead(&self, i: usize, slot: &EndpointSlot) -> bool {
        #[cfg(loom)]
        let _ = i;
        let word = slot.word.load(Ordering::Acquire);
        if !occupied(word_state(word)) {
            return false;
        }
        match self {
            #[cfg(not(loom))]
            Liveness::Ofd(fd) => {
                // Free lock, and the same word after it: an endpoint that detached
                // meanwhile stored its new state before it let the lock go.
                !ofd::held(std::os::fd::AsFd::as_fd(fd), lock_byte(i)).unwrap_or(true)
                    && slot.word.load(Ordering::Acquire) == word
            }
            #[cfg(loom)]
            Liveness::Ofd(_) => false,
            Liveness::Pid => self.owner_dead(slot, word),
            Liveness::Local => false,
        }
    }

    /// Takes slot `i` over if it is occupied by an endpoint proven dead: marks it
    /// `ENDPOINT_RECOVERING` with our pid, and returns the word it had. `None`: it is
    /// not occupied, or its endpoint may be alive, or another recoverer has it.
    fn take_dead(&self, i: usize, slot: &EndpointSlot) -> Option<u64> {
        let seen = slot.word.load(Ordering::Acquire);
        if !occupied(word_state(seen)) || matches!(self, Liveness::Local) {
            return None;
        }
        if !self.try_own(i) {
            return None;
        }
        // Read it again under the lock: the endpoint may have detached meanwhile.
        let word = slot.word.load(Ordering::Acquire);
        if !occupied(word_state(word)) || !self.owner_dead(slot, word) {
            self.disown(i);
            return None;
        }
        self.take_over(i, slot, word)
    }

    /// The second half of `take_dead`, once the endpoint in slot `i` (whose state word
    /// read `word`) is proven dead: marks the slot `ENDPOINT_RECOVERING` with our pid
    /// and returns `word`, or `None` (letting the slot go) if the word changed: another
    /// recoverer has it.
    fn take_over(&self, i: usize, slot: &EndpointSlot, word: u64) -> Option<u64> {
        let mine = slot_word(ENDPOINT_RECOVERING, std::process::id());
        match slot
            .word
            .compare_exchange(word, mine, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Some(word),
            Err(_) => {
                self.disown(i);
                None
            }
        }
    }

    /// Recovers slot `i` if its endpoint is proven dead, and leaves it detached.
    /// `Ok(true)`: it was recovered.
    pub(crate) fn reap(
        &self,
        i: usize,
        slot: &EndpointSlot,
        recover: Recover<'_>,
    ) -> Result<bool, Corruption> {
        let Some(was) = self.take_dead(i, slot) else {
            return Ok(false);
        };
        self.recover_taken(i, slot, was, recover)
    }

    /// Loom models only: [`reap`](Self::reap) of slot `i` whose endpoint the model
    /// declares dead (it stopped for ever and its thread ended without its `Drop`).
    /// Under loom every liveness is [`Liveness::Local`], for which nobody is ever
    /// dead, so this skips only the proof of death (`try_own` and `owner_dead`, which
    /// under OFD locks is a kernel lock handed over from the dead to us): the take-over
    /// of the state word, the recovery and the release of the slot are `reap`'s own.
    #[cfg(loom)]
    pub(crate) fn reap_declared_dead(
        &self,
        i: usize,
        slot: &EndpointSlot,
        recover: Recover<'_>,
    ) -> Result<bool, Corruption> {
        let word = slot.word.load(Ordering::Acquire);
        if !occupied(word_state(word)) {
            return Ok(false);
        }
        let Some(was) = self.take_over(i, slot, word) else {
            return Ok(false);
        };
        self.recover_taken(i, slot, was, recover)
    }

    /// The rest of [`reap`](Self::reap), with slot `i` taken over (its state word was
    /// `was`): recovers it, then marks it detached, or puts `was` back for a later try.
    fn recover_taken(
        &self,
        i: usize,
        slot: &EndpointSlot,
        was: u64,
        recover: Recover<'_>,
    ) -> Result<bool, Corruption> {
        let outcome = recover(i, was);
        let next = match outcome {
            Ok(Recovered::Done) => {
                slot.claim.store(0, Ordering::Relaxed);
                slot_word(ENDPOINT_DETACHED, 0)
            }
            // Put it back for a later try (by us or another recoverer).
            Ok(Recovered::NotYet) | Err(_) => was,
        };
        // SYNC POINT: Release: whoever sees the slot detached (Acquire) sees what the
        // recovery published.
        slot.word.store(next, Ordering::Release);
        self.disown(i);
        outcome.map(|o| o == Recovered::Done)
    }

    /// Takes a slot among `slots` (indices `range`) for a new endpoint of `role`:
    /// a vacant or detached one, or one whose endpoint is proven dead (recovered
    /// first). Returns the index, with the slot `ENDPOINT_ATTACHED` and ours (locked),
    /// or `None` if every slot holds a live endpoint (or one not yet recoverable).
    pub(crate) fn attach(
        &self,
        slots: &[EndpointSlot],
        range: std::ops::Range<usize>,
        role: u32,
        recover: Recover<'_>,
    ) -> Result<Option<usize>, AttachError> {
        // A slot can be busy for a moment only: an endpoint detaching or a recoverer
        // finishing still holds its lock. Look again a few times before saying none.
        for _ in 0..ATTACH_PASSES {
            match self.attach_pass(slots, range.clone(), role, recover)? {
                Pass::Attached(i) => return Ok(Some(i)),
                Pass::Full => return Ok(None),
                Pass::Busy => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        Ok(None)
    }

    fn attach_pass(
        &self,
        slots: &[EndpointSlot],
        range: std::ops::Range<usize>,
        role: u32,
        recover: Recover<'_>,
    ) -> Result<Pass, AttachError> {
        let me = std::process::id();
        let mut busy = false;
        for i in range {
            let slot = &slots[i];
            let seen = slot.word.load(Ordering::Acquire);
            match word_state(seen) {
                ENDPOINT_VACANT | ENDPOINT_DETACHED => {
                    if !self.try_own(i) {
                        busy = true; // someone attaching, detaching or recovering there
                        continue;
                    }
                    let word = slot.word.load(Ordering::Acquire);
                    if !matches!(word_state(word), ENDPOINT_VACANT | ENDPOINT_DETACHED)
                        || slot
                            .word
                            .compare_exchange(
                                word,
                                slot_word(ENDPOINT_ATTACHING, me),
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            )
                            .is_err()
                    {
                        self.disown(i);
                        busy = true;
                        continue;
                    }
                }
                s if occupied(s) => {
                    let Some(was) = self.take_dead(i, slot) else {
                        busy |= s == ENDPOINT_RECOVERING;
                        continue;
                    };
                    match recover(i, was) {
                        Ok(Recovered::Done) => {}
                        Ok(Recovered::NotYet) => {
                            slot.word.store(was, Ordering::Release);
                            self.disown(i);
                            busy = true;
                            continue;
                        }
                        Err(c) => {
                            slot.word.store(was, Ordering::Release);
                            self.disown(i);
                            return Err(AttachError::Corrupt(c));
                        }
                    }
                    slot.word
                        .store(slot_word(ENDPOINT_ATTACHING, me), Ordering::Release);
                }
                other => return Err(AttachError::State(other)),
            }
            // The slot is ours: fill it, then say attached.
            slot.start_time.store(
                crate::header::process_start_time().unwrap_or(0),
                Ordering::Relaxed,
            );
            slot.role.store(role, Ordering::Relaxed);
            slot.claim.store(0, Ordering::Relaxed);
            slot.claim_cells.store(0, Ordering::Relaxed);
            slot.generation.fetch_add(1, Ordering::Relaxed);
            // SYNC POINT: Release: whoever sees ATTACHED (Acquire) sees the fields above.
            slot.word
                .store(slot_word(ENDPOINT_ATTACHED, me), Ordering::Release);
            return Ok(Pass::Attached(i));
        }
        Ok(if busy { Pass::Busy } else { Pass::Full })
    }

    /// Marks our slot `i` detached and lets it go. Release: everything the endpoint
    /// published before is visible to whoever sees it gone.
    pub(crate) fn detach(&self, i: usize, slot: &EndpointSlot) {
        slot.claim.store(0, Ordering::Relaxed);
        slot.word
            .store(slot_word(ENDPOINT_DETACHED, 0), Ordering::Release);
        self.disown(i);
    }
}

/// When an endpoint that is not waiting (its `try_*` calls found nothing) should check
/// its peers' liveness: at most every [`LIVENESS_EVERY`](crate::wait::LIVENESS_EVERY).
#[derive(Debug, Default)]
pub(crate) struct Watch(std::cell::Cell<Option<std::time::Instant>>);

impl Watch {
    /// Whether a check is due now (and if so, the next one is due later).
    pub(crate) fn due(&self) -> bool {
        #[cfg(loom)]
        {
            false
        }
        #[cfg(not(loom))]
        {
            let now = std::time::Instant::now();
            match self.0.get() {
                Some(next) if now < next => false,
                _ => {
                    self.0.set(Some(now + crate::wait::LIVENESS_EVERY));
                    true
                }
            }
        }
    }
}

/// How many times `attach` looks over the slots while one is busy for a moment.
const ATTACH_PASSES: usize = 50;

/// What one look over the slots found.
enum Pass {
    Attached(usize),
    /// Every slot holds a live endpoint.
    Full,
    /// None free, but one was in passing (detaching, being recovered).
    Busy,
}

/// Why [`Liveness::attach`] failed.
#[derive(Debug)]
pub(crate) enum AttachError {
    /// A slot's state word holds no known state.
    State(u32),
    /// Recovering a dead endpoint's leftovers found the ring corrupt.
    Corrupt(Corruption),
}

/// Whether the process `pid` runs (and started at `start`, if given).
fn pid_alive(pid: u32, start: Option<u64>) -> bool {
    #[cfg(not(any(loom, miri)))]
    {
        crate::inspect::process_alive(pid, start)
    }
    #[cfg(any(loom, miri))]
    {
        let _ = (pid, start);
        true
    }
}

#[cfg(all(test, not(loom), not(miri)))]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn ofd_locks_exclude_descriptions_not_processes() {
        let file = tempfile_in_shm();
        let a = ofd::reopen(file.as_fd()).unwrap();
        let b = ofd::reopen(file.as_fd()).unwrap();
        assert!(ofd::try_lock(a.as_fd(), 5).unwrap());
        // Another description of this same process is excluded...
        assert!(!ofd::try_lock(b.as_fd(), 5).unwrap());
        assert!(ofd::held(b.as_fd(), 5).unwrap());
        // ...but not from other bytes, and the holder's own view sees no conflict.
        assert!(ofd::try_lock(b.as_fd(), 6).unwrap());
        assert!(!ofd::held(a.as_fd(), 5).unwrap());
        ofd::unlock(a.as_fd(), 5);
        assert!(!ofd::held(b.as_fd(), 5).unwrap());
        assert!(ofd::try_lock(b.as_fd(), 5).unwrap());
        // Closing a description drops its locks.
        drop(b);
        assert!(ofd::try_lock(a.as_fd(), 5).unwrap());
        assert!(ofd::try_lock(a.as_fd(), 6).unwrap());
    }

    fn tempfile_in_shm() -> std::fs::File {
        let path = format!("/dev/shm/shmlane-unit-liveness-{}", std::process::id());
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        f.set_len(4096).unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }
}
