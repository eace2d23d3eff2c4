#![cfg(loom)]
//! Orphans of the MPMC ring under loom: a producer or a consumer that stops for ever
//! after any step of its protocol, and the recovery by a survivor that follows.
//!
//! # How an endpoint dies here
//!
//! A process can be killed between any two instructions; what matters to the others is
//! which of its shared writes happened. `loom_internals::mpmc_stop_after_*(&e, k)`
//! stops endpoint `e` right after the `k`-th step of its protocol (each store or
//! compare-exchange of a claim note, a cursor, a record word, a stamp; the names are
//! those of `View::step` in `src/mpmc/mod.rs`). The stop unwinds out of the endpoint's
//! call to `run_until_stop`, which returns the name of the last step; nothing of the
//! endpoint touches the ring afterwards (its grants and streams, dropped while the
//! stop unwinds, find it stopped). `mpmc_die` then ends it as a killed process: no
//! `Drop` code, its slot still attached with its claim note and the stream slots it
//! held. Under loom nobody is ever proven dead (`Liveness::Local`), so the model hands
//! the dead slot to the survivors (a Release store, an Acquire load: the kernel's lock,
//! taken by the recoverer after the process died, orders the same way), and a
//! survivor that finds itself waiting runs `mpmc_recover_by_*`: the real take-over,
//! `recovery::recover` and release of `liveness.rs`, minus the proof of death. It may
//! say "not yet" (a live endpoint's unconfirmed claim note says the same position):
//! the survivor yields and tries again.
//!
//! Each model loops `k` over every step of the dying endpoint's protocol (one loom
//! model per `k`), and checks: nothing torn, nothing delivered twice, every message
//! a live producer sent (and the dead one's, if it had published it) delivered
//! exactly once, the dead producer's unpublished message never delivered and its cut
//! stream reported `Truncated`, and every survivor finishes (loom fails a model whose
//! threads all wait for ever). Each test also checks that its loop stopped the
//! endpoint at every step it names, so that a renamed or moved step cannot leave a
//! gap silently.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::sync::Mutex as StdMutex;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmlane::loom_internals::{
    mpmc_die, mpmc_die_consumer, mpmc_recover_by_consumer, mpmc_recover_by_producer,
    mpmc_stop_after_consumer, mpmc_stop_after_producer, run_until_stop,
};
use shmlane::{mpmc, Corruption, RecvError, RingOptions, TryRecvError, TrySendError, Wait};
use shmlane_loom_tests::{check, message};

/// A model explored with the preemption bound of `LOOM_MAX_PREEMPTIONS`, with loom's
/// limit of branches per execution raised for threads that wait by polling.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut b = loom::model::Builder::new();
    b.max_branches = 100_000;
    b.check(f);
}

/// A model explored with at most one preemption per execution, whatever
/// `LOOM_MAX_PREEMPTIONS` says: for the writers that die after publishing a fragment
/// only (`writer_dies_after_its_first_fragment`, `writer_dies_in_its_second_fragment`),
/// three threads of which two poll (the survivor producer must not block on the dead
/// one's slot before it recovers it), which at a bound of 2 took more than 2 and 3
/// minutes each on two cores (measured for issue 18), past what the loom step of
/// `.ci/run` can afford. One preemption still interrupts any endpoint once at any
/// step, on top of every switch where a thread yields or blocks; and the death
/// itself, placed by the model, is the interruption that matters here.
fn model_one_preemption<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut b = loom::model::Builder::new();
    b.max_branches = 100_000;
    b.preemption_bound = Some(1);
    b.check(f);
}

/// A ring of `cells` cells of 16 bytes (records up to `cells * 8` bytes), its endpoints
/// parking (under loom: a yield loop on the event count's epoch).
fn ring(cells: usize) -> (mpmc::Producer, mpmc::Consumer) {
    let opts = RingOptions::new(cells * 16).cell_size(16);
    let (mut tx, mut rx) = mpmc::channel(&opts).unwrap();
    tx.set_wait(Wait::Park);
    rx.set_wait(Wait::Park);
    (tx, rx)
}

/// What became of an endpoint's thread, as its survivors learn it.
struct Fate(AtomicUsize);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Is {
    Running,
    Finished,
    Dead(usize),
}

impl Fate {
    fn new() -> Arc<Fate> {
        Arc::new(Fate(AtomicUsize::new(0)))
    }
    fn finished(&self) {
        self.0.store(1, Ordering::Release);
    }
    /// Release, paired with `is`'s Acquire: the recoverer sees everything the endpoint
    /// did before it died, as it would after taking the dead process's lock.
    fn died(&self, slot: usize) {
        self.0.store(slot + 2, Ordering::Release);
    }
    fn is(&self) -> Is {
        match self.0.load(Ordering::Acquire) {
            0 => Is::Running,
            1 => Is::Finished,
            s => Is::Dead(s - 2),
        }
    }
}

/// Recovers the endpoint whose fate is `fate` if it died, through `recover` (one of the
/// `mpmc_recover_by_*` of a survivor); `true` once nothing is left to recover of it.
/// Counts the "not yet" answers in `not_yet`.
fn recover_if_dead(
    fate: &Fate,
    not_yet: &StdAtomicUsize,
    recover: impl Fn(usize) -> Result<Option<bool>, Corruption>,
) -> bool {
    match fate.is() {
        Is::Running => false,
        Is::Finished => true,
        Is::Dead(slot) => match recover(slot) {
            Ok(None | Some(true)) => true,
            Ok(Some(false)) => {
                not_yet.fetch_add(1, StdOrdering::Relaxed);
                false
            }
            Err(c) => panic!("recovering slot {slot}: {c:?}"),
        },
    }
}

/// The steps at which the dying endpoint stopped, over all the models of a test.
type Stops = StdMutex<BTreeSet<&'static str>>;

fn assert_stopped_at(stops: &Stops, want: &[&str]) {
    let stops = stops.lock().unwrap();
    for w in want {
        assert!(
            stops.contains(w),
            "never stopped after {w:?}; stopped after {stops:?}"
        );
    }
}

// ---------------------------------------------------------------------------------
// A producer dies
// ---------------------------------------------------------------------------------

/// The steps of a producer's `send` of a whole one-cell message, in order.
const PRODUCER_STEPS: [&str; 7] = [
    "claim note written",
    "claim CAS done",
    "claim note confirmed",
    "payload written",
    "record word written",
    "stamp published",
    "claim note cleared",
];

/// Producer 0 sends one message and stops after its `k`-th step; producer 1 sends one
/// message meanwhile. The consumer waits for producer 0 to end (a join: its death, or
/// its return), recovers it if it died, racing producer 1's claim and publish (and
/// retrying while producer 1's unconfirmed note says the dead one's position), and
/// receives what was published. Then producer 2 sends a message and leaves: it must
/// arrive, and then `Disconnected`.
///
/// The consumer joins rather than polls the ring between recovery attempts: a polling
/// loop multiplies the schedules loom explores by every poll (each a handful of loads
/// that may each read an older value), which made the models of this test take
/// far longer than `.ci/run` can afford, on a ring whose state the polls do not change.
///
/// With `wrap`, three one-cell messages go through first (before the threads start,
/// so without branching), and producer 0's message takes two cells: claimed first, at
/// cell 3 of 4, it does not fit before the end, and its claim takes the padding cell
/// too (the claim note says both).
fn producer_dies_after(
    k: u32,
    wrap: bool,
    stops: &'static Stops,
    not_yet: &'static StdAtomicUsize,
) {
    model(move || {
        let (mut tx0, mut rx) = ring(4);
        if wrap {
            let mut buf = Vec::new();
            for seq in 0..3 {
                tx0.send(&message(9, seq, 8)).unwrap();
                rx.recv(&mut buf).unwrap();
            }
        }
        let len = if wrap { 20 } else { 12 };
        let tx1 = tx0.try_clone().unwrap();
        let mut tx2 = tx0.try_clone().unwrap();
        let p0 = thread::spawn(move || {
            let mut tx = tx0;
            mpmc_stop_after_producer(&tx, k);
            match run_until_stop(|| tx.send(&message(0, 0, len))) {
                Ok(sent) => {
                    sent.unwrap();
                    drop(tx);
                    Ok(())
                }
                Err(step) => Err((step, mpmc_die(tx))),
            }
        });
        let p1 = thread::spawn(move || {
            let mut tx = tx1;
            tx.send(&message(1, 0, 10)).unwrap();
        });
        let stopped = p0.join().unwrap();
        if let Err((_, slot)) = stopped {
            loop {
                match mpmc_recover_by_consumer(&rx, slot) {
                    Ok(Some(true)) => break,
                    Ok(Some(false)) => {
                        not_yet.fetch_add(1, StdOrdering::Relaxed);
                        thread::yield_now();
                    }
                    other => panic!("recovering producer 0: {other:?}"),
                }
            }
        }
        // Published if it got past its stamp's store: then it is delivered, else never.
        let stopped = stopped.err().map(|(step, _)| step);
        let published = match stopped {
            None => true,
            Some(step) => {
                stops.lock().unwrap().insert(step);
                matches!(step, "stamp published" | "claim note cleared")
            }
        };
        let mut want = vec![(1, 0)];
        if published {
            want.insert(0, (0, 0));
        }
        let mut got = Vec::new();
        let mut buf = Vec::new();
        for _ in 0..want.len() {
            rx.recv(&mut buf).unwrap();
            got.push(check(&buf));
        }
        p1.join().unwrap();
        // The ring goes on where the survivors left it: a recovery that published
        // cells nobody claimed (beyond `tail`) would fail this send, or lose it.
        tx2.send(&message(2, 0, 6)).unwrap();
        drop(tx2);
        rx.recv(&mut buf).unwrap();
        assert_eq!(check(&buf), (2, 0));
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        got.sort_unstable();
        assert_eq!(got, want, "producer 0 stopped after {stopped:?}");
    });
}

/// A producer that stops for ever after each step of its `send`, beside a live
/// producer: the consumer gets the live producer's message, the dead one's if and only
/// if it was published, each once, and then `Disconnected` (after recovering the dead
/// producer: its unpublished claim becomes padding, its slot detached). One extra `k`
/// covers the send that had to retry its claim (producer 1 won the position first),
/// which takes two more steps.
#[test]
fn producer_dies_after_each_step() {
    static STOPS: Stops = StdMutex::new(BTreeSet::new());
    static NOT_YET: StdAtomicUsize = StdAtomicUsize::new(0);
    for k in 1..=PRODUCER_STEPS.len() as u32 + 2 {
        producer_dies_after(k, false, &STOPS, &NOT_YET);
    }
    let mut want = PRODUCER_STEPS.to_vec();
    want.push("claim CAS failed");
    assert_stopped_at(&STOPS, &want);
}

/// As `producer_dies_after_each_step`, with the dead producer's record wrapping round
/// the end of the ring: one more step (the padding before the end, published right
/// after the claim), and a recovery that must pad both the padding cell and the
/// record's cells if it died before publishing them.
#[test]
fn producer_dies_after_each_step_of_a_wrapping_send() {
    static STOPS: Stops = StdMutex::new(BTreeSet::new());
    static NOT_YET: StdAtomicUsize = StdAtomicUsize::new(0);
    for k in 1..=PRODUCER_STEPS.len() as u32 + 3 {
        producer_dies_after(k, true, &STOPS, &NOT_YET);
    }
    let mut want = PRODUCER_STEPS.to_vec();
    want.push("wrap padding published");
    assert_stopped_at(&STOPS, &want);
}

// ---------------------------------------------------------------------------------
// A consumer dies
// ---------------------------------------------------------------------------------

/// The steps of a consumer's receive of a two-cell message, in order.
const CONSUMER_STEPS: [&str; 7] = [
    "claim note written",
    "claim CAS done",
    "claim note confirmed",
    "payload read",
    "cell released",
    "cell released",
    "claim note cleared",
];

/// Consumer 0 tries to receive one message (`try_recv`) and stops after its `k`-th
/// step; consumer 1 receives until `Disconnected`. The producer sends two two-cell
/// messages into 4 cells (the first before the consumers start), waits for consumer
/// 0 to end (a join, as in `producer_dies_after`), recovers it if it died (racing consumer 1's claims), then
/// sends a third message, which needs the first one's cells back: released by
/// consumer 1, or by the recovery if consumer 0 died holding them. A blocking send:
/// it would wait for ever if the recovery left them held.
fn consumer_dies_after(k: u32, stops: &'static Stops, not_yet: &'static StdAtomicUsize) {
    model(move || {
        let (mut tx, rx0) = ring(4);
        let rx1 = rx0.try_clone().unwrap();
        // The first message is there before the consumers start (fewer schedules: the
        // consumers still race for it, and for the second, sent while they run).
        tx.send(&message(0, 0, 20)).unwrap();
        let c0 = thread::spawn(move || {
            let mut rx = rx0;
            mpmc_stop_after_consumer(&rx, k);
            let mut buf = Vec::new();
            match run_until_stop(|| rx.try_recv(&mut buf)) {
                Ok(r) => {
                    drop(rx);
                    match r {
                        Ok(_) => Ok(Some(check(&buf))),
                        Err(TryRecvError::Empty) => Ok(None),
                        Err(e) => panic!("consumer 0: {e:?}"),
                    }
                }
                Err(step) => Err((step, mpmc_die_consumer(rx))),
            }
        });
        let c1 = thread::spawn(move || {
            let mut rx = rx1;
            let mut got = Vec::new();
            let mut buf = Vec::new();
            loop {
                match rx.recv(&mut buf) {
                    Ok(_) => got.push(check(&buf)),
                    Err(RecvError::Disconnected) => break,
                    Err(e) => panic!("consumer 1 after {got:?}: {e:?}"),
                }
            }
            got
        });
        tx.send(&message(0, 1, 20)).unwrap();
        let got0 = c0.join().unwrap();
        if let Err((_, slot)) = got0 {
            loop {
                match mpmc_recover_by_producer(&tx, slot) {
                    Ok(Some(true)) => break,
                    Ok(Some(false)) => {
                        not_yet.fetch_add(1, StdOrdering::Relaxed);
                        thread::yield_now();
                    }
                    other => panic!("recovering consumer 0: {other:?}"),
                }
            }
        }
        tx.send(&message(0, 2, 20)).unwrap();
        drop(tx);
        let got1 = c1.join().unwrap();
        assert!(
            got1.windows(2).all(|w| w[0] < w[1]),
            "out of order: {got1:?}"
        );
        let got0 = got0.map_err(|(step, _)| step);
        let mut all = got1.clone();
        // The message consumer 0 claimed before it died is lost (at most once).
        let lost = match got0 {
            Ok(mine) => {
                assert!(
                    !mine.is_some_and(|m| got1.contains(&m)),
                    "a message delivered twice"
                );
                all.extend(mine);
                0
            }
            Err(step) => {
                stops.lock().unwrap().insert(step);
                usize::from(!matches!(step, "claim note written" | "claim CAS failed"))
            }
        };
        all.sort_unstable();
        all.dedup();
        assert_eq!(
            all.len() + lost,
            3,
            "consumer 0: {got0:?}, consumer 1: {got1:?} (each message once, the lost one \
             excepted)"
        );
    });
}

/// A consumer that stops for ever after each step of its receive, beside a live
/// consumer: the producer recovers it (a claimed record's cells are released, its
/// message lost) and goes on into those cells; every other message arrives once. Two extra `k`s cover a claim retried after the other consumer won
/// the position.
#[test]
fn consumer_dies_after_each_step() {
    static STOPS: Stops = StdMutex::new(BTreeSet::new());
    static NOT_YET: StdAtomicUsize = StdAtomicUsize::new(0);
    for k in 1..=CONSUMER_STEPS.len() as u32 + 2 {
        consumer_dies_after(k, &STOPS, &NOT_YET);
    }
    let mut want = CONSUMER_STEPS.to_vec();
    want.push("claim CAS failed");
    assert_stopped_at(&STOPS, &want);
}

// ---------------------------------------------------------------------------------
// Stream holders die mid-message
// ---------------------------------------------------------------------------------

/// Producer 0 streams a 40-byte message (fragments of 16 bytes: a BEGIN with 8 bytes of
/// content, then 16, 16), writes `written` bytes and dies holding the writer-stream
/// slot. Producer 1 sends a small message, polling: it finds the slot held, and
/// recovers producer 0 (once dead), which frees the slot. The consumer receives until
/// `Disconnected`: the cut message as `Truncated` if its BEGIN was published, and
/// producer 1's message whole, once.
fn writer_dies_mid_message(written: usize) {
    static NOT_YET: StdAtomicUsize = StdAtomicUsize::new(0);
    let body = move || {
        let (tx0, mut rx) = ring(4);
        let tx1 = tx0.try_clone().unwrap();
        let fate = Fate::new();
        let p0 = {
            let fate = fate.clone();
            thread::spawn(move || {
                let mut tx = tx0;
                let mut w = tx.stream(40).unwrap();
                w.write_all(&message(0, 0, 40)[..written]).unwrap();
                // Dies here: the writer's drop never runs.
                std::mem::forget(w);
                fate.died(mpmc_die(tx));
            })
        };
        let p1 = thread::spawn(move || {
            let mut tx = tx1;
            let m = message(1, 0, 6);
            let mut recovered = false;
            loop {
                match tx.try_send(&m) {
                    Ok(()) => break,
                    Err(TrySendError::Full) => {
                        if !recovered {
                            recovered = recover_if_dead(&fate, &NOT_YET, |s| {
                                mpmc_recover_by_producer(&tx, s)
                            });
                        }
                        thread::yield_now();
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
            while !recover_if_dead(&fate, &NOT_YET, |s| mpmc_recover_by_producer(&tx, s)) {
                thread::yield_now();
            }
        });
        let mut seen = Vec::new();
        let mut buf = Vec::new();
        loop {
            match rx.recv(&mut buf) {
                Ok(_) => seen.push(Some(check(&buf))),
                Err(RecvError::Truncated) => seen.push(None),
                Err(RecvError::Disconnected) => break,
                Err(e) => panic!("after {seen:?}: {e:?}"),
            }
        }
        p0.join().unwrap();
        p1.join().unwrap();
        // The BEGIN fragment (8 bytes of content) is published once full.
        let truncated = usize::from(written >= 8);
        assert_eq!(
            seen.iter().filter(|s| s.is_none()).count(),
            truncated,
            "wrote {written}: {seen:?}"
        );
        assert_eq!(
            seen.iter().flatten().collect::<Vec<_>>(),
            [&(1, 0)],
            "{seen:?}"
        );
    };
    if written < 8 {
        model(body);
    } else {
        model_one_preemption(body);
    }
}

/// Dies with the BEGIN fragment claimed and half written: nothing of the message was
/// published; recovery pads it and frees the writer slot, and the consumer never hears
/// of it.
#[test]
fn writer_dies_in_its_first_fragment() {
    writer_dies_mid_message(4);
}

/// Dies right after its BEGIN fragment was published.
#[test]
fn writer_dies_after_its_first_fragment() {
    writer_dies_mid_message(8);
}

/// Dies with its second fragment claimed and partly written (unpublished): recovery
/// pads it; the consumer skips the padding and reports the message cut.
#[test]
fn writer_dies_in_its_second_fragment() {
    writer_dies_mid_message(12);
}

/// Consumer 0 takes whatever comes first with `recv_stream`; if anything, reads 4 bytes
/// and dies holding it (and the reader-stream slot, if it is the message in
/// fragments). Consumer 1 polls, recovers consumer 0 when it finds nothing (once
/// dead), and receives until `Disconnected`: the message consumer 0 did not take,
/// whole, never a piece of the other. The message in fragments is published before
/// the threads start (the race that matters is the consumers' for it, and the
/// recovery of its dead reader against the producer's second message and leaving).
#[test]
fn reader_dies_mid_message() {
    static NOT_YET: StdAtomicUsize = StdAtomicUsize::new(0);
    model(|| {
        let (mut tx, mut rx0) = ring(4);
        let rx1 = rx0.try_clone().unwrap();
        let fate = Fate::new();
        tx.send(&message(0, 0, 40)).unwrap();
        let p = thread::spawn(move || {
            tx.send(&message(0, 1, 9)).unwrap();
        });
        let c0 = {
            let fate = fate.clone();
            thread::spawn(move || {
                let took = match rx0.recv_stream() {
                    Ok(mut r) => {
                        let mut four = [0u8; 4];
                        r.read_exact(&mut four).unwrap();
                        let len = r.len();
                        // Dies here: neither the reader's drop nor the consumer's runs.
                        std::mem::forget(r);
                        Some((len, four))
                    }
                    Err(RecvError::Disconnected) => None,
                    Err(e) => panic!("{e:?}"),
                };
                match took {
                    Some(_) => fate.died(mpmc_die_consumer(rx0)),
                    None => {
                        drop(rx0);
                        fate.finished();
                    }
                }
                took
            })
        };
        let mut rx1 = rx1;
        let mut got = Vec::new();
        let mut buf = Vec::new();
        let mut recovered = false;
        loop {
            match rx1.try_recv(&mut buf) {
                Ok(_) => got.push(check(&buf).1),
                Err(TryRecvError::Empty) => {
                    if !recovered {
                        recovered =
                            recover_if_dead(&fate, &NOT_YET, |s| mpmc_recover_by_consumer(&rx1, s));
                    }
                    thread::yield_now();
                }
                Err(TryRecvError::Disconnected) => break,
                Err(e) => panic!("after {got:?}: {e:?}"),
            }
        }
        p.join().unwrap();
        let want: Vec<u8> = match c0.join().unwrap() {
            None => vec![0, 1],
            Some((len, four)) => {
                let seq = if len == 40 { 0 } else { 1 };
                assert_eq!(&four[..3], &[0, seq, len as u8]);
                vec![1 - seq]
            }
        };
        assert_eq!(got, want);
    });
}

// ---------------------------------------------------------------------------------
// Recovery against a live endpoint's unconfirmed claim note
// ---------------------------------------------------------------------------------

/// Producer 0 wrote its claim note for position 0 and died before its compare-exchange
/// (deterministically, before any other thread runs). Producer 1 then claims position
/// 0 itself while the consumer recovers producer 0: recovery sees `tail` past 0 and
/// producer 0's note unconfirmed, so the cells are producer 1's if its note says 0 and
/// is confirmed, undecided ("not yet") while producer 1's note says 0 unconfirmed, and
/// producer 0's only if no other note says 0. Whatever the order, recovery must not
/// pad over producer 1's record: its message arrives once, and then `Disconnected`.
/// Some execution must have met "not yet".
#[test]
fn recovery_waits_for_a_live_unconfirmed_producer_note() {
    static NOT_YET: StdAtomicUsize = StdAtomicUsize::new(0);
    model(|| {
        let (tx0, mut rx) = ring(4);
        let tx1 = tx0.try_clone().unwrap();
        let mut tx0 = tx0;
        mpmc_stop_after_producer(&tx0, 1);
        let step = run_until_stop(|| tx0.send(&message(0, 0, 12))).unwrap_err();
        assert_eq!(step, "claim note written");
        let fate = Fate::new();
        fate.died(mpmc_die(tx0));
        let p1 = thread::spawn(move || {
            let mut tx = tx1;
            tx.send(&message(1, 0, 10)).unwrap();
        });
        while !recover_if_dead(&fate, &NOT_YET, |s| mpmc_recover_by_consumer(&rx, s)) {
            thread::yield_now();
        }
        let mut got = Vec::new();
        let mut buf = Vec::new();
        loop {
            match rx.try_recv(&mut buf) {
                Ok(_) => got.push(check(&buf)),
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(TryRecvError::Disconnected) => break,
                Err(e) => panic!("after {got:?}: {e:?}"),
            }
        }
        p1.join().unwrap();
        assert_eq!(got, [(1, 0)]);
    });
    assert!(
        NOT_YET.load(StdOrdering::Relaxed) > 0,
        "recovery never met a live unconfirmed note"
    );
}

/// The consumers' side: consumer 0 wrote its claim note for the published record at
/// position 0 and died before its compare-exchange; consumer 1 takes that record while
/// the producer recovers consumer 0. Recovery must not release consumer 1's record
/// under it (a release would let the producer overwrite cells consumer 1 is reading:
/// loom reports that race) and must not lose it: consumer 1 receives it whole.
#[test]
fn recovery_waits_for_a_live_unconfirmed_consumer_note() {
    static NOT_YET: StdAtomicUsize = StdAtomicUsize::new(0);
    model(|| {
        let (mut tx, rx0) = ring(4);
        let rx1 = rx0.try_clone().unwrap();
        tx.send(&message(0, 0, 20)).unwrap();
        let mut rx0 = rx0;
        mpmc_stop_after_consumer(&rx0, 1);
        let step = run_until_stop(|| rx0.try_recv(&mut Vec::new())).unwrap_err();
        assert_eq!(step, "claim note written");
        let fate = Fate::new();
        fate.died(mpmc_die_consumer(rx0));
        let c1 = thread::spawn(move || {
            let mut rx = rx1;
            let mut buf = Vec::new();
            rx.recv(&mut buf).unwrap();
            // Still attached until joined: the producer's sends see a consumer.
            (check(&buf), rx)
        });
        while !recover_if_dead(&fate, &NOT_YET, |s| mpmc_recover_by_producer(&tx, s)) {
            thread::yield_now();
        }
        // Two more two-cell messages: the second reuses the first record's cells, so it
        // waits for consumer 1's release, never for a release by the recovery.
        tx.send(&message(0, 1, 20)).unwrap();
        tx.send(&message(0, 2, 20)).unwrap();
        assert_eq!(c1.join().unwrap().0, (0, 0));
    });
    assert!(
        NOT_YET.load(StdOrdering::Relaxed) > 0,
        "recovery never met a live unconfirmed note"
    );
}

/// Recovers the dead endpoint of `slot` through `recover` until it is done (by us or
/// the other recoverer); whether we did it.
fn recover_until_done(
    recover: impl Fn(usize) -> Result<Option<bool>, Corruption>,
    slot: usize,
) -> bool {
    loop {
        match recover(slot) {
            Ok(Some(true)) => return true,
            Ok(None) => return false,
            // Not yet, or the other recoverer holds the slot: it finishes, or leaves it
            // dead for us.
            Ok(Some(false)) => thread::yield_now(),
            Err(c) => panic!("recovering slot {slot}: {c:?}"),
        }
    }
}

/// Producer 0 stops for ever after its `k`-th step; then two survivors, the consumer
/// and producer 1, both proved it dead and race to recover its one slot. One of them
/// recovers it, once: its claim is padded (or its message, if published, delivered)
/// once, it is uncounted once (so producer 1, alive, is never taken for the last one
/// gone: the consumer sees `Disconnected` only after producer 1 leaves), and the ring
/// goes on.
fn two_recoverers_race(k: u32, stops: &'static Stops) {
    loom::model(move || {
        let (mut tx0, mut rx) = ring(4);
        let mut tx1 = tx0.try_clone().unwrap();
        mpmc_stop_after_producer(&tx0, k);
        let (published, slot) = match run_until_stop(|| tx0.send(&message(0, 0, 12))) {
            Ok(sent) => {
                sent.unwrap();
                // It sent whole: it dies right after, holding nothing.
                (true, mpmc_die(tx0))
            }
            Err(step) => {
                stops.lock().unwrap().insert(step);
                (
                    matches!(step, "stamp published" | "claim note cleared"),
                    mpmc_die(tx0),
                )
            }
        };
        let by_producer = thread::spawn(move || {
            let did = recover_until_done(|s| mpmc_recover_by_producer(&tx1, s), slot);
            (tx1, did)
        });
        let by_consumer = recover_until_done(|s| mpmc_recover_by_consumer(&rx, s), slot);
        let (tx1_back, by_producer) = by_producer.join().unwrap();
        tx1 = tx1_back;
        assert!(
            by_producer ^ by_consumer,
            "recovered by the producer: {by_producer}, by the consumer: {by_consumer}"
        );
        let mut buf = Vec::new();
        if published {
            rx.recv(&mut buf).unwrap();
            assert_eq!(check(&buf), (0, 0));
        }
        // Producer 1 lives: the ring is not "every producer gone".
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
        tx1.send(&message(1, 0, 10)).unwrap();
        rx.recv(&mut buf).unwrap();
        assert_eq!(check(&buf), (1, 0));
        drop(tx1);
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
    });
}

/// Two survivors recovering one dead producer at once, for every step it may have
/// died after (and after a whole send).
#[test]
fn two_recoverers_race_on_one_dead_producer() {
    static STOPS: Stops = StdMutex::new(BTreeSet::new());
    for k in 1..=PRODUCER_STEPS.len() as u32 + 1 {
        two_recoverers_race(k, &STOPS);
    }
    assert_stopped_at(&STOPS, &PRODUCER_STEPS);
}
