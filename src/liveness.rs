//! Who is alive: the endpoint table, who owns each slot, and taking over the slot of
//! an endpoint that died.
//!
//! # Ownership of a slot
//!
//! A slot's state word ([`holder_word`]) says who holds the slot (pid), in which
//! state, **how that holder's life is told** (`HOLDER_*`), and a holder sequence that
//! changes whenever the slot changes hands. Every endpoint is judged by the way its own
//! slot word names, never by the judge's own: one ring may hold endpoints of both kinds
//! (an endpoint that cannot open a description of its own of the file, say a memfd
//! received from another user, tells its life by its pid, beside others that lock).
//!
//! - **`HOLDER_LOCK`**: the holder holds the OFD write lock on the slot's first byte
//!   ([`lock_byte`]), taken with `fcntl(F_OFD_SETLK)` on a descriptor the endpoint
//!   opened for itself (`/proc/self/fd/N` reopened: a new open file description, so
//!   that two endpoints of one process exclude each other too). It takes the lock
//!   *before* it marks the slot attaching (or recovering) and keeps it until it has
//!   marked the slot detached (or dead). The kernel drops the lock when the last
//!   descriptor of that description closes, so when its process dies, however it dies,
//!   whatever its pid becomes. So an occupied slot whose lock is free, and whose word
//!   is the same after the lock was found free, holds a dead endpoint; a live one,
//!   however long it stalls, keeps its lock.
//! - **`HOLDER_PID`**: where there is no file (SysV), or the endpoint could not reopen
//!   it. The word itself holds the pid and the holder's pid namespace (an index into
//!   the ring's table of namespaces, `Header::pid_namespaces`, filled as namespaces
//!   come), so a holder killed right after its compare-exchange is judged like any
//!   other. It then writes its process start time into the slot, then [`holder_tag`]
//!   of its word (Release): a judge compares the start time only while the tag matches
//!   (until then, the pid alone tells). It is dead only if its pid namespace is the
//!   judge's and, there, the pid names no process, a zombie, or a process that started
//!   at another time. A process whose life cannot be read (another pid namespace, or
//!   more of them than the table holds, `/proc` hidden by `hidepid`) is alive: it is
//!   never reaped. The price: a dead peer in another pid namespace is never noticed.
//! - **`HOLDER_LOCAL`**: a private heap ring; every endpoint is in this process.
//!
//! The child of a `fork()` lets go of its copies of the lock descriptors (they are
//! made to refer to `/dev/null` by a `pthread_atfork` handler, see `crate::sys::ofd::drop_in_forked_children`), so
//! a forked child does not keep its parent's endpoints alive; and an endpoint copied
//! by `fork` writes nothing to the segment when it is dropped in the child (the ring
//! views compare the pid that attached with the dropping one).
//!
//! # Taking a slot over
//!
//! Whoever proves the holder dead takes the slot with one compare-exchange from the
//! word it judged (so the holder sequence rules out a new life of the same pid) to
//! `ENDPOINT_RECOVERING` with itself as holder (locking first if it locks), writes its
//! identity, and recovers. It leaves the slot with a compare-exchange from the word it
//! installed: `ENDPOINT_DETACHED` when everything is recovered, else
//! `ENDPOINT_DEAD`, a proven-dead endpoint that any endpoint may take over next
//! without proving anything again. A recoverer that dies is judged like any holder, so
//! at most one recovers a slot at a time.
//!
//! # What recovery does
//!
//! The ring kinds say ([`Recover`]): an MPMC ring pads over cells a dead producer
//! claimed and never published, releases cells a dead consumer claimed and never
//! released, and frees the stream slots either held. Then the slot reads
//! `ENDPOINT_DETACHED`, as after a clean detach, or it goes straight to the endpoint
//! that is attaching and found it dead.

use std::os::fd::OwnedFd;

use crate::error::Corruption;
use crate::header::{
    holder_tag, holder_word, word_holder, word_ns, word_pid, word_seq, word_state, EndpointSlot,
    Header, ENDPOINT_ATTACHED, ENDPOINT_ATTACHING, ENDPOINT_DEAD, ENDPOINT_DETACHED,
    ENDPOINT_RECOVERING, ENDPOINT_SLOT_SIZE, ENDPOINT_VACANT, HOLDER_LOCAL, HOLDER_LOCK,
    HOLDER_PID, SLOT_COUNTED,
};
use crate::sync::{AtomicU64, Ordering};

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

/// One endpoint's hold on its slot, and its test of the other endpoints' lives.
#[derive(Debug)]
pub(crate) struct Liveness {
    how: How,
    /// The word we installed in our slot (attached), 0 while we hold none.
    held: std::cell::Cell<u64>,
    /// The process that made this endpoint (see [`Liveness::copied_by_fork`]).
    pid: u32,
    /// Our pid namespace's index in the ring's table (`Header::pid_namespaces`), as
    /// slot words name it; 0 if unknown (then we judge no pid, and no one judges ours).
    ns: u32,
    /// Loom models only: the model killed this endpoint (see [`Liveness::kill`]).
    #[cfg(loom)]
    killed: std::cell::Cell<bool>,
}

/// How one endpoint holds its slot and tells the life of the others.
#[derive(Debug)]
enum How {
    /// OFD locks, on this endpoint's own open file description of the segment
    /// (`HOLDER_LOCK`).
    Ofd(OwnedFd),
    /// Pid, pid namespace and start time (`HOLDER_PID`): SysV, or where the file
    /// could not be reopened. The descriptor, where the segment is a file, is a copy of
    /// the segment's own, to read the locks of the endpoints that do lock.
    Pid(Option<OwnedFd>),
    /// A private heap ring: every endpoint is in this process (`HOLDER_LOCAL`).
    Local,
}

/// Whether a slot state is one that an endpoint, alive or dead, is in (or left
/// unrecovered).
#[inline]
pub(crate) fn occupied(state: u32) -> bool {
    matches!(
        state,
        ENDPOINT_ATTACHED | ENDPOINT_ATTACHING | ENDPOINT_RECOVERING | ENDPOINT_DEAD
    )
}

/// What [`Recover`] made of a dead endpoint's leftovers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recovered {
    /// Everything it left is recovered: the slot may be reused.
    Done,
    /// Not decidable yet (a live endpoint's note says it may own the same cells): try
    /// again later; the slot is left `ENDPOINT_DEAD`.
    NotYet,
}

/// The ring-specific part of recovering dead endpoint `slot` (whose role and claim
/// notes are still in the slot): called with the slot taken over, so by one
/// recoverer at a time.
/// It gets the slot's index and the state word the slot had; [`SLOT_COUNTED`] in it
/// says the endpoint was counted in the ring's totals.
pub(crate) type Recover<'a> = &'a mut dyn FnMut(usize, u64) -> Result<Recovered, Corruption>;
use crate::sys::ofd;

impl Drop for Liveness {
    fn drop(&mut self) {
        if let How::Ofd(fd) = &self.how {
            ofd::keep_in_forked_children(std::os::fd::AsFd::as_fd(fd));
        }
    }
}

impl Liveness {
    /// How a new endpoint of `seg` holds its slot: OFD locks on a description of its
    /// own where the segment is a file and it can reopen it, else its pid (or nothing
    /// to tell, on the heap).
    pub(crate) fn for_segment(seg: &crate::segment::Segment) -> Liveness {
        Liveness {
            how: How::for_segment(seg),
            held: std::cell::Cell::new(0),
            pid: std::process::id(),
            ns: ns_index(&seg.header().pid_namespaces, own_pid_ns(), true),
            #[cfg(loom)]
            killed: std::cell::Cell::new(false),
        }
    }

    /// Loom models only: this endpoint dies as a killed process does; from now on it
    /// passes for a copy made by `fork` (below), so its `Drop` code writes nothing to
    /// the segment (no detach, no cursor, no wake-up), and its slot stays attached.
    #[cfg(loom)]
    pub(crate) fn kill(&self) {
        self.killed.set(true);
    }

    /// Whether this endpoint was copied into another process by `fork()`: the process
    /// that dropped it is not the one that made it. Such a copy must write nothing to
    /// the segment (the slot, the cursors, the notes are its parent's).
    pub(crate) fn copied_by_fork(&self) -> bool {
        #[cfg(loom)]
        {
            self.killed.get()
        }
        #[cfg(all(miri, not(loom)))]
        {
            false
        }
        #[cfg(not(any(loom, miri)))]
        {
            std::process::id() != self.pid
        }
    }

    /// The `HOLDER_*` kind this endpoint writes into the slot words it installs.
    fn holder_kind(&self) -> u32 {
        match self.how {
            How::Ofd(_) => HOLDER_LOCK,
            How::Pid(_) => HOLDER_PID,
            How::Local => HOLDER_LOCAL,
        }
    }

    /// Whether this endpoint holds slots by their OFD lock.
    fn locks(&self) -> bool {
        matches!(self.how, How::Ofd(_))
    }

    /// Takes the lock of slot `i` if no one holds it. Without locks, always `true`
    /// (the state word's compare-exchange decides).
    fn try_own(&self, i: usize) -> bool {
        match &self.how {
            How::Ofd(fd) => {
                ofd::try_lock(std::os::fd::AsFd::as_fd(fd), lock_byte(i)).unwrap_or(false)
            }
            How::Pid(_) | How::Local => true,
        }
    }

    /// Lets the lock of slot `i` go (no-op without locks).
    fn disown(&self, i: usize) {
        if let How::Ofd(fd) = &self.how {
            ofd::unlock(std::os::fd::AsFd::as_fd(fd), lock_byte(i));
        }
    }

    /// Whether no open file description holds the lock of slot `i`, other than the
    /// one we read locks through (which holds no slot lock but the ones we took).
    /// `false` where we cannot read the locks (no file).
    fn lock_free(&self, i: usize) -> bool {
        let fd = match &self.how {
            How::Ofd(fd) | How::Pid(Some(fd)) => std::os::fd::AsFd::as_fd(fd),
            How::Pid(None) | How::Local => return false,
        };
        !ofd::held(fd, lock_byte(i)).unwrap_or(true)
    }

    /// Whether the holder of slot `i`, whose word read `word`, is dead, judged the way
    /// its word says. `locked`: we took the slot's lock after `word` was read (and read
    /// the word again since): a `HOLDER_LOCK` holder has let it go, which it does only
    /// once it is no longer there, so it is dead.
    fn holder_dead(&self, i: usize, slot: &EndpointSlot, word: u64, locked: bool) -> bool {
        match word_state(word) {
            ENDPOINT_DEAD => return true,
            s if !occupied(s) => return false,
            _ => {}
        }
        match word_holder(word) {
            HOLDER_LOCK => locked || self.lock_free(i),
            HOLDER_PID => pid_holder_dead(slot, word, self.ns),
            // The heap (every endpoint is in this process), or no known kind: nothing
            // proves a death.
            _ => false,
        }
    }

    /// Whether slot `i` holds an endpoint proven dead, without taking anything: for
    /// scans. `false` if it may be alive, and also if the slot holds no endpoint (any
    /// more): the state word is read before and after the look, so an endpoint that
    /// detaches (or a new life that attaches: the holder sequence differs) while a
    /// scan looks at it is never taken for a dead one.
    pub(crate) fn proven_dead(&self, i: usize, slot: &EndpointSlot) -> bool {
        let word = slot.word.load(Ordering::Acquire);
        occupied(word_state(word))
            && self.holder_dead(i, slot, word, false)
            && slot.word.load(Ordering::Acquire) == word
    }

    /// Takes slot `i` over if it holds an endpoint proven dead: marks it
    /// `ENDPOINT_RECOVERING` with us as holder. Returns the word it had and the word we
    /// installed. `None`: it is not occupied, or its endpoint may be alive, or another
    /// recoverer has it.
    fn take_dead(&self, i: usize, slot: &EndpointSlot) -> Option<(u64, u64)> {
        let state = word_state(slot.word.load(Ordering::Acquire));
        // On the heap nobody dies without us, but a slot left dead (proven dead once)
        // needs no proof.
        if !occupied(state) || (matches!(self.how, How::Local) && state != ENDPOINT_DEAD) {
            return None;
        }
        // A recoverer that locks holds the slot's lock while it recovers (whoever held
        // the slot before), and taking it is the proof for a holder that locked.
        let locked = self.locks();
        if locked && !self.try_own(i) {
            return None;
        }
        // Read it again with the lock held: the endpoint may have detached meanwhile.
        let word = slot.word.load(Ordering::Acquire);
        if !self.holder_dead(i, slot, word, locked) {
            self.disown(i);
            return None;
        }
        self.take_over(i, slot, word)
    }

    /// The second half of `take_dead`, once the holder of slot `i` (whose state word
    /// read `word`) is proven dead: installs `ENDPOINT_RECOVERING` with us as holder
    /// (the counted bit carried over), and returns `(word, installed)`, or `None`
    /// (letting the slot go) if the word changed: another recoverer has it.
    fn take_over(&self, i: usize, slot: &EndpointSlot, word: u64) -> Option<(u64, u64)> {
        let mine = holder_word(
            ENDPOINT_RECOVERING,
            self.holder_kind(),
            self.ns,
            word_seq(word).wrapping_add(1),
            std::process::id(),
        ) | (word & SLOT_COUNTED);
        match slot
            .word
            .compare_exchange(word, mine, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                write_identity(slot, mine);
                Some((word, mine))
            }
            Err(_) => {
                self.disown(i);
                None
            }
        }
    }

    /// Recovers slot `i` if its endpoint is proven dead, and leaves it detached (or
    /// dead, if not everything could be recovered). `Ok(true)`: it was recovered.
    pub(crate) fn reap(
        &self,
        i: usize,
        slot: &EndpointSlot,
        recover: Recover<'_>,
    ) -> Result<bool, Corruption> {
        let Some((was, mine)) = self.take_dead(i, slot) else {
            return Ok(false);
        };
        self.recover_taken(i, slot, was, mine, recover)
    }

    /// Loom models only: [`reap`](Self::reap) of slot `i` whose endpoint the model
    /// declares dead (it stopped for ever and its thread ended without its `Drop`).
    /// Under loom every liveness is `HOLDER_LOCAL`, for which nobody is ever dead, so
    /// this skips only the proof of death (which under OFD locks is a kernel lock
    /// handed over from the dead to us): the take-over of the state word, the recovery
    /// and the release of the slot are `reap`'s own. Two of them racing on one slot
    /// model two survivors that both proved it dead.
    #[cfg(loom)]
    pub(crate) fn reap_declared_dead(
        &self,
        i: usize,
        slot: &EndpointSlot,
        recover: Recover<'_>,
    ) -> Result<bool, Corruption> {
        let word = slot.word.load(Ordering::Acquire);
        // The endpoint the model declared dead, or a dead one left unrecovered; not a
        // slot another (live) recoverer holds.
        if !matches!(
            word_state(word),
            ENDPOINT_ATTACHED | ENDPOINT_ATTACHING | ENDPOINT_DEAD
        ) {
            return Ok(false);
        }
        let Some((was, mine)) = self.take_over(i, slot, word) else {
            return Ok(false);
        };
        self.recover_taken(i, slot, was, mine, recover)
    }

    /// The rest of [`reap`](Self::reap), with slot `i` taken over (its state word was
    /// `was`, we installed `mine`): recovers it, then marks it detached, or dead for a
    /// later try (by us or another recoverer).
    fn recover_taken(
        &self,
        i: usize,
        slot: &EndpointSlot,
        was: u64,
        mine: u64,
        recover: Recover<'_>,
    ) -> Result<bool, Corruption> {
        let outcome = recover(i, was);
        if outcome == Ok(Recovered::Done) {
            slot.claim.store(0, Ordering::Relaxed);
        }
        // SYNC POINT: Release (in `move_on`): whoever sees the slot detached (Acquire)
        // sees what the recovery published.
        move_on(slot, mine, |now| match outcome {
            Ok(Recovered::Done) => holder_word(ENDPOINT_DETACHED, 0, 0, word_seq(now), 0),
            Ok(Recovered::NotYet) | Err(_) => dead_word(now),
        });
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
        let kind = self.holder_kind();
        let mut busy = false;
        for i in range {
            let slot = &slots[i];
            let seen = slot.word.load(Ordering::Acquire);
            let from = match word_state(seen) {
                ENDPOINT_VACANT | ENDPOINT_DETACHED => {
                    if !self.try_own(i) {
                        busy = true; // someone attaching, detaching or recovering there
                        continue;
                    }
                    let word = slot.word.load(Ordering::Acquire);
                    if !matches!(word_state(word), ENDPOINT_VACANT | ENDPOINT_DETACHED) {
                        self.disown(i);
                        busy = true;
                        continue;
                    }
                    word
                }
                s if occupied(s) => {
                    let Some((was, taken)) = self.take_dead(i, slot) else {
                        busy |= matches!(s, ENDPOINT_RECOVERING | ENDPOINT_DEAD);
                        continue;
                    };
                    match recover(i, was) {
                        Ok(Recovered::Done) => {}
                        Ok(Recovered::NotYet) => {
                            move_on(slot, taken, dead_word);
                            self.disown(i);
                            busy = true;
                            continue;
                        }
                        Err(c) => {
                            move_on(slot, taken, dead_word);
                            self.disown(i);
                            return Err(AttachError::Corrupt(c));
                        }
                    }
                    // The recovery may have cleared the counted bit.
                    let now = slot.word.load(Ordering::Acquire);
                    if holder_tag(now) != holder_tag(taken) {
                        self.disown(i);
                        busy = true;
                        continue;
                    }
                    now
                }
                other => return Err(AttachError::State(other)),
            };
            // The slot is ours to take: a new holder, so the sequence moves on.
            let mine = holder_word(
                ENDPOINT_ATTACHING,
                kind,
                self.ns,
                word_seq(from).wrapping_add(1),
                me,
            );
            if slot
                .word
                .compare_exchange(from, mine, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                self.disown(i);
                busy = true;
                continue;
            }
            // Fill it, then say attached.
            write_identity(slot, mine);
            slot.role.store(role, Ordering::Relaxed);
            slot.claim.store(0, Ordering::Relaxed);
            slot.claim_cells.store(0, Ordering::Relaxed);
            slot.generation.fetch_add(1, Ordering::Relaxed);
            let attached = holder_word(ENDPOINT_ATTACHED, kind, self.ns, word_seq(mine), me);
            // SYNC POINT: Release: whoever sees ATTACHED (Acquire) sees the fields above.
            // Only the holder moves its slot on, so this cannot fail unless a peer
            // scribbles over the table; then the slot is not ours.
            if slot
                .word
                .compare_exchange(mine, attached, Ordering::Release, Ordering::Relaxed)
                .is_err()
            {
                self.disown(i);
                busy = true;
                continue;
            }
            self.held.set(attached);
            return Ok(Pass::Attached(i));
        }
        Ok(if busy { Pass::Busy } else { Pass::Full })
    }

    /// Marks our slot `i` as counted in the ring's totals (MPMC), so that a recovery
    /// after our death uncounts us. Called right after the count was raised.
    pub(crate) fn mark_counted(&self, slot: &EndpointSlot) {
        let mine = self.held.get();
        if mine == 0 {
            return;
        }
        let counted = mine | SLOT_COUNTED;
        if slot
            .word
            .compare_exchange(mine, counted, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            self.held.set(counted);
        }
    }

    /// Marks our slot `i` detached and lets it go. Release: everything the endpoint
    /// published before is visible to whoever sees it gone. The word moves only if it is
    /// still the one we installed (a slot that is not ours any more, which only a peer
    /// scribbling over the table makes, is left to its holder).
    pub(crate) fn detach(&self, i: usize, slot: &EndpointSlot) {
        let mine = self.held.replace(0);
        if mine == 0 {
            return;
        }
        // Our claim note is clear by now (every claim clears it once published or
        // released); cleared again for a slot that was ours to the end.
        slot.claim.store(0, Ordering::Relaxed);
        let _ = slot.word.compare_exchange(
            mine,
            holder_word(ENDPOINT_DETACHED, 0, 0, word_seq(mine), 0),
            Ordering::Release,
            Ordering::Relaxed,
        );
        self.disown(i);
    }
}

impl How {
    fn for_segment(seg: &crate::segment::Segment) -> How {
        #[cfg(not(loom))]
        {
            if matches!(seg, crate::segment::Segment::Heap(_)) {
                return How::Local;
            }
            let Some(file) = seg.file_fd() else {
                return How::Pid(None); // SysV: no file
            };
            match ofd::reopen(file) {
                Ok(fd) => {
                    ofd::drop_in_forked_children(std::os::fd::AsFd::as_fd(&fd));
                    How::Ofd(fd)
                }
                // No /proc to reopen through, a memfd of another user, out of
                // descriptors: this endpoint tells its life by its pid (its slot word
                // says so), and reads the locks of the others through a copy of the
                // segment's own descriptor (which holds no lock).
                Err(_) => How::Pid(file.try_clone_to_owned().ok()),
            }
        }
        #[cfg(loom)]
        {
            let _ = seg;
            How::Local
        }
    }
}

/// Moves slot `slot`, which we hold with a word whose [`holder_tag`] is `mine`'s (the
/// counted bit may have changed since), on to `next(current word)`. A
/// compare-exchange from the current word: only the holder moves a slot on, so it
/// fails only if a peer scribbled over the table (then the slot is left alone).
fn move_on(slot: &EndpointSlot, mine: u64, next: impl Fn(u64) -> u64) {
    let now = slot.word.load(Ordering::Acquire);
    if holder_tag(now) == holder_tag(mine) {
        // SYNC POINT: Release: whoever sees the slot's next state (Acquire) sees what
        // we published while we held it.
        let _ = slot
            .word
            .compare_exchange(now, next(now), Ordering::Release, Ordering::Relaxed);
    }
}

/// In a recovery: clears the counted bit of slot `slot`, which the caller holds
/// (`ENDPOINT_RECOVERING`). `true`: it was set and is now clear, so the caller must
/// uncount the dead endpoint; clearing first means a recoverer killed in between
/// leaves the count one too high (a peer waits for an endpoint that is gone, until the
/// next one leaves) rather than one too low (a live endpoint taken for gone).
pub(crate) fn take_count(slot: &EndpointSlot) -> bool {
    let now = slot.word.load(Ordering::Acquire);
    word_state(now) == ENDPOINT_RECOVERING
        && now & SLOT_COUNTED != 0
        && slot
            .word
            .compare_exchange(
                now,
                now & !SLOT_COUNTED,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
}

/// The word that says the endpoint `taken` was recovering is proven dead and not
/// (wholly) recovered: no holder, the counted bit kept.
fn dead_word(taken: u64) -> u64 {
    holder_word(ENDPOINT_DEAD, 0, 0, word_seq(taken), 0) | (taken & SLOT_COUNTED)
}

/// Writes who holds `slot` with `word` (just installed by us, with our pid and pid
/// namespace): our start time, then the tag that makes it valid.
fn write_identity(slot: &EndpointSlot, word: u64) {
    // SYNC POINT: Release stores, paired with the Acquire loads of `pid_holder_dead`:
    // a judge that reads the tag reads the start time written before it, and one that
    // reads a later holder's start time also sees that holder's word.
    slot.start_time.store(
        crate::sys::procfs::own_start_time().unwrap_or(0),
        Ordering::Release,
    );
    slot.holder_tag.store(holder_tag(word), Ordering::Release);
}

/// Whether the `HOLDER_PID` holder of a slot whose word read `word` is proven dead,
/// judged from pid namespace `my_ns` (an index, as slot words name them): its pid
/// namespace is ours, and there its pid names no process, a zombie, or one that
/// started at another time than the one it wrote (if it did: a holder killed before it
/// wrote its start time is judged by its pid alone). Anything unreadable is alive.
fn pid_holder_dead(slot: &EndpointSlot, word: u64, my_ns: u32) -> bool {
    let ns = word_ns(word);
    if ns == 0 || ns != my_ns {
        return false; // a pid of another (or an unknown) namespace names nothing here
    }
    let tag = holder_tag(word);
    // SYNC POINT: the Acquire loads pair with the Release stores of `write_identity`: a
    // start time read under a matching tag is the holder's own, and one a later holder
    // wrote shows its word too (checked after).
    let start = if slot.holder_tag.load(Ordering::Acquire) == tag {
        let start = slot.start_time.load(Ordering::Acquire);
        if slot.holder_tag.load(Ordering::Acquire) != tag
            || holder_tag(slot.word.load(Ordering::Acquire)) != tag
        {
            return false; // another holder since: what we read may be its
        }
        start
    } else {
        0 // not written yet: the pid alone tells
    };
    process_gone(word_pid(word), start)
}

/// The index (1-based, as slot words name it) of pid namespace `ns` in a ring's table
/// `table`, adding it in the first free entry if `add` and it is not there; 0 if `ns`
/// is unknown (0), or not there and the table is full (or `add` is false). Entries are
/// never cleared and each is taken by a compare-exchange from 0, so every process of
/// one namespace finds the same index.
pub(crate) fn ns_index(table: &[AtomicU64], ns: u64, add: bool) -> u32 {
    if ns == 0 {
        return 0;
    }
    for (i, entry) in table.iter().enumerate() {
        let mut seen = entry.load(Ordering::Acquire);
        if seen == 0 && add {
            seen = match entry.compare_exchange(0, ns, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => ns,
                Err(now) => now,
            };
        }
        if seen == ns {
            return i as u32 + 1;
        }
        if seen == 0 {
            return 0;
        }
    }
    0
}

/// For inspection, which reads a copy of the header: whether the endpoint in slot
/// `slot` (a copy) is alive, judged the way its word says. `lock`: whether another
/// description holds the slot's lock, where the locks of the segment file could be
/// read. Anything that cannot be judged is alive.
pub(crate) fn slot_alive(header: &Header, slot: &EndpointSlot, lock: Option<bool>) -> bool {
    let word = slot.word.load(Ordering::Acquire);
    match word_state(word) {
        ENDPOINT_DEAD => return false,
        s if !occupied(s) => return false,
        _ => {}
    }
    match word_holder(word) {
        HOLDER_LOCK => lock.unwrap_or(true),
        HOLDER_PID => {
            let mine = ns_index(&header.pid_namespaces, own_pid_ns(), false);
            !pid_holder_dead(slot, word, mine)
        }
        _ => true,
    }
}

use crate::sys::procfs::{own_pid_namespace as own_pid_ns, process_gone};

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

    /// A heap header (its slots start vacant), kept alive by the returned segment.
    fn heap_header() -> crate::segment::heap::HeapSegment {
        let params = crate::header::RingParams::new(crate::header::KIND_SPSC, 4096, 1 << 20, 0)
            .expect("a valid capacity");
        crate::segment::heap::HeapSegment::new(&params).expect("a small heap segment")
    }

    /// An endpoint of the ring of `seg` that tells its life by its pid (as on SysV).
    fn pid_liveness(seg: &crate::segment::heap::HeapSegment) -> Liveness {
        Liveness {
            how: How::Pid(None),
            held: std::cell::Cell::new(0),
            pid: std::process::id(),
            ns: ns_index(&seg.header().pid_namespaces, own_pid_ns(), true),
            #[cfg(loom)]
            killed: std::cell::Cell::new(false),
        }
    }

    /// A pid that names no process: a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        let child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        let mut child = child;
        child.wait().expect("wait");
        pid
    }

    /// Puts a dead `HOLDER_PID` endpoint of our pid namespace (attached, with its
    /// identity written) in `slot` of the ring of `seg`.
    fn plant_dead(seg: &crate::segment::heap::HeapSegment, slot: &EndpointSlot) {
        let ns = ns_index(&seg.header().pid_namespaces, own_pid_ns(), true);
        let word = holder_word(ENDPOINT_ATTACHED, HOLDER_PID, ns, 7, dead_pid());
        slot.word.store(word, Ordering::Release);
        write_identity(slot, word);
        // A start time no live process here has (it names no process anyway).
        slot.start_time.store(1, Ordering::Release);
    }

    /// A recoverer (alive: this process) is judged by its own identity while it
    /// recovers, so a second survivor never takes the slot over mid-recovery. (Before:
    /// a recovering slot had the recoverer's pid and the dead endpoint's start time,
    /// so every live recoverer looked dead.)
    #[test]
    fn a_live_recoverer_is_not_taken_for_dead() {
        let seg = heap_header();
        let slot = &seg.header().endpoints[3];
        plant_dead(&seg, slot);
        let (first, second) = (pid_liveness(&seg), pid_liveness(&seg));
        assert!(second.proven_dead(3, slot), "the planted endpoint is dead");
        let mut looked = false;
        let recovered = first
            .reap(3, slot, &mut |_, _| {
                // Mid-recovery: the slot is the first survivor's, which lives.
                assert_eq!(
                    word_state(slot.word.load(Ordering::Acquire)),
                    ENDPOINT_RECOVERING
                );
                assert!(
                    !second.proven_dead(3, slot),
                    "a live recoverer taken for dead"
                );
                assert_eq!(second.take_dead(3, slot), None, "taken over mid-recovery");
                looked = true;
                Ok(Recovered::Done)
            })
            .unwrap();
        assert!(recovered && looked);
        assert_eq!(
            word_state(slot.word.load(Ordering::Acquire)),
            ENDPOINT_DETACHED
        );
    }

    /// A recovery that cannot finish leaves the slot `ENDPOINT_DEAD` (not the dead
    /// endpoint's word back, now that the identity in the slot is the recoverer's),
    /// which the next survivor takes over without proving anything again, and the
    /// counted bit goes with it until a recovery uncounts it once.
    #[test]
    fn an_unfinished_recovery_leaves_the_slot_dead_for_the_next_survivor() {
        let seg = heap_header();
        let slot = &seg.header().endpoints[2];
        plant_dead(&seg, slot);
        slot.word
            .fetch_or(crate::header::SLOT_COUNTED, Ordering::AcqRel);
        let (first, second) = (pid_liveness(&seg), pid_liveness(&seg));
        assert_eq!(
            first.reap(2, slot, &mut |_, _| Ok(Recovered::NotYet)),
            Ok(false)
        );
        let word = slot.word.load(Ordering::Acquire);
        assert_eq!(word_state(word), ENDPOINT_DEAD);
        assert_ne!(
            word & crate::header::SLOT_COUNTED,
            0,
            "still to be uncounted"
        );
        let mut uncounted = 0;
        let done = second
            .reap(2, slot, &mut |_, was| {
                assert_ne!(was & crate::header::SLOT_COUNTED, 0);
                if take_count(slot) {
                    uncounted += 1;
                }
                // Done again (a recoverer that died after uncounting): not twice.
                assert!(!take_count(slot));
                Ok(Recovered::Done)
            })
            .unwrap();
        assert!(done);
        assert_eq!(uncounted, 1);
        assert_eq!(
            word_state(slot.word.load(Ordering::Acquire)),
            ENDPOINT_DETACHED
        );
    }

    /// An endpoint's detach moves only the slot word it installed: a slot someone else
    /// holds now is left alone (before: a plain store of DETACHED forced it).
    #[test]
    fn detach_leaves_a_slot_it_no_longer_holds_alone() {
        let seg = heap_header();
        let slots = &seg.header().endpoints[..2];
        let me = pid_liveness(&seg);
        let i = me
            .attach(slots, 0..1, crate::header::ROLE_PRODUCER, &mut |_, _| {
                Ok(Recovered::Done)
            })
            .unwrap()
            .expect("a vacant slot");
        assert_eq!(
            word_state(slots[i].word.load(Ordering::Acquire)),
            ENDPOINT_ATTACHED
        );
        // Scribbled over: another endpoint attaching there now.
        let other = holder_word(ENDPOINT_ATTACHING, HOLDER_PID, 1, 99, 4242);
        slots[i].word.store(other, Ordering::Release);
        me.detach(i, &slots[i]);
        assert_eq!(slots[i].word.load(Ordering::Acquire), other);
    }

    /// Two lives of one pid in one slot differ: a word judged for the first never
    /// matches the second's (the holder sequence moves on at every attach).
    #[test]
    fn two_lives_of_one_pid_in_one_slot_differ() {
        let seg = heap_header();
        let slots = &seg.header().endpoints[..1];
        let me = pid_liveness(&seg);
        let attach = || {
            me.attach(slots, 0..1, crate::header::ROLE_PRODUCER, &mut |_, _| {
                Ok(Recovered::Done)
            })
            .unwrap()
            .expect("a free slot")
        };
        let i = attach();
        let first = slots[i].word.load(Ordering::Acquire);
        me.detach(i, &slots[i]);
        let j = attach();
        let second = slots[j].word.load(Ordering::Acquire);
        assert_eq!(
            (word_pid(first), word_state(first)),
            (word_pid(second), word_state(second))
        );
        assert_ne!(first, second);
        assert_ne!(holder_tag(first), holder_tag(second));
    }

    /// A pid of another pid namespace (or of none the table could name) is alive: it
    /// cannot be judged here. A holder killed before it wrote its start time is still
    /// judged, by its pid (before: such a slot was held for ever).
    #[test]
    fn what_cannot_be_judged_is_alive_and_a_half_written_holder_is_judged() {
        let seg = heap_header();
        let slot = &seg.header().endpoints[5];
        let judge = pid_liveness(&seg);
        assert_ne!(judge.ns, 0, "this test needs /proc");
        // The planted endpoint, with its identity, is dead.
        plant_dead(&seg, slot);
        assert!(judge.proven_dead(5, slot));
        // Another namespace, or an unknown one.
        for ns in [judge.ns + 1, 0] {
            let w = slot.word.load(Ordering::Acquire);
            let other = holder_word(word_state(w), HOLDER_PID, ns, word_seq(w), word_pid(w));
            slot.word.store(other, Ordering::Release);
            slot.holder_tag.store(holder_tag(other), Ordering::Release);
            assert!(!judge.proven_dead(5, slot), "namespace {ns}");
        }
        // Start time not written (the tag is a previous holder's): the pid tells.
        plant_dead(&seg, slot);
        slot.holder_tag.store(0, Ordering::Release);
        assert!(judge.proven_dead(5, slot));
        // ... and a live pid is alive, whatever start time the slot holds then.
        let me = holder_word(
            ENDPOINT_RECOVERING,
            HOLDER_PID,
            judge.ns,
            9,
            std::process::id(),
        );
        slot.word.store(me, Ordering::Release);
        assert!(!judge.proven_dead(5, slot));
    }

    /// Every process of one pid namespace finds the same index; a full table names
    /// no more (0: unknown).
    #[test]
    fn namespace_indices() {
        let seg = heap_header();
        let table = &seg.header().pid_namespaces;
        assert_eq!(ns_index(table, 0, true), 0);
        assert_eq!(ns_index(table, 77, false), 0);
        assert_eq!(ns_index(table, 77, true), 1);
        assert_eq!(ns_index(table, 78, true), 2);
        assert_eq!(ns_index(table, 77, false), 1);
        for ns in 100..100 + crate::header::PID_NAMESPACES as u64 - 2 {
            assert_ne!(ns_index(table, ns, true), 0);
        }
        assert_eq!(ns_index(table, 5000, true), 0, "full");
        assert_eq!(ns_index(table, 78, true), 2);
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
