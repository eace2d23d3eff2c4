//! Claim: **a peer killed at any step is seen dead within the bound, and the survivors
//! go on**: dead peers become `Disconnected` within the liveness bound (about 50 ms for
//! a parked waiter), cells a dead endpoint held are recovered, a message cut by a death
//! is `Truncated` and the next arrives, a replacement can attach, and delivery is at
//! most once (a message a consumer held when it died is not delivered again), on every
//! backing's way of telling a death (OFD locks; pid and start time for SysV).
//!
//! Each test forks a child that attaches, does one step (claims a record and holds
//! it, reads part of a message, ...), says so through a [`Gate`], and waits to be
//! killed. The parent SIGKILLs it and checks that the live endpoints go on.
//! [`killed_while_attached`]: processes killed with no step chosen.
//!
//! Kills at random instructions, at scale, are in `kill_at_any_instruction.rs`; live
//! endpoints never taken for dead in `live_endpoints_never_reaped.rs`; segments left by
//! dead processes in `stale_segments.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{seg_name, Gate, Procs, SegGuard};
use nix::sys::signal::{kill, Signal};
use shmlane::{
    mpmc, spsc, RecvError, RecvTimeoutError, RingOptions, SendTimeoutError, TrySendError,
};

const DEADLINE: Duration = Duration::from_secs(30);

/// Blocks the child until it is killed.
fn hold() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// What a waiting thread's own counters (`shmlane::wait::with_wait_counters`) saw
/// around a peer's death, and the wall time it took (printed, never asserted: a
/// loaded host stretches it however the library behaves).
///
/// The promise is "a waiter checks its peers every 25 ms of waiting, so a parked one
/// sees a death within about 50 ms (75 ms at worst)". Wall time cannot prove that on
/// a shared two-core machine: a waiter that is not scheduled for 100 ms is late
/// whatever the library does. The mechanism behind the figure can be proven by
/// counts, whatever the load:
/// - the waiter had **parked** before the death (the figure is for a parked waiter);
/// - the death is seen by the **first liveness check that starts after it**: checks
///   are counted as they start, and the count is read once the killed child is a
///   zombie (its locks released, its pid dead), so at most one more check may start
///   before the call returns;
/// - a liveness check follows **every park slice that ran out** (a slice is 50 ms,
///   twice the 25 ms period, so every slice that runs out ends with a check due);
///   with the previous point, a parked waiter sleeps at most the one slice it was in
///   when the peer died, and at most one more that began just before (hence at most
///   two slices after the death): the 50 ms, and the 75 ms at worst, of the promise.
///
/// A longer period (say 200 ms: a check every fourth slice) fails the third point.
#[derive(Debug)]
struct Notice {
    /// Wall time from the child's death to the call's return.
    took: Duration,
    /// Park slices the waiter had slept before the kill.
    slices_before: u64,
    /// Liveness checks that started after the death was complete.
    checks_after: u64,
    /// Park slices that started after the death was complete.
    slices_after: u64,
    /// Over the whole call: liveness checks, and park slices that ran out.
    checks: u64,
    ran_out: u64,
}

impl Notice {
    /// The waiter was parked, and a check followed every slice that ran out (for a
    /// call that may go on waiting for something else once it has seen the death).
    fn assert_parked_and_checking(&self, what: &str) {
        eprintln!("{what}: {self:?}");
        assert!(
            self.slices_before >= 1,
            "{what}: the waiter had not parked before the death: {self:?}"
        );
        assert!(
            self.ran_out <= self.checks,
            "{what}: {} park slices ran out but only {} liveness checks were made: \
             not a check after every slice: {self:?}",
            self.ran_out,
            self.checks
        );
    }

    /// The whole bound, for a call that returns once it has seen the death.
    fn assert_within_bound(&self, what: &str) {
        self.assert_parked_and_checking(what);
        assert!(
            self.checks_after <= 1,
            "{what}: {} liveness checks started after the death before it was seen: {self:?}",
            self.checks_after
        );
        assert!(
            self.slices_after <= 2,
            "{what}: {} park slices started after the death before it was seen: {self:?}",
            self.slices_after
        );
    }
}

/// Blocks until child `pid` has ended, without reaping it (`WNOWAIT`: `Procs` reaps
/// it later): once it is a zombie its descriptors are closed (its OFD locks
/// released) and its pid names a zombie, so every way of judging it says dead.
fn wait_until_dead(pid: nix::unistd::Pid) {
    loop {
        // SAFETY: `info` is a valid out-parameter; `waitid` only writes to it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: a plain system call on our own child, with a valid `info`.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid.as_raw() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.raw_os_error(), Some(libc::EINTR), "waitid {pid}: {e}");
    }
}

/// Runs `f` (a blocking call that ends when the peer is seen dead) on this thread
/// while another thread SIGKILLs `child` once `f` has parked and let two park slices
/// run out (counted, not timed: the bound is for a parked waiter). Returns what `f`
/// returned, and what this thread's wait counters saw (see [`Notice`]).
fn time_to_notice<T>(procs: &mut Procs, child: usize, f: impl FnOnce() -> T) -> (T, Notice) {
    let pid = procs.pid(child);
    let out = shmlane::wait::with_wait_counters(|c| {
        let (checks0, slices0, ran_out0) =
            (c.liveness_checks(), c.park_slices(), c.slices_ran_out());
        let returned = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let killer = s.spawn(|| {
                let give_up = Instant::now() + DEADLINE;
                while c.slices_ran_out() < ran_out0 + 2
                    && !returned.load(std::sync::atomic::Ordering::Relaxed)
                    && Instant::now() < give_up
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let slices_before = c.park_slices() - slices0;
                kill(pid, Signal::SIGKILL).expect("kill");
                wait_until_dead(pid);
                let at = Instant::now();
                (slices_before, c.liveness_checks(), c.park_slices(), at)
            });
            let r = f();
            let end = Instant::now();
            returned.store(true, std::sync::atomic::Ordering::Relaxed);
            let (slices_before, checks_dead, slices_dead, at) = killer.join().expect("killer");
            let notice = Notice {
                took: end.saturating_duration_since(at),
                slices_before,
                checks_after: c.liveness_checks().saturating_sub(checks_dead),
                slices_after: c.park_slices().saturating_sub(slices_dead),
                checks: c.liveness_checks() - checks0,
                ran_out: c.slices_ran_out() - ran_out0,
            };
            (r, notice)
        })
    });
    procs.kill(child);
    out
}

/// The death-detection bound for a parked consumer: five rounds, each checked by
/// counts ([`Notice`]), the wall times printed.
#[test]
fn spsc_parked_consumer_sees_a_killed_producer_within_the_bound() {
    let name = seg_name("crash-spsc-p");
    let _guard = SegGuard::new(&name);
    let mut rx = spsc::Consumer::create(&name, &RingOptions::new(4096)).unwrap();
    let mut times = Vec::new();
    for round in 0..5 {
        let mut procs = Procs::new("crash-spsc-p", DEADLINE);
        let ready = Gate::new();
        let n = name.clone();
        let g = &ready;
        let child = procs.spawn("producer", move || {
            let mut tx = spsc::Producer::open(&n).map_err(|e| e.to_string())?;
            tx.send(b"before").map_err(|e| e.to_string())?;
            g.open();
            hold()
        });
        assert!(ready.wait(DEADLINE), "the producer never got ready");
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf).unwrap(), 6, "round {round}");
        let (r, notice) = time_to_notice(&mut procs, child, || rx.recv(&mut buf));
        assert!(
            matches!(r, Err(RecvError::Disconnected)),
            "round {round}: {r:?}"
        );
        notice.assert_within_bound(&format!("round {round}"));
        times.push(notice.took);
    }
    times.sort();
    eprintln!("SPSC consumer noticed a killed producer after {times:?}");
}

#[test]
fn spsc_blocked_producer_sees_a_killed_consumer_and_a_replacement_attaches() {
    let name = seg_name("crash-spsc-c");
    let _guard = SegGuard::new(&name);
    let mut tx = spsc::Producer::create(&name, &RingOptions::new(4096)).unwrap();
    let mut procs = Procs::new("crash-spsc-c", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("consumer", move || {
        let mut rx = spsc::Consumer::open(&n).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        rx.recv(&mut buf).map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    tx.send(b"first").unwrap();
    assert!(ready.wait(DEADLINE));
    // Fill the ring, then block on it.
    while tx.try_send(&[7; 500]).is_ok() {}
    let (r, notice) = time_to_notice(&mut procs, child, || {
        tx.send_timeout(&[7; 500], Duration::from_secs(10))
    });
    assert!(matches!(r, Err(SendTimeoutError::Disconnected)), "{r:?}");
    notice.assert_within_bound("SPSC producer noticing a killed consumer");
    // A new consumer takes the dead one's slot and reads on from where it stopped
    // (the record it had received is not read again).
    let mut rx = spsc::Consumer::open(&name).expect("a replacement consumer attaches");
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 500);
    assert_eq!(buf, [7; 500]);
}

#[test]
fn spsc_killed_producer_mid_message_is_truncated_and_replaced() {
    let name = seg_name("crash-spsc-stream");
    let _guard = SegGuard::new(&name);
    let mut rx = spsc::Consumer::create(&name, &RingOptions::new(4096)).unwrap();
    let mut procs = Procs::new("crash-spsc-stream", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("producer", move || {
        use std::io::Write;
        let mut tx = spsc::Producer::open(&n).map_err(|e| e.to_string())?;
        let mut w = tx.stream(100_000).map_err(|e| e.to_string())?;
        // More than one fragment (1 KiB each here), so the message has begun.
        w.write_all(&[1; 2500]).map_err(|e| e.to_string())?;
        w.flush().map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    let mut buf = Vec::new();
    let (r, notice) = time_to_notice(&mut procs, child, || rx.recv(&mut buf));
    assert!(matches!(r, Err(RecvError::Truncated)), "{r:?}");
    notice.assert_within_bound("SPSC consumer noticing a producer killed mid-message");
    let mut tx = spsc::Producer::open(&name).expect("a replacement producer attaches");
    tx.send(b"next").unwrap();
    assert_eq!(rx.recv(&mut buf).unwrap(), 4);
    assert_eq!(buf, b"next");
}

/// An MPMC ring of 8 cells of 64 bytes, with room for 4 endpoints.
fn small_mpmc(name: &str) -> RingOptions {
    let _ = name;
    RingOptions::new(512).cell_size(64).max_endpoints(4)
}

#[test]
fn mpmc_producer_killed_holding_a_claim_is_padded_over() {
    let name = seg_name("crash-mpmc-claim");
    let _guard = SegGuard::new(&name);
    let mut rx = mpmc::Consumer::create(&name, &small_mpmc(&name)).unwrap();
    let mut tx = mpmc::Producer::open(&name).unwrap();
    let mut procs = Procs::new("crash-mpmc-claim", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("producer", move || {
        let mut p = mpmc::Producer::open(&n).map_err(|e| e.to_string())?;
        let mut grant = p.reserve(100).map_err(|e| e.to_string())?;
        grant[..4].copy_from_slice(b"torn");
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    // Claimed after the dead one's record: held up behind it until it is recovered.
    tx.send(b"after").unwrap();
    let mut buf = Vec::new();
    assert!(matches!(
        rx.recv_timeout(&mut buf, Duration::from_millis(200)),
        Err(RecvTimeoutError::Timeout)
    ));
    let (r, notice) = time_to_notice(&mut procs, child, || rx.recv(&mut buf));
    assert_eq!(r.unwrap(), 5);
    assert_eq!(buf, b"after", "the dead producer's cells were skipped");
    notice.assert_within_bound("MPMC consumer recovering a dead producer's claim");
    // Every cell is usable again: fill the ring and drain it.
    for round in 0..3 {
        for i in 0..8u8 {
            tx.send(&[i; 60]).unwrap();
        }
        for i in 0..8u8 {
            assert_eq!(rx.recv(&mut buf).unwrap(), 60, "round {round}");
            assert_eq!(buf, [i; 60]);
        }
    }
}

#[test]
fn mpmc_consumer_killed_holding_a_record_releases_it() {
    let name = seg_name("crash-mpmc-take");
    let _guard = SegGuard::new(&name);
    let mut tx = mpmc::Producer::create(&name, &small_mpmc(&name)).unwrap();
    let mut rx = mpmc::Consumer::open(&name).unwrap();
    let mut procs = Procs::new("crash-mpmc-take", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    tx.send(&[9; 200]).unwrap(); // 4 cells
    let child = procs.spawn("consumer", move || {
        let mut c = mpmc::Consumer::open(&n).map_err(|e| e.to_string())?;
        let grant = c.recv_ref().map_err(|e| e.to_string())?;
        assert_eq!(grant.len(), 200);
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    // The ring has 4 free cells; the dead consumer holds the other 4.
    tx.send(&[1; 200]).unwrap();
    let (r, notice) = time_to_notice(&mut procs, child, || {
        tx.send_timeout(&[2; 200], Duration::from_secs(10))
    });
    r.expect("the dead consumer's cells were released");
    notice.assert_within_bound("MPMC producer recovering a dead consumer's cells");
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 200);
    assert_eq!(
        buf, [1; 200],
        "the record the dead consumer held is not delivered again"
    );
    assert_eq!(rx.recv(&mut buf).unwrap(), 200);
    assert_eq!(buf, [2; 200]);
}

#[test]
fn mpmc_writer_killed_mid_message_is_truncated_for_its_reader() {
    let name = seg_name("crash-mpmc-writer");
    let _guard = SegGuard::new(&name);
    let mut rx = mpmc::Consumer::create(&name, &small_mpmc(&name)).unwrap();
    let mut tx = mpmc::Producer::open(&name).unwrap();
    let mut procs = Procs::new("crash-mpmc-writer", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("producer", move || {
        use std::io::Write;
        let mut p = mpmc::Producer::open(&n).map_err(|e| e.to_string())?;
        let mut w = p.stream(10_000).map_err(|e| e.to_string())?;
        w.write_all(&[3; 300]).map_err(|e| e.to_string())?;
        w.flush().map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    let mut buf = Vec::new();
    let (r, notice) = time_to_notice(&mut procs, child, || rx.recv(&mut buf));
    assert!(matches!(r, Err(RecvError::Truncated)), "{r:?}");
    notice.assert_within_bound("MPMC reader seeing its dead writer's message cut");
    // The writer-stream slot is free again: another producer's message goes through.
    tx.send_timeout(b"next", Duration::from_secs(5)).unwrap();
    assert_eq!(rx.recv(&mut buf).unwrap(), 4);
    assert_eq!(buf, b"next");
}

#[test]
fn mpmc_reader_killed_mid_message_frees_the_slot_and_the_rest_is_skipped() {
    let name = seg_name("crash-mpmc-reader");
    let _guard = SegGuard::new(&name);
    let mut tx = mpmc::Producer::create(&name, &small_mpmc(&name)).unwrap();
    let mut rx = mpmc::Consumer::open(&name).unwrap();
    let mut procs = Procs::new("crash-mpmc-reader", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("consumer", move || {
        use std::io::Read;
        let mut c = mpmc::Consumer::open(&n).map_err(|e| e.to_string())?;
        let mut r = c.recv_stream().map_err(|e| e.to_string())?;
        let mut part = [0; 100];
        r.read_exact(&mut part).map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    // A 2000-byte message through a 512-byte ring: the writer blocks on the reader.
    let writer = std::thread::spawn(move || {
        let r = tx.send_timeout(&[5; 2000], Duration::from_secs(10));
        let next = tx.send_timeout(b"next", Duration::from_secs(10));
        (r, next)
    });
    assert!(ready.wait(DEADLINE));
    let mut buf = Vec::new();
    // We wait for the reader slot; the dead reader's slot is freed, the rest of its
    // message skipped, and the next message is ours.
    let (r, notice) = time_to_notice(&mut procs, child, || rx.recv(&mut buf));
    assert_eq!(r.unwrap(), 4, "{buf:?}");
    assert_eq!(buf, b"next");
    // The call goes on after the death (it waits for the writer's next message), so
    // only the parking and the checks after every slice are asserted.
    notice.assert_parked_and_checking("MPMC consumer going past a dead reader");
    let (a, b) = writer.join().unwrap();
    a.unwrap();
    b.unwrap();
}

#[test]
fn mpmc_every_producer_killed_is_disconnected_and_every_consumer_killed_too() {
    let name = seg_name("crash-mpmc-all");
    let _guard = SegGuard::new(&name);
    mpmc::create_ring(&name, &small_mpmc(&name)).unwrap();
    let mut procs = Procs::new("crash-mpmc-all", DEADLINE);
    let mut children = Vec::new();
    for _ in 0..2 {
        let ready = Gate::new();
        let (n, g) = (name.clone(), &ready);
        children.push(procs.spawn("producer", move || {
            let mut p = mpmc::Producer::open(&n).map_err(|e| e.to_string())?;
            p.send(b"x").map_err(|e| e.to_string())?;
            g.open();
            hold()
        }));
        assert!(ready.wait(DEADLINE));
    }
    let mut rx = mpmc::Consumer::open(&name).unwrap();
    let mut buf = Vec::new();
    rx.recv(&mut buf).unwrap();
    rx.recv(&mut buf).unwrap();
    procs.kill(children[0]);
    let (r, notice) = time_to_notice(&mut procs, children[1], || rx.recv(&mut buf));
    assert!(matches!(r, Err(RecvError::Disconnected)), "{r:?}");
    notice.assert_within_bound("MPMC consumer seeing every producer dead");
    drop(rx);

    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let c = procs.spawn("consumer", move || {
        let _c = mpmc::Consumer::open(&n).map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    let mut tx = mpmc::Producer::open(&name).unwrap();
    while tx.try_send(&[1; 60]).is_ok() {}
    let (r, notice) = time_to_notice(&mut procs, c, || {
        tx.send_timeout(&[1; 60], Duration::from_secs(10))
    });
    assert!(matches!(r, Err(SendTimeoutError::Disconnected)), "{r:?}");
    notice.assert_within_bound("MPMC producer seeing every consumer dead");
    // try_send also notices, without waiting.
    assert!(matches!(tx.try_send(b"z"), Err(TrySendError::Disconnected)));
}

// ---------------------------------------------------------------------------------
// Other backings
// ---------------------------------------------------------------------------------

/// SysV has no file to lock: the pid and process start time tell. A killed MPMC
/// producer holding a claim is recovered there too.
#[test]
fn sysv_rings_tell_the_dead_by_pid_and_start_time() {
    let key = common::backings::sysv_key("crash-sysv");
    let _ = shmlane::remove_sysv(key);
    let opts = small_mpmc("").backing(shmlane::Backing::SysV { key });
    let mut rx = mpmc::Consumer::create_sysv(key, &opts).unwrap();
    struct Remove(i32);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = shmlane::remove_sysv(self.0);
        }
    }
    let _remove = Remove(key);
    let mut procs = Procs::new("crash-sysv", DEADLINE);
    let ready = Gate::new();
    let g = &ready;
    let child = procs.spawn("producer", move || {
        let mut p = mpmc::Producer::open_sysv(key).map_err(|e| e.to_string())?;
        p.send(b"one").map_err(|e| e.to_string())?;
        let _grant = p.reserve(10).map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 3);
    let (r, notice) = time_to_notice(&mut procs, child, || rx.recv(&mut buf));
    assert!(matches!(r, Err(RecvError::Disconnected)), "{r:?}");
    notice.assert_within_bound("SysV: MPMC consumer recovering and seeing its producer dead");
    // The dead producer's slot is free again for a new one.
    let mut tx = mpmc::Producer::open_sysv(key).unwrap();
    tx.send(b"two").unwrap();
    assert_eq!(rx.recv(&mut buf).unwrap(), 3);
}

/// A memfd ring handed to a child (here by fork): the child's endpoint locks a file
/// description of its own, so its death is seen although the parent holds the memfd.
#[test]
fn memfd_rings_tell_the_dead_by_their_locks() {
    let (mut rx, fd) = spsc::Consumer::create_memfd(&RingOptions::new(4096)).unwrap();
    let mut procs = Procs::new("crash-memfd", DEADLINE);
    let ready = Gate::new();
    let g = &ready;
    let child = procs.spawn("producer", move || {
        let mut tx = spsc::Producer::open_fd(fd).map_err(|e| e.to_string())?;
        tx.send(b"hi").map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 2);
    let (r, notice) = time_to_notice(&mut procs, child, || rx.recv(&mut buf));
    assert!(matches!(r, Err(RecvError::Disconnected)), "{r:?}");
    notice.assert_within_bound("memfd: consumer seeing its producer dead");
}

/// An SPSC consumer killed while it reads a message in place: the next consumer does
/// not get that message again (at most once, as MPMC).
#[test]
fn spsc_consumer_killed_holding_a_grant_does_not_get_it_redelivered() {
    let name = seg_name("crash-spsc-grant");
    let _guard = SegGuard::new(&name);
    let mut tx = spsc::Producer::create(&name, &RingOptions::new(4096)).unwrap();
    for m in [&b"held"[..], b"next"] {
        tx.send(m).unwrap();
    }
    let mut procs = Procs::new("crash-spsc-grant", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("consumer", move || {
        let mut rx = spsc::Consumer::open(&n).map_err(|e| e.to_string())?;
        let grant = rx.recv_ref().map_err(|e| e.to_string())?;
        assert_eq!(&grant[..], b"held");
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    procs.kill(child);
    let mut rx = spsc::Consumer::open(&name).expect("a replacement consumer attaches");
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 4);
    assert_eq!(buf, b"next");
}

/// A producer killed between publishing a record and storing `tail` leaves `tail` one
/// record behind; the consumer reads that record and publishes `head` past `tail`.
/// The next producer (and consumer) must take that for what it is, not corruption.
/// (Found by the crash-injection long run.)
#[test]
fn spsc_head_one_record_past_a_dead_producers_tail_is_not_corruption() {
    let name = seg_name("crash-spsc-tail");
    let _guard = SegGuard::new(&name);
    spsc::create_ring(&name, &RingOptions::new(4096)).unwrap();
    let mut procs = Procs::new("crash-spsc-tail", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("producer", move || {
        let mut tx = spsc::Producer::open(&n).map_err(|e| e.to_string())?;
        tx.send(b"first").map_err(|e| e.to_string())?;
        tx.send(b"second").map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    procs.kill(child);
    // As if it had died before storing `tail` for its second record (16 bytes).
    let tail = common::peek_u64(&name, common::offsets::TAIL);
    common::poke(&name, common::offsets::TAIL, &(tail - 16).to_le_bytes());
    {
        let mut rx = spsc::Consumer::open(&name).unwrap();
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf).unwrap(), 5);
        assert_eq!(rx.recv(&mut buf).unwrap(), 6);
        assert_eq!(buf, b"second");
    } // publishes head: one record past tail
    assert!(common::peek_u64(&name, common::offsets::HEAD) > tail - 16);
    let mut rx = spsc::Consumer::open(&name).expect("a consumer attaches");
    let mut tx = spsc::Producer::open(&name).expect("a producer attaches");
    tx.send(b"third").unwrap();
    let mut buf = Vec::new();
    assert_eq!(rx.recv(&mut buf).unwrap(), 5);
    assert_eq!(buf, b"third");
    let info = shmlane::inspect::inspect(&name).unwrap();
    assert!(info.problems.is_empty(), "{:?}", info.problems);
}

/// A message an SPSC consumer was refused (`TooLarge`: it stays in the ring) is not
/// skipped by the recovery after the next consumer dies. (Before: the refusing
/// consumer's read-to note stood past the message after its clean drop, and the
/// recovery of the next consumer, killed before it read anything, published it as
/// `head`: the message nobody received was lost.)
#[test]
fn spsc_message_refused_then_next_consumer_killed_is_still_delivered() {
    let name = seg_name("crash-spsc-refused");
    let _guard = SegGuard::new(&name);
    let mut tx = spsc::Producer::create(&name, &RingOptions::new(4096)).unwrap();
    tx.send(&[7; 300]).unwrap();
    tx.send(b"next").unwrap();
    let mut buf = Vec::new();
    {
        let mut rx = spsc::Consumer::open(&name).unwrap();
        rx.set_max_message(100);
        let r = rx.recv(&mut buf);
        assert!(
            matches!(r, Err(RecvError::TooLarge { len: 300, .. })),
            "{r:?}"
        );
    }
    let mut procs = Procs::new("crash-spsc-refused", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("consumer", move || {
        let _rx = spsc::Consumer::open(&n).map_err(|e| e.to_string())?;
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    procs.kill(child);
    // Attaching recovers the dead consumer.
    let mut rx = spsc::Consumer::open(&name).unwrap();
    assert_eq!(
        rx.recv(&mut buf).unwrap(),
        300,
        "the refused message was skipped"
    );
    assert_eq!(buf, [7; 300]);
    assert_eq!(rx.recv(&mut buf).unwrap(), 4);
    assert_eq!(buf, b"next");
}

/// As above, with the refusing consumer itself killed (no clean drop): the message it
/// was refused is still delivered to the next.
#[test]
fn spsc_consumer_killed_after_a_refused_message_does_not_lose_it() {
    let name = seg_name("crash-spsc-refused-kill");
    let _guard = SegGuard::new(&name);
    let mut tx = spsc::Producer::create(&name, &RingOptions::new(4096)).unwrap();
    tx.send(&[7; 300]).unwrap();
    tx.send(b"next").unwrap();
    let mut procs = Procs::new("crash-spsc-refused-kill", DEADLINE);
    let ready = Gate::new();
    let (n, g) = (name.clone(), &ready);
    let child = procs.spawn("consumer", move || {
        let mut rx = spsc::Consumer::open(&n).map_err(|e| e.to_string())?;
        rx.set_max_message(100);
        let mut buf = Vec::new();
        match rx.recv(&mut buf) {
            Err(RecvError::TooLarge { len: 300, .. }) => {}
            other => return Err(format!("{other:?}")),
        }
        g.open();
        hold()
    });
    assert!(ready.wait(DEADLINE));
    procs.kill(child);
    let mut rx = spsc::Consumer::open(&name).unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        rx.recv(&mut buf).unwrap(),
        300,
        "the refused message was skipped"
    );
    assert_eq!(rx.recv(&mut buf).unwrap(), 4);
}

mod killed_while_attached {
    //! A process killed while attached, with no step chosen: its peer gets its messages, then
    //! `Disconnected`, and a new endpoint can attach.

    use crate::common::{message, seg_name, Gate, Outcome, Procs, SegGuard};
    use shmlane::{spsc, RecvTimeoutError, RingOptions, SendTimeoutError};
    use std::time::Duration;

    const DEADLINE: Duration = Duration::from_secs(30);

    /// How long a gate may take to open (the peer's process must start and set up).
    const GATE: Duration = Duration::from_secs(20);

    fn opts(capacity: usize) -> RingOptions {
        RingOptions::new(capacity)
    }

    /// A producer process killed (SIGKILL) while attached: the consumer should get its
    /// messages, then `Disconnected`, within a bounded time (ARCHITECTURE.md §6, §8).
    #[test]
    fn killed_producer_is_detected() {
        let test = "sem-killed-prod";
        let name = seg_name(test);
        let _seg = SegGuard::new(&name);
        let sent = Gate::new();
        let mut procs = Procs::new(test, DEADLINE);
        let p = procs.spawn("producer", || {
            let mut tx = spsc::Producer::create(&name, &opts(4096)).map_err(|e| e.to_string())?;
            tx.send(&message(0, 64)).map_err(|e| e.to_string())?;
            sent.open();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        assert!(sent.wait(GATE), "producer did not start");
        assert_eq!(
            procs.kill(p).outcome,
            Outcome::Signaled(nix::sys::signal::SIGKILL)
        );
        let c = procs.spawn("consumer", || {
            let mut rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            assert_eq!(rx.recv(&mut buf), Ok(64));
            match rx.recv_timeout(&mut buf, Duration::from_secs(3)) {
                Err(RecvTimeoutError::Disconnected) => Ok(String::new()),
                other => Err(format!("after the producer was killed: {other:?}")),
            }
        });
        procs.wait_ok(c);
    }

    /// A consumer process killed (SIGKILL) while attached: the producer should get
    /// `Disconnected`, and a new consumer should be able to attach.
    #[test]
    fn killed_consumer_is_detected() {
        let test = "sem-killed-cons";
        let name = seg_name(test);
        let _seg = SegGuard::new(&name);
        let attached = Gate::new();
        let mut tx = spsc::Producer::create(&name, &opts(4096)).unwrap();
        let mut procs = Procs::new(test, DEADLINE);
        let c = procs.spawn("consumer", || {
            let _rx = spsc::Consumer::open(&name).map_err(|e| e.to_string())?;
            attached.open();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        assert!(attached.wait(GATE), "consumer did not start");
        assert_eq!(
            procs.kill(c).outcome,
            Outcome::Signaled(nix::sys::signal::SIGKILL)
        );
        while tx.try_send(&[0; 100]).is_ok() {}
        assert_eq!(
            tx.send_timeout(&[0; 100], Duration::from_secs(3)),
            Err(SendTimeoutError::Disconnected)
        );
        let c = procs.spawn("new consumer", || {
            spsc::Consumer::open(&name)
                .map(drop)
                .map_err(|e| format!("a new consumer after the first was killed: {e:?}"))?;
            Ok(String::new())
        });
        procs.wait_ok(c);
    }
}
