#![cfg(loom)]
//! The event count's no-lost-wake-up property under loom, alone and inside the ring.
//!
//! Under loom the futex is a condition variable: a waiter blocks while the wake
//! sequence holds its key, and waking one wakes one blocked waiter (as FUTEX_WAKE with
//! a count of 1). A lost wake-up (a waiter asleep although its condition is already
//! true, and nobody left to wake it) is then a thread blocked for ever: loom reports
//! the deadlock. So every model here passing means that, in every interleaving loom
//! explores, each waiter either saw the condition on its re-check or was woken.
//!
//! The waiters wait through the library's own loop (`wait::block_on`, reached through
//! `loom_internals::block_until`): the phases, registration, re-check, sleep and
//! leaving of a ring's endpoint, not a copy of them. Each model runs twice: with
//! symmetric fences and `Wait::Park`, and with the default protocol, asymmetric fences
//! (loom's fences standing for membarrier's, see `sys::membarrier::light_barrier`)
//! and `Wait::Adaptive` (a spin poll and a yield poll before it parks, under loom).

use std::sync::atomic::Ordering;

use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use loom::sync::Arc;
use loom::thread;
use shmlane::loom_internals::{block_until, EventCount, EventWord};
use shmlane::{spsc, RecvError, RingOptions, SendError, Wait};

/// The fence protocols and wait strategies each model runs with: symmetric and
/// parking at once; asymmetric (the default) and adaptive (the default).
const MODES: [(bool, Wait); 2] = [(false, Wait::Park), (true, Wait::Adaptive)];

/// Runs `f(asymmetric, wait)` as one loom model per mode of [`MODES`].
fn model_each_mode(f: impl Fn(bool, Wait) + Sync + Send + Copy + 'static) {
    for (asymmetric, wait) in MODES {
        loom::model(move || f(asymmetric, wait));
    }
}

/// The event count over `word` with the fences of `asymmetric`.
fn event_count(word: &EventWord, asymmetric: bool) -> EventCount<'_> {
    if asymmetric {
        EventCount::asymmetric(word)
    } else {
        EventCount::new(word)
    }
}

/// The waiter's side: the library's wait (check, register, re-check, sleep, leave),
/// until `condition` holds.
fn wait_until(ec: &EventCount<'_>, wait: Wait, condition: impl FnMut() -> bool) {
    block_until(ec, wait, condition);
}

/// One notifier, one waiter: the notifier sets the condition (Release) and notifies;
/// the waiter always ends, and leaves the waiter count at 0.
#[test]
fn no_lost_wakeup() {
    model_each_mode(|asym, wait| {
        let word = Arc::new(EventWord::new());
        let ready = Arc::new(AtomicBool::new(false));
        let notifier = thread::spawn({
            let (word, ready) = (word.clone(), ready.clone());
            move || {
                ready.store(true, Ordering::Release);
                event_count(&word, asym).notify_all();
            }
        });
        wait_until(&event_count(&word, asym), wait, || {
            ready.load(Ordering::Acquire)
        });
        notifier.join().unwrap();
        assert_eq!(word.waiters(), 0);
    });
}

/// Two events in a row: the waiter waits for the first, then for the second, with a
/// fresh key each time, so a key taken after the first bump must still be woken by the
/// second (the epoch only moves forward).
#[test]
fn no_lost_wakeup_twice() {
    model_each_mode(|asym, wait| {
        let word = Arc::new(EventWord::new());
        let events = Arc::new(AtomicU64::new(0));
        let notifier = thread::spawn({
            let (word, events) = (word.clone(), events.clone());
            move || {
                for _ in 0..2 {
                    events.fetch_add(1, Ordering::Release);
                    event_count(&word, asym).notify_all();
                }
            }
        });
        let ec = event_count(&word, asym);
        wait_until(&ec, wait, || events.load(Ordering::Acquire) >= 1);
        wait_until(&ec, wait, || events.load(Ordering::Acquire) >= 2);
        notifier.join().unwrap();
        assert_eq!(word.waiters(), 0);
    });
}

/// Takes one of the events published and not yet taken, if there is one.
fn take_event(events: &AtomicUsize) -> bool {
    events
        .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

/// Wake one: two waiters, two events, each published with `notify_one`; each waiter
/// takes one event (its condition consumes it). Both must end, whichever waiter each
/// wake-up reaches and whichever takes which event: one that takes an event on its
/// re-check, after a notifier had already turned its registration into a wake-up,
/// must not leave the other asleep. At the end nobody is registered and no wake-up
/// is left over.
#[test]
fn wake_one_two_waiters_two_events() {
    model_each_mode(|asym, wait| {
        let word = Arc::new(EventWord::new());
        let events = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (word, events) = (word.clone(), events.clone());
                thread::spawn(move || {
                    wait_until(&event_count(&word, asym), wait, || take_event(&events))
                })
            })
            .collect();
        let ec = event_count(&word, asym);
        for _ in 0..2 {
            events.fetch_add(1, Ordering::Release);
            ec.notify_one();
        }
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(events.load(Ordering::Relaxed), 0);
        assert_eq!((word.waiters(), word.woken()), (0, 0));
    });
}

/// Wake one, and a waiter that gives up (its deadline passed) after registering,
/// without taking anything: the one event's wake-up must still reach the other
/// waiter, although the notifier may have turned the leaver's registration into it.
#[test]
fn wake_one_survives_a_waiter_that_gives_up() {
    model_each_mode(|asym, wait| {
        let word = Arc::new(EventWord::new());
        let events = Arc::new(AtomicUsize::new(0));
        let leaver = thread::spawn({
            let word = word.clone();
            move || {
                let ec = event_count(&word, asym);
                let key = ec.prepare_wait();
                ec.cancel_wait(key);
            }
        });
        let waiter = thread::spawn({
            let (word, events) = (word.clone(), events.clone());
            move || wait_until(&event_count(&word, asym), wait, || take_event(&events))
        });
        events.fetch_add(1, Ordering::Release);
        event_count(&word, asym).notify_one();
        leaver.join().unwrap();
        waiter.join().unwrap();
        assert_eq!((word.waiters(), word.woken()), (0, 0));
    });
}

/// Through the ring (both fence protocols, each with its wait strategy): a consumer parked on an empty ring is woken by the producer's
/// record, then by the producer's leaving.
#[test]
fn consumer_parks_in_recv() {
    model_each_mode(|asym, wait| {
        let (mut tx, mut rx) =
            spsc::channel(&RingOptions::new(64).asymmetric_fences(asym)).unwrap();
        tx.set_wait(wait);
        rx.set_wait(wait);
        let producer = thread::spawn(move || tx.send(b"wake up").unwrap());
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf).unwrap(), 7);
        assert_eq!(buf, b"wake up");
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        producer.join().unwrap();
    });
}

/// Through the ring: a producer parked on a full ring is woken by the consumer's
/// `head`. Two 24-byte messages (32-byte records) do not fit in 64 bytes at once (the
/// second claim needs 32 + 40 - head <= 64), so the second `send` waits until the
/// consumer, parked too, has read the first.
#[test]
fn producer_parks_in_send() {
    model_each_mode(|asym, wait| {
        let (mut tx, mut rx) =
            spsc::channel(&RingOptions::new(64).asymmetric_fences(asym)).unwrap();
        tx.set_wait(wait);
        rx.set_wait(wait);
        let producer = thread::spawn(move || {
            tx.send(&[1; 24]).unwrap();
            tx.send(&[2; 24]).unwrap();
        });
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf).unwrap(), 24);
        assert_eq!(buf, [1; 24]);
        assert_eq!(rx.recv(&mut buf).unwrap(), 24);
        assert_eq!(buf, [2; 24]);
        assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        producer.join().unwrap();
    });
}

/// Through the ring: a producer parked on a full ring is woken by the consumer's
/// leaving, and gets `Disconnected` instead of sleeping for ever.
#[test]
fn producer_parked_sees_consumer_leave() {
    model_each_mode(|asym, wait| {
        let (mut tx, rx) = spsc::channel(&RingOptions::new(64).asymmetric_fences(asym)).unwrap();
        tx.set_wait(wait);
        let consumer = thread::spawn(move || drop(rx));
        let first = tx.send(&[1; 24]);
        assert!(matches!(first, Ok(()) | Err(SendError::Disconnected)));
        assert_eq!(tx.send(&[2; 24]), Err(SendError::Disconnected));
        consumer.join().unwrap();
    });
}
