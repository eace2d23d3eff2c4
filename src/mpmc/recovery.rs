//! What a dead MPMC endpoint leaves behind, and how a live one cleans it up.
//!
//! Called by `liveness.rs` with the dead endpoint's slot taken over (one recoverer at
//! a time), and only once the endpoint is proven dead, never on a timeout.
//!
//! # Claim notes
//!
//! A claim is one compare-exchange of a cursor, which says nothing about who made
//! it. So before it, an endpoint writes a **claim note** in its own endpoint slot:
//! the position it claims at (and, for a producer, how many padding and record cells),
//! then, once the compare-exchange succeeded, the same note marked *confirmed*; it
//! clears the note when it has published (producer) or released (consumer) the cells,
//! and when it gives up without claiming. The compare-exchange is a Release and the
//! recoverer reads the cursor with an Acquire read-modify-write, so a recoverer that
//! sees the cursor past the noted position sees the note.
//!
//! For a dead endpoint D whose note says position `p`:
//!
//! - the cursor not past `p`: D's claim never happened (and never will);
//! - a confirmed note: the cells are D's;
//! - an unconfirmed note: D died between writing the note and confirming it, either
//!   before its compare-exchange, or after it failed, or after it succeeded. The
//!   winner of position `p` wrote a note for `p` before its compare-exchange and
//!   keeps it until it has published or released. If a live endpoint's unconfirmed
//!   note says `p`, it is undecidable until that endpoint moves on:
//!   [`Recovered::NotYet`], retried at the next check; likewise if an endpoint whose
//!   note said `p` left while we looked (its note was stale). If a confirmed one
//!   does, the claim is that endpoint's. If no other note says `p`, the winner may
//!   also have published (or released) and cleared its note: so the first cell
//!   decides. For a producer, D published nothing, so the claim was D's only if the
//!   first cell still reads "free for `p`" (or holds D's first padding, from a
//!   recoverer before us); for a consumer, only if it still reads "published". If
//!   only dead endpoints' unconfirmed notes say `p`, one of them won it; for
//!   producers, their notes must then agree on the cells (else the ring is reported
//!   corrupt: two producers died within the same few instructions claiming
//!   different sizes at one position, which cannot be told apart).
//!
//! Then:
//!
//! - **producer**: the claimed cells whose first stamp still says "free for this
//!   position" (unpublished) are published as padding, which consumers skip; a
//!   writer-stream slot it held is freed, so the consumer reading its message finds
//!   the message cut (`Truncated`, see `Consumer::stream_orphaned`);
//! - **consumer**: a claimed record whose first stamp still says "published" is
//!   released (its message is lost: delivery is at most once); a reader-stream slot
//!   it held is freed, and the consumers after it skip the rest of its message.
//!
//! Each step checks the stamp it would change, so doing it twice (a recoverer that
//! died halfway, taken over by another) changes nothing more.

use super::{cursor, holder_of, pos_of, View, MAX_POSITION};
use crate::error::Corruption;
use crate::frame::{decode_cell, encode_cell, CellRecord, FLAG_PAD};
use crate::header::{
    CLAIM_CONFIRMED, CLAIM_POS_MASK, CLAIM_VALID, ROLE_CONSUMER, ROLE_PRODUCER, SLOT_COUNTED,
};
use crate::liveness::{occupied, Recovered};
use crate::sync::{AtomicU64, Ordering};
use crate::wait::EventCount;

/// Recovers what the dead endpoint of slot `i` (whose state word was `was`) left.
pub(super) fn recover(v: &View, i: usize, was: u64) -> Result<Recovered, Corruption> {
    let h = v.header();
    let role = h.endpoints[i].role.load(Ordering::Relaxed);
    let outcome = match role {
        ROLE_PRODUCER => producer_claim(v, i)?,
        ROLE_CONSUMER => consumer_claim(v, i)?,
        // Died attaching, before it wrote its role: it claimed nothing.
        _ => Recovered::Done,
    };
    if outcome == Recovered::NotYet {
        return Ok(outcome);
    }
    match role {
        ROLE_PRODUCER => free_holder(&h.tail, i as u64 + 1, v.writer_free()),
        ROLE_CONSUMER => free_holder(&h.head, i as u64 + 1, v.reader_free()),
        _ => {}
    }
    if was & SLOT_COUNTED != 0
        && (role == ROLE_PRODUCER || role == ROLE_CONSUMER)
        && crate::liveness::take_count(&h.endpoints[i])
    {
        // It was counted, and no recoverer before us uncounted it (the bit is cleared
        // first: see `take_count`); saturating, as in `View::drop`.
        let _ = v
            .role_count(role)
            .fetch_update(Ordering::Release, Ordering::Relaxed, |c| {
                (c & 0xffff_ffff != 0).then(|| c - 1)
            });
    }
    // Everyone re-checks: consumers for padding or a cut message, producers for
    // released cells, slot waiters for a freed slot, all for "every peer gone".
    v.data_ready().notify_all();
    v.space_ready().notify_all();
    v.writer_free().notify_all();
    v.reader_free().notify_all();
    Ok(Recovered::Done)
}

/// The latest value of `word`, read with an Acquire read-modify-write (a plain load
/// may return an older value; this one also synchronises with the Release CAS of the
/// claim it shows, and so makes its note visible).
fn latest_acquire(word: &AtomicU64) -> u64 {
    word.fetch_add(0, Ordering::Acquire)
}

/// Whose claim at position `p` it is, by the notes of the endpoints other than `i`
/// of `role`.
enum Owner {
    /// `i`'s (or, equally, of a dead endpoint whose note is the same).
    Dead,
    /// Another endpoint confirmed it.
    Other,
    /// A live endpoint's unconfirmed note says `p` too, or an endpoint whose note said
    /// `p` has left since (its note, read before, may be stale): look again later.
    Undecided,
}

fn owner(v: &View, i: usize, p: u64, role: u32, cells: Option<u64>) -> Result<Owner, Corruption> {
    let h = v.header();
    for (j, s) in h.endpoints[..v.params.max_endpoints as usize]
        .iter()
        .enumerate()
    {
        // Our own slot: we recover only between our own claims, so our note says
        // nothing here (and our own lock would not show as held to us).
        if j == i || j == v.slot || !occupied(s.state()) || s.role.load(Ordering::Relaxed) != role {
            continue;
        }
        let note = s.claim.load(Ordering::Acquire);
        if note & CLAIM_VALID == 0 || note & CLAIM_POS_MASK != p {
            continue;
        }
        if note & CLAIM_CONFIRMED != 0 {
            return Ok(Owner::Other);
        }
        if !v.liveness.proven_dead(j, s) {
            // Alive: it may still win or lose `p`. Or gone since we read its state: a
            // live endpoint that has published (or released) and detached, or a dead
            // one recovered by another; either way its note is stale, and treating it
            // as a dead one's would decide on it. The next look skips the slot.
            return Ok(Owner::Undecided);
        }
        if let Some(cells) = cells {
            if s.claim_cells.load(Ordering::Relaxed) != cells {
                return Err(Corruption {
                    what: "claim notes (two producers died claiming different sizes at one \
                           position)",
                    value: p,
                    position: p,
                });
            }
        }
    }
    Ok(Owner::Dead)
}

/// A dead producer's claimed, unpublished cells become padding.
fn producer_claim(v: &View, i: usize) -> Result<Recovered, Corruption> {
    let s = &v.header().endpoints[i];
    let note = s.claim.load(Ordering::Acquire);
    if note & CLAIM_VALID == 0 {
        return Ok(Recovered::Done);
    }
    let p = note & CLAIM_POS_MASK;
    let cells = s.claim_cells.load(Ordering::Relaxed);
    let (pad, k) = (cells >> 32, cells & 0xffff_ffff);
    if p > MAX_POSITION || k == 0 || pad + k > v.n || (pad > 0 && (p + pad) & (v.n - 1) != 0) {
        return Err(Corruption {
            what: "producer's claim note (cells)",
            value: cells,
            position: p,
        });
    }
    if pos_of(latest_acquire(&v.header().tail)) <= p {
        return Ok(Recovered::Done); // its claim never happened
    }
    if note & CLAIM_CONFIRMED == 0 {
        match owner(v, i, p, ROLE_PRODUCER, Some(cells))? {
            Owner::Dead => {}
            Owner::Other => return Ok(Recovered::Done),
            Owner::Undecided => return Ok(Recovered::NotYet),
        }
        // No note says `p` any more, which does not make the claim ours: the winner
        // clears its note once it has published. A dead producer whose note is
        // unconfirmed published nothing, so if it won `p`, the first cell still reads
        // "free for `p`", or, if a recoverer before us padded it, holds our first
        // padding. Anything else there is the winner's record (or it was, and is
        // released): the claim was not ours. (Padding `p + pad` on the strength of
        // the missing note would publish cells beyond `tail`, or over another
        // producer's claim, when the winner needed no padding and we did.)
        let first = v.table.stamp(p).load(Ordering::Acquire);
        let ours = first == p
            || (first == p + 1
                && v.table.record(p).load(Ordering::Relaxed)
                    == encode_cell(if pad > 0 { pad } else { k } as u32, FLAG_PAD));
        if !ours {
            return Ok(Recovered::Done);
        }
    }
    // The record's cells first, the padding before them last: so while the first
    // cell still reads "free for `p`", a recoverer that takes over from one that died
    // halfway knows the claim for ours (above) and finishes it. (The other order
    // could let consumers release the padding before it is taken over, and leave the
    // record's cells unpublished for ever.)
    pad_unpublished(v, p + pad, k);
    if pad > 0 {
        pad_unpublished(v, p, pad);
    }
    Ok(Recovered::Done)
}

/// Publishes `cells` cells at `q` as padding if the first still reads "free for `q`"
/// (not published). A compare-exchange, so it is published once; done again after a
/// recoverer died halfway, it writes the same padding word into a cell still free.
/// The record word is written before the stamp's compare-exchange, so this relies on
/// one recoverer at a time (`liveness.rs`: the slot is taken over by one
/// compare-exchange, and a live recoverer is never taken for dead): two at once could
/// write the padding word into a cell the next lap has reused.
fn pad_unpublished(v: &View, q: u64, cells: u64) {
    let stamp = v.table.stamp(q);
    if stamp.load(Ordering::Acquire) != q {
        return;
    }
    v.table
        .record(q)
        .store(encode_cell(cells as u32, FLAG_PAD), Ordering::Relaxed);
    // SYNC POINT: Release pairs with the consumer's Acquire load of the stamp.
    let _ = stamp.compare_exchange(q, q + 1, Ordering::Release, Ordering::Relaxed);
}

/// A dead consumer's claimed, unreleased record is released.
fn consumer_claim(v: &View, i: usize) -> Result<Recovered, Corruption> {
    let s = &v.header().endpoints[i];
    let note = s.claim.load(Ordering::Acquire);
    if note & CLAIM_VALID == 0 {
        return Ok(Recovered::Done);
    }
    let p = note & CLAIM_POS_MASK;
    if p > MAX_POSITION {
        return Err(Corruption {
            what: "consumer's claim note",
            value: note,
            position: p,
        });
    }
    if pos_of(latest_acquire(&v.header().head)) <= p {
        return Ok(Recovered::Done); // its claim never happened
    }
    // Claimed and not (wholly) released: the first stamp, released last, still says
    // "published".
    if v.table.stamp(p).load(Ordering::Acquire) != p + 1 {
        return Ok(Recovered::Done);
    }
    if note & CLAIM_CONFIRMED == 0 {
        match owner(v, i, p, ROLE_CONSUMER, None)? {
            Owner::Dead => {}
            Owner::Other => return Ok(Recovered::Done),
            Owner::Undecided => return Ok(Recovered::NotYet),
        }
    }
    let word = v.table.record(p).load(Ordering::Relaxed);
    let cells = match decode_cell(word, p & (v.n - 1), v.n, v.cell_shift, v.params.max_record) {
        Ok(CellRecord::Pad { cells }) | Ok(CellRecord::Data { cells, .. }) => cells,
        Err(mut c) => {
            c.position = p;
            return Err(c);
        }
    };
    release_published(v, p, cells);
    Ok(Recovered::Done)
}

/// Releases cells `p..p + cells` of a dead consumer's claim, each only if it still
/// reads what this lap left there (a compare-exchange per cell, the first cell last as
/// in `View::release_cells`): the first cell "published" (`p + 1`), the inner ones
/// the stamp a producer leaves on them (their own position: only the first cell's
/// stamp is published). A recovery done again, after a recoverer died halfway, never
/// turns a cell the next lap has reused back to free.
fn release_published(v: &View, p: u64, cells: u64) {
    for q in (p..p + cells).rev() {
        let this_lap = if q == p { p + 1 } else { q };
        // SYNC POINT: Release pairs with the producer's Acquire load of the stamp in
        // `try_claim`, as in `View::release_cells`.
        let _ = v.table.stamp(q).compare_exchange(
            this_lap,
            q + v.n,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }
}

/// Clears the stream slot in `word` if `mark` holds it, and wakes its waiters.
fn free_holder(word: &AtomicU64, mark: u64, waiters: EventCount<'_>) {
    let mut w = word.load(Ordering::Relaxed);
    while holder_of(w) == mark {
        match word.compare_exchange_weak(
            w,
            cursor(pos_of(w), 0),
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                waiters.notify_all();
                return;
            }
            Err(now) => w = now,
        }
    }
}

/// Frees a stream slot whose holder's endpoint slot holds no endpoint (alive or to be
/// recovered): a holder frees its stream slots before it detaches, and a recoverer
/// before it marks the slot detached, so only a scribbled cursor gets here.
pub(super) fn free_orphaned_stream_slots(v: &View) {
    let h = v.header();
    for (word, waiters) in [(&h.tail, v.writer_free()), (&h.head, v.reader_free())] {
        let mark = holder_of(word.load(Ordering::Acquire));
        if mark == 0 || mark > u64::from(v.params.max_endpoints) {
            continue; // free, or corrupt (the claims report that)
        }
        if !occupied(h.endpoints[mark as usize - 1].state()) {
            free_holder(word, mark, waiters);
            v.data_ready().notify_all();
        }
    }
}
